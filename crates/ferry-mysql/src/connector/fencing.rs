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
}
