//! The change log of a source: where it is, what holds it, and its stream.

/// The change log of one engine.
pub trait Capture: Send + Sync {}
