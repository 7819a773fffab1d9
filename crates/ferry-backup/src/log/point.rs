//! A point a restore can stop at: a time, a source log position (PostgreSQL LSN,
//! binlog file:pos), a MariaDB/MySQL GTID, or a named mark. Transactions are whole:
//! a restore to a point brings exactly the transactions committed at or before it.

use ferry_core::{Error, Position, Result};
use std::fmt;

/// Where a point-in-time restore stops.
#[derive(Debug, Clone, PartialEq)]
pub enum RestorePoint {
    /// Every transaction committed at or before this instant (µs since the epoch).
    Time(i64),
    /// Every transaction whose commit ends at or before this log position.
    Position(Position),
    /// Every transaction of GTID domain `domain` up to sequence `seq` (MariaDB
    /// `domain-server-seq`).
    Gtid {
        /// GTID domain.
        domain: u32,
        /// Server id (informative: MariaDB orders a domain by sequence).
        server: u32,
        /// Sequence number.
        seq: u64,
    },
    /// A mark made with `ferry backup mark` (resolved to its position).
    Mark(String),
}

impl fmt::Display for RestorePoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RestorePoint::Time(us) => write!(
                f,
                "{}",
                chrono::DateTime::from_timestamp_micros(*us)
                    .unwrap_or_default()
                    .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
            ),
            RestorePoint::Position(p) => write!(f, "{p}"),
            RestorePoint::Gtid {
                domain,
                server,
                seq,
            } => write!(f, "gtid:{domain}-{server}-{seq}"),
            RestorePoint::Mark(m) => write!(f, "mark:{m}"),
        }
    }
}

impl RestorePoint {
    /// Parses `2026-12-01T10:15:00Z` (RFC 3339; `2026-12-01 10:15:00` is UTC),
    /// `lsn:0/3A00F10`, `binlog:mariadb-bin.000003:1234`, `gtid:0-1-4711` or
    /// `mark:before-upgrade`.
    pub fn parse(s: &str) -> Result<RestorePoint> {
        let s = s.trim();
        let hint = "give a time (2026-12-01T10:15:00Z), a position (lsn:0/3A00F10, \
                    binlog:FILE:POS), a GTID (gtid:0-1-4711) or a mark (mark:NAME)";
        if let Some(m) = s.strip_prefix("mark:") {
            if !super::index::valid_mark(m) {
                return Err(Error::definite(format!("{m:?} cannot be a mark name"))
                    .with_hint("use letters, digits, '.', '-' and '_' (at most 63)"));
            }
            return Ok(RestorePoint::Mark(m.to_string()));
        }
        if let Some(g) = s.strip_prefix("gtid:") {
            let parts: Vec<&str> = g.split('-').collect();
            let bad = || {
                Error::definite(format!(
                    "restore point {s:?}: a GTID is domain-server-sequence (MariaDB), e.g. gtid:0-1-4711"
                ))
                .with_hint(hint)
            };
            if parts.len() != 3 {
                return Err(bad());
            }
            return Ok(RestorePoint::Gtid {
                domain: parts[0].parse().map_err(|_| bad())?,
                server: parts[1].parse().map_err(|_| bad())?,
                seq: parts[2].parse().map_err(|_| bad())?,
            });
        }
        if s.starts_with("lsn:") || s.starts_with("binlog:") {
            return Position::parse(s).map(RestorePoint::Position).map_err(|e| {
                Error::definite(format!("restore point {s:?}: {}", e.message)).with_hint(hint)
            });
        }
        if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
            return Ok(RestorePoint::Time(t.timestamp_micros()));
        }
        for f in ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f"] {
            if let Ok(t) = chrono::NaiveDateTime::parse_from_str(s, f) {
                return Ok(RestorePoint::Time(t.and_utc().timestamp_micros()));
            }
        }
        Err(Error::definite(format!("cannot read restore point {s:?}")).with_hint(hint))
    }

    /// Whether a transaction committed at `commit` (the position after it) at
    /// `commit_time_us` is at or before the point. `None` when the transaction
    /// does not say (no commit time for a time point, no GTID for a GTID point);
    /// a [`RestorePoint::Mark`] must be resolved to its position first.
    pub fn includes(&self, commit: &Position, commit_time_us: Option<i64>) -> Option<bool> {
        match self {
            RestorePoint::Time(t) => commit_time_us.map(|c| c <= *t),
            RestorePoint::Position(p) => Some(p.reached(commit)),
            RestorePoint::Gtid { domain, seq, .. } => match commit {
                Position::Binlog { gtid, .. } => gtid_seq(gtid, *domain).map(|s| s <= *seq),
                Position::PgLsn(_) => None,
            },
            RestorePoint::Mark(_) => None,
        }
    }
}

/// The sequence number of `domain` in a MariaDB GTID state (`0-1-42,1-2-7`).
pub fn gtid_seq(state: &str, domain: u32) -> Option<u64> {
    state.split(',').find_map(|g| {
        let mut it = g.trim().split('-');
        let d: u32 = it.next()?.parse().ok()?;
        let _server = it.next()?;
        let s: u64 = it.next()?.parse().ok()?;
        (d == domain).then_some(s)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_parse_and_say_what_they_include() {
        let t = RestorePoint::parse("2026-12-01T10:15:00Z").expect("a time");
        assert_eq!(t, RestorePoint::Time(1_796_120_100_000_000));
        assert_eq!(
            RestorePoint::parse("2026-12-01 10:15:00").ok(),
            Some(t.clone())
        );
        assert_eq!(
            t.includes(&Position::PgLsn(1), Some(1_796_120_100_000_000)),
            Some(true)
        );
        assert_eq!(
            t.includes(&Position::PgLsn(1), Some(1_796_120_100_000_001)),
            Some(false)
        );
        assert_eq!(t.includes(&Position::PgLsn(1), None), None);
        let p = RestorePoint::parse("lsn:0/3A00F10").expect("an lsn");
        assert_eq!(p.includes(&Position::PgLsn(0x3A00F10), None), Some(true));
        assert_eq!(p.includes(&Position::PgLsn(0x3A00F11), None), Some(false));
        let g = RestorePoint::parse("gtid:0-1-4711").expect("a gtid");
        let at = |s: &str| Position::Binlog {
            file: "b.000001".into(),
            pos: 4,
            gtid: s.into(),
        };
        assert_eq!(g.includes(&at("0-1-4711"), None), Some(true));
        assert_eq!(g.includes(&at("1-1-9,0-1-4712"), None), Some(false));
        assert_eq!(g.includes(&at(""), None), None);
        assert_eq!(
            RestorePoint::parse("mark:before-upgrade").ok(),
            Some(RestorePoint::Mark("before-upgrade".into()))
        );
        for bad in [
            "yesterday",
            "gtid:0-1",
            "lsn:zz",
            "mark:../x",
            "binlog:nofile",
        ] {
            assert!(RestorePoint::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(g.to_string(), "gtid:0-1-4711");
    }
}
