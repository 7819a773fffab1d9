//! MySql: the change log.

use super::MySql;
use ferry_connector::Capture;

impl Capture for MySql {}
