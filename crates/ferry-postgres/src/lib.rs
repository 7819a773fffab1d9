//! PostgreSQL as a Ferry source and target.
//!
//! Reading uses `COPY (SELECT …) TO STDOUT`: binary format passed through untouched
//! when the target is PostgreSQL too (nothing decoded, nothing lost), text format parsed
//! into [`ferry_core::Value`]s for other targets and for `compare`. Writing uses
//! `COPY … FROM STDIN` inside a transaction that also marks the chunk done.

pub mod array;
pub mod catalog;
pub mod cdc;
pub mod conn;
pub mod connector;
pub mod copytext;
pub mod ddl;
pub mod pgoutput;
pub mod physical;
pub mod precheck;
pub mod reader;
pub mod replication;
pub mod tls;
pub mod types;
pub mod writer;

pub use conn::{connect, quote_ident, quote_literal, PgConn};
