//! Parallel apply (`apply_jobs` ≥ 2) against real servers: source transactions stay
//! whole on the target and commit in source order (a reader of the target never sees
//! money created or lost), a kill -9 at random moments of a backlog neither loses
//! nor repeats a transaction, conflicting keys (unique values exchanged across
//! transactions, parents and children) keep their order, and barriers (a table
//! without a key, TRUNCATE) keep the target equal.

mod common;

use common::{ferry, fresh, query_lines, text, Db};
use std::process::{Child, Command};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

async fn exec(engine: &str, url: &str, sql: &str) {
    if engine == "postgres" {
        ferry_testkit::pg_exec(url, sql).await
    } else {
        ferry_testkit::mysql_exec(url, sql).await
    }
}

fn begin(engine: &str) -> &'static str {
    if engine == "postgres" {
        "BEGIN"
    } else {
        "START TRANSACTION"
    }
}

fn task(dir: &std::path::Path, src: &Db, dst: &Db, extra: &str) -> String {
    let path = common::task_file(dir, &src.url, &dst.url, extra);
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace("mode: full\n", "mode: full+incremental\n");
    std::fs::write(&path, text).unwrap();
    path
}

/// A background `ferry run`, killed if the test ends without waiting for it.
struct Running(Option<Child>);

impl Running {
    /// kill -9.
    fn kill(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.kill();
    }
}

fn spawn_run(task: &str) -> Running {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(format!("{task}.log"))
        .unwrap();
    Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(["run", task, "--quiet"])
        .env(
            "FERRY_LOG",
            std::env::var("FERRY_TEST_LOG").unwrap_or_else(|_| "info".into()),
        )
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .map(|c| Running(Some(c)))
        .expect("spawn ferry")
}

fn run_log(task: &str) -> String {
    std::fs::read_to_string(format!("{task}.log")).unwrap_or_default()
}

/// A single number from `url` (`None` when the query fails, e.g. no table yet).
async fn number(engine: &str, url: &str, sql: &str) -> Option<i64> {
    let lines = if engine == "postgres" {
        let (c, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
            .await
            .ok()?;
        tokio::spawn(conn);
        let r = c.simple_query(sql).await.ok()?;
        r.into_iter()
            .filter_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(String::from),
                _ => None,
            })
            .collect::<Vec<_>>()
    } else {
        use mysql_async::prelude::Queryable;
        let mut c = mysql_async::Conn::from_url(url).await.ok()?;
        let r: Option<Option<String>> = c.query_first(sql).await.ok()?;
        let _ = c.disconnect().await;
        r.flatten().into_iter().collect()
    };
    lines.first()?.parse().ok()
}

async fn wait_for(what: &str, task: &str, timeout: Duration, mut f: impl AsyncFnMut() -> bool) {
    let t0 = Instant::now();
    while !f().await {
        assert!(
            t0.elapsed() < timeout,
            "timed out waiting for {what}; ferry printed:\n{}",
            run_log(task)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Starts `ferry run` and waits until its change stream runs.
async fn start_streaming(task: &str, to: &str, dst: &Db) -> Running {
    let child = spawn_run(task);
    let name = common::task_name(task);
    let sql =
        format!("SELECT count(*) FROM ferry.tasks WHERE task = '{name}' AND phase = 'incremental'");
    wait_for(
        "the incremental phase",
        task,
        Duration::from_secs(180),
        async || number(to, &dst.url, &sql).await == Some(1),
    )
    .await;
    child
}

async fn catch_up_and_compare(task: &str) -> String {
    let o = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(["run", task, "--quiet", "--exit-when-caught-up"])
        .env("FERRY_LOG", "info")
        .output()
        .expect("run ferry");
    // kept with the earlier runs' output (what the checks below read)
    use std::io::Write;
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(format!("{task}.log"))
        .and_then(|mut f| f.write_all(text(&o).as_bytes()))
        .unwrap();
    assert!(
        o.status.success(),
        "catch-up run failed:\n{}\nearlier runs printed:\n{}",
        text(&o),
        run_log(task)
    );
    let c = ferry(&["compare", task]);
    assert!(
        c.status.success(),
        "source and target differ:\n{}\nruns printed:\n{}",
        text(&c),
        run_log(task)
    );
    text(&o)
}

/// The table `t` as the target names it (a MariaDB source's schema becomes a
/// PostgreSQL schema named after its database).
fn on_target(to: &str, src: &Db, t: &str) -> String {
    if to == "postgres" && !src.url.starts_with("postgres") {
        format!("\"{}\".{t}", src.name)
    } else {
        t.to_string()
    }
}

/// No attempt of the runs fell back to one connection because a worker failed.
fn assert_no_worker_failure(task: &str) {
    let log = run_log(task);
    assert!(
        log.contains("apply on 4 connections"),
        "the runs applied in parallel:\n{log}"
    );
    assert!(
        !log.contains("apply worker"),
        "no apply worker failed:\n{log}"
    );
}

/// A small deterministic generator (the seed is printed: a failure can be replayed).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
}

fn seed() -> u64 {
    let s = std::env::var("FERRY_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    eprintln!("FERRY_TEST_SEED={s}");
    s
}

const ACCOUNTS: u64 = 200;
const BALANCE: i64 = 1000;

/// Many writers move amounts between accounts while the stream applies with four
/// connections; a reader of the TARGET polling the total never sees it differ (no
/// part of a transaction, no transaction ahead of an earlier one), and in the end
/// the target equals the source.
async fn transfers_stay_whole(from: &'static str, to: &'static str) {
    let src = fresh(from, "par_src").await;
    let dst = fresh(to, "par_dst").await;
    let accounts = if from == "postgres" {
        format!(
            "CREATE TABLE accounts (id bigint PRIMARY KEY, amount bigint NOT NULL);
             INSERT INTO accounts SELECT g, {BALANCE} FROM generate_series(1, {ACCOUNTS}) g;"
        )
    } else {
        format!(
            "CREATE TABLE accounts (id bigint PRIMARY KEY, amount bigint NOT NULL);
             INSERT INTO accounts SELECT seq, {BALANCE} FROM seq_1_to_{ACCOUNTS};"
        )
    };
    exec(from, &src.url, &accounts).await;
    let dir = tempfile::tempdir().unwrap();
    let task = task(dir.path(), &src, &dst, "apply_jobs: 4\n");
    let child = start_streaming(&task, to, &dst).await;

    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let mut writers = Vec::new();
    let base = seed();
    for w in 0..6u64 {
        let (url, stop, done) = (src.url.clone(), stop.clone(), done.clone());
        writers.push(tokio::spawn(async move {
            let mut rng = Rng(base + w);
            while !stop.load(Ordering::Relaxed) {
                // ten transfers per round trip, each its own transaction; the lower
                // id first, so writers never deadlock each other
                let mut sql = String::new();
                for _ in 0..10 {
                    let a = 1 + rng.next() % ACCOUNTS;
                    let b = 1 + (a + rng.next() % (ACCOUNTS - 1)) % ACCOUNTS;
                    let (lo, hi) = (a.min(b), a.max(b));
                    let x = (rng.next() % 50) as i64 - 25;
                    sql.push_str(&format!(
                        "{}; UPDATE accounts SET amount = amount - ({x}) WHERE id = {lo}; \
                         UPDATE accounts SET amount = amount + ({x}) WHERE id = {hi}; COMMIT; ",
                        begin(from)
                    ));
                }
                exec(from, &url, &sql).await;
                done.fetch_add(10, Ordering::Relaxed);
            }
        }));
    }
    // the reader of the target: every total it sees is the invariant
    let table = on_target(to, &src, "accounts");
    let sum = format!("SELECT CAST(sum(amount) AS CHAR(30)) FROM {table}").replace(
        "CHAR(30)",
        if to == "postgres" { "text" } else { "CHAR(30)" },
    );
    let changed = format!("SELECT count(*) FROM {table} WHERE amount <> {BALANCE}");
    let mut polls = 0u64;
    let mut moved = 0;
    let t0 = Instant::now();
    while done.load(Ordering::Relaxed) < 20_000 && t0.elapsed() < Duration::from_secs(60) {
        let s = number(to, &dst.url, &sum).await;
        assert_eq!(
            s,
            Some(BALANCE * ACCOUNTS as i64),
            "a reader of the target saw a total that never existed on the source; ferry printed:\n{}",
            run_log(&task)
        );
        polls += 1;
        if moved == 0 {
            moved = number(to, &dst.url, &changed).await.unwrap_or(0);
        }
    }
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.await.unwrap();
    }
    drop(child);
    assert!(polls > 20, "the reader polled the target {polls} times");
    assert!(moved > 0, "the reader saw applied transfers");
    catch_up_and_compare(&task).await;
    assert_no_worker_failure(&task);
}

#[tokio::test(flavor = "multi_thread")]
async fn pg_to_pg_transfers_stay_whole() {
    transfers_stay_whole("postgres", "postgres").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn mariadb_to_mariadb_transfers_stay_whole() {
    transfers_stay_whole("mysql", "mysql").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn mariadb_to_pg_transfers_stay_whole() {
    transfers_stay_whole("mysql", "postgres").await;
}

const LEDGER_TXNS: u64 = 40_000;
const COUNTERS: u64 = 50;

/// A backlog of one-entry transactions (a ledger row with a unique id, and its
/// counter incremented) is applied with four connections while the run is killed
/// with -9 at random moments; in the end every transaction is there exactly once:
/// each counter equals its ledger rows, nothing is missing.
async fn kill_9_during_a_backlog(from: &'static str, to: &'static str) {
    let src = fresh(from, "par_kill_src").await;
    let dst = fresh(to, "par_kill_dst").await;
    let setup = if from == "postgres" {
        format!(
            "CREATE TABLE ledger (txn bigint PRIMARY KEY, counter int NOT NULL);
             CREATE TABLE counters (id int PRIMARY KEY, n bigint NOT NULL);
             INSERT INTO counters SELECT g, 0 FROM generate_series(1, {COUNTERS}) g;"
        )
    } else {
        format!(
            "CREATE TABLE ledger (txn bigint PRIMARY KEY, counter int NOT NULL);
             CREATE TABLE counters (id int PRIMARY KEY, n bigint NOT NULL);
             INSERT INTO counters SELECT seq, 0 FROM seq_1_to_{COUNTERS};"
        )
    };
    exec(from, &src.url, &setup).await;
    let dir = tempfile::tempdir().unwrap();
    let task = task(dir.path(), &src, &dst, "apply_jobs: 4\n");
    let mut child = start_streaming(&task, to, &dst).await;
    child.kill();

    // the backlog: four writers, each transaction its own
    let mut writers = Vec::new();
    let per = LEDGER_TXNS / 4;
    for w in 0..4 {
        let url = src.url.clone();
        writers.push(tokio::spawn(async move {
            for chunk in 0..per / 100 {
                let mut sql = String::new();
                for i in 0..100 {
                    let txn = w * per + chunk * 100 + i + 1;
                    let c = 1 + txn * 7 % COUNTERS;
                    sql.push_str(&format!(
                        "{}; INSERT INTO ledger VALUES ({txn}, {c}); \
                         UPDATE counters SET n = n + 1 WHERE id = {c}; COMMIT; ",
                        begin(from)
                    ));
                }
                exec(from, &url, &sql).await;
            }
        }));
    }
    for w in writers {
        w.await.unwrap();
    }

    let ledger = format!("SELECT count(*) FROM {}", on_target(to, &src, "ledger"));
    let mut rng = Rng(seed());
    let mut kills = 0;
    for _ in 0..4 {
        let before = number(to, &dst.url, &ledger).await.unwrap_or(0);
        if before >= LEDGER_TXNS as i64 - 2000 {
            break;
        }
        child = spawn_run(&task);
        // killed once it applies, at a random moment after that
        wait_for(
            "the backlog's apply",
            &task,
            Duration::from_secs(120),
            async || number(to, &dst.url, &ledger).await.unwrap_or(0) > before + 200,
        )
        .await;
        tokio::time::sleep(Duration::from_millis(rng.next() % 400)).await;
        child.kill();
        kills += 1;
    }
    assert!(
        kills >= 2,
        "the runs were killed mid-backlog ({kills} times)"
    );
    catch_up_and_compare(&task).await;
    let check = format!(
        "SELECT count(*) FROM {c} c WHERE c.n <> (SELECT count(*) FROM {l} l WHERE l.counter = c.id)",
        c = on_target(to, &src, "counters"),
        l = on_target(to, &src, "ledger")
    );
    assert_eq!(number(to, &dst.url, &check).await, Some(0));
    assert_eq!(
        number(to, &dst.url, &ledger).await,
        Some(LEDGER_TXNS as i64)
    );
    let total = format!(
        "SELECT CAST(sum(n) AS {}) FROM {}",
        if to == "postgres" { "bigint" } else { "SIGNED" },
        on_target(to, &src, "counters")
    );
    assert_eq!(number(to, &dst.url, &total).await, Some(LEDGER_TXNS as i64));
    assert!(
        run_log(&task).contains("apply on 4 connections"),
        "{}",
        run_log(&task)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn pg_to_pg_kill_9_during_a_backlog_applies_each_transaction_once() {
    kill_9_during_a_backlog("postgres", "postgres").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn mariadb_to_mariadb_kill_9_during_a_backlog_applies_each_transaction_once() {
    kill_9_during_a_backlog("mysql", "mysql").await;
}

/// Two rows exchange a unique value across transactions (through a free value),
/// children are inserted after and deleted before their parents: conflicting keys in
/// different batches keep their order, with no error and no fallback.
async fn unique_swaps_and_parents(from: &'static str, to: &'static str) {
    let src = fresh(from, "par_uq_src").await;
    let dst = fresh(to, "par_uq_dst").await;
    let pairs = 300u64;
    let mut setup = String::from(
        "CREATE TABLE uq (id bigint PRIMARY KEY, code bigint NOT NULL UNIQUE);
         CREATE TABLE parent (id bigint PRIMARY KEY, name varchar(20));
         CREATE TABLE child (id bigint PRIMARY KEY, parent_id bigint NOT NULL, FOREIGN KEY (parent_id) REFERENCES parent (id));\n",
    );
    for p in 0..pairs {
        setup.push_str(&format!(
            "INSERT INTO uq VALUES ({}, {}), ({}, {});\n",
            2 * p,
            2 * p,
            2 * p + 1,
            2 * p + 1
        ));
    }
    exec(from, &src.url, &setup).await;
    let dir = tempfile::tempdir().unwrap();
    let task = task(dir.path(), &src, &dst, "apply_jobs: 4\n");
    let mut child = start_streaming(&task, to, &dst).await;
    // a backlog, so that consecutive transactions land in different batches
    child.kill();
    let b = begin(from);
    for round in 0..6u64 {
        // the real swap: a ← old b, b ← old a, through the free value
        let mut swap = String::new();
        for p in 0..pairs {
            let (a, bb) = (2 * p, 2 * p + 1);
            let (ca, cb) = if round % 2 == 0 {
                (2 * p, 2 * p + 1)
            } else {
                (2 * p + 1, 2 * p)
            };
            let free = 2_000_000 + round * 10_000 + p;
            swap.push_str(&format!(
                "{b}; UPDATE uq SET code = {free} WHERE id = {a}; COMMIT; \
                 {b}; UPDATE uq SET code = {ca} WHERE id = {bb}; COMMIT; \
                 {b}; UPDATE uq SET code = {cb} WHERE id = {a}; COMMIT; "
            ));
        }
        exec(from, &src.url, &swap).await;
        let mut fk = String::new();
        for i in 0..200u64 {
            let id = round * 1000 + i;
            fk.push_str(&format!(
                "{b}; INSERT INTO parent VALUES ({id}, 'p'); COMMIT; \
                 {b}; INSERT INTO child VALUES ({id}, {id}); COMMIT; "
            ));
            if round > 0 {
                let old = (round - 1) * 1000 + i;
                fk.push_str(&format!(
                    "{b}; DELETE FROM child WHERE id = {old}; COMMIT; \
                     {b}; DELETE FROM parent WHERE id = {old}; COMMIT; "
                ));
            }
        }
        exec(from, &src.url, &fk).await;
    }
    drop(child);
    catch_up_and_compare(&task).await;
    assert_no_worker_failure(&task);
}

#[tokio::test(flavor = "multi_thread")]
async fn pg_to_pg_unique_swaps_and_parents_keep_their_order() {
    unique_swaps_and_parents("postgres", "postgres").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn mariadb_to_mariadb_unique_swaps_and_parents_keep_their_order() {
    unique_swaps_and_parents("mysql", "mysql").await;
}

/// Rows of a table without a key and TRUNCATE among keyed changes: barriers keep
/// the order, the target stays equal (duplicates included).
async fn keyless_and_truncate(from: &'static str, to: &'static str) {
    let src = fresh(from, "par_kl_src").await;
    let dst = fresh(to, "par_kl_dst").await;
    exec(
        from,
        &src.url,
        "CREATE TABLE items (id bigint PRIMARY KEY, v bigint NOT NULL);
         CREATE TABLE events (kind varchar(20), amount int);
         CREATE TABLE scratch (id bigint PRIMARY KEY, v int);",
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let task = task(dir.path(), &src, &dst, "apply_jobs: 4\n");
    let mut child = start_streaming(&task, to, &dst).await;
    child.kill();
    let b = begin(from);
    for round in 0..10u64 {
        let mut sql = String::new();
        for i in 0..300u64 {
            let id = round * 1000 + i;
            sql.push_str(&format!(
                "{b}; INSERT INTO items VALUES ({id}, {i}); INSERT INTO scratch VALUES ({id}, 1); COMMIT; "
            ));
            if i % 3 == 0 {
                // duplicates in the table without a key: one of two goes
                sql.push_str(&format!(
                    "{b}; INSERT INTO events VALUES ('k', {i}), ('k', {i}); UPDATE items SET v = v + 1 WHERE id = {id}; COMMIT; "
                ));
                let del = if from == "postgres" {
                    format!("DELETE FROM events WHERE ctid = (SELECT ctid FROM events WHERE kind = 'k' AND amount = {i} LIMIT 1)")
                } else {
                    format!("DELETE FROM events WHERE kind = 'k' AND amount = {i} LIMIT 1")
                };
                sql.push_str(&format!("{b}; {del}; COMMIT; "));
            }
        }
        sql.push_str("TRUNCATE scratch; ");
        sql.push_str(&format!(
            "{b}; INSERT INTO scratch VALUES ({}, 2); COMMIT; ",
            round
        ));
        exec(from, &src.url, &sql).await;
    }
    drop(child);
    catch_up_and_compare(&task).await;
    let events = "SELECT count(*) FROM events";
    assert_eq!(
        query_lines(from, &src.url, events).await,
        query_lines(
            to,
            &dst.url,
            &format!("SELECT count(*) FROM {}", on_target(to, &src, "events"))
        )
        .await
    );
    assert_eq!(
        number(
            to,
            &dst.url,
            &format!("SELECT count(*) FROM {}", on_target(to, &src, "scratch"))
        )
        .await,
        Some(1)
    );
    assert_no_worker_failure(&task);
}

#[tokio::test(flavor = "multi_thread")]
async fn pg_to_pg_keyless_tables_and_truncate_stay_equal() {
    keyless_and_truncate("postgres", "postgres").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn mariadb_to_mariadb_keyless_tables_and_truncate_stay_equal() {
    keyless_and_truncate("mysql", "mysql").await;
}

/// `apply_jobs: 1` applies on the one connection it always did.
#[tokio::test(flavor = "multi_thread")]
async fn one_apply_job_applies_on_one_connection() {
    let src = fresh("postgres", "par_one_src").await;
    let dst = fresh("postgres", "par_one_dst").await;
    exec(
        "postgres",
        &src.url,
        "CREATE TABLE t (id bigint PRIMARY KEY, v text); INSERT INTO t SELECT g, 'a' FROM generate_series(1, 100) g;",
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let task = task(dir.path(), &src, &dst, "apply_jobs: 1\n");
    let child = start_streaming(&task, "postgres", &dst).await;
    drop(child);
    let mut sql = String::new();
    for i in 0..500 {
        sql.push_str(&format!(
            "BEGIN; INSERT INTO t VALUES ({}, 'b'); UPDATE t SET v = 'c' WHERE id = {}; DELETE FROM t WHERE id = {}; COMMIT; ",
            1000 + i,
            1 + i % 100,
            1000 + i / 2
        ));
    }
    exec("postgres", &src.url, &sql).await;
    catch_up_and_compare(&task).await;
    let log = run_log(&task);
    assert!(log.contains("apply on 1 connection"), "{log}");
    assert!(!log.contains("apply on 4"), "{log}");
}
