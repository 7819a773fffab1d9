//! The one place that names the engines: which connector serves an endpoint.
//! Everything else in the engine works through `ferry_connector`'s traits, so adding
//! an engine is one connector crate plus one arm here.

use ferry_connector::Connector;
use ferry_core::Engine;

/// The connector of `engine`.
pub fn connector(engine: Engine) -> &'static dyn Connector {
    match engine {
        Engine::Postgres => &ferry_postgres::connector::Postgres,
        Engine::MySql => &ferry_mysql::connector::MySql,
    }
}
