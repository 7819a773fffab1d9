//! Restoring a backup set chain, or a dump file, into a database.
//!
//! A restore is "a full copy whose source is a backup set": the engine's target side
//! does the work — tables created without keys, each data file bulk-loaded and
//! committed with its done mark in one target transaction (so an interrupted restore
//! of the same name resumes and never restores a file twice), keys built per table
//! once its data is in, then the chain's changes files applied in order (each in one
//! transaction with its done mark), foreign keys last, then the restored tables
//! compared with the set's own digests.
//!
//! - [`precheck`](mod@precheck) — the chain, every file's size and SHA-256, the
//!   format, the target and the type mapping;
//! - [`set`] — the restore of a set chain;
//! - [`changes`] — applying an incremental's net changes;
//! - [`compare`] — the restored tables against the set's digests;
//! - [`dump`] — importing a `mysqldump` / `pg_dump` file with the native client.

pub mod changes;
pub mod compare;
pub mod dump;
pub mod pitr;
pub mod precheck;
pub mod set;

use crate::manifest::Manifest;
use crate::repo::Repo;
use ferry_core::select::ObjectFilter;
use ferry_core::{Endpoint, Engine, Error, ExistingData, Result, TableId, TaskSpec};

/// Where a restore reads from.
#[derive(Debug, Clone)]
pub enum RestoreFrom {
    /// A set id (an incremental brings its chain).
    Set(String),
    /// A dump file's storage URL (mysqldump / mariadb-dump SQL, pg_dump plain SQL or
    /// custom format).
    Dump(String),
    /// A cluster restored to a point in time: its newest set chain before the
    /// point plus the log archive up to it ([`pitr`]).
    PointInTime {
        /// The cluster.
        cluster: String,
        /// Where to stop.
        until: crate::log::RestorePoint,
    },
}

/// A restore.
#[derive(Debug, Clone)]
pub struct RestoreRequest {
    /// Its name: the checkpoints on the target that make it resumable.
    pub name: String,
    /// What to restore.
    pub from: RestoreFrom,
    /// Into which database.
    pub target: Endpoint,
    /// Which tables.
    pub objects: ObjectFilter,
    /// Tables already on the target.
    pub existing_data: ExistingData,
    /// Parallel writers.
    pub jobs: usize,
    /// No progress display.
    pub quiet: bool,
}

/// What a precheck found restorable.
#[derive(Debug, Clone, Default)]
pub struct RestorePlan {
    /// The sets applied, full first (empty for a dump).
    pub chain: Vec<Manifest>,
    /// The tables restored (target names).
    pub tables: Vec<TableId>,
    /// What the user should know.
    pub warnings: Vec<String>,
    /// A point-in-time restore: the archived pieces replayed after the chain, in
    /// order (empty otherwise).
    pub pieces: Vec<crate::log::PieceEntry>,
    /// A point-in-time restore: the point, resolved (a mark to its position).
    pub until: Option<crate::log::RestorePoint>,
}

/// One table's progress.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct TableRestore {
    /// Target table.
    pub table: String,
    /// Rows restored so far.
    pub rows_done: u64,
    /// Rows to restore.
    pub rows_total: u64,
    /// Finished (data, keys, changes).
    pub done: bool,
}

/// What a restore did.
#[derive(Debug, Clone, Default)]
pub struct RestoreReport {
    /// Per table.
    pub tables: Vec<TableRestore>,
    /// Rows restored in this run.
    pub rows: u64,
    /// Wall time of this run.
    pub seconds: f64,
    /// Resumed an interrupted restore.
    pub resumed: bool,
    /// Files an interrupted run had restored, skipped.
    pub files_skipped: usize,
    /// Tables whose restored rows differ from the set's digests (empty: equal).
    pub differences: Vec<String>,
    /// What the user should know.
    pub warnings: Vec<String>,
}

/// Checks that `req` can be restored: every file there and intact, the format and
/// version readable, the target empty where it must be, every type mappable. An
/// error is the precheck's failure, naming what and how to fix it.
pub async fn precheck(repo: Option<&Repo>, req: &RestoreRequest) -> Result<RestorePlan> {
    match &req.from {
        RestoreFrom::Set(id) => {
            let repo = repo.ok_or_else(|| {
                Error::definite(format!("restore {}: set {id} needs a repository", req.name))
                    .with_hint("name the repository with --storage")
            })?;
            precheck::precheck_set(repo, req, id).await
        }
        RestoreFrom::Dump(url) => dump::precheck_dump(req, url).await,
        RestoreFrom::PointInTime { cluster, until } => {
            let repo = repo.ok_or_else(|| {
                Error::definite(format!(
                    "restore {}: cluster {cluster}'s archive needs a repository",
                    req.name
                ))
                .with_hint("name the repository with --storage")
            })?;
            pitr::precheck_pitr(repo, req, cluster, until).await
        }
    }
}

/// Restores what `plan` holds (after [`precheck`]), resuming an interrupted restore
/// of the same name; `progress` is told of per-table progress as it goes.
pub async fn run_restore(
    repo: Option<&Repo>,
    req: &RestoreRequest,
    plan: RestorePlan,
    progress: &(dyn Fn(&[TableRestore]) + Sync),
) -> Result<RestoreReport> {
    match &req.from {
        RestoreFrom::Set(id) => {
            let repo = repo.ok_or_else(|| {
                Error::definite(format!("restore {}: set {id} needs a repository", req.name))
                    .with_hint("name the repository with --storage")
            })?;
            set::restore_set(repo, req, plan, progress).await
        }
        RestoreFrom::Dump(url) => dump::import_dump(req, url, progress).await,
        RestoreFrom::PointInTime { cluster, .. } => {
            let repo = repo.ok_or_else(|| {
                Error::definite(format!(
                    "restore {}: cluster {cluster}'s archive needs a repository",
                    req.name
                ))
                .with_hint("name the repository with --storage")
            })?;
            pitr::restore_pitr(repo, req, plan, progress).await
        }
    }
}

/// The engine a manifest's `engine` names.
pub fn manifest_engine(m: &Manifest) -> Result<Engine> {
    match m.engine.as_str() {
        "postgres" | "postgresql" => Ok(Engine::Postgres),
        "mysql" | "mariadb" => Ok(Engine::MySql),
        other => Err(
            Error::definite(format!("set {}: unknown source engine {other:?}", m.id))
                .with_hint("restore it with a newer Ferry"),
        ),
    }
}

/// The task a restore runs as on the target: the engine's copy machinery (names,
/// DDL plans, checkpoints) is built around a task. Its source is never connected:
/// it only says which engine the set's rows and types come from.
pub fn restore_spec(req: &RestoreRequest, from: Engine) -> TaskSpec {
    let mut source = req.target.clone();
    source.engine = from;
    source.database = None;
    TaskSpec {
        name: req.name.clone(),
        kind: ferry_core::spec::Kind::Migration,
        mode: ferry_core::spec::Mode::Full,
        source,
        target: req.target.clone(),
        objects: req.objects.clone(),
        rename: Default::default(),
        existing_data: req.existing_data,
        jobs: Some(req.jobs.max(1)),
        apply_jobs: Some(1),
        speed_limit: Default::default(),
        target_binlog: true,
        chunk_rows: 100_000,
        start_position: None,
        source_protection: Default::default(),
    }
}

/// The default restore name for set `id` (checkpoint names are `[a-z0-9_-]+`).
pub fn default_name(id: &str) -> String {
    let mut n: String = format!("restore-{}", id.to_lowercase())
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    n.truncate(60);
    n
}

/// A precheck failure: `what` is wrong, `fix` says how to put it right.
pub(crate) fn failed(what: impl Into<String>, fix: &str) -> Error {
    Error::definite(what.into()).with_hint(fix)
}

/// Rows of a set read from a PostgreSQL source carry arrays as JSON (the form that
/// travels to engines without arrays); a PostgreSQL target of a PostgreSQL set
/// gets them back in PostgreSQL's own array text, as the change stream sends them
/// there. `array_columns` are the positions of the array-typed columns.
pub(crate) fn native_arrays(row: &mut [ferry_core::Value], array_columns: &[usize]) {
    for &i in array_columns {
        if let Some(ferry_core::Value::Json(j)) = row.get(i) {
            if let Ok(v @ serde_json::Value::Array(_)) =
                serde_json::from_str::<serde_json::Value>(j)
            {
                row[i] = ferry_core::Value::Text(pg_array_text(&v));
            }
        }
    }
}

/// PostgreSQL array text of a JSON array (`[1,null,"a b"]` → `{1,NULL,"a b"}`).
fn pg_array_text(v: &serde_json::Value) -> String {
    use serde_json::Value as J;
    fn quote(s: &str) -> String {
        format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
    }
    match v {
        J::Array(items) => format!(
            "{{{}}}",
            items
                .iter()
                .map(pg_array_text)
                .collect::<Vec<_>>()
                .join(",")
        ),
        J::Null => "NULL".into(),
        J::Bool(b) => if *b { "t" } else { "f" }.into(),
        J::Number(n) => n.to_string(),
        J::String(s) => quote(s),
        J::Object(_) => quote(&v.to_string()),
    }
}

/// The positions (among copied columns) of `t`'s array columns, when arrays are
/// restored in PostgreSQL's own form (a PostgreSQL set into PostgreSQL).
pub(crate) fn array_columns(t: &ferry_core::Table, from: Engine, to: Engine) -> Vec<usize> {
    if from != Engine::Postgres || to != Engine::Postgres {
        return Vec::new();
    }
    t.copied_columns()
        .enumerate()
        .filter(|(_, c)| matches!(c.logical, ferry_core::LogicalType::Array(_)))
        .map(|(i, _)| i)
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn json_arrays_become_postgres_array_text() {
        let v: serde_json::Value = serde_json::from_str(r#"[[1,null],[2.5,3]]"#).unwrap();
        assert_eq!(super::pg_array_text(&v), "{{1,NULL},{2.5,3}}");
        let v: serde_json::Value =
            serde_json::from_str(r#"["a b","c\"d",null,"NULL","x\\y",true,{"k":1}]"#).unwrap();
        assert_eq!(
            super::pg_array_text(&v),
            r#"{"a b","c\"d",NULL,"NULL","x\\y",t,"{\"k\":1}"}"#
        );
        assert_eq!(super::pg_array_text(&serde_json::json!([])), "{}");
    }
}
