//! MySQL/MariaDB behind Ferry's connector traits (see `ferry_connector`).

mod capture;
mod checks;
mod dialect;
mod fencing;
mod schema;
mod snapshot;
mod source;
mod sql;
mod store;
mod target;

pub use dialect::MyDialect;

use crate::MyConn;
use ferry_connector::{async_trait, Connection, Connector, Dialect};
use ferry_core::{Endpoint, Engine, Result};

/// The MySQL/MariaDB connector.
pub struct MySql;

#[async_trait]
impl Connector for MySql {
    fn engine(&self) -> Engine {
        Engine::MySql
    }

    fn dialect(&self) -> &'static dyn Dialect {
        &MyDialect
    }

    async fn connect(&self, ep: &Endpoint) -> Result<Box<dyn Connection>> {
        Ok(Box::new(crate::connect(ep).await?) as Box<dyn Connection>)
    }

    async fn connect_without_database(
        &self,
        ep: &Endpoint,
    ) -> Option<(Box<dyn Connection>, String)> {
        let db = ep.database.clone()?;
        let mut c = crate::conn::connect_server(ep).await.ok()?;
        match crate::conn::database_exists(&mut c, &db).await {
            Ok(false) => Some((Box::new(c) as Box<dyn Connection>, db)),
            _ => None,
        }
    }

    async fn ensure_database(
        &self,
        target: &Endpoint,
        source: &Endpoint,
    ) -> Result<Option<String>> {
        let Some(db) = target.database.as_deref() else {
            return Ok(None);
        };
        if crate::connect(target).await.is_ok() {
            return Ok(None);
        }
        let mut charset = ("utf8mb4".to_string(), None);
        if let (Engine::MySql, Some(src_db)) = (source.engine, source.database.as_deref()) {
            let mut src = crate::connect(source)
                .await
                .map_err(|e| e.context("source"))?;
            if let Some((cs, coll)) = crate::conn::database_charset(&mut src, src_db).await? {
                charset = (cs, Some(coll));
            }
        }
        let created = crate::conn::ensure_database(target, &charset.0, charset.1.as_deref())
            .await
            .map_err(|e| e.context("target"))?;
        Ok(created.then(|| {
            format!(
                "created the target database {db} (character set {}{})",
                charset.0,
                charset
                    .1
                    .as_deref()
                    .map(|c| format!(", collation {c}"))
                    .unwrap_or_default()
            )
        }))
    }
}

/// The MyConn behind a connection this connector opened.
pub(crate) fn session(c: &mut dyn Connection) -> Result<&mut MyConn> {
    c.as_any_mut().downcast_mut::<MyConn>().ok_or_else(|| {
        ferry_core::Error::definite(
            "a MySQL/MariaDB operation was given another engine's connection (a bug in Ferry)",
        )
    })
}
