//! Where a running task is, told by the engine to its caller as a typed value
//! rather than as free text: the service maps it to lifecycle causes, the CLI to
//! log lines.

use std::sync::atomic::{AtomicBool, Ordering};
use tokio::sync::watch;

/// The engine's phase.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Phase {
    /// Not in a phase yet (prechecks, connecting).
    #[default]
    Starting,
    /// Copying the full snapshot.
    Full,
    /// Streaming while copying tables added to the task.
    Backfill,
    /// Streaming changes.
    Incremental,
    /// Everything the source had committed when asked is applied (a run that exits
    /// once caught up).
    CaughtUp,
    /// A transient fault ended the stream's attempt; it retries with backoff.
    Recovering {
        /// The fault.
        reason: String,
    },
    /// Stopped on request.
    Stopped,
    /// A definite error ended the change stream (the copy's failures end the run
    /// with its error instead).
    Failed {
        /// The error, as shown to the user.
        error: String,
    },
}

impl Phase {
    /// A short lowercase name (`full`, `incremental`, `recovering`, …) for progress
    /// reports and metrics labels.
    pub fn name(&self) -> &'static str {
        match self {
            Phase::Starting => "starting",
            Phase::Full => "full",
            Phase::Backfill => "backfill",
            Phase::Incremental => "incremental",
            Phase::CaughtUp => "caught_up",
            Phase::Recovering { .. } => "recovering",
            Phase::Stopped => "stopped",
            Phase::Failed { .. } => "incremental_failed",
        }
    }
}

/// The sending side of the report channel, shared by the engine's phases.
#[derive(Debug)]
pub struct Phases {
    tx: watch::Sender<Phase>,
    /// Whether this run entered the full phase (a watcher that samples can miss a
    /// short copy).
    copied: AtomicBool,
}

impl Default for Phases {
    fn default() -> Self {
        Phases {
            tx: watch::Sender::new(Phase::Starting),
            copied: AtomicBool::new(false),
        }
    }
}

impl Phases {
    /// A channel in [`Phase::Starting`].
    pub fn new() -> Phases {
        Phases::default()
    }

    /// The engine enters `p`.
    pub fn set(&self, p: Phase) {
        if p == Phase::Full {
            self.copied.store(true, Ordering::Relaxed);
        }
        self.tx.send_replace(p);
    }

    /// The current phase.
    pub fn current(&self) -> Phase {
        self.tx.borrow().clone()
    }

    /// Whether this run was in [`Phase::Full`] at some point.
    pub fn entered_full(&self) -> bool {
        self.copied.load(Ordering::Relaxed)
    }

    /// A receiver that wakes on every change.
    pub fn subscribe(&self) -> watch::Receiver<Phase> {
        self.tx.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_copy_is_remembered() {
        let p = Phases::new();
        assert_eq!(p.current(), Phase::Starting);
        p.set(Phase::Full);
        p.set(Phase::Incremental);
        assert!(p.entered_full());
        assert_eq!(p.current().name(), "incremental");
    }
}
