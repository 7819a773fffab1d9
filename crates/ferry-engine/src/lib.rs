//! One task run, by phase: [`copy`] (the full snapshot, chunked and resumable),
//! [`stream`] (the change stream, its applier and backfills), [`schema`] (creating
//! tables on the target), [`dr`] (fencing, switchover, failover), with the task's
//! progress in [`checkpoint`], its state reported through [`phase`] and its numbers
//! in [`metrics`]. The engine is engine-blind: sessions are [`conn::Conn`]s, and
//! [`factory`] is the one place that names PostgreSQL and MySQL/MariaDB.

mod abort_on_drop;
pub mod check;
pub mod checkpoint;
pub mod compare;
pub mod conn;
pub mod copy;
pub mod dr;
pub mod factory;
pub mod metrics;
pub mod phase;
pub mod schema;
pub mod status;
pub mod stream;
pub mod task;
pub mod throttle;

pub use conn::{Conn, Role};
pub use copy::{default_jobs, run_full, RunOptions, Summary};
pub use phase::{Phase, Phases};
pub use stream::{StreamOptions, StreamSummary};
pub use task::{end_task, run_task, run_task_reporting, TaskOutcome};
