//! Fencing: at most one run of a task writes its data, decided on the target itself.
//!
//! A run that lost its place — a service worker frozen past its lease (SIGSTOP, a long
//! GC-like pause, a partitioned node) while another took the task over, or a killed
//! `ferry run` whose server session still holds a pipelined COMMIT — must not commit
//! anything the new run did not see when it read the checkpoint. Leases in the
//! metadata store cannot promise that: the frozen worker does not know it lost the
//! lease until it looks. So every run *claims* the task on the target at its start (a
//! new epoch, one more than the last) and every data transaction checks, in the same
//! transaction and just before its COMMIT, that the epoch is still its own: a stale
//! run's transaction fails and rolls back, whatever its process believes. The check
//! locks the epoch row until the COMMIT, so a claim waits for a commit already past
//! its check — that commit is then before the claim, and the new run reads it.
//!
//! This is the fencing-token pattern; the token is kept in the same database as the
//! data, so the check and the data commit atomically.

use super::CheckpointStore;
use crate::conn::Conn;
use ferry_core::{Error, ErrorKind, Result};
use std::sync::{Arc, Mutex};

/// What one run of a task has claimed so far. Its first claim takes the task; a
/// later one (the stream's next attempt after a fault, the stream after the copy)
/// only renews a claim nobody took since — so a run that was frozen and then hit a
/// fault stops instead of taking the task back from the run that replaced it.
/// Clones share the record: give the copy and the stream of one run the same one.
#[derive(Debug, Clone, Default)]
pub struct Claim(Arc<Mutex<Option<i64>>>);

impl Claim {
    fn held(&self) -> Option<i64> {
        *self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn hold(&self, epoch: i64) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(epoch);
    }
}

/// One run's claim on a task's target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fence {
    /// The task.
    pub task: String,
    /// The epoch this run claimed; a later claim makes it stale.
    pub epoch: i64,
}

impl Fence {
    /// Claims `task` on the target for the run `claim` belongs to: later data
    /// transactions of any other run of the task fail their check. Fails (fenced)
    /// when another run claimed the task since this run's last claim.
    pub async fn claim(
        store: &mut (impl CheckpointStore + ?Sized),
        task: &str,
        claim: &Claim,
    ) -> Result<Fence> {
        let held = claim.held();
        match store.claim(task, held).await? {
            Ok(epoch) => {
                claim.hold(epoch);
                tracing::info!("task {task}: claimed the target (epoch {epoch})");
                Ok(Fence {
                    task: task.to_string(),
                    epoch,
                })
            }
            Err(now) => Err(taken_over(task, now, held.unwrap_or_default())),
        }
    }

    /// The statement a data transaction runs just before its COMMIT: it fails (a
    /// NOT NULL violation — on MySQL/MariaDB because every Ferry session runs in
    /// strict SQL mode) when a later run has claimed the task, and locks the epoch
    /// row until the transaction ends. The row exists from the first claim on and
    /// nothing Ferry does deletes it.
    pub fn check_sql(&self, conn: &Conn) -> String {
        format!(
            "UPDATE ferry.fences SET epoch = CASE WHEN epoch = {e} THEN epoch ELSE NULL END WHERE task = {t}",
            e = self.epoch,
            t = conn.literal(&self.task)
        )
    }

    /// Fails (fenced) when a later run has claimed the task: asked before a step
    /// outside a data transaction that would undo another run's work (emptying or
    /// dropping tables, forgetting checkpoints). A read, not a lock: it narrows the
    /// window of a run frozen just before such a step to that step itself.
    pub async fn verify(&self, conn: &mut Conn) -> Result<()> {
        match conn.epoch(&self.task).await? {
            Some(now) if now != self.epoch => Err(taken_over(&self.task, now, self.epoch)),
            _ => Ok(()),
        }
    }

    /// `e`, a failed data transaction's error, told as "fenced" when a later run has
    /// claimed the task (then nothing this run sends may commit: it must stop).
    pub async fn explain(&self, conn: &mut Conn, e: Error) -> Error {
        match conn.epoch(&self.task).await {
            Ok(Some(now)) if now != self.epoch => taken_over(&self.task, now, self.epoch),
            _ => e,
        }
    }
}

/// Another run of `task` claimed it (epoch `now`; this run's was `mine`).
fn taken_over(task: &str, now: i64, mine: i64) -> Error {
    Error::definite(format!(
        "another run of task {task} took over the target (epoch {now}; this run's is {mine}): \
         this run stops and writes nothing more"
    ))
    .with_kind(ErrorKind::Fenced)
    .with_hint(
        "only one run of a task may write its target: stop the other `ferry run`, or let the \
         service's current worker run it",
    )
}
