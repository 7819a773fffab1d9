//! Backup and restore as service features (SPEC.md §2.4–2.5): per-cluster backup
//! policies with cron schedules, data backup / cleanup / secondary / drill tasks and
//! restore tasks, all kept in the metadata store and run by the workers under leases
//! like the other tasks, on top of `ferry_backup`.
//!
//! - [`policy`] — what a policy holds, its validation (cron text, retention, URLs);
//! - [`schedule`] — when a schedule is due, with one catch-up run for missed slots;
//! - [`retention`] — which sets a cleanup removes (never a kept set's chain);
//! - [`db`] — the store's tables for policies and backup tasks;
//! - [`run`] — the worker side: the scheduler and the task runners;
//! - [`log`] — the log backup task of each cluster and its archiver.

pub mod db;
pub mod log;
pub mod policy;
pub mod retention;
pub mod run;
pub mod schedule;

/// What a backup task does (the `kind` column of `backup_tasks`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskKind {
    /// A data backup (full or incremental set).
    Data,
    /// Removing sets past retention.
    Cleanup,
    /// Copying a completed set to the secondary storage.
    Secondary,
    /// A restore drill into the policy's scratch target.
    Drill,
    /// A restore asked for by a user.
    Restore,
    /// Copying a cluster's new log pieces to the secondary storage.
    SecondaryLog,
}

impl TaskKind {
    /// Every kind.
    pub const ALL: [TaskKind; 6] = [
        TaskKind::Data,
        TaskKind::Cleanup,
        TaskKind::Secondary,
        TaskKind::Drill,
        TaskKind::Restore,
        TaskKind::SecondaryLog,
    ];

    /// The id stored and shown.
    pub fn id(self) -> &'static str {
        match self {
            TaskKind::Data => "data",
            TaskKind::Cleanup => "cleanup",
            TaskKind::Secondary => "secondary",
            TaskKind::Drill => "drill",
            TaskKind::Restore => "restore",
            TaskKind::SecondaryLog => "secondary-log",
        }
    }

    /// The kind of an id.
    pub fn from_id(s: &str) -> Option<TaskKind> {
        TaskKind::ALL.into_iter().find(|k| k.id() == s)
    }

    /// The state a new task of this kind starts in.
    pub fn first_state(self) -> &'static str {
        match self {
            TaskKind::Data => "running",
            TaskKind::Restore => "prechecking",
            _ => "pending",
        }
    }

    /// The webhook event of its failure.
    pub fn failure_event(self) -> &'static str {
        match self {
            TaskKind::Data => "backup_failed",
            TaskKind::Cleanup => "backup_cleanup_failed",
            TaskKind::Secondary => "backup_secondary_failed",
            TaskKind::Drill => "backup_drill_failed",
            TaskKind::Restore => "restore_failed",
            TaskKind::SecondaryLog => "backup_secondary_log_failed",
        }
    }
}

/// States in which a backup task still has work to do (a worker takes it).
pub const LIVE_STATES: [&str; 4] = ["pending", "running", "prechecking", "restoring"];

/// Every state a backup task can be in (seed 003 and 004), with its label.
pub const STATES: [(&str, &str); 8] = [
    ("pending", "未开始执行"),
    ("running", "进行中"),
    ("completed", "已完成"),
    ("failed", "失败"),
    ("prechecking", "预检查中"),
    ("precheck_failed", "预检查失败"),
    ("restoring", "恢复中"),
    ("succeeded", "成功"),
];

/// The label of a state.
pub fn state_label(s: &str) -> &'static str {
    STATES
        .iter()
        .find(|(id, _)| *id == s)
        .map(|(_, l)| *l)
        .unwrap_or("")
}

/// An engine error as a task reason: the message, and the fix when known.
pub fn reason_of(e: &ferry_core::Error) -> String {
    let text = match &e.hint {
        Some(h) => format!("{} (fix: {h})", e.message),
        None => e.message.clone(),
    };
    ferry_core::redact::redact(&text)
}
