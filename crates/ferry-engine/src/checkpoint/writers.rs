//! The sessions that write a task's data say so with a lock on the target. A killed
//! Ferry's sessions live on in the server until the server notices, and a frozen
//! worker's (SIGSTOP, a paused VM) live on until it runs again — holding row locks
//! the new run needs. Once the new run has claimed the task ([`super::Fence`]) those
//! sessions can commit nothing, so it ends them rather than wait for them.

use super::CheckpointStore;
use ferry_core::Result;

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

/// Ends the sessions earlier runs of `task` left writing on the target. Call after
/// claiming the task (they are fenced then: ending them loses nothing). Best effort:
/// a session that cannot be ended (no privilege to) stays fenced and is only logged.
pub async fn end_fenced_writers(
    store: &mut (impl CheckpointStore + ?Sized),
    task: &str,
) -> Result<()> {
    // server session ids are numbers; anything else is not a session to end
    let ids = store.writer_sessions(task).await?;
    for id in ids.into_iter().filter(|i| i.parse::<u64>().is_ok()) {
        match store.end_session(&id).await {
            Ok(()) => tracing::info!("task {task}: ended session {id} of an earlier run"),
            Err(e) => tracing::info!(
                "task {task}: session {id} of an earlier run is fenced but could not be ended: {e}"
            ),
        }
    }
    Ok(())
}
