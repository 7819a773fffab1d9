//! How PostgreSQL spells SQL.

use ferry_connector::Dialect;
use ferry_core::TableId;

/// PostgreSQL's SQL dialect.
pub struct PgDialect;

impl Dialect for PgDialect {
    fn ident(&self, s: &str) -> String {
        crate::conn::quote_ident(s)
    }

    fn literal(&self, s: &str) -> String {
        crate::conn::quote_literal(s)
    }

    fn begin(&self) -> &'static str {
        "BEGIN"
    }

    fn table_exists_sql(&self, t: &TableId) -> String {
        format!(
            "SELECT 1 FROM information_schema.tables WHERE table_schema = {} AND table_name = {}",
            self.literal(&t.schema),
            self.literal(&t.name)
        )
    }
}
