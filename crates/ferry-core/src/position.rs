//! Source log positions. The full copy records the position of its snapshot so the
//! incremental phase starts exactly there; positions are stored as text on the target
//! (`ferry.snapshot`) and parsed back, so their text form is part of the contract.

use crate::{Error, Result};
use std::fmt;

/// A point in a source's change log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Position {
    /// PostgreSQL WAL location.
    PgLsn(u64),
    /// MySQL/MariaDB binlog file and offset, with the GTID state at that point when
    /// the server has one (MariaDB `domain-server-seq[,…]`, MySQL `uuid:1-5[,…]`).
    Binlog {
        /// Binlog file name, e.g. `mariadb-bin.000003`.
        file: String,
        /// Byte offset in that file.
        pos: u64,
        /// GTID set/state at that point, empty when GTIDs are not in use.
        gtid: String,
    },
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Position::PgLsn(l) => write!(f, "lsn:{:X}/{:X}", l >> 32, l & 0xffff_ffff),
            Position::Binlog { file, pos, gtid } => {
                write!(f, "binlog:{file}:{pos}")?;
                if !gtid.is_empty() {
                    write!(f, ";gtid:{gtid}")?;
                }
                Ok(())
            }
        }
    }
}

impl Position {
    /// Parses the text form written by `Display` (and PostgreSQL's `X/Y` LSN form).
    pub fn parse(s: &str) -> Result<Position> {
        let bad = || Error::definite(format!("cannot parse log position {s:?}"));
        if let Some(l) = s.strip_prefix("lsn:") {
            return parse_lsn(l).ok_or_else(bad).map(Position::PgLsn);
        }
        if let Some(rest) = s.strip_prefix("binlog:") {
            let (fp, gtid) = match rest.split_once(";gtid:") {
                Some((a, b)) => (a, b.to_string()),
                None => (rest, String::new()),
            };
            let (file, pos) = fp.rsplit_once(':').ok_or_else(bad)?;
            let pos = pos.parse().map_err(|_| bad())?;
            return Ok(Position::Binlog {
                file: file.to_string(),
                pos,
                gtid,
            });
        }
        Err(bad())
    }
}

impl Position {
    /// True when this position is at or after `goal` in the same log (binlog files
    /// compare by their numeric suffix, then offset).
    pub fn reached(&self, goal: &Position) -> bool {
        match (self, goal) {
            (Position::PgLsn(a), Position::PgLsn(b)) => a >= b,
            (
                Position::Binlog {
                    file: fa, pos: pa, ..
                },
                Position::Binlog {
                    file: fb, pos: pb, ..
                },
            ) => (file_seq(fa), *pa) >= (file_seq(fb), *pb),
            _ => false,
        }
    }
}

impl Position {
    /// Bytes of log from `earlier` to this position, when the log says (the same
    /// WAL; the same binlog file); `None` across binlog files or logs.
    pub fn bytes_after(&self, earlier: &Position) -> Option<u64> {
        match (self, earlier) {
            (Position::PgLsn(h), Position::PgLsn(a)) => Some(h.saturating_sub(*a)),
            (
                Position::Binlog {
                    file: fh, pos: ph, ..
                },
                Position::Binlog {
                    file: fa, pos: pa, ..
                },
            ) if fh == fa => Some(ph.saturating_sub(*pa)),
            _ => None,
        }
    }
}

fn file_seq(file: &str) -> u64 {
    file.rsplit('.')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// Parses PostgreSQL's `16/B374D848` LSN text: two 32-bit hex halves (a half wider
/// than that is refused, not silently cut).
pub fn parse_lsn(s: &str) -> Option<u64> {
    let (hi, lo) = s.split_once('/')?;
    let half = |h: &str| {
        (h.bytes().all(|b| b.is_ascii_hexdigit()))
            .then(|| u32::from_str_radix(h, 16).ok())
            .flatten()
    };
    Some((u64::from(half(hi)?) << 32) | u64::from(half(lo)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        for p in [
            Position::PgLsn(0x16_B374_D848),
            Position::Binlog {
                file: "mariadb-bin.000003".into(),
                pos: 1234,
                gtid: "0-1-42".into(),
            },
            Position::Binlog {
                file: "binlog.000001".into(),
                pos: 4,
                gtid: String::new(),
            },
        ] {
            assert_eq!(Position::parse(&p.to_string()).unwrap(), p);
        }
        assert_eq!(parse_lsn("16/B374D848"), Some(0x16_B374_D848));
        assert!(Position::parse("nonsense").is_err());
        assert_eq!(parse_lsn("FFFFFFFF/FFFFFFFF"), Some(u64::MAX));
        // a half wider than 32 bits, or signed, is refused (it was cut to 0 / read)
        for bad in [
            "100000000/0",
            "0/100000000",
            "+1/0",
            "1/-0",
            "/1",
            "1/",
            "1/2/3",
        ] {
            assert_eq!(parse_lsn(bad), None, "{bad}");
            assert!(Position::parse(&format!("lsn:{bad}")).is_err(), "{bad}");
        }
        let b = |f: &str, p| Position::Binlog {
            file: f.into(),
            pos: p,
            gtid: String::new(),
        };
        assert!(b("bin.000010", 4).reached(&b("bin.000009", 900)));
        assert!(!b("bin.000009", 899).reached(&b("bin.000009", 900)));
        assert!(Position::PgLsn(5).reached(&Position::PgLsn(5)));
        assert_eq!(Position::PgLsn(9).bytes_after(&Position::PgLsn(5)), Some(4));
        assert_eq!(Position::PgLsn(5).bytes_after(&Position::PgLsn(9)), Some(0));
        assert_eq!(
            b("bin.000009", 900).bytes_after(&b("bin.000009", 100)),
            Some(800)
        );
        assert_eq!(
            b("bin.000010", 900).bytes_after(&b("bin.000009", 100)),
            None
        );
        assert_eq!(b("bin.000010", 900).bytes_after(&Position::PgLsn(1)), None);
    }
}
