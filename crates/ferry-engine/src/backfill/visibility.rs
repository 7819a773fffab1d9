//! What a backfill chunk's snapshot saw, and which keys of a table the target holds:
//! the facts that decide, change by change, whether the stream applies or skips.

use ferry_core::Position;
use std::collections::HashSet;

/// Which keys of a table are on the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Coverage {
    Nothing,
    /// Every key below this one.
    Below(i128),
    All,
}

impl Coverage {
    pub(super) fn holds(self, key: Option<i128>) -> bool {
        match (self, key) {
            (Coverage::All, _) => true,
            (Coverage::Below(h), Some(k)) => k < h,
            _ => false,
        }
    }
}

/// What a snapshot saw.
#[derive(Debug, Clone)]
pub(super) enum Seen {
    /// MariaDB: every transaction before this binlog position.
    Binlog(Position),
    /// PostgreSQL: the committed transactions of an MVCC snapshot.
    Pg(PgSnapshot),
}

/// `pg_current_snapshot()`: ids below `xmin` are settled, ids from `xmax` on had not
/// started, ids in `xip` were running.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct PgSnapshot {
    pub(super) xmin: u64,
    pub(super) xmax: u64,
    pub(super) xip: HashSet<u64>,
}

impl PgSnapshot {
    pub(super) fn parse(s: &str) -> Option<PgSnapshot> {
        let mut parts = s.split(':');
        let xmin = parts.next()?.parse().ok()?;
        let xmax = parts.next()?.parse().ok()?;
        let xip = parts
            .next()?
            .split(',')
            .filter(|x| !x.is_empty())
            .map(|x| x.parse().ok())
            .collect::<Option<HashSet<u64>>>()?;
        Some(PgSnapshot { xmin, xmax, xip })
    }

    /// The 64-bit id of a 32-bit transaction id: the one within 2^31 of `xmax` (no
    /// live id is ever further away).
    fn widen(&self, xid: u32) -> u64 {
        let x = (self.xmax & !0xffff_ffff) | u64::from(xid);
        if x > self.xmax.saturating_add(1 << 31) && x >= 1 << 32 {
            x - (1 << 32)
        } else if x + (1 << 31) < self.xmax {
            x + (1 << 32)
        } else {
            x
        }
    }

    /// Whether the snapshot sees the (committed) transaction `xid`.
    pub(super) fn sees(&self, xid: u32) -> bool {
        let x = self.widen(xid);
        x < self.xmin || (x < self.xmax && !self.xip.contains(&x))
    }
}

/// The chunk in the open target transaction.
pub(super) struct InFlight {
    pub(super) table: usize,
    pub(super) lo: Option<i128>,
    pub(super) hi: Option<i128>,
    pub(super) seen: Seen,
    /// The target transaction may commit once the stream has reached this.
    pub(super) until: Position,
}

impl InFlight {
    pub(super) fn contains(&self, key: Option<i128>) -> bool {
        match key {
            None => true,
            Some(k) => self.lo.is_none_or(|l| k >= l) && self.hi.is_none_or(|h| k < h),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_sees_settled_and_finished_transactions_only() {
        let s = PgSnapshot::parse("100:110:102,105").unwrap();
        assert!(s.sees(99));
        assert!(s.sees(101));
        assert!(!s.sees(102));
        assert!(!s.sees(105));
        assert!(s.sees(109));
        assert!(!s.sees(110));
        assert!(!s.sees(4_000_000_000));
        let empty = PgSnapshot::parse("7:7:").unwrap();
        assert!(empty.sees(6) && !empty.sees(7));
    }

    #[test]
    fn ids_from_before_an_epoch_wrap_are_widened_into_the_previous_epoch() {
        // xmax just past the wrap: 32-bit ids near u32::MAX belong to epoch 0
        let s = PgSnapshot::parse(&format!("{}:{}:", (1u64 << 32) - 10, (1u64 << 32) + 5)).unwrap();
        assert!(s.sees(u32::MAX - 1));
        assert!(s.sees(3));
        assert!(!s.sees(5), "an id equal to xmax had not started");
        // xmax just before the wrap: small 32-bit ids are from the next epoch
        let s = PgSnapshot::parse(&format!("{}:{}:", (1u64 << 32) - 10, (1u64 << 32) - 5)).unwrap();
        assert!(!s.sees(2));
        assert!(s.sees(u32::MAX - 20));
    }

    #[test]
    fn coverage_and_chunk_membership() {
        assert!(!Coverage::Nothing.holds(Some(1)));
        assert!(Coverage::Below(10).holds(Some(9)));
        assert!(!Coverage::Below(10).holds(Some(10)));
        assert!(Coverage::All.holds(None));
        let f = InFlight {
            table: 0,
            lo: Some(10),
            hi: Some(20),
            seen: Seen::Binlog(Position::PgLsn(0)),
            until: Position::PgLsn(0),
        };
        assert!(f.contains(Some(10)) && f.contains(Some(19)));
        assert!(!f.contains(Some(9)) && !f.contains(Some(20)));
    }
}
