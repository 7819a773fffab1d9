//! Reading a source: consistent snapshots and chunked reads.

/// What a source session does for the full copy, backfills and compare.
pub trait ChunkSource: Send {}
