//! Writing backup sets from a source database.
//!
//! A full set is one consistent snapshot of the selected tables, read in parallel
//! key-range chunks by the engine's readers and stored as bounded files
//! ([`full`]); an incremental set is the net row changes the source's log holds
//! between the cluster's newest set and now ([`incremental`], [`changes`]).
//!
//! Each cluster keeps one *log anchor* on its source: a PostgreSQL replication slot
//! (`ferry_bk_<cluster>`, created with the snapshot of a full set) that holds the
//! WAL an incremental (or an interrupted full backup's catch-up) still has to read.
//! MySQL/MariaDB need none: a set's binlog position is the anchor.

mod changes;
mod full;
mod incremental;

use crate::manifest::{FileEntry, Manifest, SetKind};
use crate::repo::Repo;
use ferry_core::select::ObjectFilter;
use ferry_core::spec::Kind;
use ferry_core::{Endpoint, Error, ExistingData, Mode, Result, TaskSpec};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

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

/// Refuses a cluster name that cannot name a repository directory (before anything
/// is created for it).
pub fn check_cluster(cluster: &str) -> Result<()> {
    if crate::layout::valid_cluster(cluster) {
        return Ok(());
    }
    Err(
        Error::definite(format!("{cluster:?} cannot be a cluster name"))
            .with_hint("use lower-case letters, digits, '-' and '_' (at most 63)"),
    )
}

/// Takes a backup of `req.source` into `repo`.
pub async fn run_backup(repo: &Repo, req: &BackupRequest) -> Result<BackupReport> {
    check_cluster(&req.cluster)?;
    let spec = cluster_spec(&req.cluster, &req.source, &req.objects, req.chunk_rows);
    let r = match req.kind {
        SetKind::Full => full::run(repo, req, &spec).await,
        SetKind::Incremental => incremental::run(repo, req, &spec).await,
    };
    r.map_err(|e| e.context(format!("backup of cluster {}", req.cluster)))
}

/// Drops what the cluster keeps on its source for incrementals (a PostgreSQL
/// replication slot), when its policy is deleted.
pub async fn drop_anchor(cluster: &str, source: &Endpoint) -> Result<()> {
    let spec = cluster_spec(cluster, source, &ObjectFilter::default(), 100_000);
    let capture = ferry_engine::factory::connector(source.engine);
    if let Some(slot) = capture.task_slot(&spec).await? {
        slot.drop_all().await?;
    }
    Ok(())
}

/// The task the cluster's backups read the source as: named `bk-<cluster>` (its
/// PostgreSQL slot and publication `ferry_bk_<cluster>`, its MariaDB/MySQL binlog
/// reader's server id derive from it). Only the source is used; the target is the
/// source again, but for PostgreSQL with another engine's scheme so that the change
/// stream sends arrays as JSON — the form the chunk reader gives them in, and the
/// one a restore into either engine reads.
pub(crate) fn cluster_spec(
    cluster: &str,
    source: &Endpoint,
    objects: &ObjectFilter,
    chunk_rows: u64,
) -> TaskSpec {
    let mut target = source.clone();
    target.engine = match source.engine {
        ferry_core::Engine::Postgres => ferry_core::Engine::MySql,
        ferry_core::Engine::MySql => ferry_core::Engine::Postgres,
    };
    TaskSpec {
        name: format!("bk-{cluster}"),
        kind: Kind::Migration,
        mode: Mode::Full,
        source: source.clone(),
        target,
        objects: objects.clone(),
        rename: BTreeMap::new(),
        existing_data: ExistingData::Fail,
        jobs: None,
        apply_jobs: None,
        speed_limit: Default::default(),
        target_binlog: true,
        chunk_rows: chunk_rows.max(1),
        start_position: None,
        source_protection: Default::default(),
    }
}

/// A running set's progress record ([`crate::layout::progress`]): what an
/// interrupted backup of the cluster resumes from.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProgressRecord {
    /// The set.
    pub set: String,
    /// The cluster.
    pub cluster: String,
    /// Full or incremental.
    pub kind: SetKind,
    /// When the set was started (RFC 3339).
    pub started_at: String,
    /// The source's engine.
    pub engine: String,
    /// Position of the first run's snapshot (full sets): a resumed run reads the
    /// log from here to its own snapshot.
    pub first_position: Option<String>,
    /// The tables, by qualified name, in manifest order.
    pub tables: Vec<String>,
    /// The chunk plan (full sets).
    pub plan: Vec<PlannedChunk>,
    /// Every file stored and checked, with its size and SHA-256.
    pub files: Vec<FileEntry>,
}

/// One planned chunk of a full set.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PlannedChunk {
    /// Index of its table.
    pub table: usize,
    /// Index of the chunk within its table.
    pub chunk: u32,
    /// Inclusive lower key bound.
    pub lo: Option<i128>,
    /// Exclusive upper key bound.
    pub hi: Option<i128>,
    /// Every part of it is stored.
    pub done: bool,
    /// Rows in it (when done).
    pub rows: u64,
    /// Its rows' digest sum, hex (when done).
    pub digest: Option<String>,
}

/// Now, as seconds since the Unix epoch.
pub(crate) fn now_unix() -> i64 {
    chrono::Utc::now().timestamp()
}

/// A new set id for `kind`.
pub(crate) fn new_set(kind: SetKind) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let random = (nanos ^ std::process::id().rotate_left(7)) as u16;
    crate::layout::new_set_id(kind, now_unix(), random)
}

/// The source server's version string.
pub(crate) async fn server_version(src: &mut ferry_engine::Conn) -> String {
    match src.query_text("SELECT version()").await {
        Ok(rows) => short_version(
            &rows
                .into_iter()
                .next()
                .and_then(|r| r.into_iter().next().flatten())
                .unwrap_or_default(),
        ),
        Err(_) => String::new(),
    }
}

/// The server's version as a DBA reads it (the data version column of the backup
/// list): PostgreSQL's `version()` without its build platform and compiler
/// (`PostgreSQL 15.20 (Debian 15.20-0+deb12u1)`); MariaDB/MySQL's as it is.
fn short_version(v: &str) -> String {
    v.split(" on ").next().unwrap_or(v).trim().to_string()
}

/// Hex text of a digest sum.
pub(crate) fn digest_hex(d: &ferry_core::canonical::Digest) -> String {
    format!("{:032x}", d.sum)
}

#[cfg(test)]
mod version_tests {
    #[test]
    fn versions_lose_their_build_platform_only() {
        assert_eq!(
            super::short_version("PostgreSQL 15.20 (Debian 15.20-0+deb12u1) on x86_64-pc-linux-gnu, compiled by gcc 12.2.0, 64-bit"),
            "PostgreSQL 15.20 (Debian 15.20-0+deb12u1)"
        );
        assert_eq!(
            super::short_version("10.11.19-MariaDB-0+deb12u1"),
            "10.11.19-MariaDB-0+deb12u1"
        );
    }
}
