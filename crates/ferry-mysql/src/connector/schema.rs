//! MySql: planning DDL.

use super::MySql;
use ferry_connector::Schema;

impl Schema for MySql {}
