//! Where each source table lands on the target, and what its DDL is.

use crate::factory::connector;
use ferry_core::{Engine, Result, Table, TableId, TaskSpec};
use std::collections::BTreeMap;

/// Source → target names for a task.
#[derive(Debug, Clone)]
pub struct NameMap {
    renames: BTreeMap<String, String>,
}

impl NameMap {
    /// Builds the map. Schema renames come from the task; with none given, a target
    /// whose schemas are databases (MySQL/MariaDB) and whose URL names a database
    /// receives a single-schema source into that database (PostgreSQL targets keep
    /// schema names).
    pub fn new(spec: &TaskSpec, tables: &[Table]) -> NameMap {
        let mut renames = spec.rename.clone();
        let schemas: std::collections::BTreeSet<&str> =
            tables.iter().map(|t| t.id.schema.as_str()).collect();
        let into_database = connector(spec.target.engine).schemas_are_databases();
        if let (true, Some(db), 1) = (into_database, &spec.target.database, schemas.len()) {
            let only = schemas
                .iter()
                .next()
                .copied()
                .unwrap_or_default()
                .to_string();
            renames.entry(only).or_insert_with(|| db.clone());
        }
        NameMap { renames }
    }

    /// The target table for a source table.
    pub fn target(&self, t: &TableId) -> TableId {
        TableId::new(
            self.renames
                .get(&t.schema)
                .cloned()
                .unwrap_or_else(|| t.schema.clone()),
            t.name.clone(),
        )
    }
}

/// The DDL plan for a table, whichever the target engine.
pub type Ddl = ferry_core::DdlPlan;

/// Plans the DDL of one table (`create_text` = source `SHOW CREATE TABLE` for
/// MySQL→MySQL).
pub fn plan_ddl(
    t: &Table,
    from: Engine,
    to: Engine,
    names: &NameMap,
    create_text: Option<&str>,
) -> Result<Ddl> {
    let target = names.target(&t.id);
    let map = |id: &TableId| names.target(id);
    connector(to).plan_ddl(t, &target, from, create_text, &map)
}
