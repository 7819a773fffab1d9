//! A full set: one consistent snapshot of the selected tables, read in parallel
//! key-range chunks, each chunk stored as files of at most [`codec::PART_BYTES`]
//! of encoded rows, with a per-table digest; the manifest last.
//!
//! An interrupted full backup resumes: the next run of the cluster finds the set
//! without a manifest, keeps every chunk whose files are stored and check out
//! (size and SHA-256), reads the other chunks at a new snapshot and stores the net
//! changes the log holds between the first snapshot and the new one, so the set is
//! consistent at the new snapshot's position.

use super::changes::{self, NetChanges};
use super::{
    digest_hex, new_set, now_unix, server_version, BackupReport, BackupRequest, PlannedChunk,
    ProgressRecord,
};
use crate::codec::{self, FileWriter};
use crate::layout;
use crate::manifest::{FileEntry, FileKind, Manifest, SetKind, TableEntry};
use crate::repo::Repo;
use ferry_connector::{Connection, ReadFormat, SlotStart};
use ferry_core::canonical::Digest;
use ferry_core::chunk::{split_range, Batch, KeyRange};
use ferry_core::{Error, ErrorKind, LogicalType, Position, Result, Table, TaskSpec};
use ferry_engine::copy::source_tables;
use ferry_engine::{Conn, Role};
use std::collections::VecDeque;
use std::sync::Arc;
use tokio::sync::{mpsc, Mutex};

/// Rows per batch from a chunk reader.
const BATCH_ROWS: usize = 1000;
/// Batches in flight between a chunk reader and its file writer.
const CHANNEL_DEPTH: usize = 4;

/// What a worker needs of one table.
struct TableCtx {
    table: Table,
    types: Vec<LogicalType>,
    key: Option<String>,
}

/// Shared by the workers.
struct Shared {
    repo: Repo,
    cluster: String,
    set: String,
    tables: Vec<TableCtx>,
    record: Mutex<ProgressRecord>,
    queue: std::sync::Mutex<VecDeque<PlannedChunk>>,
}

/// Takes a full backup (or resumes the cluster's interrupted one).
pub(super) async fn run(repo: &Repo, req: &BackupRequest, spec: &TaskSpec) -> Result<BackupReport> {
    let engine = req.source.engine;
    let connector = ferry_engine::factory::connector(engine);
    let mut src = Conn::open(spec, Role::Source).await?;
    let tables = source_tables(&mut src, spec).await?;
    let version = server_version(&mut src).await;
    let mut create_texts = Vec::with_capacity(tables.len());
    for t in &tables {
        create_texts.push(connector.create_text(&mut *src, &t.id, engine).await?);
    }
    let names: Vec<String> = tables.iter().map(|t| t.id.to_string()).collect();
    let mut warnings = Vec::new();

    let mut prior = resumable(repo, req, &names, &mut warnings).await?;
    let slot = connector
        .task_slot(spec)
        .await
        .map_err(|e| e.context("source"))?;
    if let (Some(slot), Some(p)) = (&slot, &prior) {
        if let Err(e) = slot.verify().await {
            warnings.push(format!(
                "the interrupted set {} cannot be resumed ({e}); a new set is taken",
                p.set
            ));
            repo.delete_set(&req.cluster, &p.set).await?;
            prior = None;
        }
    }
    // PostgreSQL: the snapshot comes from the cluster's slot as it is created (the
    // slot then holds the log from exactly there); a resumed set's new snapshot
    // from a temporary slot beside it
    let start: Option<Box<dyn SlotStart>> = match &slot {
        Some(slot) => {
            if prior.is_none() && slot.state().await?.is_some() {
                slot.drop_all().await?;
            }
            let anchor = async {
                let w = slot.ensure_tables(&tables).await?;
                Ok::<_, Error>((w, slot.create(prior.is_some()).await?))
            };
            match anchor.await {
                Ok((w, s)) => {
                    warnings.extend(w);
                    Some(s)
                }
                // a full backup needs no log: without logical decoding (or the
                // privilege to use it) the set is a plain snapshot with no log
                // position — complete and restorable, but no incremental continues it
                Err(e) if no_logical_decoding(&e) => {
                    let _ = slot.drop_all().await;
                    warnings.push(format!(
                        "the source cannot keep a log anchor for cluster {} ({}): this set \
                         has no log position, so no incremental can continue it and an \
                         interrupted backup starts over; for incrementals set wal_level = \
                         logical and grant REPLICATION",
                        req.cluster,
                        e.message.lines().next().unwrap_or_default()
                    ));
                    if let Some(p) = prior.take() {
                        discard(repo, &req.cluster, &p.set, &mut warnings).await?;
                    }
                    None
                }
                Err(e) => return Err(e),
            }
        }
        None => None,
    };
    let anchored = slot.is_none() || start.is_some();

    let jobs = req.jobs.max(1);
    let mut workers = Vec::with_capacity(jobs);
    for _ in 0..jobs {
        workers.push(Conn::open(spec, Role::Source).await?);
    }
    let snapshot = {
        let mut ws: Vec<&mut dyn Connection> = workers.iter_mut().map(|w| &mut **w).collect();
        let handoff = start.as_ref().map(|s| (s.snapshot(), s.position()));
        src.open_snapshot(&mut ws, handoff).await?
    };
    workers.truncate(snapshot.workers.max(1));
    warnings.extend(snapshot.warnings);
    let position: Option<Position> = if anchored {
        snapshot
            .position
            .or_else(|| start.as_ref().map(|s| s.position().clone()))
    } else {
        None
    };
    if position.is_none() {
        // chunks of two snapshots are consistent only with the log between them
        if let Some(p) = prior.take() {
            discard(repo, &req.cluster, &p.set, &mut warnings).await?;
        }
    }
    let consistent_at = layout::rfc3339(now_unix());

    let ctxs: Vec<TableCtx> = tables
        .iter()
        .map(|t| TableCtx {
            types: t.copied_columns().map(|c| c.logical.clone()).collect(),
            key: t.integer_key().map(|c| c.name.clone()),
            table: t.clone(),
        })
        .collect();

    let mut files_reused = 0;
    let (record, resumed) = match prior {
        Some(mut p) => {
            files_reused = keep_checked_chunks(repo, &mut p, &req.cluster).await;
            repo.put_json(&layout::progress(&req.cluster, &p.set), &p)
                .await?;
            (p, true)
        }
        None => {
            let set = new_set(SetKind::Full);
            let mut plan = Vec::new();
            for (i, c) in ctxs.iter().enumerate() {
                let (count, bounds) = workers[0].key_stats(&c.table.id, c.key.as_deref()).await?;
                match (&c.key, bounds) {
                    (Some(k), Some((lo, hi))) => {
                        for (n, r) in split_range(k, lo, hi, count, req.chunk_rows)
                            .into_iter()
                            .enumerate()
                        {
                            plan.push(planned(i, n as u32, r.lo, r.hi));
                        }
                    }
                    _ => plan.push(planned(i, 0, None, None)),
                }
            }
            let p = ProgressRecord {
                set,
                cluster: req.cluster.clone(),
                kind: SetKind::Full,
                started_at: layout::rfc3339(now_unix()),
                engine: engine.to_string(),
                first_position: position.as_ref().map(|p| p.to_string()),
                tables: names.clone(),
                plan,
                files: Vec::new(),
            };
            repo.put_json(&layout::progress(&req.cluster, &p.set), &p)
                .await?;
            (p, false)
        }
    };
    let set = record.set.clone();
    if !req.quiet {
        eprintln!(
            "{} set {set} of cluster {}: {} tables, {} chunks{}",
            if resumed { "resuming" } else { "taking" },
            req.cluster,
            tables.len(),
            record.plan.len(),
            if resumed {
                format!(
                    ", {} already stored",
                    record.plan.iter().filter(|c| c.done).count()
                )
            } else {
                String::new()
            }
        );
    }

    // the chunks, in parallel
    let shared = Arc::new(Shared {
        repo: repo.clone(),
        cluster: req.cluster.clone(),
        set: set.clone(),
        queue: std::sync::Mutex::new(record.plan.iter().filter(|c| !c.done).cloned().collect()),
        tables: ctxs,
        record: Mutex::new(record),
    });
    let mut handles = tokio::task::JoinSet::new();
    for w in workers {
        let shared = shared.clone();
        handles.spawn(worker(w, shared));
    }
    let mut first_error = None;
    while let Some(r) = handles.join_next().await {
        let r = match r {
            Ok(r) => r,
            Err(j) => Err(Error::definite(format!("a backup worker crashed: {j}"))),
        };
        if let Err(e) = r {
            if first_error.is_none() {
                first_error = Some(e);
                handles.abort_all();
            }
        }
    }
    drop(start);
    drop(src);
    if let Some(e) = first_error {
        return Err(e.with_hint(
            "fix the cause and run the same backup again: the files already stored are \
             reused and the set is completed",
        ));
    }
    let record = shared.record.lock().await.clone();

    // per table: rows and digest of the chunks
    let mut entries: Vec<TableEntry> = Vec::with_capacity(tables.len());
    for (i, (t, ct)) in tables.iter().zip(create_texts).enumerate() {
        let mut d = Digest::default();
        let mut ok = true;
        for c in record.plan.iter().filter(|c| c.table == i) {
            match c
                .digest
                .as_deref()
                .and_then(|h| u128::from_str_radix(h, 16).ok())
            {
                Some(sum) => d.merge(Digest { rows: c.rows, sum }),
                None => ok = false,
            }
        }
        entries.push(TableEntry {
            table: t.clone(),
            create_text: ct,
            rows: d.rows,
            digest: ok.then(|| digest_hex(&d)),
        });
    }
    let mut files = record.files.clone();
    files.sort_by(|a, b| (a.table, &a.path).cmp(&(b.table, &b.path)));

    // a resumed set: the changes between the first snapshot and this one
    let mut end = position.clone();
    if resumed {
        let first = record
            .first_position
            .as_deref()
            .map(Position::parse)
            .transpose()?;
        if let (Some(first), Some(goal)) = (first, &position) {
            let net = NetChanges::new(changes::Target {
                repo,
                cluster: &req.cluster,
                set: &set,
                tables: &tables,
            });
            match net {
                Ok(net) => {
                    let read = changes::read_log(spec, &first, goal, net).await?;
                    for (i, n) in read.changes.iter().enumerate() {
                        if *n > 0 {
                            // the rows are those of the digest's snapshot plus
                            // changes: the digest no longer describes them
                            entries[i].digest = None;
                        }
                    }
                    files.extend(read.files);
                    end = Some(read.position);
                }
                Err(e) => {
                    return Err(e.with_hint(
                        "an interrupted full backup of a table without a primary key cannot be \
                         completed from the log: run the backup again after deleting the \
                         incomplete set, or add a primary key",
                    ))
                }
            }
        }
    }

    let manifest = Manifest {
        format: layout::FORMAT,
        id: set.clone(),
        cluster: req.cluster.clone(),
        kind: SetKind::Full,
        method: "logical".into(),
        parent: None,
        chain: set.clone(),
        engine: engine.to_string(),
        server_version: version,
        source: req.source.to_string(),
        start_position: None,
        position: end.as_ref().map(|p| p.to_string()),
        consistent_at: Some(if resumed {
            layout::rfc3339(now_unix())
        } else {
            consistent_at
        }),
        started_at: record.started_at.clone(),
        finished_at: layout::rfc3339(now_unix()),
        encrypted: repo.cipher.is_some(),
        compression: "zstd".into(),
        tables: entries,
        files,
    };
    repo.write_manifest(&manifest).await?;
    if let (Some(slot), Some(end)) = (&slot, &end) {
        if let Err(e) = slot.advance(end).await {
            warnings.push(format!("{e}"));
        }
    }
    Ok(BackupReport {
        manifest,
        resumed,
        files_reused,
        warnings,
    })
}

fn planned(table: usize, chunk: u32, lo: Option<i128>, hi: Option<i128>) -> PlannedChunk {
    PlannedChunk {
        table,
        chunk,
        lo,
        hi,
        done: false,
        rows: 0,
        digest: None,
    }
}

/// The cluster's interrupted full set that this run can resume, if any. Other
/// incomplete sets of the cluster (an incremental that died, a set of other
/// tables) are removed: nothing can complete them.
async fn resumable(
    repo: &Repo,
    req: &BackupRequest,
    names: &[String],
    warnings: &mut Vec<String>,
) -> Result<Option<ProgressRecord>> {
    let mut best: Option<ProgressRecord> = None;
    for (cluster, set) in repo.incomplete_sets(Some(&req.cluster)).await? {
        let record: Option<ProgressRecord> = repo
            .get_json(&layout::progress(&cluster, &set))
            .await
            .unwrap_or(None);
        let usable = record.filter(|p| {
            p.kind == SetKind::Full
                && p.engine == req.source.engine.to_string()
                && p.tables == names
                && p.first_position.is_some()
        });
        match usable {
            Some(p) => {
                if let Some(old) = best.replace(p) {
                    discard(repo, &cluster, &old.set, warnings).await?;
                }
            }
            None => discard(repo, &cluster, &set, warnings).await?,
        }
    }
    Ok(best)
}

/// Whether a slot could not be created because the source does not decode its log
/// logically (`wal_level` below `logical`) or the user may not.
fn no_logical_decoding(e: &Error) -> bool {
    e.is(ErrorKind::NoPrivilege) || e.message.contains("wal_level")
}

async fn discard(repo: &Repo, cluster: &str, set: &str, warnings: &mut Vec<String>) -> Result<()> {
    warnings.push(format!(
        "removed the incomplete set {set} of an earlier run that cannot be resumed"
    ));
    repo.delete_set(cluster, set).await
}

/// Keeps the done chunks of `p` whose every file is stored intact (size and
/// SHA-256 as recorded); the others are read again. Returns the files kept.
async fn keep_checked_chunks(repo: &Repo, p: &mut ProgressRecord, cluster: &str) -> usize {
    let probe = Manifest {
        format: layout::FORMAT,
        id: p.set.clone(),
        cluster: cluster.to_string(),
        kind: SetKind::Full,
        method: "logical".into(),
        parent: None,
        chain: p.set.clone(),
        engine: p.engine.clone(),
        server_version: String::new(),
        source: String::new(),
        start_position: None,
        position: None,
        consistent_at: None,
        started_at: p.started_at.clone(),
        finished_at: String::new(),
        encrypted: repo.cipher.is_some(),
        compression: "zstd".into(),
        tables: Vec::new(),
        files: Vec::new(),
    };
    let mut kept = Vec::new();
    for c in p.plan.iter_mut() {
        let prefix = chunk_prefix(c);
        let files: Vec<&FileEntry> = p
            .files
            .iter()
            .filter(|f| f.path.starts_with(&prefix))
            .collect();
        let mut ok = c.done;
        if ok {
            for f in &files {
                if repo.read_file(&probe, f).await.is_err() {
                    tracing::warn!("{}: not intact, its chunk is read again", f.path);
                    ok = false;
                    break;
                }
            }
        }
        if ok {
            kept.extend(files.into_iter().cloned());
        } else {
            c.done = false;
            c.rows = 0;
            c.digest = None;
        }
    }
    p.files = kept;
    p.files.len()
}

/// The path prefix of a chunk's part files.
fn chunk_prefix(c: &PlannedChunk) -> String {
    let first = layout::data_file(c.table, c.chunk, 0);
    first[..first.rfind('-').map_or(first.len(), |i| i + 1)].to_string()
}

/// One reader session: takes chunks until none is left.
async fn worker(mut w: Conn, shared: Arc<Shared>) -> Result<()> {
    loop {
        let next = shared
            .queue
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pop_front();
        let Some(mut chunk) = next else {
            return Ok(());
        };
        let ctx = &shared.tables[chunk.table];
        let (rows, digest, files) = read_chunk(&mut w, &shared, ctx, &chunk)
            .await
            .map_err(|e| e.context(format!("{} (chunk {})", ctx.table.id, chunk.chunk)))?;
        chunk.done = true;
        chunk.rows = rows;
        chunk.digest = Some(digest_hex(&digest));
        let mut record = shared.record.lock().await;
        if let Some(c) = record
            .plan
            .iter_mut()
            .find(|c| c.table == chunk.table && c.chunk == chunk.chunk)
        {
            *c = chunk;
        }
        record.files.extend(files);
        shared
            .repo
            .put_json(&layout::progress(&shared.cluster, &shared.set), &*record)
            .await?;
    }
}

/// Reads one chunk into part files; its rows, digest and files.
async fn read_chunk(
    w: &mut Conn,
    shared: &Shared,
    ctx: &TableCtx,
    chunk: &PlannedChunk,
) -> Result<(u64, Digest, Vec<FileEntry>)> {
    let range = ctx.key.as_ref().and_then(|k| {
        (chunk.lo.is_some() || chunk.hi.is_some()).then(|| KeyRange {
            column: k.clone(),
            lo: chunk.lo,
            hi: chunk.hi,
        })
    });
    let (tx, mut rx) = mpsc::channel::<Batch>(CHANNEL_DEPTH);
    let read = async {
        let r = w
            .read_chunk(
                &ctx.table,
                range.as_ref(),
                ReadFormat::Rows,
                &tx,
                BATCH_ROWS,
            )
            .await;
        drop(tx);
        r
    };
    let write = async {
        let refs: Vec<&LogicalType> = ctx.types.iter().collect();
        let mut buf = Vec::new();
        let mut digest = Digest::default();
        let mut files = Vec::new();
        let mut part = 0u32;
        let mut writer = FileWriter::rows();
        while let Some(batch) = rx.recv().await {
            let Batch::Rows(rows) = batch else {
                return Err(Error::definite("the reader sent raw bytes for a backup"));
            };
            for r in &rows {
                digest.add_row(r, &refs, &mut buf);
            }
            writer.add_rows(&rows)?;
            if writer.raw_bytes() >= codec::PART_BYTES {
                let full = std::mem::replace(&mut writer, FileWriter::rows());
                files.push(store(shared, chunk, part, full).await?);
                part += 1;
            }
        }
        if writer.count() > 0 {
            files.push(store(shared, chunk, part, writer).await?);
        }
        Ok((digest, files))
    };
    let (r, wr) = tokio::join!(read, write);
    // the writer's error says why a reader stopped
    let (digest, files) = wr?;
    r?;
    Ok((digest.rows, digest, files))
}

/// Finishes and stores one part file.
async fn store(
    shared: &Shared,
    chunk: &PlannedChunk,
    part: u32,
    writer: FileWriter,
) -> Result<FileEntry> {
    let packed = writer.finish(shared.repo.cipher.as_ref())?;
    let path = layout::data_file(chunk.table, chunk.chunk, part);
    let bytes = packed.bytes.len() as u64;
    shared
        .repo
        .put_file(&shared.cluster, &shared.set, &path, packed.bytes)
        .await?;
    Ok(FileEntry {
        path,
        table: chunk.table,
        kind: FileKind::Data,
        lo: chunk.lo.map(|v| v.to_string()),
        hi: chunk.hi.map(|v| v.to_string()),
        rows: packed.count,
        bytes,
        raw_bytes: packed.raw_bytes,
        sha256: packed.sha256,
    })
}
