//! The checkpoint store of a SQL target: tables in its `ferry` schema (PostgreSQL)
//! or database (MySQL/MariaDB), written by the same transactions as the data. What
//! differs between engines comes from the target's [`ferry_connector::StoreDialect`].

use super::writers::{task_key, WRITER_SLOTS};
use super::{
    BackfillRow, CheckpointStore, StreamRecord, StreamState, TableProgress, TableStage, TaskPhase,
    TaskRecord,
};
use crate::conn::Conn;
use ferry_connector::async_trait;
use ferry_core::chunk::{Chunk, KeyRange};
use ferry_core::{Error, Position, Result, TableId};
use std::collections::{BTreeMap, HashMap};

/// Seconds since the epoch, as text (`ferry.tasks.updated_at`).
fn now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    secs.to_string()
}

/// Names are stored as TableId's Display writes them (a part with a dot is quoted).
fn split_id(s: &str) -> TableId {
    TableId::parse(s).unwrap_or_else(|| TableId::new("", s))
}

fn num<T: std::str::FromStr + Default>(v: &Option<String>) -> T {
    v.as_deref()
        .and_then(|s| s.parse().ok())
        .unwrap_or_default()
}

#[async_trait]
impl CheckpointStore for Conn {
    async fn ensure(&mut self) -> Result<()> {
        let store = self.store_dialect();
        self.exec(store.create_namespace_sql()).await?;
        let name = store.exact_name_type();
        for ddl in [
            "CREATE TABLE IF NOT EXISTS ferry.tasks (task varchar(64) PRIMARY KEY, position text, phase varchar(32) NOT NULL, updated_at varchar(40))".to_string(),
            format!("CREATE TABLE IF NOT EXISTS ferry.tables (task varchar(64) NOT NULL, table_name {name} NOT NULL, stage varchar(16) NOT NULL, PRIMARY KEY (task, table_name))"),
            "CREATE TABLE IF NOT EXISTS ferry.stream (task varchar(64) PRIMARY KEY, state varchar(32) NOT NULL, reason text, source_commit_us bigint, applied_at_us bigint, txns bigint NOT NULL, row_changes bigint NOT NULL)".to_string(),
            format!("CREATE TABLE IF NOT EXISTS ferry.watermarks (task varchar(64) NOT NULL, table_name {name} NOT NULL, position text NOT NULL, PRIMARY KEY (task, table_name))"),
            format!("CREATE TABLE IF NOT EXISTS ferry.backfill (task varchar(64) NOT NULL, table_name {name} NOT NULL, next_key varchar(48), done int NOT NULL, rows_copied bigint NOT NULL, PRIMARY KEY (task, table_name))"),
            "CREATE TABLE IF NOT EXISTS ferry.fences (task varchar(64) PRIMARY KEY, epoch bigint NOT NULL)".to_string(),
            format!("CREATE TABLE IF NOT EXISTS ferry.chunks (task varchar(64) NOT NULL, table_name {name} NOT NULL, chunk int NOT NULL, source_table {name} NOT NULL, key_column varchar(200), lo varchar(48), hi varchar(48), done int NOT NULL, rows_copied bigint NOT NULL, PRIMARY KEY (task, table_name, chunk))"),
        ] {
            self.exec(&ddl).await?;
        }
        if let Some(stale) = store.stale_name_columns_sql() {
            // checkpoint tables an earlier version created with the default collation
            for r in self.query_text(stale).await? {
                if let (Some(t), Some(c)) = (&r[0], &r[1]) {
                    self.exec(&store.fix_name_column_sql(t, c)).await?;
                }
            }
        }
        // added after the first release: targets set up earlier lack the column
        let unmatched = "SELECT 1 FROM information_schema.columns WHERE table_schema = 'ferry' \
                         AND table_name = 'stream' AND column_name = 'unmatched'";
        if self.query_text(unmatched).await?.is_empty() {
            let add = "ALTER TABLE ferry.stream ADD COLUMN unmatched bigint NOT NULL DEFAULT 0";
            if let Err(e) = self.exec(add).await {
                // another run may have added it at the same moment
                if self.query_text(unmatched).await?.is_empty() {
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    async fn task(&mut self, task: &str) -> Result<Option<TaskRecord>> {
        let rows = self
            .query_text(&format!(
                "SELECT phase, position FROM ferry.tasks WHERE task = {}",
                self.literal(task)
            ))
            .await?;
        let Some(r) = rows.into_iter().next() else {
            return Ok(None);
        };
        Ok(Some(TaskRecord {
            phase: TaskPhase::parse(r[0].as_deref().unwrap_or_default())?,
            position: r[1].as_deref().map(Position::parse).transpose()?,
        }))
    }

    async fn set_task(
        &mut self,
        task: &str,
        phase: TaskPhase,
        position: Option<&Position>,
    ) -> Result<()> {
        let t = self.literal(task);
        let position = position.map(|p| self.literal(&p.to_string()));
        let existing = self
            .query_text(&format!("SELECT 1 FROM ferry.tasks WHERE task = {t}"))
            .await?;
        let sql = if existing.is_empty() {
            format!(
                "INSERT INTO ferry.tasks (task, position, phase, updated_at) VALUES ({t}, {}, {}, {})",
                position.unwrap_or_else(|| "NULL".into()),
                self.literal(phase.as_str()),
                self.literal(&now())
            )
        } else {
            let mut s = format!(
                "UPDATE ferry.tasks SET phase = {}, updated_at = {}",
                self.literal(phase.as_str()),
                self.literal(&now())
            );
            if let Some(p) = position {
                s.push_str(&format!(", position = {p}"));
            }
            s.push_str(&format!(" WHERE task = {t}"));
            s
        };
        self.exec(&sql).await
    }

    async fn reset(&mut self, task: &str) -> Result<()> {
        let t = self.literal(task);
        for table in [
            "chunks",
            "tables",
            "tasks",
            "stream",
            "watermarks",
            "backfill",
        ] {
            self.exec(&format!("DELETE FROM ferry.{table} WHERE task = {t}"))
                .await?;
        }
        Ok(())
    }

    async fn stages(&mut self, task: &str) -> Result<BTreeMap<String, TableStage>> {
        let rows = self
            .query_text(&format!(
                "SELECT table_name, stage FROM ferry.tables WHERE task = {}",
                self.literal(task)
            ))
            .await?;
        rows.into_iter()
            .map(|r| {
                Ok((
                    r[0].clone().unwrap_or_default(),
                    TableStage::parse(r[1].as_deref().unwrap_or_default())?,
                ))
            })
            .collect()
    }

    async fn set_stage(&mut self, task: &str, table: &TableId, stage: TableStage) -> Result<()> {
        // one statement: a kill at any instant leaves the old stage or the new one
        // (a missing stage would make a resumed copy create the table again)
        let (t, n) = (self.literal(task), self.literal(&table.to_string()));
        let cols: Vec<String> = ["task", "table_name", "stage"]
            .iter()
            .map(|c| self.ident(c))
            .collect();
        let sql = format!(
            "{} VALUES ({t}, {n}, {}){}",
            self.dialect().insert_head("ferry.tables", &cols),
            self.literal(stage.as_str()),
            self.dialect().upsert_tail(&cols, &[0, 1])
        );
        self.exec(&sql).await
    }

    async fn forget_stage(&mut self, task: &str, table: &str) -> Result<()> {
        let sql = format!(
            "DELETE FROM ferry.tables WHERE task = {} AND table_name = {}",
            self.literal(task),
            self.literal(table)
        );
        self.exec(&sql).await
    }

    async fn save_plan(&mut self, task: &str, chunks: &[Chunk]) -> Result<()> {
        for part in chunks.chunks(500) {
            let values: Vec<String> = part
                .iter()
                .map(|c| {
                    let r = c.range.as_ref();
                    let opt = |v: Option<String>| v.unwrap_or_else(|| "NULL".into());
                    format!(
                        "({}, {}, {}, {}, {}, {}, {}, 0, 0)",
                        self.literal(task),
                        self.literal(&c.target.to_string()),
                        c.index,
                        self.literal(&c.source.to_string()),
                        opt(r.map(|r| self.literal(&r.column))),
                        opt(r.and_then(|r| r.lo).map(|v| self.literal(&v.to_string()))),
                        opt(r.and_then(|r| r.hi).map(|v| self.literal(&v.to_string()))),
                    )
                })
                .collect();
            self.exec(&format!(
                "INSERT INTO ferry.chunks (task, table_name, chunk, source_table, key_column, lo, hi, done, rows_copied) VALUES {}",
                values.join(", ")
            ))
            .await?;
        }
        Ok(())
    }

    async fn load_plan(&mut self, task: &str) -> Result<Vec<Chunk>> {
        let rows = self
            .query_text(&format!(
                "SELECT table_name, chunk, source_table, key_column, lo, hi, done, rows_copied FROM ferry.chunks \
                 WHERE task = {} ORDER BY table_name, chunk",
                self.literal(task)
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

    async fn table_progress(&mut self, task: &str) -> Result<Vec<TableProgress>> {
        let rows = self
            .query_text(&format!(
                "SELECT c.table_name, MAX(t.stage), SUM(c.done), COUNT(*), SUM(c.rows_copied) \
                 FROM ferry.chunks c LEFT JOIN ferry.tables t ON t.task = c.task AND t.table_name = c.table_name \
                 WHERE c.task = {} GROUP BY c.table_name ORDER BY c.table_name",
                self.literal(task)
            ))
            .await?;
        rows.iter()
            .map(|r| {
                Ok(TableProgress {
                    table: r[0].clone().unwrap_or_default(),
                    stage: r[1].as_deref().map(TableStage::parse).transpose()?,
                    chunks_done: num(&r[2]),
                    chunks: num(&r[3]),
                    rows: num(&r[4]),
                })
            })
            .collect()
    }

    async fn set_stream_state(
        &mut self,
        task: &str,
        state: StreamState,
        reason: Option<&str>,
    ) -> Result<()> {
        let t = self.literal(task);
        let reason = reason
            .map(|r| self.literal(r))
            .unwrap_or_else(|| "NULL".into());
        let state = self.literal(state.as_str());
        let existing = self
            .query_text(&format!("SELECT 1 FROM ferry.stream WHERE task = {t}"))
            .await?;
        let sql = if existing.is_empty() {
            format!(
                "INSERT INTO ferry.stream (task, state, reason, txns, row_changes) VALUES ({t}, {state}, {reason}, 0, 0)"
            )
        } else {
            format!("UPDATE ferry.stream SET state = {state}, reason = {reason} WHERE task = {t}")
        };
        self.exec(&sql).await
    }

    async fn stream(&mut self, task: &str) -> Result<Option<StreamRecord>> {
        let rows = self
            .query_text(&format!(
                "SELECT state, reason, source_commit_us, applied_at_us, txns, row_changes, unmatched \
                 FROM ferry.stream WHERE task = {}",
                self.literal(task)
            ))
            .await?;
        let Some(r) = rows.into_iter().next() else {
            return Ok(None);
        };
        Ok(Some(StreamRecord {
            state: r[0].as_deref().map(StreamState::parse).transpose()?,
            reason: r[1].clone(),
            source_commit_us: r[2].as_deref().and_then(|v| v.parse().ok()),
            applied_at_us: r[3].as_deref().and_then(|v| v.parse().ok()),
            txns: num(&r[4]),
            rows: num(&r[5]),
            unmatched: num(&r[6]),
        }))
    }

    async fn watermarks(&mut self, task: &str) -> Result<HashMap<TableId, Position>> {
        let rows = self
            .query_text(&format!(
                "SELECT table_name, position FROM ferry.watermarks WHERE task = {}",
                self.literal(task)
            ))
            .await?;
        let mut out = HashMap::new();
        for r in rows {
            if let (Some(t), Some(p)) = (&r[0], &r[1]) {
                out.insert(split_id(t), Position::parse(p)?);
            }
        }
        Ok(out)
    }

    async fn backfills(&mut self, task: &str) -> Result<Vec<BackfillRow>> {
        let rows = self
            .query_text(&format!(
                "SELECT table_name, next_key, done, rows_copied FROM ferry.backfill WHERE task = {} ORDER BY table_name",
                self.literal(task)
            ))
            .await?;
        Ok(rows
            .into_iter()
            .map(|r| BackfillRow {
                table: r[0].clone().unwrap_or_default(),
                next_key: r[1].clone(),
                done: r[2].as_deref() == Some("1"),
                rows: num(&r[3]),
            })
            .collect())
    }

    async fn add_backfill(&mut self, task: &str, table: &TableId) -> Result<()> {
        let sql = format!(
            "INSERT INTO ferry.backfill (task, table_name, next_key, done, rows_copied) VALUES ({}, {}, NULL, 0, 0)",
            self.literal(task),
            self.literal(&table.to_string())
        );
        self.exec(&sql).await
    }

    async fn drop_backfill(&mut self, task: &str, table: &str) -> Result<()> {
        let sql = format!(
            "DELETE FROM ferry.backfill WHERE task = {} AND table_name = {}",
            self.literal(task),
            self.literal(table)
        );
        self.exec(&sql).await
    }

    async fn join_writers(&mut self, task: &str, slot: Option<usize>) -> Result<()> {
        let (sql, check) = self.store_dialect().join_writers_sql(&task_key(task), slot);
        let got = self.query_text(&sql).await?;
        if check && got.first().and_then(|r| r[0].as_deref()) != Some("1") {
            return Err(Error::transient(format!(
                "another session of task {task} still writes to the target"
            )));
        }
        Ok(())
    }

    async fn claim(
        &mut self,
        task: &str,
        held: Option<i64>,
    ) -> Result<std::result::Result<i64, i64>> {
        let t = self.literal(task);
        let begin = self.dialect().begin();
        self.exec(begin).await?;
        let claimed = async {
            // the row lock waits for a data transaction already past its check
            let now = self
                .query_text(&format!(
                    "SELECT epoch FROM ferry.fences WHERE task = {t} FOR UPDATE"
                ))
                .await?;
            let now: Option<i64> = now
                .first()
                .and_then(|r| r[0].as_deref())
                .and_then(|e| e.parse().ok());
            if let (Some(held), Some(now)) = (held, now) {
                if held != now {
                    self.exec("ROLLBACK").await?;
                    return Ok(Err(now));
                }
            }
            let next = match now {
                Some(e) => {
                    self.exec(&format!(
                        "UPDATE ferry.fences SET epoch = {} WHERE task = {t}",
                        e + 1
                    ))
                    .await?;
                    e + 1
                }
                None => {
                    // a claim racing this one inserts too: the loser's duplicate key
                    // is worth a retry (it then finds the row)
                    self.exec(&format!(
                        "INSERT INTO ferry.fences (task, epoch) VALUES ({t}, 1)"
                    ))
                    .await
                    .map_err(|e| {
                        let m = e.message.to_ascii_lowercase();
                        if m.contains("duplicate key") || m.contains("duplicate entry") {
                            Error::transient(e.message)
                        } else {
                            e
                        }
                    })?;
                    1
                }
            };
            self.exec("COMMIT").await?;
            Ok::<_, Error>(Ok(next))
        }
        .await;
        if claimed.is_err() {
            let _ = self.exec("ROLLBACK").await;
        }
        claimed.map_err(|e| e.context(format!("claiming task {task} on the target")))
    }

    async fn epoch(&mut self, task: &str) -> Result<Option<i64>> {
        let rows = self
            .query_text(&format!(
                "SELECT epoch FROM ferry.fences WHERE task = {}",
                self.literal(task)
            ))
            .await?;
        Ok(rows
            .first()
            .and_then(|r| r[0].as_deref())
            .and_then(|e| e.parse().ok()))
    }

    async fn writer_sessions(&mut self, task: &str) -> Result<Vec<String>> {
        let sql = self
            .store_dialect()
            .writer_sessions_sql(&task_key(task), WRITER_SLOTS);
        let rows = self.query_text(&sql).await?;
        Ok(rows.into_iter().filter_map(|r| r[0].clone()).collect())
    }

    async fn end_session(&mut self, id: &str) -> Result<()> {
        let sql = self.store_dialect().end_session_sql(id);
        self.query_text(&sql).await.map(drop)
    }
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

/// Statements recording that a whole-table chunk was copied at `position` (a resumed
/// copy's later snapshot); run inside the chunk's data transaction.
pub fn watermark_sql(conn: &Conn, task: &str, source_table: &TableId, position: &str) -> String {
    let (t, n) = (conn.literal(task), conn.literal(&source_table.to_string()));
    format!(
        "DELETE FROM ferry.watermarks WHERE task = {t} AND table_name = {n}; \
         INSERT INTO ferry.watermarks (task, table_name, position) VALUES ({t}, {n}, {})",
        conn.literal(position)
    )
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
