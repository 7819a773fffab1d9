//! Schema on the target: planning a source table's DDL for this engine.

/// Schema work of one engine.
pub trait Schema: Send + Sync {}
