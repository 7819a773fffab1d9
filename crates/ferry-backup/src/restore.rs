//! Restoring a backup set chain, or a dump file, into a database.

use crate::manifest::Manifest;
use crate::repo::Repo;
use ferry_core::select::ObjectFilter;
use ferry_core::{Endpoint, Error, ExistingData, Result, TableId};

/// Where a restore reads from.
#[derive(Debug, Clone)]
pub enum RestoreFrom {
    /// A set id (an incremental brings its chain).
    Set(String),
    /// A dump file's storage URL (mysqldump / mariadb-dump SQL, pg_dump plain SQL or
    /// custom format).
    Dump(String),
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
pub async fn precheck(_repo: Option<&Repo>, req: &RestoreRequest) -> Result<RestorePlan> {
    Err(Error::definite(format!(
        "restore {}: not built yet",
        req.name
    )))
}

/// Restores what `plan` holds (after [`precheck`]), resuming an interrupted restore
/// of the same name; `progress` is told of per-table progress as it goes.
pub async fn run_restore(
    _repo: Option<&Repo>,
    req: &RestoreRequest,
    _plan: RestorePlan,
    _progress: &(dyn Fn(&[TableRestore]) + Sync),
) -> Result<RestoreReport> {
    Err(Error::definite(format!(
        "restore {}: not built yet",
        req.name
    )))
}
