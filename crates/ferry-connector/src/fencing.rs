//! Disaster-recovery fencing: making a database read-only for applications.

use crate::async_trait;
use ferry_core::{Endpoint, Result};

/// Fencing of one engine: how a DR standby (or an old primary) is kept read-only
/// for applications while Ferry's own sessions still write to it.
#[async_trait]
pub trait Fencing: Send + Sync {
    /// Fences (`on`) or unfences the database of `ep`.
    async fn set_read_only(&self, ep: &Endpoint, on: bool) -> Result<()>;
}
