//! Snapshotting tables added to a task that already streams, without pausing the
//! replication of the others (the DBLog / Debezium "incremental snapshot" idea).
//!
//! Chunk by chunk, each a key range read under a fresh snapshot:
//!
//! 1. at a boundary between two source transactions, a snapshot is opened on the
//!    source and its *visibility* noted — for PostgreSQL the MVCC snapshot
//!    (`pg_current_snapshot()`: which transaction ids it sees), for MariaDB the exact
//!    binlog position of the snapshot (`Binlog_snapshot_*`);
//! 2. the chunk's rows are read under it and bulk-loaded (COPY / LOAD DATA) on
//!    sessions of their own, in a target transaction that holds only them
//!    ([`load`]), while the stream goes on — up to `jobs` chunks at once (at most
//!    [`MAX_LOADS`]). A table that may already hold rows on the target
//!    (`existing_data: append`) is upserted through the stream's own transaction
//!    instead, which then waits for it;
//! 3. the stream applies the other tables as usual. A change to a key of a chunk is
//!    skipped when the chunk's snapshot already saw its transaction; otherwise it
//!    waits until the chunk's rows are committed and is applied on top of them. A
//!    change to a key no chunk has reached yet is skipped (a later chunk reads the
//!    row as it is then); a change to a key already copied is applied as usual;
//! 4. a loaded chunk is handed to the stream, oldest first: the table's progress row
//!    moves past it in the stream's open target transaction, which commits only once
//!    the stream has passed every transaction the snapshot saw (a marker written to
//!    the WAL after the snapshot, or the snapshot's binlog position) — so a restart
//!    never finds the progress without the position that makes the rules above
//!    exact. Rows of a chunk loaded before a crash but never handed over are deleted
//!    by the chunk's next load.
//!
//! Before taking a PostgreSQL snapshot, Ferry checks that it sees every transaction
//! the stream has already handed on (a transaction can be in the WAL a moment before
//! other sessions see it); if not, the chunk tries again a moment later.
//!
//! A chunk never starts on a table whose truncation or column change sits in the
//! stream's open transaction (its load would wait for that transaction's lock while
//! the stream may wait for the load); a change that waits longer than
//! [`LOAD_WAIT`] for a chunk restarts the stream (a lock cycle through the target
//! that no server can see).
//!
//! [`adopt_added_tables`] plans the work; `visibility` holds the rules' facts.

mod adopt;
mod load;
mod visibility;

pub use adopt::adopt_added_tables;

use crate::checkpoint::CheckpointStore;
use crate::checkpoint::{self, BackfillRow, Fence};
use crate::conn::{Conn, Role};
use crate::copy::chunk::TableJob;
use crate::factory::connector;
use crate::schema::mapping::NameMap;
use crate::stream::apply::{restart, Applier};
use ferry_connector::ReadFormat;
use ferry_core::change::{Cell, RowOp, Shape};
use ferry_core::chunk::{Batch, KeyRange};
use ferry_core::{Error, Position, Result, Table, TableId, TaskSpec, Value};
use load::{Load, Worker};
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use visibility::{Coverage, InFlight};

/// Upper bounds on a backfill chunk (what a failed load reads again; an upserted
/// chunk makes the stream wait while it is copied): rows, and bytes by the table's
/// average row size, so wide rows make smaller chunks.
const MAX_CHUNK_ROWS: u64 = 200_000;
const MAX_CHUNK_BYTES: u64 = 16 * 1024 * 1024;
/// Chunks loaded at once, at most (the task's `jobs`, else the machine's cores).
pub const MAX_LOADS: usize = 4;
/// How long a streamed change waits for the chunk it goes on top of.
const LOAD_WAIT: Duration = Duration::from_secs(30);
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
    /// What the target will hold once every chunk started is handed over.
    planned: Coverage,
    rows: u64,
    /// Its columns changed in the stream: read the catalog again before the next chunk.
    reshaped: bool,
    /// The stream's open target transaction truncated it or changed its columns (and
    /// holds a lock a load would wait for): no chunk starts until it commits.
    locked: bool,
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
            planned: covered,
            rows,
            reshaped: false,
            locked: false,
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
    /// (on sessions of its own) rather than upserted.
    bulk: bool,
    /// Chunks being loaded, in key order per table, handed over oldest first.
    loads: VecDeque<Load>,
    /// Workers with nothing to load.
    idle: Vec<Worker>,
    /// Workers opened so far (names their writer slot).
    opened: usize,
    max_loads: usize,
    /// This stream attempt's claim (the loads' commits check it).
    fence: Fence,
}

impl Backfill {
    /// Loads the task's unfinished backfills of tables it still selects (and forgets
    /// the others).
    pub async fn load(spec: &TaskSpec, dst: &mut Conn, tables: &[Table]) -> Result<Backfill> {
        // the attempt has just claimed the task: the current epoch is its own
        let epoch = dst.epoch(&spec.name).await?.unwrap_or_default();
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
            loads: VecDeque::new(),
            idle: Vec::new(),
            opened: 0,
            max_loads: spec
                .jobs
                .unwrap_or_else(crate::copy::default_jobs)
                .clamp(1, MAX_LOADS),
            fence: Fence {
                task: spec.name.clone(),
                epoch,
            },
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
        self.in_flight.is_none()
            && self.loads.is_empty()
            && self.tables.iter().all(|f| f.covered == Coverage::All)
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
        for l in &mut self.loads {
            l.txn_seen = l.seen.saw(marker, xid);
        }
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
            // a chunk being loaded: on top of its rows unless its snapshot saw it
            // ([`Backfill::settle`] waited for the rows)
            return self
                .loads
                .iter()
                .find(|l| l.table == t && l.contains(key))
                .is_some_and(|l| !l.txn_seen && l.loaded());
        }
        !matches!(&self.in_flight, Some(fl) if fl.table == t && fl.contains(key) && self.txn_seen)
    }

    /// A change of the streamed transaction to `key` of table `t` that goes on top
    /// of a chunk still loading waits for the chunk's rows.
    async fn settle(&mut self, t: usize, key: Option<i128>) -> Result<()> {
        let Some(l) = self
            .loads
            .iter_mut()
            .find(|l| l.table == t && l.contains(key))
        else {
            return Ok(());
        };
        if l.txn_seen || l.loaded() {
            return Ok(());
        }
        match tokio::time::timeout(LOAD_WAIT, l.finish()).await {
            Ok(w) => {
                if let Some(w) = w? {
                    self.idle.push(w);
                }
                Ok(())
            }
            Err(_) => Err(restart(&format!(
                "a change to {} waited {}s for the chunk it goes on top of",
                self.tables[t].table.id,
                LOAD_WAIT.as_secs()
            ))),
        }
    }

    /// What of a row change reaches the target (`None`: skip it); a change that goes
    /// on top of a chunk still loading waits for it.
    pub async fn filter(&mut self, shape: &Shape, op: RowOp) -> Result<Option<RowOp>> {
        let Some(&t) = self.by_id.get(&shape.table) else {
            return Ok(Some(op));
        };
        let key = self.tables[t].key.clone();
        if !self.loads.is_empty() {
            match &op {
                RowOp::Insert(row) | RowOp::Delete(row) => {
                    self.settle(t, Self::key_of(shape, &key, row)).await?;
                }
                RowOp::Update { old, new } => {
                    let new_values: Vec<Value> = new
                        .iter()
                        .map(|c| match c {
                            Cell::Value(v) => v.clone(),
                            Cell::Unchanged => Value::Null,
                        })
                        .collect();
                    let k_new = Self::key_of(shape, &key, &new_values);
                    let k_old = match old {
                        Some(o) => Self::key_of(shape, &key, o),
                        None => k_new,
                    };
                    self.settle(t, k_old).await?;
                    self.settle(t, k_new).await?;
                }
            }
        }
        let key = &key;
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

    /// Which of the truncated tables are emptied on the target (their chunks still
    /// loading first: the truncation empties them too).
    pub async fn truncate(&mut self, tables: Vec<TableId>) -> Result<Vec<TableId>> {
        let mut out = Vec::new();
        for id in tables {
            let Some(&t) = self.by_id.get(&id) else {
                out.push(id);
                continue;
            };
            let seen = (matches!(&self.in_flight, Some(fl) if fl.table == t) && self.txn_seen)
                || self.loads.iter().any(|l| l.table == t && l.txn_seen);
            if seen {
                // the open chunk already reflects the truncation but the copied part
                // before it does not: read the chunk again after it
                return Err(restart(&format!(
                    "{id} was truncated while it was being copied"
                )));
            }
            let mut loading = false;
            for i in 0..self.loads.len() {
                if self.loads[i].table != t {
                    continue;
                }
                loading = true;
                if let Some(w) = self.loads[i].finish().await? {
                    self.idle.push(w);
                }
            }
            if self.tables[t].covered == Coverage::Nothing && !loading {
                continue;
            }
            self.tables[t].locked = true;
            out.push(id);
        }
        Ok(out)
    }

    /// A table's columns changed in the stream (applied to the target already): its
    /// next chunk reads the new columns.
    pub fn reshaped(&mut self, table: &TableId) {
        if let Some(&t) = self.by_id.get(table) {
            self.tables[t].reshaped = true;
            self.tables[t].locked = true;
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
        for f in &mut self.tables {
            f.locked = false;
        }
    }

    /// Whether a chunk is waiting for the stream to pass its snapshot.
    pub fn in_flight(&self) -> bool {
        self.in_flight.is_some()
    }

    /// At a boundary between source transactions: hands the oldest loaded chunk to
    /// the stream (its progress row into the applier's open transaction) and starts
    /// loading the next chunks; for tables that may hold rows already, upserts the
    /// next chunk into the applier's open transaction. Returns whether the open
    /// transaction took a chunk (a PostgreSQL snapshot that misses a transaction the
    /// stream already handed on is given up and retried).
    pub async fn copy_next(&mut self, applier: &mut Applier) -> Result<bool> {
        if self.in_flight.is_some() {
            return Ok(false);
        }
        if !self.bulk {
            return self.upsert_next(applier).await;
        }
        let handed = self.hand_over(applier).await?;
        while self.loads.len() < self.max_loads && self.start_load().await? {}
        Ok(handed)
    }

    /// The oldest load, once its rows are committed, becomes the chunk in flight.
    async fn hand_over(&mut self, applier: &mut Applier) -> Result<bool> {
        if !self.loads.front().is_some_and(Load::finished) {
            return Ok(false);
        }
        let mut l = self.loads.pop_front().expect("checked above");
        if let Some(w) = l.finish().await? {
            self.idle.push(w);
        }
        let Some(out) = l.outcome() else {
            return Err(Error::transient("a backfill load ended without its rows"));
        };
        let (n, until) = (out.rows, out.until.clone());
        let f = &mut self.tables[l.table];
        f.covered = match l.hi {
            Some(h) => Coverage::Below(h),
            None => Coverage::All,
        };
        f.rows += n;
        // metered like a full copy: the table's size, pro rata
        let per_row = f.table.estimated_bytes / f.table.estimated_rows.max(1);
        let row = BackfillRow {
            table: f.table.id.to_string(),
            next_key: l.hi.map(|h| h.to_string()),
            done: l.hi.is_none(),
            rows: f.rows,
        };
        applier.bulk_rows(n, n * per_row);
        let sql = checkpoint::backfill_sql(applier.conn(), &self.spec.name, &row);
        applier.statement(&sql).await?;
        tracing::debug!(
            "backfill {}: {n} rows of keys {:?}..{:?} loaded, commit after {until}",
            row.table,
            l.lo,
            l.hi
        );
        self.in_flight = Some(InFlight {
            table: l.table,
            lo: l.lo,
            hi: l.hi,
            seen: l.seen,
            until,
        });
        // nothing of the next transaction is decided yet
        self.txn_seen = false;
        Ok(true)
    }

    /// Starts loading the next chunk, if any table has one (and its snapshot sees
    /// what the stream handed on). Returns whether it did.
    async fn start_load(&mut self) -> Result<bool> {
        let Some(t) = self
            .tables
            .iter()
            .position(|f| f.planned != Coverage::All && !f.locked)
        else {
            return Ok(false);
        };
        let mut w = match self.idle.pop() {
            Some(w) => w,
            None => {
                // writer slots from the top, clear of the apply's
                let slot = ferry_core::spec::MAX_JOBS - 1 - self.opened;
                self.opened += 1;
                Worker::open(&self.spec, slot).await?
            }
        };
        let Some((seen, range)) = self.next_chunk(&mut w.src, t).await? else {
            self.idle.push(w);
            return Ok(false);
        };
        let f = &mut self.tables[t];
        let hi = range.as_ref().and_then(|r| r.hi);
        f.planned = match (&f.key, hi) {
            (Some(_), Some(h)) => Coverage::Below(h),
            _ => Coverage::All,
        };
        let job = f.job.clone();
        self.loads
            .push_back(Load::start(w, &self.spec, &self.fence, t, job, range, seen));
        Ok(true)
    }

    /// Opens the snapshot of table `t`'s next chunk on `src` (reading the table's
    /// columns again first if they changed) and returns what it saw and the chunk's
    /// key range; `None` (snapshot ended) when the snapshot misses a transaction the
    /// stream already handed on.
    async fn next_chunk(
        &mut self,
        src: &mut Conn,
        t: usize,
    ) -> Result<Option<(ferry_connector::Seen, Option<KeyRange>)>> {
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
            let (covered, planned, rows) = (f.covered, f.planned, f.rows);
            self.tables[t] = Filling::new(fresh, job, covered, rows);
            self.tables[t].planned = planned;
        }
        let capture = connector(self.spec.source.engine);
        let seen = capture.chunk_snapshot(&self.spec, &mut **src).await?;
        if seen.misses(|x| self.recent_set.contains_key(&x)) {
            src.exec("ROLLBACK").await?;
            tracing::debug!("backfill snapshot misses a streamed transaction; retrying");
            return Ok(None);
        }
        let f = &self.tables[t];
        let lo = match f.planned {
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
                let r = match src.query_text(&sql).await {
                    Ok(r) => r,
                    Err(e) => {
                        let _ = src.exec("ROLLBACK").await;
                        return Err(e);
                    }
                };
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
        Ok(Some((seen, range)))
    }

    /// The next chunk of a table that may hold rows already, upserted into the
    /// applier's open transaction (the stream waits meanwhile).
    async fn upsert_next(&mut self, applier: &mut Applier) -> Result<bool> {
        let Some(t) = self.tables.iter().position(|f| f.covered != Coverage::All) else {
            return Ok(false);
        };
        let mut src = match self.src.take() {
            Some(s) => s,
            None => Conn::open(&self.spec, Role::Source).await?,
        };
        let r = self.upsert_chunk(&mut src, applier, t).await;
        self.src = Some(src);
        r
    }

    async fn upsert_chunk(
        &mut self,
        src: &mut Conn,
        applier: &mut Applier,
        t: usize,
    ) -> Result<bool> {
        let Some((seen, range)) = self.next_chunk(src, t).await? else {
            return Ok(false);
        };
        let hi = range.as_ref().and_then(|r| r.hi);
        let lo = range.as_ref().and_then(|r| r.lo);
        let f = &self.tables[t];
        let (table, shape) = (f.table.clone(), f.shape.clone());
        let n = match upsert_rows(src, applier, &table, &shape, range.as_ref(), &self.spec).await {
            Ok(n) => n,
            Err(e) => {
                let _ = src.exec("ROLLBACK").await;
                return Err(e.context(format!("backfilling {}", table.id)));
            }
        };
        src.exec("COMMIT").await?;
        // after everything the snapshot saw (a marker written now, or its position)
        let capture = connector(self.spec.source.engine);
        let until = capture.chunk_until(&mut **src, &seen).await?;
        let f = &mut self.tables[t];
        f.covered = match hi {
            Some(h) => Coverage::Below(h),
            None => Coverage::All,
        };
        f.planned = f.covered;
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
