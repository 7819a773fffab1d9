//! Point-in-time restore: the newest set chain taken before the restore point,
//! then the archived transactions after it, up to the point — whole transactions,
//! exactly once, through the engine's change applier.
//!
//! The restore runs as one task on the target (its name), through these phases:
//! `full` while the chain's files are restored ([`super::set`]), `done` once the
//! chain is in, `incremental` while the archive is replayed — every target commit
//! records the position of its last source transaction in the same transaction as
//! its rows, so a re-run skips exactly what is committed — and `ended` when the
//! point is reached. Re-running the same command resumes at whichever phase the
//! target records.
//!
//! - [`replay`] — the archive's transactions into the target.

pub mod replay;

use super::precheck::{check_target, plan_tables, precheck_chain, resolve_chain};
use super::{
    failed, manifest_engine, restore_spec, RestorePlan, RestoreReport, RestoreRequest, TableRestore,
};
use crate::log::index::{self, LogArchive, PieceEntry};
use crate::log::point::gtid_seq;
use crate::log::window::{self, RestoreWindow, Run};
use crate::log::RestorePoint;
use crate::manifest::{Manifest, SetKind};
use crate::repo::Repo;
use ferry_core::{Engine, Error, ExistingData, Position, Result};
use ferry_engine::checkpoint::{CheckpointStore, TaskPhase};
use ferry_engine::conn::Conn;
use std::time::Instant;

/// A set's `consistent_at` is the wall time (whole seconds, rounded down) read
/// just after its snapshot: every transaction it holds committed before that
/// second ends.
const SET_TIME_SLACK_US: i64 = 999_999;

fn pos(s: &str) -> Option<Position> {
    Position::parse(s).ok()
}

/// `us` as RFC 3339 (milliseconds when it has them).
pub(crate) fn rfc_us(us: i64) -> String {
    chrono::DateTime::from_timestamp_micros(us)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

fn parse_rfc(s: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.timestamp_micros())
}

/// One restorable window with what the precheck needs of it.
struct Win {
    shown: RestoreWindow,
    run: Run,
    /// Where the run starts and ends (the head's end for the newest run).
    start: Position,
    end: Position,
    /// Latest backup point of the run (µs).
    through_us: Option<i64>,
    /// The window's full set is consistent from (µs, with its slack).
    from_us: Option<i64>,
    from_position: Position,
}

impl Win {
    fn describe(&self) -> String {
        let w = &self.shown;
        format!(
            "{} ({}, set {}) – {} ({}){}",
            w.from_time.as_deref().unwrap_or("?"),
            w.from_position,
            w.from_set,
            w.to_time.as_deref().unwrap_or("?"),
            w.to_position,
            w.ended_by
                .as_deref()
                .map(|r| format!(", ended by: {r}"))
                .unwrap_or_default()
        )
    }

    /// Whether `point` lies inside the window.
    fn contains(&self, point: &RestorePoint) -> Result<bool> {
        Ok(match point {
            RestorePoint::Time(t) => {
                self.from_us.is_some_and(|f| f <= *t) && self.through_us.is_some_and(|e| *t <= e)
            }
            RestorePoint::Position(p) => p.reached(&self.from_position) && self.end.reached(p),
            RestorePoint::Gtid { domain, seq, .. } => {
                let from = gtid_of(&self.from_position)
                    .and_then(|g| gtid_seq(&g, *domain))
                    .unwrap_or(0);
                let to = gtid_of(&self.end).and_then(|g| gtid_seq(&g, *domain));
                from <= *seq && to.is_some_and(|t| *seq <= t)
            }
            RestorePoint::Mark(m) => {
                return Err(Error::definite(format!(
                    "mark {m:?} was not resolved (a Ferry bug)"
                )))
            }
        })
    }
}

fn gtid_of(p: &Position) -> Option<String> {
    match p {
        Position::Binlog { gtid, .. } if !gtid.is_empty() => Some(gtid.clone()),
        _ => None,
    }
}

/// The windows of `archive` with their runs and bounds.
fn windows_of(sets: &[Manifest], archive: &LogArchive) -> Result<Vec<Win>> {
    let shown = window::windows(sets, archive)?;
    let runs = window::runs(archive);
    let mut out = Vec::new();
    for w in shown {
        let Some((ri, run)) = runs
            .iter()
            .enumerate()
            .find(|(_, r)| archive.pieces[r.first].piece == w.pieces.0)
        else {
            continue;
        };
        let first = &archive.pieces[run.first];
        let last = &archive.pieces[run.last];
        let (Some(start), Some(end), Some(from_position)) = (
            pos(&first.start),
            pos(&w.to_position),
            pos(&w.from_position),
        ) else {
            continue;
        };
        let newest = ri + 1 == runs.len();
        let through_us = match &archive.head {
            Some(h) if newest && pos(&h.end).is_some_and(|e| e.reached(&end)) => {
                Some(h.archived_through_us)
            }
            _ => last.last_commit_us,
        };
        let from_us = w.from_time.as_deref().and_then(parse_rfc);
        out.push(Win {
            shown: w,
            run: *run,
            start,
            end,
            through_us,
            from_us,
            from_position,
        });
    }
    Ok(out)
}

/// Whether a set consistent at `m`'s position and time holds only transactions at
/// or before `point`.
fn set_before(m: &Manifest, point: &RestorePoint) -> bool {
    let Some(p) = m.position.as_deref().and_then(pos) else {
        return false;
    };
    match point {
        RestorePoint::Time(t) => m
            .consistent_at
            .as_deref()
            .and_then(parse_rfc)
            .is_some_and(|c| c + SET_TIME_SLACK_US <= *t),
        RestorePoint::Position(q) => q.reached(&p),
        RestorePoint::Gtid { domain, seq, .. } => gtid_of(&p)
            .and_then(|g| gtid_seq(&g, *domain))
            .unwrap_or(0)
            .le(seq),
        RestorePoint::Mark(_) => false,
    }
}

/// Whether a piece ending at `e` holds only transactions at or before `point`.
fn piece_inside(e: &PieceEntry, point: &RestorePoint) -> bool {
    match pos(&e.end) {
        Some(end) => point.includes(&end, e.last_commit_us) == Some(true),
        None => false,
    }
}

/// Whether the first transaction of a piece may be at or before `point`.
fn piece_starts_inside(e: &PieceEntry, point: &RestorePoint) -> bool {
    match point {
        RestorePoint::Time(t) => e.first_commit_us.is_none_or(|f| f <= *t),
        RestorePoint::Position(q) => pos(&e.start).is_none_or(|s| !s.reached(q) || s == *q),
        _ => true,
    }
}

/// The point with a mark resolved to its position.
async fn resolve_point(
    repo: &Repo,
    cluster: &str,
    until: &RestorePoint,
) -> Result<(RestorePoint, Option<String>)> {
    match until {
        RestorePoint::Mark(name) => {
            let m = index::read_mark(repo, cluster, name).await?;
            let p = Position::parse(&m.position).map_err(|e| {
                failed(
                    format!("mark {name:?} of cluster {cluster}: {}", e.message),
                    "the mark is damaged: restore to a time or a position instead",
                )
            })?;
            Ok((
                RestorePoint::Position(p.clone()),
                Some(format!("mark {name} (made {}) is position {p}", m.at)),
            ))
        }
        p => Ok((p.clone(), None)),
    }
}

/// The precheck of a restore of `cluster` to `until`.
pub async fn precheck_pitr(
    repo: &Repo,
    req: &RestoreRequest,
    cluster: &str,
    until: &RestorePoint,
) -> Result<RestorePlan> {
    let (point, mark_note) = resolve_point(repo, cluster, until).await?;
    let archive = index::read_archive(repo, cluster).await?;
    if archive.pieces.is_empty() {
        return Err(failed(
            format!(
                "cluster {cluster} has no log archive in {}: only its sets can be restored",
                repo.storage.url()
            ),
            "archive the cluster's log (`ferry backup log run CLUSTER --source … --storage …`, \
             or `--log on` on its backup policy), take a full backup while it runs, then restore \
             to a point after that backup; or restore a set with --from SET",
        ));
    }
    let engine = archive.pieces[0].engine.clone();
    if matches!(point, RestorePoint::Gtid { .. }) && engine == "postgres" {
        return Err(failed(
            format!("cluster {cluster} is a PostgreSQL source: a GTID cannot name a point of it"),
            "give a time, a position (lsn:…) or a mark",
        ));
    }
    if matches!(point, RestorePoint::Position(Position::PgLsn(_))) && engine != "postgres"
        || matches!(point, RestorePoint::Position(Position::Binlog { .. })) && engine == "postgres"
    {
        return Err(failed(
            format!("restore point {point} is not a position of cluster {cluster}'s {engine} log"),
            "PostgreSQL positions are lsn:X/Y, MySQL/MariaDB ones binlog:FILE:POS",
        ));
    }
    let sets: Vec<Manifest> = repo
        .sets(Some(cluster))
        .await?
        .into_iter()
        .filter(|m| m.method == "logical")
        .collect();
    let wins = windows_of(&sets, &archive)?;
    if wins.is_empty() {
        let (a, b) = (
            archive.pieces[0].piece,
            archive.pieces[archive.pieces.len() - 1].piece,
        );
        return Err(failed(
            format!(
                "cluster {cluster} has no restorable window: its archive (pieces {a}–{b}) holds \
                 no full set with a log position taken while it ran"
            ),
            "take a full backup while the log archive runs (`ferry backup now CLUSTER`), then \
             restore to a point after it",
        ));
    }
    let list = || {
        wins.iter()
            .map(Win::describe)
            .collect::<Vec<_>>()
            .join("\n  ")
    };
    let mut inside = None;
    for w in wins.iter().rev() {
        if w.contains(&point)? {
            inside = Some(w);
            break;
        }
    }
    let Some(win) = inside else {
        return Err(failed(
            format!(
                "restore point {point} is outside the restorable windows of cluster {cluster}:\n  {}",
                list()
            ),
            "choose a point inside a window (a window starts a second after its full set is \
             consistent and ends at the latest backup point; `ferry backup list CLUSTER --kind window` \
             lists them)",
        ));
    };

    // the base: the newest set of the window's run consistent before the point
    let mut candidates: Vec<&Manifest> = sets
        .iter()
        .filter(|m| matches!(m.kind, SetKind::Full | SetKind::Incremental))
        .filter(|m| {
            m.position
                .as_deref()
                .and_then(pos)
                .is_some_and(|p| p.reached(&win.start) && win.end.reached(&p))
        })
        .filter(|m| set_before(m, &point))
        .collect();
    candidates.sort_by(|a, b| {
        let (pa, pb) = (
            a.position.as_deref().and_then(pos),
            b.position.as_deref().and_then(pos),
        );
        let ord = match (pa, pb) {
            (Some(x), Some(y)) if x == y => std::cmp::Ordering::Equal,
            (Some(x), Some(y)) if x.reached(&y) => std::cmp::Ordering::Greater,
            _ => std::cmp::Ordering::Less,
        };
        ord.then_with(|| (&a.finished_at, &a.id).cmp(&(&b.finished_at, &b.id)))
    });
    let mut chain = None;
    let mut skipped = Vec::new();
    for m in candidates.iter().rev() {
        match resolve_chain(repo, &m.id).await {
            Ok(c) => {
                chain = Some(c);
                break;
            }
            Err(e) => skipped.push(format!("set {} ({})", m.id, e.message)),
        }
    }
    let Some(chain) = chain else {
        return Err(failed(
            format!(
                "no set of cluster {cluster}'s window {} is consistent before {point}{}",
                win.describe(),
                if skipped.is_empty() {
                    String::new()
                } else {
                    format!(" with a complete chain: {}", skipped.join("; "))
                }
            ),
            "choose a later point (at least a second after the window's full set)",
        ));
    };
    let base = chain
        .last()
        .and_then(|m| m.position.as_deref())
        .and_then(pos)
        .ok_or_else(|| Error::definite("the base set has no position (a Ferry bug)"))?;

    // the pieces from the one holding the base position to the one holding the point
    let mut pieces = Vec::new();
    for e in &archive.pieces[win.run.first..=win.run.last] {
        if pos(&e.end).is_some_and(|end| base.reached(&end)) {
            continue;
        }
        if !piece_starts_inside(e, &point) {
            break;
        }
        pieces.push(e.clone());
        if !piece_inside(e, &point) {
            break;
        }
    }
    for e in &pieces {
        if let Err(err) = index::read_piece(repo, cluster, e).await {
            let past = e
                .first_commit_us
                .map(rfc_us)
                .unwrap_or_else(|| e.start.clone());
            return Err(failed(
                format!(
                    "{}; the window {} cannot be restored past {past}",
                    err.message,
                    win.describe()
                ),
                err.hint.as_deref().unwrap_or(
                    "restore to a point before this piece, or copy it back from a secondary storage",
                ),
            ));
        }
    }

    let mut plan = precheck_chain(repo, req, chain, false).await?;
    let from = manifest_engine(&plan.chain[0])?;
    check_pitr_target(req, &plan.chain, from, &point, &mut plan.warnings).await?;
    if let Some(n) = mark_note {
        plan.warnings.push(n);
    }
    let txns: u64 = pieces.iter().map(|p| p.txns).sum();
    plan.warnings.push(format!(
        "point-in-time restore of cluster {cluster} to {point}: set {} (consistent at {}), then \
         up to {txns} archived transaction(s) from {} piece(s); a point in time has no digest to \
         compare with — compare the restored database with the source as it was then",
        plan.chain.last().map(|m| m.id.as_str()).unwrap_or_default(),
        plan.chain
            .last()
            .and_then(|m| m.consistent_at.clone())
            .unwrap_or_else(|| base.to_string()),
        pieces.len()
    ));
    plan.pieces = pieces;
    plan.until = Some(point);
    Ok(plan)
}

/// What the target records of an earlier run of this restore.
async fn prior_phase(req: &RestoreRequest, from: Engine) -> Option<(TaskPhase, Option<Position>)> {
    let spec = restore_spec(req, from);
    let (mut dst, missing) = Conn::open_target_or_server(&spec).await.ok()?;
    if missing.is_some() {
        return None;
    }
    dst.task(&spec.name)
        .await
        .ok()
        .flatten()
        .map(|t| (t.phase, t.position))
}

/// The target's checks for a point-in-time restore: a new one as a set's restore;
/// an interrupted one resumes; a finished one is refused unless asked to start over.
async fn check_pitr_target(
    req: &RestoreRequest,
    chain: &[Manifest],
    from: Engine,
    point: &RestorePoint,
    warnings: &mut Vec<String>,
) -> Result<()> {
    let spec = restore_spec(req, from);
    match prior_phase(req, from).await {
        None | Some((TaskPhase::Full, _)) => {
            let mut w = Vec::new();
            let tables = plan_tables(chain, &spec, from, &mut w)?;
            check_target(&spec, &tables, warnings).await
        }
        Some((TaskPhase::Done, _)) => {
            warnings.push(format!(
                "restore {} was interrupted after its sets were restored: it resumes with the \
                 archive's transactions",
                req.name
            ));
            Ok(())
        }
        Some((TaskPhase::Incremental, at)) => {
            if let Some(p) = &at {
                if point.includes(p, None) == Some(false) {
                    return Err(failed(
                        format!(
                            "restore {} has already replayed the archive to {p}, past {point}",
                            req.name
                        ),
                        "restore into another database or use --existing-data drop to start over",
                    ));
                }
            }
            warnings.push(format!(
                "restore {} was interrupted while replaying the archive{}: it resumes after the \
                 last transaction the target holds",
                req.name,
                at.map(|p| format!(" (at {p})")).unwrap_or_default()
            ));
            Ok(())
        }
        Some((TaskPhase::Ended, _)) => {
            if matches!(
                req.existing_data,
                ExistingData::Drop | ExistingData::Truncate
            ) {
                warnings.push(format!(
                    "restore {} has finished before: it starts over (--existing-data {})",
                    req.name,
                    if req.existing_data == ExistingData::Drop {
                        "drop"
                    } else {
                        "truncate"
                    }
                ));
                Ok(())
            } else {
                Err(failed(
                    format!(
                        "restore {} has already finished on {}",
                        req.name, req.target
                    ),
                    "to restore again use --existing-data drop, or give the restore another --name",
                ))
            }
        }
    }
}

/// Restores what `plan` holds, then replays the archive to the point.
pub async fn restore_pitr(
    repo: &Repo,
    req: &RestoreRequest,
    plan: RestorePlan,
    progress: &(dyn Fn(&[TableRestore]) + Sync),
) -> Result<RestoreReport> {
    let started = Instant::now();
    let super::RestoreFrom::PointInTime { cluster, .. } = &req.from else {
        return Err(Error::definite(
            "a point-in-time restore of another kind of request (a Ferry bug)",
        ));
    };
    let point = plan.until.clone().ok_or_else(|| {
        Error::definite("a point-in-time restore without its point (a Ferry bug)")
    })?;
    if plan.chain.is_empty() {
        return Err(Error::definite(
            "a point-in-time restore without a set chain in its plan (a Ferry bug)",
        ));
    }
    let from = manifest_engine(&plan.chain[0])?;
    let spec = restore_spec(req, from);
    let prior = prior_phase(req, from).await;
    let mut report = match prior {
        Some((TaskPhase::Incremental, _)) | Some((TaskPhase::Done, _))
            if !matches!(
                req.existing_data,
                ExistingData::Drop | ExistingData::Truncate
            ) || matches!(prior, Some((TaskPhase::Incremental, _))) =>
        {
            // the chain is in: only the replay is left
            RestoreReport {
                resumed: true,
                ..Default::default()
            }
        }
        _ => {
            if let Some((TaskPhase::Ended, _)) = prior {
                // a finished restore started over: the set restore resets it
                let mut dst = Conn::open(&spec, ferry_engine::Role::Target).await?;
                dst.set_task(&spec.name, TaskPhase::Done, None).await?;
            }
            let set_plan = RestorePlan {
                chain: plan.chain.clone(),
                tables: plan.tables.clone(),
                ..Default::default()
            };
            super::set::restore_set(repo, req, set_plan, progress).await?
        }
    };
    let mut w = Vec::new();
    let tables = plan_tables(&plan.chain, &spec, from, &mut w)?;
    let base = plan
        .chain
        .last()
        .and_then(|m| m.position.as_deref())
        .and_then(pos)
        .ok_or_else(|| Error::definite("the base set has no position (a Ferry bug)"))?;
    let done = replay::replay(
        repo,
        cluster,
        &spec,
        from,
        &tables,
        &plan.pieces,
        &base,
        &point,
    )
    .await
    .map_err(|e| {
        if e.hint.is_some() {
            e
        } else {
            e.with_hint(
                "fix the cause and run the same restore again: it resumes after the last \
                 transaction the target holds",
            )
        }
    })?;
    report.rows += done.rows;
    report.seconds = started.elapsed().as_secs_f64();
    report.warnings.push(format!(
        "replayed {} transaction(s) ({} row change(s)) of the archive{}: the database is at {}{}",
        done.txns,
        done.rows,
        if done.resumed_at.is_some() {
            " after the interrupted run's"
        } else {
            ""
        },
        done.position
            .as_ref()
            .map(|p| p.to_string())
            .unwrap_or_else(|| base.to_string()),
        done.commit_us
            .map(|t| format!(" (committed {})", rfc_us(t)))
            .unwrap_or_default()
    ));
    report.warnings.push(
        "a point-in-time restore has no digest to compare: the set's tables were compared \
         before the replay; compare the database with its source as it was at the point"
            .to_string(),
    );
    if report.tables.is_empty() {
        report.tables = tables
            .iter()
            .map(|t| TableRestore {
                table: t.target.to_string(),
                rows_done: 0,
                rows_total: 0,
                done: true,
            })
            .collect();
    }
    Ok(report)
}
