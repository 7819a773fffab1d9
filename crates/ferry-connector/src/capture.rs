//! The change log of a source: where it is, what holds it, and its stream.
//!
//! The engine's incremental phase, its backfills, `ferry status` and the task's
//! start and end ask a [`Capture`] for everything that depends on how an engine
//! logs changes: the log's current end, what "caught up" means, the per-task
//! resource some engines keep on the source ([`TaskSlot`]: a PostgreSQL replication
//! slot and publication), the change stream itself, and the snapshots backfill
//! chunks are read under ([`Seen`]).

use crate::{async_trait, Connection};
use ferry_core::change::{Event, StreamFeatures};
use ferry_core::{Position, Result, Table, TableId, TaskSpec};
use std::collections::HashSet;
use tokio::sync::{mpsc, watch};

/// The change log of one engine.
#[async_trait]
pub trait Capture: Send + Sync {
    /// Where the source's log ends now (for lag, and a start position without a copy).
    async fn head(&self, spec: &TaskSpec) -> Result<Position>;

    /// What "caught up" means when a stream starts: a position whose arrival in the
    /// stream proves that everything committed before the call was delivered.
    async fn catch_up_goal(&self, spec: &TaskSpec) -> Result<Position>;

    /// The name of the task's resource on the source (`None`: the engine keeps none;
    /// its log is read from a position alone).
    fn slot_name(&self, spec: &TaskSpec) -> Option<String>;

    /// A session on the task's resource on the source; `Ok(None)` when the engine
    /// keeps none. Connects to the source.
    async fn task_slot(&self, spec: &TaskSpec) -> Result<Option<Box<dyn TaskSlot>>>;

    /// Streams the source's changes from `start` into `tx` until `tx` closes or an
    /// error. `acked` carries the last position committed on the target (the source
    /// may release its log up to it). `features` says what else the caller can take
    /// besides whole transactions in commit order.
    async fn stream(
        &self,
        spec: &TaskSpec,
        start: &Position,
        tables: Vec<Table>,
        tx: &mpsc::Sender<Event>,
        acked: watch::Receiver<Option<Position>>,
        features: StreamFeatures,
    ) -> Result<()>;

    /// Opens a read-only snapshot transaction on `conn` (a source session) for one
    /// backfill chunk and says what it saw.
    async fn chunk_snapshot(&self, spec: &TaskSpec, conn: &mut dyn Connection) -> Result<Seen>;

    /// After the chunk's transaction ended on `conn`: the position the stream must
    /// pass before the chunk may commit on the target (every transaction `seen` saw
    /// is before it).
    async fn chunk_until(&self, conn: &mut dyn Connection, seen: &Seen) -> Result<Position>;

    /// What a schema change the log carries as a statement does to the tables.
    fn classify_ddl(&self, schema: &str, statement: &str) -> DdlChange;

    /// What the source keeps of its log for the task resuming at `applied`, and how
    /// safe that is (read on a short-lived session, never the stream's). `Ok(None)`:
    /// the engine cannot tell, or keeps nothing for the task (a slot that is gone).
    /// Fails with [`ferry_core::ErrorKind::PositionLost`] when the log at `applied`
    /// is already gone.
    async fn retention(&self, _spec: &TaskSpec, _applied: &Position) -> Result<Option<Retention>> {
        Ok(None)
    }
}

/// What a source keeps of its log for one task: what a stopped or slow task costs
/// the source's disk, and how close the log it needs is to being removed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Retention {
    /// What holds the log: the task's replication slot, or the oldest binlog file
    /// the task still needs.
    pub holder: String,
    /// The source keeps the log because of the task (a slot): without it the log
    /// would be removed, so its size is the task's cost. False for a binlog, which
    /// the server keeps (and expires) whatever its readers.
    pub held_for_task: bool,
    /// Bytes of log kept from the oldest one the task needs to the log's end.
    pub retained_bytes: Option<u64>,
    /// PostgreSQL `wal_status` (`reserved`, `extended`, `unreserved`, `lost`).
    pub wal_status: Option<String>,
    /// Bytes the source may still write before the slot is invalidated (PostgreSQL
    /// `safe_wal_size`; `None` without a limit).
    pub safe_bytes: Option<i64>,
    /// The source's cap on the log a slot keeps (`max_slot_wal_keep_size`; `None`:
    /// unlimited).
    pub limit_bytes: Option<u64>,
    /// Seconds after which the source removes old log files (binlog expiry; `None`:
    /// never, or not applicable).
    pub expire_seconds: Option<u64>,
    /// Something streams from it right now.
    pub active: bool,
}

/// The task's resource on a source (a replication slot and its publication): held
/// through one session to the source.
#[async_trait]
pub trait TaskSlot: Send + Sync {
    /// Its name (slot and publication share it).
    fn name(&self) -> &str;

    /// Its state; `None` when it does not exist.
    async fn state(&self) -> Result<Option<SlotState>>;

    /// Makes it carry exactly `tables` (creating what is missing). Returns warnings.
    async fn ensure_tables(&self, tables: &[Table]) -> Result<Vec<String>>;

    /// [`TaskSlot::ensure_tables`] only when it carries other tables than `tables`.
    async fn sync_tables(&self, tables: &[Table]) -> Result<()>;

    /// Fails (definitely: a full resync is needed) when it is gone or unusable.
    async fn verify(&self) -> Result<()>;

    /// Creates it, with a snapshot of the source exported at its start; a `resume`
    /// slot is a temporary one beside the task's, serving only its snapshot.
    /// The snapshot lives as long as the returned guard.
    async fn create(&self, resume: bool) -> Result<Box<dyn SlotStart>>;

    /// Drops it (missing parts are fine); transient when something still reads it.
    async fn drop_all(&self) -> Result<()>;

    /// The statement a DBA runs to drop it by hand.
    fn drop_statement(&self) -> String;

    /// Lets the source release its log up to `to` (a consumer that stores changes
    /// elsewhere, like a backup set, has them safe from there on). A position the
    /// slot has already passed is fine. Engines without a slot do nothing.
    async fn advance(&self, _to: &Position) -> Result<()> {
        Ok(())
    }
}

/// A just-created slot: its start position and exported snapshot, valid until the
/// guard is dropped (the session that made it stays open until then).
pub trait SlotStart: Send + Sync {
    /// The id of the exported snapshot, for other sessions to join.
    fn snapshot(&self) -> &str;

    /// Where the slot's stream starts: exactly after the snapshot.
    fn position(&self) -> &Position;
}

/// State of a task's slot on the source.
#[derive(Debug, Clone, Default)]
pub struct SlotState {
    /// How safe the log it needs is (PostgreSQL `wal_status`; may be empty).
    pub wal_status: String,
    /// A process is streaming from it right now.
    pub active: bool,
    /// Bytes of log the source keeps for it.
    pub retained_bytes: Option<u64>,
}

/// What a schema-change statement in the log does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DdlChange {
    /// Creates this table.
    CreateTable(TableId),
    /// Drops this table.
    DropTable(TableId),
    /// Anything else (Ferry does not follow it).
    Other,
}

/// What a backfill chunk's snapshot saw.
#[derive(Debug, Clone, PartialEq)]
pub enum Seen {
    /// The transactions committed before this log position (a MariaDB/MySQL
    /// consistent snapshot at a binlog position).
    Before(Position),
    /// The transactions a snapshot by transaction id sees (PostgreSQL MVCC).
    Txids(TxSnapshot),
}

impl Seen {
    /// Whether the snapshot saw a source transaction that starts at `marker` with
    /// the id `xid` (whichever the log gives).
    pub fn saw(&self, marker: Option<&Position>, xid: Option<u32>) -> bool {
        match self {
            Seen::Before(w) => marker.is_some_and(|m| !m.reached(w)),
            Seen::Txids(s) => xid.is_some_and(|x| s.sees(x)),
        }
    }

    /// Whether the snapshot missed a transaction that `streamed` says the stream
    /// already handed on (one still running when the snapshot was taken).
    pub fn misses(&self, streamed: impl Fn(u32) -> bool) -> bool {
        match self {
            Seen::Before(_) => false,
            Seen::Txids(s) => s.xip.iter().any(|x| streamed(*x as u32)),
        }
    }
}

/// A snapshot by transaction id (`pg_current_snapshot()`): ids below `xmin` are
/// settled, ids from `xmax` on had not started, ids in `xip` were running.
#[derive(Debug, Clone, PartialEq)]
pub struct TxSnapshot {
    /// Every id below it is settled.
    pub xmin: u64,
    /// No id from it on had started.
    pub xmax: u64,
    /// Ids running at the snapshot.
    pub xip: HashSet<u64>,
}

impl TxSnapshot {
    /// Parses `xmin:xmax:xip,…`.
    pub fn parse(s: &str) -> Option<TxSnapshot> {
        let mut parts = s.split(':');
        let xmin = parts.next()?.parse().ok()?;
        let xmax = parts.next()?.parse().ok()?;
        let xip = parts
            .next()?
            .split(',')
            .filter(|x| !x.is_empty())
            .map(|x| x.parse().ok())
            .collect::<Option<HashSet<u64>>>()?;
        Some(TxSnapshot { xmin, xmax, xip })
    }

    /// The 64-bit id of a 32-bit transaction id: the one within 2^31 of `xmax` (no
    /// live id is ever further away).
    fn widen(&self, xid: u32) -> u64 {
        let x = (self.xmax & !0xffff_ffff) | u64::from(xid);
        if x > self.xmax.saturating_add(1 << 31) && x >= 1 << 32 {
            x - (1 << 32)
        } else if x + (1 << 31) < self.xmax {
            x + (1 << 32)
        } else {
            x
        }
    }

    /// Whether the snapshot sees the (committed) transaction `xid`.
    pub fn sees(&self, xid: u32) -> bool {
        let x = self.widen(xid);
        x < self.xmin || (x < self.xmax && !self.xip.contains(&x))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_sees_settled_and_finished_transactions_only() {
        let s = TxSnapshot::parse("100:110:102,105").unwrap();
        assert!(s.sees(99));
        assert!(s.sees(101));
        assert!(!s.sees(102));
        assert!(!s.sees(105));
        assert!(s.sees(109));
        assert!(!s.sees(110));
        assert!(!s.sees(4_000_000_000));
        let empty = TxSnapshot::parse("7:7:").unwrap();
        assert!(empty.sees(6) && !empty.sees(7));
        assert!(TxSnapshot::parse("7:x:").is_none());
    }

    #[test]
    fn ids_from_before_an_epoch_wrap_are_widened_into_the_previous_epoch() {
        // xmax just past the wrap: 32-bit ids near u32::MAX belong to epoch 0
        let s = TxSnapshot::parse(&format!("{}:{}:", (1u64 << 32) - 10, (1u64 << 32) + 5)).unwrap();
        assert!(s.sees(u32::MAX - 1));
        assert!(s.sees(3));
        assert!(!s.sees(5), "an id equal to xmax had not started");
        // xmax just before the wrap: small 32-bit ids are from the next epoch
        let s = TxSnapshot::parse(&format!("{}:{}:", (1u64 << 32) - 10, (1u64 << 32) - 5)).unwrap();
        assert!(!s.sees(2));
        assert!(s.sees(u32::MAX - 20));
    }

    #[test]
    fn seen_by_position_or_by_id() {
        let at = |p: u64| Position::Binlog {
            file: "b.000001".into(),
            pos: p,
            gtid: String::new(),
        };
        let before = Seen::Before(at(100));
        assert!(before.saw(Some(&at(50)), None));
        assert!(!before.saw(Some(&at(100)), None));
        assert!(!before.saw(None, Some(1)));
        assert!(!before.misses(|_| true));
        let ids = Seen::Txids(TxSnapshot::parse("100:110:102").unwrap());
        assert!(ids.saw(None, Some(101)));
        assert!(!ids.saw(None, Some(102)));
        assert!(!ids.saw(Some(&at(1)), None));
        assert!(ids.misses(|x| x == 102));
        assert!(!ids.misses(|x| x == 101));
    }
}
