//! One plain client session to PostgreSQL or MariaDB, speaking text: what the
//! workload, the fault injectors and the checker need, and nothing of Ferry's.

use anyhow::{anyhow, Context, Result};
use mysql_async::prelude::Queryable;
use std::time::Duration;

/// Which database engine a server runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// PostgreSQL.
    Pg,
    /// MariaDB (MySQL protocol).
    My,
}

impl Engine {
    /// Short name used in pair names and output.
    pub fn short(self) -> &'static str {
        match self {
            Engine::Pg => "pg",
            Engine::My => "mariadb",
        }
    }
}

/// Every statement the suite sends gives up after this long (a stalled or crashed
/// server must not hang the runner).
const STATEMENT_TIMEOUT: Duration = Duration::from_secs(60);

/// An open session.
pub enum Db {
    /// A PostgreSQL session (its connection task runs in the background).
    Pg(tokio_postgres::Client),
    /// A MariaDB session.
    My(mysql_async::Conn),
}

impl Db {
    /// Connects to `url` (an admin URL from the testkit, no password).
    pub async fn connect(engine: Engine, url: &str) -> Result<Db> {
        let fut = async {
            Ok(match engine {
                Engine::Pg => {
                    let (c, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
                    tokio::spawn(conn);
                    Db::Pg(c)
                }
                Engine::My => {
                    let opts =
                        mysql_async::OptsBuilder::from_opts(mysql_async::Opts::from_url(url)?)
                            .stmt_cache_size(0);
                    Db::My(mysql_async::Conn::new(opts).await?)
                }
            })
        };
        match tokio::time::timeout(Duration::from_secs(10), fut).await {
            Ok(r) => r.map_err(|e: anyhow::Error| e.context(format!("connect to {url}"))),
            Err(_) => Err(anyhow!("connect to {url}: no answer within 10 s")),
        }
    }

    /// Runs one or more statements separated by `;`.
    pub async fn exec(&mut self, sql: &str) -> Result<()> {
        let fut = async {
            match self {
                Db::Pg(c) => c.batch_execute(sql).await.map_err(anyhow::Error::from),
                Db::My(c) => c.query_drop(sql).await.map_err(anyhow::Error::from),
            }
        };
        tokio::time::timeout(STATEMENT_TIMEOUT, fut)
            .await
            .map_err(|_| anyhow!("statement timed out"))?
            .with_context(|| short(sql))
    }

    /// Runs one query and returns its rows as text (NULL as `None`).
    pub async fn rows(&mut self, sql: &str) -> Result<Vec<Vec<Option<String>>>> {
        let fut = async {
            let mut out = Vec::new();
            match self {
                Db::Pg(c) => {
                    for m in c.simple_query(sql).await? {
                        if let tokio_postgres::SimpleQueryMessage::Row(r) = m {
                            out.push((0..r.len()).map(|i| r.get(i).map(String::from)).collect());
                        }
                    }
                }
                Db::My(c) => {
                    let rows: Vec<mysql_async::Row> = c.query(sql).await?;
                    for r in rows {
                        out.push(
                            r.unwrap_raw()
                                .into_iter()
                                .map(|v| match v {
                                    Some(mysql_async::Value::NULL) | None => None,
                                    Some(mysql_async::Value::Bytes(b)) => {
                                        Some(String::from_utf8_lossy(&b).into_owned())
                                    }
                                    Some(o) => Some(o.as_sql(true)),
                                })
                                .collect(),
                        );
                    }
                }
            }
            Ok::<_, anyhow::Error>(out)
        };
        tokio::time::timeout(STATEMENT_TIMEOUT, fut)
            .await
            .map_err(|_| anyhow!("query timed out"))?
            .with_context(|| short(sql))
    }

    /// Closes the session politely (MariaDB); a PostgreSQL client just drops.
    pub async fn close(self) {
        if let Db::My(c) = self {
            let _ = tokio::time::timeout(Duration::from_secs(2), c.disconnect()).await;
        }
    }
}

fn short(sql: &str) -> String {
    let s: String = sql.chars().take(160).collect();
    if s.len() < sql.len() {
        format!("{s}…")
    } else {
        s
    }
}
