//! The canary password: one distinctive password, with characters a URL must escape,
//! is the only password of every endpoint in a full run — the CLI's check, run
//! (copy and change stream), status and compare, failing connects (a wrong port, a
//! database that does not exist), and a `ferry serve` running tasks — with debug logs
//! on. It must appear nowhere: not in any output, log line, API body or `/metrics`,
//! not in the service's files on disk (the stored secrets are sealed), and not on any
//! process's command line while Ferry runs.
//!
//! The servers really check the password: PostgreSQL is a private server whose
//! `pg_hba.conf` asks for SCRAM from everyone but its admin, MariaDB has a user
//! `IDENTIFIED BY` it; a wrong password is refused by both (asserted first).

mod common;

use common::text;
use serde_json::{json, Value};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The password. Its core, `Canary-9f3b-Pw`, survives every escaping, so finding the
/// core finds the password in any form.
const CANARY: &str = "Canary-9f3b-Pw!@:/%?#";
const CORE: &str = "Canary-9f3b-Pw";
/// Its URL-encoded form, as the task files carry it.
const CANARY_URL: &str = "Canary-9f3b-Pw%21%40%3A%2F%25%3F%23";
const USER: &str = "ferry_canary";
const ADMIN: &str = "canary-admin-token";
const T: Duration = Duration::from_secs(90);

/// Fails if `what` holds the canary in any form (raw, URL-encoded upper or lower
/// case, or just its core).
fn assert_clean(what: &str, haystack: &[u8]) {
    let lower = CANARY_URL.to_lowercase();
    for needle in [CANARY, CANARY_URL, lower.as_str(), CORE] {
        if let Some(at) = haystack
            .windows(needle.len())
            .position(|w| w == needle.as_bytes())
        {
            let from = at.saturating_sub(200);
            let to = (at + needle.len() + 200).min(haystack.len());
            panic!(
                "the canary password leaked into {what}:\n…{}…",
                String::from_utf8_lossy(&haystack[from..to])
            );
        }
    }
}

/// Every process's command line, now: none may hold the canary.
fn assert_no_cmdline_holds_it() {
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let name = e.file_name();
        let Some(pid) = name
            .to_str()
            .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
        else {
            continue;
        };
        if let Ok(cmd) = std::fs::read(e.path().join("cmdline")) {
            assert_clean(&format!("the command line of process {pid}"), &cmd);
        }
    }
}

/// Runs `ferry` with debug logs to completion, checking every process's command line
/// while it runs; returns its output, checked.
fn ferry(what: &str, args: &[&str]) -> Output {
    let child = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(args)
        .env("FERRY_LOG", "trace")
        .env_remove("FERRY_SOURCE_PASSWORD")
        .env_remove("FERRY_TARGET_PASSWORD")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run ferry");
    let pid = child.id();
    let out = std::thread::scope(|s| {
        let waiter = s.spawn(move || child.wait_with_output().expect("ferry output"));
        while !waiter.is_finished() {
            assert_no_cmdline_holds_it();
            std::thread::sleep(Duration::from_millis(50));
        }
        waiter.join().unwrap()
    });
    assert_clean(&format!("the output of {what} (pid {pid})"), &out.stdout);
    assert_clean(&format!("the log of {what} (pid {pid})"), &out.stderr);
    out
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A `pg_hba.conf` that trusts the admin and asks everyone else for SCRAM, in a
/// folder the `postgres` user can read.
fn scram_hba(dir: &Path) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join("pg_hba.conf");
    std::fs::write(
        &path,
        "local all postgres trust\n\
         host all postgres 127.0.0.1/32 trust\n\
         host replication postgres 127.0.0.1/32 trust\n\
         host all all 127.0.0.1/32 scram-sha-256\n\
         host replication all 127.0.0.1/32 scram-sha-256\n",
    )
    .unwrap();
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    path
}

/// `url` (the admin's, no password) as the canary user with the canary password.
fn as_canary(url: &str, admin: &str) -> String {
    url.replacen(
        &format!("://{admin}@"),
        &format!("://{USER}:{CANARY_URL}@"),
        1,
    )
}

/// A minimal client of the service's API.
struct Api {
    base: String,
    http: reqwest::Client,
}

impl Api {
    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Vec<u8>) {
        let mut r = self
            .http
            .request(method.parse().unwrap(), format!("{}{path}", self.base))
            .bearer_auth(ADMIN);
        if let Some(b) = body {
            r = r.json(&b);
        }
        let resp = r
            .send()
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let status = resp.status().as_u16();
        let body = resp.bytes().await.unwrap().to_vec();
        assert_clean(&format!("the answer to {method} {path}"), &body);
        (status, body)
    }

    async fn json(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let (s, b) = self.call(method, path, body).await;
        (s, serde_json::from_slice(&b).unwrap_or(Value::Null))
    }

    /// Waits until task `id` is in one of `states`, checking the command lines and
    /// the task's, list's and metrics' answers on the way.
    async fn wait(&self, id: &str, states: &[&str], log: &dyn Fn() -> String) -> Value {
        let t0 = Instant::now();
        loop {
            assert_no_cmdline_holds_it();
            let (_, v) = self.json("GET", &format!("/api/v1/tasks/{id}"), None).await;
            self.call("GET", "/api/v1/tasks", None).await;
            self.call("GET", "/metrics", None).await;
            if states.contains(&v["state"].as_str().unwrap_or_default()) {
                return v;
            }
            assert!(
                t0.elapsed() < T,
                "task {id} never reached {states:?}: {v:#}\n{}",
                log()
            );
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
}

/// Every file under `dir`, checked for the canary.
fn assert_files_clean(dir: &Path) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            assert_files_clean(&p);
        } else if let Ok(bytes) = std::fs::read(&p) {
            assert_clean(&format!("the file {}", p.display()), &bytes);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_canary_password_appears_nowhere() {
    // the servers, with a user that logs in with the canary password only
    let hba_dir = tempfile::tempdir().unwrap();
    let hba = scram_hba(hba_dir.path());
    let pg =
        ferry_testkit::private_postgres_with("canary", &format!("-c hba_file={}", hba.display()));
    let my = ferry_testkit::mariadb();
    let pg_admin = pg.url_for("postgres");
    for sql in [
        format!("CREATE ROLE {USER} LOGIN SUPERUSER PASSWORD '{CANARY}'"),
        "CREATE DATABASE canary_src".into(),
        "CREATE DATABASE canary_dst".into(),
    ] {
        ferry_testkit::pg_exec(&pg_admin, &sql).await;
    }
    let my_src = common::fresh("mysql", "canary_src").await;
    let my_dst = common::fresh("mysql", "canary_dst").await;
    ferry_testkit::mysql_exec(
        &my.url_for(""),
        &format!(
            "CREATE OR REPLACE USER '{USER}'@'127.0.0.1' IDENTIFIED BY '{CANARY}';
             GRANT ALL PRIVILEGES ON *.* TO '{USER}'@'127.0.0.1' WITH GRANT OPTION;
             CREATE OR REPLACE USER '{USER}'@'localhost' IDENTIFIED BY '{CANARY}';
             GRANT ALL PRIVILEGES ON *.* TO '{USER}'@'localhost' WITH GRANT OPTION"
        ),
    )
    .await;
    let pg_src = as_canary(&pg.url_for("canary_src"), &pg.user);
    let pg_dst = as_canary(&pg.url_for("canary_dst"), &pg.user);
    let my_src_url = as_canary(&my_src.url, &my.user);
    let my_dst_url = as_canary(&my_dst.url, &my.user);
    // the password is really checked: a wrong one is refused by both servers
    let wrong = pg_src.replace(CANARY_URL, "wrong");
    assert!(
        tokio_postgres::connect(&wrong, tokio_postgres::NoTls)
            .await
            .is_err(),
        "PostgreSQL accepted a wrong password: the test would prove nothing"
    );
    let (c, conn) = tokio_postgres::connect(&pg_src, tokio_postgres::NoTls)
        .await
        .expect("the canary user logs in to PostgreSQL");
    tokio::spawn(conn);
    c.batch_execute(
        "CREATE TABLE acct (id bigint PRIMARY KEY, owner text);
         INSERT INTO acct SELECT g, 'o' || g FROM generate_series(1, 50) g;",
    )
    .await
    .unwrap();
    let my_login = |password: &str| {
        mysql_async::Conn::new(
            mysql_async::OptsBuilder::default()
                .ip_or_hostname("127.0.0.1")
                .tcp_port(my.port)
                .user(Some(USER))
                .pass(Some(password)),
        )
    };
    assert!(
        my_login("wrong").await.is_err(),
        "MariaDB accepted a wrong password: the test would prove nothing"
    );
    my_login(CANARY)
        .await
        .expect("the canary user logs in to MariaDB")
        .disconnect()
        .await
        .unwrap();
    ferry_testkit::mysql_exec(
        &my_src.url,
        "CREATE TABLE item (id int PRIMARY KEY, name varchar(20));
         INSERT INTO item VALUES (1, 'a'), (2, 'b'), (3, 'c')",
    )
    .await;

    // the CLI: MariaDB → PostgreSQL, copy and change stream
    let dir = tempfile::tempdir().unwrap();
    let file = |name: &str, mode: &str, source: &str, target: &str| {
        let path = dir.path().join(format!("{name}.yaml"));
        std::fs::write(
            &path,
            format!(
                "name: {name}\nkind: migration\nmode: {mode}\nsource: {source}\ntarget: {target}\n"
            ),
        )
        .unwrap();
        path.to_string_lossy().into_owned()
    };
    let task = file("canary-cli", "full+incremental", &my_src_url, &pg_dst);
    let o = ferry("ferry check", &["check", &task]);
    assert!(o.status.success(), "{}", text(&o));
    let o = ferry("ferry run", &["run", &task, "--exit-when-caught-up"]);
    assert!(o.status.success(), "{}", text(&o));
    let log = String::from_utf8_lossy(&o.stderr);
    assert!(
        log.contains("DEBUG") && log.contains("TRACE"),
        "the run did not log at trace level: the test would see too little\n{log}"
    );
    let o = ferry("ferry status", &["status", &task]);
    assert!(o.status.success(), "{}", text(&o));
    let o = ferry("ferry compare", &["compare", &task]);
    assert!(o.status.success(), "{}", text(&o));
    let o = ferry("ferry end", &["end", &task]);
    assert!(o.status.success(), "{}", text(&o));

    // failing connects with the canary password: nothing listens on that port; that
    // database does not exist
    let closed = free_port();
    let bad_port = file(
        "canary-port",
        "full",
        &my_src_url.replace(&format!(":{}/", my.port), &format!(":{closed}/")),
        &pg_dst.replace(&format!(":{}/", pg.port), &format!(":{closed}/")),
    );
    let o = ferry("ferry check (wrong port)", &["check", &bad_port]);
    assert!(!o.status.success(), "{}", text(&o));
    let no_db = file(
        "canary-nodb",
        "full",
        &pg_src.replace("/canary_src", "/canary_nosuch"),
        &my_dst_url.replace(&my_dst.name, "canary_nosuch_db"),
    );
    let o = ferry("ferry check (no such database)", &["check", &no_db]);
    assert!(!o.status.success(), "{}", text(&o));
    let o = ferry("ferry run (no such database)", &["run", &no_db]);
    assert!(!o.status.success(), "{}", text(&o));

    // the service: PostgreSQL → MariaDB (a slot and a replication connection), and a
    // task whose source port is closed
    let svc_dir = tempfile::tempdir().unwrap();
    let data = svc_dir.path().join("data");
    let log_path = svc_dir.path().join("serve.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let port = free_port();
    let mut serve = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .arg("--data-dir")
        .arg(&data)
        .env("FERRY_ADMIN_TOKEN", ADMIN)
        .env("FERRY_LOG", "trace")
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("spawn ferry serve");
    let read_log = || std::fs::read_to_string(&log_path).unwrap_or_default();
    let api = Api {
        base: format!("http://127.0.0.1:{port}"),
        http: reqwest::Client::new(),
    };
    let t0 = Instant::now();
    while reqwest::get(format!("{}/healthz", api.base)).await.is_err() {
        assert!(t0.elapsed() < T, "serve did not come up:\n{}", read_log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (s, v) = api
        .json(
            "POST",
            "/api/v1/tenants",
            Some(json!({"name": "canary", "balance": 100})),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    let spec = |name: &str, source: &str, target: &str| {
        format!("name: {name}\nkind: migration\nmode: full+incremental\nsource: {source}\ntarget: {target}\n")
    };
    let (s, v) = api
        .json(
            "POST",
            "/api/v1/tasks",
            Some(json!({"tenant": "canary", "spec": spec("canary-svc", &pg_src, &my_dst_url)})),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    let id = v["id"].as_str().unwrap().to_string();
    // the broken one through the CLI, from a task file
    let broken = file(
        "canary-broken",
        "full+incremental",
        &pg_src.replace(&format!(":{}/", pg.port), &format!(":{closed}/")),
        &my_dst_url,
    );
    let ferry_api = |what: &str, args: &[&str]| {
        let o = Command::new(env!("CARGO_BIN_EXE_ferry"))
            .args(args)
            .args(["-o", "json"])
            .env("FERRY_LOG", "trace")
            .env("FERRY_SERVER", &api.base)
            .env("FERRY_TOKEN", ADMIN)
            .output()
            .unwrap();
        assert!(o.status.success(), "{what}: {}", text(&o));
        assert_clean(what, &o.stdout);
        assert_clean(what, &o.stderr);
        serde_json::from_slice::<Value>(&o.stdout).unwrap_or(Value::Null)
    };
    let v = ferry_api(
        "ferry task create",
        &["task", "create", "-f", &broken, "--tenant", "canary"],
    );
    let broken_id = v["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{v}"))
        .to_string();
    api.wait(&id, &["configuring"], &read_log).await;
    let (s, v) = api
        .json("POST", &format!("/api/v1/tasks/{id}/start"), None)
        .await;
    assert_eq!(s, 202, "{v}");
    api.wait(&id, &["incremental"], &read_log).await;
    c.batch_execute("INSERT INTO acct VALUES (51, 'late')")
        .await
        .unwrap();
    let t0 = Instant::now();
    while common::query_lines("mysql", &my_dst.url, "SELECT count(*) FROM acct").await != ["51"] {
        assert!(
            t0.elapsed() < T,
            "the change never arrived:\n{}",
            read_log()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let failed = api.wait(&broken_id, &["create_failed"], &read_log).await;
    assert!(
        failed["reason"].as_str().is_some_and(|r| !r.is_empty()),
        "{failed:#}"
    );
    // the CLI's view of the service too
    ferry_api("ferry task list", &["task", "list"]);
    ferry_api("ferry task show", &["task", "show", &id]);
    let (s, _) = api
        .json("POST", &format!("/api/v1/tasks/{id}/end"), None)
        .await;
    assert_eq!(s, 202);
    api.wait(&id, &["ended", "end_failed"], &read_log).await;
    assert_no_cmdline_holds_it();
    // the service's log and files while it runs, and after it stopped
    assert_clean("the service log", read_log().as_bytes());
    assert_files_clean(&data);
    let _ = serve.kill();
    let _ = serve.wait();
    assert_clean("the service log", read_log().as_bytes());
    assert_files_clean(&data);
}

/// The detector finds the password in each form it may take.
#[test]
fn the_detector_finds_every_form_of_the_password() {
    for form in [
        CANARY.to_string(),
        CANARY_URL.to_string(),
        CANARY_URL.to_lowercase(),
        format!("{CORE}***"),
    ] {
        let text = format!("connect to mysql://u:{form}@h/db failed");
        let found = std::panic::catch_unwind(|| assert_clean("a sample", text.as_bytes()));
        assert!(found.is_err(), "{form:?} went unnoticed");
    }
    assert_clean("a clean sample", b"connect to mysql://u:***@h/db failed");
}
