//! MySql: fencing for DR.

use super::MySql;
use ferry_connector::Fencing;

impl Fencing for MySql {}
