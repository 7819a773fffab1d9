//! A PostgreSQL session as a bulk-load target.

use crate::PgConn;
use ferry_connector::BulkTarget;

impl BulkTarget for PgConn {}
