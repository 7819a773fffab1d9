//! The archive's records in the repository, next to the pieces themselves: one
//! index entry per piece (written after the piece: an entry means the piece is
//! durable), the head (how far the archive is known complete, also while the source
//! is idle), named restore points (marks) and gaps (where the archive broke).
//!
//! ```text
//! clusters/<c>/log/pieces/<n>.fzr   piece n (ten digits): whole transactions
//! clusters/<c>/log/index/<n>.json   its entry: positions, commit times, size, SHA-256
//! clusters/<c>/log/head.json        archived through: end position and time
//! clusters/<c>/log/marks/<name>.json a named restore point
//! clusters/<c>/log/gaps/<n>.json    the archive broke before piece n: why
//! ```
//! Every document is sealed when the repository is encrypted.

use crate::repo::Repo;
use ferry_core::{Error, Position, Result};
use serde::{Deserialize, Serialize};

/// The directory of a cluster's log archive.
pub fn log_dir(cluster: &str) -> String {
    format!("clusters/{cluster}/log")
}

/// Piece `n`'s path.
pub fn piece_path(cluster: &str, n: u64) -> String {
    format!("{}/pieces/{n:010}.fzr", log_dir(cluster))
}

/// Piece `n`'s index entry.
pub fn entry_path(cluster: &str, n: u64) -> String {
    format!("{}/index/{n:010}.json", log_dir(cluster))
}

/// The archive head.
pub fn head_path(cluster: &str) -> String {
    format!("{}/head.json", log_dir(cluster))
}

/// A mark's path.
pub fn mark_path(cluster: &str, name: &str) -> String {
    format!("{}/marks/{name}.json", log_dir(cluster))
}

/// A gap record's path (the break before piece `n`).
pub fn gap_path(cluster: &str, n: u64) -> String {
    format!("{}/gaps/{n:010}.json", log_dir(cluster))
}

/// Whether `s` can name a mark (a path segment): `[A-Za-z0-9_.-]+`, at most 63.
pub fn valid_mark(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && !s.starts_with('.')
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
}

/// One stored piece.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PieceEntry {
    /// Its number (pieces of a cluster are numbered from 0, in log order).
    pub piece: u64,
    /// The position the piece continues from: the previous piece's `end` when
    /// the archive is unbroken (otherwise a gap record says why not).
    pub start: String,
    /// The position after its last transaction.
    pub end: String,
    /// Commit time of its first transaction (µs since the epoch), when known.
    pub first_commit_us: Option<i64>,
    /// Commit time of its last transaction.
    pub last_commit_us: Option<i64>,
    /// Whole transactions in it.
    pub txns: u64,
    /// Row changes in it.
    pub rows: u64,
    /// Bytes stored (compressed, sealed).
    pub bytes: u64,
    /// Encoded bytes before compression.
    pub raw_bytes: u64,
    /// SHA-256 of the stored bytes.
    pub sha256: String,
    /// When it was stored (RFC 3339).
    pub stored_at: String,
    /// `logical` (row changes) — physical WAL has its own archive.
    pub method: String,
    /// The source engine (`postgres` / `mysql`).
    pub engine: String,
}

/// How far the archive is complete.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogHead {
    /// The position everything before which is archived.
    pub end: String,
    /// Every source transaction committed at or before this instant (µs since the
    /// epoch) is archived: the *latest backup point*. Moves with idle keepalives
    /// too, so an idle source does not look like a stalled archive.
    pub archived_through_us: i64,
    /// The next piece number.
    pub next_piece: u64,
    /// When the head was written (RFC 3339).
    pub updated_at: String,
    /// The source engine.
    pub engine: String,
    /// The source (as the user named it, password removed).
    pub source: String,
}

/// A named restore point: the source's log position at the moment it was made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Mark {
    /// Its name.
    pub name: String,
    /// The source's log position when it was made: restoring to the mark brings
    /// every transaction committed before it.
    pub position: String,
    /// When it was made (µs since the epoch).
    pub time_us: i64,
    /// When it was made (RFC 3339).
    pub at: String,
}

/// A break in the archive: changes between `after` and the start of piece `piece`
/// are not archived, so no point between them can be restored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Gap {
    /// The first piece after the break.
    pub piece: u64,
    /// The position the archive had reached before the break.
    pub after: String,
    /// Why (slot lost, binlog purged, …).
    pub reason: String,
    /// When it was found (RFC 3339).
    pub at: String,
}

/// A cluster's archive as stored: every piece entry (by number), the head, gaps.
#[derive(Debug, Clone, Default)]
pub struct LogArchive {
    /// Piece entries, in order.
    pub pieces: Vec<PieceEntry>,
    /// The head, when the archive has one.
    pub head: Option<LogHead>,
    /// Gaps, in order.
    pub gaps: Vec<Gap>,
}

/// Reads `cluster`'s archive records (not the pieces).
pub async fn read_archive(repo: &Repo, cluster: &str) -> Result<LogArchive> {
    let dir = log_dir(cluster);
    let mut names: Vec<String> = repo
        .storage
        .list(&format!("{dir}/index/"))
        .await?
        .into_iter()
        .map(|(p, _)| p)
        .filter(|p| p.ends_with(".json"))
        .collect();
    names.sort();
    let mut pieces = Vec::with_capacity(names.len());
    for n in names {
        if let Some(e) = repo.get_json::<PieceEntry>(&n).await? {
            pieces.push(e);
        }
    }
    pieces.sort_by_key(|e| e.piece);
    let mut gap_names: Vec<String> = repo
        .storage
        .list(&format!("{dir}/gaps/"))
        .await?
        .into_iter()
        .map(|(p, _)| p)
        .collect();
    gap_names.sort();
    let mut gaps = Vec::new();
    for n in gap_names {
        if let Some(g) = repo.get_json::<Gap>(&n).await? {
            gaps.push(g);
        }
    }
    Ok(LogArchive {
        pieces,
        head: repo.get_json(&head_path(cluster)).await?,
        gaps,
    })
}

/// Reads a mark.
pub async fn read_mark(repo: &Repo, cluster: &str, name: &str) -> Result<Mark> {
    if !valid_mark(name) {
        return Err(Error::definite(format!("{name:?} cannot be a mark name"))
            .with_hint("use letters, digits, '.', '-' and '_' (at most 63)"));
    }
    repo.get_json(&mark_path(cluster, name))
        .await?
        .ok_or_else(|| {
            Error::definite(format!("cluster {cluster} has no mark {name:?}"))
                .with_hint("`ferry backup list CLUSTER --kind mark` lists the cluster's marks")
        })
}

/// Every mark of a cluster, oldest first.
pub async fn marks(repo: &Repo, cluster: &str) -> Result<Vec<Mark>> {
    let mut out = Vec::new();
    for (p, _) in repo
        .storage
        .list(&format!("{}/marks/", log_dir(cluster)))
        .await?
    {
        if let Some(m) = repo.get_json::<Mark>(&p).await? {
            out.push(m);
        }
    }
    out.sort_by_key(|m| m.time_us);
    Ok(out)
}

/// The stored bytes of a piece, checked against its entry's size and SHA-256:
/// a missing or damaged piece is an error naming it.
pub async fn read_piece(repo: &Repo, cluster: &str, e: &PieceEntry) -> Result<bytes::Bytes> {
    let path = piece_path(cluster, e.piece);
    let hint = "the archive cannot be replayed past this piece: restore to a point before it, \
                or copy the piece back from a secondary storage";
    let Some(b) = repo.storage.get(&path).await? else {
        return Err(Error::definite(format!(
            "log piece {} of cluster {cluster} is missing ({path} in {})",
            e.piece,
            repo.storage.url()
        ))
        .with_hint(hint));
    };
    if b.len() as u64 != e.bytes || crate::codec::sha256_hex(&b) != e.sha256 {
        return Err(Error::definite(format!(
            "log piece {} of cluster {cluster} is damaged ({path}: {} bytes, SHA-256 does not match its index entry)",
            e.piece,
            b.len()
        ))
        .with_hint(hint));
    }
    Ok(b)
}

/// The positions of an entry, parsed.
pub fn entry_positions(e: &PieceEntry) -> Result<(Position, Position)> {
    Ok((Position::parse(&e.start)?, Position::parse(&e.end)?))
}

/// Stores piece `n`'s bytes (before its entry: a piece without an entry is
/// rewritten by the next run, never read).
pub async fn put_piece(repo: &Repo, cluster: &str, n: u64, bytes: bytes::Bytes) -> Result<()> {
    repo.storage.put(&piece_path(cluster, n), bytes).await
}

/// Stores a piece's index entry: from now on the piece is part of the archive.
pub async fn put_entry(repo: &Repo, cluster: &str, e: &PieceEntry) -> Result<()> {
    repo.put_json(&entry_path(cluster, e.piece), e).await
}

/// Stores the archive head (how far the archive is complete).
pub async fn put_head(repo: &Repo, cluster: &str, h: &LogHead) -> Result<()> {
    repo.put_json(&head_path(cluster), h).await
}

/// Records a gap (the archive broke before piece `g.piece`).
pub async fn put_gap(repo: &Repo, cluster: &str, g: &Gap) -> Result<()> {
    repo.put_json(&gap_path(cluster, g.piece), g).await
}

/// Stores a new mark; refuses an invalid name or one the cluster already has.
pub async fn put_mark(repo: &Repo, cluster: &str, m: &Mark) -> Result<()> {
    if !valid_mark(&m.name) {
        return Err(
            Error::definite(format!("{:?} cannot be a mark name", m.name)).with_hint(
                "use letters, digits, '.', '-' and '_' (at most 63, not starting with '.')",
            ),
        );
    }
    let path = mark_path(cluster, &m.name);
    if repo.storage.get(&path).await?.is_some() {
        return Err(
            Error::definite(format!("cluster {cluster} already has a mark {:?}", m.name))
                .with_hint(
                    "choose another name (`ferry backup list CLUSTER --kind mark` lists the marks)",
                ),
        );
    }
    repo.put_json(&path, m).await
}
