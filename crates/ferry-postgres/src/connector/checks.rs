//! Postgres: prechecks.

use super::Postgres;
use ferry_connector::Checks;

impl Checks for Postgres {}
