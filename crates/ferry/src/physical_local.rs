//! Physical backups run here, without a service:
//! - `ferry backup now CLUSTER --method physical --source … --storage …` — a
//!   PostgreSQL base backup (or MariaDB through mariadb-backup) as a set;
//! - (`ferry backup log run CLUSTER --method physical …`, the WAL archive, runs
//!   through the log archiver, which hands physical requests to
//!   [`ferry_backup::physical::archive_wal`]);
//! - `ferry restore create --data-dir DIR --from CLUSTER|SET [--until POINT]
//!   --storage …` — a data directory that recovers to the point;
//! - `ferry backup log wal-fetch CLUSTER FILE PATH --storage …` (hidden) — what
//!   that data directory's `restore_command` runs.

use crate::backup_cmd::RestoreCmd;
use crate::client::ClientOpts;
use anyhow::{bail, Result};
use ferry_backup::log::RestorePoint;
use ferry_backup::physical::{self, DataDirRequest};
use ferry_backup::repo::{Repo, KEY_ENV};
use ferry_core::Endpoint;
use std::path::PathBuf;
use std::process::ExitCode;

fn repo_key() -> Option<String> {
    std::env::var(KEY_ENV).ok().filter(|k| !k.is_empty())
}

/// `ferry backup now --method physical` in direct mode.
pub async fn backup_now(
    storage: &str,
    cluster: &str,
    source: Option<String>,
    incremental: bool,
    quiet: bool,
    json: bool,
) -> Result<ExitCode> {
    if incremental {
        bail!(
            "a physical backup is always full\n  hint: drop --incremental; the WAL archive \
             (`ferry backup log run CLUSTER --method physical`) covers the time between full backups"
        );
    }
    let Some(source) = source else {
        bail!("`ferry backup now --method physical --storage …` needs --source postgres://…");
    };
    let source = Endpoint::parse(&source, "FERRY_SOURCE_PASSWORD")?;
    ferry_backup::backup::check_cluster(cluster)?;
    let repo = Repo::create_or_open(storage, repo_key().as_deref()).await?;
    let t0 = std::time::Instant::now();
    let m = physical::run_physical_backup(&repo, cluster, &source, quiet).await?;
    if json {
        println!("{}", String::from_utf8_lossy(&m.to_json()));
        return Ok(ExitCode::SUCCESS);
    }
    println!("set {}", m.id);
    println!("  cluster   {} (full physical)", m.cluster);
    println!("  stored    {} bytes in {} files", m.bytes(), m.files.len());
    println!("  position  {}", m.position.as_deref().unwrap_or("-"));
    println!("  time      {:.1}s", t0.elapsed().as_secs_f64());
    Ok(ExitCode::SUCCESS)
}

/// `ferry backup log wal-fetch CLUSTER FILE PATH --storage …`: writes WAL file
/// `FILE` from the archive to `PATH` (exit 0), exit 1 when the archive does not
/// have it (PostgreSQL then ends recovery where its WAL ends), and exit 126 when
/// it should have it but the object is missing or damaged (PostgreSQL then
/// aborts the recovery rather than stop early).
pub async fn wal_fetch(storage: &str, cluster: &str, file: &str, path: &str) -> Result<ExitCode> {
    let repo = Repo::open(storage, repo_key().as_deref()).await?;
    match physical::fetch_wal(&repo, cluster, file).await {
        Ok(Some(bytes)) => {
            let tmp = format!("{path}.ferry-tmp");
            tokio::fs::write(&tmp, &bytes).await?;
            tokio::fs::rename(&tmp, path).await?;
            Ok(ExitCode::SUCCESS)
        }
        Ok(None) => Ok(ExitCode::from(1)),
        Err(e) => {
            eprintln!("ferry wal-fetch {file}: {e}");
            Ok(ExitCode::from(126))
        }
    }
}

/// Runs a physical restore.
pub async fn restore(_client: &ClientOpts, cmd: RestoreCmd) -> Result<ExitCode> {
    let RestoreCmd::Create {
        from,
        until,
        data_dir,
        direct,
        quiet,
        ..
    } = cmd
    else {
        bail!("only `ferry restore create` writes a data directory");
    };
    let (Some(data_dir), Some(from)) = (data_dir, from) else {
        bail!("a physical restore needs --data-dir DIR and --from CLUSTER|SET");
    };
    let Some(storage) = direct.storage else {
        bail!(
            "a physical restore runs here: give the repository with --storage\n  \
             hint: the data directory is written on this machine"
        );
    };
    let until = until.as_deref().map(RestorePoint::parse).transpose()?;
    let repo = Repo::open(&storage, repo_key().as_deref()).await?;
    let exe = std::env::current_exe()?;
    let data_dir = std::path::absolute(PathBuf::from(&data_dir))?;
    let storage_abs = absolute_storage(&storage)?;
    // the cluster is known after the set is chosen; the command names it
    let cluster_of = |c: &str| {
        format!(
            "{} backup log wal-fetch {} %f %p --storage {}",
            shell_quote(&exe.to_string_lossy()),
            shell_quote(c),
            shell_quote(&storage_abs)
        )
    };
    let cluster = if ferry_backup::layout::valid_cluster(&from) {
        from.clone()
    } else {
        repo.find_set(&from).await?.cluster
    };
    let req = DataDirRequest {
        from,
        until,
        data_dir: data_dir.clone(),
        restore_command: cluster_of(&cluster),
    };
    let report = match physical::restore_data_dir(&repo, &req).await {
        Ok(r) => r,
        Err(e) => {
            println!("precheck_failed: {}", e.message);
            if let Some(h) = &e.hint {
                println!("  hint: {h}");
            }
            return Ok(ExitCode::from(2));
        }
    };
    if !quiet {
        println!("data directory {}", data_dir.display());
        println!("  set       {} (cluster {})", report.set, report.cluster);
        println!("  window    {}", report.window);
        println!("  target    {}", report.target);
        println!("  written   {} files, {} bytes", report.files, report.bytes);
        println!("  WAL       {} segments from the archive", report.segments);
        println!(
            "  next      start PostgreSQL on it (same major version; {KEY_ENV} in its environment \
             when the repository is encrypted): it recovers to the target and promotes"
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// A local storage path made absolute (the server runs `restore_command` in the
/// data directory); URLs unchanged.
fn absolute_storage(s: &str) -> Result<String> {
    if s.contains("://") {
        return Ok(s.to_string());
    }
    Ok(std::path::absolute(s)?.to_string_lossy().into_owned())
}

/// Quotes a word for `/bin/sh` (PostgreSQL runs `restore_command` through it).
fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._-:=%+,@".contains(&b))
    {
        return s.to_string();
    }
    format!("'{}'", s.replace('\'', "'\\''"))
}
