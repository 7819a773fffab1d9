//! Prechecks: what `ferry check` asks of an endpoint. Each engine words its own
//! findings (what was found, how to fix it); the engine collects them.

use crate::{async_trait, Connection};
use ferry_core::{check::Item, Result};

/// The checks of one engine.
#[async_trait]
pub trait Checks: Send + Sync {
    /// A source's version, settings for the change stream and privileges. `task`
    /// names the task whose own resources (a replication slot) count as available.
    async fn source_checks(&self, conn: &mut dyn Connection, task: &str) -> Result<Vec<Item>>;

    /// A target's version and settings.
    async fn target_checks(&self, conn: &mut dyn Connection) -> Result<Vec<Item>>;

    /// Whether Ferry's user may make the target read-only for applications (a DR
    /// standby), and how to grant it when not.
    async fn can_fence(&self, conn: &mut dyn Connection) -> Result<(bool, &'static str)>;

    /// Whether Ferry's user may create its checkpoint tables (the `ferry`
    /// namespace) on the target, found out without leaving anything there (a check
    /// creates nothing); the detail says what was found.
    async fn can_hold_checkpoints(&self, conn: &mut dyn Connection) -> Result<(bool, String)>;

    /// What streaming changes of a table without a key involves on this source
    /// (shown by `ferry check` for each such table).
    fn keyless_stream_note(&self) -> &'static str;
}
