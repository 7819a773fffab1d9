//! Which sets a cleanup removes: those past the policy's retention, except every set
//! a kept set's chain needs (an incremental set restores only on top of its parents
//! back to their full set) and always the newest set. Pure, so it is tested alone.

use std::collections::{HashMap, HashSet};

/// How long sets are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retention {
    /// Sets finished within the last this many days.
    Days(u32),
    /// The newest this many sets (full or incremental).
    Sets(u32),
}

impl Retention {
    /// Reads `30d` (days) or `7` (sets).
    pub fn parse(text: &str) -> Result<Retention, String> {
        let t = text.trim();
        let bad = || {
            format!(
                "{text:?} is not a retention; write a number of days like 30d, or a number of sets like 7 (at least 1)"
            )
        };
        let (n, days) = match t.strip_suffix('d') {
            Some(n) => (n, true),
            None => (t, false),
        };
        if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let n: u32 = n.parse().map_err(|_| bad())?;
        if n == 0 {
            return Err(bad());
        }
        Ok(if days {
            Retention::Days(n)
        } else {
            Retention::Sets(n)
        })
    }
}

/// What the planner needs of a set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetInfo {
    /// The set id.
    pub id: String,
    /// The set it continues (an incremental's parent).
    pub parent: Option<String>,
    /// When it finished (ms since the epoch).
    pub finished_ms: i64,
}

/// The ids of `sets` to remove under `retention` at `now_ms`, oldest first.
pub fn plan(sets: &[SetInfo], retention: Retention, now_ms: i64) -> Vec<String> {
    let mut by_age: Vec<&SetInfo> = sets.iter().collect();
    by_age.sort_by(|a, b| (a.finished_ms, &a.id).cmp(&(b.finished_ms, &b.id)));
    let mut keep: HashSet<&str> = HashSet::new();
    match retention {
        Retention::Days(d) => {
            let from = now_ms - i64::from(d) * 86_400_000;
            keep.extend(
                by_age
                    .iter()
                    .filter(|s| s.finished_ms >= from)
                    .map(|s| s.id.as_str()),
            );
        }
        Retention::Sets(n) => {
            keep.extend(by_age.iter().rev().take(n as usize).map(|s| s.id.as_str()));
        }
    }
    // there is always something to restore
    if let Some(newest) = by_age.last() {
        keep.insert(newest.id.as_str());
    }
    // every kept set's parents, back to its full set
    let parent: HashMap<&str, Option<&str>> = sets
        .iter()
        .map(|s| (s.id.as_str(), s.parent.as_deref()))
        .collect();
    let kept: Vec<&str> = keep.iter().copied().collect();
    for id in kept {
        let mut at = parent.get(id).copied().flatten();
        while let Some(p) = at {
            if !keep.insert(p) {
                break;
            }
            at = parent.get(p).copied().flatten();
        }
    }
    by_age
        .iter()
        .filter(|s| !keep.contains(s.id.as_str()))
        .map(|s| s.id.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400_000;

    fn set(id: &str, parent: Option<&str>, day: i64) -> SetInfo {
        SetInfo {
            id: id.into(),
            parent: parent.map(String::from),
            finished_ms: day * DAY,
        }
    }

    #[test]
    fn retention_text() {
        assert_eq!(Retention::parse("30d"), Ok(Retention::Days(30)));
        assert_eq!(Retention::parse("7"), Ok(Retention::Sets(7)));
        for bad in ["", "0", "0d", "d", "-3", "3w", "1.5d", "99999999999"] {
            assert!(Retention::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn days_remove_old_sets_of_finished_chains() {
        // full f1 (day 1) + i1 (day 2); full f2 (day 20) + i2 (day 21)
        let sets = vec![
            set("f1", None, 1),
            set("i1", Some("f1"), 2),
            set("f2", None, 20),
            set("i2", Some("f2"), 21),
        ];
        assert_eq!(plan(&sets, Retention::Days(7), 25 * DAY), vec!["f1", "i1"]);
    }

    /// The test that fails if the planner deletes a parent a kept set needs.
    #[test]
    fn a_kept_incremental_keeps_its_parents_back_to_the_full() {
        // f1 is 40 days old, i1 30, i2 5: a 7-day retention keeps i2, so it must
        // keep i1 and f1 too
        let sets = vec![
            set("f1", None, 60),
            set("i1", Some("f1"), 70),
            set("i2", Some("i1"), 95),
        ];
        let doomed = plan(&sets, Retention::Days(7), 100 * DAY);
        assert!(doomed.is_empty(), "deleted a needed parent: {doomed:?}");
        // by count as well: keeping the newest one keeps its whole chain
        assert!(plan(&sets, Retention::Sets(1), 100 * DAY).is_empty());
    }

    #[test]
    fn count_keeps_the_newest_and_their_chains_only() {
        let sets = vec![
            set("f1", None, 1),
            set("i1", Some("f1"), 2),
            set("f2", None, 3),
            set("i2", Some("f2"), 4),
            set("i3", Some("i2"), 5),
        ];
        assert_eq!(plan(&sets, Retention::Sets(2), 10 * DAY), vec!["f1", "i1"]);
        assert_eq!(
            plan(&sets, Retention::Sets(3), 10 * DAY),
            vec!["f1", "i1"],
            "f2 is the third newest and the chain root anyway"
        );
    }

    #[test]
    fn the_newest_set_stays_whatever_its_age() {
        let sets = vec![set("f1", None, 1), set("f2", None, 2)];
        assert_eq!(plan(&sets, Retention::Days(1), 100 * DAY), vec!["f1"]);
        assert!(plan(&[], Retention::Days(1), 100 * DAY).is_empty());
    }
}
