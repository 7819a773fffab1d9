//! Statements and text queries on a MySQL/MariaDB session.

use super::MyDialect;
use crate::MyConn;
use ferry_connector::{async_trait, Dialect, Rows, SqlConn, StoreDialect};
use ferry_core::{select::ObjectFilter, Result, Table};

#[async_trait]
impl SqlConn for MyConn {
    fn dialect(&self) -> &'static dyn Dialect {
        &MyDialect
    }

    fn store_dialect(&self) -> &'static dyn StoreDialect {
        &super::store::MyStore
    }

    fn as_any_mut(&mut self) -> &mut dyn std::any::Any {
        self
    }

    async fn encryption(&mut self) -> Option<String> {
        let rows = self
            .query_text("SHOW SESSION STATUS WHERE Variable_name IN ('Ssl_version', 'Ssl_cipher')")
            .await
            .ok()?;
        let value = |name: &str| {
            rows.iter()
                .find(|r| r.first().cloned().flatten().as_deref() == Some(name))
                .and_then(|r| r.get(1).cloned().flatten())
                .filter(|v| !v.is_empty())
        };
        Some(match (value("Ssl_version"), value("Ssl_cipher")) {
            (Some(version), Some(cipher)) => format!("encrypted ({version}, {cipher})"),
            _ => "not encrypted".to_string(),
        })
    }

    async fn exec(&mut self, sql: &str) -> Result<()> {
        MyConn::exec(self, sql).await
    }

    async fn exec_counts(&mut self, sql: &str) -> Result<Vec<u64>> {
        MyConn::exec_counts(self, sql).await
    }

    async fn query_text(&mut self, sql: &str) -> Result<Rows> {
        MyConn::query_text(self, sql).await
    }

    async fn tables(
        &mut self,
        filter: &ObjectFilter,
        default_db: Option<&str>,
    ) -> Result<Vec<Table>> {
        crate::catalog::read_tables(self, filter, default_db).await
    }
}
