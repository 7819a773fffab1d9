//! Postgres: planning DDL.

use super::Postgres;
use ferry_connector::Schema;

impl Schema for Postgres {}
