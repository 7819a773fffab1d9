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

    fn keyless_stream_note(&self) -> &'static str {
        "copied whole (not split in chunks); its changes are matched on every column, one \
         row at a time (slower; identical duplicate rows are interchangeable)"
    }
}
