//! Copying one chunk: the source reader and the target writer run concurrently over a
//! bounded channel (memory stays flat whatever the chunk size), and the chunk's rows
//! and its "done" mark are committed in one target transaction.

use crate::checkpoint::{mark_done_sql, Fence};
use crate::conn::Conn;
use ferry_connector::{BulkLoad, ReadFormat};
use ferry_core::chunk::{Batch, Chunk, RowContext};
use ferry_core::{Engine, Error, ErrorKind, LogicalType, Result, Table, TableId};
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
    /// Between two servers of an engine that can (PostgreSQL: binary COPY), the
    /// data passes through in the engine's own bulk format, nothing decoded.
    pub passthrough: bool,
    /// Position of this run's snapshot when it differs from the task's recorded
    /// start (a resumed copy): whole-table chunks record it as their watermark.
    pub watermark: Option<String>,
    /// The task's copy speed limit (shared by all its copy workers).
    pub throttle: std::sync::Arc<crate::throttle::Throttle>,
}

impl TableJob {
    /// Builds the job for `source` landing in `target`.
    pub fn new(source: Table, target: TableId, from: Engine, to: Engine) -> TableJob {
        let cols: Vec<_> = source.copied_columns().cloned().collect();
        TableJob {
            columns: cols.iter().map(|c| c.name.clone()).collect(),
            types: cols.iter().map(|c| c.logical.clone()).collect(),
            passthrough: from == to && crate::factory::connector(to).passthrough(),
            source,
            target,
            watermark: None,
            throttle: Default::default(),
        }
    }

    /// Table, columns and key for a value the target cannot hold (what a bulk
    /// load of this table's rows needs).
    pub fn context(&self) -> RowContext {
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

/// Copies one chunk and commits it with its done mark (and `fence`'s check: a run
/// that lost the task commits nothing); returns the rows copied.
/// `on_rows` is told of decoded rows as they stream (passthrough chunks report
/// nothing while streaming; the caller counts them at commit).
pub async fn copy_chunk(
    src: &mut Conn,
    dst: &mut Conn,
    job: &TableJob,
    chunk: &Chunk,
    fence: &Fence,
    on_rows: &(dyn Fn(u64) + Sync),
) -> Result<u64> {
    let task = fence.task.as_str();
    let begin = dst.dialect().begin();
    dst.exec(begin).await?;
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
            // one round trip: nothing can come between the check and the COMMIT
            let commit = format!("{}; COMMIT", fence.check_sql(dst));
            if let Err(e) = dst.exec(&commit).await {
                let _ = dst.exec("ROLLBACK").await;
                return Err(fence.explain(dst, e).await);
            }
            Ok(rows)
        }
        Err(e) => {
            let _ = dst.exec("ROLLBACK").await;
            Err(e.context(format!("copying {} (chunk {})", job.source.id, chunk.index)))
        }
    }
}

/// Bulk-loads the rows of `range` (the whole table for `None`) into the target inside
/// the transaction `dst` has open (the target's bulk load, see
/// `ferry_connector::BulkTarget`; the engine's own bulk bytes between two servers of
/// an engine that passes data through); returns the rows copied.
pub async fn copy_rows(
    src: &mut Conn,
    dst: &mut Conn,
    job: &TableJob,
    range: Option<&ferry_core::chunk::KeyRange>,
    on_rows: &(dyn Fn(u64) + Sync),
) -> Result<u64> {
    let (tx, mut relay_rx) = mpsc::channel::<Batch>(CHANNEL_DEPTH);
    let (relay_tx, rx) = mpsc::channel::<Batch>(2);
    // every copy worker's rows pass here: the task's copy speed limit holds here
    let mut pacer =
        crate::throttle::CopyPacer::for_table(&job.throttle, &job.source, job.passthrough);
    let relay = async move {
        while let Some(b) = relay_rx.recv().await {
            if let Batch::Rows(r) = &b {
                on_rows(r.len() as u64);
            }
            if pacer.send(b, &relay_tx).await.is_err() {
                break;
            }
        }
    };
    let format = if job.passthrough {
        ReadFormat::Passthrough
    } else {
        ReadFormat::Rows
    };
    let read = async {
        let r = src
            .read_chunk(&job.source, range, format, &tx, BATCH_ROWS)
            .await;
        drop(tx);
        r
    };
    let context = job.context();
    let load = BulkLoad {
        source: &job.source,
        target: &job.target,
        columns: &job.columns,
        types: &job.types,
        context: &context,
        passthrough: job.passthrough,
    };
    let write = dst.bulk_load(load, rx);
    let (r, w, ()) = tokio::join!(read, write, relay);
    match (r, w) {
        (Ok(()), Ok(rows)) => Ok(rows),
        // the writer's error is the root cause when it stopped first (the reader then
        // only saw a closed channel); otherwise the reader's
        (Err(re), Err(we)) => Err(if re.is(ErrorKind::WriterStopped) {
            we
        } else {
            re
        }),
        (Err(e), _) | (_, Err(e)) => Err(e),
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
