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

fn signal(pid: u32, sig: &str) {
    assert!(Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .unwrap()
        .success());
}

/// A worker frozen (SIGSTOP) past its lease while it streams under a steady write
/// load — a zombie writer — loses the task to the other worker, which ends the frozen
/// worker's target sessions and streams on; continued (SIGCONT), the zombie writes
/// nothing more: every source transaction is on the target exactly once (a table
/// without a key shows any duplicate) and the fencing epoch stays the new owner's.
#[tokio::test(flavor = "multi_thread")]
async fn a_worker_frozen_past_its_lease_writes_nothing_after_the_takeover() {
    let dir = tempfile::tempdir().unwrap();
    let meta = fresh("postgres", "meta_zombie").await;
    let key = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    let svc = Service::start_with(
        dir.path(),
        &["--meta", &meta.url, "--no-worker"],
        &[("FERRY_SECRET_KEY", key)],
    )
    .await;
    let mut workers = vec![
        WorkerNode::start(dir.path(), "z1", &meta.url, key),
        WorkerNode::start(dir.path(), "z2", &meta.url, key),
    ];
    let tok = svc.tenant("acme", 100.0).await;
    let (src, dst) = databases(1_000).await;
    ferry_testkit::pg_exec(&src.url, "CREATE TABLE ledger (txid bigint, note text);").await;
    let id = svc
        .create(&tok, &spec("zombie", "full+incremental", &src, &dst), None)
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

    // a steady load of small transactions, each one row in the keyless table
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = {
        let (url, stop) = (src.url.clone(), stop.clone());
        tokio::spawn(async move {
            let mut n = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                n += 1;
                ferry_testkit::pg_exec(
                    &url,
                    &format!(
                        "BEGIN; INSERT INTO ledger VALUES ({n}, 'x'); \
                         UPDATE acct SET balance = balance + 1 WHERE id = {}; COMMIT;",
                        1 + n % 1000
                    ),
                )
                .await;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            n
        })
    };
    tokio::time::sleep(Duration::from_secs(2)).await;
    let zombie = workers.remove(i);
    signal(zombie.pid(), "-STOP");
    let v = svc.wait_state(&tok, &id, "recovering", T).await;
    assert!(v["reason"].as_str().unwrap().contains(&owner), "{v:#}");
    let v = svc.wait_state(&tok, &id, "incremental", T).await;
    assert_ne!(v["worker"].as_str(), Some(owner.as_str()), "{v:#}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let epoch = "SELECT epoch FROM ferry.fences";
    let claimed = crate::common::query_lines("postgres", &dst.url, epoch).await;

    // the zombie runs again: whatever it had in flight must not land
    signal(zombie.pid(), "-CONT");
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let written = load.await.unwrap();
    wait_rows(
        "postgres",
        &dst.url,
        "SELECT count(*), count(DISTINCT txid) FROM ledger",
        &[&format!("{written}|{written}")],
        "every source transaction exactly once",
        || format!("{}\n--- new owner:\n{}", zombie.text(), workers[0].text()),
    )
    .await;
    assert_eq!(
        crate::common::query_lines("postgres", &dst.url, epoch).await,
        claimed,
        "someone claimed the task after the takeover:\n{}",
        zombie.text()
    );
    svc.act(&tok, &id, "end").await;
    svc.wait_state(&tok, &id, "ended", T).await;
    compare_equal(dir.path(), &src, &dst);
}
