//! Data-driven migration cases: `tests/cases/<source>-to-<target>/<case>/` holds
//! `source.sql` (loaded into a fresh source database), optional `task.yaml` (extra
//! task keys), and either `expect_error.txt` (the run must fail saying this) or
//! `expect.sql` + `expect.out` (queries on the target and their exact output, NULL
//! shown as `null`, columns joined by `|`). Every successful case must also pass
//! `ferry check` before and `ferry compare` after the run. `{src_db}` / `{dst_db}`
//! stand for the fresh databases' names.
//!
//! A case whose `source.sql` has a line `-- ferry:stream` also runs through the
//! incremental path: what is above the line is loaded and copied by a
//! `full+incremental` task, what is below runs on the source afterwards and must
//! reach the target through the change stream — with the same expected content.
//! Such a case also runs as an *added* set of tables: a task first streams only an
//! anchor table, the whole case is loaded, then the task's objects grow to the case's
//! tables, which the running stream copies chunk by chunk (backfill) — again with the
//! same expected content. A streamed case with `expect_error.txt` must copy what is
//! above the line and then fail with that error while streaming (or backfilling) the
//! rest.
//!
//! `FERRY_CASE=<part of a case name>` runs only the cases whose name contains it.

mod common;

use common::{ferry, fresh, query_lines};
use std::path::{Path, PathBuf};

fn cases_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/cases")
}

const STREAM_MARKER: &str = "-- ferry:stream";

/// How a case's data reaches the target.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Route {
    /// One full copy.
    Full,
    /// A full copy, then the rest of the case through the change stream.
    Stream,
    /// The tables join a task that streams already: the stream bulk-loads them chunk
    /// by chunk (backfill).
    Added,
    /// The same with `existing_data: append`: chunks are upserted (the target may
    /// hold rows of its own).
    AddedAppend,
}

async fn exec(engine: &str, url: &str, sql: &str) {
    if engine == "postgres" {
        ferry_testkit::pg_exec(url, sql).await;
    } else {
        ferry_testkit::mysql_exec(url, sql).await;
    }
}

fn failed(what: &str, out: &std::process::Output) -> String {
    format!(
        "{what} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

async fn run_case(source: &str, target: &str, case: &Path, path: Route) -> Result<(), String> {
    let stream = path != Route::Full;
    let name = case.file_name().unwrap().to_string_lossy().to_string();
    let src = fresh(source, &name).await;
    let dst = fresh(target, &name).await;
    let subst = |s: &str| {
        s.replace("{src_db}", &src.name)
            .replace("{dst_db}", &dst.name)
    };
    let sql = std::fs::read_to_string(case.join("source.sql")).map_err(|e| e.to_string())?;
    let (before, after) = match sql.split_once(STREAM_MARKER) {
        Some((b, a)) if stream => (b, a),
        _ => (sql.as_str(), ""),
    };
    exec(source, &src.url, before).await;
    let mut extra = std::fs::read_to_string(case.join("task.yaml"))
        .map(|s| subst(&s))
        .unwrap_or_default();
    if path == Route::AddedAppend {
        extra.push_str("existing_data: append\n");
    }
    let added = matches!(path, Route::Added | Route::AddedAppend);
    let name = ferry_testkit::unique_name("").replace('_', "-");
    let header = format!(
        "name: {}\nkind: migration\nmode: {}\nsource: {}\ntarget: {}\n",
        // checkpoint rows are keyed by task name per target server: keep it unique
        name,
        if stream { "full+incremental" } else { "full" },
        src.url,
        dst.url
    );
    let mut task = header.clone();
    if source == "mysql" && target == "postgres" && !extra.contains("objects:") {
        task.push_str(&format!(
            "objects:\n  rename:\n    \"{}\": shop\n",
            src.name
        ));
    }
    task.push_str(&extra);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("task.yaml");
    std::fs::write(&file, task).unwrap();
    let file = file.to_str().unwrap();

    // a refused value: a plain copy fails at once; a streamed case's copy succeeds and
    // the run that streams (or backfills) the rest must fail
    let expected = std::fs::read_to_string(case.join("expect_error.txt"))
        .ok()
        .map(|e| subst(e.trim()));
    let refused = |out: &std::process::Output, want: &str| -> Result<(), String> {
        let stderr = String::from_utf8_lossy(&out.stderr);
        if out.status.success() {
            return Err("the run succeeded but should have failed".into());
        }
        if !stderr.contains(want) {
            return Err(format!("error output lacks {want:?}:\n{stderr}"));
        }
        Ok(())
    };
    if let (Some(want), false) = (&expected, stream) {
        return refused(&ferry(&["run", "--quiet", file]), want);
    }
    let check = ferry(&["check", file]);
    if !check.status.success() {
        return Err(format!(
            "check failed:\n{}",
            String::from_utf8_lossy(&check.stdout)
        ));
    }
    let mut run = vec!["run", "--quiet", "--jobs", "2", file];
    if stream {
        run.push("--exit-when-caught-up");
    }
    if added {
        // first the task streams an anchor table only; the run below adds the rest
        exec(
            source,
            &src.url,
            "CREATE TABLE ferry_anchor (id int PRIMARY KEY);",
        )
        .await;
        let schema = if source == "postgres" {
            "public"
        } else {
            &src.name
        };
        let mut objects = format!("objects:\n  include: [\"{schema}.ferry_anchor\"]\n");
        if source == "mysql" && target == "postgres" {
            objects.push_str(&format!("  rename:\n    \"{}\": shop\n", src.name));
        }
        let first = dir.path().join("anchor.yaml");
        std::fs::write(&first, format!("{header}{objects}{extra}")).unwrap();
        let first = first.to_str().unwrap().to_string();
        let out = ferry(&["run", "--quiet", &first, "--exit-when-caught-up"]);
        if !out.status.success() {
            return Err(failed("the anchor run", &out));
        }
        // the case's rows are there before its tables join the task: the stream
        // copies them (backfill)
        exec(source, &src.url, after).await;
    }
    let out = ferry(&run);
    if let (Some(want), true) = (&expected, added) {
        return refused(&out, want);
    }
    if !out.status.success() {
        return Err(failed("run", &out));
    }
    if stream {
        // the rest of the case reaches the target through the change stream only
        if path == Route::Stream {
            exec(source, &src.url, after).await;
        }
        let out = ferry(&run);
        if let Some(want) = &expected {
            return refused(&out, want);
        }
        if !out.status.success() {
            return Err(failed("catch-up run", &out));
        }
        let out = ferry(&["end", file]);
        if !out.status.success() {
            return Err(failed("end", &out));
        }
    }
    let cmp = ferry(&["compare", file]);
    if !cmp.status.success() {
        return Err(format!(
            "compare found differences:\n{}{}",
            String::from_utf8_lossy(&cmp.stdout),
            String::from_utf8_lossy(&cmp.stderr)
        ));
    }
    if let Ok(q) = std::fs::read_to_string(case.join("expect.sql")) {
        let got = query_lines(target, &dst.url, &subst(&q)).await;
        let want: Vec<String> = std::fs::read_to_string(case.join("expect.out"))
            .map_err(|e| e.to_string())?
            .lines()
            .map(subst)
            .collect();
        if got != want {
            return Err(format!(
                "target content differs from expect.out:\n--- got\n{}\n--- want\n{}",
                got.join("\n"),
                want.join("\n")
            ));
        }
    }
    Ok(())
}

async fn run_pair(source: &str, target: &str, path: Route) {
    let dir = cases_dir().join(format!("{source}-to-{target}"));
    let mut cases: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        // FERRY_CASE=<name part> runs only the matching cases (while working on one)
        .filter(|p| {
            std::env::var("FERRY_CASE").map_or(true, |f| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().contains(f.as_str()))
            })
        })
        .filter(|p| {
            let sql = std::fs::read_to_string(p.join("source.sql")).unwrap_or_default();
            let task = std::fs::read_to_string(p.join("task.yaml")).unwrap_or_default();
            match path {
                Route::Full => true,
                Route::Stream => sql.contains(STREAM_MARKER),
                Route::Added | Route::AddedAppend => {
                    sql.contains(STREAM_MARKER) && !task.contains("objects:")
                }
            }
        })
        .collect();
    cases.sort();
    assert!(!cases.is_empty(), "no cases in {}", dir.display());
    let mut failures = Vec::new();
    for case in &cases {
        if let Err(e) = run_case(source, target, case, path).await {
            failures.push(format!("case {}: {e}", case.display()));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n\n")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn mysql_to_postgres() {
    run_pair("mysql", "postgres", Route::Full).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn mysql_to_mysql() {
    run_pair("mysql", "mysql", Route::Full).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_to_postgres() {
    run_pair("postgres", "postgres", Route::Full).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_to_mysql() {
    run_pair("postgres", "mysql", Route::Full).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn mysql_to_postgres_through_the_stream() {
    run_pair("mysql", "postgres", Route::Stream).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn mysql_to_mysql_through_the_stream() {
    run_pair("mysql", "mysql", Route::Stream).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_to_postgres_through_the_stream() {
    run_pair("postgres", "postgres", Route::Stream).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_to_mysql_through_the_stream() {
    run_pair("postgres", "mysql", Route::Stream).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn mysql_to_postgres_added_to_a_running_task() {
    run_pair("mysql", "postgres", Route::Added).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn mysql_to_mysql_added_to_a_running_task() {
    run_pair("mysql", "mysql", Route::Added).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_to_postgres_added_to_a_running_task() {
    run_pair("postgres", "postgres", Route::Added).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_to_mysql_added_to_a_running_task() {
    run_pair("postgres", "mysql", Route::Added).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn mysql_to_postgres_added_and_upserted_into_a_running_task() {
    run_pair("mysql", "postgres", Route::AddedAppend).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn mysql_to_mysql_added_and_upserted_into_a_running_task() {
    run_pair("mysql", "mysql", Route::AddedAppend).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_to_postgres_added_and_upserted_into_a_running_task() {
    run_pair("postgres", "postgres", Route::AddedAppend).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_to_mysql_added_and_upserted_into_a_running_task() {
    run_pair("postgres", "mysql", Route::AddedAppend).await;
}
