//! Prechecks: what `ferry check` asks of an endpoint.

/// The checks of one engine.
pub trait Checks: Send + Sync {}
