//! Setting a task up on real servers: a MySQL/MariaDB target database that does not
//! exist yet, `existing_data: drop | truncate` on tables with foreign keys, and what
//! a failed first run leaves on a PostgreSQL source (prechecks first; no slot nobody
//! reads).

mod common;

use common::{ferry, fresh, query_lines, task_file, text, Db};

/// `task_file` with another mode.
fn task_with_mode(dir: &std::path::Path, src: &str, dst: &str, mode: &str, extra: &str) -> String {
    let path = task_file(dir, src, dst, extra);
    let body = std::fs::read_to_string(&path)
        .unwrap()
        .replace("mode: full\n", &format!("mode: {mode}\n"));
    std::fs::write(&path, body).unwrap();
    path
}

/// The slot and publication names on a PostgreSQL source, sorted.
async fn slots_and_publications(src: &str) -> Vec<String> {
    query_lines(
        "postgres",
        src,
        "SELECT 'slot ' || slot_name FROM pg_replication_slots WHERE database = current_database() \
         UNION ALL SELECT 'publication ' || pubname FROM pg_publication ORDER BY 1",
    )
    .await
}

async fn drop_mysql_database(name: &str) {
    let admin = ferry_testkit::mariadb().url_for("");
    ferry_testkit::mysql_exec(&admin, &format!("DROP DATABASE IF EXISTS `{name}`")).await;
}

async fn mysql_charset(name: &str) -> Vec<String> {
    query_lines(
        "mysql",
        &ferry_testkit::mariadb().url_for(""),
        &format!(
            "SELECT DEFAULT_CHARACTER_SET_NAME, DEFAULT_COLLATION_NAME FROM information_schema.SCHEMATA \
             WHERE SCHEMA_NAME = '{name}'"
        ),
    )
    .await
}

/// A target URL naming a database that does not exist: `check` says Ferry will
/// create it, `status` and `end` work before it exists, `run` creates it (utf8mb4
/// from PostgreSQL; the source database's character set and collation from MariaDB).
#[tokio::test(flavor = "multi_thread")]
async fn a_missing_mariadb_target_database_is_created() {
    let dir = tempfile::tempdir().unwrap();
    let pg = fresh("postgres", "newdb_pg").await;
    ferry_testkit::pg_exec(
        &pg.url,
        "CREATE TABLE items (id int PRIMARY KEY, name text); INSERT INTO items VALUES (1, 'één'), (2, 'two');",
    )
    .await;
    let name = ferry_testkit::unique_name("newdb_a");
    let target = ferry_testkit::mariadb().url_for(&name);
    let task = task_file(dir.path(), &pg.url, &target, "");

    let check = ferry(&["check", &task]);
    let out = text(&check);
    assert!(check.status.success(), "{out}");
    assert!(
        out.contains(&format!(
            "target database — {name} does not exist yet: `ferry run` creates it"
        )),
        "{out}"
    );
    assert!(!out.contains("FAIL"), "{out}");
    let status = ferry(&["status", &task]);
    assert!(status.status.success(), "{}", text(&status));
    assert!(text(&status).contains("not started"), "{}", text(&status));

    let run = ferry(&["run", "--quiet", &task]);
    assert!(run.status.success(), "{}", text(&run));
    assert_eq!(
        mysql_charset(&name).await[0].split('|').next(),
        Some("utf8mb4")
    );
    let cmp = ferry(&["compare", &task]);
    assert!(cmp.status.success(), "{}", text(&cmp));
    drop_mysql_database(&name).await;

    // MariaDB → MariaDB: the source database's character set and collation
    let my = fresh("mysql", "newdb_my").await;
    ferry_testkit::mysql_exec(
        &my.url,
        &format!(
            "ALTER DATABASE `{}` CHARACTER SET latin1 COLLATE latin1_swedish_ci;
             CREATE TABLE items (id int PRIMARY KEY, name varchar(20)) CHARACTER SET latin1;
             INSERT INTO items VALUES (1, 'caf\u{e9}');",
            my.name
        ),
    )
    .await;
    let name = ferry_testkit::unique_name("newdb_b");
    let target = ferry_testkit::mariadb().url_for(&name);
    let task = task_file(dir.path(), &my.url, &target, "");
    let run = ferry(&["run", "--quiet", &task]);
    assert!(run.status.success(), "{}", text(&run));
    assert_eq!(mysql_charset(&name).await, vec!["latin1|latin1_swedish_ci"]);
    let cmp = ferry(&["compare", &task]);
    assert!(cmp.status.success(), "{}", text(&cmp));
    drop_mysql_database(&name).await;
}

async fn parent_child(pg: &str) {
    ferry_testkit::pg_exec(
        pg,
        // the parent sorts first: dropping or emptying in name order hits the key
        "CREATE TABLE a_parent (id int PRIMARY KEY, name text);
         CREATE TABLE b_child (id int PRIMARY KEY, parent_id int NOT NULL REFERENCES a_parent(id), note text);
         INSERT INTO a_parent SELECT g, 'p' || g FROM generate_series(1, 50) g;
         INSERT INTO b_child SELECT g, 1 + g % 50, 'c' || g FROM generate_series(1, 200) g;",
    )
    .await;
}

/// `existing_data: drop` and `truncate` over tables with foreign keys among them
/// (made by an earlier run), and a refusal naming a foreign key of a table outside
/// the task, whose rows are never touched.
async fn existing_data_with_foreign_keys(to: &str) {
    let dir = tempfile::tempdir().unwrap();
    let src = fresh("postgres", "fk_src").await;
    let dst: Db = fresh(to, "fk_dst").await;
    parent_child(&src.url).await;
    let (parent, child) = if to == "postgres" {
        ("public.a_parent", "public.b_child")
    } else {
        ("a_parent", "b_child")
    };
    let first = task_file(dir.path(), &src.url, &dst.url, "");
    let run = ferry(&["run", "--quiet", &first]);
    assert!(run.status.success(), "{}", text(&run));
    for policy in ["drop", "truncate"] {
        let task = task_file(
            dir.path(),
            &src.url,
            &dst.url,
            &format!("existing_data: {policy}\n"),
        );
        let run = ferry(&["run", "--quiet", &task]);
        assert!(run.status.success(), "{policy}: {}", text(&run));
        let cmp = ferry(&["compare", &task]);
        assert!(cmp.status.success(), "{policy}: {}", text(&cmp));
    }

    // a table the task does not select references a selected one
    let outside = if to == "postgres" {
        "CREATE TABLE outside (id int PRIMARY KEY, parent_id int CONSTRAINT outside_parent REFERENCES public.a_parent(id));
         INSERT INTO outside VALUES (1, 7);"
    } else {
        "CREATE TABLE outside (id int PRIMARY KEY, parent_id int, CONSTRAINT outside_parent FOREIGN KEY (parent_id) REFERENCES a_parent(id));
         INSERT INTO outside VALUES (1, 7);"
    };
    match to {
        "postgres" => ferry_testkit::pg_exec(&dst.url, outside).await,
        _ => ferry_testkit::mysql_exec(&dst.url, outside).await,
    }
    for policy in ["truncate", "drop"] {
        let task = task_file(
            dir.path(),
            &src.url,
            &dst.url,
            &format!("existing_data: {policy}\n"),
        );
        let check = ferry(&["check", &task]);
        assert_eq!(check.status.code(), Some(1), "{}", text(&check));
        assert!(text(&check).contains("outside_parent"), "{}", text(&check));
        let run = ferry(&["run", "--quiet", &task]);
        assert!(!run.status.success(), "{policy}: {}", text(&run));
        assert!(text(&run).contains("outside_parent"), "{}", text(&run));
        let rows = query_lines(
            to,
            &dst.url,
            &format!(
                "SELECT count(*) FROM outside;\nSELECT count(*) FROM {parent};\nSELECT count(*) FROM {child}"
            ),
        )
        .await;
        assert_eq!(rows, vec!["1", "50", "200"], "{policy}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn existing_data_drop_and_truncate_handle_foreign_keys_on_mariadb() {
    existing_data_with_foreign_keys("mysql").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn existing_data_drop_and_truncate_handle_foreign_keys_on_postgres() {
    existing_data_with_foreign_keys("postgres").await;
}

/// A source with `wal_level=replica`: `run` fails with `check`'s finding and fix
/// before creating anything — no publication, no slot, no table.
#[tokio::test(flavor = "multi_thread")]
async fn a_wal_level_replica_source_fails_run_with_the_check_s_fix_and_leaves_nothing() {
    let srv = tokio::task::spawn_blocking(|| {
        ferry_testkit::private_postgres_with("walreplica", "-c wal_level=replica")
    })
    .await
    .unwrap();
    /// Stops the private server however the test ends.
    struct Stop(std::path::PathBuf);
    impl Drop for Stop {
        fn drop(&mut self) {
            ferry_testkit::stop_postgres(&self.0);
        }
    }
    let _stop = Stop(srv.dir.clone().unwrap());
    ferry_testkit::pg_exec(&srv.url_for("postgres"), "CREATE DATABASE wr_src").await;
    let src = srv.url_for("wr_src");
    ferry_testkit::pg_exec(
        &src,
        "CREATE TABLE items (id int PRIMARY KEY, name text); INSERT INTO items VALUES (1, 'a');",
    )
    .await;
    let dst = fresh("postgres", "wr_dst").await;
    let dir = tempfile::tempdir().unwrap();
    let task = task_with_mode(dir.path(), &src, &dst.url, "full+incremental", "");

    let run = ferry(&["run", "--quiet", &task]);
    let out = text(&run);
    assert_eq!(run.status.code(), Some(1), "{out}");
    assert!(
        out.contains("precheck failed")
            && out.contains("wal_level=replica")
            && out.contains("set wal_level = logical"),
        "{out}"
    );
    assert!(!out.contains("CREATE_REPLICATION_SLOT"), "{out}");
    assert!(slots_and_publications(&src).await.is_empty());
    assert_eq!(
        query_lines(
            "postgres",
            &dst.url,
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"
        )
        .await,
        vec!["0"]
    );
    // nor did the precheck leave Ferry's checkpoint schema behind
    assert_eq!(
        query_lines(
            "postgres",
            &dst.url,
            "SELECT count(*) FROM information_schema.schemata WHERE schema_name = 'ferry'"
        )
        .await,
        vec!["0"]
    );
}

/// A first run whose copy fails before any chunk is committed drops what it created
/// (tables, slot, publication); one that fails after committing chunks keeps the
/// slot for the resume, says so, `status` shows it with the WAL it holds, and
/// `ferry end` removes it.
#[tokio::test(flavor = "multi_thread")]
async fn a_failed_first_run_drops_its_slot_or_says_it_keeps_it() {
    let dir = tempfile::tempdir().unwrap();
    let src = fresh("postgres", "slot_src").await;
    let dst = fresh("mysql", "slot_dst").await;
    ferry_testkit::pg_exec(
        &src.url,
        "CREATE TABLE acct (id int PRIMARY KEY, balance bigint NOT NULL);
         INSERT INTO acct SELECT g, g FROM generate_series(1, 1000) g;
         CREATE TABLE other (id int PRIMARY KEY);",
    )
    .await;
    // the target refuses balance 1 (in the first chunk)
    ferry_testkit::mysql_exec(
        &dst.url,
        "CREATE TABLE acct (id int PRIMARY KEY, balance bigint NOT NULL, CONSTRAINT no_one CHECK (balance <> 1));",
    )
    .await;
    let task = task_with_mode(
        dir.path(),
        &src.url,
        &dst.url,
        "full+incremental",
        "existing_data: append\njobs: 1\nchunk_rows: 100\n",
    );
    let run = ferry(&["run", "--quiet", &task]);
    let out = text(&run);
    assert_eq!(run.status.code(), Some(1), "{out}");
    assert!(out.contains("were dropped"), "{out}");
    assert!(slots_and_publications(&src.url).await.is_empty(), "{out}");
    assert_eq!(
        query_lines(
            "mysql",
            &dst.url,
            &format!(
                "SELECT count(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = '{}' AND TABLE_NAME = 'other'",
                dst.name
            )
        )
        .await,
        vec!["0"],
        "the empty table the failed run created is gone"
    );
    let status = ferry(&["status", &task]);
    assert!(text(&status).contains("not started"), "{}", text(&status));

    // a slot left without any progress on the target (an older Ferry, a failed
    // clean-up): status shows it and what removes it, and `ferry end` does
    let slot = format!("ferry_{}", common::task_name(&task).replace('-', "_"));
    ferry_testkit::pg_exec(
        &src.url,
        &format!("SELECT pg_create_logical_replication_slot('{slot}', 'pgoutput')"),
    )
    .await;
    let status = ferry(&["status", &task]);
    let st = text(&status);
    assert!(
        st.contains("not started") && st.contains(&slot) && st.contains("ferry end"),
        "{st}"
    );
    let end = ferry(&["end", &task]);
    assert!(end.status.success(), "{}", text(&end));
    assert!(slots_and_publications(&src.url).await.is_empty());

    // now the last chunk fails: the first nine are committed
    ferry_testkit::mysql_exec(
        &dst.url,
        "ALTER TABLE acct DROP CONSTRAINT no_one, ADD CONSTRAINT no_1000 CHECK (balance <> 1000);",
    )
    .await;
    let run = ferry(&["run", "--quiet", &task]);
    let out = text(&run);
    assert_eq!(run.status.code(), Some(1), "{out}");
    assert!(
        out.contains("keeps replication slot") && out.contains("ferry end"),
        "{out}"
    );
    assert_eq!(
        slots_and_publications(&src.url).await,
        vec![format!("publication {slot}"), format!("slot {slot}")]
    );
    let status = ferry(&["status", &task]);
    let st = text(&status);
    assert!(status.status.success(), "{st}");
    assert!(
        st.contains("phase:          full")
            && st.contains(&slot)
            && st.contains("of WAL")
            && st.contains("ferry end"),
        "{st}"
    );
    // nothing streams while the copy is unfinished: no lag to claim
    assert!(
        !st.contains("lag:") && st.contains("since the copy's snapshot"),
        "{st}"
    );
    let end = ferry(&["end", &task]);
    assert!(end.status.success(), "{}", text(&end));
    assert!(slots_and_publications(&src.url).await.is_empty());
}

/// A copy into a table kept by `existing_data: append` that fails midway resumes:
/// the kept table is neither recreated nor given its keys twice.
#[tokio::test(flavor = "multi_thread")]
async fn a_copy_into_kept_tables_resumes_after_a_failure() {
    let dir = tempfile::tempdir().unwrap();
    let src = fresh("postgres", "kept_src").await;
    let dst = fresh("postgres", "kept_dst").await;
    ferry_testkit::pg_exec(
        &src.url,
        "CREATE TABLE acct (id int PRIMARY KEY, balance bigint NOT NULL);
         INSERT INTO acct SELECT g, g FROM generate_series(1, 1000) g;",
    )
    .await;
    ferry_testkit::pg_exec(
        &dst.url,
        "CREATE TABLE acct (id int PRIMARY KEY, balance bigint NOT NULL, CONSTRAINT no_1000 CHECK (balance <> 1000));",
    )
    .await;
    let task = task_file(
        dir.path(),
        &src.url,
        &dst.url,
        "existing_data: append\njobs: 1\nchunk_rows: 100\n",
    );
    let run = ferry(&["run", "--quiet", &task]);
    assert_eq!(run.status.code(), Some(1), "{}", text(&run));
    ferry_testkit::pg_exec(&dst.url, "ALTER TABLE acct DROP CONSTRAINT no_1000").await;
    let run = ferry(&["run", "--quiet", &task]);
    assert!(run.status.success(), "{}", text(&run));
    let cmp = ferry(&["compare", &task]);
    assert!(cmp.status.success(), "{}", text(&cmp));
}

/// A stream that fails on a value the target cannot hold keeps the slot (the task
/// resumes from it once fixed) and its error says so, with what removes it.
#[tokio::test(flavor = "multi_thread")]
async fn a_failed_stream_says_it_keeps_the_slot() {
    let dir = tempfile::tempdir().unwrap();
    let src = fresh("postgres", "sfail_src").await;
    let dst = fresh("mysql", "sfail_dst").await;
    ferry_testkit::pg_exec(
        &src.url,
        "CREATE TABLE m (id int PRIMARY KEY, v double precision); INSERT INTO m VALUES (1, 1.5);",
    )
    .await;
    let task = task_with_mode(dir.path(), &src.url, &dst.url, "full+incremental", "");
    let run = ferry(&["run", "--quiet", "--exit-when-caught-up", &task]);
    assert!(run.status.success(), "{}", text(&run));
    ferry_testkit::pg_exec(&src.url, "INSERT INTO m VALUES (42, 'NaN')").await;
    let run = ferry(&["run", "--quiet", "--exit-when-caught-up", &task]);
    let out = text(&run);
    assert_eq!(run.status.code(), Some(1), "{out}");
    assert!(
        out.contains("keeps replication slot") && out.contains("ferry end"),
        "{out}"
    );
    let end = ferry(&["end", &task]);
    assert!(end.status.success(), "{}", text(&end));
    assert!(slots_and_publications(&src.url).await.is_empty());
}

/// A source whose only replication slot is the task's own: the precheck that `run`
/// makes first must not refuse the resume of the task's stream (it needs no new slot).
#[tokio::test(flavor = "multi_thread")]
async fn a_task_whose_own_slot_fills_the_source_still_resumes() {
    let srv = tokio::task::spawn_blocking(|| {
        ferry_testkit::private_postgres_with("oneslot", "-c max_replication_slots=1")
    })
    .await
    .unwrap();
    ferry_testkit::pg_exec(&srv.url_for("postgres"), "CREATE DATABASE one_src").await;
    let src = srv.url_for("one_src");
    ferry_testkit::pg_exec(
        &src,
        "CREATE TABLE items (id int PRIMARY KEY, name text); INSERT INTO items VALUES (1, 'a');",
    )
    .await;
    let dst = fresh("postgres", "one_dst").await;
    let dir = tempfile::tempdir().unwrap();
    let task = task_with_mode(dir.path(), &src, &dst.url, "full+incremental", "");
    let run = || ferry(&["run", "--quiet", "--exit-when-caught-up", &task]);
    let first = run();
    assert!(first.status.success(), "{}", text(&first));
    ferry_testkit::pg_exec(&src, "INSERT INTO items VALUES (2, 'b')").await;
    // the source's one slot is the task's own now: the resume needs no other
    let again = run();
    assert!(again.status.success(), "{}", text(&again));
    assert_eq!(
        query_lines("postgres", &dst.url, "SELECT count(*) FROM items").await,
        vec!["2"]
    );
    let check = ferry(&["check", &task]);
    assert!(check.status.success(), "{}", text(&check));
    assert!(text(&check).contains("the task's own"), "{}", text(&check));
    let end = ferry(&["end", &task]);
    assert!(end.status.success(), "{}", text(&end));
}

/// `check` of a DR task says whether Ferry's user may keep the standby read-only
/// (else the task would fail at its start), with the grant that fixes it.
#[tokio::test(flavor = "multi_thread")]
async fn check_says_whether_a_dr_standby_can_be_fenced() {
    let dir = tempfile::tempdir().unwrap();
    let src = fresh("mysql", "fence_src").await;
    let dst = fresh("mysql", "fence_dst").await;
    ferry_testkit::mysql_exec(&src.url, "CREATE TABLE t (id int PRIMARY KEY)").await;
    let user = ferry_testkit::unique_name("nf");
    let admin = ferry_testkit::mariadb().url_for("");
    ferry_testkit::mysql_exec(
        &admin,
        &format!(
            "CREATE USER '{user}'@'%'; GRANT ALL ON `{}`.* TO '{user}'@'%'; GRANT ALL ON ferry.* TO '{user}'@'%'",
            dst.name
        ),
    )
    .await;
    let limited = dst.url.replacen("//root@", &format!("//{user}@"), 1);
    assert_ne!(limited, dst.url, "the test server's URL names root");
    let dr = |target: &str| {
        let path = task_file(dir.path(), &src.url, target, "");
        let body = std::fs::read_to_string(&path).unwrap().replace(
            "kind: migration\nmode: full\n",
            "kind: dr\nmode: full+incremental\n",
        );
        std::fs::write(&path, body).unwrap();
        path
    };
    let line = |out: &str| {
        out.lines()
            .find(|l| l.contains("DR standby can be made read-only"))
            .unwrap_or("")
            .to_string()
    };
    let out = text(&ferry(&["check", &dr(&limited)]));
    ferry_testkit::mysql_exec(&admin, &format!("DROP USER '{user}'@'%'")).await;
    let l = line(&out);
    assert!(
        l.contains("FAIL") && out.contains("READ_ONLY ADMIN"),
        "{out}"
    );
    let out = text(&ferry(&["check", &dr(&dst.url)]));
    let l = line(&out);
    assert!(!l.is_empty() && !l.contains("FAIL"), "{out}");
}

/// A full-only task from PostgreSQL never has a slot: `status` names none and `end`
/// claims to drop none.
#[tokio::test(flavor = "multi_thread")]
async fn a_full_only_task_has_no_slot_to_report() {
    let src = fresh("postgres", "fullonly_src").await;
    let dst = fresh("postgres", "fullonly_dst").await;
    ferry_testkit::pg_exec(
        &src.url,
        "CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1);",
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let task = task_file(dir.path(), &src.url, &dst.url, "");
    let run = ferry(&["run", "--quiet", &task]);
    assert!(run.status.success(), "{}", text(&run));
    let st = text(&ferry(&["status", &task]));
    assert!(!st.contains("slot"), "{st}");
    let end = ferry(&["end", &task]);
    assert!(end.status.success(), "{}", text(&end));
    assert!(
        !text(&end).contains("dropped replication slot"),
        "{}",
        text(&end)
    );
}

/// `--jobs` outside 1..=64 is refused by the command line, naming the flag.
#[test]
fn jobs_out_of_range_is_refused() {
    for bad in ["0", "65", "many"] {
        let out = ferry(&["run", "--jobs", bad, "nonexistent.yaml"]);
        assert_eq!(out.status.code(), Some(2), "{bad}: {}", text(&out));
        assert!(text(&out).contains("--jobs"), "{bad}: {}", text(&out));
    }
}
