//! A MySQL/MariaDB session as a bulk-load target.

use crate::MyConn;
use ferry_connector::{async_trait, BulkLoad, BulkTarget};
use ferry_core::chunk::{Batch, LineEncoder, RowEncoder};
use ferry_core::{Result, Value};
use tokio::sync::mpsc::Receiver;

#[async_trait]
impl BulkTarget for MyConn {
    /// `LOAD DATA LOCAL INFILE` fed with text lines encoded from rows (floats of a
    /// declared precision fitted to their bound, see `DeclaredFloats`).
    async fn bulk_load(&mut self, load: BulkLoad<'_>, rx: Receiver<Batch>) -> Result<u64> {
        let inner = LineEncoder {
            ctx: load.context.clone(),
            field: crate::types::encode_field,
        };
        let floats: Vec<Option<(u32, u32)>> = load
            .columns
            .iter()
            .map(|n| {
                load.source
                    .column(n)
                    .and_then(|c| crate::types::declared_float(&c.native_type))
            })
            .collect();
        let enc: Box<dyn RowEncoder> = if floats.iter().any(Option::is_some) {
            Box::new(DeclaredFloats { inner, floats })
        } else {
            Box::new(inner)
        };
        crate::writer::load(self, load.target, load.columns, load.types, rx, enc).await
    }
}

/// Rows for MySQL `FLOAT(M,D)`/`DOUBLE(M,D)` columns: a stored float just beyond the
/// declared bound is written as the bound, which the server stores as the same float
/// (see [`crate::types::fit_declared_float`]).
struct DeclaredFloats {
    inner: LineEncoder,
    floats: Vec<Option<(u32, u32)>>,
}

impl RowEncoder for DeclaredFloats {
    fn encode(&mut self, rows: &[Vec<Value>], out: &mut Vec<u8>) -> Result<()> {
        let mut fitted = Vec::with_capacity(rows.len());
        for row in rows {
            let mut row = row.clone();
            for (i, f) in self.floats.iter().enumerate() {
                let (Some((m, d)), Some(v)) = (f, row.get(i)) else {
                    continue;
                };
                match crate::types::fit_declared_float(v, *m, *d) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_core::chunk::RowContext;
    use ferry_core::{LogicalType, TableId};

    fn encoder() -> DeclaredFloats {
        DeclaredFloats {
            inner: LineEncoder {
                ctx: RowContext {
                    table: TableId::new("d", "t"),
                    columns: vec!["id".into(), "f".into()],
                    key_positions: vec![0],
                    target_types: vec![
                        LogicalType::Int {
                            bytes: 4,
                            unsigned: false,
                        },
                        LogicalType::Float32,
                    ],
                },
                field: crate::types::encode_field,
            },
            floats: vec![None, Some((10, 2))],
        }
    }

    #[test]
    fn declared_floats_are_fitted_to_their_bound() {
        let mut out = Vec::new();
        let beyond = Value::F32(-99_999_999.99f64 as f32);
        encoder()
            .encode(&[vec![Value::Int(1), beyond]], &mut out)
            .unwrap();
        let line = String::from_utf8(out).unwrap();
        assert!(line.starts_with("1\t-99999999.99"), "{line:?}");
    }

    #[test]
    fn a_float_far_beyond_its_bound_names_its_row() {
        let mut out = Vec::new();
        let e = encoder()
            .encode(&[vec![Value::Int(7), Value::F32(2e8)]], &mut out)
            .unwrap_err();
        assert!(e.message.contains("id=7"), "{}", e.message);
    }
}
