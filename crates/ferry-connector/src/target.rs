//! Writing a target: bulk loads.

use crate::async_trait;
use ferry_core::chunk::{Batch, RowContext};
use ferry_core::{LogicalType, Result, Table, TableId};
use tokio::sync::mpsc::Receiver;

/// One bulk load: which rows go where, and how to encode them.
#[derive(Debug, Clone, Copy)]
pub struct BulkLoad<'a> {
    /// The source table the rows come from (its native types may shape encoding).
    pub source: &'a Table,
    /// Where the rows go.
    pub target: &'a TableId,
    /// The loaded columns, in row order.
    pub columns: &'a [String],
    /// The target types of those columns.
    pub types: &'a [LogicalType],
    /// Table, columns and key, for a value the target cannot hold.
    pub context: &'a RowContext,
    /// The batches are the target engine's own bulk bytes, read with
    /// [`crate::ReadFormat::Passthrough`] from a source of the same engine.
    pub passthrough: bool,
}

/// What a target session does for the full copy and backfills.
#[async_trait]
pub trait BulkTarget: Send {
    /// Loads everything `rx` delivers, inside the transaction this session has
    /// open (it neither commits nor rolls back), and returns the rows loaded.
    async fn bulk_load(&mut self, load: BulkLoad<'_>, rx: Receiver<Batch>) -> Result<u64>;
}
