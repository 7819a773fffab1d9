//! A spawned task that is aborted when its handle is dropped, so cancelling a run
//! (a paused or moved task in the service) never leaves copy workers or a log
//! reader running detached, holding connections and replication slots.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::task::{JoinError, JoinHandle};

/// Owns a spawned task; dropping it aborts the task.
pub struct AbortOnDrop<T>(pub JoinHandle<T>);

impl<T: Send + 'static> AbortOnDrop<T> {
    /// Spawns `f` on the runtime.
    pub fn spawn(f: impl Future<Output = T> + Send + 'static) -> AbortOnDrop<T> {
        AbortOnDrop(tokio::spawn(f))
    }
}

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl<T> Future for AbortOnDrop<T> {
    type Output = Result<T, JoinError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.0).poll(cx)
    }
}
