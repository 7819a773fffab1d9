//! Metering and freezing: running tasks are charged per task-hour to their tenant;
//! a balance at or below zero freezes every task of the tenant (work suspended,
//! positions kept), a top-up above zero returns them to where they were. Backup
//! sets are charged by the GB they store, once per set and per secondary copy.

use crate::control::Control;
use crate::error::ServiceResult;
use crate::store::TaskFilter;
use crate::worker::Worker;
use ferry_core::lifecycle::{Cause, State};
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// Prices (per unit of the tenant's balance).
#[derive(Debug, Clone, Copy)]
pub struct Prices {
    /// Charged per hour a task runs.
    pub task_hour: f64,
    /// Charged per GB (10⁹ bytes) moved to the target.
    pub gb: f64,
}

/// Freezes or unfreezes the tenant's tasks to match `balance_micros`.
pub async fn settle(control: &Control, tenant: &str, balance_micros: i64) -> ServiceResult<()> {
    let (tasks, _) = control
        .store
        .tasks(&TaskFilter {
            tenant: Some(tenant.into()),
            limit: 100_000,
            ..TaskFilter::default()
        })
        .await?;
    for t in tasks {
        if balance_micros <= 0 {
            if !matches!(
                t.state,
                State::Frozen | State::Creating | State::Ending | State::Ended
            ) {
                let why = "the tenant's balance is used up; top up to continue";
                let _ = control.apply(&t.id, Cause::Freeze, Some(why)).await;
            }
        } else if t.state == State::Frozen {
            let why = "balance topped up; back to where the task was";
            let _ = control
                .apply(&t.id, Cause::Unfreeze(State::Configuring), Some(why))
                .await;
        }
    }
    Ok(())
}

/// Charges the running tasks this worker holds every `every`, until `stop`: their
/// running time, and the bytes their engines moved since the last charge.
pub async fn meter(
    control: Control,
    worker: Arc<Worker>,
    prices: Prices,
    every: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let worker_id = worker.id.clone();
    let mut last = Instant::now();
    let mut charged_bytes: HashMap<String, u64> = HashMap::new();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.changed() => return,
        }
        let hours = last.elapsed().as_secs_f64() / 3600.0;
        last = Instant::now();
        let Ok(tasks) = control.store.live_tasks().await else {
            continue;
        };
        let moved: HashMap<String, u64> = worker
            .metrics
            .lock()
            .unwrap()
            .iter()
            .map(|(id, m)| (id.clone(), m.bytes.load(Ordering::Relaxed)))
            .collect();
        let mut per_tenant: HashMap<String, i64> = HashMap::new();
        let running_here: std::collections::HashSet<String> = tasks
            .iter()
            .filter(|t| t.state.runs() && t.lease_owner.as_deref() == Some(worker_id.as_str()))
            .map(|t| t.id.clone())
            .collect();
        for t in &tasks {
            if running_here.contains(&t.id) {
                *per_tenant.entry(t.tenant.clone()).or_default() +=
                    (prices.task_hour * hours * 1e6).round() as i64;
            }
        }
        // bytes: every runner this node had since the last pass, finished ones too
        for (id, now) in &moved {
            // a restarted runner counts from zero again
            let before = charged_bytes
                .get(id)
                .copied()
                .filter(|b| b <= now)
                .unwrap_or(0);
            charged_bytes.insert(id.clone(), *now);
            let charge = (prices.gb * (now - before) as f64 / 1e9 * 1e6).round() as i64;
            if charge == 0 {
                continue;
            }
            if let Ok(Some(t)) = control.store.task(id).await {
                *per_tenant.entry(t.tenant).or_default() += charge;
            }
        }
        // finished runners were charged above: forget them
        worker
            .metrics
            .lock()
            .unwrap()
            .retain(|id, _| running_here.contains(id));
        charged_bytes.retain(|id, _| running_here.contains(id));
        // backup storage: each completed set (and secondary copy) once, by its GB
        if let Ok(sets) = control.store.uncharged_sets().await {
            for (id, tenant, bytes) in sets {
                if let Ok(true) = control.store.mark_charged(&id).await {
                    *per_tenant.entry(tenant).or_default() +=
                        (prices.gb * bytes as f64 / 1e9 * 1e6).round() as i64;
                }
            }
        }
        for (tenant, charge) in per_tenant {
            if charge == 0 {
                continue;
            }
            match control.store.add_balance(&tenant, -charge, charge).await {
                Ok(balance) if balance <= 0 => {
                    if let Err(e) = settle(&control, &tenant, balance).await {
                        tracing::warn!("freezing tenant {tenant}: {e}");
                    }
                }
                Ok(_) => {}
                Err(e) => tracing::warn!("charging tenant {tenant}: {e}"),
            }
        }
    }
}
