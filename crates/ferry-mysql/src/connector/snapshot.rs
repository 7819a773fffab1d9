//! A backfill chunk's consistent snapshot on a session the engine holds (as a
//! `dyn Connection`), and the binlog position it corresponds to.
//!
//! The same statements as `reader::begin_single_snapshot` / `reader::begin_snapshot`
//! (the full copy's), spelled over the engine's session type: a chunk is read on
//! the engine's own source session, which this crate only sees through
//! `SqlConn`.

use crate::MyConn;
use ferry_connector::Connection;
use ferry_core::{Endpoint, Error, ErrorKind, Position, Result};

/// Opens a consistent-snapshot transaction on `conn` and returns the binlog
/// position of exactly that snapshot (`None` when binary logging is off). MariaDB
/// reports it by itself (`Binlog_snapshot_*`); MySQL cannot, so there the snapshot
/// is lined up with the binlog under a brief global read lock taken on a second
/// session to `source`.
pub(super) async fn chunk_snapshot(
    conn: &mut dyn Connection,
    source: &Endpoint,
) -> Result<Option<Position>> {
    match single(conn).await {
        Err(e) if e.is(ErrorKind::NoSnapshotPosition) => {
            conn.exec("ROLLBACK").await?;
            let mut lock = crate::connect(source).await?;
            locked(&mut lock, conn).await
        }
        other => other,
    }
}

/// `reader::begin_single_snapshot` on `conn`.
async fn single(conn: &mut dyn Connection) -> Result<Option<Position>> {
    conn.exec("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        .await?;
    conn.exec("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")
        .await?;
    let st = conn
        .query_text("SHOW STATUS LIKE 'binlog_snapshot_%'")
        .await?;
    let get = |name: &str| {
        st.iter()
            .find(|r| {
                r[0].as_deref()
                    .is_some_and(|n| n.eq_ignore_ascii_case(name))
            })
            .and_then(|r| r[1].clone())
            .unwrap_or_default()
    };
    let (file, pos) = (get("Binlog_snapshot_file"), get("Binlog_snapshot_position"));
    if st.is_empty() {
        return Err(Error::definite(
            "this server cannot report the binlog position of a snapshot without a global read lock",
        )
        .with_hint("grant RELOAD and LOCK TABLES to the Ferry user: GRANT RELOAD, LOCK TABLES ON *.* TO …")
        .with_kind(ErrorKind::NoSnapshotPosition));
    }
    if file.is_empty() {
        return Ok(None);
    }
    Ok(Some(Position::Binlog {
        file,
        pos: pos.parse().unwrap_or(4),
        gtid: String::new(),
    }))
}

/// `reader::begin_snapshot` with `conn` as its one worker.
async fn locked(coordinator: &mut MyConn, conn: &mut dyn Connection) -> Result<Option<Position>> {
    coordinator.exec("FLUSH TABLES WITH READ LOCK").await.map_err(|e| {
        e.context("cannot take the brief global read lock that fixes the snapshot instant")
            .with_hint("grant RELOAD (and LOCK TABLES) to the Ferry user: GRANT RELOAD, LOCK TABLES ON *.* TO …")
    })?;
    let result = async {
        conn.exec("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            .await?;
        conn.exec("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")
            .await?;
        crate::reader::current_position(coordinator).await
    }
    .await;
    let unlock = coordinator.exec("UNLOCK TABLES").await;
    let pos = result?;
    unlock?;
    Ok(pos)
}
