//! Bulk-loading a chunk with `LOAD DATA LOCAL INFILE` fed from the reader's channel,
//! inside the caller's transaction.

use crate::conn::{classify, qualified, quote_ident, MyConn};
use crate::types::load_conversion;
use bytes::Bytes;
use ferry_core::chunk::{Batch, RowEncoder};
use ferry_core::{Error, LogicalType, Result, TableId};
use futures::StreamExt;
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc::Receiver;

/// Loads everything `rx` delivers into `target` and returns the row count. Any warning
/// the server raises fails the load (the caller rolls back), quoting the warnings.
pub async fn load(
    conn: &mut MyConn,
    target: &TableId,
    cols: &[String],
    types: &[LogicalType],
    rx: Receiver<Batch>,
    mut encoder: Box<dyn RowEncoder>,
) -> Result<u64> {
    let failure: Arc<Mutex<Option<Error>>> = Arc::default();
    let fail = failure.clone();
    let stream = tokio_stream_from(rx).map(move |batch| -> std::io::Result<Bytes> {
        match batch {
            Batch::Raw(b) => Ok(b),
            Batch::Rows(rows) => {
                let mut out = Vec::with_capacity(rows.len() * 64);
                encoder.encode(&rows, &mut out).map_err(|e| {
                    let msg = e.message.clone();
                    *fail.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
                    std::io::Error::other(msg)
                })?;
                Ok(Bytes::from(out))
            }
        }
    });
    conn.conn
        .set_infile_handler(async move { Ok(stream.boxed()) });
    let mut targets = Vec::new();
    let mut sets = Vec::new();
    for (i, (c, ty)) in cols.iter().zip(types).enumerate() {
        match load_conversion(ty) {
            Some(conv) => {
                targets.push(format!("@v{i}"));
                sets.push(format!(
                    "{} = {}",
                    quote_ident(c),
                    conv.replace("{}", &format!("@v{i}"))
                ));
            }
            None => targets.push(quote_ident(c)),
        }
    }
    let sql = format!(
        "LOAD DATA LOCAL INFILE 'ferry-chunk' INTO TABLE {} CHARACTER SET utf8mb4 \
         FIELDS TERMINATED BY '\\t' ESCAPED BY '\\\\' LINES TERMINATED BY '\\n' ({}){}",
        qualified(target),
        targets.join(", "),
        if sets.is_empty() {
            String::new()
        } else {
            format!(" SET {}", sets.join(", "))
        }
    );
    let res = conn.exec(&sql).await;
    if let Some(e) = failure.lock().unwrap_or_else(|p| p.into_inner()).take() {
        return Err(e);
    }
    res.map_err(|e| e.context(format!("loading {target}")))?;
    let rows = conn.conn.affected_rows();
    if conn.conn.get_warnings() > 0 {
        let w = conn
            .query_text("SHOW WARNINGS LIMIT 5")
            .await
            .unwrap_or_default();
        let text: Vec<String> = w
            .into_iter()
            .map(|r| {
                r.into_iter()
                    .map(|c| c.unwrap_or_default())
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect();
        return Err(Error::definite(format!(
            "loading {target}: the server altered or rejected values: {}",
            text.join("; ")
        ))
        .with_hint("a value does not fit its target column; see docs/type-mapping.md"));
    }
    Ok(rows)
}

fn tokio_stream_from<T: Send + 'static>(
    rx: Receiver<T>,
) -> impl futures::Stream<Item = T> + Send + 'static {
    futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|x| (x, rx)) })
}

/// Keeps `classify` reachable for callers that load by hand.
pub fn driver_error(e: mysql_async::Error) -> Error {
    classify(e)
}
