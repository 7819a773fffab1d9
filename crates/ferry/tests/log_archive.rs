//! The log archiver (`ferry backup log run --storage …`, direct mode) against real
//! throwaway servers: every committed transaction archived exactly once, whole, in
//! commit order; kill -9 at random moments under load loses and repeats nothing;
//! a source restart and a cut link are recovered from without a gap; a lost slot or
//! purged binlog fails the run with a recorded gap; marks.
//!
//! The archive is checked by decoding every piece with the piece reader (what a
//! point-in-time restore replays), not through the archiver's own reports.

mod common;

use common::{ferry, fresh, text};
use ferry_backup::log::index::{self, LogArchive};
use ferry_backup::log::piece::PieceReader;
use ferry_backup::log::window::runs;
use ferry_backup::repo::Repo;
use ferry_core::change::{Cell, Event, RowOp};
use ferry_core::{Position, Value};
use sha2::Digest;
use std::collections::HashSet;
use std::io::BufRead;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn cluster(hint: &str) -> String {
    ferry_testkit::unique_name(hint)
        .replace('_', "-")
        .to_lowercase()
}

fn now_us() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

async fn exec(engine: &str, url: &str, sql: &str) {
    if engine == "postgres" {
        ferry_testkit::pg_exec(url, sql).await;
    } else {
        ferry_testkit::mysql_exec(url, sql).await;
    }
}

/// A running `ferry backup log run`, its output lines collected as they come.
struct Archiver {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

fn start_archiver(cluster: &str, source: &str, storage: &str) -> Archiver {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args([
            "backup",
            "log",
            "run",
            cluster,
            "--source",
            source,
            "--storage",
            storage,
            "--piece-seconds",
            "1",
        ])
        .env("FERRY_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start ferry backup log run");
    let lines = Arc::new(Mutex::new(Vec::new()));
    for (out, tag) in [
        (
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            "",
        ),
        (Box::new(child.stderr.take().unwrap()), "stderr: "),
    ] {
        let l = lines.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                l.lock().unwrap().push(format!("{tag}{line}"));
            }
        });
    }
    Archiver { child, lines }
}

impl Archiver {
    fn output(&self) -> String {
        self.lines.lock().unwrap().join("\n")
    }

    /// Waits until a line from index `from` on satisfies `pred`; its index.
    fn wait_line(&mut self, from: usize, what: &str, pred: impl Fn(&str) -> bool) -> usize {
        let t0 = Instant::now();
        loop {
            if let Some(i) = self
                .lines
                .lock()
                .unwrap()
                .get(from..)
                .and_then(|ls| ls.iter().position(|l| pred(l)))
            {
                return from + i;
            }
            if let Some(st) = self.child.try_wait().unwrap() {
                // the exit may have raced the last lines
                std::thread::sleep(Duration::from_millis(200));
                if let Some(i) = self
                    .lines
                    .lock()
                    .unwrap()
                    .get(from..)
                    .and_then(|ls| ls.iter().position(|l| pred(l)))
                {
                    return from + i;
                }
                panic!(
                    "the archiver exited ({st}) before {what}:\n{}",
                    self.output()
                );
            }
            assert!(
                t0.elapsed() < Duration::from_secs(180),
                "no {what} within 180 s:\n{}",
                self.output()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn len(&self) -> usize {
        self.lines.lock().unwrap().len()
    }

    /// SIGTERM, then its exit status.
    fn stop(mut self) -> (ExitStatus, String) {
        Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        let st = self.child.wait().unwrap();
        std::thread::sleep(Duration::from_millis(100));
        (st, self.output())
    }

    fn kill9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    fn wait_exit(mut self) -> (ExitStatus, String) {
        let t0 = Instant::now();
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                std::thread::sleep(Duration::from_millis(100));
                return (st, self.output());
            }
            assert!(
                t0.elapsed() < Duration::from_secs(180),
                "the archiver did not exit:\n{}",
                self.output()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Archiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn archive_of(storage: &str, cluster: &str) -> LogArchive {
    let repo = Repo::open(storage, None).await.unwrap();
    index::read_archive(&repo, cluster).await.unwrap()
}

/// Waits until the archive's latest backup point is at or after `t_us`.
async fn wait_point(storage: &str, cluster: &str, t_us: i64, a: &Archiver) {
    let t0 = Instant::now();
    loop {
        let arch = archive_of(storage, cluster).await;
        if arch
            .head
            .as_ref()
            .is_some_and(|h| h.archived_through_us >= t_us)
        {
            return;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(180),
            "the latest backup point did not reach the last commit:\n{:?}\n{}",
            arch.head,
            a.output()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// One archived transaction: its changes of table `lt` as (op, id, txn), and its
/// commit position.
#[derive(Debug, Clone)]
struct Txn {
    rows: Vec<(char, i64, Option<i64>)>,
    commit: Position,
}

fn int(v: &Value) -> i64 {
    match v {
        Value::Int(i) => *i,
        Value::UInt(u) => *u as i64,
        Value::Text(s) | Value::Decimal(s) => s.parse().unwrap(),
        other => panic!("not an integer: {other:?}"),
    }
}

/// Decodes every piece of the archive (checking each against its entry: size,
/// SHA-256, transaction count, and that entries chain): its transactions in order.
async fn decode(storage: &str, cluster: &str) -> (LogArchive, Vec<Txn>) {
    let repo = Repo::open(storage, None).await.unwrap();
    let arch = index::read_archive(&repo, cluster).await.unwrap();
    let mut out = Vec::new();
    for (i, e) in arch.pieces.iter().enumerate() {
        let bytes = index::read_piece(&repo, cluster, e).await.unwrap();
        assert_eq!(
            hex::encode(sha2::Sha256::digest(&bytes)),
            e.sha256,
            "piece {}",
            e.piece
        );
        if i > 0 {
            assert_eq!(
                arch.pieces[i - 1].piece + 1,
                e.piece,
                "pieces are numbered in order"
            );
        }
        let mut r = PieceReader::open(&bytes, None, "piece").unwrap();
        let mut cur: Option<Txn> = None;
        let mut txns = 0;
        while let Some(ev) = r.next_event().unwrap() {
            match ev {
                Event::Begin { .. } => {
                    assert!(cur.is_none(), "a Begin inside a transaction");
                    cur = Some(Txn {
                        rows: Vec::new(),
                        commit: Position::PgLsn(0),
                    });
                }
                Event::Row { shape, op } => {
                    let t = cur.get_or_insert(Txn {
                        rows: Vec::new(),
                        commit: Position::PgLsn(0),
                    });
                    if shape.table.name != "lt" {
                        continue;
                    }
                    let col = |n: &str| shape.columns.iter().position(|c| c.name == n).unwrap();
                    let (id_c, txn_c) = (col("id"), col("txn"));
                    match op {
                        RowOp::Insert(row) => {
                            t.rows.push(('i', int(&row[id_c]), Some(int(&row[txn_c]))))
                        }
                        RowOp::Update { new, .. } => {
                            let Cell::Value(id) = &new[id_c] else {
                                panic!("an update without its key")
                            };
                            t.rows.push(('u', int(id), None));
                        }
                        RowOp::Delete(vals) => {
                            let id = if vals.len() == shape.columns.len() {
                                &vals[id_c]
                            } else {
                                &vals[shape.key.iter().position(|k| *k == id_c).unwrap()]
                            };
                            t.rows.push(('d', int(id), None));
                        }
                    }
                }
                Event::Commit { position, .. } => {
                    let mut t = cur.take().unwrap_or(Txn {
                        rows: Vec::new(),
                        commit: Position::PgLsn(0),
                    });
                    t.commit = position;
                    txns += 1;
                    out.push(t);
                }
                _ => {
                    cur.get_or_insert(Txn {
                        rows: Vec::new(),
                        commit: Position::PgLsn(0),
                    });
                }
            }
        }
        assert!(cur.is_none(), "piece {} ends inside a transaction", e.piece);
        assert_eq!(txns, e.txns, "piece {}: transactions", e.piece);
        assert_eq!(
            out.last().map(|t| t.commit.to_string()),
            Some(e.end.clone()),
            "piece {} ends after its last transaction",
            e.piece
        );
    }
    (arch, out)
}

/// Every piece continues the previous one, and no gap is recorded.
fn assert_unbroken(arch: &LogArchive) {
    assert!(arch.gaps.is_empty(), "gaps: {:?}", arch.gaps);
    for w in arch.pieces.windows(2) {
        assert_eq!(
            w[0].end, w[1].start,
            "piece {} continues {}",
            w[1].piece, w[0].piece
        );
    }
    assert_eq!(runs(arch).len(), 1, "one unbroken run");
}

// ---------------------------------------------------------------------------
// 1. every committed transaction exactly once, whole, in commit order

async fn archives_whole_transactions_in_order(engine: &str) {
    let src = fresh(engine, "lg_order").await;
    let text_t = if engine == "postgres" {
        "text"
    } else {
        "varchar(20)"
    };
    exec(
        engine,
        &src.url,
        &format!("CREATE TABLE lt (id bigint PRIMARY KEY, txn bigint NOT NULL, v {text_t})"),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let storage = dir.path().to_str().unwrap().to_string();
    let c = cluster("order");
    let mut a = start_archiver(&c, &src.url, &storage);
    a.wait_line(0, "running", |l| l == "running");
    let n = 300i64;
    for k in 1..=n {
        let mut sql = if engine == "postgres" {
            "BEGIN;".to_string()
        } else {
            "START TRANSACTION;".to_string()
        };
        sql.push_str(&format!(
            "INSERT INTO lt VALUES ({}, {k}, 'a'), ({}, {k}, 'b'), ({}, {k}, 'c');",
            k * 10 + 1,
            k * 10 + 2,
            k * 10 + 3
        ));
        if k > 1 {
            sql.push_str(&format!(
                "UPDATE lt SET v = 'u{k}' WHERE id = {};",
                (k - 1) * 10 + 1
            ));
        }
        if k > 2 {
            sql.push_str(&format!("DELETE FROM lt WHERE id = {};", (k - 2) * 10 + 2));
        }
        sql.push_str("COMMIT");
        exec(engine, &src.url, &sql).await;
        if k == n / 2 {
            // a piece stored mid-way: the rest goes into later pieces
            let t0 = Instant::now();
            while archive_of(&storage, &c).await.pieces.is_empty() {
                assert!(
                    t0.elapsed() < Duration::from_secs(180),
                    "no piece stored:\n{}",
                    a.output()
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    let t_end = now_us();
    wait_point(&storage, &c, t_end, &a).await;
    let (st, out) = a.stop();
    assert!(st.success(), "{out}");
    assert!(out.lines().any(|l| l == "stopped"), "{out}");

    let (arch, txns) = decode(&storage, &c).await;
    assert_unbroken(&arch);
    assert!(arch.pieces.len() > 1, "pieces: {}", arch.pieces.len());
    let ours: Vec<&Txn> = txns.iter().filter(|t| !t.rows.is_empty()).collect();
    let order: Vec<i64> = ours
        .iter()
        .map(|t| {
            t.rows
                .iter()
                .find_map(|r| r.2)
                .expect("a transaction without inserts")
        })
        .collect();
    assert_eq!(
        order,
        (1..=n).collect::<Vec<_>>(),
        "every transaction once, in commit order"
    );
    for (t, k) in ours.iter().zip(1..=n) {
        let mut want = vec![
            ('i', k * 10 + 1, Some(k)),
            ('i', k * 10 + 2, Some(k)),
            ('i', k * 10 + 3, Some(k)),
        ];
        if k > 1 {
            want.push(('u', (k - 1) * 10 + 1, None));
        }
        if k > 2 {
            want.push(('d', (k - 2) * 10 + 2, None));
        }
        assert_eq!(t.rows, want, "transaction {k} whole");
    }
    // commit positions only grow
    for w in txns.windows(2) {
        assert!(
            w[1].commit.reached(&w[0].commit),
            "{:?} then {:?}",
            w[0].commit,
            w[1].commit
        );
    }
    let head = arch.head.unwrap();
    assert!(head.archived_through_us >= t_end);
    // the list shows the archive
    let out = ferry(&[
        "backup",
        "list",
        &c,
        "--kind",
        "log",
        "--storage",
        &storage,
        "-o",
        "json",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["pieces"].as_u64().unwrap() as usize, arch.pieces.len());
    assert!(v["latency_seconds"].as_f64().is_some());
    let out = ferry(&["backup", "list", &c, "--kind", "log", "--storage", &storage]);
    assert!(text(&out).contains("latest backup point"), "{}", text(&out));
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_transactions_are_archived_whole_once_in_order() {
    archives_whole_transactions_in_order("postgres").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn mariadb_transactions_are_archived_whole_once_in_order() {
    archives_whole_transactions_in_order("mysql").await;
}

// ---------------------------------------------------------------------------
// a steady writer: each transaction inserts 3 rows tagged with its number

struct Writer {
    stop: Arc<AtomicBool>,
    acked: Arc<Mutex<Vec<(i64, i64)>>>,
    task: tokio::task::JoinHandle<()>,
}

fn start_writer(engine: &'static str, url: String) -> Writer {
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(Mutex::new(Vec::new()));
    let (s, ack) = (stop.clone(), acked.clone());
    let task = tokio::spawn(async move {
        let mut k = 0i64;
        while !s.load(Ordering::SeqCst) {
            k += 1;
            let r = one_txn(engine, &url, k).await;
            match r {
                Ok(()) => ack.lock().unwrap().push((k, now_us())),
                // the server restarts: the transaction may or may not have committed
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    });
    Writer { stop, acked, task }
}

async fn one_txn(engine: &str, url: &str, k: i64) -> Result<(), String> {
    let ins = format!(
        "INSERT INTO lt (id, txn, v) VALUES ({}, {k}, 'x'), ({}, {k}, 'y'), ({}, {k}, 'z')",
        k * 10 + 1,
        k * 10 + 2,
        k * 10 + 3
    );
    if engine == "postgres" {
        let (c, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
            .await
            .map_err(|e| e.to_string())?;
        let h = tokio::spawn(conn);
        let r = c
            .batch_execute(&format!("BEGIN; {ins}; COMMIT"))
            .await
            .map_err(|e| e.to_string());
        drop(c);
        let _ = h.await;
        r
    } else {
        use mysql_async::prelude::Queryable;
        let mut c = mysql_async::Conn::from_url(url)
            .await
            .map_err(|e| e.to_string())?;
        let r = async {
            c.query_drop("START TRANSACTION").await?;
            c.query_drop(&ins).await?;
            c.query_drop("COMMIT").await
        }
        .await
        .map_err(|e| e.to_string());
        let _ = c.disconnect().await;
        r
    }
}

impl Writer {
    async fn finish(self) -> Vec<(i64, i64)> {
        self.stop.store(true, Ordering::SeqCst);
        self.task.await.unwrap();
        let v = self.acked.lock().unwrap().clone();
        v
    }
}

/// Every transaction in the archive is one writer transaction, whole (its three
/// rows), none twice; every acknowledged one committed by `point_us` is there.
fn check_writer_txns(txns: &[Txn], acked: &[(i64, i64)], point_us: i64) -> usize {
    let mut seen = HashSet::new();
    for t in txns.iter().filter(|t| !t.rows.is_empty()) {
        let k = t.rows[0].2.expect("inserts only");
        let mut ids: Vec<i64> = t.rows.iter().map(|r| r.1).collect();
        ids.sort();
        assert_eq!(
            t.rows
                .iter()
                .filter(|r| r.0 == 'i' && r.2 == Some(k))
                .count(),
            3,
            "transaction {k} whole: {:?}",
            t.rows
        );
        assert_eq!(
            ids,
            vec![k * 10 + 1, k * 10 + 2, k * 10 + 3],
            "transaction {k}"
        );
        assert!(seen.insert(k), "transaction {k} archived twice");
    }
    let mut checked = 0;
    for (k, at) in acked {
        if *at <= point_us {
            assert!(seen.contains(k), "acknowledged transaction {k} is missing");
            checked += 1;
        }
    }
    checked
}

/// Every writer transaction the source holds is in the archive (the archive was
/// stopped after the last one).
async fn assert_source_archived(engine: &str, url: &str, txns: &[Txn]) {
    let archived: HashSet<i64> = txns
        .iter()
        .filter_map(|t| t.rows.first().and_then(|r| r.2))
        .collect();
    let held = common::query_lines(engine, url, "SELECT DISTINCT txn FROM lt").await;
    assert!(!held.is_empty());
    for k in held {
        let k: i64 = k.parse().unwrap();
        assert!(
            archived.contains(&k),
            "transaction {k} is in the source, not in the archive"
        );
    }
}

/// A small seeded generator (xorshift), so a failing run can be repeated.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

// ---------------------------------------------------------------------------
// 2. kill -9 at random moments under load

async fn kill9_loses_and_repeats_nothing(engine: &'static str) {
    let src = fresh(engine, "lg_kill").await;
    let text_t = if engine == "postgres" {
        "text"
    } else {
        "varchar(20)"
    };
    exec(
        engine,
        &src.url,
        &format!("CREATE TABLE lt (id bigint PRIMARY KEY, txn bigint NOT NULL, v {text_t})"),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let storage = dir.path().to_str().unwrap().to_string();
    let c = cluster("kill");
    let seed = std::env::var("FERRY_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| (now_us() as u64) | 1);
    println!("seed {seed} (FERRY_TEST_SEED={seed} repeats this run)");
    let mut rng = Rng(seed);
    let mut a = start_archiver(&c, &src.url, &storage);
    a.wait_line(0, "running", |l| l == "running");
    let w = start_writer(engine, src.url.clone());
    for i in 0..10 {
        let ms = 300 + rng.next() % 2700;
        tokio::time::sleep(Duration::from_millis(ms)).await;
        a.kill9();
        println!("kill -9 #{} after {ms} ms", i + 1);
        a = start_archiver(&c, &src.url, &storage);
        if rng.next().is_multiple_of(2) {
            // sometimes killed before it even got going
            a.wait_line(0, "running", |l| l == "running");
        }
    }
    a.wait_line(0, "running", |l| l == "running");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let acked = w.finish().await;
    let last = acked.last().map(|x| x.1).unwrap();
    wait_point(&storage, &c, last, &a).await;
    let (st, out) = a.stop();
    assert!(st.success(), "{out}");
    let (arch, txns) = decode(&storage, &c).await;
    assert_unbroken(&arch);
    let point = arch.head.as_ref().unwrap().archived_through_us;
    let checked = check_writer_txns(&txns, &acked, point);
    assert_eq!(
        checked,
        acked.len(),
        "every acknowledged transaction is before the point"
    );
    assert_source_archived(engine, &src.url, &txns).await;
    println!(
        "{} acknowledged transactions, {} pieces, all archived once",
        acked.len(),
        arch.pieces.len()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_kill9_under_load_loses_and_repeats_nothing() {
    kill9_loses_and_repeats_nothing("postgres").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn mariadb_kill9_under_load_loses_and_repeats_nothing() {
    kill9_loses_and_repeats_nothing("mysql").await;
}

// ---------------------------------------------------------------------------
// 3. source restart and a cut link: recovering, then running, no gap

#[tokio::test(flavor = "multi_thread")]
async fn postgres_restart_and_cut_link_are_recovered_without_a_gap() {
    let srv = tokio::task::spawn_blocking(|| {
        // acknowledged commits survive the crash (the shared servers trade that away)
        ferry_testkit::private_postgres_with("lg-restart", "-c synchronous_commit=on")
    })
    .await
    .unwrap();
    let dir_pg = srv.dir.clone().unwrap();
    ferry_testkit::pg_exec(&srv.url_for("postgres"), "CREATE DATABASE lg_restart").await;
    let url = srv.url_for("lg_restart");
    exec(
        "postgres",
        &url,
        "CREATE TABLE lt (id bigint PRIMARY KEY, txn bigint NOT NULL, v text)",
    )
    .await;
    let proxy = ferry_testkit::Proxy::start(srv.port).await;
    let proxied = url.replace(&format!(":{}/", srv.port), &format!(":{}/", proxy.port));
    assert_ne!(proxied, url);
    let dir = tempfile::tempdir().unwrap();
    let storage = dir.path().to_str().unwrap().to_string();
    let c = cluster("restart");
    let mut a = start_archiver(&c, &proxied, &storage);
    let i = a.wait_line(0, "running", |l| l == "running");
    let w = start_writer("postgres", url.clone());
    tokio::time::sleep(Duration::from_secs(2)).await;

    // the link is cut
    let from = a.len();
    proxy.cut();
    let i = a.wait_line(from.max(i + 1), "recovering after the cut", |l| {
        l.starts_with("recovering")
    });
    a.wait_line(i + 1, "running after the cut", |l| l == "running");
    tokio::time::sleep(Duration::from_secs(2)).await;

    // the server restarts (immediate stop: like a crash)
    let from = a.len();
    let port = srv.port;
    let d = dir_pg.clone();
    tokio::task::spawn_blocking(move || {
        ferry_testkit::stop_postgres(&d);
        std::thread::sleep(Duration::from_secs(1));
        ferry_testkit::start_postgres(&d, port);
    })
    .await
    .unwrap();
    let after_restart = now_us();
    let i = a.wait_line(from, "recovering after the restart", |l| {
        l.starts_with("recovering")
    });
    a.wait_line(i + 1, "running after the restart", |l| l == "running");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let acked = w.finish().await;
    let last = acked.last().map(|x| x.1).unwrap();
    // latency recovers: the latest backup point moves past the restart
    wait_point(&storage, &c, last.max(after_restart), &a).await;
    let (st, out) = a.stop();
    assert!(st.success(), "{out}");
    let (arch, txns) = decode(&storage, &c).await;
    assert_unbroken(&arch);
    let point = arch.head.as_ref().unwrap().archived_through_us;
    assert!(point >= after_restart);
    check_writer_txns(&txns, &acked, point);
    assert_source_archived("postgres", &url, &txns).await;
    drop(proxy);
    drop(srv);
}

// ---------------------------------------------------------------------------
// 4. a lost slot / purged binlog: failed with the reason, a gap, the window ends

async fn full_backup(cluster: &str, source: &str, storage: &str) {
    let out = ferry(&[
        "backup",
        "now",
        cluster,
        "--source",
        source,
        "--storage",
        storage,
        "-q",
    ]);
    assert!(out.status.success(), "backup now failed:\n{}", text(&out));
}

async fn windows(cluster: &str, storage: &str) -> Vec<serde_json::Value> {
    let out = ferry(&[
        "backup",
        "list",
        cluster,
        "--kind",
        "window",
        "--storage",
        storage,
        "-o",
        "json",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    serde_json::from_slice::<Vec<serde_json::Value>>(&out.stdout).unwrap()
}

async fn a_lost_log_is_a_recorded_gap(engine: &'static str, url: &str, lose: &str) {
    exec(
        engine,
        url,
        "CREATE TABLE lt (id bigint PRIMARY KEY, txn bigint NOT NULL, v varchar(20))",
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let storage = dir.path().to_str().unwrap().to_string();
    let c = cluster("gap");
    let mut a = start_archiver(&c, url, &storage);
    a.wait_line(0, "running", |l| l == "running");
    full_backup(&c, url, &storage).await;
    for k in 1..=20 {
        one_txn(engine, url, k).await.unwrap();
    }
    let t = now_us();
    wait_point(&storage, &c, t, &a).await;
    let (st, out) = a.stop();
    assert!(st.success(), "{out}");
    let before = windows(&c, &storage).await;
    assert_eq!(before.len(), 1, "{before:?}");
    assert!(before[0]["ended_by"].is_null());

    // the log the archive continues from is lost while it is stopped
    for k in 21..=30 {
        one_txn(engine, url, k).await.unwrap();
    }
    if engine == "postgres" {
        let lose = lose.replace("{slot}", &format!("ferry_lg_{}", c.replace('-', "_")));
        exec(engine, url, &lose).await;
    } else {
        let head = archive_of(&storage, &c).await.head.unwrap();
        let Position::Binlog { file, .. } = Position::parse(&head.end).unwrap() else {
            panic!("not a binlog position: {}", head.end)
        };
        purge_binlogs_past(url, &file).await;
    }
    let a = start_archiver(&c, url, &storage);
    let (st, out) = a.wait_exit();
    assert_eq!(st.code(), Some(1), "{out}");
    assert!(out.lines().any(|l| l.starts_with("failed:")), "{out}");
    assert!(out.contains("cannot be restored"), "{out}");
    let arch = archive_of(&storage, &c).await;
    assert_eq!(arch.gaps.len(), 1, "{:?}", arch.gaps);
    assert_eq!(arch.gaps[0].piece, arch.pieces.last().unwrap().piece + 1);
    assert_eq!(arch.gaps[0].after, arch.head.as_ref().unwrap().end);
    let ended = windows(&c, &storage).await;
    assert_eq!(ended.len(), 1, "{ended:?}");
    let why = ended[0]["ended_by"].as_str().expect("the window ended");
    assert!(why.contains("cannot be restored"), "{why}");
    let out = ferry(&["backup", "list", &c, "--kind", "log", "--storage", &storage]);
    assert!(text(&out).contains("gap before piece"), "{}", text(&out));

    // the next run starts a new run after the gap
    let mut a = start_archiver(&c, url, &storage);
    a.wait_line(0, "running", |l| l == "running");
    for k in 31..=40 {
        one_txn(engine, url, k).await.unwrap();
    }
    let t = now_us();
    wait_point(&storage, &c, t, &a).await;
    let (st, out) = a.stop();
    assert!(st.success(), "{out}");
    let (arch, txns) = decode(&storage, &c).await;
    assert_eq!(runs(&arch).len(), 2, "a new run after the gap");
    assert_eq!(arch.gaps.len(), 1);
    let ks: Vec<i64> = txns
        .iter()
        .filter_map(|t| t.rows.first().and_then(|r| r.2))
        .collect();
    let mut want: Vec<i64> = (1..=20).collect();
    want.extend(31..=40);
    assert_eq!(ks, want, "the lost transactions are not in the archive");
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_lost_slot_fails_with_a_gap() {
    let src = fresh("postgres", "lg_gap").await;
    a_lost_log_is_a_recorded_gap(
        "postgres",
        &src.url,
        "SELECT pg_drop_replication_slot('{slot}')",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn mariadb_purged_binlog_fails_with_a_gap() {
    // purging binlogs would break other tests' readers: a server of its own
    let srv = tokio::task::spawn_blocking(|| ferry_testkit::private_mariadb("lg-purge"))
        .await
        .unwrap();
    ferry_testkit::mysql_exec(&srv.url_for("mysql"), "CREATE DATABASE lg_purge").await;
    let url = srv.url_for("lg_purge");
    a_lost_log_is_a_recorded_gap("mysql", &url, "").await;
    drop(srv);
}

/// Purges binlogs until the source no longer has `file` (MariaDB keeps a file
/// an unfinished binlog checkpoint still needs: retried).
async fn purge_binlogs_past(url: &str, file: &str) {
    let t0 = Instant::now();
    loop {
        exec("mysql", url, "FLUSH BINARY LOGS").await;
        let logs = common::query_lines("mysql", url, "SHOW BINARY LOGS").await;
        let newest = logs.last().unwrap().split('|').next().unwrap().to_string();
        exec("mysql", url, &format!("PURGE BINARY LOGS TO '{newest}'")).await;
        let logs = common::query_lines("mysql", url, "SHOW BINARY LOGS").await;
        if !logs.iter().any(|l| l.split('|').next() == Some(file)) {
            return;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "MariaDB keeps {file}: {logs:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

// ---------------------------------------------------------------------------
// 5. marks

#[tokio::test(flavor = "multi_thread")]
async fn marks_are_stored_once_with_valid_names() {
    let src = fresh("postgres", "lg_mark").await;
    exec(
        "postgres",
        &src.url,
        "CREATE TABLE lt (id bigint PRIMARY KEY, txn bigint, v text)",
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let storage = dir.path().to_str().unwrap().to_string();
    let c = cluster("mark");
    let mark = |name: &str| {
        ferry(&[
            "backup",
            "mark",
            &c,
            name,
            "--source",
            &src.url,
            "--storage",
            &storage,
            "-o",
            "json",
        ])
    };
    let before = ferry_testkit_lsn(&src.url).await;
    let out = mark("before-upgrade");
    assert!(out.status.success(), "{}", text(&out));
    let m: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let at = Position::parse(m["position"].as_str().unwrap()).unwrap();
    assert!(at.reached(&before), "the mark is the log position now");
    let again = mark("before-upgrade");
    assert!(!again.status.success());
    assert!(
        text(&again).contains("already has a mark"),
        "{}",
        text(&again)
    );
    let bad = mark("no/slashes");
    assert!(!bad.status.success());
    assert!(text(&bad).contains("letters, digits"), "{}", text(&bad));
    exec("postgres", &src.url, "INSERT INTO lt VALUES (1, 1, 'a')").await;
    let out = mark("after.insert_1");
    assert!(out.status.success(), "{}", text(&out));
    let out = ferry(&[
        "backup",
        "list",
        &c,
        "--kind",
        "mark",
        "--storage",
        &storage,
        "-o",
        "json",
    ]);
    let v: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    let names: Vec<&str> = v.iter().map(|m| m["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["before-upgrade", "after.insert_1"]);
    let p2 = Position::parse(v[1]["position"].as_str().unwrap()).unwrap();
    assert!(
        p2.reached(&at) && p2 != at,
        "a later mark is further along the log"
    );
}

/// The source's WAL position now.
async fn ferry_testkit_lsn(url: &str) -> Position {
    let (c, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    let s: String = c
        .query_one("SELECT pg_current_wal_lsn()::text", &[])
        .await
        .unwrap()
        .get(0);
    Position::parse(&format!("lsn:{s}")).unwrap()
}
