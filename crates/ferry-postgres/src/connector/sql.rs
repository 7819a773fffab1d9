//! Statements and text queries on a PostgreSQL session.

use super::PgDialect;
use crate::conn::classify;
use crate::PgConn;
use ferry_connector::{async_trait, Dialect, Rows, SqlConn, StoreDialect};
use ferry_core::{select::ObjectFilter, Result, Table};
use tokio_postgres::SimpleQueryMessage;

#[async_trait]
impl SqlConn for PgConn {
    fn dialect(&self) -> &'static dyn Dialect {
        &PgDialect
    }

    fn store_dialect(&self) -> &'static dyn StoreDialect {
        &super::store::PgStore
    }

    fn as_any_mut(&mut self) -> &mut dyn std::any::Any {
        self
    }

    async fn encryption(&mut self) -> Option<String> {
        let rows = self
            .query_text(
                "SELECT ssl::text, version, cipher FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            )
            .await
            .ok()?;
        let row = rows.into_iter().next()?;
        Some(match row.as_slice() {
            [Some(ssl), Some(version), Some(cipher)] if ssl == "true" => {
                format!("encrypted ({version}, {cipher})")
            }
            _ => "not encrypted".to_string(),
        })
    }

    async fn exec(&mut self, sql: &str) -> Result<()> {
        self.client.batch_execute(sql).await.map_err(classify)
    }

    async fn exec_counts(&mut self, sql: &str) -> Result<Vec<u64>> {
        let msgs = self.client.simple_query(sql).await.map_err(classify)?;
        Ok(msgs
            .into_iter()
            .filter_map(|m| match m {
                SimpleQueryMessage::CommandComplete(n) => Some(n),
                _ => None,
            })
            .collect())
    }

    async fn query_text(&mut self, sql: &str) -> Result<Rows> {
        let msgs = self.client.simple_query(sql).await.map_err(classify)?;
        Ok(msgs
            .into_iter()
            .filter_map(|m| match m {
                SimpleQueryMessage::Row(r) => {
                    Some((0..r.len()).map(|i| r.get(i).map(String::from)).collect())
                }
                _ => None,
            })
            .collect())
    }

    async fn tables(
        &mut self,
        filter: &ObjectFilter,
        _default_db: Option<&str>,
    ) -> Result<Vec<Table>> {
        crate::catalog::read_tables(self, filter).await
    }
}
