//! Ferry as a service: tasks with the lifecycles of SPEC.md §2 kept in a metadata
//! store (SQLite for one node, PostgreSQL for many), a REST API, workers that lease
//! tasks and run the engine, tenants with tokens and balances.

pub mod api;
pub mod audit;
pub mod backup;
pub mod billing;
pub mod control;
pub mod error;
pub mod notify;
pub mod secrets;
pub mod server;
pub mod store;
pub mod tls;
pub mod tokens;
pub mod worker;

pub use error::{ServiceError, ServiceResult};
