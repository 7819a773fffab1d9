//! Task progress, kept where the data goes, in the same transactions as the data it
//! describes — so the target itself always says exactly what it holds: which chunks
//! are committed, which tables are finished, the source position the rows came from
//! and how far the stream has applied.
//!
//! [`CheckpointStore`] is the seam for the records read and written outside a data
//! transaction: a SQL target keeps them in tables of a `ferry` schema/database
//! (`checkpoint/sql.rs`); a target without SQL tables (a backup set in object
//! storage) implements the same trait its own way. The records a data transaction
//! carries (a chunk's done mark, a watermark, a backfill's progress, the stream's
//! position at each commit) are still SQL statements built for SQL targets
//! (`mark_done_sql`, `watermark_sql`, `backfill_sql`, the applier's commit): a
//! non-SQL target needs them behind the trait too. Stages and phases are typed;
//! their text form is what the SQL store writes.

mod fence;
mod sql;
mod writers;

pub use fence::{Claim, Fence};
pub use sql::{backfill_sql, mark_done_sql, watermark_sql};
pub use writers::end_fenced_writers;

use ferry_connector::async_trait;
use ferry_core::chunk::Chunk;
use ferry_core::{Error, Position, Result, TableId};
use std::collections::{BTreeMap, HashMap};

/// Where a task is, as its target records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskPhase {
    /// The full copy is under way (or was interrupted).
    Full,
    /// The full copy finished; the stream has not started yet.
    Done,
    /// The stream has started.
    Incremental,
    /// The task was ended: nothing is applied any more.
    Ended,
}

/// How far one target table is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TableStage {
    /// Created without keys and indexes; its chunks are being copied.
    Created,
    /// Keys and indexes built; foreign keys come after every table's data.
    Indexed,
    /// Complete, foreign keys included.
    Done,
    /// It existed before the task and was kept (`existing_data: truncate | append`).
    Kept,
    /// Added to a streaming task: the stream copies it (see `crate::stream::backfill`).
    Backfill,
    /// Created by the stream after the source created it: every row streams.
    Streamed,
}

/// The stream's state, as the target records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamState {
    /// Applying changes.
    Incremental,
    /// Retrying after a transient fault.
    Recovering,
    /// Stopped on request (or caught up and exited).
    Stopped,
    /// Failed with a definite error.
    Failed,
    /// The task was ended.
    Ended,
}

macro_rules! text_form {
    ($ty:ident, $what:literal, $($v:ident => $s:literal),+ $(,)?) => {
        impl $ty {
            /// The stored text form.
            pub fn as_str(self) -> &'static str {
                match self { $($ty::$v => $s),+ }
            }

            /// Parses the stored text form.
            pub fn parse(s: &str) -> Result<$ty> {
                match s {
                    $($s => Ok($ty::$v),)+
                    other => Err(Error::definite(format!(
                        "the target's checkpoint holds an unknown {} {other:?}", $what
                    ))
                    .with_hint("it was written by a newer Ferry: run that version")),
                }
            }
        }

        impl std::fmt::Display for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

text_form!(TaskPhase, "task phase", Full => "full", Done => "done", Incremental => "incremental", Ended => "ended");
text_form!(TableStage, "table stage", Created => "created", Indexed => "indexed", Done => "done",
    Kept => "kept", Backfill => "backfill", Streamed => "streamed");
text_form!(StreamState, "stream state", Incremental => "incremental", Recovering => "recovering",
    Stopped => "stopped", Failed => "incremental_failed", Ended => "ended");

/// A task's record: its phase and the source position its data is at (the
/// snapshot's during the copy, the last applied one while streaming).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskRecord {
    /// Where the task is.
    pub phase: TaskPhase,
    /// Source position, once known.
    pub position: Option<Position>,
}

/// The stream's record.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StreamRecord {
    /// Its state, when recorded.
    pub state: Option<StreamState>,
    /// Why (a fault being recovered from, the failure).
    pub reason: Option<String>,
    /// Source commit time of the last applied transaction, µs since the epoch.
    pub source_commit_us: Option<i64>,
    /// When the target last recorded progress, µs since the epoch.
    pub applied_at_us: Option<i64>,
    /// Source transactions applied since the stream began.
    pub txns: u64,
    /// Row changes applied.
    pub rows: u64,
    /// Changes to keyed tables that found no row on the target.
    pub unmatched: u64,
}

/// Copy progress of one table.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TableProgress {
    /// Target table.
    pub table: String,
    /// Its stage (none before the table exists).
    pub stage: Option<TableStage>,
    /// Chunks committed.
    pub chunks_done: u64,
    /// Chunks planned.
    pub chunks: u64,
    /// Rows committed by the done chunks.
    pub rows: u64,
}

/// How far the snapshot of a table added to a running stream has got (see
/// `stream::backfill`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct BackfillRow {
    /// Source table.
    pub table: String,
    /// Keys below this are on the target (`None`: none yet, unless `done`).
    pub next_key: Option<String>,
    /// Every row is on the target; from here on the table streams like the others.
    pub done: bool,
    /// Rows copied so far.
    pub rows: u64,
}

/// Where a task's checkpoints are kept. Every method names the task: one store
/// holds the checkpoints of every task writing there.
#[async_trait]
pub trait CheckpointStore: Send {
    /// Creates what the records need (tables, namespace), if missing.
    async fn ensure(&mut self) -> Result<()>;

    /// The task's record, if it has run here before.
    async fn task(&mut self, task: &str) -> Result<Option<TaskRecord>>;

    /// Records the task's phase (and position, if given; else the recorded one stays).
    async fn set_task(
        &mut self,
        task: &str,
        phase: TaskPhase,
        position: Option<&Position>,
    ) -> Result<()>;

    /// Forgets everything recorded for the task (a fresh start).
    async fn reset(&mut self, task: &str) -> Result<()>;

    /// Table stages: target table → stage.
    async fn stages(&mut self, task: &str) -> Result<BTreeMap<String, TableStage>>;

    /// Records a table's stage.
    async fn set_stage(&mut self, task: &str, table: &TableId, stage: TableStage) -> Result<()>;

    /// Forgets a target table's stage (the task no longer selects it).
    async fn forget_stage(&mut self, task: &str, table: &str) -> Result<()>;

    /// Stores the chunk plan (all not done).
    async fn save_plan(&mut self, task: &str, chunks: &[Chunk]) -> Result<()>;

    /// The stored chunk plan.
    async fn load_plan(&mut self, task: &str) -> Result<Vec<Chunk>>;

    /// Per-table copy progress.
    async fn table_progress(&mut self, task: &str) -> Result<Vec<TableProgress>>;

    /// Records the stream's state and its reason.
    async fn set_stream_state(
        &mut self,
        task: &str,
        state: StreamState,
        reason: Option<&str>,
    ) -> Result<()>;

    /// The stream's record, once it started.
    async fn stream(&mut self, task: &str) -> Result<Option<StreamRecord>>;

    /// Source table → the position a resumed copy read it at (the stream skips that
    /// table's changes the copy already holds).
    async fn watermarks(&mut self, task: &str) -> Result<HashMap<TableId, Position>>;

    /// The task's backfills.
    async fn backfills(&mut self, task: &str) -> Result<Vec<BackfillRow>>;

    /// Plans the backfill of `table` (nothing copied yet).
    async fn add_backfill(&mut self, task: &str, table: &TableId) -> Result<()>;

    /// Forgets the backfill of `table`.
    async fn drop_backfill(&mut self, task: &str, table: &str) -> Result<()>;

    /// Says that this session writes the task's data (`slot`: the stream's `None`, a
    /// copy worker's index), so that a later run can find it.
    async fn join_writers(&mut self, task: &str, slot: Option<usize>) -> Result<()>;

    /// Other sessions that say they write the task's data (server session ids).
    async fn writer_sessions(&mut self, task: &str) -> Result<Vec<String>>;

    /// Ends server session `id`.
    async fn end_session(&mut self, id: &str) -> Result<()>;

    /// Takes the task's next epoch (see [`Fence`]): one more than the last claimed,
    /// kept across resets so it never goes back. With `held`, only when the current
    /// epoch is still that one: otherwise `Err(current)` and nothing changes.
    async fn claim(
        &mut self,
        task: &str,
        held: Option<i64>,
    ) -> Result<std::result::Result<i64, i64>>;

    /// The task's current epoch, if it was ever claimed.
    async fn epoch(&mut self, task: &str) -> Result<Option<i64>>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_forms_round_trip() {
        for p in [
            TaskPhase::Full,
            TaskPhase::Done,
            TaskPhase::Incremental,
            TaskPhase::Ended,
        ] {
            assert_eq!(TaskPhase::parse(p.as_str()).unwrap(), p);
        }
        for s in [
            TableStage::Created,
            TableStage::Indexed,
            TableStage::Done,
            TableStage::Kept,
            TableStage::Backfill,
            TableStage::Streamed,
        ] {
            assert_eq!(TableStage::parse(s.as_str()).unwrap(), s);
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        assert_eq!(StreamState::Failed.as_str(), "incremental_failed");
        let e = TableStage::parse("sideways").unwrap_err();
        assert!(
            e.message.contains("unknown table stage \"sideways\""),
            "{e}"
        );
    }
}
