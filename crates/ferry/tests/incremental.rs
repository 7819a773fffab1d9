//! The incremental phase against real servers: changes made while the full copy runs
//! arrive exactly once, a kill -9 at any moment loses and duplicates nothing, and a
//! restarted server or a cut/stalled link is recovered from without help.
//!
//! Nothing here sleeps to synchronise: tests wait on positions and phases the target
//! records, or on `--exit-when-caught-up`.

mod common;

use common::{ferry, fresh, query_lines, text, Db};
use ferry_engine::checkpoint::CheckpointStore;
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

/// `acct` (keyed) with `rows` rows and `events` (no key) with a few duplicates.
async fn setup(engine: &str, url: &str, rows: u64) {
    let sql = if engine == "postgres" {
        format!(
            "CREATE TABLE acct (id bigint PRIMARY KEY, owner varchar(40) NOT NULL, balance numeric(12,2) NOT NULL, \
               note text, payload bytea, seen timestamptz);
             INSERT INTO acct SELECT g, 'owner ' || g, g % 1000, CASE WHEN g % 7 = 0 THEN NULL ELSE 'n' || g END, \
               decode('00ff', 'hex'), '2024-01-01 00:00:00+00' FROM generate_series(1, {rows}) g;
             CREATE TABLE events (kind varchar(20), amount int);
             INSERT INTO events VALUES ('a', 1), ('a', 1), ('b', 2);"
        )
    } else {
        format!(
            "CREATE TABLE acct (id bigint PRIMARY KEY, owner varchar(40) NOT NULL, balance decimal(12,2) NOT NULL, \
               note text, payload blob, seen timestamp(6) NULL);
             INSERT INTO acct SELECT seq, concat('owner ', seq), seq % 1000, IF(seq % 7 = 0, NULL, concat('n', seq)), \
               x'00ff', '2024-01-01 00:00:00' FROM seq_1_to_{rows};
             CREATE TABLE events (kind varchar(20), amount int);
             INSERT INTO events VALUES ('a', 1), ('a', 1), ('b', 2);"
        )
    };
    exec(engine, url, &sql).await;
}

/// One small OLTP transaction number `i`: insert, update, delete, keyless insert and
/// delete of one duplicate; every 25th also a multi-statement transaction of 500 rows.
fn oltp_sql(engine: &str, i: u64) -> String {
    let id = 10_000_000 + i;
    let victim = 1 + (i * 7919) % 20_000;
    let now = if engine == "postgres" {
        "now()"
    } else {
        "now(6)"
    };
    let mut s = format!(
        "BEGIN; INSERT INTO acct VALUES ({id}, 'w{i}', {i}, 'tab\tand ''quote''', NULL, {now}); \
         UPDATE acct SET balance = balance + 1, seen = {now} WHERE id = {}; \
         DELETE FROM acct WHERE id = {victim}; \
         INSERT INTO events VALUES ('w', {i}), ('w', {i}); COMMIT;",
        1 + (i * 31) % 20_000
    );
    if engine != "postgres" {
        s = s.replace("BEGIN;", "START TRANSACTION;");
        s.push_str(&format!(
            " DELETE FROM events WHERE kind = 'w' AND amount = {i} LIMIT 1;"
        ));
    } else {
        s.push_str(&format!(
            " DELETE FROM events WHERE ctid = (SELECT ctid FROM events WHERE kind = 'w' AND amount = {i} LIMIT 1);"
        ));
    }
    if i.is_multiple_of(25) {
        let base = 20_000_000 + i * 1000;
        s.push_str(&if engine == "postgres" {
            format!(
                " BEGIN; INSERT INTO acct SELECT g, 'bulk', 1, NULL, NULL, NULL FROM generate_series({base}, {}) g; \
                  UPDATE acct SET note = 'bulk-updated' WHERE id BETWEEN {base} AND {}; COMMIT;",
                base + 499,
                base + 99
            )
        } else {
            format!(
                " START TRANSACTION; INSERT INTO acct SELECT seq, 'bulk', 1, NULL, NULL, NULL FROM seq_{base}_to_{}; \
                  UPDATE acct SET note = 'bulk-updated' WHERE id BETWEEN {base} AND {}; COMMIT;",
                base + 499,
                base + 99
            )
        });
    }
    s
}

/// Writes OLTP transactions until `stop`; returns how many.
fn workload(
    engine: &'static str,
    url: String,
    stop: Arc<AtomicBool>,
    done: Arc<AtomicU64>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut i = 0;
        while !stop.load(Ordering::Relaxed) {
            i += 1;
            exec(engine, &url, &oltp_sql(engine, i)).await;
            done.store(i, Ordering::Relaxed);
        }
    })
}

/// One very large transaction (`rows` rows inserted, then all updated).
async fn big_transaction(engine: &str, url: &str, rows: u64) {
    let base = 100_000_000u64;
    let sql = if engine == "postgres" {
        format!(
            "BEGIN; INSERT INTO acct SELECT g, 'big', 2, NULL, NULL, NULL FROM generate_series({base}, {}) g; \
             UPDATE acct SET balance = 3 WHERE id >= {base}; COMMIT;",
            base + rows - 1
        )
    } else {
        format!(
            "START TRANSACTION; INSERT INTO acct SELECT {base} + seq, 'big', 2, NULL, NULL, NULL FROM seq_0_to_{}; \
             UPDATE acct SET balance = 3 WHERE id >= {base}; COMMIT;",
            rows - 1
        )
    };
    exec(engine, url, &sql).await;
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
    fn id(&self) -> u32 {
        self.0.as_ref().map(|c| c.id()).unwrap_or(0)
    }

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

/// Starts `ferry run` in the background, its output going to `<task>.log` (a pipe
/// nobody reads could fill up and block it).
fn spawn_run(task: &str, extra: &[&str]) -> Running {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(format!("{task}.log"))
        .unwrap();
    Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(["run", task, "--quiet"])
        .args(extra)
        .env(
            "FERRY_LOG",
            // info: positions and watermarks of every run, shown when a test fails
            std::env::var("FERRY_TEST_LOG").unwrap_or_else(|_| "info".into()),
        )
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .map(|c| Running(Some(c)))
        .expect("spawn ferry")
}

/// Starts `ferry run` and waits until its change stream runs.
async fn start_streaming(task: &str, to: &str, dst: &Db) -> Running {
    let child = spawn_run(task, &[]);
    let name = common::task_name(task);
    wait_for(
        "the incremental phase",
        task,
        Duration::from_secs(180),
        async || phase(to, &dst.url, &name).await.as_deref() == Some("incremental"),
    )
    .await;
    child
}

/// What background runs of `task` printed.
fn run_log(task: &str) -> String {
    std::fs::read_to_string(format!("{task}.log")).unwrap_or_default()
}

fn signal(child: &Running, sig: &str) {
    Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .unwrap();
}

/// The phase the target records for `task` (`full`, `done`, `incremental`, …).
async fn phase(engine: &str, target: &str, task: &str) -> Option<String> {
    let sql = format!("SELECT phase FROM ferry.tasks WHERE task = '{task}'");
    let rows = match engine {
        "postgres" => {
            let (c, conn) = tokio_postgres::connect(target, tokio_postgres::NoTls)
                .await
                .ok()?;
            tokio::spawn(conn);
            let r = c.simple_query(&sql).await.ok()?;
            r.into_iter()
                .filter_map(|m| match m {
                    tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(String::from),
                    _ => None,
                })
                .collect::<Vec<_>>()
        }
        _ => {
            use mysql_async::prelude::Queryable;
            let mut c = mysql_async::Conn::from_url(target).await.ok()?;
            let r: Vec<String> = c.query(&sql).await.ok()?;
            r
        }
    };
    rows.into_iter().next()
}

async fn wait_for(what: &str, task: &str, timeout: Duration, mut f: impl AsyncFnMut() -> bool) {
    let t0 = Instant::now();
    while !f().await {
        assert!(
            t0.elapsed() < timeout,
            "timed out waiting for {what}; ferry printed:\n{}",
            run_log(task)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn finish(mut child: Running) -> std::process::ExitStatus {
    child
        .0
        .take()
        .expect("running")
        .wait()
        .expect("wait for ferry")
}

async fn catch_up_and_compare(task: &str) {
    let o = ferry(&["run", task, "--quiet", "--exit-when-caught-up"]);
    assert!(o.status.success(), "catch-up run failed:\n{}", text(&o));
    assert!(text(&o).contains("caught up"), "{}", text(&o));
    let c = ferry(&["compare", task]);
    assert!(
        c.status.success(),
        "source and target differ:\n{}\ncatch-up run printed:\n{}\nearlier runs printed:\n{}",
        text(&c),
        text(&o),
        run_log(task)
    );
}

/// Changes made before, during and after the full copy — many small transactions and
/// some multi-row ones — reach the target exactly once; a graceful stop and a resumed
/// run keep that.
async fn changes_during_the_copy_arrive_exactly_once(from: &'static str, to: &'static str) {
    let src = fresh(from, "inc_src").await;
    let dst = fresh(to, "inc_dst").await;
    setup(from, &src.url, 20_000).await;
    let dir = tempfile::tempdir().unwrap();
    let task = task(dir.path(), &src, &dst, "chunk_rows: 2000\njobs: 2\n");

    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let load = workload(from, src.url.clone(), stop.clone(), done.clone());
    // the copy starts while the workload runs
    wait_for(
        "the workload to start",
        &task,
        Duration::from_secs(30),
        async || done.load(Ordering::Relaxed) >= 5,
    )
    .await;
    let child = start_streaming(&task, to, &dst).await;
    let at_handoff = done.load(Ordering::Relaxed);
    wait_for(
        "more transactions",
        &task,
        Duration::from_secs(60),
        async || done.load(Ordering::Relaxed) >= at_handoff + 60,
    )
    .await;
    stop.store(true, Ordering::Relaxed);
    load.await.unwrap();
    big_transaction(from, &src.url, 20_000).await;
    signal(&child, "-TERM");
    let status = finish(child);
    assert!(
        status.success(),
        "a stopped run exits cleanly:\n{}",
        run_log(&task)
    );
    catch_up_and_compare(&task).await;
    let keyless = "SELECT count(*) FROM events";
    assert_eq!(
        query_lines(from, &src.url, keyless).await,
        query_lines(to, &dst.url, &target_query(to, &src, keyless)).await
    );
}

/// The same query against the table's place on the target.
fn target_query(to: &str, src: &Db, sql: &str) -> String {
    if to == "postgres" && !src.url.starts_with("postgres") {
        sql.replace("FROM ", &format!("FROM \"{}\".", src.name))
    } else {
        sql.to_string()
    }
}

#[tokio::test]
async fn pg_to_pg_changes_during_the_copy_arrive_exactly_once() {
    changes_during_the_copy_arrive_exactly_once("postgres", "postgres").await;
}

#[tokio::test]
async fn pg_to_mariadb_changes_during_the_copy_arrive_exactly_once() {
    changes_during_the_copy_arrive_exactly_once("postgres", "mysql").await;
}

#[tokio::test]
async fn mariadb_to_pg_changes_during_the_copy_arrive_exactly_once() {
    changes_during_the_copy_arrive_exactly_once("mysql", "postgres").await;
}

#[tokio::test]
async fn mariadb_to_mariadb_changes_during_the_copy_arrive_exactly_once() {
    changes_during_the_copy_arrive_exactly_once("mysql", "mysql").await;
}

/// A single-value count on `url`; 0 when the query fails (e.g. the table does not
/// exist yet).
async fn count(engine: &str, url: &str, sql: &str) -> u64 {
    if engine == "postgres" {
        let Ok((c, conn)) = tokio_postgres::connect(url, tokio_postgres::NoTls).await else {
            return 0;
        };
        tokio::spawn(conn);
        match c.query_one(sql, &[]).await {
            Ok(r) => r.get::<_, i64>(0) as u64,
            Err(_) => 0,
        }
    } else {
        use mysql_async::prelude::Queryable;
        let Ok(mut c) = mysql_async::Conn::from_url(url).await else {
            return 0;
        };
        let r: Option<u64> = c.query_first(sql).await.ok().flatten();
        let _ = c.disconnect().await;
        r.unwrap_or(0)
    }
}

/// Ferry holds an open target transaction that has written many rows.
async fn big_apply_in_flight(engine: &str, dst: &Db) -> bool {
    let sql = if engine == "postgres" {
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
         AND application_name = 'ferry' AND backend_xid IS NOT NULL AND xact_start < now() - interval '50 milliseconds'"
            .to_string()
    } else {
        format!(
            "SELECT count(*) FROM information_schema.innodb_trx t JOIN information_schema.processlist p \
             ON p.id = t.trx_mysql_thread_id WHERE p.db = '{}' AND t.trx_rows_modified > 2000",
            dst.name
        )
    };
    count(engine, &dst.url, &sql).await > 0
}

/// kill -9 during the full copy, right after the hand-off, and in the middle of
/// applying a big transaction; each restart resumes, and in the end the target equals
/// the source with no duplicates in the table without a key.
async fn kill_9_at_any_moment_loses_and_duplicates_nothing(from: &'static str, to: &'static str) {
    let src = fresh(from, "kill_src").await;
    let dst = fresh(to, "kill_dst").await;
    setup(from, &src.url, 60_000).await;
    let dir = tempfile::tempdir().unwrap();
    let task = task(dir.path(), &src, &dst, "chunk_rows: 200\njobs: 1\n");
    let name = common::task_name(&task);
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let load = workload(from, src.url.clone(), stop.clone(), done.clone());

    // 1. during the full copy, after some chunks committed
    let mut child = spawn_run(&task, &[]);
    let chunks_done =
        format!("SELECT count(*) FROM ferry.chunks WHERE task = '{name}' AND done = 1");
    wait_for(
        "chunks to commit",
        &task,
        Duration::from_secs(120),
        async || count(to, &dst.url, &chunks_done).await >= 3,
    )
    .await;
    child.kill();
    assert_eq!(
        phase(to, &dst.url, &name).await.as_deref(),
        Some("full"),
        "the kill was meant to land in the full phase"
    );

    // 2. right after the hand-off to the stream
    child = spawn_run(&task, &[]);
    wait_for(
        "the incremental phase",
        &task,
        Duration::from_secs(180),
        async || phase(to, &dst.url, &name).await.as_deref() == Some("incremental"),
    )
    .await;
    child.kill();

    // 3. while a 100,000-row transaction is being applied
    big_transaction(from, &src.url, 100_000).await;
    child = spawn_run(&task, &[]);
    wait_for(
        "the big transaction's apply",
        &task,
        Duration::from_secs(180),
        async || big_apply_in_flight(to, &dst).await,
    )
    .await;
    child.kill();

    stop.store(true, Ordering::Relaxed);
    load.await.unwrap();
    catch_up_and_compare(&task).await;
    let keyless = "SELECT count(*) FROM events";
    assert_eq!(
        query_lines(from, &src.url, keyless).await,
        query_lines(to, &dst.url, &target_query(to, &src, keyless)).await
    );
}

#[tokio::test]
async fn pg_to_pg_kill_9_at_any_moment_loses_and_duplicates_nothing() {
    kill_9_at_any_moment_loses_and_duplicates_nothing("postgres", "postgres").await;
}

#[tokio::test]
async fn mariadb_to_mariadb_kill_9_at_any_moment_loses_and_duplicates_nothing() {
    kill_9_at_any_moment_loses_and_duplicates_nothing("mysql", "mysql").await;
}

#[tokio::test]
async fn mariadb_to_pg_kill_9_at_any_moment_loses_and_duplicates_nothing() {
    kill_9_at_any_moment_loses_and_duplicates_nothing("mysql", "postgres").await;
}

async fn insert_batch(engine: &str, url: &str, from: u64, n: u64) {
    let mut sql = String::new();
    for i in from..from + n {
        sql.push_str(&format!(
            "INSERT INTO acct VALUES ({i}, 'fault', 1, 'x', NULL, NULL);\n"
        ));
    }
    exec(engine, url, &sql).await;
}

async fn wait_rows(task: &str, engine: &str, url: &str, table: &str, want: u64) {
    let sql = format!("SELECT count(*) FROM {table}");
    wait_for(
        &format!("{want} rows in {table}"),
        task,
        Duration::from_secs(180),
        async || count(engine, url, &sql).await == want,
    )
    .await;
}

/// The server holding source and target is killed and restarted under a running
/// task: it reports `recovering`, reconnects by itself and misses nothing.
#[tokio::test(flavor = "multi_thread")]
async fn a_restarted_server_is_recovered_from_alone() {
    let srv = tokio::task::spawn_blocking(|| ferry_testkit::private_postgres("restart"))
        .await
        .unwrap();
    let dir_pg = srv.dir.clone().unwrap();
    for db in ["rs_src", "rs_dst"] {
        ferry_testkit::pg_exec(&srv.url_for("postgres"), &format!("CREATE DATABASE {db}")).await;
    }
    let src = Db {
        url: srv.url_for("rs_src"),
        name: "rs_src".into(),
        guard: None,
    };
    let dst = Db {
        url: srv.url_for("rs_dst"),
        name: "rs_dst".into(),
        guard: None,
    };
    setup("postgres", &src.url, 1000).await;
    let dir = tempfile::tempdir().unwrap();
    let task = task(dir.path(), &src, &dst, "");
    let child = start_streaming(&task, "postgres", &dst).await;
    insert_batch("postgres", &src.url, 50_000, 100).await;
    wait_rows(&task, "postgres", &dst.url, "acct", 1100).await;

    let port = srv.port;
    let d = dir_pg.clone();
    tokio::task::spawn_blocking(move || {
        ferry_testkit::stop_postgres(&d);
        ferry_testkit::start_postgres(&d, port);
    })
    .await
    .unwrap();
    insert_batch("postgres", &src.url, 60_000, 100).await;
    wait_rows(&task, "postgres", &dst.url, "acct", 1200).await;
    assert!(run_log(&task).contains("recovering"), "{}", run_log(&task));
    signal(&child, "-TERM");
    assert!(finish(child).success(), "{}", run_log(&task));
    catch_up_and_compare(&task).await;
    tokio::task::spawn_blocking(move || ferry_testkit::stop_postgres(&dir_pg))
        .await
        .unwrap();
}

/// The source link goes through a proxy that first resets every connection, then
/// silently stops forwarding: the task notices the silence within its stated bound
/// (15 s without even a heartbeat), recovers from both, and misses nothing.
async fn a_cut_or_stalled_link_is_recovered_from(from: &'static str, to: &'static str) {
    let src = fresh(from, "net_src").await;
    let dst = fresh(to, "net_dst").await;
    setup(from, &src.url, 1000).await;
    let upstream = url::Url::parse(&src.url).unwrap().port().unwrap();
    let proxy = ferry_testkit::Proxy::start(upstream).await;
    let proxied = Db {
        url: src
            .url
            .replace(&format!(":{upstream}/"), &format!(":{}/", proxy.port)),
        name: src.name.clone(),
        guard: None,
    };
    let dir = tempfile::tempdir().unwrap();
    let task = task(dir.path(), &proxied, &dst, "");
    let table = target_query(to, &src, "SELECT count(*) FROM acct")
        .trim_start_matches("SELECT count(*) FROM ")
        .to_string();
    let child = start_streaming(&task, to, &dst).await;

    proxy.cut();
    insert_batch(from, &src.url, 50_000, 100).await;
    wait_rows(&task, to, &dst.url, &table, 1100).await;

    proxy.stall(true);
    insert_batch(from, &src.url, 60_000, 100).await;
    let t0 = Instant::now();
    wait_for(
        "the stall to be noticed",
        &task,
        Duration::from_secs(40),
        // the replication link's silence or an unanswered heartbeat, whichever first
        async || run_log(&task).contains("(stalled network or server)"),
    )
    .await;
    assert!(
        t0.elapsed() < Duration::from_secs(30),
        "stall noticed only after {:?}",
        t0.elapsed()
    );
    proxy.stall(false);
    wait_rows(&task, to, &dst.url, &table, 1200).await;
    signal(&child, "-TERM");
    assert!(finish(child).success(), "{}", run_log(&task));
    catch_up_and_compare(&task).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn pg_source_link_cut_or_stalled_is_recovered_from() {
    a_cut_or_stalled_link_is_recovered_from("postgres", "postgres").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn mariadb_source_link_cut_or_stalled_is_recovered_from() {
    a_cut_or_stalled_link_is_recovered_from("mysql", "postgres").await;
}

/// An UPDATE that leaves a TOASTed value unchanged (PostgreSQL sends no value for
/// it) keeps the target's value — it is never written as NULL — for both targets.
async fn unchanged_toast_is_kept(to: &'static str) {
    let src = fresh("postgres", "toast_src").await;
    let dst = fresh(to, "toast_dst").await;
    exec(
        "postgres",
        &src.url,
        "CREATE TABLE doc (id int PRIMARY KEY, body text, n int);
         INSERT INTO doc VALUES (1, (SELECT string_agg(md5(g::text), '') FROM generate_series(1, 2000) g), 0), (2, 'short', 0);",
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let task = task(dir.path(), &src, &dst, "");
    let child = start_streaming(&task, to, &dst).await;
    exec("postgres", &src.url, "UPDATE doc SET n = n + 1").await;
    signal(&child, "-TERM");
    assert!(finish(child).success(), "{}", run_log(&task));
    catch_up_and_compare(&task).await;
    let rows = query_lines(
        to,
        &dst.url,
        "SELECT id, length(body), n FROM doc ORDER BY id",
    )
    .await;
    assert_eq!(rows, vec!["1|64000|1", "2|5|1"]);
}

#[tokio::test]
async fn pg_to_pg_unchanged_toast_is_kept() {
    unchanged_toast_is_kept("postgres").await;
}

#[tokio::test]
async fn pg_to_mariadb_unchanged_toast_is_kept() {
    unchanged_toast_is_kept("mysql").await;
}

/// A killed Ferry's target session can outlive it (and a frozen worker's lives on
/// until it runs again) with a batch it may still COMMIT; if it did after a new run
/// read the checkpoint, the batch would be applied twice (duplicates in a keyless
/// table). Here a session of the earlier run holds the task's writer mark and an open
/// transaction: the new run claims the task (fencing it), ends the session rather
/// than waiting for it, and streams; the survivor's transaction can commit nothing.
async fn an_earlier_run_s_surviving_session_is_fenced_and_ended(engine: &'static str) {
    let src = fresh(engine, "fence_src").await;
    let dst = fresh(engine, "fence_dst").await;
    setup(engine, &src.url, 100).await;
    let dir = tempfile::tempdir().unwrap();
    let task = task(dir.path(), &src, &dst, "");
    let name = common::task_name(&task);
    let child = start_streaming(&task, engine, &dst).await;
    signal(&child, "-TERM");
    assert!(finish(child).success(), "{}", run_log(&task));

    let spec = ferry_core::TaskSpec::from_yaml(&std::fs::read_to_string(&task).unwrap()).unwrap();
    let mut survivor = ferry_engine::conn::Conn::open(&spec, ferry_engine::conn::Role::Target)
        .await
        .unwrap();
    survivor.join_writers(&name, None).await.unwrap();
    let stale = ferry_engine::checkpoint::Fence {
        task: name.clone(),
        epoch: survivor.epoch(&name).await.unwrap().unwrap(),
    };
    let begin = survivor.dialect().begin();
    survivor.exec(begin).await.unwrap();
    survivor
        .exec("INSERT INTO events VALUES ('zombie', 1)")
        .await
        .unwrap();

    exec(engine, &src.url, "INSERT INTO events VALUES ('fenced', 1);").await;
    let child = spawn_run(&task, &[]);
    let arrived = "SELECT count(*) FROM events WHERE kind = 'fenced'";
    wait_for(
        "the change while the survivor lives",
        &task,
        Duration::from_secs(60),
        async || count(engine, &dst.url, &target_query(engine, &src, arrived)).await == 1,
    )
    .await;
    assert!(
        run_log(&task).contains("of an earlier run"),
        "the survivor was not ended:\n{}",
        run_log(&task)
    );
    let commit = format!("{}; COMMIT", stale.check_sql(&survivor));
    assert!(
        survivor.exec(&commit).await.is_err(),
        "the survivor's transaction committed after the new run claimed the task"
    );
    let zombie = "SELECT count(*) FROM events WHERE kind = 'zombie'";
    assert_eq!(
        count(engine, &dst.url, &target_query(engine, &src, zombie)).await,
        0
    );
    signal(&child, "-TERM");
    assert!(finish(child).success(), "{}", run_log(&task));
}

#[tokio::test]
async fn postgres_an_earlier_run_s_surviving_session_is_fenced_and_ended() {
    an_earlier_run_s_surviving_session_is_fenced_and_ended("postgres").await;
}

#[tokio::test]
async fn mariadb_an_earlier_run_s_surviving_session_is_fenced_and_ended() {
    an_earlier_run_s_surviving_session_is_fenced_and_ended("mysql").await;
}

/// MariaDB: a stream that starts again behind an `ADD COLUMN` (rows written before it
/// are read while the catalog already has the new column) decodes those rows by the
/// table map's column names and follows the change.
#[tokio::test]
async fn mariadb_a_stream_restarted_behind_an_added_column_follows_it() {
    let src = fresh("mysql", "addcol_src").await;
    let dst = fresh("mysql", "addcol_dst").await;
    setup("mysql", &src.url, 100).await;
    let dir = tempfile::tempdir().unwrap();
    let task = task(dir.path(), &src, &dst, "");
    let child = start_streaming(&task, "mysql", &dst).await;
    signal(&child, "-TERM");
    assert!(finish(child).success(), "{}", run_log(&task));
    exec(
        "mysql",
        &src.url,
        "INSERT INTO acct VALUES (500, 'before', 1, NULL, NULL, NULL);
         UPDATE acct SET balance = 9 WHERE id = 1;
         ALTER TABLE acct ADD COLUMN tier int NOT NULL DEFAULT 7;
         INSERT INTO acct VALUES (501, 'after', 1, NULL, NULL, NULL, 3);
         UPDATE acct SET tier = 4 WHERE id = 2;",
    )
    .await;
    catch_up_and_compare(&task).await;
    assert_eq!(
        query_lines(
            "mysql",
            &dst.url,
            "SELECT id, tier FROM acct WHERE id IN (1, 2, 500, 501) ORDER BY id"
        )
        .await,
        ["1|7", "2|4", "500|7", "501|3"]
    );
}

/// `ferry end` while a `ferry run` of the task still streams is refused (the run
/// would go on applying and overwrite the end mark); once the run stops, it ends.
#[tokio::test(flavor = "multi_thread")]
async fn end_is_refused_while_a_run_streams() {
    let src = fresh("mysql", "endlive_src").await;
    let dst = fresh("postgres", "endlive_dst").await;
    setup("mysql", &src.url, 100).await;
    let dir = tempfile::tempdir().unwrap();
    let task = task(dir.path(), &src, &dst, "");
    let mut child = start_streaming(&task, "postgres", &dst).await;
    let end = ferry(&["end", &task]);
    let out = text(&end);
    assert!(!end.status.success(), "end passed under a live run: {out}");
    assert!(
        out.contains("is running") && out.contains("stop that run first"),
        "{out}"
    );
    let name = common::task_name(&task);
    assert_eq!(
        phase("postgres", &dst.url, &name).await.as_deref(),
        Some("incremental")
    );
    child.kill();
    let end = ferry(&["end", &task]);
    assert!(end.status.success(), "{}", text(&end));
    assert_eq!(
        phase("postgres", &dst.url, &name).await.as_deref(),
        Some("ended")
    );
}
