//! One session to a task's source or target, whatever its engine: a connection its
//! connector opened, held with that connector (for the engine-wide operations).

use crate::factory;
use ferry_connector::{Connection, Connector};
use ferry_core::{Endpoint, Error, Result, TaskSpec};

/// Which endpoint of a task.
#[derive(Debug, Clone, Copy)]
pub enum Role {
    /// Where data comes from.
    Source,
    /// Where data goes.
    Target,
}

/// A session and the connector that opened it. Derefs to the session's traits
/// (`SqlConn`, `ChunkSource`, `BulkTarget`).
pub struct Conn {
    inner: Box<dyn Connection>,
    connector: &'static dyn Connector,
}

impl std::ops::Deref for Conn {
    type Target = dyn Connection;

    fn deref(&self) -> &Self::Target {
        &*self.inner
    }
}

impl std::ops::DerefMut for Conn {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut *self.inner
    }
}

impl Conn {
    /// A session `connector` opened (tests build sessions of their own engines so).
    pub fn new(connector: &'static dyn Connector, inner: Box<dyn Connection>) -> Conn {
        Conn { inner, connector }
    }

    /// The connector of this session's engine.
    pub fn connector(&self) -> &'static dyn Connector {
        self.connector
    }

    // The statement runners are repeated here (they are the session's `SqlConn`
    // methods): called on `Conn` itself they borrow it two-phase, so their argument
    // may be built from the same session (`c.exec(&format!(…, c.literal(x)))`),
    // which a call through `DerefMut` cannot.

    /// Runs statements without results.
    pub async fn exec(&mut self, sql: &str) -> Result<()> {
        self.inner.exec(sql).await
    }

    /// Runs statements; how many rows each matched, affected or returned.
    pub async fn exec_counts(&mut self, sql: &str) -> Result<Vec<u64>> {
        self.inner.exec_counts(sql).await
    }

    /// Runs a query; every cell as optional text.
    pub async fn query_text(&mut self, sql: &str) -> Result<ferry_connector::Rows> {
        self.inner.query_text(sql).await
    }

    /// Connects to `ep`.
    pub async fn connect(ep: &Endpoint) -> Result<Conn> {
        let connector = factory::connector(ep.engine);
        Ok(Conn::new(connector, connector.connect(ep).await?))
    }

    /// Connects to the task's `source` or `target` (named so in any error).
    pub async fn open(spec: &TaskSpec, role: Role) -> Result<Conn> {
        let (ep, name) = match role {
            Role::Source => (&spec.source, "source"),
            Role::Target => (&spec.target, "target"),
        };
        match Conn::connect(ep).await {
            Ok(c) => Ok(c),
            Err(e) => match role {
                Role::Target if missing_database(ep).await.is_some() => {
                    Err(Error::definite(format!(
                        "target: database {} does not exist yet on {ep}",
                        ep.database.as_deref().unwrap_or_default()
                    ))
                    .with_hint("`ferry run` creates it: run the task first"))
                }
                _ => Err(e.context(name)),
            },
        }
    }

    /// Connects to the task's target, or — when its engine lets Ferry create the
    /// database its URL names and that does not exist yet — to its server without a
    /// database; the second value names the missing database (`ferry run` creates it).
    pub async fn open_target_or_server(spec: &TaskSpec) -> Result<(Conn, Option<String>)> {
        match Conn::connect(&spec.target).await {
            Ok(c) => Ok((c, None)),
            Err(e) => match missing_database(&spec.target).await {
                Some((c, db)) => Ok((c, Some(db))),
                None => Err(e),
            },
        }
    }
}

/// When `ep` names a database its server does not have (and its engine lets Ferry
/// create it): a session to the server and the database's name.
async fn missing_database(ep: &Endpoint) -> Option<(Conn, String)> {
    let connector = factory::connector(ep.engine);
    let (c, db) = connector.connect_without_database(ep).await?;
    Some((Conn::new(connector, c), db))
}

/// Creates the target database the task's URL names when the target's engine lets
/// Ferry create it and it does not exist yet. Returns what it did.
pub async fn ensure_target_database(spec: &TaskSpec) -> Result<Option<String>> {
    factory::connector(spec.target.engine)
        .ensure_database(&spec.target, &spec.source)
        .await
}
