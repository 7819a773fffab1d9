//! Secondary copies of a cluster's log archive: every piece, its index entry, the
//! gaps, the marks and the head copied to a second repository, so the log can be
//! replayed from there when the primary storage is lost.
//!
//! Each piece is read through [`read_piece`] (size and SHA-256 checked against its
//! entry, so a damaged piece is never copied as good), written to the copy, read
//! back and checked again, and only then its entry is written: as in the primary,
//! an entry in the copy means its piece is there and whole. A piece the copy
//! already holds (its entry there, the piece at that size) is skipped without being
//! downloaded again, so a copy run after each piece (or an interrupted one run again)
//! moves only what is new. The head goes last: the copy never claims more than it
//! holds.

use super::index::{
    entry_path, gap_path, head_path, mark_path, marks, piece_path, read_archive, read_piece,
    PieceEntry,
};
use crate::codec::sha256_hex;
use crate::repo::Repo;
use ferry_core::Result;
use serde::Serialize;

/// What a copy run did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct LogCopyReport {
    /// Pieces copied by this run.
    pub pieces_copied: u64,
    /// Pieces the copy already held (its checked entry and the piece's size), skipped.
    pub pieces_skipped: u64,
    /// Bytes written to the copy.
    pub bytes: u64,
    /// The newest piece the copy holds, when it holds any.
    pub last_piece: Option<u64>,
    /// Marks copied.
    pub marks: u64,
    /// Gap records copied.
    pub gaps: u64,
    /// The copy's latest backup point (µs since the epoch): the head copied.
    pub archived_through_us: Option<i64>,
}

/// The bytes of a piece as `to` stores them: the same when both repositories seal
/// with the same key (or neither does), otherwise opened and sealed again.
fn reseal(from: &Repo, to: &Repo, stored: bytes::Bytes, what: &str) -> Result<bytes::Bytes> {
    if from.cipher == to.cipher {
        return Ok(stored);
    }
    let plain = match &from.cipher {
        Some(c) => c.open(&stored, what)?,
        None => stored.to_vec(),
    };
    Ok(bytes::Bytes::from(match &to.cipher {
        Some(c) => c.seal(&plain),
        None => plain,
    }))
}

/// Whether `to` already holds piece `e`: its entry there (written only after the
/// copied piece was read back and checked against it) and the piece at that
/// size. The piece itself is not downloaded again on every run — `ferry backup
/// verify` and a restore's precheck check its SHA-256.
async fn held(to: &Repo, cluster: &str, e: &PieceEntry) -> Result<bool> {
    let Some(there) = to
        .get_json::<PieceEntry>(&entry_path(cluster, e.piece))
        .await?
    else {
        return Ok(false);
    };
    if there.start != e.start || there.end != e.end {
        return Ok(false);
    }
    Ok(to.storage.size(&piece_path(cluster, e.piece)).await? == Some(there.bytes))
}

/// Copies `cluster`'s log archive from `from` to `to`, skipping what `to` holds.
pub async fn copy_log(from: &Repo, to: &Repo, cluster: &str) -> Result<LogCopyReport> {
    let archive = read_archive(from, cluster).await?;
    let mut report = LogCopyReport::default();
    for e in &archive.pieces {
        if held(to, cluster, e).await? {
            report.pieces_skipped += 1;
            report.last_piece = Some(e.piece);
            continue;
        }
        let what = format!("log piece {} of cluster {cluster}", e.piece);
        let stored = read_piece(from, cluster, e).await?;
        let bytes = reseal(from, to, stored, &what)?;
        let mut entry = e.clone();
        entry.bytes = bytes.len() as u64;
        entry.sha256 = sha256_hex(&bytes);
        to.storage
            .put(&piece_path(cluster, e.piece), bytes.clone())
            .await?;
        // read back: what the copy's entry claims is what the copy holds
        read_piece(to, cluster, &entry)
            .await
            .map_err(|err| err.context(format!("copying to {}", to.storage.url())))?;
        to.put_json(&entry_path(cluster, e.piece), &entry).await?;
        report.pieces_copied += 1;
        report.bytes += entry.bytes;
        report.last_piece = Some(e.piece);
    }
    for g in &archive.gaps {
        to.put_json(&gap_path(cluster, g.piece), g).await?;
        report.gaps += 1;
    }
    for m in marks(from, cluster).await? {
        let path = mark_path(cluster, &m.name);
        if to.get_json::<super::Mark>(&path).await?.as_ref() != Some(&m) {
            to.put_json(&path, &m).await?;
            report.marks += 1;
        }
    }
    if let Some(h) = &archive.head {
        // the head never runs ahead of the pieces the copy holds (a piece stored
        // after the index was listed: the next run copies it and the head)
        let next = report.last_piece.map_or(0, |p| p + 1);
        if h.next_piece <= next {
            to.put_json(&head_path(cluster), h).await?;
            report.archived_through_us = Some(h.archived_through_us);
        }
    }
    tracing::info!(
        from = %from.storage.url(),
        to = %to.storage.url(),
        cluster,
        copied = report.pieces_copied,
        skipped = report.pieces_skipped,
        "copied log archive"
    );
    Ok(report)
}
