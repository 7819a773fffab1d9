//! How MySQL/MariaDB spell SQL.

use ferry_connector::Dialect;
use ferry_core::TableId;

/// MySQL/MariaDB's SQL dialect.
pub struct MyDialect;

impl Dialect for MyDialect {
    fn ident(&self, s: &str) -> String {
        crate::conn::quote_ident(s)
    }

    fn literal(&self, s: &str) -> String {
        crate::conn::quote_literal(s)
    }

    fn begin(&self) -> &'static str {
        "START TRANSACTION"
    }

    fn table_exists_sql(&self, t: &TableId) -> String {
        format!(
            "SELECT 1 FROM information_schema.TABLES WHERE TABLE_SCHEMA = {} AND TABLE_NAME = {}",
            self.literal(&t.schema),
            self.literal(&t.name)
        )
    }
}
