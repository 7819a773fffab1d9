//! MySQL/MariaDB: prechecks.

use super::{session, MySql};
use ferry_connector::{async_trait, Checks, Connection};
use ferry_core::{check::Item, Result};

#[async_trait]
impl Checks for MySql {
    async fn source_checks(&self, conn: &mut dyn Connection, _task: &str) -> Result<Vec<Item>> {
        crate::precheck::source_checks(session(conn)?).await
    }

    async fn target_checks(&self, conn: &mut dyn Connection) -> Result<Vec<Item>> {
        crate::precheck::target_checks(session(conn)?).await
    }

    async fn can_fence(&self, conn: &mut dyn Connection) -> Result<(bool, &'static str)> {
        let r = conn
            .query_text(
                "SELECT COUNT(*) > 0 FROM information_schema.USER_PRIVILEGES \
                 WHERE GRANTEE = CONCAT('''', SUBSTRING_INDEX(CURRENT_USER(), '@', 1), '''@''', \
                                        SUBSTRING_INDEX(CURRENT_USER(), '@', -1), '''') \
                   AND PRIVILEGE_TYPE IN ('SUPER', 'READ_ONLY ADMIN')",
            )
            .await?;
        let yes = r.first().and_then(|r| r.first().cloned().flatten()) == Some("1".into());
        Ok((
            yes,
            "GRANT READ_ONLY ADMIN ON *.* TO <Ferry's user> (MariaDB 10.11+; SUPER on older \
             servers): Ferry sets the standby server's read_only and writes through it",
        ))
    }

    async fn can_hold_checkpoints(&self, conn: &mut dyn Connection) -> Result<(bool, String)> {
        // DDL commits at once here: ask for the privilege instead of trying
        let exists = !conn
            .query_text("SELECT 1 FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = 'ferry'")
            .await?
            .is_empty();
        let grantee = "CONCAT('''', SUBSTRING_INDEX(CURRENT_USER(), '@', 1), '''@''', \
                       SUBSTRING_INDEX(CURRENT_USER(), '@', -1), '''')";
        let r = conn
            .query_text(&format!(
                "SELECT (SELECT COUNT(*) FROM information_schema.USER_PRIVILEGES \
                         WHERE GRANTEE = {grantee} AND PRIVILEGE_TYPE = 'CREATE') \
                      + (SELECT COUNT(*) FROM information_schema.SCHEMA_PRIVILEGES \
                         WHERE GRANTEE = {grantee} AND TABLE_SCHEMA = 'ferry' \
                         AND PRIVILEGE_TYPE = 'CREATE') > 0"
            ))
            .await?;
        let may_create = r.first().and_then(|r| r.first().cloned().flatten()) == Some("1".into());
        Ok(match (exists, may_create) {
            (_, true) => (true, String::new()),
            (true, false) => (
                false,
                "the ferry database exists but Ferry's user may not create tables in it".into(),
            ),
            (false, false) => (
                false,
                "Ferry's user may not create the ferry database (no CREATE privilege)".into(),
            ),
        })
    }

    fn keyless_stream_note(&self) -> &'static str {
        "copied whole (not split in chunks); its changes are matched on every column, one \
         row at a time (slower; identical duplicate rows are interchangeable)"
    }
}
