//! PostgreSQL: the checkpoint tables' SQL and the writer locks (a shared advisory
//! lock per task).

use ferry_connector::StoreDialect;

/// PostgreSQL's checkpoint-store SQL.
pub struct PgStore;

impl StoreDialect for PgStore {
    fn create_namespace_sql(&self) -> &'static str {
        "CREATE SCHEMA IF NOT EXISTS ferry"
    }

    fn exact_name_type(&self) -> &'static str {
        "varchar(400)"
    }

    fn stale_name_columns_sql(&self) -> Option<&'static str> {
        None
    }

    fn fix_name_column_sql(&self, table: &str, column: &str) -> String {
        format!(
            "ALTER TABLE ferry.{} ALTER COLUMN {} TYPE varchar(400)",
            crate::quote_ident(table),
            crate::quote_ident(column)
        )
    }

    fn join_writers_sql(&self, key: &str, _slot: Option<usize>) -> (String, bool) {
        // one shared lock for every session of the task: it waits, never fails
        let sql = format!(
            "SELECT pg_advisory_lock_shared(hashtextextended({}, 0))",
            crate::quote_literal(key)
        );
        (sql, false)
    }

    fn writers_gone_sql(&self, key: &str, _slots: usize) -> String {
        let k = format!("hashtextextended({}, 0)", crate::quote_literal(key));
        format!(
            "SELECT CASE WHEN pg_try_advisory_lock({k}) THEN pg_advisory_unlock({k})::int ELSE 0 END"
        )
    }
}
