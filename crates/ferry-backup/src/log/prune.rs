//! Cleanup of a cluster's log archive: the pieces no kept restorable window needs.
//!
//! A piece is needed when it ends after the oldest full set retention keeps
//! ([`window::oldest_needed_piece`]); older pieces hold only transactions that set
//! already contains, so no point a kept set can reach needs them.
//!
//! Order of removal, per piece: the index entry first, then the piece. An entry
//! means "this piece is stored and whole", so a reader (a restore, a copy) that
//! listed the entries never meets an entry whose piece is gone mid-removal as a
//! lasting state; an interrupted removal leaves at worst a piece without an entry,
//! which nothing reads and the next cleanup removes (every piece file below the
//! oldest needed one goes, entry or not). Gap records before the oldest needed
//! piece go too (they describe breaks no window starts after any more); marks are
//! kept (they are tiny, and a mark older than every window is refused by the
//! restore precheck with the window named).

use super::index::{entry_path, gap_path, log_dir, read_archive};
use super::window;
use crate::manifest::Manifest;
use crate::repo::Repo;
use ferry_core::Result;
use serde::Serialize;

/// What a prune removed.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PruneReport {
    /// Pieces removed (entry and piece).
    pub pieces_removed: u64,
    /// Bytes those pieces held.
    pub bytes_removed: u64,
    /// The oldest piece kept (`None`: every piece kept — no kept full set has a
    /// position yet).
    pub oldest_kept: Option<u64>,
    /// Gap records removed.
    pub gaps_removed: u64,
}

/// The piece number of a stored piece file's path (`…/pieces/0000000042.fzr`).
fn piece_number(path: &str) -> Option<u64> {
    path.rsplit('/').next()?.strip_suffix(".fzr")?.parse().ok()
}

/// Removes from `repo` the pieces of `cluster` that no window starting at one of
/// `kept` (the sets retention keeps) needs.
pub async fn prune_log(repo: &Repo, cluster: &str, kept: &[Manifest]) -> Result<PruneReport> {
    let archive = read_archive(repo, cluster).await?;
    let mut report = PruneReport::default();
    let Some(oldest) = window::oldest_needed_piece(kept, &archive) else {
        return Ok(report);
    };
    report.oldest_kept = Some(oldest);
    for e in archive.pieces.iter().filter(|e| e.piece < oldest) {
        repo.storage.delete(&entry_path(cluster, e.piece)).await?;
        repo.storage
            .delete(&super::index::piece_path(cluster, e.piece))
            .await?;
        report.pieces_removed += 1;
        report.bytes_removed += e.bytes;
    }
    // pieces an interrupted prune left without their entries
    for (path, size) in repo
        .storage
        .list(&format!("{}/pieces/", log_dir(cluster)))
        .await?
    {
        if piece_number(&path).is_some_and(|n| n < oldest) {
            repo.storage.delete(&path).await?;
            report.pieces_removed += 1;
            report.bytes_removed += size;
        }
    }
    for g in archive.gaps.iter().filter(|g| g.piece < oldest) {
        repo.storage.delete(&gap_path(cluster, g.piece)).await?;
        report.gaps_removed += 1;
    }
    if report.pieces_removed > 0 {
        tracing::info!(
            repository = %repo.storage.url(),
            cluster,
            removed = report.pieces_removed,
            oldest_kept = oldest,
            "pruned log archive"
        );
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::piece_number;

    #[test]
    fn piece_numbers_of_paths() {
        assert_eq!(
            piece_number("clusters/c/log/pieces/0000000042.fzr"),
            Some(42)
        );
        assert_eq!(piece_number("clusters/c/log/pieces/x.tmp"), None);
    }
}
