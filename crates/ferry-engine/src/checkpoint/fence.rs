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

/// One run's claim on a task's target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fence {
    /// The task.
    pub task: String,
    /// The epoch this run claimed; a later claim makes it stale.
    pub epoch: i64,
}

impl Fence {
    /// Claims `task` on the target for this run: later data transactions of any
    /// earlier run of the task fail their check.
    pub async fn claim(store: &mut (impl CheckpointStore + ?Sized), task: &str) -> Result<Fence> {
        let epoch = store.claim(task).await?;
        tracing::info!("task {task}: claimed the target (epoch {epoch})");
        Ok(Fence {
            task: task.to_string(),
            epoch,
        })
    }

    /// The statement a data transaction runs just before its COMMIT: it fails (a
    /// NOT NULL violation) when a later run has claimed the task, and locks the
    /// epoch row until the transaction ends.
    pub fn check_sql(&self, conn: &Conn) -> String {
        format!(
            "UPDATE ferry.fences SET epoch = CASE WHEN epoch = {e} THEN epoch ELSE NULL END WHERE task = {t}",
            e = self.epoch,
            t = conn.literal(&self.task)
        )
    }

    /// `e`, a failed data transaction's error, told as "fenced" when a later run has
    /// claimed the task (then nothing this run sends may commit: it must stop).
    pub async fn explain(&self, conn: &mut Conn, e: Error) -> Error {
        match conn.epoch(&self.task).await {
            Ok(Some(now)) if now != self.epoch => Error::definite(format!(
                "another run of task {} took over the target (epoch {now}; this run's is {}): \
                 this run stops and its last transaction was rolled back",
                self.task, self.epoch
            ))
            .with_kind(ErrorKind::Fenced)
            .with_hint(
                "only one run of a task may write its target: stop the other `ferry run`, or \
                 let the service's current worker run it",
            ),
            _ => e,
        }
    }
}
