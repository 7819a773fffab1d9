//! The error taxonomy. Every failure is either *transient* (retrying may succeed:
//! connection reset, deadlock, server restarting) or *definite* (retrying cannot help:
//! a value the target cannot hold, a missing privilege). Callers decide retry vs fail
//! from the class alone, and the message always says what, where and how to fix it.

use std::fmt;

/// Whether retrying the failed operation can help.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// Retry with backoff; the task shows `recovering` meanwhile.
    Transient,
    /// Fail the task with the message as the reason a human acts on.
    Definite,
}

/// What a caller may branch on besides retry-or-fail. Code never inspects message
/// text: a condition that changes control flow gets a kind here, set where the
/// condition is detected (the connectors classify server error codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ErrorKind {
    /// Nothing to branch on: report it.
    #[default]
    Other,
    /// The change stream must reconnect at once and resume from the last committed
    /// position (not a fault: no backoff, no `recovering`).
    RestartStream,
    /// The log reader ended; the reader's own error says why.
    ReaderStopped,
    /// The bulk writer ended early; the writer's own error says why.
    WriterStopped,
    /// A schema object (table, index, key, constraint) is already there — what an
    /// interrupted attempt leaves behind.
    AlreadyExists,
    /// The server refused for lack of a privilege.
    NoPrivilege,
    /// The server cannot report the log position of a snapshot by itself.
    NoSnapshotPosition,
    /// A DR switchover found the two sides different and switched nothing.
    SwitchoverRefused,
    /// A later run of the task claimed its target: this run must write nothing more.
    Fenced,
}

/// One Ferry error: a message naming what failed and where, and a hint on how to fix it.
#[derive(Debug, Clone, thiserror::Error)]
pub struct Error {
    /// Retry or fail.
    pub class: ErrorClass,
    /// What the caller may branch on.
    pub kind: ErrorKind,
    /// What failed, and where (task, table, column, key, position).
    pub message: String,
    /// How a DBA fixes it, when we know.
    pub hint: Option<String>,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if let Some(h) = &self.hint {
            write!(f, "\n  hint: {h}")?;
        }
        Ok(())
    }
}

impl Error {
    /// A definite error: retrying cannot help.
    pub fn definite(message: impl Into<String>) -> Self {
        Error {
            class: ErrorClass::Definite,
            kind: ErrorKind::Other,
            message: message.into(),
            hint: None,
        }
    }

    /// A transient error: retrying later may succeed.
    pub fn transient(message: impl Into<String>) -> Self {
        Error {
            class: ErrorClass::Transient,
            kind: ErrorKind::Other,
            message: message.into(),
            hint: None,
        }
    }

    /// Adds how to fix it.
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// Marks what the caller may branch on.
    pub fn with_kind(mut self, kind: ErrorKind) -> Self {
        self.kind = kind;
        self
    }

    /// True when the error is of `kind`.
    pub fn is(&self, kind: ErrorKind) -> bool {
        self.kind == kind
    }

    /// Prefixes the message with where it happened (table, phase, …).
    pub fn context(mut self, what: impl fmt::Display) -> Self {
        self.message = format!("{what}: {}", self.message);
        self
    }

    /// True when retrying may help.
    pub fn is_transient(&self) -> bool {
        self.class == ErrorClass::Transient
    }
}

/// Ferry's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
