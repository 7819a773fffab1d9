//! How rows and row changes are laid out in a file: a versioned binary encoding of
//! Ferry's values, compressed with zstd as they are added, then sealed with the
//! repository cipher when there is one. The SHA-256 is of the stored bytes, so a
//! copy is checked without the key.
//!
//! # File format (version 1)
//!
//! ```text
//! stored  = plain | sealed(plain)          sealed: see crate::cipher (FZX1, nonce, AEAD)
//! plain   = "FZR" version:u8=1 kind:u8 compression:u8=1   header, 6 bytes
//!           zstd-frame(body)                              with zstd's content checksum
//! kind    = 1 rows (data file) | 2 changes (changes file) | 3 log piece (crate::log::piece)
//! body    = record* end
//! record  = 0x01 ncols:varint value*       (rows files)  a row
//!         | 0x02 ncols:varint cell*        (changes)     Put: the row's final image
//!         | 0x03 nkeys:varint value*       (changes)     Delete: the key values
//! end     = 0x00 count:varint                            number of records, then nothing
//! cell    = 0x7F (Unchanged) | value
//! value   = 0x00 Null | 0x01 false | 0x02 true
//!         | 0x03 Int zigzag-varint | 0x04 UInt varint
//!         | 0x05 F32 4 bytes LE bits | 0x06 F64 8 bytes LE bits   (bit-exact: NaN, -0.0)
//!         | tag len:varint utf8     tag: 0x07 Decimal 0x08 Text 0x0A Date 0x0B Time
//!                                        0x0C Timestamp 0x0D TimestampTz 0x0E Interval
//!                                        0x0F Json 0x10 Bits
//!         | 0x09 len:varint bytes   Bytes
//! varint  = unsigned LEB128 (at most 10 bytes)
//! ```
//!
//! Readers refuse a newer `version` (and unknown tags) with an error naming the
//! file; a new value kind or record kind means a new version.

use crate::cipher::{self, Cipher};
use bytes::Bytes;
use ferry_core::change::Cell;
use ferry_core::{Error, Result, Value};
use std::io::Write;

/// A writer cuts a file when its encoded rows reach this many bytes: every file
/// is small enough to hold, seal and upload in one piece.
pub const PART_BYTES: u64 = 8 * 1024 * 1024;

/// The first bytes of every (unsealed) file.
pub const MAGIC: &[u8; 3] = b"FZR";

/// The file-format version this Ferry writes (and the newest it reads).
pub const VERSION: u8 = 1;

/// The zstd level: fast, and most of the gain of higher levels for row data.
pub const ZSTD_LEVEL: i32 = 3;

const KIND_ROWS: u8 = 1;
const KIND_CHANGES: u8 = 2;
/// A log piece ([`crate::log::piece`]).
pub(crate) const KIND_LOG: u8 = 3;
const COMPRESSION_ZSTD: u8 = 1;

const REC_END: u8 = 0x00;
const REC_ROW: u8 = 0x01;
const REC_PUT: u8 = 0x02;
const REC_DELETE: u8 = 0x03;
const CELL_UNCHANGED: u8 = 0x7F;

/// One net row change of an incremental (or of a resumed full backup's catch-up).
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// The row's final image (copied columns, in order): insert, or update the
    /// row with this key; an `Unchanged` cell keeps the target's value.
    Put(Vec<Cell>),
    /// The row with these key values (the table's key columns, in order) is gone.
    Delete(Vec<Value>),
}

/// A file being written.
pub struct FileWriter {
    count: u64,
    raw: u64,
    kind: u8,
    enc: zstd::stream::write::Encoder<'static, Vec<u8>>,
    scratch: Vec<u8>,
}

/// A finished file, ready to store.
#[derive(Debug, Clone)]
pub struct Packed {
    /// What is stored.
    pub bytes: Bytes,
    /// SHA-256 of `bytes`, lower-case hex.
    pub sha256: String,
    /// Encoded bytes before compression.
    pub raw_bytes: u64,
    /// Rows or changes in it.
    pub count: u64,
}

impl FileWriter {
    /// A data file (rows).
    pub fn rows() -> FileWriter {
        FileWriter::new(KIND_ROWS)
    }

    /// A changes file.
    pub fn changes() -> FileWriter {
        FileWriter::new(KIND_CHANGES)
    }

    /// A log piece (records encoded by [`crate::log::piece`]).
    pub(crate) fn log() -> FileWriter {
        FileWriter::new(KIND_LOG)
    }

    /// Appends records encoded elsewhere (a log piece's), counting `records`.
    pub(crate) fn add_encoded(&mut self, encoded: &[u8], records: u64) -> Result<()> {
        self.scratch.extend_from_slice(encoded);
        self.count += records;
        if self.scratch.len() >= 64 * 1024 {
            self.flush_scratch()?;
        }
        Ok(())
    }

    fn new(kind: u8) -> FileWriter {
        let mut out = Vec::with_capacity(64 * 1024);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&[VERSION, kind, COMPRESSION_ZSTD]);
        let mut enc = zstd::stream::write::Encoder::new(out, ZSTD_LEVEL)
            .expect("a zstd encoder into memory always starts");
        enc.include_checksum(true)
            .expect("zstd accepts the checksum flag");
        FileWriter {
            count: 0,
            raw: 0,
            kind,
            enc,
            scratch: Vec::with_capacity(64 * 1024),
        }
    }

    fn flush_scratch(&mut self) -> Result<()> {
        self.raw += self.scratch.len() as u64;
        self.enc
            .write_all(&self.scratch)
            .map_err(|e| Error::definite(format!("compressing a backup file: {e}")))?;
        self.scratch.clear();
        Ok(())
    }

    /// Appends rows.
    pub fn add_rows(&mut self, rows: &[Vec<Value>]) -> Result<()> {
        if self.kind != KIND_ROWS {
            return Err(Error::definite(
                "rows added to a changes file (a Ferry bug)",
            ));
        }
        for row in rows {
            self.scratch.push(REC_ROW);
            put_varint(&mut self.scratch, row.len() as u64);
            for v in row {
                put_value(&mut self.scratch, v);
            }
            self.count += 1;
            if self.scratch.len() >= 64 * 1024 {
                self.flush_scratch()?;
            }
        }
        self.flush_scratch()
    }

    /// Appends one change.
    pub fn add_change(&mut self, c: &Change) -> Result<()> {
        if self.kind != KIND_CHANGES {
            return Err(Error::definite(
                "a change added to a data file (a Ferry bug)",
            ));
        }
        match c {
            Change::Put(cells) => {
                self.scratch.push(REC_PUT);
                put_varint(&mut self.scratch, cells.len() as u64);
                for c in cells {
                    match c {
                        Cell::Unchanged => self.scratch.push(CELL_UNCHANGED),
                        Cell::Value(v) => put_value(&mut self.scratch, v),
                    }
                }
            }
            Change::Delete(key) => {
                self.scratch.push(REC_DELETE);
                put_varint(&mut self.scratch, key.len() as u64);
                for v in key {
                    put_value(&mut self.scratch, v);
                }
            }
        }
        self.count += 1;
        self.flush_scratch()
    }

    /// Rows or changes so far.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Encoded bytes so far (before compression).
    pub fn raw_bytes(&self) -> u64 {
        self.raw
    }

    /// Finishes the file: compressed, sealed when `cipher` is given.
    pub fn finish(mut self, cipher: Option<&Cipher>) -> Result<Packed> {
        self.scratch.push(REC_END);
        put_varint(&mut self.scratch, self.count);
        self.flush_scratch()?;
        let plain = self
            .enc
            .finish()
            .map_err(|e| Error::definite(format!("compressing a backup file: {e}")))?;
        let stored = match cipher {
            Some(c) => c.seal(&plain),
            None => plain,
        };
        Ok(Packed {
            sha256: sha256_hex(&stored),
            bytes: Bytes::from(stored),
            raw_bytes: self.raw,
            count: self.count,
        })
    }
}

/// The rows of a stored data file; `what` names it in errors.
pub fn read_rows(stored: &[u8], cipher: Option<&Cipher>, what: &str) -> Result<Vec<Vec<Value>>> {
    let mut all = Vec::new();
    let mut rows = RowBatches::open(stored, cipher, what)?;
    while let Some(batch) = rows.next_batch(usize::MAX)? {
        all.extend(batch);
    }
    Ok(all)
}

/// The rows of a stored data file, decoded a batch at a time: a reader holds the
/// file's decompressed bytes and one batch of values, never the whole file decoded
/// (decoded values take several times the bytes they were encoded in).
pub struct RowBatches {
    body: Vec<u8>,
    at: usize,
    what: String,
    seen: u64,
    done: bool,
}

impl RowBatches {
    /// Opens (authenticates, decompresses) a stored data file.
    pub fn open(stored: &[u8], cipher: Option<&Cipher>, what: &str) -> Result<RowBatches> {
        Ok(RowBatches {
            body: unpack(stored, cipher, what, KIND_ROWS)?,
            at: 0,
            what: what.to_string(),
            seen: 0,
            done: false,
        })
    }

    /// Rows decoded so far.
    pub fn rows(&self) -> u64 {
        self.seen
    }

    /// The next up to `max` rows; `None` after the last (whose end record has been
    /// checked against the rows seen).
    pub fn next_batch(&mut self, max: usize) -> Result<Option<Vec<Vec<Value>>>> {
        if self.done {
            return Ok(None);
        }
        let mut r = Reader {
            b: &self.body,
            at: self.at,
            what: &self.what,
        };
        let mut rows = Vec::new();
        while rows.len() < max {
            match r.u8()? {
                REC_ROW => {
                    let n = r.len_hint()?;
                    let mut row = Vec::with_capacity(n);
                    for _ in 0..n {
                        row.push(r.value()?);
                    }
                    rows.push(row);
                }
                REC_END => {
                    r.end(self.seen + rows.len() as u64)?;
                    self.done = true;
                    break;
                }
                t => return Err(r.bad(&format!("unknown record tag 0x{t:02x} in a data file"))),
            }
        }
        self.at = r.at;
        self.seen += rows.len() as u64;
        Ok(if rows.is_empty() && self.done {
            None
        } else {
            Some(rows)
        })
    }
}

/// The changes of a stored changes file.
pub fn read_changes(stored: &[u8], cipher: Option<&Cipher>, what: &str) -> Result<Vec<Change>> {
    let body = unpack(stored, cipher, what, KIND_CHANGES)?;
    let mut r = Reader {
        b: &body,
        at: 0,
        what,
    };
    let mut out = Vec::new();
    loop {
        match r.u8()? {
            REC_PUT => {
                let n = r.len_hint()?;
                let mut cells = Vec::with_capacity(n);
                for _ in 0..n {
                    if r.peek()? == CELL_UNCHANGED {
                        r.at += 1;
                        cells.push(Cell::Unchanged);
                    } else {
                        cells.push(Cell::Value(r.value()?));
                    }
                }
                out.push(Change::Put(cells));
            }
            REC_DELETE => {
                let n = r.len_hint()?;
                let mut key = Vec::with_capacity(n);
                for _ in 0..n {
                    key.push(r.value()?);
                }
                out.push(Change::Delete(key));
            }
            REC_END => {
                r.end(out.len() as u64)?;
                return Ok(out);
            }
            t => return Err(r.bad(&format!("unknown record tag 0x{t:02x} in a changes file"))),
        }
    }
}

/// SHA-256 of `b`, lower-case hex.
pub fn sha256_hex(b: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(b))
}

pub(crate) fn damaged(what: &str, why: &str) -> Error {
    Error::definite(format!("{what}: damaged backup file: {why}"))
        .with_hint("`ferry backup verify` checks the set; restore from another set or copy")
}

/// The decompressed body of a stored file (opened with the key when sealed).
pub(crate) fn unpack(
    stored: &[u8],
    cipher: Option<&Cipher>,
    what: &str,
    want: u8,
) -> Result<Vec<u8>> {
    let opened;
    let plain: &[u8] = if cipher::is_sealed(stored) {
        match cipher {
            Some(c) => {
                opened = c.open(stored, what)?;
                &opened
            }
            None => {
                return Err(Error::definite(format!(
                    "{what}: the file is encrypted and no repository key was given"
                ))
                .with_hint(format!(
                    "set {} to the key the repository was created with",
                    crate::repo::KEY_ENV
                )))
            }
        }
    } else {
        if cipher.is_some() && stored.starts_with(MAGIC) {
            return Err(damaged(
                what,
                "the file is not encrypted but the repository is (it was replaced)",
            ));
        }
        stored
    };
    if plain.len() < 6 || &plain[..3] != MAGIC {
        return Err(damaged(what, "not a Ferry backup file (no FZR header)"));
    }
    let (version, kind, compression) = (plain[3], plain[4], plain[5]);
    if version > VERSION || version == 0 {
        return Err(Error::definite(format!(
            "{what}: written in file format {version} but this Ferry reads format {VERSION} at most"
        ))
        .with_hint("read it with a newer Ferry"));
    }
    if kind != want {
        let name = |k: u8| match k {
            KIND_ROWS => "a data file".to_string(),
            KIND_CHANGES => "a changes file".to_string(),
            KIND_LOG => "a log piece".to_string(),
            k => format!("a file of unknown kind {k}"),
        };
        return Err(damaged(
            what,
            &format!("it is {} where {} was expected", name(kind), name(want)),
        ));
    }
    if compression != COMPRESSION_ZSTD {
        return Err(damaged(what, &format!("unknown compression {compression}")));
    }
    let mut out = Vec::new();
    let mut dec = zstd::stream::read::Decoder::new(&plain[6..])
        .map_err(|e| damaged(what, &format!("zstd: {e}")))?;
    std::io::copy(&mut dec, &mut out).map_err(|e| damaged(what, &format!("zstd: {e}")))?;
    Ok(out)
}

pub(crate) fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_str(out: &mut Vec<u8>, tag: u8, b: &[u8]) {
    out.push(tag);
    put_varint(out, b.len() as u64);
    out.extend_from_slice(b);
}

pub(crate) fn put_value(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::Null => out.push(0x00),
        Value::Bool(false) => out.push(0x01),
        Value::Bool(true) => out.push(0x02),
        Value::Int(i) => {
            out.push(0x03);
            put_varint(out, ((*i << 1) ^ (*i >> 63)) as u64);
        }
        Value::UInt(u) => {
            out.push(0x04);
            put_varint(out, *u);
        }
        Value::F32(f) => {
            out.push(0x05);
            out.extend_from_slice(&f.to_bits().to_le_bytes());
        }
        Value::F64(f) => {
            out.push(0x06);
            out.extend_from_slice(&f.to_bits().to_le_bytes());
        }
        Value::Decimal(s) => put_str(out, 0x07, s.as_bytes()),
        Value::Text(s) => put_str(out, 0x08, s.as_bytes()),
        Value::Bytes(b) => put_str(out, 0x09, b),
        Value::Date(s) => put_str(out, 0x0A, s.as_bytes()),
        Value::Time(s) => put_str(out, 0x0B, s.as_bytes()),
        Value::Timestamp(s) => put_str(out, 0x0C, s.as_bytes()),
        Value::TimestampTz(s) => put_str(out, 0x0D, s.as_bytes()),
        Value::Interval(s) => put_str(out, 0x0E, s.as_bytes()),
        Value::Json(s) => put_str(out, 0x0F, s.as_bytes()),
        Value::Bits(s) => put_str(out, 0x10, s.as_bytes()),
    }
}

/// A cursor over a decoded body; every read is bounds-checked (garbage gives an
/// error naming the file, never a panic or a huge allocation).
pub(crate) struct Reader<'a> {
    pub(crate) b: &'a [u8],
    pub(crate) at: usize,
    pub(crate) what: &'a str,
}

impl Reader<'_> {
    pub(crate) fn bad(&self, why: &str) -> Error {
        damaged(
            self.what,
            &format!("{why} (at byte {} of the decoded contents)", self.at),
        )
    }

    pub(crate) fn peek(&self) -> Result<u8> {
        self.b
            .get(self.at)
            .copied()
            .ok_or_else(|| self.bad("unexpected end of the file"))
    }

    pub(crate) fn u8(&mut self) -> Result<u8> {
        let v = self.peek()?;
        self.at += 1;
        Ok(v)
    }

    pub(crate) fn take(&mut self, n: usize) -> Result<&[u8]> {
        if self.b.len() - self.at < n {
            return Err(self.bad("unexpected end of the file"));
        }
        let s = &self.b[self.at..self.at + n];
        self.at += n;
        Ok(s)
    }

    pub(crate) fn varint(&mut self) -> Result<u64> {
        let mut v: u64 = 0;
        for i in 0..10 {
            let b = self.u8()?;
            if i == 9 && b > 1 {
                return Err(self.bad("integer too long"));
            }
            v |= u64::from(b & 0x7F) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(self.bad("integer too long"))
    }

    /// A count of items that follow (each at least one byte): larger than what is
    /// left is damage.
    pub(crate) fn len_hint(&mut self) -> Result<usize> {
        let n = self.varint()?;
        if n > (self.b.len() - self.at) as u64 {
            return Err(self.bad("a count larger than the rest of the file"));
        }
        Ok(n as usize)
    }

    pub(crate) fn bytes(&mut self) -> Result<Vec<u8>> {
        let n = self.varint()?;
        if n > (self.b.len() - self.at) as u64 {
            return Err(self.bad("a length larger than the rest of the file"));
        }
        Ok(self.take(n as usize)?.to_vec())
    }

    pub(crate) fn text(&mut self) -> Result<String> {
        let b = self.bytes()?;
        String::from_utf8(b).map_err(|_| self.bad("text that is not UTF-8"))
    }

    pub(crate) fn value(&mut self) -> Result<Value> {
        let tag = self.u8()?;
        Ok(match tag {
            0x00 => Value::Null,
            0x01 => Value::Bool(false),
            0x02 => Value::Bool(true),
            0x03 => {
                let z = self.varint()?;
                Value::Int(((z >> 1) as i64) ^ -((z & 1) as i64))
            }
            0x04 => Value::UInt(self.varint()?),
            0x05 => {
                let b: [u8; 4] = self.take(4)?.try_into().expect("4 bytes");
                Value::F32(f32::from_bits(u32::from_le_bytes(b)))
            }
            0x06 => {
                let b: [u8; 8] = self.take(8)?.try_into().expect("8 bytes");
                Value::F64(f64::from_bits(u64::from_le_bytes(b)))
            }
            0x07 => Value::Decimal(self.text()?),
            0x08 => Value::Text(self.text()?),
            0x09 => Value::Bytes(self.bytes()?),
            0x0A => Value::Date(self.text()?),
            0x0B => Value::Time(self.text()?),
            0x0C => Value::Timestamp(self.text()?),
            0x0D => Value::TimestampTz(self.text()?),
            0x0E => Value::Interval(self.text()?),
            0x0F => Value::Json(self.text()?),
            0x10 => Value::Bits(self.text()?),
            t => return Err(self.bad(&format!("unknown value tag 0x{t:02x}"))),
        })
    }

    pub(crate) fn end(&mut self, seen: u64) -> Result<()> {
        let n = self.varint()?;
        if n != seen {
            return Err(self.bad(&format!("the file says {n} records but holds {seen}")));
        }
        if self.at != self.b.len() {
            return Err(self.bad("bytes after the end record"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn all_kinds() -> Vec<Value> {
        vec![
            Value::Null,
            Value::Bool(true),
            Value::Bool(false),
            Value::Int(i64::MIN),
            Value::Int(-1),
            Value::Int(i64::MAX),
            Value::UInt(u64::MAX),
            Value::F32(f32::NAN),
            Value::F32(-0.0),
            Value::F64(f64::from_bits(0x7ff8_0000_dead_beef)),
            Value::F64(-0.0),
            Value::F64(f64::NEG_INFINITY),
            Value::F64(f64::MIN_POSITIVE / 2.0),
            Value::Decimal("-12.3400".into()),
            Value::Text("é\u{0}x".into()),
            Value::Bytes(vec![0, 255, 1]),
            Value::Date("0000-00-00".into()),
            Value::Time("-838:59:59.000000".into()),
            Value::Timestamp("2024-01-01 00:00:00.5".into()),
            Value::TimestampTz("2024-01-01 00:00:00".into()),
            Value::Interval("1 year 2 mons".into()),
            Value::Json("{\"a\":1}".into()),
            Value::Bits("0101".into()),
            Value::Text(String::new()),
        ]
    }

    /// Bit-exact equality (`Value`'s `PartialEq` says NaN != NaN).
    fn same(a: &Value, b: &Value) -> bool {
        match (a, b) {
            (Value::F32(x), Value::F32(y)) => x.to_bits() == y.to_bits(),
            (Value::F64(x), Value::F64(y)) => x.to_bits() == y.to_bits(),
            _ => a == b,
        }
    }

    fn same_rows(a: &[Vec<Value>], b: &[Vec<Value>]) -> bool {
        a.len() == b.len()
            && a.iter()
                .zip(b)
                .all(|(x, y)| x.len() == y.len() && x.iter().zip(y).all(|(p, q)| same(p, q)))
    }

    fn same_cell(a: &Cell, b: &Cell) -> bool {
        match (a, b) {
            (Cell::Value(x), Cell::Value(y)) => same(x, y),
            (Cell::Unchanged, Cell::Unchanged) => true,
            _ => false,
        }
    }

    fn same_changes(a: &[Change], b: &[Change]) -> bool {
        a.len() == b.len()
            && a.iter().zip(b).all(|(x, y)| match (x, y) {
                (Change::Put(p), Change::Put(q)) => {
                    p.len() == q.len() && p.iter().zip(q).all(|(c, d)| same_cell(c, d))
                }
                (Change::Delete(p), Change::Delete(q)) => {
                    same_rows(std::slice::from_ref(p), std::slice::from_ref(q))
                }
                _ => false,
            })
    }

    #[test]
    fn writers_and_repositories_cross_tasks() {
        fn send<T: Send>() {}
        fn send_sync<T: Send + Sync>() {}
        send::<FileWriter>();
        send_sync::<Packed>();
        send_sync::<crate::repo::Repo>();
        send_sync::<crate::storage::Storage>();
    }

    #[test]
    fn rows_round_trip_every_kind_plain_and_sealed() {
        let rows = vec![all_kinds(), vec![], vec![Value::Int(7)]];
        let mut w = FileWriter::rows();
        w.add_rows(&rows).unwrap();
        w.add_rows(&[]).unwrap();
        assert_eq!(w.count(), 3);
        assert!(w.raw_bytes() > 0);
        let p = w.finish(None).unwrap();
        assert_eq!(p.count, 3);
        assert_eq!(p.sha256, sha256_hex(&p.bytes));
        assert_eq!(&p.bytes[..6], b"FZR\x01\x01\x01");
        assert!(same_rows(&read_rows(&p.bytes, None, "f").unwrap(), &rows));
        let c = Cipher::derive_with("k", b"salt", 10);
        let mut w = FileWriter::rows();
        w.add_rows(&rows).unwrap();
        let s = w.finish(Some(&c)).unwrap();
        assert!(cipher::is_sealed(&s.bytes));
        assert!(same_rows(
            &read_rows(&s.bytes, Some(&c), "f").unwrap(),
            &rows
        ));
        let e = read_rows(&s.bytes, None, "set X: file d.fzr").unwrap_err();
        assert!(
            e.message.contains("d.fzr") && e.message.contains("no repository key"),
            "{e}"
        );
        let e = read_changes(&p.bytes, None, "c.fzr").unwrap_err();
        assert!(
            e.message.contains("c.fzr") && e.message.contains("data file"),
            "{e}"
        );
    }

    #[test]
    fn huge_values_round_trip() {
        let big = "x".repeat(20 * 1024 * 1024);
        let rows = vec![vec![
            Value::Text(big.clone()),
            Value::Bytes(vec![7; 3 * 1024 * 1024]),
        ]];
        let mut w = FileWriter::rows();
        w.add_rows(&rows).unwrap();
        assert!(w.raw_bytes() > 23 * 1024 * 1024);
        let p = w.finish(None).unwrap();
        assert!(p.bytes.len() < 1024 * 1024, "compressed as it went");
        assert_eq!(read_rows(&p.bytes, None, "f").unwrap(), rows);
    }

    #[test]
    fn changes_round_trip_with_unchanged_cells() {
        let ch = vec![
            Change::Put(vec![
                Cell::Value(Value::Int(1)),
                Cell::Unchanged,
                Cell::Value(Value::Null),
            ]),
            Change::Delete(vec![Value::Int(2), Value::Text("k".into())]),
            Change::Put(vec![]),
        ];
        let mut w = FileWriter::changes();
        for c in &ch {
            w.add_change(c).unwrap();
        }
        assert!(w.add_rows(&[vec![]]).is_err());
        let p = w.finish(None).unwrap();
        assert_eq!(read_changes(&p.bytes, None, "f").unwrap(), ch);
        assert!(FileWriter::rows().add_change(&ch[0]).is_err());
    }

    #[test]
    fn garbage_and_damage_are_errors_naming_the_file() {
        let mut w = FileWriter::rows();
        w.add_rows(&[all_kinds()]).unwrap();
        let p = w.finish(None).unwrap();
        for cut in [0, 3, 6, 10, p.bytes.len() - 1] {
            let e = read_rows(&p.bytes[..cut], None, "data/0/000001-000.fzr").unwrap_err();
            assert!(e.message.contains("data/0/000001-000.fzr"), "{e}");
        }
        for i in 0..p.bytes.len() {
            let mut b = p.bytes.to_vec();
            b[i] ^= 0x40;
            // Either refused, or (a zstd header bit that changes nothing) the same
            // rows: never different rows (zstd's content checksum).
            if let Ok(rows) = read_rows(&b, None, "f") {
                assert!(
                    same_rows(&rows, &[all_kinds()]),
                    "flipped byte {i} decoded to {rows:?}"
                );
            }
        }
        let mut newer = p.bytes.to_vec();
        newer[3] = 9;
        let e = read_rows(&newer, None, "f").unwrap_err();
        assert!(e.message.contains("format 9"), "{e}");
        // A well-formed zstd frame of garbage.
        let mut fake = b"FZR\x01\x01\x01".to_vec();
        fake.extend(zstd::encode_all(&[0x01u8, 0xff, 0xff, 0xff, 0xff, 0x0f][..], 1).unwrap());
        assert!(read_rows(&fake, None, "f").is_err());
    }

    fn value() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::Int),
            any::<u64>().prop_map(Value::UInt),
            any::<u32>().prop_map(|b| Value::F32(f32::from_bits(b))),
            any::<u64>().prop_map(|b| Value::F64(f64::from_bits(b))),
            ".*".prop_map(Value::Decimal),
            ".*".prop_map(Value::Text),
            proptest::collection::vec(any::<u8>(), 0..300).prop_map(Value::Bytes),
            ".*".prop_map(Value::Date),
            ".*".prop_map(Value::Time),
            ".*".prop_map(Value::Timestamp),
            ".*".prop_map(Value::TimestampTz),
            ".*".prop_map(Value::Interval),
            ".*".prop_map(Value::Json),
            "[01]*".prop_map(Value::Bits),
        ]
    }

    fn cell() -> impl Strategy<Value = Cell> {
        prop_oneof![1 => Just(Cell::Unchanged), 4 => value().prop_map(Cell::Value)]
    }

    fn change() -> impl Strategy<Value = Change> {
        prop_oneof![
            proptest::collection::vec(cell(), 0..8).prop_map(Change::Put),
            proptest::collection::vec(value(), 0..4).prop_map(Change::Delete),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn prop_rows_round_trip(rows in proptest::collection::vec(proptest::collection::vec(value(), 0..10), 0..40), sealed in any::<bool>()) {
            let key = Cipher::derive_with("prop", b"salt", 10);
            let c = sealed.then_some(&key);
            let mut w = FileWriter::rows();
            for chunk in rows.chunks(7) {
                w.add_rows(chunk).unwrap();
            }
            let p = w.finish(c).unwrap();
            prop_assert_eq!(p.count, rows.len() as u64);
            prop_assert_eq!(cipher::is_sealed(&p.bytes), sealed);
            let back = read_rows(&p.bytes, c, "f").unwrap();
            prop_assert!(same_rows(&back, &rows));
        }

        #[test]
        fn prop_changes_round_trip(ch in proptest::collection::vec(change(), 0..40)) {
            let mut w = FileWriter::changes();
            for c in &ch {
                w.add_change(c).unwrap();
            }
            let p = w.finish(None).unwrap();
            let back = read_changes(&p.bytes, None, "f").unwrap();
            prop_assert!(same_changes(&back, &ch));
        }

        #[test]
        fn prop_garbage_never_panics(b in proptest::collection::vec(any::<u8>(), 0..200), hdr in any::<bool>()) {
            let mut data = if hdr { b"FZR\x01\x01\x01".to_vec() } else { Vec::new() };
            data.extend_from_slice(&b);
            let _ = read_rows(&data, None, "f");
            let _ = read_changes(&data, None, "f");
        }

        #[test]
        fn prop_decoded_garbage_never_panics(b in proptest::collection::vec(any::<u8>(), 0..200)) {
            let mut data = b"FZR\x01\x02\x01".to_vec();
            data.extend(zstd::encode_all(&b[..], 1).unwrap());
            let _ = read_changes(&data, None, "f");
            data[4] = 1;
            let _ = read_rows(&data, None, "f");
        }
    }
}
