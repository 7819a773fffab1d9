//! Postgres: the change log.

use super::Postgres;
use ferry_connector::Capture;

impl Capture for Postgres {}
