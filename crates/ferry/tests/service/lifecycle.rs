//! A task's life through the API: every state from creating to deleted, a scheduled
//! start across a service restart, each failure state through its real cause, and a
//! target database Ferry creates.

use crate::common::{self, fresh, Db};
use crate::harness::{
    compare_equal, create_and_start, databases, drop_slot_when_idle, spec, wait_rows, Service,
    ADMIN, T,
};
use serde_json::json;
use std::time::{Duration, Instant};

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

    // Prometheus: state counts, and the running task's lag, each family once; the
    // commit histograms count the groups the stream has committed
    let scrape = || async {
        reqwest::Client::new()
            .get(format!("{}/metrics", svc.base))
            .bearer_auth(ADMIN)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    };
    let committed = |m: &str| {
        let line = format!("ferry_apply_seconds_count{{task=\"{id}\"}} ");
        m.lines()
            .find_map(|l| l.strip_prefix(line.as_str()))
            .and_then(|n| n.trim().parse::<u64>().ok())
            .unwrap_or(0)
    };
    let mut m = scrape().await;
    let t0 = std::time::Instant::now();
    while committed(&m) == 0 && t0.elapsed() < T {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        m = scrape().await;
    }
    assert!(committed(&m) >= 1, "{m}");
    assert!(
        m.contains(&format!(
            "ferry_task_info{{task=\"{id}\",state=\"incremental\","
        )),
        "{m}"
    );
    assert!(
        m.contains(&format!("ferry_commit_lag_seconds_count{{task=\"{id}\"}}")),
        "{m}"
    );
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
