//! MySQL 8 and MariaDB 10.11+ as a Ferry source and target.
//!
//! Reading streams `SELECT`s over the text protocol inside consistent-snapshot
//! transactions opened under one brief `FLUSH TABLES WITH READ LOCK`; writing uses
//! `LOAD DATA LOCAL INFILE` fed from memory, and treats any warning as an error
//! (LOCAL loads turn data errors into warnings, which would otherwise alter values
//! silently).

pub mod binlog;
pub mod binlog_value;
pub mod catalog;
pub mod conn;
pub mod connector;
pub mod ddl;
pub mod precheck;
pub mod reader;
pub mod tls;
pub mod types;
pub mod writer;

pub use conn::{connect, quote_ident, MyConn};
