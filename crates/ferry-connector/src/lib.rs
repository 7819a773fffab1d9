//! The seam between Ferry's engine and the databases it reads and writes.
//!
//! The engine is engine-blind: it holds a [`Connector`] per endpoint (chosen once, by
//! the factory in `ferry-engine`) and [`Connection`]s it opened, and asks them for what
//! a source, a log reader and a target do. Each connector crate (`ferry-postgres`,
//! `ferry-mysql`) implements these traits once; adding an engine is one crate plus
//! one arm of the factory. Nothing here does I/O by itself.
//!
//! The traits are split by concern, one file each:
//! - [`SqlConn`] — statements and text queries, the catalog;
//! - [`Dialect`] — how SQL is spelled (quoting, literals, upserts, DDL);
//! - [`ChunkSource`] — consistent snapshots and chunked reads;
//! - [`BulkTarget`] — bulk loads into the target;
//! - [`Schema`] — planning tables' DDL for the target;
//! - [`Capture`] — the change log (slots, positions, the change stream);
//! - [`Fencing`] — making a database read-only for applications (DR);
//! - [`Checks`] — prechecks;
//! - [`StoreDialect`] — the SQL of Ferry's checkpoint tables on a target.

mod capture;
mod checks;
mod dialect;
mod fencing;
mod schema;
mod source;
mod sql;
mod store;
mod target;

pub use capture::{
    Capture, DdlChange, Retention, Seen, SlotStart, SlotState, TaskSlot, TxSnapshot,
};
pub use checks::Checks;
pub use dialect::{Dialect, MatchForm};
pub use fencing::Fencing;
pub use schema::{NameFolding, Schema};
pub use source::{ChunkSource, ReadFormat, Snapshot};
pub use sql::{Rows, SqlConn};
pub use store::StoreDialect;
pub use target::{BulkLoad, BulkTarget};

pub use async_trait::async_trait;
use ferry_core::{Endpoint, Engine, Result};

/// One open session to a database, with everything the engine asks of one.
pub trait Connection: SqlConn + ChunkSource + BulkTarget + Send + 'static {}

impl<T: SqlConn + ChunkSource + BulkTarget + Send + 'static> Connection for T {}

/// One database engine: opens connections and knows its engine-wide facts. A
/// connector is stateless (`&'static`), so the factory hands out one per engine.
#[async_trait]
pub trait Connector: Schema + Capture + Fencing + Checks + Send + Sync {
    /// Which engine (for messages and for the DDL mapping between engines).
    fn engine(&self) -> Engine;

    /// How this engine spells SQL.
    fn dialect(&self) -> &'static dyn Dialect;

    /// Connects to `ep`.
    async fn connect(&self, ep: &Endpoint) -> Result<Box<dyn Connection>>;

    /// When `ep` names a database its server does not have (and the engine lets
    /// Ferry create it): a connection to the server and the database's name.
    async fn connect_without_database(
        &self,
        ep: &Endpoint,
    ) -> Option<(Box<dyn Connection>, String)>;

    /// Creates the database `target` names when the engine lets Ferry create it and
    /// it does not exist yet (with the character set of `source`'s database when
    /// `source` is of the same engine). Returns what it did.
    async fn ensure_database(&self, target: &Endpoint, source: &Endpoint)
        -> Result<Option<String>>;
}
