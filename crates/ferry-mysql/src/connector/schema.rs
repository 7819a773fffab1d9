//! MySql: planning DDL, and the catalog facts of a MySQL/MariaDB target.

use super::MySql;
use ferry_connector::{async_trait, Connection, NameFolding, Schema};
use ferry_core::{DdlPlan, Engine, Result, Table, TableId};

#[async_trait]
impl Schema for MySql {
    /// MySQL → MySQL plans from the source's own `SHOW CREATE TABLE`.
    async fn create_text(
        &self,
        src: &mut dyn Connection,
        t: &TableId,
        to: Engine,
    ) -> Result<Option<String>> {
        if to != Engine::MySql {
            return Ok(None);
        }
        let c = super::session(src)?;
        Ok(Some(crate::catalog::show_create(c, t).await?))
    }

    fn plan_ddl(
        &self,
        t: &Table,
        target: &TableId,
        from: Engine,
        create_text: Option<&str>,
        map: &dyn Fn(&TableId) -> TableId,
    ) -> Result<DdlPlan> {
        crate::ddl::plan(t, target, from, create_text, map)
    }

    /// Text-protocol cells written as `LOAD DATA` lines, decoded only where the
    /// text is not already the field (`reader::read_lines`).
    fn passthrough(&self) -> bool {
        true
    }

    fn schemas_are_databases(&self) -> bool {
        true
    }

    /// Column names ignore case always; database and table names too when
    /// `lower_case_table_names` is not 0.
    async fn name_folding(&self, dst: &mut dyn Connection) -> Result<NameFolding> {
        let tables = dst
            .query_text("SELECT @@lower_case_table_names")
            .await?
            .first()
            .and_then(|r| r[0].clone())
            .is_some_and(|v| v != "0");
        Ok(NameFolding {
            columns: true,
            tables,
        })
    }

    async fn available_extensions(&self, _dst: &mut dyn Connection) -> Result<Option<Vec<String>>> {
        Ok(None)
    }

    fn foreign_keys_into_sql(&self, schemas: &[&str]) -> String {
        foreign_keys_into_sql(schemas)
    }

    /// `foreign_key_checks` off in this session meanwhile, then one `DROP TABLE` /
    /// `DELETE FROM` per table (stopping at the first failure), then on again.
    async fn clear_tables(
        &self,
        dst: &mut dyn Connection,
        tables: &[&TableId],
        drop: bool,
    ) -> Result<()> {
        dst.exec("SET SESSION foreign_key_checks = 0").await?;
        let mut r = Ok(());
        for t in tables {
            r = dst
                .exec(&clear_sql(t, drop))
                .await
                .map_err(|e| e.context(t));
            if r.is_err() {
                break;
            }
        }
        let restored = dst.exec("SET SESSION foreign_key_checks = 1").await;
        r.and(restored)
    }
}

fn foreign_keys_into_sql(schemas: &[&str]) -> String {
    let in_list = schemas
        .iter()
        .map(|s| crate::conn::quote_literal(s))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "SELECT CONSTRAINT_NAME, CONSTRAINT_SCHEMA, TABLE_NAME, UNIQUE_CONSTRAINT_SCHEMA, REFERENCED_TABLE_NAME \
         FROM information_schema.REFERENTIAL_CONSTRAINTS \
         WHERE UNIQUE_CONSTRAINT_SCHEMA IN ({in_list}) ORDER BY 2, 3, 1"
    )
}

fn clear_sql(t: &TableId, drop: bool) -> String {
    let q = crate::conn::qualified(t);
    if drop {
        format!("DROP TABLE {q}")
    } else {
        format!("DELETE FROM {q}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_are_cleared_one_statement_each() {
        let t = TableId::new("d", "t");
        assert_eq!(clear_sql(&t, true), "DROP TABLE `d`.`t`");
        assert_eq!(clear_sql(&t, false), "DELETE FROM `d`.`t`");
    }

    #[test]
    fn foreign_keys_are_found_by_parent_schema() {
        let sql = foreign_keys_into_sql(&["a", "b'c"]);
        assert!(sql.contains("IN ('a', 'b''c')"), "{sql}");
    }
}
