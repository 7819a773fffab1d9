//! The net row changes of the source's log between two positions, stored as
//! changes files: per table a bounded map from key to net change (the final image
//! of a row, or its deletion), flushed as a file piece when it reaches
//! [`codec::PART_BYTES`]. Pieces of a table are applied in order by a restore, so
//! a key whose change was flushed early and changed again later is right.

use crate::codec::{self, Change, FileWriter};
use crate::layout;
use crate::manifest::{FileEntry, FileKind};
use crate::repo::Repo;
use ferry_core::canonical::canonical;
use ferry_core::change::{Cell, Event, RowOp, Shape};
use ferry_core::{Error, LogicalType, Position, Result, Table, TableId, TaskSpec, Value};
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::{mpsc, watch};

/// Where the changes go and what they are of.
pub(crate) struct Target<'a> {
    /// The repository.
    pub repo: &'a Repo,
    /// The set's cluster.
    pub cluster: &'a str,
    /// The set.
    pub set: &'a str,
    /// The set's tables (manifest order): file paths name their index.
    pub tables: &'a [Table],
}

/// What reading the log gave.
pub(crate) struct LogRead {
    /// Where the set is consistent now: the end of the last transaction read (or
    /// the quiet point the log reached).
    pub position: Position,
    /// Commit time of the last transaction read, microseconds since the epoch.
    pub commit_time_us: Option<i64>,
    /// Changes files stored.
    pub files: Vec<FileEntry>,
    /// Net changes stored, per table index.
    pub changes: Vec<u64>,
}

/// One table's net changes not yet stored.
struct Pending {
    /// Key bytes (canonical) → net change.
    map: HashMap<Vec<u8>, Change>,
    /// Approximate encoded size of `map`.
    bytes: u64,
    /// Next piece number.
    piece: u32,
    /// Changes stored so far.
    stored: u64,
}

/// How a log shape's columns land in a table's copied columns.
struct ShapeMap {
    shape: Arc<Shape>,
    /// For each copied column, its index in the shape.
    cols: Vec<usize>,
    /// For each primary-key column, its index in the shape.
    key: Vec<usize>,
}

/// Accumulates net changes per table.
pub(crate) struct NetChanges<'a> {
    target: Target<'a>,
    index: HashMap<TableId, usize>,
    key_types: Vec<Vec<LogicalType>>,
    pending: Vec<Pending>,
    shapes: Vec<Option<ShapeMap>>,
    files: Vec<FileEntry>,
    buf: Vec<u8>,
}

impl<'a> NetChanges<'a> {
    /// An empty accumulator for `target`'s tables (each must have a primary key).
    pub fn new(target: Target<'a>) -> Result<NetChanges<'a>> {
        let mut key_types = Vec::new();
        for t in target.tables {
            if t.primary_key.is_empty() {
                return Err(keyless(&t.id));
            }
            key_types.push(
                t.primary_key
                    .iter()
                    .map(|k| {
                        t.column(k)
                            .map(|c| c.logical.clone())
                            .unwrap_or(LogicalType::Text)
                    })
                    .collect(),
            );
        }
        Ok(NetChanges {
            index: target
                .tables
                .iter()
                .enumerate()
                .map(|(i, t)| (t.id.clone(), i))
                .collect(),
            pending: target
                .tables
                .iter()
                .map(|_| Pending {
                    map: HashMap::new(),
                    bytes: 0,
                    piece: 0,
                    stored: 0,
                })
                .collect(),
            shapes: target.tables.iter().map(|_| None).collect(),
            key_types,
            target,
            files: Vec::new(),
            buf: Vec::new(),
        })
    }

    /// The table index of a source table the set holds.
    fn table(&self, id: &TableId) -> Option<usize> {
        self.index.get(id).copied()
    }

    /// The column mapping of `shape` onto table `t` (checked once per shape).
    fn shape_map(&mut self, t: usize, shape: &Arc<Shape>) -> Result<&ShapeMap> {
        let fresh = match &self.shapes[t] {
            Some(m) => !Arc::ptr_eq(&m.shape, shape) && *m.shape != **shape,
            None => true,
        };
        if fresh {
            let table = &self.target.tables[t];
            let find = |name: &str| shape.columns.iter().position(|c| c.name == name);
            let mut cols = Vec::new();
            for c in table.copied_columns() {
                cols.push(find(&c.name).ok_or_else(|| schema_changed(&table.id))?);
            }
            // a column the set does not know: the table changed since the full set
            for c in &shape.columns {
                if table.column(&c.name).is_none() {
                    return Err(schema_changed(&table.id));
                }
            }
            let mut key = Vec::new();
            for k in &table.primary_key {
                key.push(find(k).ok_or_else(|| schema_changed(&table.id))?);
            }
            self.shapes[t] = Some(ShapeMap {
                shape: shape.clone(),
                cols,
                key,
            });
        }
        Ok(self.shapes[t].as_ref().expect("just set"))
    }

    /// Takes one log event (other than the transaction boundaries).
    pub async fn event(&mut self, ev: Event) -> Result<()> {
        match ev {
            Event::Row { shape, op } => {
                let Some(t) = self.table(&shape.table) else {
                    return Ok(());
                };
                let m = self.shape_map(t, &shape)?;
                let (cols, key) = (m.cols.clone(), m.key.clone());
                match op {
                    RowOp::Insert(row) => {
                        let cells: Vec<Cell> =
                            cols.iter().map(|&i| Cell::Value(row[i].clone())).collect();
                        let k: Vec<Value> = key.iter().map(|&i| row[i].clone()).collect();
                        self.put(t, &k, cells).await?;
                    }
                    RowOp::Update { old, new } => {
                        let mut cells: Vec<Cell> = cols.iter().map(|&i| new[i].clone()).collect();
                        let old_key: Option<Vec<Value>> =
                            old.map(|o| key.iter().map(|&i| o[i].clone()).collect());
                        let new_key: Vec<Value> = key
                            .iter()
                            .enumerate()
                            .map(|(n, &i)| match &new[i] {
                                Cell::Value(v) => v.clone(),
                                // an unchanged key cell: the old key's value
                                Cell::Unchanged => old_key
                                    .as_ref()
                                    .map(|o| o[n].clone())
                                    .unwrap_or(Value::Null),
                            })
                            .collect();
                        if let Some(ok) = old_key {
                            let old_bytes = self.key_bytes(t, &ok);
                            if old_bytes != self.key_bytes(t, &new_key) {
                                // the row moves to another key: a cell the source did
                                // not send (an unchanged TOASTed value) comes from the
                                // row's image at its old key, which must be at hand
                                if cells.contains(&Cell::Unchanged) {
                                    let Some(Change::Put(prior)) =
                                        self.pending[t].map.get(&old_bytes)
                                    else {
                                        return Err(moved_unsent(&self.target.tables[t].id));
                                    };
                                    for (c, p) in cells.iter_mut().zip(prior) {
                                        if *c == Cell::Unchanged {
                                            *c = p.clone();
                                        }
                                    }
                                    if cells.contains(&Cell::Unchanged) {
                                        return Err(moved_unsent(&self.target.tables[t].id));
                                    }
                                }
                                self.delete(t, ok).await?;
                            }
                        }
                        self.put(t, &new_key, cells).await?;
                    }
                    RowOp::Delete(old) => {
                        let k: Vec<Value> = key.iter().map(|&i| old[i].clone()).collect();
                        self.delete(t, k).await?;
                    }
                }
            }
            Event::Truncate(ids) => {
                if let Some(id) = ids.iter().find(|id| self.index.contains_key(id)) {
                    return Err(Error::definite(format!(
                        "{id} was emptied (TRUNCATE) since the previous set; an incremental \
                         set holds row changes only"
                    ))
                    .with_hint(
                        "take a full backup (`ferry backup now CLUSTER` without --incremental)",
                    ));
                }
            }
            Event::Reshape { old, new } => {
                if self.index.contains_key(&old.table) || self.index.contains_key(&new.table) {
                    return Err(schema_changed(&new.table));
                }
            }
            Event::Ddl {
                schema, statement, ..
            } => {
                let text = statement.to_lowercase();
                if let Some(t) = self.target.tables.iter().find(|t| {
                    (t.id.schema == schema || text.contains(&t.id.schema.to_lowercase()))
                        && text.contains(&t.id.name.to_lowercase())
                }) {
                    return Err(schema_changed(&t.id));
                }
            }
            Event::Begin { .. } | Event::Commit { .. } | Event::Idle { .. } => {}
            Event::InProgress { xid, .. } => {
                return Err(ferry_core::change::in_progress_not_requested(xid))
            }
        }
        Ok(())
    }

    fn key_bytes(&mut self, t: usize, key: &[Value]) -> Vec<u8> {
        self.buf.clear();
        for (v, ty) in key.iter().zip(&self.key_types[t]) {
            canonical(v, ty, &mut self.buf);
            self.buf.push(0x1f);
        }
        self.buf.clone()
    }

    async fn put(&mut self, t: usize, key: &[Value], mut cells: Vec<Cell>) -> Result<()> {
        let k = self.key_bytes(t, key);
        let p = &mut self.pending[t];
        if let Some(Change::Put(prev)) = p.map.get(&k) {
            for (c, old) in cells.iter_mut().zip(prev) {
                if *c == Cell::Unchanged {
                    *c = old.clone();
                }
            }
        }
        let size = k.len() as u64 + cells.iter().map(cell_size).sum::<u64>() + 16;
        p.bytes += size;
        p.map.insert(k, Change::Put(cells));
        self.maybe_flush(t).await
    }

    async fn delete(&mut self, t: usize, key: Vec<Value>) -> Result<()> {
        let k = self.key_bytes(t, &key);
        let p = &mut self.pending[t];
        p.bytes += 2 * k.len() as u64 + 16;
        p.map.insert(k, Change::Delete(key));
        self.maybe_flush(t).await
    }

    async fn maybe_flush(&mut self, t: usize) -> Result<()> {
        if self.pending[t].bytes >= codec::PART_BYTES {
            self.flush(t).await?;
        }
        Ok(())
    }

    /// Stores table `t`'s pending changes as its next piece.
    async fn flush(&mut self, t: usize) -> Result<()> {
        let p = &mut self.pending[t];
        if p.map.is_empty() {
            return Ok(());
        }
        let mut w = FileWriter::changes();
        for c in p.map.values() {
            w.add_change(c)?;
        }
        let packed = w.finish(self.target.repo.cipher.as_ref())?;
        let path = layout::changes_file(t, p.piece);
        let bytes = packed.bytes.len() as u64;
        self.target
            .repo
            .put_file(self.target.cluster, self.target.set, &path, packed.bytes)
            .await?;
        p.stored += packed.count;
        p.piece += 1;
        p.map.clear();
        p.bytes = 0;
        self.files.push(FileEntry {
            path,
            table: t,
            kind: FileKind::Changes,
            lo: None,
            hi: None,
            rows: packed.count,
            bytes,
            raw_bytes: packed.raw_bytes,
            sha256: packed.sha256,
        });
        Ok(())
    }

    /// Stores everything pending; the files and per-table counts.
    pub async fn finish(mut self) -> Result<(Vec<FileEntry>, Vec<u64>)> {
        for t in 0..self.pending.len() {
            self.flush(t).await?;
        }
        let counts = self.pending.iter().map(|p| p.stored).collect();
        Ok((self.files, counts))
    }
}

/// Approximate encoded size of a cell.
fn cell_size(c: &Cell) -> u64 {
    match c {
        Cell::Unchanged => 1,
        Cell::Value(v) => value_size(v),
    }
}

/// Approximate encoded size of a value.
pub(crate) fn value_size(v: &Value) -> u64 {
    2 + match v {
        Value::Null | Value::Bool(_) => 1,
        Value::Int(_) | Value::UInt(_) | Value::F64(_) => 8,
        Value::F32(_) => 4,
        Value::Bytes(b) => b.len() as u64,
        Value::Decimal(s)
        | Value::Text(s)
        | Value::Date(s)
        | Value::Time(s)
        | Value::Timestamp(s)
        | Value::TimestampTz(s)
        | Value::Interval(s)
        | Value::Json(s)
        | Value::Bits(s) => s.len() as u64,
    }
}

/// A table without a primary key, which an incremental set cannot hold.
pub(crate) fn keyless(t: &TableId) -> Error {
    Error::definite(format!(
        "{t} has no primary key: an incremental set cannot say which row a change is of"
    ))
    .with_hint("add a primary key to the table, exclude it (--exclude), or take full backups only")
}

/// A row of `t` got a new key while the log left out one of its values (an
/// unchanged TOASTed value) and no earlier image of the row is at hand: its net
/// change cannot be written exactly.
pub(crate) fn moved_unsent(t: &TableId) -> Error {
    Error::definite(format!(
        "a row of {t} changed its primary key while the source's log left out one of its \
         unchanged large values: an incremental set cannot hold the row exactly"
    ))
    .with_hint("take a full backup (`ferry backup now CLUSTER` without --incremental)")
}

/// The table's columns changed since the set the incremental continues.
pub(crate) fn schema_changed(t: &TableId) -> Error {
    Error::definite(format!(
        "the columns of {t} changed since the previous set of the cluster; an incremental \
         set holds row changes of an unchanged schema only"
    ))
    .with_hint("take a full backup (`ferry backup now CLUSTER` without --incremental)")
}

/// Reads the source's log from `start` until a transaction end (or quiet point) at
/// or after `goal`, whole transactions only, into `net`; then stores what is left.
pub(crate) async fn read_log(
    spec: &TaskSpec,
    start: &Position,
    goal: &Position,
    mut net: NetChanges<'_>,
) -> Result<LogRead> {
    let mut position = start.clone();
    let mut commit_time_us = None;
    if !start.reached(goal) {
        let capture = ferry_engine::factory::connector(spec.source.engine);
        let (tx, mut rx) = mpsc::channel::<Event>(1024);
        // the log before `start` is in an earlier set already: the source may drop it
        let (_ack_tx, ack_rx) = watch::channel(Some(start.clone()));
        let tables: Vec<Table> = net.target.tables.to_vec();
        let stream = capture.stream(
            spec,
            start,
            tables,
            &tx,
            ack_rx,
            ferry_core::change::StreamFeatures::default(),
        );
        let consume = async {
            while let Some(ev) = rx.recv().await {
                match ev {
                    Event::Commit {
                        position: p,
                        commit_time_us: ct,
                    } => {
                        position = p;
                        if ct.is_some() {
                            commit_time_us = ct;
                        }
                        if position.reached(goal) {
                            return Ok(());
                        }
                    }
                    Event::Idle { position: p } => {
                        if p.reached(&position) {
                            position = p;
                        }
                        if position.reached(goal) {
                            return Ok(());
                        }
                    }
                    other => net.event(other).await?,
                }
            }
            Err(Error::transient("the source's change stream ended early"))
        };
        tokio::select! {
            r = stream => {
                r?;
                return Err(Error::transient(format!(
                    "the source's change stream ended before reaching {goal}"
                )));
            }
            r = consume => r?,
        }
    }
    let (files, changes) = net.finish().await?;
    Ok(LogRead {
        position,
        commit_time_us,
        files,
        changes,
    })
}
