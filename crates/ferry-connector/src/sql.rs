//! Statements and text queries: what every engine-blind step of the engine runs.

use crate::{async_trait, Dialect, StoreDialect};
use ferry_core::{select::ObjectFilter, Result, Table, TableId};

/// Rows of a text query: every cell as optional text.
pub type Rows = Vec<Vec<Option<String>>>;

/// A SQL session.
#[async_trait]
pub trait SqlConn: Send {
    /// How this session's engine spells SQL.
    fn dialect(&self) -> &'static dyn Dialect;

    /// The SQL of Ferry's checkpoint tables and writer locks on this engine.
    fn store_dialect(&self) -> &'static dyn StoreDialect;

    /// The session as `Any`, for its own connector (which knows its concrete type).
    fn as_any_mut(&mut self) -> &mut dyn std::any::Any;

    /// Runs statements without results.
    async fn exec(&mut self, sql: &str) -> Result<()>;

    /// Runs statements; returns how many rows each one matched (UPDATE/DELETE),
    /// affected (INSERT) or returned, in order (0 for the others).
    async fn exec_counts(&mut self, sql: &str) -> Result<Vec<u64>>;

    /// Runs a query; every cell as optional text.
    async fn query_text(&mut self, sql: &str) -> Result<Rows>;

    /// How this session travels, for `ferry check`: `encrypted (TLSv1.3, <cipher>)` or
    /// `not encrypted`, as the server sees it; `None` when the engine cannot tell.
    async fn encryption(&mut self) -> Option<String> {
        None
    }

    /// Reads the selected tables. `default_db` limits a search to the URL's
    /// database where the engine's schemas are databases.
    async fn tables(
        &mut self,
        filter: &ObjectFilter,
        default_db: Option<&str>,
    ) -> Result<Vec<Table>>;

    /// Quotes a string literal.
    fn literal(&self, s: &str) -> String {
        self.dialect().literal(s)
    }

    /// Quotes an identifier.
    fn ident(&self, s: &str) -> String {
        self.dialect().ident(s)
    }

    /// `schema.table`, quoted.
    fn qualified(&self, t: &TableId) -> String {
        self.dialect().qualified(t)
    }

    /// Prepares this session for writes whose order does not follow the target's
    /// foreign keys (they hold on the source already; a subset of tables may be
    /// replicated, chunks of parents and children load in any order): the
    /// dialect's [`Dialect::writer_session`].
    async fn begin_writer_session(&mut self) -> Result<()> {
        let (session, must) = self.dialect().writer_session();
        let set = self.exec(session).await;
        if must {
            set?;
        }
        Ok(())
    }

    /// Whether `t` exists, and whether it has any row.
    async fn table_state(&mut self, t: &TableId) -> Result<Option<bool>> {
        let exists = self.dialect().table_exists_sql(t);
        if self.query_text(&exists).await?.is_empty() {
            return Ok(None);
        }
        let q = format!("SELECT 1 FROM {} LIMIT 1", self.qualified(t));
        Ok(Some(!self.query_text(&q).await?.is_empty()))
    }
}
