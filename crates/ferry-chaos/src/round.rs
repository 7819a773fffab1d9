//! One run ("round") of one engine pair: fresh databases, the ledger workload, a
//! `ferry run` taken through its copy and stream while faults land at seeded random
//! instants, then a final catch-up and the checker.

use crate::checker::{self, Side, Verdict};
use crate::db::{Db, Engine};
use crate::faults::Kind;
use crate::ferry::Ferry;
use crate::ledger::{self, Workload};
use crate::observe::{Observer, Progress};
use crate::report::{FaultRecord, PairReport};
use crate::rng::Rng;
use crate::servers::{self, Server};
use anyhow::{Context, Result};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Sizes and choices of a run (the same for every pair).
#[derive(Debug, Clone)]
pub struct Config {
    /// The seed everything random derives from.
    pub seed: u64,
    /// Ids preloaded before the task starts (the copy's work).
    pub preload: u64,
    /// `chunk_rows` of the task.
    pub chunk_rows: u64,
    /// Concurrent small-transaction writers.
    pub writers: u64,
    /// Ids per big transaction.
    pub big_rows: u64,
    /// A big transaction at least this often.
    pub big_every: Duration,
    /// Kills aimed at chunk copy per round.
    pub chunk_kills: u64,
    /// How long a fault may take to recover from before it counts as not recovered.
    pub recovery_timeout: Duration,
    /// Where to append a finding at once (`--findings`).
    pub findings: Option<PathBuf>,
    /// The `ferry` binary.
    pub ferry: PathBuf,
    /// Folder for task files and Ferry's logs.
    pub work: PathBuf,
}

/// A kill's aim while streaming.
#[derive(Debug, Clone, Copy)]
pub enum Aim {
    /// A random instant while applying.
    Apply,
    /// Right after Ferry moved its recorded position (a checkpoint write).
    Checkpoint,
    /// While a big source transaction is being applied.
    BigTxn,
}

/// One planned step of the streaming part of a round.
#[derive(Debug, Clone, Copy)]
pub enum Step {
    /// kill -9 of Ferry.
    Kill(Aim),
    /// Another fault.
    Fault(Kind),
}

/// What one round does.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    /// Kills aimed at the copy (after the first chunk commits).
    pub chunk_kills: u64,
    /// Whether to kill at start-up (snapshot) and at the hand-off.
    pub copy_phase_kills: bool,
    /// The streaming part, in order.
    pub steps: Vec<Step>,
}

/// The engines and servers of one pair.
pub struct PairEnv<'a> {
    /// Source engine.
    pub from: Engine,
    /// Target engine.
    pub to: Engine,
    /// Source server.
    pub src: &'a Server,
    /// Target server.
    pub dst: &'a Server,
}

struct Round<'a> {
    env: &'a PairEnv<'a>,
    cfg: &'a Config,
    round: u32,
    rng: Rng,
    ferry: Ferry,
    obs: Observer,
    work: Arc<Workload>,
    proxy: ferry_testkit::Proxy,
    t0: Instant,
    db: String,
    prefix: String,
    report: &'a mut PairReport,
}

fn blocking<T>(f: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(f)
}

/// Runs round `round` of a pair with `plan`, adding to `report`; returns the
/// checker's verdict.
pub async fn run(
    env: &PairEnv<'_>,
    cfg: &Config,
    round: u32,
    pair_no: u64,
    plan: &Plan,
    report: &mut PairReport,
) -> Result<Verdict> {
    let db = format!("l_{}_{}_{round}", env.from.short(), env.to.short());
    let name = db.replace('_', "-");
    let prefix = if env.from == Engine::My && env.to == Engine::Pg {
        format!("\"{db}\".")
    } else {
        String::new()
    };
    setup_databases(env, cfg, &db).await?;
    let proxy = ferry_testkit::Proxy::start(env.src.port).await;
    let proxied = env
        .src
        .url(&db)
        .replace(&format!(":{}/", env.src.port), &format!(":{}/", proxy.port));
    let ferry = Ferry::new(
        &cfg.ferry,
        &cfg.work,
        &name,
        &proxied,
        &env.dst.url(&db),
        cfg.chunk_rows,
    )?;
    let mut r = Round {
        env,
        cfg,
        round,
        rng: Rng::new(cfg.seed, 1000 * pair_no + u64::from(round)),
        obs: Observer::new(env.to, &env.dst.url(&db), &name, &prefix),
        ferry,
        work: Workload::new(),
        proxy,
        t0: Instant::now(),
        db: db.clone(),
        prefix,
        report,
    };
    let writers = r.start_writers();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let result = r.faults(plan).await;
    r.work.stop.store(true, Ordering::SeqCst);
    for w in writers {
        let _ = w.await;
    }
    result?;
    r.finish().await
}

async fn setup_databases(env: &PairEnv<'_>, cfg: &Config, db: &str) -> Result<()> {
    for (engine, server) in [(env.from, env.src), (env.to, env.dst)] {
        let url = match engine {
            Engine::Pg => server.url("postgres"),
            Engine::My => server.url(""),
        };
        let mut admin = Db::connect(engine, &url).await?;
        admin.exec(&format!("CREATE DATABASE {db}")).await?;
        admin.close().await;
    }
    let mut s = Db::connect(env.from, &env.src.url(db)).await?;
    s.exec(&ledger::schema_sql(env.from)).await?;
    s.exec(&ledger::preload_sql(env.from, cfg.preload)).await?;
    s.close().await;
    Ok(())
}

impl Round<'_> {
    fn start_writers(&mut self) -> Vec<tokio::task::JoinHandle<()>> {
        let mut v = Vec::new();
        let url = self.env.src.url(&self.db);
        for w in 1..=self.cfg.writers {
            v.push(tokio::spawn(ledger::writer(
                self.work.clone(),
                self.env.from,
                url.clone(),
                w,
                Rng::new(self.cfg.seed, 7_000_000 + 100 * u64::from(self.round) + w),
                (2, 30),
                None,
            )));
        }
        v.push(tokio::spawn(ledger::writer(
            self.work.clone(),
            self.env.from,
            url,
            ledger::BIG_WRITER,
            Rng::new(self.cfg.seed, 8_000_000 + u64::from(self.round)),
            (0, 0),
            Some((self.cfg.big_rows, self.cfg.big_every)),
        )));
        v
    }

    fn ms(&self) -> u64 {
        self.t0.elapsed().as_millis() as u64
    }

    /// Restarts `ferry run` if it exited by itself (an operator or a supervisor would),
    /// noting why it exited.
    async fn supervise(&mut self) {
        if let Some(why) = self.ferry.exited() {
            let msg = format!("round {} at {} ms: {why}", self.round, self.ms());
            println!("  ferry exited by itself: {msg}");
            self.report.ferry_exits.push(msg);
            tokio::time::sleep(Duration::from_secs(1)).await;
            let _ = self.ferry.start();
        }
    }

    async fn sleep(&mut self, d: Duration) {
        let until = Instant::now() + d;
        while Instant::now() < until {
            self.supervise().await;
            tokio::time::sleep(Duration::from_millis(50).min(until - Instant::now())).await;
        }
    }

    async fn progress(&mut self) -> Progress {
        self.obs.progress().await.unwrap_or(Progress {
            phase: "unreadable".into(),
            ..Progress::default()
        })
    }

    fn record(
        &mut self,
        kind: &str,
        aim: &str,
        phase: &str,
        at_ms: u64,
        recovery: Option<Duration>,
    ) {
        let rec = FaultRecord {
            round: self.round,
            kind: kind.to_string(),
            aim: aim.to_string(),
            phase: phase.to_string(),
            at_ms,
            recovery_ms: recovery.map(|d| d.as_millis() as u64),
        };
        println!(
            "  [{}] round {} +{:>6} ms  {:<12} {:<22} phase {:<12} recovery {}",
            self.report.pair,
            self.round,
            at_ms,
            kind,
            aim,
            phase,
            rec.recovery_ms
                .map(|m| format!("{m} ms"))
                .unwrap_or_else(|| "-".into())
        );
        *self
            .report
            .faults_by_kind
            .entry(kind.to_string())
            .or_default() += 1;
        if kind == "kill" {
            *self
                .report
                .kills_by_phase
                .entry(format!("{aim} (recorded phase: {phase})"))
                .or_default() += 1;
        }
        self.report.faults.push(rec);
    }

    /// kill -9 now; the phase is read first unless the caller just saw it.
    async fn kill(&mut self, aim: &str, seen: Option<Progress>) -> (Instant, String) {
        let p = match seen {
            Some(p) => p,
            None => self.progress().await,
        };
        let at = Instant::now();
        self.ferry.kill9(aim);
        let phase = if p.phase == "full" {
            format!("full ({} chunks)", p.chunks_done)
        } else {
            p.phase
        };
        (at, phase)
    }

    async fn restart_after_kill(&mut self) {
        let d = self.rng.millis(0, 1000);
        tokio::time::sleep(d).await;
        let _ = self.ferry.start();
    }

    /// Waits until the copy moves again (a chunk more than `chunks` committed, or the
    /// stream started); fault → then.
    async fn copy_recovery(&mut self, at: Instant, chunks: u64) -> Option<Duration> {
        while at.elapsed() < self.cfg.recovery_timeout {
            let p = self.progress().await;
            if p.chunks_done > chunks || p.phase == "incremental" || p.phase == "done" {
                return Some(at.elapsed());
            }
            self.sleep(Duration::from_millis(50)).await;
        }
        self.report.not_recovered += 1;
        None
    }

    /// Waits until a transaction acknowledged after `repaired` is on the target;
    /// fault (`at`) → then.
    async fn stream_recovery(&mut self, at: Instant, repaired: Instant) -> Option<Duration> {
        let mut probe = None;
        while at.elapsed() < self.cfg.recovery_timeout {
            if probe.is_none() {
                probe = self.work.first_acked_after(repaired);
            }
            if let Some(t) = probe {
                if self.obs.has(t.first).await {
                    return Some(at.elapsed());
                }
            }
            self.sleep(Duration::from_millis(100)).await;
        }
        println!(
            "  not streaming again {:?} after the fault; ferry logged: {}",
            self.cfg.recovery_timeout,
            self.ferry.tail(3)
        );
        self.report.not_recovered += 1;
        None
    }

    /// Stops the round when Ferry did not recover from a fault: the rest of its
    /// steps would each wait out the time limit again.
    fn stuck(&self, before: u64) -> Result<()> {
        if self.report.not_recovered > before {
            anyhow::bail!(
                "Ferry did not move again within {:?} of a fault; the round's remaining faults are skipped \
                 (Ferry's last lines: {})",
                self.cfg.recovery_timeout,
                self.ferry.tail(2)
            );
        }
        Ok(())
    }

    async fn faults(&mut self, plan: &Plan) -> Result<()> {
        let before = self.report.not_recovered;
        self.ferry.start()?;
        if plan.copy_phase_kills {
            // start-up: prechecks, snapshot, the first chunk
            let d = self.rng.millis(50, 700);
            self.sleep(d).await;
            let (at, phase) = self.kill("snapshot/start", None).await;
            let ms = self.ms();
            self.restart_after_kill().await;
            let rec = self.copy_recovery(at, 0).await;
            self.record("kill", "snapshot/start", &phase, ms, rec);
        }
        self.stuck(before)?;
        for _ in 0..plan.chunk_kills {
            self.stuck(before)?;
            let d = self.rng.millis(0, 150);
            self.sleep(d).await;
            let chunks = self.progress().await.chunks_done;
            let (at, phase) = self.kill("chunk copy", None).await;
            let ms = self.ms();
            self.restart_after_kill().await;
            let rec = if phase == "incremental" || phase == "done" {
                self.stream_recovery(at, Instant::now()).await
            } else {
                self.copy_recovery(at, chunks).await
            };
            self.record("kill", "chunk copy", &phase, ms, rec);
        }
        // the hand-off: the first moment the target says the copy is done
        let t = Instant::now();
        while !["done", "incremental"].contains(&self.progress().await.phase.as_str()) {
            if t.elapsed() > self.cfg.recovery_timeout {
                anyhow::bail!(
                    "the copy did not finish within {:?}: {}",
                    self.cfg.recovery_timeout,
                    self.ferry.tail(3)
                );
            }
            self.sleep(Duration::from_millis(20)).await;
        }
        if plan.copy_phase_kills {
            let d = self.rng.millis(0, 300);
            self.sleep(d).await;
            let (at, phase) = self.kill("hand-off", None).await;
            let ms = self.ms();
            self.restart_after_kill().await;
            let rec = self.stream_recovery(at, Instant::now()).await;
            self.record("kill", "hand-off", &phase, ms, rec);
        }
        self.stuck(before)?;
        for step in plan.steps.clone() {
            self.stuck(before)?;
            let d = self.rng.millis(300, 2500);
            self.sleep(d).await;
            match step {
                Step::Kill(aim) => self.aimed_kill(aim).await,
                Step::Fault(kind) => self.fault(kind).await?,
            }
        }
        Ok(())
    }

    async fn aimed_kill(&mut self, aim: Aim) {
        let mut seen = None;
        let label = match aim {
            Aim::Apply => "apply".to_string(),
            Aim::Checkpoint => {
                // right after Ferry's recorded position moves
                let p0 = self.progress().await.position;
                let t = Instant::now();
                while t.elapsed() < Duration::from_secs(20) {
                    let p = self.progress().await;
                    if p.position != p0 && p.phase != "unreadable" {
                        seen = Some(p);
                        break;
                    }
                    self.supervise().await;
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                "after checkpoint write".to_string()
            }
            Aim::BigTxn => {
                let before = self.work.big_done.load(Ordering::SeqCst);
                self.work.big_now.store(true, Ordering::SeqCst);
                let t = Instant::now();
                while self.work.big_done.load(Ordering::SeqCst) == before
                    && t.elapsed() < Duration::from_secs(60)
                {
                    self.sleep(Duration::from_millis(20)).await;
                }
                let last = {
                    let a = self.work.acks.lock().unwrap();
                    a.acked
                        .iter()
                        .rev()
                        .find(|(_, t)| t.count > 1)
                        .map(|(_, t)| t.first + t.count - 1)
                };
                let t = Instant::now();
                let mut seen = false;
                while t.elapsed() < Duration::from_secs(20) {
                    if self.obs.big_apply_in_flight(&self.db).await {
                        seen = true;
                        break;
                    }
                    // already applied whole: too late for this one
                    if let Some(id) = last {
                        if self.obs.has(id).await {
                            break;
                        }
                    }
                    self.supervise().await;
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                if seen {
                    "big transaction".to_string()
                } else {
                    "big transaction (apply not seen)".to_string()
                }
            }
        };
        let (at, phase) = self.kill(&label, seen).await;
        let ms = self.ms();
        self.restart_after_kill().await;
        let rec = self.stream_recovery(at, Instant::now()).await;
        self.record("kill", &label, &phase, ms, rec);
    }

    async fn fault(&mut self, kind: Kind) -> Result<()> {
        let phase = self.progress().await.phase;
        let at = Instant::now();
        let ms = self.ms();
        let aim = match kind {
            Kind::SourceCrash | Kind::TargetCrash => {
                let server = if kind == Kind::SourceCrash {
                    self.env.src
                } else {
                    self.env.dst
                };
                blocking(|| server.crash());
                let down = self.rng.millis(300, 4000);
                self.sleep(down).await;
                blocking(|| server.restart())
                    .with_context(|| format!("restart the {} server", server.role))?;
                format!("down {} ms", down.as_millis())
            }
            Kind::NetReset => {
                self.proxy.cut();
                "all connections reset".to_string()
            }
            Kind::NetStall => {
                let d = self.rng.millis(3000, 25_000);
                self.proxy.stall(true);
                self.sleep(d).await;
                self.proxy.stall(false);
                format!("silent {} ms", d.as_millis())
            }
            Kind::NetSlow => {
                let delay = self.rng.millis(20, 250);
                let rate = self.rng.range(16, 256) * 1024;
                let d = self.rng.millis(4000, 15_000);
                self.proxy.slow(delay, rate);
                self.sleep(d).await;
                self.proxy.slow(Duration::ZERO, 0);
                format!(
                    "+{} ms, {} KB/s for {} ms",
                    delay.as_millis(),
                    rate / 1024,
                    d.as_millis()
                )
            }
            Kind::DiskFull => {
                let Some(fs) = self.env.dst.tmpfs.clone() else {
                    let note = "disk-full: the target is not on a tmpfs (mount failed)".to_string();
                    if !self.report.skipped.contains(&note) {
                        self.report.skipped.push(note);
                    }
                    return Ok(());
                };
                let (ballast, mb) = blocking(|| servers::fill_disk(&fs))?;
                let d = self.rng.millis(2000, 8000);
                self.sleep(d).await;
                let _ = std::fs::remove_file(&ballast);
                format!("{mb} MB ballast for {} ms", d.as_millis())
            }
            Kind::LockWait => {
                let d = self.rng.millis(2000, 20_000);
                let mut s = Db::connect(self.env.to, &self.env.dst.url(&self.db)).await?;
                let lock = match self.env.to {
                    Engine::Pg => format!(
                        "BEGIN; LOCK TABLE {}ledger_lists IN ACCESS EXCLUSIVE MODE",
                        self.prefix
                    ),
                    Engine::My => "START TRANSACTION; SELECT count(*) FROM ledger_lists FOR UPDATE"
                        .to_string(),
                };
                let held = s.exec(&lock).await.is_ok();
                self.sleep(d).await;
                let _ = s.exec("COMMIT").await;
                s.close().await;
                format!(
                    "{} held {} ms",
                    if held { "lock" } else { "lock (not taken)" },
                    d.as_millis()
                )
            }
            Kind::ZombieWorker => self.zombie().await?,
            Kind::Kill => unreachable!("planned separately"),
        };
        // a server may have stopped by itself (PostgreSQL after a PANIC on a full disk)
        for s in [self.env.src, self.env.dst] {
            if blocking(|| s.ensure_up())? {
                println!("  the {} server had stopped; restarted it", s.role);
            }
        }
        let repaired = Instant::now();
        let rec = self.stream_recovery(at, repaired).await;
        self.record(kind.name(), &aim, &phase, ms, rec);
        Ok(())
    }

    /// Freezes the running `ferry run`, lets a second one take the task over, then
    /// continues the frozen one: it must stop as fenced ("took over") and write
    /// nothing (the checker finds anything it wrote twice).
    async fn zombie(&mut self) -> Result<String> {
        let Some(mut frozen) = self.ferry.detach() else {
            return Ok("no run to freeze".to_string());
        };
        let pid = frozen.id().to_string();
        let signal = |sig: &str| {
            let _ = std::process::Command::new("kill")
                .args([sig, &pid])
                .status();
        };
        signal("-STOP");
        self.ferry
            .mark(&format!("SIGSTOP {pid} (zombie); a second run takes over"));
        let _ = self.ferry.start();
        let d = self.rng.millis(3000, 15_000);
        self.sleep(d).await;
        signal("-CONT");
        self.ferry.mark(&format!("SIGCONT {pid} (zombie)"));
        let t = Instant::now();
        let status = loop {
            if let Ok(Some(s)) = frozen.try_wait() {
                break Some(s);
            }
            if t.elapsed() > Duration::from_secs(90) {
                let _ = frozen.kill();
                let _ = frozen.wait();
                break None;
            }
            self.sleep(Duration::from_millis(100)).await;
        };
        let log = std::fs::read_to_string(&self.ferry.log).unwrap_or_default();
        let since = log
            .rfind(&format!("SIGCONT {pid}"))
            .map(|i| &log[i..])
            .unwrap_or_default();
        // it stops: told it was taken over, or failing on its sessions the new run ended
        let fenced = status.is_some_and(|s| !s.success());
        let what = match status {
            Some(s) => format!(
                "frozen {} ms, then exited ({s}{})",
                d.as_millis(),
                if since.contains("took over") {
                    ", \"took over\""
                } else {
                    ""
                }
            ),
            None => format!("frozen {} ms, still running 90 s later", d.as_millis()),
        };
        if fenced {
            self.report.zombies_fenced += 1;
        } else {
            self.report
                .zombies_not_fenced
                .push(format!("round {}: {what}", self.round));
        }
        Ok(format!(
            "{what}{}",
            if fenced { ", fenced" } else { ", NOT fenced" }
        ))
    }

    async fn finish(mut self) -> Result<Verdict> {
        let catch_up = blocking(|| self.ferry.catch_up(Duration::from_secs(900)));
        if let Err(e) = &catch_up {
            self.report.catch_up_failures.push(format!(
                "round {}: {e:#} (log {})",
                self.round,
                self.ferry.log.display()
            ));
        }
        let src = read_side(self.env.from, &self.env.src.url(&self.db), "").await?;
        let dst = read_side(self.env.to, &self.env.dst.url(&self.db), &self.prefix).await?;
        let (v, acked_txns) = {
            let acks = self.work.acks.lock().unwrap();
            (
                checker::check(&src, &dst, &acks, self.cfg.preload),
                acks.acked.len() as u64,
            )
        };
        self.report.runs += 1;
        self.report.source_transactions += acked_txns;
        self.report.ids_moved += v.acked_ids + v.in_doubt_committed;
        self.report.target_rows += dst.log.len() as u64 + dst.keyless.values().sum::<u64>();
        self.report.add_verdict(&v);
        let bad = v.violations() > 0 || catch_up.is_err();
        if v.violations() > 0 {
            self.write_finding(&v);
        }
        if !bad {
            blocking(|| self.ferry.end());
            drop_databases(self.env, &self.db).await;
            let _ = std::fs::remove_file(&self.ferry.log);
        } else {
            println!(
                "  kept databases `{}` and Ferry's log {} for inspection",
                self.db,
                self.ferry.log.display()
            );
        }
        Ok(v)
    }

    fn write_finding(&self, v: &Verdict) {
        let faults: Vec<String> = self
            .report
            .faults
            .iter()
            .filter(|f| f.round == self.round)
            .map(|f| {
                format!(
                    "{} {} (phase {}) at +{} ms",
                    f.kind, f.aim, f.phase, f.at_ms
                )
            })
            .collect();
        let text = format!(
            "\n## ferry-chaos finding: {} round {}, seed {}\n\n\
             lost {}, duplicated {}, reordered {}, partial {}, phantom {}\n\n\
             samples: {}\n\nfaults in this round, in order:\n{}\n\nFerry's log: {} (databases `{}` kept)\n",
            self.report.pair,
            self.round,
            self.cfg.seed,
            v.lost,
            v.duplicated,
            v.reordered,
            v.partial,
            v.phantom,
            v.samples.join("; "),
            faults.iter().map(|f| format!("- {f}")).collect::<Vec<_>>().join("\n"),
            self.ferry.log.display(),
            self.db
        );
        println!("{text}");
        if let Some(path) = &self.cfg.findings {
            use std::io::Write;
            if let Ok(mut f) = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
            {
                let _ = f.write_all(text.as_bytes());
            }
        }
    }
}

async fn read_side(engine: Engine, url: &str, prefix: &str) -> Result<Side> {
    let mut d = Db::connect(engine, url).await?;
    let [a, b, c] = checker::queries(prefix);
    let side = Side::from_rows(d.rows(&a).await?, d.rows(&b).await?, d.rows(&c).await?);
    d.close().await;
    Ok(side)
}

async fn drop_databases(env: &PairEnv<'_>, db: &str) {
    for (engine, server) in [(env.from, env.src), (env.to, env.dst)] {
        let url = match engine {
            Engine::Pg => server.url("postgres"),
            Engine::My => server.url(""),
        };
        if let Ok(mut admin) = Db::connect(engine, &url).await {
            let sql = match engine {
                Engine::Pg => format!(
                    "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE database = '{db}' AND NOT active; \
                     DROP DATABASE IF EXISTS {db} WITH (FORCE)"
                ),
                Engine::My => format!("DROP DATABASE IF EXISTS {db}"),
            };
            let _ = admin.exec(&sql).await;
            if engine == Engine::My && std::ptr::eq(server, env.dst) {
                // the target's own binlog holds Ferry's writes; nothing reads it
                let _ = admin.exec("RESET MASTER").await;
            }
            admin.close().await;
        }
    }
}

/// Where the suite keeps its servers and files for this process.
pub fn work_root() -> PathBuf {
    std::env::temp_dir().join(format!("ferry-chaos-{}", std::process::id()))
}
