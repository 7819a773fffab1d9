//! How an engine spells SQL. Pure functions of their arguments: the engine builds
//! every statement it sends through a dialect, never by naming an engine.

use ferry_core::TableId;

/// SQL spelling of one engine.
pub trait Dialect: Send + Sync {
    /// Quotes an identifier.
    fn ident(&self, s: &str) -> String;

    /// Quotes a string literal.
    fn literal(&self, s: &str) -> String;

    /// `schema.table`, quoted.
    fn qualified(&self, t: &TableId) -> String {
        format!("{}.{}", self.ident(&t.schema), self.ident(&t.name))
    }

    /// The statement that opens a transaction.
    fn begin(&self) -> &'static str;

    /// A query returning a row when table `t` exists.
    fn table_exists_sql(&self, t: &TableId) -> String;
}
