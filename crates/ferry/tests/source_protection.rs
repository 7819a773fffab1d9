//! Source protection against real servers: `ferry check` reports what the source
//! does with a log a task falls behind on, `ferry status` warns when the task's slot
//! retains more WAL than its threshold, and a lost slot or a purged binlog is a
//! definite failure saying "full resync needed" — never a silent restart from "now".

mod common;

use common::{ferry, fresh, query_lines, text, Db};
use std::time::{Duration, Instant};

/// A full+incremental task file for `src` → `dst` with `extra` lines.
fn task(dir: &std::path::Path, src: &Db, dst: &Db, extra: &str) -> String {
    let path = common::task_file(dir, &src.url, &dst.url, extra);
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace("mode: full\n", "mode: full+incremental\n");
    std::fs::write(&path, text).unwrap();
    path
}

async fn count(engine: &str, url: &str, table: &str) -> String {
    query_lines(engine, url, &format!("SELECT count(*) FROM {table}"))
        .await
        .concat()
}

/// A private PostgreSQL server that keeps at most 1 MB of WAL for a slot: the task's
/// slot is invalidated while the task is stopped and the source writes. `ferry check`
/// reported the limit, `ferry status` warned (threshold 1 byte) and then names the
/// loss; the next run fails with "full resync needed", non-zero, applying nothing.
#[tokio::test(flavor = "multi_thread")]
async fn a_lost_slot_fails_the_run_with_full_resync_needed() {
    let srv = tokio::task::spawn_blocking(|| {
        ferry_testkit::private_postgres_with("protect-lost", "-c max_slot_wal_keep_size=1MB")
    })
    .await
    .unwrap();
    for db in ["lost_src", "lost_dst"] {
        ferry_testkit::pg_exec(&srv.url_for("postgres"), &format!("CREATE DATABASE {db}")).await;
    }
    let db = |name: &str| Db {
        url: srv.url_for(name),
        name: name.into(),
        guard: None,
    };
    let (src, dst) = (db("lost_src"), db("lost_dst"));
    ferry_testkit::pg_exec(
        &src.url,
        "CREATE TABLE t (id bigint PRIMARY KEY, pad text);
         INSERT INTO t SELECT g, 'x' FROM generate_series(1, 10) g;",
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let task = task(
        dir.path(),
        &src,
        &dst,
        "source_protection: {max_retained_wal: 1}\n",
    );

    let check = ferry(&["check", &task]);
    let out = text(&check);
    assert!(check.status.success(), "{out}");
    assert!(
        out.contains("max_slot_wal_keep_size = 1MB")
            && out.contains("invalidated and its task needs a full resync"),
        "{out}"
    );

    let run = ferry(&["run", "--exit-when-caught-up", &task]);
    assert!(run.status.success(), "{}", text(&run));
    assert_eq!(count("postgres", &dst.url, "t").await, "10");

    // stopped: the slot retains WAL for no one, above the task's 1-byte threshold
    ferry_testkit::pg_exec(&src.url, "INSERT INTO t VALUES (11, 'after');").await;
    let status = text(&ferry(&["status", &task]));
    assert!(
        status.contains("warning:        source retains ")
            && status.contains("(threshold 1 bytes)")
            && status.contains("nothing reads it"),
        "{status}"
    );

    // the source writes and retires WAL segments until the slot is invalidated
    let slot = format!("ferry_{}", common::task_name(&task).replace('-', "_"));
    let t0 = Instant::now();
    for i in 0.. {
        ferry_testkit::pg_exec(
            &src.url,
            &format!(
                "INSERT INTO t SELECT g, repeat('p', 2000) FROM generate_series({}, {}) g;
                 SELECT pg_switch_wal(); CHECKPOINT;",
                1000 + i * 1000,
                1999 + i * 1000
            ),
        )
        .await;
        let st = query_lines(
            "postgres",
            &src.url,
            &format!("SELECT wal_status FROM pg_replication_slots WHERE slot_name = '{slot}'"),
        )
        .await
        .concat();
        if st == "lost" {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(120),
            "slot {slot} never lost ({st})"
        );
    }

    let status = text(&ferry(&["status", &task]));
    assert!(
        status.contains("full resync needed") && status.contains("wal_status lost"),
        "{status}"
    );

    let run = ferry(&["run", "--exit-when-caught-up", &task]);
    let out = text(&run);
    assert!(!run.status.success(), "{out}");
    assert_ne!(run.status.code(), Some(0));
    assert!(
        out.contains(&format!("replication slot {slot} was invalidated"))
            && out.contains("full resync needed")
            && out.contains("existing_data: drop"),
        "{out}"
    );
    // not "kept for the resume": a lost slot is never resumed from
    assert!(!out.contains("for the resume"), "{out}");
    assert_eq!(
        count("postgres", &dst.url, "t").await,
        "10",
        "nothing may be applied from a position the slot no longer has"
    );
    // and it stays failed: a second run does not start over from "now"
    let again = ferry(&["run", "--exit-when-caught-up", &task]);
    assert!(!again.status.success(), "{}", text(&again));
    assert!(text(&again).contains("full resync needed"));
    assert_eq!(count("postgres", &dst.url, "t").await, "10");
}

/// A private MariaDB source: the task is stopped, the source writes and its binlogs
/// are purged past the task's checkpoint. `ferry check` reported the retention; the
/// next run fails with "full resync needed" naming the missing file, applying nothing.
#[tokio::test(flavor = "multi_thread")]
async fn a_purged_binlog_fails_the_run_naming_the_missing_file() {
    let srv = tokio::task::spawn_blocking(|| ferry_testkit::private_mariadb("protect-purge"))
        .await
        .unwrap();
    let admin = srv.url_for("");
    query_lines("mysql", &admin, "CREATE DATABASE purge_src").await;
    let src = Db {
        url: srv.url_for("purge_src"),
        name: "purge_src".into(),
        guard: None,
    };
    let dst = fresh("postgres", "purge_dst").await;
    query_lines(
        "mysql",
        &src.url,
        "CREATE TABLE t (id bigint PRIMARY KEY, pad text);\n\
         INSERT INTO t SELECT seq, 'x' FROM seq_1_to_10",
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let task = task(dir.path(), &src, &dst, "");

    let check = ferry(&["check", &task]);
    let out = text(&check);
    assert!(out.contains("source binlog retention"), "{out}");
    assert!(out.contains("binlog_expire_logs_seconds = "), "{out}");

    let run = ferry(&["run", "--exit-when-caught-up", &task]);
    assert!(run.status.success(), "{}", text(&run));
    assert_eq!(count("postgres", &dst.url, "purge_src.t").await, "10");
    // a change applied by a second run: the target records its source commit time
    query_lines("mysql", &src.url, "INSERT INTO t VALUES (11, 'applied')").await;
    let run = ferry(&["run", "--exit-when-caught-up", &task]);
    assert!(run.status.success(), "{}", text(&run));
    assert_eq!(count("postgres", &dst.url, "purge_src.t").await, "11");
    // binlogs expire after 10 s: the change the stopped task needs next is soon older
    // than 80% of that
    query_lines(
        "mysql",
        &admin,
        "SET GLOBAL binlog_expire_logs_seconds = 10",
    )
    .await;
    tokio::time::sleep(Duration::from_secs(9)).await;
    let status = text(&ferry(&["status", &task]));
    assert!(
        status.contains("warning:        the oldest binlog this task still needs")
            && status.contains("source purges binlogs after 10 s")
            && status.contains("less than 20% headroom"),
        "{status}"
    );
    let applied = status
        .lines()
        .find_map(|l| l.trim().strip_prefix("applied:"))
        .unwrap_or_else(|| panic!("{status}"))
        .trim()
        .to_string();
    // binlog:<file>:<offset>
    let file = applied.split(':').nth(1).unwrap().to_string();

    query_lines("mysql", &src.url, "INSERT INTO t VALUES (12, 'after')").await;
    // MariaDB keeps a binlog until InnoDB no longer needs it for crash recovery:
    // rotate and purge until the checkpoint's file is gone
    let t0 = Instant::now();
    let oldest = loop {
        query_lines("mysql", &admin, "FLUSH BINARY LOGS").await;
        let logs = query_lines("mysql", &admin, "SHOW BINARY LOGS").await;
        let newest = logs.last().unwrap().split('|').next().unwrap().to_string();
        query_lines("mysql", &admin, &format!("PURGE BINARY LOGS TO '{newest}'")).await;
        let logs = query_lines("mysql", &admin, "SHOW BINARY LOGS").await;
        if !logs
            .iter()
            .any(|l| l.split('|').next() == Some(file.as_str()))
        {
            break logs[0].split('|').next().unwrap().to_string();
        }
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "{file} never purged: {logs:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };

    let status = text(&ferry(&["status", &task]));
    assert!(
        status.contains(&format!("binlog purged: the source no longer has {file}")),
        "{status}"
    );

    let run = ferry(&["run", "--exit-when-caught-up", &task]);
    let out = text(&run);
    assert!(!run.status.success(), "{out}");
    assert!(
        out.contains(&format!("the source no longer has {file}"))
            && out.contains(&format!("its oldest binlog is {oldest}"))
            && out.contains("full resync needed"),
        "{out}"
    );
    assert_eq!(count("postgres", &dst.url, "purge_src.t").await, "11");
}
