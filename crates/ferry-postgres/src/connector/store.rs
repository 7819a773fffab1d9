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

    fn writer_sessions_sql(&self, key: &str, _slots: usize) -> String {
        // a bigint advisory key shows in pg_locks as two 32-bit halves
        format!(
            "SELECT DISTINCT pid FROM pg_locks WHERE locktype = 'advisory' AND objsubid = 1 \
             AND ((classid::bigint << 32) | objid::bigint) = hashtextextended({}, 0) \
             AND pid <> pg_backend_pid()",
            crate::quote_literal(key)
        )
    }

    fn end_session_sql(&self, id: &str) -> String {
        format!(
            "SELECT pg_terminate_backend({})",
            id.parse::<i64>().unwrap_or(0)
        )
    }
}
