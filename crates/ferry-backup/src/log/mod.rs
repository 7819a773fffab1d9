//! Log backup: the source's change stream archived continuously to the backup
//! storage, so a cluster can be restored to any point between its oldest kept full
//! set and the *latest backup point* (point-in-time restore, [`crate::restore::pitr`]).
//!
//! The archiver reads the same change stream the incremental phase and incremental
//! sets read (a PostgreSQL logical slot of its own, `ferry_lg_<cluster>`; the
//! MySQL/MariaDB binlog from a position) and writes it as [`piece`]s: whole
//! transactions in commit order, closed every few seconds or megabytes, zstd,
//! sealed when the repository is, each followed by its [`index`] entry (size,
//! SHA-256, positions and commit times of its first and last transaction). The
//! source is told it may release its log only up to the end of the newest piece
//! whose entry is stored: a crash at any instant leaves neither a gap nor a lost
//! change, and the next run continues from the newest entry's end. A gap that
//! cannot be closed (the slot lost, the binlog purged) is recorded with its reason
//! and fails the run; the windows ([`window`]) end there — never silently.
//!
//! - [`piece`] — the piece format;
//! - [`index`] — piece entries, the head, marks and gaps in the repository;
//! - [`point`] — restore points (time, position, GTID, mark);
//! - [`window`] — restorable windows and what cleanup keeps;
//! - [`archive`] — the archiver.

pub mod archive;
pub mod copy;
pub mod index;
pub mod piece;
pub mod point;
pub mod prune;
pub mod window;

pub use archive::{make_mark, run_archive, ArchiveRequest, ArchiveState, ArchiveStatus};
pub use index::{LogArchive, LogHead, Mark, PieceEntry};
pub use point::RestorePoint;
pub use window::RestoreWindow;
