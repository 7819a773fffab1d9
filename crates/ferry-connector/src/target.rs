//! Writing a target: bulk loads.

/// What a target session does for the full copy and backfills.
pub trait BulkTarget: Send {}
