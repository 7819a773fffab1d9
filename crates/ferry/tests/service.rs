//! `ferry serve` over real HTTP with real databases: each state is reached through
//! its real cause (a start, a pause, a scheduled time passing, a killed service, a
//! balance running out, an unreachable endpoint), illegal actions answer 409, tenants
//! see only their own tasks, and no change is lost across any of it.
//!
//! Tests wait on states the API reports, never on fixed sleeps.

mod common;

use common::{ferry, fresh, text, Db};
use serde_json::{json, Value};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A `ferry serve` process on a free port, killed when dropped.
struct Service {
    child: Option<Child>,
    base: String,
    dir: std::path::PathBuf,
    port: u16,
    extra: Vec<String>,
    env: Vec<(String, String)>,
}

const ADMIN: &str = "test-admin-token";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Service {
    async fn start(dir: &std::path::Path, extra: &[&str]) -> Service {
        Service::start_with(dir, extra, &[]).await
    }

    async fn start_with(dir: &std::path::Path, extra: &[&str], env: &[(&str, &str)]) -> Service {
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

    async fn spawn(&mut self) {
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

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("serve.log")).unwrap_or_default()
    }

    /// kill -9: the node dies without releasing anything.
    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    async fn call(
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

    async fn tenant(&self, name: &str, balance: f64) -> String {
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

    async fn create(&self, token: &str, spec: &str, start_at: Option<String>) -> String {
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

    async fn act(&self, token: &str, id: &str, action: &str) -> (u16, Value) {
        self.call("POST", &format!("/api/v1/tasks/{id}/{action}"), token, None)
            .await
    }

    /// Waits until the task is in `want`, failing early if it lands in a failure state.
    async fn wait_state(&self, token: &str, id: &str, want: &str, timeout: Duration) -> Value {
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

/// A PostgreSQL source with `rows` rows in `acct` and an empty target; the spec's
/// URLs carry a password (trust auth ignores it) that must never come back.
async fn databases(rows: u64) -> (Db, Db) {
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

fn with_password(url: &str) -> String {
    url.replacen("postgres://postgres@", "postgres://postgres:s3cret@", 1)
}

fn spec(name: &str, mode: &str, src: &Db, dst: &Db) -> String {
    format!(
        "name: {name}\nkind: migration\nmode: {mode}\nsource: {}\ntarget: {}\n",
        with_password(&src.url),
        with_password(&dst.url)
    )
}

/// A local HTTP endpoint that hands every POSTed body to the returned channel.
async fn webhook_sink() -> (String, tokio::sync::mpsc::Receiver<Value>) {
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

/// Waits until `sql` on `url` returns `want` (a change reached the target).
async fn wait_rows(
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
fn compare_equal(dir: &std::path::Path, src: &Db, dst: &Db) {
    let f = common::task_file(dir, &src.url, &dst.url, "");
    let c = ferry(&["compare", &f]);
    assert!(
        c.status.success(),
        "source and target differ:\n{}",
        text(&c)
    );
}

const T: Duration = Duration::from_secs(60);

/// creating → configuring → starting → incremental → paused → starting →
/// incremental → ending → ended → deleted, with changes made while it streamed and
/// while it was paused all arriving.
#[tokio::test(flavor = "multi_thread")]
async fn a_migration_task_lives_its_whole_lifecycle_over_http() {
    let dir = tempfile::tempdir().unwrap();
    let svc = Service::start(dir.path(), &[]).await;
    let tok = svc.tenant("acme", 100.0).await;
    let (src, dst) = databases(20_000).await;
    let id = svc
        .create(&tok, &spec("shop", "full+incremental", &src, &dst), None)
        .await;
    let v = svc.wait_state(&tok, &id, "configuring", T).await;
    assert_eq!(
        v["allowed_actions"],
        json!(["start", "schedule", "end", "delete"])
    );

    let (s, _) = svc.act(&tok, &id, "start").await;
    assert_eq!(s, 202);
    svc.wait_state(&tok, &id, "incremental", T).await;
    ferry_testkit::pg_exec(
        &src.url,
        "INSERT INTO acct VALUES (1000001, 'live', 1); DELETE FROM acct WHERE id = 7;",
    )
    .await;

    // Prometheus: state counts, and the running task's lag, each family once
    let m = reqwest::Client::new()
        .get(format!("{}/metrics", svc.base))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        m.contains("ferry_tasks{kind=\"migration\",state=\"incremental\"} 1"),
        "{m}"
    );
    assert!(
        m.contains(&format!("ferry_lag_seconds{{task=\"{id}\"}}")),
        "{m}"
    );
    assert_eq!(m.matches("# HELP ferry_lag_seconds").count(), 1, "{m}");
    // a migration has no object edits
    let (s, v) = svc.act(&tok, &id, "edit").await;
    assert_eq!(s, 409, "{v}");
    assert_eq!(v["allowed"], json!(["pause", "end"]));
    let (s, _) = svc.act(&tok, &id, "pause").await;
    assert_eq!(s, 202);
    svc.wait_state(&tok, &id, "paused", T).await;
    // a paused task cannot be started or deleted: 409 with what is allowed
    let (s, v) = svc.act(&tok, &id, "start").await;
    assert_eq!(s, 409, "{v}");
    assert_eq!(v["state"], "paused");
    assert_eq!(v["allowed"], json!(["resume", "end"]));
    let (s, _) = svc
        .call("DELETE", &format!("/api/v1/tasks/{id}"), &tok, None)
        .await;
    assert_eq!(s, 409);
    ferry_testkit::pg_exec(&src.url, "UPDATE acct SET balance = 5 WHERE id <= 100; INSERT INTO acct VALUES (1000002, 'paused', 2);").await;

    let (s, _) = svc.act(&tok, &id, "resume").await;
    assert_eq!(s, 202);
    svc.wait_state(&tok, &id, "incremental", T).await;
    // the changes made while paused arrive: wait for the last of them on the target
    wait_rows(
        "postgres",
        &dst.url,
        "SELECT count(*) FROM acct WHERE id = 1000002",
        &["1"],
        "changes made while paused never arrived",
        || svc.log(),
    )
    .await;
    // progress: the phase and what was applied, as the worker last wrote it
    let t0 = Instant::now();
    loop {
        let (_, v) = svc
            .call("GET", &format!("/api/v1/tasks/{id}"), &tok, None)
            .await;
        let p = &v["progress"];
        if p["phase"] == "incremental" && p["rows_applied"].as_u64().unwrap_or(0) >= 1 {
            break;
        }
        assert!(t0.elapsed() < T, "no progress reported: {v:#}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (s, _) = svc.act(&tok, &id, "end").await;
    assert_eq!(s, 202);
    let v = svc.wait_state(&tok, &id, "ended", T).await;
    assert!(
        v["reason"]
            .as_str()
            .unwrap()
            .contains("dropped replication slot"),
        "{v}"
    );
    compare_equal(dir.path(), &src, &dst);

    // the events tell the whole story, in order
    let states: Vec<&str> = v["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["to"].as_str().unwrap())
        .collect();
    let want = [
        "creating",
        "configuring",
        "starting",
        "incremental",
        "paused",
        "starting",
        "incremental",
        "ending",
        "ended",
    ];
    let mut it = states.iter();
    for w in want {
        assert!(it.any(|s| *s == w), "events {states:?} lack {w} in order");
    }
    let (s, _) = svc
        .call("DELETE", &format!("/api/v1/tasks/{id}"), &tok, None)
        .await;
    assert_eq!(s, 204);
    let (s, _) = svc
        .call("GET", &format!("/api/v1/tasks/{id}"), &tok, None)
        .await;
    assert_eq!(s, 404);
    let (_, list) = svc.call("GET", "/api/v1/tasks", &tok, None).await;
    assert_eq!(list["total"], 0, "deleted tasks vanish from lists: {list}");
    // the stored metadata holds no password
    let db = std::fs::read(dir.path().join("data/ferry.db")).unwrap();
    assert!(!String::from_utf8_lossy(&db).contains("s3cret"));
    assert!(!svc.log().contains("s3cret"));
}

/// Tenants see only their own tasks; bad input is a 422 naming the field; an
/// unreachable endpoint ends in create_failed with the reason; concurrent pause and
/// end leave a valid state.
#[tokio::test(flavor = "multi_thread")]
async fn tenants_are_isolated_and_bad_input_is_explained() {
    let dir = tempfile::tempdir().unwrap();
    // the webhook sink listens on loopback: the admin allows it
    let svc = Service::start_with(dir.path(), &[], &[("FERRY_WEBHOOK_ALLOW", "127.0.0.1")]).await;
    let a = svc.tenant("alpha", 10.0).await;
    let b = svc.tenant("beta", 10.0).await;
    let (src, dst) = databases(100).await;
    let id = svc
        .create(&a, &spec("mine", "full+incremental", &src, &dst), None)
        .await;
    svc.wait_state(&a, &id, "configuring", T).await;

    let (s, _) = svc
        .call("GET", &format!("/api/v1/tasks/{id}"), &b, None)
        .await;
    assert_eq!(s, 404, "another tenant's task looks missing");
    let (s, _) = svc.act(&b, &id, "start").await;
    assert_eq!(s, 404);
    let (_, list) = svc.call("GET", "/api/v1/tasks", &b, None).await;
    assert_eq!(list["total"], 0);
    let (_, list) = svc
        .call("GET", "/api/v1/tasks?kind=migration&since=24h", ADMIN, None)
        .await;
    assert_eq!(list["total"], 1, "the admin sees all: {list}");
    let (s, _) = svc.call("GET", "/api/v1/tasks", "nope", None).await;
    assert_eq!(s, 401);
    let (s, _) = svc
        .call("POST", "/api/v1/tenants", &a, Some(json!({"name": "x"})))
        .await;
    assert_eq!(s, 403, "only the admin creates tenants");

    let (s, v) = svc
        .call(
            "POST",
            "/api/v1/tasks",
            &a,
            Some(json!({"spec": "name: x\nkind: migration\n"})),
        )
        .await;
    assert_eq!(s, 422, "{v}");
    assert_eq!(v["field"], "spec");
    let (s, v) = svc.call("GET", "/api/v1/tasks?state=bogus", &a, None).await;
    assert_eq!((s, v["field"].as_str()), (422, Some("state")));

    // the tenant's webhook hears about failures
    let (hook, mut heard) = webhook_sink().await;
    let (s, v) = svc
        .call(
            "PUT",
            "/api/v1/tenants/alpha/webhook",
            &a,
            Some(json!({"url": hook, "lag_seconds": 30, "lag_for_seconds": 60})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let (s, v) = svc
        .call(
            "PUT",
            "/api/v1/tenants/alpha/webhook",
            &a,
            Some(json!({"url": "ftp://x"})),
        )
        .await;
    assert_eq!((s, v["field"].as_str()), (422, Some("url")), "{v}");

    // nothing listens on port 1: validation fails with the reason
    let bad = spec("unreachable", "full", &src, &dst).replace(
        &format!(":{}/", url::Url::parse(&src.url).unwrap().port().unwrap()),
        ":1/",
    );
    let bad_id = svc.create(&a, &bad, None).await;
    let v = svc.wait_state(&a, &bad_id, "create_failed", T).await;
    assert!(v["reason"].as_str().unwrap().contains("source"), "{v}");
    assert!(!v.to_string().contains("s3cret"));
    let note = tokio::time::timeout(T, heard.recv())
        .await
        .expect("webhook called")
        .unwrap();
    assert_eq!(note["event"], "task_failed", "{note}");
    assert_eq!(note["task"]["id"], bad_id.as_str());
    assert_eq!(note["task"]["state"], "create_failed");
    assert!(!note.to_string().contains("s3cret"));

    // pause and end at once: whichever wins, the task ends up in a valid state
    let (s, _) = svc.act(&a, &id, "start").await;
    assert_eq!(s, 202);
    svc.wait_state(&a, &id, "incremental", T).await;
    let (p, e) = tokio::join!(svc.act(&a, &id, "pause"), svc.act(&a, &id, "end"));
    assert!(p.0 == 202 || p.0 == 409, "{p:?}");
    assert_eq!(
        e.0, 202,
        "end is allowed from incremental and from paused: {e:?}"
    );
    svc.wait_state(&a, &id, "ended", T).await;
}

/// Bad requests are refused with the documented JSON error, before anything is
/// written: dates the parser cannot read (multi-byte, overflowing), a start time in
/// the past, webhooks to internal addresses, malformed or mistyped bodies; the
/// metrics need a token and count every task.
#[tokio::test(flavor = "multi_thread")]
async fn bad_requests_are_refused_with_json_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let svc = Service::start_with(dir.path(), &[], &[("FERRY_METRICS_TOKEN", "scrape-me")]).await;
    let tok = svc.tenant("acme", 10.0).await;
    let c = reqwest::Client::new();
    let url = |p: &str| format!("{}{p}", svc.base);

    // multi-byte and overflowing `since`/`until`: a 422 naming the field, never a
    // dropped connection
    for (q, field) in [
        ("since=%C3%B9", "since"),
        ("until=24%D1%87", "until"),
        ("since=99999999999999999d", "since"),
        ("since=2026-11-01..2026-12-20&until=2026-12-01", "since"),
    ] {
        let (s, v) = svc
            .call("GET", &format!("/api/v1/tasks?{q}"), &tok, None)
            .await;
        assert_eq!((s, v["field"].as_str()), (422, Some(field)), "{q}: {v}");
    }
    let (s, _) = svc.call("GET", "/api/v1/tasks?since=24h", &tok, None).await;
    assert_eq!(s, 200);
    // the range README documents for --since works in the API too
    let (s, v) = svc
        .call(
            "GET",
            "/api/v1/tasks?since=2026-11-01..2026-12-20",
            &tok,
            None,
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let (_, v) = svc
        .call("GET", "/api/v1/tasks?since=soon", &tok, None)
        .await;
    let why = v["error"].as_str().unwrap_or_default();
    assert!(why.contains("FROM..TO") && why.contains("until="), "{v}");

    // a start time in the past is refused and no task is left behind
    let spec = "name: later\nkind: migration\nmode: full\nsource: postgres://u@127.0.0.1:1/a\ntarget: postgres://u@127.0.0.1:1/b\n";
    let (s, v) = svc
        .call(
            "POST",
            "/api/v1/tasks",
            &tok,
            Some(json!({"spec": spec, "start_at": "2001-01-01T00:00:00Z"})),
        )
        .await;
    assert_eq!((s, v["field"].as_str()), (422, Some("start_at")), "{v}");
    let (_, list) = svc.call("GET", "/api/v1/tasks", &tok, None).await;
    assert_eq!(list["total"], 0, "a refused create left a task: {list}");
    let id = svc.create(&tok, spec, None).await;
    svc.wait_state(&tok, &id, "create_failed", T).await;

    // webhooks to internal addresses are refused when saved (nothing is sent: no
    // address here is reachable from the test anyway but 127.0.0.1)
    for hook in [
        "http://169.254.169.254/latest/meta-data/",
        "http://10.1.2.3/hook",
        "http://127.0.0.1:9/hook",
        "http://[::1]:9/hook",
        "http://0.0.0.0:9/hook",
    ] {
        let (s, v) = svc
            .call(
                "PUT",
                "/api/v1/tenants/acme/webhook",
                &tok,
                Some(json!({"url": hook})),
            )
            .await;
        assert_eq!((s, v["field"].as_str()), (422, Some("url")), "{hook}: {v}");
    }
    let (s, v) = svc
        .call(
            "PUT",
            "/api/v1/tenants/acme/webhook",
            &tok,
            Some(json!({"url": "http://127.0.0.1:9/hook", "lag_seconds": -1})),
        )
        .await;
    assert_eq!((s, v["field"].as_str()), (422, Some("lag_seconds")), "{v}");
    let (_, t) = svc.call("GET", "/api/v1/tenants/acme", &tok, None).await;
    assert!(t["webhook"].is_null(), "{t}");

    // /metrics: a token is needed; the admin's or the metrics token; failed tasks count
    let metrics = |token: Option<&str>| {
        let mut r = c.get(url("/metrics"));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        r.send()
    };
    assert_eq!(metrics(None).await.unwrap().status().as_u16(), 401);
    assert_eq!(metrics(Some(&tok)).await.unwrap().status().as_u16(), 403);
    for t in [ADMIN, "scrape-me"] {
        let r = metrics(Some(t)).await.unwrap();
        assert_eq!(r.status().as_u16(), 200);
        let m = r.text().await.unwrap();
        assert!(
            m.contains("ferry_tasks{kind=\"migration\",state=\"create_failed\"} 1"),
            "{m}"
        );
    }
    // the metrics token is no admin token
    let (s, _) = svc.call("GET", "/api/v1/tasks", "scrape-me", None).await;
    assert_eq!(s, 401);

    // the Bearer scheme is case-insensitive
    let r = c
        .get(url("/api/v1/tasks"))
        .header("authorization", format!("bearer {tok}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);

    // the framework's own rejections answer the documented JSON error
    for (body, content_type, status) in [
        ("{\"spec\": ", Some("application/json"), 400),
        ("{\"spec\": \"x\"}", None, 415),
        ("{\"spec\": 5}", Some("application/json"), 422),
    ] {
        let mut r = c.post(url("/api/v1/tasks")).bearer_auth(&tok).body(body);
        if let Some(ct) = content_type {
            r = r.header("content-type", ct);
        }
        let r = r.send().await.unwrap();
        assert_eq!(r.status().as_u16(), status, "{body}");
        assert_eq!(r.headers()["content-type"], "application/json", "{body}");
        let v: Value = r.json().await.unwrap();
        assert!(v["error"].is_string(), "{v}");
        if status == 422 {
            assert_eq!(v["field"], "spec", "{v}");
        }
    }
    let r = c
        .get(url("/api/v1/tasks?limit=many"))
        .bearer_auth(&tok)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    assert_eq!(r.headers()["content-type"], "application/json");

    // an action's body is optional, but one that is sent is never ignored
    let act = url(&format!("/api/v1/tasks/{id}/schedule"));
    for (body, content_type, status) in [
        ("{\"start_at\": \"2099-01-01T00:00:00Z\"}", None, 415),
        ("{\"start_at\": ", Some("application/json"), 400),
        ("{\"start_at\": 5}", Some("application/json"), 422),
        ("{\"when\": \"soon\"}", Some("application/json"), 422),
    ] {
        let mut r = c.post(&act).bearer_auth(&tok).body(body);
        if let Some(ct) = content_type {
            r = r.header("content-type", ct);
        }
        let r = r.send().await.unwrap();
        assert_eq!(r.status().as_u16(), status, "{body}");
        assert_eq!(r.headers()["content-type"], "application/json", "{body}");
    }
}

/// A scheduled start survives a restart of the service; a full-only migration ends by
/// itself once copied.
#[tokio::test(flavor = "multi_thread")]
async fn a_scheduled_start_survives_a_service_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut svc = Service::start(dir.path(), &[]).await;
    let tok = svc.tenant("acme", 100.0).await;
    let (src, dst) = databases(5_000).await;
    let at = chrono::Utc::now() + chrono::Duration::seconds(6);
    let id = svc
        .create(
            &tok,
            &spec("later", "full", &src, &dst),
            Some(at.to_rfc3339()),
        )
        .await;
    svc.wait_state(&tok, &id, "waiting_to_start", T).await;
    svc.kill();
    svc.spawn().await;
    let v = svc.wait_state(&tok, &id, "ended", T).await;
    assert!(
        v["reason"].as_str().unwrap().contains("full copy finished"),
        "{v}"
    );
    let started = v["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["to"] == "starting")
        .expect("a starting event");
    let when = chrono::DateTime::parse_from_rfc3339(started["at"].as_str().unwrap()).unwrap();
    assert!(when >= at, "started at {when}, before its time {at}");
    assert_eq!(started["reason"], "the scheduled start time passed");
    compare_equal(dir.path(), &src, &dst);
}

/// kill -9 of the node running a task: on restart the task shows `recovering`,
/// then streams again from its checkpoint, losing and duplicating nothing.
#[tokio::test(flavor = "multi_thread")]
async fn a_killed_worker_s_task_recovers_from_its_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let mut svc = Service::start(dir.path(), &[]).await;
    let tok = svc.tenant("acme", 100.0).await;
    let (src, dst) = databases(10_000).await;
    let id = svc
        .create(&tok, &spec("crash", "full+incremental", &src, &dst), None)
        .await;
    svc.wait_state(&tok, &id, "configuring", T).await;
    svc.act(&tok, &id, "start").await;
    svc.wait_state(&tok, &id, "incremental", T).await;
    ferry_testkit::pg_exec(
        &src.url,
        "INSERT INTO acct SELECT g, 'before', 1 FROM generate_series(2000001, 2001000) g;",
    )
    .await;
    svc.kill();
    ferry_testkit::pg_exec(
        &src.url,
        "UPDATE acct SET balance = 9 WHERE id > 2000500; DELETE FROM acct WHERE id < 50;",
    )
    .await;
    let t0 = Instant::now();
    svc.spawn().await;
    // the dead node's lease runs out and the new node takes the task over
    let v = svc.wait_state(&tok, &id, "recovering", T).await;
    assert!(
        v["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("stopped renewing its lease"),
        "{v:#}"
    );
    svc.wait_state(&tok, &id, "incremental", T).await;
    assert!(
        t0.elapsed() < Duration::from_secs(30),
        "took {:?} to resume",
        t0.elapsed()
    );
    wait_rows(
        "postgres",
        &dst.url,
        "SELECT count(*) FROM acct WHERE balance = 9",
        &["500"],
        "changes made while the worker was dead never arrived",
        || svc.log(),
    )
    .await;
    svc.act(&tok, &id, "end").await;
    svc.wait_state(&tok, &id, "ended", T).await;
    compare_equal(dir.path(), &src, &dst);
}

/// A balance that runs out freezes the tenant's running task (positions kept); an
/// admin top-up sends it back to streaming, and changes made while frozen arrive.
#[tokio::test(flavor = "multi_thread")]
async fn a_balance_running_out_freezes_and_a_top_up_thaws() {
    let dir = tempfile::tempdir().unwrap();
    // 3,600 per task-hour = 1 per second, charged every second
    let svc = Service::start(
        dir.path(),
        &["--price-task-hour", "3600", "--meter-every", "1"],
    )
    .await;
    let tok = svc.tenant("poor", 4.0).await;
    let (src, dst) = databases(1_000).await;
    let id = svc
        .create(&tok, &spec("meter", "full+incremental", &src, &dst), None)
        .await;
    svc.wait_state(&tok, &id, "configuring", T).await;
    svc.act(&tok, &id, "start").await;
    let v = svc.wait_state(&tok, &id, "frozen", T).await;
    assert!(v["reason"].as_str().unwrap().contains("balance"), "{v}");
    let (_, t) = svc.call("GET", "/api/v1/tenants/poor", &tok, None).await;
    assert!(t["balance"].as_f64().unwrap() <= 0.0, "{t}");
    assert!(t["usage"].as_f64().unwrap() >= 4.0, "{t}");
    ferry_testkit::pg_exec(&src.url, "INSERT INTO acct VALUES (3000001, 'frozen', 1);").await;
    let (s, _) = svc
        .call(
            "POST",
            "/api/v1/tenants/poor/topup",
            ADMIN,
            Some(json!({"amount": 1000})),
        )
        .await;
    assert_eq!(s, 200);
    let v = svc.wait_state(&tok, &id, "incremental", T).await;
    assert!(
        v["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["from"] == "frozen"),
        "{v:#}"
    );
    wait_rows(
        "postgres",
        &dst.url,
        "SELECT count(*) FROM acct WHERE id = 3000001",
        &["1"],
        "the change made while frozen never arrived",
        || svc.log(),
    )
    .await;
    svc.act(&tok, &id, "end").await;
    svc.wait_state(&tok, &id, "ended", T).await;
}

/// A `ferry worker` node (no API), killed when dropped; `id` is its lease-owner name.
struct WorkerNode {
    child: Child,
    log: std::path::PathBuf,
}

impl WorkerNode {
    fn start(dir: &std::path::Path, name: &str, meta: &str, key: &str) -> WorkerNode {
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

    fn text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for WorkerNode {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Several nodes on one PostgreSQL metadata DB: an API-only node and two workers.
/// kill -9 of the worker running a task mid-stream → the other worker takes it over
/// within 30 s (it shows `recovering`), resumes from the checkpoint, and the target
/// ends up equal to the source.
#[tokio::test(flavor = "multi_thread")]
async fn two_workers_share_postgres_metadata_and_one_takes_over_from_the_other() {
    let dir = tempfile::tempdir().unwrap();
    let meta = fresh("postgres", "meta").await;
    let key = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    let svc = Service::start_with(
        dir.path(),
        &["--meta", &meta.url, "--no-worker"],
        &[("FERRY_SECRET_KEY", key)],
    )
    .await;
    let mut workers = vec![
        WorkerNode::start(dir.path(), "w1", &meta.url, key),
        WorkerNode::start(dir.path(), "w2", &meta.url, key),
    ];
    // a node with another key refuses to start rather than misread the secrets
    let other = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(["worker", "--meta", &meta.url, "--data-dir"])
        .arg(dir.path().join("w3"))
        .env("FERRY_SECRET_KEY", "another key")
        .output()
        .unwrap();
    assert!(!other.status.success());
    assert!(
        text(&other).contains("same FERRY_SECRET_KEY"),
        "{}",
        text(&other)
    );

    let tok = svc.tenant("acme", 100.0).await;
    let (src, dst) = databases(20_000).await;
    let id = svc
        .create(&tok, &spec("shared", "full+incremental", &src, &dst), None)
        .await;
    svc.wait_state(&tok, &id, "configuring", T).await;
    svc.act(&tok, &id, "start").await;
    let v = svc.wait_state(&tok, &id, "incremental", T).await;
    let owner = v["worker"]
        .as_str()
        .expect("a worker holds the task")
        .to_string();
    let i = workers
        .iter()
        .position(|w| w.text().contains(&owner))
        .unwrap_or_else(|| panic!("no worker is {owner}"));
    ferry_testkit::pg_exec(
        &src.url,
        "INSERT INTO acct SELECT g, 'before', 1 FROM generate_series(2000001, 2001000) g;",
    )
    .await;
    let dead = workers.remove(i);
    let t0 = Instant::now();
    drop(dead); // kill -9
    ferry_testkit::pg_exec(
        &src.url,
        "UPDATE acct SET balance = 9 WHERE id > 2000500; DELETE FROM acct WHERE id < 50;",
    )
    .await;
    let v = svc.wait_state(&tok, &id, "recovering", T).await;
    assert!(v["reason"].as_str().unwrap().contains(&owner), "{v:#}");
    let v = svc.wait_state(&tok, &id, "incremental", T).await;
    assert!(
        t0.elapsed() < Duration::from_secs(30),
        "took {:?}",
        t0.elapsed()
    );
    assert_ne!(v["worker"].as_str(), Some(owner.as_str()), "{v:#}");
    wait_rows(
        "postgres",
        &dst.url,
        "SELECT count(*) FROM acct WHERE balance = 9",
        &["500"],
        "changes never arrived",
        || workers[0].text(),
    )
    .await;
    svc.act(&tok, &id, "end").await;
    svc.wait_state(&tok, &id, "ended", T).await;
    compare_equal(dir.path(), &src, &dst);
}

/// Every path the OpenAPI document lists is served (and only documented ones are
/// relied on by the CLI); Swagger UI is there.
#[tokio::test(flavor = "multi_thread")]
async fn the_openapi_document_matches_the_routes() {
    let dir = tempfile::tempdir().unwrap();
    let svc = Service::start(dir.path(), &[]).await;
    let (s, doc) = svc.call("GET", "/api/v1/openapi.json", "", None).await;
    assert_eq!(s, 200);
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().unwrap();
    assert!(paths.len() >= 10);
    for (path, ops) in paths {
        for method in ops.as_object().unwrap().keys() {
            let p = path
                .replace("{id}", "tnothere")
                .replace("{action}", "start")
                .replace("{name}", "nobody");
            let c = reqwest::Client::new();
            let r = c
                .request(
                    method.to_uppercase().parse().unwrap(),
                    format!("{}{p}", svc.base),
                )
                .bearer_auth(ADMIN)
                .json(&json!({}))
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            let body = r.text().await.unwrap();
            // a route the router does not know answers "no such path" / "method not
            // allowed"
            assert!(
                !((status == 404 || status == 405)
                    && (body.is_empty()
                        || body.contains("no such path")
                        || body.contains("method not allowed"))),
                "{method} {path} is documented but not served ({status}): {body}"
            );
        }
    }
    let ui = reqwest::get(format!("{}/api/v1/docs/", svc.base))
        .await
        .unwrap();
    assert_eq!(ui.status().as_u16(), 200);
    assert!(ui.text().await.unwrap().contains("swagger"), "Swagger UI");
    let console = reqwest::get(format!("{}/", svc.base)).await.unwrap();
    assert_eq!(console.status().as_u16(), 200);
    let html = console.text().await.unwrap();
    assert!(
        html.contains("/api/v1/tasks") && html.contains("waiting_to_start"),
        "console page"
    );
}

/// A running sync gets tables added: only the new tables are copied, chunk by chunk
/// inside the running stream, while writes continue on every table and the old
/// table's changes keep arriving; the task shows `changing` and returns to
/// `incremental`, and afterwards source and target are equal — no lost or stale rows.
async fn a_sync_edit_adds_a_table_while_writes_continue(engine: &'static str) {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::Arc;
    let dir = tempfile::tempdir().unwrap();
    let mut svc = Service::start(dir.path(), &[]).await;
    let tok = svc.tenant("acme", 100.0).await;
    let src = fresh(engine, "sync_src").await;
    let dst = fresh(engine, "sync_dst").await;
    let (acct_rows, extra_rows, schema) = if engine == "postgres" {
        (
            "generate_series(1, 5000) AS g(seq)",
            "generate_series(1, 40000) AS g(seq)",
            "public".to_string(),
        )
    } else {
        ("seq_1_to_5000", "seq_1_to_40000", src.name.clone())
    };
    let src_url = src.url.clone();
    let exec = move |sql: String| {
        let url = src_url.clone();
        async move {
            if engine == "postgres" {
                ferry_testkit::pg_exec(&url, &sql).await
            } else {
                ferry_testkit::mysql_exec(&url, &sql).await
            }
        }
    };
    // `extra` is copied in 80 chunks of 500 keys; `notes` has no key (one chunk)
    exec(format!(
        "CREATE TABLE acct (id bigint PRIMARY KEY, owner varchar(40), balance int);
         INSERT INTO acct SELECT seq, 'o', 1 FROM {acct_rows};
         CREATE TABLE extra (id bigint PRIMARY KEY, note varchar(40), n int);
         INSERT INTO extra SELECT seq, 'x', 0 FROM {extra_rows};
         CREATE TABLE notes (v varchar(20), n int);
         INSERT INTO notes SELECT concat('n', seq), seq FROM {acct_rows};"
    ))
    .await;
    let spec = format!(
        "name: grow\nkind: sync\nmode: full+incremental\nchunk_rows: 500\nsource: {}\ntarget: {}\nobjects:\n  include: [\"{schema}.acct\"]\n",
        src.url, dst.url
    );
    let id = svc.create(&tok, &spec, None).await;
    svc.wait_state(&tok, &id, "configuring", T).await;
    svc.act(&tok, &id, "start").await;
    svc.wait_state(&tok, &id, "incremental", T).await;

    // writes on every table before, during and after the edit: updates all over
    // `extra`, inserts past its end, deletes, and key changes both ways across the
    // part already copied
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let writer = {
        let (stop, done, exec) = (stop.clone(), done.clone(), exec.clone());
        tokio::spawn(async move {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                let k = 1 + (i * 37) % 40000;
                exec(format!(
                    "UPDATE acct SET balance = balance + 1 WHERE id = {};
                     UPDATE extra SET n = n + 1, note = 'w{i}' WHERE id = {k};
                     INSERT INTO extra (id, note, n) VALUES ({}, 'new', {i});
                     DELETE FROM extra WHERE id = {};
                     UPDATE extra SET id = id + 1000000 WHERE id = {};
                     UPDATE extra SET id = -id WHERE id = {};
                     INSERT INTO notes VALUES ('w{i}', {i});
                     DELETE FROM notes WHERE v = 'n{}';",
                    1 + i % 5000,
                    100_000 + i,
                    1 + (i * 101) % 40000,
                    1 + (i * 53) % 40000,
                    100_000 + i - 1,
                    1 + i % 5000
                ))
                .await;
                done.store(i, Ordering::Relaxed);
            }
        })
    };
    let wait_writes = |n: u64| {
        let done = done.clone();
        async move {
            let t0 = Instant::now();
            let start = done.load(Ordering::Relaxed);
            while done.load(Ordering::Relaxed) < start + n {
                assert!(t0.elapsed() < T, "the writer stalled");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    wait_writes(20).await;
    let (s, v) = svc
        .call(
            "POST",
            &format!("/api/v1/tasks/{id}/edit"),
            &tok,
            Some(json!({"objects": {"include": [
                format!("{schema}.acct"), format!("{schema}.extra"), format!("{schema}.notes")
            ]}})),
        )
        .await;
    assert_eq!(s, 202, "{v}");
    assert_eq!(v["state"], "changing");
    // while `extra` is being copied, `acct`'s changes keep arriving on the target;
    // midway the service is killed -9: the copy resumes from its last chunk
    let (mut samples, mut killed, mut recovered, mut altered, t0) =
        (Vec::new(), false, false, false, Instant::now());
    loop {
        let copying = common::query_lines(
            engine,
            &dst.url,
            &format!("SELECT count(*) FROM ferry.backfill WHERE task = '{id}' AND done = 0 AND rows_copied > 0 AND table_name LIKE '%extra'"),
        )
        .await
            == ["1"];
        let balance = common::query_lines(engine, &dst.url, "SELECT sum(balance) FROM acct").await;
        let (_, v) = svc
            .call("GET", &format!("/api/v1/tasks/{id}"), &tok, None)
            .await;
        match v["state"].as_str() {
            Some("incremental") => break,
            Some("recovering") => recovered |= killed,
            Some("changing") | None => {}
            Some(other) => panic!("the edit went {other}: {v:#}\n{}", svc.log()),
        }
        if copying && recovered && v["state"] == "changing" && !altered {
            // a column added while the resumed copy runs: later chunks carry it
            exec("ALTER TABLE extra ADD COLUMN z int NULL; UPDATE extra SET z = 5 WHERE id BETWEEN 39000 AND 39010;".into()).await;
            altered = true;
        }
        if copying && !killed {
            samples.push(balance);
            samples.dedup();
            if samples.len() >= 2 {
                svc.kill();
                svc.spawn().await;
                killed = true;
            }
        }
        assert!(
            t0.elapsed() < 2 * T,
            "the edit never finished: {v:#}\n{}",
            svc.log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        killed,
        "no change of acct reached the target while extra was being copied (balances seen: {samples:?})\n{}",
        svc.log()
    );
    assert!(
        altered,
        "the copy finished before a column could be added midway"
    );
    let v = svc.wait_state(&tok, &id, "incremental", T).await;
    let path: Vec<&str> = v["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["to"].as_str().unwrap_or_default())
        .collect();
    let edit_start = path.iter().position(|s| *s == "changing").unwrap();
    assert!(
        path[edit_start..].contains(&"recovering") && path.last() == Some(&"incremental"),
        "the kill should show as recovering within the edit: {path:?}\n{v:#}"
    );
    wait_writes(20).await;
    stop.store(true, Ordering::Relaxed);
    writer.await.unwrap();
    // a last change; once it is on the target, everything before it is too
    exec("INSERT INTO acct VALUES (9999999, 'last', 0);".into()).await;
    wait_rows(
        engine,
        &dst.url,
        "SELECT count(*) FROM acct WHERE id = 9999999",
        &["1"],
        "the last change never arrived",
        || svc.log(),
    )
    .await;
    let f = common::task_file(dir.path(), &src.url, &dst.url, "");
    let c = ferry(&["compare", &f]);
    assert!(
        c.status.success(),
        "source and target differ after the edit:\n{}\n{}",
        text(&c),
        svc.log()
    );
    assert!(
        text(&c).contains("extra") && text(&c).contains("notes"),
        "{}",
        text(&c)
    );

    // removing a table stops its replication; the others go on
    let (s, v) = svc
        .call(
            "POST",
            &format!("/api/v1/tasks/{id}/edit"),
            &tok,
            Some(json!({"objects": {"include": [format!("{schema}.extra")]}})),
        )
        .await;
    assert_eq!(s, 202, "{v}");
    svc.wait_state(&tok, &id, "incremental", T).await;
    exec("UPDATE acct SET owner = 'removed' WHERE id = 1; INSERT INTO extra (id, note, n) VALUES (9999999, 'kept', 0);".into()).await;
    wait_rows(
        engine,
        &dst.url,
        "SELECT count(*) FROM extra WHERE id = 9999999",
        &["1"],
        "extra stopped replicating",
        || svc.log(),
    )
    .await;
    assert_eq!(
        common::query_lines(engine, &dst.url, "SELECT owner FROM acct WHERE id = 1").await,
        ["o"],
        "a removed table still replicates"
    );
    svc.act(&tok, &id, "end").await;
    svc.wait_state(&tok, &id, "ended", T).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_sync_edit_adds_a_table_while_writes_continue() {
    a_sync_edit_adds_a_table_while_writes_continue("postgres").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn mariadb_sync_edit_adds_a_table_while_writes_continue() {
    a_sync_edit_adds_a_table_while_writes_continue("mysql").await;
}

/// Waits until a switchover requested on task `id` is done; returns the task.
async fn wait_for_switchover(svc: &Service, tok: &str, id: &str) -> Value {
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

/// Tries a write; returns the error text when it is refused.
async fn try_write(url: &str, sql: &str) -> Option<String> {
    let (c, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    c.batch_execute(sql).await.err().map(|e| format!("{e:?}"))
}

/// Writes in a session that turns the database's read-only default off (as Ferry's
/// own sessions do); returns the error text when it is refused.
async fn write_past_fence(url: &str, sql: &str) -> Option<String> {
    let (c, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    c.batch_execute("SET default_transaction_read_only = off")
        .await
        .unwrap();
    c.batch_execute(sql).await.err().map(|e| format!("{e:?}"))
}

/// DR: initializing → initialized → replicating; a switchover fences the primary,
/// waits for the standby and reverses the direction with no change lost; a failover
/// then promotes the (new) standby and reports what it holds.
#[tokio::test(flavor = "multi_thread")]
async fn dr_switchover_reverses_without_loss_and_failover_reports_the_window() {
    let dir = tempfile::tempdir().unwrap();
    let svc = Service::start(dir.path(), &[]).await;
    let tok = svc.tenant("acme", 100.0).await;
    let (primary, standby) = databases(5_000).await;
    let spec = format!(
        "name: dr\nkind: dr\nmode: full+incremental\nsource: {}\ntarget: {}\n",
        primary.url, standby.url
    );
    let id = svc.create(&tok, &spec, None).await;
    svc.wait_state(&tok, &id, "configuring", T).await;
    svc.act(&tok, &id, "start").await;
    let v = svc.wait_state(&tok, &id, "replicating", T).await;
    let seen: Vec<&str> = v["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["to"].as_str().unwrap())
        .collect();
    assert!(seen.contains(&"initialized"), "{seen:?}");
    // migration-only actions are refused on DR and vice versa
    let (s, _) = svc.act(&tok, &id, "edit").await;
    assert_eq!(s, 409);

    // the standby is read-only for applications while it replicates: a row written
    // there would never reach the primary (nor the reverse stream after a switchover)
    let refused = try_write(
        &standby.url,
        "INSERT INTO acct VALUES (9000001, 'written on the standby', 1)",
    )
    .await;
    assert!(
        refused.as_deref().unwrap_or_default().contains("read-only"),
        "the standby takes application writes while replicating: {refused:?}"
    );
    // the switchover compares both sides before it reports done: a difference made
    // past the fence (a session that turns read-only off) makes it refuse, naming
    // the table, and the primary stays the primary, writable
    assert_eq!(
        write_past_fence(
            &standby.url,
            "INSERT INTO acct VALUES (9000001, 'rogue', 1)"
        )
        .await,
        None
    );
    let (s, v) = svc.act(&tok, &id, "switchover").await;
    assert_eq!(s, 202, "{v}");
    let v = svc.wait_state(&tok, &id, "abnormal", T).await;
    let reason = v["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("switchover refused") && reason.contains("acct"),
        "{v:#}"
    );
    assert!(
        v["source"].as_str().unwrap().ends_with(&primary.name),
        "{v:#}"
    );
    assert_eq!(
        try_write(
            &primary.url,
            "INSERT INTO acct VALUES (7000000, 'still the primary', 1)"
        )
        .await,
        None
    );
    // repaired, the task goes on replicating (the standby fenced again)
    assert_eq!(
        write_past_fence(&standby.url, "DELETE FROM acct WHERE id = 9000001").await,
        None
    );
    let (s, v) = svc.act(&tok, &id, "start").await;
    assert_eq!(s, 202, "{v}");
    svc.wait_state(&tok, &id, "replicating", T).await;
    wait_rows(
        "postgres",
        &standby.url,
        "SELECT count(*) FROM acct WHERE id = 7000000",
        &["1"],
        "a change made while the task was abnormal never reached the standby",
        || svc.log(),
    )
    .await;
    assert!(
        try_write(&standby.url, "DELETE FROM acct WHERE id = 1")
            .await
            .unwrap_or_default()
            .contains("read-only"),
        "the standby takes application writes after a restart"
    );

    ferry_testkit::pg_exec(&primary.url, "INSERT INTO acct VALUES (7000001, 'before switch', 1); UPDATE acct SET balance = 2 WHERE id <= 10;").await;
    let (s, v) = svc.act(&tok, &id, "switchover").await;
    assert_eq!(s, 202, "{v}");
    let v = wait_for_switchover(&svc, &tok, &id).await;
    assert!(
        v["source"].as_str().unwrap().ends_with(&standby.name),
        "{v:#}"
    );
    // the old primary is fenced; the new one takes writes, which flow back
    let refused = try_write(
        &primary.url,
        "INSERT INTO acct VALUES (7000002, 'fenced', 1)",
    )
    .await;
    assert!(
        refused.as_deref().unwrap_or_default().contains("read-only"),
        "{refused:?}"
    );
    assert_eq!(
        try_write(
            &standby.url,
            "INSERT INTO acct VALUES (7000003, 'after switch', 1); DELETE FROM acct WHERE id = 20;"
        )
        .await,
        None
    );
    wait_rows(
        "postgres",
        &primary.url,
        "SELECT count(*) FROM acct WHERE id = 7000003",
        &["1"],
        "changes on the new primary never reached the old one",
        || svc.log(),
    )
    .await;
    compare_equal(dir.path(), &standby, &primary);

    // failover: the standby (the old primary) is promoted and says what it holds
    let (s, v) = svc.act(&tok, &id, "failover").await;
    assert_eq!(s, 202, "{v}");
    let v = svc.wait_state(&tok, &id, "ended", T).await;
    let reason = v["reason"].as_str().unwrap();
    assert!(
        reason.contains("failover done") && reason.contains("holds every change up to"),
        "{reason}"
    );
    // the old primary (reachable here) no longer keeps the task's slot
    assert_eq!(
        common::query_lines(
            "postgres",
            &standby.url,
            &format!("SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'ferry_{id}'"),
        )
        .await,
        ["0"],
        "{reason}"
    );
    assert_eq!(
        try_write(
            &primary.url,
            "INSERT INTO acct VALUES (7000004, 'promoted', 1)"
        )
        .await,
        None
    );
}

/// Tries a write as `user` (password `user`) on a MariaDB server; returns the error
/// text when it is refused.
async fn try_write_mariadb(srv: &ferry_testkit::Server, user: &str, sql: &str) -> Option<String> {
    use mysql_async::prelude::Queryable;
    let url = format!("mysql://{user}:{user}@{}:{}/shop", srv.host, srv.port);
    let mut c = mysql_async::Conn::from_url(url).await.unwrap();
    let r = c.query_drop(sql).await.err().map(|e| e.to_string());
    c.disconnect().await.ok();
    r
}

/// DR between two MariaDB servers: the switchover fences the old primary with
/// `read_only` (an application user's writes are refused there; Ferry's reversed
/// stream still applies), and the changes written on the new primary flow back.
#[tokio::test(flavor = "multi_thread")]
async fn mariadb_dr_switchover_fences_the_old_primary_with_read_only() {
    let dir = tempfile::tempdir().unwrap();
    let svc = Service::start(dir.path(), &[]).await;
    let tok = svc.tenant("acme", 100.0).await;
    let (primary, standby) = tokio::task::spawn_blocking(|| {
        (
            ferry_testkit::private_mariadb("dr_primary"),
            ferry_testkit::private_mariadb("dr_standby"),
        )
    })
    .await
    .unwrap();
    for srv in [&primary, &standby] {
        ferry_testkit::mysql_exec(
            &srv.url_for(""),
            "CREATE DATABASE shop; CREATE USER app@'%' IDENTIFIED BY 'app'; GRANT ALL ON shop.* TO app@'%';",
        )
        .await;
    }
    ferry_testkit::mysql_exec(
        &primary.url_for("shop"),
        "CREATE TABLE acct (id bigint PRIMARY KEY, owner varchar(40), balance int);
         INSERT INTO acct SELECT seq, 'o', 1 FROM seq_1_to_5000;",
    )
    .await;
    let spec = format!(
        "name: drm\nkind: dr\nmode: full+incremental\nsource: {}\ntarget: {}\n",
        primary.url_for("shop"),
        standby.url_for("shop")
    );
    let id = svc.create(&tok, &spec, None).await;
    svc.wait_state(&tok, &id, "configuring", T).await;
    svc.act(&tok, &id, "start").await;
    svc.wait_state(&tok, &id, "replicating", T).await;
    // the standby is read-only for applications while it replicates
    let refused = try_write_mariadb(
        &standby,
        "app",
        "INSERT INTO acct VALUES (9000001, 'written on the standby', 1)",
    )
    .await;
    assert!(
        refused.as_deref().unwrap_or_default().contains("read-only"),
        "the standby takes application writes while replicating: {refused:?}"
    );
    assert_eq!(
        try_write_mariadb(
            &primary,
            "app",
            "INSERT INTO acct VALUES (7000001, 'before switch', 1)"
        )
        .await,
        None
    );
    let (s, v) = svc.act(&tok, &id, "switchover").await;
    assert_eq!(s, 202, "{v}");
    wait_for_switchover(&svc, &tok, &id).await;
    let refused = try_write_mariadb(
        &primary,
        "app",
        "INSERT INTO acct VALUES (7000002, 'fenced', 1)",
    )
    .await;
    assert!(
        refused.as_deref().unwrap_or_default().contains("read-only"),
        "the old primary still takes application writes: {refused:?}"
    );
    assert_eq!(
        try_write_mariadb(
            &standby,
            "app",
            "INSERT INTO acct VALUES (7000003, 'after switch', 1); DELETE FROM acct WHERE id = 20;"
        )
        .await,
        None
    );
    wait_rows(
        "mysql",
        &primary.url_for("shop"),
        "SELECT count(*) FROM acct WHERE id IN (7000001, 7000003)",
        &["2"],
        "changes on the new primary never reached the old one",
        || svc.log(),
    )
    .await;
    let f = common::task_file(
        dir.path(),
        &standby.url_for("shop"),
        &primary.url_for("shop"),
        "",
    );
    let c = ferry(&["compare", &f]);
    assert!(
        c.status.success(),
        "source and target differ:\n{}",
        text(&c)
    );
    // ending the task lifts the fence: its standby (the old primary) is nobody's
    // standby any more and takes application writes again
    let (s, v) = svc.act(&tok, &id, "end").await;
    assert_eq!(s, 202, "{v}");
    let v = svc.wait_state(&tok, &id, "ended", T).await;
    assert!(
        v["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("writable again"),
        "{v:#}"
    );
    assert_eq!(
        try_write_mariadb(
            &primary,
            "app",
            "INSERT INTO acct VALUES (7000004, 'task ended', 1)"
        )
        .await,
        None
    );
}

async fn create_and_start(svc: &Service, tok: &str, spec: &str) -> String {
    let id = svc.create(tok, spec, None).await;
    svc.wait_state(tok, &id, "configuring", T).await;
    let (s, v) = svc.act(tok, &id, "start").await;
    assert_eq!(s, 202, "{v}");
    id
}

async fn drop_slot_when_idle(src: &Db, id: &str) {
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

/// The failure states, each through its real cause: a failed precheck
/// (start_failed), a value the target cannot hold (full_failed), a replication slot
/// lost while paused (incremental_failed, and abnormal for DR), an edit adding a table
/// the target already holds (change_failed, then `start` resumes with the old
/// objects), and ending while the source server is down (end_failed, then ended once
/// it is back; meanwhile the stream shows recovering).
#[tokio::test(flavor = "multi_thread")]
async fn failure_states_are_reached_by_their_real_causes() {
    let dir = tempfile::tempdir().unwrap();
    let svc = Service::start(dir.path(), &[]).await;
    let tok = svc.tenant("acme", 100.0).await;

    // start_failed: the target already holds the table
    let (src, dst) = databases(100).await;
    ferry_testkit::pg_exec(
        &dst.url,
        "CREATE TABLE acct (id bigint PRIMARY KEY); INSERT INTO acct VALUES (1);",
    )
    .await;
    let id = create_and_start(
        &svc,
        &tok,
        &spec("occupied", "full+incremental", &src, &dst),
    )
    .await;
    let v = svc.wait_state(&tok, &id, "start_failed", T).await;
    let r = v["reason"].as_str().unwrap();
    assert!(
        r.contains("precheck failed") && r.contains("existing_data"),
        "{r}"
    );

    // full_failed: NaN cannot go to MySQL/MariaDB
    let src2 = fresh("postgres", "nan_src").await;
    let dst2 = fresh("mysql", "nan_dst").await;
    ferry_testkit::pg_exec(&src2.url, "CREATE TABLE m (id int PRIMARY KEY, v double precision); INSERT INTO m VALUES (1, 1.5), (42, 'NaN');").await;
    let s2 = format!(
        "name: nan\nkind: migration\nmode: full\nsource: {}\ntarget: {}\n",
        src2.url, dst2.url
    );
    let id = create_and_start(&svc, &tok, &s2).await;
    let v = svc.wait_state(&tok, &id, "full_failed", T).await;
    assert!(v["reason"].as_str().unwrap().contains("row id=42"), "{v:#}");

    // incremental_failed: the slot is dropped while the task is paused
    let (src3, dst3) = databases(100).await;
    let id = create_and_start(&svc, &tok, &spec("lost", "full+incremental", &src3, &dst3)).await;
    svc.wait_state(&tok, &id, "incremental", T).await;
    svc.act(&tok, &id, "pause").await;
    svc.wait_state(&tok, &id, "paused", T).await;
    drop_slot_when_idle(&src3, &id).await;
    svc.act(&tok, &id, "resume").await;
    let v = svc.wait_state(&tok, &id, "incremental_failed", T).await;
    assert!(
        v["reason"].as_str().unwrap().contains("full resync"),
        "{v:#}"
    );

    // abnormal: the same for DR
    let (src4, dst4) = databases(100).await;
    let s4 = format!(
        "name: drlost\nkind: dr\nmode: full+incremental\nsource: {}\ntarget: {}\n",
        src4.url, dst4.url
    );
    let id = create_and_start(&svc, &tok, &s4).await;
    svc.wait_state(&tok, &id, "replicating", T).await;
    svc.act(&tok, &id, "pause").await;
    svc.wait_state(&tok, &id, "paused", T).await;
    drop_slot_when_idle(&src4, &id).await;
    svc.act(&tok, &id, "resume").await;
    let v = svc.wait_state(&tok, &id, "abnormal", T).await;
    assert!(
        v["reason"].as_str().unwrap().contains("full resync"),
        "{v:#}"
    );

    // change_failed: the added table already exists with rows on the target
    let (src5, dst5) = databases(100).await;
    ferry_testkit::pg_exec(
        &src5.url,
        "CREATE TABLE extra (id int PRIMARY KEY); INSERT INTO extra VALUES (1);",
    )
    .await;
    ferry_testkit::pg_exec(
        &dst5.url,
        "CREATE TABLE extra (id int PRIMARY KEY); INSERT INTO extra VALUES (99);",
    )
    .await;
    let s5 = format!(
        "name: edit\nkind: sync\nmode: full+incremental\nsource: {}\ntarget: {}\nobjects:\n  include: [\"public.acct\"]\n",
        src5.url, dst5.url
    );
    let id = create_and_start(&svc, &tok, &s5).await;
    svc.wait_state(&tok, &id, "incremental", T).await;
    let (s, v) = svc
        .call(
            "POST",
            &format!("/api/v1/tasks/{id}/edit"),
            &tok,
            Some(json!({"objects": {"include": ["public.*"]}})),
        )
        .await;
    assert_eq!(s, 202, "{v}");
    let v = svc.wait_state(&tok, &id, "change_failed", T).await;
    assert!(v["reason"].as_str().unwrap().contains("extra"), "{v:#}");
    svc.act(&tok, &id, "start").await;
    svc.wait_state(&tok, &id, "incremental", T).await;
    ferry_testkit::pg_exec(&src5.url, "INSERT INTO acct VALUES (5000001, 'after', 1);").await;
    wait_rows(
        "postgres",
        &dst5.url,
        "SELECT count(*) FROM acct WHERE id = 5000001",
        &["1"],
        "the old objects did not resume",
        || svc.log(),
    )
    .await;
    assert_eq!(
        common::query_lines("postgres", &dst5.url, "SELECT id FROM extra").await,
        ["99"],
        "the user's table is untouched"
    );

    // recovering, then end_failed while the source server is down, ended once it is back
    let server = ferry_testkit::private_postgres("svc_end");
    let src6_url = server.url_for("postgres");
    ferry_testkit::pg_exec(
        &src6_url,
        "CREATE TABLE acct (id bigint PRIMARY KEY, v int); INSERT INTO acct VALUES (1, 1);",
    )
    .await;
    let dst6 = fresh("postgres", "end_dst").await;
    let s6 = format!(
        "name: down\nkind: migration\nmode: full+incremental\nsource: {src6_url}\ntarget: {}\n",
        dst6.url
    );
    let id = create_and_start(&svc, &tok, &s6).await;
    svc.wait_state(&tok, &id, "incremental", T).await;
    let data = server.dir.clone().unwrap();
    ferry_testkit::stop_postgres(&data);
    svc.wait_state(&tok, &id, "recovering", T).await;
    svc.act(&tok, &id, "end").await;
    let v = svc.wait_state(&tok, &id, "end_failed", T).await;
    assert!(v["reason"].as_str().unwrap().contains("source"), "{v:#}");
    ferry_testkit::start_postgres(&data, server.port);
    let (s, _) = svc.act(&tok, &id, "end").await;
    assert_eq!(s, 202);
    svc.wait_state(&tok, &id, "ended", T).await;
    ferry_testkit::stop_postgres(&data);
}

/// The CLI is a client of the API: `ferry tenant …` with the admin token, `ferry task
/// …` with the tenant's, `-o json` for scripts, errors with the API's reason.
#[tokio::test(flavor = "multi_thread")]
async fn the_cli_drives_the_service() {
    let dir = tempfile::tempdir().unwrap();
    let svc = Service::start(dir.path(), &[]).await;
    let cli = |args: &[&str], token: Option<&str>| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_ferry"));
        c.args(args)
            .env("FERRY_SERVER", &svc.base)
            .env_remove("FERRY_TOKEN")
            .env_remove("FERRY_ADMIN_TOKEN");
        match token {
            Some(t) if t == ADMIN => c.env("FERRY_ADMIN_TOKEN", t),
            Some(t) => c.env("FERRY_TOKEN", t),
            None => &mut c,
        };
        c.output().unwrap()
    };
    let o = cli(
        &["tenant", "create", "cli", "--balance", "10", "-o", "json"],
        Some(ADMIN),
    );
    assert!(o.status.success(), "{}", text(&o));
    let tenant: Value = serde_json::from_slice(&o.stdout).unwrap();
    let tok = tenant["token"].as_str().unwrap().to_string();
    let o = cli(&["tenant", "create", "other"], Some(&tok));
    assert!(
        !o.status.success() && text(&o).contains("403"),
        "{}",
        text(&o)
    );

    let (src, dst) = databases(100).await;
    let file = dir.path().join("task.yaml");
    std::fs::write(&file, spec("viacli", "full", &src, &dst)).unwrap();
    let o = cli(
        &["task", "create", "-f", file.to_str().unwrap(), "-o", "json"],
        Some(&tok),
    );
    assert!(o.status.success(), "{}", text(&o));
    let task: Value = serde_json::from_slice(&o.stdout).unwrap();
    let id = task["id"].as_str().unwrap().to_string();
    assert_eq!(task["state"], "creating");
    assert!(!text(&o).contains("s3cret"));
    svc.wait_state(&tok, &id, "configuring", T).await;
    let o = cli(&["task", "start", &id], Some(&tok));
    assert!(o.status.success(), "{}", text(&o));
    svc.wait_state(&tok, &id, "ended", T).await;
    let o = cli(
        &[
            "task",
            "list",
            "--kind",
            "migration",
            "--since",
            "24h",
            "-o",
            "json",
        ],
        Some(&tok),
    );
    let list: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(list["total"], 1, "{list}");
    let o = cli(&["task", "show", &id], Some(&tok));
    let shown = text(&o);
    assert!(
        shown.contains("full copy finished") && shown.contains("events:"),
        "{shown}"
    );
    let o = cli(&["task", "pause", &id], Some(&tok));
    assert!(
        !o.status.success() && text(&o).contains("allowed: delete") && text(&o).contains("(409)"),
        "{}",
        text(&o)
    );
    let o = cli(&["task", "delete", &id], Some(&tok));
    assert!(o.status.success(), "{}", text(&o));
    let o = cli(&["tenant", "show", "cli", "-o", "json"], Some(&tok));
    let t: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(t["name"], "cli");
    let o = cli(&["task", "list"], None);
    assert!(
        !o.status.success() && text(&o).contains("401"),
        "{}",
        text(&o)
    );
}

/// Without a token the CLI names the variable the command reads: FERRY_ADMIN_TOKEN
/// for tenant administration, FERRY_TOKEN for tasks.
#[tokio::test(flavor = "multi_thread")]
async fn the_cli_names_the_token_variable_each_command_reads() {
    let dir = tempfile::tempdir().unwrap();
    let svc = Service::start(dir.path(), &[]).await;
    let cli = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_ferry"))
            .args(args)
            .env("FERRY_SERVER", &svc.base)
            .env_remove("FERRY_TOKEN")
            .env_remove("FERRY_ADMIN_TOKEN")
            .output()
            .unwrap()
    };
    for args in [
        &["tenant", "create", "acme"][..],
        &["tenant", "topup", "acme", "5"],
    ] {
        let o = cli(args);
        let t = text(&o);
        assert!(!o.status.success(), "{t}");
        assert!(
            t.contains("set FERRY_ADMIN_TOKEN") && t.contains("(401)"),
            "{t}"
        );
        assert!(!t.contains("FERRY_TOKEN "), "{t}");
    }
    let t = text(&cli(&["tenant", "show", "acme"]));
    assert!(
        t.contains("FERRY_ADMIN_TOKEN") && t.contains("FERRY_TOKEN "),
        "{t}"
    );
    let t = text(&cli(&["task", "list"]));
    assert!(t.contains("set FERRY_TOKEN") && t.contains("(401)"), "{t}");

    // text output reads as lines, not JSON
    svc.tenant("acme", 1.0).await;
    let o = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(["tenant", "show", "acme"])
        .env("FERRY_SERVER", &svc.base)
        .env("FERRY_ADMIN_TOKEN", ADMIN)
        .output()
        .unwrap();
    let t = text(&o);
    assert!(o.status.success() && t.contains("tasks:   none"), "{t}");
    assert!(!t.contains('{'), "{t}");
}

/// Bytes moved are metered too: at one unit per byte, copying a table uses up a
/// balance of 50,000 and freezes the task; the tenant's usage shows the charge.
#[tokio::test(flavor = "multi_thread")]
async fn moving_data_is_metered_per_gb() {
    let dir = tempfile::tempdir().unwrap();
    let svc = Service::start(
        dir.path(),
        &[
            "--price-task-hour",
            "0",
            "--price-gb",
            "1000000000",
            "--meter-every",
            "1",
        ],
    )
    .await;
    let tok = svc.tenant("bytes", 50_000.0).await;
    let (src, dst) = databases(20_000).await;
    let id = create_and_start(&svc, &tok, &spec("heavy", "full+incremental", &src, &dst)).await;
    let v = svc.wait_state(&tok, &id, "frozen", T).await;
    assert!(v["reason"].as_str().unwrap().contains("balance"), "{v}");
    let (_, t) = svc.call("GET", "/api/v1/tenants/bytes", &tok, None).await;
    assert!(t["usage"].as_f64().unwrap() >= 50_000.0, "{t}");
}

/// A task whose lag stays above the tenant's threshold is reported to its webhook.
#[tokio::test(flavor = "multi_thread")]
async fn sustained_lag_is_reported_to_the_webhook() {
    let dir = tempfile::tempdir().unwrap();
    let svc = Service::start_with(dir.path(), &[], &[("FERRY_WEBHOOK_ALLOW", "127.0.0.1")]).await;
    let tok = svc.tenant("laggy", 100.0).await;
    let (hook, mut heard) = webhook_sink().await;
    // any lag at all, for no time: the first sample with lag fires
    let (s, v) = svc
        .call(
            "PUT",
            "/api/v1/tenants/laggy/webhook",
            &tok,
            Some(json!({"url": hook, "lag_seconds": 0.000001, "lag_for_seconds": 0})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let (src, dst) = databases(100).await;
    let id = create_and_start(&svc, &tok, &spec("lag", "full+incremental", &src, &dst)).await;
    svc.wait_state(&tok, &id, "incremental", T).await;
    let t0 = Instant::now();
    let mut i = 0;
    let note = loop {
        i += 1;
        ferry_testkit::pg_exec(
            &src.url,
            &format!("UPDATE acct SET balance = {i} WHERE id = 1;"),
        )
        .await;
        if let Ok(Some(n)) = tokio::time::timeout(Duration::from_millis(50), heard.recv()).await {
            break n;
        }
        assert!(t0.elapsed() < T, "no lag notification\n{}", svc.log());
    };
    assert_eq!(note["event"], "lag_high", "{note}");
    assert_eq!(note["task"]["id"], id.as_str());
    assert!(
        note["detail"]["lag_seconds"].as_f64().unwrap() > 0.0,
        "{note}"
    );
}

/// A MariaDB target URL naming a database that does not exist yet passes the
/// service's endpoint validation, and starting the task creates the database.
#[tokio::test(flavor = "multi_thread")]
async fn a_missing_mariadb_target_database_is_validated_and_created() {
    let dir = tempfile::tempdir().unwrap();
    let svc = Service::start(dir.path(), &[]).await;
    let tok = svc.tenant("acme", 100.0).await;
    let (src, _) = databases(100).await;
    let name = ferry_testkit::unique_name("svc_newdb");
    let url = ferry_testkit::mariadb().url_for(&name);
    let dst = Db {
        url: url.clone(),
        name: name.clone(),
        // Ferry creates it; the test drops it when it passes
        guard: Some(ferry_testkit::TestDb::adopt("mysql", url, name.clone())),
    };
    let id = svc
        .create(&tok, &spec("newdb", "full", &src, &dst), None)
        .await;
    svc.wait_state(&tok, &id, "configuring", T).await;
    let (s, v) = svc.act(&tok, &id, "start").await;
    assert!(s < 300, "{v}");
    let v = svc.wait_state(&tok, &id, "ended", T).await;
    assert!(
        v["reason"].as_str().unwrap().contains("full copy finished"),
        "{v}"
    );
    let rows = common::query_lines("mysql", &dst.url, "SELECT count(*) FROM acct").await;
    assert_eq!(rows, vec!["100"]);
    ferry_testkit::mysql_exec(
        &ferry_testkit::mariadb().url_for(""),
        &format!("DROP DATABASE `{name}`"),
    )
    .await;
}
