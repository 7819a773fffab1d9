//! A PostgreSQL session as a bulk-load target.

use crate::PgConn;
use ferry_connector::{async_trait, BulkLoad, BulkTarget};
use ferry_core::chunk::{Batch, LineEncoder, RowEncoder};
use ferry_core::Result;
use tokio::sync::mpsc::Receiver;

#[async_trait]
impl BulkTarget for PgConn {
    /// `COPY … FROM STDIN`: text lines encoded from rows, or the source's COPY
    /// bytes passed through (binary unless the table's types need text).
    async fn bulk_load(&mut self, load: BulkLoad<'_>, rx: Receiver<Batch>) -> Result<u64> {
        let enc: Option<Box<dyn RowEncoder>> = (!load.passthrough).then(|| {
            Box::new(LineEncoder {
                ctx: load.context.clone(),
                field: crate::types::encode_text,
            }) as Box<dyn RowEncoder>
        });
        crate::writer::copy_in(
            self,
            load.target,
            load.columns,
            load.passthrough && !load.source.pg_types.text_copy,
            rx,
            enc,
        )
        .await
    }
}
