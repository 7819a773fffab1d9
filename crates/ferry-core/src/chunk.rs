//! Units of copy work. A table is copied as one or more chunks (primary-key ranges);
//! each chunk's rows and its "done" mark are committed together on the target, so a
//! restarted task skips exactly the chunks that made it.

use crate::{Error, LogicalType, Result, TableId, Value};
use bytes::Bytes;

/// A half-open range `lo <= key < hi` over a single integer key column; `None` ends
/// are unbounded (the first and last chunk), so rows outside the planned min/max are
/// never missed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRange {
    /// The key column.
    pub column: String,
    /// Inclusive lower bound.
    pub lo: Option<i128>,
    /// Exclusive upper bound.
    pub hi: Option<i128>,
}

impl KeyRange {
    /// The SQL predicate for this range, with `quoted_column` already quoted.
    pub fn predicate(&self, quoted_column: &str) -> String {
        match (self.lo, self.hi) {
            (Some(l), Some(h)) => format!("{quoted_column} >= {l} AND {quoted_column} < {h}"),
            (Some(l), None) => format!("{quoted_column} >= {l}"),
            (None, Some(h)) => format!("{quoted_column} < {h}"),
            (None, None) => "TRUE".into(),
        }
    }
}

/// One planned chunk of a table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    /// Source table.
    pub source: TableId,
    /// Target table.
    pub target: TableId,
    /// Index within the table (0-based).
    pub index: u32,
    /// Key range, or `None` for the whole table.
    pub range: Option<KeyRange>,
    /// Already committed on the target.
    pub done: bool,
    /// Rows committed (when done).
    pub rows: u64,
}

/// Splits `[min, max]` into ranges of about `rows_per_chunk` rows given `rows` rows.
/// The first range is unbounded below and the last unbounded above.
pub fn split_range(
    column: &str,
    min: i128,
    max: i128,
    rows: u64,
    rows_per_chunk: u64,
) -> Vec<KeyRange> {
    let n = rows.div_ceil(rows_per_chunk.max(1)).max(1) as i128;
    let span = max - min + 1;
    let n = n.min(span.max(1));
    let step = (span + n - 1) / n;
    let mut out = Vec::with_capacity(n as usize);
    for i in 0..n {
        let lo = if i == 0 { None } else { Some(min + i * step) };
        let hi = if i == n - 1 {
            None
        } else {
            Some(min + (i + 1) * step)
        };
        if let (Some(l), Some(h)) = (lo, hi) {
            if l >= h {
                continue;
            }
        }
        out.push(KeyRange {
            column: column.to_string(),
            lo,
            hi,
        });
    }
    if let Some(last) = out.last_mut() {
        last.hi = None;
    }
    out
}

/// A reader hands a batch over when it holds this many bytes of values, whatever
/// its row count, so a channel of a few batches stays small even for multi-MB rows.
pub const BATCH_BYTES: usize = 4 * 1024 * 1024;

/// What flows from a reader to a writer through a bounded channel.
#[derive(Debug)]
pub enum Batch {
    /// Decoded rows (copied columns, in order).
    Rows(Vec<Vec<Value>>),
    /// Bytes already in the target's load format (same-engine passthrough).
    Raw(Bytes),
}

/// Turns rows into a target's bulk-load byte format.
pub trait RowEncoder: Send + Sync + 'static {
    /// Appends `rows` to `out`; refuses a value the target cannot hold, naming it.
    fn encode(&mut self, rows: &[Vec<Value>], out: &mut Vec<u8>) -> Result<()>;
}

/// Encodes one field of a delimited load format; `Err` says why the value cannot be
/// stored in a column of that type.
pub type FieldEncoder = fn(&Value, &LogicalType, &mut Vec<u8>) -> std::result::Result<(), String>;

/// Tab-separated, newline-terminated rows — the shape of both PostgreSQL's COPY text
/// and the `LOAD DATA` format Ferry uses; the engines differ only in `field`.
pub struct LineEncoder {
    /// Names and types for errors and encoding.
    pub ctx: RowContext,
    /// The engine's field encoding.
    pub field: FieldEncoder,
}

impl RowEncoder for LineEncoder {
    fn encode(&mut self, rows: &[Vec<Value>], out: &mut Vec<u8>) -> Result<()> {
        for row in rows {
            for (i, (v, ty)) in row.iter().zip(&self.ctx.target_types).enumerate() {
                if i > 0 {
                    out.push(b'\t');
                }
                (self.field)(v, ty, out).map_err(|reason| self.ctx.value_error(row, i, &reason))?;
            }
            out.push(b'\n');
        }
        Ok(())
    }
}

/// Context for a value error: which table, column and key.
#[derive(Debug, Clone)]
pub struct RowContext {
    /// Source table.
    pub table: TableId,
    /// Copied column names, in row order.
    pub columns: Vec<String>,
    /// Positions of the primary-key columns within the row.
    pub key_positions: Vec<usize>,
    /// Target column types, in row order.
    pub target_types: Vec<LogicalType>,
}

impl RowContext {
    /// The error for a value the target cannot hold: table, column, key and value.
    pub fn value_error(&self, row: &[Value], col: usize, reason: &str) -> Error {
        let key = if self.key_positions.is_empty() {
            "(table has no primary key)".to_string()
        } else {
            self.key_positions
                .iter()
                .map(|&i| format!("{}={}", self.columns[i], row[i].describe()))
                .collect::<Vec<_>>()
                .join(", ")
        };
        Error::definite(format!(
            "table {}, column {}, row {key}: value {} cannot be stored: {reason}",
            self.table,
            self.columns[col],
            row[col].describe()
        ))
        .with_hint("fix the value on the source, exclude the table (objects.exclude), or see docs/type-mapping.md")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_covers_everything_once() {
        let r = split_range("id", 1, 1000, 1000, 100);
        assert_eq!(r.len(), 10);
        assert_eq!(r[0].lo, None);
        assert_eq!(r[9].hi, None);
        for w in r.windows(2) {
            assert_eq!(w[0].hi, w[1].lo);
        }
        let one = split_range("id", 5, 5, 1, 100);
        assert_eq!(one.len(), 1);
        assert_eq!(one[0].predicate("\"id\""), "TRUE");
        let sparse = split_range("id", 0, 3, 1_000_000, 10);
        assert!(sparse.len() <= 4);
        let big = split_range("id", i64::MIN as i128, u64::MAX as i128, 10, 1);
        assert_eq!(big.len(), 10);
    }
}
