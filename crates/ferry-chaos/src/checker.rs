//! The checker: reads the ledger on the source and on the target with plain queries
//! (independent of `ferry compare` and of anything Ferry records) and counts what
//! was lost, duplicated, reordered, applied in part or invented.

use crate::ledger::{Acks, Txn};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// One side's ledger as read.
#[derive(Debug, Default, Clone)]
pub struct Side {
    /// `ledger_log`: id → (r1, r2).
    pub log: HashMap<u64, (i64, i64)>,
    /// `ledger_keyless`: id → how many rows carry it.
    pub keyless: HashMap<u64, u64>,
    /// `ledger_lists`: row → its ids in list order.
    pub lists: BTreeMap<u64, Vec<u64>>,
}

impl Side {
    /// Builds a side from the rows of the three queries in [`queries`].
    pub fn from_rows(
        log: Vec<Vec<Option<String>>>,
        keyless: Vec<Vec<Option<String>>>,
        lists: Vec<Vec<Option<String>>>,
    ) -> Side {
        let num = |v: &Option<String>| {
            v.as_deref()
                .and_then(|s| s.parse::<i64>().ok())
                .unwrap_or(-9)
        };
        let mut s = Side::default();
        for r in log {
            s.log.insert(num(&r[0]) as u64, (num(&r[1]), num(&r[2])));
        }
        for r in keyless {
            *s.keyless.entry(num(&r[0]) as u64).or_default() += num(&r[1]) as u64;
        }
        for r in lists {
            let items = r[1].clone().unwrap_or_default();
            let ids = items
                .split(',')
                .filter(|x| !x.is_empty())
                .map(|x| x.parse::<u64>().unwrap_or(u64::MAX))
                .collect();
            s.lists.insert(num(&r[0]) as u64, ids);
        }
        s
    }
}

/// The three queries that read a side; `prefix` qualifies the tables (`"db".` or empty).
pub fn queries(prefix: &str) -> [String; 3] {
    [
        format!("SELECT txid, r1, r2 FROM {prefix}ledger_log"),
        format!("SELECT txid, count(*) FROM {prefix}ledger_keyless GROUP BY txid"),
        format!("SELECT id, items FROM {prefix}ledger_lists ORDER BY id"),
    ]
}

/// What the checker found (all zero = correct).
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct Verdict {
    /// Ids the source holds (acknowledged or in doubt and committed) that the target
    /// lacks entirely.
    pub lost: u64,
    /// Extra copies on the target (keyless rows beyond one, an id twice in a list).
    pub duplicated: u64,
    /// List rows whose common ids are in another order than on the source.
    pub reordered: u64,
    /// Ids present on the target with some of their parts missing.
    pub partial: u64,
    /// Ids on the target the source does not hold.
    pub phantom: u64,
    /// Acknowledged ids the source itself lacks (a source durability problem, not
    /// Ferry's; reported, not counted as a Ferry violation).
    pub source_lost: u64,
    /// In-doubt ids, and how many of them the source turned out to hold.
    pub in_doubt: u64,
    /// In-doubt ids that committed.
    pub in_doubt_committed: u64,
    /// Ids checked (acknowledged).
    pub acked_ids: u64,
    /// A few offending ids with what is wrong, for the report.
    pub samples: Vec<String>,
}

impl Verdict {
    /// Whether anything Ferry is responsible for went wrong.
    pub fn violations(&self) -> u64 {
        self.lost + self.duplicated + self.reordered + self.partial + self.phantom
    }

    fn sample(&mut self, s: String) {
        if self.samples.len() < 20 {
            self.samples.push(s);
        }
    }
}

fn ids(t: &[Txn]) -> impl Iterator<Item = u64> + '_ {
    t.iter().flat_map(|t| t.first..t.first + t.count)
}

/// Compares `target` against `source` and what the writers know (`preloaded` ids
/// 1..=n were loaded before the task started).
pub fn check(source: &Side, target: &Side, acks: &Acks, preloaded: u64) -> Verdict {
    let mut v = Verdict::default();
    let acked: Vec<u64> = (1..=preloaded)
        .chain(ids(&acks.acked.iter().map(|(_, t)| *t).collect::<Vec<_>>()).collect::<Vec<_>>())
        .collect();
    v.acked_ids = acked.len() as u64;
    for id in &acked {
        if !source.log.contains_key(id) {
            v.source_lost += 1;
        }
    }
    let in_doubt: Vec<u64> = ids(&acks.in_doubt).collect();
    v.in_doubt = in_doubt.len() as u64;
    v.in_doubt_committed = in_doubt
        .iter()
        .filter(|i| source.log.contains_key(i))
        .count() as u64;

    // where each id sits in the target's lists
    let mut t_list_pos: HashMap<u64, Vec<u64>> = HashMap::new();
    for (row, items) in &target.lists {
        for id in items {
            t_list_pos.entry(*id).or_default().push(*row);
        }
    }
    // every id the source holds must be on the target whole, once
    for (id, (r1, r2)) in &source.log {
        let in_log = target.log.contains_key(id);
        let kl = target.keyless.get(id).copied().unwrap_or(0);
        let rows = t_list_pos.get(id).cloned().unwrap_or_default();
        let want_rows: BTreeSet<u64> = [*r1, *r2]
            .into_iter()
            .filter(|r| *r >= 0)
            .map(|r| r as u64)
            .collect();
        let in_lists = want_rows.iter().filter(|r| rows.contains(r)).count();
        let parts_present = in_log as usize + (kl > 0) as usize + in_lists;
        let parts_wanted = 2 + want_rows.len();
        if parts_present == 0 {
            v.lost += 1;
            v.sample(format!("lost {id}"));
        } else if parts_present < parts_wanted {
            v.partial += 1;
            v.sample(format!(
                "partial {id}: log {in_log}, keyless {kl}, lists {in_lists}/{}",
                want_rows.len()
            ));
        }
        if kl > 1 {
            v.duplicated += kl - 1;
            v.sample(format!("duplicated {id}: {kl} keyless rows"));
        }
        if rows.len() > want_rows.len() {
            v.duplicated += (rows.len() - want_rows.len()) as u64;
            v.sample(format!(
                "duplicated {id}: in lists {rows:?}, want {want_rows:?}"
            ));
        }
    }
    // nothing the source lacks
    let mut phantoms: BTreeSet<u64> = BTreeSet::new();
    phantoms.extend(target.log.keys().filter(|i| !source.log.contains_key(i)));
    phantoms.extend(
        target
            .keyless
            .keys()
            .filter(|i| !source.log.contains_key(i)),
    );
    phantoms.extend(t_list_pos.keys().filter(|i| !source.log.contains_key(i)));
    for id in &phantoms {
        v.sample(format!("phantom {id}"));
    }
    v.phantom = phantoms.len() as u64;
    // same order: the ids both sides' lists hold, in the same sequence
    for (row, s_items) in &source.lists {
        let t_items = target.lists.get(row).cloned().unwrap_or_default();
        if &t_items == s_items {
            continue;
        }
        let s_set: BTreeSet<u64> = s_items.iter().copied().collect();
        let t_set: BTreeSet<u64> = t_items.iter().copied().collect();
        let mut seen = BTreeSet::new();
        let s_common: Vec<u64> = s_items
            .iter()
            .copied()
            .filter(|i| t_set.contains(i))
            .collect();
        let t_common: Vec<u64> = t_items
            .iter()
            .copied()
            .filter(|i| s_set.contains(i) && seen.insert(*i))
            .collect();
        if s_common != t_common {
            v.reordered += 1;
            v.sample(format!("reordered list row {row}"));
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn side(log: &[(u64, i64, i64)], keyless: &[(u64, u64)], lists: &[(u64, &[u64])]) -> Side {
        Side {
            log: log.iter().map(|(i, a, b)| (*i, (*a, *b))).collect(),
            keyless: keyless.iter().copied().collect(),
            lists: lists.iter().map(|(r, v)| (*r, v.to_vec())).collect(),
        }
    }

    fn acks(ids: &[u64]) -> Acks {
        let mut a = Acks::default();
        for i in ids {
            a.acked.push((
                std::time::Instant::now(),
                Txn {
                    first: *i,
                    count: 1,
                },
            ));
        }
        a
    }

    fn source() -> Side {
        side(
            &[(1, -1, -1), (10, 0, 1), (11, 1, 2)],
            &[(1, 1), (10, 1), (11, 1)],
            &[(0, &[10]), (1, &[10, 11]), (2, &[11])],
        )
    }

    #[test]
    fn an_exact_copy_passes() {
        let v = check(&source(), &source(), &acks(&[10, 11]), 1);
        assert_eq!(v.violations(), 0, "{v:?}");
        assert_eq!(v.acked_ids, 3);
    }

    #[test]
    fn each_kind_of_damage_is_counted() {
        // 11 lost whole; 10 duplicated in the keyless table; 1 lost its keyless row
        let t = side(
            &[(1, -1, -1), (10, 0, 1)],
            &[(10, 2)],
            &[(0, &[10]), (1, &[10]), (2, &[])],
        );
        let v = check(&source(), &t, &acks(&[10, 11]), 1);
        assert_eq!((v.lost, v.duplicated, v.partial), (1, 1, 1), "{v:?}");
        // reordered list, and an id the source never had
        let t = side(
            &[(1, -1, -1), (10, 0, 1), (11, 1, 2), (99, 0, 1)],
            &[(1, 1), (10, 1), (11, 1)],
            &[(0, &[10]), (1, &[11, 10]), (2, &[11])],
        );
        let v = check(&source(), &t, &acks(&[10, 11]), 1);
        assert_eq!((v.reordered, v.phantom, v.lost), (1, 1, 0), "{v:?}");
    }

    #[test]
    fn an_acknowledged_id_missing_on_the_source_is_the_source_s_loss() {
        let v = check(&source(), &source(), &acks(&[10, 11, 12]), 1);
        assert_eq!((v.source_lost, v.violations()), (1, 0));
    }
}
