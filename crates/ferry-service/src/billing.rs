//! Metering and freezing: running tasks are charged per task-hour to their tenant;
//! a balance at or below zero freezes every task of the tenant (work suspended,
//! positions kept), a top-up above zero returns them to where they were.

use crate::control::Control;
use crate::error::ServiceResult;
use crate::store::TaskFilter;
use ferry_core::lifecycle::{Cause, State};
use std::collections::HashMap;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// Prices (per unit of the tenant's balance).
#[derive(Debug, Clone, Copy)]
pub struct Prices {
    /// Charged per hour a task runs.
    pub task_hour: f64,
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

/// Charges the running tasks this worker holds every `every`, until `stop`.
pub async fn meter(
    control: Control,
    worker_id: String,
    prices: Prices,
    every: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let mut last = Instant::now();
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
        let mut per_tenant: HashMap<String, i64> = HashMap::new();
        for t in tasks {
            if t.state.runs() && t.lease_owner.as_deref() == Some(worker_id.as_str()) {
                *per_tenant.entry(t.tenant).or_default() +=
                    (prices.task_hour * hours * 1e6).round() as i64;
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
