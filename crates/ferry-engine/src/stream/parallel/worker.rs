//! The apply workers: each owns a target connection (an [`Applier`]) and applies
//! the batches the dispatcher streams to it, committing each only when every
//! earlier batch has committed.

use crate::checkpoint::{CheckpointStore, Fence};
use crate::conn::{Conn, Role};
use crate::schema::mapping::NameMap;
use crate::stream::apply::{now_us, Applier};
use ferry_core::change::{RowOp, Shape};
use ferry_core::{Engine, Error, Position, Result, TableId, TaskSpec};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};

/// Messages buffered per worker: enough to keep it busy while the dispatcher reads
/// ahead, few enough that a stalled worker stops the dispatcher soon.
const WORKER_QUEUE: usize = 1024;

/// How long a worker waits for a row lock before giving up: a wait that long is an
/// ordering the dependency keys did not see (two workers waiting for each other
/// across the commit order); the stream then restarts and applies that stretch on
/// one connection.
pub(crate) const LOCK_TIMEOUT_SECS: u64 = 10;

/// What the dispatcher tells a worker, in the order the worker must act on it.
pub(crate) enum Msg {
    /// A source transaction starts (its position names it in errors).
    Txn(Option<Position>),
    /// A row change.
    Row(Arc<Shape>, RowOp),
    /// Tables emptied.
    Truncate(Vec<TableId>),
    /// The source transaction ends (counted; committed with its batch).
    EndTxn,
    /// Wait until batch `seq` (and so every batch before it) has committed.
    WaitFor(u64),
    /// A subtransaction of an in-progress transaction starts.
    Savepoint(u32),
    /// A subtransaction of an in-progress transaction rolled back.
    RollbackTo(u32),
    /// The in-progress transaction aborted as a whole.
    Rollback,
    /// Commit the open batch as number `seq`, at `position`, once `seq - 1` has.
    Commit {
        seq: u64,
        position: Position,
        commit_time_us: Option<i64>,
    },
}

/// What one committed batch did (for acks, metrics and the summary).
#[derive(Debug)]
pub(crate) struct Report {
    pub seq: u64,
    pub position: Position,
    pub rows: u64,
    pub txns: u64,
    pub bytes: u64,
    pub unmatched: u64,
    pub lag_us: Option<i64>,
    pub commit_secs: f64,
}

/// A worker's word to the dispatcher.
pub(crate) enum Reply {
    /// A batch committed (sent in commit order).
    Committed(Report),
    /// The worker failed; its open transaction is rolled back.
    Failed { worker: usize, error: Error },
}

/// State every worker sees.
pub(crate) struct Shared {
    /// The last batch committed: batches commit in this order.
    pub committed: watch::Sender<u64>,
    /// Set when the attempt ends (a worker failed, the dispatcher stopped): every
    /// worker rolls back and exits.
    pub abort: watch::Sender<bool>,
}

/// One worker as the dispatcher sees it.
pub(crate) struct Handle {
    pub tx: mpsc::Sender<Msg>,
    /// The last batch given to it (it is free once that one committed).
    pub last_seq: u64,
    /// The in-progress transaction it is reserved for.
    pub reserved: Option<u32>,
    task: crate::abort_on_drop::AbortOnDrop<()>,
}

/// The workers of one stream attempt.
pub(crate) struct Pool {
    pub workers: Vec<Handle>,
    pub shared: Arc<Shared>,
    pub replies: mpsc::Receiver<Reply>,
}

impl Pool {
    /// Opens `n` target sessions for the run holding `fence`, each joined to the
    /// task's writers (so that a newer run fences and ends them all).
    pub(crate) async fn open(
        spec: &TaskSpec,
        fence: &Fence,
        names: &NameMap,
        n: usize,
        inflight: usize,
    ) -> Result<Pool> {
        let shared = Arc::new(Shared {
            committed: watch::channel(0).0,
            abort: watch::channel(false).0,
        });
        // every batch in flight replies at most once, every worker fails at most once
        let (reply_tx, replies) = mpsc::channel(inflight + n + 8);
        let mut workers = Vec::with_capacity(n);
        for i in 0..n {
            let mut conn = Conn::open(spec, Role::Target).await?;
            conn.join_writers(&spec.name, Some(i)).await?;
            worker_session(&mut conn, spec.target.engine).await?;
            let applier =
                Applier::new(conn, spec.source.engine, fence.clone(), names.clone()).await?;
            let (tx, rx) = mpsc::channel(WORKER_QUEUE);
            let task = crate::abort_on_drop::AbortOnDrop::spawn(work(
                i,
                applier,
                rx,
                shared.clone(),
                reply_tx.clone(),
            ));
            workers.push(Handle {
                tx,
                last_seq: 0,
                reserved: None,
                task,
            });
        }
        Ok(Pool {
            workers,
            shared,
            replies,
        })
    }

    /// Stops every worker: what they have not committed is rolled back (it is read
    /// again from the committed position).
    pub(crate) async fn shutdown(self) {
        self.shared.abort.send_replace(true);
        let Pool { workers, .. } = self;
        for w in workers {
            drop(w.tx);
            // a worker inside a statement finishes it (bounded by the lock timeout);
            // one that does not is dropped with its connection (the server rolls back)
            let _ = tokio::time::timeout(Duration::from_secs(5), w.task).await;
        }
    }
}

/// Session settings of a worker: a lock wait past [`LOCK_TIMEOUT_SECS`] fails (an
/// undetected cross-worker wait ends in a restart, not a hang), and MySQL/MariaDB
/// workers read committed rows (no gap locks between workers inserting into the
/// same key range).
async fn worker_session(conn: &mut Conn, engine: Engine) -> Result<()> {
    match engine {
        Engine::Postgres => {
            conn.exec(&format!("SET lock_timeout = '{LOCK_TIMEOUT_SECS}s'"))
                .await
        }
        Engine::MySql => {
            conn.exec(&format!(
                "SET SESSION innodb_lock_wait_timeout = {LOCK_TIMEOUT_SECS}"
            ))
            .await?;
            conn.exec("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
                .await
        }
    }
}

/// A worker's life: applies until told to stop, rolls back what it did not commit.
async fn work(
    idx: usize,
    mut applier: Applier,
    mut rx: mpsc::Receiver<Msg>,
    shared: Arc<Shared>,
    replies: mpsc::Sender<Reply>,
) {
    let result = apply_messages(&mut applier, &mut rx, &shared, &replies).await;
    applier.rollback().await;
    if let Err(error) = result {
        let _ = replies.send(Reply::Failed { worker: idx, error }).await;
        shared.abort.send_replace(true);
    }
}

/// Waits until batch `seq` has committed; false when the attempt is aborted.
async fn wait_committed(shared: &Shared, seq: u64) -> bool {
    let mut committed = shared.committed.subscribe();
    let mut abort = shared.abort.subscribe();
    tokio::select! {
        r = committed.wait_for(|c| *c >= seq) => r.is_ok(),
        _ = abort.wait_for(|a| *a) => false,
    }
}

async fn apply_messages(
    applier: &mut Applier,
    rx: &mut mpsc::Receiver<Msg>,
    shared: &Shared,
    replies: &mpsc::Sender<Reply>,
) -> Result<()> {
    let mut abort = shared.abort.subscribe();
    loop {
        let msg = tokio::select! {
            m = rx.recv() => m,
            _ = abort.wait_for(|a| *a) => return Ok(()),
        };
        let Some(msg) = msg else { return Ok(()) };
        match msg {
            Msg::Txn(at) => applier.source_transaction(at),
            Msg::Row(shape, op) => applier.row(&shape, op).await?,
            Msg::Truncate(tables) => applier.truncate(&tables).await?,
            Msg::EndTxn => applier.end_source_txn(),
            Msg::WaitFor(seq) => {
                if !wait_committed(shared, seq).await {
                    return Ok(());
                }
            }
            Msg::Savepoint(sub) => applier.statement(&format!("SAVEPOINT s{sub}")).await?,
            Msg::RollbackTo(sub) => {
                applier
                    .statement(&format!("ROLLBACK TO SAVEPOINT s{sub}"))
                    .await?
            }
            Msg::Rollback => applier.rollback().await,
            Msg::Commit {
                seq,
                position,
                commit_time_us,
            } => {
                // the batch's statements run now, in parallel with the other
                // workers; only the checkpoint rows and the COMMIT wait for the turn
                applier.bulk_conn().await?;
                if !wait_committed(shared, seq - 1).await {
                    return Ok(());
                }
                let rows = applier.open_rows();
                let txns = applier.open_txns();
                let unmatched = applier.applied.unmatched;
                let started = Instant::now();
                applier.commit(&position, commit_time_us).await?;
                let report = Report {
                    seq,
                    position,
                    rows,
                    txns,
                    bytes: applier.take_open_bytes(),
                    unmatched: applier.applied.unmatched - unmatched,
                    lag_us: commit_time_us.map(|ct| (now_us() - ct).max(0)),
                    commit_secs: started.elapsed().as_secs_f64(),
                };
                // the report goes out before the turn passes: reports arrive in
                // commit order
                let _ = replies.send(Reply::Committed(report)).await;
                shared.committed.send_replace(seq);
            }
        }
    }
}
