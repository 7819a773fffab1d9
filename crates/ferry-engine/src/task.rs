//! A task's phases in order: the full copy (if the mode has one and it is not done),
//! then the incremental stream (if the mode has one); and ending a task.

use crate::checkpoint::{CheckpointStore, StreamState, TableStage, TaskPhase};
use crate::conn::{Conn, Role};
use crate::copy::{run_full, source_tables, Handoff, RunOptions, Summary};
use crate::factory::connector;
use crate::metrics::Metrics;
use crate::phase::{Phase, Phases};
use crate::schema::mapping::NameMap;
use crate::schema::plan_all;
use crate::stream::{run_incremental, source_head, StreamOptions, StreamSummary};
use ferry_connector::{SlotStart, TaskSlot};
use ferry_core::{Error, ExistingData, Mode, Result, TaskSpec};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// What a run did.
#[derive(Debug, Default)]
pub struct TaskOutcome {
    /// The full phase, when it ran in this invocation.
    pub full: Option<Summary>,
    /// The incremental phase, when it ran.
    pub stream: Option<StreamSummary>,
    /// Warnings from setting up the stream.
    pub warnings: Vec<String>,
}

/// Runs the task's phases.
pub async fn run_task(
    spec: &TaskSpec,
    opts: &RunOptions,
    stream_opts: &StreamOptions,
    metrics: Arc<Metrics>,
    phases: Arc<Phases>,
    shutdown: watch::Receiver<bool>,
) -> Result<TaskOutcome> {
    run_task_reporting(
        spec,
        opts,
        stream_opts,
        metrics,
        phases,
        shutdown,
        |_, _| {},
    )
    .await
}

/// Runs the task's phases, calling `report` with the copy's summary (if this run
/// copied) and the warnings of setting up, as soon as the copy ends or, without a
/// copy, just before the stream starts (a streaming run goes on until stopped: its
/// user wants the copy's outcome and snapshot position then, not at Ctrl-C).
pub async fn run_task_reporting(
    spec: &TaskSpec,
    opts: &RunOptions,
    stream_opts: &StreamOptions,
    metrics: Arc<Metrics>,
    phases: Arc<Phases>,
    shutdown: watch::Receiver<bool>,
    mut report: impl FnMut(Option<&Summary>, &[String]),
) -> Result<TaskOutcome> {
    let mut out = TaskOutcome::default();
    if opts.precheck {
        // before anything is created on either side: no slot, publication or table
        crate::check::precheck(spec).await?;
    }
    if let Some(done) = crate::conn::ensure_target_database(spec).await? {
        tracing::info!("{done}");
    }
    if spec.mode == Mode::Full {
        phases.set(Phase::Full);
        let summary = run_full(spec, opts, None).await?;
        count_copied(&metrics, &summary);
        report(Some(&summary), &[]);
        out.full = Some(summary);
        return Ok(out);
    }
    let mut dst = Conn::open(spec, Role::Target).await?;
    dst.ensure().await?;
    let mut prior = dst.task(&spec.name).await?;
    if prior.as_ref().is_some_and(|r| r.phase == TaskPhase::Ended) {
        if matches!(
            spec.existing_data,
            ExistingData::Drop | ExistingData::Truncate
        ) {
            dst.reset(&spec.name).await?;
            prior = None;
        } else {
            return Err(Error::definite(format!("task {} was ended", spec.name)).with_hint(
                "to replicate again from scratch set existing_data: drop (the target tables are recreated)",
            ));
        }
    }
    let phase = prior.as_ref().map(|r| r.phase);
    let streaming = matches!(phase, Some(TaskPhase::Done | TaskPhase::Incremental));
    if !streaming {
        phases.set(Phase::Full);
        match spec.mode {
            Mode::FullIncremental => {
                let (summary, warnings) = full_with_handoff(spec, opts, phase.is_some()).await?;
                count_copied(&metrics, &summary);
                report(Some(&summary), &warnings);
                out.full = Some(summary);
                out.warnings = warnings;
            }
            _ => {
                out.warnings = start_without_copy(spec, &mut dst).await?;
                report(None, &out.warnings);
            }
        }
    } else {
        report(None, &[]);
    }
    drop(dst);
    if streaming && spec.mode == Mode::FullIncremental {
        // tables added to the objects since the copy: the stream copies them
        crate::stream::backfill::adopt_added_tables(spec).await?;
    }
    out.stream = Some(
        match run_incremental(spec, stream_opts, metrics, &phases, shutdown).await {
            Ok(s) => s,
            Err(e) => return Err(with_slot_note(spec, e).await),
        },
    );
    Ok(out)
}

/// A failed stream leaves the task's slot (on a source that keeps one) in place (the
/// task resumes from it): `e`, saying so when the slot is still there.
async fn with_slot_note(spec: &TaskSpec, e: Error) -> Error {
    // a lost position cannot be resumed from: its error says what to do instead
    if e.is_transient() || e.is(ferry_core::ErrorKind::PositionLost) {
        return e;
    }
    match connector(spec.source.engine).task_slot(spec).await {
        Ok(Some(slot)) if matches!(slot.state().await, Ok(Some(_))) => slot_kept(e, slot.name()),
        _ => e,
    }
}

/// The handoff the full copy reads from: the snapshot a just-created slot exported
/// and the position its stream starts at.
fn handoff_of(start: &dyn SlotStart) -> Handoff {
    Handoff {
        snapshot: start.snapshot().to_string(),
        position: start.position().clone(),
    }
}

/// Adds the copied tables' size to the bytes moved.
fn count_copied(metrics: &Metrics, s: &Summary) {
    let bytes: u64 = s.tables.iter().map(|t| t.bytes).sum();
    metrics
        .bytes
        .fetch_add(bytes, std::sync::atomic::Ordering::Relaxed);
}

/// Full copy whose end meets the change stream exactly. On a source that keeps a
/// slot (PostgreSQL) the slot is created first and its exported snapshot is what the
/// copy reads (elsewhere the copy finds its own start position); a resumed copy
/// keeps the slot of the first attempt (its later snapshot overlaps the stream,
/// which the idempotent apply absorbs). A first attempt that fails before any chunk
/// is committed undoes what it created ([`undo_failed_start`]); one that fails later
/// keeps the slot for the resume and says so.
async fn full_with_handoff(
    spec: &TaskSpec,
    opts: &RunOptions,
    resuming: bool,
) -> Result<(Summary, Vec<String>)> {
    let capture = connector(spec.source.engine);
    if capture.slot_name(spec).is_none() {
        return Ok((run_full(spec, opts, None).await?, vec![]));
    }
    let mut src = Conn::open(spec, Role::Source).await?;
    let tables = source_tables(&mut src, spec).await?;
    drop(src);
    let Some(slot) = capture
        .task_slot(spec)
        .await
        .map_err(|e| e.context("source"))?
    else {
        return Ok((run_full(spec, opts, None).await?, vec![]));
    };
    if resuming {
        // the rest is copied from a new snapshot whose exact position a temporary
        // slot gives; whole-table chunks record it so the stream skips what they hold
        let warnings = slot.ensure_tables(&tables).await?;
        slot.verify().await?;
        let summary = async {
            let start = slot.create(true).await?;
            let summary = run_full(spec, opts, Some(&handoff_of(&*start))).await;
            drop(start);
            summary
        }
        .await;
        return summary
            .map(|s| (s, warnings))
            .map_err(|e| slot_kept(e, slot.name()));
    }
    if slot.state().await?.is_some() {
        // left by an earlier attempt that never recorded a position: unusable
        slot.drop_all().await?;
    }
    let warnings = slot.ensure_tables(&tables).await?;
    // only what this attempt created is undone: a slot it could not create (one that
    // "already exists") may be another run's
    let mut created = false;
    let summary = async {
        let start = slot.create(false).await?;
        created = true;
        // `start` stays open (holding the snapshot) until every worker has joined
        let summary = run_full(spec, opts, Some(&handoff_of(&*start))).await;
        drop(start);
        summary
    }
    .await;
    match summary {
        Ok(s) => Ok((s, warnings)),
        // a transient failure (another run still writing, a lost connection) is
        // retried: the retry finds the slot without a recorded position and starts afresh
        Err(e) if created && !e.is_transient() => {
            Err(undo_failed_start(spec, &*slot, &tables, e).await)
        }
        Err(e) if created => Err(slot_kept(e, slot.name())),
        Err(e) => Err(e),
    }
}

/// Adds `note` to what `e` says about fixing it.
fn add_hint(e: Error, note: &str) -> Error {
    let hint = match &e.hint {
        Some(h) => format!("{h}; {note}"),
        None => note.to_string(),
    };
    e.with_hint(hint)
}

/// `e` of a run that keeps the task's slot on the source for a resume, saying so: a
/// slot nobody reads holds WAL until the source's disk fills.
fn slot_kept(e: Error, slot: &str) -> Error {
    add_hint(
        e,
        &format!(
            "the source keeps replication slot and publication {slot} for the resume; the slot \
             holds WAL on the source until the task runs again (`ferry status` shows how much) — \
             `ferry run` resumes, `ferry end <task file>` removes them if you give up"
        ),
    )
}

/// After a first attempt failed: when no chunk reached the target, drops what the
/// attempt created — the (empty) tables, its checkpoint rows, the slot and the
/// publication — so nothing holds WAL and the next run starts afresh. Otherwise (or
/// when the target cannot tell) the slot is kept for the resume, which `e` then says.
async fn undo_failed_start(
    spec: &TaskSpec,
    task_slot: &dyn TaskSlot,
    tables: &[ferry_core::Table],
    e: Error,
) -> Error {
    let slot = task_slot.name();
    let undone = async {
        let mut dst = Conn::open(spec, Role::Target).await?;
        dst.ensure().await?;
        if dst.task(&spec.name).await?.is_some()
            && dst.load_plan(&spec.name).await?.iter().any(|c| c.done)
        {
            return Ok(false);
        }
        let stages = dst.stages(&spec.name).await?;
        let names = NameMap::new(spec, tables);
        for t in tables {
            let target = names.target(&t.id);
            if stages.get(&target.to_string()) == Some(&TableStage::Created) {
                let q = dst.qualified(&target);
                dst.exec(&format!("DROP TABLE IF EXISTS {q}")).await?;
            }
        }
        dst.reset(&spec.name).await?;
        task_slot.drop_all().await?;
        Ok::<bool, Error>(true)
    }
    .await;
    match undone {
        Ok(true) => add_hint(
            e,
            &format!(
                "nothing was committed on the target, so this run's replication slot and \
                 publication {slot} were dropped from the source and the next run starts afresh"
            ),
        ),
        Ok(false) => slot_kept(e, slot),
        Err(u) => {
            tracing::warn!("could not undo the failed start: {u}");
            slot_kept(e, slot)
        }
    }
}

/// Fixes where the task's stream will start — now — without copying: the slot is
/// created (a source that keeps one) or the log position read and recorded on the
/// target. A DR switchover calls this before opening the new primary to writes, so
/// nothing written there can precede the stream.
pub async fn start_stream_here(spec: &TaskSpec) -> Result<Vec<String>> {
    let mut dst = Conn::open(spec, Role::Target).await?;
    dst.ensure().await?;
    start_without_copy(spec, &mut dst).await
}

/// `mode: incremental`: no copy; the stream starts at the slot's creation point (a
/// source that keeps a slot) or at `start_position` / the log's current end.
async fn start_without_copy(spec: &TaskSpec, dst: &mut Conn) -> Result<Vec<String>> {
    let mut src = Conn::open(spec, Role::Source).await?;
    let tables = source_tables(&mut src, spec).await?;
    let task_slot = connector(spec.source.engine)
        .task_slot(spec)
        .await
        .map_err(|e| e.context("source"))?;
    if let Some(slot) = task_slot {
        if slot.state().await?.is_some() {
            slot.drop_all().await?;
        }
        let warnings = slot.ensure_tables(&tables).await?;
        let started = async {
            let start = slot.create(false).await?;
            let recorded = dst
                .set_task(&spec.name, TaskPhase::Done, Some(start.position()))
                .await;
            drop(start);
            recorded
        }
        .await;
        if let Err(e) = started {
            // nothing recorded the slot: it would hold WAL for no one
            return Err(match slot.drop_all().await {
                Ok(()) => e,
                Err(_) => slot_kept(e, slot.name()),
            });
        }
        return Ok(warnings);
    }
    let position = match &spec.start_position {
        Some(p) => p.clone(),
        None => source_head(spec).await?,
    };
    dst.set_task(&spec.name, TaskPhase::Done, Some(&position))
        .await?;
    Ok(Vec::new())
}

/// Whether every session writing `task`'s data has gone, waiting at most `within`.
async fn writers_gone(dst: &mut Conn, task: &str, within: Duration) -> Result<bool> {
    let t0 = std::time::Instant::now();
    while !dst.writer_sessions(task).await?.is_empty() {
        if t0.elapsed() > within {
            return Ok(false);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(true)
}

/// Ends a task: releases the source's slot and publication and marks it ended.
pub async fn end_task(spec: &TaskSpec) -> Result<Vec<String>> {
    let mut done = Vec::new();
    let mut src = Conn::open(spec, Role::Source).await?;
    let (mut dst, missing) = Conn::open_target_or_server(spec)
        .await
        .map_err(|e| e.context("target"))?;
    let phase = if missing.is_some() {
        // the task never ran there (`ferry run` creates the database first)
        None
    } else {
        dst.ensure().await?;
        dst.task(&spec.name).await?.map(|r| r.phase)
    };
    let known = phase.is_some();
    if known && !writers_gone(&mut dst, &spec.name, Duration::from_secs(10)).await? {
        // ending under a live run would be undone by it: it keeps applying, and its
        // next checkpoint overwrites the mark
        // transient: a run being stopped goes within moments (the service retries)
        return Err(Error::transient(format!(
            "task {} is running: a `ferry run` (or a service worker) still writes its changes \
             to the target",
            spec.name
        ))
        .with_hint(
            "stop that run first (Ctrl-C or SIGTERM; in the service, `ferry task end ID` ends it \
             for you), then run `ferry end` again",
        ));
    }
    if known {
        // a run whose process lives on without a session here (it would reconnect
        // and go on applying after the end) is fenced from now on
        crate::checkpoint::Fence::claim(&mut dst, &spec.name, &Default::default()).await?;
        crate::checkpoint::end_fenced_writers(&mut dst, &spec.name).await?;
    }
    // a copy that never finished left no counters to move (and maybe no tables)
    let copied = matches!(
        phase,
        Some(TaskPhase::Done | TaskPhase::Incremental | TaskPhase::Ended)
    );
    if copied && spec.mode != Mode::Full {
        // cut-over: replicated inserts carried explicit keys, so the target's
        // sequences / AUTO_INCREMENT never moved; bring them past the source's
        let moved = move_counters(&mut src, &mut dst, spec).await?;
        if moved > 0 {
            done.push(format!(
                "moved {moved} sequence/AUTO_INCREMENT counter(s) on the target past the source's"
            ));
        }
    }
    if let Some(slot) = connector(spec.source.engine)
        .task_slot(spec)
        .await
        .map_err(|e| e.context("source"))?
    {
        let had = slot.state().await?.is_some();
        slot.drop_all().await?;
        if had {
            done.push(format!(
                "dropped replication slot and publication {} on the source",
                slot.name()
            ));
        }
    }
    if known {
        dst.set_task(&spec.name, TaskPhase::Ended, None).await?;
        dst.set_stream_state(&spec.name, StreamState::Ended, None)
            .await?;
        done.push("marked the task ended on the target".into());
    }
    Ok(done)
}

/// Runs every selected table's counter statements on the target; returns how many.
async fn move_counters(src: &mut Conn, dst: &mut Conn, spec: &TaskSpec) -> Result<usize> {
    let tables = source_tables(src, spec).await?;
    let names = NameMap::new(spec, &tables);
    let mut n = 0;
    for ddl in plan_all(src, spec, &tables, &names).await? {
        for stmt in &ddl.counters {
            dst.exec(stmt).await?;
            n += 1;
        }
    }
    Ok(n)
}
