//! One task run: prechecks, schema, consistent snapshot, parallel chunked copy with
//! checkpoints on the target, post-data DDL, the incremental change stream, status
//! and compare.

pub mod abort_on_drop;
pub mod apply;
pub mod backfill;
pub mod check;
pub mod checkpoint;
pub mod compare;
pub mod conn;
pub mod copy;
pub mod dr;
pub mod factory;
pub mod full;
pub mod incremental;
pub mod mapping;
pub mod metrics;
pub mod phase;
pub mod progress;
pub mod schema;
pub mod status;
mod stream;
pub mod switch;
pub mod task;

pub use full::{run_full, RunOptions, Summary};
