//! A test's own database, dropped when the test passes.
//!
//! Tests create a database each; without dropping them the shared servers grow by
//! gigabytes over a few runs, and a PostgreSQL replication slot left in one keeps WAL
//! forever. A failing test keeps its databases so they can be inspected.

use std::time::Duration;

/// A fresh database on a shared test server. Derefs to its URL. Dropping it drops the
/// database (and, on PostgreSQL, the replication slots in it) unless the thread is
/// panicking (a failing test) or `FERRY_TEST_KEEP_DBS` is set.
#[derive(Debug)]
pub struct TestDb {
    engine: &'static str,
    url: String,
    name: String,
}

impl TestDb {
    pub(crate) fn new(engine: &'static str, url: String, name: String) -> Self {
        Self { engine, url, name }
    }

    /// Takes charge of a database the test did not create itself (one Ferry creates,
    /// say), so that it is dropped like the others. `engine`: `postgres` or `mysql`.
    pub fn adopt(engine: &'static str, url: String, name: String) -> Self {
        Self::new(engine, url, name)
    }

    /// The database's URL (admin user, no password).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The database's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl std::ops::Deref for TestDb {
    type Target = str;
    fn deref(&self) -> &str {
        &self.url
    }
}

impl AsRef<str> for TestDb {
    fn as_ref(&self) -> &str {
        &self.url
    }
}

impl std::fmt::Display for TestDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.url)
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("test failed: keeping database {} ({})", self.name, self.url);
            return;
        }
        if std::env::var_os("FERRY_TEST_KEEP_DBS").is_some() {
            return;
        }
        // Drop is sync and may run inside the test's runtime: use a runtime of our own
        // on a thread of our own.
        let (engine, name) = (self.engine, self.name.clone());
        let done = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            rt.block_on(async {
                tokio::time::timeout(Duration::from_secs(60), drop_database(engine, &name))
                    .await
                    .map_err(|_| "timed out after 60 s".to_string())?
            })
        })
        .join();
        match done {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("warning: could not drop test database {}: {e}", self.name),
            Err(_) => eprintln!("warning: dropping test database {} panicked", self.name),
        }
    }
}

async fn drop_database(engine: &str, name: &str) -> Result<(), String> {
    if engine == "postgres" {
        drop_pg(name).await
    } else {
        drop_mysql(name).await
    }
}

/// Ends the database's sessions (a killed `ferry` may leave a walsender behind),
/// drops its replication slots (PostgreSQL refuses to drop a database that has any),
/// then the database.
async fn drop_pg(name: &str) -> Result<(), String> {
    let (c, conn) = tokio_postgres::connect(
        &crate::postgres().url_for("postgres"),
        tokio_postgres::NoTls,
    )
    .await
    .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    for attempt in 0.. {
        c.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = $1 AND pid <> pg_backend_pid()",
            &[&name],
        )
        .await
        .map_err(|e| e.to_string())?;
        let dropped = c
            .execute(
                "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots \
                 WHERE database = $1 AND NOT active",
                &[&name],
            )
            .await;
        let left: i64 = c
            .query_one(
                "SELECT count(*) FROM pg_replication_slots WHERE database = $1",
                &[&name],
            )
            .await
            .map_err(|e| e.to_string())?
            .get(0);
        if left == 0 {
            break;
        }
        if attempt >= 50 {
            return Err(format!(
                "{left} replication slot(s) stay active ({dropped:?})"
            ));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    c.batch_execute(&format!(
        "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
        name.replace('"', "\"\"")
    ))
    .await
    .map_err(|e| e.to_string())
}

/// Drops the database, waiting at most 30 s for a lock a leftover session holds.
async fn drop_mysql(name: &str) -> Result<(), String> {
    use mysql_async::prelude::Queryable;
    let mut c = mysql_async::Conn::from_url(crate::mariadb().url_for(""))
        .await
        .map_err(|e| e.to_string())?;
    let r = c
        .query_drop(format!(
            "SET SESSION lock_wait_timeout = 30; DROP DATABASE IF EXISTS `{}`",
            name.replace('`', "``")
        ))
        .await
        .map_err(|e| e.to_string());
    c.disconnect().await.ok();
    r
}
