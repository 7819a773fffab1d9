//! Prechecks and fencing of a PostgreSQL endpoint.

use super::Postgres;
use ferry_connector::Admin;

impl Admin for Postgres {}
