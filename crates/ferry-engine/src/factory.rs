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

/// Whether `engine`'s change capture holds resources on the source that outlive
/// the stream (PostgreSQL's replication slot and publication): a failover must
/// release them on the old primary. Moves to the `Capture` trait.
pub fn holds_source_slot(engine: Engine) -> bool {
    matches!(engine, Engine::Postgres)
}
