//! Prechecks and fencing: engine-wide operations on an endpoint.

/// Operations on a whole endpoint.
pub trait Admin: Send + Sync {}
