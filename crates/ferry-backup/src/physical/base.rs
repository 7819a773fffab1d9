//! `ferry backup now --method physical` for PostgreSQL: a base backup over the
//! replication protocol (`BASE_BACKUP`, fast checkpoint), its tar stream cut into
//! parts of [`crate::codec::PART_BYTES`], each packed and checksummed like every
//! other file of a set. The WAL from the backup's start to its end travels inside
//! the stream (`WAL true`), so a set restores to its end point on its own; the
//! physical WAL archive ([`super::wal`]) takes it further.

use super::tar::{EntryKind, TarReader, TarSink};
use super::{lsn_pos, now_us, pack, rfc3339_us, METHOD};
use crate::manifest::{FileEntry, FileKind, Manifest, SetKind};
use crate::repo::Repo;
use ferry_core::{Endpoint, Engine, Error, Result};
use ferry_postgres::physical::BackupMsg;
use ferry_postgres::replication::ReplConn;
use serde::{Deserialize, Serialize};

/// What a physical set records besides its manifest (`physical.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PhysicalInfo {
    /// The source cluster's system identifier (WAL of another cluster never fits).
    pub system_id: String,
    /// Where the backup's WAL starts (the checkpoint's redo point).
    pub start_lsn: String,
    /// Where it is consistent: a recovery must replay at least to here.
    pub end_lsn: String,
    /// The timeline.
    pub timeline: u32,
    /// WAL segment size in bytes.
    pub segment_size: u64,
    /// `server_version_num`: a restore needs the same major version's binaries.
    pub version_num: u32,
    /// The `backup_label` the server wrote into the backup.
    pub backup_label: String,
    /// The `tablespace_map`, when there was one.
    pub tablespace_map: Option<String>,
    /// Bytes of the tar stream (before compression).
    pub tar_bytes: u64,
}

/// Path of a set's [`PhysicalInfo`].
pub fn info_path(cluster: &str, set: &str) -> String {
    format!("{}/physical.json", crate::layout::set_dir(cluster, set))
}

/// Reads a physical set's [`PhysicalInfo`].
pub async fn read_info(repo: &Repo, m: &Manifest) -> Result<PhysicalInfo> {
    repo.get_json(&info_path(&m.cluster, &m.id))
        .await?
        .ok_or_else(|| {
            Error::definite(format!(
                "set {}: its physical.json is missing (the set cannot be restored)",
                m.id
            ))
            .with_hint("restore from another set")
        })
}

/// Captures `backup_label` and `tablespace_map` from the stream.
#[derive(Default)]
struct LabelSink {
    current: Option<String>,
    buf: Vec<u8>,
    label: Option<String>,
    map: Option<String>,
}

impl TarSink for LabelSink {
    fn begin(&mut self, kind: EntryKind, name: &str, _m: u32, _s: u64, _l: &str) -> Result<()> {
        self.current = (kind == EntryKind::File
            && (name == "backup_label" || name == "tablespace_map"))
            .then(|| name.to_string());
        self.buf.clear();
        Ok(())
    }
    fn data(&mut self, b: &[u8]) -> Result<()> {
        if self.current.is_some() && self.buf.len() < 1 << 20 {
            self.buf.extend_from_slice(b);
        }
        Ok(())
    }
    fn end(&mut self) -> Result<()> {
        match self.current.take().as_deref() {
            Some("backup_label") => self.label = Some(String::from_utf8_lossy(&self.buf).into()),
            Some("tablespace_map") => self.map = Some(String::from_utf8_lossy(&self.buf).into()),
            _ => {}
        }
        Ok(())
    }
}

/// Takes a physical full backup of PostgreSQL `source` into `repo` as a set of
/// `cluster`. MySQL/MariaDB sources go to [`super::mariadb`].
pub async fn run_physical_backup(
    repo: &Repo,
    cluster: &str,
    source: &Endpoint,
    quiet: bool,
) -> Result<Manifest> {
    if source.engine != Engine::Postgres {
        return super::mariadb::backup(repo, cluster, source, quiet).await;
    }
    let started_us = now_us();
    let mut conn = ReplConn::connect_physical(source).await?;
    let sys = conn.identify_system().await?;
    let id = crate::backup::new_set(SetKind::Full);
    let (start_lsn, timeline, spaces) = conn
        .base_backup_start(&format!("ferry {cluster} {id}"), true)
        .await?;
    if spaces
        .iter()
        .any(|s| s.as_deref().is_some_and(|l| !l.is_empty()))
    {
        return Err(Error::definite(format!(
            "{source}: the server has tablespaces outside its data directory; Ferry's physical backup covers the main data directory only"
        ))
        .with_hint("use --method logical for this server"));
    }
    let part_limit = crate::codec::PART_BYTES as usize;
    let mut files: Vec<FileEntry> = Vec::new();
    let mut buf: Vec<u8> = Vec::with_capacity(part_limit);
    let mut tar = TarReader::new();
    let mut labels = LabelSink::default();
    let mut archive: Option<String> = None;
    let mut tar_bytes = 0u64;
    let mut last_report = std::time::Instant::now();
    let end = loop {
        match conn.base_backup_next().await? {
            BackupMsg::Archive { name, location } => {
                if !location.is_empty() || name != "base.tar" {
                    return Err(Error::definite(format!(
                        "{source}: the base backup has archive {name} ({location}); Ferry's physical backup covers the main data directory only"
                    ))
                    .with_hint("use --method logical for this server"));
                }
                archive = Some(name);
            }
            BackupMsg::Data(d) => {
                if archive.is_none() {
                    return Err(Error::transient("base backup: data before an archive"));
                }
                tar.feed(&d, &mut labels)?;
                tar_bytes += d.len() as u64;
                let mut d = &d[..];
                while !d.is_empty() {
                    let n = (part_limit - buf.len()).min(d.len());
                    buf.extend_from_slice(&d[..n]);
                    d = &d[n..];
                    if buf.len() == part_limit {
                        store_part(repo, cluster, &id, &mut files, &buf).await?;
                        buf.clear();
                    }
                }
                if !quiet && last_report.elapsed().as_secs() >= 5 {
                    last_report = std::time::Instant::now();
                    eprintln!("base backup: {} MiB read", tar_bytes >> 20);
                }
            }
            BackupMsg::Manifest | BackupMsg::Progress(_) => {}
            BackupMsg::Done { end_lsn, timeline } => break (end_lsn, timeline),
        }
    };
    if !buf.is_empty() {
        store_part(repo, cluster, &id, &mut files, &buf).await?;
    }
    if !tar.finished() {
        return Err(Error::transient(
            "base backup: the tar stream ended early (the connection was cut?)",
        ));
    }
    let Some(label) = labels.label else {
        return Err(Error::definite(
            "base backup: the server sent no backup_label (not a PostgreSQL base backup?)",
        ));
    };
    let (end_lsn, end_tli) = end;
    if end_tli != timeline {
        return Err(Error::transient(
            "base backup: the source changed timelines during the backup; run it again",
        ));
    }
    let finished_us = now_us();
    let info = PhysicalInfo {
        system_id: sys.system_id.clone(),
        start_lsn: ferry_postgres::physical::lsn_text(start_lsn),
        end_lsn: ferry_postgres::physical::lsn_text(end_lsn),
        timeline,
        segment_size: sys.segment_size,
        version_num: sys.version_num,
        backup_label: label,
        tablespace_map: labels.map,
        tar_bytes,
    };
    repo.put_json(&info_path(cluster, &id), &info).await?;
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
        engine: "postgres".into(),
        server_version: format!("PostgreSQL {}", sys.version),
        source: redacted.to_string(),
        start_position: None,
        position: Some(lsn_pos(end_lsn)),
        consistent_at: Some(rfc3339_us(finished_us)),
        started_at: rfc3339_us(started_us),
        finished_at: rfc3339_us(finished_us),
        encrypted: repo.encrypted(),
        compression: "zstd".into(),
        tables: Vec::new(),
        files,
    };
    repo.write_manifest(&m).await?;
    tracing::info!(cluster, set = %id, start = %info.start_lsn, end = %info.end_lsn, "physical base backup stored");
    Ok(m)
}

pub(crate) async fn store_part(
    repo: &Repo,
    cluster: &str,
    set: &str,
    files: &mut Vec<FileEntry>,
    raw: &[u8],
) -> Result<()> {
    let p = pack(raw, repo.cipher.as_ref())?;
    let path = format!("base/base.tar/{:06}.fzr", files.len());
    let bytes = p.bytes.len() as u64;
    repo.put_file(cluster, set, &path, p.bytes).await?;
    files.push(FileEntry {
        path,
        table: 0,
        kind: FileKind::Data,
        lo: None,
        hi: None,
        rows: 0,
        bytes,
        raw_bytes: raw.len() as u64,
        sha256: p.sha256,
    });
    Ok(())
}

/// `ferry backup verify` of a physical set: every part read back (size and
/// SHA-256 against the manifest), decompressed (zstd's own checksum) and its
/// length compared; the tar stream they make read through to its end.
pub async fn verify_files(repo: &Repo, m: &Manifest, report: &mut crate::verify::VerifyReport) {
    let mut tar = TarReader::new();
    let mut sink = LabelSink::default();
    let mut intact = true;
    for f in &m.files {
        report.files += 1;
        let name = format!("{}/{}", m.id, f.path);
        let stored = match repo.read_file(m, f).await {
            Ok(b) => b,
            Err(e) => {
                report.problems.push(format!("{name}: {}", e.message));
                intact = false;
                continue;
            }
        };
        report.bytes += stored.len() as u64;
        match super::unpack(&stored, repo.cipher.as_ref(), &name) {
            Ok(raw) if raw.len() as u64 == f.raw_bytes => {
                if intact {
                    if let Err(e) = tar.feed(&raw, &mut sink) {
                        report.problems.push(format!("{name}: {}", e.message));
                        intact = false;
                    }
                }
            }
            Ok(raw) => {
                intact = false;
                report.problems.push(format!(
                    "{name}: holds {} bytes but the manifest says {}",
                    raw.len(),
                    f.raw_bytes
                ));
            }
            Err(e) => {
                intact = false;
                report
                    .problems
                    .push(format!("{name}: cannot be decoded: {}", e.message));
            }
        }
    }
    if intact && !tar.finished() {
        report
            .problems
            .push(format!("{}: the base backup's tar stream ends early", m.id));
    }
    if m.engine == "postgres" {
        if let Err(e) = read_info(repo, m).await {
            report.problems.push(e.message);
        }
    }
}
