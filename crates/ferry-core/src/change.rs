//! Row changes read from a source's log, in the one shape every applier understands.
//!
//! Sources emit a stream of [`Event`]s in commit order: `Begin`, the transaction's
//! rows, then `Commit` carrying the position *after* the transaction. Appliers never
//! hold a whole transaction: a million-row transaction flows through a bounded
//! channel and is committed on the target only when its `Commit` arrives, together
//! with that position.

use crate::{Column, Position, TableId, Value};
use std::sync::Arc;

/// The columns of a source table as its log describes them, and which of them
/// identify a row (primary key or replica identity; empty = the whole row).
#[derive(Debug, Clone, PartialEq)]
pub struct Shape {
    /// Source table.
    pub table: TableId,
    /// Columns in log order (names and logical types).
    pub columns: Vec<Column>,
    /// Indexes into `columns` of the identifying columns; empty when the table has no
    /// key, in which case rows are matched on every column, one row at a time.
    pub key: Vec<usize>,
}

impl Shape {
    /// Positions of the columns used to find a row on the target.
    pub fn match_columns(&self) -> Vec<usize> {
        if self.key.is_empty() {
            (0..self.columns.len()).collect()
        } else {
            self.key.clone()
        }
    }
}

/// A column value in an update's new image.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    /// The new value.
    Value(Value),
    /// Not sent by the source because it did not change (PostgreSQL unchanged TOAST):
    /// the target keeps its current value; it must never be written as NULL.
    Unchanged,
}

/// What happened to one row.
#[derive(Debug, Clone, PartialEq)]
pub enum RowOp {
    /// A new row.
    Insert(Vec<Value>),
    /// A changed row. `old` holds the previous identity (or whole row) when the
    /// source sent it — always for MySQL, for PostgreSQL when the key changed or the
    /// replica identity is FULL; `None` means the key is unchanged and read from `new`.
    Update {
        /// Previous image (key columns at least), when sent.
        old: Option<Vec<Value>>,
        /// New image.
        new: Vec<Cell>,
    },
    /// A removed row, identified by its key columns (or every column).
    Delete(Vec<Value>),
}

/// One item of the change stream.
#[derive(Debug, Clone)]
pub enum Event {
    /// A source transaction starts. `marker` is a log position inside it: a snapshot
    /// taken at position `W` contains the transaction exactly when `marker < W`
    /// (PostgreSQL: its commit record's LSN; binlog: the offset of one of its events).
    Begin {
        /// Position inside the transaction, when known.
        marker: Option<Position>,
        /// PostgreSQL transaction id: a chunk read under an MVCC snapshot holds the
        /// transaction exactly when the snapshot sees this id.
        xid: Option<u32>,
    },
    /// A row changed.
    Row {
        /// The table's shape at this point of the log.
        shape: Arc<Shape>,
        /// The change.
        op: RowOp,
    },
    /// Tables emptied (PostgreSQL TRUNCATE, MySQL `TRUNCATE` statement).
    Truncate(Vec<TableId>),
    /// A table's columns changed (PostgreSQL: a Relation message differing from the
    /// previous one; MySQL: after an `ALTER TABLE` in the binlog).
    Reshape {
        /// Shape before.
        old: Arc<Shape>,
        /// Shape after.
        new: Arc<Shape>,
    },
    /// A schema statement the engine must follow or refuse (MySQL binlog DDL).
    Ddl {
        /// Default schema the statement ran in.
        schema: String,
        /// Statement text.
        statement: String,
        /// Position after the statement.
        position: Position,
    },
    /// The transaction is complete; `position` is where the log continues after it.
    Commit {
        /// Resume point after this transaction.
        position: Position,
        /// Source commit time, microseconds since the Unix epoch, when known.
        commit_time_us: Option<i64>,
    },
    /// The source has nothing more to send up to `position` (idle keepalive): the
    /// applier may acknowledge it once everything before it is applied.
    Idle {
        /// Source log end.
        position: Position,
    },
    /// Part of a transaction still running on the source (PostgreSQL protocol v2
    /// streaming of large in-progress transactions). Sent only to a reader that asked
    /// for it ([`StreamFeatures::in_progress`]): it lets the applier start writing a
    /// large transaction before the source commits it, instead of waiting for the
    /// server to decode it whole. Parts of several such transactions, and ordinary
    /// `Begin … Commit` transactions, may arrive interleaved.
    InProgress {
        /// The top-level transaction.
        xid: u32,
        /// What happened in it.
        part: InProgressPart,
    },
}

/// One item of a transaction still in progress on the source (see [`Event::InProgress`]).
#[derive(Debug, Clone)]
pub enum InProgressPart {
    /// A row changed in subtransaction `subxid` (`subxid == xid`: the top level).
    Row {
        /// The (sub)transaction that made the change (a savepoint on the source).
        subxid: u32,
        /// The table's shape at this point of the log.
        shape: Arc<Shape>,
        /// The change.
        op: RowOp,
    },
    /// Tables emptied in subtransaction `subxid`.
    Truncate {
        /// The (sub)transaction.
        subxid: u32,
        /// The tables.
        tables: Vec<TableId>,
    },
    /// Subtransaction `subxid` rolled back (its changes, and those of its own
    /// subtransactions, are undone); `subxid == xid`: the whole transaction aborted.
    Abort {
        /// The (sub)transaction that rolled back.
        subxid: u32,
    },
    /// The transaction committed: it takes its place in commit order here.
    Commit {
        /// Resume point after this transaction.
        position: Position,
        /// Source commit time, microseconds since the Unix epoch, when known.
        commit_time_us: Option<i64>,
    },
}

/// The error of a consumer that received [`Event::InProgress`] without asking for it
/// (a reader bug: the stream cannot be applied as a whole-transaction stream).
pub fn in_progress_not_requested(xid: u32) -> crate::Error {
    crate::Error::definite(format!(
        "the log reader sent part of the in-progress transaction {xid}, which was not asked for"
    ))
}

/// What a log reader may send beyond whole transactions in commit order.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StreamFeatures {
    /// Parts of large transactions before they commit ([`Event::InProgress`]), where
    /// the source can send them (PostgreSQL 14+ with pgoutput protocol version 2);
    /// ignored by sources that cannot.
    pub in_progress: bool,
}
