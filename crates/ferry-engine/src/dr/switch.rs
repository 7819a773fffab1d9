//! Disaster-recovery procedures over a whole task: the planned switchover (the
//! standby becomes the primary and the stream turns round), the unplanned failover
//! (the standby is promoted, the primary may be gone), ending a task with retries,
//! and fencing / unfencing the standby. The caller (the service) keeps what it
//! stores: the task's spec and secrets, and the lifecycle causes it applies from
//! the typed outcomes here.

use crate::checkpoint::{CheckpointStore, TaskPhase};
use crate::conn::{Conn, Role};
use crate::metrics::Metrics;
use crate::phase::Phases;
use crate::stream::StreamOptions;
use crate::RunOptions;
use ferry_core::{Endpoint, Error, ErrorKind, Result, TaskSpec};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// How a DBA lifts a fence by hand, told when Ferry could not.
const UNFENCE_BY_HAND: &str =
    "ALTER DATABASE … RESET default_transaction_read_only / SET GLOBAL read_only = OFF";

/// A switchover that happened: the stream runs the other way now.
#[derive(Debug, Clone)]
pub struct Switched {
    /// The task as it goes on: [`TaskSpec::reversed`] of the one switched over.
    pub reversed: TaskSpec,
}

impl fmt::Display for Switched {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "switchover done: {} is the primary now, {} is read-only and receives its changes",
            self.reversed.source, self.reversed.target
        )
    }
}

/// A failover that happened: the standby is writable; what it holds.
#[derive(Debug, Clone)]
pub struct FailedOver {
    /// The promoted standby (the task's target).
    pub promoted: Endpoint,
    /// The last source position the standby applied (`None`: it never finished
    /// initialising).
    pub position: Option<String>,
    /// When the primary committed that position, µs since the epoch, if known.
    pub commit_us: Option<i64>,
    /// What became of the task's replication resources on the old primary.
    pub old_primary: OldPrimary,
}

/// The task's replication resources on the old primary after a failover.
#[derive(Debug, Clone)]
pub enum OldPrimary {
    /// The engine holds nothing there that outlives the stream.
    NothingHeld,
    /// The slot (and publication) of that name was dropped.
    Released {
        /// Their name.
        slot: String,
    },
    /// The old primary could not be reached: it keeps them until dropped by hand.
    Kept {
        /// Their name.
        slot: String,
        /// Why they could not be dropped.
        error: Error,
    },
}

impl FailedOver {
    /// What the failover did, for the task's history; `time` writes a commit time
    /// given in ms since the epoch.
    pub fn describe(&self, time: impl Fn(i64) -> String) -> String {
        let position = self
            .position
            .clone()
            .unwrap_or_else(|| "none (the standby never finished initialising)".into());
        let commit = self
            .commit_us
            .map(|us| time(us / 1000))
            .unwrap_or_else(|| "unknown".into());
        let mut done = format!(
            "failover done: {} is promoted (writable); it holds every change up to {position} \
             (committed on the primary at {commit}); later changes on the primary may be missing",
            self.promoted
        );
        match &self.old_primary {
            OldPrimary::NothingHeld => {}
            OldPrimary::Released { slot } => done.push_str(&format!(
                ". Dropped replication slot and publication {slot} on the old primary"
            )),
            OldPrimary::Kept { slot, error } => done.push_str(&format!(
                ". The old primary keeps replication slot {slot} and its publication (not reachable: {error}): \
                 drop them when it is back (SELECT pg_drop_replication_slot('{slot}'); DROP PUBLICATION {slot};) \
                 or it keeps WAL"
            )),
        }
        done
    }
}

/// The fence of a standby lifted (or not) when its task ended.
#[derive(Debug, Clone)]
pub struct Unfenced {
    /// The standby (the task's target).
    pub standby: Endpoint,
    /// Why it stays read-only, when it does.
    pub error: Option<Error>,
}

impl fmt::Display for Unfenced {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.error {
            None => write!(f, "the standby {} is writable again", self.standby),
            Some(e) => write!(
                f,
                "the standby {} stays read-only ({e}): lift it with ALTER DATABASE … RESET \
                 default_transaction_read_only (PostgreSQL) or SET GLOBAL read_only = OFF (MySQL/MariaDB)",
                self.standby
            ),
        }
    }
}

/// `e` as the cause of a failed step `what`, followed by `then` (what is left
/// behind): the whole text is the message, as the task's reason shows it.
fn failed_step(e: Error, what: &str, then: &str) -> Error {
    Error {
        message: format!("{what}: {e}{then}"),
        hint: None,
        ..e
    }
}

/// A planned DR switchover: fence the primary, let the standby apply everything,
/// compare both sides (refused, naming the tables, when they differ: an error of
/// kind [`ErrorKind::SwitchoverRefused`]), release the old direction, then
/// replicate the other way from the new primary's current position (nothing can be
/// written in between: the old primary is fenced), and open the new primary to
/// writes.
pub async fn switchover(old: &TaskSpec) -> Result<Switched> {
    crate::dr::set_read_only(&old.source, true)
        .await
        .map_err(|e| failed_step(e, &format!("fencing the primary {}", old.source), ""))?;
    let fenced = format!(
        "; the primary {} was made read-only (undo: {UNFENCE_BY_HAND})",
        old.source
    );
    let claim = crate::checkpoint::Claim::default();
    let limits = crate::throttle::Limits::new(&old.speed_limit);
    let opts = RunOptions {
        jobs: 1,
        quiet: true,
        precheck: false,
        claim: claim.clone(),
        copy_throttle: limits.copy,
    };
    let stream = StreamOptions {
        exit_when_caught_up: true,
        quiet: true,
        claim,
        apply_throttle: limits.apply,
    };
    let (_keep, never) = watch::channel(false);
    crate::task::run_task(
        old,
        &opts,
        &stream,
        Arc::new(Metrics::new(&old.name)),
        Arc::new(Phases::new()),
        never,
    )
    .await
    .map_err(|e| failed_step(e, "catching up before the switch", &fenced))?;
    // both sides are read-only to applications now: they must hold the same rows
    // before the standby becomes the primary
    let verdicts = crate::compare::compare(old, old.chunk_rows)
        .await
        .map_err(|e| failed_step(e, "comparing the primary with the standby", &fenced))?;
    let differ: Vec<String> = verdicts
        .iter()
        .filter(|v| !v.equal)
        .map(|v| format!("{} → {}: {}", v.source, v.target, v.differences.join(", ")))
        .collect();
    if !differ.is_empty() {
        let primary = match crate::dr::set_read_only(&old.source, false).await {
            Ok(()) => format!(
                "the primary {} stays the primary and is writable again",
                old.source
            ),
            Err(e) => format!(
                "the primary {} stays the primary but is still read-only ({e}): lift it with \
                 {UNFENCE_BY_HAND}",
                old.source
            ),
        };
        return Err(Error::definite(format!(
            "switchover refused: the standby differs from the primary in {} table(s): {}; nothing was \
             switched: {primary}. Find out how the standby was written to (ferry compare \
             shows the ranges), repair it or re-initialise it, then start the task and switch \
             over again",
            differ.len(),
            differ.join("; ")
        ))
        .with_kind(ErrorKind::SwitchoverRefused));
    }
    crate::task::end_task(old)
        .await
        .map_err(|e| failed_step(e, "releasing the old direction", &fenced))?;
    // the old primary becomes the target: a fresh checkpoint there
    let mut dst = Conn::connect(&old.source).await?;
    dst.ensure().await?;
    dst.reset(&old.name).await?;
    // the reverse stream starts before the new primary takes writes
    let reversed = old.reversed();
    crate::task::start_stream_here(&reversed)
        .await
        .map_err(|e| failed_step(e, "starting the reverse stream", &fenced))?;
    crate::dr::set_read_only(&old.target, false)
        .await
        .map_err(|e| {
            failed_step(
                e,
                &format!("making the standby {} writable", old.target),
                &fenced,
            )
        })?;
    Ok(Switched { reversed })
}

/// An unplanned DR failover: the primary may be gone. The standby is made writable
/// and the last position it applied (and its commit time) is reported: changes the
/// primary committed after it may be lost.
pub async fn failover(spec: &TaskSpec) -> Result<FailedOver> {
    let mut dst = Conn::open(spec, Role::Target).await?;
    dst.ensure().await?;
    // an unreadable record must not keep the standby from being promoted: the
    // report then says so instead of naming a position
    let position = match dst.task(&spec.name).await {
        Ok(r) => r.and_then(|r| r.position).map(|p| p.to_string()),
        Err(e) if e.is_transient() => return Err(e),
        Err(e) => Some(format!(
            "an unknown position (its record is unreadable: {})",
            e.message
        )),
    };
    let commit_us = match dst.stream(&spec.name).await {
        Ok(r) => r.and_then(|r| r.source_commit_us),
        Err(e) if e.is_transient() => return Err(e),
        Err(_) => None,
    };
    dst.set_task(&spec.name, TaskPhase::Ended, None).await?;
    crate::dr::set_read_only(&spec.target, false).await?;
    let old_primary = if crate::factory::connector(spec.source.engine)
        .slot_name(spec)
        .is_some()
    {
        let slot = crate::dr::slot_of(spec);
        match crate::dr::release_old_primary(spec).await {
            Ok(()) => OldPrimary::Released { slot },
            Err(error) => OldPrimary::Kept { slot, error },
        }
    } else {
        OldPrimary::NothingHeld
    };
    Ok(FailedOver {
        promoted: spec.target.clone(),
        position,
        commit_us,
        old_primary,
    })
}

/// Releases the task's source resources (what was done, one line each); a slot
/// still held by the connection of a runner that was just stopped frees up within
/// moments, so transient errors retry (ten times, a second apart).
pub async fn end(spec: &TaskSpec) -> Result<Vec<String>> {
    let mut attempt = 0;
    loop {
        match crate::task::end_task(spec).await {
            Ok(done) => return Ok(done),
            Err(e) if e.is_transient() && attempt < 10 => {
                attempt += 1;
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Makes the DR standby (the task's target) read-only for applications.
pub async fn fence_standby(spec: &TaskSpec) -> Result<()> {
    crate::dr::set_read_only(&spec.target, true)
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
/// more); one that cannot be reached stays read-only, and the outcome says how to
/// lift it by hand.
pub async fn unfence_standby(spec: &TaskSpec) -> Unfenced {
    Unfenced {
        standby: spec.target.clone(),
        error: crate::dr::set_read_only(&spec.target, false).await.err(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint(url: &str) -> Endpoint {
        Endpoint::parse(url, "FERRY_TEST_NO_PASSWORD").unwrap()
    }

    #[test]
    fn a_failover_says_what_the_standby_holds() {
        let mut f = FailedOver {
            promoted: endpoint("mysql://root@127.0.0.1:3307/shop"),
            position: None,
            commit_us: None,
            old_primary: OldPrimary::NothingHeld,
        };
        let time = |ms: i64| format!("<{ms}>");
        let text = f.describe(time);
        assert!(text.starts_with("failover done: "), "{text}");
        assert!(
            text.contains("up to none (the standby never finished initialising)"),
            "{text}"
        );
        assert!(text.contains("at unknown)"), "{text}");
        assert!(!text.contains("slot"), "{text}");
        f.position = Some("binlog:b.000001:4".into());
        f.commit_us = Some(5_000_000);
        f.old_primary = OldPrimary::Kept {
            slot: "ferry_x".into(),
            error: Error::transient("no answer within 3 s"),
        };
        let text = f.describe(time);
        assert!(
            text.contains("up to binlog:b.000001:4 (committed on the primary at <5000>)"),
            "{text}"
        );
        assert!(
            text.contains("keeps replication slot ferry_x") && text.contains("no answer"),
            "{text}"
        );
        f.old_primary = OldPrimary::Released {
            slot: "ferry_x".into(),
        };
        assert!(f
            .describe(time)
            .ends_with("Dropped replication slot and publication ferry_x on the old primary"));
    }

    #[test]
    fn a_failed_step_keeps_its_kind_and_tells_what_is_left() {
        let e = Error::transient("gone")
            .with_hint("retry")
            .with_kind(ErrorKind::ReaderStopped);
        let s = failed_step(e, "catching up", "; fenced");
        assert!(s.is_transient() && s.is(ErrorKind::ReaderStopped));
        assert_eq!(s.to_string(), "catching up: gone\n  hint: retry; fenced");
    }
}
