//! MySql: prechecks.

use super::MySql;
use ferry_connector::Checks;

impl Checks for MySql {}
