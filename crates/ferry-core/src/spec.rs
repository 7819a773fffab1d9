//! The task file (`shop.yaml`): one definition of a task, shared by the CLI and (later)
//! the API. Unknown keys are refused so a typo never silently changes what runs.

use crate::{select::ObjectFilter, Error, Result};
use serde::Deserialize;
use std::{collections::BTreeMap, fmt, path::Path};

/// What kind of task this is (SPEC.md §1).
/// Most parallel copy workers a task may ask for (each is a connection on both ends,
/// and the target tracks each one's writes).
pub const MAX_JOBS: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// One-off move: full, then incremental until cut-over.
    Migration,
    /// Long-lived replication of chosen objects.
    Sync,
    /// Standby kept equal to a primary.
    Dr,
}

impl Kind {
    /// The snake_case id (as in the task file and the API).
    pub fn id(self) -> &'static str {
        match self {
            Kind::Migration => "migration",
            Kind::Sync => "sync",
            Kind::Dr => "dr",
        }
    }

    /// Parses an id.
    pub fn from_id(id: &str) -> Option<Kind> {
        [Kind::Migration, Kind::Sync, Kind::Dr]
            .into_iter()
            .find(|k| k.id() == id)
    }
}

/// Which phases run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum Mode {
    /// Schema + full copy only.
    #[serde(rename = "full")]
    Full,
    /// Changes only, from a given position.
    #[serde(rename = "incremental")]
    Incremental,
    /// Full copy, then changes from the snapshot's position.
    #[serde(rename = "full+incremental")]
    FullIncremental,
}

/// How to treat target tables that already hold rows (not from this task's own
/// interrupted run, which is always resumed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExistingData {
    /// Refuse to start (the default: never mix unknown rows into a migration).
    #[default]
    Fail,
    /// Drop and recreate the target tables.
    Drop,
    /// Empty the target tables, keep their definition.
    Truncate,
    /// Keep the rows and add the source's (keys must not collide).
    Append,
}

impl ExistingData {
    /// The word the task file uses.
    pub fn as_str(self) -> &'static str {
        match self {
            ExistingData::Fail => "fail",
            ExistingData::Drop => "drop",
            ExistingData::Truncate => "truncate",
            ExistingData::Append => "append",
        }
    }
}

/// Database engine of an endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// PostgreSQL 13+.
    Postgres,
    /// MySQL 8 or MariaDB 10.11+.
    MySql,
}

impl fmt::Display for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Engine::Postgres => "postgres",
            Engine::MySql => "mysql",
        })
    }
}

/// A database to connect to. The password is held apart from the URL text and never
/// printed: `Display` and `Debug` show the URL without it.
#[derive(Clone)]
pub struct Endpoint {
    /// Engine, from the URL scheme.
    pub engine: Engine,
    /// Host name or address.
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// User name.
    pub user: String,
    /// Password (from the URL or the environment), never printed.
    pub password: Option<String>,
    /// Database name (PostgreSQL database; MySQL default database), if any.
    pub database: Option<String>,
    /// Unix socket directory/path given as `?host=/path` or `?socket=/path`.
    pub socket: Option<String>,
    /// TLS settings from the URL's `sslmode`… (PostgreSQL) or `ssl-mode`… (MySQL)
    /// parameters; default: encrypt when the server offers it.
    pub tls: crate::tls::Tls,
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}://{}@{}:{}",
            self.engine, self.user, self.host, self.port
        )?;
        if let Some(d) = &self.database {
            write!(f, "/{d}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Endpoint({self})")
    }
}

impl Endpoint {
    /// Parses `mysql://user:pw@host:port/db`, `mariadb://…` or `postgres://…`.
    /// `password_env` names the variable that supplies a password absent from the URL.
    pub fn parse(url_text: &str, password_env: &str) -> Result<Endpoint> {
        let redacted = crate::redact::redact_url(url_text);
        let url = url::Url::parse(url_text).map_err(|e| {
            Error::definite(format!("invalid database URL {redacted:?}: {e}"))
                .with_hint("write it as mysql://user@host:3306/db or postgres://user@host:5432/db")
        })?;
        let engine = match url.scheme() {
            "mysql" | "mariadb" => Engine::MySql,
            "postgres" | "postgresql" => Engine::Postgres,
            s => {
                return Err(Error::definite(format!(
                    "unsupported database URL scheme {s:?} in {redacted:?}"
                ))
                .with_hint("use mysql:// (also for MariaDB) or postgres://"))
            }
        };
        let decode = decode_url_part;
        let user = if url.username().is_empty() {
            match engine {
                Engine::MySql => "root".to_string(),
                Engine::Postgres => "postgres".to_string(),
            }
        } else {
            decode(url.username())
        };
        let password = url
            .password()
            .map(decode)
            .or_else(|| std::env::var(password_env).ok().filter(|p| !p.is_empty()));
        let database = url
            .path()
            .trim_start_matches('/')
            .split('/')
            .next()
            .filter(|d| !d.is_empty())
            .map(decode);
        let socket = url
            .query_pairs()
            .find(|(k, _)| k == "host" || k == "socket")
            .map(|(_, v)| v.into_owned());
        let query: Vec<(String, String)> = url.query_pairs().into_owned().collect();
        let tls = crate::tls::Tls::from_query(
            engine,
            query.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        )
        .map_err(|e| e.context(format!("database URL {redacted:?}")))?;
        Ok(Endpoint {
            engine,
            host: url.host_str().unwrap_or("127.0.0.1").to_string(),
            port: url.port().unwrap_or(match engine {
                Engine::MySql => 3306,
                Engine::Postgres => 5432,
            }),
            user,
            password,
            database,
            socket,
            tls,
        })
    }

    /// The same endpoint pointing at another database.
    pub fn with_database(&self, db: &str) -> Endpoint {
        let mut e = self.clone();
        e.database = Some(db.to_string());
        e
    }
}

/// Percent-decodes one part of a URL (user, password, database name). Not form
/// decoding: in a URL's user info a `+` is a plus and a `&` ends nothing, so a
/// password `a+b&c` written as is arrives as `a+b&c`.
pub fn decode_url_part(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = b
            .get(i + 1..i + 3)
            .filter(|h| h.iter().all(u8::is_ascii_hexdigit));
        match (b[i], hex) {
            (b'%', Some(h)) => {
                let digit = |c: u8| (c as char).to_digit(16).unwrap_or(0) as u8;
                out.push(digit(h[0]) * 16 + digit(h[1]));
                i += 3;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `objects:` in the task file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObjectsSpec {
    /// `schema.table` globs to copy; default every user table.
    #[serde(default)]
    pub include: Vec<String>,
    /// `schema.table` globs to leave out.
    #[serde(default)]
    pub exclude: Vec<String>,
    /// Schema renames, source → target.
    #[serde(default)]
    pub rename: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSpec {
    name: String,
    kind: Kind,
    mode: Mode,
    source: String,
    target: String,
    #[serde(default)]
    objects: ObjectsSpec,
    #[serde(default)]
    existing_data: ExistingData,
    #[serde(default)]
    jobs: Option<usize>,
    #[serde(default)]
    apply_jobs: Option<usize>,
    #[serde(default)]
    chunk_rows: Option<u64>,
    #[serde(default)]
    start_position: Option<String>,
    #[serde(default)]
    source_protection: RawProtection,
    #[serde(default)]
    speed_limit: Option<serde_norway::Value>,
    #[serde(default)]
    target_binlog: Option<OnOff>,
}

/// `on` / `off` in the task file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum OnOff {
    On,
    Off,
}

/// `source_protection:` in the task file, as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProtection {
    #[serde(default)]
    max_retained_wal: Option<serde_norway::Value>,
    #[serde(default)]
    sample_seconds: Option<u64>,
}

/// How a task watches what the source keeps of its log for it (`source_protection:`
/// in the task file): a slot that nobody reads must never fill the source's disk
/// unnoticed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SourceProtection {
    /// Warn when the source keeps more log than this for the task (bytes; `None`:
    /// the default, 10 GB or half of the source's `max_slot_wal_keep_size`).
    pub max_retained_wal: Option<u64>,
    /// Seconds between two samples of the source's retention (default 30).
    pub sample_seconds: u64,
}

/// `10GB`, `512 MB`, `1MiB`, `4096` → bytes (decimal units: kB, MB, GB, TB; binary:
/// KiB, MiB, GiB, TiB).
pub fn parse_size(text: &str) -> Option<u64> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = (t[..split].trim(), t[split..].trim());
    let n: f64 = num.parse().ok()?;
    let mult: f64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" | "bytes" => 1.0,
        "kb" | "k" => 1e3,
        "mb" | "m" => 1e6,
        "gb" | "g" => 1e9,
        "tb" | "t" => 1e12,
        "kib" => 1024.0,
        "mib" => 1024.0 * 1024.0,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        "tib" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        _ => return None,
    };
    let bytes = n * mult;
    (1.0..1.8e19).contains(&bytes).then_some(bytes as u64)
}

impl RawProtection {
    fn parse(self) -> Result<SourceProtection> {
        let max_retained_wal = match self.max_retained_wal {
            None => None,
            Some(v) => {
                let text = match &v {
                    serde_norway::Value::Number(n) => n.to_string(),
                    serde_norway::Value::String(s) => s.clone(),
                    _ => String::new(),
                };
                Some(parse_size(&text).ok_or_else(|| {
                    Error::definite(format!(
                        "source_protection.max_retained_wal: {text:?} is not a size"
                    ))
                    .with_hint("write e.g. 10GB, 512MB or a number of bytes")
                })?)
            }
        };
        if self.sample_seconds == Some(0) {
            return Err(Error::definite(
                "source_protection.sample_seconds must be at least 1",
            ));
        }
        Ok(SourceProtection {
            max_retained_wal,
            sample_seconds: self.sample_seconds.unwrap_or(30),
        })
    }
}

/// How fast a task may go (like DTS's speed limits): rows or bytes per second for the
/// full copy and for the change stream's apply. `None` = no limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SpeedLimit {
    /// Full copy rows per second, all workers together.
    pub copy_rows_per_second: Option<u64>,
    /// Full copy bytes per second, all workers together.
    pub copy_bytes_per_second: Option<u64>,
    /// Applied row changes per second.
    pub apply_rows_per_second: Option<u64>,
    /// Applied change bytes per second.
    pub apply_bytes_per_second: Option<u64>,
}

/// The keys of `speed_limit:` in the task file (and of the API's `speed_limit`).
pub const SPEED_LIMIT_KEYS: [&str; 4] = [
    "copy_rows_per_second",
    "copy_mb_per_second",
    "apply_rows_per_second",
    "apply_mb_per_second",
];

/// Bytes in the MB of `*_mb_per_second` (decimal, as DTS and disk vendors count).
pub const MB: f64 = 1_000_000.0;

/// Largest accepted rows per second (far beyond any server; a typo guard).
const MAX_ROWS_PER_SECOND: u64 = 1_000_000_000_000;
/// Largest accepted MB per second (1 TB/s).
const MAX_MB_PER_SECOND: f64 = 1_000_000.0;

impl SpeedLimit {
    /// Whether nothing is limited.
    pub fn is_unlimited(&self) -> bool {
        *self == SpeedLimit::default()
    }

    /// Reads the `speed_limit:` mapping of a task file; errors name the key and
    /// say what to write.
    pub fn from_value(v: &serde_norway::Value) -> Result<SpeedLimit> {
        let map = match v {
            serde_norway::Value::Null => return Ok(SpeedLimit::default()),
            serde_norway::Value::Mapping(m) => m,
            _ => return Err(Error::definite("speed_limit must be a mapping").with_hint(
                "write e.g. speed_limit: {copy_rows_per_second: 50000, apply_mb_per_second: 20}",
            )),
        };
        let mut out = SpeedLimit::default();
        for (k, v) in map {
            let key = k.as_str().unwrap_or_default();
            let value = speed_limit_value(key, v)?;
            match key {
                "copy_rows_per_second" => out.copy_rows_per_second = value,
                "copy_mb_per_second" => out.copy_bytes_per_second = value,
                "apply_rows_per_second" => out.apply_rows_per_second = value,
                _ => out.apply_bytes_per_second = value,
            }
        }
        Ok(out)
    }

    /// The limits as the task file writes them (`*_mb_per_second` in MB), leaving
    /// out the ones not set: what a changed limit stores back into the task text.
    pub fn to_value(&self) -> serde_norway::Value {
        let mut m = serde_norway::Mapping::new();
        for (key, v) in self.entries() {
            if let Some(v) = v {
                m.insert(key.into(), v);
            }
        }
        serde_norway::Value::Mapping(m)
    }

    /// Each key with its value in the task file's units (rows, or MB as a number),
    /// `None` when not limited.
    pub fn entries(&self) -> [(&'static str, Option<serde_norway::Value>); 4] {
        let rows = |v: Option<u64>| v.map(serde_norway::Value::from);
        let mb = |v: Option<u64>| v.map(|b| serde_norway::Value::from(b as f64 / MB));
        [
            (SPEED_LIMIT_KEYS[0], rows(self.copy_rows_per_second)),
            (SPEED_LIMIT_KEYS[1], mb(self.copy_bytes_per_second)),
            (SPEED_LIMIT_KEYS[2], rows(self.apply_rows_per_second)),
            (SPEED_LIMIT_KEYS[3], mb(self.apply_bytes_per_second)),
        ]
    }
}

/// The `speed_limit:` of a stored task text, read alone (what a worker polls to
/// follow a running task's edited limit without parsing the whole task again).
pub fn speed_limit_of(yaml: &str) -> Result<SpeedLimit> {
    let doc: serde_norway::Value = serde_norway::from_str(yaml).map_err(|e| {
        Error::definite(format!(
            "not valid YAML: {}",
            crate::redact::redact(&e.to_string())
        ))
    })?;
    match doc.get("speed_limit") {
        None => Ok(SpeedLimit::default()),
        Some(v) => SpeedLimit::from_value(v),
    }
}

/// One `speed_limit` value: `key` is one of [`SPEED_LIMIT_KEYS`]; a rows key takes a
/// whole number ≥ 1, an MB key a number > 0 (fractions allowed: 0.5 = 500 kB/s);
/// null = no limit. Returns rows, or bytes for an MB key.
pub fn speed_limit_value(key: &str, v: &serde_norway::Value) -> Result<Option<u64>> {
    let how = || {
        format!(
            "speed_limit takes {}; leave a key out (or null) for no limit",
            SPEED_LIMIT_KEYS.join(", ")
        )
    };
    if !SPEED_LIMIT_KEYS.contains(&key) {
        return Err(Error::definite(format!("speed_limit: unknown key {key:?}")).with_hint(how()));
    }
    if v.is_null() {
        return Ok(None);
    }
    let shown = serde_norway::to_string(v)
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    if key.ends_with("_rows_per_second") {
        match v.as_u64() {
            Some(n) if (1..=MAX_ROWS_PER_SECOND).contains(&n) => Ok(Some(n)),
            _ => Err(Error::definite(format!(
                "speed_limit.{key}: {shown} is not a number of rows per second"
            ))
            .with_hint(format!(
                "write a whole number from 1 to {MAX_ROWS_PER_SECOND}, e.g. {key}: 50000; leave it out for no limit"
            ))),
        }
    } else {
        let mb = v.as_f64().filter(|x| x.is_finite());
        match mb {
            Some(x) if x * MB >= 1.0 && x <= MAX_MB_PER_SECOND => Ok(Some((x * MB).round() as u64)),
            _ => Err(Error::definite(format!(
                "speed_limit.{key}: {shown} is not a number of MB per second"
            ))
            .with_hint(format!(
                "write a number of MB (1 MB = 1,000,000 bytes) above 0, up to {MAX_MB_PER_SECOND}, e.g. {key}: 20 or 0.5; leave it out for no limit"
            ))),
        }
    }
}

/// A parsed, validated task.
#[derive(Debug, Clone)]
pub struct TaskSpec {
    /// `[a-z0-9_-]+`, unique per target; names the checkpoint rows.
    pub name: String,
    /// Task kind.
    pub kind: Kind,
    /// Phases to run.
    pub mode: Mode,
    /// Where data comes from.
    pub source: Endpoint,
    /// Where data goes.
    pub target: Endpoint,
    /// Which tables.
    pub objects: ObjectFilter,
    /// Schema renames.
    pub rename: BTreeMap<String, String>,
    /// What to do with rows already in target tables.
    pub existing_data: ExistingData,
    /// Parallel copy workers (`None` = sized to the machine).
    pub jobs: Option<usize>,
    /// Rows per chunk for tables split by key range.
    pub chunk_rows: u64,
    /// Target connections applying the change stream in parallel (`None` = the
    /// machine's cores up to 8, 1 on two cores or fewer); 1 applies it on one connection, in commit order.
    pub apply_jobs: Option<usize>,
    /// How fast the copy and the apply may go.
    pub speed_limit: SpeedLimit,
    /// `mode: incremental` only: where to start reading a MySQL/MariaDB binlog
    /// (`binlog:file:pos`); default the source's current position.
    pub start_position: Option<crate::Position>,
    /// How the source's log kept for the task is watched.
    pub source_protection: SourceProtection,
    /// MySQL/MariaDB target: whether the rows the copy bulk-loads (the full copy's
    /// chunks, an added table's backfill) go to the target's binary log (`true`, the
    /// default: the target may have replicas of its own). `target_binlog: off` keeps
    /// them out (`sql_log_bin = 0` in those sessions), which loads faster.
    pub target_binlog: bool,
}

impl TaskSpec {
    /// Reads and validates a task file.
    pub fn from_file(path: &Path) -> Result<TaskSpec> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::definite(format!("cannot read task file {}: {e}", path.display()))
        })?;
        Self::from_yaml(&text).map_err(|e| e.context(format!("task file {}", path.display())))
    }

    /// Parses and validates task YAML.
    pub fn from_yaml(text: &str) -> Result<TaskSpec> {
        // a syntax error first, as such (deserialising straight into the spec would
        // report the first key whose value looks wrong instead)
        if let Err(e) = serde_norway::from_str::<serde_norway::Value>(text) {
            return Err(Error::definite(format!(
                "not valid YAML: {}",
                crate::redact::redact(&e.to_string())
            ))
            .with_hint("check the brackets, quotes and indentation around that line"));
        }
        let raw: RawSpec = serde_norway::from_str(text).map_err(|e| {
            Error::definite(crate::redact::redact(&e.to_string())).with_hint(
                "keys: name, kind (migration|sync|dr), mode (full|incremental|full+incremental), \
                 source, target, objects {include, exclude, rename}, existing_data \
                 (fail|drop|truncate|append), jobs, apply_jobs, chunk_rows, start_position, \
                 source_protection {max_retained_wal, sample_seconds}, speed_limit \
                 {copy_rows_per_second, copy_mb_per_second, apply_rows_per_second, \
                 apply_mb_per_second}, target_binlog (on|off)",
            )
        })?;
        if raw.name.is_empty()
            || !raw
                .name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
        {
            return Err(
                Error::definite(format!("name {:?} is not allowed", raw.name))
                    .with_hint("use lower-case letters, digits, '_' and '-' only"),
            );
        }
        if raw.name.len() > 40 {
            return Err(Error::definite(format!(
                "name {:?} is longer than 40 characters",
                raw.name
            )));
        }
        if raw.chunk_rows == Some(0) {
            return Err(Error::definite("chunk_rows must be at least 1"));
        }
        if raw.jobs == Some(0) || raw.jobs.is_some_and(|j| j > MAX_JOBS) {
            return Err(Error::definite(format!(
                "jobs must be between 1 and {MAX_JOBS}"
            )));
        }
        if raw.apply_jobs == Some(0) || raw.apply_jobs.is_some_and(|j| j > MAX_JOBS) {
            return Err(Error::definite(format!(
                "apply_jobs must be between 1 and {MAX_JOBS}"
            ))
            .with_hint("apply_jobs is how many target connections apply changes at once; leave it out to use the machine's cores"));
        }
        let source = Endpoint::parse(&raw.source, "FERRY_SOURCE_PASSWORD")
            .map_err(|e| e.context("source"))?;
        let target = Endpoint::parse(&raw.target, "FERRY_TARGET_PASSWORD")
            .map_err(|e| e.context("target"))?;
        if source.engine == Engine::Postgres && source.database.is_none() {
            return Err(
                Error::definite("source: the PostgreSQL URL names no database")
                    .with_hint("append /dbname to the URL"),
            );
        }
        if target.engine == Engine::Postgres && target.database.is_none() {
            return Err(
                Error::definite("target: the PostgreSQL URL names no database")
                    .with_hint("append /dbname to the URL"),
            );
        }
        let objects = ObjectFilter::new(&raw.objects.include, &raw.objects.exclude)?;
        let source_protection = raw.source_protection.parse()?;
        let speed_limit = match &raw.speed_limit {
            None => SpeedLimit::default(),
            Some(v) => SpeedLimit::from_value(v)?,
        };
        let target_binlog = raw.target_binlog != Some(OnOff::Off);
        if !target_binlog && target.engine != Engine::MySql {
            return Err(Error::definite(
                "target_binlog is for MySQL/MariaDB targets (their binary log)",
            )
            .with_hint("remove target_binlog: off for a PostgreSQL target"));
        }
        let start_position = match &raw.start_position {
            None => None,
            Some(p) => {
                if raw.mode != Mode::Incremental {
                    return Err(Error::definite(
                        "start_position applies to mode: incremental only",
                    )
                    .with_hint("remove start_position, or set mode: incremental"));
                }
                let p = crate::Position::parse(p).map_err(|e| {
                    e.with_hint(
                        "write it as binlog:<file>:<offset>, e.g. binlog:mariadb-bin.000003:1234",
                    )
                })?;
                if !matches!(p, crate::Position::Binlog { .. }) || source.engine != Engine::MySql {
                    return Err(Error::definite(
                        "start_position is for MySQL/MariaDB sources (binlog:<file>:<offset>); a PostgreSQL task starts at its slot",
                    ));
                }
                Some(p)
            }
        };
        Ok(TaskSpec {
            name: raw.name,
            kind: raw.kind,
            mode: raw.mode,
            source,
            target,
            objects,
            rename: raw.objects.rename,
            existing_data: raw.existing_data,
            jobs: raw.jobs,
            apply_jobs: raw.apply_jobs,
            speed_limit,
            chunk_rows: raw.chunk_rows.unwrap_or(200_000),
            start_position,
            source_protection,
            target_binlog,
        })
    }

    /// The same task the other way round, as a DR switchover continues it: the old
    /// target is the source, the old source the target, streaming changes only from
    /// the new source's current position (its data is already on both sides).
    pub fn reversed(&self) -> TaskSpec {
        TaskSpec {
            source: self.target.clone(),
            target: self.source.clone(),
            mode: Mode::Incremental,
            start_position: None,
            target_binlog: true,
            ..self.clone()
        }
    }
}

/// The stored text of a task file turned the other way round, as
/// [`TaskSpec::reversed`] turns the parsed spec: `source` and `target` swapped,
/// `mode: incremental`, no `start_position`. Other keys stay as they were (the
/// stored text is what the user sees of the task after a switchover).
pub fn reverse_spec_text(yaml: &str) -> Result<String> {
    let mut doc: serde_norway::Value = serde_norway::from_str(yaml).map_err(|e| {
        Error::definite(format!(
            "not valid YAML: {}",
            crate::redact::redact(&e.to_string())
        ))
    })?;
    if let serde_norway::Value::Mapping(m) = &mut doc {
        let (s, d) = (m.get("source").cloned(), m.get("target").cloned());
        if let (Some(s), Some(d)) = (s, d) {
            m.insert("source".into(), d);
            m.insert("target".into(), s);
        }
        m.insert("mode".into(), "incremental".into());
        m.remove("start_position");
        // about the old target's binary log, which is the source now
        m.remove("target_binlog");
    }
    serde_norway::to_string(&doc).map_err(|e| Error::definite(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHOP: &str = r#"
name: shop
kind: migration
mode: full
source: mysql://root:secret@127.0.0.1:3306/shop
target: postgres://postgres@127.0.0.1:5432/shop
objects:
  include: ["shop.*"]
  exclude: ["shop.audit_*"]
  rename: { shop: store }
"#;

    #[test]
    fn yaml_syntax_errors_are_named_as_such() {
        let e = TaskSpec::from_yaml("name: x\nkind: [migration\nmode: full\n").unwrap_err();
        assert!(e.message.starts_with("not valid YAML"), "{}", e.message);
        assert!(e.message.contains("line"), "{}", e.message);
    }

    #[test]
    fn parses_the_documented_example() {
        let t = TaskSpec::from_yaml(SHOP).unwrap();
        assert_eq!(t.name, "shop");
        assert_eq!(t.mode, Mode::Full);
        assert_eq!(t.source.engine, Engine::MySql);
        assert_eq!(t.source.password.as_deref(), Some("secret"));
        assert_eq!(t.target.database.as_deref(), Some("shop"));
        assert_eq!(t.rename["shop"], "store");
        assert!(t.objects.matches("shop", "orders"));
        assert!(!t.objects.matches("shop", "audit_log"));
        assert_eq!(t.existing_data, ExistingData::Fail);
    }

    #[test]
    fn endpoints_carry_their_tls_settings() {
        use crate::tls::{RootCerts, TlsMode};
        let e = Endpoint::parse(
            "postgres://app:pw@db:5432/shop?sslmode=verify-full&sslrootcert=/ca.pem",
            "FERRY_TEST_UNSET_PASSWORD",
        )
        .unwrap();
        assert_eq!(e.tls.mode, TlsMode::VerifyFull);
        assert_eq!(e.tls.root_cert, Some(RootCerts::File("/ca.pem".into())));
        assert_eq!(e.database.as_deref(), Some("shop"));
        let e = Endpoint::parse("mysql://root@db/x", "FERRY_TEST_UNSET_PASSWORD").unwrap();
        assert_eq!(e.tls.mode, TlsMode::Prefer);
        let err = Endpoint::parse(
            "mysql://root:secret@db/x?sslmode=require",
            "FERRY_TEST_UNSET_PASSWORD",
        )
        .unwrap_err();
        assert!(err.message.contains("takes ssl-mode"), "{err}");
        assert!(!err.message.contains("secret"), "{err}");
    }

    #[test]
    fn never_prints_passwords() {
        let t = TaskSpec::from_yaml(SHOP).unwrap();
        assert!(!format!("{:?} {}", t.source, t.source).contains("secret"));
        let bad = SHOP.replace("mode: full", "mode: fast");
        let e = TaskSpec::from_yaml(&bad).unwrap_err().to_string();
        assert!(!e.contains("secret"), "{e}");
        assert!(e.contains("mode"), "{e}");
    }

    #[test]
    fn refuses_unknown_keys_and_bad_names() {
        let e = TaskSpec::from_yaml(&format!("{SHOP}\nsurce: x\n")).unwrap_err();
        assert!(e.to_string().contains("surce"), "{e}");
        let e = TaskSpec::from_yaml(&SHOP.replace("name: shop", "name: Shop!")).unwrap_err();
        assert!(e.to_string().contains("not allowed"));
        let e = TaskSpec::from_yaml(&SHOP.replace("mysql://", "oracle://")).unwrap_err();
        assert!(e.to_string().contains("oracle"), "{e}");
    }

    const DR: &str = r#"
name: standby
kind: dr
mode: incremental
source: mysql://root:secret@127.0.0.1:3306/shop
target: mysql://root@127.0.0.1:3307/shop
start_position: binlog:mariadb-bin.000003:1234
chunk_rows: 500
objects:
  include: ["shop.*"]
"#;

    #[test]
    fn reversed_swaps_the_ends_and_streams_only() {
        let t = TaskSpec::from_yaml(&SHOP.replace("mode: full", "mode: full+incremental")).unwrap();
        let r = t.reversed();
        assert_eq!(r.source.to_string(), t.target.to_string());
        assert_eq!(r.target.to_string(), t.source.to_string());
        assert_eq!(r.source.engine, Engine::Postgres);
        assert_eq!(r.target.password.as_deref(), Some("secret"));
        assert_eq!(r.mode, Mode::Incremental);
        assert_eq!(
            (r.name.as_str(), r.kind, r.chunk_rows),
            ("shop", t.kind, t.chunk_rows)
        );
        assert_eq!(r.rename, t.rename);
        assert!(r.objects.matches("shop", "orders"));
        let d = TaskSpec::from_yaml(DR).unwrap();
        assert!(d.start_position.is_some());
        assert!(d.reversed().start_position.is_none());
    }

    #[test]
    fn the_stored_text_is_reversed_like_the_spec() {
        let text = reverse_spec_text(DR).unwrap();
        let r = TaskSpec::from_yaml(&text).unwrap();
        let d = TaskSpec::from_yaml(DR).unwrap().reversed();
        assert_eq!(r.source.to_string(), d.source.to_string());
        assert_eq!(r.target.to_string(), d.target.to_string());
        assert_eq!(r.source.port, 3307);
        assert_eq!(r.target.password.as_deref(), Some("secret"));
        assert_eq!(r.mode, Mode::Incremental);
        assert!(r.start_position.is_none());
        assert!(!text.contains("start_position"), "{text}");
        assert_eq!(
            (r.name, r.kind, r.chunk_rows),
            ("standby".to_string(), Kind::Dr, 500)
        );
        // twice is the way it was
        let back = TaskSpec::from_yaml(&reverse_spec_text(&text).unwrap()).unwrap();
        assert_eq!(back.source.port, 3306);
        let e = reverse_spec_text("name: [x\n").unwrap_err();
        assert!(e.message.starts_with("not valid YAML"), "{}", e.message);
    }

    #[test]
    fn target_binlog_is_on_unless_turned_off_for_a_mysql_target() {
        let my = SHOP.replace(
            "postgres://postgres@127.0.0.1:5432/shop",
            "mysql://root@127.0.0.1:3307/shop",
        );
        assert!(TaskSpec::from_yaml(&my).unwrap().target_binlog);
        let off = TaskSpec::from_yaml(&format!("{my}target_binlog: off\n")).unwrap();
        assert!(!off.target_binlog);
        assert!(
            TaskSpec::from_yaml(&format!("{my}target_binlog: on\n"))
                .unwrap()
                .target_binlog
        );
        let e = TaskSpec::from_yaml(&format!("{my}target_binlog: maybe\n")).unwrap_err();
        assert!(
            e.hint
                .as_deref()
                .unwrap_or_default()
                .contains("target_binlog"),
            "{e:?}"
        );
        let e = TaskSpec::from_yaml(&format!("{SHOP}target_binlog: off\n")).unwrap_err();
        assert!(e.message.contains("MySQL/MariaDB targets"), "{}", e.message);
        // reversed, the old target is the source: the setting is dropped
        let text = reverse_spec_text(&format!("{my}target_binlog: off\n")).unwrap();
        assert!(TaskSpec::from_yaml(&text).unwrap().target_binlog);
        assert!(off.reversed().target_binlog);
    }

    #[test]
    fn source_protection_takes_a_size_and_a_sampling_period() {
        let base = "name: t\nkind: migration\nmode: incremental\nsource: postgres://u@h/db\ntarget: postgres://u@h/db2\n";
        let t = TaskSpec::from_yaml(base).unwrap();
        assert_eq!(t.source_protection.max_retained_wal, None);
        assert_eq!(t.source_protection.sample_seconds, 30);
        let t = TaskSpec::from_yaml(&format!(
            "{base}source_protection: {{max_retained_wal: 10GB, sample_seconds: 5}}\n"
        ))
        .unwrap();
        assert_eq!(t.source_protection.max_retained_wal, Some(10_000_000_000));
        assert_eq!(t.source_protection.sample_seconds, 5);
        let t = TaskSpec::from_yaml(&format!(
            "{base}source_protection: {{max_retained_wal: 4096}}\n"
        ))
        .unwrap();
        assert_eq!(t.source_protection.max_retained_wal, Some(4096));
        for bad in [
            "max_retained_wal: lots",
            "sample_seconds: 0",
            "max_wal: 1GB",
        ] {
            let e =
                TaskSpec::from_yaml(&format!("{base}source_protection: {{{bad}}}\n")).unwrap_err();
            assert!(
                e.message.contains("source_protection") || e.message.contains("unknown field"),
                "{bad}: {e}"
            );
        }
        assert_eq!(parse_size("512 MB"), Some(512_000_000));
        assert_eq!(parse_size("1MiB"), Some(1_048_576));
        assert_eq!(parse_size("1.5GB"), Some(1_500_000_000));
        assert_eq!(parse_size("0"), None);
        assert_eq!(parse_size("-1GB"), None);
    }

    #[test]
    fn speed_limits_are_read_and_bad_values_named() {
        let base = "name: t\nkind: migration\nmode: full\nsource: postgres://u@h/db\ntarget: postgres://u@h/db2\n";
        assert!(TaskSpec::from_yaml(base)
            .unwrap()
            .speed_limit
            .is_unlimited());
        let t = TaskSpec::from_yaml(&format!(
            "{base}speed_limit:\n  copy_rows_per_second: 2000\n  copy_mb_per_second: 0.5\n  apply_rows_per_second: 300\n  apply_mb_per_second: 20\n"
        ))
        .unwrap();
        assert_eq!(
            t.speed_limit,
            SpeedLimit {
                copy_rows_per_second: Some(2000),
                copy_bytes_per_second: Some(500_000),
                apply_rows_per_second: Some(300),
                apply_bytes_per_second: Some(20_000_000),
            }
        );
        // written back, read again: the same limits
        let mut doc: serde_norway::Value = serde_norway::from_str(base).unwrap();
        doc.as_mapping_mut()
            .unwrap()
            .insert("speed_limit".into(), t.speed_limit.to_value());
        let again = TaskSpec::from_yaml(&serde_norway::to_string(&doc).unwrap()).unwrap();
        assert_eq!(again.speed_limit, t.speed_limit);
        // null = no limit
        let t = TaskSpec::from_yaml(&format!(
            "{base}speed_limit: {{copy_rows_per_second: null}}\n"
        ))
        .unwrap();
        assert!(t.speed_limit.is_unlimited());
        for (bad, key, says) in [
            (
                "copy_rows_per_second: 0",
                "speed_limit.copy_rows_per_second",
                "whole number",
            ),
            (
                "copy_rows_per_second: -5",
                "speed_limit.copy_rows_per_second",
                "whole number",
            ),
            (
                "copy_rows_per_second: 1.5",
                "speed_limit.copy_rows_per_second",
                "whole number",
            ),
            (
                "apply_rows_per_second: fast",
                "speed_limit.apply_rows_per_second",
                "whole number",
            ),
            (
                "copy_mb_per_second: 0",
                "speed_limit.copy_mb_per_second",
                "MB",
            ),
            (
                "apply_mb_per_second: 20MB",
                "speed_limit.apply_mb_per_second",
                "MB",
            ),
            (
                "apply_mb_per_second: 1e9",
                "speed_limit.apply_mb_per_second",
                "MB",
            ),
            (
                "copy_rows_per_sec: 10",
                "copy_rows_per_sec",
                "copy_rows_per_second",
            ),
        ] {
            let e = TaskSpec::from_yaml(&format!("{base}speed_limit: {{{bad}}}\n")).unwrap_err();
            let text = e.to_string();
            assert!(text.contains(key), "{bad}: {text}");
            assert!(text.contains(says), "{bad}: {text}");
        }
        let e = TaskSpec::from_yaml(&format!("{base}speed_limit: 100\n")).unwrap_err();
        assert!(
            e.to_string().contains("speed_limit must be a mapping"),
            "{e}"
        );
        // the hint of an unknown top-level key lists speed_limit and its keys
        let e = TaskSpec::from_yaml(&format!("{base}speed_limits: {{}}\n")).unwrap_err();
        assert!(e.to_string().contains("apply_mb_per_second"), "{e}");
    }

    /// A `+` or `&` written as is in a URL's password is part of the password (form
    /// decoding turned `+` into a space and cut the password at `&`).
    #[test]
    fn a_plus_or_ampersand_in_the_password_is_kept() {
        let e =
            Endpoint::parse("mysql://u+x:a+b&c=d@h/d+b", "FERRY_TEST_NO_SUCH_VARIABLE").unwrap();
        assert_eq!(e.password.as_deref(), Some("a+b&c=d"));
        assert_eq!(e.user, "u+x");
        assert_eq!(e.database.as_deref(), Some("d+b"));
        let e = Endpoint::parse(
            "mysql://u:%2B%26%25%E2%82%AC%zz@h/db",
            "FERRY_TEST_NO_SUCH_VARIABLE",
        )
        .unwrap();
        assert_eq!(e.password.as_deref(), Some("+&%€%zz"));
        assert_eq!(decode_url_part("%"), "%");
        assert_eq!(decode_url_part("a%4"), "a%4");
        assert_eq!(decode_url_part("%+1"), "%+1");
    }
}
