//! A PostgreSQL session as a source of chunks.

use crate::{reader, PgConn};
use ferry_connector::{async_trait, ChunkSource, Connection, ReadFormat, Snapshot};
use ferry_core::chunk::{Batch, KeyRange};
use ferry_core::{Position, Result, Table, TableId};
use tokio::sync::mpsc::Sender;

#[async_trait]
impl ChunkSource for PgConn {
    async fn key_stats(
        &mut self,
        t: &TableId,
        key: Option<&str>,
    ) -> Result<(u64, Option<(i128, i128)>)> {
        reader::key_stats(self, t, key).await
    }

    async fn read_chunk(
        &mut self,
        t: &Table,
        range: Option<&KeyRange>,
        format: ReadFormat,
        tx: &Sender<Batch>,
        batch_rows: usize,
    ) -> Result<()> {
        match format {
            ReadFormat::Rows => reader::read_rows(self, t, range, tx, batch_rows).await,
            ReadFormat::NativeArrays => {
                reader::read_rows_native_arrays(self, t, range, tx, batch_rows).await
            }
            ReadFormat::Passthrough => reader::copy_binary(self, t, range, tx).await,
        }
    }

    /// Exports a snapshot from this session (or takes the handoff's) and joins
    /// every worker to it.
    async fn open_snapshot(
        &mut self,
        workers: &mut [&mut dyn Connection],
        handoff: Option<(&str, &Position)>,
    ) -> Result<Snapshot> {
        let (snap, pos) = match handoff {
            Some((s, p)) => (s.to_string(), p.clone()),
            None => reader::begin_snapshot(self).await?,
        };
        for w in workers.iter_mut() {
            let w = super::session(&mut **w)?;
            reader::join_snapshot(w, &snap).await?;
        }
        Ok(Snapshot {
            position: Some(pos),
            workers: workers.len(),
            warnings: Vec::new(),
        })
    }
}
