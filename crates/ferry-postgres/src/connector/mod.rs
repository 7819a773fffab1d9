//! PostgreSQL behind Ferry's connector traits (see `ferry_connector`).

mod capture;
mod checks;
mod dialect;
mod fencing;
mod schema;
mod source;
mod sql;
mod store;
mod target;

pub use dialect::PgDialect;

use crate::PgConn;
use ferry_connector::{async_trait, Connection, Connector, Dialect};
use ferry_core::{Endpoint, Engine, Result};

/// The PostgreSQL connector.
pub struct Postgres;

#[async_trait]
impl Connector for Postgres {
    fn engine(&self) -> Engine {
        Engine::Postgres
    }

    fn dialect(&self) -> &'static dyn Dialect {
        &PgDialect
    }

    async fn connect(&self, ep: &Endpoint) -> Result<Box<dyn Connection>> {
        Ok(Box::new(crate::connect(ep).await?) as Box<dyn Connection>)
    }

    async fn connect_without_database(
        &self,
        _ep: &Endpoint,
    ) -> Option<(Box<dyn Connection>, String)> {
        // a PostgreSQL target database is made by its owner, not by Ferry
        None
    }

    async fn ensure_database(
        &self,
        _target: &Endpoint,
        _source: &Endpoint,
    ) -> Result<Option<String>> {
        Ok(None)
    }
}

/// The PgConn behind a connection this connector opened.
pub(crate) fn session(c: &mut dyn Connection) -> Result<&mut PgConn> {
    c.as_any_mut().downcast_mut::<PgConn>().ok_or_else(|| {
        ferry_core::Error::definite(
            "a PostgreSQL operation was given another engine's connection (a bug in Ferry)",
        )
    })
}
