//! The live progress of the tasks running here, written to the store for the API
//! (phase, applied position, lag, totals, per-table copy progress), and the
//! tenant's `lag_high` webhook when the lag stays above its threshold.

use super::Worker;
use crate::store::{now_ms, TaskRow};
use ferry_core::lifecycle::State;
use ferry_engine::checkpoint::CheckpointStore;
use ferry_engine::conn::{Conn, Role};
use ferry_engine::stream::protect::SourceRetention;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// How often a running task's progress is written.
const EVERY: Duration = Duration::from_secs(2);

impl Worker {
    /// Writes the task's live progress (every 2 s): phase, applied position, lag,
    /// totals, and during the full phase the per-table chunk progress.
    pub(super) async fn report(&self, t: &TaskRow) {
        let (m, phase) = {
            let mut runners = self.runners.lock().unwrap();
            let Some(r) = runners.get_mut(&t.id) else {
                return;
            };
            if r.reported.is_some_and(|at| at.elapsed() < EVERY) {
                return;
            }
            r.reported = Some(Instant::now());
            (r.metrics.clone(), r.phases.current())
        };
        let mut p = serde_json::json!({
            "phase": phase.name(),
            "position": m.position(),
            "lag_seconds": m.lag_us.load(Ordering::Relaxed) as f64 / 1e6,
            "transactions_applied": m.txns.load(Ordering::Relaxed),
            "rows_applied": m.rows.load(Ordering::Relaxed),
            "recoveries": m.recoveries.load(Ordering::Relaxed),
            "at": crate::store::rfc3339(now_ms()),
        });
        if matches!(
            t.state,
            State::Starting | State::Full | State::Initializing | State::Recovering
        ) {
            if let Ok(spec) = self.control.spec(t) {
                if let Ok(mut dst) = Conn::open(&spec, Role::Target).await {
                    if let Ok(tables) = dst.table_progress(&t.id).await {
                        p["tables"] = serde_json::to_value(tables).unwrap_or_default();
                    }
                }
            }
        }
        if t.pending_spec.is_some() {
            // a sync edit: how far the copy of each added table has got
            if let Ok(spec) = self.control.spec(t) {
                if let Ok(mut dst) = Conn::open(&spec, Role::Target).await {
                    if let Ok(rows) = dst.backfills(&t.id).await {
                        p["added_tables"] = serde_json::to_value(rows).unwrap_or_default();
                    }
                }
            }
        }
        let retention = m.retention();
        if let Some(r) = &retention {
            p["source_retention"] = serde_json::to_value(r).unwrap_or_default();
        }
        if let Err(e) = self.control.store.set_progress(&t.id, &p.to_string()).await {
            tracing::debug!(task = %t.id, "progress not stored: {e}");
        }
        let lag = p["lag_seconds"].as_f64().unwrap_or(0.0);
        self.watch_lag(t, lag).await;
        if let Some(r) = retention {
            self.watch_retention(t, &r).await;
        }
    }

    /// A new source-retention crossing (the engine counts them): the task's reason
    /// says it, and the tenant's webhook gets a `source_retention_warning` — once
    /// per crossing, not per sample.
    async fn watch_retention(&self, t: &TaskRow, r: &SourceRetention) {
        let fresh = {
            let mut runners = self.runners.lock().unwrap();
            let Some(run) = runners.get_mut(&t.id) else {
                return;
            };
            let fresh = r.crossings > run.retention_seen;
            run.retention_seen = r.crossings;
            fresh
        };
        if r.warning.is_none() && t.reason.as_deref().is_some_and(is_retention_warning) {
            // the warning no longer holds: the reason says so instead of keeping it
            let back = format!(
                "source retention back to normal: {} retains {}",
                r.holder,
                r.retained_bytes
                    .map(ferry_engine::status::human_bytes)
                    .unwrap_or_else(|| "?".into())
            );
            if let Err(e) = self.control.store.set_reason(&t.id, t.state, &back).await {
                tracing::debug!(task = %t.id, "reason not stored: {e}");
            }
            return;
        }
        let Some(warning) = r.warning.as_deref().filter(|_| fresh) else {
            return;
        };
        let mut t = t.clone();
        match self.control.store.set_reason(&t.id, t.state, warning).await {
            Ok(true) => t.reason = Some(warning.to_string()),
            Ok(false) => {}
            Err(e) => tracing::debug!(task = %t.id, "reason not stored: {e}"),
        }
        tracing::warn!(task = %t.id, "{warning}");
        crate::notify::send(
            &self.control,
            &t,
            "source_retention_warning",
            serde_json::to_value(r).unwrap_or_default(),
        );
    }

    /// Sends the tenant's `lag_high` webhook once the task's lag has stayed above
    /// the tenant's threshold for as long as it asks (once per such stretch).
    async fn watch_lag(&self, t: &TaskRow, lag: f64) {
        let Some(hook) = crate::notify::webhook_of(&self.control.store, &t.tenant).await else {
            return;
        };
        let Some(limit) = hook.lag_seconds else {
            return;
        };
        let for_secs = hook.lag_for_seconds.unwrap_or(0.0);
        let fire = {
            let mut runners = self.runners.lock().unwrap();
            let Some(r) = runners.get_mut(&t.id) else {
                return;
            };
            lag_alert(&mut r.lag_high, lag, limit, for_secs)
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

/// Whether `reason` is a source-retention warning (see
/// [`ferry_engine::stream::protect::assess`]).
fn is_retention_warning(reason: &str) -> bool {
    reason.starts_with("source retains ")
        || reason.contains("is about to be lost: wal_status unreserved")
        || reason.starts_with("the oldest binlog this task still needs")
}

/// Whether a lag of `lag` seconds is due to be reported now, given `high` (since
/// when the lag is above `limit`, and whether that stretch was reported), which it
/// updates: a stretch is reported once, after `for_secs` above the limit; falling
/// back to the limit ends it.
fn lag_alert(high: &mut Option<(Instant, bool)>, lag: f64, limit: f64, for_secs: f64) -> bool {
    if lag <= limit {
        *high = None;
        return false;
    }
    let (since, sent) = *high.get_or_insert((Instant::now(), false));
    let due = !sent && since.elapsed().as_secs_f64() >= for_secs;
    if due {
        *high = Some((since, true));
    }
    due
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retention_warnings_are_told_from_other_reasons() {
        assert!(is_retention_warning(
            "source retains 12.3 GB of WAL for this task's replication slot ferry_x (threshold 10.0 GB)"
        ));
        assert!(is_retention_warning(
            "replication slot ferry_x is about to be lost: wal_status unreserved (it retains 2 MB …)"
        ));
        assert!(is_retention_warning(
            "the oldest binlog this task still needs (binlog b.000001) holds changes from 900 s ago"
        ));
        assert!(!is_retention_warning("resume requested"));
    }

    #[test]
    fn a_high_lag_is_reported_once_per_stretch() {
        let mut high = None;
        assert!(!lag_alert(&mut high, 1.0, 5.0, 0.0));
        assert!(high.is_none());
        assert!(lag_alert(&mut high, 9.0, 5.0, 0.0));
        assert!(!lag_alert(&mut high, 9.0, 5.0, 0.0), "once per stretch");
        assert!(!lag_alert(&mut high, 5.0, 5.0, 0.0));
        assert!(high.is_none(), "back at the limit ends the stretch");
        assert!(lag_alert(&mut high, 9.0, 5.0, 0.0), "a new stretch");
    }

    #[test]
    fn a_high_lag_waits_for_its_duration() {
        let mut high = None;
        assert!(!lag_alert(&mut high, 9.0, 5.0, 60.0));
        assert!(matches!(high, Some((_, false))));
        high = Some((Instant::now() - Duration::from_secs(61), false));
        assert!(lag_alert(&mut high, 9.0, 5.0, 60.0));
        assert!(matches!(high, Some((_, true))));
    }
}
