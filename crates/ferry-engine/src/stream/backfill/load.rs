//! Loading a backfill chunk on sessions of its own while the stream goes on.
//!
//! A chunk of a table that started empty on the target is read under its snapshot
//! and bulk-loaded by a [`Worker`] (a source and a target session) in a target
//! transaction of its own, which commits the rows alone. Meanwhile the stream applies
//! everything else: a change to a key of the chunk that the snapshot saw is skipped,
//! one it did not see waits until the chunk's rows are committed and is then applied
//! on top of them, and a change to a key no chunk has reached is skipped. The
//! table's progress row (which keys the target holds) moves only later, in the
//! stream's own transaction, once the stream has passed everything the snapshot saw
//! ([`super::Backfill`]'s hand-over) — so after a crash the range counts as not
//! copied: its next load first deletes whatever an interrupted attempt left there.

use crate::abort_on_drop::AbortOnDrop;
use crate::checkpoint::{CheckpointStore, Fence};
use crate::conn::{Conn, Role};
use crate::copy::chunk::{copy_rows, TableJob};
use crate::factory::connector;
use ferry_connector::Seen;
use ferry_core::chunk::KeyRange;
use ferry_core::{Error, Position, Result, TaskSpec};

/// A source and a target session that load chunks.
pub(super) struct Worker {
    pub(super) src: Conn,
    dst: Conn,
}

impl Worker {
    /// Opens the sessions; the target one writes like the full copy's workers
    /// (writer session, `target_binlog`) and joins the task's writers as `slot`.
    pub(super) async fn open(spec: &TaskSpec, slot: usize) -> Result<Worker> {
        let src = Conn::open(spec, Role::Source).await?;
        let mut dst = Conn::open(spec, Role::Target).await?;
        crate::copy::begin_bulk_session(&mut dst, spec).await?;
        dst.join_writers(&spec.name, Some(slot)).await?;
        Ok(Worker { src, dst })
    }
}

/// A chunk whose rows are committed on the target.
pub(super) struct Loaded {
    pub(super) rows: u64,
    /// The stream must pass this before the progress row may move past the chunk.
    pub(super) until: Position,
}

enum State {
    Running(AbortOnDrop<(Worker, Result<Loaded>)>),
    Done(Loaded),
    /// Failed (its error was returned once).
    Failed,
}

/// A chunk being loaded (or loaded and not yet handed to the stream).
pub(super) struct Load {
    /// Index of the table in the backfill.
    pub(super) table: usize,
    pub(super) lo: Option<i128>,
    pub(super) hi: Option<i128>,
    /// What the chunk's snapshot saw.
    pub(super) seen: Seen,
    /// Whether the snapshot saw the source transaction being streamed.
    pub(super) txn_seen: bool,
    state: State,
}

impl Load {
    /// Starts loading `range` of `job` with `worker`, whose source session holds the
    /// chunk's snapshot open (`seen`).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn start(
        mut worker: Worker,
        spec: &TaskSpec,
        fence: &Fence,
        table: usize,
        job: TableJob,
        range: Option<KeyRange>,
        seen: Seen,
    ) -> Load {
        let (lo, hi) = range.as_ref().map(|r| (r.lo, r.hi)).unwrap_or((None, None));
        let (spec, fence, seen2) = (spec.clone(), fence.clone(), seen.clone());
        let task = AbortOnDrop::spawn(async move {
            let r = load_chunk(&mut worker, &spec, &fence, &job, range.as_ref(), &seen2).await;
            (worker, r)
        });
        Load {
            table,
            lo,
            hi,
            seen,
            txn_seen: false,
            state: State::Running(task),
        }
    }

    /// Whether `key` is in the chunk.
    pub(super) fn contains(&self, key: Option<i128>) -> bool {
        match key {
            None => true,
            Some(k) => self.lo.is_none_or(|l| k >= l) && self.hi.is_none_or(|h| k < h),
        }
    }

    /// Whether its rows are committed on the target (as far as anyone has looked).
    pub(super) fn loaded(&self) -> bool {
        matches!(self.state, State::Done(_))
    }

    /// Whether waiting for it would not block.
    pub(super) fn finished(&self) -> bool {
        match &self.state {
            State::Done(_) | State::Failed => true,
            State::Running(t) => t.0.is_finished(),
        }
    }

    /// Waits until its rows are committed; returns its worker, free again (`None`
    /// when it had finished before). A failed load fails the stream attempt (the
    /// next one reads the chunk again).
    pub(super) async fn finish(&mut self) -> Result<Option<Worker>> {
        let task = match std::mem::replace(&mut self.state, State::Failed) {
            State::Running(task) => task,
            State::Done(l) => {
                self.state = State::Done(l);
                return Ok(None);
            }
            State::Failed => return Err(Error::transient("a backfill load failed")),
        };
        let (worker, r) = task
            .await
            .map_err(|e| Error::transient(format!("a backfill load crashed: {e}")))?;
        self.state = State::Done(r?);
        Ok(Some(worker))
    }

    /// The finished chunk's outcome (after [`Load::finish`]).
    pub(super) fn outcome(&self) -> Option<&Loaded> {
        match &self.state {
            State::Done(l) => Some(l),
            State::Running(_) | State::Failed => None,
        }
    }
}

/// Reads the chunk under the snapshot open on `w.src` and commits it on the target
/// (after deleting what an interrupted attempt may have left in its range, and with
/// the run's fence check); then ends the snapshot and notes where the stream must be
/// before the chunk counts as copied.
async fn load_chunk(
    w: &mut Worker,
    spec: &TaskSpec,
    fence: &Fence,
    job: &TableJob,
    range: Option<&KeyRange>,
    seen: &Seen,
) -> Result<Loaded> {
    let what = || match range {
        Some(r) => format!(
            "backfilling {} (keys {:?}..{:?})",
            job.source.id, r.lo, r.hi
        ),
        None => format!("backfilling {}", job.source.id),
    };
    let begin = w.dst.dialect().begin();
    if let Err(e) = w.dst.exec(begin).await {
        let _ = w.src.exec("ROLLBACK").await;
        return Err(e.context(what()));
    }
    let loaded = async {
        clear_range(&mut w.dst, job, range).await?;
        let rows = copy_rows(&mut w.src, &mut w.dst, job, range, &|_| {}).await?;
        w.src.exec("COMMIT").await?;
        // after everything the snapshot saw (a marker written now, or its position)
        let until = connector(spec.source.engine)
            .chunk_until(&mut *w.src, seen)
            .await?;
        Ok::<_, Error>(Loaded { rows, until })
    }
    .await;
    let loaded = match loaded {
        Ok(l) => l,
        Err(e) => {
            let _ = w.dst.exec("ROLLBACK").await;
            let _ = w.src.exec("ROLLBACK").await;
            return Err(e.context(what()));
        }
    };
    // one round trip: nothing can come between the check and the COMMIT
    let commit = format!("{}; COMMIT", fence.check_sql(&w.dst));
    if let Err(e) = w.dst.exec(&commit).await {
        let _ = w.dst.exec("ROLLBACK").await;
        return Err(fence.explain(&mut w.dst, e).await.context(what()));
    }
    Ok(loaded)
}

/// Deletes the target's rows in the chunk's range, if it has any: a load committed
/// before a crash whose progress row never moved past it.
async fn clear_range(dst: &mut Conn, job: &TableJob, range: Option<&KeyRange>) -> Result<()> {
    let mut cond = Vec::new();
    if let Some(r) = range {
        let col = dst.ident(&r.column);
        if let Some(l) = r.lo {
            cond.push(format!("{col} >= {l}"));
        }
        if let Some(h) = r.hi {
            cond.push(format!("{col} < {h}"));
        }
    }
    let filter = if cond.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", cond.join(" AND "))
    };
    let table = dst.qualified(&job.target);
    let any = format!("SELECT 1 FROM {table}{filter} LIMIT 1");
    if !dst.query_text(&any).await?.is_empty() {
        dst.exec(&format!("DELETE FROM {table}{filter}")).await?;
    }
    Ok(())
}
