//! The full (snapshot) phase of a task: schema, consistent snapshot, parallel chunked
//! copy with per-chunk checkpoints, keys and indexes after the data, foreign keys last.
//!
//! Restarting after a crash resumes: the chunk plan, the snapshot position and each
//! chunk's "done" mark live on the target (see [`crate::checkpoint`]), so finished
//! chunks are never copied twice and unfinished ones were rolled back whole.

pub mod chunk;
pub(crate) mod progress;

use crate::checkpoint;
use crate::checkpoint::{CheckpointStore, TableStage, TaskPhase, TaskRecord};
use crate::conn::{Conn, Role};
use crate::copy::chunk::{copy_chunk, validate_chunk, TableJob};
use crate::copy::progress::{Progress, TableProgress};
use crate::schema::mapping::{Ddl, NameMap};
use crate::schema::{
    build_keys, create_table, finish_after_data, make_room, missing_extensions, plan_all,
    target_name_clashes, Keys, Room,
};
use ferry_core::chunk::{split_range, Chunk};
use ferry_core::{Error, ExistingData, Position, Result, Table, TableId, TaskSpec};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How to run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Parallel copy workers.
    pub jobs: usize,
    /// No progress bars or periodic lines.
    pub quiet: bool,
    /// Run `ferry check`'s checks first and stop on a failure, before anything is
    /// created on either side (off for restarts of a task that already started).
    pub precheck: bool,
    /// This run's claim on the task (shared with its stream's options).
    pub claim: checkpoint::Claim,
    /// The task's copy speed limit, shared by every copy worker (and changed in
    /// place when the user edits a running task's limit).
    pub copy_throttle: Arc<crate::throttle::Throttle>,
}

/// Outcome of one table.
#[derive(Debug, Clone)]
pub struct TableSummary {
    /// Target table.
    pub name: String,
    /// Rows now on the target from this task.
    pub rows: u64,
    /// Approximate source size.
    pub bytes: u64,
    /// Seconds spent copying in this run.
    pub seconds: f64,
    /// Rows copied in this run per second of `seconds` (what the progress bar shows
    /// once the table is done).
    pub rate: f64,
}

/// Outcome of the run.
#[derive(Debug, Clone)]
pub struct Summary {
    /// Per table.
    pub tables: Vec<TableSummary>,
    /// Rows copied in this run.
    pub rows_this_run: u64,
    /// Wall time of this run.
    pub seconds: f64,
    /// Source position of the snapshot (where the incremental phase starts).
    pub position: Option<String>,
    /// Resumed an interrupted run.
    pub resumed: bool,
    /// Chunks skipped because an earlier run had committed them.
    pub chunks_skipped: usize,
    /// What could not be carried over.
    pub warnings: Vec<String>,
}

/// Default worker count: the machine's cores, at least 2.
pub fn default_jobs() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
        .clamp(2, 8)
}

/// Reads the selected source tables, failing when none match.
pub async fn source_tables(src: &mut Conn, spec: &TaskSpec) -> Result<Vec<Table>> {
    let tables = src
        .tables(&spec.objects, spec.source.database.as_deref())
        .await?;
    if tables.is_empty() {
        return Err(Error::definite(format!("no source table matches the task's objects ({})", spec.source))
            .with_hint("check objects.include / objects.exclude; for MySQL/MariaDB the schema is the database name"));
    }
    let unmatched = spec
        .objects
        .unmatched_includes(tables.iter().map(|t| &t.id));
    if !unmatched.is_empty() {
        return Err(Error::definite(format!(
            "objects.include pattern{} {} select{} no source table ({})",
            if unmatched.len() == 1 { "" } else { "s" },
            unmatched
                .iter()
                .map(|p| format!("{p:?}"))
                .collect::<Vec<_>>()
                .join(", "),
            if unmatched.len() == 1 { "s" } else { "" },
            spec.source
        ))
        .with_hint(
            "fix or remove the pattern (objects.exclude may hide its tables); a schema or \
             table name that contains a dot goes in double quotes: '\"a.b\".*'",
        ));
    }
    Ok(tables)
}

/// A snapshot prepared by the caller (PostgreSQL: exported by the task's replication
/// slot as it was created), so the copy and the change stream meet exactly.
#[derive(Debug, Clone)]
pub struct Handoff {
    /// Exported snapshot id every worker joins.
    pub snapshot: String,
    /// The log position the snapshot corresponds to.
    pub position: Position,
}

/// Runs the full phase of `spec` (from `handoff`'s snapshot when given).
pub async fn run_full(
    spec: &TaskSpec,
    opts: &RunOptions,
    handoff: Option<&Handoff>,
) -> Result<Summary> {
    let (from, to) = (spec.source.engine, spec.target.engine);
    let mut src = Conn::open(spec, Role::Source).await?;
    let mut dst = Conn::open(spec, Role::Target).await?;
    dst.ensure().await?;
    // from here on an earlier run of the task commits nothing more
    let fence = checkpoint::Fence::claim(&mut dst, &spec.name, &opts.claim).await?;
    checkpoint::end_fenced_writers(&mut dst, &spec.name).await?;
    let prior = dst.task(&spec.name).await?;
    let resuming = match &prior {
        Some(r) if r.phase == TaskPhase::Done => {
            if matches!(
                spec.existing_data,
                ExistingData::Drop | ExistingData::Truncate
            ) {
                fence.verify(&mut dst).await?;
                dst.reset(&spec.name).await?;
                false
            } else {
                return Err(Error::definite(format!(
                    "task {} has already copied its full snapshot to {}",
                    spec.name, spec.target
                ))
                .with_hint("verify it with `ferry compare`; to copy everything again set existing_data: drop"));
            }
        }
        Some(_) => true,
        None => false,
    };
    let tables = source_tables(&mut src, spec).await?;
    let names = NameMap::new(spec, &tables);
    let ddls = plan_all(&mut src, spec, &tables, &names).await?;
    target_name_clashes(&mut dst, &tables, &names).await?;
    missing_extensions(&mut dst, &tables).await?;
    let mut warnings: Vec<String> = ddls.iter().flat_map(|d| d.warnings.clone()).collect();
    let mut stages = dst.stages(&spec.name).await?;

    if !resuming {
        // emptying and dropping: never for a run another one has replaced
        fence.verify(&mut dst).await?;
        dst.reset(&spec.name).await?;
        stages.clear();
        let mut refused = Vec::new();
        let targets: Vec<TableId> = tables.iter().map(|t| names.target(&t.id)).collect();
        let rooms = make_room(&mut dst, spec.existing_data, &targets, &targets).await?;
        for (target, room) in targets.iter().zip(rooms) {
            match room {
                Room::Free => {}
                Room::Kept => {
                    // recorded, so that a resumed copy neither recreates it nor
                    // trips over the keys it has
                    dst.set_stage(&spec.name, target, TableStage::Kept).await?;
                    stages.insert(target.to_string(), TableStage::Kept);
                }
                Room::Refused(why) => refused.push(why),
            }
        }
        if !refused.is_empty() {
            return Err(Error::definite(format!(
                "the target already has tables this task would create: {}",
                refused.join(", ")
            ))
            .with_hint("set existing_data: drop (recreate), truncate (empty them), or append (keep rows) in the task file"));
        }
    }

    // one consistent snapshot for every worker
    let jobs = opts.jobs.max(1);
    let mut workers = Vec::with_capacity(jobs);
    for _ in 0..jobs {
        workers.push(Conn::open(spec, Role::Source).await?);
    }
    let snapshot = {
        let mut ws: Vec<&mut dyn ferry_connector::Connection> =
            workers.iter_mut().map(|w| &mut **w).collect();
        let handoff = handoff.map(|h| (h.snapshot.as_str(), &h.position));
        src.open_snapshot(&mut ws, handoff).await?
    };
    workers.truncate(snapshot.workers);
    warnings.extend(snapshot.warnings);
    let position: Option<Position> = snapshot.position;

    // the chunk plan: stored on the first run, reused on resume
    let mut progress = Progress::new(opts.quiet);
    let mut totals: HashMap<TableId, u64> = HashMap::new();
    let chunks: Vec<Chunk> = if resuming {
        let plan = dst.load_plan(&spec.name).await?;
        for t in &tables {
            totals.insert(names.target(&t.id), t.estimated_rows);
        }
        plan
    } else {
        let mut plan = Vec::new();
        for t in &tables {
            let key = t.integer_key().map(|c| c.name.clone());
            let (count, bounds) = workers[0].key_stats(&t.id, key.as_deref()).await?;
            let target = names.target(&t.id);
            totals.insert(target.clone(), count);
            let ranges = match (key, bounds) {
                (Some(k), Some((lo, hi))) => split_range(
                    &k,
                    lo,
                    hi,
                    count,
                    balanced_chunk_rows(count, spec.chunk_rows, jobs),
                )
                .into_iter()
                .map(Some)
                .collect(),
                _ => vec![None],
            };
            for (i, range) in ranges.into_iter().enumerate() {
                plan.push(Chunk {
                    source: t.id.clone(),
                    target: target.clone(),
                    index: i as u32,
                    range,
                    done: false,
                    rows: 0,
                });
            }
        }
        dst.save_plan(&spec.name, &plan).await?;
        dst.set_task(&spec.name, TaskPhase::Full, position.as_ref())
            .await?;
        plan
    };
    let position_text = match (&prior, resuming) {
        (
            Some(TaskRecord {
                position: Some(p), ..
            }),
            true,
        ) => Some(p.to_string()),
        _ => position.as_ref().map(|p| p.to_string()),
    };

    // tables
    let mut table_jobs: HashMap<TableId, TableJob> = HashMap::new();
    let mut post: HashMap<TableId, Ddl> = HashMap::new();
    let mut table_progress: HashMap<TableId, Arc<TableProgress>> = HashMap::new();
    fence.verify(&mut dst).await?;
    for (t, ddl) in tables.iter().zip(&ddls) {
        let target = names.target(&t.id);
        if let std::collections::btree_map::Entry::Vacant(e) = stages.entry(target.to_string()) {
            create_table(&mut dst, &target, ddl, Keys::AfterData).await?;
            dst.set_stage(&spec.name, &target, TableStage::Created)
                .await?;
            e.insert(TableStage::Created);
        }
        let already: u64 = chunks
            .iter()
            .filter(|c| c.target == target && c.done)
            .map(|c| c.rows)
            .sum();
        let total = totals.get(&target).copied().unwrap_or(0).max(already);
        let tp = progress.table(&target.to_string(), total, already);
        table_progress.insert(target.clone(), tp);
        let mut job = TableJob::new(t.clone(), target.clone(), from, to);
        job.throttle = opts.copy_throttle.clone();
        if resuming {
            job.watermark = position.as_ref().map(|p| p.to_string());
            tracing::info!(
                "{target}: remaining chunks read at {}",
                job.watermark.as_deref().unwrap_or("?")
            );
        }
        table_jobs.insert(target.clone(), job);
        post.insert(target, ddl.clone());
    }
    for c in &chunks {
        let job = table_jobs.get(&c.target).ok_or_else(|| {
            Error::definite(format!("the saved copy plan names {} which is no longer selected", c.source))
                .with_hint("the task's objects changed since the interrupted run; start over with existing_data: drop")
        })?;
        validate_chunk(job, c)?;
    }
    let chunks_skipped = chunks.iter().filter(|c| c.done).count();
    let mut remaining: HashMap<TableId, usize> = HashMap::new();
    for c in chunks.iter().filter(|c| !c.done) {
        *remaining.entry(c.target.clone()).or_default() += 1;
    }
    let progress = Arc::new(progress);
    let logger =
        (!opts.quiet && !progress.has_bars()).then(|| progress.log_loop(Duration::from_secs(5)));

    // copy
    let queue: Arc<Mutex<VecDeque<Chunk>>> = Arc::new(Mutex::new(
        chunks.iter().filter(|c| !c.done).cloned().collect(),
    ));
    let remaining = Arc::new(Mutex::new(remaining));
    let table_jobs = Arc::new(table_jobs);
    let post = Arc::new(post);
    // tables kept by existing_data: truncate | append may have their keys already
    let kept: Arc<std::collections::HashSet<String>> = Arc::new(
        stages
            .iter()
            .filter(|(_, s)| **s == TableStage::Kept)
            .map(|(t, _)| t.clone())
            .collect(),
    );
    let table_progress = Arc::new(table_progress);
    let stop = Arc::new(AtomicBool::new(false));
    let fence = Arc::new(fence);
    let mut handles = Vec::new();
    for (slot, mut w) in workers.into_iter().enumerate() {
        let mut target = Conn::open(spec, Role::Target).await?;
        // the foreign keys of tables kept by `existing_data: truncate | append` hold
        // on the source already; chunks of parents and children load in any order
        begin_bulk_session(&mut target, spec).await?;
        target.join_writers(&spec.name, Some(slot)).await?;
        let kept = kept.clone();
        let (queue, remaining, table_jobs, post, table_progress, stop, fence) = (
            queue.clone(),
            remaining.clone(),
            table_jobs.clone(),
            post.clone(),
            table_progress.clone(),
            stop.clone(),
            fence.clone(),
        );
        handles.push(crate::abort_on_drop::AbortOnDrop::spawn(async move {
            let mut copied = 0u64;
            loop {
                if stop.load(Ordering::Relaxed) {
                    return Ok(copied);
                }
                let Some(chunk) = queue.lock().unwrap_or_else(|p| p.into_inner()).pop_front()
                else {
                    return Ok(copied);
                };
                let job = &table_jobs[&chunk.target];
                let tp = &table_progress[&chunk.target];
                tp.start();
                let streamed = std::sync::atomic::AtomicU64::new(0);
                let on_rows = |n: u64| {
                    streamed.fetch_add(n, Ordering::Relaxed);
                    tp.streaming(n);
                };
                let rows =
                    match copy_chunk(&mut w, &mut target, job, &chunk, &fence, &on_rows).await {
                        Ok(r) => r,
                        Err(e) => {
                            tp.rollback(streamed.load(Ordering::Relaxed));
                            stop.store(true, Ordering::Relaxed);
                            return Err(e);
                        }
                    };
                tp.add(rows.saturating_sub(streamed.load(Ordering::Relaxed)));
                copied += rows;
                let last = {
                    let mut rem = remaining.lock().unwrap_or_else(|p| p.into_inner());
                    let n = rem.entry(chunk.target.clone()).or_default();
                    *n = n.saturating_sub(1);
                    *n == 0
                };
                if last {
                    // keys and indexes for this table while other tables still copy
                    if let Err(e) = finish_table(
                        &mut target,
                        &fence.task,
                        &chunk.target,
                        &post[&chunk.target],
                        kept.contains(&chunk.target.to_string()),
                    )
                    .await
                    {
                        stop.store(true, Ordering::Relaxed);
                        return Err(e);
                    }
                    tp.finish();
                }
            }
        }));
    }
    let mut rows_this_run = 0;
    let mut first_error = None;
    for h in handles {
        match h.await {
            Ok(Ok(n)) => rows_this_run += n,
            Ok(Err(e)) => {
                first_error.get_or_insert(e);
            }
            Err(j) => {
                first_error.get_or_insert(Error::definite(format!("a copy worker crashed: {j}")));
            }
        }
    }
    if let Some(l) = logger {
        l.abort();
    }
    if let Some(e) = first_error {
        return Err(e.with_hint(
            "fix the cause and run again: committed chunks are kept and the copy resumes where it stopped",
        ));
    }

    // tables whose data was complete before this run but not yet indexed
    let stages_now = dst.stages(&spec.name).await?;
    for (target, ddl) in post.iter() {
        if stages_now.get(&target.to_string()) == Some(&TableStage::Created) {
            finish_table(&mut dst, &spec.name, target, ddl, true).await?;
            table_progress[target].finish();
        }
    }
    // foreign keys and translated checks, after every table's data
    for (target, ddl) in post.iter() {
        if stages_now.get(&target.to_string()) == Some(&TableStage::Done) {
            continue;
        }
        warnings.extend(finish_after_data(&mut dst, target, ddl).await?);
        dst.set_stage(&spec.name, target, TableStage::Done).await?;
    }
    fence.verify(&mut dst).await?;
    dst.set_task(&spec.name, TaskPhase::Done, None).await?;

    let mut summaries: Vec<TableSummary> = progress
        .tables
        .iter()
        .map(|t| TableSummary {
            name: t.name.clone(),
            rows: t.done.load(Ordering::Relaxed),
            bytes: 0,
            seconds: t.seconds(),
            rate: t.rate(),
        })
        .collect();
    let sizes: BTreeMap<String, u64> = tables
        .iter()
        .map(|t| (names.target(&t.id).to_string(), t.estimated_bytes))
        .collect();
    for s in &mut summaries {
        s.bytes = sizes.get(&s.name).copied().unwrap_or(0);
    }
    Ok(Summary {
        tables: summaries,
        rows_this_run,
        seconds: progress.elapsed(),
        position: position_text,
        resumed: resuming,
        chunks_skipped,
        warnings,
    })
}

/// Prepares a target session for bulk loads: the writer session (foreign keys hold
/// on the source already), and with `target_binlog: off` its writes kept out of the
/// target's binary log.
pub(crate) async fn begin_bulk_session(target: &mut Conn, spec: &TaskSpec) -> Result<()> {
    target.begin_writer_session().await?;
    if spec.target_binlog {
        return Ok(());
    }
    if let Some(set) = target.dialect().unlogged_session() {
        target.exec(set).await.map_err(|e| {
            e.context("target_binlog: off").with_hint(
                "turning the binary log off for a session needs the BINLOG ADMIN (MariaDB) \
                 or SYSTEM_VARIABLES_ADMIN (MySQL) privilege, or SUPER: grant it, or remove \
                 target_binlog: off",
            )
        })?;
    }
    Ok(())
}

/// Rows per chunk so that a table's chunks are a multiple of the workers: the last
/// round of a table split into `jobs + 1` chunks would otherwise keep all workers
/// but one idle (5 chunks of 200,000 rows on 2 workers take 3 rounds; 6 of 166,667
/// take 3 shorter ones). Never more than `chunk_rows`.
fn balanced_chunk_rows(count: u64, chunk_rows: u64, jobs: usize) -> u64 {
    let chunk_rows = chunk_rows.max(1);
    let jobs = jobs.max(1) as u64;
    let chunks = count.div_ceil(chunk_rows);
    if chunks <= 1 {
        return chunk_rows;
    }
    let rounded = chunks.div_ceil(jobs) * jobs;
    count.div_ceil(rounded).clamp(1, chunk_rows)
}

/// Post-data DDL of one table (keys, indexes, checks, sequence positions), then its
/// stage. `tolerant` skips "already exists" errors left by an interrupted attempt.
async fn finish_table(
    conn: &mut Conn,
    task: &str,
    target: &TableId,
    ddl: &Ddl,
    tolerant: bool,
) -> Result<()> {
    build_keys(conn, target, ddl, tolerant).await?;
    conn.set_stage(task, target, TableStage::Indexed).await
}

#[cfg(test)]
mod tests {
    use super::balanced_chunk_rows;

    #[test]
    fn chunks_come_in_multiples_of_the_workers() {
        // 5 chunks of 200,000 on 2 workers → 6 of 166,667
        assert_eq!(balanced_chunk_rows(1_000_000, 200_000, 2), 166_667);
        assert_eq!(1_000_000u64.div_ceil(166_667), 6);
        // already a multiple: unchanged
        assert_eq!(balanced_chunk_rows(800_000, 200_000, 2), 200_000);
        // one chunk stays one chunk (small tables are not split further)
        assert_eq!(balanced_chunk_rows(150_000, 200_000, 4), 200_000);
        // never above chunk_rows, never zero
        assert_eq!(balanced_chunk_rows(3, 1, 2), 1);
        assert!(balanced_chunk_rows(1_000_001, 200_000, 4) <= 200_000);
        assert_eq!(
            1_000_001u64.div_ceil(balanced_chunk_rows(1_000_001, 200_000, 4)) % 4,
            0
        );
    }
}
