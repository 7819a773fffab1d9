//! The engine running one task on this worker: starting it, following it on every
//! pass (stopping it when the task's state no longer runs, turning its phases into
//! lifecycle causes through [`super::phase_map`]) and settling its outcome.

use super::phase_map::{self, Seen, Step};
use super::Worker;
use crate::control::Control;
use crate::error::ServiceResult;
use crate::store::TaskRow;
use ferry_core::lifecycle::{Cause, State};
use ferry_core::{Mode, TaskSpec};
use ferry_engine::metrics::Metrics;
use ferry_engine::phase::{Phase, Phases};
use ferry_engine::RunOptions;
use ferry_engine::StreamOptions;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The engine running one task here.
pub(super) struct Runner {
    /// Asks the engine to stop (pause, end, freeze, edit).
    pub(super) shutdown: watch::Sender<bool>,
    /// The engine's task.
    pub(super) handle: JoinHandle<()>,
    /// The engine's counters.
    pub(super) metrics: Arc<Metrics>,
    /// Where the engine is.
    pub(super) phases: Arc<Phases>,
    /// Set when the runner finished: the engine's outcome.
    outcome: Arc<Mutex<Option<Outcome>>>,
    /// Since when it is asked to stop.
    stopping_since: Option<Instant>,
    /// When progress was last written to the store.
    pub(super) reported: Option<Instant>,
    /// Since when the lag is above the tenant's threshold, and whether that was
    /// already reported.
    pub(super) lag_high: Option<(Instant, bool)>,
    /// The source-retention crossings already reported (reason and webhook).
    pub(super) retention_seen: u64,
    /// Runs a pending sync edit's objects (the added tables are being copied).
    edit: bool,
    /// The task's speed limits, shared with the engine: changed in place when the
    /// stored task's `speed_limit` changes (`PATCH /api/v1/tasks/{id}`).
    limits: ferry_engine::throttle::Limits,
    /// The stored task text `limits` was last read from.
    limits_text: String,
}

/// How the engine's run for one task ended.
#[derive(Debug, Clone)]
enum Outcome {
    /// A `mode: full` task copied everything.
    Completed(String),
    /// The stream returned without being asked to.
    Stopped,
    /// A transient error ended the run: retried with backoff.
    Transient(String),
    /// A definite error ended the run: the task fails with it.
    Failed(String),
}

/// Applies `step` to task `id`: a required one's failure is the caller's error, a
/// best-effort one is left for the next pass.
async fn apply(c: &Control, id: &str, step: &Step) -> ServiceResult<()> {
    let applied = c.apply(id, step.cause, Some(&step.why)).await;
    if step.required {
        applied?;
    }
    Ok(())
}

impl Worker {
    /// Starts the engine for `t` (leased by this worker).
    pub(super) fn start(&self, t: &TaskRow) -> ServiceResult<()> {
        // a pending sync edit runs with its objects: the stream copies the added
        // tables while it goes on
        let (spec, edit) = match &t.pending_spec {
            Some(p) => (self.control.spec_from(t, p)?, true),
            None => (self.control.spec(t)?, false),
        };
        let phases = Arc::new(Phases::new());
        let metrics = Arc::new(Metrics::watching(&t.id, phases.clone()));
        let (shutdown, rx) = watch::channel(false);
        let outcome = Arc::new(Mutex::new(None));
        let out = outcome.clone();
        let (m, p) = (metrics.clone(), phases.clone());
        let precheck = t.state == State::Starting;
        let limits = ferry_engine::throttle::Limits::new(&spec.speed_limit);
        let limits_text = t.pending_spec.clone().unwrap_or_else(|| t.spec.clone());
        let engine_limits = limits.clone();
        let handle = tokio::spawn(async move {
            let r = run(&spec, m, p, rx, precheck, engine_limits).await;
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
                retention_seen: 0,
                edit,
                limits,
                limits_text,
            },
        );
        Ok(())
    }

    /// A task running here: keep the lease, follow the engine's phases, stop it
    /// when its state no longer runs, settle its outcome when it finished.
    pub(super) async fn tend(&self, t: &TaskRow, until: i64) -> ServiceResult<()> {
        let c = &self.control;
        if !c.store.lease(&t.id, &self.id, until).await? {
            // another worker took it over (this one stalled): stop at once
            if let Some(r) = self.runners.lock().unwrap().remove(&t.id) {
                r.handle.abort();
            }
            tracing::warn!(task = %t.id, "lease lost; runner aborted");
            return Ok(());
        }
        let (phase, finished, outcome, stopping, entered_full, edit) = {
            let runners = self.runners.lock().unwrap();
            let r = &runners[&t.id];
            let outcome = r.outcome.lock().unwrap().clone();
            (
                r.phases.current(),
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
            return self.settle(t, outcome, &phase, edit).await;
        }
        self.follow_limits(t);
        self.report(t).await;
        let reaction = phase_map::running(Seen {
            kind: t.kind,
            state: t.state,
            phase: &phase,
            edit,
            entered_full,
        });
        if reaction.commit_edit {
            c.store.commit_pending_spec(&t.id).await?;
            if let Some(r) = self.runners.lock().unwrap().get_mut(&t.id) {
                r.edit = false;
            }
        }
        for step in &reaction.steps {
            apply(c, &t.id, step).await?;
        }
        Ok(())
    }

    /// The stored task's speed limit changed (an edit through the API, maybe on
    /// another node): the running engine's throttles take it now.
    fn follow_limits(&self, t: &TaskRow) {
        let text = t.pending_spec.as_deref().unwrap_or(&t.spec);
        let mut runners = self.runners.lock().unwrap();
        let Some(r) = runners.get_mut(&t.id) else {
            return;
        };
        if r.limits_text == text {
            return;
        }
        match ferry_core::spec::speed_limit_of(text) {
            Ok(l) => {
                if l != r.limits.get() {
                    tracing::info!(task = %t.id, "speed limit now {l:?}");
                }
                r.limits.set(&l);
            }
            // checked when it was stored; an unreadable one keeps the limits in force
            Err(e) => tracing::warn!(task = %t.id, "speed limit not changed: {e}"),
        }
        r.limits_text = text.to_string();
    }

    /// The engine of `t` finished by itself: record how.
    async fn settle(
        &self,
        t: &TaskRow,
        outcome: Option<Outcome>,
        phase: &Phase,
        edit: bool,
    ) -> ServiceResult<()> {
        let c = &self.control;
        match outcome {
            Some(Outcome::Completed(summary)) => {
                if let Some(step) = phase_map::completed(t.state) {
                    // finished before a pass saw the phase
                    apply(c, &t.id, &step).await?;
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
                if let Some(step) = phase_map::failed(t.state, phase, edit) {
                    // the failure belongs to the phase the engine was in
                    apply(c, &t.id, &step).await?;
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
        Ok(())
    }
}

/// Runs the engine for one task until it ends or is told to stop.
async fn run(
    spec: &TaskSpec,
    metrics: Arc<Metrics>,
    phases: Arc<Phases>,
    shutdown: watch::Receiver<bool>,
    precheck: bool,
    limits: ferry_engine::throttle::Limits,
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
        if let Err(e) = ferry_engine::dr::switch::fence_standby(spec).await {
            return if e.is_transient() {
                Outcome::Transient(e.to_string())
            } else {
                Outcome::Failed(e.to_string())
            };
        }
    }
    // a run of this worker holding the lease: its first claim takes the task on the
    // target (fencing a worker that held it before, frozen or not)
    let claim = ferry_engine::checkpoint::Claim::default();
    let opts = RunOptions {
        jobs: spec.jobs.unwrap_or_else(ferry_engine::default_jobs),
        quiet: true,
        precheck: false,
        claim: claim.clone(),
        copy_throttle: limits.copy,
    };
    let stream = StreamOptions {
        exit_when_caught_up: false,
        quiet: true,
        claim,
        apply_throttle: limits.apply,
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
        // fenced: another run took the task; a worker that still holds the lease runs
        // it again (and claims it back), one that lost it stops
        Err(e) if e.is_transient() || e.is(ferry_core::ErrorKind::Fenced) => {
            Outcome::Transient(e.to_string())
        }
        Err(e) => Outcome::Failed(e.to_string()),
    }
}
