//! Reading a source: consistent snapshots and chunked reads.

use crate::{async_trait, Connection};
use ferry_core::chunk::{Batch, KeyRange};
use ferry_core::{Position, Result, Table, TableId};
use tokio::sync::mpsc::Sender;

/// How a chunk's rows travel from the source to whoever reads them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadFormat {
    /// Decoded rows of the copied columns ([`Batch::Rows`]).
    Rows,
    /// Decoded rows, but arrays kept in the source engine's own text form (for a
    /// target of the same engine, as the change stream sends them there) instead
    /// of JSON. Engines without such a form read plain [`ReadFormat::Rows`].
    NativeArrays,
    /// The source engine's own bulk bytes ([`Batch::Raw`]), nothing decoded: only
    /// for a target of the same engine whose [`crate::Schema::passthrough`] is true.
    Passthrough,
}

/// A consistent snapshot opened on a set of worker sessions.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Log position the snapshot corresponds to (`None`: the source keeps no log).
    pub position: Option<Position>,
    /// How many of the given workers (the first ones) share the snapshot; the
    /// caller closes the others.
    pub workers: usize,
    /// What the user should know (fewer workers than asked, and why).
    pub warnings: Vec<String>,
}

/// What a source session does for the full copy, backfills and compare.
#[async_trait]
pub trait ChunkSource: Send {
    /// Row count and integer key bounds of `t` (within the session's snapshot),
    /// which the copy splits into chunks.
    async fn key_stats(
        &mut self,
        t: &TableId,
        key: Option<&str>,
    ) -> Result<(u64, Option<(i128, i128)>)>;

    /// Streams the copied columns of `t`'s rows in `range` (the whole table for
    /// `None`) into `tx`, `batch_rows` rows at a time (for the row formats). When
    /// the receiver is gone the error is of kind `WriterStopped`: the writer's own
    /// error then says why.
    async fn read_chunk(
        &mut self,
        t: &Table,
        range: Option<&KeyRange>,
        format: ReadFormat,
        tx: &Sender<Batch>,
        batch_rows: usize,
    ) -> Result<()>;

    /// Opens one consistent snapshot on `workers` (sessions of this same engine),
    /// using this session to fix the instant; this session must stay open until
    /// the workers are done reading. `handoff` is a snapshot exported elsewhere
    /// (a replication slot's, with its log position) for the workers to join
    /// instead, where the engine has such a thing. When the snapshot cannot span
    /// several workers (a missing privilege) it may use fewer and say so.
    async fn open_snapshot(
        &mut self,
        workers: &mut [&mut dyn Connection],
        handoff: Option<(&str, &Position)>,
    ) -> Result<Snapshot>;
}
