//! The applier's side of one stream attempt: events from the log reader go to the
//! [`Applier`] (and the backfills of added tables), grouped into target
//! transactions that commit at source transaction boundaries with their position.

use crate::checkpoint::{CheckpointStore, TableStage};
use crate::conn::{Conn, Role};
use crate::factory::connector;
use crate::metrics::Metrics;
use crate::phase::{Phase, Phases};
use crate::schema::mapping::NameMap;
use crate::stream::apply::{now_us, restart, Applier};
use crate::stream::backfill::Backfill;
use crate::stream::parallel::worker::Pool;
use crate::stream::parallel::ParallelState;
use crate::stream::{Outcome, StreamOptions, StreamSummary};
use crate::throttle::Throttle;
use ferry_connector::DdlChange;
use ferry_core::change::{Event, RowOp, Shape};
use ferry_core::{Error, ErrorKind, Position, Result, TableId, TaskSpec};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};

/// A target transaction is committed at a source commit once it holds this many
/// source transactions, or has been open this long, or the reader has nothing queued.
const GROUP_TXNS: u64 = 200;
const GROUP_TIME: Duration = Duration::from_millis(500);
/// How often a position reached without changes of ours is recorded on the target.
const QUIET_SAVE: Duration = Duration::from_secs(5);
/// How often progress is logged.
const LOG_EVERY: Duration = Duration::from_secs(5);

/// What one stream attempt's applier loop needs from the attempt.
pub(crate) struct ApplyLoop<'a> {
    /// The task.
    pub spec: &'a TaskSpec,
    /// Tables a resumed copy read after the stream's start, with the position they hold.
    pub watermarks: &'a HashMap<TableId, Position>,
    /// The backfills of tables added to the task.
    pub backfill: &'a mut Backfill,
    /// A position a chunk must not be read before (set when one had to be read again).
    pub hold: &'a mut Option<Position>,
    /// Writes the changes to the target.
    pub applier: &'a mut Applier,
    /// The last position committed on the target, for the log reader.
    pub ack: &'a watch::Sender<Option<Position>>,
    /// Return once this is applied.
    pub goal: Option<&'a Position>,
    /// How the phase runs.
    pub opts: &'a StreamOptions,
    /// Counters.
    pub metrics: &'a Metrics,
    /// Where the phase is.
    pub phases: &'a Phases,
    /// What the phase did, across attempts.
    pub summary: &'a mut StreamSummary,
    /// Source → target names.
    pub names: &'a NameMap,
    /// The apply speed limit.
    pub throttle: &'a Throttle,
    /// The parallel apply's memory across attempts.
    pub par: &'a mut ParallelState,
    /// The workers of a parallel attempt (`None`: this attempt applies on one
    /// connection, through `applier`).
    pub pool: Option<&'a mut Pool>,
    /// Target connections the task may apply on (`apply_jobs`).
    pub jobs: usize,
}

/// The loop's own state, between events.
struct State {
    /// The last position committed on the target.
    applied: Position,
    /// Since when the target transaction holds work.
    open_since: Option<Instant>,
    /// The source commit the open work may commit at, with its commit time.
    pending: Option<(Position, Option<i64>)>,
    /// Between a source transaction's begin and commit.
    in_source_txn: bool,
    /// Tables whose changes in the current source transaction a resumed copy holds.
    skip: HashSet<TableId>,
    /// A position reached with nothing of ours to commit.
    quiet: Option<Position>,
    last_quiet_save: Instant,
    last_log: Instant,
    logged_rows: u64,
    logged_txns: u64,
    /// Where the log was last seen to be, between transactions.
    seen_to: Position,
    /// A copied chunk may commit right away (do not wait for an event).
    commit_now: bool,
    /// Added tables were being copied (to say when they are done).
    backfilling: bool,
    /// Row changes and about their bytes in the current source transaction (what
    /// the speed limit meters).
    txn_rows: u64,
    txn_bytes: u64,
    /// The backfill ended in this attempt.
    backfill_done: bool,
}

/// What to do after an event.
enum Next {
    /// Settle commits and progress as usual.
    Settle,
    /// Read the next event at once.
    Read,
}

impl ApplyLoop<'_> {
    /// Applies events from `rx` until caught up (with a goal), stopped, or failed.
    pub(crate) async fn run(
        mut self,
        start: &Position,
        rx: &mut mpsc::Receiver<Event>,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<Outcome> {
        if self.backfill.is_idle() && self.goal.is_some_and(|g| start.reached(g) && start != g) {
            self.summary.position = Some(start.to_string());
            return Ok(Outcome::CaughtUp);
        }
        if let Some(pool) = self.pool.take() {
            return crate::stream::parallel::dispatch::run(&mut self, pool, start, rx, shutdown)
                .await;
        }
        let mut st = State {
            applied: start.clone(),
            open_since: None,
            pending: None,
            in_source_txn: false,
            skip: HashSet::new(),
            quiet: None,
            last_quiet_save: Instant::now(),
            last_log: Instant::now(),
            logged_rows: self.metrics.rows.load(Ordering::Relaxed),
            logged_txns: self.metrics.txns.load(Ordering::Relaxed),
            seen_to: start.clone(),
            commit_now: false,
            backfilling: !self.backfill.is_idle(),
            txn_rows: 0,
            txn_bytes: 0,
            backfill_done: false,
        };
        loop {
            // a table added to the task: its next chunk, between two source transactions
            let wants_chunk = !st.in_source_txn
                && !self.backfill.is_idle()
                && !self.backfill.in_flight()
                && self.hold.as_ref().is_none_or(|h| st.seen_to.reached(h));
            if wants_chunk {
                self.copy_chunk(&mut st).await?;
            }
            // a chunk that may commit right away does not wait for the next event
            if !st.commit_now {
                // a chunk that could not start (its snapshot missed a streamed
                // transaction) tries again soon, even if the log stays quiet
                let retry_chunk = wants_chunk && !self.backfill.in_flight();
                let ev = tokio::select! {
                    ev = rx.recv() => ev,
                    _ = shutdown.changed() => return Ok(Outcome::Stopped),
                    _ = tokio::time::sleep(Duration::from_millis(20)), if retry_chunk => continue,
                };
                let Some(ev) = ev else {
                    return Err(Error::transient("the log reader stopped")
                        .with_kind(ErrorKind::ReaderStopped));
                };
                if let Next::Read = self.on_event(&mut st, ev).await? {
                    continue;
                }
            }
            if self.settle_quiet(&mut st).await?
                || self.commit_if_due(&mut st, rx.is_empty()).await?
            {
                return Ok(Outcome::CaughtUp);
            }
            self.back_to_parallel(&st)?;
            self.log_progress(&mut st);
        }
    }

    /// Reads the next chunk of an added table into the open target transaction.
    async fn copy_chunk(&mut self, st: &mut State) -> Result<()> {
        if self.backfill.copy_next(self.applier).await? {
            st.open_since.get_or_insert_with(Instant::now);
            if self.backfill.may_commit(&st.seen_to) {
                // its snapshot saw nothing the stream has not passed (an idle source)
                let ct = st.pending.take().and_then(|(_, ct)| ct);
                st.pending = Some((st.seen_to.clone(), ct));
                st.commit_now = true;
            }
        }
        Ok(())
    }

    /// Hands one event on.
    async fn on_event(&mut self, st: &mut State, ev: Event) -> Result<Next> {
        match ev {
            Event::Begin { marker, xid } => self.on_begin(st, marker, xid),
            Event::Row { shape, op } => self.on_row(st, &shape, op).await?,
            Event::Truncate(tables) => self.on_truncate(st, tables).await?,
            Event::Reshape { old, new } => {
                self.applier.reshape(&old, &new).await?;
                self.backfill.reshaped(&new.table);
            }
            Event::Ddl {
                schema,
                statement,
                position,
            } => {
                self.on_ddl(st, &schema, &statement, position).await?;
                return Ok(Next::Read);
            }
            Event::Commit {
                position,
                commit_time_us,
            } => {
                self.throttle.take(st.txn_rows, st.txn_bytes).await;
                (st.txn_rows, st.txn_bytes) = (0, 0);
                self.on_commit(st, position, commit_time_us)
            }
            Event::Idle { position } => self.on_idle(st, position),
            Event::InProgress { xid, .. } => {
                return Err(ferry_core::change::in_progress_not_requested(xid))
            }
        }
        Ok(Next::Settle)
    }

    /// A source transaction begins.
    fn on_begin(&mut self, st: &mut State, marker: Option<Position>, xid: Option<u32>) {
        st.in_source_txn = true;
        self.applier.source_transaction(marker.clone());
        self.backfill.begin(marker.as_ref(), xid);
        // tables a resumed copy read after this transaction already hold it
        st.skip.clear();
        if let Some(m) = marker {
            st.skip.extend(
                self.watermarks
                    .iter()
                    .filter(|(_, w)| !m.reached(w))
                    .map(|(t, _)| t.clone()),
            );
        }
    }

    /// A row change.
    async fn on_row(
        &mut self,
        st: &mut State,
        shape: &std::sync::Arc<Shape>,
        op: RowOp,
    ) -> Result<()> {
        if !st.skip.contains(&shape.table) {
            if let Some(op) = self.backfill.filter(shape, op)? {
                st.txn_rows += 1;
                st.txn_bytes += crate::stream::parallel::row_bytes(&op);
                self.applier.row(shape, op).await?;
                st.open_since.get_or_insert_with(Instant::now);
            }
        }
        Ok(())
    }

    /// Tables truncated.
    async fn on_truncate(&mut self, st: &mut State, tables: Vec<TableId>) -> Result<()> {
        let tables: Vec<_> = tables
            .into_iter()
            .filter(|t| !st.skip.contains(t))
            .collect();
        let tables = self.backfill.truncate(tables)?;
        self.applier.truncate(&tables).await?;
        st.open_since.get_or_insert_with(Instant::now);
        Ok(())
    }

    /// A schema change the log carries as a statement: what is open commits first,
    /// the change is followed and committed at its own position.
    async fn on_ddl(
        &mut self,
        st: &mut State,
        schema: &str,
        statement: &str,
        position: Position,
    ) -> Result<()> {
        let before = st.pending.as_ref().map(|(p, _)| p).unwrap_or(&st.applied);
        if !self.backfill.may_commit(before) {
            // the chunk cannot commit before the statement: read it again after
            *self.hold = Some(position);
            return Err(restart(
                "a schema change arrived while a copied chunk waited for the stream",
            ));
        }
        if let Some((p, ct)) = st.pending.take() {
            self.commit_group(&p, ct).await?;
            self.backfill.committed(&p);
        }
        follow_ddl(self.applier, self.spec, schema, statement).await?;
        self.applier.commit(&position, None).await?;
        st.seen_to = position.clone();
        st.applied = position;
        st.open_since = None;
        self.summary.position = Some(st.applied.to_string());
        Ok(())
    }

    /// A source transaction commits.
    fn on_commit(&mut self, st: &mut State, position: Position, commit_time_us: Option<i64>) {
        st.in_source_txn = false;
        st.seen_to = position.clone();
        if self.applier.has_open_work() || st.pending.is_some() {
            self.applier.end_source_txn();
            st.pending = Some((position, commit_time_us));
        } else {
            // nothing of ours in it (other tables, other schemas)
            st.quiet = Some(position);
        }
    }

    /// The log has nothing newer than `position` right now.
    fn on_idle(&mut self, st: &mut State, position: Position) {
        if st.in_source_txn {
            return;
        }
        st.seen_to = position.clone();
        if !self.applier.has_open_work() && st.pending.is_none() {
            st.quiet = Some(position);
        } else if self.backfill.in_flight() {
            // nothing more up to here: the chunk may commit at it
            let ct = st.pending.take().and_then(|(_, ct)| ct);
            st.pending = Some((position, ct));
        }
    }

    /// The source has nothing newer for us: lets it release its log up to here, and
    /// records the position on the target now and then (an empty transaction).
    /// Returns whether the goal is reached.
    async fn settle_quiet(&mut self, st: &mut State) -> Result<bool> {
        let Some(position) = st.quiet.take() else {
            return Ok(false);
        };
        if position.reached(&st.applied) && position != st.applied {
            self.ack.send_replace(Some(position.clone()));
            let at_goal = self.goal.is_some_and(|g| position.reached(g));
            if at_goal || st.last_quiet_save.elapsed() >= QUIET_SAVE {
                self.applier.commit(&position, Some(now_us())).await?;
                st.last_quiet_save = Instant::now();
                self.metrics.set_position(&position.to_string());
                st.applied = position;
                self.summary.position = Some(st.applied.to_string());
            }
        }
        self.metrics.lag_us.store(0, Ordering::Relaxed);
        Ok(self.caught_up(st))
    }

    /// Commits at a source transaction boundary when the group is big, old, or the
    /// reader has nothing more right now (`drained`). Returns whether the goal is
    /// reached.
    async fn commit_if_due(&mut self, st: &mut State, drained: bool) -> Result<bool> {
        let Some((position, commit_time)) = &st.pending else {
            return Ok(false);
        };
        // a copied chunk commits as soon as it may: the next one waits for it
        let due = st.commit_now
            || (self.backfill.in_flight() && self.backfill.may_commit(position))
            || self.applier.open_txns() >= GROUP_TXNS
            || st.open_since.is_some_and(|t| t.elapsed() >= GROUP_TIME)
            || drained;
        if !due || st.in_source_txn || !self.backfill.may_commit(position) {
            return Ok(false);
        }
        let (position, commit_time) = (position.clone(), *commit_time);
        self.commit_group(&position, commit_time).await?;
        self.backfill.committed(&position);
        st.commit_now = false;
        if st.backfilling && self.backfill.is_idle() {
            st.backfilling = false;
            st.backfill_done = true;
            tracing::info!("the added tables are copied; they stream like the others now");
            self.phases.set(Phase::Incremental);
        }
        st.applied = position;
        st.pending = None;
        st.open_since = None;
        Ok(self.caught_up(st))
    }

    /// Ends a serial attempt that may apply in parallel again (the backfill is done,
    /// and the stretch a failed parallel attempt had read is applied): the stream
    /// restarts at the committed position with its workers.
    fn back_to_parallel(&mut self, st: &State) -> Result<()> {
        if self.jobs < 2
            || !self.backfill.is_idle()
            || st.pending.is_some()
            || st.in_source_txn
            || self.applier.has_open_work()
        {
            return Ok(());
        }
        match &self.par.serial_until {
            Some(u) if st.applied.reached(u) && &st.applied != u => {
                self.par.serial_until = None;
                Err(restart(
                    "the stretch applied on one connection is done: applying in parallel again",
                ))
            }
            Some(_) => Ok(()),
            None if st.backfill_done => Err(restart(
                "the added tables are copied: applying in parallel again",
            )),
            None => Ok(()),
        }
    }

    /// Whether everything up to the goal is applied (and no backfill is left).
    fn caught_up(&self, st: &State) -> bool {
        self.backfill.is_idle() && self.goal.is_some_and(|g| st.applied.reached(g))
    }

    /// A progress line now and then.
    fn log_progress(&self, st: &mut State) {
        if self.opts.quiet || st.last_log.elapsed() < LOG_EVERY {
            return;
        }
        let secs = st.last_log.elapsed().as_secs_f64();
        let rows = self.metrics.rows.load(Ordering::Relaxed);
        let txns = self.metrics.txns.load(Ordering::Relaxed);
        tracing::info!(
            "incremental: applied {}, {:.0} rows/s, {:.0} txn/s, lag {:.1}s",
            st.applied,
            (rows - st.logged_rows) as f64 / secs,
            (txns - st.logged_txns) as f64 / secs,
            self.metrics.lag_us.load(Ordering::Relaxed) as f64 / 1e6
        );
        (st.logged_rows, st.logged_txns) = (rows, txns);
        st.last_log = Instant::now();
    }

    /// Commits the open group of source transactions with its last position.
    async fn commit_group(&mut self, position: &Position, commit_time: Option<i64>) -> Result<()> {
        let applier = &mut *self.applier;
        let metrics = self.metrics;
        let rows = applier.open_rows();
        let txns = applier.open_txns();
        let unmatched = applier.applied.unmatched;
        let started = Instant::now();
        applier.commit(position, commit_time).await?;
        // how far behind the source this commit is: the histogram and the gauge
        let lag_us = commit_time.map(|ct| (now_us() - ct).max(0));
        metrics.observe_commit(
            lag_us.map(|l| l as f64 / 1e6),
            started.elapsed().as_secs_f64(),
        );
        metrics
            .unmatched
            .fetch_add(applier.applied.unmatched - unmatched, Ordering::Relaxed);
        metrics
            .bytes
            .fetch_add(applier.take_open_bytes(), Ordering::Relaxed);
        self.ack.send_replace(Some(position.clone()));
        metrics.rows.fetch_add(rows, Ordering::Relaxed);
        metrics.txns.fetch_add(txns, Ordering::Relaxed);
        metrics.set_position(&position.to_string());
        if let Some(l) = lag_us {
            metrics.lag_us.store(l, Ordering::Relaxed);
        }
        self.summary.txns += txns;
        self.summary.rows += rows;
        self.summary.position = Some(position.to_string());
        Ok(())
    }
}

/// Follows `CREATE TABLE` (of a table the task selects) and `DROP TABLE` from the
/// source's log (the capture classifies the statement); any other schema change on
/// a replicated table stops the task.
async fn follow_ddl(
    applier: &mut Applier,
    spec: &TaskSpec,
    schema: &str,
    statement: &str,
) -> Result<()> {
    match connector(spec.source.engine).classify_ddl(schema, statement) {
        DdlChange::CreateTable(table) => create_table(applier, spec, &table).await,
        DdlChange::DropTable(table) => {
            let target = NameMap::new(spec, &[]).target(&table);
            let stmt = format!("DROP TABLE IF EXISTS {}", applier.conn().qualified(&target));
            applier.conn().exec(&stmt).await?;
            tracing::info!("dropped {target}, which the source dropped");
            Ok(())
        }
        DdlChange::Other => Err(Error::definite(format!(
            "the source ran a schema change Ferry does not follow on a replicated table: {statement}"
        ))
        .with_hint(
            "apply the same change to the target by hand, then run the task again with \
             start_position set after this statement (see `ferry status`), or resync the table",
        )),
    }
}

/// Creates on the target a table the source created (its rows all come through
/// the stream).
async fn create_table(applier: &mut Applier, spec: &TaskSpec, table: &TableId) -> Result<()> {
    let mut src = Conn::open(spec, Role::Source).await?;
    let tables = src
        .tables(&ferry_core::select::ObjectFilter::table(table), None)
        .await?;
    let Some(t) = tables.into_iter().find(|t| &t.id == table) else {
        // dropped again since: nothing to create
        return Ok(());
    };
    let names = NameMap::new(spec, std::slice::from_ref(&t));
    let ddl = crate::schema::plan_all(&mut src, spec, std::slice::from_ref(&t), &names).await?;
    let target = names.target(&t.id);
    if applier.conn().table_state(&target).await?.is_none() {
        for d in &ddl {
            for w in crate::schema::create_table_now(applier.conn(), &target, d).await? {
                tracing::warn!("{w}");
            }
            crate::schema::add_foreign_keys(applier.conn(), &target, d).await?;
        }
        // its rows all come through the stream: nothing to copy later
        applier
            .conn()
            .set_stage(&spec.name, &target, TableStage::Streamed)
            .await?;
        tracing::info!("created {target}, which the source created");
    }
    Ok(())
}
