//! Physical backups: a PostgreSQL base backup over the replication protocol plus
//! WAL archived from a physical slot; MySQL/MariaDB through `mariadb-backup`.

use crate::log::{ArchiveRequest, ArchiveStatus};
use crate::repo::Repo;
use ferry_core::{Error, Result};
use tokio::sync::watch;

/// Archives a PostgreSQL source's WAL from the cluster's physical slot into the
/// repository until `stop` (the physical method of the log backup task; the
/// logical archiver hands `method = physical` requests here).
pub async fn archive_wal(
    repo: &Repo,
    req: &ArchiveRequest,
    stop: watch::Receiver<bool>,
    status: &(dyn Fn(&ArchiveStatus) + Sync),
) -> Result<()> {
    let _ = (repo, req, stop, status);
    Err(Error::definite("physical log backup is not built yet"))
}
