//! Snapshotting tables added to a task that already streams, without pausing the
//! replication of the others (the DBLog / Debezium "incremental snapshot" idea).
//!
//! The stream itself copies the new tables, one key-range chunk at a time, at a
//! boundary between two source transactions:
//!
//! 1. a fresh snapshot is opened on the source and its *visibility* noted — for
//!    PostgreSQL the MVCC snapshot (`pg_current_snapshot()`: which transaction ids it
//!    sees), for MariaDB the exact binlog position of the snapshot
//!    (`Binlog_snapshot_*`);
//! 2. the chunk's rows are read under it and bulk-loaded (COPY / LOAD DATA; upserted
//!    when the target table may hold rows of its own) into the applier's open target
//!    transaction, together with the table's new progress row;
//! 3. the stream goes on. A change to a key of the chunk is skipped when the
//!    snapshot already saw its transaction, applied otherwise; a change to a key no
//!    chunk has reached yet is skipped (a later chunk reads the row as it is then);
//!    a change to a key already copied is applied as usual;
//! 4. the target transaction holding the chunk commits only once the stream has
//!    passed every transaction the snapshot saw (a marker written to the WAL after
//!    the snapshot, or the snapshot's binlog position), so a restart never finds the
//!    chunk without the position that makes the rules above exact.
//!
//! Before taking a PostgreSQL snapshot, Ferry checks that it sees every transaction
//! the stream has already handed on (a transaction can be in the WAL a moment before
//! other sessions see it); if not, the chunk tries again a moment later.
//!
//! [`adopt_added_tables`] plans the work; `visibility` holds the rules' facts.

mod adopt;
mod visibility;

pub use adopt::adopt_added_tables;

use crate::checkpoint::CheckpointStore;
use crate::checkpoint::{self, BackfillRow};
use crate::conn::{Conn, Role};
use crate::copy::chunk::TableJob;
use crate::factory::connector;
use crate::schema::mapping::NameMap;
use crate::stream::apply::{restart, Applier};
use ferry_connector::ReadFormat;
use ferry_core::change::{Cell, RowOp, Shape};
use ferry_core::chunk::{Batch, KeyRange};
use ferry_core::{Error, Position, Result, Table, TableId, TaskSpec, Value};
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use tokio::sync::mpsc;
use visibility::{Coverage, InFlight};

/// Upper bounds on a backfill chunk (the stream waits while one is copied): rows,
/// and bytes by the table's average row size, so wide rows make smaller chunks.
const MAX_CHUNK_ROWS: u64 = 200_000;
const MAX_CHUNK_BYTES: u64 = 16 * 1024 * 1024;
/// Transaction ids the stream has handed on that a new snapshot must see.
const RECENT_XIDS: usize = 100_000;

/// One table being backfilled.
struct Filling {
    table: Table,
    /// How a chunk is bulk-loaded (COPY / LOAD DATA) into the target table.
    job: TableJob,
    /// How its chunk rows reach the applier (the copied columns, the key).
    shape: Arc<Shape>,
    /// The integer key column it is chunked by; `None`: one chunk for the whole table.
    key: Option<String>,
    covered: Coverage,
    rows: u64,
    /// Its columns changed in the stream: read the catalog again before the next chunk.
    reshaped: bool,
}

impl Filling {
    fn new(table: Table, job: TableJob, covered: Coverage, rows: u64) -> Filling {
        let columns: Vec<ferry_core::Column> = table.copied_columns().cloned().collect();
        let shape = Shape {
            table: table.id.clone(),
            key: table
                .primary_key
                .iter()
                .filter_map(|k| columns.iter().position(|c| &c.name == k))
                .collect(),
            columns,
        };
        Filling {
            job,
            key: table.integer_key().map(|c| c.name.clone()),
            shape: Arc::new(shape),
            table,
            covered,
            rows,
            reshaped: false,
        }
    }
}

/// The backfills of one stream attempt (rebuilt from the target's checkpoint rows
/// at every attempt, so a rolled-back chunk is simply read again).
pub struct Backfill {
    spec: TaskSpec,
    tables: Vec<Filling>,
    by_id: HashMap<TableId, usize>,
    in_flight: Option<InFlight>,
    /// Whether the in-flight chunk's snapshot saw the transaction being streamed.
    txn_seen: bool,
    recent: VecDeque<u32>,
    recent_set: HashMap<u32, u32>,
    src: Option<Conn>,
    /// The task's `chunk_rows`, at most [`MAX_CHUNK_ROWS`].
    chunk_rows: u64,
    /// The added tables started empty on the target (`existing_data` is not
    /// `append`): a chunk's key range holds nothing there yet, so it is bulk-loaded
    /// rather than upserted.
    bulk: bool,
}

impl Backfill {
    /// Loads the task's unfinished backfills of tables it still selects (and forgets
    /// the others).
    pub async fn load(spec: &TaskSpec, dst: &mut Conn, tables: &[Table]) -> Result<Backfill> {
        let mut out = Backfill {
            spec: spec.clone(),
            tables: Vec::new(),
            by_id: HashMap::new(),
            in_flight: None,
            txn_seen: false,
            recent: VecDeque::new(),
            recent_set: HashMap::new(),
            src: None,
            chunk_rows: spec.chunk_rows.clamp(1, MAX_CHUNK_ROWS),
            bulk: spec.existing_data != ferry_core::ExistingData::Append,
        };
        let names = NameMap::new(spec, tables);
        let job = |t: &Table| {
            TableJob::new(
                t.clone(),
                names.target(&t.id),
                spec.source.engine,
                spec.target.engine,
            )
        };
        let selected: HashMap<String, &Table> =
            tables.iter().map(|t| (t.id.to_string(), t)).collect();
        for row in dst.backfills(&spec.name).await? {
            let Some(t) = selected.get(&row.table) else {
                dst.drop_backfill(&spec.name, &row.table).await?;
                continue;
            };
            if row.done {
                continue;
            }
            let covered = match (&row.next_key, t.integer_key()) {
                (Some(k), Some(_)) => Coverage::Below(k.parse().map_err(|_| {
                    Error::definite(format!("backfill of {}: bad stored key {k:?}", row.table))
                })?),
                _ => Coverage::Nothing,
            };
            out.by_id.insert(t.id.clone(), out.tables.len());
            out.tables
                .push(Filling::new((*t).clone(), job(t), covered, row.rows));
        }
        Ok(out)
    }

    /// True while nothing is left to copy or commit.
    pub fn is_idle(&self) -> bool {
        self.in_flight.is_none() && self.tables.iter().all(|f| f.covered == Coverage::All)
    }

    /// A source transaction starts.
    pub fn begin(&mut self, marker: Option<&Position>, xid: Option<u32>) {
        if let Some(x) = xid {
            if !self.tables.is_empty() {
                self.recent.push_back(x);
                *self.recent_set.entry(x).or_default() += 1;
                if self.recent.len() > RECENT_XIDS {
                    if let Some(old) = self.recent.pop_front() {
                        if let Some(n) = self.recent_set.get_mut(&old) {
                            *n -= 1;
                            if *n == 0 {
                                self.recent_set.remove(&old);
                            }
                        }
                    }
                }
            }
        }
        self.txn_seen = self
            .in_flight
            .as_ref()
            .is_some_and(|f| f.seen.saw(marker, xid));
    }

    fn key_of(shape: &Shape, key: &Option<String>, row: &[Value]) -> Option<i128> {
        let k = key.as_ref()?;
        let i = shape.columns.iter().position(|c| &c.name == k)?;
        match row.get(i)? {
            Value::Int(v) => Some(i128::from(*v)),
            Value::UInt(v) => Some(i128::from(*v)),
            _ => None,
        }
    }

    /// Whether a change of the streamed transaction to `key` of table `t` goes to
    /// the target.
    fn applies(&self, t: usize, key: Option<i128>) -> bool {
        let f = &self.tables[t];
        if !f.covered.holds(key) {
            return false;
        }
        !matches!(&self.in_flight, Some(fl) if fl.table == t && fl.contains(key) && self.txn_seen)
    }

    /// What of a row change reaches the target (`None`: skip it).
    pub fn filter(&self, shape: &Shape, op: RowOp) -> Result<Option<RowOp>> {
        let Some(&t) = self.by_id.get(&shape.table) else {
            return Ok(Some(op));
        };
        let key = &self.tables[t].key;
        Ok(match op {
            RowOp::Insert(row) => self
                .applies(t, Self::key_of(shape, key, &row))
                .then_some(RowOp::Insert(row)),
            RowOp::Delete(row) => self
                .applies(t, Self::key_of(shape, key, &row))
                .then_some(RowOp::Delete(row)),
            RowOp::Update { old, new } => {
                let new_values: Vec<Value> = new
                    .iter()
                    .map(|c| match c {
                        Cell::Value(v) => v.clone(),
                        Cell::Unchanged => Value::Null,
                    })
                    .collect();
                let k_new = Self::key_of(shape, key, &new_values);
                let k_old = match &old {
                    Some(o) => Self::key_of(shape, key, o),
                    None => k_new,
                };
                match (self.applies(t, k_old), self.applies(t, k_new)) {
                    (true, true) => Some(RowOp::Update { old, new }),
                    (false, false) => None,
                    // the row moves out of what the target holds
                    (true, false) => Some(RowOp::Delete(old.unwrap_or(new_values))),
                    // the row moves into it: the new image is the whole row
                    (false, true) => {
                        if new.iter().any(|c| matches!(c, Cell::Unchanged)) {
                            return Err(Error::definite(format!(
                                "{}: an update moved a row into the part already copied while its \
                                 unchanged TOASTed values were not sent",
                                shape.table
                            ))
                            .with_hint("set REPLICA IDENTITY FULL on the table, then edit the task again to remove and re-add it"));
                        }
                        Some(RowOp::Insert(new_values))
                    }
                }
            }
        })
    }

    /// Which of the truncated tables are emptied on the target.
    pub fn truncate(&self, tables: Vec<TableId>) -> Result<Vec<TableId>> {
        let mut out = Vec::new();
        for id in tables {
            let Some(&t) = self.by_id.get(&id) else {
                out.push(id);
                continue;
            };
            if self.tables[t].covered == Coverage::Nothing {
                continue;
            }
            if matches!(&self.in_flight, Some(fl) if fl.table == t) && self.txn_seen {
                // the open chunk already reflects the truncation but the copied part
                // before it does not: read the chunk again after it
                return Err(restart(&format!(
                    "{id} was truncated while it was being copied"
                )));
            }
            out.push(id);
        }
        Ok(out)
    }

    /// A table's columns changed in the stream (applied to the target already): its
    /// next chunk reads the new columns.
    pub fn reshaped(&mut self, table: &TableId) {
        if let Some(&t) = self.by_id.get(table) {
            self.tables[t].reshaped = true;
        }
    }

    /// Whether the open target transaction may commit at `position`.
    pub fn may_commit(&self, position: &Position) -> bool {
        self.in_flight
            .as_ref()
            .is_none_or(|f| position.reached(&f.until))
    }

    /// The open target transaction committed at `position`.
    pub fn committed(&mut self, position: &Position) {
        if self.may_commit(position) {
            self.in_flight = None;
        }
    }

    /// Whether a chunk is waiting for the stream to pass its snapshot.
    pub fn in_flight(&self) -> bool {
        self.in_flight.is_some()
    }

    /// At a boundary between source transactions: reads the next chunk into the
    /// applier's open transaction. Returns whether it did (a PostgreSQL snapshot that
    /// misses a transaction the stream already handed on is given up and retried).
    pub async fn copy_next(&mut self, applier: &mut Applier) -> Result<bool> {
        if self.in_flight.is_some() {
            return Ok(false);
        }
        let Some(t) = self.tables.iter().position(|f| f.covered != Coverage::All) else {
            return Ok(false);
        };
        if self.src.is_none() {
            self.src = Some(Conn::open(&self.spec, Role::Source).await?);
        }
        let src = self.src.as_mut().expect("opened above");
        if self.tables[t].reshaped {
            let id = self.tables[t].table.id.clone();
            let filter = ferry_core::select::ObjectFilter::table(&id);
            let fresh = src
                .tables(&filter, self.spec.source.database.as_deref())
                .await?
                .into_iter()
                .find(|x| x.id == id)
                .ok_or_else(|| Error::definite(format!("{id} is gone from the source")))?;
            let f = &self.tables[t];
            let job = TableJob::new(
                fresh.clone(),
                f.job.target.clone(),
                self.spec.source.engine,
                self.spec.target.engine,
            );
            self.tables[t] = Filling::new(fresh, job, f.covered, f.rows);
        }
        let capture = connector(self.spec.source.engine);
        let seen = capture.chunk_snapshot(&self.spec, &mut **src).await?;
        if seen.misses(|x| self.recent_set.contains_key(&x)) {
            src.exec("ROLLBACK").await?;
            tracing::debug!("backfill snapshot misses a streamed transaction; retrying");
            return Ok(false);
        }
        let f = &self.tables[t];
        let lo = match f.covered {
            Coverage::Below(h) => Some(h),
            _ => None,
        };
        // the chunk: the next `chunk_rows` keys (all rows with the last of them)
        let avg_row = f.table.estimated_bytes / f.table.estimated_rows.max(1);
        let chunk_rows = self
            .chunk_rows
            .min((MAX_CHUNK_BYTES / avg_row.max(1)).max(1_000));
        let hi = match &f.key {
            None => None,
            Some(k) => {
                let col = src.ident(k);
                let from = lo
                    .map(|l| format!(" WHERE {col} >= {l}"))
                    .unwrap_or_default();
                let sql = format!(
                    "SELECT count(*), max(k) FROM (SELECT {col} AS k FROM {}{from} ORDER BY {col} LIMIT {}) s",
                    src.qualified(&f.table.id),
                    chunk_rows
                );
                let r = src.query_text(&sql).await?;
                let count: u64 = r
                    .first()
                    .and_then(|r| r[0].as_deref())
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                let max: Option<i128> = r
                    .first()
                    .and_then(|r| r[1].as_deref())
                    .and_then(|v| v.parse().ok());
                match max {
                    Some(m) if count >= chunk_rows => Some(m + 1),
                    _ => None,
                }
            }
        };
        let range = f.key.as_ref().map(|k| KeyRange {
            column: k.clone(),
            lo,
            hi,
        });
        let (table, shape) = (f.table.clone(), f.shape.clone());
        let copied = if self.bulk {
            let job = f.job.clone();
            let dst = applier.bulk_conn().await?;
            let n = crate::copy::chunk::copy_rows(src, dst, &job, range.as_ref(), &|_| {}).await;
            if let Ok(n) = n {
                // metered like a full copy: the table's size, pro rata
                let per_row = table.estimated_bytes / table.estimated_rows.max(1);
                applier.bulk_rows(n, n * per_row);
            }
            n
        } else {
            upsert_rows(src, applier, &table, &shape, range.as_ref(), &self.spec).await
        };
        let n = match copied {
            Ok(n) => n,
            Err(e) => {
                let _ = src.exec("ROLLBACK").await;
                return Err(e.context(format!("backfilling {}", table.id)));
            }
        };
        src.exec("COMMIT").await?;
        // after everything the snapshot saw (a marker written now, or its position)
        let until = capture.chunk_until(&mut **src, &seen).await?;
        let f = &mut self.tables[t];
        f.covered = match hi {
            Some(h) => Coverage::Below(h),
            None => Coverage::All,
        };
        f.rows += n;
        let row = BackfillRow {
            table: f.table.id.to_string(),
            next_key: hi.map(|h| h.to_string()),
            done: hi.is_none(),
            rows: f.rows,
        };
        let sql = checkpoint::backfill_sql(applier.conn(), &self.spec.name, &row);
        applier.statement(&sql).await?;
        tracing::debug!(
            "backfill {}: {n} rows of keys {lo:?}..{hi:?}, commit after {until}",
            f.table.id
        );
        self.in_flight = Some(InFlight {
            table: t,
            lo,
            hi,
            seen,
            until,
        });
        // the chunk itself was read under its own snapshot: nothing of the next
        // transaction is decided yet
        self.txn_seen = false;
        Ok(true)
    }
}

/// Reads the rows of `range` and upserts them through the applier (for a target
/// table that may already hold rows in that range).
async fn upsert_rows(
    src: &mut Conn,
    applier: &mut Applier,
    table: &Table,
    shape: &Arc<Shape>,
    range: Option<&KeyRange>,
    spec: &TaskSpec,
) -> Result<u64> {
    let (tx, mut rx) = mpsc::channel::<Batch>(4);
    // within one engine values keep their native forms (PostgreSQL arrays as arrays)
    let format = if spec.source.engine == spec.target.engine {
        ReadFormat::NativeArrays
    } else {
        ReadFormat::Rows
    };
    let read = async {
        let tx = tx;
        src.read_chunk(table, range, format, &tx, 1000).await
    };
    let write = async {
        let mut n = 0u64;
        while let Some(batch) = rx.recv().await {
            if let Batch::Rows(rows) = batch {
                for row in rows {
                    applier.row(shape, RowOp::Insert(row)).await?;
                    n += 1;
                }
            }
        }
        Ok::<u64, Error>(n)
    };
    let (read, written) = tokio::join!(read, write);
    read?;
    written
}
