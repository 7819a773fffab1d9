//! Disaster-recovery fencing: making a database read-only for applications.

/// Fencing of one engine.
pub trait Fencing: Send + Sync {}
