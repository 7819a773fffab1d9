//! PostgreSQL protocol version 2 streaming of large in-progress transactions, read
//! through the PostgreSQL connector's `Capture::stream` against a real server.
//!
//! The same stretch of WAL is read twice from the task's slot: once as whole
//! transactions (`in_progress: false`, protocol version 1, as before) and once with
//! `StreamFeatures { in_progress: true }`. The database sets
//! `logical_decoding_work_mem = 64kB`, so the server streams every transaction bigger
//! than that before it commits. Both reads must agree on everything a consumer acts
//! on: the commit order, every commit's position and transaction id, and the rows a
//! committed transaction leaves behind.

use ferry_core::change::{Event, InProgressPart, RowOp, StreamFeatures};
use ferry_core::select::ObjectFilter;
use ferry_core::{Engine, Position, Table, TableId, TaskSpec};
use ferry_engine::factory::connector;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};

async fn client(url: &str) -> tokio_postgres::Client {
    let (c, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(conn);
    c
}

/// A task spec on `src` (the target only decides how arrays are decoded).
fn spec(src: &str) -> TaskSpec {
    let name = ferry_testkit::unique_name("pgs").replace('_', "-");
    let target = ferry_testkit::postgres().url_for("postgres");
    TaskSpec::from_yaml(&format!(
        "name: {name}\nkind: migration\nmode: full\nsource: {src}\ntarget: {target}\n"
    ))
    .unwrap()
}

/// Creates the task's publication and slot as a task does; returns where the slot's
/// stream starts, and the tables as the catalog has them (what a task streams with).
async fn create_slot(spec: &TaskSpec, tables: &[&str]) -> (Position, Vec<Table>) {
    let pg = connector(Engine::Postgres);
    let mut conn = pg.connect(&spec.source).await.unwrap();
    let mut found = Vec::new();
    for t in tables {
        let id = TableId::new("public", *t);
        found.extend(conn.tables(&ObjectFilter::table(&id), None).await.unwrap());
    }
    assert_eq!(found.len(), tables.len());
    let slot = pg
        .task_slot(spec)
        .await
        .unwrap()
        .expect("a PostgreSQL slot");
    slot.ensure_tables(&found).await.unwrap();
    let start = slot.create(false).await.unwrap();
    (start.position().clone(), found)
}

/// Reads the slot from `start` until a whole transaction commits at or after `goal`;
/// every event in order. Retries while the previous read's walsender still holds the
/// slot.
async fn read(
    spec: &TaskSpec,
    tables: &[Table],
    start: &Position,
    goal: u64,
    in_progress: bool,
) -> Vec<Event> {
    read_with(spec, tables, start, in_progress, false, &|| goal)
        .await
        .unwrap_or_else(|(_, e)| panic!("the stream ended before the goal: {e}"))
}

/// [`read`]; `follow`: acknowledge every whole commit as soon as it arrives (as an
/// applier that commits at once). The stream's error, with what arrived before it,
/// when it ends before the goal.
async fn read_with(
    spec: &TaskSpec,
    tables: &[Table],
    start: &Position,
    in_progress: bool,
    follow: bool,
    goal: &(dyn Fn() -> u64 + Sync),
) -> Result<Vec<Event>, (Vec<Event>, ferry_core::Error)> {
    let deadline = Instant::now() + Duration::from_secs(180);
    'attempt: loop {
        let (tx, mut rx) = mpsc::channel::<Event>(1024);
        let (ack_tx, ack_rx) = watch::channel(Some(start.clone()));
        let (s, p, t) = (spec.clone(), start.clone(), tables.to_vec());
        let reader = tokio::spawn(async move {
            connector(Engine::Postgres)
                .stream(&s, &p, t, &tx, ack_rx, StreamFeatures { in_progress })
                .await
        });
        let mut events = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, rx.recv()).await {
                Err(_) => panic!(
                    "no commit at {:X} within 180 s ({} events)",
                    goal(),
                    events.len()
                ),
                Ok(Some(ev)) => {
                    let mut done = false;
                    if let Event::Commit {
                        position: Position::PgLsn(l),
                        ..
                    } = &ev
                    {
                        done = *l >= goal();
                        if follow {
                            ack_tx.send_replace(Some(Position::PgLsn(*l)));
                        }
                    }
                    events.push(ev);
                    if done {
                        reader.abort();
                        return Ok(events);
                    }
                }
                Ok(None) => match reader.await.unwrap() {
                    Err(e) if e.message.contains("is active for PID") => {
                        tokio::time::sleep(Duration::from_millis(300)).await;
                        continue 'attempt;
                    }
                    Err(e) => return Err((events, e)),
                    Ok(()) => panic!("the stream ended without an error before the goal"),
                },
            }
        }
    }
}

/// Writes a transactional logical message; its LSN (a read stops at its commit).
async fn marker(c: &tokio_postgres::Client) -> u64 {
    let lsn: String = c
        .query_one(
            "SELECT pg_logical_emit_message(true, 'ferry', 'end of test')::text",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    ferry_core::position::parse_lsn(&lsn).unwrap()
}

/// One consumer's view of a read: the commit order, and per transaction id its row
/// changes (rendered) and the subtransactions that rolled back.
#[derive(Default)]
struct View {
    /// (transaction id, commit position), in the order commits arrived.
    commits: Vec<(u32, Position)>,
    /// Rows of whole transactions, by id.
    whole_rows: HashMap<u32, Vec<String>>,
    /// Rows of streamed transactions, by id: (subtransaction, row).
    parts: HashMap<u32, Vec<(u32, String)>>,
    /// Streamed (transaction, rolled-back subtransaction) pairs, in order.
    aborts: Vec<(u32, u32)>,
    /// Index in the event list of each streamed transaction's first part, and of
    /// each whole transaction's Begin.
    first_seen: HashMap<u32, usize>,
    in_progress_events: usize,
}

fn view(events: &[Event]) -> View {
    let mut v = View::default();
    let mut current: Option<u32> = None;
    for (i, ev) in events.iter().enumerate() {
        match ev {
            Event::Begin { xid, .. } => {
                let xid = xid.expect("PostgreSQL names every transaction");
                assert!(current.is_none(), "Begin inside a transaction");
                current = Some(xid);
                v.first_seen.entry(xid).or_insert(i);
                v.whole_rows.entry(xid).or_default();
            }
            Event::Row { shape, op } => {
                let xid = current.expect("a row outside a transaction");
                v.whole_rows
                    .entry(xid)
                    .or_default()
                    .push(format!("{} {op:?}", shape.table));
            }
            Event::Commit { position, .. } => {
                v.commits.push((
                    current.take().expect("Commit without Begin"),
                    position.clone(),
                ));
            }
            Event::InProgress { xid, part } => {
                v.in_progress_events += 1;
                v.first_seen.entry(*xid).or_insert(i);
                match part {
                    InProgressPart::Row { subxid, shape, op } => v
                        .parts
                        .entry(*xid)
                        .or_default()
                        .push((*subxid, format!("{} {op:?}", shape.table))),
                    InProgressPart::Abort { subxid } => v.aborts.push((*xid, *subxid)),
                    InProgressPart::Commit { position, .. } => {
                        v.commits.push((*xid, position.clone()))
                    }
                    InProgressPart::Truncate { .. } => panic!("no truncate was made"),
                }
            }
            other => panic!("unexpected event {other:?}"),
        }
    }
    assert!(current.is_none(), "the read ended inside a transaction");
    v
}

/// A 50,000-row transaction (with a released and a rolled-back savepoint) streamed
/// before it commits, a whole-transaction rollback, and small transactions between
/// them: the streamed read carries the same commits at the same positions in the
/// same order as the whole-transaction read, and the same rows once the rolled-back
/// subtransaction's are dropped.
#[tokio::test]
async fn large_transactions_arrive_in_parts_and_commit_where_a_whole_read_puts_them() {
    let db = ferry_testkit::fresh_pg_database("pg_streaming").await;
    let url = db.url().to_string();
    let admin = client(&url).await;
    admin
        .batch_execute(&format!(
            "ALTER DATABASE \"{}\" SET logical_decoding_work_mem = '64kB';
             CREATE TABLE big (id bigint PRIMARY KEY, v text NOT NULL);
             CREATE TABLE small (id bigint PRIMARY KEY, note text);",
            db.name()
        ))
        .await
        .unwrap();
    let spec = spec(&url);
    let (start, tables) = create_slot(&spec, &["big", "small"]).await;

    let (a, b) = (client(&url).await, client(&url).await);
    b.batch_execute("INSERT INTO small VALUES (1, 'before')")
        .await
        .unwrap();
    let big_xid: String = {
        a.batch_execute(
            "BEGIN; INSERT INTO big SELECT g, repeat('x', 20) FROM generate_series(1, 25000) g",
        )
        .await
        .unwrap();
        a.query_one("SELECT txid_current()::text", &[])
            .await
            .unwrap()
            .get(0)
    };
    // commits while the large transaction runs: it is decoded between its parts
    b.batch_execute("INSERT INTO small VALUES (2, 'during')")
        .await
        .unwrap();
    a.batch_execute(
        "INSERT INTO big SELECT g, repeat('y', 20) FROM generate_series(25001, 50000) g;
         SAVEPOINT kept; UPDATE big SET v = 'kept' WHERE id <= 100; RELEASE kept;
         SAVEPOINT undone; INSERT INTO big SELECT 1000000 + g, 'undone' FROM generate_series(1, 5000) g;
         ROLLBACK TO undone;
         COMMIT",
    )
    .await
    .unwrap();
    b.batch_execute("INSERT INTO small VALUES (3, 'after')")
        .await
        .unwrap();
    let aborted_xid: String = {
        a.batch_execute(
            "BEGIN; INSERT INTO big SELECT 2000000 + g, 'aborted' FROM generate_series(1, 20000) g",
        )
        .await
        .unwrap();
        let x = a
            .query_one("SELECT txid_current()::text", &[])
            .await
            .unwrap()
            .get(0);
        a.batch_execute("ROLLBACK").await.unwrap();
        x
    };
    b.batch_execute("INSERT INTO small VALUES (4, 'last')")
        .await
        .unwrap();
    let goal = marker(&b).await;
    let big_xid = (big_xid.parse::<u64>().unwrap() & 0xffff_ffff) as u32;
    let aborted_xid = (aborted_xid.parse::<u64>().unwrap() & 0xffff_ffff) as u32;

    // whole transactions only: exactly as before streaming existed
    let whole = view(&read(&spec, &tables, &start, goal, false).await);
    assert_eq!(
        whole.in_progress_events, 0,
        "parts sent without being asked for"
    );
    let big_whole = &whole.whole_rows[&big_xid];
    assert_eq!(big_whole.len(), 50_100);
    assert!(!whole.whole_rows.contains_key(&aborted_xid));
    let big_commit = whole
        .commits
        .iter()
        .find(|(x, _)| *x == big_xid)
        .expect("the large transaction committed")
        .1
        .clone();

    // parts of in-progress transactions
    let streamed = view(&read(&spec, &tables, &start, goal, true).await);
    assert!(streamed.in_progress_events > 0);
    assert!(
        !streamed.whole_rows.contains_key(&big_xid),
        "the 50,000-row transaction arrived whole: the server did not stream it \
         (logical_decoding_work_mem not applied?)"
    );
    // same commits, same positions, same order: small ones whole, the large one as
    // the streamed Commit, at the position the whole read gives it
    assert_eq!(streamed.commits, whole.commits);
    let (_, at) = streamed
        .commits
        .iter()
        .find(|(x, _)| *x == big_xid)
        .unwrap();
    assert_eq!(at, &big_commit);
    for (xid, rows) in &streamed.whole_rows {
        assert_eq!(rows, &whole.whole_rows[xid], "transaction {xid}");
    }
    // the large transaction's first parts arrived before the transaction committed
    // during it
    let during = whole.commits[1].0;
    assert!(streamed.first_seen[&big_xid] < streamed.first_seen[&during]);

    // the rolled-back savepoint: its rows came, then its Abort; the rest are the rows
    // the transaction left, in the order a whole read gives them
    let undone: HashSet<u32> = streamed
        .aborts
        .iter()
        .filter(|(x, _)| *x == big_xid)
        .map(|(_, s)| *s)
        .collect();
    assert_eq!(undone.len(), 1, "{:?}", streamed.aborts);
    assert!(!undone.contains(&big_xid));
    let parts = &streamed.parts[&big_xid];
    let undone_rows = parts.iter().filter(|(s, _)| undone.contains(s)).count();
    assert!(undone_rows > 0 && undone_rows <= 5000, "{undone_rows}");
    assert!(parts
        .iter()
        .filter(|(s, _)| undone.contains(s))
        .all(|(_, r)| r.contains("undone")));
    let kept: Vec<&String> = parts
        .iter()
        .filter(|(s, _)| !undone.contains(s))
        .map(|(_, r)| r)
        .collect();
    assert_eq!(kept, big_whole.iter().collect::<Vec<_>>());
    // the released savepoint's updates carry their own subtransaction id
    let subs: HashSet<u32> = parts
        .iter()
        .filter(|(_, r)| r.contains("kept"))
        .map(|(s, _)| *s)
        .collect();
    assert_eq!(subs.len(), 1);
    assert!(!subs.contains(&big_xid) && subs.is_disjoint(&undone));
    assert!(parts
        .iter()
        .filter(|(_, r)| r.contains("\"x") || r.contains("\"y"))
        .all(|(s, _)| *s == big_xid));

    // the rolled-back 20,000-row transaction: parts, then an Abort of the whole
    assert!(streamed.parts[&aborted_xid].len() <= 20_000);
    assert!(!streamed.parts[&aborted_xid].is_empty());
    assert_eq!(
        streamed
            .aborts
            .iter()
            .filter(|(x, _)| *x == aborted_xid)
            .collect::<Vec<_>>(),
        vec![&(aborted_xid, aborted_xid)]
    );
    assert!(!streamed.commits.iter().any(|(x, _)| *x == aborted_xid));

    connector(Engine::Postgres)
        .task_slot(&spec)
        .await
        .unwrap()
        .unwrap()
        .drop_all()
        .await
        .unwrap();
}

/// A streamed transaction that changes its table's columns: its parts cannot carry
/// the change, so the stream stops with a transient error naming the transaction, the
/// next stream takes whole transactions (the transaction arrives whole, new column
/// and all), and once the target has acknowledged past it streaming is back on.
#[tokio::test]
async fn a_schema_change_inside_a_streamed_transaction_turns_streaming_off_for_it() {
    let db = ferry_testkit::fresh_pg_database("pg_streaming_ddl").await;
    let url = db.url().to_string();
    let c = client(&url).await;
    c.batch_execute(&format!(
        "ALTER DATABASE \"{}\" SET logical_decoding_work_mem = '64kB';
         CREATE TABLE big (id bigint PRIMARY KEY, v text NOT NULL);",
        db.name()
    ))
    .await
    .unwrap();
    let spec = spec(&url);
    let (start, tables) = create_slot(&spec, &["big"]).await;
    // still running while it is read: its ALTER is not in the committed catalog
    let a = client(&url).await;
    a.batch_execute(
        "BEGIN;
         INSERT INTO big SELECT g, 'before' FROM generate_series(1, 10000) g;
         ALTER TABLE big ADD COLUMN extra int;
         INSERT INTO big SELECT g, 'after', g FROM generate_series(10001, 20000) g;",
    )
    .await
    .unwrap();
    let running: String = a
        .query_one("SELECT txid_current()::text", &[])
        .await
        .unwrap()
        .get(0);
    let running = (running.parse::<u64>().unwrap() & 0xffff_ffff) as u32;
    let (parts, e) = read_with(&spec, &tables, &start, true, false, &|| u64::MAX)
        .await
        .expect_err("parts of a transaction with a schema change were sent");
    a.batch_execute("COMMIT").await.unwrap();
    let goal = marker(&c).await;
    assert!(e.is_transient(), "{e}");
    assert!(
        e.message
            .contains("streaming of in-progress transactions is turned off for that transaction"),
        "{e}"
    );
    let xid = match parts.first() {
        Some(Event::InProgress { xid, .. }) => *xid,
        other => panic!("the rows before the ALTER came first as parts: {other:?} ({e})"),
    };
    assert_eq!(xid, running);
    assert!(e.message.contains(&format!("transaction {xid}")), "{e}");
    assert!(!parts.iter().any(
        |ev| matches!(ev, Event::InProgress { part: InProgressPart::Row { shape, .. }, .. } if shape.columns.len() == 3)
    ));

    // asked again: the transaction arrives whole, with the new column
    let whole = read_with(&spec, &tables, &start, true, false, &|| goal)
        .await
        .unwrap();
    assert!(!whole
        .iter()
        .any(|ev| matches!(ev, Event::InProgress { .. })));
    assert!(matches!(whole.first(), Some(Event::Begin { xid: Some(x), .. }) if *x == xid));
    let rows: Vec<usize> = whole
        .iter()
        .filter_map(|ev| match ev {
            Event::Row {
                op: RowOp::Insert(r),
                ..
            } => Some(r.len()),
            _ => None,
        })
        .collect();
    assert_eq!(rows.len(), 20_000);
    assert_eq!(rows.iter().filter(|n| **n == 3).count(), 10_000);
    let Some(Event::Commit { position, .. }) =
        whole.iter().find(|ev| matches!(ev, Event::Commit { .. }))
    else {
        panic!("no commit")
    };
    let after = position.clone();

    // a stream acknowledging past it (small commits, each acknowledged) for longer than
    // the reader's 10 s check: whole transactions still, and streaming turned back on
    let ticks_goal = Arc::new(AtomicU64::new(u64::MAX));
    let writer = {
        let (url, ticks_goal) = (url.clone(), ticks_goal.clone());
        tokio::spawn(async move {
            let c = client(&url).await;
            for i in 0..26 {
                c.batch_execute(&format!(
                    "INSERT INTO big VALUES ({}, 'tick', 0)",
                    100_000 + i
                ))
                .await
                .unwrap();
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            ticks_goal.store(marker(&c).await, Ordering::SeqCst);
            // a commit after the goal is set, should the marker's arrive before
            c.batch_execute("INSERT INTO big VALUES (99999, 'tick', 0)")
                .await
                .unwrap();
        })
    };
    let ticks = read_with(&spec, &tables, &after, true, true, &|| {
        ticks_goal.load(Ordering::SeqCst)
    })
    .await
    .unwrap();
    writer.await.unwrap();
    assert!(!ticks
        .iter()
        .any(|ev| matches!(ev, Event::InProgress { .. })));
    let Some(Event::Commit {
        position: resume, ..
    }) = ticks.last()
    else {
        panic!("the read ends at a commit")
    };

    c.batch_execute(
        "INSERT INTO big SELECT g, 'streamed', 1 FROM generate_series(200000, 220000) g",
    )
    .await
    .unwrap();
    let goal = marker(&c).await;
    let streamed = read_with(&spec, &tables, resume, true, false, &|| goal)
        .await
        .unwrap();
    assert!(
        streamed
            .iter()
            .any(|ev| matches!(ev, Event::InProgress { .. })),
        "streaming stayed off after the target passed the transaction"
    );

    connector(Engine::Postgres)
        .task_slot(&spec)
        .await
        .unwrap()
        .unwrap()
        .drop_all()
        .await
        .unwrap();
}
