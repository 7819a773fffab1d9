//! One task run: prechecks, schema, consistent snapshot, parallel chunked copy with
//! checkpoints on the target, post-data DDL, and compare.

pub mod check;
pub mod checkpoint;
pub mod compare;
pub mod conn;
pub mod copy;
pub mod full;
pub mod mapping;
pub mod progress;

pub use full::{run_full, RunOptions, Summary};
