//! The `ferry` command: thin wiring of the engine to a command line.

use anyhow::Result;
use clap::{Parser, Subcommand};
use ferry_core::{redact::redact, spec::Kind, TaskSpec};
use ferry_engine::metrics::Metrics;
use ferry_engine::task::{end_task, run_task_reporting};
use ferry_engine::StreamOptions;
use ferry_engine::{compare, default_jobs, RunOptions, Summary};
use std::path::{Path, PathBuf};

/// `println!` that ends the program quietly when standard output is a closed pipe
/// (`ferry status … | head -1`), as a program killed by SIGPIPE would (status 141),
/// and with an error for any other write failure — the standard one panics on both
/// (Rust ignores SIGPIPE).
macro_rules! println {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        if let Err(e) = writeln!(std::io::stdout(), $($arg)*) {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                std::process::exit(141);
            }
            eprintln!("error: cannot write to standard output: {e}");
            std::process::exit(1);
        }
    }};
}

mod backup_cmd;
mod backup_local;
mod client;
mod client_backup;
mod log;
mod physical_local;
mod restore_local;
use std::process::ExitCode;
use std::sync::Arc;
use tokio::sync::watch;

/// `--copy-mb-per-second` / `--apply-mb-per-second`: MB (decimal) per second → bytes.
fn mb_per_second(s: &str) -> Result<u64, String> {
    let x: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a number of MB per second (e.g. 20 or 0.5)"))?;
    ferry_core::spec::speed_limit_value("copy_mb_per_second", &x.into())
        .map_err(|e| e.message.replace("speed_limit.copy_mb_per_second: ", ""))?
        .ok_or_else(|| "a number above 0".to_string())
}

#[derive(Parser)]
#[command(
    name = "ferry",
    version,
    about = "Migrate, sync and protect MySQL/MariaDB and PostgreSQL databases"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Prechecks: each item pass/fail, with how to fix a failure.
    Check {
        /// Task file (YAML).
        task: PathBuf,
    },
    /// Runs the task: schema + full copy, then (mode full+incremental / incremental)
    /// the change stream until stopped (Ctrl-C / SIGTERM). Resumes where it stopped.
    Run {
        /// Task file (YAML).
        task: PathBuf,
        /// Parallel copy workers, 1 to 64 (default: the task's `jobs`, else the machine's cores).
        #[arg(long, value_parser = clap::value_parser!(u16).range(1..=ferry_core::spec::MAX_JOBS as i64))]
        jobs: Option<u16>,
        /// Target connections applying the change stream at once, 1 to 64 (default:
        /// the task's `apply_jobs`, else the machine's cores up to 8, but 1 on ≤ 2 cores). 1 applies in commit
        /// order on one connection.
        #[arg(long, value_parser = clap::value_parser!(u16).range(1..=ferry_core::spec::MAX_JOBS as i64))]
        apply_jobs: Option<u16>,
        /// Full copy speed limit in rows per second, all workers together (overrides
        /// the task's `speed_limit.copy_rows_per_second`).
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
        copy_rows_per_second: Option<u64>,
        /// Full copy speed limit in MB per second (1 MB = 1,000,000 bytes; e.g. 20 or
        /// 0.5), overriding the task's `speed_limit.copy_mb_per_second`.
        #[arg(long, value_parser = mb_per_second)]
        copy_mb_per_second: Option<u64>,
        /// Change apply speed limit in row changes per second (overrides the task's
        /// `speed_limit.apply_rows_per_second`).
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
        apply_rows_per_second: Option<u64>,
        /// Change apply speed limit in MB per second, overriding the task's
        /// `speed_limit.apply_mb_per_second`.
        #[arg(long, value_parser = mb_per_second)]
        apply_mb_per_second: Option<u64>,
        /// No progress display.
        #[arg(long, short)]
        quiet: bool,
        /// Exit 0 once the target has applied everything the source had committed
        /// when the incremental phase started.
        #[arg(long)]
        exit_when_caught_up: bool,
        /// Serve Prometheus metrics on this address (e.g. 127.0.0.1:9187).
        #[arg(long)]
        metrics_addr: Option<String>,
    },
    /// Phase, applied position, source position, lag and totals of a task.
    Status {
        /// Task file (YAML).
        task: PathBuf,
    },
    /// Ends a task: drops its replication slot and publication on a PostgreSQL
    /// source and marks it ended. Stop `ferry run` first.
    End {
        /// Task file (YAML).
        task: PathBuf,
    },
    /// Runs the service: REST API + a worker, metadata in SQLite under --data-dir
    /// (or PostgreSQL with --meta, shared by several nodes).
    Serve {
        /// API address.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: String,
        /// Serve the API only; tasks run on `ferry worker` nodes.
        #[arg(long)]
        no_worker: bool,
        /// Serve HTTPS with this PEM certificate (chain); needs --tls-key.
        #[arg(long, env = "FERRY_TLS_CERT", requires = "tls_key")]
        tls_cert: Option<PathBuf>,
        /// The PEM private key of --tls-cert; needs --tls-cert.
        #[arg(long, env = "FERRY_TLS_KEY", requires = "tls_cert")]
        tls_key: Option<PathBuf>,
        /// Forget a rotated admin token: FERRY_ADMIN_TOKEN (or the admin.token file)
        /// is the admin token again. The way back when the rotated token is lost.
        #[arg(long)]
        reset_admin_token: bool,
        #[command(flatten)]
        node: NodeArgs,
    },
    /// Runs an extra worker node (no API) on a shared PostgreSQL metadata DB.
    Worker {
        #[command(flatten)]
        node: NodeArgs,
    },
    /// Tasks on a running service (client of the REST API; token from FERRY_TOKEN).
    Task {
        #[command(flatten)]
        client: client::ClientOpts,
        #[command(subcommand)]
        cmd: client::TaskCmd,
    },
    /// Tenants on a running service (admin token from FERRY_ADMIN_TOKEN).
    Tenant {
        #[command(flatten)]
        client: client::ClientOpts,
        #[command(subcommand)]
        cmd: client::TenantCmd,
    },
    /// The service's admin token (FERRY_ADMIN_TOKEN).
    Admin {
        #[command(flatten)]
        client: client::ClientOpts,
        #[command(subcommand)]
        cmd: client::AdminCmd,
    },
    /// The service's audit log of mutating API calls (FERRY_ADMIN_TOKEN).
    Audit {
        #[command(flatten)]
        client: client::ClientOpts,
        #[command(subcommand)]
        cmd: client::AuditCmd,
    },
    /// Backups: policies, instant backups, sets (list, show, verify). With
    /// --storage a command works on that repository here, without a service.
    Backup {
        #[command(flatten)]
        client: client::ClientOpts,
        #[command(subcommand)]
        cmd: backup_cmd::BackupCmd,
    },
    /// Restores of backup sets and dump files into a database. With --storage a
    /// restore runs here, without a service.
    Restore {
        #[command(flatten)]
        client: client::ClientOpts,
        #[command(subcommand)]
        cmd: backup_cmd::RestoreCmd,
    },
    /// Per table: row count + content checksum, source vs target.
    /// Exit 0 all equal, 1 differences, 2 error.
    Compare {
        /// Task file (YAML).
        task: PathBuf,
    },
}

/// Options of a service node.
#[derive(clap::Args, Debug)]
struct NodeArgs {
    /// Metadata, secret key file and admin token file.
    #[arg(long, default_value = "./ferry-data")]
    data_dir: PathBuf,
    /// PostgreSQL metadata URL shared by several nodes (default: SQLite in --data-dir).
    #[arg(long, env = "FERRY_META")]
    meta: Option<String>,
    /// Price charged per task-hour of running tasks.
    #[arg(long, default_value_t = 1.0)]
    price_task_hour: f64,
    /// Price charged per GB moved to a target.
    #[arg(long, default_value_t = 0.1)]
    price_gb: f64,
    /// How often running tasks are charged, in seconds.
    #[arg(long, default_value_t = 10)]
    meter_every: u64,
    /// Private or loopback addresses / CIDR blocks webhooks may reach
    /// (e.g. 127.0.0.1,10.0.0.0/8); without it webhooks reach public addresses only.
    #[arg(long, env = "FERRY_WEBHOOK_ALLOW")]
    webhook_allow: Option<String>,
    /// Attempts per webhook delivery (retried on connection errors, 5xx and 429).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=20))]
    webhook_attempts: u32,
    /// Seconds before the first webhook retry; each next one waits twice as long
    /// (±25 % jitter, at most 5 minutes).
    #[arg(long, default_value_t = 1.0)]
    webhook_retry_delay: f64,
}

impl NodeArgs {
    fn config(self, listen: Option<String>) -> ferry_service::server::NodeConfig {
        ferry_service::server::NodeConfig {
            data_dir: self.data_dir,
            meta: self.meta,
            listen,
            work: true,
            prices: ferry_service::billing::Prices {
                task_hour: self.price_task_hour,
                gb: self.price_gb,
            },
            meter_every: std::time::Duration::from_secs(self.meter_every.max(1)),
            webhook_allow: self.webhook_allow,
            tls: None,
            webhook_retry: ferry_service::notify::RetryPolicy {
                attempts: self.webhook_attempts,
                first_delay: std::time::Duration::from_secs_f64(
                    self.webhook_retry_delay.clamp(0.01, 300.0),
                ),
            },
            reset_admin_token: false,
        }
    }
}

async fn run_node(cfg: ferry_service::server::NodeConfig) -> Result<ExitCode> {
    let (stop, rx) = watch::channel(false);
    tokio::spawn(async move {
        wait_for_signal().await;
        let _ = stop.send(true);
    });
    match ferry_service::server::run_node(cfg, rx).await {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(e) => {
            log::error(&redact(&e.to_string()));
            Ok(ExitCode::from(1))
        }
    }
}

fn main() -> ExitCode {
    log::init();
    // one TLS provider for the whole process (ring), chosen here rather than left
    // to whichever dependency asks first
    ferry_service::tls::install_crypto_provider();
    let cli = Cli::parse();
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match rt.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            log::error(&redact(&format!("{e:#}")));
            ExitCode::from(2)
        }
    }
}

fn load(task: &Path) -> Result<TaskSpec> {
    Ok(TaskSpec::from_file(task)?)
}

async fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Serve {
            listen,
            no_worker,
            tls_cert,
            tls_key,
            reset_admin_token,
            node,
        } => {
            let mut cfg = node.config(Some(listen));
            cfg.work = !no_worker;
            cfg.tls = tls_cert.zip(tls_key);
            cfg.reset_admin_token = reset_admin_token;
            run_node(cfg).await
        }
        Command::Worker { node } => run_node(node.config(None)).await,
        Command::Task { client, cmd } => client::task(&client, cmd).await,
        Command::Tenant { client, cmd } => client::tenant(&client, cmd).await,
        Command::Admin { client, cmd } => client::admin(&client, cmd).await,
        Command::Audit { client, cmd } => client::audit(&client, cmd).await,
        Command::Backup { client, cmd } => backup_cmd::backup(&client, cmd).await,
        Command::Restore { client, cmd } => backup_cmd::restore(&client, cmd).await,
        Command::Check { task } => {
            let spec = load(&task)?;
            let items = ferry_engine::check::check(&spec).await;
            let mut failed = 0;
            println!(
                "ferry check {} ({} → {})",
                spec.name, spec.source, spec.target
            );
            for i in &items {
                let mark = match (i.ok, i.warn_only) {
                    (true, _) => "ok  ",
                    (false, true) => "warn",
                    (false, false) => {
                        failed += 1;
                        "FAIL"
                    }
                };
                let detail = if i.detail.is_empty() {
                    String::new()
                } else {
                    format!(" — {}", i.detail)
                };
                println!("  {mark} {}{}", i.name, redact(&detail));
                if !i.ok && !i.fix.is_empty() {
                    println!("       fix: {}", i.fix);
                }
            }
            if failed > 0 {
                println!("{failed} check(s) failed");
                Ok(ExitCode::from(1))
            } else {
                println!("all checks passed");
                Ok(ExitCode::SUCCESS)
            }
        }
        Command::Run {
            task,
            jobs,
            apply_jobs,
            copy_rows_per_second,
            copy_mb_per_second,
            apply_rows_per_second,
            apply_mb_per_second,
            quiet,
            exit_when_caught_up,
            metrics_addr,
        } => {
            let mut spec = load(&task)?;
            if let Some(n) = apply_jobs {
                spec.apply_jobs = Some(usize::from(n));
            }
            let limit = &mut spec.speed_limit;
            for (flag, field) in [
                (copy_rows_per_second, &mut limit.copy_rows_per_second),
                (copy_mb_per_second, &mut limit.copy_bytes_per_second),
                (apply_rows_per_second, &mut limit.apply_rows_per_second),
                (apply_mb_per_second, &mut limit.apply_bytes_per_second),
            ] {
                if flag.is_some() {
                    *field = flag;
                }
            }
            if spec.kind != Kind::Migration {
                log::error(&run_refuses_kind(&spec, &task));
                return Ok(ExitCode::from(2));
            }
            let jobs = jobs
                .map(usize::from)
                .or(spec.jobs)
                .unwrap_or_else(default_jobs)
                .clamp(1, ferry_core::spec::MAX_JOBS);
            tracing::info!(
                "task {}: {} → {}, {jobs} worker{}",
                spec.name,
                spec.source,
                spec.target,
                if jobs == 1 { "" } else { "s" }
            );
            let phases = Arc::new(ferry_engine::Phases::new());
            let metrics = Arc::new(Metrics::watching(&spec.name, phases.clone()));
            if let Some(addr) = &metrics_addr {
                ferry_engine::metrics::serve(addr, metrics.clone())
                    .await
                    .map_err(|e| anyhow::anyhow!("cannot serve metrics on {addr}: {e}"))?;
            }
            let (stop_tx, stop_rx) = watch::channel(false);
            tokio::spawn(async move {
                wait_for_signal().await;
                log::notice("stopping: finishing the current step (run again to resume)");
                let _ = stop_tx.send(true);
            });
            // one claim on the task for the copy and the stream of this run
            let claim = ferry_engine::checkpoint::Claim::default();
            let limits = ferry_engine::throttle::Limits::new(&spec.speed_limit);
            if !spec.speed_limit.is_unlimited() {
                tracing::info!("task {}: speed limit {:?}", spec.name, spec.speed_limit);
            }
            let stream_opts = StreamOptions {
                exit_when_caught_up,
                quiet,
                claim: claim.clone(),
                apply_throttle: limits.apply,
            };
            let streams = spec.mode != ferry_core::Mode::Full;
            let outcome = match run_task_reporting(
                &spec,
                &RunOptions {
                    jobs,
                    quiet,
                    precheck: true,
                    claim,
                    copy_throttle: limits.copy,
                },
                &stream_opts,
                metrics,
                phases,
                stop_rx,
                |summary, warnings| {
                    // printed as the copy ends / the stream starts: a streaming run
                    // may go on for days
                    if let Some(summary) = summary {
                        print_full(summary);
                    }
                    for w in warnings {
                        println!("warning: {w}");
                    }
                    if streams {
                        println!(
                            "streaming changes{}{}",
                            if summary.is_some() {
                                " from the snapshot position"
                            } else {
                                ""
                            },
                            if exit_when_caught_up {
                                " until caught up"
                            } else {
                                " (Ctrl-C or SIGTERM stops; the next run resumes)"
                            }
                        );
                    }
                },
            )
            .await
            {
                Ok(o) => o,
                Err(e) => {
                    log::error(&redact(&e.to_string()));
                    return Ok(ExitCode::from(1));
                }
            };
            if let Some(s) = &outcome.stream {
                println!(
                    "incremental: {} transactions, {} row changes applied; position {}; {}",
                    s.txns,
                    s.rows,
                    s.position.as_deref().unwrap_or("-"),
                    if s.caught_up {
                        "caught up with the source"
                    } else {
                        "stopped (run again to resume)"
                    }
                );
                if s.recoveries > 0 {
                    println!("recovered from {} transient fault(s)", s.recoveries);
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Status { task } => {
            let spec = load(&task)?;
            let st = match ferry_engine::status::status(&spec).await {
                Ok(s) => s,
                Err(e) => {
                    log::error(&redact(&e.to_string()));
                    return Ok(ExitCode::from(2));
                }
            };
            println!("task {} ({} → {})", spec.name, spec.source, spec.target);
            println!("  phase:          {}", st.phase);
            if let Some(s) = &st.state {
                println!("  state:          {s}");
            }
            if let Some(r) = &st.reason {
                println!("  reason:         {}", redact(r));
            }
            if st.phase == "ended" {
                // an ended task applies nothing more: its position is final, no lag
                println!("  final position: {}", st.applied.as_deref().unwrap_or("-"));
                println!(
                    "  applied totals: {} transactions, {} row changes",
                    st.txns, st.rows
                );
                if let Some(s) = &st.slot {
                    println!("  slot:           {s}");
                }
                return Ok(ExitCode::SUCCESS);
            }
            println!("  applied:        {}", st.applied.as_deref().unwrap_or("-"));
            println!(
                "  source at:      {}",
                st.source_head.as_deref().unwrap_or("-")
            );
            if let Some(b) = st.behind_bytes {
                if st.phase == "full" {
                    println!("  behind:         {b} bytes of log since the copy's snapshot (the stream starts when the copy ends)");
                } else {
                    println!("  behind:         {b} bytes of log");
                }
            }
            if let Some(l) = st.lag_seconds {
                println!("  lag:            {l:.1} s");
            }
            println!(
                "  applied totals: {} transactions, {} row changes",
                st.txns, st.rows
            );
            if st.unmatched > 0 {
                println!(
                    "  unmatched:      {} change(s) to keyed tables found no row on the target (see the run's warnings)",
                    st.unmatched
                );
            }
            if let Some(u) = st.updated_seconds_ago {
                println!("  last applied:   {u:.1} s ago");
            }
            if let Some(s) = &st.slot {
                println!("  slot:           {s}");
            }
            if let Some(w) = &st.warning {
                println!("  warning:        {}", redact(w));
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::End { task } => {
            let spec = load(&task)?;
            if spec.kind != Kind::Migration {
                log::error(&format!(
                    "{} is a `kind: {}` task: the service runs it, under its task id, and ends \
                     it; `ferry end` ends tasks that `ferry run` ran\n  \
                     hint: `ferry task end ID` (`ferry task list` shows the id)",
                    spec.name,
                    spec.kind.id()
                ));
                return Ok(ExitCode::from(2));
            }
            match end_task(&spec).await {
                Ok(done) if done.is_empty() => {
                    println!(
                        "task {} has not run against {}: nothing to end",
                        spec.name, spec.target
                    );
                    Ok(ExitCode::SUCCESS)
                }
                Ok(done) => {
                    for d in done {
                        println!("{d}");
                    }
                    println!("task {} ended", spec.name);
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => {
                    log::error(&redact(&e.to_string()));
                    Ok(ExitCode::from(1))
                }
            }
        }
        Command::Compare { task } => {
            let spec = load(&task)?;
            let verdicts = match compare::compare(&spec, spec.chunk_rows).await {
                Ok(v) => v,
                Err(e) => {
                    log::error(&redact(&e.to_string()));
                    return Ok(ExitCode::from(2));
                }
            };
            let mut differ = 0;
            // the run's summary names target tables: name both when a rename applies
            let names: Vec<String> = verdicts
                .iter()
                .map(|v| {
                    if v.source == v.target {
                        v.source.to_string()
                    } else {
                        format!("{} → {}", v.source, v.target)
                    }
                })
                .collect();
            let width = names
                .iter()
                .map(|n| n.chars().count())
                .max()
                .unwrap_or(0)
                .max(40);
            println!(
                "{:<width$} {:>12} {:>12}  verdict",
                "table (source → target)", "source rows", "target rows"
            );
            for (v, name) in verdicts.iter().zip(&names) {
                println!(
                    "{:<width$} {:>12} {:>12}  {}",
                    name,
                    v.source_rows,
                    v.target_rows,
                    if v.equal { "equal" } else { "differs" }
                );
                for d in &v.differences {
                    println!("    {d}");
                }
                if !v.equal {
                    differ += 1;
                }
            }
            if differ > 0 {
                println!(
                    "{differ} of {} differ",
                    plural(verdicts.len() as u64, "table")
                );
                Ok(ExitCode::from(1))
            } else {
                println!(
                    "{} equal",
                    if verdicts.len() == 1 {
                        "the table is".to_string()
                    } else {
                        format!("all {} are", plural(verdicts.len() as u64, "table"))
                    }
                );
                Ok(ExitCode::SUCCESS)
            }
        }
    }
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Why `ferry run` does not run a sync or DR task, and what does. Such tasks need
/// what only the service provides (adding tables while streaming; switchover and
/// failover); running one as a one-off migration would silently drop that.
fn run_refuses_kind(spec: &TaskSpec, file: &Path) -> String {
    let id = spec.kind.id();
    format!(
        "{} is a `kind: {id}` task; `ferry run` runs migration tasks only \
         ({id} tasks need the service: {})\n  \
         hint: start the service (`ferry serve`) and create the task there: \
         `ferry task create -f {}`; or set `kind: migration` to run this file once here",
        spec.name,
        if id == "dr" {
            "switchover and failover"
        } else {
            "adding and removing tables while it streams"
        },
        file.display()
    )
}

/// `1 table`, `2 tables`.
fn plural(n: u64, noun: &str) -> String {
    format!("{n} {noun}{}", if n == 1 { "" } else { "s" })
}

fn print_full(s: &Summary) {
    println!();
    println!(
        "{:<40} {:>12} {:>12} {:>9} {:>12}",
        "table", "rows", "bytes", "seconds", "rows/s"
    );
    for t in &s.tables {
        if t.seconds > 0.0 {
            println!(
                "{:<40} {:>12} {:>12} {:>9.2} {:>12.0}",
                t.name, t.rows, t.bytes, t.seconds, t.rate
            );
        } else {
            // finished by an earlier, interrupted run
            println!(
                "{:<40} {:>12} {:>12} {:>9} {:>12}",
                t.name, t.rows, t.bytes, "-", "-"
            );
        }
    }
    let rate = if s.seconds > 0.0 {
        s.rows_this_run as f64 / s.seconds
    } else {
        0.0
    };
    println!(
        "{}, {} copied in {:.2}s ({:.0} rows/s){}",
        plural(s.tables.len() as u64, "table"),
        plural(s.rows_this_run, "row"),
        s.seconds,
        rate,
        if s.resumed {
            format!("; resumed, {} chunks were already done", s.chunks_skipped)
        } else {
            String::new()
        }
    );
    if let Some(p) = &s.position {
        println!("snapshot position: {p}");
    }
    for w in &s.warnings {
        println!("warning: {w}");
    }
}
