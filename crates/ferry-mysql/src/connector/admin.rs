//! Prechecks and fencing of a MySQL/MariaDB endpoint.

use super::MySql;
use ferry_connector::Admin;

impl Admin for MySql {}
