//! TEMPORARY (deleted at the merge of issue 11): reading a chunk's rows as decoded
//! values on a source session, for a backfill chunk upserted through the applier.
//! The `ChunkSource` seam gets a read method for exactly this; until it lands, this
//! is the one place the stream side names the connector crates.

use crate::conn::Conn;
use ferry_core::chunk::{Batch, KeyRange};
use ferry_core::{Engine, Result, Table, TaskSpec};
use tokio::sync::mpsc::Sender;

/// Reads the rows of `range` of `table` on `src` into `tx`, `batch_rows` at a time
/// (arrays in their native text form when the target is PostgreSQL).
pub(crate) async fn read_rows(
    src: &mut Conn,
    spec: &TaskSpec,
    table: &Table,
    range: Option<&KeyRange>,
    tx: &Sender<Batch>,
    batch_rows: usize,
) -> Result<()> {
    let native_arrays = spec.target.engine == Engine::Postgres;
    match src {
        Conn::Pg(c) if native_arrays => {
            ferry_postgres::reader::read_rows_native_arrays(c, table, range, tx, batch_rows).await
        }
        Conn::Pg(c) => ferry_postgres::reader::read_rows(c, table, range, tx, batch_rows).await,
        Conn::My(c) => ferry_mysql::reader::read_rows(c, table, range, tx, batch_rows).await,
    }
}
