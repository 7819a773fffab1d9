//! Restorable windows: the stretches of time a cluster can be restored to any
//! point of. A window starts at a full set (its consistent point) that lies inside
//! an unbroken run of archived pieces and ends where that run ends (the latest
//! backup point for the newest run; a gap or a missing piece for an older one).
//! Cleanup keeps every piece a kept window needs.

use super::index::{LogArchive, PieceEntry};
use crate::manifest::{Manifest, SetKind};
use ferry_core::{Position, Result};
use serde::Serialize;

/// One restorable window.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RestoreWindow {
    /// The oldest full set the window starts at.
    pub from_set: String,
    /// Its consistent point: position and time (RFC 3339).
    pub from_position: String,
    /// The first time it can be restored to (RFC 3339): the second after the
    /// full set's consistent point, when known.
    pub from_time: Option<String>,
    /// Where the archive is complete to in this run: position.
    pub to_position: String,
    /// And time (RFC 3339): the latest backup point for the newest run.
    pub to_time: Option<String>,
    /// First and last piece of the run.
    pub pieces: (u64, u64),
    /// Why the run ends where it does when it is not the newest (a gap's reason).
    pub ended_by: Option<String>,
}

/// An unbroken run of pieces: `[first, last]` indexes into the archive's pieces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Run {
    /// Index of the first piece.
    pub first: usize,
    /// Index of the last piece.
    pub last: usize,
}

fn pos(s: &str) -> Option<Position> {
    Position::parse(s).ok()
}

/// Splits the archive into unbroken runs: a piece continues the run when its
/// number follows, its start is the previous end, and no gap record sits before it.
pub fn runs(archive: &LogArchive) -> Vec<Run> {
    let mut out: Vec<Run> = Vec::new();
    for (i, p) in archive.pieces.iter().enumerate() {
        let continues = i > 0 && {
            let prev: &PieceEntry = &archive.pieces[i - 1];
            prev.piece + 1 == p.piece
                && pos(&prev.end).is_some()
                && pos(&prev.end) == pos(&p.start)
                && !archive.gaps.iter().any(|g| g.piece == p.piece)
        };
        match out.last_mut() {
            Some(r) if continues => r.last = i,
            _ => out.push(Run { first: i, last: i }),
        }
    }
    out
}

fn rfc(us: i64) -> Option<String> {
    chrono::DateTime::from_timestamp_micros(us)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
}

/// The restorable windows of a cluster, oldest first, from its sets and archive.
pub fn windows(sets: &[Manifest], archive: &LogArchive) -> Result<Vec<RestoreWindow>> {
    let all = runs(archive);
    let mut out = Vec::new();
    for (ri, run) in all.iter().enumerate() {
        let first = &archive.pieces[run.first];
        let last = &archive.pieces[run.last];
        let (Some(start), Some(end)) = (pos(&first.start), pos(&last.end)) else {
            continue;
        };
        // the newest run ends at the head when the head continues it
        let newest = ri + 1 == all.len();
        let through = match &archive.head {
            Some(h) if newest && pos(&h.end).is_some_and(|e| e.reached(&end)) => {
                Some(h.archived_through_us)
            }
            _ => last.last_commit_us,
        };
        let anchor = sets
            .iter()
            .filter(|m| m.kind == SetKind::Full && m.method == "logical")
            .filter_map(|m| m.position.as_deref().and_then(pos).map(|p| (p, m)))
            .filter(|(p, _)| p.reached(&start) && end.reached(p))
            .min_by(|a, b| (&a.1.finished_at, &a.1.id).cmp(&(&b.1.finished_at, &b.1.id)));
        let Some((p, m)) = anchor else { continue };
        out.push(RestoreWindow {
            from_set: m.id.clone(),
            from_position: p.to_string(),
            // consistent_at is whole seconds rounded down: the set may hold
            // transactions of that second, so the first time it can be restored to
            // exactly is the next second
            from_time: m
                .consistent_at
                .as_deref()
                .and_then(|c| chrono::DateTime::parse_from_rfc3339(c).ok())
                .and_then(|t| rfc(t.timestamp_micros() + 1_000_000)),
            to_position: match (&archive.head, newest) {
                (Some(h), true) if pos(&h.end).is_some_and(|e| e.reached(&end)) => h.end.clone(),
                _ => last.end.clone(),
            },
            to_time: through.and_then(rfc),
            pieces: (first.piece, last.piece),
            ended_by: match all.get(ri + 1) {
                Some(next) => {
                    let n = archive.pieces[next.first].piece;
                    archive
                        .gaps
                        .iter()
                        .find(|g| g.piece == n)
                        .map(|g| g.reason.clone())
                        .or_else(|| Some(format!("piece {} is missing", last.piece + 1)))
                }
                // the newest run broke and no new run has started yet
                None => archive
                    .gaps
                    .iter()
                    .find(|g| g.piece > last.piece)
                    .map(|g| g.reason.clone()),
            },
        });
    }
    Ok(out)
}

/// The oldest piece cleanup must keep when `kept` are the sets retention keeps:
/// every piece that ends after the oldest kept full set's position (earlier ones
/// hold only transactions that set already contains). `None`: keep every piece
/// (no kept full set has a position).
pub fn oldest_needed_piece(kept: &[Manifest], archive: &LogArchive) -> Option<u64> {
    let oldest = kept
        .iter()
        .filter(|m| m.kind == SetKind::Full)
        .filter_map(|m| m.position.as_deref().and_then(pos))
        .reduce(|a, b| if b.reached(&a) { a } else { b })?;
    archive
        .pieces
        .iter()
        .find(|p| pos(&p.end).is_none_or(|e| !oldest.reached(&e)))
        .map(|p| p.piece)
        .or_else(|| archive.pieces.last().map(|p| p.piece + 1))
}
