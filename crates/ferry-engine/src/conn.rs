//! One connection to either engine, with the few operations the engine needs from
//! both (statements, text queries, the table catalog).

use ferry_core::{select::ObjectFilter, Endpoint, Engine, Error, Result, Table, TableId, TaskSpec};
use ferry_mysql::MyConn;
use ferry_postgres::PgConn;

/// Which endpoint of a task.
#[derive(Debug, Clone, Copy)]
pub enum Role {
    /// Where data comes from.
    Source,
    /// Where data goes.
    Target,
}

/// A connection to PostgreSQL or MySQL/MariaDB.
pub enum Conn {
    /// PostgreSQL.
    Pg(PgConn),
    /// MySQL/MariaDB.
    My(MyConn),
}

impl std::ops::Deref for Conn {
    type Target = dyn ferry_connector::Connection;

    fn deref(&self) -> &Self::Target {
        match self {
            Conn::Pg(c) => c,
            Conn::My(c) => c,
        }
    }
}

impl std::ops::DerefMut for Conn {
    fn deref_mut(&mut self) -> &mut Self::Target {
        match self {
            Conn::Pg(c) => c,
            Conn::My(c) => c,
        }
    }
}

impl Conn {
    /// Connects to `ep`.
    pub async fn connect(ep: &Endpoint) -> Result<Conn> {
        Ok(match ep.engine {
            Engine::Postgres => Conn::Pg(ferry_postgres::connect(ep).await?),
            Engine::MySql => Conn::My(ferry_mysql::connect(ep).await?),
        })
    }

    /// Connects to the task's `source` or `target` (named so in any error).
    pub async fn open(spec: &ferry_core::TaskSpec, role: Role) -> Result<Conn> {
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

    /// Connects to the task's target, or — when it is MySQL/MariaDB and the database
    /// its URL names does not exist yet — to its server without a database; the
    /// second value names the missing database (`ferry run` creates it).
    pub async fn open_target_or_server(
        spec: &ferry_core::TaskSpec,
    ) -> Result<(Conn, Option<String>)> {
        match Conn::connect(&spec.target).await {
            Ok(c) => Ok((c, None)),
            Err(e) => match missing_database(&spec.target).await {
                Some((c, db)) => Ok((Conn::My(c), Some(db))),
                None => Err(e),
            },
        }
    }

    /// The engine.
    pub fn engine(&self) -> Engine {
        match self {
            Conn::Pg(_) => Engine::Postgres,
            Conn::My(_) => Engine::MySql,
        }
    }

    /// Runs statements without results.
    pub async fn exec(&mut self, sql: &str) -> Result<()> {
        match self {
            Conn::Pg(c) => c
                .client
                .batch_execute(sql)
                .await
                .map_err(ferry_postgres::conn::classify),
            Conn::My(c) => c.exec(sql).await,
        }
    }

    /// Runs statements; returns how many rows each one matched (UPDATE/DELETE),
    /// affected (INSERT) or returned, in order (0 for the others).
    pub async fn exec_counts(&mut self, sql: &str) -> Result<Vec<u64>> {
        match self {
            Conn::Pg(c) => {
                let msgs = c
                    .client
                    .simple_query(sql)
                    .await
                    .map_err(ferry_postgres::conn::classify)?;
                Ok(msgs
                    .into_iter()
                    .filter_map(|m| match m {
                        tokio_postgres::SimpleQueryMessage::CommandComplete(n) => Some(n),
                        _ => None,
                    })
                    .collect())
            }
            Conn::My(c) => c.exec_counts(sql).await,
        }
    }

    /// Runs a query; every cell as optional text.
    pub async fn query_text(&mut self, sql: &str) -> Result<Vec<Vec<Option<String>>>> {
        match self {
            Conn::Pg(c) => {
                let msgs = c
                    .client
                    .simple_query(sql)
                    .await
                    .map_err(ferry_postgres::conn::classify)?;
                Ok(msgs
                    .into_iter()
                    .filter_map(|m| match m {
                        tokio_postgres::SimpleQueryMessage::Row(r) => {
                            Some((0..r.len()).map(|i| r.get(i).map(String::from)).collect())
                        }
                        _ => None,
                    })
                    .collect())
            }
            Conn::My(c) => c.query_text(sql).await,
        }
    }

    /// Quotes a string literal for this engine.
    pub fn literal(&self, s: &str) -> String {
        match self {
            Conn::Pg(_) => ferry_postgres::quote_literal(s),
            Conn::My(_) => ferry_mysql::conn::quote_literal(s),
        }
    }

    /// An identifier, quoted for this engine.
    pub fn ident(&self, s: &str) -> String {
        match self {
            Conn::Pg(_) => ferry_postgres::conn::quote_ident(s),
            Conn::My(_) => ferry_mysql::conn::quote_ident(s),
        }
    }

    /// `schema.table`, quoted for this engine.
    pub fn qualified(&self, t: &TableId) -> String {
        match self {
            Conn::Pg(_) => ferry_postgres::conn::qualified(t),
            Conn::My(_) => ferry_mysql::conn::qualified(t),
        }
    }

    /// Reads selected tables. `default_db` limits a MySQL search to the URL's database.
    pub async fn tables(
        &mut self,
        filter: &ObjectFilter,
        default_db: Option<&str>,
    ) -> Result<Vec<Table>> {
        match self {
            Conn::Pg(c) => ferry_postgres::catalog::read_tables(c, filter).await,
            Conn::My(c) => ferry_mysql::catalog::read_tables(c, filter, default_db).await,
        }
    }

    /// Whether `t` exists, and whether it has any row.
    pub async fn table_state(&mut self, t: &TableId) -> Result<Option<bool>> {
        let exists = match self {
            Conn::Pg(_) => format!(
                "SELECT 1 FROM information_schema.tables WHERE table_schema = {} AND table_name = {}",
                self.literal(&t.schema),
                self.literal(&t.name)
            ),
            Conn::My(_) => format!(
                "SELECT 1 FROM information_schema.TABLES WHERE TABLE_SCHEMA = {} AND TABLE_NAME = {}",
                self.literal(&t.schema),
                self.literal(&t.name)
            ),
        };
        if self.query_text(&exists).await?.is_empty() {
            return Ok(None);
        }
        let q = format!("SELECT 1 FROM {} LIMIT 1", self.qualified(t));
        Ok(Some(!self.query_text(&q).await?.is_empty()))
    }
}

/// When `ep` is MySQL/MariaDB and names a database its server does not have: a
/// connection to the server and the database's name.
async fn missing_database(ep: &Endpoint) -> Option<(ferry_mysql::MyConn, String)> {
    let db = ep.database.clone().filter(|_| ep.engine == Engine::MySql)?;
    let mut c = ferry_mysql::conn::connect_server(ep).await.ok()?;
    match ferry_mysql::conn::database_exists(&mut c, &db).await {
        Ok(false) => Some((c, db)),
        _ => None,
    }
}

/// Creates the target database the task's URL names when the target's engine lets
/// Ferry create it and it does not exist yet. Returns what it did.
pub async fn ensure_target_database(spec: &TaskSpec) -> Result<Option<String>> {
    crate::factory::connector(spec.target.engine)
        .ensure_database(&spec.target, &spec.source)
        .await
}
