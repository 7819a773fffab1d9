//! A backfill chunk's consistent snapshot on a session the engine holds, and the
//! binlog position it corresponds to: the full copy's snapshot statements
//! (`reader::begin_single_snapshot`, `reader::begin_snapshot`) on that one session.

use crate::reader;
use ferry_connector::Connection;
use ferry_core::{Endpoint, ErrorKind, Position, Result};

/// Opens a consistent-snapshot transaction on `conn` and returns the binlog
/// position of exactly that snapshot (`None` when binary logging is off). MariaDB
/// reports it by itself (`Binlog_snapshot_*`); MySQL cannot, so there the snapshot
/// is lined up with the binlog under a brief global read lock taken on a second
/// session to `source`.
pub(super) async fn chunk_snapshot(
    conn: &mut dyn Connection,
    source: &Endpoint,
) -> Result<Option<Position>> {
    let c = super::session(conn)?;
    match reader::begin_single_snapshot(c).await {
        Err(e) if e.is(ErrorKind::NoSnapshotPosition) => {
            c.exec("ROLLBACK").await?;
            let mut lock = crate::connect(source).await?;
            reader::begin_snapshot(&mut lock, std::iter::once(c)).await
        }
        other => other,
    }
}
