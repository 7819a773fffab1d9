//! Which keys of a table the target holds, and the chunk in flight with what its
//! snapshot saw ([`Seen`], the capture's): the facts that decide, change by change,
//! whether the stream applies or skips.

use ferry_connector::Seen;
use ferry_core::Position;

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
    fn coverage_and_chunk_membership() {
        assert!(!Coverage::Nothing.holds(Some(1)));
        assert!(Coverage::Below(10).holds(Some(9)));
        assert!(!Coverage::Below(10).holds(Some(10)));
        assert!(Coverage::All.holds(None));
        let f = InFlight {
            table: 0,
            lo: Some(10),
            hi: Some(20),
            seen: Seen::Before(Position::parse("lsn:0/0").unwrap()),
            until: Position::parse("lsn:0/0").unwrap(),
        };
        assert!(f.contains(Some(10)) && f.contains(Some(19)));
        assert!(!f.contains(Some(9)) && !f.contains(Some(20)));
    }
}
