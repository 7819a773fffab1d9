//! The figures a run produces, per pair: printed, and written as JSON for
//! `scripts/chaos.sh` to turn into RELIABILITY.md.

use crate::checker::Verdict;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Recovery-time percentiles of one set of samples, in milliseconds.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct Recovery {
    /// How many faults were measured.
    pub samples: usize,
    /// Median.
    pub p50_ms: u64,
    /// 99th percentile (nearest rank).
    pub p99_ms: u64,
    /// Longest.
    pub max_ms: u64,
}

impl Recovery {
    /// Percentiles of `ms` (nearest rank).
    pub fn of(ms: &[u64]) -> Recovery {
        if ms.is_empty() {
            return Recovery::default();
        }
        let mut v = ms.to_vec();
        v.sort_unstable();
        let rank = |p: f64| v[(((p * v.len() as f64).ceil() as usize).max(1) - 1).min(v.len() - 1)];
        Recovery {
            samples: v.len(),
            p50_ms: rank(0.50),
            p99_ms: rank(0.99),
            max_ms: *v.last().expect("non-empty"),
        }
    }
}

/// One fault as injected.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FaultRecord {
    /// Round number within the pair (1-based).
    pub round: u32,
    /// Fault kind (`kill`, `source-crash`, …).
    pub kind: String,
    /// For a kill: the phase aimed at; else details (duration, …).
    pub aim: String,
    /// Ferry's phase as its target recorded it at the fault (`none` before it wrote one).
    pub phase: String,
    /// Milliseconds into the round.
    pub at_ms: u64,
    /// Fault → streaming again (or, for kills in the copy, → the copy moving again).
    pub recovery_ms: Option<u64>,
}

/// Everything measured for one engine pair.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct PairReport {
    /// `source->target`.
    pub pair: String,
    /// Rounds run (each: fresh databases, a full copy, then streaming).
    pub runs: u32,
    /// Faults by kind.
    pub faults_by_kind: BTreeMap<String, u64>,
    /// Kills of Ferry by the phase they landed in (aim / recorded phase).
    pub kills_by_phase: BTreeMap<String, u64>,
    /// Source transactions acknowledged by the workload.
    pub source_transactions: u64,
    /// Ledger ids moved (preloaded and written during the run).
    pub ids_moved: u64,
    /// Rows on the target's ledger tables after catch-up.
    pub target_rows: u64,
    /// The checker's totals over all runs.
    pub verdict: Verdict,
    /// Recovery time over every measured fault.
    pub recovery: Recovery,
    /// Recovery time by fault kind.
    pub recovery_by_kind: BTreeMap<String, Recovery>,
    /// Faults after which Ferry did not stream again within the time limit.
    pub not_recovered: u64,
    /// Times `ferry run` exited by itself (status and its last error), then restarted.
    pub ferry_exits: Vec<String>,
    /// Runs whose final catch-up failed.
    pub catch_up_failures: Vec<String>,
    /// Frozen-and-replaced runs that, continued, did not stop as fenced (each a defect).
    #[serde(default)]
    pub zombies_not_fenced: Vec<String>,
    /// Frozen-and-replaced runs that, continued, stopped as fenced.
    #[serde(default)]
    pub zombies_fenced: u64,
    /// Every fault injected, in order.
    pub faults: Vec<FaultRecord>,
    /// Fault kinds asked for but not injected, and why.
    pub skipped: Vec<String>,
    /// Wall time of the pair, seconds.
    pub seconds: u64,
}

impl PairReport {
    /// Whether this pair failed: a checker violation, a fault not recovered from, or a
    /// run that could not catch up.
    pub fn failed(&self) -> bool {
        self.verdict.violations() > 0
            || self.not_recovered > 0
            || !self.catch_up_failures.is_empty()
            || !self.zombies_not_fenced.is_empty()
    }

    /// Adds a run's verdict to the totals.
    pub fn add_verdict(&mut self, v: &Verdict) {
        let t = &mut self.verdict;
        t.lost += v.lost;
        t.duplicated += v.duplicated;
        t.reordered += v.reordered;
        t.partial += v.partial;
        t.phantom += v.phantom;
        t.source_lost += v.source_lost;
        t.in_doubt += v.in_doubt;
        t.in_doubt_committed += v.in_doubt_committed;
        t.acked_ids += v.acked_ids;
        for s in &v.samples {
            if t.samples.len() < 20 {
                t.samples.push(s.clone());
            }
        }
    }

    /// Computes the recovery figures from the fault records.
    pub fn finish(&mut self) {
        let all: Vec<u64> = self.faults.iter().filter_map(|f| f.recovery_ms).collect();
        self.recovery = Recovery::of(&all);
        let mut by: BTreeMap<String, Vec<u64>> = BTreeMap::new();
        for f in &self.faults {
            if let Some(ms) = f.recovery_ms {
                let key = if f.kind == "kill" {
                    format!("kill/{}", f.aim)
                } else {
                    f.kind.clone()
                };
                by.entry(key).or_default().push(ms);
            }
        }
        self.recovery_by_kind = by.into_iter().map(|(k, v)| (k, Recovery::of(&v))).collect();
    }

    /// A human-readable summary.
    pub fn print(&self) {
        let v = &self.verdict;
        println!(
            "== {} : {} ==",
            self.pair,
            if self.failed() { "FAILED" } else { "ok" }
        );
        println!(
            "  runs {}, {} s; source transactions {}, ids moved {}, target rows {}",
            self.runs, self.seconds, self.source_transactions, self.ids_moved, self.target_rows
        );
        println!(
            "  lost {}, duplicated {}, reordered {}, partial {}, phantom {} (in doubt {}, of which committed {}; acknowledged but lost by the source itself {})",
            v.lost, v.duplicated, v.reordered, v.partial, v.phantom, v.in_doubt, v.in_doubt_committed, v.source_lost
        );
        println!("  faults: {:?}", self.faults_by_kind);
        println!("  kills by phase: {:?}", self.kills_by_phase);
        println!(
            "  recovery (fault -> streaming again): p50 {} ms, p99 {} ms, max {} ms over {} faults; not recovered {}",
            self.recovery.p50_ms, self.recovery.p99_ms, self.recovery.max_ms, self.recovery.samples, self.not_recovered
        );
        for (k, r) in &self.recovery_by_kind {
            println!(
                "    {k}: p50 {} ms, p99 {} ms, max {} ms ({})",
                r.p50_ms, r.p99_ms, r.max_ms, r.samples
            );
        }
        for e in &self.ferry_exits {
            println!("  ferry exited by itself: {e}");
        }
        for e in &self.catch_up_failures {
            println!("  CATCH-UP FAILED: {e}");
        }
        for s in &v.samples {
            println!("  violation: {s}");
        }
        for s in &self.skipped {
            println!("  skipped: {s}");
        }
    }
}

/// The whole run.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct Summary {
    /// The seed (repeat with `--seed`).
    pub seed: u64,
    /// The command line.
    pub command: String,
    /// Start time, seconds since the Unix epoch.
    pub started_unix: u64,
    /// Wall time, seconds.
    pub seconds: u64,
    /// The `ferry` binary driven.
    pub ferry: String,
    /// Sizes used.
    pub settings: BTreeMap<String, String>,
    /// One entry per pair.
    pub pairs: Vec<PairReport>,
    /// Remarks on what was not covered.
    pub notes: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::Recovery;

    #[test]
    fn percentiles_are_nearest_rank() {
        let r = Recovery::of(&(1..=100).collect::<Vec<_>>());
        assert_eq!(
            (r.p50_ms, r.p99_ms, r.max_ms, r.samples),
            (50, 99, 100, 100)
        );
        let r = Recovery::of(&[7]);
        assert_eq!((r.p50_ms, r.p99_ms, r.max_ms), (7, 7, 7));
        assert_eq!(Recovery::of(&[]).samples, 0);
    }
}
