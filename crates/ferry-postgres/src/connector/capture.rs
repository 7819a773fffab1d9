//! Postgres: the change log — WAL positions, the task's logical slot and
//! publication, the `pgoutput` stream, and MVCC snapshots for backfill chunks.

use super::Postgres;
use crate::cdc;
use crate::replication::ReplConn;
use crate::PgConn;
use ferry_connector::{
    async_trait, Capture, Connection, DdlChange, Retention, Seen, SlotStart, SlotState, TaskSlot,
    TxSnapshot,
};
use ferry_core::change::{Event, StreamFeatures};
use ferry_core::{Endpoint, Engine, Error, Position, Result, Table, TaskSpec};
use tokio::sync::{mpsc, watch};

/// A source session, named so in a connection error (as the engine names it).
async fn source(spec: &TaskSpec) -> Result<PgConn> {
    crate::connect(&spec.source)
        .await
        .map_err(|e| e.context("source"))
}

#[async_trait]
impl Capture for Postgres {
    async fn head(&self, spec: &TaskSpec) -> Result<Position> {
        let c = source(spec).await?;
        Ok(Position::PgLsn(cdc::current_lsn(&c).await?))
    }

    async fn catch_up_goal(&self, spec: &TaskSpec) -> Result<Position> {
        // a marker's commit arrives after everything committed before it
        let c = source(spec).await?;
        Ok(Position::PgLsn(
            cdc::emit_marker(&c, "caught-up probe").await?,
        ))
    }

    fn slot_name(&self, spec: &TaskSpec) -> Option<String> {
        Some(cdc::slot_name(&spec.name))
    }

    async fn task_slot(&self, spec: &TaskSpec) -> Result<Option<Box<dyn TaskSlot>>> {
        let conn = crate::connect(&spec.source).await?;
        Ok(Some(Box::new(PgSlot {
            name: cdc::slot_name(&spec.name),
            conn,
            source: spec.source.clone(),
        })))
    }

    async fn stream(
        &self,
        spec: &TaskSpec,
        start: &Position,
        tables: Vec<Table>,
        tx: &mpsc::Sender<Event>,
        mut acked: watch::Receiver<Option<Position>>,
        features: StreamFeatures,
    ) -> Result<()> {
        let Position::PgLsn(lsn) = start else {
            return Err(Error::definite(format!(
                "the stored position {start} does not belong to a {} source",
                spec.source.engine
            )));
        };
        let slot = cdc::slot_name(&spec.name);
        let catalog = crate::connect(&spec.source).await?;
        cdc::verify_slot(&catalog, &slot).await?;
        // parts of in-progress transactions: asked for by the caller, and sent by
        // PostgreSQL 14+ only (protocol version 2); older servers stream whole
        // transactions as before
        let in_progress = features.in_progress && server_version(&catalog).await? >= 140_000;
        let mut repl = ReplConn::connect(&spec.source).await?;
        let from = cdc::StreamFrom {
            slot: &slot,
            start: *lsn,
            tables,
            native_arrays: spec.target.engine == Engine::Postgres,
            in_progress,
        };
        // the stream reports LSNs: follow the engine's acknowledged positions
        let (lsn_tx, mut lsn_rx) = watch::channel(lsn_of(acked.borrow().as_ref()).unwrap_or(0));
        let forward = async {
            while acked.changed().await.is_ok() {
                if let Some(l) = lsn_of(acked.borrow().as_ref()) {
                    lsn_tx.send_replace(l);
                }
            }
            // the applier is gone: the stream ends when `tx` closes
            std::future::pending::<()>().await
        };
        tokio::select! {
            r = cdc::stream(&mut repl, &catalog, from, tx, &mut lsn_rx) => r,
            _ = forward => unreachable!("forwarding never ends"),
        }
    }

    async fn chunk_snapshot(&self, _spec: &TaskSpec, conn: &mut dyn Connection) -> Result<Seen> {
        conn.exec("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .await?;
        let rows = conn
            .query_text("SELECT pg_current_snapshot()::text")
            .await?;
        let text = rows
            .into_iter()
            .next()
            .and_then(|r| r.into_iter().next().flatten())
            .unwrap_or_default();
        let snap = TxSnapshot::parse(&text)
            .ok_or_else(|| Error::definite(format!("unexpected snapshot {text:?}")))?;
        Ok(Seen::Txids(snap))
    }

    async fn chunk_until(&self, conn: &mut dyn Connection, seen: &Seen) -> Result<Position> {
        match seen {
            Seen::Before(p) => Ok(p.clone()),
            Seen::Txids(_) => {
                // written after the snapshot: its commit follows everything it saw
                let rows = conn
                    .query_text(
                        "SELECT pg_logical_emit_message(true, 'ferry', 'backfill chunk'::text)::text",
                    )
                    .await?;
                let s = rows
                    .into_iter()
                    .next()
                    .and_then(|r| r.into_iter().next().flatten())
                    .unwrap_or_default();
                ferry_core::position::parse_lsn(&s)
                    .map(Position::PgLsn)
                    .ok_or_else(|| Error::definite(format!("unexpected LSN {s:?}")))
            }
        }
    }

    fn classify_ddl(&self, _schema: &str, _statement: &str) -> DdlChange {
        // pgoutput carries no DDL statements
        DdlChange::Other
    }

    async fn retention(&self, spec: &TaskSpec, _applied: &Position) -> Result<Option<Retention>> {
        // the slot's restart_lsn, not the applied position, is what the source keeps
        let c = source(spec).await?;
        cdc::retention(&c, &cdc::slot_name(&spec.name)).await
    }
}

/// The server's `server_version_num` (e.g. 150004).
async fn server_version(conn: &PgConn) -> Result<u32> {
    let v: String = conn
        .client
        .query_one("SELECT current_setting('server_version_num')", &[])
        .await
        .map_err(crate::conn::classify)?
        .get(0);
    v.parse()
        .map_err(|_| Error::definite(format!("unexpected server_version_num {v:?}")))
}

/// The LSN of an acknowledged position, when it is one.
fn lsn_of(p: Option<&Position>) -> Option<u64> {
    match p {
        Some(Position::PgLsn(l)) => Some(*l),
        _ => None,
    }
}

/// The task's replication slot and publication, through one source session.
struct PgSlot {
    name: String,
    conn: PgConn,
    source: Endpoint,
}

#[async_trait]
impl TaskSlot for PgSlot {
    fn name(&self) -> &str {
        &self.name
    }

    async fn state(&self) -> Result<Option<SlotState>> {
        Ok(cdc::slot_state(&self.conn, &self.name)
            .await?
            .map(|s| SlotState {
                wal_status: s.wal_status,
                active: s.active,
                retained_bytes: s.retained_bytes,
            }))
    }

    async fn ensure_tables(&self, tables: &[Table]) -> Result<Vec<String>> {
        cdc::ensure_publication(&self.conn, &self.name, tables).await
    }

    async fn sync_tables(&self, tables: &[Table]) -> Result<()> {
        cdc::sync_publication(&self.conn, &self.name, tables).await
    }

    async fn verify(&self) -> Result<()> {
        cdc::verify_slot(&self.conn, &self.name).await.map(|_| ())
    }

    async fn create(&self, resume: bool) -> Result<Box<dyn SlotStart>> {
        let mut repl = ReplConn::connect(&self.source).await?;
        let (lsn, snapshot) = if resume {
            cdc::create_slot(&mut repl, &format!("{}_resume", self.name), true).await?
        } else {
            cdc::create_slot(&mut repl, &self.name, false).await?
        };
        Ok(Box::new(PgSlotStart {
            _repl: repl,
            snapshot,
            position: Position::PgLsn(lsn),
        }))
    }

    async fn drop_all(&self) -> Result<()> {
        cdc::drop_slot_and_publication(&self.conn, &self.name).await
    }

    fn drop_statement(&self) -> String {
        format!("SELECT pg_drop_replication_slot('{}')", self.name)
    }

    async fn advance(&self, to: &Position) -> Result<()> {
        let Position::PgLsn(l) = to else {
            return Ok(());
        };
        // a slot never moves backwards: only one still behind `to` is advanced
        let lsn = format!("{:X}/{:X}", l >> 32, l & 0xffff_ffff);
        self.conn
            .client
            .execute(
                &format!(
                    "SELECT pg_replication_slot_advance(slot_name, '{lsn}'::pg_lsn) \
                     FROM pg_replication_slots \
                     WHERE slot_name = $1 AND confirmed_flush_lsn < '{lsn}'::pg_lsn"
                ),
                &[&self.name],
            )
            .await
            .map_err(crate::conn::classify)
            .map_err(|e| e.context(format!("advancing replication slot {}", self.name)))?;
        Ok(())
    }
}

/// A created slot's exported snapshot, valid while its replication connection is open.
struct PgSlotStart {
    /// Held open: the snapshot lives until the next command on it, or its end.
    _repl: ReplConn,
    snapshot: String,
    position: Position,
}

impl SlotStart for PgSlotStart {
    fn snapshot(&self) -> &str {
        &self.snapshot
    }

    fn position(&self) -> &Position {
        &self.position
    }
}
