//! The ledger workload on the source. Every source transaction carries unique ids;
//! each id is inserted into `ledger_log` (keyed) and `ledger_keyless` (no key at all)
//! and appended to the `items` list of two `ledger_lists` rows, all in one
//! transaction. A transaction is acknowledged only when COMMIT returned OK; one whose
//! COMMIT got no answer is "in doubt" (the source decides whether it exists).

use crate::db::{Db, Engine};
use crate::rng::Rng;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Rows of `ledger_lists`: enough that lists stay short (every append logs the whole
/// row, twice, in a ROW binlog — long lists fill a target's binlog disk).
pub const LIST_ROWS: u64 = 1000;
/// Writer number of the big transactions.
pub const BIG_WRITER: u64 = 9;

/// The id of a writer's `seq`-th id.
pub fn txid(writer: u64, seq: u64) -> u64 {
    writer * 1_000_000_000 + seq
}

/// DDL of the three ledger tables on `engine`.
pub fn schema_sql(engine: Engine) -> String {
    let items = match engine {
        Engine::Pg => "text",
        Engine::My => "longtext",
    };
    format!(
        "CREATE TABLE ledger_log (txid bigint PRIMARY KEY, writer int NOT NULL, seq bigint NOT NULL, \
           r1 int NOT NULL, r2 int NOT NULL, note varchar(64));
         CREATE TABLE ledger_keyless (txid bigint NOT NULL, writer int NOT NULL, seq bigint NOT NULL);
         CREATE TABLE ledger_lists (id int PRIMARY KEY, items {items} NOT NULL);"
    )
}

/// Preloads `n` ids (log and keyless rows) and the empty lists.
pub fn preload_sql(engine: Engine, n: u64) -> String {
    let (gen, g) = match engine {
        Engine::Pg => (format!("generate_series(1, {n}) g"), "g"),
        Engine::My => (format!("seq_1_to_{n}"), "seq"),
    };
    let lists = (0..LIST_ROWS)
        .map(|i| format!("({i}, '')"))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "INSERT INTO ledger_log SELECT {g}, 0, {g}, -1, -1, 'preloaded row of the ledger' FROM {gen};
         INSERT INTO ledger_keyless SELECT {g}, 0, {g} FROM {gen};
         INSERT INTO ledger_lists VALUES {lists};"
    )
}

/// One source transaction's ids: `first .. first + count`.
#[derive(Debug, Clone, Copy)]
pub struct Txn {
    /// First id.
    pub first: u64,
    /// How many consecutive ids.
    pub count: u64,
}

/// What the writers know: acknowledged and in-doubt transactions, and when each was
/// acknowledged (for recovery times).
#[derive(Default)]
pub struct Acks {
    /// Transactions whose COMMIT returned OK, in acknowledgement order.
    pub acked: Vec<(Instant, Txn)>,
    /// Transactions whose COMMIT got no answer.
    pub in_doubt: Vec<Txn>,
    /// Transactions that failed before COMMIT was sent (rolled back).
    pub aborted: u64,
}

/// The workload's shared state.
pub struct Workload {
    /// Ids the writers recorded.
    pub acks: Mutex<Acks>,
    /// Set to stop the writers.
    pub stop: AtomicBool,
    /// Set to make the big writer run one big transaction now.
    pub big_now: AtomicBool,
    /// Big transactions committed.
    pub big_done: AtomicU64,
}

impl Workload {
    /// A fresh, running workload state.
    pub fn new() -> Arc<Workload> {
        Arc::new(Workload {
            acks: Mutex::new(Acks::default()),
            stop: AtomicBool::new(false),
            big_now: AtomicBool::new(false),
            big_done: AtomicU64::new(0),
        })
    }

    /// The first transaction acknowledged after `t`, if one is yet.
    pub fn first_acked_after(&self, t: Instant) -> Option<Txn> {
        let a = self.acks.lock().unwrap();
        let i = a.acked.partition_point(|(at, _)| *at <= t);
        a.acked.get(i).map(|(_, x)| *x)
    }

    fn record(&self, outcome: Outcome, t: Txn) {
        let mut a = self.acks.lock().unwrap();
        match outcome {
            Outcome::Acked => a.acked.push((Instant::now(), t)),
            Outcome::InDoubt => a.in_doubt.push(t),
            Outcome::Aborted => a.aborted += 1,
        }
    }
}

enum Outcome {
    Acked,
    InDoubt,
    Aborted,
}

/// The SQL that appends `ids` (comma-led) to list row `row`.
fn append_sql(engine: Engine, row: u64, ids: &str) -> String {
    match engine {
        Engine::Pg => format!("UPDATE ledger_lists SET items = items || '{ids}' WHERE id = {row}"),
        Engine::My => {
            format!("UPDATE ledger_lists SET items = CONCAT(items, '{ids}') WHERE id = {row}")
        }
    }
}

/// The body (without BEGIN/COMMIT) of one transaction of `count` ids from `first`.
fn body_sql(engine: Engine, writer: u64, first: u64, count: u64, r1: u64, r2: u64) -> String {
    let seq0 = first - txid(writer, 0);
    let mut s = String::new();
    if count == 1 {
        s.push_str(&format!(
            "INSERT INTO ledger_log VALUES ({first}, {writer}, {seq0}, {r1}, {r2}, 'w');\n\
             INSERT INTO ledger_keyless VALUES ({first}, {writer}, {seq0});\n"
        ));
    } else {
        let last = first + count - 1;
        let (gen, g) = match engine {
            Engine::Pg => (format!("generate_series({first}, {last}) g"), "g"),
            Engine::My => (format!("seq_{first}_to_{last}"), "seq"),
        };
        let base = txid(writer, 0);
        s.push_str(&format!(
            "INSERT INTO ledger_log SELECT {g}, {writer}, {g} - {base}, {r1}, {r2}, 'big' FROM {gen};\n\
             INSERT INTO ledger_keyless SELECT {g}, {writer}, {g} - {base} FROM {gen};\n"
        ));
    }
    let ids: String = (first..first + count).map(|i| format!(",{i}")).collect();
    // rows in ascending order: concurrent writers never deadlock
    s.push_str(&append_sql(engine, r1.min(r2), &ids));
    s.push_str(";\n");
    s.push_str(&append_sql(engine, r1.max(r2), &ids));
    s.push(';');
    s
}

/// Runs one writer until the workload stops: small transactions of one id each
/// (`big` makes this the big writer: `big_rows` ids per transaction, when asked or
/// every `big_every`).
#[allow(clippy::too_many_arguments)]
pub async fn writer(
    w: Arc<Workload>,
    engine: Engine,
    url: String,
    writer: u64,
    mut rng: Rng,
    pause: (u64, u64),
    big: Option<(u64, Duration)>,
) {
    let mut seq = 0u64;
    let mut db: Option<Db> = None;
    let mut last_big = Instant::now();
    let begin = match engine {
        Engine::Pg => "BEGIN",
        Engine::My => "START TRANSACTION",
    };
    while !w.stop.load(Ordering::SeqCst) {
        let count = match big {
            Some((rows, every)) => {
                if w.big_now.swap(false, Ordering::SeqCst) || last_big.elapsed() >= every {
                    last_big = Instant::now();
                    rows
                } else {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            }
            None => 1,
        };
        if db.is_none() {
            match Db::connect(engine, &url).await {
                Ok(d) => db = Some(d),
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    continue;
                }
            }
        }
        let conn = db.as_mut().expect("connected");
        let r1 = rng.range(0, LIST_ROWS - 1);
        let r2 = (r1 + rng.range(1, LIST_ROWS - 1)) % LIST_ROWS;
        let t = Txn {
            first: txid(writer, seq + 1),
            count,
        };
        seq += count;
        let body = format!(
            "{begin};\n{}",
            body_sql(engine, writer, t.first, count, r1, r2)
        );
        let outcome = match conn.exec(&body).await {
            Err(_) => {
                // COMMIT was never sent: the transaction cannot have committed
                let _ = conn.exec("ROLLBACK").await;
                Outcome::Aborted
            }
            Ok(()) => match conn.exec("COMMIT").await {
                Ok(()) => Outcome::Acked,
                Err(_) => Outcome::InDoubt,
            },
        };
        let failed = !matches!(outcome, Outcome::Acked);
        if matches!(outcome, Outcome::Acked) && count > 1 {
            w.big_done.fetch_add(1, Ordering::SeqCst);
        }
        w.record(outcome, t);
        if failed {
            if let Some(d) = db.take() {
                d.close().await;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        } else if pause.1 > 0 {
            tokio::time::sleep(rng.millis(pause.0, pause.1)).await;
        }
    }
    if let Some(d) = db {
        d.close().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_transaction_writes_every_part_of_its_ids_and_locks_rows_in_order() {
        let s = body_sql(Engine::Pg, 3, txid(3, 5), 1, 40, 7);
        assert!(s.contains("INSERT INTO ledger_log VALUES (3000000005, 3, 5, 40, 7, 'w')"));
        assert!(s.contains("INSERT INTO ledger_keyless VALUES (3000000005, 3, 5)"));
        let first = s.find("WHERE id = 7").unwrap();
        let second = s.find("WHERE id = 40").unwrap();
        assert!(first < second, "{s}");
        let big = body_sql(Engine::My, 9, txid(9, 1), 3, 1, 2);
        assert!(big.contains("seq_9000000001_to_9000000003"), "{big}");
        assert!(
            big.contains("CONCAT(items, ',9000000001,9000000002,9000000003')"),
            "{big}"
        );
    }
}
