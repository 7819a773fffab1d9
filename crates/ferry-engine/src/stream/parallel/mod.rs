//! Parallel apply: source transactions that touch disjoint rows are applied on
//! several target connections at once, and still commit on the target in source
//! commit order, each batch with its position.
//!
//! # Design (see also docs/parallel-apply.md)
//!
//! **Batches.** The dispatcher (the stream's apply loop) cuts the change stream into
//! *batches*: runs of consecutive whole source transactions, closed at a source
//! commit by the same rules the single-connection path groups by (200 transactions,
//! 500 ms, the reader drained) plus a row cap. Batch `n` goes to one worker — a
//! tokio task owning its own target connection and [`Applier`](super::apply::Applier)
//! — streamed to it through a bounded channel as the events arrive, so a
//! million-row transaction is never held in memory.
//!
//! **Ordered commit.** Workers execute their batches at the same time, but a worker
//! sends its COMMIT only once batch `n - 1` has committed (a shared watch of the last
//! committed batch). The COMMIT carries the checkpoint as on one connection: the
//! batch's position in `ferry.tasks`, the stream counters and the fence check, in
//! the same target transaction as the rows. So `ferry.tasks.position` is always a
//! true resume point: every source transaction before it is on the target, none
//! after it is, and a kill -9 at any instant loses and repeats nothing — the next
//! run resumes after the last committed batch; batches that had not committed roll
//! back with their sessions. A reader of the target never sees part of a source
//! transaction (a transaction lies inside one batch) nor a later one without an
//! earlier one (commit order). This is what MySQL's `replica_preserve_commit_order`
//! (default since 8.0.27) and PostgreSQL 16's parallel apply of streamed
//! transactions also do; both pay for it with an idle worker now and then, and so
//! does Ferry.
//!
//! **Dependencies.** Committing in order is not enough: a later batch that changes a
//! row an earlier one changed must not run first (it would lock the row and wait for
//! its turn, while the earlier batch waits for its lock: a deadlock across the commit
//! order the server cannot see). Every row change yields keys ([`keys::row_keys`]:
//! the row's identity before and after, the target's unique keys, the foreign-key
//! parents); the dispatcher keeps key → last batch that wrote it (pruned as batches
//! commit), and before a row whose key an earlier uncommitted batch wrote it tells
//! the row's worker to wait for that batch. This is MySQL's WRITESET dependency
//! tracking (`binlog_transaction_dependency_tracking = WRITESET`), computed on the
//! replica side from the row images instead of on the source.
//!
//! **Barriers.** A change that cannot be keyed waits for every earlier batch and
//! makes every later batch wait for it: rows of tables without a key, TRUNCATE.
//! Batches whose key set grows past [`MAX_BATCH_KEYS`] stop being tracked and
//! become barriers too (memory stays flat). A column change (Reshape) or a schema
//! statement (DDL), and the backfill of added tables, end the parallel attempt: the
//! stream restarts and applies that stretch on the single connection, then returns
//! to parallel apply (a restart at a committed position costs a reconnect).
//!
//! **Safety net.** Worker sessions run with a lock timeout (PostgreSQL
//! `lock_timeout`, MariaDB `innodb_lock_wait_timeout`, and READ COMMITTED so
//! inserts into one key range take no gap locks). A wait the keys did not predict
//! ends in a lock timeout (or a server-detected deadlock); then every worker rolls
//! back, and the next attempt applies serially until it has passed the position the
//! failed attempt had dispatched ([`ParallelState::serial_until`]).
//!
//! **Transactions in progress.** With apply_jobs ≥ 2 and no backfill, the reader is
//! asked for PostgreSQL's streamed in-progress transactions
//! ([`ferry_core::change::Event::InProgress`]). Each gets a dedicated worker that
//! applies its parts into an open target transaction as they arrive (a SAVEPOINT per
//! subtransaction, ROLLBACK TO SAVEPOINT when one aborts, ROLLBACK when the whole
//! transaction does). Its rows that touch keys of earlier uncommitted batches wait
//! for them; at its Commit it takes the next place in the commit order and is a
//! barrier for later batches. Rows it changed cannot be changed by a transaction
//! committing before it (the source held their locks). When no worker is left for a
//! new in-progress transaction the attempt restarts without in-progress streaming.

pub(crate) mod dispatch;
pub mod keys;
pub(crate) mod worker;

use ferry_core::change::RowOp;
use ferry_core::{Position, TaskSpec};

/// A batch whose key set grows past this stops being tracked and is a barrier.
pub const MAX_BATCH_KEYS: usize = 100_000;

/// What the parallel apply remembers across the attempts of one stream run.
#[derive(Debug, Default, Clone)]
pub struct ParallelState {
    /// Apply on one connection until the committed position is past this one (a
    /// parallel attempt failed on a conflict the keys did not predict, or met a
    /// change that only the single connection applies).
    pub serial_until: Option<Position>,
    /// Do not ask for in-progress transactions until past this position (one
    /// arrived while no worker was free).
    pub no_in_progress_until: Option<Position>,
}

/// How many target connections apply changes: the task's `apply_jobs`, else
/// [`default_jobs`].
pub fn jobs(spec: &TaskSpec) -> usize {
    spec.apply_jobs.unwrap_or_else(default_jobs).max(1)
}

/// The machine's cores (up to 8) — but one connection on a machine of two cores or
/// fewer: measured there (bench/apply-native.sh, BENCHMARKS.md), the databases and
/// Ferry share the cores, more connections only added commit waits (live lag p99
/// 5.6 s with 2 against 0.8 s with 1), so a small machine keeps the serial path
/// unless the task asks for more.
pub fn default_jobs() -> usize {
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    if cores <= 2 {
        1
    } else {
        cores.min(8)
    }
}

/// About the bytes a row change carries (what the apply speed limit meters).
pub fn row_bytes(op: &RowOp) -> u64 {
    use crate::throttle::{row_bytes as values, value_bytes};
    match op {
        RowOp::Insert(r) | RowOp::Delete(r) => values(r),
        RowOp::Update { old, new } => {
            old.as_deref().map(values).unwrap_or(0)
                + new
                    .iter()
                    .map(|c| match c {
                        ferry_core::change::Cell::Value(v) => value_bytes(v),
                        ferry_core::change::Cell::Unchanged => 0,
                    })
                    .sum::<u64>()
        }
    }
}
