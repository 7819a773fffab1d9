//! A physical restore: a PostgreSQL data directory written from a base backup,
//! set up to recover to a point with WAL Ferry serves (`restore_command` runs
//! `ferry backup log wal-fetch`). Starting a server on the directory performs the
//! recovery and promotes it at the target.
//!
//! Before anything is written, the point is checked against the physical window:
//! from the chosen set's end (the earliest consistent point) to the WAL archive's
//! end, with every segment between present in the archive.

use super::base::{read_info, PhysicalInfo};
use super::tar::{EntryKind, TarReader, TarSink};
use super::wal::{entry_path, read_head, segment_path, WalEntry, WalHead};
use super::{parse_segment_name, pos_lsn, rfc3339_us, segment_name, unpack, METHOD};
use crate::log::RestorePoint;
use crate::manifest::Manifest;
use crate::repo::Repo;
use ferry_core::{Error, Position, Result};
use ferry_postgres::physical::lsn_text;
use std::io::Write;
use std::path::{Component, Path, PathBuf};

/// What to restore where.
#[derive(Debug, Clone)]
pub struct DataDirRequest {
    /// A physical set id, or a cluster (its newest physical set fitting the point).
    pub from: String,
    /// Where recovery stops; `None`: the end of the WAL archive (or the set's end
    /// when the cluster has no WAL archive).
    pub until: Option<RestorePoint>,
    /// The data directory to write (absent or empty).
    pub data_dir: PathBuf,
    /// The `restore_command` (with `%f` and `%p`) PostgreSQL runs to fetch WAL.
    pub restore_command: String,
}

/// What a physical restore wrote.
#[derive(Debug, Clone)]
pub struct DataDirReport {
    /// The set restored.
    pub set: String,
    /// Its cluster.
    pub cluster: String,
    /// The recovery target as written (`recovery_target_lsn = '0/3000060'`), or
    /// "end of the WAL archive".
    pub target: String,
    /// The window the point was checked against (`lsn:… – lsn:…`).
    pub window: String,
    /// Files written.
    pub files: u64,
    /// Bytes written.
    pub bytes: u64,
    /// WAL segments the recovery will fetch from the archive.
    pub segments: u64,
}

/// The recovery target, resolved.
enum Target {
    End,
    Lsn(u64),
    Time(i64),
}

/// Writes the data directory of `req` from `repo`.
pub async fn restore_data_dir(repo: &Repo, req: &DataDirRequest) -> Result<DataDirReport> {
    // the set(s) to choose from
    let (cluster, candidates) =
        if crate::layout::valid_set_id(&req.from) && !crate::layout::valid_cluster(&req.from) {
            let m = repo.find_set(&req.from).await?;
            (m.cluster.clone(), vec![m])
        } else {
            let sets: Vec<Manifest> = repo
                .sets(Some(&req.from))
                .await?
                .into_iter()
                .filter(|m| m.method == METHOD)
                .collect();
            (req.from.clone(), sets)
        };
    if let Some(m) = candidates.iter().find(|m| m.method != METHOD) {
        return Err(Error::definite(format!(
            "set {} is a {} backup; --data-dir restores physical sets only",
            m.id, m.method
        ))
        .with_hint("restore it into a database with --target instead"));
    }
    if candidates.is_empty() {
        return Err(Error::definite(format!(
            "cluster {cluster} has no physical backup set in {}",
            repo.storage.url()
        ))
        .with_hint(
            "take one with `ferry backup now CLUSTER --method physical --source … --storage …`",
        ));
    }
    if let Some(m) = candidates.last().filter(|m| m.engine == "mysql") {
        if req.until.is_some() {
            return Err(Error::definite(format!(
                "set {}: a physical MySQL/MariaDB set restores to its own end only",
                m.id
            ))
            .with_hint("drop --until, or use the logical method for point-in-time restores"));
        }
        prepare_dir(&req.data_dir)?;
        let (files, bytes) = super::mariadb::restore(repo, m, &req.data_dir).await?;
        return Ok(DataDirReport {
            set: m.id.clone(),
            cluster,
            target: "the set's end".into(),
            window: m.position.clone().unwrap_or_else(|| "-".into()),
            files,
            bytes,
            segments: 0,
        });
    }
    let target = match &req.until {
        None => Target::End,
        Some(RestorePoint::Time(t)) => Target::Time(*t),
        Some(RestorePoint::Position(Position::PgLsn(l))) => Target::Lsn(*l),
        Some(RestorePoint::Mark(name)) => {
            let mark = crate::log::index::read_mark(repo, &cluster, name).await?;
            Target::Lsn(pos_lsn(&mark.position).ok_or_else(|| {
                Error::definite(format!(
                    "mark {name} is at {}, not a PostgreSQL WAL position",
                    mark.position
                ))
            })?)
        }
        Some(p) => {
            return Err(Error::definite(format!(
                "restore point {p}: a physical PostgreSQL restore stops at a time, an LSN (lsn:X/Y) or a mark"
            )))
        }
    };
    let head = read_head(repo, &cluster).await?;
    // newest set whose consistent point is at or before the target
    let mut chosen = None;
    for m in candidates.iter().rev() {
        let info = read_info(repo, m).await?;
        let end = pos_lsn(&info.end_lsn).unwrap_or(0);
        let fits = match target {
            Target::End => true,
            Target::Lsn(l) => end <= l,
            Target::Time(t) => m
                .consistent_at
                .as_deref()
                .and_then(|c| chrono::DateTime::parse_from_rfc3339(c).ok())
                .is_some_and(|c| c.timestamp_micros() <= t),
        };
        if fits {
            chosen = Some((m.clone(), info));
            break;
        }
    }
    let Some((m, info)) = chosen else {
        let oldest = &candidates[0];
        return Err(Error::definite(format!(
            "restore point {} is before the oldest physical set of cluster {cluster} ({} consistent at {} / {})",
            point_text(&req.until),
            oldest.id,
            oldest.position.as_deref().unwrap_or("-"),
            oldest.consistent_at.as_deref().unwrap_or("-")
        ))
        .with_hint("a physical restore reaches points from a set's end on; `ferry backup list` shows the sets"));
    };
    let set_end = pos_lsn(&info.end_lsn).unwrap_or(0);
    let covers = head.as_ref().filter(|h| archive_covers(h, &info));
    let (win_end_lsn, win_end_us) = match covers {
        Some(h) => (pos_lsn(&h.end_lsn).unwrap_or(set_end), h.latest_point_us),
        None => (set_end, None),
    };
    let window = match (covers, win_end_us) {
        (Some(h), Some(us)) => format!(
            "lsn:{} ({}) – lsn:{} ({})",
            info.end_lsn,
            m.consistent_at.as_deref().unwrap_or("-"),
            h.end_lsn,
            rfc3339_us(us)
        ),
        _ => format!(
            "lsn:{} ({}) – lsn:{}",
            info.end_lsn,
            m.consistent_at.as_deref().unwrap_or("-"),
            lsn_text(win_end_lsn)
        ),
    };
    let outside = |why: &str| {
        Error::definite(format!(
            "restore point {} is outside cluster {cluster}'s physical window {window}: {why}",
            point_text(&req.until)
        ))
        .with_hint(if covers.is_some() {
            "pick a point inside the window; the archive grows while `ferry backup log run CLUSTER --method physical` runs"
        } else {
            "the set alone restores to its end only: run `ferry backup log run CLUSTER --method physical` to archive WAL beyond it"
        })
    };
    let need_to = match target {
        Target::End => win_end_lsn,
        Target::Lsn(l) => {
            if l > win_end_lsn {
                return Err(outside("after the archive's end"));
            }
            l
        }
        Target::Time(t) => {
            match win_end_us {
                Some(us) if t <= us => {}
                _ => return Err(outside("after the latest backup point")),
            }
            win_end_lsn
        }
    };
    // every segment from the set's end to the target must be there
    let mut segments = 0;
    if let Some(h) = covers {
        let seg = h.segment_size;
        // the last byte recovery reads: the target record's, or the archive's last
        let last = match target {
            Target::Lsn(l) => l,
            _ => need_to.saturating_sub(1),
        }
        .max(set_end);
        let first = parse_segment_name(&h.first_segment, seg).map_or(0, |(_, f)| f);
        let mut at = (set_end - set_end % seg).max(first);
        while at <= last {
            let name = segment_name(h.timeline, at, seg);
            check_segment(repo, &cluster, h, &name, &window).await?;
            segments += 1;
            at += seg;
        }
    }
    // the directory
    prepare_dir(&req.data_dir)?;
    let mut sink = FileSink {
        root: req.data_dir.clone(),
        file: None,
        files: 0,
        bytes: 0,
    };
    let mut tar = TarReader::new();
    for f in &m.files {
        let stored = repo.read_file(&m, f).await?;
        let what = format!("set {}: file {}", m.id, f.path);
        let raw = unpack(&stored, repo.cipher.as_ref(), &what)?;
        tar.feed(&raw, &mut sink)?;
    }
    if !tar.finished() {
        return Err(Error::definite(format!(
            "set {}: its base backup ends early (a part is missing from the manifest?)",
            m.id
        )));
    }
    let target_line = match target {
        Target::End => None,
        Target::Lsn(l) => Some(format!("recovery_target_lsn = '{}'", lsn_text(l))),
        Target::Time(t) => Some(format!(
            "recovery_target_time = '{}'",
            chrono::DateTime::from_timestamp_micros(t)
                .unwrap_or_default()
                .format("%Y-%m-%d %H:%M:%S%.6f+00")
        )),
    };
    write_recovery(&req.data_dir, &req.restore_command, target_line.as_deref())?;
    tracing::info!(cluster = %cluster, set = %m.id, data_dir = %req.data_dir.display(), "physical restore written");
    Ok(DataDirReport {
        set: m.id.clone(),
        cluster,
        target: target_line.unwrap_or_else(|| "end of the WAL archive".into()),
        window,
        files: sink.files,
        bytes: sink.bytes,
        segments,
    })
}

fn point_text(p: &Option<RestorePoint>) -> String {
    p.as_ref()
        .map(|p| p.to_string())
        .unwrap_or_else(|| "(end)".into())
}

/// Whether the WAL archive `h` continues the set `info` (same system and
/// timeline, and it began at or before the set's end).
fn archive_covers(h: &WalHead, info: &PhysicalInfo) -> bool {
    let end = pos_lsn(&info.end_lsn).unwrap_or(0);
    h.system_id == info.system_id
        && h.timeline == info.timeline
        // the set's last segment travels in the set itself (complete: the
        // backup's end switches segments), so the archive may begin after it
        && parse_segment_name(&h.first_segment, h.segment_size)
            .is_some_and(|(_, first)| first <= end - end % h.segment_size + h.segment_size)
        && pos_lsn(&h.end_lsn).is_some_and(|e| e >= end)
}

async fn check_segment(
    repo: &Repo,
    cluster: &str,
    h: &WalHead,
    name: &str,
    window: &str,
) -> Result<()> {
    let broken = |what: String| {
        Error::definite(format!(
            "WAL segment {name} {what}: the physical window {window} is broken there"
        ))
        .with_hint("restore to a point before it, or from a newer physical full backup")
    };
    if let Some(p) = &h.partial {
        if p.name == name {
            let path = super::wal::partial_path(cluster, name, &p.end_lsn);
            return match repo.storage.size(&path).await? {
                Some(n) if n == p.bytes => Ok(()),
                Some(_) => Err(broken(format!("is damaged ({path})"))),
                None => Err(broken(format!("is missing from the archive ({path})"))),
            };
        }
    }
    let Some(e) = repo
        .get_json::<WalEntry>(&entry_path(cluster, name))
        .await?
    else {
        return Err(broken("is missing from the archive's index".into()));
    };
    let path = segment_path(cluster, name);
    match repo.storage.size(&path).await? {
        Some(n) if n == e.bytes => Ok(()),
        Some(_) => Err(broken(format!("is damaged ({path})"))),
        None => Err(broken(format!("is missing from the archive ({path})"))),
    }
}

fn io(what: &str, p: &Path, e: std::io::Error) -> Error {
    Error::definite(format!("{what} {}: {e}", p.display()))
}

fn prepare_dir(dir: &Path) -> Result<()> {
    if dir.exists() {
        let mut it = std::fs::read_dir(dir).map_err(|e| io("cannot read", dir, e))?;
        if it.next().is_some() {
            return Err(Error::definite(format!(
                "the data directory {} is not empty",
                dir.display()
            ))
            .with_hint("give an absent or empty directory: a physical restore writes a whole data directory"));
        }
    } else {
        std::fs::create_dir_all(dir).map_err(|e| io("cannot create", dir, e))?;
    }
    set_mode(dir, 0o700)
}

fn set_mode(p: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode))
        .map_err(|e| io("cannot set permissions of", p, e))
}

/// Quotes a value for postgresql.conf.
fn conf_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

fn write_recovery(dir: &Path, restore_command: &str, target: Option<&str>) -> Result<()> {
    for stale in ["postmaster.pid", "postmaster.opts"] {
        let _ = std::fs::remove_file(dir.join(stale));
    }
    let signal = dir.join("recovery.signal");
    std::fs::write(&signal, b"").map_err(|e| io("cannot write", &signal, e))?;
    let auto = dir.join("postgresql.auto.conf");
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&auto)
        .map_err(|e| io("cannot open", &auto, e))?;
    let mut text = String::from(
        "\n# Added by `ferry restore create --data-dir`: recovery from Ferry's WAL archive\n",
    );
    text.push_str(&format!(
        "restore_command = {}\n",
        conf_quote(restore_command)
    ));
    if let Some(t) = target {
        text.push_str(t);
        text.push('\n');
        text.push_str("recovery_target_inclusive = on\n");
    }
    text.push_str("recovery_target_timeline = 'current'\n");
    text.push_str("recovery_target_action = 'promote'\n");
    f.write_all(text.as_bytes())
        .map_err(|e| io("cannot write", &auto, e))?;
    Ok(())
}

/// A sink writing a tar stream's entries under `root`.
pub(crate) fn file_sink(root: &Path) -> FileSink {
    FileSink {
        root: root.to_path_buf(),
        file: None,
        files: 0,
        bytes: 0,
    }
}

/// Files and bytes a [`file_sink`] wrote.
pub(crate) fn sink_counts(s: &FileSink) -> (u64, u64) {
    (s.files, s.bytes)
}

pub(crate) struct FileSink {
    root: PathBuf,
    file: Option<std::io::BufWriter<std::fs::File>>,
    files: u64,
    bytes: u64,
}

impl FileSink {
    fn path(&self, name: &str) -> Result<PathBuf> {
        let rel = Path::new(name.trim_end_matches('/'));
        if rel
            .components()
            .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
        {
            return Err(Error::definite(format!(
                "base backup entry {name:?} points outside the data directory"
            )));
        }
        Ok(self.root.join(rel))
    }
}

impl TarSink for FileSink {
    fn begin(
        &mut self,
        kind: EntryKind,
        name: &str,
        _mode: u32,
        _size: u64,
        link: &str,
    ) -> Result<()> {
        let p = self.path(name)?;
        match kind {
            EntryKind::Dir => {
                std::fs::create_dir_all(&p).map_err(|e| io("cannot create", &p, e))?;
                set_mode(&p, 0o700)?;
            }
            EntryKind::Symlink => {
                std::os::unix::fs::symlink(link, &p).map_err(|e| io("cannot create", &p, e))?;
            }
            EntryKind::File => {
                if let Some(parent) = p.parent() {
                    std::fs::create_dir_all(parent).map_err(|e| io("cannot create", parent, e))?;
                }
                let f = std::fs::File::create(&p).map_err(|e| io("cannot create", &p, e))?;
                set_mode(&p, 0o600)?;
                self.file = Some(std::io::BufWriter::with_capacity(256 * 1024, f));
                self.files += 1;
            }
        }
        Ok(())
    }

    fn data(&mut self, b: &[u8]) -> Result<()> {
        if let Some(f) = &mut self.file {
            f.write_all(b)
                .map_err(|e| Error::definite(format!("writing the data directory: {e}")))?;
            self.bytes += b.len() as u64;
        }
        Ok(())
    }

    fn end(&mut self) -> Result<()> {
        if let Some(mut f) = self.file.take() {
            f.flush()
                .map_err(|e| Error::definite(format!("writing the data directory: {e}")))?;
        }
        Ok(())
    }
}
