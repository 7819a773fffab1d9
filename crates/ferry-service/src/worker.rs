//! A worker: takes tasks by lease and does what their state asks — validates new
//! tasks, starts scheduled ones when their time comes, runs the engine for running
//! states (reporting its phases as lifecycle causes), stops it on pause / end /
//! freeze, releases resources on end. A task whose worker stopped renewing its lease
//! is taken over by any worker and resumes from its target-side checkpoint.

use crate::control::Control;
use crate::error::ServiceResult;
use crate::store::{now_ms, TaskRow};
use ferry_core::lifecycle::{Cause, State};
use ferry_core::{Mode, TaskSpec};
use ferry_engine::conn::{Conn, Role};
use ferry_engine::incremental::StreamOptions;
use ferry_engine::metrics::Metrics;
use ferry_engine::phase::{Phase, Phases};
use ferry_engine::RunOptions;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// How long a lease lasts without renewal: a dead worker's tasks move after this.
pub const LEASE: Duration = Duration::from_secs(10);
const TICK: Duration = Duration::from_millis(500);

/// The engine running one task here.
struct Runner {
    shutdown: watch::Sender<bool>,
    handle: JoinHandle<()>,
    metrics: Arc<Metrics>,
    /// Where the engine is.
    phases: Arc<Phases>,
    /// Set when the runner finished: the engine's outcome.
    outcome: Arc<Mutex<Option<Outcome>>>,
    stopping_since: Option<Instant>,
    /// When progress was last written to the store.
    reported: Option<Instant>,
    /// Since when the lag is above the tenant's threshold, and whether that was
    /// already reported.
    lag_high: Option<(Instant, bool)>,
    /// Runs a pending sync edit's objects (the added tables are being copied).
    edit: bool,
}

/// Why a task (re)entered `changing`: the engine copies a pending edit's tables.
const EDIT_RESUMED: &str = "copying the added tables while the others stream";

#[derive(Debug, Clone)]
enum Outcome {
    /// A `mode: full` task copied everything.
    Completed(String),
    /// The stream returned without being asked to.
    Stopped,
    Transient(String),
    Failed(String),
}

/// One worker node.
pub struct Worker {
    control: Control,
    /// This node's id (lease owner).
    pub id: String,
    runners: Mutex<HashMap<String, Runner>>,
    retry_at: Mutex<HashMap<String, (Instant, Duration)>>,
    /// Background jobs here (validation, ending, edits, switchovers): task id → job.
    edits: Mutex<HashMap<String, JoinHandle<()>>>,
    /// Live metrics of the tasks running here, for `/metrics`.
    pub metrics: Mutex<HashMap<String, Arc<Metrics>>>,
}

impl Worker {
    /// A worker named `id`.
    pub fn new(control: Control, id: String) -> Arc<Worker> {
        Arc::new(Worker {
            control,
            id,
            runners: Mutex::new(HashMap::new()),
            retry_at: Mutex::new(HashMap::new()),
            edits: Mutex::new(HashMap::new()),
            metrics: Mutex::new(HashMap::new()),
        })
    }

    /// Runs until `stop` turns true, then stops every runner gracefully.
    pub async fn run(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        tracing::info!(worker = %self.id, "worker started");
        loop {
            if let Err(e) = self.tick().await {
                tracing::warn!(worker = %self.id, "worker pass failed: {e}");
            }
            tokio::select! {
                _ = tokio::time::sleep(TICK) => {}
                _ = stop.changed() => break,
            }
        }
        let runners: Vec<(String, Runner)> = self.runners.lock().unwrap().drain().collect();
        for (id, r) in runners {
            let _ = r.shutdown.send(true);
            if tokio::time::timeout(Duration::from_secs(5), r.handle)
                .await
                .is_err()
            {
                tracing::warn!(task = %id, "runner did not stop in 5 s; abandoned (its checkpoint stays)");
            }
            let _ = self.control.store.release(&id, &self.id).await;
        }
    }

    async fn tick(&self) -> ServiceResult<()> {
        let tasks = self.control.store.live_tasks().await?;
        let now = now_ms();
        let until = now + LEASE.as_millis() as i64;
        self.edits.lock().unwrap().retain(|_, j| !j.is_finished());
        for t in tasks {
            // one task's trouble never holds up the others
            if let Err(e) = self.handle(t, now, until).await {
                tracing::warn!(worker = %self.id, "{e}");
            }
        }
        Ok(())
    }

    async fn handle(&self, t: TaskRow, now: i64, until: i64) -> ServiceResult<()> {
        {
            if self.runners.lock().unwrap().contains_key(&t.id) {
                return self.tend(&t, until).await;
            }
            if self.edits.lock().unwrap().contains_key(&t.id) {
                self.control.store.lease(&t.id, &self.id, until).await?;
                return Ok(());
            }
            let due = match t.state {
                State::Creating | State::Ending => true,
                State::WaitingToStart => t.start_at_ms.is_some_and(|at| at <= now),
                s => s.runs() && self.retry_due(&t.id),
            };
            if due && self.control.store.lease(&t.id, &self.id, until).await? {
                self.take(t).await?;
            }
        }
        Ok(())
    }

    fn retry_due(&self, id: &str) -> bool {
        self.retry_at
            .lock()
            .unwrap()
            .get(id)
            .is_none_or(|(at, _)| Instant::now() >= *at)
    }

    /// Runs `job` for task `id` in the background (slow endpoint I/O must never delay
    /// the lease renewals of the other tasks); the lease is kept while it runs.
    fn spawn_job(
        &self,
        id: &str,
        what: &'static str,
        job: impl std::future::Future<Output = ServiceResult<()>> + Send + 'static,
    ) {
        let task = id.to_string();
        let handle = tokio::spawn(async move {
            if let Err(e) = job.await {
                tracing::warn!(task = %task, "{what}: {e}");
            }
        });
        self.edits.lock().unwrap().insert(id.to_string(), handle);
    }

    /// A task this worker just leased.
    async fn take(&self, t: TaskRow) -> ServiceResult<()> {
        let c = &self.control;
        let (control, me) = (c.clone(), self.id.clone());
        match t.state {
            State::Creating => self.spawn_job(&t.id.clone(), "validation", async move {
                let c = &control;
                let cause = match c.spec(&t) {
                    Ok(spec) => match validate(&spec).await {
                        Ok(()) => (
                            Cause::Validated,
                            "endpoints reachable; ready to start".to_string(),
                        ),
                        Err(e) => (Cause::ValidationFailed, e),
                    },
                    Err(e) => (Cause::ValidationFailed, e.to_string()),
                };
                let t = c.apply(&t.id, cause.0, Some(&cause.1)).await?;
                if let (State::Configuring, Some(at)) = (t.state, t.start_at_ms) {
                    let why = format!("scheduled for {}", crate::store::rfc3339(at));
                    c.apply(
                        &t.id,
                        Cause::User(ferry_core::lifecycle::Action::Schedule),
                        Some(&why),
                    )
                    .await?;
                }
                c.store.release(&t.id, &me).await
            }),
            State::Ending => self.spawn_job(&t.id.clone(), "ending", async move {
                let c = &control;
                let failover_wanted = t.pending_action.as_deref() == Some("failover");
                let result = match c.spec(&t) {
                    Ok(spec) if failover_wanted => failover(&spec).await.map_err(|e| e.to_string()),
                    Ok(spec) if spec.kind == ferry_core::spec::Kind::Dr => {
                        // the task ends: its standby is nobody's standby any more
                        match end(&spec).await {
                            Ok(done) => Ok(format!("{done}; {}", unfence_standby(&spec).await)),
                            Err(e) => Err(e),
                        }
                    }
                    Ok(spec) => end(&spec).await,
                    Err(e) => Err(e.to_string()),
                };
                if failover_wanted {
                    c.store.set_pending_action(&t.id, None).await?;
                }
                match result {
                    Ok(done) => c.apply(&t.id, Cause::Released, Some(&done)).await?,
                    Err(e) => c.apply(&t.id, Cause::ReleaseFailed, Some(&e)).await?,
                };
                c.store.release(&t.id, &me).await
            }),
            State::Replicating if t.pending_action.as_deref() == Some("switchover") => self
                .spawn_job(&t.id.clone(), "switchover", async move {
                    switchover(&control, &t).await
                }),
            State::WaitingToStart => {
                let t = c
                    .apply(
                        &t.id,
                        Cause::StartTimeReached,
                        Some("the scheduled start time passed"),
                    )
                    .await?;
                self.start(&t)?;
            }
            s if s.runs() => {
                let mut t = t;
                let mine = t.lease_owner.as_deref() == Some(self.id.as_str());
                // an edit stops the engine and hands the task back (no owner): that
                // is no fault
                let edit_restart = s == State::Changing && t.lease_owner.is_none();
                if !matches!(s, State::Starting | State::Recovering) && !mine && !edit_restart {
                    // it was running elsewhere (or here, before a restart)
                    let why = match t.lease_owner.as_deref() {
                        Some(owner) => format!(
                            "the worker running the task ({owner}) stopped renewing its lease; resuming from the checkpoint on {}",
                            self.id
                        ),
                        None => format!(
                            "the worker running the task stopped (service restart); resuming from the checkpoint on {}",
                            self.id
                        ),
                    };
                    t = c.apply(&t.id, Cause::Fault, Some(&why)).await?;
                }
                self.start(&t)?;
            }
            _ => c.store.release(&t.id, &self.id).await?,
        }
        Ok(())
    }

    fn start(&self, t: &TaskRow) -> ServiceResult<()> {
        // a pending sync edit runs with its objects: the stream copies the added
        // tables while it goes on
        let (spec, edit) = match &t.pending_spec {
            Some(p) => (self.control.spec_from(t, p)?, true),
            None => (self.control.spec(t)?, false),
        };
        let metrics = Arc::new(Metrics::new(&t.id));
        let phases = Arc::new(Phases::new());
        let (shutdown, rx) = watch::channel(false);
        let outcome = Arc::new(Mutex::new(None));
        let out = outcome.clone();
        let (m, p) = (metrics.clone(), phases.clone());
        let precheck = t.state == State::Starting;
        let handle = tokio::spawn(async move {
            let r = run(&spec, m, p, rx, precheck).await;
            *out.lock().unwrap() = Some(r);
        });
        self.metrics
            .lock()
            .unwrap()
            .insert(t.id.clone(), metrics.clone());
        self.runners.lock().unwrap().insert(
            t.id.clone(),
            Runner {
                shutdown,
                handle,
                metrics,
                phases,
                outcome,
                stopping_since: None,
                reported: None,
                lag_high: None,
                edit,
            },
        );
        Ok(())
    }

    /// A task running here: keep the lease, follow the engine's phases, stop it
    /// when its state no longer runs, settle its outcome when it finished.
    async fn tend(&self, t: &TaskRow, until: i64) -> ServiceResult<()> {
        let c = &self.control;
        if !c.store.lease(&t.id, &self.id, until).await? {
            // another worker took it over (this one stalled): stop at once
            if let Some(r) = self.runners.lock().unwrap().remove(&t.id) {
                r.handle.abort();
            }
            tracing::warn!(task = %t.id, "lease lost; runner aborted");
            return Ok(());
        }
        let (phase, reason, finished, outcome, stopping, saw_full, edit) = {
            let runners = self.runners.lock().unwrap();
            let r = &runners[&t.id];
            let outcome = r.outcome.lock().unwrap().clone();
            let phase = r.phases.current();
            let reason = match &phase {
                Phase::Recovering { reason } => reason.clone(),
                _ => String::new(),
            };
            (
                phase.name().to_string(),
                reason,
                r.handle.is_finished(),
                outcome,
                r.stopping_since,
                r.phases.entered_full(),
                r.edit,
            )
        };
        if !t.state.runs() || t.pending_action.is_some() || t.pending_spec.is_some() != edit {
            // paused, ending, frozen, edited (or an edit given up): stop the engine (a
            // full copy is cut off; its finished chunks are committed and the rest
            // resumes later; an edit's copy resumes from its last chunk)
            let since = stopping.unwrap_or_else(Instant::now);
            let gone = {
                let mut runners = self.runners.lock().unwrap();
                let r = runners.get_mut(&t.id).expect("tended runner");
                if r.stopping_since.is_none() {
                    let _ = r.shutdown.send(true);
                    r.stopping_since = Some(since);
                }
                let stop_now = finished || since.elapsed() > Duration::from_secs(3);
                if stop_now {
                    r.handle.abort();
                    runners.remove(&t.id);
                }
                stop_now
            };
            if gone {
                // its metrics stay until the meter charged what it moved
                if t.state != State::Ending {
                    c.store.release(&t.id, &self.id).await?;
                }
            }
            return Ok(());
        }
        if finished {
            self.runners.lock().unwrap().remove(&t.id);
            // its metrics stay until the meter charged what it moved
            if stopping.is_some() {
                // stopped on request (pause, freeze) and wanted again since: the next
                // pass starts it anew
                return Ok(());
            }
            match outcome {
                Some(Outcome::Completed(summary)) => {
                    if t.state != State::Full {
                        // finished before a pass saw the phase
                        c.apply(&t.id, Cause::FullStarted, Some("copying the tables"))
                            .await?;
                    }
                    c.apply(&t.id, Cause::Completed, Some(&summary)).await?;
                    c.store.release(&t.id, &self.id).await?;
                }
                Some(Outcome::Stopped) => {
                    c.apply(
                        &t.id,
                        Cause::Fault,
                        Some("the change stream stopped unexpectedly"),
                    )
                    .await?;
                    self.back_off(&t.id);
                }
                Some(Outcome::Transient(e)) => {
                    c.apply(&t.id, Cause::Fault, Some(&e)).await?;
                    self.back_off(&t.id);
                }
                Some(Outcome::Failed(e)) => {
                    let e = if edit {
                        // the task goes on with its objects from before the edit
                        c.store.set_pending_spec(&t.id, None).await?;
                        format!("the edit was not applied: {e}; `start` resumes with the objects from before it (tables it created on the target stay there)")
                    } else {
                        e
                    };
                    if matches!(t.state, State::Starting | State::Recovering) {
                        // the failure belongs to the phase the engine was in
                        if phase == "full" {
                            c.apply(&t.id, Cause::FullStarted, Some("copying the tables"))
                                .await?;
                        } else if edit && (phase == "backfill" || phase == "starting") {
                            c.apply(&t.id, Cause::EditResumed, Some(EDIT_RESUMED))
                                .await?;
                        } else if phase.starts_with("incremental") {
                            c.apply(
                                &t.id,
                                Cause::IncrementalStarted,
                                Some("streaming changes from the source log"),
                            )
                            .await?;
                        }
                    }
                    c.apply(&t.id, Cause::Failed, Some(&e)).await?;
                    c.store.release(&t.id, &self.id).await?;
                }
                None => {
                    c.apply(&t.id, Cause::Fault, Some("the engine stopped unexpectedly"))
                        .await?;
                    self.back_off(&t.id);
                }
            }
            return Ok(());
        }
        self.report(t).await;
        if edit && phase == "incremental" {
            // every added table is copied: the edited objects are the task's now
            c.store.commit_pending_spec(&t.id).await?;
            if let Some(r) = self.runners.lock().unwrap().get_mut(&t.id) {
                r.edit = false;
            }
            if t.state == State::Changing {
                c.apply(
                    &t.id,
                    Cause::EditApplied,
                    Some("edit applied: the added tables are copied and stream with the others"),
                )
                .await?;
                return Ok(());
            }
        }
        if phase == "backfill" && matches!(t.state, State::Starting | State::Recovering) {
            c.apply(&t.id, Cause::EditResumed, Some(EDIT_RESUMED))
                .await?;
            return Ok(());
        }
        let cause = match phase.as_str() {
            "full" if matches!(t.state, State::Starting | State::Recovering) => {
                Some(Cause::FullStarted)
            }
            "incremental" | "caught_up"
                if matches!(
                    t.state,
                    State::Starting
                        | State::Recovering
                        | State::Full
                        | State::Initializing
                        | State::Initialized
                ) =>
            {
                Some(Cause::IncrementalStarted)
            }
            "recovering" if t.state != State::Recovering => Some(Cause::Fault),
            _ => None,
        };
        if cause == Some(Cause::IncrementalStarted) {
            // a copy shorter than a pass still shows in the history
            let mut state = t.state;
            if matches!(state, State::Starting | State::Recovering) && saw_full {
                if let Ok(t) = c
                    .apply(&t.id, Cause::FullStarted, Some("copying the tables"))
                    .await
                {
                    state = t.state;
                }
            }
            if state == State::Initializing {
                // DR: the initialisation finished before the stream began
                let _ = c
                    .apply(&t.id, Cause::FullDone, Some("initialisation finished"))
                    .await;
            }
        }
        if let Some(cause) = cause {
            let why = match cause {
                Cause::Fault => reason,
                Cause::FullStarted => "copying the tables".into(),
                _ => "streaming changes from the source log".into(),
            };
            let _ = c.apply(&t.id, cause, Some(&why)).await;
        }
        Ok(())
    }

    /// Writes the task's live progress (every 2 s): phase, applied position, lag,
    /// totals, and during the full phase the per-table chunk progress.
    async fn report(&self, t: &TaskRow) {
        let (m, phase) = {
            let mut runners = self.runners.lock().unwrap();
            let Some(r) = runners.get_mut(&t.id) else {
                return;
            };
            if r.reported
                .is_some_and(|at| at.elapsed() < Duration::from_secs(2))
            {
                return;
            }
            r.reported = Some(Instant::now());
            (r.metrics.clone(), r.phases.current())
        };
        let mut p = serde_json::json!({
            "phase": phase.name(),
            "position": m.position(),
            "lag_seconds": m.lag_us.load(std::sync::atomic::Ordering::Relaxed) as f64 / 1e6,
            "transactions_applied": m.txns.load(std::sync::atomic::Ordering::Relaxed),
            "rows_applied": m.rows.load(std::sync::atomic::Ordering::Relaxed),
            "recoveries": m.recoveries.load(std::sync::atomic::Ordering::Relaxed),
            "at": crate::store::rfc3339(now_ms()),
        });
        if matches!(
            t.state,
            State::Starting | State::Full | State::Initializing | State::Recovering
        ) {
            if let Ok(spec) = self.control.spec(t) {
                if let Ok(mut dst) = Conn::open(&spec, Role::Target).await {
                    if let Ok(tables) =
                        ferry_engine::checkpoint::table_progress(&mut dst, &t.id).await
                    {
                        p["tables"] = serde_json::to_value(tables).unwrap_or_default();
                    }
                }
            }
        }
        if t.pending_spec.is_some() {
            // a sync edit: how far the copy of each added table has got
            if let Ok(spec) = self.control.spec(t) {
                if let Ok(mut dst) = Conn::open(&spec, Role::Target).await {
                    if let Ok(rows) = ferry_engine::checkpoint::backfills(&mut dst, &t.id).await {
                        p["added_tables"] = serde_json::to_value(rows).unwrap_or_default();
                    }
                }
            }
        }
        if let Err(e) = self.control.store.set_progress(&t.id, &p.to_string()).await {
            tracing::debug!(task = %t.id, "progress not stored: {e}");
        }
        let lag = p["lag_seconds"].as_f64().unwrap_or(0.0);
        if let Some(hook) = crate::notify::webhook_of(&self.control.store, &t.tenant).await {
            if let Some(limit) = hook.lag_seconds {
                let for_secs = hook.lag_for_seconds.unwrap_or(0.0);
                let fire = {
                    let mut runners = self.runners.lock().unwrap();
                    let Some(r) = runners.get_mut(&t.id) else {
                        return;
                    };
                    if lag <= limit {
                        r.lag_high = None;
                        false
                    } else {
                        let (since, sent) = *r.lag_high.get_or_insert((Instant::now(), false));
                        let due = !sent && since.elapsed().as_secs_f64() >= for_secs;
                        if due {
                            r.lag_high = Some((since, true));
                        }
                        due
                    }
                };
                if fire {
                    crate::notify::send(
                        &self.control,
                        t,
                        "lag_high",
                        serde_json::json!({"lag_seconds": lag, "threshold_seconds": limit, "for_seconds": for_secs}),
                    );
                }
            }
        }
    }

    fn back_off(&self, id: &str) {
        let mut m = self.retry_at.lock().unwrap();
        let next = m
            .get(id)
            .map(|(_, d)| (*d * 2).min(Duration::from_secs(30)))
            .unwrap_or(Duration::from_secs(1));
        m.insert(id.to_string(), (Instant::now() + next, next));
    }
}

/// How the reason of a switchover that found the two sides different begins.
const REFUSED: &str = "switchover refused";

/// A planned DR switchover: fence the primary, let the standby apply everything,
/// compare both sides (refused, naming the tables, when they differ), release the
/// old direction, then replicate the other way from the new primary's
/// current position (nothing can be written in between: the old primary is fenced).
async fn switchover(c: &Control, t: &TaskRow) -> crate::error::ServiceResult<()> {
    let result = async {
        let old = c.spec(t).map_err(|e| e.to_string())?;
        ferry_engine::dr::set_read_only(&old.source, true)
            .await
            .map_err(|e| format!("fencing the primary {}: {e}", old.source))?;
        let fenced = format!(
            "; the primary {} was made read-only (undo: ALTER DATABASE … RESET default_transaction_read_only / SET GLOBAL read_only = OFF)",
            old.source
        );
        let opts = RunOptions { jobs: 1, quiet: true, precheck: false };
        let stream = StreamOptions { exit_when_caught_up: true, quiet: true };
        let (_keep, never) = watch::channel(false);
        ferry_engine::task::run_task(&old, &opts, &stream, Arc::new(Metrics::new(&t.id)), Arc::new(Phases::new()), never)
            .await
            .map_err(|e| format!("catching up before the switch: {e}{fenced}"))?;
        // both sides are read-only to applications now: they must hold the same rows
        // before the standby becomes the primary
        let verdicts = ferry_engine::compare::compare(&old, old.chunk_rows)
            .await
            .map_err(|e| format!("comparing the primary with the standby: {e}{fenced}"))?;
        let differ: Vec<String> = verdicts
            .iter()
            .filter(|v| !v.equal)
            .map(|v| format!("{} → {}: {}", v.source, v.target, v.differences.join(", ")))
            .collect();
        if !differ.is_empty() {
            let primary = match ferry_engine::dr::set_read_only(&old.source, false).await {
                Ok(()) => format!("the primary {} stays the primary and is writable again", old.source),
                Err(e) => format!(
                    "the primary {} stays the primary but is still read-only ({e}): lift it with \
                     ALTER DATABASE … RESET default_transaction_read_only / SET GLOBAL read_only = OFF",
                    old.source
                ),
            };
            return Err(format!(
                "{REFUSED}: the standby differs from the primary in {} table(s): {}; nothing was \
                 switched: {primary}. Find out how the standby was written to (ferry compare \
                 shows the ranges), repair it or re-initialise it, then start the task and switch \
                 over again",
                differ.len(),
                differ.join("; ")
            ));
        }
        ferry_engine::task::end_task(&old)
            .await
            .map_err(|e| format!("releasing the old direction: {e}{fenced}"))?;
        // the old primary becomes the target: a fresh checkpoint there
        let mut dst = Conn::connect(&old.source).await.map_err(|e| e.to_string())?;
        ferry_engine::checkpoint::ensure(&mut dst).await.map_err(|e| e.to_string())?;
        ferry_engine::checkpoint::reset(&mut dst, &t.id).await.map_err(|e| e.to_string())?;
        // the reverse stream starts before the new primary takes writes
        let mut reversed = old.clone();
        std::mem::swap(&mut reversed.source, &mut reversed.target);
        reversed.mode = ferry_core::Mode::Incremental;
        reversed.start_position = None;
        ferry_engine::task::start_stream_here(&reversed)
            .await
            .map_err(|e| format!("starting the reverse stream: {e}{fenced}"))?;
        ferry_engine::dr::set_read_only(&old.target, false)
            .await
            .map_err(|e| format!("making the standby {} writable: {e}{fenced}", old.target))?;
        let mut doc: serde_norway::Value = serde_norway::from_str(&t.spec).map_err(|e| e.to_string())?;
        if let serde_norway::Value::Mapping(m) = &mut doc {
            let (s, d) = (m.get("source").cloned(), m.get("target").cloned());
            if let (Some(s), Some(d)) = (s, d) {
                m.insert("source".into(), d);
                m.insert("target".into(), s);
            }
            m.insert("mode".into(), "incremental".into());
            m.remove("start_position");
        }
        let spec = serde_norway::to_string(&doc).map_err(|e| e.to_string())?;
        let mut sealed: crate::control::Sealed =
            serde_json::from_str(&t.secrets).map_err(|e| e.to_string())?;
        std::mem::swap(&mut sealed.source, &mut sealed.target);
        let secrets = serde_json::to_string(&sealed).map_err(|e| e.to_string())?;
        Ok::<_, String>((spec, secrets, old))
    }
    .await;
    c.store.set_pending_action(&t.id, None).await?;
    match result {
        Ok((spec, secrets, old)) => {
            c.store.set_spec(&t.id, &spec, &secrets).await?;
            let why = format!(
                "switchover done: {} is the primary now, {} is read-only and receives its changes",
                old.target, old.source
            );
            c.apply(&t.id, Cause::IncrementalStarted, Some(&why))
                .await?;
        }
        Err(e) => {
            let why = if e.starts_with(REFUSED) {
                e
            } else {
                format!("switchover failed: {e}")
            };
            c.apply(&t.id, Cause::Failed, Some(&why)).await?;
        }
    }
    Ok(())
}

/// An unplanned DR failover: the primary may be gone. The standby is made writable
/// and the last position it applied (and its commit time) is reported: changes the
/// primary committed after it may be lost.
async fn failover(spec: &TaskSpec) -> Result<String, ferry_core::Error> {
    let mut dst = Conn::open(spec, Role::Target).await?;
    ferry_engine::checkpoint::ensure(&mut dst).await?;
    let position = ferry_engine::checkpoint::task(&mut dst, &spec.name)
        .await?
        .and_then(|(_, p)| p)
        .unwrap_or_else(|| "none (the standby never finished initialising)".into());
    let commit = dst
        .query_text(&format!(
            "SELECT source_commit_us FROM ferry.stream WHERE task = {}",
            dst.literal(&spec.name)
        ))
        .await?
        .first()
        .and_then(|r| r[0].as_deref().and_then(|v| v.parse::<i64>().ok()))
        .map(|us| crate::store::rfc3339(us / 1000))
        .unwrap_or_else(|| "unknown".into());
    ferry_engine::checkpoint::set_task(&mut dst, &spec.name, "ended", None).await?;
    ferry_engine::dr::set_read_only(&spec.target, false).await?;
    let mut done = format!(
        "failover done: {} is promoted (writable); it holds every change up to {position} \
         (committed on the primary at {commit}); later changes on the primary may be missing",
        spec.target
    );
    if spec.source.engine == ferry_core::Engine::Postgres {
        let slot = ferry_engine::dr::slot_of(spec);
        done.push_str(&match ferry_engine::dr::release_old_primary(spec).await {
            Ok(()) => format!(". Dropped replication slot and publication {slot} on the old primary"),
            Err(e) => format!(
                ". The old primary keeps replication slot {slot} and its publication (not reachable: {e}): \
                 drop them when it is back (SELECT pg_drop_replication_slot('{slot}'); DROP PUBLICATION {slot};) \
                 or it keeps WAL"
            ),
        });
    }
    Ok(done)
}

/// Releases the task's source resources; a slot still held by the connection of a
/// runner that was just stopped frees up within moments, so transient errors retry.
async fn end(spec: &TaskSpec) -> Result<String, String> {
    let mut attempt = 0;
    loop {
        match ferry_engine::task::end_task(spec).await {
            Ok(done) => return Ok(done.join("; ")),
            Err(e) if e.is_transient() && attempt < 10 => {
                attempt += 1;
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Err(e) => return Err(e.to_string()),
        }
    }
}

/// Makes the DR standby (the task's target) read-only for applications.
async fn fence_standby(spec: &TaskSpec) -> Result<(), ferry_core::Error> {
    ferry_engine::dr::set_read_only(&spec.target, true)
        .await
        .map_err(|e| {
            e.context(format!(
                "making the standby {} read-only for applications (Ferry's user needs SUPER or \
                 READ_ONLY ADMIN on MySQL/MariaDB, to own the database or be a superuser on PostgreSQL)",
                spec.target
            ))
        })
}

/// Lifts the fence of a DR standby whose task ended (it is nobody's standby any
/// more); one that cannot be reached stays read-only, and the message says how to
/// lift it by hand.
async fn unfence_standby(spec: &TaskSpec) -> String {
    match ferry_engine::dr::set_read_only(&spec.target, false).await {
        Ok(()) => format!("the standby {} is writable again", spec.target),
        Err(e) => format!(
            "the standby {} stays read-only ({e}): lift it with ALTER DATABASE … RESET \
             default_transaction_read_only (PostgreSQL) or SET GLOBAL read_only = OFF (MySQL/MariaDB)",
            spec.target
        ),
    }
}

/// Both endpoints answer with the given credentials (a MySQL/MariaDB target
/// database that does not exist yet is created when the task starts).
async fn validate(spec: &TaskSpec) -> Result<(), String> {
    Conn::open(spec, Role::Source)
        .await
        .map_err(|e| e.to_string())?;
    Conn::open_target_or_server(spec)
        .await
        .map_err(|e| e.context("target").to_string())?;
    Ok(())
}

/// Runs the engine for one task until it ends or is told to stop.
async fn run(
    spec: &TaskSpec,
    metrics: Arc<Metrics>,
    phases: Arc<Phases>,
    shutdown: watch::Receiver<bool>,
    precheck: bool,
) -> Outcome {
    // what `ferry check` fails is a start failure, with the fix; checked here (not
    // in the engine) so that a task that cannot start never fences its standby
    if precheck {
        if let Err(e) = ferry_engine::check::precheck(spec).await {
            return Outcome::Failed(e.to_string());
        }
    }
    if spec.kind == ferry_core::spec::Kind::Dr {
        // a DR standby takes no application writes (they would never reach the
        // primary, nor the reverse stream after a switchover) until a switchover or a
        // failover promotes it; fenced from the first copy on, again at every
        // (re)start. Ferry's own sessions bypass it.
        if let Err(e) = fence_standby(spec).await {
            return if e.is_transient() {
                Outcome::Transient(e.to_string())
            } else {
                Outcome::Failed(e.to_string())
            };
        }
    }
    let opts = RunOptions {
        jobs: spec.jobs.unwrap_or_else(ferry_engine::full::default_jobs),
        quiet: true,
        precheck: false,
    };
    let stream = StreamOptions {
        exit_when_caught_up: false,
        quiet: true,
    };
    match ferry_engine::task::run_task(spec, &opts, &stream, metrics, phases, shutdown).await {
        Ok(out) => match (&out.full, spec.mode) {
            (Some(s), Mode::Full) => Outcome::Completed(format!(
                "full copy finished: {} rows in {} tables",
                s.rows_this_run,
                s.tables.len()
            )),
            _ => Outcome::Stopped,
        },
        Err(e) if e.is_transient() => Outcome::Transient(e.to_string()),
        Err(e) => Outcome::Failed(e.to_string()),
    }
}
