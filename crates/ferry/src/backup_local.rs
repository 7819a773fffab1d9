//! `ferry backup now|list|show|verify --storage …`: backups and repository reads
//! run here, without a service (for scripts and cron, like `ferry run`).

use crate::backup_cmd::{BackupCmd, LogCmd, Window};
use crate::client::{ClientOpts, Output};
use anyhow::{anyhow, bail, Result};
use ferry_backup::backup::{run_backup, BackupRequest};
use ferry_backup::log::{
    index, make_mark, run_archive, ArchiveRequest, ArchiveState, ArchiveStatus,
};
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
        BackupCmd::Log { cmd } => match cmd {
            LogCmd::Run {
                cluster,
                source,
                method,
                piece_seconds,
                piece_mb,
                include,
                exclude,
                quiet,
                ..
            } => {
                let source = Endpoint::parse(&source, "FERRY_SOURCE_PASSWORD")?;
                let objects = ObjectFilter::new(&include, &exclude)?;
                ferry_backup::backup::check_cluster(&cluster)?;
                let repo = Repo::create_or_open(storage, key.as_deref()).await?;
                let req = ArchiveRequest {
                    cluster,
                    source,
                    objects,
                    method,
                    piece_seconds: piece_seconds.max(1),
                    piece_bytes: piece_mb.max(1) * 1024 * 1024,
                    quiet,
                };
                log_run(&repo, &req).await
            }
            LogCmd::WalFetch { .. } => {
                bail!("wal-fetch is dispatched before the repository commands (a Ferry bug)")
            }
            LogCmd::Start { .. } | LogCmd::Stop { .. } => {
                bail!("log backup tasks live on the service: run `ferry backup log start|stop` without --storage, or `ferry backup log run --storage …` here")
            }
        },
        BackupCmd::Mark {
            cluster,
            name,
            source,
            ..
        } => {
            let Some(source) = source else {
                bail!(
                    "`ferry backup mark --storage …` needs the cluster's database\n  \
                     hint: add --source postgres://user@host:5432/db or mysql://user@host:3306/db"
                );
            };
            let source = Endpoint::parse(&source, "FERRY_SOURCE_PASSWORD")?;
            ferry_backup::backup::check_cluster(&cluster)?;
            let repo = Repo::create_or_open(storage, key.as_deref()).await?;
            let m = make_mark(&repo, &cluster, &source, &name).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&m)?);
            } else {
                println!(
                    "mark {} of cluster {cluster} at {} ({})",
                    m.name, m.position, m.at
                );
            }
            Ok(ExitCode::SUCCESS)
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
            if matches!(kind.as_str(), "log" | "mark" | "window") {
                let Some(cluster) = cluster else {
                    bail!("--kind {kind} lists one cluster's archive\n  hint: name the cluster: `ferry backup list CLUSTER --kind {kind} --storage …`");
                };
                let repo = Repo::open(storage, key.as_deref()).await?;
                return list_log(&repo, &cluster, &kind, json).await;
            }
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

/// Runs the log archiver in the foreground until SIGINT/SIGTERM: state changes
/// and (unless quiet) progress lines on stdout; exit 0 on a clean stop, 1 when it
/// failed.
async fn log_run(repo: &Repo, req: &ArchiveRequest) -> Result<ExitCode> {
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let signals = tokio::spawn(async move {
        wait_for_signal().await;
        let _ = stop_tx.send(true);
    });
    struct Printed {
        state: Option<ArchiveState>,
        recovering: Option<String>,
        progress: std::time::Instant,
    }
    let printed = std::sync::Mutex::new(Printed {
        state: None,
        recovering: None,
        progress: std::time::Instant::now(),
    });
    let quiet = req.quiet;
    let report = |s: &ArchiveStatus| {
        let mut p = printed.lock().unwrap_or_else(|e| e.into_inner());
        let now_us = chrono::Utc::now().timestamp_micros();
        if p.state != Some(s.state) || p.recovering != s.recovering {
            match (&s.recovering, s.state) {
                (Some(why), _) => println!("recovering: {why}"),
                (None, ArchiveState::Failed) => {
                    println!("failed: {}", s.reason.as_deref().unwrap_or("-"))
                }
                (None, st) => println!("{}", state_name(st)),
            }
            p.state = Some(s.state);
            p.recovering = s.recovering.clone();
        }
        if !quiet && p.progress.elapsed() >= std::time::Duration::from_secs(5) {
            p.progress = std::time::Instant::now();
            if let Some(t) = s.latest_point_us {
                println!(
                    "latest backup point {}  latency {:.1}s  position {}  pieces {}",
                    time_text(t),
                    (now_us - t).max(0) as f64 / 1e6,
                    s.position.as_deref().unwrap_or("-"),
                    s.pieces
                );
            }
        }
    };
    let r = run_archive(repo, req, stop_rx, &report).await;
    signals.abort();
    match r {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(e) => {
            eprintln!("error: {e}");
            Ok(ExitCode::from(1))
        }
    }
}

/// A state as the list and the progress lines name it.
fn state_name(s: ArchiveState) -> &'static str {
    match s {
        ArchiveState::Starting => "starting",
        ArchiveState::Running => "running",
        ArchiveState::Stopping => "stopping",
        ArchiveState::Stopped => "stopped",
        ArchiveState::Failed => "failed",
    }
}

/// Waits for SIGINT or SIGTERM.
async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

/// Microseconds since the epoch as RFC 3339 (to the millisecond).
fn time_text(us: i64) -> String {
    chrono::DateTime::from_timestamp_micros(us)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_else(|| "-".into())
}

/// `ferry backup list CLUSTER --kind log|mark|window --storage …`.
async fn list_log(repo: &Repo, cluster: &str, kind: &str, json: bool) -> Result<ExitCode> {
    let archive = index::read_archive(repo, cluster).await?;
    let now_us = chrono::Utc::now().timestamp_micros();
    match kind {
        "log" => {
            // the physical method's WAL archive lives beside the logical one
            let wal = ferry_backup::physical::wal::read_head(repo, cluster).await?;
            let wal_latency = wal
                .as_ref()
                .and_then(|w| w.latest_point_us)
                .map(|t| (now_us - t).max(0) as f64 / 1e6);
            if !json {
                if let Some(w) = &wal {
                    println!("physical WAL archive of cluster {cluster}");
                    println!("  storage              {}", repo.storage.url());
                    println!(
                        "  latest backup point  {}",
                        w.latest_point_us
                            .map(time_text)
                            .unwrap_or_else(|| "-".into())
                    );
                    if let Some(l) = wal_latency {
                        println!("  latency              {l:.1}s");
                    }
                    println!(
                        "  position             lsn:{} (timeline {})",
                        w.end_lsn, w.timeline
                    );
                    println!("  first segment        {}", w.first_segment);
                    if archive.head.is_none() {
                        return Ok(ExitCode::SUCCESS);
                    }
                    println!();
                }
            }
            let bytes: u64 = archive.pieces.iter().map(|p| p.bytes).sum();
            let txns: u64 = archive.pieces.iter().map(|p| p.txns).sum();
            let latency = archive
                .head
                .as_ref()
                .map(|h| (now_us - h.archived_through_us).max(0) as f64 / 1e6);
            if json {
                let v = serde_json::json!({
                    "cluster": cluster,
                    "storage": repo.storage.url(),
                    "head": archive.head,
                    "latest_point": archive.head.as_ref().map(|h| time_text(h.archived_through_us)),
                    "latency_seconds": latency,
                    "pieces": archive.pieces.len(),
                    "bytes": bytes,
                    "txns": txns,
                    "first_piece": archive.pieces.first().map(|p| p.piece),
                    "last_piece": archive.pieces.last().map(|p| p.piece),
                    "gaps": archive.gaps,
                    "physical_wal": wal.as_ref().map(|w| serde_json::json!({
                        "head": w,
                        "latest_point": w.latest_point_us.map(time_text),
                        "latency_seconds": wal_latency,
                    })),
                });
                println!("{}", serde_json::to_string_pretty(&v)?);
                return Ok(ExitCode::SUCCESS);
            }
            let Some(h) = &archive.head else {
                println!(
                    "cluster {cluster} has no log archive in {}",
                    repo.storage.url()
                );
                return Ok(ExitCode::SUCCESS);
            };
            println!("log archive of cluster {cluster}");
            println!("  source               {} ({})", h.source, h.engine);
            println!("  storage              {}", repo.storage.url());
            println!(
                "  latest backup point  {}",
                time_text(h.archived_through_us)
            );
            println!("  latency              {:.1}s", latency.unwrap_or_default());
            println!("  position             {}", h.end);
            println!("  updated              {}", h.updated_at);
            println!(
                "  pieces               {} ({}, {} transactions{})",
                archive.pieces.len(),
                human_bytes(bytes),
                txns,
                match (archive.pieces.first(), archive.pieces.last()) {
                    (Some(a), Some(b)) => format!(", {} to {}", a.piece, b.piece),
                    _ => String::new(),
                }
            );
            if archive.gaps.is_empty() {
                println!("  gaps                 none");
            }
            for g in &archive.gaps {
                println!(
                    "  gap before piece {}  after {} ({}): {}",
                    g.piece, g.after, g.at, g.reason
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        "mark" => {
            let marks = index::marks(repo, cluster).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&marks)?);
                return Ok(ExitCode::SUCCESS);
            }
            if marks.is_empty() {
                println!("cluster {cluster} has no marks");
                return Ok(ExitCode::SUCCESS);
            }
            println!("{:<32} {:<22} POSITION", "MARK", "TIME");
            for m in &marks {
                println!("{:<32} {:<22} {}", m.name, m.at, m.position);
            }
            Ok(ExitCode::SUCCESS)
        }
        _ => {
            let sets = repo.sets(Some(cluster)).await?;
            let ws = ferry_backup::log::window::windows(&sets, &archive)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&ws)?);
                return Ok(ExitCode::SUCCESS);
            }
            if ws.is_empty() {
                println!(
                    "cluster {cluster} has no restorable window (a full set inside an unbroken run of archived pieces)"
                );
                return Ok(ExitCode::SUCCESS);
            }
            println!(
                "{:<24} {:<22} {:<22} {:<13} ENDED BY",
                "FROM SET", "FROM", "TO", "PIECES"
            );
            for w in &ws {
                println!(
                    "{:<24} {:<22} {:<22} {:<13} {}",
                    w.from_set,
                    w.from_time.as_deref().unwrap_or(&w.from_position),
                    w.to_time.as_deref().unwrap_or(&w.to_position),
                    format!("{}-{}", w.pieces.0, w.pieces.1),
                    w.ended_by.as_deref().unwrap_or("-")
                );
            }
            Ok(ExitCode::SUCCESS)
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
