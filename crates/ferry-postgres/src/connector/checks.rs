//! PostgreSQL: prechecks.

use super::{session, Postgres};
use ferry_connector::{async_trait, Checks, Connection, Retention};
use ferry_core::{check::Item, Result};

/// The task's own slot, when it exists: what it keeps on the source, and whether it
/// can still be resumed from (a warning, so that the run itself fails with the
/// "full resync needed" error).
fn own_slot(slot: &str, r: &Retention) -> Item {
    let status = r.wal_status.as_deref().unwrap_or("?");
    let retained = r
        .retained_bytes
        .map(|b| format!(", retains {b} bytes of WAL on the source"))
        .unwrap_or_default();
    let lost = status == "lost";
    Item::new(
        &format!("source replication slot {slot} (the task's own)"),
        !lost && status != "unreserved",
        if lost {
            "wal_status lost: the source removed WAL the task needs — full resync needed".to_string()
        } else {
            format!(
                "wal_status {status}, {}{retained}",
                if r.active { "streaming" } else { "not streaming" }
            )
        },
        if lost {
            "`ferry end` the task, then run it again with existing_data: drop"
        } else {
            "run the task so it catches up (or `ferry end` it): unreserved WAL is removed at the next checkpoint"
        },
    )
    .warning()
}

#[async_trait]
impl Checks for Postgres {
    async fn source_checks(&self, conn: &mut dyn Connection, task: &str) -> Result<Vec<Item>> {
        let pg = session(conn)?;
        let slot = crate::cdc::slot_name(task);
        let own = crate::cdc::retention(pg, &slot).await.ok().flatten();
        let mut items =
            crate::precheck::source_checks(pg, own.is_some().then_some(slot.as_str())).await?;
        if let Some(r) = own {
            items.push(own_slot(&slot, &r));
        }
        Ok(items)
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
