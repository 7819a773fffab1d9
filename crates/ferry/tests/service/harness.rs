//! Everything the service tests share: the `ferry serve` and `ferry worker` processes
//! and an HTTP client for the API, task helpers, database setup and comparison, write
//! probes for fenced endpoints, and a webhook sink.
//!
//! Every wait here polls what the API or a database reports, never a fixed sleep, and
//! gives up after [`T`].

use crate::common::{self, ferry, fresh, text, Db};
use serde_json::{json, Value};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

// The processes under test.

/// The admin token every `ferry serve` started here is given.
pub const ADMIN: &str = "test-admin-token";

/// How long a test waits for a state or a row before it fails.
pub const T: Duration = Duration::from_secs(60);

/// A port nothing listens on right now, for the next service to bind.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A `ferry serve` process on a free port, killed when dropped.
pub struct Service {
    child: Option<Child>,
    /// `http://127.0.0.1:PORT`, for requests the client methods do not cover.
    pub base: String,
    dir: std::path::PathBuf,
    port: u16,
    extra: Vec<String>,
    env: Vec<(String, String)>,
}

impl Service {
    /// Starts `ferry serve` with the extra command-line arguments `extra`.
    pub async fn start(dir: &std::path::Path, extra: &[&str]) -> Service {
        Service::start_with(dir, extra, &[]).await
    }

    /// Starts `ferry serve` with extra arguments and extra environment variables.
    pub async fn start_with(
        dir: &std::path::Path,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Service {
        let port = free_port();
        let mut s = Service {
            child: None,
            base: format!("http://127.0.0.1:{port}"),
            dir: dir.to_path_buf(),
            port,
            extra: extra.iter().map(|s| s.to_string()).collect(),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        s.spawn().await;
        s
    }

    /// (Re)starts the process on the same port and data directory, appending to the
    /// same log; returns once `/healthz` answers.
    pub async fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("serve.log"))
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_ferry"))
            .args(["serve", "--listen", &format!("127.0.0.1:{}", self.port)])
            .arg("--data-dir")
            .arg(self.dir.join("data"))
            .args(&self.extra)
            .env("FERRY_ADMIN_TOKEN", ADMIN)
            .env("FERRY_LOG", "info")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("spawn ferry serve");
        self.child = Some(child);
        let t0 = Instant::now();
        while reqwest::get(format!("{}/healthz", self.base))
            .await
            .is_err()
        {
            assert!(
                t0.elapsed() < Duration::from_secs(30),
                "serve did not come up:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Everything the service has logged so far, across restarts.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("serve.log")).unwrap_or_default()
    }

    /// kill -9: the node dies without releasing anything.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// One API request with `token` as bearer; returns the status and the body (as
    /// JSON, or a JSON string when it is not JSON).
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let c = reqwest::Client::new();
        let mut r = c
            .request(method.parse().unwrap(), format!("{}{path}", self.base))
            .bearer_auth(token);
        if let Some(b) = body {
            r = r.json(&b);
        }
        let resp = r
            .send()
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// Creates a tenant (as the admin) with `balance`; returns its token.
    pub async fn tenant(&self, name: &str, balance: f64) -> String {
        let (s, v) = self
            .call(
                "POST",
                "/api/v1/tenants",
                ADMIN,
                Some(json!({"name": name, "balance": balance})),
            )
            .await;
        assert_eq!(s, 201, "{v}");
        v["token"].as_str().unwrap().to_string()
    }

    /// Creates a task from `spec`, optionally scheduled; returns its id. Asserts that
    /// no password came back.
    pub async fn create(&self, token: &str, spec: &str, start_at: Option<String>) -> String {
        let (s, v) = self
            .call(
                "POST",
                "/api/v1/tasks",
                token,
                Some(json!({"spec": spec, "start_at": start_at})),
            )
            .await;
        assert_eq!(s, 201, "{v}");
        assert!(
            !v.to_string().contains("s3cret"),
            "a password came back: {v}"
        );
        v["id"].as_str().unwrap().to_string()
    }

    /// Requests `action` (start, pause, end, …) on task `id`.
    pub async fn act(&self, token: &str, id: &str, action: &str) -> (u16, Value) {
        self.call("POST", &format!("/api/v1/tasks/{id}/{action}"), token, None)
            .await
    }

    /// Waits until the task is in `want`, failing early if it lands in a failure state.
    pub async fn wait_state(&self, token: &str, id: &str, want: &str, timeout: Duration) -> Value {
        let t0 = Instant::now();
        loop {
            let (s, v) = self
                .call("GET", &format!("/api/v1/tasks/{id}"), token, None)
                .await;
            assert_eq!(s, 200, "{v}");
            let state = v["state"].as_str().unwrap_or_default().to_string();
            if state == want {
                return v;
            }
            assert!(
                !state.ends_with("_failed") || want.ends_with("_failed"),
                "task went {state} waiting for {want}: {v:#}\n{}",
                self.log()
            );
            assert!(
                t0.elapsed() < timeout,
                "timed out waiting for {want}; task: {v:#}\nserve log:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A `ferry worker` node (no API), killed when dropped; its log names its lease-owner
/// id.
pub struct WorkerNode {
    child: Child,
    log: std::path::PathBuf,
}

impl WorkerNode {
    /// Starts a worker named `name` on metadata DB `meta` with secret key `key`; it logs
    /// to `dir/NAME.log`.
    pub fn start(dir: &std::path::Path, name: &str, meta: &str, key: &str) -> WorkerNode {
        let log = dir.join(format!("{name}.log"));
        let f = std::fs::File::create(&log).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_ferry"))
            .args(["worker", "--meta", meta, "--data-dir"])
            .arg(dir.join(name))
            .env("FERRY_SECRET_KEY", key)
            .env("FERRY_LOG", "info")
            .stdin(Stdio::null())
            .stdout(f.try_clone().unwrap())
            .stderr(f)
            .spawn()
            .expect("spawn ferry worker");
        WorkerNode { child, log }
    }

    /// The worker's process id (to signal it).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything the worker has logged so far.
    pub fn text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for WorkerNode {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// Tasks over the API.

/// Creates a task from `spec`, waits until it is configured and starts it; returns
/// its id.
pub async fn create_and_start(svc: &Service, tok: &str, spec: &str) -> String {
    let id = svc.create(tok, spec, None).await;
    svc.wait_state(tok, &id, "configuring", T).await;
    let (s, v) = svc.act(tok, &id, "start").await;
    assert_eq!(s, 202, "{v}");
    id
}

/// Waits until a switchover requested on task `id` is done; returns the task.
pub async fn wait_for_switchover(svc: &Service, tok: &str, id: &str) -> Value {
    let t0 = Instant::now();
    loop {
        let (_, v) = svc
            .call("GET", &format!("/api/v1/tasks/{id}"), tok, None)
            .await;
        if v["state"] == "replicating"
            && v["reason"]
                .as_str()
                .unwrap_or_default()
                .starts_with("switchover done")
        {
            return v;
        }
        assert!(
            v["state"] != "abnormal",
            "switchover failed: {v:#}\n{}",
            svc.log()
        );
        assert!(t0.elapsed() < T, "no switchover: {v:#}\n{}", svc.log());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

// Databases, task specs and comparisons.

/// A PostgreSQL source with `rows` rows in `acct` and an empty target; the spec's
/// URLs carry a password (trust auth ignores it) that must never come back.
pub async fn databases(rows: u64) -> (Db, Db) {
    let src = fresh("postgres", "svc_src").await;
    let dst = fresh("postgres", "svc_dst").await;
    ferry_testkit::pg_exec(
        &src.url,
        &format!(
            "CREATE TABLE acct (id bigint PRIMARY KEY, owner text, balance int);
             INSERT INTO acct SELECT g, 'o' || g, 1 FROM generate_series(1, {rows}) g;"
        ),
    )
    .await;
    (src, dst)
}

/// `url` with a password added (PostgreSQL trust auth ignores it).
fn with_password(url: &str) -> String {
    url.replacen("postgres://postgres@", "postgres://postgres:s3cret@", 1)
}

/// A migration task spec named `name` in `mode` from `src` to `dst`, both URLs with
/// the password `s3cret`.
pub fn spec(name: &str, mode: &str, src: &Db, dst: &Db) -> String {
    format!(
        "name: {name}\nkind: migration\nmode: {mode}\nsource: {}\ntarget: {}\n",
        with_password(&src.url),
        with_password(&dst.url)
    )
}

/// Waits until `sql` on `url` returns `want` (a change reached the target).
pub async fn wait_rows(
    engine: &str,
    url: &str,
    sql: &str,
    want: &[&str],
    what: &str,
    log: impl Fn() -> String,
) {
    let t0 = Instant::now();
    while common::query_lines(engine, url, sql).await != want {
        assert!(t0.elapsed() < T, "{what}\n{}", log());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// `ferry compare` over the same databases (a task file of its own).
pub fn compare_equal(dir: &std::path::Path, src: &Db, dst: &Db) {
    let f = common::task_file(dir, &src.url, &dst.url, "");
    let c = ferry(&["compare", &f]);
    assert!(
        c.status.success(),
        "source and target differ:\n{}",
        text(&c)
    );
}

/// Drops task `id`'s replication slot on `src` as soon as no stream holds it.
pub async fn drop_slot_when_idle(src: &Db, id: &str) {
    let slot = format!("ferry_{id}");
    let t0 = Instant::now();
    loop {
        let rows = common::query_lines(
            "postgres",
            &src.url,
            &format!("SELECT pg_drop_replication_slot(slot_name)::text FROM pg_replication_slots WHERE slot_name = '{slot}' AND NOT active"),
        )
        .await;
        if !rows.is_empty() {
            return;
        }
        assert!(t0.elapsed() < T, "slot {slot} stayed active");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

// Write probes: is an endpoint fenced?

/// Tries a write on PostgreSQL; returns the error text when it is refused.
pub async fn try_write(url: &str, sql: &str) -> Option<String> {
    let (c, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    c.batch_execute(sql).await.err().map(|e| format!("{e:?}"))
}

/// Writes in a session that turns the database's read-only default off (as Ferry's
/// own sessions do); returns the error text when it is refused.
pub async fn write_past_fence(url: &str, sql: &str) -> Option<String> {
    let (c, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    c.batch_execute("SET default_transaction_read_only = off")
        .await
        .unwrap();
    c.batch_execute(sql).await.err().map(|e| format!("{e:?}"))
}

/// Tries a write as `user` (password `user`) on a MariaDB server; returns the error
/// text when it is refused.
pub async fn try_write_mariadb(
    srv: &ferry_testkit::Server,
    user: &str,
    sql: &str,
) -> Option<String> {
    use mysql_async::prelude::Queryable;
    let url = format!("mysql://{user}:{user}@{}:{}/shop", srv.host, srv.port);
    let mut c = mysql_async::Conn::from_url(url).await.unwrap();
    let r = c.query_drop(sql).await.err().map(|e| e.to_string());
    c.disconnect().await.ok();
    r
}

// Webhooks.

/// A local HTTP endpoint that hands every POSTed body to the returned channel.
pub async fn webhook_sink() -> (String, tokio::sync::mpsc::Receiver<Value>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    let n = sock.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    let text = String::from_utf8_lossy(&buf).to_string();
                    if let Some(end) = text.find("\r\n\r\n") {
                        let len: usize = text[..end]
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase()
                                    .strip_prefix("content-length:")
                                    .map(|v| v.trim().parse().unwrap_or(0))
                            })
                            .unwrap_or(0);
                        if buf.len() >= end + 4 + len {
                            let body = &buf[end + 4..end + 4 + len];
                            let _ = sock
                                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                                .await;
                            let _ = tx
                                .send(serde_json::from_slice(body).unwrap_or(Value::Null))
                                .await;
                            return;
                        }
                    }
                }
            });
        }
    });
    (url, rx)
}
