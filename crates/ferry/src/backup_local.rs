//! `ferry backup now|list|show|verify --storage …`: backups and repository reads
//! run here, without a service (for scripts and cron, like `ferry run`).

use crate::backup_cmd::{BackupCmd, Window};
use crate::client::{ClientOpts, Output};
use anyhow::{anyhow, bail, Result};
use ferry_backup::backup::{run_backup, BackupRequest};
use ferry_backup::manifest::{FileKind, Manifest, SetKind};
use ferry_backup::repo::{Repo, KEY_ENV};
use ferry_backup::verify::verify_set;
use ferry_core::select::ObjectFilter;
use ferry_core::Endpoint;
use std::process::ExitCode;

/// Rows per chunk when `--chunk-rows` is not given (the task file's default).
const DEFAULT_CHUNK_ROWS: u64 = 200_000;

/// Runs one direct backup command on the repository at `storage`.
pub async fn run(storage: &str, client: &ClientOpts, cmd: BackupCmd) -> Result<ExitCode> {
    let key = std::env::var(KEY_ENV).ok().filter(|k| !k.is_empty());
    let json = client.output == Output::Json;
    match cmd {
        BackupCmd::Policy { .. } => {
            bail!("backup policies live on the service: run `ferry backup policy …` without --storage")
        }
        BackupCmd::Log {
            cmd:
                crate::backup_cmd::LogCmd::Run {
                    cluster,
                    source,
                    method,
                    piece_seconds,
                    quiet,
                    ..
                },
        } if method == "physical" => {
            crate::physical_local::log_run(storage, &cluster, &source, piece_seconds, quiet).await
        }
        BackupCmd::Now {
            cluster,
            method,
            source,
            incremental,
            quiet,
            ..
        } if method == "physical" => {
            crate::physical_local::backup_now(storage, &cluster, source, incremental, quiet, json)
                .await
        }
        BackupCmd::Log { .. } | BackupCmd::Mark { .. } => {
            bail!("log backup in direct mode is not built yet")
        }
        BackupCmd::Now {
            cluster,
            incremental,
            source,
            include,
            exclude,
            jobs,
            chunk_rows,
            quiet,
            ..
        } => {
            let Some(source) = source else {
                bail!(
                    "`ferry backup now --storage …` needs the database to back up\n  \
                     hint: add --source postgres://user@host:5432/db or mysql://user@host:3306/db \
                     (the password may come from FERRY_SOURCE_PASSWORD)"
                );
            };
            let source = Endpoint::parse(&source, "FERRY_SOURCE_PASSWORD")?;
            let objects = ObjectFilter::new(&include, &exclude)?;
            ferry_backup::backup::check_cluster(&cluster)?;
            let repo = Repo::create_or_open(storage, key.as_deref()).await?;
            let req = BackupRequest {
                cluster,
                source,
                objects,
                kind: if incremental {
                    SetKind::Incremental
                } else {
                    SetKind::Full
                },
                jobs: jobs
                    .map(usize::from)
                    .filter(|j| *j > 0)
                    .unwrap_or_else(ferry_engine::default_jobs),
                chunk_rows: chunk_rows.unwrap_or(DEFAULT_CHUNK_ROWS).max(1),
                quiet,
            };
            let t0 = std::time::Instant::now();
            let report = run_backup(&repo, &req).await?;
            for w in &report.warnings {
                eprintln!("warning: {w}");
            }
            let m = &report.manifest;
            if json {
                println!("{}", String::from_utf8_lossy(&m.to_json()));
                return Ok(ExitCode::SUCCESS);
            }
            println!("set {}", m.id);
            println!(
                "  cluster   {} ({} {})",
                m.cluster,
                m.kind.as_str(),
                m.method
            );
            if let Some(p) = &m.parent {
                println!("  parent    {p} (chain {})", m.chain);
            }
            println!("  rows      {}", m.rows());
            println!(
                "  stored    {} in {} files",
                human_bytes(m.bytes()),
                m.files.len()
            );
            println!("  position  {}", m.position.as_deref().unwrap_or("-"));
            println!("  time      {:.1}s", t0.elapsed().as_secs_f64());
            if report.resumed {
                println!(
                    "  resumed   an interrupted run: {} stored files reused",
                    report.files_reused
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        BackupCmd::List {
            cluster,
            kind,
            window,
            ..
        } => {
            if kind != "data" {
                bail!(
                    "--kind {kind}: only data sets are listed from a repository directly\n  \
                     hint: cleanup, secondary, restore and drill tasks live on the service; \
                     run without --storage"
                );
            }
            let (from, to) = window_bounds(&window)?;
            let repo = Repo::open(storage, key.as_deref()).await?;
            let sets: Vec<Manifest> = repo
                .sets(cluster.as_deref())
                .await?
                .into_iter()
                .filter(|m| {
                    let t = parse_time(&m.started_at);
                    from.is_none_or(|f| t.is_some_and(|t| t >= f))
                        && to.is_none_or(|e| t.is_some_and(|t| t <= e))
                })
                .collect();
            if json {
                let v: Vec<serde_json::Value> = sets
                    .iter()
                    .map(|m| {
                        serde_json::json!({
                            "id": m.id, "cluster": m.cluster, "type": m.kind.as_str(),
                            "method": m.method, "parent": m.parent, "chain": m.chain,
                            "position": m.position, "started_at": m.started_at,
                            "finished_at": m.finished_at, "rows": m.rows(), "bytes": m.bytes(),
                        })
                    })
                    .collect();
                println!("{}", serde_json::to_string_pretty(&v)?);
                return Ok(ExitCode::SUCCESS);
            }
            if sets.is_empty() {
                println!("no backup sets");
                return Ok(ExitCode::SUCCESS);
            }
            println!(
                "{:<24} {:<16} {:<11} {:<8} {:<36} {:<20} {:<20} {:>12} {:>10}",
                "SET", "CLUSTER", "TYPE", "METHOD", "POSITION", "START", "END", "ROWS", "BYTES"
            );
            for m in &sets {
                println!(
                    "{:<24} {:<16} {:<11} {:<8} {:<36} {:<20} {:<20} {:>12} {:>10}",
                    m.id,
                    m.cluster,
                    m.kind.as_str(),
                    m.method,
                    m.position.as_deref().unwrap_or("-"),
                    m.started_at,
                    m.finished_at,
                    m.rows(),
                    human_bytes(m.bytes())
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        BackupCmd::Show { set, files, .. } => {
            let repo = Repo::open(storage, key.as_deref()).await?;
            let m = repo.find_set(&set).await?;
            if json {
                println!("{}", String::from_utf8_lossy(&m.to_json()));
                return Ok(ExitCode::SUCCESS);
            }
            show(&m, files);
            Ok(ExitCode::SUCCESS)
        }
        BackupCmd::Verify { set, .. } => {
            let repo = Repo::open(storage, key.as_deref()).await?;
            let r = verify_set(&repo, &set).await?;
            if r.problems.is_empty() {
                println!(
                    "set {} is intact: {} files, {} rows, {} read",
                    r.set,
                    r.files,
                    r.rows,
                    human_bytes(r.bytes)
                );
                Ok(ExitCode::SUCCESS)
            } else {
                println!(
                    "set {} is damaged: {} problem{} in {} files",
                    r.set,
                    r.problems.len(),
                    if r.problems.len() == 1 { "" } else { "s" },
                    r.files
                );
                for p in &r.problems {
                    println!("  {p}");
                }
                println!("  hint: restore from another set, and take a new backup");
                Ok(ExitCode::from(1))
            }
        }
    }
}

/// A manifest, for people.
fn show(m: &Manifest, files: bool) {
    println!("set {}", m.id);
    println!("  cluster         {}", m.cluster);
    println!("  type            {} ({})", m.kind.as_str(), m.method);
    if let Some(p) = &m.parent {
        println!("  parent          {p}");
    }
    println!("  chain           {}", m.chain);
    println!(
        "  source          {} ({} {})",
        m.source, m.engine, m.server_version
    );
    if let Some(p) = &m.start_position {
        println!("  changes from    {p}");
    }
    println!("  position        {}", m.position.as_deref().unwrap_or("-"));
    println!(
        "  consistent at   {}",
        m.consistent_at.as_deref().unwrap_or("-")
    );
    println!("  started         {}", m.started_at);
    println!("  finished        {}", m.finished_at);
    println!(
        "  stored          {} in {} files ({}{})",
        human_bytes(m.bytes()),
        m.files.len(),
        m.compression,
        if m.encrypted { ", encrypted" } else { "" }
    );
    println!("  rows            {}", m.rows());
    println!();
    println!(
        "{:<40} {:>12} {:>6} {:>10}  DIGEST",
        "TABLE", "ROWS", "FILES", "BYTES"
    );
    for (i, t) in m.tables.iter().enumerate() {
        let fs: Vec<_> = m.files.iter().filter(|f| f.table == i).collect();
        println!(
            "{:<40} {:>12} {:>6} {:>10}  {}",
            t.table.id.to_string(),
            t.rows,
            fs.len(),
            human_bytes(fs.iter().map(|f| f.bytes).sum()),
            t.digest.as_deref().unwrap_or("-")
        );
    }
    if files {
        println!();
        println!(
            "{:<28} {:<8} {:<30} {:>10} {:>10}  SHA-256",
            "FILE", "KIND", "KEY RANGE", "ROWS", "BYTES"
        );
        for f in &m.files {
            let range = match (&f.lo, &f.hi) {
                (None, None) => "-".to_string(),
                (lo, hi) => format!(
                    "[{}, {})",
                    lo.as_deref().unwrap_or("-∞"),
                    hi.as_deref().unwrap_or("∞")
                ),
            };
            println!(
                "{:<28} {:<8} {:<30} {:>10} {:>10}  {}",
                f.path,
                match f.kind {
                    FileKind::Data => "data",
                    FileKind::Changes => "changes",
                },
                range,
                f.rows,
                f.bytes,
                f.sha256
            );
        }
    }
}

/// The instants a `--since` / `--from` / `--to` window allows.
fn window_bounds(w: &Window) -> Result<(Option<i64>, Option<i64>)> {
    let now = chrono::Utc::now().timestamp();
    if let Some(s) = &w.since {
        let secs = parse_period(s).ok_or_else(|| {
            anyhow!("--since {s:?}: not a period\n  hint: write a number of hours or days: 24h, 7d, 30d")
        })?;
        return Ok((Some(now - secs), None));
    }
    let instant = |flag: &str, v: &Option<String>| -> Result<Option<i64>> {
        v.as_deref()
            .map(|t| {
                parse_time(t).ok_or_else(|| {
                    anyhow!("--{flag} {t:?}: not an instant\n  hint: write it as RFC 3339, e.g. 2026-12-01T00:00:00Z")
                })
            })
            .transpose()
    };
    Ok((instant("from", &w.from)?, instant("to", &w.to)?))
}

/// `24h`, `7d` → seconds.
fn parse_period(s: &str) -> Option<i64> {
    let s = s.trim();
    let (n, unit) = s.split_at(s.len().checked_sub(1)?);
    let n: i64 = n.parse().ok().filter(|n| *n >= 0)?;
    match unit {
        "h" => Some(n * 3600),
        "d" => Some(n * 86_400),
        _ => None,
    }
}

/// RFC 3339 → Unix time.
fn parse_time(t: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(t)
        .ok()
        .map(|d| d.timestamp())
}

/// `1.5 MB` etc.
fn human_bytes(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1000.0 && u < UNITS.len() - 1 {
        v /= 1000.0;
        u += 1;
    }
    if u == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_and_sizes() {
        assert_eq!(parse_period("7d"), Some(7 * 86_400));
        assert_eq!(parse_period("24h"), Some(86_400));
        assert_eq!(parse_period("7w"), None);
        assert_eq!(parse_period(""), None);
        assert_eq!(human_bytes(999), "999 B");
        assert_eq!(human_bytes(1_500_000), "1.5 MB");
        assert_eq!(parse_time("1970-01-01T00:01:00Z"), Some(60));
    }
}
