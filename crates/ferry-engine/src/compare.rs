//! `ferry compare`: per table, row counts and an order-independent content digest of
//! type-normalised values (see [`ferry_core::canonical`]), computed chunk by chunk on
//! both sides, so cross-engine copies compare and differing key ranges are named.
//! Chunks have unbounded ends, so rows that exist only on the target are counted too.

use crate::conn::{Conn, Role};
use crate::copy::source_tables;
use crate::schema::mapping::NameMap;
use ferry_connector::ReadFormat;
use ferry_core::canonical::Digest;
use ferry_core::chunk::{split_range, Batch, KeyRange};
use ferry_core::select::ObjectFilter;
use ferry_core::{Error, LogicalType, Result, Table, TableId, TaskSpec};
use tokio::sync::mpsc;

/// The verdict for one table.
#[derive(Debug, Clone)]
pub struct TableVerdict {
    /// Source table.
    pub source: TableId,
    /// Target table.
    pub target: TableId,
    /// Rows on the source.
    pub source_rows: u64,
    /// Rows on the target.
    pub target_rows: u64,
    /// Counts and digests equal everywhere.
    pub equal: bool,
    /// Key ranges (or notes) where the sides differ.
    pub differences: Vec<String>,
}

/// Compares every selected table of `spec`.
pub async fn compare(spec: &TaskSpec, chunk_rows: u64) -> Result<Vec<TableVerdict>> {
    let mut src = Conn::open(spec, Role::Source).await?;
    let mut dst = Conn::open(spec, Role::Target).await?;
    let tables = source_tables(&mut src, spec).await?;
    let names = NameMap::new(spec, &tables);
    let mut out = Vec::new();
    for t in &tables {
        let target = names.target(&t.id);
        out.push(compare_table(&mut src, &mut dst, t, &target, chunk_rows).await?);
    }
    Ok(out)
}

/// Compares source table `t` with `target`, chunk by chunk over the source's integer
/// key (whole-table when it has none). Public so that any pair of sessions can be
/// compared, whatever opened them.
pub async fn compare_table(
    src: &mut Conn,
    dst: &mut Conn,
    t: &Table,
    target: &TableId,
    chunk_rows: u64,
) -> Result<TableVerdict> {
    let mut v = TableVerdict {
        source: t.id.clone(),
        target: target.clone(),
        source_rows: 0,
        target_rows: 0,
        equal: false,
        differences: vec![],
    };
    let filter = ObjectFilter::table(target);
    let found = dst.tables(&filter, Some(&target.schema)).await?;
    let Some(tt) = found.into_iter().find(|x| &x.id == target) else {
        // what the target lacks: every source row
        v.source_rows = src.key_stats(&t.id, None).await?.0;
        v.differences.push("missing on the target".into());
        return Ok(v);
    };
    // the target table as read with the source's copied columns, in the same order
    let mut aligned = tt.clone();
    aligned.columns.clear();
    for c in t.copied_columns() {
        match tt.column(&c.name) {
            Some(tc) => {
                let mut tc = tc.clone();
                tc.generated = None;
                aligned.columns.push(tc)
            }
            None => {
                v.differences
                    .push(format!("column {} missing on the target", c.name));
                return Ok(v);
            }
        }
    }
    let key = t.integer_key().map(|c| c.name.clone());
    let (count, bounds) = src.key_stats(&t.id, key.as_deref()).await?;
    let ranges: Vec<Option<KeyRange>> = match (key, bounds) {
        (Some(k), Some((lo, hi))) if aligned.column(&k).is_some() => {
            split_range(&k, lo, hi, count, chunk_rows)
                .into_iter()
                .map(Some)
                .collect()
        }
        _ => vec![None],
    };
    for r in &ranges {
        let (a, b) = tokio::join!(
            digest(src, t, r.as_ref()),
            digest(dst, &aligned, r.as_ref())
        );
        let (a, b) = (a?, b?);
        v.source_rows += a.rows;
        v.target_rows += b.rows;
        if a != b {
            let what = match r {
                Some(r) => format!(
                    "{} in [{}, {}): source {} rows, target {} rows{}",
                    r.column,
                    r.lo.map(|x| x.to_string()).unwrap_or_else(|| "-inf".into()),
                    r.hi.map(|x| x.to_string()).unwrap_or_else(|| "+inf".into()),
                    a.rows,
                    b.rows,
                    if a.rows == b.rows {
                        " (contents differ)"
                    } else {
                        ""
                    }
                ),
                None => format!(
                    "whole table: source {} rows, target {} rows{}",
                    a.rows,
                    b.rows,
                    if a.rows == b.rows {
                        " (contents differ)"
                    } else {
                        ""
                    }
                ),
            };
            v.differences.push(what);
        }
    }
    v.equal = v.differences.is_empty();
    Ok(v)
}

/// The digest of the rows of `t` in `range` (the whole table for `None`) as `conn`
/// reads them, each value canonicalised by its column's logical type.
pub async fn digest(conn: &mut Conn, t: &Table, range: Option<&KeyRange>) -> Result<Digest> {
    let (tx, mut rx) = mpsc::channel::<Batch>(8);
    let types: Vec<LogicalType> = t.copied_columns().map(|c| c.logical.clone()).collect();
    let read = async {
        let r = conn.read_chunk(t, range, ReadFormat::Rows, &tx, 1000).await;
        drop(tx);
        r
    };
    let sum = async {
        let refs: Vec<&LogicalType> = types.iter().collect();
        let mut d = Digest::default();
        let mut buf = Vec::new();
        while let Some(b) = rx.recv().await {
            if let Batch::Rows(rows) = b {
                for row in &rows {
                    d.add_row(row, &refs, &mut buf);
                }
            }
        }
        d
    };
    let (r, d) = tokio::join!(read, sum);
    r.map_err(|e: Error| e.context(format!("reading {}", t.id)))?;
    Ok(d)
}
