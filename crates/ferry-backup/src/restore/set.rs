//! Restoring a set chain: the full copy's target side with a backup set as its
//! source. Every file is one chunk of the restore's checkpoint plan on the target,
//! committed with its done mark in the transaction that holds its rows, so a re-run
//! of the same restore skips what is committed and nothing is restored twice.

use super::precheck::{plan_tables, resolve_chain, PlannedFile, RestoreTable};
use super::{
    manifest_engine, restore_spec, RestorePlan, RestoreReport, RestoreRequest, TableRestore,
};
use crate::codec;
use crate::manifest::{FileKind, Manifest};
use crate::repo::Repo;
use ferry_connector::BulkLoad;
use ferry_core::chunk::{Batch, Chunk};
use ferry_core::{Error, ExistingData, Result, TableId, TaskSpec};
use ferry_engine::checkpoint::{
    end_fenced_writers, mark_done_sql, CheckpointStore, Claim, Fence, TableStage, TaskPhase,
};
use ferry_engine::conn::{Conn, Role};
use ferry_engine::copy::chunk::TableJob;
use ferry_engine::schema::{build_keys, create_table, finish_after_data, make_room, Keys, Room};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Instant;
use tokio::sync::mpsc;

/// Rows per batch handed to the bulk load.
const BATCH_ROWS: usize = 1000;

/// Shared per-table progress, reported through the caller's callback.
pub(crate) struct Tracker<'a> {
    tables: Mutex<Vec<TableRestore>>,
    callback: &'a (dyn Fn(&[TableRestore]) + Sync),
}

impl<'a> Tracker<'a> {
    pub(crate) fn new(
        tables: Vec<TableRestore>,
        callback: &'a (dyn Fn(&[TableRestore]) + Sync),
    ) -> Tracker<'a> {
        Tracker {
            tables: Mutex::new(tables),
            callback,
        }
    }

    pub(crate) fn update(&self, i: usize, f: impl FnOnce(&mut TableRestore)) {
        let snapshot = {
            let mut t = self.tables.lock().unwrap_or_else(|p| p.into_inner());
            f(&mut t[i]);
            t.clone()
        };
        (self.callback)(&snapshot);
    }

    pub(crate) fn snapshot(&self) -> Vec<TableRestore> {
        self.tables
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// One file to restore.
#[derive(Debug, Clone)]
struct Job {
    /// The engine of the set's source.
    from: ferry_core::Engine,
    table: usize,
    chunk: Chunk,
    file: PlannedFile,
}

/// Restores the chain of `plan` into `req.target`.
pub async fn restore_set(
    repo: &Repo,
    req: &RestoreRequest,
    plan: RestorePlan,
    progress: &(dyn Fn(&[TableRestore]) + Sync),
) -> Result<RestoreReport> {
    let started = Instant::now();
    let chain = if plan.chain.is_empty() {
        match &req.from {
            super::RestoreFrom::Set(id) => resolve_chain(repo, id).await?,
            super::RestoreFrom::Dump(_) | super::RestoreFrom::PointInTime { .. } => {
                return Err(ferry_core::Error::definite(
                    "a restore without a set chain in its plan (a Ferry bug)",
                ))
            }
        }
    } else {
        plan.chain.clone()
    };
    let from = manifest_engine(&chain[0])?;
    let spec = restore_spec(req, from);
    // the plan's own warnings were told with the precheck
    let mut warnings = Vec::new();
    let mut plan_warnings = Vec::new();
    let tables = plan_tables(&chain, &spec, from, &mut plan_warnings)?;

    if let Some(w) = ferry_engine::conn::ensure_target_database(&spec).await? {
        warnings.push(w);
    }
    let mut dst = Conn::open(&spec, Role::Target).await?;
    dst.ensure().await?;
    let fence = Fence::claim(&mut dst, &spec.name, &Claim::default()).await?;
    end_fenced_writers(&mut dst, &spec.name).await?;
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
                    "restore {} has already finished on {}",
                    spec.name, spec.target
                ))
                .with_hint(
                    "to restore again use --existing-data drop, or give the restore another --name",
                ));
            }
        }
        Some(_) => true,
        None => false,
    };
    let mut stages = dst.stages(&spec.name).await?;
    let targets: Vec<TableId> = tables.iter().map(|t| t.target.clone()).collect();
    if !resuming {
        fence.verify(&mut dst).await?;
        dst.reset(&spec.name).await?;
        stages.clear();
        let rooms = make_room(&mut dst, spec.existing_data, &targets, &targets).await?;
        let mut refused = Vec::new();
        for (target, room) in targets.iter().zip(rooms) {
            match room {
                Room::Free => {}
                Room::Kept => {
                    dst.set_stage(&spec.name, target, TableStage::Kept).await?;
                    stages.insert(target.to_string(), TableStage::Kept);
                }
                Room::Refused(why) => refused.push(why),
            }
        }
        if !refused.is_empty() {
            return Err(Error::definite(format!(
                "target not empty: {}",
                refused.join(", ")
            ))
            .with_hint("--existing-data drop (recreate them), truncate, or append; or restore into an empty database"));
        }
    }

    // the checkpoint plan: one chunk per file, per table in apply order
    let mut planned: Vec<Job> = Vec::new();
    for (i, t) in tables.iter().enumerate() {
        for (n, f) in t.files.iter().enumerate() {
            planned.push(Job {
                from,
                table: i,
                chunk: Chunk {
                    source: t.table.id.clone(),
                    target: t.target.clone(),
                    index: n as u32,
                    range: None,
                    done: false,
                    rows: 0,
                },
                file: f.clone(),
            });
        }
    }
    if resuming {
        let saved = dst.load_plan(&spec.name).await?;
        let done: HashMap<(String, u32), (bool, u64)> = saved
            .iter()
            .map(|c| ((c.target.to_string(), c.index), (c.done, c.rows)))
            .collect();
        if saved.len() != planned.len()
            || planned
                .iter()
                .any(|j| !done.contains_key(&(j.chunk.target.to_string(), j.chunk.index)))
        {
            return Err(Error::definite(format!(
                "restore {}: the interrupted run restored another selection of files ({} planned then, {} now)",
                spec.name,
                saved.len(),
                planned.len()
            ))
            .with_hint("run it with the same --from, --include and --exclude, or start over with --existing-data drop"));
        }
        for j in &mut planned {
            let (d, r) = done[&(j.chunk.target.to_string(), j.chunk.index)];
            j.chunk.done = d;
            j.chunk.rows = r;
        }
    } else {
        let chunks: Vec<Chunk> = planned.iter().map(|j| j.chunk.clone()).collect();
        dst.save_plan(&spec.name, &chunks).await?;
        dst.set_task(&spec.name, TaskPhase::Full, None).await?;
    }
    let files_skipped = planned.iter().filter(|j| j.chunk.done).count();

    // progress
    let mut rows_init = Vec::new();
    for (i, t) in tables.iter().enumerate() {
        let done_rows: u64 = planned
            .iter()
            .filter(|j| j.table == i && j.chunk.done)
            .map(|j| j.chunk.rows)
            .sum();
        let total: u64 = t.files.iter().map(|f| f.file.rows).sum();
        rows_init.push(TableRestore {
            table: t.target.to_string(),
            rows_done: done_rows,
            rows_total: total.max(done_rows),
            done: stages.get(&t.target.to_string()) == Some(&TableStage::Done),
        });
    }
    let tracker = Tracker::new(rows_init, progress);

    // tables, without keys
    fence.verify(&mut dst).await?;
    for t in &tables {
        if let std::collections::btree_map::Entry::Vacant(e) = stages.entry(t.target.to_string()) {
            create_table(&mut dst, &t.target, &t.ddl, Keys::AfterData).await?;
            dst.set_stage(&spec.name, &t.target, TableStage::Created)
                .await?;
            e.insert(TableStage::Created);
        }
    }

    // data files, `jobs` writers
    let data: VecDeque<Job> = planned
        .iter()
        .filter(|j| !j.chunk.done && j.file.file.kind == FileKind::Data)
        .cloned()
        .collect();
    let mut remaining: HashMap<usize, usize> = HashMap::new();
    for j in &data {
        *remaining.entry(j.table).or_default() += 1;
    }
    let rows_data = restore_data(
        repo, &chain, &spec, &tables, &fence, data, remaining, &tracker, req.jobs,
    )
    .await
    .map_err(|e| {
        e.with_hint("fix the cause and run the same restore again: restored files are kept and it resumes where it stopped")
    })?;

    // tables whose data was complete before (or that have none): keys now
    let stages_now = dst.stages(&spec.name).await?;
    for t in &tables {
        let stage = stages_now.get(&t.target.to_string());
        if matches!(stage, Some(TableStage::Created) | Some(TableStage::Kept)) {
            build_keys(&mut dst, &t.target, &t.ddl, true).await?;
            dst.set_stage(&spec.name, &t.target, TableStage::Indexed)
                .await?;
        }
    }

    // the chain's changes, per table in order
    let mut rows_changes = 0u64;
    for (i, t) in tables.iter().enumerate() {
        if stages_now.get(&t.target.to_string()) == Some(&TableStage::Done) {
            continue;
        }
        let todo: Vec<&Job> = planned
            .iter()
            .filter(|j| j.table == i && !j.chunk.done && j.file.file.kind == FileKind::Changes)
            .collect();
        for j in &todo {
            let m = &chain[j.file.set];
            let bytes = repo.read_file(m, &j.file.file).await?;
            let what = format!("set {}: file {}", m.id, j.file.file.path);
            let cipher = repo.cipher.clone();
            let changes = tokio::task::spawn_blocking(move || {
                codec::read_changes(&bytes, cipher.as_ref(), &what)
            })
            .await
            .map_err(|e| Error::definite(format!("decoding a changes file crashed: {e}")))??;
            let n = super::changes::apply_file(&mut dst, &fence, from, t, &j.chunk, &changes)
                .await
                .map_err(|e| e.context(format!("applying {} of set {}", j.file.file.path, m.id)))?;
            rows_changes += n;
            tracker.update(i, |r| r.rows_done += n);
        }
        if !todo.is_empty() {
            // counters (sequences, auto-increment) past the rows the changes added
            build_keys_counters(&mut dst, t).await;
        }
    }

    // foreign keys and translated checks, after every table's data
    for (i, t) in tables.iter().enumerate() {
        if stages_now.get(&t.target.to_string()) == Some(&TableStage::Done) {
            continue;
        }
        warnings.extend(finish_after_data(&mut dst, &t.target, &t.ddl).await?);
        dst.set_stage(&spec.name, &t.target, TableStage::Done)
            .await?;
        tracker.update(i, |r| r.done = true);
    }
    fence.verify(&mut dst).await?;
    dst.set_task(&spec.name, TaskPhase::Done, None).await?;
    warnings.extend(plan_warnings);
    warnings.sort();
    warnings.dedup();

    // the restored tables against the set's digests
    let differences =
        super::compare::compare_restored(&mut dst, &chain, &tables, &spec, &mut warnings).await?;

    Ok(RestoreReport {
        tables: tracker.snapshot(),
        rows: rows_data + rows_changes,
        seconds: started.elapsed().as_secs_f64(),
        resumed: resuming,
        files_skipped,
        differences,
        warnings,
    })
}

/// Re-runs a table's counter statements (best effort: they are positions, and a
/// failure leaves the previous one).
async fn build_keys_counters(dst: &mut Conn, t: &RestoreTable) {
    for stmt in &t.ddl.counters {
        if let Err(e) = dst.exec(stmt).await {
            tracing::warn!("{}: {stmt}: {}", t.target, e.message);
        }
    }
}

/// Restores the data files in `queue` with `jobs` writers; builds a table's keys
/// once its last file is in. Returns the rows restored.
#[allow(clippy::too_many_arguments)]
async fn restore_data(
    repo: &Repo,
    chain: &[Manifest],
    spec: &TaskSpec,
    tables: &[RestoreTable],
    fence: &Fence,
    queue: VecDeque<Job>,
    remaining: HashMap<usize, usize>,
    tracker: &Tracker<'_>,
    jobs: usize,
) -> Result<u64> {
    if queue.is_empty() {
        return Ok(0);
    }
    let jobs = jobs.max(1).min(queue.len());
    let queue = Mutex::new(queue);
    let remaining = Mutex::new(remaining);
    let stop = AtomicBool::new(false);
    let from = manifest_engine(&chain[0])?;
    let table_jobs: Vec<TableJob> = tables
        .iter()
        .map(|t| {
            let mut j = TableJob::new(t.table.clone(), t.target.clone(), from, spec.target.engine);
            j.passthrough = false;
            j
        })
        .collect();
    let mut writers = Vec::new();
    for slot in 0..jobs {
        let mut w = Conn::open(spec, Role::Target).await?;
        w.begin_writer_session().await?;
        w.join_writers(&spec.name, Some(slot)).await?;
        writers.push(w);
    }
    let work = writers.into_iter().map(|mut w| {
        let (queue, remaining, stop, table_jobs) = (&queue, &remaining, &stop, &table_jobs);
        async move {
            let mut rows = 0u64;
            loop {
                if stop.load(Ordering::Relaxed) {
                    return Ok(rows);
                }
                let Some(job) = queue.lock().unwrap_or_else(|p| p.into_inner()).pop_front() else {
                    return Ok(rows);
                };
                let r =
                    restore_file(repo, chain, &mut w, &table_jobs[job.table], &job, fence).await;
                let n = match r {
                    Ok(n) => n,
                    Err(e) => {
                        stop.store(true, Ordering::Relaxed);
                        return Err(e);
                    }
                };
                rows += n;
                tracker.update(job.table, |t| t.rows_done += n);
                let last = {
                    let mut rem = remaining.lock().unwrap_or_else(|p| p.into_inner());
                    let c = rem.entry(job.table).or_default();
                    *c = c.saturating_sub(1);
                    *c == 0
                };
                if last {
                    let t = &tables[job.table];
                    let built = async {
                        build_keys(&mut w, &t.target, &t.ddl, true).await?;
                        w.set_stage(&spec.name, &t.target, TableStage::Indexed)
                            .await
                    }
                    .await;
                    if let Err(e) = built {
                        stop.store(true, Ordering::Relaxed);
                        return Err(e);
                    }
                }
            }
        }
    });
    let results = futures::future::join_all(work).await;
    let mut total = 0;
    let mut first = None;
    for r in results {
        match r {
            Ok(n) => total += n,
            Err(e) => {
                first.get_or_insert(e);
            }
        }
    }
    match first {
        Some(e) => Err(e),
        None => Ok(total),
    }
}

/// One data file into its table, committed with its done mark (and the fence's
/// check); returns its rows.
async fn restore_file(
    repo: &Repo,
    chain: &[Manifest],
    dst: &mut Conn,
    job: &TableJob,
    j: &Job,
    fence: &Fence,
) -> Result<u64> {
    let m = &chain[j.file.set];
    let what = format!("set {}: file {}", m.id, j.file.file.path);
    let bytes = repo.read_file(m, &j.file.file).await?;
    let arrays = super::array_columns(&job.source, j.from, job_target_engine(dst));
    let file = codec::RowBatches::open(&bytes, repo.cipher.as_ref(), &what)?;
    drop(bytes);
    let begin = dst.dialect().begin();
    dst.exec(begin).await?;
    match load_rows(dst, job, file, &arrays).await {
        Ok(n) if n != j.file.file.rows => {
            let _ = dst.exec("ROLLBACK").await;
            Err(Error::definite(format!(
                "{what}: holds {n} rows, the manifest says {}",
                j.file.file.rows
            ))
            .with_hint("the set is damaged: `ferry backup verify` checks it; restore another set"))
        }
        Ok(n) => {
            let mark = mark_done_sql(dst, &fence.task, &j.chunk, n);
            dst.exec(&mark).await?;
            let commit = format!("{}; COMMIT", fence.check_sql(dst));
            if let Err(e) = dst.exec(&commit).await {
                let _ = dst.exec("ROLLBACK").await;
                return Err(fence.explain(dst, e).await);
            }
            Ok(n)
        }
        Err(e) => {
            let _ = dst.exec("ROLLBACK").await;
            Err(e.context(format!("restoring {what} into {}", job.target)))
        }
    }
}

/// Bulk-loads a data file's rows into the job's table inside the open
/// transaction, decoding them a batch at a time as the load takes them (memory:
/// the file's bytes and a few batches, whatever the file's row count); returns the
/// rows loaded, which the caller checks against the manifest.
async fn load_rows(
    dst: &mut Conn,
    job: &TableJob,
    mut file: codec::RowBatches,
    arrays: &[usize],
) -> Result<u64> {
    let (tx, rx) = mpsc::channel::<Batch>(2);
    let feed = async move {
        loop {
            let mut rows = match file.next_batch(BATCH_ROWS)? {
                Some(rows) => rows,
                None => return Ok::<(), Error>(()),
            };
            if !arrays.is_empty() {
                for r in &mut rows {
                    super::native_arrays(r, arrays);
                }
            }
            if tx.send(Batch::Rows(rows)).await.is_err() {
                // the loader stopped: its own error says why
                return Ok(());
            }
        }
    };
    let context = job.context();
    let load = BulkLoad {
        source: &job.source,
        target: &job.target,
        columns: &job.columns,
        types: &job.types,
        context: &context,
        passthrough: false,
    };
    let (n, fed) = tokio::join!(dst.bulk_load(load, rx), feed);
    fed?;
    n
}

/// The engine of a target session.
fn job_target_engine(dst: &Conn) -> ferry_core::Engine {
    dst.connector().engine()
}
