//! Throwaway PostgreSQL and MariaDB servers for Ferry's tests.
//!
//! Tests need server settings of their own (`wal_level=logical`, row binlog with full
//! metadata, LOCAL INFILE) and must be free to kill servers, so they never use the
//! machine's service instances. One server of each engine is started per workspace
//! checkout under `target/ferry-testkit/` and shared by every test process (a file lock
//! serialises start-up; nextest runs each test in its own process). Every test gets a
//! fresh database of its own ([`TestDb`]), dropped again when the test passes and kept
//! when it fails (for debugging; `FERRY_TEST_KEEP_DBS=1` keeps them always). Servers
//! given by `FERRY_TEST_PG_URL` / `FERRY_TEST_MYSQL_URL` (admin URLs) are used instead
//! when set. `ferry-sandbox stop` stops the shared servers (`--clean` also deletes them).

pub mod certs;
mod proxy;
pub mod s3;
mod server;
mod testdb;

pub use certs::{CertFiles, Certs};
pub use proxy::Proxy;
pub use server::{
    mariadb, postgres, private_mariadb, private_postgres, private_postgres_with, start_mariadb,
    start_postgres, start_postgres_with, stop_mariadb, stop_postgres, stop_shared, PrivateServer,
    Server,
};
pub use server::{
    private_mariadb_tls, private_mariadb_with, private_postgres_tls, reload_postgres, set_pg_hba,
    start_mariadb_with,
};
pub use testdb::TestDb;

use std::sync::atomic::{AtomicU32, Ordering};

/// A database name unique to this test process and call.
pub fn unique_name(hint: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let clean: String = hint
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .take(30)
        .collect();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "t_{clean}_{}_{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst),
        nanos % 10_000
    )
}

/// Creates a fresh PostgreSQL database; it is dropped when the returned guard is
/// dropped, unless the test is failing.
pub async fn fresh_pg_database(hint: &str) -> TestDb {
    let srv = postgres();
    let name = unique_name(hint);
    let (client, conn) = tokio_postgres::connect(&srv.url_for("postgres"), tokio_postgres::NoTls)
        .await
        .expect("connect to test PostgreSQL");
    tokio::spawn(conn);
    client
        .batch_execute(&format!("CREATE DATABASE \"{name}\""))
        .await
        .expect("create test database");
    TestDb::new("postgres", srv.url_for(&name), name)
}

/// Creates a fresh MariaDB database; it is dropped when the returned guard is
/// dropped, unless the test is failing.
pub async fn fresh_mysql_database(hint: &str) -> TestDb {
    let srv = mariadb();
    let name = unique_name(hint);
    let mut conn = mysql_async::Conn::from_url(srv.url_for(""))
        .await
        .expect("connect to test MariaDB");
    use mysql_async::prelude::Queryable;
    conn.query_drop(format!("CREATE DATABASE `{name}`"))
        .await
        .expect("create test database");
    conn.disconnect().await.ok();
    TestDb::new("mysql", srv.url_for(&name), name)
}

/// Runs SQL (many statements) on a PostgreSQL URL.
pub async fn pg_exec(url: &str, sql: &str) {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(conn);
    client
        .batch_execute(sql)
        .await
        .unwrap_or_else(|e| panic!("SQL failed: {e:?}\n{sql}"));
}

/// Runs SQL (many statements) on a MySQL/MariaDB URL.
pub async fn mysql_exec(url: &str, sql: &str) {
    use mysql_async::prelude::Queryable;
    let opts = mysql_async::Opts::from_url(url).expect("url");
    let opts = mysql_async::OptsBuilder::from_opts(opts)
        .pass(None::<String>)
        .stmt_cache_size(0);
    let mut conn = mysql_async::Conn::new(opts).await.expect("connect");
    conn.query_drop(sql)
        .await
        .unwrap_or_else(|e| panic!("SQL failed: {e:?}\n{sql}"));
    conn.disconnect().await.ok();
}
