//! `ferry status`: what the target holds (phase, applied position, totals) against
//! where the source is now, so lag is measured, not guessed.

use crate::checkpoint::{CheckpointStore, TaskPhase, TaskRecord};
use crate::conn::Conn;
use crate::factory::connector;
use crate::stream::protect::SourceRetention;
use ferry_core::{Error, Position, Result, TaskSpec};

/// A task's status.
#[derive(Debug, Clone, Default)]
pub struct Status {
    /// `full`, `done` (full copied), `incremental`, `ended`, or `not started`.
    pub phase: String,
    /// Incremental state: `incremental`, `recovering`, `stopped`, `incremental_failed`, `ended`.
    pub state: Option<String>,
    /// Why (for failures and recoveries).
    pub reason: Option<String>,
    /// Last position committed on the target.
    pub applied: Option<String>,
    /// The source's current log end.
    pub source_head: Option<String>,
    /// Bytes of source log not yet applied (PostgreSQL WAL; MySQL within one file).
    pub behind_bytes: Option<u64>,
    /// Seconds between now and the last applied source commit, when behind.
    pub lag_seconds: Option<f64>,
    /// Source transactions / row changes applied since the stream began.
    pub txns: u64,
    /// Row changes applied.
    pub rows: u64,
    /// Changes to keyed tables that found no row on the target (logged as warnings).
    pub unmatched: u64,
    /// Seconds since the target last recorded progress.
    pub updated_seconds_ago: Option<f64>,
    /// PostgreSQL slot `wal_status` and whether a process streams from it.
    pub slot: Option<String>,
    /// What the source keeps of its log for the task (see `stream::protect`).
    pub source_retention: Option<SourceRetention>,
    /// A source-protection warning: the source keeps more log for the task than its
    /// threshold, the log it needs is about to be removed, or is gone.
    pub warning: Option<String>,
}

/// Reads the task's status from the target and the source.
pub async fn status(spec: &TaskSpec) -> Result<Status> {
    let (mut dst, missing) = Conn::open_target_or_server(spec)
        .await
        .map_err(|e| e.context("target"))?;
    let mut st = Status::default();
    let recorded = match &missing {
        Some(db) => {
            st.reason = Some(format!(
                "the target database {db} does not exist yet (`ferry run` creates it)"
            ));
            None
        }
        None => {
            dst.ensure().await?;
            dst.task(&spec.name).await?
        }
    };
    let Some(TaskRecord { phase, position }) = recorded else {
        st.phase = "not started".into();
        // a slot without a task on the target was left by a failed run
        let (line, idle) = slot_line(spec).await?;
        st.slot = line;
        if idle {
            st.reason = Some(
                "a replication slot of this task exists on the source but the target holds \
                 no progress: it holds WAL for no one — `ferry end <task file>` removes it, \
                 or `ferry run` starts the task over"
                    .into(),
            );
        }
        return Ok(st);
    };
    st.phase = phase.to_string();
    st.applied = position.as_ref().map(Position::to_string);
    let now_us = crate::stream::apply::now_us();
    let mut source_commit = None;
    if let Some(r) = dst.stream(&spec.name).await? {
        st.state = r.state.map(|s| s.to_string());
        st.reason = r.reason;
        source_commit = r.source_commit_us;
        st.updated_seconds_ago = r.applied_at_us.map(|a| (now_us - a) as f64 / 1e6);
        st.txns = r.txns;
        st.rows = r.rows;
        st.unmatched = r.unmatched;
    }
    if phase == TaskPhase::Ended {
        // nothing is applied any more: no lag to measure, the applied position is
        // final; a slot is worth naming only if one is (still) there
        st.updated_seconds_ago = None;
        if let Ok(Some(slot)) = connector(spec.source.engine).task_slot(spec).await {
            if let Ok(Some(s)) = slot.state().await {
                st.slot = Some(format!(
                    "{}: still on the source ({}); drop it: {}",
                    slot.name(),
                    if s.active { "in use" } else { "unused" },
                    slot.drop_statement()
                ));
            }
        }
        return Ok(st);
    }
    let head = match crate::stream::source_head(spec).await {
        Ok(h) => Some(h),
        Err(e) => {
            st.reason
                .get_or_insert(format!("source unreachable: {}", e.message));
            None
        }
    };
    let applied = position;
    if let (Some(h), Some(a)) = (&head, &applied) {
        st.behind_bytes = h.bytes_after(a);
        let caught_up = a.reached(h) || st.behind_bytes == Some(0);
        // while the copy runs nothing is streamed yet: "lag 0 s" would claim the
        // target is current; what the stream will start from is in `applied`
        st.lag_seconds = if phase == TaskPhase::Full {
            None
        } else if caught_up {
            Some(0.0)
        } else {
            source_commit.map(|c| ((now_us - c) as f64 / 1e6).max(0.0))
        };
    }
    st.source_head = head.map(|h| h.to_string());
    let (line, idle) = slot_line(spec).await?;
    st.slot = line;
    match crate::stream::protect::sample(spec).await {
        Ok(Some((_, r))) => {
            st.warning = r.warning.clone();
            st.source_retention = Some(r);
        }
        Ok(None) => {}
        Err(e) if e.is(ferry_core::ErrorKind::PositionLost) => st.warning = Some(e.message),
        Err(_) => {}
    }
    if idle && phase == TaskPhase::Full && st.reason.is_none() {
        st.reason = Some(
            "the copy stopped before it finished; the source keeps this task's replication \
             slot for the resume and it holds WAL until then — `ferry run` resumes, \
             `ferry end <task file>` removes it"
                .into(),
        );
    }
    Ok(st)
}

/// One line on the task's slot: its WAL status, whether something streams from it
/// and how much WAL the source keeps for it (None: the source keeps no slot, or is
/// unreachable); and whether it exists with nothing reading it.
async fn slot_line(spec: &TaskSpec) -> Result<(Option<String>, bool)> {
    let Ok(Some(task_slot)) = connector(spec.source.engine).task_slot(spec).await else {
        return Ok((None, false));
    };
    let slot = task_slot.name();
    let state = task_slot
        .state()
        .await
        .map_err(|e| Error::definite(e.message))?;
    let idle = state.as_ref().is_some_and(|s| !s.active);
    let line = match state {
        Some(s) => format!(
            "{slot}: wal_status {}, {}{}",
            if s.wal_status.is_empty() {
                "?"
            } else {
                &s.wal_status
            },
            if s.active {
                "streaming"
            } else {
                "not streaming"
            },
            s.retained_bytes
                .map(|b| format!(", retains {} of WAL on the source", human_bytes(b)))
                .unwrap_or_default()
        ),
        // a full-only task never has one
        None if spec.mode == ferry_core::Mode::Full => return Ok((None, false)),
        None => format!("{slot}: missing"),
    };
    Ok((Some(line), idle))
}

/// `1234567` → `1.2 MB`.
pub fn human_bytes(b: u64) -> String {
    const UNITS: [&str; 5] = ["bytes", "kB", "MB", "GB", "TB"];
    let mut v = b as f64;
    let mut unit = 0;
    while v >= 1000.0 && unit < UNITS.len() - 1 {
        v /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{b} bytes")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}
