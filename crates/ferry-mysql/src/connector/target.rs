//! A MySQL/MariaDB session as a bulk-load target.

use crate::MyConn;
use ferry_connector::BulkTarget;

impl BulkTarget for MyConn {}
