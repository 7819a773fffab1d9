//! Physical backups: a PostgreSQL base backup over the replication protocol plus
//! WAL archived from a physical slot; MySQL/MariaDB through `mariadb-backup`.
//!
//! ```text
//! clusters/<c>/sets/<set>/base/<archive>/<n>.fzr  the base backup's tar stream, cut in parts
//! clusters/<c>/sets/<set>/physical.json           start/end LSN, timeline, backup_label
//! clusters/<c>/wal/<segment>.fzr                  one complete WAL segment
//! clusters/<c>/wal/index/<segment>.json           its entry: LSN range, size, SHA-256
//! clusters/<c>/wal/<segment>.partial.fzr          the segment being filled (stored every few seconds)
//! clusters/<c>/wal/head.json                      how far the archive is complete; the partial's entry
//! ```
//! Every object is zstd-compressed and sealed when the repository is encrypted
//! ([`pack`]); each part and segment carries its SHA-256 in the manifest or its
//! index entry, checked on every read.
//!
//! - [`base`] — `ferry backup now --method physical`;
//! - [`wal`] — the WAL archiver ([`archive_wal`]) and `wal-fetch`;
//! - [`restore`] — a data directory that recovers to a point;
//! - [`tar`] — the streaming tar reader both use;
//! - [`mariadb`] — MySQL/MariaDB physical backups (`mariadb-backup`).

pub mod base;
pub mod mariadb;
pub mod restore;
pub mod tar;
pub mod wal;

pub use base::{run_physical_backup, PhysicalInfo};
pub use restore::{restore_data_dir, DataDirReport, DataDirRequest};
pub use wal::{archive_wal, fetch_wal, read_head, WalEntry, WalHead};

use crate::cipher::Cipher;
use crate::codec::sha256_hex;
use bytes::Bytes;
use ferry_core::{Error, Result};

/// The manifest `method` of a physical set.
pub const METHOD: &str = "physical";

/// Magic of a packed physical object (before sealing).
const MAGIC: &[u8; 4] = b"FZP1";

/// A packed object: what is stored, its SHA-256.
pub(crate) struct PackedBlob {
    pub bytes: Bytes,
    pub sha256: String,
}

/// Compresses (zstd, with its checksum) and seals `raw`.
pub(crate) fn pack(raw: &[u8], cipher: Option<&Cipher>) -> Result<PackedBlob> {
    let mut out = Vec::with_capacity(raw.len() / 3 + 64);
    out.extend_from_slice(MAGIC);
    let mut enc = zstd::stream::write::Encoder::new(out, crate::codec::ZSTD_LEVEL)
        .map_err(|e| Error::definite(format!("compressing: {e}")))?;
    enc.include_checksum(true)
        .map_err(|e| Error::definite(format!("compressing: {e}")))?;
    std::io::Write::write_all(&mut enc, raw)
        .map_err(|e| Error::definite(format!("compressing: {e}")))?;
    let plain = enc
        .finish()
        .map_err(|e| Error::definite(format!("compressing: {e}")))?;
    let stored = match cipher {
        Some(c) => c.seal(&plain),
        None => plain,
    };
    Ok(PackedBlob {
        sha256: sha256_hex(&stored),
        bytes: Bytes::from(stored),
    })
}

/// The raw bytes of a packed object (`what` names it in errors).
pub(crate) fn unpack(stored: &[u8], cipher: Option<&Cipher>, what: &str) -> Result<Vec<u8>> {
    let plain = match cipher {
        Some(c) => c.open(stored, what)?,
        None if crate::cipher::is_sealed(stored) => {
            return Err(Error::definite(format!(
                "{what}: the object is encrypted but the repository is not"
            )))
        }
        None => stored.to_vec(),
    };
    if plain.len() < MAGIC.len() || &plain[..MAGIC.len()] != MAGIC {
        return Err(Error::definite(format!(
            "{what}: not a Ferry physical backup object"
        )));
    }
    zstd::stream::decode_all(&plain[MAGIC.len()..])
        .map_err(|e| Error::definite(format!("{what}: damaged (cannot decompress: {e})")))
}

/// The WAL file name of the segment holding `lsn` on `timeline`
/// (`000000010000000000000003`).
pub fn segment_name(timeline: u32, lsn: u64, segment_size: u64) -> String {
    let segno = lsn / segment_size;
    let per_id = 0x1_0000_0000u64 / segment_size;
    format!("{timeline:08X}{:08X}{:08X}", segno / per_id, segno % per_id)
}

/// The timeline and first LSN of a WAL segment file name; `None` for any other
/// file name (history files, `.partial`, `.backup`).
pub fn parse_segment_name(name: &str, segment_size: u64) -> Option<(u32, u64)> {
    if name.len() != 24 || !name.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let tli = u32::from_str_radix(&name[0..8], 16).ok()?;
    let hi = u64::from_str_radix(&name[8..16], 16).ok()?;
    let lo = u64::from_str_radix(&name[16..24], 16).ok()?;
    let per_id = 0x1_0000_0000u64 / segment_size;
    Some((tli, (hi * per_id + lo) * segment_size))
}

/// `lsn:X/Y`.
pub(crate) fn lsn_pos(lsn: u64) -> String {
    format!("lsn:{}", ferry_postgres::physical::lsn_text(lsn))
}

/// The LSN of `lsn:X/Y` (or bare `X/Y`).
pub(crate) fn pos_lsn(s: &str) -> Option<u64> {
    ferry_postgres::physical::parse_lsn(s.strip_prefix("lsn:").unwrap_or(s))
}

/// Microseconds since the Unix epoch, now.
pub(crate) fn now_us() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

/// RFC 3339 (µs precision) of a Unix time in µs.
pub(crate) fn rfc3339_us(us: i64) -> String {
    chrono::DateTime::from_timestamp_micros(us)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_names_round_trip_and_blobs_pack() {
        let seg = 16 << 20;
        assert_eq!(segment_name(1, 0x3A00F10, seg), "000000010000000000000003");
        assert_eq!(
            segment_name(2, 0x1_0100_0000, seg),
            "000000020000000100000001"
        );
        assert_eq!(
            parse_segment_name("000000020000000100000001", seg),
            Some((2, 0x1_0100_0000))
        );
        assert_eq!(parse_segment_name("00000002.history", seg), None);
        let b = pack(b"hello wal", None).expect("pack");
        assert_eq!(unpack(&b.bytes, None, "x").expect("unpack"), b"hello wal");
        let mut bad = b.bytes.to_vec();
        let n = bad.len();
        bad[n - 2] ^= 0xff;
        assert!(unpack(&bad, None, "x").is_err());
    }
}
