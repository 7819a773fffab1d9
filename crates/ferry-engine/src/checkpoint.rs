//! Task progress kept *on the target* (schema/database `ferry`), written in the same
//! transactions as the data it describes, so the target itself always says exactly
//! what it holds: which chunks are committed, which tables are finished, and the
//! source position of the snapshot the rows came from.

use crate::conn::Conn;
use ferry_core::{chunk::Chunk, chunk::KeyRange, Engine, Result, TableId};

/// Creates the checkpoint tables if missing.
pub async fn ensure(conn: &mut Conn) -> Result<()> {
    let create_schema = match conn.engine() {
        Engine::Postgres => "CREATE SCHEMA IF NOT EXISTS ferry",
        Engine::MySql => "CREATE DATABASE IF NOT EXISTS ferry CHARACTER SET utf8mb4",
    };
    conn.exec(create_schema).await?;
    // table names are keys compared exactly: MySQL/MariaDB's default collation would
    // make "A"."T" and a.t (both real, distinct source tables) one key
    let name = match conn.engine() {
        Engine::Postgres => "varchar(400)",
        Engine::MySql => "varchar(400) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin",
    };
    for ddl in [
        "CREATE TABLE IF NOT EXISTS ferry.tasks (task varchar(64) PRIMARY KEY, position text, phase varchar(32) NOT NULL, updated_at varchar(40))".to_string(),
        format!("CREATE TABLE IF NOT EXISTS ferry.tables (task varchar(64) NOT NULL, table_name {name} NOT NULL, stage varchar(16) NOT NULL, PRIMARY KEY (task, table_name))"),
        "CREATE TABLE IF NOT EXISTS ferry.stream (task varchar(64) PRIMARY KEY, state varchar(32) NOT NULL, reason text, source_commit_us bigint, applied_at_us bigint, txns bigint NOT NULL, row_changes bigint NOT NULL)".to_string(),
        format!("CREATE TABLE IF NOT EXISTS ferry.watermarks (task varchar(64) NOT NULL, table_name {name} NOT NULL, position text NOT NULL, PRIMARY KEY (task, table_name))"),
        format!("CREATE TABLE IF NOT EXISTS ferry.backfill (task varchar(64) NOT NULL, table_name {name} NOT NULL, next_key varchar(48), done int NOT NULL, rows_copied bigint NOT NULL, PRIMARY KEY (task, table_name))"),
        format!("CREATE TABLE IF NOT EXISTS ferry.chunks (task varchar(64) NOT NULL, table_name {name} NOT NULL, chunk int NOT NULL, source_table {name} NOT NULL, key_column varchar(200), lo varchar(48), hi varchar(48), done int NOT NULL, rows_copied bigint NOT NULL, PRIMARY KEY (task, table_name, chunk))"),
    ] {
        conn.exec(&ddl).await?;
    }
    if conn.engine() == Engine::MySql {
        // checkpoint tables an earlier version created with the default collation
        let stale = conn
            .query_text(
                "SELECT table_name, column_name FROM information_schema.columns \
                 WHERE table_schema = 'ferry' AND column_name IN ('table_name', 'source_table') \
                 AND collation_name <> 'utf8mb4_bin'",
            )
            .await?;
        for r in stale {
            if let (Some(t), Some(c)) = (&r[0], &r[1]) {
                conn.exec(&format!(
                    "ALTER TABLE ferry.`{}` MODIFY `{}` {name} NOT NULL",
                    t.replace('`', "``"),
                    c.replace('`', "``")
                ))
                .await?;
            }
        }
    }
    // added after the first release: targets set up earlier lack the column
    let unmatched = "SELECT 1 FROM information_schema.columns WHERE table_schema = 'ferry' \
                     AND table_name = 'stream' AND column_name = 'unmatched'";
    if conn.query_text(unmatched).await?.is_empty() {
        let add = "ALTER TABLE ferry.stream ADD COLUMN unmatched bigint NOT NULL DEFAULT 0";
        if let Err(e) = conn.exec(add).await {
            // another run may have added it at the same moment
            if conn.query_text(unmatched).await?.is_empty() {
                return Err(e);
            }
        }
    }
    Ok(())
}

fn now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    secs.to_string()
}

/// The task's recorded phase and snapshot position, if it has run before.
pub async fn task(conn: &mut Conn, task: &str) -> Result<Option<(String, Option<String>)>> {
    let rows = conn
        .query_text(&format!(
            "SELECT phase, position FROM ferry.tasks WHERE task = {}",
            conn.literal(task)
        ))
        .await?;
    Ok(rows
        .into_iter()
        .next()
        .map(|r| (r[0].clone().unwrap_or_default(), r[1].clone())))
}

/// Records the task's phase (and position, if given).
pub async fn set_task(
    conn: &mut Conn,
    task: &str,
    phase: &str,
    position: Option<&str>,
) -> Result<()> {
    let t = conn.literal(task);
    let existing = conn
        .query_text(&format!("SELECT 1 FROM ferry.tasks WHERE task = {t}"))
        .await?;
    let sql =
        if existing.is_empty() {
            format!(
            "INSERT INTO ferry.tasks (task, position, phase, updated_at) VALUES ({t}, {}, {}, {})",
            position.map(|p| conn.literal(p)).unwrap_or_else(|| "NULL".into()),
            conn.literal(phase),
            conn.literal(&now())
        )
        } else {
            let mut s = format!(
                "UPDATE ferry.tasks SET phase = {}, updated_at = {}",
                conn.literal(phase),
                conn.literal(&now())
            );
            if let Some(p) = position {
                s.push_str(&format!(", position = {}", conn.literal(p)));
            }
            s.push_str(&format!(" WHERE task = {t}"));
            s
        };
    conn.exec(&sql).await
}

/// Forgets everything recorded for the task (a fresh start).
pub async fn reset(conn: &mut Conn, task: &str) -> Result<()> {
    let t = conn.literal(task);
    for table in [
        "chunks",
        "tables",
        "tasks",
        "stream",
        "watermarks",
        "backfill",
    ] {
        conn.exec(&format!("DELETE FROM ferry.{table} WHERE task = {t}"))
            .await?;
    }
    Ok(())
}

/// Table stages recorded for the task: target table → stage.
pub async fn stages(
    conn: &mut Conn,
    task: &str,
) -> Result<std::collections::BTreeMap<String, String>> {
    let rows = conn
        .query_text(&format!(
            "SELECT table_name, stage FROM ferry.tables WHERE task = {}",
            conn.literal(task)
        ))
        .await?;
    Ok(rows
        .into_iter()
        .map(|r| {
            (
                r[0].clone().unwrap_or_default(),
                r[1].clone().unwrap_or_default(),
            )
        })
        .collect())
}

/// Copy progress of one table, as the target's checkpoint rows record it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TableProgress {
    /// Target table.
    pub table: String,
    /// `created`, `indexed`, `done` (none before the table exists).
    pub stage: Option<String>,
    /// Chunks committed.
    pub chunks_done: u64,
    /// Chunks planned.
    pub chunks: u64,
    /// Rows committed by the done chunks.
    pub rows: u64,
}

/// Per-table copy progress of `task`.
pub async fn table_progress(conn: &mut Conn, task: &str) -> Result<Vec<TableProgress>> {
    let rows = conn
        .query_text(&format!(
            "SELECT c.table_name, MAX(t.stage), SUM(c.done), COUNT(*), SUM(c.rows_copied) \
             FROM ferry.chunks c LEFT JOIN ferry.tables t ON t.task = c.task AND t.table_name = c.table_name \
             WHERE c.task = {} GROUP BY c.table_name ORDER BY c.table_name",
            conn.literal(task)
        ))
        .await?;
    let num = |v: &Option<String>| v.as_deref().and_then(|s| s.parse().ok()).unwrap_or(0);
    Ok(rows
        .iter()
        .map(|r| TableProgress {
            table: r[0].clone().unwrap_or_default(),
            stage: r[1].clone(),
            chunks_done: num(&r[2]),
            chunks: num(&r[3]),
            rows: num(&r[4]),
        })
        .collect())
}

/// Records a table's stage (`created`, `indexed`, `done`).
pub async fn set_stage(conn: &mut Conn, task: &str, table: &TableId, stage: &str) -> Result<()> {
    let (t, n) = (conn.literal(task), conn.literal(&table.to_string()));
    conn.exec(&format!(
        "DELETE FROM ferry.tables WHERE task = {t} AND table_name = {n}"
    ))
    .await?;
    conn.exec(&format!(
        "INSERT INTO ferry.tables (task, table_name, stage) VALUES ({t}, {n}, {})",
        conn.literal(stage)
    ))
    .await
}

/// Forgets a target table's stage (the task no longer selects it).
pub async fn forget_stage(conn: &mut Conn, task: &str, target: &str) -> Result<()> {
    let sql = format!(
        "DELETE FROM ferry.tables WHERE task = {} AND table_name = {}",
        conn.literal(task),
        conn.literal(target)
    );
    conn.exec(&sql).await
}

/// Stores a table's chunk plan (all not done).
pub async fn save_plan(conn: &mut Conn, task: &str, chunks: &[Chunk]) -> Result<()> {
    for part in chunks.chunks(500) {
        let values: Vec<String> = part
            .iter()
            .map(|c| {
                let r = c.range.as_ref();
                format!(
                    "({}, {}, {}, {}, {}, {}, {}, 0, 0)",
                    conn.literal(task),
                    conn.literal(&c.target.to_string()),
                    c.index,
                    conn.literal(&c.source.to_string()),
                    r.map(|r| conn.literal(&r.column))
                        .unwrap_or_else(|| "NULL".into()),
                    r.and_then(|r| r.lo)
                        .map(|v| conn.literal(&v.to_string()))
                        .unwrap_or_else(|| "NULL".into()),
                    r.and_then(|r| r.hi)
                        .map(|v| conn.literal(&v.to_string()))
                        .unwrap_or_else(|| "NULL".into()),
                )
            })
            .collect();
        conn.exec(&format!(
            "INSERT INTO ferry.chunks (task, table_name, chunk, source_table, key_column, lo, hi, done, rows_copied) VALUES {}",
            values.join(", ")
        ))
        .await?;
    }
    Ok(())
}

fn split_id(s: &str) -> TableId {
    // names are stored as TableId's Display writes them: a part with a dot is quoted
    TableId::parse(s).unwrap_or_else(|| TableId::new("", s))
}

/// Loads the stored chunk plan.
pub async fn load_plan(conn: &mut Conn, task: &str) -> Result<Vec<Chunk>> {
    let rows = conn
        .query_text(&format!(
            "SELECT table_name, chunk, source_table, key_column, lo, hi, done, rows_copied FROM ferry.chunks \
             WHERE task = {} ORDER BY table_name, chunk",
            conn.literal(task)
        ))
        .await?;
    Ok(rows
        .into_iter()
        .map(|r| {
            let s = |i: usize| r[i].clone().unwrap_or_default();
            let range = r[3].clone().map(|column| KeyRange {
                column,
                lo: r[4].as_deref().and_then(|v| v.parse().ok()),
                hi: r[5].as_deref().and_then(|v| v.parse().ok()),
            });
            Chunk {
                target: split_id(&s(0)),
                index: s(1).parse().unwrap_or(0),
                source: split_id(&s(2)),
                range,
                done: s(6) == "1",
                rows: s(7).parse().unwrap_or(0),
            }
        })
        .collect())
}

/// The statement that marks a chunk done; run inside the chunk's data transaction.
pub fn mark_done_sql(conn: &Conn, task: &str, c: &Chunk, rows: u64) -> String {
    format!(
        "UPDATE ferry.chunks SET done = 1, rows_copied = {rows} WHERE task = {} AND table_name = {} AND chunk = {}",
        conn.literal(task),
        conn.literal(&c.target.to_string()),
        c.index
    )
}

/// Records the incremental phase's state (`incremental`, `recovering`, `stopped`,
/// `incremental_failed`) and its reason, creating the task's stream row if needed.
pub async fn set_stream_state(
    conn: &mut Conn,
    task: &str,
    state: &str,
    reason: Option<&str>,
) -> Result<()> {
    let t = conn.literal(task);
    let reason = reason
        .map(|r| conn.literal(r))
        .unwrap_or_else(|| "NULL".into());
    let existing = conn
        .query_text(&format!("SELECT 1 FROM ferry.stream WHERE task = {t}"))
        .await?;
    let sql = if existing.is_empty() {
        format!(
            "INSERT INTO ferry.stream (task, state, reason, txns, row_changes) VALUES ({t}, {}, {reason}, 0, 0)",
            conn.literal(state)
        )
    } else {
        format!(
            "UPDATE ferry.stream SET state = {}, reason = {reason} WHERE task = {t}",
            conn.literal(state)
        )
    };
    conn.exec(&sql).await
}

/// Statements recording that a whole-table chunk was copied at `position` (a resumed
/// copy's later snapshot): the stream then skips that table's changes the copy
/// already holds. Run inside the chunk's data transaction.
pub fn watermark_sql(conn: &Conn, task: &str, source_table: &TableId, position: &str) -> String {
    let (t, n) = (conn.literal(task), conn.literal(&source_table.to_string()));
    format!(
        "DELETE FROM ferry.watermarks WHERE task = {t} AND table_name = {n}; \
         INSERT INTO ferry.watermarks (task, table_name, position) VALUES ({t}, {n}, {})",
        conn.literal(position)
    )
}

/// Watermarks of the task: source table → position its copy was read at.
pub async fn watermarks(
    conn: &mut Conn,
    task: &str,
) -> Result<std::collections::HashMap<TableId, ferry_core::Position>> {
    let rows = conn
        .query_text(&format!(
            "SELECT table_name, position FROM ferry.watermarks WHERE task = {}",
            conn.literal(task)
        ))
        .await?;
    let mut out = std::collections::HashMap::new();
    for r in rows {
        if let (Some(t), Some(p)) = (&r[0], &r[1]) {
            out.insert(split_id(t), ferry_core::Position::parse(p)?);
        }
    }
    Ok(out)
}

/// Writer slots a MySQL/MariaDB target knows for one task: the stream's and those of
/// up to this many copy workers.
const WRITER_SLOTS: usize = ferry_core::spec::MAX_JOBS;

fn task_key(task: &str) -> String {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    task.hash(&mut h);
    format!("ferry:{:016x}", h.finish())
}

/// A session that writes the task's data and checkpoints says so (`slot`: the
/// stream's `None`, a copy worker's index), so that a later run can wait for it.
/// PostgreSQL: a shared advisory lock per task; MySQL/MariaDB: a named lock per slot.
pub async fn join_writers(conn: &mut Conn, task: &str, slot: Option<usize>) -> Result<()> {
    let key = task_key(task);
    match conn.engine() {
        Engine::Postgres => {
            let sql = format!(
                "SELECT pg_advisory_lock_shared(hashtextextended({}, 0))",
                conn.literal(&key)
            );
            conn.query_text(&sql).await?;
        }
        Engine::MySql => {
            let name = format!(
                "{key}:{}",
                slot.map(|s| s.to_string()).unwrap_or("s".into())
            );
            let sql = format!("SELECT GET_LOCK({}, 60)", conn.literal(&name));
            let got = conn.query_text(&sql).await?;
            if got.first().and_then(|r| r[0].as_deref()) != Some("1") {
                return Err(ferry_core::Error::transient(format!(
                    "another session of task {task} still writes to the target"
                )));
            }
        }
    }
    Ok(())
}

/// Waits until no session of an earlier run of `task` writes to the target any more.
/// A killed Ferry's sessions live on in the server until their last statement ends —
/// and one of them may still COMMIT a batch it had sent; reading the checkpoint
/// before that commit would replay what it holds (duplicates in a table without a
/// key). Call before reading the checkpoint.
pub async fn fence_writers(conn: &mut Conn, task: &str) -> Result<()> {
    if writers_gone(conn, task, std::time::Duration::from_secs(60)).await? {
        return Ok(());
    }
    Err(ferry_core::Error::transient(format!(
        "a session of an earlier run of task {task} still writes to the target"
    ))
    .with_hint("a killed Ferry's last statement is still running there; it ends by itself (or end it: pg_terminate_backend / KILL)"))
}

/// Whether every session that writes `task`'s data to the target is gone, waiting
/// at most `within` for them to go (a run that was just stopped closes its sessions).
pub async fn writers_gone(
    conn: &mut Conn,
    task: &str,
    within: std::time::Duration,
) -> Result<bool> {
    let key = task_key(task);
    let sql = match conn.engine() {
        Engine::Postgres => {
            let k = format!("hashtextextended({}, 0)", conn.literal(&key));
            format!(
                "SELECT CASE WHEN pg_try_advisory_lock({k}) THEN pg_advisory_unlock({k})::int ELSE 0 END"
            )
        }
        Engine::MySql => {
            let mut names = vec![format!("{key}:s")];
            names.extend((0..WRITER_SLOTS).map(|i| format!("{key}:{i}")));
            let used: Vec<String> = names
                .iter()
                .map(|n| format!("IS_USED_LOCK({}) IS NULL", conn.literal(n)))
                .collect();
            format!("SELECT ({})", used.join(" AND "))
        }
    };
    let t0 = std::time::Instant::now();
    loop {
        let r = conn.query_text(&sql).await?;
        if r.first().and_then(|r| r[0].as_deref()) == Some("1") {
            return Ok(true);
        }
        if t0.elapsed() > within {
            return Ok(false);
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

/// How far the snapshot of a table added to a running stream has got (see
/// [`crate::backfill`]).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct BackfillRow {
    /// Source table.
    pub table: String,
    /// Keys below this are on the target (`None`: none yet, unless `done`).
    pub next_key: Option<String>,
    /// Every row is on the target; from here on the table streams like the others.
    pub done: bool,
    /// Rows copied so far.
    pub rows: u64,
}

/// The task's backfill rows.
pub async fn backfills(conn: &mut Conn, task: &str) -> Result<Vec<BackfillRow>> {
    let rows = conn
        .query_text(&format!(
            "SELECT table_name, next_key, done, rows_copied FROM ferry.backfill WHERE task = {} ORDER BY table_name",
            conn.literal(task)
        ))
        .await?;
    Ok(rows
        .into_iter()
        .map(|r| BackfillRow {
            table: r[0].clone().unwrap_or_default(),
            next_key: r[1].clone(),
            done: r[2].as_deref() == Some("1"),
            rows: r[3].as_deref().and_then(|v| v.parse().ok()).unwrap_or(0),
        })
        .collect())
}

/// Plans the backfill of `table` (nothing copied yet).
pub async fn add_backfill(conn: &mut Conn, task: &str, table: &TableId) -> Result<()> {
    let sql = format!(
        "INSERT INTO ferry.backfill (task, table_name, next_key, done, rows_copied) VALUES ({}, {}, NULL, 0, 0)",
        conn.literal(task),
        conn.literal(&table.to_string())
    );
    conn.exec(&sql).await
}

/// Forgets the backfill of `table`.
pub async fn drop_backfill(conn: &mut Conn, task: &str, table: &str) -> Result<()> {
    let sql = format!(
        "DELETE FROM ferry.backfill WHERE task = {} AND table_name = {}",
        conn.literal(task),
        conn.literal(table)
    );
    conn.exec(&sql).await
}

/// The statement recording a backfill's progress; run inside the transaction that
/// holds the chunk's rows.
pub fn backfill_sql(conn: &Conn, task: &str, row: &BackfillRow) -> String {
    format!(
        "UPDATE ferry.backfill SET next_key = {}, done = {}, rows_copied = {} WHERE task = {} AND table_name = {}",
        row.next_key
            .as_deref()
            .map(|k| conn.literal(k))
            .unwrap_or_else(|| "NULL".into()),
        u8::from(row.done),
        row.rows,
        conn.literal(task),
        conn.literal(&row.table)
    )
}
