//! Leases and workers: a killed node's task shows `recovering` and resumes from its
//! checkpoint, on restart or on another worker sharing the metadata database.

use crate::common::{fresh, text};
use crate::harness::{compare_equal, databases, spec, wait_rows, Service, WorkerNode, T};
use std::process::Command;
use std::time::{Duration, Instant};

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
