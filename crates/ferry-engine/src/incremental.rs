//! The incremental phase: stream the source's log into the target until stopped.
//!
//! A source task reads the log and sends [`Event`]s through a bounded channel; the
//! applier commits them with their position (see [`crate::apply`]). Transient faults
//! (a server restart, a cut or stalled link) end the attempt; the task reports
//! `recovering`, waits with backoff and starts again from the position the target
//! holds. Only definite errors fail the task.

use crate::apply::{now_us, Applier, RESTART};
use crate::checkpoint;
use crate::checkpoint::{CheckpointStore, StreamState, TableStage, TaskPhase, TaskRecord};
use crate::conn::{Conn, Role};
use crate::full::source_tables;
use crate::mapping::NameMap;
use crate::metrics::Metrics;
use crate::phase::{Phase, Phases};
use ferry_core::change::Event;
use ferry_core::{Engine, Error, Position, Result, Table, TaskSpec};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};

/// Events buffered between the log reader and the applier.
const CHANNEL_EVENTS: usize = 4096;
/// A target transaction is committed at a source commit once it holds this many
/// source transactions, or has been open this long, or the reader has nothing queued.
const GROUP_TXNS: u64 = 200;
const GROUP_TIME: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// How often a position reached without changes of ours is recorded on the target.
const QUIET_SAVE: Duration = Duration::from_secs(5);

/// How the incremental phase runs.
#[derive(Debug, Clone, Default)]
pub struct StreamOptions {
    /// Return once everything the source had committed at the start is applied.
    pub exit_when_caught_up: bool,
    /// No periodic progress lines.
    pub quiet: bool,
}

/// Why the phase ended.
#[derive(Debug, Clone)]
pub struct StreamSummary {
    /// Last position committed on the target.
    pub position: Option<String>,
    /// Source transactions applied in this run.
    pub txns: u64,
    /// Row changes applied in this run.
    pub rows: u64,
    /// Ended because caught up (else stopped by a signal).
    pub caught_up: bool,
    /// Recoveries from transient faults in this run.
    pub recoveries: u64,
}

enum Outcome {
    CaughtUp,
    Stopped,
}

/// What "caught up" means when the phase starts: a marker written to the
/// PostgreSQL source's WAL (its commit arrives after everything committed before
/// it), or the MySQL/MariaDB binlog's current end.
async fn catch_up_goal(spec: &TaskSpec) -> Result<Position> {
    let mut src = Conn::open(spec, Role::Source).await?;
    match &mut src {
        Conn::Pg(c) => Ok(Position::PgLsn(
            ferry_postgres::cdc::emit_marker(c, "caught-up probe").await?,
        )),
        Conn::My(_) => source_head(spec).await,
    }
}

/// The source's current log end.
pub async fn source_head(spec: &TaskSpec) -> Result<Position> {
    let mut src = Conn::open(spec, Role::Source).await?;
    match &mut src {
        Conn::Pg(c) => Ok(Position::PgLsn(ferry_postgres::cdc::current_lsn(c).await?)),
        Conn::My(c) => ferry_mysql::reader::current_position(c)
            .await?
            .ok_or_else(|| {
                Error::definite("the source has no binary log").with_hint("enable log_bin")
            }),
    }
}

/// Runs the incremental phase until caught up (if asked), stopped, or failed.
pub async fn run_incremental(
    spec: &TaskSpec,
    opts: &StreamOptions,
    metrics: Arc<Metrics>,
    phases: &Phases,
    mut shutdown: watch::Receiver<bool>,
) -> Result<StreamSummary> {
    let goal = if opts.exit_when_caught_up {
        Some(with_retry(&mut shutdown, || catch_up_goal(spec)).await?)
    } else {
        None
    };
    let mut summary = StreamSummary {
        position: None,
        txns: 0,
        rows: 0,
        caught_up: false,
        recoveries: 0,
    };
    let mut backoff = Duration::from_secs(1);
    let mut hold: Option<Position> = None;
    loop {
        let started = Instant::now();
        let result = attempt(
            spec,
            opts,
            goal.as_ref(),
            &metrics,
            phases,
            &mut summary,
            &mut shutdown,
            &mut hold,
        )
        .await;
        match result {
            Ok(Outcome::CaughtUp) => {
                summary.caught_up = true;
                phases.set(Phase::CaughtUp);
                best_effort_state(spec, StreamState::Stopped, None).await;
                return Ok(summary);
            }
            Ok(Outcome::Stopped) => {
                phases.set(Phase::Stopped);
                best_effort_state(spec, StreamState::Stopped, None).await;
                return Ok(summary);
            }
            Err(e) if e.is_transient() => {
                if e.message.starts_with(RESTART) {
                    tracing::info!("{}", e.message);
                    continue;
                }
                if started.elapsed() > Duration::from_secs(60) {
                    backoff = Duration::from_secs(1);
                }
                summary.recoveries += 1;
                phases.set(Phase::Recovering {
                    reason: e.message.clone(),
                });
                metrics.recoveries.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    "recovering: {} — retrying in {}s",
                    e.message,
                    backoff.as_secs()
                );
                best_effort_state(spec, StreamState::Recovering, Some(&e.message)).await;
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = shutdown.changed() => {
                        phases.set(Phase::Stopped);
                        return Ok(summary);
                    }
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
            Err(e) => {
                phases.set(Phase::Failed {
                    error: e.to_string(),
                });
                best_effort_state(spec, StreamState::Failed, Some(&e.to_string())).await;
                return Err(e);
            }
        }
    }
}

/// Retries a startup step through transient faults until it works or we are stopped.
async fn with_retry<T, F, Fut>(shutdown: &mut watch::Receiver<bool>, f: F) -> Result<T>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    let mut backoff = Duration::from_secs(1);
    loop {
        match f().await {
            Err(e) if e.is_transient() => {
                tracing::warn!(
                    "recovering: {} — retrying in {}s",
                    e.message,
                    backoff.as_secs()
                );
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = shutdown.changed() => return Err(Error::definite("stopped")),
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
            other => return other,
        }
    }
}

async fn best_effort_state(spec: &TaskSpec, state: StreamState, reason: Option<&str>) {
    let work = async {
        let mut dst = Conn::open(spec, Role::Target).await?;
        dst.set_stream_state(&spec.name, state, reason).await
    };
    let _ = tokio::time::timeout(Duration::from_secs(5), work).await;
}

#[allow(clippy::too_many_arguments)]
async fn attempt(
    spec: &TaskSpec,
    opts: &StreamOptions,
    goal: Option<&Position>,
    metrics: &Arc<Metrics>,
    phases: &Phases,
    summary: &mut StreamSummary,
    shutdown: &mut watch::Receiver<bool>,
    hold: &mut Option<Position>,
) -> Result<Outcome> {
    let mut dst = Conn::open(spec, Role::Target).await?;
    dst.ensure().await?;
    checkpoint::fence_writers(&mut dst, &spec.name).await?;
    dst.join_writers(&spec.name, None).await?;
    let start = match dst.task(&spec.name).await? {
        Some(TaskRecord {
            position: Some(p), ..
        }) => p,
        _ => {
            return Err(Error::definite(format!(
                "task {} has no start position on the target",
                spec.name
            ))
            .with_hint("run it with mode full+incremental first, or give start_position"))
        }
    };
    dst.set_task(&spec.name, TaskPhase::Incremental, None)
        .await?;
    dst.set_stream_state(&spec.name, StreamState::Incremental, None)
        .await?;
    let watermarks = dst.watermarks(&spec.name).await?;
    metrics.set_position(&start.to_string());
    tracing::info!(
        "stream from {start}; watermarks: {}",
        if watermarks.is_empty() {
            "none".to_string()
        } else {
            watermarks
                .iter()
                .map(|(t, p)| format!("{t} at {p}"))
                .collect::<Vec<_>>()
                .join(", ")
        }
    );
    let mut src = Conn::open(spec, Role::Source).await?;
    let tables = source_tables(&mut src, spec).await?;
    if let Conn::Pg(pg) = &src {
        // the slot carries exactly the selected tables (an abandoned edit may have
        // left others in the publication)
        ferry_postgres::cdc::sync_publication(
            pg,
            &ferry_postgres::cdc::slot_name(&spec.name),
            &tables,
        )
        .await?;
    }
    let names = NameMap::new(spec, &tables);
    drop(src);
    tracing::debug!("source catalog read: {} tables", tables.len());
    let mut backfill = crate::backfill::Backfill::load(spec, &mut dst, &tables).await?;
    phases.set(if backfill.is_idle() {
        Phase::Incremental
    } else {
        Phase::Backfill
    });
    let mut applier = Applier::new(dst, spec.source.engine, &spec.name, names).await?;

    let (tx, mut rx) = mpsc::channel::<Event>(CHANNEL_EVENTS);
    let (ack_tx, ack_rx) = watch::channel(match &start {
        Position::PgLsn(l) => *l,
        _ => 0,
    });
    let reader = crate::abort_on_drop::AbortOnDrop::spawn(read_log(
        spec.clone(),
        start.clone(),
        tables,
        tx,
        ack_rx,
    ));
    let result = apply_loop(
        spec,
        &watermarks,
        &mut backfill,
        hold,
        &mut applier,
        &mut rx,
        &ack_tx,
        goal,
        &start,
        opts,
        metrics,
        phases,
        summary,
        shutdown,
    )
    .await;
    drop(rx);
    // a reader that stopped by itself explains why the channel closed; one still
    // running (idle, or stuck on a stalled link) has nothing more to say: stop it now
    let reader_ended = matches!(&result, Err(e) if e.message.contains("log reader stopped"));
    let read_result = if reader_ended || reader.0.is_finished() {
        match tokio::time::timeout(Duration::from_secs(5), reader).await {
            Ok(r) => r,
            Err(_) => Ok(Err(Error::transient("the log reader did not stop"))),
        }
    } else {
        drop(reader);
        Ok(Err(Error::transient("the log reader was stopped")))
    };
    if result.is_err() || !matches!(result, Ok(Outcome::CaughtUp)) {
        applier.rollback().await;
    }
    match (result, read_result) {
        // the reader's error explains why the channel closed
        (Err(e), Ok(Err(re))) if e.message.contains("log reader stopped") => Err(re),
        (Err(e), Err(j)) if e.message.contains("log reader stopped") => {
            Err(Error::definite(format!("the log reader crashed: {j}")))
        }
        (r, _) => r,
    }
}

/// Reads the source log from `start` into `tx`.
async fn read_log(
    spec: TaskSpec,
    start: Position,
    tables: Vec<Table>,
    tx: mpsc::Sender<Event>,
    mut acked: watch::Receiver<u64>,
) -> Result<()> {
    match (&start, spec.source.engine) {
        (Position::PgLsn(lsn), Engine::Postgres) => {
            let slot = ferry_postgres::cdc::slot_name(&spec.name);
            let catalog = ferry_postgres::connect(&spec.source).await?;
            ferry_postgres::cdc::verify_slot(&catalog, &slot).await?;
            let mut repl = ferry_postgres::replication::ReplConn::connect(&spec.source).await?;
            let from = ferry_postgres::cdc::StreamFrom {
                slot: &slot,
                start: *lsn,
                tables,
                native_arrays: spec.target.engine == Engine::Postgres,
            };
            ferry_postgres::cdc::stream(&mut repl, &catalog, from, &tx, &mut acked).await
        }
        (Position::Binlog { .. }, Engine::MySql) => {
            ferry_mysql::binlog::stream(
                &spec.source,
                &spec.name,
                &start,
                spec.objects.clone(),
                tables,
                &tx,
            )
            .await
        }
        _ => Err(Error::definite(format!(
            "the stored position {start} does not belong to a {} source",
            spec.source.engine
        ))),
    }
}

/// Commits the open group of source transactions with its last position.
async fn commit_group(
    applier: &mut Applier,
    ack: &watch::Sender<u64>,
    position: &Position,
    commit_time: Option<i64>,
    metrics: &Metrics,
    summary: &mut StreamSummary,
) -> Result<()> {
    let rows = applier.open_rows();
    let txns = applier.open_txns();
    let unmatched = applier.applied.unmatched;
    let started = std::time::Instant::now();
    applier.commit(position, commit_time).await?;
    metrics.observe_commit(
        commit_time.map(|ct| (now_us() - ct) as f64 / 1e6),
        started.elapsed().as_secs_f64(),
    );
    metrics
        .unmatched
        .fetch_add(applier.applied.unmatched - unmatched, Ordering::Relaxed);
    metrics
        .bytes
        .fetch_add(applier.take_open_bytes(), Ordering::Relaxed);
    if let Position::PgLsn(l) = position {
        ack.send_replace(*l);
    }
    metrics.rows.fetch_add(rows, Ordering::Relaxed);
    metrics.txns.fetch_add(txns, Ordering::Relaxed);
    metrics.set_position(&position.to_string());
    if let Some(ct) = commit_time {
        metrics
            .lag_us
            .store((now_us() - ct).max(0), Ordering::Relaxed);
    }
    summary.txns += txns;
    summary.rows += rows;
    summary.position = Some(position.to_string());
    Ok(())
}

/// Follows `CREATE TABLE` (of a table the task selects) and `DROP TABLE` from a
/// MySQL/MariaDB binlog; any other schema change on a replicated table stops the task.
async fn follow_ddl(
    applier: &mut Applier,
    spec: &TaskSpec,
    schema: &str,
    statement: &str,
) -> Result<()> {
    let words = ferry_mysql::binlog::ddl_words(statement);
    let up: Vec<String> = words
        .iter()
        .take(2)
        .map(|w| w.to_ascii_uppercase())
        .collect();
    let table = ferry_mysql::binlog::ddl_table(&words, schema);
    let refuse = || {
        Error::definite(format!(
            "the source ran a schema change Ferry does not follow on a replicated table: {statement}"
        ))
        .with_hint(
            "apply the same change to the target by hand, then run the task again with \
             start_position set after this statement (see `ferry status`), or resync the table",
        )
    };
    let (Some(table), [verb, object]) = (table, up.as_slice()) else {
        return Err(refuse());
    };
    match (verb.as_str(), object.as_str()) {
        ("CREATE", "TABLE") => {
            let mut src = Conn::open(spec, Role::Source).await?;
            let tables = src
                .tables(&ferry_core::select::ObjectFilter::table(&table), None)
                .await?;
            let Some(t) = tables.into_iter().find(|t| t.id == table) else {
                // dropped again since: nothing to create
                return Ok(());
            };
            let names = NameMap::new(spec, std::slice::from_ref(&t));
            let ddl =
                crate::full::plan_all(&mut src, spec, std::slice::from_ref(&t), &names).await?;
            let target = names.target(&t.id);
            if applier.conn().table_state(&target).await?.is_none() {
                for d in &ddl {
                    for w in crate::full::create_table_now(applier.conn(), &target, d).await? {
                        tracing::warn!("{w}");
                    }
                    crate::full::add_foreign_keys(applier.conn(), &target, d).await?;
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
        ("DROP", "TABLE") => {
            let target = NameMap::new(spec, &[]).target(&table);
            let stmt = format!("DROP TABLE IF EXISTS {}", applier.conn().qualified(&target));
            applier.conn().exec(&stmt).await?;
            tracing::info!("dropped {target}, which the source dropped");
            Ok(())
        }
        _ => Err(refuse()),
    }
}

#[allow(clippy::too_many_arguments)]
async fn apply_loop(
    spec: &TaskSpec,
    watermarks: &std::collections::HashMap<ferry_core::TableId, Position>,
    backfill: &mut crate::backfill::Backfill,
    hold: &mut Option<Position>,
    applier: &mut Applier,
    rx: &mut mpsc::Receiver<Event>,
    ack: &watch::Sender<u64>,
    goal: Option<&Position>,
    start: &Position,
    opts: &StreamOptions,
    metrics: &Arc<Metrics>,
    phases: &Phases,
    summary: &mut StreamSummary,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<Outcome> {
    let mut applied = start.clone();
    if backfill.is_idle() && goal.is_some_and(|g| applied.reached(g) && applied != *g) {
        summary.position = Some(applied.to_string());
        return Ok(Outcome::CaughtUp);
    }
    let mut open_since: Option<Instant> = None;
    let mut pending: Option<(Position, Option<i64>)> = None;
    let mut in_source_txn = false;
    let mut skip: std::collections::HashSet<ferry_core::TableId> = Default::default();
    let mut quiet: Option<Position> = None;
    let mut last_quiet_save = Instant::now();
    let mut last_log = Instant::now();
    let (mut logged_rows, mut logged_txns) = (
        metrics.rows.load(Ordering::Relaxed),
        metrics.txns.load(Ordering::Relaxed),
    );
    // where the log was last seen to be, between transactions
    let mut seen_to = start.clone();
    let mut commit_now = false;
    let mut backfilling = !backfill.is_idle();
    loop {
        // a table added to the task: its next chunk, between two source transactions
        let wants_chunk = !in_source_txn
            && !backfill.is_idle()
            && !backfill.in_flight()
            && hold.as_ref().is_none_or(|h| seen_to.reached(h));
        if wants_chunk && backfill.copy_next(applier).await? {
            open_since.get_or_insert_with(Instant::now);
            if backfill.may_commit(&seen_to) {
                // its snapshot saw nothing the stream has not passed (an idle source)
                let ct = pending.take().and_then(|(_, ct)| ct);
                pending = Some((seen_to.clone(), ct));
                commit_now = true;
            }
        }
        // a chunk that may commit right away does not wait for the next event
        if !commit_now {
            // a chunk that could not start (its snapshot missed a streamed
            // transaction) tries again soon, even if the log stays quiet
            let retry_chunk = wants_chunk && !backfill.in_flight();
            let ev = tokio::select! {
                ev = rx.recv() => ev,
                _ = shutdown.changed() => return Ok(Outcome::Stopped),
                _ = tokio::time::sleep(Duration::from_millis(20)), if retry_chunk => continue,
            };
            let Some(ev) = ev else {
                return Err(Error::transient("the log reader stopped"));
            };
            match ev {
                Event::Begin { marker, xid } => {
                    in_source_txn = true;
                    applier.source_transaction(marker.clone());
                    backfill.begin(marker.as_ref(), xid);
                    // tables a resumed copy read after this transaction already hold it
                    skip.clear();
                    if let Some(m) = marker {
                        skip.extend(
                            watermarks
                                .iter()
                                .filter(|(_, w)| !m.reached(w))
                                .map(|(t, _)| t.clone()),
                        );
                    }
                }
                Event::Row { shape, op } => {
                    if !skip.contains(&shape.table) {
                        if let Some(op) = backfill.filter(&shape, op)? {
                            applier.row(&shape, op).await?;
                            open_since.get_or_insert_with(Instant::now);
                        }
                    }
                }
                Event::Truncate(tables) => {
                    let tables: Vec<_> = tables.into_iter().filter(|t| !skip.contains(t)).collect();
                    let tables = backfill.truncate(tables)?;
                    applier.truncate(&tables).await?;
                    open_since.get_or_insert_with(Instant::now);
                }
                Event::Reshape { old, new } => {
                    applier.reshape(&old, &new).await?;
                    backfill.reshaped(&new.table);
                }
                Event::Ddl {
                    schema,
                    statement,
                    position,
                } => {
                    let before = pending.as_ref().map(|(p, _)| p).unwrap_or(&applied);
                    if !backfill.may_commit(before) {
                        // the chunk cannot commit before the statement: read it again after
                        *hold = Some(position);
                        return Err(crate::apply::restart(
                            "a schema change arrived while a copied chunk waited for the stream",
                        ));
                    }
                    if let Some((p, ct)) = pending.take() {
                        commit_group(applier, ack, &p, ct, metrics, summary).await?;
                        backfill.committed(&p);
                    }
                    follow_ddl(applier, spec, &schema, &statement).await?;
                    applier.commit(&position, None).await?;
                    seen_to = position.clone();
                    applied = position;
                    open_since = None;
                    summary.position = Some(applied.to_string());
                    continue;
                }
                Event::Commit {
                    position,
                    commit_time_us,
                } => {
                    in_source_txn = false;
                    seen_to = position.clone();
                    if applier.has_open_work() || pending.is_some() {
                        applier.end_source_txn();
                        pending = Some((position, commit_time_us));
                    } else {
                        // nothing of ours in it (other tables, other schemas)
                        quiet = Some(position);
                    }
                }
                Event::Idle { position } => {
                    if !in_source_txn {
                        seen_to = position.clone();
                        if !applier.has_open_work() && pending.is_none() {
                            quiet = Some(position);
                        } else if backfill.in_flight() {
                            // nothing more up to here: the chunk may commit at it
                            let ct = pending.take().and_then(|(_, ct)| ct);
                            pending = Some((position, ct));
                        }
                    }
                }
            }
        }
        // the source has nothing newer for us: let it release its log up to here, and
        // record the position on the target now and then (an empty transaction)
        if let Some(position) = quiet.take() {
            if position.reached(&applied) && position != applied {
                if let Position::PgLsn(l) = position {
                    ack.send_replace(l);
                }
                let at_goal = goal.is_some_and(|g| position.reached(g));
                if at_goal || last_quiet_save.elapsed() >= QUIET_SAVE {
                    applier.commit(&position, Some(now_us())).await?;
                    last_quiet_save = Instant::now();
                    metrics.set_position(&position.to_string());
                    applied = position;
                    summary.position = Some(applied.to_string());
                }
            }
            metrics.lag_us.store(0, Ordering::Relaxed);
            if backfill.is_idle() && goal.is_some_and(|g| applied.reached(g)) {
                return Ok(Outcome::CaughtUp);
            }
        }
        // commit at a source transaction boundary when the group is big, old, or
        // the reader has nothing more right now
        if let Some((position, commit_time)) = &pending {
            // a copied chunk commits as soon as it may: the next one waits for it
            let due = commit_now
                || (backfill.in_flight() && backfill.may_commit(position))
                || applier.open_txns() >= GROUP_TXNS
                || open_since.is_some_and(|t| t.elapsed() >= GROUP_TIME)
                || rx.is_empty();
            if due && !in_source_txn && backfill.may_commit(position) {
                commit_group(applier, ack, position, *commit_time, metrics, summary).await?;
                backfill.committed(position);
                commit_now = false;
                if backfilling && backfill.is_idle() {
                    backfilling = false;
                    tracing::info!("the added tables are copied; they stream like the others now");
                    phases.set(Phase::Incremental);
                }
                applied = position.clone();
                pending = None;
                open_since = None;
                if backfill.is_idle() && goal.is_some_and(|g| applied.reached(g)) {
                    return Ok(Outcome::CaughtUp);
                }
            }
        }
        if !opts.quiet && last_log.elapsed() >= Duration::from_secs(5) {
            let secs = last_log.elapsed().as_secs_f64();
            let rows = metrics.rows.load(Ordering::Relaxed);
            let txns = metrics.txns.load(Ordering::Relaxed);
            tracing::info!(
                "incremental: applied {applied}, {:.0} rows/s, {:.0} txn/s, lag {:.1}s",
                (rows - logged_rows) as f64 / secs,
                (txns - logged_txns) as f64 / secs,
                metrics.lag_us.load(Ordering::Relaxed) as f64 / 1e6
            );
            (logged_rows, logged_txns) = (rows, txns);
            last_log = Instant::now();
        }
    }
}
