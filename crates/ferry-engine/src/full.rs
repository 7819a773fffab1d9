//! The full (snapshot) phase of a task: schema, consistent snapshot, parallel chunked
//! copy with per-chunk checkpoints, keys and indexes after the data, foreign keys last.
//!
//! Restarting after a crash resumes: the chunk plan, the snapshot position and each
//! chunk's "done" mark live on the target (see [`crate::checkpoint`]), so finished
//! chunks are never copied twice and unfinished ones were rolled back whole.

use crate::checkpoint;
use crate::checkpoint::{CheckpointStore, TableStage, TaskPhase, TaskRecord};
use crate::conn::{Conn, Role};
use crate::copy::{copy_chunk, validate_chunk, TableJob};
use crate::mapping::{plan_ddl, Ddl, NameMap};
use crate::progress::{Progress, TableProgress};
use ferry_core::chunk::{split_range, Chunk};
use ferry_core::{Engine, Error, ExistingData, Position, Result, Table, TableId, TaskSpec};
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

/// Refuses selected tables that would land on one and the same target table or
/// column: MySQL/MariaDB compare column names without case always, and database and
/// table names too when `lower_case_table_names` is not 0 — `"A"."T"` and `a.t` of a
/// PostgreSQL source are then one table there.
pub async fn target_name_clashes(dst: &mut Conn, tables: &[Table], names: &NameMap) -> Result<()> {
    if dst.engine() != Engine::MySql {
        return Ok(());
    }
    let folded = dst
        .query_text("SELECT @@lower_case_table_names")
        .await?
        .first()
        .and_then(|r| r[0].clone())
        .is_some_and(|v| v != "0");
    let clashes = name_clashes(tables, names, folded);
    if clashes.is_empty() {
        return Ok(());
    }
    Err(Error::definite(format!(
        "names collide on the MySQL/MariaDB target:\n  {}",
        clashes.join("\n  ")
    ))
    .with_hint(
        "rename one of them on the source, copy them by separate tasks into different \
         target databases (objects.rename), or exclude one (objects.exclude)",
    ))
}

/// The selected tables that would be one table (when the target folds name case) or
/// have columns that would be one column on a MySQL/MariaDB target.
fn name_clashes(tables: &[Table], names: &NameMap, folded: bool) -> Vec<String> {
    let mut clashes = Vec::new();
    if folded {
        let mut seen: HashMap<(String, String), &TableId> = HashMap::new();
        for t in tables {
            let target = names.target(&t.id);
            let key = (target.schema.to_lowercase(), target.name.to_lowercase());
            match seen.get(&key) {
                Some(other) => clashes.push(format!(
                    "{other} and {} are one table on the target ({target}): its \
                     lower_case_table_names is not 0, so names there ignore case",
                    t.id
                )),
                None => {
                    seen.insert(key, &t.id);
                }
            }
        }
    }
    for t in tables {
        let mut seen: HashMap<String, &str> = HashMap::new();
        for c in &t.columns {
            match seen.get(&c.name.to_lowercase()) {
                Some(other) => clashes.push(format!(
                    "{}: columns {other:?} and {:?} differ only in case; MySQL/MariaDB column \
                     names ignore case, so the target table cannot have both",
                    t.id, c.name
                )),
                None => {
                    seen.insert(c.name.to_lowercase(), &c.name);
                }
            }
        }
    }
    clashes
}

/// PostgreSQL → PostgreSQL: refuses tables whose column types come from an extension
/// the target server does not have available (`pg_available_extensions`), naming
/// table, column, type and extension. `Ok(Some(list))` names the extensions needed.
pub async fn missing_extensions(dst: &mut Conn, tables: &[Table]) -> Result<Option<String>> {
    let needed: Vec<(&Table, &(String, String, String))> = tables
        .iter()
        .flat_map(|t| t.pg_types.extensions.iter().map(move |e| (t, e)))
        .collect();
    if needed.is_empty() || dst.engine() != Engine::Postgres {
        return Ok(None);
    }
    let available: Vec<String> = dst
        .query_text("SELECT name FROM pg_available_extensions")
        .await?
        .into_iter()
        .filter_map(|r| r[0].clone())
        .collect();
    let missing: Vec<String> = needed
        .iter()
        .filter(|(_, (ext, _, _))| !available.contains(ext))
        .map(|(t, (ext, col, ty))| format!("{}.{col} (type {ty}) needs extension {ext}", t.id))
        .collect();
    if !missing.is_empty() {
        return Err(Error::definite(format!(
            "the target server lacks extensions the tables' types come from: {}",
            missing.join("; ")
        ))
        .with_hint(
            "install the extension's package on the target server (e.g. postgresql-contrib), \
             or exclude the tables (objects.exclude)",
        ));
    }
    let mut exts: Vec<&str> = needed.iter().map(|(_, (e, _, _))| e.as_str()).collect();
    exts.sort();
    exts.dedup();
    Ok(Some(exts.join(", ")))
}

/// Plans the DDL of every table; all mapping errors are reported together.
pub async fn plan_all(
    src: &mut Conn,
    spec: &TaskSpec,
    tables: &[Table],
    names: &NameMap,
) -> Result<Vec<Ddl>> {
    let (from, to) = (spec.source.engine, spec.target.engine);
    let mut out = Vec::new();
    let mut errors = Vec::new();
    for t in tables {
        let create_text = match (&mut *src, to) {
            (Conn::My(c), Engine::MySql) => {
                Some(ferry_mysql::catalog::show_create(c, &t.id).await?)
            }
            _ => None,
        };
        match plan_ddl(t, from, to, names, create_text.as_deref()) {
            Ok(d) => out.push(d),
            Err(e) => errors.push(e.to_string()),
        }
    }
    if !errors.is_empty() {
        return Err(Error::definite(format!(
            "cannot map the schema:\n  {}",
            errors.join("\n  ")
        )));
    }
    Ok(out)
}

fn already_there(e: &Error) -> bool {
    let m = e.message.to_ascii_lowercase();
    m.contains("already exists")
        || m.contains("duplicate key name")
        || m.contains("multiple primary key")
        || m.contains("duplicate foreign key")
}

/// The global read lock was refused for lack of privilege.
fn no_reload(e: &Error) -> bool {
    ["(error 1227", "(error 1044", "(error 1045", "(error 1142"]
        .iter()
        .any(|c| e.message.contains(c))
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
    checkpoint::fence_writers(&mut dst, &spec.name).await?;
    let prior = dst.task(&spec.name).await?;
    let resuming = match &prior {
        Some(r) if r.phase == TaskPhase::Done => {
            if matches!(
                spec.existing_data,
                ExistingData::Drop | ExistingData::Truncate
            ) {
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
    let position: Option<Position> = match &mut src {
        Conn::Pg(c) => {
            let (snap, pos) = match handoff {
                Some(h) => (h.snapshot.clone(), h.position.clone()),
                None => ferry_postgres::reader::begin_snapshot(c).await?,
            };
            for w in &workers {
                if let Conn::Pg(w) = w {
                    ferry_postgres::reader::join_snapshot(w, &snap).await?;
                }
            }
            Some(pos)
        }
        Conn::My(c) => {
            let mut mys: Vec<ferry_mysql::MyConn> = workers
                .drain(..)
                .map(|w| match w {
                    Conn::My(m) => m,
                    Conn::Pg(_) => unreachable!("source workers share the source engine"),
                })
                .collect();
            let pos = match ferry_mysql::reader::begin_snapshot(c, &mut mys).await {
                Ok(pos) => pos,
                Err(e) if no_reload(&e) => {
                    // one worker, one snapshot whose position MariaDB reports exactly
                    mys.truncate(1);
                    warnings.push(format!(
                        "the source user lacks RELOAD, so the copy ran with one worker instead of {jobs} \
                         (GRANT RELOAD, LOCK TABLES ON *.* TO … allows parallel consistent workers): {}",
                        e.message
                    ));
                    ferry_mysql::reader::begin_single_snapshot(&mut mys[0]).await?
                }
                Err(e) => return Err(e),
            };
            workers = mys.into_iter().map(Conn::My).collect();
            pos
        }
    };

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
            let (count, bounds) = match &mut workers[0] {
                Conn::Pg(c) => ferry_postgres::reader::key_stats(c, &t.id, key.as_deref()).await?,
                Conn::My(c) => ferry_mysql::reader::key_stats(c, &t.id, key.as_deref()).await?,
            };
            let target = names.target(&t.id);
            totals.insert(target.clone(), count);
            let ranges = match (key, bounds) {
                (Some(k), Some((lo, hi))) => split_range(&k, lo, hi, count, spec.chunk_rows)
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
    for (t, ddl) in tables.iter().zip(&ddls) {
        let target = names.target(&t.id);
        if let std::collections::btree_map::Entry::Vacant(e) = stages.entry(target.to_string()) {
            for stmt in &ddl.create {
                dst.exec(stmt)
                    .await
                    .map_err(|e| e.context(format!("creating {target}")))?;
            }
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
    let task_name = Arc::new(spec.name.clone());
    let mut handles = Vec::new();
    for (slot, mut w) in workers.into_iter().enumerate() {
        let mut target = Conn::open(spec, Role::Target).await?;
        // the foreign keys of tables kept by `existing_data: truncate | append` hold
        // on the source already; chunks of parents and children load in any order
        match target {
            Conn::My(_) => target.exec("SET SESSION foreign_key_checks = 0").await?,
            Conn::Pg(_) => {
                // needs superuser (or SET granted on it); else kept tables' keys check
                let _ = target.exec("SET session_replication_role = replica").await;
            }
        }
        target.join_writers(&spec.name, Some(slot)).await?;
        let kept = kept.clone();
        let (queue, remaining, table_jobs, post, table_progress, stop, task_name) = (
            queue.clone(),
            remaining.clone(),
            table_jobs.clone(),
            post.clone(),
            table_progress.clone(),
            stop.clone(),
            task_name.clone(),
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
                let rows = match copy_chunk(&mut w, &mut target, job, &chunk, &task_name, &on_rows)
                    .await
                {
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
                        &task_name,
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
        add_foreign_keys(&mut dst, target, ddl).await?;
        for stmt in &ddl.optional {
            if let Err(e) = dst.exec(stmt).await {
                if !already_there(&e) {
                    warnings.push(format!(
                        "{target}: could not recreate `{stmt}`: {}",
                        e.message
                    ));
                }
            }
        }
        dst.set_stage(&spec.name, target, TableStage::Done).await?;
    }
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

/// What became of a target table that may already exist.
pub(crate) enum Room {
    /// No such table: create it.
    Free,
    /// Kept (emptied for `truncate`): the copy goes into it.
    Kept,
    /// `existing_data: fail` and the table exists: why.
    Refused(String),
}

/// Applies `existing_data` to the `targets` a copy is about to create or fill
/// (`selected`: every target table of the task). `drop` and `truncate` treat the
/// existing ones together, so foreign keys among them are no obstacle (PostgreSQL:
/// one `DROP TABLE`/`TRUNCATE` naming them all, never `CASCADE`, which would reach
/// unselected tables; MySQL/MariaDB: `foreign_key_checks` off in this session
/// meanwhile). A foreign key of a table outside the task that references one of
/// them is refused, naming it: dropping or emptying its parent would leave its rows
/// dangling, and the task cannot know what they should point at.
pub(crate) async fn make_room(
    dst: &mut Conn,
    policy: ExistingData,
    targets: &[TableId],
    selected: &[TableId],
) -> Result<Vec<Room>> {
    let mut states = Vec::with_capacity(targets.len());
    for t in targets {
        states.push(dst.table_state(t).await?);
    }
    let existing: Vec<&TableId> = targets
        .iter()
        .zip(&states)
        .filter(|(_, s)| s.is_some())
        .map(|(t, _)| t)
        .collect();
    let rooms = targets
        .iter()
        .zip(&states)
        .map(|(t, s)| match (s, policy) {
            (None, _) => Room::Free,
            (Some(has_rows), ExistingData::Fail) => Room::Refused(format!(
                "{t} ({})",
                if *has_rows {
                    "has rows"
                } else {
                    "exists, empty"
                }
            )),
            (Some(_), ExistingData::Drop) => Room::Free,
            (Some(_), ExistingData::Truncate | ExistingData::Append) => Room::Kept,
        })
        .collect();
    if existing.is_empty() || !matches!(policy, ExistingData::Drop | ExistingData::Truncate) {
        return Ok(rooms);
    }
    let what = if policy == ExistingData::Drop {
        "drop"
    } else {
        "truncate"
    };
    let outside = outside_references(dst, &existing, selected).await?;
    if !outside.is_empty() {
        return Err(Error::definite(format!(
            "existing_data: {what} would leave rows of tables outside the task pointing at nothing: {}",
            outside.join(", ")
        ))
        .with_hint(
            "add those tables to the task's objects, drop those foreign keys on the target \
             (ALTER TABLE … DROP FOREIGN KEY / DROP CONSTRAINT …), or use existing_data: append",
        ));
    }
    let list = existing
        .iter()
        .map(|t| dst.qualified(t))
        .collect::<Vec<_>>()
        .join(", ");
    let names = existing
        .iter()
        .map(|t| t.to_string())
        .collect::<Vec<_>>()
        .join(", ");
    let work = match dst.engine() {
        Engine::Postgres => {
            let stmt = if policy == ExistingData::Drop {
                format!("DROP TABLE {list}")
            } else {
                format!("TRUNCATE {list}")
            };
            dst.exec(&stmt).await
        }
        Engine::MySql => {
            dst.exec("SET SESSION foreign_key_checks = 0").await?;
            let mut r = Ok(());
            for t in &existing {
                let q = dst.qualified(t);
                let stmt = if policy == ExistingData::Drop {
                    format!("DROP TABLE {q}")
                } else {
                    format!("DELETE FROM {q}")
                };
                r = dst.exec(&stmt).await.map_err(|e| e.context(t));
                if r.is_err() {
                    break;
                }
            }
            let restored = dst.exec("SET SESSION foreign_key_checks = 1").await;
            r.and(restored)
        }
    };
    work.map_err(|e| {
        e.context(format!("existing_data: {what} of {names}"))
            .with_hint(
            "objects on the target that depend on these tables (views, triggers, foreign keys) \
             must be dropped first, or use existing_data: append",
        )
    })?;
    Ok(rooms)
}

/// Foreign keys of tables not in `selected` that reference one of `parents`, as
/// `constraint (child → parent)`.
pub(crate) async fn outside_references(
    dst: &mut Conn,
    parents: &[&TableId],
    selected: &[TableId],
) -> Result<Vec<String>> {
    let schemas: std::collections::BTreeSet<&str> =
        parents.iter().map(|t| t.schema.as_str()).collect();
    if schemas.is_empty() {
        return Ok(Vec::new());
    }
    let in_list = schemas
        .iter()
        .map(|s| dst.literal(s))
        .collect::<Vec<_>>()
        .join(", ");
    let sql = match dst.engine() {
        Engine::Postgres => format!(
            "SELECT con.conname::text, cn.nspname::text, c.relname::text, pn.nspname::text, p.relname::text \
             FROM pg_constraint con \
             JOIN pg_class c ON c.oid = con.conrelid JOIN pg_namespace cn ON cn.oid = c.relnamespace \
             JOIN pg_class p ON p.oid = con.confrelid JOIN pg_namespace pn ON pn.oid = p.relnamespace \
             WHERE con.contype = 'f' AND pn.nspname IN ({in_list}) ORDER BY 2, 3, 1"
        ),
        Engine::MySql => format!(
            "SELECT CONSTRAINT_NAME, CONSTRAINT_SCHEMA, TABLE_NAME, UNIQUE_CONSTRAINT_SCHEMA, REFERENCED_TABLE_NAME \
             FROM information_schema.REFERENTIAL_CONSTRAINTS \
             WHERE UNIQUE_CONSTRAINT_SCHEMA IN ({in_list}) ORDER BY 2, 3, 1"
        ),
    };
    let mut out = Vec::new();
    for r in dst.query_text(&sql).await? {
        let cell = |i: usize| r.get(i).cloned().flatten().unwrap_or_default();
        let child = TableId::new(cell(1), cell(2));
        let parent = TableId::new(cell(3), cell(4));
        if parents.contains(&&parent) && !selected.contains(&child) {
            out.push(format!("{} ({child} → {parent})", cell(0)));
        }
    }
    Ok(out)
}

/// Creates a table with its keys and indexes at once, for a table that joins a task
/// that already streams (created on the source, added by an edit): its rows arrive
/// as upserts, which need the key. Foreign keys come once every such table exists
/// ([`add_foreign_keys`]). Returns what could not be carried.
pub(crate) async fn create_table_now(
    dst: &mut Conn,
    target: &TableId,
    ddl: &Ddl,
) -> Result<Vec<String>> {
    for stmt in ddl.create.iter().chain(&ddl.post).chain(&ddl.counters) {
        dst.exec(stmt)
            .await
            .map_err(|e| e.context(format!("creating {target}")))?;
    }
    let mut warnings = ddl.warnings.clone();
    for stmt in &ddl.optional {
        if let Err(e) = dst.exec(stmt).await {
            warnings.push(format!(
                "{target}: could not recreate `{stmt}`: {}",
                e.message
            ));
        }
    }
    Ok(warnings)
}

/// The foreign keys of a table created by [`create_table_now`].
pub(crate) async fn add_foreign_keys(dst: &mut Conn, target: &TableId, ddl: &Ddl) -> Result<()> {
    if ddl.foreign_keys.is_empty() {
        return Ok(());
    }
    // a kept table (existing_data: truncate | append) may have them already
    let sql = format!(
        "SELECT constraint_name FROM information_schema.table_constraints \
         WHERE table_schema = {} AND table_name = {} AND constraint_type = 'FOREIGN KEY'",
        dst.literal(&target.schema),
        dst.literal(&target.name)
    );
    let present: Vec<String> = dst
        .query_text(&sql)
        .await?
        .into_iter()
        .filter_map(|r| r.into_iter().next().flatten())
        .map(|name| format!(" ADD CONSTRAINT {} FOREIGN KEY ", dst.ident(&name)))
        .collect();
    for fk in &ddl.foreign_keys {
        if present.iter().any(|p| fk.contains(p.as_str())) {
            continue;
        }
        match dst.exec(fk).await {
            Ok(()) => {}
            Err(e) if already_there(&e) => {}
            Err(e) => return Err(e.context(format!("adding a foreign key to {target}"))),
        }
    }
    Ok(())
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
    for stmt in ddl.post.iter().chain(&ddl.counters) {
        match conn.exec(stmt).await {
            Ok(()) => {}
            Err(e) if tolerant && already_there(&e) => {}
            Err(e) => return Err(e.context(format!("building keys/indexes of {target}"))),
        }
    }
    conn.set_stage(task, target, TableStage::Indexed).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_differing_only_in_case_clash_where_the_target_folds_them() {
        let spec = TaskSpec::from_yaml(
            "name: t\nkind: migration\nmode: full\nsource: postgres://u@h/db\ntarget: mysql://u@h:3306\n",
        )
        .unwrap();
        let col = |n: &str| {
            let int = ferry_core::LogicalType::Int {
                bytes: 4,
                unsigned: false,
            };
            ferry_core::Column::new(n, "int", int)
        };
        let t = |s: &str, n: &str, cols: &[&str]| Table {
            id: TableId::new(s, n),
            columns: cols.iter().map(|c| col(c)).collect(),
            ..Table::default()
        };
        let tables = vec![t("A", "T", &["id"]), t("a", "t", &["id", "Id"])];
        let names = NameMap::new(&spec, &tables);
        let folded = name_clashes(&tables, &names, true);
        assert_eq!(folded.len(), 2, "{folded:?}");
        assert!(folded[0].contains("A.T and a.t"), "{folded:?}");
        assert!(folded[1].contains("\"id\" and \"Id\""), "{folded:?}");
        // lower_case_table_names = 0: the tables are distinct, the columns still clash
        assert_eq!(name_clashes(&tables, &names, false).len(), 1);
    }
}
