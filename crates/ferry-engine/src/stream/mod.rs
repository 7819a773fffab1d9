//! The incremental phase: stream the source's log into the target until stopped.
//!
//! A source task reads the log and sends [`Event`]s through a bounded channel; the
//! applier commits them with their position (see `stream::apply`). Transient faults
//! (a server restart, a cut or stalled link) end the attempt; the task reports
//! `recovering`, waits with backoff and starts again from the position the target
//! holds. Only definite errors fail the task.

pub mod apply;
pub(crate) mod apply_loop;
pub(crate) mod backfill;
pub mod parallel;
pub mod protect;

use crate::checkpoint;
use crate::checkpoint::{CheckpointStore, StreamState, TaskPhase, TaskRecord};
use crate::conn::{Conn, Role};
use crate::copy::source_tables;
use crate::factory::connector;
use crate::metrics::Metrics;
use crate::phase::{Phase, Phases};
use crate::schema::mapping::NameMap;
use crate::stream::apply::Applier;
use crate::stream::apply_loop::ApplyLoop;
use crate::throttle::{Rates, Throttle};
use ferry_core::change::{Event, StreamFeatures};
use ferry_core::{Error, ErrorKind, Position, Result, Table, TaskSpec};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};

/// Events buffered between the log reader and the applier.
const CHANNEL_EVENTS: usize = 4096;
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// How the incremental phase runs.
#[derive(Debug, Clone, Default)]
pub struct StreamOptions {
    /// Return once everything the source had committed at the start is applied.
    pub exit_when_caught_up: bool,
    /// No periodic progress lines.
    pub quiet: bool,
    /// This run's claim on the task (shared with its copy's options).
    pub claim: checkpoint::Claim,
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

/// How one attempt of the stream ended without an error.
pub(crate) enum Outcome {
    /// Everything up to the goal is applied.
    CaughtUp,
    /// Stopped by a signal.
    Stopped,
}

/// What "caught up" means when the phase starts (the capture's goal: a marker
/// whose commit arrives after everything committed before it, or the log's end).
async fn catch_up_goal(spec: &TaskSpec) -> Result<Position> {
    connector(spec.source.engine).catch_up_goal(spec).await
}

/// The source's current log end.
pub async fn source_head(spec: &TaskSpec) -> Result<Position> {
    connector(spec.source.engine).head(spec).await
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
    let mut par = parallel::ParallelState::default();
    let throttle = Arc::new(Throttle::new(Rates {
        rows_per_second: spec.speed_limit.apply_rows_per_second,
        bytes_per_second: spec.speed_limit.apply_bytes_per_second,
    }));
    // what the source keeps for the task, sampled beside the stream (its first
    // sample at once: a resumed task hears at its start how close its log is to
    // being removed); stops with the phase
    let _protect =
        crate::abort_on_drop::AbortOnDrop::spawn(protect::watch(spec.clone(), metrics.clone()));
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
            &mut par,
            &throttle,
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
                if e.is(ErrorKind::RestartStream) {
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
    par: &mut parallel::ParallelState,
    throttle: &Throttle,
) -> Result<Outcome> {
    let mut dst = Conn::open(spec, Role::Target).await?;
    dst.ensure().await?;
    // from here on an earlier run of the task commits nothing more
    let fence = checkpoint::Fence::claim(&mut dst, &spec.name, &opts.claim).await?;
    checkpoint::end_fenced_writers(&mut dst, &spec.name).await?;
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
    let jobs = parallel::jobs(spec);
    let mut src = Conn::open(spec, Role::Source).await?;
    let tables = source_tables(&mut src, spec).await?;
    if let Some(slot) = connector(spec.source.engine)
        .task_slot(spec)
        .await
        .map_err(|e| e.context("source"))?
    {
        // the slot carries exactly the selected tables (an abandoned edit may have
        // left others in the publication)
        slot.sync_tables(&tables).await?;
    }
    let names = NameMap::new(spec, &tables);
    drop(src);
    tracing::debug!("source catalog read: {} tables", tables.len());
    let mut backfill = crate::stream::backfill::Backfill::load(spec, &mut dst, &tables).await?;
    phases.set(if backfill.is_idle() {
        Phase::Incremental
    } else {
        Phase::Backfill
    });
    tracing::info!(
        "stream from {start} ({}); watermarks: {}",
        apply_connections(jobs, backfill.is_idle(), par),
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
    // parallel apply when the task may use several connections, no added table is
    // being copied (its chunks commit on the main connection, between source
    // transactions) and no stretch must be applied on one connection first
    let parallel = jobs >= 2 && backfill.is_idle() && par.serial_until.is_none();
    let features = StreamFeatures {
        in_progress: parallel && par.no_in_progress_until.is_none() && watermarks.is_empty(),
    };
    let mut pool = if parallel {
        let inflight = parallel::dispatch::INFLIGHT_PER_WORKER * jobs;
        Some(parallel::worker::Pool::open(spec, &fence, &names, jobs, inflight).await?)
    } else {
        None
    };
    let mut applier = Applier::new(dst, spec.source.engine, fence, names.clone()).await?;

    let (tx, mut rx) = mpsc::channel::<Event>(CHANNEL_EVENTS);
    let (ack_tx, ack_rx) = watch::channel(Some(start.clone()));
    let reader = crate::abort_on_drop::AbortOnDrop::spawn(read_log(
        spec.clone(),
        start.clone(),
        tables,
        tx,
        ack_rx,
        features,
    ));
    let result = ApplyLoop {
        spec,
        watermarks: &watermarks,
        backfill: &mut backfill,
        hold,
        applier: &mut applier,
        ack: &ack_tx,
        goal,
        opts,
        metrics,
        phases,
        summary,
        names: &names,
        throttle,
        par,
        pool: pool.as_mut(),
        jobs,
    }
    .run(&start, &mut rx, shutdown)
    .await;
    drop(rx);
    if let Some(pool) = pool {
        // what the workers have not committed rolls back (it is read again)
        pool.shutdown().await;
    }
    // a reader that stopped by itself explains why the channel closed; one still
    // running (idle, or stuck on a stalled link) has nothing more to say: stop it now
    let reader_ended = matches!(&result, Err(e) if e.is(ErrorKind::ReaderStopped));
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
        (Err(e), Ok(Err(re))) if e.is(ErrorKind::ReaderStopped) => Err(re),
        (Err(e), Err(j)) if e.is(ErrorKind::ReaderStopped) => {
            Err(Error::definite(format!("the log reader crashed: {j}")))
        }
        (r, _) => r,
    }
}

/// How many target connections the attempt applies on, for the log.
fn apply_connections(jobs: usize, backfill_idle: bool, par: &parallel::ParallelState) -> String {
    if jobs < 2 {
        "apply on 1 connection".to_string()
    } else if !backfill_idle {
        format!("apply on 1 connection while added tables are copied, then {jobs}")
    } else if let Some(u) = &par.serial_until {
        format!("apply on 1 connection up to {u}, then {jobs}")
    } else {
        format!("apply on {jobs} connections")
    }
}

/// Reads the source log from `start` into `tx` (the capture's stream); `acked`
/// carries the last position committed on the target.
async fn read_log(
    spec: TaskSpec,
    start: Position,
    tables: Vec<Table>,
    tx: mpsc::Sender<Event>,
    acked: watch::Receiver<Option<Position>>,
    features: StreamFeatures,
) -> Result<()> {
    connector(spec.source.engine)
        .stream(&spec, &start, tables, &tx, acked, features)
        .await
}
