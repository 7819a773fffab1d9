//! Backup and restore: Ferry's other half.
//!
//! A backup is "a full copy whose target is object storage" and a restore is "a full
//! copy whose source is a backup set": both are built on the engine's readers and
//! writers (the same consistent snapshot, chunking, value decoding, bulk loads and
//! checkpoints the migration uses), with a repository in between.
//!
//! - [`storage`] — the object store a repository lives in (local directory or
//!   S3-compatible), with retries and multipart uploads;
//! - [`codec`] — how rows are laid out in a file, compressed (zstd) and sealed
//!   ([`cipher`]: the repository's AEAD key), with SHA-256 of what is stored;
//! - [`layout`] — where every object of a repository lives (stable, versioned);
//! - [`manifest`] — what a backup set holds: engine, position, schema, files;
//! - [`repo`] — a repository: its format marker, key check and set index;
//! - [`backup`] — writing sets: full (one snapshot, parallel chunks) and
//!   incremental (the net changes read from the source's log between two sets);
//! - [`verify`] — re-reading every file of a set against its manifest;
//! - [`log`] — log backup: the change stream archived continuously (point-in-time
//!   restore), restorable windows, marks;
//! - [`physical`] — physical backups (PostgreSQL base backup + WAL, mariadb-backup);
//! - [`restore`] — restoring a set chain (or a dump file) into a database.
//!
//! The repository layout is documented in `docs/backup-repository.md`.

pub mod backup;
pub mod cipher;
pub mod codec;
pub mod layout;
pub mod log;
pub mod manifest;
pub mod physical;
pub mod repo;
pub mod restore;
pub mod storage;
pub mod verify;
