//! The sessions that write a task's data say so with a lock on the target, so that a
//! later run (or `ferry end`) can wait until an earlier one's sessions are gone: a
//! killed Ferry's sessions live on in the server until their last statement ends —
//! and one of them may still COMMIT a batch it had sent; reading the checkpoint
//! before that commit would replay what it holds (duplicates in a table without a
//! key).

use super::CheckpointStore;
use ferry_core::{Error, Result};
use std::time::Duration;

/// Writer slots a target may have to know for one task: the stream's and those of
/// up to this many copy workers.
pub(super) const WRITER_SLOTS: usize = ferry_core::spec::MAX_JOBS;

/// The lock key of `task` (engine-neutral text; each engine derives its lock from it).
pub(super) fn task_key(task: &str) -> String {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    task.hash(&mut h);
    format!("ferry:{:016x}", h.finish())
}

/// Waits until no session of an earlier run of `task` writes to the target any more.
/// Call before reading the checkpoint.
pub async fn fence_writers(store: &mut (impl CheckpointStore + ?Sized), task: &str) -> Result<()> {
    if store.writers_gone(task, Duration::from_secs(60)).await? {
        return Ok(());
    }
    Err(Error::transient(format!(
        "a session of an earlier run of task {task} still writes to the target"
    ))
    .with_hint("a killed Ferry's last statement is still running there; it ends by itself (or end it: pg_terminate_backend / KILL)"))
}
