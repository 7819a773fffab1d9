//! The dispatcher: the apply loop of a parallel attempt. It cuts the stream into
//! batches, gives each to a worker with the waits its keys call for, and accounts
//! for the batches as they commit, in order (see the module doc of `parallel`).

use super::keys::{row_keys, Key, TableDeps};
use super::worker::{Msg, Pool, Reply, Report};
use super::{row_bytes, MAX_BATCH_KEYS};
use crate::metrics::Metrics;
use crate::stream::apply::{now_us, restart};
use crate::stream::apply_loop::ApplyLoop;
use crate::stream::Outcome;
use ferry_core::change::{Event, InProgressPart, RowOp, Shape};
use ferry_core::{Error, ErrorKind, Position, Result, TableId};
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};

/// A batch is closed at a source commit once it holds this many source
/// transactions or row changes, or has been open this long, or the reader has
/// nothing queued.
const GROUP_TXNS: u64 = 200;
const GROUP_ROWS: u64 = 20_000;
const GROUP_TIME: Duration = Duration::from_millis(500);
/// How often a position reached without changes of ours is recorded on the target.
const QUIET_SAVE: Duration = Duration::from_secs(5);
/// How often progress is logged.
const LOG_EVERY: Duration = Duration::from_secs(5);
/// Batches dispatched and not yet committed, per worker.
pub(crate) const INFLIGHT_PER_WORKER: usize = 4;

/// The batch being streamed to its worker.
struct Batch {
    seq: u64,
    worker: usize,
    txns: u64,
    rows: u64,
    opened: Instant,
    /// The last source commit in it, with its commit time.
    pending: Option<(Position, Option<i64>)>,
    /// Every batch up to this one is known to commit before the worker goes on.
    waited: u64,
    /// Its keys are recorded (false once it is a barrier).
    tracking: bool,
    keys: Vec<Key>,
}

/// An in-progress transaction and its worker.
struct InProgress {
    worker: usize,
    savepoints: HashSet<u32>,
    waited: u64,
    rows: u64,
}

/// What the dispatcher tracks between events.
struct State {
    applied: Position,
    applied_seq: u64,
    /// The last batch number given out.
    last_seq: u64,
    /// The position of the last batch given out.
    dispatched: Position,
    open: Option<Batch>,
    in_txn: bool,
    /// The current source transaction: its marker, whether a worker heard of it.
    txn_marker: Option<Position>,
    txn_sent: bool,
    txn_rows: u64,
    txn_bytes: u64,
    skip: HashSet<TableId>,
    /// Key → the last batch that wrote it.
    keys: HashMap<Key, u64>,
    /// Keys per uncommitted batch (to prune `keys` when it commits).
    batch_keys: VecDeque<(u64, Vec<Key>)>,
    /// Every later batch waits for this one before it starts (a barrier).
    floor: u64,
    deps: HashMap<TableId, TableDeps>,
    inprog: HashMap<u32, InProgress>,
    seen_to: Position,
    quiet: Option<Position>,
    last_quiet_save: Instant,
    last_log: Instant,
    logged_rows: u64,
    logged_txns: u64,
    keybuf: Vec<Key>,
}

impl State {
    fn drained(&self) -> bool {
        self.open.is_none() && self.applied_seq == self.last_seq && self.inprog.is_empty()
    }
}

/// What woke the loop.
enum Wake {
    Event(Option<Event>),
    Reply(Option<Reply>),
    Stop,
    Tick,
}

/// The parallel attempt's loop (`ApplyLoop::run` hands over when it has workers).
pub(crate) async fn run(
    lp: &mut ApplyLoop<'_>,
    pool: &mut Pool,
    start: &Position,
    rx: &mut mpsc::Receiver<Event>,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<Outcome> {
    let mut st = State {
        applied: start.clone(),
        applied_seq: 0,
        last_seq: 0,
        dispatched: start.clone(),
        open: None,
        in_txn: false,
        txn_marker: None,
        txn_sent: false,
        txn_rows: 0,
        txn_bytes: 0,
        skip: HashSet::new(),
        keys: HashMap::new(),
        batch_keys: VecDeque::new(),
        floor: 0,
        deps: HashMap::new(),
        inprog: HashMap::new(),
        seen_to: start.clone(),
        quiet: None,
        last_quiet_save: Instant::now(),
        last_log: Instant::now(),
        logged_rows: lp.metrics.rows.load(Ordering::Relaxed),
        logged_txns: lp.metrics.txns.load(Ordering::Relaxed),
        keybuf: Vec::new(),
    };
    let mut d = Dispatcher {
        lp,
        pool,
        st: &mut st,
    };
    d.run(rx, shutdown).await
}

struct Dispatcher<'a, 'b> {
    lp: &'a mut ApplyLoop<'b>,
    pool: &'a mut Pool,
    st: &'a mut State,
}

impl Dispatcher<'_, '_> {
    async fn run(
        &mut self,
        rx: &mut mpsc::Receiver<Event>,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<Outcome> {
        loop {
            let batch_open = self.st.open.is_some() && !self.st.in_txn;
            let wake = tokio::select! {
                biased;
                r = self.pool.replies.recv() => Wake::Reply(r),
                _ = shutdown.changed() => Wake::Stop,
                ev = rx.recv() => Wake::Event(ev),
                _ = tokio::time::sleep(GROUP_TIME), if batch_open => Wake::Tick,
            };
            match wake {
                Wake::Stop => return Ok(Outcome::Stopped),
                Wake::Reply(r) => self.on_reply(r).await?,
                Wake::Tick => {}
                Wake::Event(None) => {
                    return Err(Error::transient("the log reader stopped")
                        .with_kind(ErrorKind::ReaderStopped))
                }
                Wake::Event(Some(ev)) => self.on_event(ev).await?,
            }
            self.close_if_due(rx.is_empty()).await?;
            if self.settle_quiet().await? || self.caught_up() {
                return Ok(Outcome::CaughtUp);
            }
            if let Some(u) = &self.lp.par.no_in_progress_until {
                if self.st.applied.reached(u) && &self.st.applied != u {
                    self.lp.par.no_in_progress_until = None;
                }
            }
            self.log_progress();
        }
    }

    fn caught_up(&self) -> bool {
        self.st.drained() && self.lp.goal.is_some_and(|g| self.st.applied.reached(g))
    }

    /// A worker replied: a batch committed (in order), or the worker failed.
    async fn on_reply(&mut self, r: Option<Reply>) -> Result<()> {
        match r {
            Some(Reply::Committed(rep)) => {
                self.committed(rep);
                Ok(())
            }
            Some(Reply::Failed { worker, error }) => Err(self.failed(worker, error)),
            None => Err(Error::transient("the apply workers stopped")),
        }
    }

    /// Accounts for a committed batch as `commit_group` does on one connection.
    fn committed(&mut self, rep: Report) {
        let metrics: &Metrics = self.lp.metrics;
        metrics.observe_commit(rep.lag_us.map(|l| l as f64 / 1e6), rep.commit_secs);
        metrics
            .unmatched
            .fetch_add(rep.unmatched, Ordering::Relaxed);
        metrics.bytes.fetch_add(rep.bytes, Ordering::Relaxed);
        self.lp.ack.send_replace(Some(rep.position.clone()));
        metrics.rows.fetch_add(rep.rows, Ordering::Relaxed);
        metrics.txns.fetch_add(rep.txns, Ordering::Relaxed);
        metrics.set_position(&rep.position.to_string());
        if let Some(l) = rep.lag_us {
            metrics.lag_us.store(l, Ordering::Relaxed);
        }
        self.lp.summary.txns += rep.txns;
        self.lp.summary.rows += rep.rows;
        self.lp.summary.position = Some(rep.position.to_string());
        let st = &mut *self.st;
        st.applied_seq = rep.seq;
        st.applied = rep.position;
        while st.batch_keys.front().is_some_and(|(s, _)| *s <= rep.seq) {
            if let Some((s, keys)) = st.batch_keys.pop_front() {
                for k in keys {
                    if st.keys.get(&k) == Some(&s) {
                        st.keys.remove(&k);
                    }
                }
            }
        }
    }

    /// The error the attempt ends with when worker `worker` failed with `error`: the
    /// stream restarts and applies serially up to where this attempt had read (a lock
    /// timeout or deadlock is an ordering the keys did not see; any other error is
    /// met again on one connection, which reports it as it always did).
    fn failed(&mut self, worker: usize, error: Error) -> Error {
        if error.is(ErrorKind::Fenced) || error.is(ErrorKind::PositionLost) {
            return error;
        }
        // a definite error is met again on one connection (and reported from there)
        let upto = self.st.seen_to.clone();
        self.lp.par.serial_until = Some(upto.clone());
        restart(&format!(
            "apply worker {worker} failed ({}); the stream applies on one connection up to {upto}, then in parallel again",
            error.message
        ))
    }

    /// A worker stopped taking messages: its reply says why.
    async fn worker_gone(&mut self) -> Error {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        loop {
            match tokio::time::timeout_at(deadline, self.pool.replies.recv()).await {
                Ok(Some(Reply::Committed(rep))) => self.committed(rep),
                Ok(Some(Reply::Failed { worker, error })) => return self.failed(worker, error),
                _ => return Error::transient("an apply worker stopped without saying why"),
            }
        }
    }

    /// Sends `msg` to worker `w`, unless the attempt is ending.
    async fn send(&mut self, w: usize, msg: Msg) -> Result<()> {
        let tx = self.pool.workers[w].tx.clone();
        let mut abort = self.pool.shared.abort.subscribe();
        let sent = tokio::select! {
            r = tx.send(msg) => r.is_ok(),
            _ = abort.wait_for(|a| *a) => false,
        };
        if sent {
            Ok(())
        } else {
            Err(self.worker_gone().await)
        }
    }

    async fn on_event(&mut self, ev: Event) -> Result<()> {
        match ev {
            Event::Begin { marker, .. } => {
                let st = &mut *self.st;
                st.in_txn = true;
                st.txn_sent = false;
                st.txn_rows = 0;
                st.txn_bytes = 0;
                st.skip.clear();
                if let Some(m) = &marker {
                    st.skip.extend(
                        self.lp
                            .watermarks
                            .iter()
                            .filter(|(_, w)| !m.reached(w))
                            .map(|(t, _)| t.clone()),
                    );
                }
                st.txn_marker = marker;
            }
            Event::Row { shape, op } => {
                if !self.st.skip.contains(&shape.table) {
                    self.on_row(shape, op).await?;
                }
            }
            Event::Truncate(tables) => {
                let tables: Vec<_> = tables
                    .into_iter()
                    .filter(|t| !self.st.skip.contains(t))
                    .collect();
                if !tables.is_empty() {
                    let w = self.txn_worker().await?;
                    self.barrier().await?;
                    self.send(w, Msg::Truncate(tables)).await?;
                }
            }
            Event::Reshape { .. } => {
                return Err(self.to_serial("a table's columns changed"));
            }
            Event::Ddl { .. } => {
                return Err(self.to_serial("the source ran a schema statement"));
            }
            Event::Commit {
                position,
                commit_time_us,
            } => self.on_commit(position, commit_time_us).await,
            Event::Idle { position } => {
                if !self.st.in_txn {
                    self.st.seen_to = position.clone();
                    if self.st.open.is_none() {
                        self.st.quiet = Some(position);
                    }
                }
            }
            Event::InProgress { xid, part } => self.on_in_progress(xid, part).await?,
        }
        Ok(())
    }

    /// A change only the single connection applies: the stream restarts and applies
    /// serially until past the last position seen, then in parallel again.
    fn to_serial(&mut self, why: &str) -> Error {
        let at = self.st.seen_to.clone();
        self.lp.par.serial_until = Some(at.clone());
        restart(&format!(
            "{why}: the stream applies it on one connection (after {at}), then in parallel again"
        ))
    }

    /// The worker of the current source transaction (opening a batch, and telling
    /// the worker the transaction starts, when needed).
    async fn txn_worker(&mut self) -> Result<usize> {
        if self.st.open.is_none() {
            self.open_batch().await?;
        }
        let w = self.st.open.as_ref().map(|b| b.worker).unwrap_or(0);
        if !self.st.txn_sent {
            self.st.txn_sent = true;
            let at = self.st.txn_marker.clone();
            self.send(w, Msg::Txn(at)).await?;
        }
        Ok(w)
    }

    /// Opens the next batch on the free worker that will be free soonest.
    async fn open_batch(&mut self) -> Result<()> {
        let cap = INFLIGHT_PER_WORKER * self.pool.workers.len();
        while (self.st.last_seq - self.st.applied_seq) as usize >= cap {
            let r = self.pool.replies.recv().await;
            self.on_reply(r).await?;
        }
        let w = self
            .pool
            .workers
            .iter()
            .enumerate()
            .filter(|(_, h)| h.reserved.is_none())
            .min_by_key(|(_, h)| h.last_seq)
            .map(|(i, _)| i)
            .ok_or_else(|| Error::definite("no apply worker is free (a bug)"))?;
        self.st.last_seq += 1;
        let seq = self.st.last_seq;
        self.pool.workers[w].last_seq = seq;
        self.st.quiet = None;
        let mut b = Batch {
            seq,
            worker: w,
            txns: 0,
            rows: 0,
            opened: Instant::now(),
            pending: None,
            waited: self.st.applied_seq,
            tracking: true,
            keys: Vec::new(),
        };
        if self.st.floor > b.waited {
            b.waited = self.st.floor;
            let floor = self.st.floor;
            self.st.open = Some(b);
            self.send(w, Msg::WaitFor(floor)).await?;
        } else {
            self.st.open = Some(b);
        }
        Ok(())
    }

    /// The open batch waits for every earlier one, and every later one for it.
    async fn barrier(&mut self) -> Result<()> {
        let Some(b) = self.st.open.as_mut() else {
            return Ok(());
        };
        let (w, before) = (b.worker, b.seq - 1);
        b.tracking = false;
        self.st.floor = b.seq;
        if b.waited < before {
            b.waited = before;
            if before > self.st.applied_seq {
                self.send(w, Msg::WaitFor(before)).await?;
            }
        }
        Ok(())
    }

    /// The dependency keys of a row change (false: it cannot be keyed).
    async fn keys_of(&mut self, shape: &Shape, op: &RowOp) -> Result<bool> {
        let target = self.lp.names.target(&shape.table);
        if !self.st.deps.contains_key(&target) {
            let deps = TableDeps::load(self.lp.applier.conn(), &target).await?;
            self.st.deps.insert(target.clone(), deps);
        }
        self.st.keybuf.clear();
        Ok(row_keys(
            &target,
            shape,
            &self.st.deps[&target],
            op,
            &mut self.st.keybuf,
        ))
    }

    /// The latest uncommitted batch other than `own` that wrote one of the keys in
    /// `keybuf`, if later than `waited`.
    fn conflict(&self, own: u64, waited: u64) -> Option<u64> {
        self.st
            .keybuf
            .iter()
            .filter_map(|k| self.st.keys.get(k).copied())
            .filter(|s| *s != own && *s > waited && *s > self.st.applied_seq)
            .max()
    }

    async fn on_row(&mut self, shape: Arc<Shape>, op: RowOp) -> Result<()> {
        let keyed = self.keys_of(&shape, &op).await?;
        let w = self.txn_worker().await?;
        if !keyed {
            self.barrier().await?;
        } else if let Some(b) = self.st.open.as_ref() {
            let (seq, waited) = (b.seq, b.waited);
            if let Some(s) = self.conflict(seq, waited) {
                if let Some(b) = self.st.open.as_mut() {
                    b.waited = s;
                }
                self.send(w, Msg::WaitFor(s)).await?;
            }
            let st = &mut *self.st;
            if let Some(b) = st.open.as_mut() {
                if b.tracking {
                    for k in &st.keybuf {
                        if st.keys.insert(*k, b.seq) != Some(b.seq) {
                            b.keys.push(*k);
                        }
                    }
                    if b.keys.len() > MAX_BATCH_KEYS {
                        b.tracking = false;
                        st.floor = b.seq;
                    }
                }
            }
        }
        self.st.txn_rows += 1;
        self.st.txn_bytes += row_bytes(&op);
        if let Some(b) = self.st.open.as_mut() {
            b.rows += 1;
        }
        self.send(w, Msg::Row(shape, op)).await
    }

    async fn on_commit(&mut self, position: Position, commit_time_us: Option<i64>) {
        let st = &mut *self.st;
        st.in_txn = false;
        st.seen_to = position.clone();
        match st.open.as_mut() {
            Some(b) => {
                if st.txn_sent {
                    b.txns += 1;
                }
                b.pending = Some((position, commit_time_us));
            }
            None => st.quiet = Some(position),
        }
    }

    /// Closes the open batch at its last source commit when it is big, old, or the
    /// reader has nothing more right now (`drained`).
    async fn close_if_due(&mut self, drained: bool) -> Result<()> {
        if self.st.in_txn {
            return Ok(());
        }
        // a transaction just ended: it is complete on its worker
        if self.st.txn_sent {
            self.st.txn_sent = false;
            if let Some(w) = self.st.open.as_ref().map(|b| b.worker) {
                self.send(w, Msg::EndTxn).await?;
            }
            self.lp
                .throttle
                .take(self.st.txn_rows, self.st.txn_bytes)
                .await;
        }
        let Some(b) = self.st.open.as_ref() else {
            return Ok(());
        };
        if b.pending.is_none() {
            return Ok(());
        }
        let due = b.txns >= GROUP_TXNS
            || b.rows >= GROUP_ROWS
            || b.opened.elapsed() >= GROUP_TIME
            || drained;
        if due {
            self.close_batch().await?;
        }
        Ok(())
    }

    /// Sends the open batch's commit.
    async fn close_batch(&mut self) -> Result<()> {
        let Some(b) = self.st.open.take() else {
            return Ok(());
        };
        let Some((position, commit_time_us)) = b.pending else {
            return Err(Error::definite(
                "a batch was closed inside a source transaction (a bug)",
            ));
        };
        self.st.dispatched = position.clone();
        self.st.batch_keys.push_back((b.seq, b.keys));
        self.send(
            b.worker,
            Msg::Commit {
                seq: b.seq,
                position,
                commit_time_us,
            },
        )
        .await
    }

    /// Part of a transaction still in progress on the source.
    async fn on_in_progress(&mut self, xid: u32, part: InProgressPart) -> Result<()> {
        if self.st.in_txn {
            return Err(Error::definite(format!(
                "the log reader sent part of in-progress transaction {xid} inside another transaction"
            )));
        }
        match part {
            InProgressPart::Row { subxid, shape, op } => {
                let w = self.in_progress_worker(xid, subxid).await?;
                let keyed = self.keys_of(&shape, &op).await?;
                let upto = if keyed {
                    let waited = self.st.inprog.get(&xid).map(|t| t.waited).unwrap_or(0);
                    self.conflict(0, waited)
                } else {
                    Some(self.st.last_seq)
                };
                if let Some(s) = upto {
                    self.in_progress_wait(xid, w, s).await?;
                }
                self.lp.throttle.take(1, row_bytes(&op)).await;
                if let Some(t) = self.st.inprog.get_mut(&xid) {
                    t.rows += 1;
                }
                self.send(w, Msg::Row(shape, op)).await
            }
            InProgressPart::Truncate { subxid, tables } => {
                let w = self.in_progress_worker(xid, subxid).await?;
                let last = self.st.last_seq;
                self.in_progress_wait(xid, w, last).await?;
                self.send(w, Msg::Truncate(tables)).await
            }
            InProgressPart::Abort { subxid } => {
                let Some(t) = self.st.inprog.get(&xid) else {
                    return Ok(());
                };
                let w = t.worker;
                if subxid == xid {
                    self.st.inprog.remove(&xid);
                    self.pool.workers[w].reserved = None;
                    self.send(w, Msg::Rollback).await
                } else if t.savepoints.contains(&subxid) {
                    self.send(w, Msg::RollbackTo(subxid)).await
                } else {
                    Ok(())
                }
            }
            InProgressPart::Commit {
                position,
                commit_time_us,
            } => {
                let Some(t) = self.st.inprog.remove(&xid) else {
                    // nothing of ours in it
                    self.on_commit(position, commit_time_us).await;
                    return Ok(());
                };
                // it commits after everything dispatched so far, before what follows
                if self.st.open.is_some() {
                    self.close_batch().await?;
                }
                self.st.seen_to = position.clone();
                self.st.last_seq += 1;
                let seq = self.st.last_seq;
                let w = t.worker;
                self.pool.workers[w].reserved = None;
                self.pool.workers[w].last_seq = seq;
                self.st.floor = seq;
                self.st.dispatched = position.clone();
                self.st.quiet = None;
                self.send(w, Msg::EndTxn).await?;
                self.send(
                    w,
                    Msg::Commit {
                        seq,
                        position,
                        commit_time_us,
                    },
                )
                .await
            }
        }
    }

    /// The worker of in-progress transaction `xid` (reserving one for a new one), with
    /// a savepoint opened for a new subtransaction `subxid`.
    async fn in_progress_worker(&mut self, xid: u32, subxid: u32) -> Result<usize> {
        if !self.st.inprog.contains_key(&xid) {
            let free: Vec<usize> = (0..self.pool.workers.len())
                .filter(|i| self.pool.workers[*i].reserved.is_none())
                .collect();
            // one worker stays for the transactions that commit meanwhile
            if free.len() < 2 {
                let at = self.st.seen_to.clone();
                self.lp.par.no_in_progress_until = Some(at.clone());
                return Err(restart(&format!(
                    "no apply worker is free for in-progress transaction {xid}: the stream \
                     restarts without in-progress transactions until after {at}"
                )));
            }
            let open = self.st.open.as_ref().map(|b| b.worker);
            let w = free
                .into_iter()
                .filter(|i| Some(*i) != open)
                .min_by_key(|i| self.pool.workers[*i].last_seq)
                .unwrap_or(0);
            self.pool.workers[w].reserved = Some(xid);
            self.st.inprog.insert(
                xid,
                InProgress {
                    worker: w,
                    savepoints: HashSet::new(),
                    waited: self.st.applied_seq,
                    rows: 0,
                },
            );
            self.send(w, Msg::Txn(None)).await?;
        }
        let Some(t) = self.st.inprog.get_mut(&xid) else {
            return Err(Error::definite("in-progress transaction lost (a bug)"));
        };
        let w = t.worker;
        if subxid != xid && t.savepoints.insert(subxid) {
            self.send(w, Msg::Savepoint(subxid)).await?;
        }
        Ok(w)
    }

    /// In-progress transaction `xid` on worker `w` waits for batch `upto` (closing
    /// the open batch first when it is that one: a wait never names an open batch).
    async fn in_progress_wait(&mut self, xid: u32, w: usize, upto: u64) -> Result<()> {
        let waited = self.st.inprog.get(&xid).map(|t| t.waited).unwrap_or(0);
        if upto <= waited || upto <= self.st.applied_seq {
            return Ok(());
        }
        if self.st.open.as_ref().is_some_and(|b| b.seq <= upto) {
            self.close_batch().await?;
        }
        if let Some(t) = self.st.inprog.get_mut(&xid) {
            t.waited = upto;
        }
        self.send(w, Msg::WaitFor(upto)).await
    }

    /// Records a position reached without changes of ours, once every batch before
    /// it has committed (an empty transaction on the coordinator's connection).
    /// Returns whether the goal is reached.
    async fn settle_quiet(&mut self) -> Result<bool> {
        if !self.st.drained() {
            return Ok(false);
        }
        let Some(position) = self.st.quiet.take() else {
            return Ok(false);
        };
        let st = &mut *self.st;
        if position.reached(&st.applied) && position != st.applied {
            self.lp.ack.send_replace(Some(position.clone()));
            let at_goal = self.lp.goal.is_some_and(|g| position.reached(g));
            if at_goal || st.last_quiet_save.elapsed() >= QUIET_SAVE {
                self.lp.applier.commit(&position, Some(now_us())).await?;
                st.last_quiet_save = Instant::now();
                self.lp.metrics.set_position(&position.to_string());
                st.applied = position.clone();
                st.dispatched = position;
                self.lp.summary.position = Some(st.applied.to_string());
            }
        }
        self.lp.metrics.lag_us.store(0, Ordering::Relaxed);
        Ok(self.caught_up())
    }

    fn log_progress(&mut self) {
        let st = &mut *self.st;
        if self.lp.opts.quiet || st.last_log.elapsed() < LOG_EVERY {
            return;
        }
        let metrics = self.lp.metrics;
        let secs = st.last_log.elapsed().as_secs_f64();
        let rows = metrics.rows.load(Ordering::Relaxed);
        let txns = metrics.txns.load(Ordering::Relaxed);
        tracing::info!(
            "incremental: applied {}, {:.0} rows/s, {:.0} txn/s, lag {:.1}s",
            st.applied,
            (rows - st.logged_rows) as f64 / secs,
            (txns - st.logged_txns) as f64 / secs,
            metrics.lag_us.load(Ordering::Relaxed) as f64 / 1e6
        );
        (st.logged_rows, st.logged_txns) = (rows, txns);
        st.last_log = Instant::now();
    }
}
