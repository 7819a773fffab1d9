//! MySQL/MariaDB: the checkpoint tables' SQL (names in a binary collation) and the
//! writer locks (one named lock per writing session).

use crate::conn::{quote_ident, quote_literal};
use ferry_connector::StoreDialect;

/// MySQL/MariaDB's checkpoint-store SQL.
pub struct MyStore;

const NAME_TYPE: &str = "varchar(400) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin";

impl StoreDialect for MyStore {
    fn create_namespace_sql(&self) -> &'static str {
        "CREATE DATABASE IF NOT EXISTS ferry CHARACTER SET utf8mb4"
    }

    fn exact_name_type(&self) -> &'static str {
        NAME_TYPE
    }

    fn stale_name_columns_sql(&self) -> Option<&'static str> {
        Some(
            "SELECT table_name, column_name FROM information_schema.columns \
             WHERE table_schema = 'ferry' AND column_name IN ('table_name', 'source_table') \
             AND collation_name <> 'utf8mb4_bin'",
        )
    }

    fn fix_name_column_sql(&self, table: &str, column: &str) -> String {
        format!(
            "ALTER TABLE ferry.{} MODIFY {} {NAME_TYPE} NOT NULL",
            quote_ident(table),
            quote_ident(column)
        )
    }

    fn join_writers_sql(&self, key: &str, slot: Option<usize>) -> (String, bool) {
        let name = format!(
            "{key}:{}",
            slot.map(|s| s.to_string()).unwrap_or("s".into())
        );
        (
            format!("SELECT GET_LOCK({}, 60)", quote_literal(&name)),
            true,
        )
    }

    fn writer_sessions_sql(&self, key: &str, slots: usize) -> String {
        let mut names = vec![format!("{key}:s")];
        names.extend((0..slots).map(|i| format!("{key}:{i}")));
        let holders: Vec<String> = names
            .iter()
            .map(|n| format!("SELECT IS_USED_LOCK({}) AS id", quote_literal(n)))
            .collect();
        format!(
            "SELECT DISTINCT id FROM ({}) h WHERE id IS NOT NULL AND id <> CONNECTION_ID()",
            holders.join(" UNION ALL ")
        )
    }

    fn end_session_sql(&self, id: &str) -> String {
        format!("KILL CONNECTION {}", id.parse::<u64>().unwrap_or(0))
    }
}
