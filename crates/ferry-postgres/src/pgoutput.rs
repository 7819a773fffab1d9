//! Parsing of `pgoutput` messages (protocol version 1, and version 2's streaming of
//! in-progress transactions): pure bytes → structs, so the wire format is unit-tested
//! without a server.
//!
//! Protocol version 2 (PostgreSQL 14+, `streaming 'on'`) lets the server send a large
//! transaction before it commits, in *stream blocks*: Stream Start (`S`) … Stream Stop
//! (`E`), each holding changes of one top-level transaction, interleaved with whole
//! `Begin … Commit` transactions; the transaction ends with Stream Commit (`c`) or
//! Stream Abort (`A`, also sent when only a subtransaction rolled back). Inside a block
//! the Relation, Type, Insert, Update, Delete, Truncate and logical Message messages
//! carry the (sub)transaction id before their usual body, so [`parse_in`] must be told
//! whether a block is open.

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
    /// A stream block of an in-progress transaction starts (protocol version 2).
    StreamStart {
        /// The top-level transaction.
        xid: u32,
        /// The first block of this transaction in this stream.
        first: bool,
    },
    /// The current stream block ends.
    StreamStop,
    /// A streamed transaction committed.
    StreamCommit {
        /// The top-level transaction.
        xid: u32,
        /// Commit record LSN.
        commit_lsn: u64,
        /// End of the commit record: where the stream resumes after this transaction.
        end_lsn: u64,
        /// Commit timestamp, microseconds since 2000-01-01.
        commit_ts: i64,
    },
    /// A streamed transaction (`subxid == xid`) or one of its subtransactions rolled
    /// back.
    StreamAbort {
        /// The top-level transaction.
        xid: u32,
        /// The (sub)transaction that rolled back.
        subxid: u32,
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

/// Parses one message outside a stream block (protocol version 1, or between
/// blocks of version 2).
pub fn parse(b: Bytes) -> Result<Message, String> {
    parse_in(b, false).map(|(_, m)| m)
}

/// Parses one message; `in_block`: a stream block is open (after Stream Start, before
/// Stream Stop), where data messages start with their (sub)transaction id, returned
/// first (`None` outside a block).
pub fn parse_in(mut b: Bytes, in_block: bool) -> Result<(Option<u32>, Message), String> {
    need(&b, 1, "the tag")?;
    let tag = b.get_u8();
    let mut xid = None;
    if in_block && matches!(tag, b'R' | b'Y' | b'I' | b'U' | b'D' | b'T' | b'M') {
        need(&b, 4, "the transaction id of a streamed change")?;
        xid = Some(b.get_u32());
    }
    let msg = match tag {
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
        b'S' => {
            need(&b, 5, "STREAM START")?;
            let xid = b.get_u32();
            let first = b.get_u8() == 1;
            Message::StreamStart { xid, first }
        }
        b'E' => Message::StreamStop,
        b'c' => {
            need(&b, 29, "STREAM COMMIT")?;
            let xid = b.get_u32();
            let _flags = b.get_u8();
            let commit_lsn = b.get_u64();
            let end_lsn = b.get_u64();
            let commit_ts = b.get_i64();
            Message::StreamCommit {
                xid,
                commit_lsn,
                end_lsn,
                commit_ts,
            }
        }
        b'A' => {
            // PostgreSQL 16+ adds the abort LSN and time with streaming 'parallel'
            // (protocol version 4) only: version 2 sends the two ids
            need(&b, 8, "STREAM ABORT")?;
            let xid = b.get_u32();
            let subxid = b.get_u32();
            Message::StreamAbort { xid, subxid }
        }
        other => Message::Other(other),
    };
    Ok((xid, msg))
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

    fn insert_body(m: &mut bytes::BytesMut) {
        m.put_u32(42);
        m.put_u8(b'N');
        m.put_i16(1);
        m.put_u8(b't');
        m.put_i32(2);
        m.put_slice(b"17");
    }

    /// Inside a stream block a change starts with its subtransaction's id; outside
    /// one the same bytes are a plain change.
    #[test]
    fn a_streamed_change_carries_its_subtransaction_id() {
        let mut m = bytes::BytesMut::new();
        m.put_u8(b'I');
        m.put_u32(9001);
        insert_body(&mut m);
        let insert = Message::Insert {
            rel: 42,
            new: vec![TupleValue::Text(b"17".to_vec())],
        };
        assert_eq!(
            parse_in(m.freeze(), true).unwrap(),
            (Some(9001), insert.clone())
        );
        let mut m = bytes::BytesMut::new();
        m.put_u8(b'I');
        insert_body(&mut m);
        assert_eq!(parse_in(m.freeze(), false).unwrap(), (None, insert));

        let mut m = bytes::BytesMut::new();
        m.put_u8(b'T');
        m.put_u32(9002);
        m.put_u32(2);
        m.put_u8(0);
        m.put_u32(5);
        m.put_u32(6);
        assert_eq!(
            parse_in(m.freeze(), true).unwrap(),
            (Some(9002), Message::Truncate { rels: vec![5, 6] })
        );

        let mut m = bytes::BytesMut::new();
        m.put_u8(b'R');
        m.put_u32(9003);
        m.put_u32(9);
        m.put_slice(b"public\0t\0");
        m.put_u8(b'd');
        m.put_i16(0);
        match parse_in(m.freeze(), true).unwrap() {
            (Some(9003), Message::Relation { id: 9, name, .. }) => assert_eq!(name, "t"),
            other => panic!("{other:?}"),
        }
        // a change cut inside its id is an error, not a change of another relation
        assert!(parse_in(Bytes::from_static(b"I\0\0"), true).is_err());
    }

    #[test]
    fn stream_start_stop_commit_and_abort() {
        let mut m = bytes::BytesMut::new();
        m.put_u8(b'S');
        m.put_u32(700);
        m.put_u8(1);
        assert_eq!(
            parse(m.freeze()).unwrap(),
            Message::StreamStart {
                xid: 700,
                first: true
            }
        );
        let mut m = bytes::BytesMut::new();
        m.put_u8(b'S');
        m.put_u32(700);
        m.put_u8(0);
        assert_eq!(
            parse_in(m.freeze(), false).unwrap().1,
            Message::StreamStart {
                xid: 700,
                first: false
            }
        );
        assert_eq!(
            parse_in(Bytes::from_static(b"E"), true).unwrap(),
            (None, Message::StreamStop)
        );

        let mut m = bytes::BytesMut::new();
        m.put_u8(b'c');
        m.put_u32(700);
        m.put_u8(0);
        m.put_u64(0x1_0000_0100);
        m.put_u64(0x1_0000_0138);
        m.put_i64(123_456);
        let full = m.freeze();
        assert_eq!(
            parse(full.clone()).unwrap(),
            Message::StreamCommit {
                xid: 700,
                commit_lsn: 0x1_0000_0100,
                end_lsn: 0x1_0000_0138,
                commit_ts: 123_456
            }
        );
        assert!(parse(full.slice(..full.len() - 1)).is_err());

        let mut m = bytes::BytesMut::new();
        m.put_u8(b'A');
        m.put_u32(700);
        m.put_u32(703);
        assert_eq!(
            parse(m.freeze()).unwrap(),
            Message::StreamAbort {
                xid: 700,
                subxid: 703
            }
        );
        assert!(parse(Bytes::from_static(b"A\0\0\x02\xbc")).is_err());
    }
}
