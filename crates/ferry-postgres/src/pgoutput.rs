//! Parsing of `pgoutput` (protocol version 1) messages: pure bytes → structs, so the
//! wire format is unit-tested without a server.

use bytes::{Buf, Bytes};

/// One column value of a tuple.
#[derive(Debug, Clone, PartialEq)]
pub enum TupleValue {
    /// SQL NULL.
    Null,
    /// A TOASTed value that did not change and was not sent.
    Unchanged,
    /// The value in the type's text output form.
    Text(Vec<u8>),
}

/// A relation's column as the log describes it.
#[derive(Debug, Clone, PartialEq)]
pub struct RelColumn {
    /// Part of the replica identity.
    pub key: bool,
    /// Column name.
    pub name: String,
    /// Type OID.
    pub type_oid: u32,
}

/// A decoded `pgoutput` message.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    /// Transaction start: LSN of its commit record, commit time (PG epoch µs).
    Begin {
        /// Commit record LSN.
        final_lsn: u64,
        /// Commit timestamp, microseconds since 2000-01-01.
        commit_ts: i64,
        /// Transaction id (what a snapshot's visibility is decided on).
        xid: u32,
    },
    /// Transaction end.
    Commit {
        /// Commit record LSN.
        commit_lsn: u64,
        /// End of the commit record: where the stream resumes after this transaction.
        end_lsn: u64,
        /// Commit timestamp, microseconds since 2000-01-01.
        commit_ts: i64,
    },
    /// Describes a table before its first change in a stream and after it changes.
    Relation {
        /// Relation OID.
        id: u32,
        /// Schema.
        schema: String,
        /// Table.
        name: String,
        /// `d`efault, `n`othing, `f`ull, `i`ndex.
        replica_identity: u8,
        /// Columns (generated columns are not sent).
        columns: Vec<RelColumn>,
    },
    /// New row.
    Insert {
        /// Relation OID.
        rel: u32,
        /// New tuple.
        new: Vec<TupleValue>,
    },
    /// Changed row; `old` is the identity (`K`) or whole row (`O`) when sent.
    Update {
        /// Relation OID.
        rel: u32,
        /// Old tuple, if sent.
        old: Option<Vec<TupleValue>>,
        /// New tuple.
        new: Vec<TupleValue>,
    },
    /// Removed row (identity or whole old row).
    Delete {
        /// Relation OID.
        rel: u32,
        /// Old tuple.
        old: Vec<TupleValue>,
    },
    /// Tables truncated.
    Truncate {
        /// Relation OIDs.
        rels: Vec<u32>,
    },
    /// Anything Ferry does not act on (origin, type, logical message).
    Other(u8),
}

fn short(what: &str) -> String {
    format!("pgoutput message truncated while reading {what}")
}

fn need(b: &Bytes, n: usize, what: &str) -> Result<(), String> {
    if b.remaining() < n {
        Err(short(what))
    } else {
        Ok(())
    }
}

fn cstring(b: &mut Bytes) -> Result<String, String> {
    let end = b
        .iter()
        .position(|c| *c == 0)
        .ok_or_else(|| short("a name"))?;
    let s = String::from_utf8_lossy(&b[..end]).into_owned();
    b.advance(end + 1);
    Ok(s)
}

fn tuple(b: &mut Bytes) -> Result<Vec<TupleValue>, String> {
    need(b, 2, "a tuple")?;
    let n = b.get_i16();
    let mut out = Vec::with_capacity(n.max(0) as usize);
    for _ in 0..n {
        need(b, 1, "a column")?;
        match b.get_u8() {
            b'n' => out.push(TupleValue::Null),
            b'u' => out.push(TupleValue::Unchanged),
            b't' | b'b' => {
                need(b, 4, "a value length")?;
                let len = b.get_i32() as usize;
                need(b, len, "a value")?;
                out.push(TupleValue::Text(b.split_to(len).to_vec()));
            }
            other => return Err(format!("unknown tuple column kind {:?}", other as char)),
        }
    }
    Ok(out)
}

/// Parses one message.
pub fn parse(mut b: Bytes) -> Result<Message, String> {
    need(&b, 1, "the tag")?;
    let tag = b.get_u8();
    Ok(match tag {
        b'B' => {
            need(&b, 20, "BEGIN")?;
            let final_lsn = b.get_u64();
            let commit_ts = b.get_i64();
            let xid = b.get_u32();
            Message::Begin {
                final_lsn,
                commit_ts,
                xid,
            }
        }
        b'C' => {
            need(&b, 25, "COMMIT")?;
            let _flags = b.get_u8();
            let commit_lsn = b.get_u64();
            let end_lsn = b.get_u64();
            let commit_ts = b.get_i64();
            Message::Commit {
                commit_lsn,
                end_lsn,
                commit_ts,
            }
        }
        b'R' => {
            need(&b, 4, "RELATION")?;
            let id = b.get_u32();
            let schema = cstring(&mut b)?;
            let name = cstring(&mut b)?;
            need(&b, 3, "RELATION")?;
            let replica_identity = b.get_u8();
            let n = b.get_i16();
            let mut columns = Vec::with_capacity(n.max(0) as usize);
            for _ in 0..n {
                need(&b, 1, "a column")?;
                let flags = b.get_u8();
                let name = cstring(&mut b)?;
                need(&b, 8, "a column type")?;
                let type_oid = b.get_u32();
                let _typmod = b.get_i32();
                columns.push(RelColumn {
                    key: flags & 1 == 1,
                    name,
                    type_oid,
                });
            }
            Message::Relation {
                id,
                schema,
                name,
                replica_identity,
                columns,
            }
        }
        b'I' => {
            need(&b, 5, "INSERT")?;
            let rel = b.get_u32();
            let _n = b.get_u8();
            Message::Insert {
                rel,
                new: tuple(&mut b)?,
            }
        }
        b'U' => {
            need(&b, 5, "UPDATE")?;
            let rel = b.get_u32();
            let mut kind = b.get_u8();
            let mut old = None;
            if kind == b'K' || kind == b'O' {
                old = Some(tuple(&mut b)?);
                need(&b, 1, "UPDATE")?;
                kind = b.get_u8();
            }
            if kind != b'N' {
                return Err(format!(
                    "UPDATE without a new tuple (found {:?})",
                    kind as char
                ));
            }
            Message::Update {
                rel,
                old,
                new: tuple(&mut b)?,
            }
        }
        b'D' => {
            need(&b, 5, "DELETE")?;
            let rel = b.get_u32();
            let _kind = b.get_u8();
            Message::Delete {
                rel,
                old: tuple(&mut b)?,
            }
        }
        b'T' => {
            need(&b, 5, "TRUNCATE")?;
            let n = b.get_u32() as usize;
            let _options = b.get_u8();
            need(&b, n * 4, "TRUNCATE")?;
            Message::Truncate {
                rels: (0..n).map(|_| b.get_u32()).collect(),
            }
        }
        other => Message::Other(other),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BufMut;

    #[test]
    fn update_with_key_and_unchanged_toast() {
        let mut m = bytes::BytesMut::new();
        m.put_u8(b'U');
        m.put_u32(42);
        m.put_u8(b'K');
        m.put_i16(2);
        m.put_u8(b't');
        m.put_i32(1);
        m.put_slice(b"7");
        m.put_u8(b'n');
        m.put_u8(b'N');
        m.put_i16(2);
        m.put_u8(b't');
        m.put_i32(1);
        m.put_slice(b"8");
        m.put_u8(b'u');
        assert_eq!(
            parse(m.freeze()).unwrap(),
            Message::Update {
                rel: 42,
                old: Some(vec![TupleValue::Text(b"7".to_vec()), TupleValue::Null]),
                new: vec![TupleValue::Text(b"8".to_vec()), TupleValue::Unchanged],
            }
        );
    }

    #[test]
    fn relation_and_truncated_input() {
        let mut m = bytes::BytesMut::new();
        m.put_u8(b'R');
        m.put_u32(9);
        m.put_slice(b"public\0t\0");
        m.put_u8(b'd');
        m.put_i16(1);
        m.put_u8(1);
        m.put_slice(b"id\0");
        m.put_u32(20);
        m.put_i32(-1);
        let full = m.freeze();
        match parse(full.clone()).unwrap() {
            Message::Relation { columns, name, .. } => {
                assert_eq!(name, "t");
                assert!(columns[0].key);
                assert_eq!(columns[0].name, "id");
            }
            other => panic!("{other:?}"),
        }
        assert!(parse(full.slice(..full.len() - 3)).is_err());
    }
}
