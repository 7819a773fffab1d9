//! A streamed change that finds no row on the target never passes silently: in a
//! table without a key (rows matched on every column) it fails the task naming the
//! table, the source transaction and the row; in a keyed table a DELETE of a key the
//! target does not hold is counted and shown by `ferry status`.

mod common;

use common::{ferry, fresh, text};

async fn exec(engine: &str, url: &str, sql: &str) {
    if engine == "postgres" {
        ferry_testkit::pg_exec(url, sql).await
    } else {
        ferry_testkit::mysql_exec(url, sql).await
    }
}

async fn a_change_that_matches_no_row_is_never_silent(from: &str, to: &str) {
    let src = fresh(from, "unmatched").await;
    let dst = fresh(to, "unmatched").await;
    exec(
        from,
        &src.url,
        "CREATE TABLE nk (a int, b varchar(10));
         CREATE TABLE pk (id int PRIMARY KEY, b varchar(10));
         INSERT INTO nk VALUES (1, 'x'), (2, 'y');
         INSERT INTO pk VALUES (1, 'x'), (2, 'y');",
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let file = common::task_file(dir.path(), &src.url, &dst.url, "");
    let body = std::fs::read_to_string(&file)
        .unwrap()
        .replace("mode: full\n", "mode: full+incremental\n");
    std::fs::write(&file, body).unwrap();
    let run = || ferry(&["run", "--quiet", &file, "--exit-when-caught-up"]);
    let out = run();
    assert!(out.status.success(), "first run: {}", text(&out));

    let (nk, pk) = if to == "postgres" {
        ("public.nk".to_string(), "public.pk".to_string())
    } else {
        (format!("{}.nk", dst.name), format!("{}.pk", dst.name))
    };
    // the target lost a keyed row: the source's DELETE of it is counted, not fatal
    exec(to, &dst.url, &format!("DELETE FROM {pk} WHERE id = 2")).await;
    exec(from, &src.url, "DELETE FROM pk WHERE id = 2").await;
    let out = run();
    assert!(out.status.success(), "keyed catch-up: {}", text(&out));
    let status = ferry(&["status", &file]);
    let st = text(&status);
    assert!(
        st.contains("unmatched:      1 change"),
        "status lacks the unmatched count:\n{st}"
    );
    // the target lost a keyed row whose key the source then changes: counted, and the
    // row arrives under its new key all the same
    exec(to, &dst.url, &format!("DELETE FROM {pk} WHERE id = 1")).await;
    exec(from, &src.url, "UPDATE pk SET id = 10 WHERE id = 1").await;
    let out = run();
    assert!(out.status.success(), "key change catch-up: {}", text(&out));
    assert_eq!(
        common::query_lines(to, &dst.url, &format!("SELECT id, b FROM {pk} ORDER BY id")).await,
        vec!["10|x"]
    );
    let st = text(&ferry(&["status", &file]));
    assert!(st.contains("unmatched:      2 change"), "{st}");

    // the target's keyless row drifted: the source's UPDATE of it cannot be applied
    exec(
        to,
        &dst.url,
        &format!("UPDATE {nk} SET b = 'drift' WHERE a = 1"),
    )
    .await;
    exec(from, &src.url, "UPDATE nk SET a = 10 WHERE a = 1").await;
    let out = run();
    let err = text(&out);
    assert!(!out.status.success(), "the catch-up run passed: {err}");
    for want in [
        "nk: an UPDATE from the source matched no row on the target",
        "source transaction ",
        "a=1, b=\"x\"",
    ] {
        assert!(err.contains(want), "error lacks {want:?}:\n{err}");
    }
    // and it stays failed: the change is not skipped by a second attempt
    let out = run();
    assert!(!out.status.success(), "a second run passed: {}", text(&out));
}

#[tokio::test(flavor = "multi_thread")]
async fn mariadb_to_mariadb_a_change_that_matches_no_row_is_never_silent() {
    a_change_that_matches_no_row_is_never_silent("mysql", "mysql").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn pg_to_pg_a_change_that_matches_no_row_is_never_silent() {
    a_change_that_matches_no_row_is_never_silent("postgres", "postgres").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn pg_to_mariadb_a_change_that_matches_no_row_is_never_silent() {
    a_change_that_matches_no_row_is_never_silent("postgres", "mysql").await;
}
