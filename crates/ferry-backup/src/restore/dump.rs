//! Importing a standard dump file (`mysqldump` / `mariadb-dump` SQL, `pg_dump` plain
//! SQL or custom format) from storage with the engine's own client: the dump's
//! statements are the engine's, and its client is what runs them faithfully. The
//! password goes to the client in its environment (MYSQL_PWD / PGPASSWORD), never on
//! its command line, where every user of the machine could read it.

use super::{failed, RestorePlan, RestoreReport, RestoreRequest, TableRestore};
use crate::storage::Storage;
use ferry_core::select::ObjectFilter;
use ferry_core::{Endpoint, Engine, Error, ExistingData, Result};
use ferry_engine::conn::Conn;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// What a dump file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DumpFormat {
    /// `mysqldump` / `mariadb-dump` SQL.
    MySqlSql,
    /// `pg_dump` plain SQL.
    PgSql,
    /// `pg_dump -Fc` (custom format archive).
    PgCustom,
}

impl DumpFormat {
    /// The engine the dump is of.
    pub fn engine(self) -> Engine {
        match self {
            DumpFormat::MySqlSql => Engine::MySql,
            DumpFormat::PgSql | DumpFormat::PgCustom => Engine::Postgres,
        }
    }

    fn describe(self) -> &'static str {
        match self {
            DumpFormat::MySqlSql => "a MySQL/MariaDB SQL dump",
            DumpFormat::PgSql => "a pg_dump plain SQL dump",
            DumpFormat::PgCustom => "a pg_dump custom-format archive",
        }
    }
}

/// Recognises a dump by its first bytes.
pub fn detect(head: &[u8]) -> Option<DumpFormat> {
    if head.starts_with(b"PGDMP") {
        return Some(DumpFormat::PgCustom);
    }
    let text = String::from_utf8_lossy(&head[..head.len().min(8192)]);
    if text.contains("-- MariaDB dump") || text.contains("-- MySQL dump") {
        return Some(DumpFormat::MySqlSql);
    }
    if text.contains("-- PostgreSQL database dump") {
        return Some(DumpFormat::PgSql);
    }
    None
}

/// The storage holding the dump and the file's path in it: the URL's parent
/// directory is the storage (its query, an S3 endpoint and region, kept).
pub fn split_url(url: &str) -> Result<(String, String)> {
    let bad = || {
        failed(
            format!("dump URL {url:?} names no file"),
            "give the dump file's URL: file:///dir/shop.sql, /dir/shop.dump or s3://bucket/dumps/shop.sql?endpoint=…",
        )
    };
    if url.starts_with('/') {
        let p = Path::new(url);
        let name = p
            .file_name()
            .ok_or_else(bad)?
            .to_string_lossy()
            .into_owned();
        let dir = p.parent().ok_or_else(bad)?.to_string_lossy().into_owned();
        return Ok((dir, name));
    }
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let (dir, name) = base.rsplit_once('/').ok_or_else(bad)?;
    if name.is_empty() || dir.ends_with(':') || dir.ends_with(":/") {
        return Err(bad());
    }
    let dir = match query {
        Some(q) => format!("{dir}?{q}"),
        None => dir.to_string(),
    };
    Ok((dir, name.to_string()))
}

/// A temporary file removed when dropped.
struct TempFile(PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Fetches the dump into a temporary file (the clients read files); its format.
async fn fetch(url: &str) -> Result<(TempFile, DumpFormat)> {
    let (dir, name) = split_url(url)?;
    let storage = Storage::open(&dir).map_err(|e| {
        failed(
            format!("dump {url}: its storage cannot be opened: {}", e.message),
            e.hint.as_deref().unwrap_or("check the URL"),
        )
    })?;
    let bytes = match storage.get(&name).await {
        Ok(Some(b)) => b,
        Ok(None) => {
            return Err(failed(
                format!("dump {url}: the file is missing"),
                "check the URL: the file must exist in the storage",
            ))
        }
        Err(e) => {
            return Err(failed(
                format!("dump {url}: cannot be read: {}", e.message),
                e.hint
                    .as_deref()
                    .unwrap_or("check the storage and its credentials"),
            ))
        }
    };
    let Some(format) = detect(&bytes) else {
        return Err(failed(
            format!("dump {url}: not a dump Ferry can import (neither mysqldump/mariadb-dump SQL nor pg_dump plain SQL or custom format)"),
            "make the dump with mariadb-dump / mysqldump, or pg_dump (plain or -Fc); a directory or tar pg_dump format is not supported",
        ));
    };
    let path = std::env::temp_dir().join(format!(
        "ferry-dump-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default()
    ));
    let tmp = TempFile(path.clone());
    tokio::fs::write(&path, &bytes)
        .await
        .map_err(|e| Error::definite(format!("writing the dump to {}: {e}", path.display())))?;
    Ok((tmp, format))
}

/// The client program importing `format`, and the Debian package that has it.
fn client(format: DumpFormat) -> (&'static [&'static str], &'static str) {
    match format {
        DumpFormat::MySqlSql => (&["mariadb", "mysql"], "mariadb-client (or mysql-client)"),
        DumpFormat::PgSql => (&["psql"], "postgresql-client"),
        DumpFormat::PgCustom => (&["pg_restore"], "postgresql-client"),
    }
}

/// The first of `names` found on PATH.
fn find_program(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    for n in names {
        for dir in std::env::split_paths(&path) {
            let p = dir.join(n);
            if p.is_file() {
                return Some(p);
            }
        }
    }
    None
}

fn check_engine(req: &RestoreRequest, url: &str, format: DumpFormat) -> Result<()> {
    if format.engine() != req.target.engine {
        return Err(failed(
            format!(
                "dump {url} is {} but the target is {}: cross-engine dump import is not supported",
                format.describe(),
                req.target.engine
            ),
            &format!(
                "restore it into a {} database, then migrate from there with `ferry run`",
                format.engine()
            ),
        ));
    }
    if req.target.database.is_none() {
        return Err(failed(
            format!("target {} names no database", req.target),
            "name the database to import into in the --target URL",
        ));
    }
    Ok(())
}

/// Tables of the target database (outside the system schemas), with whether they
/// have rows; an absent database has none.
async fn target_tables(target: &Endpoint) -> Result<Vec<(ferry_core::TableId, u64)>> {
    let Ok(mut c) = Conn::connect(target).await else {
        return Ok(Vec::new());
    };
    let tables = c
        .tables(&ObjectFilter::default(), target.database.as_deref())
        .await?;
    let mut out = Vec::new();
    for t in tables {
        if t.id.schema == "ferry" {
            continue;
        }
        let (n, _) = c.key_stats(&t.id, None).await?;
        out.push((t.id, n));
    }
    Ok(out)
}

/// The precheck of a dump import: the file there and recognised, of the target's
/// engine, its client installed, the target reachable and empty.
pub async fn precheck_dump(req: &RestoreRequest, url: &str) -> Result<RestorePlan> {
    let (_tmp, format) = fetch(url).await?;
    check_engine(req, url, format)?;
    let (names, package) = client(format);
    if find_program(names).is_none() {
        return Err(failed(
            format!(
                "importing {} needs the `{}` client, which is not installed",
                format.describe(),
                names[0]
            ),
            &format!("install the Debian package {package} (apt-get install {package})"),
        ));
    }
    let mut warnings = Vec::new();
    let spec = super::restore_spec(req, format.engine());
    let (_, missing) = Conn::open_target_or_server(&spec).await.map_err(|e| {
        failed(
            format!("target {} cannot be reached: {}", req.target, e.message),
            "check the --target URL, that the server runs and that the user may log in",
        )
    })?;
    if let Some(db) = missing {
        warnings.push(format!(
            "the target database {db} does not exist yet: the restore creates it"
        ));
    } else if req.existing_data == ExistingData::Fail {
        let occupied = target_tables(&req.target).await?;
        if !occupied.is_empty() {
            return Err(Error::definite(format!(
                "target not empty: {}",
                occupied
                    .iter()
                    .map(|(t, n)| format!("{t} ({n} rows)"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
            .with_hint("--existing-data drop or restore into an empty database"));
        }
    }
    Ok(RestorePlan {
        chain: Vec::new(),
        tables: Vec::new(),
        warnings,
        ..Default::default()
    })
}

/// Imports the dump at `url` into `req.target` with the engine's client, then
/// reports the rows of every table.
pub async fn import_dump(
    req: &RestoreRequest,
    url: &str,
    progress: &(dyn Fn(&[TableRestore]) + Sync),
) -> Result<RestoreReport> {
    let started = Instant::now();
    let (tmp, format) = fetch(url).await?;
    check_engine(req, url, format)?;
    let mut warnings = Vec::new();
    let spec = super::restore_spec(req, format.engine());
    if let Some(w) = ferry_engine::conn::ensure_target_database(&spec).await? {
        warnings.push(w);
    }
    if format.engine() == Engine::Postgres {
        let (c, _) = Conn::open_target_or_server(&spec).await?;
        drop(c);
        ensure_pg_database(&req.target).await?;
    }
    if req.existing_data == ExistingData::Drop || req.existing_data == ExistingData::Truncate {
        let mut c = Conn::connect(&req.target).await?;
        let tables: Vec<ferry_core::TableId> = target_tables(&req.target)
            .await?
            .into_iter()
            .map(|(t, _)| t)
            .collect();
        if !tables.is_empty() {
            let refs: Vec<&ferry_core::TableId> = tables.iter().collect();
            c.connector()
                .clear_tables(&mut *c, &refs, true)
                .await
                .map_err(|e| e.context("existing_data: drop of the target's tables"))?;
        }
    }
    let (names, package) = client(format);
    let program = find_program(names).ok_or_else(|| {
        failed(
            format!("the `{}` client is not installed", names[0]),
            &format!("install the Debian package {package}"),
        )
    })?;
    let t = &req.target;
    let db = t.database.clone().unwrap_or_default();
    let mut cmd = tokio::process::Command::new(&program);
    cmd.kill_on_drop(true);
    match format {
        DumpFormat::MySqlSql => {
            cmd.arg("--no-defaults")
                .arg(format!("--user={}", t.user))
                .arg("--default-character-set=utf8mb4");
            match &t.socket {
                Some(s) => cmd.arg(format!("--socket={s}")),
                None => cmd
                    .arg("--protocol=TCP")
                    .arg(format!("--host={}", t.host))
                    .arg(format!("--port={}", t.port)),
            };
            cmd.arg(&db);
            cmd.stdin(std::fs::File::open(&tmp.0).map_err(|e| {
                Error::definite(format!("reading the dump {}: {e}", tmp.0.display()))
            })?);
            if let Some(p) = &t.password {
                cmd.env("MYSQL_PWD", p);
            }
        }
        DumpFormat::PgSql | DumpFormat::PgCustom => {
            let host = t.socket.clone().unwrap_or_else(|| t.host.clone());
            if format == DumpFormat::PgSql {
                cmd.args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "--single-transaction"]);
            } else {
                cmd.args(["--no-owner", "--no-privileges", "--exit-on-error"]);
            }
            cmd.arg("-h")
                .arg(host)
                .arg("-p")
                .arg(t.port.to_string())
                .arg("-U")
                .arg(&t.user)
                .arg("-d")
                .arg(&db);
            if format == DumpFormat::PgSql {
                cmd.arg("-f").arg(&tmp.0);
            } else {
                cmd.arg(&tmp.0);
            }
            cmd.env_remove("PGPASSWORD");
            if let Some(p) = &t.password {
                cmd.env("PGPASSWORD", p);
            }
        }
    }
    cmd.stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    let out = cmd
        .output()
        .await
        .map_err(|e| Error::definite(format!("running {}: {e}", program.display())))?;
    drop(tmp);
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let err: String = err.lines().take(20).collect::<Vec<_>>().join("\n  ");
        return Err(Error::definite(format!(
            "{} failed importing the dump into {} ({}):\n  {err}",
            program.display(),
            req.target,
            out.status
        ))
        .with_hint("fix what the client reports (a dump of another server version may need edits), empty the target and run the restore again"));
    }
    let mut tables = Vec::new();
    let mut rows = 0;
    for (t, n) in target_tables(&req.target).await? {
        if !req.objects.matches(&t.schema, &t.name) {
            continue;
        }
        rows += n;
        tables.push(TableRestore {
            table: t.to_string(),
            rows_done: n,
            rows_total: n,
            done: true,
        });
    }
    progress(&tables);
    Ok(RestoreReport {
        tables,
        rows,
        seconds: started.elapsed().as_secs_f64(),
        resumed: false,
        files_skipped: 0,
        differences: Vec::new(),
        warnings,
    })
}

/// Creates the PostgreSQL database the target names when the server lacks it.
async fn ensure_pg_database(target: &Endpoint) -> Result<()> {
    if Conn::connect(target).await.is_ok() {
        return Ok(());
    }
    let db = target.database.clone().unwrap_or_default();
    let mut c = Conn::connect(&target.with_database("postgres")).await?;
    let sql = format!("CREATE DATABASE {}", c.ident(&db));
    c.exec(&sql).await.map_err(|e| {
        e.context(format!("creating the target database {db}"))
            .with_hint("create the database yourself, or grant the user CREATEDB")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dumps_are_told_apart_by_their_head() {
        assert_eq!(detect(b"PGDMP\x01\x0e"), Some(DumpFormat::PgCustom));
        assert_eq!(
            detect(b"-- MariaDB dump 10.19  Distrib 10.11.6-MariaDB\n"),
            Some(DumpFormat::MySqlSql)
        );
        assert_eq!(
            detect(b"/*!999999\\- enable the sandbox mode */ \n-- MariaDB dump 10.19\n"),
            Some(DumpFormat::MySqlSql)
        );
        assert_eq!(
            detect(b"--\n-- PostgreSQL database dump\n--\n"),
            Some(DumpFormat::PgSql)
        );
        assert_eq!(detect(b"hello"), None);
    }

    #[test]
    fn a_dump_url_is_its_storage_and_file() {
        assert_eq!(
            split_url("file:///tmp/d/shop.sql").unwrap(),
            ("file:///tmp/d".into(), "shop.sql".into())
        );
        assert_eq!(
            split_url("/tmp/d/shop.dump").unwrap(),
            ("/tmp/d".into(), "shop.dump".into())
        );
        assert_eq!(
            split_url("s3://b/dumps/shop.sql?endpoint=http://127.0.0.1:9000&region=x").unwrap(),
            (
                "s3://b/dumps?endpoint=http://127.0.0.1:9000&region=x".into(),
                "shop.sql".into()
            )
        );
        assert!(split_url("s3://bucket").is_err());
    }
}
