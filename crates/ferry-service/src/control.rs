//! Operations on tasks and tenants shared by the API and the workers: creating a task
//! (passwords sealed, never stored in the spec), moving it through the lifecycle
//! table with compare-and-set so concurrent actors always leave a valid state, and
//! rebuilding the runnable spec for a worker.

use crate::error::{ServiceError, ServiceResult};
use crate::notify::WebhookAllow;
use crate::secrets::Secrets;
use crate::store::{now_ms, Store, TaskRow};
use ferry_core::lifecycle::{self, Action, Cause, State};
use ferry_core::TaskSpec;
use sha2::{Digest, Sha256};
use std::sync::Arc;

/// Who is calling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// The admin token: every tenant's tasks, tenant management.
    Admin,
    /// A tenant's token: its own tasks only.
    Tenant(String),
}

impl Caller {
    /// Whether this caller may see tasks of `tenant`.
    pub fn sees(&self, tenant: &str) -> bool {
        match self {
            Caller::Admin => true,
            Caller::Tenant(t) => t == tenant,
        }
    }
}

/// Hash under which a token is stored (tokens themselves are never stored).
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// A new random token / id part.
pub fn random_hex(bytes: usize) -> String {
    let v: Vec<u8> = (0..bytes).map(|_| rand::random::<u8>()).collect();
    hex::encode(v)
}

/// Stored passwords of a task.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub(crate) struct Sealed {
    pub(crate) source: Option<String>,
    pub(crate) target: Option<String>,
}

/// Takes the password out of a URL: (URL without it, password).
fn strip_password(url_text: &str) -> (String, Option<String>) {
    match url::Url::parse(url_text) {
        Ok(mut u) => {
            // decoded as the task file's parser decodes it (a `+` stays a `+`)
            let pw = u.password().map(ferry_core::spec::decode_url_part);
            if pw.is_some() {
                let _ = u.set_password(None);
            }
            (u.to_string(), pw)
        }
        Err(_) => (url_text.to_string(), None),
    }
}

/// Task operations over the store.
#[derive(Clone)]
pub struct Control {
    /// The metadata store.
    pub store: Store,
    secrets: Secrets,
    /// Private/loopback destinations webhooks may reach (the admin's list).
    pub webhook_allow: Arc<WebhookAllow>,
    /// Webhook deliveries: how they are retried, how many send at once.
    pub webhook_deliveries: Arc<crate::notify::Deliveries>,
}

impl Control {
    /// Operations over `store`, sealing with `secrets`; webhooks reach public
    /// addresses only.
    pub fn new(store: Store, secrets: Secrets) -> Control {
        Control {
            store,
            secrets,
            webhook_allow: Arc::default(),
            webhook_deliveries: Arc::default(),
        }
    }

    /// The same, with webhook deliveries retried by `policy`.
    pub fn with_webhook_retry(self, policy: crate::notify::RetryPolicy) -> Control {
        Control {
            webhook_deliveries: Arc::new(crate::notify::Deliveries::new(policy)),
            ..self
        }
    }

    /// What seals and opens the stored secrets (passwords, webhook signing secrets).
    pub fn secrets(&self) -> &Secrets {
        &self.secrets
    }

    /// The same, with webhooks also allowed to reach what `allow` names.
    pub fn with_webhook_allow(self, allow: WebhookAllow) -> Control {
        Control {
            webhook_allow: Arc::new(allow),
            ..self
        }
    }

    /// Validates and stores a task from its YAML; it starts in `creating` (a worker
    /// validates the endpoints next).
    pub async fn create_task(
        &self,
        tenant: &str,
        yaml: &str,
        start_at_ms: Option<i64>,
    ) -> ServiceResult<TaskRow> {
        let spec = TaskSpec::from_yaml(yaml).map_err(|e| ServiceError::Invalid {
            field: "spec".into(),
            reason: e.to_string(),
        })?;
        if let Some(at) = start_at_ms {
            if at <= now_ms() {
                return Err(ServiceError::Invalid {
                    field: "start_at".into(),
                    reason: "the scheduled start is in the past; omit it to start by hand".into(),
                });
            }
        }
        let mut doc: serde_norway::Value =
            serde_norway::from_str(yaml).map_err(|e| ServiceError::Invalid {
                field: "spec".into(),
                reason: e.to_string(),
            })?;
        let mut sealed = Sealed::default();
        for (key, slot) in [
            ("source", &mut sealed.source),
            ("target", &mut sealed.target),
        ] {
            if let Some(serde_norway::Value::String(u)) = doc.get_mut(key) {
                let (clean, pw) = strip_password(u);
                *u = clean;
                *slot = pw.map(|p| self.secrets.seal(&p));
            }
        }
        let t = TaskRow {
            id: format!("t{}", random_hex(6)),
            tenant: tenant.to_string(),
            name: spec.name.clone(),
            kind: spec.kind,
            state: State::Creating,
            reason: Some("validating the endpoints".into()),
            spec: serde_norway::to_string(&doc)
                .map_err(|e| ServiceError::Internal(e.to_string()))?,
            secrets: serde_json::to_string(&sealed).expect("serialisable"),
            start_at_ms,
            frozen_from: None,
            lease_owner: None,
            lease_until_ms: None,
            progress: None,
            pending_spec: None,
            pending_action: None,
            created_ms: now_ms(),
            updated_ms: now_ms(),
        };
        self.store.insert_task(&t).await?;
        Ok(t)
    }

    /// The runnable spec of a task: its stored YAML, named after the task id (which
    /// names the checkpoint rows and the replication slot), with the passwords.
    pub fn spec(&self, t: &TaskRow) -> ServiceResult<TaskSpec> {
        self.spec_from(t, &t.spec)
    }

    /// The runnable spec of `t` from `yaml` (its stored spec or a pending edit).
    pub fn spec_from(&self, t: &TaskRow, yaml: &str) -> ServiceResult<TaskSpec> {
        let mut spec = TaskSpec::from_yaml(yaml)
            .map_err(|e| ServiceError::Internal(format!("stored spec of {}: {e}", t.id)))?;
        spec.name = t.id.clone();
        let sealed: Sealed = serde_json::from_str(&t.secrets)
            .map_err(|e| ServiceError::Internal(format!("stored secrets of {}: {e}", t.id)))?;
        if let Some(s) = &sealed.source {
            spec.source.password = Some(self.secrets.open(s)?);
        }
        if let Some(s) = &sealed.target {
            spec.target.password = Some(self.secrets.open(s)?);
        }
        Ok(spec)
    }

    /// A task the caller may see.
    pub async fn visible_task(&self, caller: &Caller, id: &str) -> ServiceResult<TaskRow> {
        match self.store.task(id).await? {
            Some(t) if caller.sees(&t.tenant) => Ok(t),
            // another tenant's id looks exactly like a missing one
            _ => Err(ServiceError::NotFound(format!("task {id}"))),
        }
    }

    /// Applies `cause` to task `id`: the lifecycle table decides, a compare-and-set
    /// records it (retried when another actor changed the task in between).
    pub async fn apply(
        &self,
        id: &str,
        cause: Cause,
        reason: Option<&str>,
    ) -> ServiceResult<TaskRow> {
        for _ in 0..20 {
            let t = self
                .store
                .task(id)
                .await?
                .ok_or_else(|| ServiceError::NotFound(format!("task {id}")))?;
            // a frozen task returns to where it was when frozen
            let cause = match cause {
                Cause::Unfreeze(_) => Cause::Unfreeze(t.frozen_from.unwrap_or(State::Configuring)),
                c => c,
            };
            let to = lifecycle::next(t.kind, t.state, cause).map_err(ServiceError::Refused)?;
            let frozen_from = (to == State::Frozen).then_some(t.state);
            if let Some(updated_ms) = self
                .store
                .set_state(id, t.state, to, reason, frozen_from)
                .await?
            {
                tracing::info!(task = id, from = %t.state, to = %to, reason = reason.unwrap_or(""), "state");
                let from = t.state;
                let t = TaskRow {
                    state: to,
                    reason: reason.map(String::from),
                    frozen_from,
                    updated_ms,
                    ..t
                };
                if to.is_failure() && from != to {
                    crate::notify::send(
                        self,
                        &t,
                        "task_failed",
                        serde_json::json!({"from": from.id()}),
                    );
                }
                return Ok(t);
            }
        }
        Err(ServiceError::Conflict(format!(
            "task {id} kept changing under this action; try again"
        )))
    }

    /// A user action on a visible task.
    pub async fn act(
        &self,
        caller: &Caller,
        id: &str,
        action: Action,
        start_at_ms: Option<i64>,
    ) -> ServiceResult<Option<TaskRow>> {
        let t = self.visible_task(caller, id).await?;
        match action {
            Action::Delete => {
                lifecycle::next(t.kind, t.state, Cause::User(Action::Delete))
                    .map_err(ServiceError::Refused)?;
                if !self.store.delete_task(id, t.state).await? {
                    return Err(ServiceError::Conflict(format!(
                        "task {id} changed while being deleted; look at it again"
                    )));
                }
                Ok(None)
            }
            Action::Schedule => {
                let at = start_at_ms.ok_or_else(|| ServiceError::Invalid {
                    field: "start_at".into(),
                    reason: "schedule needs a start time (RFC 3339)".into(),
                })?;
                if at <= now_ms() {
                    return Err(ServiceError::Invalid {
                        field: "start_at".into(),
                        reason: "the scheduled start is in the past".into(),
                    });
                }
                lifecycle::next(t.kind, t.state, Cause::User(Action::Schedule))
                    .map_err(ServiceError::Refused)?;
                self.store.set_start_at(id, Some(at)).await?;
                let reason = format!("scheduled for {}", crate::store::rfc3339(at));
                self.apply(id, Cause::User(Action::Schedule), Some(&reason))
                    .await
                    .map(Some)
            }
            Action::Edit => Err(ServiceError::Invalid {
                field: "objects".into(),
                reason: "an edit needs the new objects: {include, exclude, rename}".into(),
            }),
            Action::Switchover | Action::Failover => {
                lifecycle::next(t.kind, t.state, Cause::User(action))
                    .map_err(ServiceError::Refused)?;
                if action == Action::Switchover && !self.spec(&t)?.rename.is_empty() {
                    return Err(ServiceError::Invalid {
                        field: "objects.rename".into(),
                        reason: "a switchover reverses the direction; a task that renames schemas cannot be reversed".into(),
                    });
                }
                self.store.set_pending_action(id, Some(action.id())).await?;
                let reason = match action {
                    Action::Switchover => "switchover requested: fencing the primary, then waiting for the standby to apply everything",
                    _ => "failover requested: promoting the standby without waiting for the primary",
                };
                match self.apply(id, Cause::User(action), Some(reason)).await {
                    Ok(t) => Ok(Some(t)),
                    Err(e) => {
                        self.store.set_pending_action(id, None).await?;
                        Err(e)
                    }
                }
            }
            a => {
                let reason = format!("{} requested", a.id());
                self.apply(id, Cause::User(a), Some(&reason))
                    .await
                    .map(Some)
            }
        }
    }
}

impl Control {
    /// A sync edit: the task's objects become `objects` (the task file's `objects:`
    /// section). Validated now; a worker applies it while the task shows `changing`.
    pub async fn edit(
        &self,
        caller: &Caller,
        id: &str,
        objects: serde_json::Value,
    ) -> ServiceResult<TaskRow> {
        let t = self.visible_task(caller, id).await?;
        lifecycle::next(t.kind, t.state, Cause::User(Action::Edit))
            .map_err(ServiceError::Refused)?;
        let invalid = |reason: String| ServiceError::Invalid {
            field: "objects".into(),
            reason,
        };
        if objects.is_null() {
            return Err(invalid(
                "an edit needs the new objects: {include, exclude, rename}".into(),
            ));
        }
        let objects: ferry_core::spec::ObjectsSpec =
            serde_json::from_value(objects).map_err(|e| invalid(e.to_string()))?;
        let mut doc: serde_norway::Value =
            serde_norway::from_str(&t.spec).map_err(|e| ServiceError::Internal(e.to_string()))?;
        let value = serde_norway::to_value(serde_json::json!({
            "include": objects.include,
            "exclude": objects.exclude,
            "rename": objects.rename,
        }))
        .map_err(|e| invalid(e.to_string()))?;
        if let serde_norway::Value::Mapping(m) = &mut doc {
            m.insert("objects".into(), value);
        }
        let yaml =
            serde_norway::to_string(&doc).map_err(|e| ServiceError::Internal(e.to_string()))?;
        TaskSpec::from_yaml(&yaml).map_err(|e| invalid(e.to_string()))?;
        self.store.set_pending_spec(id, Some(&yaml)).await?;
        match self
            .apply(
                id,
                Cause::User(Action::Edit),
                Some("applying the edited objects"),
            )
            .await
        {
            Ok(t) => Ok(t),
            Err(e) => {
                self.store.set_pending_spec(id, None).await?;
                Err(e)
            }
        }
    }

    /// Changes task `id`'s speed limits (`body`: `{"speed_limit": {key: value|null}}`,
    /// a JSON merge patch: null removes a limit, a key left out keeps it) in its stored
    /// task file and in a pending edit's; a running engine follows within a second
    /// (its worker reads the stored text on every pass).
    pub async fn set_speed_limit(
        &self,
        caller: &Caller,
        id: &str,
        body: serde_json::Value,
    ) -> ServiceResult<TaskRow> {
        use ferry_core::spec::{speed_limit_value, SPEED_LIMIT_KEYS};
        let invalid = |field: &str, reason: String| ServiceError::Invalid {
            field: field.into(),
            reason,
        };
        self.visible_task(caller, id).await?;
        let serde_json::Value::Object(top) = body else {
            return Err(invalid(
                "speed_limit",
                "send {\"speed_limit\": {\"copy_rows_per_second\": 50000, …}}".into(),
            ));
        };
        if let Some(k) = top.keys().find(|k| *k != "speed_limit") {
            return Err(invalid(
                k,
                format!("{k:?} cannot be changed here; only speed_limit can"),
            ));
        }
        let Some(serde_json::Value::Object(patch)) = top.get("speed_limit") else {
            return Err(invalid(
                "speed_limit",
                format!(
                    "an object of {}, each a number or null (no limit)",
                    SPEED_LIMIT_KEYS.join(", ")
                ),
            ));
        };
        let mut changes = Vec::new();
        for (k, v) in patch {
            let field = format!("speed_limit.{k}");
            let value = match v {
                serde_json::Value::Number(n) => n
                    .as_u64()
                    .map(serde_norway::Value::from)
                    .or_else(|| n.as_i64().map(serde_norway::Value::from))
                    .or_else(|| n.as_f64().map(serde_norway::Value::from))
                    .unwrap_or(serde_norway::Value::Null),
                serde_json::Value::Null => serde_norway::Value::Null,
                serde_json::Value::Bool(b) => serde_norway::Value::Bool(*b),
                serde_json::Value::String(s) => serde_norway::Value::String(s.clone()),
                // refused below as not a number
                _ => serde_norway::Value::String(v.to_string()),
            };
            speed_limit_value(k, &value).map_err(|e| {
                let text = e.to_string();
                let prefix = format!("{field}: ");
                invalid(
                    &field,
                    text.strip_prefix(&prefix).unwrap_or(&text).to_string(),
                )
            })?;
            changes.push((k.clone(), value));
        }
        let edit = |text: &str| -> ServiceResult<String> {
            let mut doc: serde_norway::Value =
                serde_norway::from_str(text).map_err(|e| ServiceError::Internal(e.to_string()))?;
            let serde_norway::Value::Mapping(m) = &mut doc else {
                return Err(ServiceError::Internal(
                    "the stored task is not a mapping".into(),
                ));
            };
            let mut limits = match m.get("speed_limit") {
                Some(serde_norway::Value::Mapping(l)) => l.clone(),
                _ => serde_norway::Mapping::new(),
            };
            for (k, v) in &changes {
                if v.is_null() {
                    limits.remove(k.as_str());
                } else {
                    limits.insert(k.as_str().into(), v.clone());
                }
            }
            if limits.is_empty() {
                m.remove("speed_limit");
            } else {
                m.insert("speed_limit".into(), serde_norway::Value::Mapping(limits));
            }
            let yaml =
                serde_norway::to_string(&doc).map_err(|e| ServiceError::Internal(e.to_string()))?;
            TaskSpec::from_yaml(&yaml).map_err(|e| invalid("speed_limit", e.to_string()))?;
            Ok(yaml)
        };
        for _ in 0..20 {
            let t = self.visible_task(caller, id).await?;
            let spec = edit(&t.spec)?;
            let pending = t.pending_spec.as_deref().map(edit).transpose()?;
            if self
                .store
                .replace_specs(
                    id,
                    (&t.spec, t.pending_spec.as_deref()),
                    (&spec, pending.as_deref()),
                )
                .await?
            {
                return self.visible_task(caller, id).await;
            }
        }
        Err(ServiceError::Internal(format!(
            "task {id} kept changing; try again"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every state change moves the task's `updated_ms`, in the row `apply` returns
    /// (what an action's response shows) and in the stored row.
    #[tokio::test]
    async fn a_state_change_moves_updated() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&format!("sqlite://{}", dir.path().join("m.db").display()))
            .await
            .unwrap();
        let secrets = Secrets::load(&dir.path().join("key")).unwrap();
        let c = Control::new(store, secrets);
        let yaml = "name: t\nkind: migration\nmode: full\n\
                    source: postgres://u@127.0.0.1:1/a\ntarget: postgres://u@127.0.0.1:1/b\n";
        let t = c.create_task("acme", yaml, None).await.unwrap();
        let mut last = t.updated_ms;
        for (cause, want) in [
            (Cause::Validated, State::Configuring),
            (Cause::User(Action::Start), State::Starting),
            (Cause::User(Action::End), State::Ending),
        ] {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            let moved = c.apply(&t.id, cause, None).await.unwrap();
            assert_eq!(moved.state, want);
            assert!(
                moved.updated_ms > last,
                "{want:?}: {} <= {last}",
                moved.updated_ms
            );
            let stored = c.store.task(&t.id).await.unwrap().unwrap();
            assert_eq!(stored.updated_ms, moved.updated_ms, "{want:?}");
            last = moved.updated_ms;
        }
    }

    #[test]
    fn passwords_leave_the_url() {
        let (u, p) = strip_password("mysql://app:s%40cret@db:3306/shop");
        assert_eq!(u, "mysql://app@db:3306/shop");
        assert_eq!(p.as_deref(), Some("s@cret"));
        let (u, p) = strip_password("postgres://postgres@h/db");
        assert_eq!(u, "postgres://postgres@h/db");
        assert_eq!(p, None);
        // a `+` or `&` written as is stays in the sealed password
        let (u, p) = strip_password("mysql://app:a+b&c@db/shop");
        assert_eq!(u, "mysql://app@db/shop");
        assert_eq!(p.as_deref(), Some("a+b&c"));
    }
}
