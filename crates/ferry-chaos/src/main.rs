//! `ferry-chaos`: measures Ferry's reliability. For each engine pair it runs a ledger
//! workload on a source, drives the real `ferry` binary through a full copy and the
//! change stream while injecting faults at seeded random instants (kill -9 of Ferry
//! in every phase, source and target crashes, network resets, stalls and slow links
//! through the testkit proxy, a full target disk, lock waits), then checks the target
//! with its own queries: nothing acknowledged lost, nothing duplicated, reordered or
//! applied in part. Prints and writes (`--out`) the figures; exits 1 on any violation.

mod checker;
mod db;
mod faults;
mod ferry;
mod ledger;
mod markdown;
mod observe;
mod report;
mod rng;
mod round;
mod servers;

use anyhow::{bail, Context, Result};
use clap::Parser;
use db::Engine;
use faults::Kind;
use report::{PairReport, Summary};
use rng::Rng;
use round::{Aim, Config, PairEnv, Plan, Step};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Fault-injection suite for Ferry (see RELIABILITY.md).
#[derive(Parser, Debug)]
#[command(name = "ferry-chaos")]
struct Cli {
    /// Engine pairs: pg-pg, mariadb-mariadb, mariadb-pg, pg-mariadb (comma-separated).
    #[arg(long, default_value = "pg-pg,mariadb-mariadb,mariadb-pg,pg-mariadb")]
    pairs: String,
    /// Fault kinds: kill, source-crash, target-crash, net-reset, net-stall, net-slow,
    /// disk-full, lock-wait, zombie, or the groups crash, net, disk, lock, all.
    #[arg(long, default_value = "all")]
    faults: String,
    /// Seed of every random choice (printed at start; default: from the clock).
    #[arg(long)]
    seed: Option<u64>,
    /// kill -9 of Ferry per pair (default 50; 5 with --quick).
    #[arg(long)]
    kills: Option<u64>,
    /// Each other fault kind this many times per pair (default 2; with --quick each
    /// kind once over the whole run, spread over the pairs).
    #[arg(long)]
    others: Option<u64>,
    /// Runs per pair, each with fresh databases and a full copy (default 2; 1 with --quick).
    #[arg(long)]
    rounds: Option<u32>,
    /// A short run for CI (~ a few minutes): few faults, small data.
    #[arg(long)]
    quick: bool,
    /// Ids preloaded before each run's copy (default 100000; 40000 with --quick).
    #[arg(long)]
    preload: Option<u64>,
    /// Concurrent writers of small transactions (default 4; 2 with --quick).
    #[arg(long)]
    writers: Option<u64>,
    /// Write the summary as JSON to this file.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Write RELIABILITY.md (the figures, command, seed, machine) to this file.
    #[arg(long)]
    markdown: Option<PathBuf>,
    /// Only rewrite `--markdown` from the JSON of earlier runs (their `--out`;
    /// several, comma-separated, are merged: pairs run in parallel processes).
    #[arg(long, requires = "markdown", value_delimiter = ',')]
    render: Vec<PathBuf>,
    /// A remark for the report's "not covered" list (how this run differs from the
    /// full suite, …); repeatable.
    #[arg(long)]
    note: Vec<String>,
    /// Append each violation, as found, to this file.
    #[arg(long)]
    findings: Option<PathBuf>,
    /// The `ferry` binary (default: next to this one).
    #[arg(long)]
    ferry: Option<PathBuf>,
}

fn parse_pairs(s: &str) -> Result<Vec<(Engine, Engine)>> {
    let engine = |e: &str| match e {
        "pg" | "postgres" => Ok(Engine::Pg),
        "mariadb" | "mysql" => Ok(Engine::My),
        _ => bail!("unknown engine `{e}` in --pairs (pg, mariadb)"),
    };
    s.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (a, b) = p.split_once('-').with_context(|| {
                format!("--pairs: `{p}` is not source-target (e.g. mariadb-pg)")
            })?;
            Ok((engine(a)?, engine(b)?))
        })
        .collect()
}

/// The rounds of one pair: the copy-phase kills in each round, the rest of the kills
/// and the other faults spread over the rounds at random and shuffled.
fn plan(
    rng: &mut Rng,
    rounds: u32,
    kills: u64,
    chunk_kills: u64,
    others: &[(Kind, u64)],
) -> Vec<Plan> {
    let mut plans: Vec<Plan> = (0..rounds).map(|_| Plan::default()).collect();
    let mut left = kills;
    for p in plans.iter_mut() {
        if left >= 2 {
            p.copy_phase_kills = true;
            left -= 2;
        }
        p.chunk_kills = chunk_kills.min(left);
        left -= p.chunk_kills;
    }
    for _ in 0..left {
        let aim = match rng.range(0, 9) {
            0..=4 => Aim::Apply,
            5..=7 => Aim::Checkpoint,
            _ => Aim::BigTxn,
        };
        let r = rng.range(0, u64::from(rounds) - 1) as usize;
        plans[r].steps.push(Step::Kill(aim));
    }
    for (kind, n) in others {
        for _ in 0..*n {
            let r = rng.range(0, u64::from(rounds) - 1) as usize;
            plans[r].steps.push(Step::Fault(*kind));
        }
    }
    for p in plans.iter_mut() {
        rng.shuffle(&mut p.steps);
    }
    plans
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .expect("tokio runtime");
    match rt.block_on(run(cli)) {
        Ok(true) => std::process::ExitCode::SUCCESS,
        Ok(false) => std::process::ExitCode::from(1),
        Err(e) => {
            eprintln!("ferry-chaos: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}

async fn run(cli: Cli) -> Result<bool> {
    if let (false, Some(md)) = (cli.render.is_empty(), &cli.markdown) {
        let mut all: Option<Summary> = None;
        for json in &cli.render {
            let s: Summary = serde_json::from_str(&std::fs::read_to_string(json)?)
                .with_context(|| format!("read {}", json.display()))?;
            all = Some(match all {
                None => s,
                Some(mut a) => {
                    a.command = format!("{}` and, at the same time, `{}", a.command, s.command);
                    a.seconds = a.seconds.max(s.seconds);
                    a.pairs.extend(s.pairs);
                    for n in s.notes {
                        if !a.notes.contains(&n) {
                            a.notes.push(n);
                        }
                    }
                    a
                }
            });
        }
        let mut s = all.expect("at least one file");
        s.notes.extend(cli.note.iter().cloned());
        std::fs::write(md, markdown::render(&s, &markdown::machine()))?;
        println!("wrote {}", md.display());
        return Ok(true);
    }
    let started = Instant::now();
    let seed = cli.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() % 1_000_000)
            .unwrap_or(1)
    });
    let pairs = parse_pairs(&cli.pairs)?;
    let kinds = faults::parse(&cli.faults)?;
    let quick = cli.quick;
    let kills = if kinds.contains(&Kind::Kill) {
        cli.kills.unwrap_or(if quick { 5 } else { 50 })
    } else {
        0
    };
    let rounds = cli.rounds.unwrap_or(if quick { 1 } else { 2 }).max(1);
    let preload = cli.preload.unwrap_or(if quick { 40_000 } else { 100_000 });
    let ferry = match cli.ferry {
        Some(p) => p,
        None => std::env::current_exe()?.with_file_name("ferry"),
    };
    if !ferry.exists() {
        bail!(
            "the ferry binary {} does not exist; build it (cargo build -p ferry, with --release for \
             a release ferry-chaos) or pass --ferry",
            ferry.display()
        );
    }
    let root = round::work_root();
    let work = root.join("runs");
    std::fs::create_dir_all(&work)?;
    let cfg = Config {
        seed,
        preload,
        chunk_rows: (preload / 50).max(500),
        writers: cli.writers.unwrap_or(if quick { 2 } else { 4 }),
        big_rows: if quick { 1000 } else { 3000 },
        big_every: Duration::from_secs(if quick { 20 } else { 45 }),
        chunk_kills: if quick { 1 } else { 3 },
        recovery_timeout: Duration::from_secs(300),
        findings: cli.findings.clone(),
        ferry: ferry.clone(),
        work: work.clone(),
    };
    let command = std::env::args().collect::<Vec<_>>().join(" ");
    println!("ferry-chaos seed {seed} (repeat with --seed {seed}); {command}");
    println!(
        "pairs {}, faults {}, {kills} kills per pair, {rounds} run(s) per pair, {preload} preloaded ids",
        cli.pairs,
        kinds.iter().map(|k| k.name()).collect::<Vec<_>>().join(",")
    );

    // the servers: one source and one target per engine the pairs use
    let mut notes = vec![
        "zombie: the frozen process is a `ferry run` replaced by another `ferry run`; the \
         service's own worker takeover is tested in crates/ferry/tests/service/workers.rs"
            .to_string(),
    ];
    let disk = kinds.contains(&Kind::DiskFull);
    let mut sources: BTreeMap<&str, servers::Server> = BTreeMap::new();
    let mut targets: BTreeMap<&str, servers::Server> = BTreeMap::new();
    for (from, to) in &pairs {
        if !sources.contains_key(from.short()) {
            let (s, _) = tokio::task::block_in_place(|| {
                servers::Server::start(*from, "source", &root, None)
            })?;
            sources.insert(from.short(), s);
        }
        if !targets.contains_key(to.short()) {
            let mb = match to {
                Engine::Pg => 1024,
                // InnoDB's 256 MB redo log, and the target's own binlog of Ferry's writes
                Engine::My => 3072,
            };
            let (s, note) = tokio::task::block_in_place(|| {
                servers::Server::start(*to, "target", &root, disk.then_some(mb))
            })?;
            notes.extend(note);
            targets.insert(to.short(), s);
        }
    }

    let mut summary = Summary {
        seed,
        command,
        started_unix: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
        ferry: ferry.display().to_string(),
        notes: notes.into_iter().chain(cli.note.iter().cloned()).collect(),
        ..Summary::default()
    };
    for (k, v) in [
        ("kills_per_pair", kills.to_string()),
        ("runs_per_pair", rounds.to_string()),
        ("preloaded_ids", preload.to_string()),
        ("chunk_rows", cfg.chunk_rows.to_string()),
        ("writers", cfg.writers.to_string()),
        ("big_transaction_ids", cfg.big_rows.to_string()),
        ("quick", quick.to_string()),
    ] {
        summary.settings.insert(k.into(), v);
    }
    let others: Vec<Kind> = kinds.iter().copied().filter(|k| *k != Kind::Kill).collect();
    let mut ok = true;
    let mut plan_rng = Rng::new(seed, 1);
    for (i, (from, to)) in pairs.iter().enumerate() {
        let mine: Vec<(Kind, u64)> = if quick && cli.others.is_none() {
            // each kind once over the whole run, spread over the pairs
            others
                .iter()
                .enumerate()
                .filter(|(j, _)| j % pairs.len() == i)
                .map(|(_, k)| (*k, 1))
                .collect()
        } else {
            others
                .iter()
                .map(|k| (*k, cli.others.unwrap_or(2)))
                .collect()
        };
        let plans = plan(&mut plan_rng, rounds, kills, cfg.chunk_kills, &mine);
        let env = PairEnv {
            from: *from,
            to: *to,
            src: &sources[from.short()],
            dst: &targets[to.short()],
        };
        let mut rep = PairReport {
            pair: format!("{}->{}", from.short(), to.short()),
            ..PairReport::default()
        };
        let t = Instant::now();
        for (r, p) in plans.iter().enumerate() {
            println!(
                "[{}] run {} of {rounds}: {} streaming steps",
                rep.pair,
                r + 1,
                p.steps.len()
            );
            if let Err(e) = round::run(&env, &cfg, r as u32 + 1, i as u64, p, &mut rep).await {
                rep.catch_up_failures.push(format!("run {}: {e:#}", r + 1));
                println!("  run {} failed: {e:#}", r + 1);
            }
        }
        rep.seconds = t.elapsed().as_secs();
        rep.finish();
        rep.print();
        ok &= !rep.failed();
        summary.pairs.push(rep);
    }
    summary.seconds = started.elapsed().as_secs();
    if let Some(out) = &cli.out {
        std::fs::write(out, serde_json::to_string_pretty(&summary)?)
            .with_context(|| format!("write {}", out.display()))?;
        println!("wrote {}", out.display());
    }
    if let Some(md) = &cli.markdown {
        std::fs::write(md, markdown::render(&summary, &markdown::machine()))
            .with_context(|| format!("write {}", md.display()))?;
        println!("wrote {}", md.display());
    }
    if ok {
        tokio::task::block_in_place(|| {
            for s in sources.values().chain(targets.values()) {
                s.destroy();
            }
        });
        let _ = std::fs::remove_dir_all(&root);
    } else {
        println!(
            "violations found: servers and logs kept under {} (stop them with `kill` of their \
             postmaster/mariadbd, then `umount` the tmpfs mounts there)",
            root.display()
        );
    }
    println!(
        "ferry-chaos: {} in {} s (seed {seed})",
        if ok { "no violation" } else { "VIOLATIONS" },
        summary.seconds
    );
    Ok(ok)
}
