//! Backup and restore on the service: policies (CRUD, every bad field a 400 naming
//! it), schedules that fire (and a missed one run once on start), data backup tasks
//! that complete, cleanup keeping a needed chain, restore tasks through their states
//! (and precheck_failed with its reason), tenants' isolation and the time filters.

use crate::common::{fresh, query_lines};
use crate::harness::{Service, ADMIN, T};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// A source nothing listens on: its backups fail at once (for tests of the
/// scheduler and the lists that need no database).
const NOWHERE: &str = "postgres://postgres:pw@127.0.0.1:1/none";

fn storage(dir: &std::path::Path, name: &str) -> String {
    format!("file://{}", dir.join(name).display())
}

async fn put_policy(svc: &Service, tok: &str, cluster: &str, body: Value) -> (u16, Value) {
    svc.call(
        "PUT",
        &format!("/api/v1/backup/policies/{cluster}"),
        tok,
        Some(body),
    )
    .await
}

async fn tasks(svc: &Service, tok: &str, query: &str) -> Vec<Value> {
    let (s, v) = svc
        .call("GET", &format!("/api/v1/backup/tasks?{query}"), tok, None)
        .await;
    assert_eq!(s, 200, "{v}");
    v["tasks"].as_array().unwrap().clone()
}

/// Waits until task `id` (at `path`) is in one of `want`; returns it.
async fn wait_task(svc: &Service, tok: &str, path: &str, want: &[&str]) -> Value {
    let t0 = Instant::now();
    loop {
        let (s, v) = svc.call("GET", path, tok, None).await;
        assert_eq!(s, 200, "{v}");
        if want.contains(&v["state"].as_str().unwrap_or_default()) {
            return v;
        }
        assert!(
            t0.elapsed() < T * 2,
            "{path} still {} ({}):\n{}",
            v["state"],
            v["reason"],
            svc.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A 6-field cron firing once, `secs` seconds from now (UTC).
fn cron_in(secs: i64) -> String {
    let t = chrono::Utc::now() + chrono::Duration::seconds(secs);
    use chrono::Timelike;
    format!("{} {} {} * * *", t.second(), t.minute(), t.hour())
}

#[tokio::test]
async fn policies_are_created_shown_replaced_and_deleted_and_bad_fields_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let svc = Service::start(dir.path(), &[]).await;
    let tok = svc.tenant("bk-crud", 10.0).await;
    let good = json!({
        "source": "postgres://u:topsecret@127.0.0.1:5432/shop",
        "storage": storage(dir.path(), "repo"),
        "full": "0 2 * * 0",
        "incremental": "0 2 * * 1-6",
        "retain": "30d",
    });
    let (s, v) = put_policy(&svc, &tok, "shop", good.clone()).await;
    assert_eq!(s, 201, "{v}");
    assert!(!v.to_string().contains("topsecret"), "{v}");
    assert_eq!(v["full"], "0 2 * * 0");
    assert!(
        v["next_full"].as_str().unwrap().contains("T02:00:00"),
        "{v}"
    );
    // replaced
    let mut changed = good.clone();
    changed["retain"] = json!("7");
    let (s, v) = put_policy(&svc, &tok, "shop", changed).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["retain"], "7");
    let (s, v) = svc
        .call("GET", "/api/v1/backup/policies/shop", &tok, None)
        .await;
    assert_eq!((s, v["retain"].clone()), (200, json!("7")), "{v}");
    let (s, v) = svc.call("GET", "/api/v1/backup/policies", &tok, None).await;
    assert_eq!(s, 200);
    assert_eq!(v["policies"].as_array().unwrap().len(), 1);
    // every bad field: 400 naming it
    for (field, value) in [
        ("full", json!("every sunday")),
        ("incremental", json!("0 2 * *")),
        ("retain", json!("forever")),
        ("source", json!("oracle://x/y")),
        ("storage", json!("ftp://host/dir")),
        ("secondary", json!("relative/dir")),
        ("drill", json!("61 * * * *")),
    ] {
        let mut b = good.clone();
        b[field] = value;
        if field == "drill" {
            b["drill_target"] = json!("postgres://u@127.0.0.1/scratch");
        }
        let (s, v) = put_policy(&svc, &tok, "shop", b).await;
        assert_eq!(s, 400, "{field}: {v}");
        assert_eq!(v["field"], field, "{v}");
        assert!(v["error"].as_str().unwrap().starts_with(field), "{v}");
    }
    let (s, v) = put_policy(&svc, &tok, "Bad Name", good.clone()).await;
    assert_eq!((s, v["field"].clone()), (400, json!("cluster")), "{v}");
    let (s, v) = svc
        .call(
            "POST",
            "/api/v1/backup/policies/shop/backups",
            &tok,
            Some(json!({"type": "differential"})),
        )
        .await;
    assert_eq!((s, v["field"].clone()), (400, json!("type")), "{v}");
    // unknown cluster: 404
    for (m, p) in [
        ("GET", "/api/v1/backup/policies/nope"),
        ("DELETE", "/api/v1/backup/policies/nope"),
        ("POST", "/api/v1/backup/policies/nope/backups"),
    ] {
        let (s, v) = svc.call(m, p, &tok, None).await;
        assert_eq!(s, 404, "{m} {p}: {v}");
    }
    let (s, _) = svc
        .call("DELETE", "/api/v1/backup/policies/shop", &tok, None)
        .await;
    assert_eq!(s, 204);
    let (s, _) = svc
        .call("GET", "/api/v1/backup/policies/shop", &tok, None)
        .await;
    assert_eq!(s, 404);
}

#[tokio::test]
async fn a_tenant_sees_only_its_own_policies_and_tasks() {
    let dir = tempfile::tempdir().unwrap();
    let svc = Service::start(dir.path(), &[]).await;
    let a = svc.tenant("bk-a", 10.0).await;
    let b = svc.tenant("bk-b", 10.0).await;
    let body = json!({"source": NOWHERE, "storage": storage(dir.path(), "a")});
    assert_eq!(put_policy(&svc, &a, "a-shop", body.clone()).await.0, 201);
    let (s, t) = svc
        .call("POST", "/api/v1/backup/policies/a-shop/backups", &a, None)
        .await;
    assert_eq!(s, 202, "{t}");
    // b sees none of it, and cannot take the name
    let (s, _) = svc
        .call("GET", "/api/v1/backup/policies/a-shop", &b, None)
        .await;
    assert_eq!(s, 404);
    let (_, v) = svc.call("GET", "/api/v1/backup/policies", &b, None).await;
    assert_eq!(v["policies"], json!([]));
    assert!(tasks(&svc, &b, "kind=data").await.is_empty());
    let (s, _) = svc
        .call(
            "GET",
            &format!("/api/v1/backup/tasks/{}", t["id"].as_str().unwrap()),
            &b,
            None,
        )
        .await;
    assert_eq!(s, 404);
    let (s, _) = svc
        .call("POST", "/api/v1/backup/policies/a-shop/backups", &b, None)
        .await;
    assert_eq!(s, 404);
    let (s, v) = put_policy(&svc, &b, "a-shop", body.clone()).await;
    assert_eq!(s, 409, "{v}");
    // a tenant naming another: 403; the admin sees everything
    let mut other = body.clone();
    other["tenant"] = json!("bk-a");
    assert_eq!(put_policy(&svc, &b, "b-shop", other).await.0, 403);
    let (_, v) = svc
        .call("GET", "/api/v1/backup/policies", ADMIN, None)
        .await;
    assert_eq!(v["policies"].as_array().unwrap().len(), 1);
    assert_eq!(tasks(&svc, ADMIN, "kind=data").await.len(), 1);
    assert_eq!(tasks(&svc, &a, "kind=data").await.len(), 1);
}

#[tokio::test]
async fn lists_filter_by_time_and_kind() {
    let dir = tempfile::tempdir().unwrap();
    let svc = Service::start(dir.path(), &[]).await;
    let tok = svc.tenant("bk-time", 10.0).await;
    let body = json!({"source": NOWHERE, "storage": storage(dir.path(), "r")});
    assert_eq!(put_policy(&svc, &tok, "timed", body).await.0, 201);
    let (s, t) = svc
        .call(
            "POST",
            "/api/v1/backup/policies/timed/backups",
            &tok,
            Some(json!({"type": "full"})),
        )
        .await;
    assert_eq!(s, 202, "{t}");
    let id = t["id"].as_str().unwrap().to_string();
    // the source is unreachable: failed, with the reason
    let t = wait_task(
        &svc,
        &tok,
        &format!("/api/v1/backup/tasks/{id}"),
        &["failed"],
    )
    .await;
    assert!(!t["reason"].is_null(), "{t}");
    assert!(!t["reason"].as_str().unwrap().contains("pw@"), "{t}");
    assert_eq!(t["type"], "full");
    assert_eq!(t["method"], "logical");
    let ids = |v: Vec<Value>| {
        v.iter()
            .map(|t| t["id"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        ids(tasks(&svc, &tok, "kind=data&since=24h").await),
        vec![id.clone()]
    );
    assert_eq!(
        ids(tasks(&svc, &tok, "kind=data&since=30d&cluster=timed").await),
        vec![id.clone()]
    );
    assert!(tasks(&svc, &tok, "kind=data&cluster=other")
        .await
        .is_empty());
    assert!(tasks(&svc, &tok, "kind=cleanup").await.is_empty());
    assert!(tasks(&svc, &tok, "kind=data&from=2020-01-01&to=2020-02-01")
        .await
        .is_empty());
    assert!(tasks(&svc, &tok, "kind=data&from=2099-01-01")
        .await
        .is_empty());
    assert_eq!(
        ids(tasks(&svc, &tok, "kind=data&from=2020-01-01&to=2099-01-01").await),
        vec![id]
    );
    for (q, field) in [
        ("since=week", "since"),
        ("since=7d&from=2020-01-01", "since"),
        ("from=yesterday", "from"),
        ("kind=everything", "kind"),
        ("from=2026-02-01&to=2026-01-01", "to"),
    ] {
        let (s, v) = svc
            .call("GET", &format!("/api/v1/backup/tasks?{q}"), &tok, None)
            .await;
        assert_eq!((s, v["field"].clone()), (400, json!(field)), "{q}: {v}");
    }
}

#[tokio::test]
async fn a_schedule_missed_while_the_service_was_down_runs_once_on_start() {
    let dir = tempfile::tempdir().unwrap();
    let mut svc = Service::start(dir.path(), &[]).await;
    let tok = svc.tenant("bk-missed", 10.0).await;
    // every 2 seconds; the service is down for 8: four slots missed
    let body =
        json!({"source": NOWHERE, "storage": storage(dir.path(), "r"), "full": "*/2 * * * * *"});
    assert_eq!(put_policy(&svc, &tok, "missed", body).await.0, 201);
    svc.kill();
    tokio::time::sleep(Duration::from_secs(8)).await;
    svc.spawn().await;
    let t0 = Instant::now();
    loop {
        let all = tasks(&svc, &tok, "kind=data&limit=500").await;
        if !all.is_empty() {
            break;
        }
        assert!(t0.elapsed() < T, "nothing ran on start:\n{}", svc.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // a few more regular slots go by
    tokio::time::sleep(Duration::from_secs(3)).await;
    let all = tasks(&svc, &tok, "kind=data&limit=500").await;
    let catch_up: Vec<&Value> = all
        .iter()
        .filter(|t| t["detail"]["trigger"] == "catch-up")
        .collect();
    assert_eq!(catch_up.len(), 1, "{all:#?}");
    // and the regular slots after it are at most one per slot
    assert!(all.len() <= 6, "{all:#?}");
}

/// A PostgreSQL source with rows in `acct`.
async fn pg_source(rows: u64) -> crate::common::Db {
    let src = fresh("postgres", "bk_src").await;
    ferry_testkit::pg_exec(
        &src.url,
        &format!(
            "CREATE TABLE acct (id bigint PRIMARY KEY, owner text, balance int);
             INSERT INTO acct SELECT g, 'o' || g, g FROM generate_series(1, {rows}) g;"
        ),
    )
    .await;
    src
}

#[tokio::test]
async fn a_schedule_fires_a_backup_that_completes_then_restores_through_its_states() {
    let dir = tempfile::tempdir().unwrap();
    let svc = Service::start(dir.path(), &[]).await;
    let tok = svc.tenant("bk-sched", 10.0).await;
    let src = pg_source(500).await;
    let body = json!({
        "source": src.url,
        "storage": storage(dir.path(), "repo"),
        "secondary": storage(dir.path(), "offsite"),
        "full": cron_in(4),
    });
    assert_eq!(put_policy(&svc, &tok, "sched", body).await.0, 201);
    let t0 = Instant::now();
    let id = loop {
        if let Some(t) = tasks(&svc, &tok, "kind=data").await.first() {
            break t["id"].as_str().unwrap().to_string();
        }
        assert!(
            t0.elapsed() < T,
            "the schedule did not fire:\n{}",
            svc.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let t = wait_task(
        &svc,
        &tok,
        &format!("/api/v1/backup/tasks/{id}"),
        &["completed", "failed"],
    )
    .await;
    assert_eq!(t["state"], "completed", "{t:#}");
    assert_eq!(t["detail"]["trigger"], "schedule");
    let set = t["set_id"].as_str().unwrap().to_string();
    assert!(t["storage_dir"].as_str().unwrap().contains(&set), "{t:#}");
    assert!(!t["data_version"].is_null(), "{t:#}");
    // the cleanup and the secondary copy follow
    let t1 = Instant::now();
    loop {
        let c = tasks(&svc, &tok, "kind=cleanup").await;
        let s = tasks(&svc, &tok, "kind=secondary").await;
        if c.first().is_some_and(|c| c["state"] == "completed")
            && s.first().is_some_and(|s| s["state"] == "completed")
        {
            break;
        }
        assert!(t1.elapsed() < T, "{c:#?} {s:#?}\n{}", svc.log());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (_, t) = svc
        .call("GET", &format!("/api/v1/backup/tasks/{id}"), &tok, None)
        .await;
    assert_eq!(t["has_secondary"], true, "{t:#}");

    // restore it: prechecking → restoring → succeeded
    let dst = fresh("postgres", "bk_dst").await;
    let (s, r) = svc
        .call(
            "POST",
            "/api/v1/restores",
            &tok,
            Some(json!({"from_set": set, "target": dst.url})),
        )
        .await;
    assert_eq!(s, 202, "{r}");
    assert_eq!(r["state"], "prechecking");
    let path = format!("/api/v1/restores/{}", r["id"].as_str().unwrap());
    let r = wait_task(
        &svc,
        &tok,
        &path,
        &["succeeded", "failed", "precheck_failed"],
    )
    .await;
    assert_eq!(r["state"], "succeeded", "{r:#}");
    assert!(!r["start"].is_null() && !r["end"].is_null());
    let n = query_lines(
        "postgres",
        &dst.url,
        "SELECT count(*), sum(balance) FROM acct",
    )
    .await;
    assert_eq!(n, vec!["500|125250".to_string()]);
    let (_, list) = svc
        .call("GET", "/api/v1/restores?since=24h", &tok, None)
        .await;
    assert_eq!(list["total"], 1, "{list}");

    // a set that does not exist: precheck_failed, naming it
    let (s, r) = svc
        .call(
            "POST",
            "/api/v1/restores",
            &tok,
            Some(json!({"from_set": "20200101T000000Z-f0000", "cluster": "sched", "target": dst.url})),
        )
        .await;
    assert_eq!(s, 202, "{r}");
    let path = format!("/api/v1/restores/{}", r["id"].as_str().unwrap());
    let r = wait_task(
        &svc,
        &tok,
        &path,
        &["precheck_failed", "failed", "succeeded"],
    )
    .await;
    assert_eq!(r["state"], "precheck_failed", "{r:#}");
    assert!(
        r["reason"]
            .as_str()
            .unwrap()
            .contains("20200101T000000Z-f0000"),
        "{r:#}"
    );
    // one the service never heard of: precheck_failed too
    let (_, r) = svc
        .call(
            "POST",
            "/api/v1/restores",
            &tok,
            Some(json!({"from_set": "20200101T000000Z-f0001", "target": dst.url})),
        )
        .await;
    let path = format!("/api/v1/restores/{}", r["id"].as_str().unwrap());
    let r = wait_task(
        &svc,
        &tok,
        &path,
        &["precheck_failed", "failed", "succeeded"],
    )
    .await;
    assert_eq!(r["state"], "precheck_failed", "{r:#}");
}

#[tokio::test]
async fn cleanup_keeps_the_chain_a_kept_incremental_needs() {
    let dir = tempfile::tempdir().unwrap();
    let svc = Service::start(dir.path(), &[]).await;
    let tok = svc.tenant("bk-chain", 10.0).await;
    let src = pg_source(100).await;
    // keep one set: the newest, and whatever its chain needs
    let body = json!({"source": src.url, "storage": storage(dir.path(), "repo"), "retain": "1"});
    assert_eq!(put_policy(&svc, &tok, "chain", body).await.0, 201);
    let mut sets = Vec::new();
    for (i, kind) in ["full", "incremental", "incremental", "full"]
        .iter()
        .enumerate()
    {
        ferry_testkit::pg_exec(
            &src.url,
            &format!("INSERT INTO acct VALUES ({}, 'new', 1)", 1000 + i),
        )
        .await;
        let (s, t) = svc
            .call(
                "POST",
                "/api/v1/backup/policies/chain/backups",
                &tok,
                Some(json!({"type": kind})),
            )
            .await;
        assert_eq!(s, 202, "{t}");
        let id = t["id"].as_str().unwrap().to_string();
        let t = wait_task(
            &svc,
            &tok,
            &format!("/api/v1/backup/tasks/{id}"),
            &["completed", "failed"],
        )
        .await;
        assert_eq!(t["state"], "completed", "{kind}: {t:#}");
        sets.push(t["set_id"].as_str().unwrap().to_string());
        // the cleanup after it
        let t1 = Instant::now();
        let cleanup = loop {
            let c = tasks(&svc, &tok, "kind=cleanup&limit=500").await;
            if let Some(c) = c
                .iter()
                .find(|c| c["parent"] == json!(id) && c["state"] == "completed")
            {
                break c.clone();
            }
            assert!(c.iter().all(|c| c["state"] != "failed"), "{c:#?}");
            assert!(t1.elapsed() < T, "{c:#?}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        let removed: Vec<String> =
            serde_json::from_value(cleanup["detail"]["removed"].clone()).unwrap();
        if i < 3 {
            // the newest is an incremental (or the full): its whole chain stays
            assert!(removed.is_empty(), "after set {i}: removed {removed:?}");
        } else {
            // a new full: the old chain goes, all of it
            let mut want = sets[..3].to_vec();
            want.sort();
            let mut got = removed.clone();
            got.sort();
            assert_eq!(got, want);
        }
    }
    let left: Vec<String> = tasks(&svc, &tok, "kind=data&limit=500")
        .await
        .iter()
        .filter(|t| t["removed"] == false)
        .map(|t| t["set_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(left, vec![sets[3].clone()]);
}

#[tokio::test(flavor = "multi_thread")]
async fn drills_restore_the_newest_set_and_a_failed_one_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let svc = Service::start_with(dir.path(), &[], &[("FERRY_WEBHOOK_ALLOW", "127.0.0.1")]).await;
    let tok = svc.tenant("bk-drill", 10.0).await;
    let (hook, mut heard) = crate::harness::webhook_sink().await;
    let (s, v) = svc
        .call(
            "PUT",
            "/api/v1/tenants/bk-drill/webhook",
            &tok,
            Some(json!({"url": hook})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let src = pg_source(200).await;
    let scratch = fresh("postgres", "bk_scratch").await;
    let repo = storage(dir.path(), "repo");
    let body = json!({"source": src.url, "storage": repo, "drill": cron_in(3), "drill_target": scratch.url});
    assert_eq!(put_policy(&svc, &tok, "drilled", body).await.0, 201);
    let (_, t) = svc
        .call(
            "POST",
            "/api/v1/backup/policies/drilled/backups",
            &tok,
            None,
        )
        .await;
    let id = t["id"].as_str().unwrap().to_string();
    let t = wait_task(
        &svc,
        &tok,
        &format!("/api/v1/backup/tasks/{id}"),
        &["completed", "failed"],
    )
    .await;
    assert_eq!(t["state"], "completed", "{t:#}");
    let t0 = Instant::now();
    let drill = loop {
        if let Some(d) = tasks(&svc, &tok, "kind=drill").await.first() {
            if d["state"] == "completed" || d["state"] == "failed" {
                break d.clone();
            }
        }
        assert!(t0.elapsed() < T, "no drill ended:\n{}", svc.log());
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(drill["state"], "completed", "{drill:#}");
    assert_eq!(drill["set_id"], t["set_id"]);
    assert_eq!(drill["detail"]["rows"], 200, "{drill:#}");
    let n = query_lines("postgres", &scratch.url, "SELECT count(*) FROM acct").await;
    assert_eq!(n, vec!["200".to_string()]);
    // a drill into a database that is not there fails, and the webhook hears it
    let body = json!({"source": src.url, "storage": repo, "drill": cron_in(2),
        "drill_target": "postgres://postgres@127.0.0.1:1/gone"});
    assert_eq!(put_policy(&svc, &tok, "drilled", body).await.0, 200);
    let note = tokio::time::timeout(T, async {
        loop {
            let n = heard.recv().await.unwrap();
            if n["event"] == "backup_drill_failed" {
                return n;
            }
        }
    })
    .await
    .expect("no backup_drill_failed webhook");
    assert_eq!(note["task"]["kind"], "drill");
    assert!(!note["task"]["reason"].is_null(), "{note}");
}

/// `ferry backup …` / `ferry restore …` without --storage are clients of the API.
#[tokio::test]
async fn the_backup_cli_drives_the_service() {
    let dir = tempfile::tempdir().unwrap();
    let svc = Service::start(dir.path(), &[]).await;
    let tok = svc.tenant("bk-cli", 10.0).await;
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
    let (ok, out) = cli(&[
        "backup",
        "policy",
        "set",
        "clishop",
        "--source",
        NOWHERE,
        "--storage",
        &repo,
        "--full",
        "0 2 * * 0",
        "--retain",
        "7",
    ]);
    assert!(ok, "{out}");
    assert!(out.contains("clishop") && !out.contains(":pw@"), "{out}");
    let (ok, out) = cli(&[
        "backup",
        "policy",
        "set",
        "clishop",
        "--source",
        NOWHERE,
        "--storage",
        &repo,
        "--full",
        "0 25 * * *",
    ]);
    assert!(!ok && out.contains("full"), "{out}");
    let (ok, out) = cli(&["backup", "policy", "show"]);
    assert!(ok && out.contains("0 2 * * 0"), "{out}");
    let (ok, out) = cli(&["backup", "now", "clishop", "--incremental"]);
    assert!(
        ok && out.contains("incremental backup of clishop started"),
        "{out}"
    );
    let (ok, out) = cli(&["backup", "list", "clishop", "--since", "24h"]);
    assert!(
        ok && out.contains("incremental") && out.contains("(1 of 1)"),
        "{out}"
    );
    let (ok, out) = cli(&["backup", "list", "--kind", "cleanup", "-o", "json"]);
    assert!(ok && out.contains("\"total\": 0"), "{out}");
    let (ok, out) = cli(&["restore", "list", "--since", "7d"]);
    assert!(ok && out.contains("no tasks"), "{out}");
    let (ok, out) = cli(&["backup", "policy", "delete", "clishop"]);
    assert!(ok, "{out}");
    let (ok, out) = cli(&["backup", "policy", "show", "clishop"]);
    assert!(!ok && out.contains("404"), "{out}");
}
