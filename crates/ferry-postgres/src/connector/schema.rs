//! Postgres: planning DDL, and the catalog facts of a PostgreSQL target.

use super::Postgres;
use ferry_connector::{async_trait, Connection, NameFolding, Schema};
use ferry_core::{DdlPlan, Engine, Result, Table, TableId};

#[async_trait]
impl Schema for Postgres {
    async fn create_text(
        &self,
        _src: &mut dyn Connection,
        _t: &TableId,
        _to: Engine,
    ) -> Result<Option<String>> {
        Ok(None)
    }

    fn plan_ddl(
        &self,
        t: &Table,
        target: &TableId,
        from: Engine,
        _create_text: Option<&str>,
        map: &dyn Fn(&TableId) -> TableId,
    ) -> Result<DdlPlan> {
        crate::ddl::plan(t, target, from, map)
    }

    /// Binary COPY out of one server and into the other.
    fn passthrough(&self) -> bool {
        true
    }

    fn schemas_are_databases(&self) -> bool {
        false
    }

    /// PostgreSQL compares quoted names exactly.
    async fn name_folding(&self, _dst: &mut dyn Connection) -> Result<NameFolding> {
        Ok(NameFolding::default())
    }

    async fn available_extensions(&self, dst: &mut dyn Connection) -> Result<Option<Vec<String>>> {
        Ok(Some(
            dst.query_text("SELECT name FROM pg_available_extensions")
                .await?
                .into_iter()
                .filter_map(|r| r[0].clone())
                .collect(),
        ))
    }

    fn foreign_keys_into_sql(&self, schemas: &[&str]) -> String {
        foreign_keys_into_sql(schemas)
    }

    /// One `DROP TABLE a, b` / `TRUNCATE a, b`, never `CASCADE` (which would reach
    /// unselected tables).
    async fn clear_tables(
        &self,
        dst: &mut dyn Connection,
        tables: &[&TableId],
        drop: bool,
    ) -> Result<()> {
        dst.exec(&clear_sql(tables, drop)).await
    }
}

fn foreign_keys_into_sql(schemas: &[&str]) -> String {
    let in_list = schemas
        .iter()
        .map(|s| crate::conn::quote_literal(s))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "SELECT con.conname::text, cn.nspname::text, c.relname::text, pn.nspname::text, p.relname::text \
         FROM pg_constraint con \
         JOIN pg_class c ON c.oid = con.conrelid JOIN pg_namespace cn ON cn.oid = c.relnamespace \
         JOIN pg_class p ON p.oid = con.confrelid JOIN pg_namespace pn ON pn.oid = p.relnamespace \
         WHERE con.contype = 'f' AND pn.nspname IN ({in_list}) ORDER BY 2, 3, 1"
    )
}

fn clear_sql(tables: &[&TableId], drop: bool) -> String {
    let list = tables
        .iter()
        .map(|t| crate::conn::qualified(t))
        .collect::<Vec<_>>()
        .join(", ");
    if drop {
        format!("DROP TABLE {list}")
    } else {
        format!("TRUNCATE {list}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_are_cleared_in_one_statement() {
        let (a, b) = (TableId::new("s", "a"), TableId::new("s", "B"));
        assert_eq!(clear_sql(&[&a, &b], true), r#"DROP TABLE "s"."a", "s"."B""#);
        assert_eq!(clear_sql(&[&a], false), r#"TRUNCATE "s"."a""#);
    }

    #[test]
    fn foreign_keys_are_found_by_parent_schema() {
        let sql = foreign_keys_into_sql(&["a", "b'c"]);
        assert!(sql.contains("pn.nspname IN ('a', 'b''c')"), "{sql}");
    }
}
