//! RELIABILITY.md, written from a run's [`Summary`]: per pair the figures, the
//! command and seed that repeat it, the date and machine, and what is not covered.

use crate::report::Summary;
use std::fmt::Write;

/// The machine: CPU model and count, memory (from /proc), kernel.
pub fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let mem_gb = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemTotal"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map(|kb| kb / 1024 / 1024)
        .unwrap_or(0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    format!("{cores} × {cpu}, {mem_gb} GB RAM, Linux {kernel}")
}

/// A UTC date and time from seconds since the epoch (civil-from-days).
pub fn utc(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60
    )
}

/// The document.
pub fn render(s: &Summary, machine: &str) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "# Reliability\n");
    let _ = writeln!(
        o,
        "Measured, not claimed: `ferry-chaos` (crates/ferry-chaos) runs a ledger workload on a \
         source, drives the real `ferry` binary (`ferry run task.yaml`, a `full+incremental` task) \
         through its full copy and change stream, injects faults at random instants drawn from a \
         printed seed, and then checks the target with its own queries — independent of \
         `ferry compare` and of anything Ferry records. This file is written by \
         `scripts/chaos.sh`; do not edit it by hand.\n"
    );
    let violations: u64 = s.pairs.iter().map(|p| p.verdict.violations()).sum();
    let failed = s.pairs.iter().filter(|p| p.failed()).count();
    let _ = writeln!(
        o,
        "**Result: {}.** {} pair(s), {} fault(s) injected in all, {} s.\n",
        if failed == 0 {
            "0 acknowledged transactions lost, 0 duplicated, 0 reordered, 0 applied in part"
                .to_string()
        } else {
            format!("{violations} violation(s) in {failed} pair(s) — see below")
        },
        s.pairs.len(),
        s.pairs.iter().map(|p| p.faults.len()).sum::<usize>(),
        s.seconds
    );
    let _ = writeln!(o, "- Date: {}", utc(s.started_unix));
    let _ = writeln!(
        o,
        "- Machine: {machine} (shared with other work while it ran)"
    );
    let _ = writeln!(o, "- Command: `{}`", s.command);
    let _ = writeln!(o, "- Seed: {} (repeat: add `--seed {}`)", s.seed, s.seed);
    let _ = writeln!(o, "- Ferry binary: `{}`", s.ferry);
    let settings: Vec<String> = s.settings.iter().map(|(k, v)| format!("{k} {v}")).collect();
    let _ = writeln!(o, "- Sizes: {}\n", settings.join(", "));

    let _ = writeln!(o, "## Per pair\n");
    let _ = writeln!(
        o,
        "| pair | runs | faults | kills | source txns | ids moved | lost | duplicated | reordered | partial | phantom | recovery p50 | p99 | max | not recovered |"
    );
    let _ = writeln!(
        o,
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    );
    for p in &s.pairs {
        let v = &p.verdict;
        let _ = writeln!(
            o,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {:.1} s | {:.1} s | {:.1} s | {} |",
            p.pair,
            p.runs,
            p.faults.len(),
            p.faults_by_kind.get("kill").copied().unwrap_or(0),
            p.source_transactions,
            p.ids_moved,
            v.lost,
            v.duplicated,
            v.reordered,
            v.partial,
            v.phantom,
            p.recovery.p50_ms as f64 / 1000.0,
            p.recovery.p99_ms as f64 / 1000.0,
            p.recovery.max_ms as f64 / 1000.0,
            p.not_recovered
        );
    }
    for p in &s.pairs {
        let _ = writeln!(o, "\n### {}\n", p.pair);
        let kinds: Vec<String> = p
            .faults_by_kind
            .iter()
            .map(|(k, n)| format!("{k} {n}"))
            .collect();
        let _ = writeln!(o, "- Faults by kind: {}", kinds.join(", "));
        let _ = writeln!(
            o,
            "- Kills by phase (aimed at / phase the target recorded at the kill):"
        );
        for (ph, n) in &p.kills_by_phase {
            let _ = writeln!(o, "  - {ph}: {n}");
        }
        let _ = writeln!(o, "- Recovery time by fault (p50 / p99 / max, samples):");
        for (k, r) in &p.recovery_by_kind {
            let _ = writeln!(
                o,
                "  - {k}: {:.1} s / {:.1} s / {:.1} s ({})",
                r.p50_ms as f64 / 1000.0,
                r.p99_ms as f64 / 1000.0,
                r.max_ms as f64 / 1000.0,
                r.samples
            );
        }
        let v = &p.verdict;
        let _ = writeln!(
            o,
            "- Transactions whose COMMIT got no answer (in doubt): {}, of which the source holds {} (each checked whole on the target like the acknowledged ones)",
            v.in_doubt, v.in_doubt_committed
        );
        if v.source_lost > 0 {
            let _ = writeln!(
                o,
                "- Acknowledged by the source but missing on the source itself after its crash: {} (a source durability matter, not Ferry's)",
                v.source_lost
            );
        }
        let _ = writeln!(
            o,
            "- Rows on the target's ledger tables after catch-up: {}",
            p.target_rows
        );
        let zombies = p.zombies_fenced + p.zombies_not_fenced.len() as u64;
        if zombies > 0 {
            let _ = writeln!(
                o,
                "- Frozen runs replaced and then continued (zombie writers): {zombies}, of which {} stopped by themselves once continued (the checker finds anything they wrote twice)",
                p.zombies_fenced
            );
            for z in &p.zombies_not_fenced {
                let _ = writeln!(o, "  - NOT fenced: {z}");
            }
        }
        if p.ferry_exits.is_empty() {
            let _ = writeln!(o, "- `ferry run` never exited by itself");
        } else {
            let _ = writeln!(
                o,
                "- `ferry run` exited by itself {} time(s) (then restarted, as a supervisor would):",
                p.ferry_exits.len()
            );
            for e in &p.ferry_exits {
                let e: String = e.replace('|', "/").chars().take(600).collect();
                let _ = writeln!(o, "  - {e}");
            }
        }
        for e in &p.catch_up_failures {
            let _ = writeln!(o, "- **Run failed:** {e}");
        }
        for x in &v.samples {
            let _ = writeln!(o, "- **Violation:** {x}");
        }
        for x in &p.skipped {
            let _ = writeln!(o, "- Skipped: {x}");
        }
    }

    let _ = writeln!(o, "\n## How it measures\n");
    let _ = writeln!(
        o,
        "- **Workload.** Several writers on the source, each transaction with unique ids \
         (writer × 10⁹ + sequence): one row in `ledger_log` (primary key), one in \
         `ledger_keyless` (no key at all), and the id appended to the `items` list of two \
         random `ledger_lists` rows — all in one transaction. A big transaction (thousands of \
         ids) now and then, to land kills inside its apply. Ids preloaded before the task \
         starts are the full copy's work. A transaction counts as acknowledged only when COMMIT \
         returned OK; one whose COMMIT got no answer is *in doubt*: the source decides whether \
         it exists, and if it does it must be on the target whole.\n\
         - **Checker.** After the workload stops and `ferry run --exit-when-caught-up` returns: \
         every id the source holds is on the target in `ledger_log` once and in \
         `ledger_keyless` exactly once (*lost* = none of its parts, *duplicated* = extra \
         keyless rows or list entries), each list row holds the source's ids in the source's \
         order (*reordered*), every id on the target has all its parts — log row, keyless row, \
         both list entries (*partial*) — and nothing is on the target that the source lacks \
         (*phantom*). Every acknowledged id must be on the source too (else the source lost it).\n\
         - **Faults.** kill -9 of `ferry run` aimed at start-up (snapshot), the chunk copy \
         (after a chunk committed), the hand-off (the moment the target records the \
         incremental phase), a big transaction's apply (Ferry's target transaction seen \
         holding many rows), right after a checkpoint write (Ferry's recorded position seen \
         moving) and random instants while applying; the source and the target server crashed \
         (PostgreSQL `pg_ctl stop -m immediate`, MariaDB kill -9) and restarted after a random \
         downtime; every source connection reset, silenced (stall up to 25 s, past Ferry's 15 s \
         stall detection) or slowed (delay and bandwidth limit) by the testkit proxy Ferry \
         reaches the source through; the target's disk (a tmpfs of its own) filled to the last \
         byte for seconds; a session holding a lock on a target table for up to 20 s. Ferry is \
         restarted after each kill (after 0–1 s), and whenever it exits by itself.\n\
         - **Recovery time** = from the fault to the moment the target holds a transaction the \
         source acknowledged after the fault was repaired (for kills during the copy: to the \
         next chunk committed). It includes the server's downtime for crashes and the stall \
         itself for stalls. A MariaDB server whose disk is full waits and retries its write \
         (every 60 s) instead of failing it: a MariaDB target's disk-full recovery includes \
         that wait.\n\
         - The PostgreSQL servers run with `synchronous_commit=on` (the testkit's default is off, \
         for speed), MariaDB with its binlog and InnoDB log written at each commit; both with \
         `fsync` off (a process crash, not a power loss, is what is injected).\n"
    );
    let _ = writeln!(o, "## Not covered\n");
    for n in &s.notes {
        let _ = writeln!(o, "- {n}");
    }
    let _ = writeln!(
        o,
        "- A seed repeats the choices (which faults, in which order, the delays), not the \
         exact instants: they depend on timing.\n\
         - Power loss (unsynced writes lost), a full *source* disk, clock jumps, packet \
         reordering or corruption, TLS links, the service (`ferry serve`, workers and leases) \
         and DR switchover/failover are not injected here; MySQL 8 is not tested (only \
         MariaDB 10.11 runs on this machine).\n\
         - Only the source link goes through the fault proxy; the target link sees server \
         crashes, a full disk and lock waits, not network faults.\n\
         - The workload inserts and updates; it does not delete, change keys or alter tables \
         (`crates/ferry/tests` cover those without faults)."
    );
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_utc_calendar_dates() {
        assert_eq!(utc(0), "1970-01-01 00:00 UTC");
        assert_eq!(utc(951_782_400 + 3_661), "2000-02-29 01:01 UTC");
        assert_eq!(utc(1_798_761_600), "2027-01-01 00:00 UTC");
    }

    #[test]
    fn a_violation_is_the_headline() {
        let mut s = Summary::default();
        let mut p = crate::report::PairReport {
            pair: "mariadb->pg".into(),
            ..Default::default()
        };
        p.verdict.duplicated = 3;
        s.pairs.push(p);
        let md = render(&s, "m");
        assert!(md.contains("3 violation(s) in 1 pair(s)"), "{md}");
        s.pairs[0].verdict.duplicated = 0;
        assert!(render(&s, "m").contains("0 acknowledged transactions lost"));
    }
}
