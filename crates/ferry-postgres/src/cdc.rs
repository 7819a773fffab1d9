//! PostgreSQL as a change source: the task's publication and logical slot, and the
//! `pgoutput` stream turned into [`Event`]s.
//!
//! The slot is created with an exported snapshot, which the full copy reads; the
//! stream then starts exactly after that snapshot (no gap, no overlap). The server
//! keeps WAL until Ferry acknowledges it, and Ferry acknowledges only positions whose
//! changes are committed on the target — also when idle, so an idle task never makes
//! the source hold WAL.
//!
//! # Streaming of in-progress transactions (protocol version 2)
//!
//! When the caller can take them ([`StreamFrom::in_progress`]) and the server is
//! PostgreSQL 14+, the stream asks for `proto_version '2', streaming 'on'`: a
//! transaction whose decoded changes outgrow the server's `logical_decoding_work_mem`
//! arrives in stream blocks while it still runs, as [`Event::InProgress`] parts
//! (rows tagged with the subtransaction that made them, subtransaction and whole
//! aborts, and at last its commit in commit order), interleaved with ordinary
//! `Begin … Commit` transactions. Nothing about acknowledgement changes: the engine
//! acknowledges positions committed on the target, and a part moves nothing; the
//! streamed transaction's `Commit` carries the same position (its commit record's end)
//! an ordinary `Commit` of it would. A streamed transaction has no `Begin` and so no
//! backfill marker: the engine asks for parts only while no backfill runs.
//!
//! A Relation message inside a stream block describes the table as that transaction
//! sees it, which may include its own uncommitted `ALTER TABLE`. Parts cannot carry a
//! reshape (the applier would have to change the target table inside a transaction
//! that may still roll back), so a streamed Relation that differs from the shape the
//! reader holds or from the source's committed catalog stops the stream with a
//! transient error, and the slot's next streams take whole transactions only until the
//! target has acknowledged past the end of that transaction (see [`whole_only`]).

use crate::catalog::read_tables;
use crate::conn::{classify, qualified, quote_ident, PgConn};
use crate::pgoutput::{self, Message, RelColumn, TupleValue};
use crate::replication::{ReplConn, StreamMessage, PG_EPOCH_OFFSET_US};
use crate::types::parse_text;
use ferry_connector::Retention;
use ferry_core::change::{Cell, Event, InProgressPart, RowOp, Shape};
use ferry_core::{
    select::ObjectFilter, Error, ErrorKind, LogicalType, Position, Result, Table, TableId, Value,
};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, watch};

/// Slot and publication name of a task (`ferry_<task>`, `-` → `_`).
pub fn slot_name(task: &str) -> String {
    format!("ferry_{}", task.replace('-', "_"))
}

/// State of the task's slot on the source.
#[derive(Debug, Clone)]
pub struct SlotState {
    /// `reserved`, `extended`, `unreserved` or `lost`.
    pub wal_status: String,
    /// Position the source will resume from.
    pub confirmed_flush: Option<u64>,
    /// A process is streaming from it right now.
    pub active: bool,
    /// Bytes of WAL the source keeps for it (from its `restart_lsn` to the current
    /// WAL end): what an unread slot costs the source's disk.
    pub retained_bytes: Option<u64>,
}

/// Reads the slot's state, `None` when it does not exist.
pub async fn slot_state(conn: &PgConn, slot: &str) -> Result<Option<SlotState>> {
    let rows = conn
        .client
        .query(
            "SELECT coalesce(wal_status, ''), confirmed_flush_lsn::text, active, \
             CASE WHEN pg_is_in_recovery() THEN NULL \
                  ELSE pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::bigint END \
             FROM pg_replication_slots WHERE slot_name = $1",
            &[&slot],
        )
        .await
        .map_err(classify)?;
    Ok(rows.first().map(|r| SlotState {
        wal_status: r.get(0),
        confirmed_flush: r
            .get::<_, Option<String>>(1)
            .and_then(|s| ferry_core::position::parse_lsn(&s)),
        active: r.get(2),
        retained_bytes: r
            .get::<_, Option<i64>>(3)
            .and_then(|b| u64::try_from(b).ok()),
    }))
}

/// Creates or updates the publication to cover exactly `tables`, and gives tables
/// without a primary key `REPLICA IDENTITY FULL` (without it the source would refuse
/// their UPDATEs and DELETEs once they are published). Returns warnings.
pub async fn ensure_publication(
    conn: &PgConn,
    name: &str,
    tables: &[Table],
) -> Result<Vec<String>> {
    let mut warnings = Vec::new();
    for t in tables.iter().filter(|t| t.primary_key.is_empty()) {
        let ident: String = conn
            .client
            .query_one(
                "SELECT relreplident::text FROM pg_class WHERE oid = $1::text::regclass",
                &[&qualified(&t.id)],
            )
            .await
            .map_err(classify)?
            .get(0);
        if ident == "d" || ident == "n" {
            conn.client
                .batch_execute(&format!(
                    "ALTER TABLE {} REPLICA IDENTITY FULL",
                    qualified(&t.id)
                ))
                .await
                .map_err(|e| {
                    classify(e).context(format!("setting REPLICA IDENTITY FULL on {}", t.id))
                })?;
            warnings.push(format!(
                "{} has no primary key: Ferry set REPLICA IDENTITY FULL on it on the source so its updates and deletes \
                 can be replicated (rows are matched on every column, one row at a time)",
                t.id
            ));
        }
    }
    let list = tables
        .iter()
        .map(|t| qualified(&t.id))
        .collect::<Vec<_>>()
        .join(", ");
    let exists = !conn
        .client
        .query("SELECT 1 FROM pg_publication WHERE pubname = $1", &[&name])
        .await
        .map_err(classify)?
        .is_empty();
    let sql = if exists {
        format!("ALTER PUBLICATION {} SET TABLE {list}", quote_ident(name))
    } else {
        format!("CREATE PUBLICATION {} FOR TABLE {list}", quote_ident(name))
    };
    conn.client
        .batch_execute(&sql)
        .await
        .map_err(|e| classify(e).context("creating the task's publication"))?;
    Ok(warnings)
}

/// [`ensure_publication`] when the publication does not hold exactly `tables` (an
/// existing publication is left alone otherwise: no lock, no catalog change).
pub async fn sync_publication(conn: &PgConn, name: &str, tables: &[Table]) -> Result<()> {
    let rows = conn
        .client
        .query(
            "SELECT schemaname::text, tablename::text FROM pg_publication_tables WHERE pubname = $1",
            &[&name],
        )
        .await
        .map_err(classify)?;
    let have: std::collections::HashSet<TableId> = rows
        .iter()
        .map(|r| TableId::new(r.get::<_, String>(0), r.get::<_, String>(1)))
        .collect();
    let want: std::collections::HashSet<TableId> = tables.iter().map(|t| t.id.clone()).collect();
    if have != want && !have.is_empty() {
        ensure_publication(conn, name, tables).await?;
    }
    Ok(())
}

/// Creates the slot on a replication connection; returns its consistent point and
/// the exported snapshot, valid until the next command on `repl`. A `temporary` slot
/// only serves its snapshot and disappears with the connection.
pub async fn create_slot(
    repl: &mut ReplConn,
    slot: &str,
    temporary: bool,
) -> Result<(u64, String)> {
    let rows = repl
        .simple_query(&format!(
            "CREATE_REPLICATION_SLOT {}{} LOGICAL pgoutput EXPORT_SNAPSHOT",
            quote_ident(slot),
            if temporary { " TEMPORARY" } else { "" }
        ))
        .await?;
    let row = rows
        .first()
        .ok_or_else(|| Error::definite("CREATE_REPLICATION_SLOT returned nothing"))?;
    let lsn = row
        .get(1)
        .cloned()
        .flatten()
        .and_then(|s| ferry_core::position::parse_lsn(&s))
        .ok_or_else(|| Error::definite("CREATE_REPLICATION_SLOT returned no consistent point"))?;
    let snapshot = row
        .get(2)
        .cloned()
        .flatten()
        .ok_or_else(|| Error::definite("CREATE_REPLICATION_SLOT exported no snapshot"))?;
    Ok((lsn, snapshot))
}

/// Drops the slot and the publication (ending the task). Missing ones are fine.
pub async fn drop_slot_and_publication(conn: &PgConn, name: &str) -> Result<()> {
    if let Some(s) = slot_state(conn, name).await? {
        if s.active {
            return Err(Error::transient(format!(
                "replication slot {name} is in use by a running Ferry"
            ))
            .with_hint("stop the running `ferry run` first"));
        }
        conn.client
            .execute("SELECT pg_drop_replication_slot($1)", &[&name])
            .await
            .map_err(classify)?;
    }
    conn.client
        .batch_execute(&format!("DROP PUBLICATION IF EXISTS {}", quote_ident(name)))
        .await
        .map_err(classify)
}

/// How to keep a slot from being lost again.
const KEEP_SLOT: &str =
    "keep tasks from staying stopped (or far behind) longer than the source keeps \
                         WAL for them: raise max_slot_wal_keep_size, or watch `ferry status` / the \
                         source_retention_warning webhook";

/// Fails with "full resync needed" ([`ErrorKind::PositionLost`]) when the slot is
/// gone or lost its WAL.
pub async fn verify_slot(conn: &PgConn, slot: &str) -> Result<SlotState> {
    match slot_state(conn, slot).await? {
        None => Err(Error::position_lost(
            format!(
                "the source has no replication slot {slot} although the task's checkpoint \
                 says its stream resumes from it: the changes since the last applied position are gone"
            ),
            KEEP_SLOT,
        )),
        Some(s) if s.wal_status == "lost" => Err(Error::position_lost(
            format!(
                "replication slot {slot} was invalidated (wal_status = lost: the source removed \
                 WAL it still needed, past max_slot_wal_keep_size)"
            ),
            KEEP_SLOT,
        )),
        Some(s) => Ok(s),
    }
}

/// `e` from the replication connection, as "full resync needed" when the server
/// says the slot's WAL is gone or the slot is (PostgreSQL has no finer SQLSTATE for
/// these than its message: 58P01 and 55000 cover other conditions too).
pub fn lost_or(e: Error, slot: &str) -> Error {
    let m = &e.message;
    let lost = m.contains("has already been removed")
        || m.contains("can no longer get changes from replication slot")
        || m.contains("This slot has been invalidated")
        || (m.contains("replication slot") && m.contains("does not exist"));
    if lost && !e.is(ErrorKind::PositionLost) {
        Error::position_lost(
            format!(
                "replication slot {slot} cannot stream any more ({})",
                e.message
            ),
            KEEP_SLOT,
        )
    } else {
        e
    }
}

/// What the source keeps for the task's slot: `None` when the slot does not exist.
pub async fn retention(conn: &PgConn, slot: &str) -> Result<Option<Retention>> {
    let rows = conn
        .client
        .query(
            "SELECT coalesce(wal_status, ''), active, \
             CASE WHEN pg_is_in_recovery() OR restart_lsn IS NULL THEN NULL \
                  ELSE pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::bigint END, \
             safe_wal_size::bigint, \
             pg_size_bytes(current_setting('max_slot_wal_keep_size'))::bigint \
             FROM pg_replication_slots WHERE slot_name = $1",
            &[&slot],
        )
        .await
        .map_err(classify)?;
    Ok(rows.first().map(|r| {
        let status: String = r.get(0);
        Retention {
            holder: format!("replication slot {slot}"),
            held_for_task: true,
            retained_bytes: r
                .get::<_, Option<i64>>(2)
                .and_then(|b| u64::try_from(b).ok()),
            wal_status: (!status.is_empty()).then_some(status),
            safe_bytes: r.get(3),
            limit_bytes: r
                .get::<_, Option<i64>>(4)
                .and_then(|b| u64::try_from(b).ok()),
            expire_seconds: None,
            active: r.get(1),
        }
    }))
}

fn column_name_list(cols: &[RelColumn]) -> Vec<&str> {
    cols.iter().map(|c| c.name.as_str()).collect()
}

fn make_shape(table: &Table, identity: u8, cols: &[RelColumn]) -> Result<Shape> {
    let mut columns = Vec::with_capacity(cols.len());
    for c in cols {
        let col = table.column(&c.name).ok_or_else(|| {
            Error::definite(format!(
                "{}: the log describes column {} which the source catalog no longer has",
                table.id, c.name
            ))
            .with_hint("the column was dropped after this change was logged; a full resync of the table is needed")
        })?;
        columns.push(col.clone());
    }
    let by_flag: Vec<usize> = (0..cols.len()).filter(|i| cols[*i].key).collect();
    let pk: Vec<usize> = table
        .primary_key
        .iter()
        .filter_map(|k| cols.iter().position(|c| &c.name == k))
        .collect();
    let pk = if pk.len() == table.primary_key.len() {
        pk
    } else {
        vec![]
    };
    let key = match identity {
        b'f' => pk,
        b'n' => pk,
        _ => by_flag,
    };
    Ok(Shape {
        table: table.id.clone(),
        columns,
        key,
    })
}

/// Decodes a tuple; `native_arrays` keeps arrays in PostgreSQL's own text form (for a
/// PostgreSQL target) instead of the JSON other targets store them as.
fn values(
    shape: &Shape,
    tuple: Vec<TupleValue>,
    what: &str,
    native_arrays: bool,
) -> Result<Vec<Cell>> {
    if tuple.len() != shape.columns.len() {
        return Err(Error::definite(format!(
            "{}: {what} has {} columns, the relation {}",
            shape.table,
            tuple.len(),
            shape.columns.len()
        )));
    }
    tuple
        .into_iter()
        .zip(&shape.columns)
        .map(|(v, c)| match v {
            TupleValue::Null => Ok(Cell::Value(Value::Null)),
            TupleValue::Unchanged => Ok(Cell::Unchanged),
            TupleValue::Text(t) if native_arrays && matches!(c.logical, LogicalType::Array(_)) => {
                String::from_utf8(t)
                    .map(|t| Cell::Value(Value::Text(t)))
                    .map_err(|_| {
                        Error::definite(format!("{}.{}: array is not UTF-8", shape.table, c.name))
                    })
            }
            TupleValue::Text(t) => parse_text(Some(t), &c.logical)
                .map(Cell::Value)
                .map_err(|e| Error::definite(format!("{}.{}: {e}", shape.table, c.name))),
        })
        .collect()
}

fn plain(cells: Vec<Cell>) -> Vec<Value> {
    cells
        .into_iter()
        .map(|c| match c {
            Cell::Value(v) => v,
            Cell::Unchanged => Value::Null,
        })
        .collect()
}

/// Slots whose streams take whole transactions only for now, and the transaction
/// whose streamed parts could not be followed (see [`whole_only`]). Kept for the
/// process's life: a task restarts its stream in the same process.
static WHOLE_ONLY: Mutex<BTreeMap<String, u32>> = Mutex::new(BTreeMap::new());

/// The transaction that turned streaming of in-progress transactions off for
/// `slot`'s streams, when one did.
pub fn whole_only(slot: &str) -> Option<u32> {
    WHOLE_ONLY
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(slot)
        .copied()
}

/// Turns streaming of in-progress transactions off for `slot` because of `xid`, and
/// returns the transient error that restarts the stream (`why`: what could not be
/// followed).
fn turn_off_streaming(slot: &str, xid: u32, why: &str) -> Error {
    WHOLE_ONLY
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(slot.to_string(), xid);
    Error::transient(format!(
        "the source streamed part of its transaction {xid} before it committed, but {why}: \
         streaming of in-progress transactions is turned off for that transaction, and the \
         stream restarts to receive it whole at its commit"
    ))
}

/// Turns streaming back on for `slot` (its stream has passed `xid`).
fn turn_on_streaming(slot: &str, xid: u32) {
    let mut held = WHOLE_ONLY.lock().unwrap_or_else(|e| e.into_inner());
    if held.get(slot) == Some(&xid) {
        held.remove(slot);
    }
}

/// Converts `pgoutput` messages into events, keeping relation shapes.
struct Decoder<'a> {
    catalog: &'a PgConn,
    tables: HashMap<TableId, Table>,
    relations: HashMap<u32, Arc<Shape>>,
    native_arrays: bool,
    /// The slot (to turn streaming off for it).
    slot: &'a str,
    /// The top-level transaction of the open stream block.
    block: Option<u32>,
    /// Streamed transactions whose first block arrived and which have not ended.
    open: HashSet<u32>,
}

impl Decoder<'_> {
    async fn table(&mut self, id: &TableId, cols: &[RelColumn]) -> Result<Table> {
        let known = self.tables.get(id);
        let complete = known.is_some_and(|t| cols.iter().all(|c| t.column(&c.name).is_some()));
        if !complete {
            let filter = ObjectFilter::table(id);
            for t in read_tables(self.catalog, &filter).await? {
                self.tables.insert(t.id.clone(), t);
            }
        }
        self.tables.get(id).cloned().ok_or_else(|| {
            Error::definite(format!(
                "{id} is in the publication but not in the source catalog"
            ))
        })
    }

    fn shape(&self, rel: u32) -> Result<Arc<Shape>> {
        self.relations.get(&rel).cloned().ok_or_else(|| {
            Error::definite(format!(
                "change for unknown relation {rel} (no Relation message)"
            ))
        })
    }

    /// A row change as the event of the transaction it belongs to: inside a stream
    /// block, a part of the block's transaction made by (sub)transaction `sub`.
    fn row(&self, sub: Option<u32>, shape: Arc<Shape>, op: RowOp) -> Event {
        match self.block {
            Some(xid) => Event::InProgress {
                xid,
                part: InProgressPart::Row {
                    subxid: sub.unwrap_or(xid),
                    shape,
                    op,
                },
            },
            None => Event::Row { shape, op },
        }
    }

    /// Decodes `msg`; `sub`: the (sub)transaction a message inside a stream block
    /// names.
    async fn decode(&mut self, sub: Option<u32>, msg: Message, out: &mut Vec<Event>) -> Result<()> {
        if let Some(xid) = self.block {
            if matches!(
                msg,
                Message::Begin { .. }
                    | Message::Commit { .. }
                    | Message::StreamStart { .. }
                    | Message::StreamCommit { .. }
                    | Message::StreamAbort { .. }
            ) {
                return Err(Error::definite(format!(
                    "the replication stream sent {msg:?} inside the stream block of transaction {xid} \
                     (a protocol violation)"
                )));
            }
        }
        match msg {
            Message::Begin { final_lsn, xid, .. } => out.push(Event::Begin {
                marker: Some(Position::PgLsn(final_lsn)),
                xid: Some(xid),
            }),
            Message::Commit {
                end_lsn, commit_ts, ..
            } => out.push(Event::Commit {
                position: Position::PgLsn(end_lsn),
                commit_time_us: Some(commit_ts + PG_EPOCH_OFFSET_US),
            }),
            Message::StreamStart { xid, first } => {
                if !first && !self.open.contains(&xid) {
                    return Err(turn_off_streaming(
                        self.slot,
                        xid,
                        "this reader did not receive its first part",
                    ));
                }
                if self.open.insert(xid) {
                    tracing::info!(
                        "the source streams its transaction {xid} before it commits (it outgrew logical_decoding_work_mem)"
                    );
                }
                self.block = Some(xid);
            }
            Message::StreamStop => self.block = None,
            Message::StreamCommit {
                xid,
                end_lsn,
                commit_ts,
                ..
            } => {
                if !self.open.remove(&xid) {
                    return Err(turn_off_streaming(
                        self.slot,
                        xid,
                        "its commit arrived without its parts",
                    ));
                }
                // the same resume point as an ordinary Commit of the transaction
                out.push(Event::InProgress {
                    xid,
                    part: InProgressPart::Commit {
                        position: Position::PgLsn(end_lsn),
                        commit_time_us: Some(commit_ts + PG_EPOCH_OFFSET_US),
                    },
                });
            }
            Message::StreamAbort { xid, subxid } => {
                // an abort of a transaction none of whose parts this reader sent
                // undoes nothing
                if self.open.contains(&xid) {
                    if subxid == xid {
                        self.open.remove(&xid);
                    }
                    out.push(Event::InProgress {
                        xid,
                        part: InProgressPart::Abort { subxid },
                    });
                }
            }
            Message::Relation {
                id,
                schema,
                name,
                replica_identity,
                columns,
            } if self.block.is_some() => {
                let xid = self.block.unwrap_or_default();
                if let Err(why) = self
                    .streamed_relation(id, schema, name, replica_identity, &columns)
                    .await
                {
                    return Err(turn_off_streaming(self.slot, xid, &why));
                }
            }
            Message::Relation {
                id,
                schema,
                name,
                replica_identity,
                columns,
            } => {
                let tid = TableId::new(schema, name);
                let table = self.table(&tid, &columns).await?;
                let shape = Arc::new(make_shape(&table, replica_identity, &columns)?);
                if let Some(old) = self.relations.get(&id) {
                    let before: Vec<&str> = old.columns.iter().map(|c| c.name.as_str()).collect();
                    if before != column_name_list(&columns) || old.table != shape.table {
                        out.push(Event::Reshape {
                            old: old.clone(),
                            new: shape.clone(),
                        });
                    }
                }
                self.relations.insert(id, shape);
            }
            Message::Insert { rel, new } => {
                let shape = self.shape(rel)?;
                let row = plain(values(&shape, new, "an inserted row", self.native_arrays)?);
                out.push(self.row(sub, shape, RowOp::Insert(row)));
            }
            Message::Update { rel, old, new } => {
                let shape = self.shape(rel)?;
                let old = match old {
                    Some(o) => Some(plain(values(&shape, o, "an old row", self.native_arrays)?)),
                    None => None,
                };
                let new = values(&shape, new, "an updated row", self.native_arrays)?;
                out.push(self.row(sub, shape, RowOp::Update { old, new }));
            }
            Message::Delete { rel, old } => {
                let shape = self.shape(rel)?;
                let old = plain(values(&shape, old, "a deleted row", self.native_arrays)?);
                out.push(self.row(sub, shape, RowOp::Delete(old)));
            }
            Message::Truncate { rels } => {
                let mut ids = Vec::new();
                for r in rels {
                    ids.push(self.shape(r)?.table.clone());
                }
                out.push(match self.block {
                    Some(xid) => Event::InProgress {
                        xid,
                        part: InProgressPart::Truncate {
                            subxid: sub.unwrap_or(xid),
                            tables: ids,
                        },
                    },
                    None => Event::Truncate(ids),
                });
            }
            Message::Other(_) => {}
        }
        Ok(())
    }

    /// Takes a Relation message of a streamed transaction: only one that describes the
    /// table exactly as the reader holds it and as the source's committed catalog has
    /// it (names and types of the columns, the key) — anything else may be that
    /// transaction's own uncommitted schema change, which parts cannot carry. `Err`
    /// says what differs.
    async fn streamed_relation(
        &mut self,
        id: u32,
        schema: String,
        name: String,
        identity: u8,
        columns: &[RelColumn],
    ) -> std::result::Result<(), String> {
        let tid = TableId::new(schema, name);
        let row = self
            .catalog
            .client
            .query_opt(
                "SELECT n.nspname::text, c.relname::text, \
                   coalesce((SELECT array_agg(a.attname::text ORDER BY a.attnum) FROM pg_attribute a \
                     WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''), '{}'), \
                   coalesce((SELECT array_agg(a.atttypid::int8 ORDER BY a.attnum) FROM pg_attribute a \
                     WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''), '{}') \
                 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = $1::int8::oid",
                &[&i64::from(id)],
            )
            .await
            .map_err(|e| format!("the source catalog could not be read ({})", classify(e)))?
            .ok_or_else(|| format!("{tid} is not in the source's committed catalog"))?;
        let committed = TableId::new(row.get::<_, String>(0), row.get::<_, String>(1));
        let names: Vec<String> = row.get(2);
        let types: Vec<i64> = row.get(3);
        let sent_names: Vec<&str> = column_name_list(columns);
        let sent_types: Vec<i64> = columns.iter().map(|c| i64::from(c.type_oid)).collect();
        if committed != tid || names != sent_names || types != sent_types {
            return Err(format!(
                "it describes {tid} with columns ({}) while the source's committed catalog has {committed} \
                 with ({}) (a schema change in that transaction, or one not yet seen by this reader)",
                sent_names.join(", "),
                names.join(", ")
            ));
        }
        // the catalog is not read again here: that transaction may hold locks on the
        // table (an ALTER) that a catalog read of its size or defaults waits behind
        let table = self
            .tables
            .get(&tid)
            .filter(|t| columns.iter().all(|c| t.column(&c.name).is_some()))
            .cloned()
            .ok_or_else(|| {
                format!("this reader has not read {tid} with these columns from the catalog yet")
            })?;
        let shape = make_shape(&table, identity, columns).map_err(|e| e.message)?;
        if let Some(old) = self.relations.get(&id) {
            let before: Vec<&str> = old.columns.iter().map(|c| c.name.as_str()).collect();
            if before != sent_names || old.table != shape.table || old.key != shape.key {
                return Err(format!(
                    "it describes {tid} with columns ({}) while this reader holds ({}) for it",
                    sent_names.join(", "),
                    before.join(", ")
                ));
            }
        }
        self.relations.insert(id, Arc::new(shape));
        Ok(())
    }
}

/// Where a change stream starts and what it decodes.
pub struct StreamFrom<'a> {
    /// The task's slot (and publication: they share the name).
    pub slot: &'a str,
    /// First LSN wanted.
    pub start: u64,
    /// The selected tables as the catalog had them.
    pub tables: Vec<Table>,
    /// The target is PostgreSQL: keep arrays in their native text form.
    pub native_arrays: bool,
    /// The caller takes parts of in-progress transactions ([`Event::InProgress`]) and
    /// the server can send them (PostgreSQL 14+): ask for protocol version 2 with
    /// streaming, unless streaming is turned off for the slot ([`whole_only`]).
    pub in_progress: bool,
}

/// Streams changes from `from.start` into `tx` until the channel closes or an error.
/// `acked` carries the highest position committed on the target; it is reported to
/// the server as flushed.
pub async fn stream(
    repl: &mut ReplConn,
    catalog: &PgConn,
    from: StreamFrom<'_>,
    tx: &mpsc::Sender<Event>,
    acked: &mut watch::Receiver<u64>,
) -> Result<()> {
    let (slot, start) = (from.slot, from.start);
    // a transaction whose parts could not be followed: whole transactions only until
    // the target has passed it (then the next stream streams again)
    let mut held = if from.in_progress {
        whole_only(slot)
    } else {
        None
    };
    if let Some(xid) = held {
        tracing::info!(
            "streaming of in-progress transactions stays off for {slot} until the source's transaction {xid} is applied"
        );
    }
    let in_progress = from.in_progress && held.is_none();
    // the WAL end once `held` had ended: acknowledged past it, the target has it
    let mut held_until: Option<u64> = None;
    repl.start_replication(slot, slot, start, in_progress)
        .await
        .map_err(|e| lost_or(e, slot))?;
    let mut dec = Decoder {
        catalog,
        tables: from.tables.into_iter().map(|t| (t.id.clone(), t)).collect(),
        relations: HashMap::new(),
        native_arrays: from.native_arrays,
        slot,
        block: None,
        open: HashSet::new(),
    };
    let mut reported = start;
    let mut in_txn = false;
    let mut last_data = std::time::Instant::now();
    let mut heartbeat = tokio::time::interval(HEARTBEAT);
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut events = Vec::new();
    loop {
        tokio::select! {
            m = repl.next() => match m.map_err(|e| lost_or(e, slot))? {
                StreamMessage::XLogData { data, .. } => {
                    last_data = std::time::Instant::now();
                    let (sub, msg) = pgoutput::parse_in(data, dec.block.is_some())
                        .map_err(|e| Error::definite(format!("cannot decode the replication stream: {e}")))?;
                    match &msg {
                        Message::Begin { .. } => in_txn = true,
                        Message::Commit { .. } => in_txn = false,
                        _ => {}
                    }
                    dec.decode(sub, msg, &mut events).await?;
                    for ev in events.drain(..) {
                        // keep the server informed while the applier is busy
                        loop {
                            tokio::select! {
                                permit = tx.reserve() => {
                                    match permit {
                                        Ok(p) => { p.send(ev); break; }
                                        Err(_) => return Ok(()),
                                    }
                                }
                                _ = tick.tick() => {
                                    reported = *acked.borrow();
                                    repl.send_status(reported).await?;
                                }
                            }
                        }
                    }
                }
                StreamMessage::Keepalive { reply, .. } => {
                    // a keepalive's WAL end is not a promise that every transaction
                    // before it was sent: it is never treated as applied; idle
                    // progress comes from heartbeat messages (see `heartbeat`)
                    if reply {
                        reported = *acked.borrow();
                        repl.send_status(reported).await?;
                    }
                }
            },
            _ = heartbeat.tick() => {
                if let Some(xid) = held {
                    match held_until {
                        None => held_until = ended_at(catalog, xid).await?,
                        Some(end) if *acked.borrow() >= end => {
                            turn_on_streaming(slot, xid);
                            held = None;
                        }
                        Some(_) => {}
                    }
                }
                if !in_txn && last_data.elapsed() >= HEARTBEAT {
                    tokio::time::timeout(Duration::from_secs(5), emit_marker(catalog, "heartbeat"))
                        .await
                        .map_err(|_| {
                            Error::transient(
                                "the source did not answer a heartbeat within 5 s (stalled network or server)",
                            )
                        })??;
                }
            }
            _ = tick.tick() => {
                let now = *acked.borrow();
                if now != reported {
                    reported = now;
                    repl.send_status(reported).await?;
                }
            }
        }
    }
}

/// `None` while the source's transaction `xid` still runs; once it has ended, the
/// WAL end now, which its commit (if it committed) lies before.
async fn ended_at(conn: &PgConn, xid: u32) -> Result<Option<u64>> {
    // a running transaction holds the lock on its own id
    let running: bool = conn
        .client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'transactionid' \
             AND transactionid = $1::text::xid)",
            &[&xid.to_string()],
        )
        .await
        .map_err(classify)?
        .get(0);
    if running {
        Ok(None)
    } else {
        current_lsn(conn).await.map(Some)
    }
}

/// How long the stream may deliver nothing before a heartbeat is written.
const HEARTBEAT: Duration = Duration::from_secs(10);

/// Writes a transactional logical message (no table touched) to the source's WAL.
/// It reaches the stream as a transaction in commit order, so its commit proves that
/// everything committed before it was delivered: the "caught up" barrier, and the
/// heartbeat that lets an idle task release WAL. Returns the message's LSN.
pub async fn emit_marker(conn: &PgConn, what: &str) -> Result<u64> {
    let s: String = conn
        .client
        .query_one(
            "SELECT pg_logical_emit_message(true, 'ferry', $1::text)::text",
            &[&what],
        )
        .await
        .map_err(classify)?
        .get(0);
    ferry_core::position::parse_lsn(&s)
        .ok_or_else(|| Error::definite(format!("unexpected LSN {s:?}")))
}

/// The source's current WAL end (for lag and "caught up").
pub async fn current_lsn(conn: &PgConn) -> Result<u64> {
    let s: String = conn
        .client
        .query_one("SELECT pg_current_wal_lsn()::text", &[])
        .await
        .map_err(classify)?
        .get(0);
    ferry_core::position::parse_lsn(&s)
        .ok_or_else(|| Error::definite(format!("unexpected LSN {s:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the server says when a slot's WAL or the slot is gone becomes "full
    /// resync needed"; anything else (a reset connection) stays as it was.
    #[test]
    fn a_removed_wal_segment_or_slot_is_a_lost_position() {
        for m in [
            "requested WAL segment 000000010000000000000003 has already been removed (SQLSTATE 58P01)",
            "can no longer get changes from replication slot \"ferry_t\" (SQLSTATE 55000)",
            "replication slot \"ferry_t\" does not exist (SQLSTATE 42704)",
        ] {
            let e = lost_or(Error::definite(m), "ferry_t");
            assert!(e.is(ErrorKind::PositionLost) && !e.is_transient(), "{m}");
            assert!(e.message.ends_with("full resync needed"), "{}", e.message);
            assert!(e.to_string().contains("existing_data: drop"), "{e}");
        }
        let reset = lost_or(Error::transient("connection reset by peer"), "ferry_t");
        assert!(reset.is_transient() && !reset.is(ErrorKind::PositionLost));
    }
}
