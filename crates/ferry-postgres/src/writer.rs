//! Bulk-loading a chunk with `COPY … FROM STDIN` inside the caller's transaction (the
//! caller marks the chunk done and commits in that same transaction).

use crate::conn::{classify, qualified, quote_ident, PgConn};
use crate::copytext::escape_into;
use bytes::Bytes;
use ferry_core::chunk::{Batch, RowEncoder};
use ferry_core::{Error, Result, TableId};
use futures::SinkExt;
use tokio::sync::mpsc::Receiver;

/// Loads everything `rx` delivers into `target` (columns `cols`) and returns the row
/// count. Raw batches must be binary COPY; row batches go through `encoder`.
/// Runs inside the caller's open transaction and neither commits nor rolls back.
pub async fn copy_in(
    conn: &PgConn,
    target: &TableId,
    cols: &[String],
    binary: bool,
    mut rx: Receiver<Batch>,
    mut encoder: Option<Box<dyn RowEncoder>>,
) -> Result<u64> {
    let col_list: Vec<String> = cols.iter().map(|c| quote_ident(c)).collect();
    let sql = format!(
        "COPY {} ({}) FROM STDIN{}",
        qualified(target),
        col_list.join(", "),
        if binary { " (FORMAT binary)" } else { "" }
    );
    let sink = conn
        .client
        .copy_in::<_, Bytes>(&sql)
        .await
        .map_err(classify)?;
    futures::pin_mut!(sink);
    let mut buf = Vec::with_capacity(256 * 1024);
    while let Some(batch) = rx.recv().await {
        let bytes = match batch {
            Batch::Raw(b) => b,
            Batch::Rows(rows) => {
                let enc = encoder
                    .as_mut()
                    .ok_or_else(|| Error::definite("internal: rows arrived without an encoder"))?;
                buf.clear();
                enc.encode(&rows, &mut buf)?;
                Bytes::copy_from_slice(&buf)
            }
        };
        sink.send(bytes)
            .await
            .map_err(|e| classify(e).context(format!("loading {target}")))?;
    }
    sink.finish()
        .await
        .map_err(|e| classify(e).context(format!("loading {target}")))
}

/// Escapes one text value for COPY (exposed for tests and tools).
pub fn escape(field: &str) -> String {
    let mut v = Vec::new();
    escape_into(&mut v, field.as_bytes());
    String::from_utf8(v).unwrap_or_default()
}
