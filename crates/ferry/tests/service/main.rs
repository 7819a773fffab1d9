//! `ferry serve` over real HTTP with real databases: each state is reached through
//! its real cause (a start, a pause, a scheduled time passing, a killed service, a
//! balance running out, an unreachable endpoint), illegal actions answer 409, tenants
//! see only their own tasks, and no change is lost across any of it.
//!
//! Tests wait on states the API reports, never on fixed sleeps.
//!
//! One test binary, `service`; [`harness`] holds what the tests share, and each other
//! module is one topic:
//!
//! - `api`: authentication, tenants' isolation, malformed requests, the OpenAPI document
//! - `cli`: the `ferry tenant` / `ferry task` commands as clients of the API
//! - `lifecycle`: a task from create to delete, scheduled starts, every failure state
//! - `sync`: edits of a running sync (tables added and removed while writes go on)
//! - `dr`: switchover, failover and fencing, on PostgreSQL and MariaDB
//! - `workers`: leases, a killed node's task recovered, takeover by another worker
//! - `notify`: metering (balance and bytes) and webhook notifications (signed, retried)
//! - `https`: `ferry serve --tls-cert/--tls-key`, the API and the CLI over HTTPS
//! - `tokens`: tenant and admin tokens rotated without a restart
//! - `audit`: the audit log of mutating calls, without secrets
//! - `protect`: source protection (retained WAL warnings, a paused task's slot flagged)
//! - `backup`: backup policies, schedules, data backup / cleanup / secondary tasks, restores
//! - `limits`: speed limits shown and changed on a running task (PATCH)
//! - `backup_log`: log backup tasks, windows, marks, point-in-time restores on the service
//!
//! Run one topic with a name filter on the module path, e.g.
//! `cargo nextest run -p ferry --test service -- dr::`, or one test by its name:
//! `cargo nextest run -p ferry --test service -- the_cli_drives_the_service`.

#[path = "../common/mod.rs"]
mod common;
mod harness;

mod api;
mod audit;
mod backup;
mod backup_log;
mod cli;
mod dr;
mod https;
mod lifecycle;
mod limits;
mod notify;
mod protect;
mod sync;
mod tokens;
mod workers;
