//! One line of `ferry check`: what was checked, the finding, and the fix.

/// One check result.
#[derive(Debug, Clone)]
pub struct Item {
    /// What was checked.
    pub name: String,
    /// Passed.
    pub ok: bool,
    /// A failure here is reported but does not fail `check` (needed only later,
    /// e.g. for the incremental phase).
    pub warn_only: bool,
    /// Needed only by the change stream: a warning for a task that only copies, a
    /// failure for one that streams.
    pub stream_only: bool,
    /// What was found.
    pub detail: String,
    /// How to fix a failure.
    pub fix: String,
}

impl Item {
    /// Builds an item.
    pub fn new(name: &str, ok: bool, detail: impl Into<String>, fix: impl Into<String>) -> Item {
        Item {
            name: name.into(),
            ok,
            warn_only: false,
            stream_only: false,
            detail: detail.into(),
            fix: fix.into(),
        }
    }

    /// Marks the item as a warning (reported, does not fail the check).
    pub fn warning(mut self) -> Item {
        self.warn_only = true;
        self
    }

    /// Marks the item as needed by the change stream only (see `stream_only`).
    pub fn for_stream(mut self) -> Item {
        self.warn_only = true;
        self.stream_only = true;
        self
    }
}
