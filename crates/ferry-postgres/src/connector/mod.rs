//! PostgreSQL behind Ferry's connector traits (see `ferry_connector`).

mod capture;
mod checks;
mod dialect;
mod fencing;
mod schema;
mod source;
mod sql;
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

impl PgConn {
    /// For a caller holding a `dyn Connection` it knows is PostgreSQL's.
    pub fn downcast(c: &mut dyn std::any::Any) -> Option<&mut PgConn> {
        c.downcast_mut()
    }
}
