//! The archiver: one cluster's change stream into pieces, until stopped.

use super::index::{self, Gap, LogHead, PieceEntry};
use super::piece::PieceWriter;
use crate::repo::Repo;
use ferry_core::change::Event;
use ferry_core::select::ObjectFilter;
use ferry_core::{Endpoint, Error, ErrorKind, Position, Result, TaskSpec};
use ferry_engine::copy::source_tables;
use ferry_engine::{Conn, Role};
use serde::Serialize;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};

/// What to archive.
#[derive(Debug, Clone)]
pub struct ArchiveRequest {
    /// The cluster (backup policy).
    pub cluster: String,
    /// The source database.
    pub source: Endpoint,
    /// Which tables (PostgreSQL: the slot's publication carries them).
    pub objects: ObjectFilter,
    /// `logical` (row changes, restorable into either engine) or `physical`
    /// (PostgreSQL WAL from a physical slot: [`crate::physical`]).
    pub method: String,
    /// A piece is closed (at a transaction end) once it is this old…
    pub piece_seconds: u64,
    /// …or holds this many encoded bytes.
    pub piece_bytes: u64,
    /// No progress lines.
    pub quiet: bool,
}

/// The log backup task's state (seed 004).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ArchiveState {
    /// Connecting, creating the slot, finding where the archive continues.
    Starting,
    /// Archiving.
    Running,
    /// Asked to stop: closing the open piece.
    Stopping,
    /// Stopped (by request).
    Stopped,
    /// Stopped by an error that retrying cannot fix.
    Failed,
}

/// What the archiver reports as it goes.
#[derive(Debug, Clone, Serialize)]
pub struct ArchiveStatus {
    /// Its state.
    pub state: ArchiveState,
    /// The latest backup point (µs since the epoch): every transaction committed
    /// at or before it is durably archived.
    pub latest_point_us: Option<i64>,
    /// The position the archive is complete to.
    pub position: Option<String>,
    /// Pieces stored by this run.
    pub pieces: u64,
    /// While recovering from a transient fault (source restart, cut link): what
    /// happened; `None` when archiving normally.
    pub recovering: Option<String>,
    /// Why it failed.
    pub reason: Option<String>,
}

/// Archives `req.source`'s change stream into `repo` until `stop` turns true
/// (returns `Ok` once the open piece is stored) or an error retrying cannot fix
/// (returns it, after recording a gap when the log was lost). Transient faults are
/// retried with backoff, reported through `status` as `recovering`.
pub async fn run_archive(
    repo: &Repo,
    req: &ArchiveRequest,
    mut stop: watch::Receiver<bool>,
    status: &(dyn Fn(&ArchiveStatus) + Sync),
) -> Result<()> {
    if req.method == "physical" {
        return crate::physical::archive_wal(repo, req, stop, status).await;
    }
    if req.method != "logical" {
        return Err(
            Error::definite(format!("unknown log backup method {:?}", req.method))
                .with_hint("use `logical` (row changes) or `physical` (PostgreSQL WAL)"),
        );
    }
    crate::backup::check_cluster(&req.cluster)?;
    let spec = log_spec(&req.cluster, &req.source, &req.objects);
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
        if *stop.borrow() {
            break;
        }
        let mut progressed = false;
        let r = Attempt::new(repo, req, &spec, &mut st, status)
            .run(&mut stop, &mut progressed)
            .await;
        match r {
            Ok(()) => break,
            Err(e) if e.is_transient() => {
                if progressed {
                    backoff = Duration::from_secs(1);
                }
                st.recovering = Some(e.message.lines().next().unwrap_or_default().to_string());
                status(&st);
                tracing::debug!(cluster = %req.cluster, error = %e, "log archive: retrying");
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = stopped(&mut stop) => {}
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
            Err(e) => {
                st.state = ArchiveState::Failed;
                st.recovering = None;
                st.reason = Some(e.message.clone());
                status(&st);
                return Err(e.context(format!("log backup of cluster {}", req.cluster)));
            }
        }
    }
    st.state = ArchiveState::Stopped;
    st.recovering = None;
    status(&st);
    Ok(())
}

/// The longest wait between two attempts after a transient fault.
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// How often the archive's progress on an idle source is probed and the head
/// rewritten.
const IDLE_EVERY: Duration = Duration::from_secs(1);

/// How long a probe of the source's log end may take before the link counts as
/// broken.
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// The task the archiver reads the source as: `lg-<cluster>` (its own PostgreSQL
/// slot and publication `ferry_lg_<cluster>`, its own binlog reader server id), so
/// that it never competes with the cluster's data backups (`bk-<cluster>`).
pub fn log_spec(cluster: &str, source: &Endpoint, objects: &ObjectFilter) -> TaskSpec {
    let mut spec = crate::backup::cluster_spec(cluster, source, objects, 100_000);
    spec.name = format!("lg-{cluster}");
    spec
}

fn now_us() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

fn rfc_now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Where the stored archive stands.
struct Durable {
    /// Everything before it is archived (or was never wanted).
    end: Position,
    /// The position the next piece continues from (the last piece's end; a new
    /// run's start).
    chain: Position,
    /// The next piece number.
    next_piece: u64,
    /// The latest backup point.
    through_us: i64,
}

/// One connection to the source's log: from the durable end until stopped or an
/// error. A transient error drops what is not stored; the next attempt starts
/// over from the archive as stored.
struct Attempt<'a> {
    repo: &'a Repo,
    req: &'a ArchiveRequest,
    spec: &'a TaskSpec,
    st: &'a mut ArchiveStatus,
    status: &'a (dyn Fn(&ArchiveStatus) + Sync),
}

/// The piece being written and what the stream delivered since the archive's end.
struct Open {
    writer: Option<PieceWriter>,
    opened: Instant,
    /// A `Begin` not yet written: written with the transaction's first change (a
    /// transaction without changes is not stored).
    pending_begin: Option<Event>,
    /// Inside a transaction already in the archive (the stream re-sent it).
    skipping: bool,
    /// A probe's goal and when it was taken: once the archive is durable to the
    /// goal, everything committed before the instant is archived.
    probe_goal: Option<(Position, i64)>,
    head_dirty: bool,
    head_written: Instant,
}

impl<'a> Attempt<'a> {
    fn new(
        repo: &'a Repo,
        req: &'a ArchiveRequest,
        spec: &'a TaskSpec,
        st: &'a mut ArchiveStatus,
        status: &'a (dyn Fn(&ArchiveStatus) + Sync),
    ) -> Attempt<'a> {
        Attempt {
            repo,
            req,
            spec,
            st,
            status,
        }
    }

    fn report(&self) {
        (self.status)(self.st);
    }

    async fn write_head(&self, d: &Durable) -> Result<()> {
        index::put_head(
            self.repo,
            &self.req.cluster,
            &LogHead {
                end: d.end.to_string(),
                archived_through_us: d.through_us,
                next_piece: d.next_piece,
                updated_at: rfc_now(),
                engine: self.req.source.engine.to_string(),
                source: self.req.source.to_string(),
                chain: Some(d.chain.to_string()),
            },
        )
        .await
    }

    /// Finds where the archive continues (starting a new run when it is empty or
    /// broke), then archives.
    async fn run(mut self, stop: &mut watch::Receiver<bool>, progressed: &mut bool) -> Result<()> {
        // connecting and finding the start may take long on a sick source: a stop
        // request does not wait for it (nothing is open yet)
        let (mut d, tables) = tokio::select! {
            r = self.setup() => r?,
            _ = stopped(stop) => return Ok(()),
        };
        self.st.latest_point_us = Some(d.through_us);
        self.st.position = Some(d.end.to_string());
        self.report();
        match self.stream_from(&mut d, tables, stop, progressed).await {
            Err(e) if e.is(ErrorKind::PositionLost) => Err(self.gap(&d.end, d.next_piece, e).await),
            r => r,
        }
    }

    /// Where the archive continues: the stored archive's end, or a new run's start
    /// (a new slot's consistent point, the binlog's end) when it is empty or broke.
    async fn setup(&self) -> Result<(Durable, Vec<ferry_core::Table>)> {
        let cluster = &self.req.cluster;
        let engine = self.req.source.engine;
        let connector = ferry_engine::factory::connector(engine);
        let archive = index::read_archive(self.repo, cluster).await?;
        let mut src = Conn::open(self.spec, Role::Source).await?;
        let tables = source_tables(&mut src, self.spec).await?;
        if engine == ferry_core::Engine::Postgres {
            // refused before anything (publication, slot) is made on the source
            let level = src
                .query_text("SHOW wal_level")
                .await?
                .into_iter()
                .next()
                .and_then(|r| r.into_iter().next().flatten())
                .unwrap_or_default();
            if level != "logical" {
                return Err(Error::definite(format!(
                    "the source runs with wal_level = {level}: the logical log backup reads \
                     logical decoding, which needs wal_level = logical"
                ))
                .with_hint(
                    "set wal_level = logical in postgresql.conf and restart PostgreSQL, or \
                     archive WAL instead with --method physical (wal_level = replica is enough)",
                ));
            }
        }
        drop(src);
        let slot = connector
            .task_slot(self.spec)
            .await
            .map_err(|e| e.context("source"))?;

        let last = archive.pieces.last();
        let head_end = archive
            .head
            .as_ref()
            .and_then(|h| Position::parse(&h.end).ok());
        let last_end = last.and_then(|e| Position::parse(&e.end).ok());
        let end = match (&head_end, &last_end) {
            (Some(h), Some(l)) => Some(if h.reached(l) { h.clone() } else { l.clone() }),
            (h, l) => h.clone().or(l.clone()),
        };
        let next_piece = archive
            .head
            .as_ref()
            .map(|h| h.next_piece)
            .unwrap_or(0)
            .max(last.map(|e| e.piece + 1).unwrap_or(0));
        // a gap before the next piece: the archive broke; a new run starts unless
        // one already did (the head then moved past the gap)
        let broke = archive.gaps.iter().find(|g| g.piece >= next_piece).cloned();
        let new_run = match (&end, &broke) {
            (None, _) => true,
            (Some(e), Some(g)) => Position::parse(&g.after).ok().as_ref() == Some(e),
            _ => false,
        };
        let mut through = archive
            .head
            .as_ref()
            .map(|h| h.archived_through_us)
            .unwrap_or(0)
            .max(last.and_then(|e| e.last_commit_us).unwrap_or(0));

        let d = if new_run {
            // the run starts no earlier than now: taken before its start position
            let started_us = now_us();
            let start = match &slot {
                Some(slot) => {
                    // whatever is left of an earlier slot holds no archived log
                    if slot.state().await?.is_some() {
                        slot.drop_all().await?;
                    }
                    let w = slot.ensure_tables(&tables).await?;
                    for w in w {
                        tracing::warn!(cluster = %cluster, "{w}");
                    }
                    let s = slot.create(false).await?;
                    s.position().clone()
                }
                None => connector.head(self.spec).await?,
            };
            through = started_us;
            let d = Durable {
                end: start.clone(),
                chain: start,
                next_piece,
                through_us: through,
            };
            self.write_head(&d).await?;
            if !self.req.quiet {
                tracing::info!(cluster = %cluster, "log archive starts at {}", d.end);
            }
            d
        } else {
            let end = end.expect("an archive that continues has an end");
            // where the run's next piece continues from: a run without a piece
            // yet continues from its start (the head keeps it), not from where
            // idle time moved the head's end
            let head_chain = archive
                .head
                .as_ref()
                .and_then(|h| h.chain.as_deref())
                .and_then(|c| Position::parse(c).ok());
            let chain = if broke.is_some() {
                // the new run's first piece continues from where it started
                head_chain.unwrap_or_else(|| end.clone())
            } else {
                match (last_end.clone(), head_chain) {
                    (Some(l), Some(h)) if h.reached(&l) => h,
                    (Some(l), _) => l,
                    (None, Some(h)) => h,
                    (None, None) => end.clone(),
                }
            };
            if let Some(slot) = &slot {
                if let Err(e) = slot.verify().await {
                    if e.is(ErrorKind::PositionLost) {
                        return Err(self.gap(&end, next_piece, e).await);
                    }
                    return Err(e);
                }
                slot.sync_tables(&tables).await?;
            }
            Durable {
                end,
                chain,
                next_piece,
                through_us: through,
            }
        };
        Ok((d, tables))
    }

    /// The stream after [`Attempt::setup`].
    async fn stream_from(
        &mut self,
        d: &mut Durable,
        tables: Vec<ferry_core::Table>,
        stop: &mut watch::Receiver<bool>,
        progressed: &mut bool,
    ) -> Result<()> {
        let connector = ferry_engine::factory::connector(self.req.source.engine);

        let (ack_tx, ack_rx) = watch::channel(Some(d.end.clone()));
        let (tx, mut rx) = mpsc::channel::<Event>(4096);
        let start = d.end.clone();
        let stream = connector.stream(
            self.spec,
            &start,
            tables,
            &tx,
            ack_rx,
            ferry_core::change::StreamFeatures::default(),
        );
        let mut open = Open {
            writer: None,
            opened: Instant::now(),
            pending_begin: None,
            skipping: false,
            probe_goal: None,
            head_dirty: false,
            head_written: Instant::now(),
        };
        let r = {
            let consume = self.consume(d, &mut open, &mut rx, &ack_tx, stop, progressed);
            tokio::pin!(consume);
            tokio::select! {
                r = stream => match r {
                    Ok(()) => Err(Error::transient("the source's change stream ended")),
                    Err(e) => Err(e),
                },
                r = &mut consume => r,
            }
        };
        r
    }

    /// Records that the archive broke after `after` (the log there is gone), and
    /// the error that says so.
    async fn gap(&self, after: &Position, piece: u64, e: Error) -> Error {
        let reason = format!(
            "{}; points between {after} and the start of the next run cannot be restored",
            e.message.lines().next().unwrap_or_default()
        );
        let g = Gap {
            piece,
            after: after.to_string(),
            reason: reason.clone(),
            at: rfc_now(),
        };
        if let Err(w) = index::put_gap(self.repo, &self.req.cluster, &g).await {
            return w.context(format!("recording the gap in the archive ({reason})"));
        }
        let mut out = Error::definite(format!(
            "the archive of cluster {} broke: {reason}",
            self.req.cluster
        ))
        .with_kind(ErrorKind::PositionLost)
        .with_hint(
            "take a full backup now (`ferry backup now CLUSTER`): the next log run starts a new \
             restorable window from there; keep the source's log longer than the archiver may be \
             stopped",
        );
        if let Some(h) = e.hint {
            out.hint = Some(format!("{}; {h}", out.hint.unwrap_or_default()));
        }
        out
    }

    /// Takes the stream's events into pieces until stopped.
    async fn consume(
        &mut self,
        d: &mut Durable,
        open: &mut Open,
        rx: &mut mpsc::Receiver<Event>,
        ack: &watch::Sender<Option<Position>>,
        stop: &mut watch::Receiver<bool>,
        progressed: &mut bool,
    ) -> Result<()> {
        let piece_age = Duration::from_secs(self.req.piece_seconds.max(1));
        let piece_bytes = self.req.piece_bytes.max(1);
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut probe: Option<tokio::task::JoinHandle<Result<Position>>> = None;
        let mut probe_at = 0i64;
        let mut last_probe = Instant::now()
            .checked_sub(IDLE_EVERY)
            .unwrap_or_else(Instant::now);
        let mut running = false;
        loop {
            tokio::select! {
                ev = rx.recv() => {
                    let Some(ev) = ev else {
                        return Err(Error::transient("the source's change stream ended"));
                    };
                    if !running {
                        running = true;
                        *progressed = true;
                        self.st.state = ArchiveState::Running;
                        self.st.recovering = None;
                        self.report();
                    }
                    self.event(d, open, ev).await?;
                    if let Some(w) = &open.writer {
                        if !w.in_transaction()
                            && w.txns() > 0
                            && (w.raw_bytes() >= piece_bytes || open.opened.elapsed() >= piece_age)
                        {
                            self.store(d, open, ack).await?;
                        }
                    }
                }
                r = async { probe.as_mut().expect("guarded").await }, if probe.is_some() => {
                    probe = None;
                    let goal = r.map_err(|e| Error::transient(format!("probing the source: {e}")))??;
                    open.probe_goal = Some((goal, probe_at));
                    self.settle_probe(d, open);
                }
                _ = stopped(stop) => {
                    self.st.state = ArchiveState::Stopping;
                    self.report();
                    if let Some(w) = &open.writer {
                        if !w.in_transaction() && w.txns() > 0 {
                            self.store(d, open, ack).await?;
                        }
                    }
                    if open.head_dirty {
                        self.write_head(d).await?;
                    }
                    return Ok(());
                }
                _ = tick.tick() => {
                    if let Some(w) = &open.writer {
                        if !w.in_transaction() && w.txns() > 0 && open.opened.elapsed() >= piece_age {
                            self.store(d, open, ack).await?;
                        }
                    }
                    if probe.is_none() && last_probe.elapsed() >= IDLE_EVERY && open.probe_goal.is_none() {
                        last_probe = Instant::now();
                        probe_at = now_us();
                        let spec = self.spec.clone();
                        probe = Some(tokio::spawn(async move {
                            let c = ferry_engine::factory::connector(spec.source.engine);
                            match tokio::time::timeout(PROBE_TIMEOUT, c.catch_up_goal(&spec)).await {
                                Ok(r) => r,
                                Err(_) => Err(Error::transient(format!(
                                    "the source did not answer within {} s",
                                    PROBE_TIMEOUT.as_secs()
                                ))),
                            }
                        }));
                    }
                    if open.head_dirty && open.head_written.elapsed() >= IDLE_EVERY {
                        self.write_head(d).await?;
                        open.head_dirty = false;
                        open.head_written = Instant::now();
                        ack.send_replace(Some(d.end.clone()));
                        self.st.latest_point_us = Some(d.through_us);
                        self.st.position = Some(d.end.to_string());
                        self.report();
                    }
                }
            }
        }
    }

    /// A probe whose goal the durable archive reached moves the latest backup point
    /// to the probe's instant.
    fn settle_probe(&self, d: &mut Durable, open: &mut Open) {
        if let Some((goal, at)) = &open.probe_goal {
            if d.end.reached(goal) {
                if *at > d.through_us {
                    d.through_us = *at;
                    open.head_dirty = true;
                }
                open.probe_goal = None;
            }
        }
    }

    /// The stream has nothing unstored before `p` (an idle point, an empty
    /// transaction): the archive is complete to it.
    fn idle_to(&self, d: &mut Durable, open: &mut Open, p: &Position, commit_us: Option<i64>) {
        if p.reached(&d.end) && *p != d.end {
            d.end = p.clone();
            open.head_dirty = true;
        }
        if let Some(t) = commit_us {
            if t > d.through_us {
                d.through_us = t;
                open.head_dirty = true;
            }
        }
        self.settle_probe(d, open);
    }

    async fn event(&mut self, d: &mut Durable, open: &mut Open, ev: Event) -> Result<()> {
        match &ev {
            Event::Begin { marker, .. } => {
                // PostgreSQL may re-send a transaction whose commit lies before the
                // archive's end (its marker is the commit's LSN): it is archived
                if let (Some(m @ Position::PgLsn(_)), Position::PgLsn(_)) = (marker, &d.end) {
                    if !m.reached(&d.end) {
                        open.skipping = true;
                        return Ok(());
                    }
                }
                open.skipping = false;
                match &mut open.writer {
                    Some(w) if w.txns() > 0 => w.event(&ev)?,
                    _ => open.pending_begin = Some(ev),
                }
            }
            Event::Commit {
                position,
                commit_time_us,
            } => {
                if open.skipping {
                    open.skipping = false;
                    return Ok(());
                }
                let in_txn = open.writer.as_ref().is_some_and(|w| w.in_transaction());
                if in_txn {
                    open.writer.as_mut().expect("open").event(&ev)?;
                } else if let Some(w) = open.writer.as_mut().filter(|w| w.txns() > 0) {
                    // an empty transaction inside an open piece: kept, so the piece's
                    // end and latest commit move with it
                    let begin = open.pending_begin.take().unwrap_or(Event::Begin {
                        marker: None,
                        xid: None,
                    });
                    w.event(&begin)?;
                    w.event(&ev)?;
                } else {
                    // nothing to store: the archive is complete past it
                    let p = position.clone();
                    self.idle_to(d, open, &p, *commit_time_us);
                }
                open.pending_begin = None;
            }
            Event::Idle { position } => {
                let busy = open
                    .writer
                    .as_ref()
                    .is_some_and(|w| w.txns() > 0 || w.in_transaction())
                    || open.pending_begin.is_some()
                    || open.skipping;
                if !busy {
                    let p = position.clone();
                    self.idle_to(d, open, &p, None);
                }
            }
            _ => {
                if open.skipping {
                    return Ok(());
                }
                let w = open.writer.get_or_insert_with(|| {
                    open.opened = Instant::now();
                    PieceWriter::new()
                });
                if let Some(b) = open.pending_begin.take() {
                    w.event(&b)?;
                }
                w.event(&ev)?;
            }
        }
        Ok(())
    }

    /// Stores the open piece: its bytes, then its entry (now it is archived), then
    /// the head; then the source may release its log up to the piece's end.
    async fn store(
        &mut self,
        d: &mut Durable,
        open: &mut Open,
        ack: &watch::Sender<Option<Position>>,
    ) -> Result<()> {
        let Some(w) = open.writer.take() else {
            return Ok(());
        };
        let Some(end) = w.end().cloned() else {
            return Ok(());
        };
        let (first, last) = w.commit_times();
        let (txns, rows) = (w.txns(), w.rows());
        let packed = w.finish(self.repo.cipher.as_ref())?;
        let n = d.next_piece;
        let cluster = &self.req.cluster;
        let entry = PieceEntry {
            piece: n,
            start: d.chain.to_string(),
            end: end.to_string(),
            first_commit_us: first,
            last_commit_us: last,
            txns,
            rows,
            bytes: packed.bytes.len() as u64,
            raw_bytes: packed.raw_bytes,
            sha256: packed.sha256.clone(),
            stored_at: rfc_now(),
            method: "logical".into(),
            engine: self.req.source.engine.to_string(),
        };
        index::put_piece(self.repo, cluster, n, packed.bytes).await?;
        index::put_entry(self.repo, cluster, &entry).await?;
        d.next_piece = n + 1;
        d.chain = end.clone();
        if end.reached(&d.end) {
            d.end = end;
        }
        if let Some(t) = last {
            d.through_us = d.through_us.max(t);
        }
        self.settle_probe(d, open);
        self.write_head(d).await?;
        open.head_dirty = false;
        open.head_written = Instant::now();
        ack.send_replace(Some(d.end.clone()));
        self.st.pieces += 1;
        self.st.latest_point_us = Some(d.through_us);
        self.st.position = Some(d.end.to_string());
        self.report();
        Ok(())
    }
}

/// Makes a named restore point: the source's current log position, stored as a
/// mark of the cluster. Refuses a name the cluster already has.
pub async fn make_mark(
    repo: &Repo,
    cluster: &str,
    source: &Endpoint,
    name: &str,
) -> Result<super::Mark> {
    crate::backup::check_cluster(cluster)?;
    if !index::valid_mark(name) {
        return Err(
            Error::definite(format!("{name:?} cannot be a mark name")).with_hint(
                "use letters, digits, '.', '-' and '_' (at most 63, not starting with '.')",
            ),
        );
    }
    if repo
        .storage
        .get(&index::mark_path(cluster, name))
        .await?
        .is_some()
    {
        return Err(
            Error::definite(format!("cluster {cluster} already has a mark {name:?}")).with_hint(
                "choose another name (`ferry backup list CLUSTER --kind mark` lists the marks)",
            ),
        );
    }
    let spec = log_spec(cluster, source, &ObjectFilter::default());
    let connector = ferry_engine::factory::connector(source.engine);
    let time_us = now_us();
    let position = connector
        .catch_up_goal(&spec)
        .await
        .map_err(|e| e.context("reading the source's log position"))?;
    let m = super::Mark {
        name: name.to_string(),
        position: position.to_string(),
        time_us,
        at: rfc_now(),
    };
    index::put_mark(repo, cluster, &m).await?;
    Ok(m)
}

/// Resolves once `stop` turns true (or its sender is gone). The watch's guard is
/// dropped inside, so the archiver's future stays `Send` (the service runs it as
/// an ordinary task).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// The archiver runs as an ordinary tokio task: its future must be `Send`.
#[allow(dead_code)]
fn archiver_is_send(
    repo: &Repo,
    req: &ArchiveRequest,
    stop: watch::Receiver<bool>,
    status: &(dyn Fn(&ArchiveStatus) + Sync),
) {
    fn send<T: Send>(_: T) {}
    send(run_archive(repo, req, stop, status));
}
