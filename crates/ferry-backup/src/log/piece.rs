//! A log piece: whole source transactions of the change stream, in commit order,
//! as the archive stores them (file kind 3 of [`crate::codec`]: the same header,
//! zstd frame, value encoding and sealing as data files).
//!
//! ```text
//! body    = record* end
//! record  = 0x20 SHAPE    id:varint schema:str name:str nkey:varint idx:varint* columns:str(JSON)
//!         | 0x21 BEGIN    flags:u8 (1 marker, 2 xid) [marker:str] [xid:varint]
//!         | 0x22 INSERT   shape:varint n:varint value*
//!         | 0x23 UPDATE   shape:varint has_old:u8 [n:varint value*] n:varint cell*
//!         | 0x24 DELETE   shape:varint n:varint value*
//!         | 0x25 TRUNCATE n:varint (schema:str name:str)*
//!         | 0x26 RESHAPE  old:varint new:varint
//!         | 0x27 DDL      schema:str statement:str position:str
//!         | 0x28 COMMIT   position:str flags:u8 (1 time) [commit_time_us:zigzag]
//! end     = 0x00 count:varint                       transactions in the piece
//! str     = len:varint utf8
//! ```
//! A piece is self-contained: every shape its rows use is declared in it before
//! its first use, so any piece decodes without the ones before it. Positions are
//! [`Position`]'s text. A piece only ever ends after a COMMIT: it holds whole
//! transactions.

use crate::cipher::Cipher;
use crate::codec::{self, put_value, put_varint, FileWriter, Packed, Reader, KIND_LOG};
use ferry_core::change::{Cell, Event, RowOp, Shape};
use ferry_core::{Column, Error, Position, Result, TableId};
use std::collections::HashMap;
use std::sync::Arc;

const REC_END: u8 = 0x00;
const REC_SHAPE: u8 = 0x20;
const REC_BEGIN: u8 = 0x21;
const REC_INSERT: u8 = 0x22;
const REC_UPDATE: u8 = 0x23;
const REC_DELETE: u8 = 0x24;
const REC_TRUNCATE: u8 = 0x25;
const REC_RESHAPE: u8 = 0x26;
const REC_DDL: u8 = 0x27;
const REC_COMMIT: u8 = 0x28;
const CELL_UNCHANGED: u8 = 0x7F;

fn put_text(out: &mut Vec<u8>, s: &str) {
    put_varint(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

fn zigzag(i: i64) -> u64 {
    ((i << 1) ^ (i >> 63)) as u64
}

/// A piece being written: events go in as the stream delivers them (a large
/// transaction is compressed as it arrives, never held decoded).
pub struct PieceWriter {
    file: FileWriter,
    rec: Vec<u8>,
    /// Shapes declared in this piece, by address (the `Arc` held so an address is
    /// never reused by another shape while the piece is open).
    shapes: HashMap<usize, (u32, Arc<Shape>)>,
    txns: u64,
    rows: u64,
    in_txn: bool,
    /// Position after the last whole transaction.
    end: Option<Position>,
    first_commit_us: Option<i64>,
    last_commit_us: Option<i64>,
}

impl Default for PieceWriter {
    fn default() -> Self {
        PieceWriter::new()
    }
}

impl PieceWriter {
    /// An empty piece.
    pub fn new() -> PieceWriter {
        PieceWriter {
            file: FileWriter::log(),
            rec: Vec::with_capacity(64 * 1024),
            shapes: HashMap::new(),
            txns: 0,
            rows: 0,
            in_txn: false,
            end: None,
            first_commit_us: None,
            last_commit_us: None,
        }
    }

    fn shape_id(&mut self, shape: &Arc<Shape>) -> Result<u32> {
        let addr = Arc::as_ptr(shape) as usize;
        if let Some((id, _)) = self.shapes.get(&addr) {
            return Ok(*id);
        }
        let id = self.shapes.len() as u32;
        let columns = serde_json::to_string(&shape.columns)
            .map_err(|e| Error::definite(format!("encoding a table shape: {e}")))?;
        self.rec.push(REC_SHAPE);
        put_varint(&mut self.rec, u64::from(id));
        put_text(&mut self.rec, &shape.table.schema);
        put_text(&mut self.rec, &shape.table.name);
        put_varint(&mut self.rec, shape.key.len() as u64);
        for k in &shape.key {
            put_varint(&mut self.rec, *k as u64);
        }
        put_text(&mut self.rec, &columns);
        self.shapes.insert(addr, (id, shape.clone()));
        Ok(id)
    }

    fn put_values(&mut self, values: &[ferry_core::Value]) {
        put_varint(&mut self.rec, values.len() as u64);
        for v in values {
            put_value(&mut self.rec, v);
        }
    }

    /// Adds one event of the stream. `Idle` is not stored (the caller records
    /// archive progress itself); everything else must come between a `Begin` and
    /// its `Commit`, except that a stream may start without its `Begin`.
    pub fn event(&mut self, ev: &Event) -> Result<()> {
        match ev {
            Event::Begin { marker, xid } => {
                self.in_txn = true;
                self.rec.push(REC_BEGIN);
                let flags = u8::from(marker.is_some()) | (u8::from(xid.is_some()) << 1);
                self.rec.push(flags);
                if let Some(m) = marker {
                    put_text(&mut self.rec, &m.to_string());
                }
                if let Some(x) = xid {
                    put_varint(&mut self.rec, u64::from(*x));
                }
            }
            Event::Row { shape, op } => {
                self.in_txn = true;
                let id = u64::from(self.shape_id(shape)?);
                match op {
                    RowOp::Insert(row) => {
                        self.rec.push(REC_INSERT);
                        put_varint(&mut self.rec, id);
                        self.put_values(row);
                    }
                    RowOp::Update { old, new } => {
                        self.rec.push(REC_UPDATE);
                        put_varint(&mut self.rec, id);
                        match old {
                            Some(o) => {
                                self.rec.push(1);
                                self.put_values(o);
                            }
                            None => self.rec.push(0),
                        }
                        put_varint(&mut self.rec, new.len() as u64);
                        for c in new {
                            match c {
                                Cell::Unchanged => self.rec.push(CELL_UNCHANGED),
                                Cell::Value(v) => put_value(&mut self.rec, v),
                            }
                        }
                    }
                    RowOp::Delete(key) => {
                        self.rec.push(REC_DELETE);
                        put_varint(&mut self.rec, id);
                        self.put_values(key);
                    }
                }
                self.rows += 1;
            }
            Event::Truncate(tables) => {
                self.in_txn = true;
                self.rec.push(REC_TRUNCATE);
                put_varint(&mut self.rec, tables.len() as u64);
                for t in tables {
                    put_text(&mut self.rec, &t.schema);
                    put_text(&mut self.rec, &t.name);
                }
            }
            Event::Reshape { old, new } => {
                self.in_txn = true;
                let (o, n) = (self.shape_id(old)?, self.shape_id(new)?);
                self.rec.push(REC_RESHAPE);
                put_varint(&mut self.rec, u64::from(o));
                put_varint(&mut self.rec, u64::from(n));
            }
            Event::Ddl {
                schema,
                statement,
                position,
            } => {
                self.in_txn = true;
                self.rec.push(REC_DDL);
                put_text(&mut self.rec, schema);
                put_text(&mut self.rec, statement);
                put_text(&mut self.rec, &position.to_string());
            }
            Event::Commit {
                position,
                commit_time_us,
            } => {
                self.rec.push(REC_COMMIT);
                put_text(&mut self.rec, &position.to_string());
                self.rec.push(u8::from(commit_time_us.is_some()));
                if let Some(t) = commit_time_us {
                    put_varint(&mut self.rec, zigzag(*t));
                    self.first_commit_us.get_or_insert(*t);
                    self.last_commit_us = Some(*t);
                }
                self.txns += 1;
                self.in_txn = false;
                self.end = Some(position.clone());
                let rec = std::mem::take(&mut self.rec);
                self.file.add_encoded(&rec, 1)?;
                self.rec = rec;
                self.rec.clear();
                return Ok(());
            }
            Event::Idle { .. } => return Ok(()),
            Event::InProgress { xid, .. } => {
                return Err(ferry_core::change::in_progress_not_requested(*xid))
            }
        }
        if self.rec.len() >= 64 * 1024 {
            let rec = std::mem::take(&mut self.rec);
            self.file.add_encoded(&rec, 0)?;
            self.rec = rec;
            self.rec.clear();
        }
        Ok(())
    }

    /// Whole transactions in the piece.
    pub fn txns(&self) -> u64 {
        self.txns
    }

    /// Row changes in the piece (including those of an open transaction).
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// True between a transaction's first event and its commit: the piece cannot
    /// be closed now.
    pub fn in_transaction(&self) -> bool {
        self.in_txn
    }

    /// Encoded bytes so far (before compression).
    pub fn raw_bytes(&self) -> u64 {
        self.file.raw_bytes() + self.rec.len() as u64
    }

    /// Position after the last whole transaction.
    pub fn end(&self) -> Option<&Position> {
        self.end.as_ref()
    }

    /// Commit times of the first and last transaction (microseconds since the epoch).
    pub fn commit_times(&self) -> (Option<i64>, Option<i64>) {
        (self.first_commit_us, self.last_commit_us)
    }

    /// Finishes the piece: compressed, sealed when `cipher` is given. Refused in
    /// the middle of a transaction (a piece holds whole transactions only).
    pub fn finish(self, cipher: Option<&Cipher>) -> Result<Packed> {
        if self.in_txn {
            return Err(Error::definite(
                "a log piece closed inside a transaction (a Ferry bug)",
            ));
        }
        let mut file = self.file;
        if !self.rec.is_empty() {
            file.add_encoded(&self.rec, 0)?;
        }
        // the end record counts transactions: FileWriter::finish writes its count
        file.finish(cipher)
    }
}

/// A stored piece being read, event by event.
pub struct PieceReader {
    body: Vec<u8>,
    at: usize,
    what: String,
    shapes: Vec<Option<Arc<Shape>>>,
    txns: u64,
    done: bool,
}

impl PieceReader {
    /// Opens a stored piece (checked: header, version, kind, zstd checksum, the
    /// key when sealed); `what` names it in errors.
    pub fn open(stored: &[u8], cipher: Option<&Cipher>, what: &str) -> Result<PieceReader> {
        Ok(PieceReader {
            body: codec::unpack(stored, cipher, what, KIND_LOG)?,
            at: 0,
            what: what.to_string(),
            shapes: Vec::new(),
            txns: 0,
            done: false,
        })
    }

    /// The next event (`Begin`, `Row`, `Truncate`, `Reshape`, `Ddl`, `Commit`);
    /// `None` after the last, once the end record's count has been checked.
    pub fn next_event(&mut self) -> Result<Option<Event>> {
        if self.done {
            return Ok(None);
        }
        let mut r = Reader {
            b: &self.body,
            at: self.at,
            what: &self.what,
        };
        let out = loop {
            let tag = r.u8()?;
            match tag {
                REC_SHAPE => {
                    let id = r.varint()? as usize;
                    let schema = r.text()?;
                    let name = r.text()?;
                    let n = r.len_hint()?;
                    let mut key = Vec::with_capacity(n);
                    for _ in 0..n {
                        key.push(r.varint()? as usize);
                    }
                    let cols = r.text()?;
                    let columns: Vec<Column> = serde_json::from_str(&cols)
                        .map_err(|e| r.bad(&format!("a table shape that does not decode: {e}")))?;
                    if key.iter().any(|k| *k >= columns.len()) || id > self.shapes.len() {
                        return Err(r.bad("a table shape out of range"));
                    }
                    if id == self.shapes.len() {
                        self.shapes.push(None);
                    }
                    self.shapes[id] = Some(Arc::new(Shape {
                        table: TableId::new(schema, name),
                        columns,
                        key,
                    }));
                }
                REC_BEGIN => {
                    let flags = r.u8()?;
                    let marker = if flags & 1 != 0 {
                        Some(parse_pos(&mut r)?)
                    } else {
                        None
                    };
                    let xid = if flags & 2 != 0 {
                        Some(r.varint()? as u32)
                    } else {
                        None
                    };
                    break Event::Begin { marker, xid };
                }
                REC_INSERT | REC_UPDATE | REC_DELETE => {
                    let id = r.varint()? as usize;
                    let shape = self
                        .shapes
                        .get(id)
                        .cloned()
                        .flatten()
                        .ok_or_else(|| r.bad("a row of an undeclared table shape"))?;
                    let op = match tag {
                        REC_INSERT => RowOp::Insert(values(&mut r)?),
                        REC_DELETE => RowOp::Delete(values(&mut r)?),
                        _ => {
                            let old = match r.u8()? {
                                0 => None,
                                _ => Some(values(&mut r)?),
                            };
                            let n = r.len_hint()?;
                            let mut new = Vec::with_capacity(n);
                            for _ in 0..n {
                                if r.peek()? == CELL_UNCHANGED {
                                    r.at += 1;
                                    new.push(Cell::Unchanged);
                                } else {
                                    new.push(Cell::Value(r.value()?));
                                }
                            }
                            RowOp::Update { old, new }
                        }
                    };
                    break Event::Row { shape, op };
                }
                REC_TRUNCATE => {
                    let n = r.len_hint()?;
                    let mut ids = Vec::with_capacity(n);
                    for _ in 0..n {
                        let schema = r.text()?;
                        let name = r.text()?;
                        ids.push(TableId::new(schema, name));
                    }
                    break Event::Truncate(ids);
                }
                REC_RESHAPE => {
                    let get = |r: &mut Reader| -> Result<Arc<Shape>> {
                        let id = r.varint()? as usize;
                        self.shapes
                            .get(id)
                            .cloned()
                            .flatten()
                            .ok_or_else(|| r.bad("a reshape of an undeclared table shape"))
                    };
                    let old = get(&mut r)?;
                    let new = get(&mut r)?;
                    break Event::Reshape { old, new };
                }
                REC_DDL => {
                    let schema = r.text()?;
                    let statement = r.text()?;
                    let position = parse_pos(&mut r)?;
                    break Event::Ddl {
                        schema,
                        statement,
                        position,
                    };
                }
                REC_COMMIT => {
                    let position = parse_pos(&mut r)?;
                    let commit_time_us = match r.u8()? {
                        0 => None,
                        _ => {
                            let z = r.varint()?;
                            Some(((z >> 1) as i64) ^ -((z & 1) as i64))
                        }
                    };
                    self.txns += 1;
                    break Event::Commit {
                        position,
                        commit_time_us,
                    };
                }
                REC_END => {
                    r.end(self.txns)?;
                    self.done = true;
                    self.at = r.at;
                    return Ok(None);
                }
                t => return Err(r.bad(&format!("unknown record tag 0x{t:02x} in a log piece"))),
            }
        };
        self.at = r.at;
        Ok(Some(out))
    }
}

fn values(r: &mut Reader) -> Result<Vec<ferry_core::Value>> {
    let n = r.len_hint()?;
    let mut v = Vec::with_capacity(n);
    for _ in 0..n {
        v.push(r.value()?);
    }
    Ok(v)
}

fn parse_pos(r: &mut Reader) -> Result<Position> {
    let t = r.text()?;
    Position::parse(&t).map_err(|e| r.bad(&e.message))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_core::{LogicalType, Value};

    fn shape() -> Arc<Shape> {
        Arc::new(Shape {
            table: TableId::new("app", "t"),
            columns: vec![
                Column::new(
                    "id",
                    "bigint",
                    LogicalType::Int {
                        bytes: 8,
                        unsigned: false,
                    },
                ),
                Column::new("v", "text", LogicalType::Text),
            ],
            key: vec![0],
        })
    }

    #[test]
    fn a_piece_round_trips_whole_transactions() {
        let s = shape();
        let evs = vec![
            Event::Begin {
                marker: Some(Position::PgLsn(0x100)),
                xid: Some(7),
            },
            Event::Row {
                shape: s.clone(),
                op: RowOp::Insert(vec![Value::Int(1), Value::Text("a".into())]),
            },
            Event::Row {
                shape: s.clone(),
                op: RowOp::Update {
                    old: None,
                    new: vec![Cell::Value(Value::Int(1)), Cell::Unchanged],
                },
            },
            Event::Row {
                shape: s.clone(),
                op: RowOp::Delete(vec![Value::Int(1)]),
            },
            Event::Commit {
                position: Position::PgLsn(0x180),
                commit_time_us: Some(1_764_000_000_000_000),
            },
            Event::Begin {
                marker: None,
                xid: None,
            },
            Event::Truncate(vec![TableId::new("app", "t")]),
            Event::Commit {
                position: Position::PgLsn(0x200),
                commit_time_us: None,
            },
        ];
        let mut w = PieceWriter::new();
        for e in &evs {
            assert!(w.event(e).is_ok());
        }
        assert_eq!((w.txns(), w.rows()), (2, 3));
        assert_eq!(w.end(), Some(&Position::PgLsn(0x200)));
        let packed = w.finish(None).expect("finishes");
        let mut r = PieceReader::open(&packed.bytes, None, "piece").expect("opens");
        let mut back = Vec::new();
        while let Some(e) = r.next_event().expect("decodes") {
            back.push(e);
        }
        assert_eq!(back.len(), evs.len());
        assert_eq!(format!("{back:?}"), format!("{evs:?}"));
    }

    #[test]
    fn a_piece_is_not_closed_inside_a_transaction() {
        let mut w = PieceWriter::new();
        assert!(w
            .event(&Event::Begin {
                marker: None,
                xid: None
            })
            .is_ok());
        assert!(w.in_transaction());
        assert!(w.finish(None).is_err());
    }
}
