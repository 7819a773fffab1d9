//! What a test creates is removed when it passes: its databases (with their
//! replication slots) and its private servers; a failing test keeps its database.

use mysql_async::prelude::Queryable;

async fn pg_admin() -> tokio_postgres::Client {
    let (c, conn) = tokio_postgres::connect(
        &ferry_testkit::postgres().url_for("postgres"),
        tokio_postgres::NoTls,
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    c
}

async fn pg_exists(name: &str) -> bool {
    pg_admin()
        .await
        .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&name])
        .await
        .unwrap()
        .is_some()
}

async fn my_exists(name: &str) -> bool {
    let mut c = mysql_async::Conn::from_url(ferry_testkit::mariadb().url_for(""))
        .await
        .unwrap();
    let n: Option<i64> = c
        .exec_first(
            "SELECT count(*) FROM information_schema.schemata WHERE schema_name = ?",
            (name,),
        )
        .await
        .unwrap();
    n == Some(1)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_passing_tests_postgres_database_and_its_slot_are_dropped() {
    let db = ferry_testkit::fresh_pg_database("cleanup").await;
    let name = db.name().to_string();
    // a slot (as a PostgreSQL source task leaves one) would make DROP DATABASE fail
    let (c, conn) = tokio_postgres::connect(&db, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    c.batch_execute(&format!(
        "SELECT pg_create_logical_replication_slot('{name}', 'pgoutput')"
    ))
    .await
    .unwrap();
    assert!(pg_exists(&name).await);
    drop(db); // the session above is still open: it is ended
    assert!(!pg_exists(&name).await, "{name} was not dropped");
    let slots: i64 = pg_admin()
        .await
        .query_one(
            "SELECT count(*) FROM pg_replication_slots WHERE slot_name = $1",
            &[&name],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(slots, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_passing_tests_mariadb_database_is_dropped() {
    let db = ferry_testkit::fresh_mysql_database("cleanup").await;
    let name = db.name().to_string();
    ferry_testkit::mysql_exec(
        &db,
        "CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1);",
    )
    .await;
    assert!(my_exists(&name).await);
    drop(db);
    assert!(!my_exists(&name).await, "{name} was not dropped");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_tests_database_is_kept() {
    let db = ferry_testkit::fresh_pg_database("kept").await;
    let name = db.name().to_string();
    // the guard is dropped while its thread unwinds from a panic, as in a failing test
    let unwound = std::thread::spawn(move || {
        let _db = db;
        panic!("a failing test");
    })
    .join();
    assert!(unwound.is_err());
    assert!(pg_exists(&name).await, "{name} was dropped");
    ferry_testkit::pg_exec(
        &ferry_testkit::postgres().url_for("postgres"),
        &format!("DROP DATABASE \"{name}\""),
    )
    .await;
}

#[test]
fn a_private_server_is_stopped_and_deleted_when_dropped() {
    for srv in [
        ferry_testkit::private_postgres("cleanup_guard"),
        ferry_testkit::private_mariadb("cleanup_guard"),
    ] {
        let (port, dir) = (srv.port, srv.dir.clone().unwrap());
        assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_ok());
        drop(srv);
        assert!(
            std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
            "{} still answers on {port}",
            dir.display()
        );
        assert!(!dir.exists(), "{} is still there", dir.display());
    }
}
