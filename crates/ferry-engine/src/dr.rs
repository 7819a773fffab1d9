//! Disaster-recovery switches: making a database read-only or writable again, the
//! way a DBA fences an old primary — and a DR standby for as long as it is one (a
//! row an application wrote there would reach neither the primary nor, after a
//! switchover, the reverse stream). PostgreSQL: `default_transaction_read_only` on
//! the database, and the sessions still connected to it are ended (they would keep
//! writing otherwise); MySQL/MariaDB: `read_only` on the server. Ferry's own
//! sessions set `default_transaction_read_only = off` (PostgreSQL) or hold the
//! privilege that bypasses `read_only`, so a fenced database still receives the
//! reversed stream.

use crate::conn::Conn;
use ferry_core::{Endpoint, Error, Result, TaskSpec};
use std::time::Duration;

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

/// The name of the task's replication slot (and publication) on a PostgreSQL source.
pub fn slot_of(spec: &TaskSpec) -> String {
    ferry_postgres::cdc::slot_name(&spec.name)
}

/// After a failover: drops the task's replication slot and publication on the old
/// PostgreSQL primary, which may be gone — a few short tries (a stopped stream's
/// walsender lets go of the slot within moments). Without it the old primary would
/// keep WAL for a slot nobody reads.
pub async fn release_old_primary(spec: &TaskSpec) -> Result<()> {
    let slot = slot_of(spec);
    let mut last = None;
    for _ in 0..5 {
        let attempt = async {
            let c = ferry_postgres::connect(&spec.source).await?;
            ferry_postgres::cdc::drop_slot_and_publication(&c, &slot).await
        };
        match tokio::time::timeout(Duration::from_secs(3), attempt).await {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(e)) if e.is_transient() => last = Some(e),
            Ok(Err(e)) => return Err(e),
            Err(_) => return Err(Error::transient("no answer within 3 s")),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    Err(last.unwrap_or_else(|| Error::transient("the slot stayed in use")))
}
