//! The physical WAL archive: raw WAL streamed from the cluster's physical slot
//! (`ferry_wal_<cluster>`, created with `RESERVE_WAL`) into the repository, one
//! object per WAL segment plus the segment being filled, stored every
//! `piece_seconds` as `<segment>.partial.fzr` so the latest backup point stays
//! fresh on a quiet source.
//!
//! Durability: the slot is told WAL is flushed only up to what is stored (a
//! complete segment with its index entry, or the partial with the head naming
//! it), so a crash at any instant loses nothing; the next run starts at the
//! beginning of the segment the head is in and rewrites it.
//!
//! The latest backup point is an approximation: the server's clock in the last
//! message received when everything the server had written (its WAL end) was
//! stored. A commit at or before that instant is archived.

use super::{now_us, pack, parse_segment_name, segment_name, unpack};
use crate::log::{ArchiveRequest, ArchiveState, ArchiveStatus};
use crate::repo::Repo;
use bytes::Bytes;
use ferry_core::{Error, Result};
use ferry_postgres::physical::{lsn_text, WalMsg};
use ferry_postgres::replication::ReplConn;
use serde::{Deserialize, Serialize};
use std::time::Duration;
use tokio::sync::watch;

/// The directory of a cluster's WAL archive.
pub fn wal_dir(cluster: &str) -> String {
    format!("clusters/{cluster}/wal")
}

/// A complete segment's object.
pub fn segment_path(cluster: &str, name: &str) -> String {
    format!("{}/{name}.fzr", wal_dir(cluster))
}

/// The partial segment's object, by the LSN it ends at (a new one is written
/// before the head names it and the old one is deleted: never overwritten).
pub fn partial_path(cluster: &str, name: &str, end_lsn: &str) -> String {
    format!(
        "{}/{name}.{}.partial.fzr",
        wal_dir(cluster),
        end_lsn.replace('/', "-")
    )
}

/// A complete segment's index entry.
pub fn entry_path(cluster: &str, name: &str) -> String {
    format!("{}/index/{name}.json", wal_dir(cluster))
}

/// The archive head.
pub fn head_path(cluster: &str) -> String {
    format!("{}/head.json", wal_dir(cluster))
}

/// The physical slot of a cluster's WAL archive.
pub fn slot_name(cluster: &str) -> String {
    format!("ferry_wal_{}", cluster.replace('-', "_"))
}

/// One stored segment (complete, or the partial one).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WalEntry {
    /// The WAL file name.
    pub name: String,
    /// Its timeline.
    pub timeline: u32,
    /// First LSN it holds (the segment's start).
    pub start_lsn: String,
    /// LSN after its last byte (the segment's end when complete).
    pub end_lsn: String,
    /// Bytes stored (compressed, sealed).
    pub bytes: u64,
    /// SHA-256 of the stored bytes.
    pub sha256: String,
    /// When it was stored (µs since the epoch).
    pub stored_us: i64,
    /// True for the segment still being filled.
    pub partial: bool,
}

/// How far the archive is complete.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WalHead {
    /// The source cluster's system identifier.
    pub system_id: String,
    /// The timeline archived.
    pub timeline: u32,
    /// WAL segment size.
    pub segment_size: u64,
    /// The first segment of the archive (where it began).
    pub first_segment: String,
    /// Everything before this LSN is stored.
    pub end_lsn: String,
    /// The latest backup point (µs since the epoch), see the module doc.
    pub latest_point_us: Option<i64>,
    /// The partial segment holding the WAL after the last complete segment.
    pub partial: Option<WalEntry>,
}

/// The archive head of `cluster`; `None` when it has no physical WAL archive.
pub async fn read_head(repo: &Repo, cluster: &str) -> Result<Option<WalHead>> {
    repo.get_json(&head_path(cluster)).await
}

/// Complete segments' entries of `cluster`'s archive, in WAL order.
pub async fn entries(repo: &Repo, cluster: &str) -> Result<Vec<String>> {
    let dir = format!("{}/index", wal_dir(cluster));
    let mut names: Vec<String> = repo
        .storage
        .list(&dir)
        .await?
        .into_iter()
        .filter_map(|(p, _)| {
            p.rsplit('/')
                .next()
                .and_then(|f| f.strip_suffix(".json"))
                .map(str::to_string)
        })
        .collect();
    names.sort();
    Ok(names)
}

/// The bytes `restore_command` hands PostgreSQL for WAL file `name`: a complete
/// segment, or the partial one zero-padded to the segment size (recovery ends
/// where its WAL ends). `None` when the archive does not have it (history files,
/// segments past the archive's end) — PostgreSQL then looks no further. A
/// segment whose index entry exists but whose object is missing or damaged is an
/// error.
pub async fn fetch_wal(repo: &Repo, cluster: &str, name: &str) -> Result<Option<Vec<u8>>> {
    let Some(head) = read_head(repo, cluster).await? else {
        return Ok(None);
    };
    if parse_segment_name(name, head.segment_size).is_none() {
        return Ok(None);
    }
    let (entry, path) = match repo
        .get_json::<WalEntry>(&entry_path(cluster, name))
        .await?
    {
        Some(e) => (e, segment_path(cluster, name)),
        None => match head.partial {
            Some(p) if p.name == name => {
                let path = partial_path(cluster, name, &p.end_lsn);
                (p, path)
            }
            _ => return Ok(None),
        },
    };
    let stored = read_checked(repo, &entry, &path).await?;
    let mut raw = unpack(&stored, repo.cipher.as_ref(), &path)?;
    if raw.len() as u64 > head.segment_size
        || (!entry.partial && raw.len() as u64 != head.segment_size)
    {
        return Err(Error::definite(format!(
            "WAL segment {name}: {} bytes, the segment size is {}",
            raw.len(),
            head.segment_size
        )));
    }
    raw.resize(head.segment_size as usize, 0);
    Ok(Some(raw))
}

/// A stored WAL object, checked against its entry.
pub(crate) async fn read_checked(repo: &Repo, e: &WalEntry, path: &str) -> Result<Bytes> {
    let hint = "the WAL archive is broken here: restore to a point before it, or take a new physical full backup";
    let Some(b) = repo.storage.get(path).await? else {
        return Err(Error::definite(format!(
            "WAL segment {} is missing from the archive ({path})",
            e.name
        ))
        .with_hint(hint));
    };
    if b.len() as u64 != e.bytes || crate::codec::sha256_hex(&b) != e.sha256 {
        return Err(Error::definite(format!(
            "WAL segment {} is damaged ({path}: size or SHA-256 differs from its index entry)",
            e.name
        ))
        .with_hint(hint));
    }
    Ok(b)
}

/// Archives a PostgreSQL source's WAL from the cluster's physical slot into the
/// repository until `stop` (the physical method of the log backup task; the
/// logical archiver hands `method = physical` requests here). Transient faults
/// (a restarted source, a cut link) are retried, reported as `recovering`.
pub async fn archive_wal(
    repo: &Repo,
    req: &ArchiveRequest,
    mut stop: watch::Receiver<bool>,
    status: &(dyn Fn(&ArchiveStatus) + Sync),
) -> Result<()> {
    let mut st = ArchiveStatus {
        state: ArchiveState::Starting,
        latest_point_us: None,
        position: None,
        pieces: 0,
        recovering: None,
        reason: None,
    };
    status(&st);
    let mut backoff = Duration::from_secs(1);
    loop {
        match archive_once(repo, req, &mut stop, status, &mut st).await {
            Ok(()) => {
                st.state = ArchiveState::Stopped;
                st.recovering = None;
                status(&st);
                return Ok(());
            }
            Err(e) if e.is_transient() && !*stop.borrow() => {
                tracing::warn!(cluster = %req.cluster, error = %e, "WAL archive: retrying");
                st.recovering = Some(e.to_string());
                status(&st);
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = stop.changed() => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(30));
            }
            Err(e) if e.is_transient() => {
                st.state = ArchiveState::Stopped;
                status(&st);
                return Ok(());
            }
            Err(e) => {
                st.state = ArchiveState::Failed;
                st.reason = Some(e.to_string());
                status(&st);
                return Err(e);
            }
        }
    }
}

struct Segment {
    timeline: u32,
    size: u64,
    /// Its first LSN.
    start: u64,
    buf: Vec<u8>,
}

impl Segment {
    fn end(&self) -> u64 {
        self.start + self.buf.len() as u64
    }
    fn name(&self) -> String {
        segment_name(self.timeline, self.start, self.size)
    }
}

async fn archive_once(
    repo: &Repo,
    req: &ArchiveRequest,
    stop: &mut watch::Receiver<bool>,
    status: &(dyn Fn(&ArchiveStatus) + Sync),
    st: &mut ArchiveStatus,
) -> Result<()> {
    let cluster = req.cluster.as_str();
    let mut conn = ReplConn::connect_physical(&req.source).await?;
    let sys = conn.identify_system().await?;
    let slot = slot_name(cluster);
    match conn.create_physical_slot(&slot).await {
        Ok(_) => tracing::info!(cluster, slot = %slot, "created the physical slot"),
        Err(e) if e.message.contains("42710") => {}
        Err(e) => return Err(e),
    }
    // where the slot holds WAL from (CREATE_REPLICATION_SLOT reports 0/0 for a
    // physical slot: ask)
    let rows = conn
        .simple_query(&format!(
            "READ_REPLICATION_SLOT {}",
            ferry_postgres::quote_ident(&slot)
        ))
        .await?;
    let slot_restart = rows
        .first()
        .and_then(|r| r.get(1).cloned().flatten())
        .and_then(|s| ferry_postgres::physical::parse_lsn(&s))
        .filter(|l| *l > 0);
    let head = read_head(repo, cluster).await?;
    let seg = sys.segment_size;
    let start = match &head {
        Some(h) => {
            if h.system_id != sys.system_id {
                return Err(Error::definite(format!(
                    "cluster {cluster}'s WAL archive belongs to database system {} but {} is system {}",
                    h.system_id, req.source, sys.system_id
                ))
                .with_hint("archive each PostgreSQL cluster under its own Ferry cluster name"));
            }
            if h.timeline != sys.timeline {
                return Err(Error::definite(format!(
                    "cluster {cluster}'s WAL archive follows timeline {} but {} is on timeline {} (promoted or restored)",
                    h.timeline, req.source, sys.timeline
                ))
                .with_hint("take a new physical full backup, and archive the new timeline under a new cluster name"));
            }
            let end = super::pos_lsn(&h.end_lsn).unwrap_or(0);
            if let Some(r) = slot_restart {
                if r > end {
                    let reason = format!(
                        "the slot {slot} starts at {} but the archive ends at {}: the WAL between is lost (the slot was dropped and recreated?)",
                        lsn_text(r),
                        h.end_lsn
                    );
                    return Err(Error::definite(format!("cluster {cluster}: {reason}"))
                        .with_hint("points after the break need a new physical full backup"));
                }
            }
            end - end % seg
        }
        None => {
            let from = slot_restart.unwrap_or(sys.xlogpos);
            from - from % seg
        }
    };
    let timeline = sys.timeline;
    let first_segment = head
        .as_ref()
        .map(|h| h.first_segment.clone())
        .unwrap_or_else(|| segment_name(timeline, start, seg));
    let mut head = head.unwrap_or(WalHead {
        system_id: sys.system_id.clone(),
        timeline,
        segment_size: seg,
        first_segment,
        end_lsn: lsn_text(start),
        latest_point_us: None,
        partial: None,
    });
    conn.start_physical(&slot, start, timeline).await?;
    st.state = ArchiveState::Running;
    st.recovering = None;
    st.position = Some(super::lsn_pos(
        super::pos_lsn(&head.end_lsn).unwrap_or(start),
    ));
    st.latest_point_us = head.latest_point_us.or(st.latest_point_us);
    status(st);
    if !req.quiet {
        eprintln!(
            "archiving WAL of {} from {} (slot {slot}, timeline {timeline})",
            req.source,
            lsn_text(start)
        );
    }
    let mut cur = Segment {
        timeline,
        size: seg,
        start,
        buf: Vec::with_capacity(seg as usize),
    };
    // what is durably stored, and the server's state when last heard
    let mut durable = super::pos_lsn(&head.end_lsn).unwrap_or(start).max(start);
    let mut server_end = 0u64;
    let mut server_us: Option<i64> = None;
    let mut tick = tokio::time::interval(Duration::from_secs(req.piece_seconds.max(1)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let msg = tokio::select! {
            m = conn.next_wal() => Some(m?),
            _ = tick.tick() => None,
            _ = stop.changed() => {
                st.state = ArchiveState::Stopping;
                status(st);
                store_partial(repo, cluster, &cur, &mut head, server_end, server_us, &mut durable).await?;
                let _ = conn.send_status(durable).await;
                report(st, &head, status);
                return Ok(());
            }
        };
        match msg {
            Some(WalMsg::Data {
                start: at,
                wal_end,
                server_us: t,
                data,
            }) => {
                if at != cur.end() {
                    return Err(Error::transient(format!(
                        "WAL stream: got bytes at {} but expected {}",
                        lsn_text(at),
                        lsn_text(cur.end())
                    )));
                }
                server_end = server_end.max(wal_end);
                server_us = Some(t);
                let mut d = &data[..];
                while !d.is_empty() {
                    let room = (seg as usize) - cur.buf.len();
                    let n = room.min(d.len());
                    cur.buf.extend_from_slice(&d[..n]);
                    d = &d[n..];
                    if cur.buf.len() as u64 == seg {
                        store_segment(repo, cluster, &cur, &mut head, server_end, server_us)
                            .await?;
                        durable = cur.end();
                        st.pieces += 1;
                        conn.send_status(durable).await?;
                        report(st, &head, status);
                        cur.start = cur.end();
                        cur.buf.clear();
                    }
                }
            }
            Some(WalMsg::Keepalive {
                wal_end,
                server_us: t,
                reply,
            }) => {
                server_end = server_end.max(wal_end);
                server_us = Some(t);
                if wal_end <= durable && head.latest_point_us.is_none_or(|p| p < t) {
                    head.latest_point_us = Some(t);
                    report(st, &head, status);
                }
                if reply {
                    conn.send_status(durable).await?;
                }
            }
            None => {
                if store_partial(
                    repo,
                    cluster,
                    &cur,
                    &mut head,
                    server_end,
                    server_us,
                    &mut durable,
                )
                .await?
                {
                    st.pieces += 1;
                }
                conn.send_status(durable).await?;
                report(st, &head, status);
            }
        }
    }
}

fn report(st: &mut ArchiveStatus, head: &WalHead, status: &(dyn Fn(&ArchiveStatus) + Sync)) {
    st.position = Some(format!("lsn:{}", head.end_lsn));
    st.latest_point_us = head.latest_point_us;
    status(st);
}

/// Stores a complete segment: object, index entry, then the head.
async fn store_segment(
    repo: &Repo,
    cluster: &str,
    cur: &Segment,
    head: &mut WalHead,
    server_end: u64,
    server_us: Option<i64>,
) -> Result<()> {
    let name = cur.name();
    let p = pack(&cur.buf, repo.cipher.as_ref())?;
    let entry = WalEntry {
        name: name.clone(),
        timeline: cur.timeline,
        start_lsn: lsn_text(cur.start),
        end_lsn: lsn_text(cur.end()),
        bytes: p.bytes.len() as u64,
        sha256: p.sha256,
        stored_us: now_us(),
        partial: false,
    };
    repo.storage
        .put(&segment_path(cluster, &name), p.bytes)
        .await?;
    repo.put_json(&entry_path(cluster, &name), &entry).await?;
    head.end_lsn = entry.end_lsn.clone();
    if server_end <= cur.end() {
        head.latest_point_us = server_us.or(head.latest_point_us);
    }
    let old = head.partial.take();
    repo.put_json(&head_path(cluster), head).await?;
    if let Some(o) = old {
        let _ = repo
            .storage
            .delete(&partial_path(cluster, &o.name, &o.end_lsn))
            .await;
    }
    tracing::debug!(cluster, segment = %name, "WAL segment stored");
    Ok(())
}

/// Stores the segment being filled when it holds WAL not yet stored; true when
/// it stored something.
async fn store_partial(
    repo: &Repo,
    cluster: &str,
    cur: &Segment,
    head: &mut WalHead,
    server_end: u64,
    server_us: Option<i64>,
    durable: &mut u64,
) -> Result<bool> {
    if cur.buf.is_empty() || cur.end() <= *durable {
        return Ok(false);
    }
    let name = cur.name();
    let p = pack(&cur.buf, repo.cipher.as_ref())?;
    let entry = WalEntry {
        name: name.clone(),
        timeline: cur.timeline,
        start_lsn: lsn_text(cur.start),
        end_lsn: lsn_text(cur.end()),
        bytes: p.bytes.len() as u64,
        sha256: p.sha256,
        stored_us: now_us(),
        partial: true,
    };
    repo.storage
        .put(&partial_path(cluster, &name, &entry.end_lsn), p.bytes)
        .await?;
    head.end_lsn = entry.end_lsn.clone();
    if server_end <= cur.end() {
        head.latest_point_us = server_us.or(head.latest_point_us);
    }
    let old = head.partial.replace(entry);
    repo.put_json(&head_path(cluster), head).await?;
    if let Some(o) = old {
        let _ = repo
            .storage
            .delete(&partial_path(cluster, &o.name, &o.end_lsn))
            .await;
    }
    *durable = cur.end();
    Ok(true)
}
