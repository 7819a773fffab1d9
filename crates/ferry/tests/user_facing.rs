//! What a user sees: log lines fit for files and collectors, connection failures
//! that each name their own fix, and `ferry check` / `status` / `compare` wording.

mod common;

use common::{task_file, text};
use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::Command;

/// Runs `ferry` with stdout and stderr captured (pipes, never a terminal).
fn ferry_env(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_ferry"));
    c.args(args).env("FERRY_LOG", "info").env_remove("NO_COLOR");
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("run ferry")
}

/// A port nothing listens on.
fn closed_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A listener on 127.0.0.1 that answers every connection with `reply` (after reading
/// what the client sends first, if anything) and closes it.
fn answering(reply: &'static [u8]) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            let mut s = s;
            s.set_read_timeout(Some(std::time::Duration::from_millis(300)))
                .ok();
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf);
            let _ = s.write_all(reply);
            // a lingering close: closing with the client's later bytes unread would
            // reset the connection, and the client could lose the reply to the reset
            let _ = s.shutdown(std::net::Shutdown::Write);
            while matches!(s.read(&mut buf), Ok(n) if n > 0) {}
        }
    });
    port
}

/// A task file whose source is `source` and whose target is a real test database.
async fn task_with_source(dir: &std::path::Path, source: &str) -> String {
    let dst = ferry_testkit::fresh_pg_database("uf_dst").await;
    task_file(dir, source, &dst, "")
}

#[tokio::test(flavor = "multi_thread")]
async fn log_lines_to_a_pipe_carry_no_colour_codes() {
    let dir = tempfile::tempdir().unwrap();
    let src = format!("postgres://postgres@127.0.0.1:{}/x", closed_port());
    let task = task_with_source(dir.path(), &src).await;
    let out = ferry_env(&["run", &task], &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("INFO"), "{err}");
    assert!(
        !out.stderr.contains(&0x1b),
        "colour codes in a pipe: {err:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn json_log_lines_parse() {
    let dir = tempfile::tempdir().unwrap();
    let src = format!("postgres://postgres@127.0.0.1:{}/x", closed_port());
    let task = task_with_source(dir.path(), &src).await;
    let out = ferry_env(&["run", &task], &[("FERRY_LOG_FORMAT", "json")]);
    let err = String::from_utf8_lossy(&out.stderr);
    // every stderr line, the final error too, is one JSON object
    let lines: Vec<serde_json::Value> = err
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert!(
        lines.iter().any(|v| v["level"] == "ERROR"
            && v["message"]
                .as_str()
                .unwrap()
                .contains("connection refused")),
        "{err}"
    );
    let info = lines
        .iter()
        .find(|v| v["level"] == "INFO")
        .unwrap_or_else(|| panic!("no INFO line: {err}"));
    assert!(
        info["message"].as_str().unwrap().starts_with("task "),
        "{info}"
    );
    assert!(info["timestamp"].as_str().is_some(), "{info}");
    assert!(!out.stderr.contains(&0x1b), "{err:?}");
}

/// `ferry check`'s output for a task whose source is `source`.
async fn check_source(source: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let task = task_with_source(dir.path(), source).await;
    let out = ferry_env(&["check", &task], &[]);
    assert!(!out.status.success());
    text(&out)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refused_connection_asks_whether_the_server_runs() {
    for scheme in ["postgres", "mysql"] {
        let port = closed_port();
        let out = check_source(&format!("{scheme}://root@127.0.0.1:{port}/x")).await;
        assert!(out.contains("connection refused"), "{out}");
        assert!(
            out.contains(&format!("nothing accepts connections at 127.0.0.1:{port}")),
            "{out}"
        );
        assert!(out.contains("server running"), "{out}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn something_else_at_the_port_is_named_so() {
    for (scheme, name) in [
        ("postgres", "not PostgreSQL"),
        ("mysql", "not MySQL/MariaDB"),
    ] {
        let port = answering(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
        let out = check_source(&format!("{scheme}://root@127.0.0.1:{port}/x")).await;
        assert!(
            out.contains(&format!(
                "something at 127.0.0.1:{port} answered, but it is {name}"
            )),
            "{out}"
        );
        assert!(!out.contains("grant"), "{out}");
    }
}

/// A PostgreSQL ErrorResponse with `code` and `message`, as a server sends it.
fn pg_error(code: &str, message: &str) -> &'static [u8] {
    let mut msg = Vec::new();
    for (k, v) in [
        (b'S', "FATAL"),
        (b'V', "FATAL"),
        (b'C', code),
        (b'M', message),
    ] {
        msg.push(k);
        msg.extend_from_slice(v.as_bytes());
        msg.push(0);
    }
    msg.push(0);
    let mut reply = vec![b'E'];
    reply.extend_from_slice(&(msg.len() as u32 + 4).to_be_bytes());
    reply.extend_from_slice(&msg);
    Box::leak(reply.into_boxed_slice())
}

/// A MySQL ERR packet sent instead of the greeting, as a server does for a client
/// host it does not accept.
fn my_error(code: u16, message: &str) -> &'static [u8] {
    let mut payload = vec![0xff];
    payload.extend_from_slice(&code.to_le_bytes());
    payload.extend_from_slice(message.as_bytes());
    let mut reply = (payload.len() as u32).to_le_bytes()[..3].to_vec();
    reply.push(0);
    reply.extend_from_slice(&payload);
    Box::leak(reply.into_boxed_slice())
}

#[tokio::test(flavor = "multi_thread")]
async fn tls_required_and_host_not_allowed_have_their_own_fix() {
    let port = answering(pg_error(
        "28000",
        "no pg_hba.conf entry for host \"127.0.0.1\", user \"app\", database \"x\", no encryption",
    ));
    // a real hostssl-only server gets TLS by default (sslmode=prefer): the refusal
    // comes to a URL that turned TLS off
    let out = check_source(&format!(
        "postgres://app@127.0.0.1:{port}/x?sslmode=disable"
    ))
    .await;
    assert!(out.contains("the server requires TLS"), "{out}");
    assert!(
        out.contains("no encryption") && out.contains("sslmode=disable"),
        "{out}"
    );
    assert!(out.contains("`host` line, not `hostssl`"), "{out}");

    let port = answering(my_error(
        1130,
        "Host '10.1.2.3' is not allowed to connect to this MariaDB server",
    ));
    let out = check_source(&format!("mysql://app@127.0.0.1:{port}/x")).await;
    assert!(out.contains("authentication failed"), "{out}");
    assert!(out.contains("'app'@'%'"), "{out}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_password_points_at_the_password() {
    // MariaDB: the test server's root has an empty password
    let db = ferry_testkit::fresh_mysql_database("uf_pw").await;
    let url = db.url().replace("mysql://root@", "mysql://root:wrong@");
    let out = check_source(&url).await;
    assert!(out.contains("authentication failed"), "{out}");
    assert!(out.contains("FERRY_SOURCE_PASSWORD"), "{out}");
    assert!(!out.contains("grant") && !out.contains("wrong"), "{out}");

    // PostgreSQL (the test server trusts everyone): a server that refuses the password
    // as PostgreSQL does, with SQLSTATE 28P01
    let port = answering(pg_error(
        "28P01",
        "password authentication failed for user \"app\"",
    ));
    // (sslmode=disable: the fake answers the startup message once; a real server first
    // answers Ferry's default TLS request)
    let out = check_source(&format!(
        "postgres://app:secret@127.0.0.1:{port}/x?sslmode=disable"
    ))
    .await;
    assert!(out.contains("authentication failed"), "{out}");
    assert!(out.contains("pg_hba.conf"), "{out}");
    assert!(!out.contains("grant") && !out.contains("secret"), "{out}");

    // the server asks for a password and the URL and environment give none
    let port = answering(b"R\0\0\0\x08\0\0\0\x03");
    let out = check_source(&format!(
        "postgres://app@127.0.0.1:{port}/x?sslmode=disable"
    ))
    .await;
    assert!(out.contains("authentication failed"), "{out}");
    assert!(out.contains("FERRY_SOURCE_PASSWORD"), "{out}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_database_says_create_it() {
    let pg = ferry_testkit::postgres();
    let out = check_source(&pg.url_for("no_such_db_here")).await;
    assert!(out.contains("database does not exist"), "{out}");
    assert!(out.contains("CREATE DATABASE \"no_such_db_here\""), "{out}");
}

/// `ferry check` on a keyless, never analysed PostgreSQL table: the item's title
/// agrees with its detail, the row estimate is not 0, one table is "1 table", and what
/// check says about REPLICA IDENTITY is what the run then reports it did.
#[tokio::test(flavor = "multi_thread")]
async fn check_wording_agrees_with_itself_and_with_the_run() {
    let src = ferry_testkit::fresh_pg_database("uf_chk_src").await;
    let dst = ferry_testkit::fresh_pg_database("uf_chk_dst").await;
    ferry_testkit::pg_exec(
        &src,
        "CREATE TABLE events_log (at timestamptz, what text);
         INSERT INTO events_log SELECT now(), 'e' || g FROM generate_series(1, 1000) g;",
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let task = task_file(dir.path(), &src, &dst, "");
    let yaml = std::fs::read_to_string(&task)
        .unwrap()
        .replace("mode: full\n", "mode: full+incremental\n");
    std::fs::write(&task, yaml).unwrap();
    let out = text(&ferry_env(&["check", &task], &[]));
    assert!(out.contains("1 table, about 1000 rows"), "{out}");
    for line in out.lines() {
        assert!(
            !(line.contains("has a primary key") && line.contains("no primary key")),
            "{line}"
        );
    }
    assert!(
        out.contains("public.events_log without a primary key"),
        "{out}"
    );
    assert!(
        out.contains("`ferry run` sets REPLICA IDENTITY FULL"),
        "{out}"
    );
    let run = ferry_env(&["run", "--quiet", "--exit-when-caught-up", &task], &[]);
    let run_out = text(&run);
    assert!(run.status.success(), "{run_out}");
    assert!(
        run_out.contains("Ferry set REPLICA IDENTITY FULL on it"),
        "{run_out}"
    );
    assert!(
        !run_out.contains("set REPLICA IDENTITY FULL on the source so"),
        "{run_out}"
    );
}

/// `ferry run` does not run a sync or DR task as a migration: it says which command
/// does.
#[tokio::test(flavor = "multi_thread")]
async fn run_refuses_sync_and_dr_tasks_naming_the_service_command() {
    for kind in ["sync", "dr"] {
        let dir = tempfile::tempdir().unwrap();
        let src = format!("postgres://postgres@127.0.0.1:{}/x", closed_port());
        let task = task_with_source(dir.path(), &src).await;
        let yaml = std::fs::read_to_string(&task)
            .unwrap()
            .replace("kind: migration", &format!("kind: {kind}"));
        std::fs::write(&task, yaml).unwrap();
        let out = ferry_env(&["run", &task], &[]);
        let t = text(&out);
        assert_eq!(out.status.code(), Some(2), "{t}");
        assert!(t.contains(&format!("`kind: {kind}` task")), "{t}");
        assert!(t.contains(&format!("ferry task create -f {task}")), "{t}");
        assert!(!t.contains("cannot connect"), "it ran: {t}");
        // nor does `ferry end` end one: the service owns it, under its id
        let out = ferry_env(&["end", &task], &[]);
        let t = text(&out);
        assert_eq!(out.status.code(), Some(2), "{t}");
        assert!(t.contains(&format!("`kind: {kind}` task")), "{t}");
        assert!(t.contains("ferry task end"), "{t}");
        assert!(!t.contains("ended"), "{t}");
    }
}

/// After `ferry end` the status shows the final position and no lag, however far the
/// source moves on; `ferry compare` names source and target tables when a rename
/// makes them differ (the run's summary names target tables).
#[tokio::test(flavor = "multi_thread")]
async fn an_ended_task_has_no_lag_and_compare_names_both_tables() {
    let src = ferry_testkit::fresh_pg_database("uf_end_src").await;
    let dst = ferry_testkit::fresh_pg_database("uf_end_dst").await;
    ferry_testkit::pg_exec(
        &src,
        "CREATE TABLE acct (id int PRIMARY KEY, v int); INSERT INTO acct SELECT g, g FROM generate_series(1, 100) g;",
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let task = task_file(
        dir.path(),
        &src,
        &dst,
        "objects:\n  rename: { public: app }\n",
    );
    let yaml = std::fs::read_to_string(&task)
        .unwrap()
        .replace("mode: full\n", "mode: full+incremental\n");
    std::fs::write(&task, yaml).unwrap();
    // a task that never ran has nothing to end, and `end` says so
    let end = ferry_env(&["end", &task], &[]);
    assert!(end.status.success(), "{}", text(&end));
    assert!(text(&end).contains("nothing to end"), "{}", text(&end));
    assert!(!text(&end).contains("ended"), "{}", text(&end));
    let run = ferry_env(&["run", "--quiet", "--exit-when-caught-up", &task], &[]);
    assert!(run.status.success(), "{}", text(&run));
    assert!(text(&run).contains("app.acct"), "{}", text(&run));

    let cmp = text(&ferry_env(&["compare", &task], &[]));
    assert!(cmp.contains("public.acct → app.acct"), "{cmp}");
    assert!(cmp.contains("the table is equal"), "{cmp}");

    let end = ferry_env(&["end", &task], &[]);
    assert!(end.status.success(), "{}", text(&end));
    ferry_testkit::pg_exec(
        &src,
        "INSERT INTO acct SELECT g, g FROM generate_series(101, 200) g;",
    )
    .await;
    let st = text(&ferry_env(&["status", &task], &[]));
    assert!(st.contains("phase:          ended"), "{st}");
    assert!(st.contains("final position: "), "{st}");
    assert!(!st.contains("lag:") && !st.contains("behind:"), "{st}");
    assert!(!st.contains("missing"), "{st}");
}

/// A full+incremental run prints the copy's summary and snapshot position when the
/// copy ends, while it goes on streaming (not only at Ctrl-C).
#[tokio::test(flavor = "multi_thread")]
async fn the_copy_summary_is_printed_when_streaming_begins() {
    let src = ferry_testkit::fresh_mysql_database("uf_sum_src").await;
    let dst = ferry_testkit::fresh_pg_database("uf_sum_dst").await;
    ferry_testkit::mysql_exec(
        &src,
        "CREATE TABLE acct (id int PRIMARY KEY, v int); INSERT INTO acct SELECT seq, seq FROM seq_1_to_1000;",
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let task = task_file(
        dir.path(),
        &src,
        &dst,
        &format!("objects:\n  rename: {{ {}: app }}\n", src.name()),
    );
    let yaml = std::fs::read_to_string(&task)
        .unwrap()
        .replace("mode: full\n", "mode: full+incremental\n");
    std::fs::write(&task, yaml).unwrap();
    let (out, still_running) = output_until_streaming(&task);
    assert!(still_running, "the run ended: {out}");
    assert!(out.contains("app.acct"), "{out}");
    assert!(out.contains("snapshot position: "), "{out}");
    assert!(out.contains("1 table, 1000 rows copied"), "{out}");
    assert!(
        out.contains("streaming changes from the snapshot position"),
        "{out}"
    );
}

/// A peer that accepts and never answers is a timeout with its own fix, not a hang.
#[tokio::test(flavor = "multi_thread")]
async fn a_silent_peer_times_out() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in l.incoming().flatten() {
            held.push(s);
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let mut runs = Vec::new();
    for scheme in ["postgres", "mysql"] {
        let task =
            task_with_source(dir.path(), &format!("{scheme}://root@127.0.0.1:{port}/x")).await;
        // both at once: each waits out its timeout
        runs.push(std::thread::spawn(move || {
            text(&ferry_env(&["check", &task], &[]))
        }));
    }
    for out in runs.into_iter().map(|r| r.join().unwrap()) {
        assert!(out.contains("no answer: no handshake within 10 s"), "{out}");
        assert!(
            out.contains(&format!("127.0.0.1:{port} did not answer")),
            "{out}"
        );
    }
}

/// Starts `ferry run` on `task` and collects its stdout until it says it streams (at
/// most 120 s); then stops it. Returns the lines and whether it was still running.
fn output_until_streaming(task: &str) -> (String, bool) {
    use std::io::BufRead;
    let mut child = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(["run", "--quiet", task])
        .env("FERRY_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while !seen
        .iter()
        .any(|l: &String| l.starts_with("streaming changes"))
    {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok(l) => seen.push(l),
            Err(_) => break,
        }
    }
    let still_running = child.try_wait().unwrap().is_none();
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
    (seen.join("\n"), still_running)
}

/// A run that streams without copying (the copy was done before) says so, with its
/// warnings, when the stream starts.
#[tokio::test(flavor = "multi_thread")]
async fn a_resumed_stream_says_it_streams_when_it_starts() {
    let src = ferry_testkit::fresh_pg_database("uf_res_src").await;
    let dst = ferry_testkit::fresh_pg_database("uf_res_dst").await;
    ferry_testkit::pg_exec(
        &src,
        "CREATE TABLE acct (id int PRIMARY KEY, v int); INSERT INTO acct VALUES (1, 1);",
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let task = task_file(dir.path(), &src, &dst, "");
    let yaml = std::fs::read_to_string(&task)
        .unwrap()
        .replace("mode: full\n", "mode: full+incremental\n");
    std::fs::write(&task, yaml).unwrap();
    let first = ferry_env(&["run", "--quiet", "--exit-when-caught-up", &task], &[]);
    assert!(first.status.success(), "{}", text(&first));
    let (out, still_running) = output_until_streaming(&task);
    assert!(still_running, "the run ended: {out}");
    assert!(out.contains("streaming changes"), "{out}");
    assert!(!out.contains("snapshot position"), "{out}");
    assert!(text(&ferry_env(&["end", &task], &[])).contains("ended"));
}

/// Output piped into a reader that stops early (`ferry check … | head -1`) ends the
/// program quietly, as SIGPIPE would, instead of a panic and its backtrace.
#[tokio::test(flavor = "multi_thread")]
async fn a_closed_output_pipe_ends_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let src = format!("postgres://postgres@127.0.0.1:{}/x", closed_port());
    let task = task_with_source(dir.path(), &src).await;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(["check", &task])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // the reader goes away before the first line is written
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(out.status.code(), Some(141), "{err}");
}
