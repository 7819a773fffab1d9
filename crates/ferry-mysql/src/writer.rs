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
    // a table's generated columns raise a note per row when the server rounds their
    // value (`total * 1.2` into DECIMAL(13,2)): keep enough of them to tell them apart
    let most_listed = match conn.exec("SET SESSION max_error_count = 65535").await {
        Ok(()) => 65535,
        Err(_) => 64,
    };
    let res = conn.exec(&sql).await;
    if let Some(e) = failure.lock().unwrap_or_else(|p| p.into_inner()).take() {
        return Err(e);
    }
    res.map_err(|e| e.context(format!("loading {target}")))?;
    let rows = conn.conn.affected_rows();
    let count = conn.conn.get_warnings() as usize;
    if count > 0 {
        let w = conn.query_text("SHOW WARNINGS").await.unwrap_or_default();
        let listed = w.len();
        let text: Vec<String> = w
            .into_iter()
            .filter(|r| !about_generated(r, cols))
            .take(5)
            .map(|r| {
                r.into_iter()
                    .map(|c| c.unwrap_or_default())
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect();
        // every warning listed is the server's own rounding of a generated column;
        // but a list cut at max_error_count may hide a real one: never assume
        if !text.is_empty() || listed == 0 || count > listed.min(most_listed) {
            if text.is_empty() && listed > 0 {
                return Err(Error::definite(format!(
                    "loading {target}: the server raised {count} warnings, more than it lists \
                     ({listed}); those listed are its rounding of generated columns, but the rest \
                     cannot be told apart from altered values"
                ))
                .with_hint(
                    "lower chunk_rows so that one chunk's rows raise fewer than 65,535 notes \
                     (a table without an integer key is copied as one chunk: exclude it or add a key)",
                ));
            }
            return Err(Error::definite(format!(
                "loading {target}: the server altered or rejected values: {}",
                if text.is_empty() {
                    format!("{count} warning(s) the server did not list")
                } else {
                    text.join("; ")
                }
            ))
            .with_hint("a value does not fit its target column; see docs/type-mapping.md"));
        }
    }
    Ok(rows)
}

/// True for a note about a column that was not loaded: the target computes it (a
/// generated column) and rounded the result, as the source did. Notes about loaded
/// columns, and every warning or error, are data changes.
fn about_generated(row: &[Option<String>], loaded: &[String]) -> bool {
    let level = row.first().cloned().flatten().unwrap_or_default();
    let msg = row.get(2).cloned().flatten().unwrap_or_default();
    if !level.eq_ignore_ascii_case("note") {
        return false;
    }
    // "… for column 'name' at row N": the name itself may hold quotes
    let Some(rest) = msg.split_once("for column '").map(|(_, r)| r) else {
        return false;
    };
    let Some((col, _)) = rest.rsplit_once("' at row ") else {
        return false;
    };
    !loaded.iter().any(|c| c.eq_ignore_ascii_case(col))
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

#[cfg(test)]
mod tests {
    use super::about_generated;

    #[test]
    fn notes_about_generated_columns_are_not_data_changes() {
        let row = |l: &str, m: &str| {
            vec![
                Some(l.to_string()),
                Some("1265".into()),
                Some(m.to_string()),
            ]
        };
        let loaded = vec!["id".to_string(), "total".to_string()];
        assert!(about_generated(
            &row("Note", "Data truncated for column 'with_tax' at row 1"),
            &loaded
        ));
        assert!(!about_generated(
            &row("Note", "Data truncated for column 'total' at row 1"),
            &loaded
        ));
        assert!(!about_generated(
            &row(
                "Warning",
                "Out of range value for column 'with_tax' at row 1"
            ),
            &loaded
        ));
        // a loaded column whose name holds a quote is still a loaded column
        let quoted = vec!["it's".to_string()];
        assert!(!about_generated(
            &row("Note", "Data truncated for column 'it's' at row 3"),
            &quoted
        ));
        // a note in another wording is a data change
        assert!(!about_generated(&row("Note", "something else"), &loaded));
    }
}
