//! Postgres: fencing for DR — `default_transaction_read_only` on the database, and
//! the sessions still connected to it are ended (they would keep writing otherwise).
//! Ferry's own sessions set `default_transaction_read_only = off`, so a fenced
//! database still receives the reversed stream.

use super::Postgres;
use ferry_connector::{async_trait, Fencing, SqlConn};
use ferry_core::{Endpoint, Error, Result};

#[async_trait]
impl Fencing for Postgres {
    async fn set_read_only(&self, ep: &Endpoint, on: bool) -> Result<()> {
        let mut c = crate::connect(ep).await?;
        let db = ep
            .database
            .as_deref()
            .ok_or_else(|| Error::definite("the PostgreSQL URL names no database"))?;
        let q = format!("\"{}\"", db.replace('"', "\"\""));
        let lit = c.literal(db);
        if on {
            // already fenced (a DR standby fenced again at every restart of its
            // task): every session since began read-only, none needs ending
            let fenced = c
                .query_text(&format!(
                    "SELECT 1 FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase \
                     WHERE d.datname = {lit} AND s.setrole = 0 \
                     AND 'default_transaction_read_only=on' = ANY (s.setconfig)"
                ))
                .await?;
            if !fenced.is_empty() {
                return Ok(());
            }
            c.exec(&format!(
                "ALTER DATABASE {q} SET default_transaction_read_only = on"
            ))
            .await?;
            c.exec(&format!(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                 WHERE datname = {lit} AND pid <> pg_backend_pid() \
                 AND backend_type = 'client backend' AND application_name <> 'ferry'"
            ))
            .await?;
        } else {
            c.exec(&format!(
                "ALTER DATABASE {q} RESET default_transaction_read_only"
            ))
            .await?;
        }
        Ok(())
    }
}
