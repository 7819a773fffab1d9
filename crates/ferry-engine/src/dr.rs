//! Disaster-recovery switches: making a database read-only or writable again, the
//! way a DBA fences an old primary. PostgreSQL: `default_transaction_read_only` on
//! the database, and the sessions still connected to it are ended (they would keep
//! writing otherwise); MySQL/MariaDB: `read_only` on the server. Ferry's own
//! sessions set `default_transaction_read_only = off` (PostgreSQL) or hold the
//! privilege that bypasses `read_only`, so a fenced database still receives the
//! reversed stream.

use crate::conn::Conn;
use ferry_core::{Endpoint, Error, Result};

/// Fences (`on`) or unfences the database of `ep`.
pub async fn set_read_only(ep: &Endpoint, on: bool) -> Result<()> {
    let mut c = Conn::connect(ep).await?;
    match &mut c {
        Conn::Pg(_) => {
            let db = ep
                .database
                .as_deref()
                .ok_or_else(|| Error::definite("the PostgreSQL URL names no database"))?;
            let q = format!("\"{}\"", db.replace('"', "\"\""));
            if on {
                c.exec(&format!(
                    "ALTER DATABASE {q} SET default_transaction_read_only = on"
                ))
                .await?;
                let lit = c.literal(db);
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
        }
        Conn::My(_) => {
            c.exec(&format!(
                "SET GLOBAL read_only = {}",
                if on { "ON" } else { "OFF" }
            ))
            .await?;
        }
    }
    Ok(())
}
