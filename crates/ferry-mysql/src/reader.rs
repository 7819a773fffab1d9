//! Consistent snapshot over several connections, and chunk reads.

use crate::conn::{classify, qualified, quote_ident, MyConn};
use crate::types::{
    declared_float, encode_field, escape_into, fit_declared_float, parse_cell, select_expr,
    text_passes_through,
};
use ferry_core::{
    chunk::Batch, chunk::KeyRange, Column, Error, ErrorKind, Position, Result, Table, TableId,
};
use futures::StreamExt;
use mysql_async::prelude::Queryable;
use tokio::sync::mpsc::Sender;

/// Opens a consistent-snapshot transaction on every worker at one instant and returns
/// the binlog position of that instant (`None` when binary logging is off).
///
/// The instant is made by `FLUSH TABLES WITH READ LOCK` on `coordinator`: writes
/// pause only while the workers start their transactions and the position is read.
pub async fn begin_snapshot<'a>(
    coordinator: &mut MyConn,
    workers: impl IntoIterator<Item = &'a mut MyConn> + Send,
) -> Result<Option<Position>> {
    coordinator.exec("FLUSH TABLES WITH READ LOCK").await.map_err(|e| {
        e.context("cannot take the brief global read lock that fixes the snapshot instant")
            .with_hint("grant RELOAD (and LOCK TABLES) to the Ferry user: GRANT RELOAD, LOCK TABLES ON *.* TO …")
    })?;
    let result = async {
        for w in workers {
            w.exec("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                .await?;
            w.exec("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")
                .await?;
        }
        current_position(coordinator).await
    }
    .await;
    let unlock = coordinator.exec("UNLOCK TABLES").await;
    let pos = result?;
    unlock?;
    Ok(pos)
}

/// Without the RELOAD privilege (common on managed services) there is no global lock
/// to line several workers up, so one connection opens the snapshot alone and MariaDB
/// reports the binlog position of exactly that snapshot (`Binlog_snapshot_*`).
/// MySQL has no such status: there the caller must ask for RELOAD.
pub async fn begin_single_snapshot(conn: &mut MyConn) -> Result<Option<Position>> {
    conn.exec("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        .await?;
    conn.exec("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")
        .await?;
    let st = conn
        .query_text("SHOW STATUS LIKE 'binlog_snapshot_%'")
        .await?;
    let get = |name: &str| {
        st.iter()
            .find(|r| {
                r[0].as_deref()
                    .is_some_and(|n| n.eq_ignore_ascii_case(name))
            })
            .and_then(|r| r[1].clone())
            .unwrap_or_default()
    };
    let (file, pos) = (get("Binlog_snapshot_file"), get("Binlog_snapshot_position"));
    if st.is_empty() {
        return Err(Error::definite(
            "this server cannot report the binlog position of a snapshot without a global read lock",
        )
        .with_hint("grant RELOAD and LOCK TABLES to the Ferry user: GRANT RELOAD, LOCK TABLES ON *.* TO …")
        .with_kind(ferry_core::ErrorKind::NoSnapshotPosition));
    }
    if file.is_empty() {
        return Ok(None);
    }
    Ok(Some(Position::Binlog {
        file,
        pos: pos.parse().unwrap_or(4),
        gtid: String::new(),
    }))
}

/// The server's current binlog position and GTID state, `None` without a binlog.
pub async fn current_position(conn: &mut MyConn) -> Result<Option<Position>> {
    let st = conn.query_text("SHOW MASTER STATUS").await?;
    let Some(row) = st.into_iter().next() else {
        return Ok(None);
    };
    let file = row[0].clone().unwrap_or_default();
    let pos = row[1].as_deref().and_then(|p| p.parse().ok()).unwrap_or(4);
    let gtid = match conn.query_text("SELECT @@gtid_binlog_pos").await {
        Ok(r) => r
            .into_iter()
            .next()
            .and_then(|r| r[0].clone())
            .unwrap_or_default(),
        Err(_) => row
            .get(4)
            .cloned()
            .flatten()
            .unwrap_or_default()
            .replace('\n', ""),
    };
    Ok(Some(Position::Binlog { file, pos, gtid }))
}

/// Row count and integer key bounds (within the worker's snapshot).
pub async fn key_stats(
    conn: &mut MyConn,
    t: &TableId,
    key: Option<&str>,
) -> Result<(u64, Option<(i128, i128)>)> {
    let sql = match key {
        Some(k) => format!(
            "SELECT COUNT(*), MIN({k}), MAX({k}) FROM {}",
            qualified(t),
            k = quote_ident(k)
        ),
        None => format!("SELECT COUNT(*), NULL, NULL FROM {}", qualified(t)),
    };
    let r = conn.query_text(&sql).await?;
    let r = r.into_iter().next().unwrap_or_default();
    let n = r
        .first()
        .cloned()
        .flatten()
        .and_then(|x| x.parse().ok())
        .unwrap_or(0);
    let bounds = match (r.get(1).cloned().flatten(), r.get(2).cloned().flatten()) {
        (Some(a), Some(b)) => Some((a.parse().unwrap_or(0), b.parse().unwrap_or(0))),
        _ => None,
    };
    Ok((n, bounds))
}

/// `SELECT <copied columns> FROM t WHERE <range>`.
pub fn select_sql(t: &Table, range: Option<&KeyRange>) -> String {
    let cols: Vec<String> = t
        .copied_columns()
        .map(|c| select_expr(&quote_ident(&c.name), &c.logical))
        .collect();
    let mut sql = format!("SELECT {} FROM {}", cols.join(", "), qualified(&t.id));
    if let Some(r) = range {
        sql.push_str(" WHERE ");
        sql.push_str(&r.predicate(&quote_ident(&r.column)));
    }
    sql
}

/// Streams a chunk as decoded rows, `batch_rows` at a time.
pub async fn read_rows(
    conn: &mut MyConn,
    t: &Table,
    range: Option<&KeyRange>,
    tx: &Sender<Batch>,
    batch_rows: usize,
) -> Result<()> {
    let cols: Vec<&Column> = t.copied_columns().collect();
    let sql = select_sql(t, range);
    let mut result = conn.conn.query_iter(sql).await.map_err(classify)?;
    let mut rows = Vec::with_capacity(batch_rows);
    let mut batch_bytes = 0usize;
    let mut failure = None;
    if let Some(mut stream) = result
        .stream::<mysql_async::Row>()
        .await
        .map_err(classify)?
    {
        while let Some(row) = stream.next().await {
            let row = row.map_err(classify)?;
            let cells = row.unwrap_raw();
            batch_bytes += cells
                .iter()
                .map(|c| match c {
                    Some(mysql_async::Value::Bytes(b)) => b.len(),
                    _ => 8,
                })
                .sum::<usize>();
            let decoded: Result<Vec<_>> = cells
                .into_iter()
                .zip(&cols)
                .map(|(cell, c)| {
                    parse_cell(cell, &c.logical).map_err(|e| {
                        Error::definite(format!("table {}, column {}: {e}", t.id, c.name))
                    })
                })
                .collect();
            match decoded {
                Ok(r) => rows.push(r),
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
            if rows.len() >= batch_rows || batch_bytes >= ferry_core::chunk::BATCH_BYTES {
                batch_bytes = 0;
                let full = std::mem::replace(&mut rows, Vec::with_capacity(batch_rows));
                if tx.send(Batch::Rows(full)).await.is_err() {
                    failure = Some(writer_stopped());
                    break;
                }
            }
        }
    }
    if let Some(e) = failure {
        // the rest of the result set must be drained before the connection is reused
        drop(result);
        conn.conn.query_drop("DO 0").await.ok();
        return Err(e);
    }
    drop(result);
    if !rows.is_empty() {
        tx.send(Batch::Rows(rows))
            .await
            .map_err(|_| writer_stopped())?;
    }
    Ok(())
}

/// The writer of the chunk went away (its own error explains why).
fn writer_stopped() -> Error {
    Error::transient("the writer stopped before the chunk was read to the end")
        .with_kind(ErrorKind::WriterStopped)
}

/// Streams a chunk as `LOAD DATA` lines for a MySQL/MariaDB target (the same-engine
/// passthrough): a cell whose text is already its field ([`text_passes_through`]) is
/// only escaped, the others are decoded and encoded as a decoded row's would be
/// (floats of a declared precision fitted to their bound). Batches of at most
/// `batch_rows` rows or [`ferry_core::chunk::BATCH_BYTES`].
pub async fn read_lines(
    conn: &mut MyConn,
    t: &Table,
    range: Option<&KeyRange>,
    tx: &Sender<Batch>,
    batch_rows: usize,
) -> Result<()> {
    let cols: Vec<&Column> = t.copied_columns().collect();
    let raw_ok: Vec<bool> = cols
        .iter()
        .map(|c| text_passes_through(&c.logical))
        .collect();
    let floats: Vec<Option<(u32, u32)>> = cols
        .iter()
        .map(|c| declared_float(&c.native_type))
        .collect();
    let sql = select_sql(t, range);
    let mut result = conn.conn.query_iter(sql).await.map_err(classify)?;
    let mut out: Vec<u8> = Vec::with_capacity(64 * 1024);
    let mut rows = 0usize;
    let mut failure = None;
    if let Some(mut stream) = result
        .stream::<mysql_async::Row>()
        .await
        .map_err(classify)?
    {
        'rows: while let Some(row) = stream.next().await {
            let row = row.map_err(classify)?;
            let cells = row.unwrap_raw();
            for (i, (cell, c)) in cells.iter().zip(&cols).enumerate() {
                if i > 0 {
                    out.push(b'\t');
                }
                match cell {
                    None | Some(mysql_async::Value::NULL) => out.extend_from_slice(b"\\N"),
                    Some(mysql_async::Value::Bytes(b)) if raw_ok[i] => escape_into(&mut out, b),
                    Some(_) => {
                        if let Err(e) = decoded_field(cell.clone(), c, floats[i], &mut out) {
                            failure = Some(row_error(t, &cols, &cells, i, &e));
                            break 'rows;
                        }
                    }
                }
            }
            out.push(b'\n');
            rows += 1;
            if rows >= batch_rows || out.len() >= ferry_core::chunk::BATCH_BYTES {
                rows = 0;
                let full = std::mem::replace(&mut out, Vec::with_capacity(64 * 1024));
                if tx.send(Batch::Raw(full.into())).await.is_err() {
                    failure = Some(writer_stopped());
                    break;
                }
            }
        }
    }
    if let Some(e) = failure {
        // the rest of the result set must be drained before the connection is reused
        drop(result);
        conn.conn.query_drop("DO 0").await.ok();
        return Err(e);
    }
    drop(result);
    if !out.is_empty() {
        tx.send(Batch::Raw(out.into()))
            .await
            .map_err(|_| writer_stopped())?;
    }
    Ok(())
}

/// One cell through the decoding path: its value, fitted to a declared float bound,
/// as a `LOAD DATA` field.
fn decoded_field(
    cell: Option<mysql_async::Value>,
    c: &Column,
    float: Option<(u32, u32)>,
    out: &mut Vec<u8>,
) -> std::result::Result<(), String> {
    let mut v = parse_cell(cell, &c.logical)?;
    if let Some((m, d)) = float {
        if let Some(w) = fit_declared_float(&v, m, d)? {
            v = w;
        }
    }
    encode_field(&v, &c.logical, out)
}

/// The error for column `i` of a row, naming the table, column and the row's key
/// (decoded for the message).
fn row_error(
    t: &Table,
    cols: &[&Column],
    cells: &[Option<mysql_async::Value>],
    i: usize,
    reason: &str,
) -> Error {
    let names: Vec<String> = cols.iter().map(|c| c.name.clone()).collect();
    let ctx = ferry_core::chunk::RowContext {
        table: t.id.clone(),
        key_positions: t
            .primary_key
            .iter()
            .filter_map(|k| names.iter().position(|n| n == k))
            .collect(),
        columns: names,
        target_types: cols.iter().map(|c| c.logical.clone()).collect(),
    };
    let row: Vec<ferry_core::Value> = cells
        .iter()
        .zip(cols)
        .map(|(cell, c)| parse_cell(cell.clone(), &c.logical).unwrap_or(ferry_core::Value::Null))
        .collect();
    ctx.value_error(&row, i, reason)
}
