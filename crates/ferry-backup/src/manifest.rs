//! What a backup set holds, written as the set's last object: a set whose manifest
//! is missing is incomplete (a backup still running, or one that died), and nothing
//! reads its files.
//!
//! The manifest is self-sufficient for a restore: the source's engine and version,
//! the snapshot's log position, the schema in Ferry's engine-neutral model plus the
//! source's own DDL (for a restore into the same engine), and every file with its
//! table, key range, rows, bytes and SHA-256. Its `format` is the repository's
//! format version ([`crate::layout::FORMAT`]): a reader refuses a newer one.

use ferry_core::{Error, Result, Table};
use serde::{Deserialize, Serialize};

/// Full or incremental.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SetKind {
    /// Every selected table at one consistent snapshot.
    Full,
    /// The net row changes between the previous set's position and this one's.
    Incremental,
}

impl SetKind {
    /// `full` / `incremental`.
    pub fn as_str(self) -> &'static str {
        match self {
            SetKind::Full => "full",
            SetKind::Incremental => "incremental",
        }
    }
}

/// What a file of a set carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FileKind {
    /// Rows of one key range of a table at the set's snapshot.
    Data,
    /// Net row changes of one table (upserts of the final image, deletes by key).
    Changes,
}

/// One table of a set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableEntry {
    /// The table as the source described it (engine-neutral model, native types).
    pub table: Table,
    /// The source's own DDL for the table, for a restore into the same engine
    /// (MySQL/MariaDB `SHOW CREATE TABLE`; `None` where the model is enough).
    pub create_text: Option<String>,
    /// Rows at the set's position (full sets; for an incremental, rows whose net
    /// change it holds).
    pub rows: u64,
    /// Order-independent digest of the rows' canonical values
    /// ([`ferry_core::canonical::Digest`], hex of its sum), for `compare` after a
    /// restore (full sets only).
    pub digest: Option<String>,
}

/// One stored file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileEntry {
    /// Path relative to the set's directory ([`crate::layout`]).
    pub path: String,
    /// Index of its table in [`Manifest::tables`].
    pub table: usize,
    /// Data or changes.
    pub kind: FileKind,
    /// Inclusive lower key bound of a data file's range (decimal text; `None`:
    /// unbounded or the whole table).
    pub lo: Option<String>,
    /// Exclusive upper key bound (decimal text; `None`: unbounded).
    pub hi: Option<String>,
    /// Rows (data) or row changes (changes) in it.
    pub rows: u64,
    /// Bytes stored (compressed, sealed).
    pub bytes: u64,
    /// Bytes of the encoded rows before compression.
    pub raw_bytes: u64,
    /// SHA-256 of the stored bytes, lower-case hex.
    pub sha256: String,
}

/// A backup set's manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Repository format version the set was written in.
    pub format: u32,
    /// The set's id (sorts by start time).
    pub id: String,
    /// The cluster (backup policy) it belongs to.
    pub cluster: String,
    /// Full or incremental.
    pub kind: SetKind,
    /// `logical` (rows, restorable into either engine).
    pub method: String,
    /// For an incremental: the set it continues (full or incremental).
    pub parent: Option<String>,
    /// The full set the chain starts from (itself for a full set).
    pub chain: String,
    /// `postgres` or `mysql` (MySQL and MariaDB).
    pub engine: String,
    /// The source server's version string.
    pub server_version: String,
    /// The source, as the user named it, password removed.
    pub source: String,
    /// For an incremental: the position its changes start after (the parent's
    /// `position`).
    pub start_position: Option<String>,
    /// The log position the set is consistent at (snapshot / end of changes;
    /// `lsn:…` or `binlog:file:pos[;gtid:…]`).
    pub position: Option<String>,
    /// Commit time of the set's consistent point (RFC 3339, UTC), when known.
    pub consistent_at: Option<String>,
    /// Start and end of the backup (RFC 3339, UTC).
    pub started_at: String,
    /// End of the backup.
    pub finished_at: String,
    /// Every file's contents are sealed with the repository key.
    pub encrypted: bool,
    /// `zstd`.
    pub compression: String,
    /// The tables.
    pub tables: Vec<TableEntry>,
    /// The files.
    pub files: Vec<FileEntry>,
}

impl Manifest {
    /// Rows across the set's files.
    pub fn rows(&self) -> u64 {
        self.files.iter().map(|f| f.rows).sum()
    }

    /// Bytes stored across the set's files.
    pub fn bytes(&self) -> u64 {
        self.files.iter().map(|f| f.bytes).sum()
    }

    /// Reads a manifest, refusing one of a newer format than this Ferry reads.
    pub fn from_json(text: &[u8], what: &str) -> Result<Manifest> {
        #[derive(Deserialize)]
        struct Head {
            format: u32,
        }
        let head: Head = serde_json::from_slice(text).map_err(|e| {
            Error::definite(format!("{what}: not a Ferry backup manifest: {e}")).with_hint(
                "the file is damaged or not Ferry's; `ferry backup verify` checks the set",
            )
        })?;
        if head.format > crate::layout::FORMAT {
            return Err(Error::definite(format!(
                "{what}: written in repository format {} but this Ferry reads format {} at most",
                head.format,
                crate::layout::FORMAT
            ))
            .with_hint("restore it with a newer Ferry"));
        }
        serde_json::from_slice(text).map_err(|e| {
            Error::definite(format!("{what}: damaged manifest: {e}"))
                .with_hint("the set cannot be read; restore from another set")
        })
    }

    /// The manifest as stored (pretty JSON: readable by a DBA with any tool).
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(self).expect("a manifest always serialises")
    }
}
