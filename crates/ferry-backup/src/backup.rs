//! Writing backup sets from a source database.

use crate::manifest::{Manifest, SetKind};
use crate::repo::Repo;
use ferry_core::select::ObjectFilter;
use ferry_core::{Endpoint, Error, Result};

/// What to back up.
#[derive(Debug, Clone)]
pub struct BackupRequest {
    /// The cluster (backup policy) the set belongs to.
    pub cluster: String,
    /// The source database.
    pub source: Endpoint,
    /// Which tables.
    pub objects: ObjectFilter,
    /// Full or incremental.
    pub kind: SetKind,
    /// Parallel readers.
    pub jobs: usize,
    /// Rows per chunk of a table split by key range.
    pub chunk_rows: u64,
    /// No progress display.
    pub quiet: bool,
}

/// What a backup did.
#[derive(Debug, Clone)]
pub struct BackupReport {
    /// The complete set's manifest.
    pub manifest: Manifest,
    /// An interrupted backup of the cluster was resumed.
    pub resumed: bool,
    /// Files an interrupted run had stored and checked, reused.
    pub files_reused: usize,
    /// What the user should know.
    pub warnings: Vec<String>,
}

/// Takes a backup of `req.source` into `repo`.
pub async fn run_backup(_repo: &Repo, req: &BackupRequest) -> Result<BackupReport> {
    Err(Error::definite(format!(
        "backup of {}: not built yet",
        req.cluster
    )))
}

/// Drops what the cluster keeps on its source for incrementals (a PostgreSQL
/// replication slot), when its policy is deleted.
pub async fn drop_anchor(cluster: &str, _source: &Endpoint) -> Result<()> {
    Err(Error::definite(format!("{cluster}: not built yet")))
}
