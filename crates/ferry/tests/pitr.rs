//! Point-in-time restores (`ferry restore create --from CLUSTER --until POINT`) of
//! the logical method against real throwaway servers, the pgBackRest way: a full
//! backup, the log archiver running (`ferry backup log run`), a marker row written
//! before each recovery target (a time, a mark, a position, a GTID), ordinary
//! updates and deletes between them; each target restored into both engines must
//! hold exactly the markers before it and every other row as the source had it at
//! that moment. Points outside the windows, deleted and damaged pieces fail the
//! precheck naming them; a replay killed with SIGKILL resumes and applies every
//! transaction exactly once.

mod common;

use common::{fresh, query_lines, text};
use ferry_backup::backup::{run_backup, BackupRequest};
use ferry_backup::log::index::{self, LogArchive};
use ferry_backup::manifest::{Manifest, SetKind};
use ferry_backup::repo::Repo;
use ferry_core::select::ObjectFilter;
use ferry_core::Endpoint;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn cluster(hint: &str) -> String {
    ferry_testkit::unique_name(hint)
        .replace('_', "-")
        .to_lowercase()
}

fn uname(hint: &str) -> String {
    ferry_testkit::unique_name(hint).replace('_', "-")
}

fn now_us() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

fn rfc(us: i64) -> String {
    chrono::DateTime::from_timestamp_micros(us)
        .unwrap()
        .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

async fn exec(engine: &str, url: &str, sql: &str) {
    if engine == "postgres" {
        ferry_testkit::pg_exec(url, sql).await;
    } else {
        ferry_testkit::mysql_exec(url, sql).await;
    }
}

/// `ferry backup log run` in the background (its output in a file of the temp
/// directory, kept when the test fails); killed when dropped.
struct Archiver(Child, std::path::PathBuf);

impl Archiver {
    fn start(cluster: &str, source: &str, storage: &str) -> Archiver {
        let log = std::env::temp_dir().join(format!("{cluster}-archiver.log"));
        let out = std::fs::File::create(&log).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_ferry"))
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
                "--quiet",
            ])
            .env("FERRY_LOG", "warn")
            .stdout(Stdio::from(out.try_clone().unwrap()))
            .stderr(Stdio::from(out))
            .spawn()
            .expect("start ferry backup log run");
        Archiver(child, log)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.1).unwrap_or_default()
    }
}

impl Drop for Archiver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
        if !std::thread::panicking() {
            let _ = std::fs::remove_file(&self.1);
        }
    }
}

async fn archive_of(storage: &str, cluster: &str) -> LogArchive {
    let repo = Repo::open(storage, None).await.unwrap();
    index::read_archive(&repo, cluster).await.unwrap()
}

/// Waits until the archive's latest backup point is at or after `t_us` (the
/// archiver writes its head as it goes).
async fn wait_point(storage: &str, cluster: &str, t_us: i64, a: &mut Archiver) {
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
        if let Some(st) = a.0.try_wait().unwrap() {
            panic!("the archiver exited ({st}):\n{}", a.log());
        }
        assert!(
            t0.elapsed() < Duration::from_secs(240),
            "the latest backup point did not reach {}: {:?}\n{}",
            rfc(t_us),
            arch.head,
            a.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn full_backup(storage: &str, cluster: &str, source: &str) -> Manifest {
    let repo = Repo::create_or_open(storage, None).await.unwrap();
    let req = BackupRequest {
        cluster: cluster.into(),
        source: Endpoint::parse(source, "FERRY_TEST_UNSET_PASSWORD").unwrap(),
        objects: ObjectFilter::default(),
        kind: SetKind::Full,
        jobs: 2,
        chunk_rows: 1000,
        quiet: true,
    };
    run_backup(&repo, &req)
        .await
        .unwrap_or_else(|e| panic!("backup of {source}: {e}"))
        .manifest
}

fn ferry_out(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(args)
        .env("FERRY_LOG", "warn")
        .env_remove("FERRY_REPO_KEY")
        .output()
        .expect("run ferry")
}

/// `ferry restore create --from CLUSTER --until POINT …`.
fn pitr(cluster: &str, until: &str, target: &str, storage: &str, name: &str) -> Output {
    ferry_out(&[
        "restore",
        "create",
        "--from",
        cluster,
        "--until",
        until,
        "--target",
        target,
        "--storage",
        storage,
        "--name",
        name,
        "--jobs",
        "2",
    ])
}

/// A time point just after what was committed so far, before anything committed
/// later. A binlog stamps commits with whole seconds: the point is then the start of
/// the next second (so the last commit's second has ended), and the next commit
/// comes after it.
async fn point_after_commit(engine: &str) -> i64 {
    let now = now_us();
    let t = if engine == "postgres" {
        now
    } else {
        (now / 1_000_000 + 1) * 1_000_000 + 10_000
    };
    while now_us() <= t + 10_000 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    t
}

/// The source's log position now (after everything committed so far; the WAL
/// insert position: the write position lags behind commits without a synchronous
/// commit).
async fn position(engine: &str, url: &str) -> String {
    if engine == "postgres" {
        let l = query_lines(engine, url, "SELECT pg_current_wal_insert_lsn()::text").await;
        format!("lsn:{}", l[0])
    } else {
        let l = query_lines(engine, url, "SHOW MASTER STATUS").await;
        let cols: Vec<&str> = l[0].split('|').collect();
        format!("binlog:{}:{}", cols[0], cols[1])
    }
}

/// The MariaDB server's GTID position now, as a restore point.
async fn gtid(url: &str) -> String {
    let l = query_lines("mysql", url, "SELECT @@gtid_binlog_pos").await;
    // one domain in the test servers: `0-1-57`
    format!("gtid:{}", l[0].split(',').next().unwrap())
}

/// Every row of the test tables, as text, in key order.
async fn state(engine: &str, url: &str) -> Vec<String> {
    let q = |t: &str| {
        if engine == "postgres" {
            // the schema a restore into PostgreSQL put the table in
            format!("SELECT '{t}', * FROM {t} ORDER BY id")
        } else {
            format!("SELECT '{t}', {t}.* FROM {t} ORDER BY id")
        }
    };
    let mut out = Vec::new();
    for t in ["items", "markers"] {
        out.extend(query_lines(engine, url, &q(t)).await);
    }
    out
}

/// The URL that reaches the restored tables of a PostgreSQL target (a MariaDB
/// source's database becomes a schema there: put it on the search path).
async fn reach(engine: &str, url: &str) -> String {
    if engine != "postgres" {
        return url.to_string();
    }
    let l = query_lines(
        engine,
        url,
        "SELECT table_schema FROM information_schema.tables WHERE table_name = 'markers' \
         AND table_schema NOT IN ('pg_catalog', 'information_schema')",
    )
    .await;
    assert_eq!(l.len(), 1, "markers restored once: {l:?}");
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}options=-csearch_path%3D{}", l[0])
}

/// Restores `cluster` to `until` into a fresh database of `engine`; it must hold
/// `expect` (the source's rows at that moment).
async fn restore_to(
    cluster: &str,
    storage: &str,
    until: &str,
    engine: &str,
    expect: &[String],
    what: &str,
) {
    let dst = fresh(engine, &format!("pitr_{engine}")).await;
    let out = pitr(cluster, until, &dst.url, storage, &uname("pitr"));
    let t = text(&out);
    assert!(
        out.status.success(),
        "restore to {what} ({until}) into {engine} failed:\n{t}"
    );
    assert!(t.contains("replayed"), "{t}");
    let got = state(engine, &reach(engine, &dst.url).await).await;
    assert_eq!(
        got, expect,
        "restore to {what} ({until}) into {engine}: rows differ from the source at that moment\n{t}"
    );
}

/// The pgBackRest method for one source engine, into both engines.
async fn markers_before_each_target(engine: &str) {
    let src = fresh(engine, &format!("pitr_src_{engine}")).await;
    let (items, markers) = if engine == "postgres" {
        (
            "CREATE TABLE items (id int PRIMARY KEY, v varchar(40), n int);
             INSERT INTO items SELECT g, 'item ' || g, g FROM generate_series(1, 300) g;",
            "CREATE TABLE markers (id int PRIMARY KEY, note varchar(40));",
        )
    } else {
        (
            "CREATE TABLE items (id int PRIMARY KEY, v varchar(40), n int);
             INSERT INTO items SELECT seq, CONCAT('item ', seq), seq FROM seq_1_to_300;",
            "CREATE TABLE markers (id int PRIMARY KEY, note varchar(40));",
        )
    };
    exec(engine, &src.url, items).await;
    exec(engine, &src.url, markers).await;
    let dir = tempfile::tempdir().unwrap();
    let storage = format!("file://{}", dir.path().display());
    Repo::create_or_open(&storage, None).await.unwrap();
    let c = cluster(&format!("pitr-{engine}"));
    let mut archiver = Archiver::start(&c, &src.url, &storage);
    // the archive has started once its head is written
    wait_point(&storage, &c, 1, &mut archiver).await;
    let set = full_backup(&storage, &c, &src.url).await;
    // a set's consistent time has whole seconds: points a second after it are inside
    tokio::time::sleep(Duration::from_millis(1100)).await;

    let step = |n: i32| {
        format!(
            "UPDATE items SET n = n + {n} WHERE id % 7 = {m};
             DELETE FROM items WHERE id BETWEEN {a} AND {b};
             INSERT INTO items VALUES ({i}, 'new {n}', {n});",
            m = n % 7,
            a = n * 10,
            b = n * 10 + 4,
            i = 1000 + n
        )
    };
    // a marker right after the set
    exec(
        engine,
        &src.url,
        "INSERT INTO markers VALUES (0, 'after the set')",
    )
    .await;
    let mut expected = Vec::new();
    let mut points: Vec<(String, &str)> = Vec::new();

    exec(engine, &src.url, &step(1)).await;
    exec(engine, &src.url, "INSERT INTO markers VALUES (1, 'one')").await;
    expected.push(state(engine, &src.url).await);
    let t1 = point_after_commit(engine).await;
    points.push((rfc(t1), "a time"));

    exec(engine, &src.url, &step(2)).await;
    exec(engine, &src.url, "INSERT INTO markers VALUES (2, 'two')").await;
    let out = ferry_out(&[
        "backup",
        "mark",
        &c,
        "m2",
        "--source",
        &src.url,
        "--storage",
        &storage,
    ]);
    assert!(out.status.success(), "{}", text(&out));
    expected.push(state(engine, &src.url).await);
    points.push(("mark:m2".into(), "a mark"));

    exec(engine, &src.url, &step(3)).await;
    exec(engine, &src.url, "INSERT INTO markers VALUES (3, 'three')").await;
    let p3 = position(engine, &src.url).await;
    let g3 = if engine == "mysql" {
        Some(gtid(&src.url).await)
    } else {
        None
    };
    expected.push(state(engine, &src.url).await);
    points.push((p3, "a position"));

    exec(engine, &src.url, &step(4)).await;
    exec(engine, &src.url, "INSERT INTO markers VALUES (4, 'four')").await;
    expected.push(state(engine, &src.url).await);
    let t4 = point_after_commit(engine).await;
    points.push((rfc(t4), "a later time"));
    // after the last target: must never appear
    exec(engine, &src.url, &step(5)).await;
    exec(engine, &src.url, "INSERT INTO markers VALUES (5, 'five')").await;
    wait_point(&storage, &c, t4, &mut archiver).await;

    // every target into the source's own engine
    for (i, (p, what)) in points.iter().enumerate() {
        let markers: Vec<&String> = expected[i]
            .iter()
            .filter(|l| l.starts_with("markers|"))
            .collect();
        assert_eq!(markers.len(), i + 2, "{markers:?}");
        restore_to(&c, &storage, p, engine, &expected[i], what).await;
    }
    if let Some(g) = &g3 {
        restore_to(&c, &storage, g, engine, &expected[2], "a GTID").await;
    }
    // and into the other engine
    let other = if engine == "postgres" {
        "mysql"
    } else {
        "postgres"
    };
    restore_to(&c, &storage, &points[1].0, other, &expected[1], points[1].1).await;
    match &g3 {
        Some(g) => restore_to(&c, &storage, g, other, &expected[2], "a GTID").await,
        None => restore_to(&c, &storage, &points[3].0, other, &expected[3], points[3].1).await,
    }

    // points outside the window: before its full set, after the latest backup point
    let dst = fresh(engine, "pitr_outside").await;
    let head = archive_of(&storage, &c).await.head.unwrap();
    for (until, why) in [
        (rfc(t1 - 3_600_000_000), "before the full set"),
        (
            rfc(head.archived_through_us + 3_600_000_000),
            "after the latest backup point",
        ),
    ] {
        let out = pitr(&c, &until, &dst.url, &storage, &uname("out"));
        let t = text(&out);
        assert_eq!(out.status.code(), Some(2), "{why}: {t}");
        assert!(
            t.contains("outside the restorable windows") && t.contains(&set.id),
            "{why}: {t}"
        );
    }
    drop(archiver);
}

#[tokio::test(flavor = "multi_thread")]
async fn pitr_postgres_source_restores_each_target_into_both_engines() {
    markers_before_each_target("postgres").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn pitr_mariadb_source_restores_each_target_into_both_engines() {
    markers_before_each_target("mysql").await;
}

/// A PostgreSQL source with its archiver running and a full set; `load` written
/// after the set. Returns the storage dir, its URL, the cluster, the source, the
/// archiver and the time everything was written by.
async fn archived_source(
    hint: &str,
    schema: &str,
    load: &[String],
) -> (tempfile::TempDir, String, String, common::Db, Archiver, i64) {
    let src = fresh("postgres", hint).await;
    exec("postgres", &src.url, schema).await;
    let dir = tempfile::tempdir().unwrap();
    let storage = format!("file://{}", dir.path().display());
    Repo::create_or_open(&storage, None).await.unwrap();
    let c = cluster(hint);
    let mut archiver = Archiver::start(&c, &src.url, &storage);
    wait_point(&storage, &c, 1, &mut archiver).await;
    full_backup(&storage, &c, &src.url).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    for sql in load {
        exec("postgres", &src.url, sql).await;
    }
    let t = point_after_commit("postgres").await;
    wait_point(&storage, &c, t, &mut archiver).await;
    (dir, storage, c, src, archiver, t)
}

/// A deleted piece and a damaged one: the precheck names each and the window it
/// breaks (and says up to when it can still be restored); a point before the
/// damage is still restorable.
#[tokio::test(flavor = "multi_thread")]
async fn pitr_precheck_names_a_deleted_or_damaged_piece_and_the_window_it_breaks() {
    // marker rows a second and a half apart: the archiver closes a piece every second
    let mut load = Vec::new();
    for i in 1..=4 {
        load.push(format!("INSERT INTO markers VALUES ({i}, 'm{i}')"));
        load.push("SELECT pg_sleep(1.5)".to_string());
    }
    let (dir, storage, c, _src, archiver, t) = archived_source(
        "pitr_piece",
        "CREATE TABLE markers (id int PRIMARY KEY, note varchar(40));",
        &load,
    )
    .await;
    drop(archiver);
    let arch = archive_of(&storage, &c).await;
    let with_rows: Vec<_> = arch.pieces.iter().filter(|p| p.rows > 0).collect();
    assert!(with_rows.len() >= 3, "{:?}", arch.pieces);
    let damaged = with_rows[with_rows.len() - 1].clone();
    let deleted = with_rows[1].clone();
    let path = |n: u64| dir.path().join(index::piece_path(&c, n));

    // one byte flipped in the last piece
    let mut b = std::fs::read(path(damaged.piece)).unwrap();
    let mid = b.len() / 2;
    b[mid] ^= 0x40;
    std::fs::write(path(damaged.piece), &b).unwrap();
    let dst = fresh("postgres", "pitr_piece_dst").await;
    let out = pitr(&c, &rfc(t), &dst.url, &storage, &uname("damaged"));
    let txt = text(&out);
    assert_eq!(out.status.code(), Some(2), "{txt}");
    let past = chrono::DateTime::from_timestamp_micros(damaged.first_commit_us.unwrap())
        .unwrap()
        .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true);
    assert!(
        txt.contains(&format!(
            "log piece {} of cluster {c} is damaged",
            damaged.piece
        )) && txt.contains(&format!("cannot be restored past {past}")),
        "{txt}"
    );
    // a point before the damaged piece is still restorable: markers 1–3
    let before = damaged.first_commit_us.unwrap() - 1;
    let out = pitr(&c, &rfc(before), &dst.url, &storage, &uname("before"));
    assert!(out.status.success(), "{}", text(&out));
    let got = query_lines("postgres", &dst.url, "SELECT id FROM markers ORDER BY id").await;
    assert_eq!(got, vec!["1", "2", "3"]);

    // an earlier piece deleted: the same point fails naming that piece
    std::fs::remove_file(path(deleted.piece)).unwrap();
    let dst2 = fresh("postgres", "pitr_piece_dst").await;
    let out = pitr(&c, &rfc(before), &dst2.url, &storage, &uname("deleted"));
    let txt = text(&out);
    assert_eq!(out.status.code(), Some(2), "{txt}");
    let past = chrono::DateTime::from_timestamp_micros(deleted.first_commit_us.unwrap())
        .unwrap()
        .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true);
    assert!(
        txt.contains(&format!(
            "log piece {} of cluster {c} is missing",
            deleted.piece
        )) && txt.contains(&format!("cannot be restored past {past}")),
        "{txt}"
    );
}

/// A replay killed with SIGKILL in the middle, run again: it completes, and every
/// archived transaction is in the target exactly once (a table without a key: a
/// transaction replayed twice would double its rows).
#[tokio::test(flavor = "multi_thread")]
async fn pitr_replay_killed_mid_way_resumes_exactly_once() {
    const TXNS: i64 = 1500;
    const ROWS: i64 = 100;
    let mut batch = String::new();
    let mut load = Vec::new();
    for i in 0..TXNS {
        batch.push_str(&format!(
            "BEGIN; INSERT INTO bulk SELECT g, 'row ' || g FROM generate_series({}, {}) g; COMMIT;\n",
            i * ROWS + 1,
            (i + 1) * ROWS
        ));
        if (i + 1) % 100 == 0 {
            load.push(std::mem::take(&mut batch));
        }
    }
    let (_dir, storage, c, _src, archiver, t) =
        archived_source("pitr_kill", "CREATE TABLE bulk (k int, v text);", &load).await;
    drop(archiver);
    let dst = fresh("postgres", "pitr_kill_dst").await;
    let name = uname("kill");
    let until = rfc(t);
    let mut child = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args([
            "restore",
            "create",
            "--from",
            &c,
            "--until",
            &until,
            "--target",
            &dst.url,
            "--storage",
            &storage,
            "--name",
            &name,
            "--jobs",
            "2",
        ])
        .env("FERRY_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // kill it once the replay has committed part of the archive
    let q = format!("SELECT phase FROM ferry.tasks WHERE task = '{name}'");
    let t0 = Instant::now();
    let killed = loop {
        if child.try_wait().unwrap().is_some() {
            break false;
        }
        let phase = ferry_testkit_query(&dst.url, &q).await;
        if phase.as_deref() == Some("incremental") {
            child.kill().unwrap();
            child.wait().unwrap();
            break true;
        }
        assert!(t0.elapsed() < Duration::from_secs(300), "no replay");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(
        killed,
        "the replay finished before it could be killed: make it larger"
    );
    let part = query_lines("postgres", &dst.url, "SELECT count(*) FROM bulk").await;
    let part: i64 = part[0].parse().unwrap();
    assert!(part < TXNS * ROWS, "killed mid-way: {part} rows");
    // the same command again
    let out = pitr(&c, &until, &dst.url, &storage, &name);
    let txt = text(&out);
    assert!(out.status.success(), "{txt}");
    assert!(txt.contains("interrupted while replaying"), "{txt}");
    let got = query_lines(
        "postgres",
        &dst.url,
        "SELECT count(*), count(DISTINCT k), min(k), max(k) FROM bulk",
    )
    .await;
    assert_eq!(
        got,
        vec![format!("{n}|{n}|1|{n}", n = TXNS * ROWS)],
        "{txt}"
    );
    // and once more: finished, refused
    let out = pitr(&c, &until, &dst.url, &storage, &name);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("already finished"), "{}", text(&out));
}

/// The first column of the first row, or `None` (no row, no table yet).
async fn ferry_testkit_query(url: &str, sql: &str) -> Option<String> {
    let (c, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .ok()?;
    tokio::spawn(conn);
    let rows = c.simple_query(sql).await.ok()?;
    rows.into_iter().find_map(|m| match m {
        tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_string),
        _ => None,
    })
}

/// A restored table's columns changed between the set and the point: the replay
/// refuses it naming the table and when (a point before the change restores).
#[tokio::test(flavor = "multi_thread")]
async fn pitr_refuses_a_schema_change_of_a_restored_table_before_the_point() {
    for engine in ["postgres", "mysql"] {
        let src = fresh(engine, &format!("pitr_ddl_{engine}")).await;
        exec(
            engine,
            &src.url,
            "CREATE TABLE markers (id int PRIMARY KEY, note varchar(40));
             CREATE TABLE other (id int PRIMARY KEY);",
        )
        .await;
        let dir = tempfile::tempdir().unwrap();
        let storage = format!("file://{}", dir.path().display());
        Repo::create_or_open(&storage, None).await.unwrap();
        let c = cluster(&format!("pitr-ddl-{engine}"));
        let mut archiver = Archiver::start(&c, &src.url, &storage);
        wait_point(&storage, &c, 1, &mut archiver).await;
        full_backup(&storage, &c, &src.url).await;
        tokio::time::sleep(Duration::from_millis(1100)).await;
        exec(engine, &src.url, "INSERT INTO markers VALUES (1, 'before')").await;
        let before = point_after_commit(engine).await;
        exec(engine, &src.url, "ALTER TABLE markers ADD COLUMN extra int").await;
        exec(
            engine,
            &src.url,
            "INSERT INTO markers VALUES (2, 'after', 7)",
        )
        .await;
        let after = point_after_commit(engine).await;
        wait_point(&storage, &c, after, &mut archiver).await;
        drop(archiver);

        let dst = fresh(engine, "pitr_ddl_dst").await;
        let out = pitr(&c, &rfc(after), &dst.url, &storage, &uname("ddl"));
        let t = text(&out);
        assert_eq!(out.status.code(), Some(1), "{engine}: {t}");
        assert!(
            t.contains("markers changed") && t.contains("restore to a point before that change"),
            "{engine}: {t}"
        );
        let dst = fresh(engine, "pitr_ddl_dst").await;
        let out = pitr(&c, &rfc(before), &dst.url, &storage, &uname("ddl"));
        assert!(out.status.success(), "{engine}: {}", text(&out));
        let got = query_lines(
            engine,
            &reach(engine, &dst.url).await,
            "SELECT id, note FROM markers",
        )
        .await;
        assert_eq!(got, vec!["1|before"], "{engine}");
    }
}

/// The newest set before the point is the base, an incremental one too (its chain
/// restored first); transactions after it come from the archive.
#[tokio::test(flavor = "multi_thread")]
async fn pitr_starts_from_the_newest_incremental_set_before_the_point() {
    for engine in ["postgres", "mysql"] {
        let src = fresh(engine, &format!("pitr_inc_{engine}")).await;
        exec(
            engine,
            &src.url,
            "CREATE TABLE items (id int PRIMARY KEY, v varchar(40), n int);
             CREATE TABLE markers (id int PRIMARY KEY, note varchar(40));
             INSERT INTO items VALUES (1, 'a', 1), (2, 'b', 2), (3, 'c', 3);",
        )
        .await;
        let dir = tempfile::tempdir().unwrap();
        let storage = format!("file://{}", dir.path().display());
        let repo = Repo::create_or_open(&storage, None).await.unwrap();
        let c = cluster(&format!("pitr-inc-{engine}"));
        let mut archiver = Archiver::start(&c, &src.url, &storage);
        wait_point(&storage, &c, 1, &mut archiver).await;
        let full = full_backup(&storage, &c, &src.url).await;
        exec(engine, &src.url, "UPDATE items SET n = 10 WHERE id = 1").await;
        exec(
            engine,
            &src.url,
            "INSERT INTO markers VALUES (1, 'in the incremental')",
        )
        .await;
        let req = BackupRequest {
            cluster: c.clone(),
            source: Endpoint::parse(&src.url, "FERRY_TEST_UNSET_PASSWORD").unwrap(),
            objects: ObjectFilter::default(),
            kind: SetKind::Incremental,
            jobs: 2,
            chunk_rows: 1000,
            quiet: true,
        };
        let inc = run_backup(&repo, &req)
            .await
            .unwrap_or_else(|e| panic!("incremental of {engine}: {e}"))
            .manifest;
        assert_eq!(inc.parent.as_deref(), Some(full.id.as_str()));
        tokio::time::sleep(Duration::from_millis(1100)).await;
        exec(engine, &src.url, "DELETE FROM items WHERE id = 2").await;
        exec(
            engine,
            &src.url,
            "INSERT INTO markers VALUES (2, 'archived')",
        )
        .await;
        let expected = state(engine, &src.url).await;
        let t = point_after_commit(engine).await;
        exec(engine, &src.url, "INSERT INTO markers VALUES (3, 'after')").await;
        wait_point(&storage, &c, t, &mut archiver).await;
        drop(archiver);

        let dst = fresh(engine, "pitr_inc_dst").await;
        let out = pitr(&c, &rfc(t), &dst.url, &storage, &uname("inc"));
        let txt = text(&out);
        assert!(out.status.success(), "{engine}: {txt}");
        assert!(
            txt.contains(&format!(
                "chain {} (full) → {} (incremental)",
                full.id, inc.id
            )),
            "{engine}: the incremental is the base: {txt}"
        );
        let got = state(engine, &reach(engine, &dst.url).await).await;
        assert_eq!(got, expected, "{engine}: {txt}");
    }
}

/// PostgreSQL arrays replayed from the archive: in PostgreSQL's own form into
/// PostgreSQL (equal to the source), as JSON into MariaDB.
#[tokio::test(flavor = "multi_thread")]
async fn pitr_replays_postgres_arrays_into_either_engine() {
    let load = vec![
        "INSERT INTO arr VALUES (2, '{x,\"y z\",NULL}', '{{1,2},{3,4}}')".to_string(),
        "UPDATE arr SET tags = '{changed}' WHERE id = 1".to_string(),
        "INSERT INTO arr VALUES (3, '{}', NULL)".to_string(),
    ];
    let (_dir, storage, c, src, archiver, t) = archived_source(
        "pitr_arr",
        "CREATE TABLE arr (id int PRIMARY KEY, tags text[], nums int[]);
         INSERT INTO arr VALUES (1, '{a,b}', '{1,2}');",
        &load,
    )
    .await;
    drop(archiver);
    let q = "SELECT id, tags::text, nums::text FROM arr ORDER BY id";
    let expected = query_lines("postgres", &src.url, q).await;
    let dst = fresh("postgres", "pitr_arr_pg").await;
    let out = pitr(&c, &rfc(t), &dst.url, &storage, &uname("arr"));
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(query_lines("postgres", &dst.url, q).await, expected);
    let dst = fresh("mysql", "pitr_arr_my").await;
    let out = pitr(&c, &rfc(t), &dst.url, &storage, &uname("arr"));
    assert!(out.status.success(), "{}", text(&out));
    let got = query_lines("mysql", &dst.url, "SELECT id, tags FROM arr ORDER BY id").await;
    assert_eq!(got.len(), 3, "{got:?}");
    let tags: serde_json::Value = serde_json::from_str(got[1].split_once('|').unwrap().1).unwrap();
    assert_eq!(tags, serde_json::json!(["x", "y z", null]), "{got:?}");
    let tags: serde_json::Value = serde_json::from_str(got[0].split_once('|').unwrap().1).unwrap();
    assert_eq!(tags, serde_json::json!(["changed"]), "{got:?}");
}
