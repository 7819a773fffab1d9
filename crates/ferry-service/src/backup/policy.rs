//! A cluster's backup policy: what it backs up (the source, its tables), where to
//! (storage, optional secondary storage), when (cron schedules of full and
//! incremental sets, and of restore drills) and for how long (retention). The
//! passwords of the source and the drill target are sealed apart, never returned.

use super::retention::Retention;
use super::schedule;
use crate::error::{ServiceError, ServiceResult};
use crate::secrets::Secrets;
use serde::{Deserialize, Serialize};

/// A policy as the API takes it (passwords may be in the URLs).
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicyInput {
    /// The database to back up: `mysql://user:pw@host:3306/db` or `postgres://…`
    /// (the password is sealed at rest and never returned).
    pub source: String,
    /// Where sets go: `file:///dir`, an absolute path, or
    /// `s3://bucket/prefix?endpoint=…&region=…`.
    pub storage: String,
    /// Cron schedule of full sets (UTC; 5 fields, or 6 with seconds first).
    pub full: Option<String>,
    /// Cron schedule of incremental sets.
    pub incremental: Option<String>,
    /// Retention: `30d` (days) or `7` (sets). Default `30d`.
    pub retain: Option<String>,
    /// A second storage every completed set is copied to.
    pub secondary: Option<String>,
    /// Cron schedule of restore drills (the newest set restored into drill_target).
    pub drill: Option<String>,
    /// The scratch database restore drills write to (its tables are dropped first).
    pub drill_target: Option<String>,
    /// Tables to include (patterns as in a task file's objects.include).
    #[serde(default)]
    pub include: Vec<String>,
    /// Tables to exclude.
    #[serde(default)]
    pub exclude: Vec<String>,
    /// Log backup: `true` archives the source's change stream continuously (the
    /// cluster's log backup task), so it can be restored to any point in time.
    pub log: Option<bool>,
    /// The log backup's method: `logical` (row changes, restorable into either
    /// engine; default) or `physical` (PostgreSQL WAL).
    #[schema(pattern = "^(logical|physical)$")]
    pub log_method: Option<String>,
    /// Admin only: the owning tenant.
    pub tenant: Option<String>,
}

/// A policy as stored (no passwords).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PolicySpec {
    /// Source URL without its password.
    pub source: String,
    /// Storage URL.
    pub storage: String,
    /// Full schedule.
    pub full: Option<String>,
    /// Incremental schedule.
    pub incremental: Option<String>,
    /// Retention text.
    pub retain: String,
    /// Secondary storage URL.
    pub secondary: Option<String>,
    /// Drill schedule.
    pub drill: Option<String>,
    /// Drill target URL without its password.
    pub drill_target: Option<String>,
    /// Included tables.
    pub include: Vec<String>,
    /// Excluded tables.
    pub exclude: Vec<String>,
    /// Log backup on.
    #[serde(default)]
    pub log: bool,
    /// Log backup method (`logical` / `physical`).
    #[serde(default = "logical")]
    pub log_method: String,
}

fn logical() -> String {
    "logical".into()
}

/// The sealed passwords of a policy.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PolicySecrets {
    /// The source's.
    pub source: Option<String>,
    /// The drill target's.
    pub drill_target: Option<String>,
}

fn invalid(field: &str, reason: impl Into<String>) -> ServiceError {
    ServiceError::Invalid {
        field: field.into(),
        reason: reason.into(),
    }
}

/// Checks a database URL and splits its password off.
pub fn database_url(field: &str, text: &str) -> ServiceResult<(String, Option<String>)> {
    let redacted = ferry_core::redact::redact_url(text);
    let mut u = url::Url::parse(text).map_err(|e| {
        invalid(
            field,
            format!("{redacted:?} is not a database URL ({e}); write mysql://user:pw@host:3306/db or postgres://user:pw@host:5432/db"),
        )
    })?;
    if !matches!(u.scheme(), "mysql" | "mariadb" | "postgres" | "postgresql") {
        return Err(invalid(
            field,
            format!(
                "{redacted:?}: scheme {:?} is not a database; use mysql:// (also MariaDB) or postgres://",
                u.scheme()
            ),
        ));
    }
    if u.host_str().is_none_or(str::is_empty) {
        return Err(invalid(field, format!("{redacted:?} names no host")));
    }
    let pw = u.password().map(ferry_core::spec::decode_url_part);
    if pw.is_some() {
        let _ = u.set_password(None);
    }
    let clean = u.to_string();
    ferry_core::Endpoint::parse(&clean, "")
        .map_err(|e| invalid(field, ferry_core::redact::redact(&e.to_string())))?;
    Ok((clean, pw))
}

/// Checks a storage URL: `file:///dir`, an absolute path, or `s3://bucket/prefix…`.
pub fn storage_url(field: &str, text: &str) -> ServiceResult<String> {
    let t = text.trim();
    let how = "write file:///dir, an absolute path, or s3://bucket/prefix?endpoint=…&region=… (S3 credentials come from the service's environment)";
    if t.starts_with('/') {
        return Ok(t.to_string());
    }
    let u = url::Url::parse(t)
        .map_err(|e| invalid(field, format!("{t:?} is not a storage URL ({e}); {how}")))?;
    match u.scheme() {
        "file" if !u.path().is_empty() && u.path() != "/" => {}
        "s3" if u.host_str().is_some_and(|h| !h.is_empty()) => {}
        "file" | "s3" => {
            return Err(invalid(
                field,
                format!("{t:?} names no directory or bucket; {how}"),
            ))
        }
        s => {
            return Err(invalid(
                field,
                format!("{t:?}: scheme {s:?} is not a storage; {how}"),
            ))
        }
    }
    if u.password().is_some() {
        return Err(invalid(
            field,
            "storage credentials never go in the URL; set AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY in the service's environment",
        ));
    }
    Ok(t.to_string())
}

fn cron_field(field: &str, text: &Option<String>) -> ServiceResult<Option<String>> {
    match text.as_deref().map(str::trim) {
        None | Some("") => Ok(None),
        Some(t) => {
            schedule::parse(t).map_err(|e| invalid(field, e))?;
            Ok(Some(t.to_string()))
        }
    }
}

/// Validates `p` and seals its passwords: the stored spec and its secrets.
pub fn validate(p: &PolicyInput, secrets: &Secrets) -> ServiceResult<(PolicySpec, PolicySecrets)> {
    let (source, source_pw) = database_url("source", &p.source)?;
    let storage = storage_url("storage", &p.storage)?;
    let full = cron_field("full", &p.full)?;
    let incremental = cron_field("incremental", &p.incremental)?;
    let drill = cron_field("drill", &p.drill)?;
    let retain = p.retain.clone().unwrap_or_else(|| "30d".into());
    Retention::parse(&retain).map_err(|e| invalid("retain", e))?;
    let secondary = p
        .secondary
        .as_deref()
        .filter(|s| !s.trim().is_empty())
        .map(|s| storage_url("secondary", s))
        .transpose()?;
    if secondary.as_deref() == Some(storage.as_str()) {
        return Err(invalid(
            "secondary",
            "the secondary storage is the primary one; name another place",
        ));
    }
    let (drill_target, drill_pw) = match p.drill_target.as_deref().filter(|s| !s.trim().is_empty())
    {
        Some(t) => {
            let (clean, pw) = database_url("drill_target", t)?;
            (Some(clean), pw)
        }
        None => (None, None),
    };
    if drill.is_some() && drill_target.is_none() {
        return Err(invalid(
            "drill_target",
            "a drill schedule needs a scratch database to restore into (drill_target)",
        ));
    }
    if drill_target.is_some() && drill_target.as_deref() == Some(source.as_str()) {
        return Err(invalid(
            "drill_target",
            "the drill target is the source itself; drills drop its tables — name a scratch database",
        ));
    }
    ferry_core::select::ObjectFilter::new(&p.include, &p.exclude)
        .map_err(|e| invalid("include", e.to_string()))?;
    let log_method = match p.log_method.as_deref().map(str::trim) {
        None | Some("") | Some("logical") => "logical".to_string(),
        Some("physical") => {
            if !source.starts_with("postgres") {
                return Err(invalid(
                    "log_method",
                    "physical log backup archives PostgreSQL WAL; a MySQL/MariaDB source uses logical",
                ));
            }
            "physical".to_string()
        }
        Some(x) => {
            return Err(invalid(
                "log_method",
                format!("{x:?} is not a log backup method; write logical or physical"),
            ))
        }
    };
    Ok((
        PolicySpec {
            source,
            storage,
            full,
            incremental,
            retain,
            secondary,
            drill,
            drill_target,
            include: p.include.clone(),
            exclude: p.exclude.clone(),
            log: p.log.unwrap_or(false),
            log_method,
        },
        PolicySecrets {
            source: source_pw.map(|s| secrets.seal(&s)),
            drill_target: drill_pw.map(|s| secrets.seal(&s)),
        },
    ))
}

/// Whether `s` is a valid cluster name (`[a-z0-9_-]`, 1 to 63 characters).
pub fn valid_cluster(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input() -> PolicyInput {
        PolicyInput {
            source: "postgres://u:secret@127.0.0.1:5432/shop".into(),
            storage: "file:///var/backups".into(),
            full: Some("0 2 * * 0".into()),
            ..PolicyInput::default()
        }
    }

    fn secrets() -> (tempfile::TempDir, Secrets) {
        let d = tempfile::tempdir().unwrap();
        let s = Secrets::load(&d.path().join("k")).unwrap();
        (d, s)
    }

    #[test]
    fn a_good_policy_is_stored_without_its_password() {
        let (_d, s) = secrets();
        let (spec, sealed) = validate(&input(), &s).unwrap();
        assert!(!spec.source.contains("secret"));
        assert_eq!(s.open(sealed.source.as_ref().unwrap()).unwrap(), "secret");
        assert_eq!(spec.retain, "30d");
    }

    #[test]
    fn each_bad_field_is_named() {
        let (_d, s) = secrets();
        let cases: Vec<(&str, PolicyInput)> = vec![
            (
                "full",
                PolicyInput {
                    full: Some("every sunday".into()),
                    ..input()
                },
            ),
            (
                "incremental",
                PolicyInput {
                    incremental: Some("0 2 * *".into()),
                    ..input()
                },
            ),
            (
                "retain",
                PolicyInput {
                    retain: Some("forever".into()),
                    ..input()
                },
            ),
            (
                "source",
                PolicyInput {
                    source: "oracle://x/y".into(),
                    ..input()
                },
            ),
            (
                "storage",
                PolicyInput {
                    storage: "ftp://x/y".into(),
                    ..input()
                },
            ),
            (
                "secondary",
                PolicyInput {
                    secondary: Some("relative/dir".into()),
                    ..input()
                },
            ),
            (
                "drill_target",
                PolicyInput {
                    drill: Some("0 3 * * *".into()),
                    ..input()
                },
            ),
            (
                "log_method",
                PolicyInput {
                    log: Some(true),
                    log_method: Some("wal".into()),
                    ..input()
                },
            ),
            (
                "log_method",
                PolicyInput {
                    source: "mysql://u@127.0.0.1:3306/shop".into(),
                    log: Some(true),
                    log_method: Some("physical".into()),
                    ..input()
                },
            ),
        ];
        for (field, p) in cases {
            match validate(&p, &s) {
                Err(ServiceError::Invalid { field: f, .. }) => assert_eq!(f, field),
                other => panic!("{field}: {other:?}"),
            }
        }
    }

    #[test]
    fn cluster_names() {
        assert!(valid_cluster("shop-1_a"));
        assert!(!valid_cluster("Shop"));
        assert!(!valid_cluster(""));
        assert!(!valid_cluster("a/b"));
    }
}
