//! Log backup on the service: the cluster's log backup task through its states
//! (starting → running, stop → stopped, start → running again, a service restart
//! resuming it), its latest backup point following the writes, a failing source
//! failing it with its reason and the `log_backup_failed` webhook, restorable
//! windows after a full set, marks, a point-in-time restore through the API, the
//! secondary copy of the log, tenants' isolation and bad input answered 400.

use crate::common::{fresh, query_lines};
use crate::harness::{Service, ADMIN, T};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

fn storage(dir: &std::path::Path, name: &str) -> String {
    format!("file://{}", dir.join(name).display())
}

/// Small pieces, so a test sees them stored soon.
const ENV: &[(&str, &str)] = &[
    ("FERRY_LOG_PIECE_SECONDS", "1"),
    ("FERRY_WEBHOOK_ALLOW", "127.0.0.1"),
];

async fn put_policy(svc: &Service, tok: &str, cluster: &str, body: Value) -> (u16, Value) {
    svc.call(
        "PUT",
        &format!("/api/v1/backup/policies/{cluster}"),
        tok,
        Some(body),
    )
    .await
}

/// Polls `path` until `done` says so; returns the last answer.
async fn wait_for(
    svc: &Service,
    tok: &str,
    path: &str,
    what: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let t0 = Instant::now();
    loop {
        let (s, v) = svc.call("GET", path, tok, None).await;
        assert_eq!(s, 200, "{path}: {v}");
        if done(&v) {
            return v;
        }
        assert!(
            t0.elapsed() < T * 2,
            "{path}: still not {what}: {v:#}\n{}",
            svc.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn wait_log(svc: &Service, tok: &str, cluster: &str, want: &[&str]) -> Value {
    let path = format!("/api/v1/backup/logs/{cluster}");
    let want: Vec<String> = want.iter().map(|s| s.to_string()).collect();
    wait_for(svc, tok, &path, &format!("{want:?}"), |v| {
        want.iter().any(|w| v["state"] == json!(w)) || v["state"] == "failed"
    })
    .await
}

/// Waits until the cluster's latest backup point is past `t`.
async fn wait_point_past(
    svc: &Service,
    tok: &str,
    cluster: &str,
    t: chrono::DateTime<chrono::Utc>,
) -> Value {
    let path = format!("/api/v1/backup/logs/{cluster}");
    wait_for(svc, tok, &path, "archived past the writes", |v| {
        v["latest_point"]
            .as_str()
            .and_then(|p| chrono::DateTime::parse_from_rfc3339(p).ok())
            .is_some_and(|p| p >= t)
    })
    .await
}

async fn wait_task(svc: &Service, tok: &str, path: &str, want: &[&str]) -> Value {
    let want: Vec<String> = want.iter().map(|s| s.to_string()).collect();
    wait_for(svc, tok, path, &format!("{want:?}"), |v| {
        want.iter().any(|w| v["state"] == json!(w))
    })
    .await
}

async fn pg_exec(url: &str, sql: &str) {
    ferry_testkit::pg_exec(url, sql).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_log_backup_runs_follows_writes_stops_starts_and_restores_to_a_mark() {
    let dir = tempfile::tempdir().unwrap();
    let mut svc = Service::start_with(dir.path(), &[], ENV).await;
    let tok = svc.tenant("lg-main", 10.0).await;
    let src = fresh("postgres", "lg_src").await;
    pg_exec(
        &src.url,
        "CREATE TABLE acct (id bigint PRIMARY KEY, note text);
         INSERT INTO acct SELECT g, 'base' FROM generate_series(1, 100) g;",
    )
    .await;
    let body = json!({
        "source": src.url,
        "storage": storage(dir.path(), "repo"),
        "secondary": storage(dir.path(), "offsite"),
        "log": true,
    });
    let (s, v) = put_policy(&svc, &tok, "lgshop", body).await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(
        (v["log"].clone(), v["log_method"].clone()),
        (json!(true), json!("logical"))
    );

    // starting → running
    let (s, l) = svc
        .call("GET", "/api/v1/backup/logs/lgshop", &tok, None)
        .await;
    assert_eq!(s, 200, "{l}");
    assert!(
        matches!(l["state"].as_str(), Some("starting" | "running")),
        "{l}"
    );
    let l = wait_log(&svc, &tok, "lgshop", &["running"]).await;
    assert_eq!(l["state"], "running", "{l:#}\n{}", svc.log());
    assert_eq!(l["state_label"], "进行中");
    assert!(l["host"].as_str().is_some_and(|h| !h.is_empty()), "{l}");
    assert!(
        l["storage_dir"]
            .as_str()
            .unwrap()
            .ends_with("clusters/lgshop/log"),
        "{l}"
    );

    // writes before the full set, the full set, writes after it
    pg_exec(
        &src.url,
        "INSERT INTO acct SELECT g, 'a' FROM generate_series(101, 150) g",
    )
    .await;
    let (s, t) = svc
        .call("POST", "/api/v1/backup/policies/lgshop/backups", &tok, None)
        .await;
    assert_eq!(s, 202, "{t}");
    let t = wait_task(
        &svc,
        &tok,
        &format!("/api/v1/backup/tasks/{}", t["id"].as_str().unwrap()),
        &["completed", "failed"],
    )
    .await;
    assert_eq!(t["state"], "completed", "{t:#}");
    pg_exec(
        &src.url,
        "INSERT INTO acct SELECT g, 'b' FROM generate_series(151, 200) g",
    )
    .await;
    let after_b = chrono::Utc::now();
    let l = wait_point_past(&svc, &tok, "lgshop", after_b).await;
    let latency = l["latency_seconds"].as_f64().unwrap();
    assert!((0.0..60.0).contains(&latency), "{l}");
    assert!(l["pieces"].as_i64().unwrap() >= 1, "{l}");

    // the window from the full set to the latest backup point
    let w = wait_for(
        &svc,
        &tok,
        "/api/v1/backup/policies/lgshop/windows",
        "a window",
        |v| v["windows"].as_array().is_some_and(|w| !w.is_empty()),
    )
    .await;
    assert_eq!(w["windows"][0]["from_set"], t["set_id"], "{w:#}");

    // a mark, then writes after it
    let (s, m) = svc
        .call(
            "POST",
            "/api/v1/backup/policies/lgshop/marks",
            &tok,
            Some(json!({"name": "before-c"})),
        )
        .await;
    assert_eq!(s, 201, "{m}");
    let (s, m2) = svc
        .call(
            "POST",
            "/api/v1/backup/policies/lgshop/marks",
            &tok,
            Some(json!({"name": "before-c"})),
        )
        .await;
    assert_eq!(s, 409, "{m2}");
    let (_, ms) = svc
        .call("GET", "/api/v1/backup/policies/lgshop/marks", &tok, None)
        .await;
    assert_eq!(ms["marks"][0]["name"], "before-c", "{ms}");
    pg_exec(
        &src.url,
        "INSERT INTO acct SELECT g, 'c' FROM generate_series(201, 230) g",
    )
    .await;
    let after_c = chrono::Utc::now();
    wait_point_past(&svc, &tok, "lgshop", after_c).await;

    // stop → stopped; start → running again
    let (s, v) = svc
        .call("POST", "/api/v1/backup/logs/lgshop/stop", &tok, None)
        .await;
    assert_eq!(s, 202, "{v}");
    assert!(
        matches!(v["state"].as_str(), Some("stopping" | "stopped")),
        "{v}"
    );
    let v = wait_log(&svc, &tok, "lgshop", &["stopped"]).await;
    assert_eq!(v["state"], "stopped", "{v:#}");
    let (s, v) = svc
        .call("POST", "/api/v1/backup/logs/lgshop/stop", &tok, None)
        .await;
    assert_eq!(s, 409, "{v}");
    let (s, v) = svc
        .call("POST", "/api/v1/backup/logs/lgshop/start", &tok, None)
        .await;
    assert_eq!(s, 202, "{v}");
    let v = wait_log(&svc, &tok, "lgshop", &["running"]).await;
    assert_eq!(v["state"], "running", "{v:#}");
    let (s, v) = svc
        .call("POST", "/api/v1/backup/logs/lgshop/start", &tok, None)
        .await;
    assert_eq!(s, 409, "{v}");

    // a killed service: the next one resumes the archive
    svc.kill();
    pg_exec(
        &src.url,
        "INSERT INTO acct SELECT g, 'd' FROM generate_series(231, 240) g",
    )
    .await;
    let after_d = chrono::Utc::now();
    svc.spawn().await;
    wait_point_past(&svc, &tok, "lgshop", after_d).await;
    let v = wait_log(&svc, &tok, "lgshop", &["running"]).await;
    assert_eq!(v["state"], "running", "{v:#}");

    // the log list (seed 004 columns), with the time filter
    let (s, list) = svc
        .call("GET", "/api/v1/backup/logs?since=24h", &tok, None)
        .await;
    assert_eq!(s, 200, "{list}");
    assert_eq!(list["total"], 1, "{list}");
    for k in [
        "cluster",
        "method",
        "host",
        "latest_point",
        "latency_seconds",
        "storage_dir",
        "state",
    ] {
        assert!(!list["tasks"][0][k].is_null(), "{k}: {list}");
    }

    // the secondary copy of the log
    let sec = wait_for(
        &svc,
        &tok,
        "/api/v1/backup/tasks?kind=secondary-log",
        "a completed log copy",
        |v| {
            v["tasks"]
                .as_array()
                .is_some_and(|t| t.iter().any(|t| t["state"] == "completed"))
        },
    )
    .await;
    assert!(
        sec["tasks"][0]["storage_dir"]
            .as_str()
            .is_some_and(|d| d.contains("offsite")),
        "{sec:#}"
    );
    assert!(dir
        .path()
        .join("offsite/clusters/lgshop/log/index")
        .is_dir());

    // point-in-time restore to the mark: a, b in; c, d not
    let dst = fresh("postgres", "lg_dst").await;
    let (s, r) = svc
        .call(
            "POST",
            "/api/v1/restores",
            &tok,
            Some(json!({"from_cluster": "lgshop", "until": "mark:before-c", "target": dst.url})),
        )
        .await;
    assert_eq!(s, 202, "{r}");
    let r = wait_task(
        &svc,
        &tok,
        &format!("/api/v1/restores/{}", r["id"].as_str().unwrap()),
        &["succeeded", "failed", "precheck_failed"],
    )
    .await;
    assert_eq!(r["state"], "succeeded", "{r:#}\n{}", svc.log());
    let n = query_lines(
        "postgres",
        &dst.url,
        "SELECT note, count(*) FROM acct GROUP BY note ORDER BY note",
    )
    .await;
    assert_eq!(n, vec!["a|50", "b|50", "base|100"], "{r:#}");

    // a point outside every window: precheck_failed
    let (s, r) = svc
        .call(
            "POST",
            "/api/v1/restores",
            &tok,
            Some(json!({"from_cluster": "lgshop", "until": "2001-01-01T00:00:00Z", "target": dst.url, "existing_data": "drop"})),
        )
        .await;
    assert_eq!(s, 202, "{r}");
    let r = wait_task(
        &svc,
        &tok,
        &format!("/api/v1/restores/{}", r["id"].as_str().unwrap()),
        &["succeeded", "failed", "precheck_failed"],
    )
    .await;
    assert_eq!(r["state"], "precheck_failed", "{r:#}");

    // log off in the policy stops it
    let body = json!({
        "source": src.url,
        "storage": storage(dir.path(), "repo"),
        "log": false,
    });
    assert_eq!(put_policy(&svc, &tok, "lgshop", body).await.0, 200);
    let v = wait_log(&svc, &tok, "lgshop", &["stopped"]).await;
    assert_eq!(v["state"], "stopped", "{v:#}");
    drop(svc);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_log_backup_whose_source_refuses_it_fails_with_its_reason_and_a_webhook() {
    let dir = tempfile::tempdir().unwrap();
    let svc = Service::start_with(dir.path(), &[], ENV).await;
    let tok = svc.tenant("lg-fail", 10.0).await;
    let (hook, mut heard) = crate::harness::webhook_sink().await;
    let (s, v) = svc
        .call(
            "PUT",
            "/api/v1/tenants/lg-fail/webhook",
            &tok,
            Some(json!({"url": hook})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let src = fresh("postgres", "lg_bad").await;
    // the right server and user, a database that is not there (the test servers
    // trust local users, so a wrong password would not do)
    let mut url = url::Url::parse(&src.url).unwrap();
    url.set_path(&format!("{}_gone", src.name));
    url.set_password(Some("a-secret-pw")).unwrap();
    let body =
        json!({"source": url.to_string(), "storage": storage(dir.path(), "repo"), "log": true});
    assert_eq!(put_policy(&svc, &tok, "lgbad", body).await.0, 201);
    let l = wait_log(&svc, &tok, "lgbad", &["failed"]).await;
    assert_eq!(l["state"], "failed", "{l:#}");
    let reason = l["reason"].as_str().unwrap();
    assert!(reason.contains("does not exist"), "{l:#}");
    assert!(!reason.contains("a-secret-pw"), "{l:#}");
    let event = tokio::time::timeout(T, async {
        loop {
            let e = heard.recv().await.expect("webhook channel");
            if e["event"] == "log_backup_failed" {
                return e;
            }
        }
    })
    .await
    .expect("no log_backup_failed webhook");
    assert_eq!(event["task"]["cluster"], "lgbad", "{event}");
    assert!(event["task"]["reason"]
        .as_str()
        .unwrap()
        .contains("does not exist"));
    // a failed one can be started again (and fails again, the source unchanged)
    let (s, v) = svc
        .call("POST", "/api/v1/backup/logs/lgbad/start", &tok, None)
        .await;
    assert_eq!(s, 202, "{v}");
    assert_eq!(v["state"], "starting", "{v}");
    assert!(v["reason"].is_null(), "{v}");
}

#[tokio::test]
async fn log_lists_are_each_tenants_own_and_bad_input_is_a_400() {
    let dir = tempfile::tempdir().unwrap();
    // no worker: the rows stay as the API leaves them
    let svc = Service::start_with(dir.path(), &["--no-worker"], ENV).await;
    let a = svc.tenant("lg-a", 10.0).await;
    let b = svc.tenant("lg-b", 10.0).await;
    let body = json!({
        "source": "postgres://u:pw@127.0.0.1:1/none",
        "storage": storage(dir.path(), "a"),
        "log": true,
    });
    let (s, v) = put_policy(&svc, &a, "lg-a-shop", body.clone()).await;
    assert_eq!(s, 201, "{v}");
    let (_, la) = svc.call("GET", "/api/v1/backup/logs", &a, None).await;
    assert_eq!(la["total"], 1, "{la}");
    assert_eq!(la["tasks"][0]["state"], "starting", "{la}");
    assert_eq!(la["tasks"][0]["state_label"], "启动中", "{la}");
    let (_, lb) = svc.call("GET", "/api/v1/backup/logs", &b, None).await;
    assert_eq!(lb["total"], 0, "{lb}");
    let (_, ladmin) = svc.call("GET", "/api/v1/backup/logs", ADMIN, None).await;
    assert_eq!(ladmin["total"], 1, "{ladmin}");
    for (m, p) in [
        ("GET", "/api/v1/backup/logs/lg-a-shop"),
        ("POST", "/api/v1/backup/logs/lg-a-shop/stop"),
        ("POST", "/api/v1/backup/logs/lg-a-shop/start"),
        ("GET", "/api/v1/backup/policies/lg-a-shop/windows"),
        ("GET", "/api/v1/backup/policies/lg-a-shop/marks"),
    ] {
        let (s, v) = svc.call(m, p, &b, None).await;
        assert_eq!(s, 404, "{m} {p}: {v}");
    }
    let (s, v) = svc
        .call(
            "POST",
            "/api/v1/restores",
            &b,
            Some(json!({"from_cluster": "lg-a-shop", "until": "2026-12-01T10:15:00Z", "target": "postgres://u@127.0.0.1/x"})),
        )
        .await;
    assert_eq!(s, 404, "{v}");

    // bad input: 400 naming the field
    let mut bad = body.clone();
    bad["log_method"] = json!("wal");
    let (s, v) = put_policy(&svc, &a, "lg-a-shop", bad).await;
    assert_eq!((s, v["field"].clone()), (400, json!("log_method")), "{v}");
    let mut bad = body.clone();
    bad["source"] = json!("mysql://u@127.0.0.1:3306/x");
    bad["log_method"] = json!("physical");
    let (s, v) = put_policy(&svc, &a, "lg-a-shop", bad).await;
    assert_eq!((s, v["field"].clone()), (400, json!("log_method")), "{v}");
    let mut bad = body.clone();
    bad["log"] = json!("sometimes");
    let (s, v) = put_policy(&svc, &a, "lg-a-shop", bad).await;
    assert_eq!(s, 400, "{v}");
    for (q, field) in [("since=week", "since"), ("limit=0", "limit")] {
        let (s, v) = svc
            .call("GET", &format!("/api/v1/backup/logs?{q}"), &a, None)
            .await;
        assert_eq!((s, v["field"].clone()), (400, json!(field)), "{q}: {v}");
    }
    for (body, field) in [
        (
            json!({"from_cluster": "lg-a-shop", "target": "postgres://u@127.0.0.1/x"}),
            "until",
        ),
        (
            json!({"until": "2026-12-01T10:15:00Z", "target": "postgres://u@127.0.0.1/x"}),
            "from_cluster",
        ),
        (
            json!({"from_cluster": "lg-a-shop", "until": "yesterday", "target": "postgres://u@127.0.0.1/x"}),
            "until",
        ),
        (
            json!({"from_cluster": "lg-a-shop", "until": "mark:../x", "target": "postgres://u@127.0.0.1/x"}),
            "until",
        ),
        (
            json!({"from_cluster": "Bad Name", "until": "2026-12-01T10:15:00Z", "target": "postgres://u@127.0.0.1/x"}),
            "from_cluster",
        ),
        (
            json!({"from_cluster": "lg-a-shop", "from_set": "20200101T000000Z-f0000", "until": "2026-12-01T10:15:00Z", "target": "postgres://u@127.0.0.1/x"}),
            "from_cluster",
        ),
    ] {
        let (s, v) = svc
            .call("POST", "/api/v1/restores", &a, Some(body.clone()))
            .await;
        assert_eq!((s, v["field"].clone()), (400, json!(field)), "{body}: {v}");
    }
    for name in ["../x", "", ".hidden", "a b"] {
        let (s, v) = svc
            .call(
                "POST",
                "/api/v1/backup/policies/lg-a-shop/marks",
                &a,
                Some(json!({"name": name})),
            )
            .await;
        assert_eq!(
            (s, v["field"].clone()),
            (400, json!("name")),
            "{name:?}: {v}"
        );
    }
    let (s, v) = svc
        .call(
            "POST",
            "/api/v1/backup/policies/lg-a-shop/marks",
            &a,
            Some(json!({"nom": "x"})),
        )
        .await;
    assert_eq!(s, 400, "{v}");
    // stop a starting one; stopping twice is refused
    let (s, v) = svc
        .call("POST", "/api/v1/backup/logs/lg-a-shop/stop", &a, None)
        .await;
    assert_eq!((s, v["state"].clone()), (202, json!("stopping")), "{v}");
    let (s, v) = svc
        .call("POST", "/api/v1/backup/logs/lg-a-shop/stop", &a, None)
        .await;
    assert_eq!(s, 409, "{v}");
    // windows of a cluster whose storage holds nothing yet: none
    let (s, v) = svc
        .call("GET", "/api/v1/backup/policies/lg-a-shop/windows", &a, None)
        .await;
    assert_eq!((s, v["windows"].clone()), (200, json!([])), "{v}");
    // the OpenAPI document has the new routes
    let (_, doc) = svc.call("GET", "/api/v1/openapi.json", &a, None).await;
    for p in [
        "/api/v1/backup/logs",
        "/api/v1/backup/logs/{cluster}/start",
        "/api/v1/backup/logs/{cluster}/stop",
        "/api/v1/backup/policies/{cluster}/windows",
        "/api/v1/backup/policies/{cluster}/marks",
    ] {
        assert!(
            !doc["paths"][p].is_null(),
            "{p} not in the OpenAPI document"
        );
    }
}

#[tokio::test]
async fn the_log_backup_cli_drives_the_service() {
    let dir = tempfile::tempdir().unwrap();
    // no worker: the task stays where the commands put it
    let svc = Service::start_with(dir.path(), &["--no-worker"], ENV).await;
    let tok = svc.tenant("lg-cli", 10.0).await;
    let cli = |args: &[&str]| {
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_ferry"))
            .args(args)
            .env("FERRY_SERVER", &svc.base)
            .env("FERRY_TOKEN", &tok)
            .env_remove("FERRY_ADMIN_TOKEN")
            .env("FERRY_LOG", "warn")
            .output()
            .unwrap();
        (
            o.status.success(),
            String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr),
        )
    };
    let repo = storage(dir.path(), "repo");
    let src = "postgres://u:pw@127.0.0.1:1/none";
    let set = |log: &str| {
        cli(&[
            "backup",
            "policy",
            "set",
            "lgcli",
            "--source",
            src,
            "--storage",
            &repo,
            "--log",
            log,
        ])
    };
    let (ok, out) = set("maybe");
    assert!(!ok && out.contains("--log"), "{out}");
    let (ok, out) = set("on");
    assert!(ok && out.contains("log backup:  on (logical)"), "{out}");
    let (ok, out) = cli(&["backup", "list", "lgcli", "--kind", "log"]);
    assert!(
        ok && out.contains("lgcli") && out.contains("starting"),
        "{out}"
    );
    let (ok, out) = cli(&["backup", "log", "stop", "lgcli"]);
    assert!(ok && out.contains("stopping"), "{out}");
    let (ok, out) = cli(&["backup", "log", "stop", "lgcli"]);
    assert!(
        !ok && out.contains("only a starting or running one stops"),
        "{out}"
    );
    let (ok, out) = cli(&[
        "backup", "list", "--kind", "log", "--since", "24h", "-o", "json",
    ]);
    assert!(ok, "{out}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["tasks"][0]["state"], "stopping", "{v}");
    let (ok, out) = cli(&["backup", "list", "lgcli", "--kind", "window"]);
    assert!(ok && out.contains("no restorable window"), "{out}");
    let (ok, out) = cli(&["backup", "list", "lgcli", "--kind", "mark"]);
    assert!(ok && out.contains("no marks"), "{out}");
    let (ok, out) = cli(&["backup", "list", "lgcli", "--kind", "secondary-log"]);
    assert!(ok && out.contains("no tasks"), "{out}");
    let (ok, out) = cli(&["backup", "mark", "lgcli", "../bad"]);
    assert!(!ok && out.contains("name"), "{out}");
    // a point-in-time restore: a restore task without --storage
    let (ok, out) = cli(&[
        "restore",
        "create",
        "--from",
        "lgcli",
        "--until",
        "2026-12-01T10:15:00Z",
        "--target",
        "postgres://u@127.0.0.1:1/target",
    ]);
    assert!(ok && out.contains("prechecking"), "{out}");
    let (_, list) = svc.call("GET", "/api/v1/restores", &tok, None).await;
    assert_eq!(
        list["tasks"][0]["detail"]["from_cluster"], "lgcli",
        "{list}"
    );
    assert_eq!(
        list["tasks"][0]["detail"]["until"], "2026-12-01T10:15:00Z",
        "{list}"
    );
    let (ok, out) = cli(&[
        "restore",
        "create",
        "--from",
        "lgcli",
        "--until",
        "whenever",
        "--target",
        "postgres://u@127.0.0.1:1/target",
    ]);
    assert!(!ok && out.contains("until"), "{out}");
}

/// Takes an instant full backup of `cluster` and waits for it to complete.
async fn full_backup(svc: &Service, tok: &str, cluster: &str) -> Value {
    let (s, t) = svc
        .call(
            "POST",
            &format!("/api/v1/backup/policies/{cluster}/backups"),
            tok,
            None,
        )
        .await;
    assert_eq!(s, 202, "{t}");
    let t = wait_task(
        svc,
        tok,
        &format!("/api/v1/backup/tasks/{}", t["id"].as_str().unwrap()),
        &["completed", "failed"],
    )
    .await;
    assert_eq!(t["state"], "completed", "{t:#}");
    t
}

fn pieces_in(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir)
        .map(|d| d.filter(|e| e.is_ok()).count())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread")]
async fn cleanup_removes_the_log_pieces_no_kept_window_needs() {
    let dir = tempfile::tempdir().unwrap();
    let svc = Service::start_with(dir.path(), &[], ENV).await;
    let tok = svc.tenant("lg-clean", 10.0).await;
    let src = fresh("postgres", "lg_clean").await;
    pg_exec(
        &src.url,
        "CREATE TABLE acct (id bigint PRIMARY KEY, note text);
         INSERT INTO acct SELECT g, 'base' FROM generate_series(1, 10) g;",
    )
    .await;
    // keep one set: every piece before the newest full set's position can go
    let body = json!({"source": src.url, "storage": storage(dir.path(), "repo"), "log": true, "retain": "1"});
    assert_eq!(put_policy(&svc, &tok, "lgclean", body).await.0, 201);
    assert_eq!(
        wait_log(&svc, &tok, "lgclean", &["running"]).await["state"],
        "running"
    );
    pg_exec(&src.url, "INSERT INTO acct VALUES (11, 'a')").await;
    let t = chrono::Utc::now();
    wait_point_past(&svc, &tok, "lgclean", t).await;
    full_backup(&svc, &tok, "lgclean").await;
    pg_exec(&src.url, "INSERT INTO acct VALUES (12, 'b')").await;
    let t = chrono::Utc::now();
    wait_point_past(&svc, &tok, "lgclean", t).await;
    let index = dir.path().join("repo/clusters/lgclean/log/index");
    let pieces = dir.path().join("repo/clusters/lgclean/log/pieces");
    // the piece of the write after the first set stored (the one before it went
    // with the cleanup that followed the set)
    let t0 = Instant::now();
    while pieces_in(&index) < 1 {
        assert!(
            t0.elapsed() < T,
            "{} pieces\n{}",
            pieces_in(&index),
            svc.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // the second full set: its cleanup removes the pieces before it
    let second = full_backup(&svc, &tok, "lgclean").await;
    pg_exec(&src.url, "INSERT INTO acct VALUES (13, 'c')").await;
    let t = chrono::Utc::now();
    wait_point_past(&svc, &tok, "lgclean", t).await;
    let (s, c) = svc
        .call(
            "POST",
            "/api/v1/backup/policies/lgclean/cleanups",
            &tok,
            None,
        )
        .await;
    assert_eq!(s, 202, "{c}");
    let c = wait_task(
        &svc,
        &tok,
        &format!("/api/v1/backup/tasks/{}", c["id"].as_str().unwrap()),
        &["completed", "failed"],
    )
    .await;
    assert_eq!(c["state"], "completed", "{c:#}");
    let (_, all) = svc
        .call("GET", "/api/v1/backup/tasks?kind=cleanup", &tok, None)
        .await;
    let removed: u64 = all["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["detail"]["log_pieces_removed"].as_u64())
        .sum();
    assert!(removed >= 2, "{all:#}");
    assert_eq!(pieces_in(&index), pieces_in(&pieces), "entries and pieces");
    // the window of the kept set is whole
    let (_, w) = svc
        .call("GET", "/api/v1/backup/policies/lgclean/windows", &tok, None)
        .await;
    let ws = w["windows"].as_array().unwrap();
    assert_eq!(ws.len(), 1, "{w:#}");
    assert_eq!(ws[0]["from_set"], second["set_id"], "{w:#}");
}
