//! TLS to the databases, against servers the tests start with certificates the tests
//! make (`ferry_testkit::certs`): verify-full connects, a certificate for another name
//! is refused (and accepted by verify-ca), an untrusted CA and a server without TLS are
//! refused with their own reasons, and full + incremental runs go over TLS — the
//! Ferry user can only log in encrypted (pg_hba `hostssl`, MariaDB `REQUIRE SSL`), so
//! a single plain connection anywhere (the replication connection, the binlog reader)
//! would fail the run.

mod common;

use common::{ferry, task_name, text};
use ferry_core::Endpoint;
use ferry_engine::Conn;
use ferry_testkit::{certs, Server};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// Admin connections of the tests stay plain (user postgres); Ferry's user `ferry`
/// gets in over TLS only.
const HBA: &str = "local all all trust\n\
                   host all postgres 127.0.0.1/32 trust\n\
                   host replication postgres 127.0.0.1/32 trust\n\
                   hostssl all ferry 127.0.0.1/32 trust\n\
                   hostssl replication ferry 127.0.0.1/32 trust\n";

fn ep(url: &str) -> Endpoint {
    Endpoint::parse(url, "FERRY_TEST_UNSET_PASSWORD").unwrap()
}

async fn connect(url: &str) -> ferry_core::Result<Conn> {
    Conn::connect(&ep(url)).await
}

async fn one(c: &mut Conn, sql: &str) -> String {
    let rows = c.query_text(sql).await.unwrap();
    rows.first()
        .and_then(|r| r.last().cloned().flatten())
        .unwrap_or_default()
}

fn pg_url(srv: &Server, user: &str, db: &str, query: &str) -> String {
    format!("postgres://{user}@127.0.0.1:{}/{db}?{query}", srv.port)
}

fn my_url(srv: &Server, user: &str, db: &str, query: &str) -> String {
    format!("mysql://{user}@127.0.0.1:{}/{db}?{query}", srv.port)
}

/// The error of a connection that must fail, as `message | hint`.
async fn refused(url: &str) -> String {
    match connect(url).await {
        Ok(_) => panic!("{url} connected but must not"),
        Err(e) => {
            let text = format!("{} | {}", e.message, e.hint.unwrap_or_default());
            eprintln!("refused as expected: {text}");
            text
        }
    }
}

#[tokio::test]
async fn postgres_verify_full_connects_and_a_certificate_for_another_name_is_refused() {
    let certs = certs::make("pg-verify");
    let srv = ferry_testkit::private_postgres_tls("tls-verify", &certs, HBA);
    ferry_testkit::pg_exec(
        &srv.url_for("postgres"),
        "CREATE ROLE ferry LOGIN SUPERUSER REPLICATION",
    )
    .await;
    let ca = certs.ca.display().to_string();
    let encrypted = "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()";

    let full = pg_url(
        &srv,
        "ferry",
        "postgres",
        &format!("sslmode=verify-full&sslrootcert={ca}"),
    );
    let mut c = connect(&full).await.unwrap();
    assert_eq!(one(&mut c, encrypted).await, "t");
    // the default (prefer) encrypts too when the server offers TLS
    let mut c = connect(&pg_url(&srv, "ferry", "postgres", ""))
        .await
        .unwrap();
    assert_eq!(one(&mut c, encrypted).await, "t");

    let e = refused(&pg_url(&srv, "ferry", "postgres", "sslmode=disable")).await;
    assert!(e.contains("the server requires TLS"), "{e}");
    assert!(
        e.contains("sslmode=disable") && e.contains("hostssl"),
        "{e}"
    );

    let other = certs.other_ca.display().to_string();
    let e = refused(&pg_url(
        &srv,
        "ferry",
        "postgres",
        &format!("sslmode=verify-full&sslrootcert={other}"),
    ))
    .await;
    assert!(e.contains("the server's certificate is not trusted"), "{e}");
    assert!(e.contains(&format!("sslrootcert={other}")), "{e}");

    let e = refused(&pg_url(&srv, "ferry", "postgres", "sslmode=verify-ca")).await;
    assert!(
        e.contains("names no CA") && e.contains("sslrootcert="),
        "{e}"
    );
    let e = refused(&pg_url(
        &srv,
        "ferry",
        "postgres",
        "sslmode=verify-full&sslrootcert=/nonexistent/ca.pem",
    ))
    .await;
    assert!(
        e.contains("cannot use the sslrootcert file /nonexistent/ca.pem: No such file"),
        "{e}"
    );

    // a certificate from the same CA for db.invalid: the chain is fine, the name is not
    certs.use_server_cert(&certs.other_name, "postgres");
    ferry_testkit::reload_postgres(&srv);
    let e = refused(&full).await;
    assert!(
        e.contains("the server's certificate is for another host"),
        "{e}"
    );
    assert!(e.contains("db.invalid") && e.contains("127.0.0.1"), "{e}");
    assert!(e.contains("sslmode=verify-ca"), "{e}");
    let ca_only = pg_url(
        &srv,
        "ferry",
        "postgres",
        &format!("sslmode=verify-ca&sslrootcert={ca}"),
    );
    let mut c = connect(&ca_only).await.unwrap();
    assert_eq!(one(&mut c, encrypted).await, "t");
    // libpq: require with a CA file checks the chain
    let e = refused(&pg_url(
        &srv,
        "ferry",
        "postgres",
        &format!("sslmode=require&sslrootcert={other}"),
    ))
    .await;
    assert!(e.contains("not trusted"), "{e}");
    let mut c = connect(&pg_url(&srv, "ferry", "postgres", "sslmode=require"))
        .await
        .unwrap();
    assert_eq!(one(&mut c, encrypted).await, "t");

    // a client certificate (pg_hba `cert`: its CN is the user)
    certs.use_server_cert(&certs.server, "postgres");
    ferry_testkit::set_pg_hba(
        &srv,
        "local all all trust\nhostssl all ferry 127.0.0.1/32 cert\n",
    );
    let with_cert = format!(
        "{full}&sslcert={}&sslkey={}",
        certs.client.cert.display(),
        certs.client.key.display()
    );
    let mut c = connect(&with_cert).await.unwrap();
    assert_eq!(
        one(
            &mut c,
            "SELECT client_dn FROM pg_stat_ssl WHERE pid = pg_backend_pid()"
        )
        .await,
        "/CN=ferry"
    );
    let e = refused(&full).await;
    assert!(e.contains("ferry"), "{e}");
    let e = refused(&format!(
        "{full}&sslcert={}&sslkey=/nonexistent/client.key",
        certs.client.cert.display()
    ))
    .await;
    assert!(
        e.contains("cannot use the sslkey file /nonexistent/client.key"),
        "{e}"
    );
}

#[tokio::test]
async fn postgres_require_against_a_server_without_tls_is_refused() {
    let srv = ferry_testkit::postgres();
    let e = refused(&pg_url(srv, "postgres", "postgres", "sslmode=require")).await;
    assert!(e.contains("the server does not accept TLS"), "{e}");
    assert!(e.contains("sslmode=prefer"), "{e}");
    // prefer falls back to plain text
    let mut c = connect(&pg_url(srv, "postgres", "postgres", "sslmode=prefer"))
        .await
        .unwrap();
    assert_eq!(
        one(
            &mut c,
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"
        )
        .await,
        "f"
    );
}

#[tokio::test]
async fn mariadb_verify_identity_connects_and_a_certificate_for_another_name_is_refused() {
    let certs = certs::make("my-verify");
    let srv = ferry_testkit::private_mariadb_tls("tls-verify", &certs, &[]);
    let root = srv.url_for("");
    ferry_testkit::mysql_exec(
        &root,
        "CREATE USER ferry@'%' REQUIRE SSL; GRANT ALL ON *.* TO ferry@'%'",
    )
    .await;
    let ca = certs.ca.display().to_string();
    let cipher = "SHOW SESSION STATUS LIKE 'Ssl_cipher'";

    let full = my_url(
        &srv,
        "ferry",
        "",
        &format!("ssl-mode=VERIFY_IDENTITY&ssl-ca={ca}"),
    );
    let mut c = connect(&full).await.unwrap();
    assert!(!one(&mut c, cipher).await.is_empty());
    let mut c = connect(&my_url(&srv, "ferry", "", "")).await.unwrap();
    assert!(!one(&mut c, cipher).await.is_empty(), "PREFERRED encrypts");

    let e = refused(&my_url(&srv, "ferry", "", "ssl-mode=disabled")).await;
    assert!(
        e.contains("REQUIRE SSL") && e.contains("drop ssl-mode=DISABLED"),
        "{e}"
    );
    let other = certs.other_ca.display().to_string();
    let e = refused(&my_url(
        &srv,
        "ferry",
        "",
        &format!("ssl-mode=VERIFY_IDENTITY&ssl-ca={other}"),
    ))
    .await;
    assert!(e.contains("the server's certificate is not trusted"), "{e}");
    assert!(e.contains(&format!("ssl-ca={other}")), "{e}");

    // swap in the certificate for db.invalid and have the server reload it
    certs.use_server_cert(&certs.other_name, "mysql");
    ferry_testkit::mysql_exec(&root, "FLUSH SSL").await;
    let e = refused(&full).await;
    assert!(
        e.contains("the server's certificate is for another host"),
        "{e}"
    );
    assert!(
        e.contains("db.invalid") && e.contains("ssl-mode=VERIFY_CA"),
        "{e}"
    );
    let ca_only = my_url(
        &srv,
        "ferry",
        "",
        &format!("ssl-mode=VERIFY_CA&ssl-ca={ca}"),
    );
    let mut c = connect(&ca_only).await.unwrap();
    assert!(!one(&mut c, cipher).await.is_empty());
    // VERIFY_CA still checks the chain
    let e = refused(&my_url(
        &srv,
        "ferry",
        "",
        &format!("ssl-mode=VERIFY_CA&ssl-ca={other}"),
    ))
    .await;
    assert!(e.contains("not trusted"), "{e}");

    // a client certificate
    ferry_testkit::mysql_exec(
        &root,
        "CREATE USER certuser@'%' REQUIRE SUBJECT '/CN=ferry'; GRANT ALL ON *.* TO certuser@'%'",
    )
    .await;
    let with_cert = format!(
        "{}&ssl-cert={}&ssl-key={}",
        my_url(
            &srv,
            "certuser",
            "",
            &format!("ssl-mode=VERIFY_CA&ssl-ca={ca}")
        ),
        certs.client.cert.display(),
        certs.client.key.display()
    );
    connect(&with_cert).await.unwrap();
    refused(&my_url(
        &srv,
        "certuser",
        "",
        &format!("ssl-mode=VERIFY_CA&ssl-ca={ca}"),
    ))
    .await;

    // a server that takes encrypted connections only (last: the tests' own plain
    // admin connections end here)
    ferry_testkit::mysql_exec(&root, "SET GLOBAL require_secure_transport = ON").await;
    let e = refused(&my_url(&srv, "root", "", "ssl-mode=DISABLED")).await;
    // MariaDB answers "access denied" (MySQL 8 has its own code, 3159, for this)
    assert!(
        e.contains("the server requires TLS") || e.contains("require_secure_transport=ON"),
        "{e}"
    );
    assert!(e.contains("drop ssl-mode=DISABLED"), "{e}");
    connect(&my_url(&srv, "root", "", "")).await.unwrap();
}

#[tokio::test]
async fn mariadb_required_against_a_server_without_tls_is_refused() {
    let srv = ferry_testkit::mariadb();
    let e = refused(&my_url(srv, "root", "", "ssl-mode=REQUIRED")).await;
    assert!(e.contains("the server does not accept TLS"), "{e}");
    assert!(e.contains("ssl-mode=PREFERRED"), "{e}");
    let mut c = connect(&my_url(srv, "root", "", "ssl-mode=preferred"))
        .await
        .unwrap();
    assert_eq!(
        one(&mut c, "SHOW SESSION STATUS LIKE 'Ssl_cipher'").await,
        ""
    );
}

/// The first cell of a query's answer over a plain admin connection, or "" if the
/// query fails (a table the run has not made yet).
async fn first_cell(url: &str, sql: &str) -> String {
    let Ok(mut c) = connect(&format!(
        "{url}?{}",
        if url.starts_with("postgres") {
            "sslmode=disable"
        } else {
            "ssl-mode=DISABLED"
        }
    ))
    .await
    else {
        return String::new();
    };
    match c.query_text(sql).await {
        Ok(rows) => rows
            .first()
            .and_then(|r| r.first().cloned().flatten())
            .unwrap_or_default(),
        Err(_) => String::new(),
    }
}

/// A background `ferry run`, killed if the test ends without stopping it.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn_run(task: &str) -> Running {
    let log = std::fs::File::create(format!("{task}.log")).unwrap();
    Running(
        Command::new(env!("CARGO_BIN_EXE_ferry"))
            .args(["run", task, "--quiet"])
            .env("FERRY_LOG", "info")
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("spawn ferry"),
    )
}

async fn wait_for(what: &str, task: &str, mut f: impl AsyncFnMut() -> bool) {
    let t0 = Instant::now();
    while !f().await {
        assert!(
            t0.elapsed() < Duration::from_secs(120),
            "timed out waiting for {what}; ferry printed:\n{}",
            std::fs::read_to_string(format!("{task}.log")).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn write_task(dir: &std::path::Path, source: &str, target: &str) -> String {
    let path = common::task_file(dir, source, target, "");
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace("mode: full\n", "mode: full+incremental\n");
    std::fs::write(&path, text).unwrap();
    path
}

/// Full copy, change stream and a compare, every connection of Ferry's encrypted:
/// rows made before the run and while it streams all arrive.
async fn full_and_incremental(
    source: &str,
    target: &str,
    exec: impl AsyncFn(&str, &str),
    count: impl AsyncFn(&str, &str) -> String,
    streaming_is_encrypted: impl AsyncFn() -> bool,
) {
    exec(
        source,
        "CREATE TABLE items (id int PRIMARY KEY, name varchar(40));\n\
         INSERT INTO items VALUES (1, 'one'), (2, 'two'), (3, 'three')",
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let task = write_task(dir.path(), source, target);
    let name = task_name(&task);
    // `ferry check` says both connections are encrypted
    let out = text(&ferry(&["check", &task]));
    assert_eq!(out.matches(", encrypted (TLSv1.").count(), 2, "{out}");
    let run = spawn_run(&task);
    // the incremental phase, as the target's checkpoint records it
    let streaming =
        format!("SELECT count(*) FROM ferry.tasks WHERE task = '{name}' AND phase = 'incremental'");
    wait_for("the change stream", &task, async || {
        count(target, &streaming).await == "1"
    })
    .await;
    exec(source, "INSERT INTO items VALUES (4, 'four'), (5, 'five')").await;
    wait_for("the streamed rows", &task, async || {
        count(target, "SELECT count(*) FROM items").await == "5"
    })
    .await;
    assert!(
        streaming_is_encrypted().await,
        "the change stream's connection is encrypted"
    );
    drop(run);
    exec(source, "UPDATE items SET name = 'FOUR' WHERE id = 4").await;
    let o = ferry(&["run", &task, "--quiet", "--exit-when-caught-up"]);
    assert!(o.status.success(), "catch-up run failed:\n{}", text(&o));
    let c = ferry(&["compare", &task]);
    assert!(
        c.status.success(),
        "source and target differ:\n{}",
        text(&c)
    );
    assert_eq!(
        count(target, "SELECT name FROM items WHERE id = 4").await,
        "FOUR"
    );
}

#[tokio::test]
async fn postgres_to_postgres_full_and_incremental_over_tls() {
    let certs = certs::make("pg-run");
    let srv = ferry_testkit::private_postgres_tls("tls-run", &certs, HBA);
    let admin = srv.url_for("postgres");
    // one statement each: CREATE DATABASE cannot run in a multi-statement batch
    for sql in [
        "CREATE ROLE ferry LOGIN SUPERUSER REPLICATION",
        "CREATE DATABASE src",
        "CREATE DATABASE dst",
    ] {
        ferry_testkit::pg_exec(&admin, sql).await;
    }
    let q = format!("sslmode=verify-full&sslrootcert={}", certs.ca.display());
    let source = pg_url(&srv, "ferry", "src", &q);
    let target = pg_url(&srv, "ferry", "dst", &q);
    let pg = |url: &str| {
        url.replace("ferry@", "postgres@")
            .split('?')
            .next()
            .unwrap()
            .to_string()
    };
    full_and_incremental(
        &source,
        &target,
        async |url, sql| ferry_testkit::pg_exec(&pg(url), sql).await,
        async |url, sql| first_cell(&pg(url), sql).await,
        async || {
            common::query_lines(
                "postgres",
                &admin,
                "SELECT count(*) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
                 WHERE a.backend_type = 'walsender' AND a.usename = 'ferry' AND s.ssl",
            )
            .await
                == ["1"]
        },
    )
    .await;
}

#[tokio::test]
async fn mariadb_to_mariadb_full_and_incremental_over_tls() {
    let certs = certs::make("my-run");
    let srv = ferry_testkit::private_mariadb_tls("tls-run", &certs, &[]);
    let root = srv.url_for("");
    ferry_testkit::mysql_exec(
        &root,
        "CREATE USER ferry@'%' REQUIRE SSL; GRANT ALL ON *.* TO ferry@'%';\n\
         CREATE DATABASE src; CREATE DATABASE dst",
    )
    .await;
    let q = format!("ssl-mode=VERIFY_IDENTITY&ssl-ca={}", certs.ca.display());
    let source = my_url(&srv, "ferry", "src", &q);
    let target = my_url(&srv, "ferry", "dst", &q);
    let plain = |url: &str| {
        url.replace("ferry@", "root@")
            .split('?')
            .next()
            .unwrap()
            .to_string()
    };
    full_and_incremental(
        &source,
        &target,
        async |url, sql| ferry_testkit::mysql_exec(&plain(url), sql).await,
        async |url, sql| first_cell(&plain(url), sql).await,
        async || {
            // the binlog reader's session: the only one of user ferry running Binlog Dump
            let rows = common::query_lines(
                "mysql",
                &root,
                "SELECT count(*) FROM information_schema.processlist \
                 WHERE user = 'ferry' AND command LIKE 'Binlog Dump%'",
            )
            .await;
            // REQUIRE SSL lets the user in encrypted only
            rows == ["1"]
        },
    )
    .await;
}

#[tokio::test]
async fn the_service_metadata_store_connects_over_tls() {
    let certs = certs::make("pg-store");
    let srv = ferry_testkit::private_postgres_tls("tls-store", &certs, HBA);
    let admin = srv.url_for("postgres");
    ferry_testkit::pg_exec(&admin, "CREATE ROLE ferry LOGIN SUPERUSER").await;
    ferry_testkit::pg_exec(&admin, "CREATE DATABASE meta").await;
    let url = pg_url(
        &srv,
        "ferry",
        "meta",
        &format!("sslmode=verify-full&sslrootcert={}", certs.ca.display()),
    );
    let store = ferry_service::store::Store::open(&url).await.unwrap();
    store.kv_init("tls-probe", "yes").await.unwrap();
    assert_eq!(store.kv("tls-probe").await.unwrap().as_deref(), Some("yes"));
    // the user can only log in encrypted, so the rows went over TLS
    assert_eq!(
        common::query_lines(
            "postgres",
            &srv.url_for("meta"),
            "SELECT count(*) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
             WHERE a.usename = 'ferry' AND s.ssl"
        )
        .await
        .first()
        .map(|s| s != "0"),
        Some(true)
    );
    drop(store);
    // a certificate for another name is refused
    certs.use_server_cert(&certs.other_name, "postgres");
    ferry_testkit::reload_postgres(&srv);
    let e = ferry_service::store::Store::open(&url)
        .await
        .err()
        .expect("refused");
    eprintln!("store refused as expected: {e}");
    assert!(e.to_string().contains("metadata store"), "{e}");
    assert!(e.to_string().contains("db.invalid"), "{e}");
}
