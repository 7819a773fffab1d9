//! Source protection: what the source keeps of its log for the task, sampled while
//! the task streams (and by `ferry status`), so a slot never fills the source's
//! disk unnoticed and a log about to be removed is said before it is gone.
//!
//! Each sample reads the task's applied position and last source commit time from
//! the target and asks the capture ([`ferry_connector::Capture::retention`], on a
//! short-lived source session, never the stream's) what the source keeps from there.
//! A warning starts when the retained log passes the task's threshold
//! (`source_protection.max_retained_wal`), when a PostgreSQL slot's WAL is
//! `unreserved` (about to be removed), or when the oldest change a MySQL/MariaDB
//! task needs is close to the binlog expiry; it is logged (and counted as a new
//! crossing for the service's reason and webhook) once per crossing, not per sample.

use crate::checkpoint::{CheckpointStore, TaskRecord};
use crate::conn::{Conn, Role};
use crate::factory::connector;
use crate::metrics::Metrics;
use crate::status::human_bytes;
use ferry_connector::Retention;
use ferry_core::{ErrorKind, Result, TaskSpec};
use std::sync::Arc;
use std::time::Duration;

/// Without `source_protection.max_retained_wal`: warn above this many bytes…
pub const DEFAULT_MAX_RETAINED: u64 = 10_000_000_000;
/// …or above this share of the source's `max_slot_wal_keep_size`, if lower.
const SHARE_OF_LIMIT: f64 = 0.5;
/// Warn when the oldest change a task needs is older than this share of the binlog
/// expiry (less than 20% headroom).
const EXPIRY_SHARE: f64 = 0.8;

/// One sample of what the source keeps for the task, as reported (progress JSON,
/// `ferry status`, the retained-bytes metric).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct SourceRetention {
    /// What holds the log: `replication slot ferry_x`, or `binlog <file>`.
    pub holder: String,
    /// Bytes of log the source keeps from the oldest one the task needs.
    pub retained_bytes: Option<u64>,
    /// PostgreSQL `wal_status`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wal_status: Option<String>,
    /// Bytes the source may still write before the slot is invalidated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub safe_bytes: Option<i64>,
    /// The source's `max_slot_wal_keep_size` in bytes (absent: unlimited).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit_bytes: Option<u64>,
    /// The task's warning threshold in bytes (absent: the log is not kept for the task).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub threshold_bytes: Option<u64>,
    /// Seconds after which the source purges binlogs (absent: never / not a binlog).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expire_seconds: Option<u64>,
    /// Age in seconds of the last source commit the task applied, or of the last
    /// time it recorded its position as current.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub age_seconds: Option<f64>,
    /// Something streams from it right now.
    pub active: bool,
    /// What to worry about, when anything.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warning: Option<String>,
    /// How many times a warning started (or got worse) in this run: a caller that
    /// remembers the last count it saw reports each crossing once.
    pub crossings: u64,
}

/// How bad a sample is: a crossing is a move to a higher level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Nothing to report.
    Fine,
    /// Above the threshold, or close to the binlog expiry.
    Warn,
    /// The slot's WAL is about to be removed (`unreserved`) or is gone (`lost`).
    Danger,
}

/// The task's threshold for `r`: none when the source does not keep the log for
/// the task (a binlog).
pub fn threshold(spec: &TaskSpec, r: &Retention) -> Option<u64> {
    if !r.held_for_task {
        return None;
    }
    Some(spec.source_protection.max_retained_wal.unwrap_or_else(|| {
        r.limit_bytes
            .map(|l| ((l as f64 * SHARE_OF_LIMIT) as u64).min(DEFAULT_MAX_RETAINED))
            .unwrap_or(DEFAULT_MAX_RETAINED)
            .max(1)
    }))
}

/// What a sample says: its level and, above [`Level::Fine`], the warning (what, how
/// much, against what, and what to do).
pub fn assess(
    r: &Retention,
    threshold: Option<u64>,
    age_seconds: Option<f64>,
) -> (Level, Option<String>) {
    let retained = r
        .retained_bytes
        .map(human_bytes)
        .unwrap_or_else(|| "?".into());
    let safe = r
        .safe_bytes
        .map(|s| {
            format!(
                "; {} more WAL and the source invalidates it (max_slot_wal_keep_size)",
                human_bytes(s.max(0) as u64)
            )
        })
        .unwrap_or_default();
    match r.wal_status.as_deref() {
        Some("lost") => {
            return (
                Level::Danger,
                Some(format!(
                    "{} is lost (wal_status lost): the source removed WAL the task needs — full resync needed",
                    r.holder
                )),
            )
        }
        Some("unreserved") => {
            return (
                Level::Danger,
                Some(format!(
                    "{} is about to be lost: wal_status unreserved (it retains {retained} of WAL, past \
                     max_slot_wal_keep_size); the source removes that WAL at its next checkpoint and \
                     the task then needs a full resync — let the task catch up now, or raise \
                     max_slot_wal_keep_size",
                    r.holder
                )),
            )
        }
        _ => {}
    }
    if let (Some(limit), Some(b)) = (threshold, r.retained_bytes) {
        if b > limit {
            return (
                Level::Warn,
                Some(format!(
                    "source retains {retained} of WAL for this task's {} (threshold {}){safe}; {}",
                    r.holder,
                    human_bytes(limit),
                    if r.active {
                        "the task is behind: check its lag and the target's speed"
                    } else {
                        "nothing reads it: run (or resume) the task, or end it to drop the slot"
                    }
                )),
            );
        }
    }
    if let (Some(expire), Some(age)) = (r.expire_seconds, age_seconds) {
        if age > expire as f64 * EXPIRY_SHARE {
            return (
                Level::Warn,
                Some(format!(
                    "the oldest binlog this task still needs ({}) holds changes from {:.0} s ago and the \
                     source purges binlogs after {expire} s (binlog_expire_logs_seconds): less than \
                     {:.0}% headroom — once purged, the task needs a full resync; let it catch up, or \
                     keep binlogs longer",
                    r.holder,
                    age,
                    (1.0 - EXPIRY_SHARE) * 100.0
                )),
            );
        }
    }
    (Level::Fine, None)
}

/// One sample for the task now (`None`: the source keeps nothing for it that Ferry
/// can see, or the task has no position yet). Fails when the log is already gone.
pub async fn sample(spec: &TaskSpec) -> Result<Option<(Level, SourceRetention)>> {
    let mut dst = Conn::open(spec, Role::Target).await?;
    sample_with(spec, &mut dst).await
}

/// [`sample`] reading the task's position through `dst` (a watcher keeps one open).
async fn sample_with(spec: &TaskSpec, dst: &mut Conn) -> Result<Option<(Level, SourceRetention)>> {
    let Some(TaskRecord {
        position: Some(applied),
        ..
    }) = dst.task(&spec.name).await?
    else {
        return Ok(None);
    };
    // the last applied source commit, else (nothing applied yet: a caught-up task
    // records no commit) when the target last recorded the position as current
    let commit = dst
        .stream(&spec.name)
        .await?
        .and_then(|r| r.source_commit_us.or(r.applied_at_us));
    let Some(r) = connector(spec.source.engine)
        .retention(spec, &applied)
        .await?
    else {
        return Ok(None);
    };
    let age = commit.map(|c| ((crate::stream::apply::now_us() - c) as f64 / 1e6).max(0.0));
    let limit = threshold(spec, &r);
    let (level, warning) = assess(&r, limit, age);
    Ok(Some((
        level,
        SourceRetention {
            holder: r.holder,
            retained_bytes: r.retained_bytes,
            wal_status: r.wal_status,
            safe_bytes: r.safe_bytes,
            limit_bytes: r.limit_bytes,
            threshold_bytes: limit,
            expire_seconds: r.expire_seconds,
            age_seconds: age,
            active: r.active,
            warning,
            crossings: 0,
        },
    )))
}

/// Samples the task's source retention every `source_protection.sample_seconds`
/// until dropped (run beside the stream), into `metrics`; logs each crossing.
pub async fn watch(spec: TaskSpec, metrics: Arc<Metrics>) {
    let every = Duration::from_secs(spec.source_protection.sample_seconds.max(1));
    let mut level = Level::Fine;
    let mut crossings = 0;
    // one target session for every sample, opened again after a failed one
    let mut dst: Option<Conn> = None;
    loop {
        let sampled = tokio::time::timeout(Duration::from_secs(20), async {
            let conn = match dst.as_mut() {
                Some(c) => c,
                None => dst.insert(Conn::open(&spec, Role::Target).await?),
            };
            sample_with(&spec, conn).await
        })
        .await;
        if !matches!(sampled, Ok(Ok(_))) {
            dst = None;
        }
        match sampled {
            Ok(Ok(Some((now, mut s)))) => {
                if now > level {
                    crossings += 1;
                    if let Some(w) = &s.warning {
                        tracing::warn!("{w}");
                    }
                } else if now == Level::Fine && level != Level::Fine {
                    tracing::info!(
                        "source retention back to normal: {} retains {}",
                        s.holder,
                        s.retained_bytes
                            .map(human_bytes)
                            .unwrap_or_else(|| "?".into())
                    );
                }
                level = now;
                s.crossings = crossings;
                metrics.set_retention(Some(s));
            }
            Ok(Ok(None)) => metrics.set_retention(None),
            Ok(Err(e)) if e.is(ErrorKind::PositionLost) => {
                // the stream may still read newer log, but its resume point is gone:
                // the next restart of the stream fails — said now, loudly
                if level < Level::Danger {
                    crossings += 1;
                    tracing::warn!("{}", e.message);
                }
                level = Level::Danger;
                metrics.set_retention(Some(SourceRetention {
                    holder: "the source's log".into(),
                    warning: Some(e.message),
                    crossings,
                    ..SourceRetention::default()
                }));
            }
            Ok(Err(e)) => tracing::debug!("source retention not sampled: {e}"),
            Err(_) => tracing::debug!("source retention not sampled: no answer within 20 s"),
        }
        tokio::time::sleep(every).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slot(bytes: u64, status: &str) -> Retention {
        Retention {
            holder: "replication slot ferry_t".into(),
            held_for_task: true,
            retained_bytes: Some(bytes),
            wal_status: Some(status.into()),
            safe_bytes: None,
            limit_bytes: None,
            expire_seconds: None,
            active: true,
        }
    }

    #[test]
    fn a_slot_warns_above_its_threshold_and_loudly_when_unreserved() {
        assert_eq!(
            assess(&slot(100, "reserved"), Some(1000), None),
            (Level::Fine, None)
        );
        let (l, w) = assess(
            &slot(12_300_000_000, "reserved"),
            Some(10_000_000_000),
            None,
        );
        assert_eq!(l, Level::Warn);
        let w = w.unwrap();
        assert!(
            w.starts_with("source retains 12.3 GB of WAL for this task's replication slot ferry_t (threshold 10.0 GB)"),
            "{w}"
        );
        let (l, w) = assess(&slot(5, "unreserved"), Some(1000), None);
        assert_eq!(l, Level::Danger);
        assert!(w.unwrap().contains("about to be lost"));
        let (l, w) = assess(&slot(5, "lost"), None, None);
        assert_eq!(l, Level::Danger);
        assert!(w.unwrap().contains("full resync needed"));
    }

    #[test]
    fn a_binlog_warns_when_the_needed_changes_near_the_expiry() {
        let binlog = Retention {
            holder: "binlog mariadb-bin.000007".into(),
            retained_bytes: Some(50_000_000_000),
            expire_seconds: Some(1000),
            ..Retention::default()
        };
        let spec = TaskSpec::from_yaml(
            "name: t\nkind: migration\nmode: incremental\nsource: mysql://u@h/db\ntarget: postgres://u@h/db\n\
             source_protection: {max_retained_wal: 1}\n",
        )
        .unwrap();
        // the server keeps binlogs anyway: their size is not the task's cost
        assert_eq!(threshold(&spec, &binlog), None);
        assert_eq!(assess(&binlog, None, Some(700.0)).0, Level::Fine);
        let (l, w) = assess(&binlog, None, Some(850.0));
        assert_eq!(l, Level::Warn);
        assert!(w.unwrap().contains("mariadb-bin.000007"));
        assert_eq!(assess(&binlog, None, None).0, Level::Fine);
    }

    #[test]
    fn the_default_threshold_is_the_lower_of_10_gb_and_half_the_source_limit() {
        let spec = TaskSpec::from_yaml(
            "name: t\nkind: migration\nmode: incremental\nsource: postgres://u@h/db\ntarget: postgres://u@h/db2\n",
        )
        .unwrap();
        let mut r = slot(0, "reserved");
        assert_eq!(threshold(&spec, &r), Some(DEFAULT_MAX_RETAINED));
        r.limit_bytes = Some(1_000_000_000);
        assert_eq!(threshold(&spec, &r), Some(500_000_000));
        r.limit_bytes = Some(100_000_000_000);
        assert_eq!(threshold(&spec, &r), Some(DEFAULT_MAX_RETAINED));
    }
}
