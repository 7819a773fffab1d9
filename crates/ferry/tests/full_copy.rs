//! Full-copy behaviour beyond value fidelity: crash and resume, refusing occupied
//! targets, compare catching real differences, one consistent snapshot under
//! concurrent writes, and secrets kept out of output.

mod common;

use common::{ferry, fresh, query_lines, task_file, task_name, text};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

async fn mysql_accounts(url: &str, rows: u64) {
    ferry_testkit::mysql_exec(
        url,
        &format!(
            "CREATE TABLE accounts (id int PRIMARY KEY, balance bigint NOT NULL, owner varchar(40));
             INSERT INTO accounts SELECT seq, 100, CONCAT('owner ', seq) FROM seq_1_to_{rows};"
        ),
    )
    .await;
}

async fn pg_accounts(url: &str, rows: u64) {
    ferry_testkit::pg_exec(
        url,
        &format!(
            "CREATE TABLE accounts (id int PRIMARY KEY, balance bigint NOT NULL, owner text);
             INSERT INTO accounts SELECT g, 100, 'owner ' || g FROM generate_series(1, {rows}) g;"
        ),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_mid_copy_then_resume_copies_the_rest_once() {
    let src = fresh("mysql", "resume_src").await;
    let dst = fresh("postgres", "resume_dst").await;
    mysql_accounts(&src.url, 200_000).await;
    ferry_testkit::mysql_exec(&src.url, "CREATE TABLE nokey (a int, b text); INSERT INTO nokey SELECT seq % 7, 'dup' FROM seq_1_to_5000;").await;
    let dir = tempfile::tempdir().unwrap();
    let rename = format!(
        "objects:\n  rename:\n    \"{}\": app\nchunk_rows: 2000\n",
        src.name
    );
    let task = task_file(dir.path(), &src.url, &dst.url, &rename);
    let name = task_name(&task);

    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(["run", "--quiet", "--jobs", "1", &task])
        .env("FERRY_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // wait for an observable fact: some chunks committed on the target
    let t0 = Instant::now();
    let done = loop {
        let q = format!("SELECT count(*) FROM ferry.chunks WHERE task = '{name}' AND done = 1");
        let n: u64 = match tokio_postgres::connect(&dst.url, tokio_postgres::NoTls).await {
            Ok((c, conn)) => {
                tokio::spawn(conn);
                c.query_one(q.as_str(), &[])
                    .await
                    .map(|r| r.get::<_, i64>(0) as u64)
                    .unwrap_or(0)
            }
            Err(_) => 0,
        };
        if n >= 5 {
            break n;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "ferry finished before it could be killed; make the table bigger"
        );
        assert!(
            t0.elapsed() < Duration::from_secs(120),
            "no chunk was committed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();

    let again = ferry(&["run", "--quiet", &task]);
    let out = text(&again);
    assert!(again.status.success(), "{out}");
    assert!(out.contains("resumed"), "{out}");
    let skipped: usize = out
        .split("resumed, ")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(
        skipped as u64 >= done,
        "only {skipped} chunks skipped, {done} were done before the kill:\n{out}"
    );
    let cmp = ferry(&["compare", &task]);
    assert!(cmp.status.success(), "{}", text(&cmp));
    let counts = query_lines(
        "postgres",
        &dst.url,
        "SELECT count(*), count(DISTINCT id), sum(balance) FROM app.accounts;\nSELECT count(*) FROM app.nokey",
    )
    .await;
    assert_eq!(
        counts,
        vec!["200000|200000|20000000".to_string(), "5000".to_string()]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_occupied_target_is_refused_unless_told_how_to_treat_it() {
    let src = fresh("postgres", "occupied_src").await;
    let dst = fresh("mysql", "occupied_dst").await;
    pg_accounts(&src.url, 100).await;
    ferry_testkit::mysql_exec(&dst.url, "CREATE TABLE accounts (id int PRIMARY KEY, balance bigint); INSERT INTO accounts VALUES (7, 7);").await;
    let dir = tempfile::tempdir().unwrap();
    let task = task_file(dir.path(), &src.url, &dst.url, "");

    let check = ferry(&["check", &task]);
    assert_eq!(check.status.code(), Some(1), "{}", text(&check));
    let out = text(&check);
    assert!(
        out.contains("FAIL target is empty")
            && out.contains("accounts (has rows)")
            && out.contains("existing_data"),
        "{out}"
    );
    let run = ferry(&["run", "--quiet", &task]);
    assert!(!run.status.success());
    assert!(text(&run).contains("existing_data: drop"), "{}", text(&run));
    // the user's row is untouched
    assert_eq!(
        query_lines("mysql", &dst.url, "SELECT id, balance FROM accounts").await,
        vec!["7|7"]
    );

    let drop_task = task_file(dir.path(), &src.url, &dst.url, "existing_data: drop\n");
    let run = ferry(&["run", "--quiet", &drop_task]);
    assert!(run.status.success(), "{}", text(&run));
    assert!(ferry(&["compare", &drop_task]).status.success());
}

#[tokio::test(flavor = "multi_thread")]
async fn compare_finds_changed_missing_and_extra_rows() {
    let src = fresh("postgres", "cmp_src").await;
    let dst = fresh("postgres", "cmp_dst").await;
    pg_accounts(&src.url, 5000).await;
    ferry_testkit::pg_exec(
        &src.url,
        "CREATE TABLE nokey (a int); INSERT INTO nokey VALUES (1), (2), (2);",
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let task = task_file(dir.path(), &src.url, &dst.url, "chunk_rows: 1000\n");
    assert!(ferry(&["run", "--quiet", &task]).status.success());
    let cmp = ferry(&["compare", &task]);
    assert!(cmp.status.success(), "{}", text(&cmp));

    ferry_testkit::pg_exec(
        &dst.url,
        "UPDATE accounts SET owner = 'changed' WHERE id = 1500;
         DELETE FROM accounts WHERE id = 4200;
         INSERT INTO accounts VALUES (999999, 1, 'only on target');
         INSERT INTO nokey VALUES (2);",
    )
    .await;
    let cmp = ferry(&["compare", &task]);
    let out = text(&cmp);
    assert_eq!(cmp.status.code(), Some(1), "{out}");
    assert!(
        out.contains("[1001, 2001): source 1000 rows, target 1000 rows (contents differ)"),
        "{out}"
    );
    assert!(
        out.contains("[4001, +inf): source 1000 rows, target 1000 rows"),
        "{out}"
    );
    assert!(
        out.contains("whole table: source 3 rows, target 4 rows"),
        "{out}"
    );
    assert!(out.contains("2 of 2 tables differ"), "{out}");
}

/// Schema and table names with dots: a quoted pattern selects exactly them, compare
/// finds them on the target, an ambiguous unquoted pattern is refused and a pattern
/// that selects nothing fails the check and the run instead of passing silently.
#[tokio::test(flavor = "multi_thread")]
async fn names_with_dots_are_selected_copied_and_compared() {
    let src = fresh("postgres", "dots_src").await;
    let dst = fresh("postgres", "dots_dst").await;
    ferry_testkit::pg_exec(
        &src.url,
        r#"CREATE SCHEMA "a.b"; CREATE SCHEMA a;
           CREATE TABLE "a.b".t1 (id int PRIMARY KEY, v text);
           CREATE TABLE "a.b"."t.2" (id int PRIMARY KEY, v text);
           CREATE TABLE "a.b".t3 (v text);
           CREATE TABLE a."b.t1" (id int PRIMARY KEY);
           INSERT INTO "a.b".t1 SELECT g, 'x' || g FROM generate_series(1, 50) g;
           INSERT INTO "a.b"."t.2" VALUES (1, 'one'), (2, 'two');
           INSERT INTO "a.b".t3 VALUES ('k'), ('k');
           INSERT INTO a."b.t1" VALUES (7);"#,
    )
    .await;
    let dir = tempfile::tempdir().unwrap();

    // `a.b.*` reads as schema `a`, table `b.*` or schema `a.b`, any table: refused
    let ambiguous = task_file(
        dir.path(),
        &src.url,
        &dst.url,
        "objects:\n  include: ['a.b.*']\n",
    );
    let check = ferry(&["check", &ambiguous]);
    assert!(!check.status.success(), "{}", text(&check));
    assert!(
        text(&check).contains("more than one dot"),
        "{}",
        text(&check)
    );

    // a pattern that selects nothing is named, at check and at run
    let typo = task_file(
        dir.path(),
        &src.url,
        &dst.url,
        "objects:\n  include: ['\"a.b\".*', 'nosuch.*']\n",
    );
    let check = ferry(&["check", &typo]);
    assert!(!check.status.success(), "{}", text(&check));
    assert!(text(&check).contains("\"nosuch.*\""), "{}", text(&check));
    let run = ferry(&["run", "--quiet", &typo]);
    assert!(!run.status.success(), "{}", text(&run));
    assert!(text(&run).contains("\"nosuch.*\""), "{}", text(&run));

    let task = task_file(
        dir.path(),
        &src.url,
        &dst.url,
        "chunk_rows: 10\nobjects:\n  include: ['\"a.b\".*']\n  exclude: ['\"a.b\".nosuch']\n",
    );
    let check = ferry(&["check", &task]);
    assert!(check.status.success(), "{}", text(&check));
    // an exclude pattern that leaves nothing out is a warning, naming it
    assert!(
        text(&check).contains("nosuch\" excludes no selected table"),
        "{}",
        text(&check)
    );
    let run = ferry(&["run", "--quiet", &task]);
    assert!(run.status.success(), "{}", text(&run));
    let cmp = ferry(&["compare", &task]);
    let out = text(&cmp);
    assert!(cmp.status.success(), "{out}");
    assert!(!out.contains("missing"), "{out}");
    assert_eq!(
        query_lines(
            "postgres",
            &dst.url,
            r#"SELECT (SELECT count(*) FROM "a.b".t1), (SELECT count(*) FROM "a.b"."t.2"),
                      (SELECT count(*) FROM "a.b".t3),
                      (SELECT count(*) FROM pg_namespace WHERE nspname = 'a')"#
        )
        .await,
        vec!["50|2|2|0"]
    );

    // and a table whose name has a dot, by quoting the table part
    let dst2 = fresh("postgres", "dots_dst2").await;
    let one = task_file(
        dir.path(),
        &src.url,
        &dst2.url,
        "objects:\n  include: ['a.\"b.t1\"']\n",
    );
    let run = ferry(&["run", "--quiet", &one]);
    assert!(run.status.success(), "{}", text(&run));
    let cmp = ferry(&["compare", &one]);
    assert!(cmp.status.success(), "{}", text(&cmp));
    assert_eq!(
        query_lines("postgres", &dst2.url, r#"SELECT id FROM a."b.t1""#).await,
        vec!["7"]
    );
}

/// PostgreSQL tables whose names differ only in case land in distinct MariaDB tables
/// and distinct checkpoint rows (checkpoint tables an earlier Ferry created with the
/// server's case-insensitive default collation are altered by `ensure`).
#[tokio::test(flavor = "multi_thread")]
async fn names_differing_only_in_case_keep_their_own_checkpoint_rows() {
    let src = fresh("postgres", "case_src").await;
    let dst = fresh("mysql", "case_dst").await;
    ferry_testkit::pg_exec(
        &src.url,
        r#"CREATE SCHEMA "A"; CREATE SCHEMA a;
           CREATE TABLE "A"."T" (id int PRIMARY KEY, v text);
           CREATE TABLE a.t (id int PRIMARY KEY, v text);
           INSERT INTO "A"."T" VALUES (1, 'upper');
           INSERT INTO a.t VALUES (1, 'lower'), (2, 'lower two');"#,
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let (upper, lower) = (format!("{}_A", dst.name), format!("{}_a", dst.name));
    let task = task_file(
        dir.path(),
        &src.url,
        &dst.url,
        &format!("objects:\n  rename:\n    \"A\": {upper}\n    \"a\": {lower}\n"),
    );
    let check = ferry(&["check", &task]);
    assert!(check.status.success(), "{}", text(&check));
    let run = ferry(&["run", "--quiet", &task]);
    assert!(run.status.success(), "{}", text(&run));
    let cmp = ferry(&["compare", &task]);
    assert!(cmp.status.success(), "{}", text(&cmp));
    assert_eq!(
        query_lines(
            "mysql",
            &dst.url,
            &format!(
                "SELECT (SELECT group_concat(v ORDER BY id) FROM `{upper}`.`T`), \
                 (SELECT group_concat(v ORDER BY id) FROM `{lower}`.`t`), \
                 (SELECT count(*) FROM ferry.tables WHERE task = '{}'), \
                 (SELECT collation_name FROM information_schema.columns \
                  WHERE table_schema = 'ferry' AND table_name = 'tables' AND column_name = 'table_name')",
                task_name(&task)
            )
        )
        .await,
        vec!["upper|lower,lower two|2|utf8mb4_bin"]
    );
}

/// Money moves between accounts in other chunks while the copy runs; the total is
/// invariant, so the target's total equals it only if every chunk of every worker
/// was read from the same instant.
async fn snapshot_is_consistent(source: &str) {
    let src = fresh(source, "snap_src").await;
    let dst = fresh(
        if source == "mysql" {
            "postgres"
        } else {
            "mysql"
        },
        "snap_dst",
    )
    .await;
    let rows = 100_000u64;
    if source == "mysql" {
        mysql_accounts(&src.url, rows).await;
    } else {
        pg_accounts(&src.url, rows).await;
    }
    let stop = Arc::new(AtomicBool::new(false));
    let moved = Arc::new(AtomicU64::new(0));
    let writer = {
        let (stop, moved, url, source) = (
            stop.clone(),
            moved.clone(),
            src.url.clone(),
            source.to_string(),
        );
        tokio::spawn(async move {
            let mut i: u64 = 0;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                let (a, b) = (1 + (i * 7919) % rows, 1 + (i * 104_729 + rows / 2) % rows);
                let sql = format!(
                    "BEGIN; UPDATE accounts SET balance = balance - 1 WHERE id = {a}; \
                     UPDATE accounts SET balance = balance + 1 WHERE id = {b}; COMMIT;"
                );
                if source == "mysql" {
                    ferry_testkit::mysql_exec(&url, &sql).await;
                } else {
                    ferry_testkit::pg_exec(&url, &sql).await;
                }
                moved.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    while moved.load(Ordering::Relaxed) < 20 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let dir = tempfile::tempdir().unwrap();
    let extra = if source == "mysql" {
        format!(
            "objects:\n  rename:\n    \"{}\": app\nchunk_rows: 2000\n",
            src.name
        )
    } else {
        "chunk_rows: 2000\n".into()
    };
    let task = task_file(dir.path(), &src.url, &dst.url, &extra);
    let before = moved.load(Ordering::Relaxed);
    let run = ferry(&["run", "--quiet", "--jobs", "3", &task]);
    let after = moved.load(Ordering::Relaxed);
    stop.store(true, Ordering::Relaxed);
    writer.await.unwrap();
    assert!(run.status.success(), "{}", text(&run));
    assert!(
        after > before,
        "no transfer happened during the copy; the test proves nothing"
    );
    assert!(text(&run).contains("snapshot position: "), "{}", text(&run));
    let (engine, table) = if source == "mysql" {
        ("postgres", "app.accounts")
    } else {
        ("mysql", "accounts")
    };
    let total = query_lines(
        engine,
        &dst.url,
        &format!("SELECT count(*), sum(balance) FROM {table}"),
    )
    .await;
    assert_eq!(
        total,
        vec![format!("{rows}|{}", rows * 100)],
        "{} transfers during the copy",
        after - before
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn mysql_snapshot_is_consistent_across_workers() {
    snapshot_is_consistent("mysql").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_snapshot_is_consistent_across_workers() {
    snapshot_is_consistent("postgres").await;
}

#[tokio::test]
async fn passwords_never_appear_in_output() {
    let dir = tempfile::tempdir().unwrap();
    let port = ferry_testkit::mariadb().port;
    // a wrong password for a real server, and an unreachable PostgreSQL
    let task = task_file(
        dir.path(),
        &format!("mysql://root:Sup3rSecret@127.0.0.1:{port}/nope"),
        "postgres://postgres:An0therSecret@127.0.0.1:1/x",
        "",
    );
    for cmd in ["check", "run", "compare"] {
        let o = ferry(&[cmd, &task]);
        let out = text(&o);
        assert!(!o.status.success(), "{cmd}: {out}");
        assert!(
            !out.contains("Sup3rSecret") && !out.contains("An0therSecret"),
            "{cmd} leaked a password:\n{out}"
        );
    }
    std::env::set_var("FERRY_SOURCE_PASSWORD", "EnvSecret");
    let task = task_file(
        dir.path(),
        &format!("mysql://root@127.0.0.1:{port}/nope"),
        "postgres://postgres@127.0.0.1:1/x",
        "",
    );
    let o = ferry(&["check", &task]);
    assert!(!text(&o).contains("EnvSecret"));
}

#[test]
fn a_bad_task_file_is_explained() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("bad.yaml");
    std::fs::write(&p, "name: shop\nkind: migration\nmode: full\nsource: mysql://root:pw@h/shop\ntarget: postgres://h/shop\nobjets: {}\n").unwrap();
    let o = ferry(&["check", p.to_str().unwrap()]);
    let out = text(&o);
    assert_eq!(o.status.code(), Some(2), "{out}");
    assert!(out.contains("objets") && out.contains("bad.yaml"), "{out}");
    assert!(!out.contains(":pw@"), "{out}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_mariadb_user_without_reload_still_gets_one_consistent_snapshot() {
    let src = fresh("mysql", "noreload_src").await;
    let dst = fresh("postgres", "noreload_dst").await;
    mysql_accounts(&src.url, 20_000).await;
    let user = format!("lim{}", std::process::id());
    let mut grants = String::new();
    for host in ["localhost", "127.0.0.1", "%"] {
        grants.push_str(&format!(
            "CREATE USER IF NOT EXISTS '{user}'@'{host}' IDENTIFIED BY 'pw'; \
             GRANT SELECT, SHOW VIEW ON `{}`.* TO '{user}'@'{host}'; ",
            src.name
        ));
    }
    ferry_testkit::mysql_exec(&src.url, &grants).await;
    let limited = src
        .url
        .replacen("mysql://root@", &format!("mysql://{user}:pw@"), 1);
    let dir = tempfile::tempdir().unwrap();
    let extra = format!(
        "objects:\n  rename:\n    \"{}\": app\nchunk_rows: 2000\n",
        src.name
    );
    let task = task_file(dir.path(), &limited, &dst.url, &extra);
    let run = ferry(&["run", "--quiet", "--jobs", "3", &task]);
    let out = text(&run);
    assert!(run.status.success(), "{out}");
    assert!(
        out.contains("lacks RELOAD") && out.contains("one worker instead of 3"),
        "{out}"
    );
    assert!(out.contains("snapshot position: binlog:"), "{out}");
    assert!(!out.contains(":pw@"), "{out}");
    let cmp = ferry(&["compare", &task]);
    assert!(cmp.status.success(), "{}", text(&cmp));
}
