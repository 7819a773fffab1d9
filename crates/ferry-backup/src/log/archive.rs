//! The archiver: one cluster's change stream into pieces, until stopped.

use crate::repo::Repo;
use ferry_core::select::ObjectFilter;
use ferry_core::{Endpoint, Error, Result};
use serde::Serialize;
use tokio::sync::watch;

/// What to archive.
#[derive(Debug, Clone)]
pub struct ArchiveRequest {
    /// The cluster (backup policy).
    pub cluster: String,
    /// The source database.
    pub source: Endpoint,
    /// Which tables (PostgreSQL: the slot's publication carries them).
    pub objects: ObjectFilter,
    /// `logical` (row changes, restorable into either engine) or `physical`
    /// (PostgreSQL WAL from a physical slot: [`crate::physical`]).
    pub method: String,
    /// A piece is closed (at a transaction end) once it is this old…
    pub piece_seconds: u64,
    /// …or holds this many encoded bytes.
    pub piece_bytes: u64,
    /// No progress lines.
    pub quiet: bool,
}

/// The log backup task's state (seed 004).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ArchiveState {
    /// Connecting, creating the slot, finding where the archive continues.
    Starting,
    /// Archiving.
    Running,
    /// Asked to stop: closing the open piece.
    Stopping,
    /// Stopped (by request).
    Stopped,
    /// Stopped by an error that retrying cannot fix.
    Failed,
}

/// What the archiver reports as it goes.
#[derive(Debug, Clone, Serialize)]
pub struct ArchiveStatus {
    /// Its state.
    pub state: ArchiveState,
    /// The latest backup point (µs since the epoch): every transaction committed
    /// at or before it is durably archived.
    pub latest_point_us: Option<i64>,
    /// The position the archive is complete to.
    pub position: Option<String>,
    /// Pieces stored by this run.
    pub pieces: u64,
    /// While recovering from a transient fault (source restart, cut link): what
    /// happened; `None` when archiving normally.
    pub recovering: Option<String>,
    /// Why it failed.
    pub reason: Option<String>,
}

/// Archives `req.source`'s change stream into `repo` until `stop` turns true
/// (returns `Ok` once the open piece is stored) or an error retrying cannot fix
/// (returns it, after recording a gap when the log was lost). Transient faults are
/// retried with backoff, reported through `status` as `recovering`.
pub async fn run_archive(
    repo: &Repo,
    req: &ArchiveRequest,
    stop: watch::Receiver<bool>,
    status: &(dyn Fn(&ArchiveStatus) + Sync),
) -> Result<()> {
    let _ = (repo, req, stop, status);
    Err(Error::definite("log archiving is not built yet"))
}

/// Makes a named restore point: the source's current log position, stored as a
/// mark of the cluster. Refuses a name the cluster already has.
pub async fn make_mark(
    repo: &Repo,
    cluster: &str,
    source: &Endpoint,
    name: &str,
) -> Result<super::Mark> {
    let _ = (repo, cluster, source, name);
    Err(Error::definite("marks are not built yet"))
}
