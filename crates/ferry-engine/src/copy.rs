//! Copying one chunk: the source reader and the target writer run concurrently over a
//! bounded channel (memory stays flat whatever the chunk size), and the chunk's rows
//! and its "done" mark are committed in one target transaction.

use crate::checkpoint::mark_done_sql;
use crate::conn::Conn;
use ferry_core::chunk::{Batch, Chunk, LineEncoder, RowContext, RowEncoder};
use ferry_core::{Engine, Error, LogicalType, Result, Table, TableId};
use tokio::sync::mpsc;

/// Rows per batch handed from reader to writer.
const BATCH_ROWS: usize = 1000;
/// Batches in flight between reader and writer.
const CHANNEL_DEPTH: usize = 8;

/// Everything needed to copy any chunk of one table.
#[derive(Debug, Clone)]
pub struct TableJob {
    /// Source table model.
    pub source: Table,
    /// Target table.
    pub target: TableId,
    /// Copied column names (generated columns excluded).
    pub columns: Vec<String>,
    /// Types used to encode each copied column for the target.
    pub types: Vec<LogicalType>,
    /// PostgreSQL → PostgreSQL: binary COPY passthrough, nothing decoded.
    pub passthrough: bool,
    /// Position of this run's snapshot when it differs from the task's recorded
    /// start (a resumed copy): whole-table chunks record it as their watermark.
    pub watermark: Option<String>,
}

impl TableJob {
    /// Builds the job for `source` landing in `target`.
    pub fn new(source: Table, target: TableId, from: Engine, to: Engine) -> TableJob {
        let cols: Vec<_> = source.copied_columns().cloned().collect();
        TableJob {
            columns: cols.iter().map(|c| c.name.clone()).collect(),
            types: cols.iter().map(|c| c.logical.clone()).collect(),
            passthrough: from == Engine::Postgres && to == Engine::Postgres,
            source,
            target,
            watermark: None,
        }
    }

    fn context(&self) -> RowContext {
        RowContext {
            table: self.source.id.clone(),
            columns: self.columns.clone(),
            key_positions: self
                .source
                .primary_key
                .iter()
                .filter_map(|k| self.columns.iter().position(|c| c == k))
                .collect(),
            target_types: self.types.clone(),
        }
    }
}

/// Copies one chunk and commits it with its done mark; returns the rows copied.
/// `on_rows` is told of decoded rows as they stream (passthrough chunks report
/// nothing while streaming; the caller counts them at commit).
pub async fn copy_chunk(
    src: &mut Conn,
    dst: &mut Conn,
    job: &TableJob,
    chunk: &Chunk,
    task: &str,
    on_rows: &(dyn Fn(u64) + Sync),
) -> Result<u64> {
    dst.exec(match dst.engine() {
        Engine::Postgres => "BEGIN",
        Engine::MySql => "START TRANSACTION",
    })
    .await?;
    match copy_rows(src, dst, job, chunk.range.as_ref(), on_rows).await {
        Ok(rows) => {
            let mark = mark_done_sql(dst, task, chunk, rows);
            dst.exec(&mark).await?;
            if let (Some(w), None) = (&job.watermark, &chunk.range) {
                dst.exec(&crate::checkpoint::watermark_sql(
                    dst,
                    task,
                    &job.source.id,
                    w,
                ))
                .await?;
            }
            dst.exec("COMMIT").await?;
            Ok(rows)
        }
        Err(e) => {
            let _ = dst.exec("ROLLBACK").await;
            Err(e.context(format!("copying {} (chunk {})", job.source.id, chunk.index)))
        }
    }
}

/// Bulk-loads the rows of `range` (the whole table for `None`) into the target inside
/// the transaction `dst` has open (PostgreSQL COPY, binary passthrough between
/// PostgreSQL servers; MySQL LOAD DATA); returns the rows copied.
pub async fn copy_rows(
    src: &mut Conn,
    dst: &mut Conn,
    job: &TableJob,
    range: Option<&ferry_core::chunk::KeyRange>,
    on_rows: &(dyn Fn(u64) + Sync),
) -> Result<u64> {
    let (tx, mut relay_rx) = mpsc::channel::<Batch>(CHANNEL_DEPTH);
    let (relay_tx, rx) = mpsc::channel::<Batch>(2);
    let relay = async move {
        while let Some(b) = relay_rx.recv().await {
            if let Batch::Rows(r) = &b {
                on_rows(r.len() as u64);
            }
            if relay_tx.send(b).await.is_err() {
                break;
            }
        }
    };
    let read = async {
        let r = match src {
            Conn::Pg(c) if job.passthrough => {
                ferry_postgres::reader::copy_binary(c, &job.source, range, &tx).await
            }
            Conn::Pg(c) => {
                ferry_postgres::reader::read_rows(c, &job.source, range, &tx, BATCH_ROWS).await
            }
            Conn::My(c) => {
                ferry_mysql::reader::read_rows(c, &job.source, range, &tx, BATCH_ROWS).await
            }
        };
        drop(tx);
        r
    };
    let write = async {
        match &mut *dst {
            Conn::Pg(c) => {
                let enc: Option<Box<dyn RowEncoder>> = (!job.passthrough).then(|| {
                    Box::new(LineEncoder {
                        ctx: job.context(),
                        field: ferry_postgres::types::encode_text,
                    }) as Box<dyn RowEncoder>
                });
                ferry_postgres::writer::copy_in(
                    c,
                    &job.target,
                    &job.columns,
                    job.passthrough && !job.source.pg_types.text_copy,
                    rx,
                    enc,
                )
                .await
            }
            Conn::My(c) => {
                let inner = LineEncoder {
                    ctx: job.context(),
                    field: ferry_mysql::types::encode_field,
                };
                let floats: Vec<Option<(u32, u32)>> = job
                    .columns
                    .iter()
                    .map(|n| {
                        job.source
                            .column(n)
                            .and_then(|c| ferry_mysql::types::declared_float(&c.native_type))
                    })
                    .collect();
                let enc: Box<dyn RowEncoder> = if floats.iter().any(Option::is_some) {
                    Box::new(DeclaredFloats { inner, floats })
                } else {
                    Box::new(inner)
                };
                ferry_mysql::writer::load(c, &job.target, &job.columns, &job.types, rx, enc).await
            }
        }
    };
    let (r, w, ()) = tokio::join!(read, write, relay);
    match (r, w) {
        (Ok(()), Ok(rows)) => Ok(rows),
        // the writer's error is the root cause when it stopped first (the reader then
        // only saw a closed channel); otherwise the reader's
        (Err(re), Err(we)) => Err(if re.message.contains("writer stopped") {
            we
        } else {
            re
        }),
        (Err(e), _) | (_, Err(e)) => Err(e),
    }
}

/// Rows for MySQL `FLOAT(M,D)`/`DOUBLE(M,D)` columns: a stored float just beyond the
/// declared bound is written as the bound, which the server stores as the same float
/// (see [`ferry_mysql::types::fit_declared_float`]).
struct DeclaredFloats {
    inner: LineEncoder,
    floats: Vec<Option<(u32, u32)>>,
}

impl RowEncoder for DeclaredFloats {
    fn encode(&mut self, rows: &[Vec<ferry_core::Value>], out: &mut Vec<u8>) -> Result<()> {
        let mut fitted = Vec::with_capacity(rows.len());
        for row in rows {
            let mut row = row.clone();
            for (i, f) in self.floats.iter().enumerate() {
                let (Some((m, d)), Some(v)) = (f, row.get(i)) else {
                    continue;
                };
                match ferry_mysql::types::fit_declared_float(v, *m, *d) {
                    Ok(Some(w)) => row[i] = w,
                    Ok(None) => {}
                    Err(why) => return Err(self.inner.ctx.value_error(&row, i, &why)),
                }
            }
            fitted.push(row);
        }
        self.inner.encode(&fitted, out)
    }
}

/// Refuses a table whose chunk plan names a key column the table no longer has.
pub fn validate_chunk(job: &TableJob, chunk: &Chunk) -> Result<()> {
    if let Some(r) = &chunk.range {
        if job.source.column(&r.column).is_none() {
            return Err(Error::definite(format!(
                "table {}: the saved copy plan splits on column {} which the source no longer has",
                job.source.id, r.column
            ))
            .with_hint("the source schema changed since the interrupted run; start over with existing_data: drop"));
        }
    }
    Ok(())
}
