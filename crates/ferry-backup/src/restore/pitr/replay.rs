//! Replaying archived transactions into a restored database: piece by piece, event
//! by event, through the engine's change applier ([`Applier`]), which commits the
//! position of the last source transaction of each group in the same target
//! transaction as its rows (the restore task's record in `ferry.tasks`): a re-run
//! skips every transaction at or before that position, so each is applied exactly
//! once, whole.
//!
//! Which transactions of a piece are replayed is decided before its rows are: a
//! piece where the base set's position, the resumed position or the restore point
//! falls is read twice — first its commits only, to decide each transaction, then
//! its rows — so no transaction is ever held in memory.

use super::super::precheck::RestoreTable;
use super::rfc_us;
use crate::log::index::{self, PieceEntry};
use crate::log::piece::PieceReader;
use crate::log::point::gtid_seq;
use crate::log::RestorePoint;
use crate::repo::Repo;
use ferry_core::change::{Cell, Event, RowOp, Shape};
use ferry_core::{Engine, Error, LogicalType, Position, Result, TableId, TaskSpec, Value};
use ferry_engine::checkpoint::{end_fenced_writers, CheckpointStore, Claim, Fence, TaskPhase};
use ferry_engine::conn::{Conn, Role};
use ferry_engine::schema::mapping::NameMap;
use ferry_engine::stream::apply::Applier;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A target transaction commits at a source commit once it holds this many
/// source transactions or has been open this long.
const GROUP_TXNS: u64 = 200;
const GROUP_TIME: Duration = Duration::from_millis(500);
/// How often progress is logged.
const LOG_EVERY: Duration = Duration::from_secs(5);

/// What a replay did.
#[derive(Debug, Clone, Default)]
pub struct Replayed {
    /// Source transactions committed on the target by this run.
    pub txns: u64,
    /// Row changes committed by this run.
    pub rows: u64,
    /// The position the target is at (after the last replayed transaction).
    pub position: Option<Position>,
    /// Commit time of the last replayed transaction.
    pub commit_us: Option<i64>,
    /// The position an interrupted run had reached, when this run resumed it.
    pub resumed_at: Option<Position>,
}

/// What to do with one transaction of a piece.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// The base set (or an interrupted run) holds it.
    Skip,
    /// Replay it.
    Apply,
    /// It is after the point: stop before it.
    Stop,
}

/// Decides transactions by where they are: which the base (or the resumed
/// position) holds, which the point includes.
#[derive(Debug, Clone)]
pub struct Decider {
    /// The base set's position.
    pub base: Position,
    /// The source engine (PostgreSQL: the Begin marker rule).
    pub from: Engine,
    /// The interrupted run's last committed position.
    pub resume: Option<Position>,
    /// Where to stop.
    pub point: RestorePoint,
    /// The last commit time seen (a transaction without one is taken at it).
    pub last_time: Option<i64>,
}

impl Decider {
    /// Whether the base set (or the resumed run) already holds a transaction
    /// whose `Begin` carried `marker` and which ends at `commit`. A PostgreSQL
    /// snapshot at `W` holds a transaction exactly when its marker (its commit
    /// record) is before `W` ([`Event::Begin`]).
    pub fn held(&self, marker: Option<&Position>, commit: &Position) -> bool {
        self.base.reached(commit)
            || (self.from == Engine::Postgres && marker.is_some_and(|m| !m.reached(&self.base)))
            || self.resume.as_ref().is_some_and(|r| r.reached(commit))
    }

    /// The latest instant a transaction stamped `time` may have committed at: a
    /// binlog stamps whole seconds, so one stamped 10:15:00 committed before
    /// 10:15:01 — a time point includes it only from 10:15:00.999999 on (never a
    /// transaction that may have committed after the point).
    pub fn latest(&self, time: Option<i64>) -> Option<i64> {
        match self.from {
            Engine::MySql => time.map(|t| t + 999_999),
            Engine::Postgres => time,
        }
    }

    /// Whether the point includes a transaction ending at `commit` at `time`.
    pub fn includes(&mut self, commit: &Position, time: Option<i64>) -> Result<bool> {
        if time.is_some() {
            self.last_time = time;
        }
        let time = self.latest(time.or(self.last_time));
        match self.point.includes(commit, time) {
            Some(b) => Ok(b),
            None => match &self.point {
                // no commit time known yet: before every archived one
                RestorePoint::Time(_) => Ok(true),
                RestorePoint::Gtid { domain, .. } => match commit {
                    Position::Binlog { gtid, .. } if gtid_seq(gtid, *domain).is_none() => {
                        // no transaction of the domain yet
                        Ok(true)
                    }
                    _ => Err(Error::definite(format!(
                        "the archived transaction ending at {commit} carries no GTID: a GTID \
                         cannot place it"
                    ))
                    .with_hint("restore to a time or a position instead")),
                },
                _ => Err(Error::definite(format!(
                    "restore point {} cannot be compared with {commit} (a Ferry bug)",
                    self.point
                ))),
            },
        }
    }

    /// The decision for one transaction.
    pub fn decide(
        &mut self,
        marker: Option<&Position>,
        commit: &Position,
        time: Option<i64>,
    ) -> Result<Decision> {
        if self.held(marker, commit) {
            if time.is_some() {
                self.last_time = time;
            }
            return Ok(Decision::Skip);
        }
        Ok(if self.includes(commit, time)? {
            Decision::Apply
        } else {
            Decision::Stop
        })
    }
}

/// The decisions for every transaction of a piece (its commits only are looked at).
pub fn scan_piece(reader: &mut PieceReader, d: &mut Decider) -> Result<Vec<Decision>> {
    let mut out = Vec::new();
    let mut marker = None;
    while let Some(ev) = reader.next_event()? {
        match ev {
            Event::Begin { marker: m, .. } => marker = m,
            Event::Commit {
                position,
                commit_time_us,
            } => {
                let dec = d.decide(marker.take().as_ref(), &position, commit_time_us)?;
                out.push(dec);
                if dec == Decision::Stop {
                    break;
                }
            }
            _ => {}
        }
    }
    Ok(out)
}

/// Whether a piece must be scanned before it is applied: the base, the resumed
/// position or the point may fall inside it.
fn needs_scan(e: &PieceEntry, d: &Decider) -> bool {
    let (Ok(start), Ok(end)) = (Position::parse(&e.start), Position::parse(&e.end)) else {
        return true;
    };
    let after_floor = start.reached(&d.base) && d.resume.as_ref().is_none_or(|r| start.reached(r));
    let inside = d.point.includes(&end, d.latest(e.last_commit_us)) == Some(true);
    !(after_floor && inside)
}

/// Array values of a PostgreSQL source restored into PostgreSQL: the archive holds
/// them as JSON (the form for engines without arrays); PostgreSQL takes its own
/// array text, as the set's rows do.
fn native_arrays(shape: &Shape, op: RowOp) -> RowOp {
    let arrays: Vec<usize> = shape
        .columns
        .iter()
        .enumerate()
        .filter(|(_, c)| matches!(c.logical, LogicalType::Array(_)))
        .map(|(i, _)| i)
        .collect();
    if arrays.is_empty() {
        return op;
    }
    let fix = |mut row: Vec<Value>| {
        super::super::native_arrays(&mut row, &arrays);
        row
    };
    match op {
        RowOp::Insert(r) => RowOp::Insert(fix(r)),
        RowOp::Delete(r) => RowOp::Delete(fix(r)),
        RowOp::Update { old, new } => RowOp::Update {
            old: old.map(fix),
            new: new
                .into_iter()
                .enumerate()
                .map(|(i, c)| match c {
                    Cell::Value(v) if arrays.contains(&i) => {
                        let mut one = [v];
                        super::super::native_arrays(&mut one, &[0]);
                        let [v] = one;
                        Cell::Value(v)
                    }
                    c => c,
                })
                .collect(),
        },
    }
}

/// Whether a schema statement names table `t` (as `name`, `schema.name`, quoted or
/// not).
pub fn statement_names(statement: &str, t: &TableId) -> bool {
    let words: Vec<String> = statement
        .split(|c: char| !(c.is_alphanumeric() || c == '_' || c == '$' || c == '.'))
        .filter(|w| !w.is_empty())
        .map(|w| w.to_lowercase())
        .collect();
    let name = t.name.to_lowercase();
    let full = format!("{}.{}", t.schema.to_lowercase(), name);
    let stripped: Vec<String> = statement
        .replace(['`', '"'], "")
        .split(|c: char| !(c.is_alphanumeric() || c == '_' || c == '$' || c == '.'))
        .filter(|w| !w.is_empty())
        .map(|w| w.to_lowercase())
        .collect();
    words
        .iter()
        .chain(&stripped)
        .any(|w| *w == name || *w == full)
}

/// A restored table changed shape before the point: the replay cannot follow it.
fn changed(table: &TableId, what: &str, commit: Option<(&Position, Option<i64>)>) -> Error {
    let when = match commit {
        Some((p, Some(t))) => format!("in the transaction committed {} (at {p})", rfc_us(t)),
        Some((p, None)) => format!("in the transaction ending at {p}"),
        None => "in the archive".to_string(),
    };
    Error::definite(format!(
        "table {table} changed {when}: {what}; a point-in-time restore replays rows, not \
         schema changes"
    ))
    .with_hint("restore to a point before that change (or exclude the table with --exclude)")
}

/// Reads on from a schema change to its transaction's commit (for the message).
fn commit_after(reader: &mut PieceReader) -> Option<(Position, Option<i64>)> {
    while let Ok(Some(ev)) = reader.next_event() {
        if let Event::Commit {
            position,
            commit_time_us,
        } = ev
        {
            return Some((position, commit_time_us));
        }
    }
    None
}

/// Opens a stored piece off the async workers (decompression).
async fn open_piece(repo: &Repo, bytes: bytes::Bytes, what: String) -> Result<PieceReader> {
    let cipher = repo.cipher.clone();
    tokio::task::spawn_blocking(move || PieceReader::open(&bytes, cipher.as_ref(), &what))
        .await
        .map_err(|e| Error::definite(format!("decoding a log piece crashed: {e}")))?
}

/// Replays `pieces` of `cluster` into the restore's target, from after `base` (and
/// after what an interrupted run committed) to `point`; records the restore as
/// finished (`ended`) at the end.
#[allow(clippy::too_many_arguments)]
pub async fn replay(
    repo: &Repo,
    cluster: &str,
    spec: &TaskSpec,
    from: Engine,
    tables: &[RestoreTable],
    pieces: &[PieceEntry],
    base: &Position,
    point: &RestorePoint,
) -> Result<Replayed> {
    let mut dst = Conn::open(spec, Role::Target).await?;
    dst.ensure().await?;
    let fence = Fence::claim(&mut dst, &spec.name, &Claim::default()).await?;
    end_fenced_writers(&mut dst, &spec.name).await?;
    let record = dst.task(&spec.name).await?;
    let resume = match &record {
        Some(r) if r.phase == TaskPhase::Incremental => r.position.clone(),
        _ => None,
    };
    let models: Vec<ferry_core::Table> = tables.iter().map(|t| t.table.clone()).collect();
    let names = NameMap::new(spec, &models);
    let restored: HashSet<TableId> = models.iter().map(|t| t.id.clone()).collect();
    let arrays = from == Engine::Postgres && spec.target.engine == Engine::Postgres;
    let mut applier = Applier::new(dst, from, fence, names).await?;
    let mut d = Decider {
        base: base.clone(),
        from,
        resume: resume.clone(),
        point: point.clone(),
        last_time: None,
    };
    let mut out = Replayed {
        resumed_at: resume.clone(),
        position: resume.clone(),
        ..Default::default()
    };
    let result = replay_pieces(
        repo,
        cluster,
        pieces,
        &mut applier,
        &mut d,
        &restored,
        arrays,
        &mut out,
    )
    .await;
    if let Err(e) = result {
        applier.rollback().await;
        return Err(e);
    }
    out.txns = applier.applied.txns;
    out.rows = applier.applied.rows;
    // counters (sequences, auto-increment) past the rows the replay added
    let dst = applier.conn();
    for t in tables {
        for stmt in &t.ddl.counters {
            if let Err(e) = dst.exec(stmt).await {
                tracing::warn!("{}: {stmt}: {}", t.target, e.message);
            }
        }
    }
    dst.set_task(&spec.name, TaskPhase::Ended, out.position.as_ref())
        .await?;
    Ok(out)
}

/// The replay loop over the pieces.
#[allow(clippy::too_many_arguments)]
async fn replay_pieces(
    repo: &Repo,
    cluster: &str,
    pieces: &[PieceEntry],
    applier: &mut Applier,
    d: &mut Decider,
    restored: &HashSet<TableId>,
    arrays: bool,
    out: &mut Replayed,
) -> Result<()> {
    let mut pending: Option<(Position, Option<i64>)> = None;
    let mut open_since: Option<Instant> = None;
    let mut last_log = Instant::now();
    let mut stopped = false;
    for e in pieces {
        if stopped {
            break;
        }
        let bytes = index::read_piece(repo, cluster, e).await?;
        let what = format!("log piece {} of cluster {cluster}", e.piece);
        let decisions = if needs_scan(e, d) {
            let mut r = open_piece(repo, bytes.clone(), what.clone()).await?;
            Some(scan_piece(&mut r, d)?)
        } else {
            None
        };
        if decisions
            .as_ref()
            .is_some_and(|v| v.iter().all(|x| *x == Decision::Skip) && v.len() as u64 == e.txns)
        {
            continue;
        }
        let mut reader = open_piece(repo, bytes, what).await?;
        // the transaction being read: its index in the piece and whether it applies
        let mut k = 0usize;
        let mut announced = false;
        while let Some(ev) = reader.next_event()? {
            // a scanned piece's transactions past its decisions are after the point
            let dec = match &decisions {
                Some(v) => v.get(k).copied().unwrap_or(Decision::Stop),
                None => Decision::Apply,
            };
            if dec == Decision::Stop {
                stopped = true;
                break;
            }
            let apply = dec == Decision::Apply;
            match ev {
                Event::Begin { marker, .. } => {
                    if apply {
                        applier.source_transaction(marker);
                        announced = true;
                    }
                }
                Event::Row { shape, op } => {
                    if apply && restored.contains(&shape.table) {
                        if !announced {
                            applier.source_transaction(None);
                            announced = true;
                        }
                        let op = if arrays {
                            native_arrays(&shape, op)
                        } else {
                            op
                        };
                        applier.row(&shape, op).await?;
                        open_since.get_or_insert_with(Instant::now);
                    }
                }
                Event::Truncate(ts) => {
                    let ts: Vec<TableId> =
                        ts.into_iter().filter(|t| restored.contains(t)).collect();
                    if apply && !ts.is_empty() {
                        applier.truncate(&ts).await?;
                        open_since.get_or_insert_with(Instant::now);
                    }
                }
                Event::Reshape { old, new } => {
                    if apply && (restored.contains(&new.table) || restored.contains(&old.table)) {
                        let what = describe_reshape(&old, &new);
                        let c = commit_after(&mut reader);
                        return Err(changed(&new.table, &what, c.as_ref().map(|(p, t)| (p, *t))));
                    }
                }
                Event::Ddl { statement, .. } => {
                    if apply {
                        if let Some(t) = restored.iter().find(|t| statement_names(&statement, t)) {
                            let c = commit_after(&mut reader);
                            return Err(changed(
                                t,
                                &format!("the source ran `{}`", shorten(&statement)),
                                c.as_ref().map(|(p, t)| (p, *t)),
                            ));
                        }
                    }
                }
                Event::Commit {
                    position,
                    commit_time_us,
                } => {
                    k += 1;
                    announced = false;
                    if apply {
                        if decisions.is_none() {
                            // no scan: every transaction of the piece is inside; the
                            // decider still learns the commit times
                            d.includes(&position, commit_time_us)?;
                        }
                        applier.end_source_txn();
                        pending = Some((position, commit_time_us));
                        open_since.get_or_insert_with(Instant::now);
                        let due = applier.open_txns() >= GROUP_TXNS
                            || open_since.is_some_and(|t| t.elapsed() >= GROUP_TIME);
                        if due {
                            if let Some((p, t)) = pending.take() {
                                commit(applier, &p, t, out).await?;
                                open_since = None;
                            }
                        }
                    }
                }
                Event::Idle { .. } => {}
                Event::InProgress { xid, .. } => {
                    return Err(ferry_core::change::in_progress_not_requested(xid))
                }
            }
            if last_log.elapsed() >= LOG_EVERY {
                last_log = Instant::now();
                tracing::info!(
                    "replay: piece {}, {} transaction(s), {} row change(s) committed{}",
                    e.piece,
                    applier.applied.txns,
                    applier.applied.rows,
                    out.commit_us
                        .map(|t| format!(", at {}", rfc_us(t)))
                        .unwrap_or_default()
                );
            }
        }
        if decisions
            .as_ref()
            .is_some_and(|v| v.last() == Some(&Decision::Stop))
        {
            stopped = true;
        }
    }
    if let Some((p, t)) = pending.take() {
        commit(applier, &p, t, out).await?;
    }
    Ok(())
}

/// Commits the open group at its last source transaction's position.
async fn commit(
    applier: &mut Applier,
    position: &Position,
    time: Option<i64>,
    out: &mut Replayed,
) -> Result<()> {
    applier.commit(position, time).await?;
    out.position = Some(position.clone());
    if time.is_some() {
        out.commit_us = time;
    }
    Ok(())
}

fn describe_reshape(old: &Arc<Shape>, new: &Arc<Shape>) -> String {
    let names = |s: &Shape| {
        s.columns
            .iter()
            .map(|c| c.name.clone())
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!("its columns went from ({}) to ({})", names(old), names(new))
}

fn shorten(s: &str) -> String {
    if s.chars().count() > 200 {
        format!("{}…", s.chars().take(200).collect::<String>())
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::piece::PieceWriter;
    use ferry_core::Column;

    fn shape() -> Arc<Shape> {
        Arc::new(Shape {
            table: TableId::new("app", "t"),
            columns: vec![
                Column::new(
                    "id",
                    "bigint",
                    LogicalType::Int {
                        bytes: 8,
                        unsigned: false,
                    },
                ),
                Column::new("v", "text", LogicalType::Text),
            ],
            key: vec![0],
        })
    }

    /// A piece of `n` transactions: transaction i begins at marker 100·i+50 and
    /// ends at 100·(i+1), committed at second i.
    fn piece(n: u64) -> Vec<u8> {
        let s = shape();
        let mut w = PieceWriter::new();
        for i in 0..n {
            w.event(&Event::Begin {
                marker: Some(Position::PgLsn(100 * i + 50)),
                xid: Some(i as u32),
            })
            .unwrap();
            w.event(&Event::Row {
                shape: s.clone(),
                op: RowOp::Insert(vec![Value::Int(i as i64), Value::Text(format!("r{i}"))]),
            })
            .unwrap();
            w.event(&Event::Commit {
                position: Position::PgLsn(100 * (i + 1)),
                commit_time_us: Some(i as i64 * 1_000_000),
            })
            .unwrap();
        }
        w.finish(None).unwrap().bytes.to_vec()
    }

    fn decider(base: u64, resume: Option<u64>, point: RestorePoint) -> Decider {
        Decider {
            base: Position::PgLsn(base),
            from: Engine::Postgres,
            resume: resume.map(Position::PgLsn),
            point,
            last_time: None,
        }
    }

    fn scan(bytes: &[u8], d: &mut Decider) -> Vec<Decision> {
        let mut r = PieceReader::open(bytes, None, "piece").unwrap();
        scan_piece(&mut r, d).unwrap()
    }

    use Decision::{Apply, Skip, Stop};

    #[test]
    fn transactions_the_base_holds_are_skipped_and_the_point_stops_the_replay() {
        let p = piece(6);
        // base at 200: transactions 0 and 1 end at or before it
        let mut d = decider(200, None, RestorePoint::Time(3_000_000));
        assert_eq!(scan(&p, &mut d), vec![Skip, Skip, Apply, Apply, Stop]);
        // the Begin marker rule: a snapshot at 260 holds transaction 2 (marker 250)
        let mut d = decider(260, None, RestorePoint::Time(10_000_000));
        assert_eq!(
            scan(&p, &mut d),
            vec![Skip, Skip, Skip, Apply, Apply, Apply]
        );
        // a resumed replay skips what it committed; a position point is inclusive
        let mut d = decider(100, Some(400), RestorePoint::Position(Position::PgLsn(500)));
        assert_eq!(scan(&p, &mut d), vec![Skip, Skip, Skip, Skip, Apply, Stop]);
        // a point before the first transaction applies nothing
        let mut d = decider(0, None, RestorePoint::Position(Position::PgLsn(99)));
        assert_eq!(scan(&p, &mut d), vec![Stop]);
        // a MySQL source has no marker rule, and its commit times are whole
        // seconds: the transaction stamped second 3 may have committed after 3.5
        let mut d = decider(260, None, RestorePoint::Time(3_500_000));
        d.from = Engine::MySql;
        assert_eq!(scan(&p, &mut d), vec![Skip, Skip, Apply, Stop]);
        let mut d = decider(260, None, RestorePoint::Time(3_999_999));
        d.from = Engine::MySql;
        assert_eq!(scan(&p, &mut d), vec![Skip, Skip, Apply, Apply, Stop]);
    }

    #[test]
    fn pieces_inside_every_bound_are_not_scanned() {
        let e = |start: u64, end: u64, last: i64| PieceEntry {
            piece: 0,
            start: Position::PgLsn(start).to_string(),
            end: Position::PgLsn(end).to_string(),
            first_commit_us: Some(0),
            last_commit_us: Some(last),
            txns: 1,
            rows: 1,
            bytes: 0,
            raw_bytes: 0,
            sha256: String::new(),
            stored_at: String::new(),
            method: "logical".into(),
            engine: "postgres".into(),
        };
        let d = decider(200, None, RestorePoint::Time(5_000_000));
        assert!(!needs_scan(&e(200, 400, 4_000_000), &d));
        assert!(needs_scan(&e(100, 400, 4_000_000), &d));
        assert!(needs_scan(&e(200, 400, 6_000_000), &d));
        let d = decider(200, Some(300), RestorePoint::Time(5_000_000));
        assert!(needs_scan(&e(200, 400, 4_000_000), &d));
    }

    #[test]
    fn gtid_points_compare_the_domain_sequence() {
        let at = |g: &str, pos: u64| Position::Binlog {
            file: "b.000001".into(),
            pos,
            gtid: g.into(),
        };
        let mut d = Decider {
            base: at("0-1-10", 1000),
            from: Engine::MySql,
            resume: None,
            point: RestorePoint::Gtid {
                domain: 0,
                server: 1,
                seq: 12,
            },
            last_time: None,
        };
        assert_eq!(d.decide(None, &at("0-1-10", 1000), None).unwrap(), Skip);
        assert_eq!(d.decide(None, &at("0-1-11", 1100), None).unwrap(), Apply);
        assert_eq!(d.decide(None, &at("0-1-12", 1200), None).unwrap(), Apply);
        assert_eq!(d.decide(None, &at("0-1-13", 1300), None).unwrap(), Stop);
        assert!(d.decide(None, &Position::PgLsn(1), None).is_err());
    }

    #[test]
    fn statements_name_tables_quoted_or_not() {
        let t = TableId::new("shop", "orders");
        assert!(statement_names("ALTER TABLE `orders` ADD c INT", &t));
        assert!(statement_names("alter table shop.orders drop column x", &t));
        assert!(statement_names("ALTER TABLE `shop`.`orders` ADD c INT", &t));
        assert!(!statement_names("ALTER TABLE orders_old ADD c INT", &t));
        assert!(!statement_names("CREATE TABLE other (id int)", &t));
    }

    #[test]
    fn postgres_arrays_become_array_text() {
        let s = Arc::new(Shape {
            table: TableId::new("app", "a"),
            columns: vec![
                Column::new(
                    "id",
                    "int",
                    LogicalType::Int {
                        bytes: 4,
                        unsigned: false,
                    },
                ),
                Column::new(
                    "tags",
                    "text[]",
                    LogicalType::Array(Box::new(LogicalType::Text)),
                ),
            ],
            key: vec![0],
        });
        let op = native_arrays(
            &s,
            RowOp::Update {
                old: None,
                new: vec![
                    Cell::Value(Value::Int(1)),
                    Cell::Value(Value::Json(r#"["a","b c"]"#.into())),
                ],
            },
        );
        match op {
            RowOp::Update { new, .. } => {
                assert_eq!(new[1], Cell::Value(Value::Text(r#"{"a","b c"}"#.into())))
            }
            _ => panic!("an update"),
        }
    }
}
