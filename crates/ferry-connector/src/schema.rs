//! Schema on the target: planning a source table's DDL for this engine, and the
//! catalog facts and statements the engine's schema steps need.

use crate::{async_trait, Connection};
use ferry_core::{DdlPlan, Engine, Result, Table, TableId};

/// How a target engine compares names: what may collide there although the
/// source tells the names apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NameFolding {
    /// Column names ignore case.
    pub columns: bool,
    /// Schema (database) and table names ignore case.
    pub tables: bool,
}

/// Schema work of one engine.
#[async_trait]
pub trait Schema: Send + Sync {
    /// As a source: what a target of engine `to` needs besides the table model to
    /// plan `t`'s DDL (MySQL → MySQL: the source's own `SHOW CREATE TABLE`).
    async fn create_text(
        &self,
        src: &mut dyn Connection,
        t: &TableId,
        to: Engine,
    ) -> Result<Option<String>>;

    /// As a target: plans source table `t` (of engine `from`) as `target`
    /// (`create_text` from the source's [`Schema::create_text`]; `map` gives the
    /// target of any table a foreign key references).
    fn plan_ddl(
        &self,
        t: &Table,
        target: &TableId,
        from: Engine,
        create_text: Option<&str>,
        map: &dyn Fn(&TableId) -> TableId,
    ) -> Result<DdlPlan>;

    /// Whether a copy between two servers of this engine passes the data through
    /// in the engine's own bulk format, nothing decoded.
    fn passthrough(&self) -> bool;

    /// Whether this engine's schemas are its databases, so a target URL naming a
    /// database receives a single-schema source into that database.
    fn schemas_are_databases(&self) -> bool;

    /// The name folding of the target `dst` is a session to.
    async fn name_folding(&self, dst: &mut dyn Connection) -> Result<NameFolding>;

    /// The extensions the server of `dst` could install, for an engine whose
    /// types may come from extensions (`None` otherwise).
    async fn available_extensions(&self, dst: &mut dyn Connection) -> Result<Option<Vec<String>>>;

    /// A query listing the foreign keys whose referenced table lies in one of
    /// `schemas`, one row each: constraint name, child schema, child table,
    /// parent schema, parent table.
    fn foreign_keys_into_sql(&self, schemas: &[&str]) -> String;

    /// Drops (`drop`) or empties `tables` on `dst` together, so that foreign keys
    /// among them are no obstacle — without reaching any other table.
    async fn clear_tables(
        &self,
        dst: &mut dyn Connection,
        tables: &[&TableId],
        drop: bool,
    ) -> Result<()>;
}
