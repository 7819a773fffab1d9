//! Reading a consistent snapshot: one exported snapshot shared by every worker
//! connection, and chunk reads as binary passthrough or decoded rows.

use crate::conn::{classify, qualified, quote_ident, PgConn};
use crate::copytext::split_line;
use crate::types::parse_text;
use bytes::{Bytes, BytesMut};
use ferry_core::{
    chunk::Batch, chunk::KeyRange, Column, Error, ErrorKind, Position, Result, Table, TableId,
};
use futures::StreamExt;
use tokio::sync::mpsc::Sender;

/// Opens the coordinating snapshot transaction; returns the snapshot id to share and
/// a WAL position at or before the snapshot. The connection must stay open (and idle
/// in this transaction) until every worker has joined.
///
/// The position is read *before* the snapshot is taken: a transaction committing in
/// between is then both in the snapshot and after the position — replayed once more
/// by an idempotent apply — instead of in neither (a gap). The exact hand-off comes
/// from a replication slot's exported snapshot when the task has an incremental phase.
pub async fn begin_snapshot(conn: &PgConn) -> Result<(String, Position)> {
    let lsn = crate::cdc::current_lsn(conn).await?;
    conn.client
        .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .await
        .map_err(classify)?;
    let row = conn
        .client
        .query_one("SELECT pg_export_snapshot()", &[])
        .await
        .map_err(classify)?;
    Ok((row.get(0), Position::PgLsn(lsn)))
}

/// Joins a worker connection to the exported snapshot.
pub async fn join_snapshot(conn: &PgConn, snapshot: &str) -> Result<()> {
    conn.client
        .batch_execute(&format!(
            "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET TRANSACTION SNAPSHOT {}",
            crate::conn::quote_literal(snapshot)
        ))
        .await
        .map_err(classify)
}

/// Row count and integer key bounds of a table (within the current snapshot).
pub async fn key_stats(
    conn: &PgConn,
    t: &TableId,
    key: Option<&str>,
) -> Result<(u64, Option<(i128, i128)>)> {
    let sql = match key {
        Some(k) => format!(
            "SELECT count(*), min({k})::text, max({k})::text FROM {}",
            qualified(t),
            k = quote_ident(k)
        ),
        None => format!(
            "SELECT count(*), NULL::text, NULL::text FROM {}",
            qualified(t)
        ),
    };
    let row = conn.client.query_one(&sql, &[]).await.map_err(classify)?;
    let n: i64 = row.get(0);
    let bounds = match (
        row.get::<_, Option<String>>(1),
        row.get::<_, Option<String>>(2),
    ) {
        (Some(a), Some(b)) => Some((a.parse().unwrap_or(0), b.parse().unwrap_or(0))),
        _ => None,
    };
    Ok((n as u64, bounds))
}

/// `SELECT <copied columns> FROM t WHERE <range>`.
pub fn select_sql(t: &Table, range: Option<&KeyRange>) -> String {
    let cols: Vec<String> = t.copied_columns().map(|c| quote_ident(&c.name)).collect();
    let mut sql = format!("SELECT {} FROM {}", cols.join(", "), qualified(&t.id));
    if let Some(r) = range {
        sql.push_str(" WHERE ");
        sql.push_str(&r.predicate(&quote_ident(&r.column)));
    }
    sql
}

const BUF: usize = 256 * 1024;

/// Streams a chunk as PostgreSQL COPY bytes (for a PostgreSQL target), binary unless
/// the table's types need text ([`ferry_core::PgTypes::text_copy`]).
pub async fn copy_binary(
    conn: &PgConn,
    t: &Table,
    range: Option<&KeyRange>,
    tx: &Sender<Batch>,
) -> Result<()> {
    let sql = format!(
        "COPY ({}) TO STDOUT{}",
        select_sql(t, range),
        if t.pg_types.text_copy {
            ""
        } else {
            " (FORMAT binary)"
        }
    );
    let stream = conn.client.copy_out(&sql).await.map_err(classify)?;
    futures::pin_mut!(stream);
    let mut buf = BytesMut::with_capacity(BUF);
    while let Some(part) = stream.next().await {
        buf.extend_from_slice(&part.map_err(classify)?);
        if buf.len() >= BUF {
            send(tx, Batch::Raw(buf.split().freeze())).await?;
        }
    }
    if !buf.is_empty() {
        send(tx, Batch::Raw(buf.freeze())).await?;
    }
    Ok(())
}

async fn send(tx: &Sender<Batch>, b: Batch) -> Result<()> {
    tx.send(b).await.map_err(|_| {
        Error::transient("the writer stopped before the chunk was read to the end")
            .with_kind(ErrorKind::WriterStopped)
    })
}

/// Streams a chunk as decoded rows of the copied columns, `batch_rows` at a time.
pub async fn read_rows(
    conn: &PgConn,
    t: &Table,
    range: Option<&KeyRange>,
    tx: &Sender<Batch>,
    batch_rows: usize,
) -> Result<()> {
    read_rows_as(conn, t, range, tx, batch_rows, false).await
}

/// [`read_rows`] for a PostgreSQL target: arrays stay in PostgreSQL's own text form
/// (as the change stream sends them to such a target) instead of becoming JSON.
pub async fn read_rows_native_arrays(
    conn: &PgConn,
    t: &Table,
    range: Option<&KeyRange>,
    tx: &Sender<Batch>,
    batch_rows: usize,
) -> Result<()> {
    read_rows_as(conn, t, range, tx, batch_rows, true).await
}

async fn read_rows_as(
    conn: &PgConn,
    t: &Table,
    range: Option<&KeyRange>,
    tx: &Sender<Batch>,
    batch_rows: usize,
    native_arrays: bool,
) -> Result<()> {
    let cols: Vec<&Column> = t.copied_columns().collect();
    let sql = format!("COPY ({}) TO STDOUT", select_sql(t, range));
    let stream = conn.client.copy_out(&sql).await.map_err(classify)?;
    futures::pin_mut!(stream);
    let mut pending: Vec<u8> = Vec::new();
    let mut rows = Vec::with_capacity(batch_rows);
    let mut batch_bytes = 0usize;
    let parse_line = |line: &[u8], rows: &mut Vec<Vec<ferry_core::Value>>| -> Result<()> {
        let fields = split_line(line);
        if fields.len() != cols.len() {
            return Err(Error::definite(format!(
                "table {}: malformed COPY row",
                t.id
            )));
        }
        let row = fields
            .into_iter()
            .zip(&cols)
            .map(|(f, c)| match f {
                Some(text)
                    if native_arrays && matches!(c.logical, ferry_core::LogicalType::Array(_)) =>
                {
                    String::from_utf8(text)
                        .map(ferry_core::Value::Text)
                        .map_err(|_| {
                            Error::definite(format!(
                                "table {}, column {}: array is not UTF-8",
                                t.id, c.name
                            ))
                        })
                }
                f => parse_text(f, &c.logical).map_err(|e| {
                    Error::definite(format!("table {}, column {}: {e}", t.id, c.name))
                }),
            })
            .collect::<Result<Vec<_>>>()?;
        rows.push(row);
        Ok(())
    };
    while let Some(part) = stream.next().await {
        let part: Bytes = part.map_err(classify)?;
        let data: &[u8] = if pending.is_empty() {
            &part
        } else {
            pending.extend_from_slice(&part);
            &pending
        };
        let mut start = 0;
        while let Some(nl) = data[start..].iter().position(|&b| b == b'\n') {
            parse_line(&data[start..start + nl], &mut rows)?;
            batch_bytes += nl;
            start += nl + 1;
        }
        let rest = data[start..].to_vec();
        pending = rest;
        if rows.len() >= batch_rows || batch_bytes >= ferry_core::chunk::BATCH_BYTES {
            batch_bytes = 0;
            send(
                tx,
                Batch::Rows(std::mem::replace(&mut rows, Vec::with_capacity(batch_rows))),
            )
            .await?;
        }
    }
    if !rows.is_empty() {
        send(tx, Batch::Rows(rows)).await?;
    }
    Ok(())
}
