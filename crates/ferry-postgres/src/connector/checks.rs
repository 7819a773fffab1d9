//! PostgreSQL: prechecks.

use super::{session, Postgres};
use ferry_connector::{async_trait, Checks, Connection};
use ferry_core::{check::Item, Result};

#[async_trait]
impl Checks for Postgres {
    async fn source_checks(&self, conn: &mut dyn Connection, task: &str) -> Result<Vec<Item>> {
        let pg = session(conn)?;
        let slot = crate::cdc::slot_name(task);
        let own = matches!(crate::cdc::slot_state(pg, &slot).await, Ok(Some(_)));
        crate::precheck::source_checks(pg, own.then_some(slot.as_str())).await
    }

    async fn target_checks(&self, conn: &mut dyn Connection) -> Result<Vec<Item>> {
        let (v, _) = crate::precheck::version(session(conn)?).await?;
        Ok(vec![Item::new(
            "target version",
            true,
            format!("PostgreSQL {v}"),
            "",
        )])
    }

    async fn can_fence(&self, conn: &mut dyn Connection) -> Result<(bool, &'static str)> {
        let r = conn
            .query_text(
                "SELECT (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) \
                   OR pg_has_role(current_user, d.datdba, 'MEMBER') \
                 FROM pg_database d WHERE d.datname = current_database()",
            )
            .await?;
        let yes = r.first().and_then(|r| r.first().cloned().flatten()) == Some("t".into());
        Ok((
            yes,
            "make Ferry's user the standby database's owner (ALTER DATABASE … OWNER TO …) \
             or a superuser, and grant it pg_signal_backend (GRANT pg_signal_backend TO …)",
        ))
    }

    async fn can_hold_checkpoints(&self, conn: &mut dyn Connection) -> Result<(bool, String)> {
        // DDL is transactional here: try it, then undo it
        conn.exec("BEGIN").await?;
        let tried = conn
            .exec(
                "CREATE SCHEMA IF NOT EXISTS ferry; \
                 CREATE TABLE IF NOT EXISTS ferry.ferry_check_probe (probe int)",
            )
            .await;
        conn.exec("ROLLBACK").await?;
        Ok(match tried {
            Ok(()) => (true, String::new()),
            Err(e) => (false, e.message),
        })
    }

    fn keyless_stream_note(&self) -> &'static str {
        "copied whole (not split in chunks); its changes are matched on every column, one \
         row at a time (slower; identical duplicate rows are interchangeable); `ferry run` \
         sets REPLICA IDENTITY FULL on it on the source (PostgreSQL refuses its \
         UPDATE/DELETE once published without it)"
    }
}
