//! A MySQL/MariaDB session as a source of chunks.

use crate::{reader, MyConn};
use ferry_connector::{async_trait, ChunkSource, Connection, ReadFormat, Snapshot};
use ferry_core::chunk::{Batch, KeyRange};
use ferry_core::{ErrorKind, Position, Result, Table, TableId};
use tokio::sync::mpsc::Sender;

fn mine<'a>(w: &'a mut &mut dyn Connection) -> Result<&'a mut MyConn> {
    super::session(&mut **w)
}

#[async_trait]
impl ChunkSource for MyConn {
    async fn key_stats(
        &mut self,
        t: &TableId,
        key: Option<&str>,
    ) -> Result<(u64, Option<(i128, i128)>)> {
        reader::key_stats(self, t, key).await
    }

    /// Decoded rows whatever the format asked: MySQL/MariaDB have neither a
    /// passthrough bulk format nor a native array form.
    async fn read_chunk(
        &mut self,
        t: &Table,
        range: Option<&KeyRange>,
        format: ReadFormat,
        tx: &Sender<Batch>,
        batch_rows: usize,
    ) -> Result<()> {
        if format == ReadFormat::Passthrough {
            return reader::read_lines(self, t, range, tx, batch_rows).await;
        }
        reader::read_rows(self, t, range, tx, batch_rows).await
    }

    /// `FLUSH TABLES WITH READ LOCK` on this session lines the workers up; without
    /// the RELOAD privilege one worker opens the snapshot alone (MariaDB reports its
    /// position exactly) and a warning says so. There is no exported snapshot to
    /// join, so `handoff` is not used.
    async fn open_snapshot(
        &mut self,
        workers: &mut [&mut dyn Connection],
        _handoff: Option<(&str, &Position)>,
    ) -> Result<Snapshot> {
        let jobs = workers.len();
        let mys = workers.iter_mut().map(mine).collect::<Result<Vec<_>>>()?;
        match reader::begin_snapshot(self, mys).await {
            Ok(position) => Ok(Snapshot {
                position,
                workers: jobs,
                warnings: Vec::new(),
            }),
            Err(e) if e.is(ErrorKind::NoPrivilege) && jobs > 0 => {
                let warning = format!(
                    "the source user lacks RELOAD, so the copy ran with one worker instead of {jobs} \
                     (GRANT RELOAD, LOCK TABLES ON *.* TO … allows parallel consistent workers): {}",
                    e.message
                );
                let position = reader::begin_single_snapshot(mine(&mut workers[0])?).await?;
                Ok(Snapshot {
                    position,
                    workers: 1,
                    warnings: vec![warning],
                })
            }
            Err(e) => Err(e),
        }
    }
}
