//! A worker: takes tasks by lease and does what their state asks — validates new
//! tasks, starts scheduled ones when their time comes, runs the engine for running
//! states (reporting its phases as lifecycle causes), stops it on pause / end /
//! freeze, releases resources on end. A task whose worker stopped renewing its lease
//! is taken over by any worker and resumes from its target-side checkpoint.

mod jobs;
mod phase_map;
mod progress;
mod runner;

use crate::control::Control;
use crate::error::ServiceResult;
use crate::store::{now_ms, TaskRow};
use ferry_core::lifecycle::{Cause, State};
use ferry_engine::metrics::Metrics;
use runner::Runner;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// How long a lease lasts without renewal: a dead worker's tasks move after this.
pub const LEASE: Duration = Duration::from_secs(10);
const TICK: Duration = Duration::from_millis(500);

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
    /// When each stopped task's slot was last looked at (see [`jobs::idle_slot`]).
    slots_checked: Mutex<HashMap<String, Instant>>,
}

/// How often a stopped task's replication slot is looked at.
const IDLE_SLOT_EVERY: Duration = Duration::from_secs(15);

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
            slots_checked: Mutex::new(HashMap::new()),
        })
    }

    /// Runs until `stop` turns true, then stops every runner gracefully.
    pub async fn run(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        tracing::info!(worker = %self.id, "worker started");
        // backups, cleanups, secondary copies, drills and restores: their own loop
        let backups = tokio::spawn(crate::backup::run::run(
            self.control.clone(),
            self.id.clone(),
            stop.clone(),
        ));
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
        let _ = backups.await;
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
            if self.idle_slot_due(&t) {
                if self.control.store.lease(&t.id, &self.id, until).await? {
                    let (control, me) = (self.control.clone(), self.id.clone());
                    self.spawn_job(&t.id.clone(), "slot check", jobs::idle_slot(control, t, me));
                }
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

    /// Whether a stopped task's slot is due to be looked at (paused, frozen or
    /// failed tasks keep theirs; a task that failed before it existed has none).
    fn idle_slot_due(&self, t: &TaskRow) -> bool {
        let stopped = matches!(t.state, State::Paused | State::Frozen)
            || (t.state.is_failure() && t.state != State::CreateFailed);
        if !stopped || t.lease_owner.as_deref().is_some_and(|o| o != self.id) {
            return false;
        }
        let mut checked = self.slots_checked.lock().unwrap();
        let due = checked
            .get(&t.id)
            .is_none_or(|at| at.elapsed() >= IDLE_SLOT_EVERY);
        if due {
            checked.insert(t.id.clone(), Instant::now());
        }
        due
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
            State::Creating => self.spawn_job(
                &t.id.clone(),
                "validation",
                jobs::validation(control, t, me),
            ),
            State::Ending => self.spawn_job(&t.id.clone(), "ending", jobs::ending(control, t, me)),
            State::Replicating if t.pending_action.as_deref() == Some("switchover") => {
                self.spawn_job(&t.id.clone(), "switchover", jobs::switchover(control, t))
            }
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

    /// Retries task `id` later, twice as late as last time (1 s to 30 s).
    fn back_off(&self, id: &str) {
        let mut m = self.retry_at.lock().unwrap();
        let next = m
            .get(id)
            .map(|(_, d)| (*d * 2).min(Duration::from_secs(30)))
            .unwrap_or(Duration::from_secs(1));
        m.insert(id.to_string(), (Instant::now() + next, next));
    }
}
