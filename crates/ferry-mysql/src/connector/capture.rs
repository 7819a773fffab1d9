//! MySQL/MariaDB: the change log — binlog positions, the binlog stream, consistent
//! snapshots at a binlog position for backfill chunks, and the DDL statements the
//! binlog carries. Nothing is kept on the source per task: a stream starts from a
//! position alone.

use super::MySql;
use ferry_connector::{async_trait, Capture, Connection, DdlChange, Retention, Seen, TaskSlot};
use ferry_core::change::{Event, StreamFeatures};
use ferry_core::{Error, Position, Result, Table, TaskSpec};
use tokio::sync::{mpsc, watch};

/// "No binary log" as the engine reports it.
fn no_binlog() -> Error {
    Error::definite("the source has no binary log").with_hint(
        "enable it in the server's configuration (log_bin = mysql-bin, binlog_format = ROW) \
         and restart the server",
    )
}

#[async_trait]
impl Capture for MySql {
    async fn head(&self, spec: &TaskSpec) -> Result<Position> {
        let mut c = crate::connect(&spec.source)
            .await
            .map_err(|e| e.context("source"))?;
        crate::reader::current_position(&mut c)
            .await?
            .ok_or_else(no_binlog)
    }

    async fn catch_up_goal(&self, spec: &TaskSpec) -> Result<Position> {
        // the binlog's end now: everything committed before is in the log before it
        self.head(spec).await
    }

    fn slot_name(&self, _spec: &TaskSpec) -> Option<String> {
        None
    }

    async fn task_slot(&self, _spec: &TaskSpec) -> Result<Option<Box<dyn TaskSlot>>> {
        Ok(None)
    }

    async fn stream(
        &self,
        spec: &TaskSpec,
        start: &Position,
        tables: Vec<Table>,
        tx: &mpsc::Sender<Event>,
        _acked: watch::Receiver<Option<Position>>,
        _features: StreamFeatures,
    ) -> Result<()> {
        if !matches!(start, Position::Binlog { .. }) {
            return Err(Error::definite(format!(
                "the stored position {start} does not belong to a {} source",
                spec.source.engine
            )));
        }
        crate::binlog::stream(
            &spec.source,
            &spec.name,
            start,
            spec.objects.clone(),
            tables,
            tx,
        )
        .await
    }

    async fn retention(&self, spec: &TaskSpec, applied: &Position) -> Result<Option<Retention>> {
        let Position::Binlog { file, .. } = applied else {
            return Ok(None);
        };
        let mut c = crate::connect(&spec.source)
            .await
            .map_err(|e| e.context("source"))?;
        crate::binlog::retention(&mut c, file).await.map(Some)
    }

    async fn chunk_snapshot(&self, spec: &TaskSpec, conn: &mut dyn Connection) -> Result<Seen> {
        let position = super::snapshot::chunk_snapshot(conn, &spec.source).await?;
        Ok(Seen::Before(position.ok_or_else(no_binlog)?))
    }

    async fn chunk_until(&self, _conn: &mut dyn Connection, seen: &Seen) -> Result<Position> {
        match seen {
            Seen::Before(p) => Ok(p.clone()),
            Seen::Txids(_) => Err(Error::definite(
                "a snapshot by transaction id does not come from MySQL/MariaDB",
            )),
        }
    }

    fn classify_ddl(&self, schema: &str, statement: &str) -> DdlChange {
        classify(schema, statement)
    }
}

/// `CREATE TABLE` / `DROP TABLE` (the first two words) of a table the statement
/// names; anything else is [`DdlChange::Other`].
fn classify(schema: &str, statement: &str) -> DdlChange {
    let words = crate::binlog::ddl_words(statement);
    let up: Vec<String> = words
        .iter()
        .take(2)
        .map(|w| w.to_ascii_uppercase())
        .collect();
    let table = crate::binlog::ddl_table(&words, schema);
    let (Some(table), [verb, object]) = (table, up.as_slice()) else {
        return DdlChange::Other;
    };
    match (verb.as_str(), object.as_str()) {
        ("CREATE", "TABLE") => DdlChange::CreateTable(table),
        ("DROP", "TABLE") => DdlChange::DropTable(table),
        _ => DdlChange::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_core::TableId;

    #[test]
    fn classifies_create_and_drop_table_only() {
        assert_eq!(
            classify("db", "CREATE TABLE IF NOT EXISTS `a b` (id int)"),
            DdlChange::CreateTable(TableId::new("db", "a b"))
        );
        assert_eq!(
            classify("db", "drop table other.t"),
            DdlChange::DropTable(TableId::new("other", "t"))
        );
        assert_eq!(classify("db", "ALTER TABLE t ADD c int"), DdlChange::Other);
        assert_eq!(
            classify("db", "CREATE TEMPORARY TABLE t (id int)"),
            DdlChange::Other
        );
        assert_eq!(classify("db", "CREATE"), DdlChange::Other);
    }
}
