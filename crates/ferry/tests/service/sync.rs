//! Edits of a running sync: tables added are copied inside the running stream while
//! writes go on (across a kill -9 and a column added midway); tables removed stop
//! replicating.

use crate::common::{self, ferry, fresh, text};
use crate::harness::{wait_rows, Service, T};
use serde_json::json;
use std::time::{Duration, Instant};

/// A running sync gets tables added: only the new tables are copied, chunk by chunk
/// inside the running stream, while writes continue on every table and the old
/// table's changes keep arriving; the task shows `changing` and returns to
/// `incremental`, and afterwards source and target are equal — no lost or stale rows.
async fn a_sync_edit_adds_a_table_while_writes_continue(engine: &'static str) {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::Arc;
    let dir = tempfile::tempdir().unwrap();
    let mut svc = Service::start(dir.path(), &[]).await;
    let tok = svc.tenant("acme", 100.0).await;
    let src = fresh(engine, "sync_src").await;
    let dst = fresh(engine, "sync_dst").await;
    let (acct_rows, extra_rows, schema) = if engine == "postgres" {
        (
            "generate_series(1, 5000) AS g(seq)",
            "generate_series(1, 40000) AS g(seq)",
            "public".to_string(),
        )
    } else {
        ("seq_1_to_5000", "seq_1_to_40000", src.name.clone())
    };
    let src_url = src.url.clone();
    let exec = move |sql: String| {
        let url = src_url.clone();
        async move {
            if engine == "postgres" {
                ferry_testkit::pg_exec(&url, &sql).await
            } else {
                ferry_testkit::mysql_exec(&url, &sql).await
            }
        }
    };
    // `extra` is copied in 80 chunks of 500 keys; `notes` has no key (one chunk)
    exec(format!(
        "CREATE TABLE acct (id bigint PRIMARY KEY, owner varchar(40), balance int);
         INSERT INTO acct SELECT seq, 'o', 1 FROM {acct_rows};
         CREATE TABLE extra (id bigint PRIMARY KEY, note varchar(40), n int);
         INSERT INTO extra SELECT seq, 'x', 0 FROM {extra_rows};
         CREATE TABLE notes (v varchar(20), n int);
         INSERT INTO notes SELECT concat('n', seq), seq FROM {acct_rows};"
    ))
    .await;
    let spec = format!(
        "name: grow\nkind: sync\nmode: full+incremental\nchunk_rows: 500\nsource: {}\ntarget: {}\nobjects:\n  include: [\"{schema}.acct\"]\n",
        src.url, dst.url
    );
    let id = svc.create(&tok, &spec, None).await;
    svc.wait_state(&tok, &id, "configuring", T).await;
    svc.act(&tok, &id, "start").await;
    svc.wait_state(&tok, &id, "incremental", T).await;

    // writes on every table before, during and after the edit: updates all over
    // `extra`, inserts past its end, deletes, and key changes both ways across the
    // part already copied
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let writer = {
        let (stop, done, exec) = (stop.clone(), done.clone(), exec.clone());
        tokio::spawn(async move {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                let k = 1 + (i * 37) % 40000;
                exec(format!(
                    "UPDATE acct SET balance = balance + 1 WHERE id = {};
                     UPDATE extra SET n = n + 1, note = 'w{i}' WHERE id = {k};
                     INSERT INTO extra (id, note, n) VALUES ({}, 'new', {i});
                     DELETE FROM extra WHERE id = {};
                     UPDATE extra SET id = id + 1000000 WHERE id = {};
                     UPDATE extra SET id = -id WHERE id = {};
                     INSERT INTO notes VALUES ('w{i}', {i});
                     DELETE FROM notes WHERE v = 'n{}';",
                    1 + i % 5000,
                    100_000 + i,
                    1 + (i * 101) % 40000,
                    1 + (i * 53) % 40000,
                    100_000 + i - 1,
                    1 + i % 5000
                ))
                .await;
                done.store(i, Ordering::Relaxed);
            }
        })
    };
    let wait_writes = |n: u64| {
        let done = done.clone();
        async move {
            let t0 = Instant::now();
            let start = done.load(Ordering::Relaxed);
            while done.load(Ordering::Relaxed) < start + n {
                assert!(t0.elapsed() < T, "the writer stalled");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    wait_writes(20).await;
    let (s, v) = svc
        .call(
            "POST",
            &format!("/api/v1/tasks/{id}/edit"),
            &tok,
            Some(json!({"objects": {"include": [
                format!("{schema}.acct"), format!("{schema}.extra"), format!("{schema}.notes")
            ]}})),
        )
        .await;
    assert_eq!(s, 202, "{v}");
    assert_eq!(v["state"], "changing");
    // while `extra` is being copied, `acct`'s changes keep arriving on the target;
    // midway the service is killed -9: the copy resumes from its last chunk
    let (mut samples, mut killed, mut recovered, mut altered, t0) =
        (Vec::new(), false, false, false, Instant::now());
    loop {
        let copying = common::query_lines(
            engine,
            &dst.url,
            &format!("SELECT count(*) FROM ferry.backfill WHERE task = '{id}' AND done = 0 AND rows_copied > 0 AND table_name LIKE '%extra'"),
        )
        .await
            == ["1"];
        let balance = common::query_lines(engine, &dst.url, "SELECT sum(balance) FROM acct").await;
        let (_, v) = svc
            .call("GET", &format!("/api/v1/tasks/{id}"), &tok, None)
            .await;
        match v["state"].as_str() {
            Some("incremental") => break,
            Some("recovering") => recovered |= killed,
            Some("changing") | None => {}
            Some(other) => panic!("the edit went {other}: {v:#}\n{}", svc.log()),
        }
        if copying && recovered && v["state"] == "changing" && !altered {
            // a column added while the resumed copy runs: later chunks carry it
            exec("ALTER TABLE extra ADD COLUMN z int NULL; UPDATE extra SET z = 5 WHERE id BETWEEN 39000 AND 39010;".into()).await;
            altered = true;
        }
        if copying && !killed {
            samples.push(balance);
            samples.dedup();
            if samples.len() >= 2 {
                svc.kill();
                svc.spawn().await;
                killed = true;
            }
        }
        assert!(
            t0.elapsed() < 2 * T,
            "the edit never finished: {v:#}\n{}",
            svc.log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        killed,
        "no change of acct reached the target while extra was being copied (balances seen: {samples:?})\n{}",
        svc.log()
    );
    assert!(
        altered,
        "the copy finished before a column could be added midway"
    );
    let v = svc.wait_state(&tok, &id, "incremental", T).await;
    let path: Vec<&str> = v["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["to"].as_str().unwrap_or_default())
        .collect();
    let edit_start = path.iter().position(|s| *s == "changing").unwrap();
    assert!(
        path[edit_start..].contains(&"recovering") && path.last() == Some(&"incremental"),
        "the kill should show as recovering within the edit: {path:?}\n{v:#}"
    );
    wait_writes(20).await;
    stop.store(true, Ordering::Relaxed);
    writer.await.unwrap();
    // a last change; once it is on the target, everything before it is too
    exec("INSERT INTO acct VALUES (9999999, 'last', 0);".into()).await;
    wait_rows(
        engine,
        &dst.url,
        "SELECT count(*) FROM acct WHERE id = 9999999",
        &["1"],
        "the last change never arrived",
        || svc.log(),
    )
    .await;
    let f = common::task_file(dir.path(), &src.url, &dst.url, "");
    let c = ferry(&["compare", &f]);
    assert!(
        c.status.success(),
        "source and target differ after the edit:\n{}\n{}",
        text(&c),
        svc.log()
    );
    assert!(
        text(&c).contains("extra") && text(&c).contains("notes"),
        "{}",
        text(&c)
    );

    // removing a table stops its replication; the others go on
    let (s, v) = svc
        .call(
            "POST",
            &format!("/api/v1/tasks/{id}/edit"),
            &tok,
            Some(json!({"objects": {"include": [format!("{schema}.extra")]}})),
        )
        .await;
    assert_eq!(s, 202, "{v}");
    svc.wait_state(&tok, &id, "incremental", T).await;
    exec("UPDATE acct SET owner = 'removed' WHERE id = 1; INSERT INTO extra (id, note, n) VALUES (9999999, 'kept', 0);".into()).await;
    wait_rows(
        engine,
        &dst.url,
        "SELECT count(*) FROM extra WHERE id = 9999999",
        &["1"],
        "extra stopped replicating",
        || svc.log(),
    )
    .await;
    assert_eq!(
        common::query_lines(engine, &dst.url, "SELECT owner FROM acct WHERE id = 1").await,
        ["o"],
        "a removed table still replicates"
    );
    svc.act(&tok, &id, "end").await;
    svc.wait_state(&tok, &id, "ended", T).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_sync_edit_adds_a_table_while_writes_continue() {
    a_sync_edit_adds_a_table_while_writes_continue("postgres").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn mariadb_sync_edit_adds_a_table_while_writes_continue() {
    a_sync_edit_adds_a_table_while_writes_continue("mysql").await;
}
