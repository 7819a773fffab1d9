//! Speed limits of the full copy: a limited copy takes at least as long as its
//! rows (or bytes) at the limit, all workers together; an unlimited one of the same
//! rows does not. Lower bounds on the limited time only (a busy machine makes any
//! copy slower, never a throttled one faster).

mod common;

use common::{ferry, fresh, query_lines, task_file, text};
use std::time::{Duration, Instant};

/// Runs `ferry run --quiet <task> <args>` and returns how long it took.
fn timed_run(task: &str, args: &[&str]) -> Duration {
    let start = Instant::now();
    let mut all = vec!["run", "--quiet", "--jobs", "2", task];
    all.extend_from_slice(args);
    let run = ferry(&all);
    assert!(run.status.success(), "{}", text(&run));
    start.elapsed()
}

/// PostgreSQL → PostgreSQL passes COPY bytes through: their rows are counted as they
/// pass. 10,000 rows at 2000 rows/s take ≥ 4 s, the same rows unlimited less.
#[tokio::test(flavor = "multi_thread")]
async fn a_rows_limit_holds_the_copy_of_passthrough_bytes() {
    let src = fresh("postgres", "limit_src").await;
    let fast = fresh("postgres", "limit_fast").await;
    let slow = fresh("postgres", "limit_slow").await;
    ferry_testkit::pg_exec(
        &src.url,
        "CREATE TABLE accounts (id int PRIMARY KEY, balance bigint NOT NULL, owner text);
         INSERT INTO accounts SELECT g, 100, 'owner ' || g FROM generate_series(1, 10000) g;",
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let unlimited = task_file(dir.path(), &src.url, &fast.url, "chunk_rows: 1000\n");
    let limited = task_file(
        dir.path(),
        &src.url,
        &slow.url,
        "chunk_rows: 1000\nspeed_limit:\n  copy_rows_per_second: 2000\n",
    );
    let fast_took = timed_run(&unlimited, &[]);
    let slow_took = timed_run(&limited, &[]);
    // 10,000 rows at 2000/s: 5 s, less the first burst
    assert!(
        slow_took >= Duration::from_secs(4),
        "limited copy took {slow_took:?}"
    );
    assert!(
        slow_took > fast_took,
        "limited {slow_took:?}, unlimited {fast_took:?}"
    );
    for db in [&fast, &slow] {
        assert_eq!(
            query_lines(
                "postgres",
                &db.url,
                "SELECT count(*), sum(id) FROM accounts"
            )
            .await,
            vec!["10000|50005000"]
        );
    }
    eprintln!("2000 rows/s: {slow_took:?}; unlimited: {fast_took:?}");
}

/// MariaDB → PostgreSQL moves decoded rows, weighed by their values' sizes; the
/// limit comes from `--copy-mb-per-second`, overriding the task file (which has none).
#[tokio::test(flavor = "multi_thread")]
async fn an_mb_limit_from_the_command_line_holds_the_copy_of_decoded_rows() {
    let src = fresh("mysql", "limit_mb_src").await;
    let fast = fresh("postgres", "limit_mb_fast").await;
    let slow = fresh("postgres", "limit_mb_slow").await;
    // rows of 8 + 8 + 40 bytes of values: 10,000 of them 560 kB
    ferry_testkit::mysql_exec(
        &src.url,
        "CREATE TABLE accounts (id int PRIMARY KEY, balance bigint NOT NULL, owner varchar(40));
         INSERT INTO accounts SELECT seq, 100, RPAD(CONCAT('owner ', seq), 40, '.') FROM seq_1_to_10000;",
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let extra = format!(
        "chunk_rows: 1000\nobjects:\n  rename:\n    \"{}\": public\n",
        src.name
    );
    let fast_task = task_file(dir.path(), &src.url, &fast.url, &extra);
    let slow_task = task_file(dir.path(), &src.url, &slow.url, &extra);
    let fast_took = timed_run(&fast_task, &[]);
    // 560 kB at 0.1 MB/s: 5.6 s
    let slow_took = timed_run(&slow_task, &["--copy-mb-per-second", "0.1"]);
    assert!(
        slow_took >= Duration::from_millis(4500),
        "limited copy took {slow_took:?}"
    );
    assert!(
        slow_took > fast_took,
        "limited {slow_took:?}, unlimited {fast_took:?}"
    );
    assert_eq!(
        query_lines(
            "postgres",
            &slow.url,
            "SELECT count(*), sum(id) FROM accounts"
        )
        .await,
        vec!["10000|50005000"]
    );
    // a bad value is refused before anything runs, saying what to write
    let bad = ferry(&["run", "--quiet", &slow_task, "--copy-mb-per-second", "0"]);
    assert!(!bad.status.success());
    assert!(text(&bad).contains("MB"), "{}", text(&bad));
    eprintln!("0.1 MB/s: {slow_took:?}; unlimited: {fast_took:?}");
}
