//! The engine runs against a database that is neither PostgreSQL nor MySQL: a small
//! in-memory engine implementing `ferry_connector`'s traits (tables of rows kept in
//! a mutex, transactions that hold their writes until `COMMIT`). The engine's chunked
//! copy and compare run against it exactly as they do against a server — through the
//! traits only — which is what keeps adding an engine to "one crate plus one arm of
//! the factory".

use ferry_connector::{
    async_trait, BulkLoad, BulkTarget, Capture, Checks, ChunkSource, Connection, Connector,
    DdlChange, Dialect, Fencing, MatchForm, NameFolding, ReadFormat, Rows, Schema, Seen, Snapshot,
    SqlConn, StoreDialect, TaskSlot,
};
use ferry_core::change::{Event, StreamFeatures};
use ferry_core::check::Item;
use ferry_core::chunk::{split_range, Batch, Chunk, KeyRange};
use ferry_core::select::ObjectFilter;
use ferry_core::{
    Column, DdlPlan, Endpoint, Engine, Error, LogicalType, Position, Result, Table, TableId,
    TaskSpec, Value,
};
use ferry_engine::checkpoint::Fence;
use ferry_engine::conn::Conn;
use ferry_engine::copy::chunk::{copy_chunk, TableJob};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc::{self, Receiver, Sender};
use tokio::sync::watch;

/// One in-memory database: tables with their model and rows, and every committed
/// transaction's statements (what Ferry wrote besides rows: its checkpoints).
#[derive(Default)]
struct MemDb {
    tables: BTreeMap<TableId, (Table, Vec<Vec<Value>>)>,
    committed: Vec<Vec<String>>,
}

/// A transaction's writes, applied at `COMMIT`.
#[derive(Default)]
struct Txn {
    rows: Vec<(TableId, Vec<Vec<Value>>)>,
    statements: Vec<String>,
}

/// A session to a [`MemDb`].
struct MemConn {
    db: Arc<Mutex<MemDb>>,
    txn: Option<Txn>,
    /// Fails the next bulk load after this many rows (a broken link mid-chunk).
    fail_after: Option<u64>,
}

struct MemDialect;
struct MemStore;
struct MemConnector;

impl Dialect for MemDialect {
    fn ident(&self, s: &str) -> String {
        format!("[{s}]")
    }

    fn literal(&self, s: &str) -> String {
        format!("'{}'", s.replace('\'', "''"))
    }

    fn begin(&self) -> &'static str {
        "BEGIN"
    }

    fn table_exists_sql(&self, t: &TableId) -> String {
        format!("EXISTS {}", self.qualified(t))
    }

    fn writer_session(&self) -> (&'static str, bool) {
        ("SESSION WRITER", true)
    }

    fn value_literal(&self, v: &Value, _ty: &LogicalType) -> std::result::Result<String, String> {
        Ok(v.describe())
    }

    fn insert_head(&self, qualified: &str, cols: &[String]) -> String {
        format!("INSERT INTO {qualified} ({})", cols.join(", "))
    }

    fn upsert_tail(&self, _cols: &[String], _key: &[usize]) -> String {
        " OR REPLACE".into()
    }

    fn one_row_statement(&self, _qualified: &str, head: &str, pred: &str) -> String {
        format!("{head} WHERE {pred} ONE")
    }

    fn truncate_in_txn(&self, t: &TableId) -> String {
        format!("TRUNCATE {}", self.qualified(t))
    }

    fn match_forms_sql(&self, t: &TableId) -> String {
        format!("FORMS {}", self.qualified(t))
    }

    fn match_predicate(&self, ident: &str, _v: &Value, literal: &str, _f: &MatchForm) -> String {
        format!("{ident} = {literal}")
    }

    fn column_type(&self, c: &Column, _from: Engine) -> Result<String> {
        Ok(c.native_type.clone())
    }

    fn column_default(&self, c: &Column, _from: Engine) -> Option<String> {
        c.default.clone()
    }

    fn ddl_is_transactional(&self) -> bool {
        true
    }
}

impl StoreDialect for MemStore {
    fn create_namespace_sql(&self) -> &'static str {
        "NAMESPACE ferry"
    }

    fn exact_name_type(&self) -> &'static str {
        "text"
    }

    fn stale_name_columns_sql(&self) -> Option<&'static str> {
        None
    }

    fn fix_name_column_sql(&self, table: &str, column: &str) -> String {
        format!("FIX {table}.{column}")
    }

    fn join_writers_sql(&self, key: &str, _slot: Option<usize>) -> (String, bool) {
        (format!("JOIN {key}"), false)
    }

    fn writer_sessions_sql(&self, key: &str, _slots: usize) -> String {
        format!("WRITERS {key}")
    }

    fn end_session_sql(&self, id: &str) -> String {
        format!("END {id}")
    }
}

/// The key value of a row, when the table is chunked by an integer key.
fn key_of(t: &Table, row: &[Value], column: &str) -> Option<i128> {
    let i = t.columns.iter().position(|c| c.name == column)?;
    match &row[i] {
        Value::Int(v) => Some(i128::from(*v)),
        Value::UInt(v) => Some(i128::from(*v)),
        _ => None,
    }
}

fn in_range(t: &Table, row: &[Value], r: &KeyRange) -> bool {
    let Some(k) = key_of(t, row, &r.column) else {
        return false;
    };
    r.lo.is_none_or(|l| k >= l) && r.hi.is_none_or(|h| k < h)
}

#[async_trait]
impl SqlConn for MemConn {
    fn dialect(&self) -> &'static dyn Dialect {
        &MemDialect
    }

    fn store_dialect(&self) -> &'static dyn StoreDialect {
        &MemStore
    }

    fn as_any_mut(&mut self) -> &mut dyn std::any::Any {
        self
    }

    async fn exec(&mut self, sql: &str) -> Result<()> {
        // several statements in one call (a check and its COMMIT): one at a time
        if let Some((first, rest)) = sql.split_once("; ") {
            self.exec(first).await?;
            return self.exec(rest).await;
        }
        match sql {
            "BEGIN" => {
                if self.txn.is_some() {
                    return Err(Error::definite("a transaction is open already"));
                }
                self.txn = Some(Txn::default());
            }
            "COMMIT" => {
                let txn = self
                    .txn
                    .take()
                    .ok_or_else(|| Error::definite("COMMIT without a transaction"))?;
                let mut db = self.db.lock().unwrap();
                for (t, rows) in txn.rows {
                    let table = db
                        .tables
                        .get_mut(&t)
                        .ok_or_else(|| Error::definite(format!("no table {t}")))?;
                    table.1.extend(rows);
                }
                db.committed.push(txn.statements);
            }
            "ROLLBACK" => self.txn = None,
            other => match &mut self.txn {
                Some(txn) => txn.statements.push(other.to_string()),
                None => self
                    .db
                    .lock()
                    .unwrap()
                    .committed
                    .push(vec![other.to_string()]),
            },
        }
        Ok(())
    }

    async fn exec_counts(&mut self, sql: &str) -> Result<Vec<u64>> {
        self.exec(sql).await.map(|()| vec![0])
    }

    async fn query_text(&mut self, _sql: &str) -> Result<Rows> {
        Ok(Vec::new())
    }

    async fn tables(&mut self, filter: &ObjectFilter, _db: Option<&str>) -> Result<Vec<Table>> {
        let db = self.db.lock().unwrap();
        Ok(db
            .tables
            .values()
            .filter(|(t, _)| filter.matches(&t.id.schema, &t.id.name))
            .map(|(t, rows)| Table {
                estimated_rows: rows.len() as u64,
                ..t.clone()
            })
            .collect())
    }
}

#[async_trait]
impl ChunkSource for MemConn {
    async fn key_stats(
        &mut self,
        t: &TableId,
        key: Option<&str>,
    ) -> Result<(u64, Option<(i128, i128)>)> {
        let db = self.db.lock().unwrap();
        let (table, rows) = db
            .tables
            .get(t)
            .ok_or_else(|| Error::definite(format!("no table {t}")))?;
        let keys: Vec<i128> = match key {
            Some(k) => rows.iter().filter_map(|r| key_of(table, r, k)).collect(),
            None => Vec::new(),
        };
        let bounds = keys.iter().min().zip(keys.iter().max());
        Ok((rows.len() as u64, bounds.map(|(a, b)| (*a, *b))))
    }

    async fn read_chunk(
        &mut self,
        t: &Table,
        range: Option<&KeyRange>,
        format: ReadFormat,
        tx: &Sender<Batch>,
        batch_rows: usize,
    ) -> Result<()> {
        if format == ReadFormat::Passthrough {
            return Err(Error::definite(
                "the in-memory engine has no native copy format",
            ));
        }
        let rows: Vec<Vec<Value>> = {
            let db = self.db.lock().unwrap();
            let (table, rows) = db
                .tables
                .get(&t.id)
                .ok_or_else(|| Error::definite(format!("no table {}", t.id)))?;
            rows.iter()
                .filter(|r| range.is_none_or(|r2| in_range(table, r, r2)))
                .map(|r| {
                    t.copied_columns()
                        .map(|c| {
                            let i = table.columns.iter().position(|x| x.name == c.name);
                            i.map(|i| r[i].clone()).unwrap_or(Value::Null)
                        })
                        .collect()
                })
                .collect()
        };
        for part in rows.chunks(batch_rows.max(1)) {
            if tx.send(Batch::Rows(part.to_vec())).await.is_err() {
                return Err(Error::definite("the writer stopped")
                    .with_kind(ferry_core::ErrorKind::WriterStopped));
            }
        }
        Ok(())
    }

    async fn open_snapshot(
        &mut self,
        workers: &mut [&mut dyn Connection],
        _handoff: Option<(&str, &Position)>,
    ) -> Result<Snapshot> {
        // one mutex: every session sees the same committed state
        Ok(Snapshot {
            position: None,
            workers: workers.len(),
            warnings: Vec::new(),
        })
    }
}

#[async_trait]
impl BulkTarget for MemConn {
    async fn bulk_load(&mut self, load: BulkLoad<'_>, mut rx: Receiver<Batch>) -> Result<u64> {
        let mut loaded = Vec::new();
        while let Some(batch) = rx.recv().await {
            let Batch::Rows(rows) = batch else {
                return Err(Error::definite("raw batches are not this engine's format"));
            };
            loaded.extend(rows);
            if self.fail_after.is_some_and(|n| loaded.len() as u64 > n) {
                self.fail_after = None;
                return Err(Error::transient("the link broke in the middle of a chunk"));
            }
        }
        let n = loaded.len() as u64;
        let txn = self
            .txn
            .as_mut()
            .ok_or_else(|| Error::definite("a bulk load needs an open transaction"))?;
        txn.rows.push((load.target.clone(), loaded));
        Ok(n)
    }
}

#[async_trait]
impl Schema for MemConnector {
    async fn create_text(
        &self,
        _src: &mut dyn Connection,
        _t: &TableId,
        _to: Engine,
    ) -> Result<Option<String>> {
        Ok(None)
    }

    fn plan_ddl(
        &self,
        t: &Table,
        target: &TableId,
        _from: Engine,
        _create_text: Option<&str>,
        _map: &dyn Fn(&TableId) -> TableId,
    ) -> Result<DdlPlan> {
        Ok(DdlPlan {
            create: vec![format!("CREATE {target} ({} columns)", t.columns.len())],
            ..DdlPlan::default()
        })
    }

    fn passthrough(&self) -> bool {
        false
    }

    fn schemas_are_databases(&self) -> bool {
        false
    }

    async fn name_folding(&self, _dst: &mut dyn Connection) -> Result<NameFolding> {
        Ok(NameFolding::default())
    }

    async fn available_extensions(&self, _dst: &mut dyn Connection) -> Result<Option<Vec<String>>> {
        Ok(None)
    }

    fn foreign_keys_into_sql(&self, _schemas: &[&str]) -> String {
        "FOREIGN KEYS".into()
    }

    async fn clear_tables(
        &self,
        dst: &mut dyn Connection,
        tables: &[&TableId],
        _drop: bool,
    ) -> Result<()> {
        let mem = dst
            .as_any_mut()
            .downcast_mut::<MemConn>()
            .expect("a MemConn");
        let mut db = mem.db.lock().unwrap();
        for t in tables {
            if let Some(table) = db.tables.get_mut(t) {
                table.1.clear();
            }
        }
        Ok(())
    }
}

#[async_trait]
impl Checks for MemConnector {
    async fn source_checks(&self, _c: &mut dyn Connection, _task: &str) -> Result<Vec<Item>> {
        Ok(vec![Item::new("source version", true, "in-memory", "")])
    }

    async fn target_checks(&self, _c: &mut dyn Connection) -> Result<Vec<Item>> {
        Ok(vec![Item::new("target version", true, "in-memory", "")])
    }

    async fn can_fence(&self, _c: &mut dyn Connection) -> Result<(bool, &'static str)> {
        Ok((false, "the in-memory engine has no read-only mode"))
    }

    async fn can_hold_checkpoints(&self, _c: &mut dyn Connection) -> Result<(bool, String)> {
        Ok((true, String::new()))
    }

    fn keyless_stream_note(&self) -> &'static str {
        "the in-memory engine has no change log"
    }
}

/// What the in-memory engine answers where a change log is needed: it has none.
fn no_log() -> Error {
    Error::definite("the in-memory engine has no change log")
}

#[async_trait]
impl Capture for MemConnector {
    async fn head(&self, _spec: &TaskSpec) -> Result<Position> {
        Err(no_log())
    }

    async fn catch_up_goal(&self, _spec: &TaskSpec) -> Result<Position> {
        Err(no_log())
    }

    fn slot_name(&self, _spec: &TaskSpec) -> Option<String> {
        None
    }

    async fn task_slot(&self, _spec: &TaskSpec) -> Result<Option<Box<dyn TaskSlot>>> {
        Ok(None)
    }

    async fn stream(
        &self,
        _spec: &TaskSpec,
        _start: &Position,
        _tables: Vec<Table>,
        _tx: &mpsc::Sender<Event>,
        _acked: watch::Receiver<Option<Position>>,
        _features: StreamFeatures,
    ) -> Result<()> {
        Err(no_log())
    }

    async fn chunk_snapshot(&self, _spec: &TaskSpec, _c: &mut dyn Connection) -> Result<Seen> {
        Err(no_log())
    }

    async fn chunk_until(&self, _c: &mut dyn Connection, _seen: &Seen) -> Result<Position> {
        Err(no_log())
    }

    fn classify_ddl(&self, _schema: &str, _statement: &str) -> DdlChange {
        DdlChange::Other
    }
}

#[async_trait]
impl Fencing for MemConnector {
    async fn set_read_only(&self, _ep: &Endpoint, _on: bool) -> Result<()> {
        Err(Error::definite(
            "the in-memory engine has no read-only mode",
        ))
    }
}

#[async_trait]
impl Connector for MemConnector {
    fn engine(&self) -> Engine {
        // the engine enum names the URL schemes Ferry parses; this one has none
        Engine::Postgres
    }

    fn dialect(&self) -> &'static dyn Dialect {
        &MemDialect
    }

    async fn connect(&self, _ep: &Endpoint) -> Result<Box<dyn Connection>> {
        Err(Error::definite(
            "the in-memory engine is opened by the test, not by URL",
        ))
    }

    async fn connect_without_database(
        &self,
        _ep: &Endpoint,
    ) -> Option<(Box<dyn Connection>, String)> {
        None
    }

    async fn ensure_database(&self, _t: &Endpoint, _s: &Endpoint) -> Result<Option<String>> {
        Ok(None)
    }
}

static MEMORY: MemConnector = MemConnector;

fn session(db: &Arc<Mutex<MemDb>>) -> Conn {
    let c = MemConn {
        db: db.clone(),
        txn: None,
        fail_after: None,
    };
    Conn::new(&MEMORY, Box::new(c))
}

fn table(schema: &str) -> Table {
    let int = LogicalType::Int {
        bytes: 8,
        unsigned: false,
    };
    Table {
        id: TableId::new(schema, "orders"),
        columns: vec![
            Column::new("id", "int8", int),
            Column::new("note", "text", LogicalType::Text),
        ],
        primary_key: vec!["id".into()],
        ..Table::default()
    }
}

fn rows(n: i64) -> Vec<Vec<Value>> {
    (1..=n)
        .map(|i| vec![Value::Int(i), Value::Text(format!("order {i}"))])
        .collect()
}

#[tokio::test]
async fn the_chunked_copy_and_compare_run_against_an_in_memory_engine() {
    let source = Arc::new(Mutex::new(MemDb::default()));
    let target = Arc::new(Mutex::new(MemDb::default()));
    let (t, dst_t) = (table("shop"), table("copy"));
    source
        .lock()
        .unwrap()
        .tables
        .insert(t.id.clone(), (t.clone(), rows(10_000)));
    target
        .lock()
        .unwrap()
        .tables
        .insert(dst_t.id.clone(), (dst_t.clone(), Vec::new()));
    let (mut src, mut dst) = (session(&source), session(&target));

    // plan chunks the way the full copy does, from the source's key statistics
    let (count, bounds) = src.key_stats(&t.id, Some("id")).await.unwrap();
    let (lo, hi) = bounds.unwrap();
    let plan: Vec<Chunk> = split_range("id", lo, hi, count, 1_500)
        .into_iter()
        .enumerate()
        .map(|(i, r)| Chunk {
            source: t.id.clone(),
            target: dst_t.id.clone(),
            index: i as u32,
            range: Some(r),
            done: false,
            rows: 0,
        })
        .collect();
    assert_eq!(plan.len(), 7);
    let job = TableJob {
        columns: vec!["id".into(), "note".into()],
        types: t.columns.iter().map(|c| c.logical.clone()).collect(),
        passthrough: false,
        source: t.clone(),
        target: dst_t.id.clone(),
        watermark: None,
        throttle: Default::default(),
    };

    let fence = Fence {
        task: "t1".into(),
        epoch: 1,
    };
    // a chunk whose load breaks commits nothing; run again, it copies whole
    if let Some(MemConn { fail_after, .. }) = dst.as_any_mut().downcast_mut::<MemConn>() {
        *fail_after = Some(700);
    }
    let e = copy_chunk(&mut src, &mut dst, &job, &plan[0], &fence, &|_| {})
        .await
        .unwrap_err();
    assert!(e.is_transient(), "{e}");
    assert!(target.lock().unwrap().committed.is_empty());
    let mut copied = 0;
    for chunk in &plan {
        copied += copy_chunk(&mut src, &mut dst, &job, chunk, &fence, &|_| {})
            .await
            .unwrap();
    }
    assert_eq!(copied, 10_000);
    {
        let db = target.lock().unwrap();
        assert_eq!(db.tables[&dst_t.id].1, rows(10_000));
        // each chunk's rows committed with the statement that marks it done
        assert_eq!(db.committed.len(), plan.len());
        for (i, statements) in db.committed.iter().enumerate() {
            // … and the fence's check, last before the COMMIT
            assert_eq!(statements.len(), 2, "{statements:?}");
            assert!(statements[0].contains("UPDATE ferry.chunks SET done = 1"));
            assert!(statements[1].starts_with("UPDATE ferry.fences"));
            assert!(
                statements[0].ends_with(&format!("AND chunk = {i}")),
                "{statements:?}"
            );
        }
    }

    // compare reads both sides through the same traits: equal, then one row differs
    let v = ferry_engine::compare::compare_table(&mut src, &mut dst, &t, &dst_t.id, 2_000)
        .await
        .unwrap();
    assert!(v.equal, "{:?}", v.differences);
    assert_eq!((v.source_rows, v.target_rows), (10_000, 10_000));
    target.lock().unwrap().tables.get_mut(&dst_t.id).unwrap().1[4_321][1] =
        Value::Text("changed on the target".into());
    let v = ferry_engine::compare::compare_table(&mut src, &mut dst, &t, &dst_t.id, 2_000)
        .await
        .unwrap();
    assert!(!v.equal);
    assert_eq!(v.differences.len(), 1, "{:?}", v.differences);
    assert!(
        v.differences[0].contains("contents differ"),
        "{:?}",
        v.differences
    );

    // a target table that is gone: every source row is missing there
    target.lock().unwrap().tables.remove(&dst_t.id);
    let v = ferry_engine::compare::compare_table(&mut src, &mut dst, &t, &dst_t.id, 2_000)
        .await
        .unwrap();
    assert_eq!((v.source_rows, v.target_rows), (10_000, 0));
    assert_eq!(v.differences, ["missing on the target"]);
}
