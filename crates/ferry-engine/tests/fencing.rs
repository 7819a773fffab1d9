//! Fencing on real targets: once a later run claims a task, a transaction of an
//! earlier run commits nothing (its check fails, in the same transaction as its data);
//! a transaction already past its check commits before the claim completes (the new
//! run then sees it when it reads the checkpoint). Task names are unique per test: a
//! MySQL/MariaDB server keeps every task's checkpoints in one `ferry` database.

use ferry_core::{Endpoint, ErrorKind};
use ferry_engine::checkpoint::{CheckpointStore, Claim, Fence};
use ferry_engine::conn::Conn;
use std::time::Duration;

async fn open(url: &str) -> Conn {
    let ep = Endpoint::parse(url, "NONE").unwrap();
    let mut c = Conn::connect(&ep).await.unwrap();
    c.ensure().await.unwrap();
    c
}

async fn rows(c: &mut Conn) -> Vec<String> {
    c.query_text("SELECT v FROM data ORDER BY v")
        .await
        .unwrap()
        .into_iter()
        .filter_map(|r| r[0].clone())
        .collect()
}

async fn a_stale_run_commits_nothing(url: &str, task: &str) {
    let mut stale = open(url).await;
    stale
        .exec("CREATE TABLE data (v varchar(20))")
        .await
        .unwrap();
    let old = Fence::claim(&mut stale, task, &Claim::default())
        .await
        .unwrap();

    // a transaction of the earlier run, sent before the new run claims the task ...
    let begin = stale.dialect().begin();
    stale.exec(begin).await.unwrap();
    stale
        .exec("INSERT INTO data VALUES ('stale')")
        .await
        .unwrap();
    let mut new = open(url).await;
    let fresh = Fence::claim(&mut new, task, &Claim::default())
        .await
        .unwrap();
    assert_eq!(fresh.epoch, old.epoch + 1);
    // ... fails its check at COMMIT and is told why
    let commit = format!("{}; COMMIT", old.check_sql(&stale));
    let e = stale.exec(&commit).await.unwrap_err();
    let _ = stale.exec("ROLLBACK").await;
    let e = old.explain(&mut stale, e).await;
    assert!(e.is(ErrorKind::Fenced), "{e}");
    assert!(e.message.contains("took over"), "{e}");
    assert!(rows(&mut new).await.is_empty());

    // the stale run cannot claim the task back (a retried attempt after a fault) ...
    let stale_run = Claim::default();
    let mine = Fence::claim(&mut stale, task, &stale_run).await.unwrap();
    let newer = Fence::claim(&mut new, task, &Claim::default())
        .await
        .unwrap();
    let e = Fence::claim(&mut stale, task, &stale_run)
        .await
        .unwrap_err();
    assert!(e.is(ErrorKind::Fenced), "{e}");
    assert!(e.message.contains(&format!("epoch {}", newer.epoch)), "{e}");
    assert!(mine.epoch < newer.epoch);
    // ... while a run nobody replaced renews its claim
    let new_run = Claim::default();
    let first = Fence::claim(&mut new, task, &new_run).await.unwrap();
    let fresh = Fence::claim(&mut new, task, &new_run).await.unwrap();
    assert_eq!(fresh.epoch, first.epoch + 1);

    // the new run's transactions pass
    new.exec(begin).await.unwrap();
    new.exec("INSERT INTO data VALUES ('fresh')").await.unwrap();
    let commit = format!("{}; COMMIT", fresh.check_sql(&new));
    new.exec(&commit).await.unwrap();
    assert_eq!(rows(&mut new).await, vec!["fresh"]);
}

async fn a_claim_waits_for_a_commit_past_its_check(url: &str, task: &str) {
    let mut old_conn = open(url).await;
    old_conn
        .exec("CREATE TABLE data (v varchar(20))")
        .await
        .unwrap();
    let old = Fence::claim(&mut old_conn, task, &Claim::default())
        .await
        .unwrap();
    let begin = old_conn.dialect().begin();
    old_conn.exec(begin).await.unwrap();
    old_conn
        .exec("INSERT INTO data VALUES ('early')")
        .await
        .unwrap();
    old_conn.exec(&old.check_sql(&old_conn)).await.unwrap();

    let (url2, task2) = (url.to_string(), task.to_string());
    let claim = tokio::spawn(async move {
        let mut c = open(&url2).await;
        let f = Fence::claim(&mut c, &task2, &Claim::default())
            .await
            .unwrap();
        (f, rows(&mut c).await)
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !claim.is_finished(),
        "the claim did not wait for the checked transaction"
    );
    old_conn.exec("COMMIT").await.unwrap();
    let (fresh, seen) = claim.await.unwrap();
    assert_eq!(fresh.epoch, old.epoch + 1);
    // what committed before the claim is what the new run reads
    assert_eq!(seen, vec!["early"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_a_stale_run_commits_nothing() {
    let db = ferry_testkit::fresh_pg_database("fence").await;
    a_stale_run_commits_nothing(db.url(), db.name()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn mariadb_a_stale_run_commits_nothing() {
    let db = ferry_testkit::fresh_mysql_database("fence").await;
    a_stale_run_commits_nothing(db.url(), db.name()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_a_claim_waits_for_a_commit_past_its_check() {
    let db = ferry_testkit::fresh_pg_database("fence_wait").await;
    a_claim_waits_for_a_commit_past_its_check(db.url(), db.name()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn mariadb_a_claim_waits_for_a_commit_past_its_check() {
    let db = ferry_testkit::fresh_mysql_database("fence_wait").await;
    a_claim_waits_for_a_commit_past_its_check(db.url(), db.name()).await;
}
