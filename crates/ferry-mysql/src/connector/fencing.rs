//! MySQL/MariaDB: fencing for DR — `read_only` on the server. Ferry's user holds the
//! privilege that bypasses it, so a fenced server still receives the reversed stream.

use super::MySql;
use ferry_connector::{async_trait, Fencing};
use ferry_core::{Endpoint, Result};

#[async_trait]
impl Fencing for MySql {
    async fn set_read_only(&self, ep: &Endpoint, on: bool) -> Result<()> {
        let mut c = crate::connect(ep).await?;
        c.exec(&format!(
            "SET GLOBAL read_only = {}",
            if on { "ON" } else { "OFF" }
        ))
        .await
    }

    fn can_fence_sql(&self) -> &'static str {
        "SELECT COUNT(*) > 0 FROM information_schema.USER_PRIVILEGES \
         WHERE GRANTEE = CONCAT('''', SUBSTRING_INDEX(CURRENT_USER(), '@', 1), '''@''', \
                                SUBSTRING_INDEX(CURRENT_USER(), '@', -1), '''') \
           AND PRIVILEGE_TYPE IN ('SUPER', 'READ_ONLY ADMIN')"
    }

    fn can_fence_fix(&self) -> &'static str {
        "GRANT READ_ONLY ADMIN ON *.* TO <Ferry's user> (MariaDB 10.11+; SUPER on older \
         servers): Ferry sets the standby server's read_only and writes through it"
    }
}
