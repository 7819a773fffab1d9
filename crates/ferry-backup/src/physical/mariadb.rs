//! MySQL/MariaDB physical backups go through `mariadb-backup` (Debian package
//! `mariadb-backup`), run on the machine Ferry runs on — it reads the server's
//! InnoDB files directly, so the server must be local. Without the tool, the
//! physical method says so and how to install it.
//!
//! A backup runs `mariadb-backup --backup` into a scratch directory, then stores
//! that directory as a tar stream cut into parts (like a PostgreSQL base backup);
//! the position is the binlog coordinates the tool recorded. A restore extracts
//! the parts to a scratch directory, runs `--prepare` and `--copy-back` into the
//! data directory. A physical MariaDB set restores to its own end only.

use super::base::store_part;
use super::tar::{header, EntryKind, TarReader};
use super::{now_us, rfc3339_us, unpack, METHOD};
use crate::manifest::{FileEntry, Manifest, SetKind};
use crate::repo::Repo;
use ferry_core::{Endpoint, Error, Position, Result};
use std::path::{Path, PathBuf};

/// The `mariadb-backup` (or older `mariabackup`) executable on `PATH`.
pub fn find_tool() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    for dir in std::env::split_paths(&path) {
        for name in ["mariadb-backup", "mariabackup"] {
            let p = dir.join(name);
            if p.is_file() {
                return Some(p);
            }
        }
    }
    None
}

/// The error when `mariadb-backup` is not installed.
pub fn not_installed() -> Error {
    Error::definite(
        "a physical backup of MySQL/MariaDB needs mariadb-backup, which is not installed on this machine",
    )
    .with_hint(
        "install it (Debian/Ubuntu: apt-get install mariadb-backup) on the machine running Ferry, or use --method logical",
    )
}

/// A scratch directory removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(what: &str) -> Result<Scratch> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let p = std::env::temp_dir().join(format!(
            "ferry-{what}-{}-{nanos:x}",
            std::process::id()
        ));
        std::fs::create_dir_all(&p)
            .map_err(|e| Error::definite(format!("cannot create {}: {e}", p.display())))?;
        Ok(Scratch(p))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs the tool; its last output lines in the error when it fails.
async fn run_tool(tool: &Path, args: &[String], what: &str) -> Result<()> {
    let out = tokio::process::Command::new(tool)
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .map_err(|e| Error::definite(format!("cannot run {}: {e}", tool.display())))?;
    if out.status.success() {
        return Ok(());
    }
    let text = String::from_utf8_lossy(&out.stderr);
    let tail: Vec<&str> = text.lines().rev().take(6).collect();
    let tail: Vec<&str> = tail.into_iter().rev().collect();
    Err(Error::definite(format!(
        "mariadb-backup {what} failed ({}):\n{}",
        out.status,
        tail.join("\n")
    )))
}

/// A physical backup of a MySQL/MariaDB source.
pub async fn backup(
    repo: &Repo,
    cluster: &str,
    source: &Endpoint,
    quiet: bool,
) -> Result<Manifest> {
    let Some(tool) = find_tool() else {
        return Err(not_installed());
    };
    let started_us = now_us();
    let scratch = Scratch::new("mariadb-backup")?;
    // the password in a 0600 option file, not on the command line
    let opts = scratch.0.join("client.cnf");
    {
        use std::os::unix::fs::OpenOptionsExt;
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&opts)
            .map_err(|e| Error::definite(format!("cannot write {}: {e}", opts.display())))?;
        let pw = source.password.clone().unwrap_or_default();
        writeln!(f, "[client]\npassword=\"{}\"", pw.replace('\\', "\\\\").replace('"', "\\\""))
            .map_err(|e| Error::definite(format!("cannot write {}: {e}", opts.display())))?;
    }
    let target = scratch.0.join("backup");
    let args = vec![
        format!("--defaults-extra-file={}", opts.display()),
        "--backup".to_string(),
        format!("--target-dir={}", target.display()),
        format!("--host={}", source.host),
        format!("--port={}", source.port),
        format!("--user={}", source.user),
    ];
    if !quiet {
        eprintln!("running mariadb-backup --backup of {source}");
    }
    run_tool(&tool, &args, "--backup").await?;
    let version = tokio::process::Command::new(&tool)
        .arg("--version")
        .output()
        .await
        .map(|o| String::from_utf8_lossy(&o.stderr).trim().to_string() + String::from_utf8_lossy(&o.stdout).trim())
        .unwrap_or_default();
    // the stream: every file of the backup directory, as tar, in parts
    let id = crate::backup::new_set(SetKind::Full);
    let mut files: Vec<FileEntry> = Vec::new();
    let part_limit = crate::codec::PART_BYTES as usize;
    let mut buf: Vec<u8> = Vec::with_capacity(part_limit);
    let mut entries = Vec::new();
    walk(&target, &target, &mut entries)?;
    for (rel, is_dir, size) in &entries {
        let kind = if *is_dir { EntryKind::Dir } else { EntryKind::File };
        let h = header(rel, kind, if *is_dir { 0 } else { *size }, if *is_dir { 0o750 } else { 0o640 })
            .ok_or_else(|| Error::definite(format!("mariadb-backup file {rel}: name too long to store")))?;
        push(repo, cluster, &id, &mut files, &mut buf, &h).await?;
        if !is_dir {
            use std::io::Read;
            let p = target.join(rel);
            let mut f = std::fs::File::open(&p)
                .map_err(|e| Error::definite(format!("cannot read {}: {e}", p.display())))?;
            let mut left = *size;
            let mut chunk = vec![0u8; 1 << 20];
            while left > 0 {
                let n = f
                    .read(&mut chunk[..(left.min(1 << 20)) as usize])
                    .map_err(|e| Error::definite(format!("cannot read {}: {e}", p.display())))?;
                if n == 0 {
                    return Err(Error::definite(format!("{} shrank while it was stored", p.display())));
                }
                push(repo, cluster, &id, &mut files, &mut buf, &chunk[..n]).await?;
                left -= n as u64;
            }
            let pad = ((512 - size % 512) % 512) as usize;
            push(repo, cluster, &id, &mut files, &mut buf, &vec![0u8; pad]).await?;
        }
    }
    push(repo, cluster, &id, &mut files, &mut buf, &[0u8; 1024]).await?;
    if !buf.is_empty() {
        store_part(repo, cluster, &id, &mut files, &buf).await?;
    }
    // the binlog coordinates the backup is consistent at
    let position = std::fs::read_to_string(target.join("mariadb_backup_binlog_info"))
        .or_else(|_| std::fs::read_to_string(target.join("xtrabackup_binlog_info")))
        .ok()
        .and_then(|t| {
            let mut it = t.split_whitespace();
            let file = it.next()?.to_string();
            let pos = it.next()?.parse().ok()?;
            let gtid = it.next().unwrap_or_default().to_string();
            Some(Position::Binlog { file, pos, gtid }.to_string())
        });
    let finished_us = now_us();
    let mut redacted = source.clone();
    redacted.password = None;
    let m = Manifest {
        format: crate::layout::FORMAT,
        id: id.clone(),
        cluster: cluster.to_string(),
        kind: SetKind::Full,
        method: METHOD.into(),
        parent: None,
        chain: id.clone(),
        engine: "mysql".into(),
        server_version: version,
        source: redacted.to_string(),
        start_position: None,
        position,
        consistent_at: Some(rfc3339_us(finished_us)),
        started_at: rfc3339_us(started_us),
        finished_at: rfc3339_us(finished_us),
        encrypted: repo.encrypted(),
        compression: "zstd".into(),
        tables: Vec::new(),
        files,
    };
    repo.write_manifest(&m).await?;
    Ok(m)
}

async fn push(
    repo: &Repo,
    cluster: &str,
    set: &str,
    files: &mut Vec<FileEntry>,
    buf: &mut Vec<u8>,
    mut d: &[u8],
) -> Result<()> {
    let limit = crate::codec::PART_BYTES as usize;
    while !d.is_empty() {
        let n = (limit - buf.len()).min(d.len());
        buf.extend_from_slice(&d[..n]);
        d = &d[n..];
        if buf.len() == limit {
            store_part(repo, cluster, set, files, buf).await?;
            buf.clear();
        }
    }
    Ok(())
}

/// Every entry under `dir`, relative to `root`, sorted: (path, is a directory, size).
fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, bool, u64)>) -> Result<()> {
    let mut items: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| Error::definite(format!("cannot read {}: {e}", dir.display())))?
        .flatten()
        .collect();
    items.sort_by_key(|e| e.file_name());
    for e in items {
        let p = e.path();
        let meta = e
            .metadata()
            .map_err(|er| Error::definite(format!("cannot read {}: {er}", p.display())))?;
        let rel = p
            .strip_prefix(root)
            .map(|r| r.to_string_lossy().into_owned())
            .unwrap_or_default();
        if meta.is_dir() {
            out.push((rel, true, 0));
            walk(root, &p, out)?;
        } else if meta.is_file() {
            out.push((rel, false, meta.len()));
        }
    }
    Ok(())
}

/// Writes a MariaDB data directory from physical set `m` (to its end):
/// extracted, prepared and copied back with `mariadb-backup`.
pub async fn restore(repo: &Repo, m: &Manifest, data_dir: &Path) -> Result<(u64, u64)> {
    let Some(tool) = find_tool() else {
        return Err(not_installed());
    };
    let scratch = Scratch::new("mariadb-restore")?;
    let target = scratch.0.join("backup");
    std::fs::create_dir_all(&target)
        .map_err(|e| Error::definite(format!("cannot create {}: {e}", target.display())))?;
    let mut sink = super::restore::file_sink(&target);
    let mut tar = TarReader::new();
    for f in &m.files {
        let stored = repo.read_file(m, f).await?;
        let what = format!("set {}: file {}", m.id, f.path);
        let raw = unpack(&stored, repo.cipher.as_ref(), &what)?;
        tar.feed(&raw, &mut sink)?;
    }
    if !tar.finished() {
        return Err(Error::definite(format!("set {}: its backup stream ends early", m.id)));
    }
    let (files, bytes) = super::restore::sink_counts(&sink);
    run_tool(
        &tool,
        &["--prepare".into(), format!("--target-dir={}", target.display())],
        "--prepare",
    )
    .await?;
    run_tool(
        &tool,
        &[
            "--copy-back".into(),
            format!("--target-dir={}", target.display()),
            format!("--datadir={}", data_dir.display()),
        ],
        "--copy-back",
    )
    .await?;
    Ok((files, bytes))
}
