//! The `ferry` command: thin wiring of the engine to a command line.

use anyhow::Result;
use clap::{Parser, Subcommand};
use ferry_core::{redact::redact, TaskSpec};
use ferry_engine::{compare, full::default_jobs, RunOptions};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

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
    /// Schema + full copy (resumes an interrupted run).
    Run {
        /// Task file (YAML).
        task: PathBuf,
        /// Parallel copy workers (default: the task's `jobs`, else the machine's cores).
        #[arg(long)]
        jobs: Option<usize>,
        /// No progress display.
        #[arg(long, short)]
        quiet: bool,
    },
    /// Per table: row count + content checksum, source vs target.
    /// Exit 0 all equal, 1 differences, 2 error.
    Compare {
        /// Task file (YAML).
        task: PathBuf,
    },
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("FERRY_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
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
            eprintln!("error: {}", redact(&format!("{e:#}")));
            ExitCode::from(2)
        }
    }
}

fn load(task: &Path) -> Result<TaskSpec> {
    Ok(TaskSpec::from_file(task)?)
}

async fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
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
        Command::Run { task, jobs, quiet } => {
            let spec = load(&task)?;
            let jobs = jobs.or(spec.jobs).unwrap_or_else(default_jobs);
            if spec.mode != ferry_core::Mode::Full {
                anyhow::bail!(
                    "mode {:?} is not available yet: this build runs `mode: full` (schema + full copy)",
                    spec.mode
                );
            }
            tracing::info!(
                "task {}: {} → {}, {jobs} workers",
                spec.name,
                spec.source,
                spec.target
            );
            let s = match ferry_engine::run_full(&spec, &RunOptions { jobs, quiet }).await {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("error: {}", redact(&e.to_string()));
                    return Ok(ExitCode::from(1));
                }
            };
            println!();
            println!(
                "{:<40} {:>12} {:>12} {:>9} {:>12}",
                "table", "rows", "bytes", "seconds", "rows/s"
            );
            for t in &s.tables {
                if t.seconds > 0.0 {
                    let rate = t.rows as f64 / t.seconds;
                    println!(
                        "{:<40} {:>12} {:>12} {:>9.2} {:>12.0}",
                        t.name, t.rows, t.bytes, t.seconds, rate
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
                "{} tables, {} rows copied in {:.2}s ({:.0} rows/s){}",
                s.tables.len(),
                s.rows_this_run,
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
            Ok(ExitCode::SUCCESS)
        }
        Command::Compare { task } => {
            let spec = load(&task)?;
            let verdicts = match compare::compare(&spec, spec.chunk_rows).await {
                Ok(v) => v,
                Err(e) => {
                    eprintln!("error: {}", redact(&e.to_string()));
                    return Ok(ExitCode::from(2));
                }
            };
            let mut differ = 0;
            println!(
                "{:<40} {:>12} {:>12}  verdict",
                "table", "source rows", "target rows"
            );
            for v in &verdicts {
                println!(
                    "{:<40} {:>12} {:>12}  {}",
                    v.source.to_string(),
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
                println!("{differ} of {} tables differ", verdicts.len());
                Ok(ExitCode::from(1))
            } else {
                println!("all {} tables equal", verdicts.len());
                Ok(ExitCode::SUCCESS)
            }
        }
    }
}
