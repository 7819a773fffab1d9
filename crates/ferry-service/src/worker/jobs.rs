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
