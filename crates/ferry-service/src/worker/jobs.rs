//! The one-off jobs a worker runs in the background for a task it leased:
//! validating a new task, ending one (with a DR failover when asked), and a DR
//! switchover. The procedures themselves are the engine's
//! ([`ferry_engine::dr::switch`]); what is here touches the service's store: the
//! causes applied, and after a switchover the task's spec and secrets turned round.

use crate::control::{Control, Sealed};
use crate::error::ServiceResult;
use crate::store::TaskRow;
use ferry_core::lifecycle::{Action, Cause, State};
use ferry_core::{Error, ErrorKind, TaskSpec};
use ferry_engine::conn::{Conn, Role};
use ferry_engine::dr::switch;

/// Validates a new task (both endpoints answer), then schedules it when it has a
/// start time.
pub(super) async fn validation(c: Control, t: TaskRow, me: String) -> ServiceResult<()> {
    let cause = match c.spec(&t) {
        Ok(spec) => match validate(&spec).await {
            Ok(()) => (
                Cause::Validated,
                "endpoints reachable; ready to start".to_string(),
            ),
            Err(e) => (Cause::ValidationFailed, e),
        },
        Err(e) => (Cause::ValidationFailed, e.to_string()),
    };
    let t = c.apply(&t.id, cause.0, Some(&cause.1)).await?;
    if let (State::Configuring, Some(at)) = (t.state, t.start_at_ms) {
        let why = format!("scheduled for {}", crate::store::rfc3339(at));
        c.apply(&t.id, Cause::User(Action::Schedule), Some(&why))
            .await?;
    }
    c.store.release(&t.id, &me).await
}

/// Ends a task: releases its source resources (a DR standby is unfenced: it is
/// nobody's standby any more), or fails it over when that was asked.
pub(super) async fn ending(c: Control, t: TaskRow, me: String) -> ServiceResult<()> {
    let failover_wanted = t.pending_action.as_deref() == Some("failover");
    let result = match c.spec(&t) {
        Ok(spec) if failover_wanted => switch::failover(&spec)
            .await
            .map(|f| f.describe(crate::store::rfc3339))
            .map_err(|e| e.to_string()),
        Ok(spec) if spec.kind == ferry_core::spec::Kind::Dr => match end(&spec).await {
            Ok(done) => Ok(format!("{done}; {}", switch::unfence_standby(&spec).await)),
            Err(e) => Err(e),
        },
        Ok(spec) => end(&spec).await,
        Err(e) => Err(e.to_string()),
    };
    if failover_wanted {
        c.store.set_pending_action(&t.id, None).await?;
    }
    match result {
        Ok(done) => c.apply(&t.id, Cause::Released, Some(&done)).await?,
        Err(e) => c.apply(&t.id, Cause::ReleaseFailed, Some(&e)).await?,
    };
    c.store.release(&t.id, &me).await
}

/// What ending released, one line.
async fn end(spec: &TaskSpec) -> Result<String, String> {
    switch::end(spec)
        .await
        .map(|done| done.join("; "))
        .map_err(|e| e.to_string())
}

/// A planned DR switchover ([`switch::switchover`]); once done, the task's stored
/// spec and secrets are turned round and it streams the other way.
pub(super) async fn switchover(c: Control, t: TaskRow) -> ServiceResult<()> {
    let result = async {
        let old = c.spec(&t).map_err(|e| Error::definite(e.to_string()))?;
        let switched = switch::switchover(&old).await?;
        let spec = ferry_core::spec::reverse_spec_text(&t.spec)?;
        let mut sealed: Sealed =
            serde_json::from_str(&t.secrets).map_err(|e| Error::definite(e.to_string()))?;
        std::mem::swap(&mut sealed.source, &mut sealed.target);
        let secrets = serde_json::to_string(&sealed).map_err(|e| Error::definite(e.to_string()))?;
        Ok::<_, Error>((spec, secrets, switched))
    }
    .await;
    c.store.set_pending_action(&t.id, None).await?;
    match result {
        Ok((spec, secrets, switched)) => {
            c.store.set_spec(&t.id, &spec, &secrets).await?;
            c.apply(
                &t.id,
                Cause::IncrementalStarted,
                Some(&switched.to_string()),
            )
            .await?;
        }
        Err(e) => {
            let why = if e.is(ErrorKind::SwitchoverRefused) {
                e.to_string()
            } else {
                format!("switchover failed: {e}")
            };
            c.apply(&t.id, Cause::Failed, Some(&why)).await?;
        }
    }
    Ok(())
}

/// Both endpoints answer with the given credentials (a MySQL/MariaDB target
/// database that does not exist yet is created when the task starts).
async fn validate(spec: &TaskSpec) -> Result<(), String> {
    Conn::open(spec, Role::Source)
        .await
        .map_err(|e| e.to_string())?;
    Conn::open_target_or_server(spec)
        .await
        .map_err(|e| e.context("target").to_string())?;
    Ok(())
}

/// Separates a stopped task's reason from the note on its slot appended to it.
const SLOT_NOTE: &str = " — slot ";

/// A stopped task (paused, frozen, failed) whose replication slot is still on the
/// source: nothing reads the slot, so the source keeps WAL for it until the task
/// runs again or ends. Flagged in the task's reason and in its progress
/// (`source_slot`); the flag goes when the slot does.
pub(super) async fn idle_slot(c: Control, t: TaskRow, me: String) -> ServiceResult<()> {
    let note = match c.spec(&t) {
        Ok(spec) => {
            match tokio::time::timeout(std::time::Duration::from_secs(20), slot_note(&spec, &t))
                .await
            {
                Ok(n) => n,
                // unreachable now: leave the last flag as it is
                Err(_) => return c.store.release(&t.id, &me).await,
            }
        }
        Err(_) => None,
    };
    let mut progress: serde_json::Value = t
        .progress
        .as_deref()
        .and_then(|p| serde_json::from_str(p).ok())
        .unwrap_or_else(|| serde_json::json!({}));
    let base = t
        .reason
        .as_deref()
        .map(|r| r.split(SLOT_NOTE).next().unwrap_or(r).to_string());
    let reason = match &note {
        Some((detail, text)) => {
            progress["source_slot"] = detail.clone();
            Some(match &base {
                Some(b) if !b.is_empty() => format!("{b}{SLOT_NOTE}{text}"),
                _ => format!("slot {text}"),
            })
        }
        None => {
            if let Some(m) = progress.as_object_mut() {
                m.remove("source_slot");
            }
            base
        }
    };
    c.store.set_progress(&t.id, &progress.to_string()).await?;
    if let Some(r) = reason.filter(|r| Some(r) != t.reason.as_ref()) {
        c.store.set_reason(&t.id, t.state, &r).await?;
    }
    c.store.release(&t.id, &me).await
}

/// The progress detail and the reason's note for the task's slot, when it exists
/// with nothing reading it; `None` otherwise.
async fn slot_note(spec: &TaskSpec, t: &TaskRow) -> Option<(serde_json::Value, String)> {
    let slot = ferry_engine::factory::connector(spec.source.engine)
        .task_slot(spec)
        .await
        .ok()??;
    let state = slot.state().await.ok()??;
    if state.active {
        return None;
    }
    let name = slot.name().to_string();
    let retained = state
        .retained_bytes
        .map(ferry_engine::status::human_bytes)
        .unwrap_or_else(|| "an unknown amount".into());
    let text = if state.wal_status == "lost" {
        format!(
            "{name} is lost (wal_status lost): the source removed WAL this task needs — full resync \
             needed (end the task and create it again with existing_data: drop)"
        )
    } else {
        format!(
            "{name} retains {retained} of WAL on the source while the task is {}: nothing reads it, \
             so the source keeps that WAL (and more as it writes) until the task runs again — \
             resume or start it, or end it to drop the slot",
            t.state.id()
        )
    };
    let detail = serde_json::json!({
        "name": name,
        "retained_bytes": state.retained_bytes,
        "wal_status": state.wal_status,
        "active": false,
        "note": text,
    });
    Some((detail, text))
}
