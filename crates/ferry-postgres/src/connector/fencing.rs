//! Postgres: fencing for DR.

use super::Postgres;
use ferry_connector::Fencing;

impl Fencing for Postgres {}
