//! The fault kinds the suite can inject, and how `--faults` names them.

use anyhow::{bail, Result};

/// One kind of fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// kill -9 of `ferry run`, aimed at a phase.
    Kill,
    /// The source server crashes (immediate stop / kill -9) and restarts.
    SourceCrash,
    /// The target server crashes and restarts.
    TargetCrash,
    /// Every connection through the source proxy is reset.
    NetReset,
    /// The source proxy forwards nothing for a while, connections left open.
    NetStall,
    /// The source proxy delays and throttles traffic for a while.
    NetSlow,
    /// The target's disk (its tmpfs) is full for a while.
    DiskFull,
    /// A session holds a lock on a target table for a while.
    LockWait,
    /// The running `ferry run` is frozen (SIGSTOP) while a second one takes the task
    /// over (as a supervisor, or the service's next worker after the lease ran out,
    /// would), then continued: a zombie writer, which must write nothing more.
    ZombieWorker,
}

impl Kind {
    /// Every kind but kills (those are planned separately).
    pub const OTHERS: [Kind; 8] = [
        Kind::SourceCrash,
        Kind::TargetCrash,
        Kind::NetReset,
        Kind::NetStall,
        Kind::NetSlow,
        Kind::DiskFull,
        Kind::LockWait,
        Kind::ZombieWorker,
    ];

    /// The name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Kill => "kill",
            Kind::SourceCrash => "source-crash",
            Kind::TargetCrash => "target-crash",
            Kind::NetReset => "net-reset",
            Kind::NetStall => "net-stall",
            Kind::NetSlow => "net-slow",
            Kind::DiskFull => "disk-full",
            Kind::LockWait => "lock-wait",
            Kind::ZombieWorker => "zombie",
        }
    }
}

/// Parses `--faults`: names, or groups `crash` (source and target), `net` (reset,
/// stall, slow), `disk`, `lock`, `all`.
pub fn parse(list: &str) -> Result<Vec<Kind>> {
    let mut out = Vec::new();
    for w in list.split(',').map(str::trim).filter(|w| !w.is_empty()) {
        let add: Vec<Kind> = match w {
            "all" => std::iter::once(Kind::Kill).chain(Kind::OTHERS).collect(),
            "crash" => vec![Kind::SourceCrash, Kind::TargetCrash],
            "net" => vec![Kind::NetReset, Kind::NetStall, Kind::NetSlow],
            "disk" => vec![Kind::DiskFull],
            "lock" => vec![Kind::LockWait],
            other => match std::iter::once(Kind::Kill)
                .chain(Kind::OTHERS)
                .find(|k| k.name() == other)
            {
                Some(k) => vec![k],
                None => bail!(
                    "unknown fault `{other}`; known: kill, source-crash, target-crash, net-reset, \
                     net-stall, net-slow, disk-full, lock-wait, zombie, and the groups crash, net, disk, lock, all"
                ),
            },
        };
        for k in add {
            if !out.contains(&k) {
                out.push(k);
            }
        }
    }
    if out.is_empty() {
        bail!("--faults names no fault");
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_expand_and_unknown_names_are_refused() {
        assert_eq!(
            parse("kill,net").unwrap(),
            vec![Kind::Kill, Kind::NetReset, Kind::NetStall, Kind::NetSlow]
        );
        assert_eq!(parse("all").unwrap().len(), 9);
        assert!(parse("kill,bogus")
            .unwrap_err()
            .to_string()
            .contains("unknown fault `bogus`"));
        assert_eq!(parse("zombie").unwrap(), vec![Kind::ZombieWorker]);
    }
}
