//! The backup and restore API (`/api/v1/backup/…`, `/api/v1/restores`): policies,
//! instant backups and cleanups, the task lists of the backup overview (data,
//! cleanup, secondary, drill) with their time filters, and restore tasks. A bad
//! request answers 400 with `{error, field, reason}`; tenants see their own only.

use super::{caller, since_ms, Shared};
use crate::backup::db::{BackupTaskFilter, BackupTaskRow, PolicyRow};
use crate::backup::policy::{self, PolicyInput, PolicySpec};
use crate::backup::run::{new_data_task, new_follow_up, RestoreSecrets};
use crate::backup::{schedule, state_label, TaskKind};
use crate::control::{random_hex, Caller};
use crate::error::ServiceError;
use crate::store::{now_ms, rfc3339};
use axum::extract::{Path, Query, State as AxState};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use ferry_backup::manifest::SetKind;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use utoipa::{IntoParams, ToSchema};

use super::schema::{to_json, ErrorBody, InvalidError};

/// An error of this API: a refused value is a 400 (a bad request), the rest as
/// elsewhere.
pub(crate) enum BadRequest {
    /// A service error.
    E(ServiceError),
    /// An answer already made (415).
    Raw(Box<Response>),
}

impl From<ServiceError> for BadRequest {
    fn from(e: ServiceError) -> Self {
        BadRequest::E(e)
    }
}

impl IntoResponse for BadRequest {
    fn into_response(self) -> Response {
        let e = match self {
            BadRequest::Raw(r) => return *r,
            BadRequest::E(e) => e,
        };
        match e {
            ServiceError::Invalid { field, reason } => (
                StatusCode::BAD_REQUEST,
                Json(to_json(&InvalidError {
                    error: format!("{field}: {reason}"),
                    field,
                    reason,
                })),
            )
                .into_response(),
            e => e.into_response(),
        }
    }
}

type BResult<T> = Result<T, BadRequest>;

fn invalid(field: &str, reason: impl Into<String>) -> BadRequest {
    BadRequest::E(ServiceError::Invalid {
        field: field.into(),
        reason: reason.into(),
    })
}

/// A JSON body: 415 without the JSON content type, 400 when it does not parse
/// (naming the field).
fn body<T: serde::de::DeserializeOwned>(headers: &HeaderMap, bytes: &[u8]) -> BResult<T> {
    let json = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim_start()
                .to_ascii_lowercase()
                .starts_with("application/json")
        });
    if !json {
        return Err(BadRequest::Raw(Box::new(
            (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                Json(json!({"error": "send the body as Content-Type: application/json"})),
            )
                .into_response(),
        )));
    }
    serde_json::from_slice(bytes).map_err(|e| invalid("body", e.to_string()))
}

/// The tenant a request acts for: the caller's own, or the one the admin names.
async fn owner(app: &Shared, c: &Caller, named: Option<&str>) -> BResult<String> {
    match (c, named) {
        (Caller::Tenant(t), None) => Ok(t.clone()),
        (Caller::Tenant(t), Some(x)) if x == t => Ok(x.to_string()),
        (Caller::Tenant(_), Some(_)) => Err(BadRequest::E(ServiceError::Forbidden(
            "a tenant acts for itself only".into(),
        ))),
        (Caller::Admin, Some(x)) => {
            if app.control.store.tenant(x).await?.is_none() {
                return Err(invalid("tenant", format!("no tenant {x:?}")));
            }
            Ok(x.to_string())
        }
        (Caller::Admin, None) => Err(invalid(
            "tenant",
            "the admin must say which tenant this is for",
        )),
    }
}

/// A policy the caller may see (404 otherwise).
async fn visible_policy(app: &Shared, c: &Caller, cluster: &str) -> BResult<PolicyRow> {
    match app.control.store.policy(cluster).await? {
        Some(p) if c.sees(&p.tenant) => Ok(p),
        _ => Err(BadRequest::E(ServiceError::NotFound(format!(
            "backup policy of cluster {cluster:?}"
        )))),
    }
}

// ---- policies ----

/// A cluster's backup policy as the API shows it (no passwords).
#[derive(Serialize, ToSchema)]
pub(crate) struct Policy {
    /// The cluster (policy) name.
    cluster: String,
    /// Owner.
    tenant: String,
    /// The database backed up (without its password).
    source: String,
    /// Where sets go.
    storage: String,
    /// Cron schedule of full sets (UTC).
    full: Option<String>,
    /// Cron schedule of incremental sets (UTC).
    incremental: Option<String>,
    /// Retention: `30d` (days) or `7` (sets).
    retain: String,
    /// The second storage completed sets are copied to.
    secondary: Option<String>,
    /// Cron schedule of restore drills (UTC).
    drill: Option<String>,
    /// The scratch database drills restore into (without its password).
    drill_target: Option<String>,
    /// Included tables.
    include: Vec<String>,
    /// Excluded tables.
    exclude: Vec<String>,
    /// Log backup on (the cluster's log backup task archives its change stream).
    log: bool,
    /// The log backup's method: `logical` or `physical`.
    log_method: String,
    /// When the next full set is due.
    #[schema(format = DateTime)]
    next_full: Option<String>,
    /// When the next incremental set is due.
    #[schema(format = DateTime)]
    next_incremental: Option<String>,
    /// When the next drill is due.
    #[schema(format = DateTime)]
    next_drill: Option<String>,
    /// Bytes the cluster's kept sets hold (and their secondary copies).
    stored_bytes: i64,
    /// Created.
    #[schema(format = DateTime)]
    created_at: String,
    /// Last change.
    #[schema(format = DateTime)]
    updated_at: String,
}

/// Every visible policy.
#[derive(Serialize, ToSchema)]
pub(crate) struct PolicyList {
    /// By cluster name.
    policies: Vec<Policy>,
}

async fn policy_view(app: &Shared, p: &PolicyRow) -> BResult<Policy> {
    let spec: PolicySpec = serde_json::from_str(&p.spec)
        .map_err(|e| BadRequest::E(ServiceError::Internal(format!("stored policy: {e}"))))?;
    let (rows, _) = app
        .control
        .store
        .backup_tasks(&BackupTaskFilter {
            cluster: Some(p.cluster.clone()),
            kinds: vec!["data".into(), "secondary".into()],
            limit: 100_000,
            ..Default::default()
        })
        .await?;
    let stored_bytes = rows
        .iter()
        .filter(|r| r.state == "completed" && !r.removed)
        .map(|r| r.bytes)
        .sum();
    Ok(Policy {
        cluster: p.cluster.clone(),
        tenant: p.tenant.clone(),
        source: spec.source,
        storage: spec.storage,
        full: spec.full,
        incremental: spec.incremental,
        retain: spec.retain,
        secondary: spec.secondary,
        drill: spec.drill,
        drill_target: spec.drill_target,
        include: spec.include,
        exclude: spec.exclude,
        log: spec.log,
        log_method: if spec.log_method.is_empty() {
            "logical".into()
        } else {
            spec.log_method
        },
        next_full: p.full_next_ms.map(rfc3339),
        next_incremental: p.incr_next_ms.map(rfc3339),
        next_drill: p.drill_next_ms.map(rfc3339),
        stored_bytes,
        created_at: rfc3339(p.created_ms),
        updated_at: rfc3339(p.updated_ms),
    })
}

/// List backup policies
#[utoipa::path(
    get,
    path = "/api/v1/backup/policies",
    tag = "backup",
    responses(
        (status = 200, description = "the visible policies", body = PolicyList),
        (status = 401, description = "no or unknown token", body = ErrorBody),
    )
)]
pub(crate) async fn list_policies(
    AxState(app): AxState<Shared>,
    headers: HeaderMap,
) -> BResult<Json<Value>> {
    let c = caller(&app, &headers).await?;
    let tenant = match &c {
        Caller::Admin => None,
        Caller::Tenant(t) => Some(t.as_str()),
    };
    let mut out = Vec::new();
    for p in app.control.store.policies(tenant).await? {
        out.push(policy_view(&app, &p).await?);
    }
    Ok(Json(to_json(&PolicyList { policies: out })))
}

/// A cluster's backup policy
#[utoipa::path(
    get,
    path = "/api/v1/backup/policies/{cluster}",
    tag = "backup",
    params(("cluster" = String, Path, description = "the cluster (policy) name")),
    responses(
        (status = 200, description = "the policy", body = Policy),
        (status = 401, description = "no or unknown token", body = ErrorBody),
        (status = 404, description = "no such policy (or not this tenant's)", body = ErrorBody),
    )
)]
pub(crate) async fn show_policy(
    AxState(app): AxState<Shared>,
    headers: HeaderMap,
    Path(cluster): Path<String>,
) -> BResult<Json<Value>> {
    let c = caller(&app, &headers).await?;
    let p = visible_policy(&app, &c, &cluster).await?;
    Ok(Json(to_json(&policy_view(&app, &p).await?)))
}

/// The next due time of `text` (None when unset); a schedule whose text did not
/// change keeps its stored time (so a replaced policy does not lose a due run).
fn next_due(
    field: &str,
    text: &Option<String>,
    old_text: Option<&Option<String>>,
    old: Option<i64>,
    now: i64,
) -> BResult<Option<i64>> {
    let Some(t) = text else {
        return Ok(None);
    };
    if old_text == Some(text) && old.is_some() {
        return Ok(old);
    }
    let cron = schedule::parse(t).map_err(|e| invalid(field, e))?;
    let next = schedule::next_after(&cron, now);
    if next.is_none() {
        return Err(invalid(field, format!("{t:?} never fires")));
    }
    Ok(next)
}

/// Create or replace a cluster's backup policy
#[utoipa::path(
    put,
    path = "/api/v1/backup/policies/{cluster}",
    tag = "backup",
    params(("cluster" = String, Path, description = "the cluster (policy) name: [a-z0-9_-], at most 63")),
    request_body = PolicyInput,
    responses(
        (status = 200, description = "replaced", body = Policy),
        (status = 201, description = "created", body = Policy),
        (status = 400, description = "a bad field (cron text, retention, URL), named", body = ErrorBody),
        (status = 401, description = "no or unknown token", body = ErrorBody),
        (status = 403, description = "a tenant setting another's policy", body = ErrorBody),
        (status = 409, description = "the cluster name belongs to another tenant", body = ErrorBody),
        (status = 413, description = "body larger than 2 MB", body = ErrorBody),
        (status = 415, description = "the body is not sent as Content-Type: application/json", body = ErrorBody),
    )
)]
pub(crate) async fn put_policy(
    AxState(app): AxState<Shared>,
    headers: HeaderMap,
    Path(cluster): Path<String>,
    bytes: axum::body::Bytes,
) -> BResult<Response> {
    let c = caller(&app, &headers).await?;
    if !policy::valid_cluster(&cluster) {
        return Err(invalid(
            "cluster",
            format!("{cluster:?}: a cluster name is 1 to 63 of a-z, 0-9, '-' and '_'"),
        ));
    }
    let input: PolicyInput = body(&headers, &bytes)?;
    let tenant = owner(&app, &c, input.tenant.as_deref()).await?;
    let (spec, sealed) = policy::validate(&input, app.control.secrets())?;
    let store = &app.control.store;
    let old = store.policy(&cluster).await?;
    if let Some(o) = &old {
        if !c.sees(&o.tenant) || o.tenant != tenant {
            return Err(BadRequest::E(ServiceError::Conflict(format!(
                "the cluster name {cluster:?} is taken; choose another"
            ))));
        }
    }
    let old_spec: Option<PolicySpec> = old
        .as_ref()
        .and_then(|o| serde_json::from_str(&o.spec).ok());
    let now = now_ms();
    let row = PolicyRow {
        cluster: cluster.clone(),
        tenant,
        full_next_ms: next_due(
            "full",
            &spec.full,
            old_spec.as_ref().map(|s| &s.full),
            old.as_ref().and_then(|o| o.full_next_ms),
            now,
        )?,
        incr_next_ms: next_due(
            "incremental",
            &spec.incremental,
            old_spec.as_ref().map(|s| &s.incremental),
            old.as_ref().and_then(|o| o.incr_next_ms),
            now,
        )?,
        drill_next_ms: next_due(
            "drill",
            &spec.drill,
            old_spec.as_ref().map(|s| &s.drill),
            old.as_ref().and_then(|o| o.drill_next_ms),
            now,
        )?,
        spec: serde_json::to_string(&spec).expect("serialisable"),
        secrets: serde_json::to_string(&sealed).expect("serialisable"),
        created_ms: old.as_ref().map_or(now, |o| o.created_ms),
        updated_ms: now,
    };
    let created = store.put_policy(&row).await?;
    crate::backup::log::follow_policy(
        store,
        &cluster,
        &row.tenant,
        &spec,
        old_spec.as_ref().is_some_and(|s| s.log),
    )
    .await?;
    let p = store
        .policy(&cluster)
        .await?
        .ok_or_else(|| BadRequest::E(ServiceError::Internal("the policy was not stored".into())))?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(to_json(&policy_view(&app, &p).await?))).into_response())
}

/// Delete a cluster's backup policy (its sets stay in storage, its tasks in the lists)
#[utoipa::path(
    delete,
    path = "/api/v1/backup/policies/{cluster}",
    tag = "backup",
    params(("cluster" = String, Path, description = "the cluster (policy) name")),
    responses(
        (status = 204, description = "deleted"),
        (status = 401, description = "no or unknown token", body = ErrorBody),
        (status = 404, description = "no such policy (or not this tenant's)", body = ErrorBody),
    )
)]
pub(crate) async fn delete_policy(
    AxState(app): AxState<Shared>,
    headers: HeaderMap,
    Path(cluster): Path<String>,
) -> BResult<StatusCode> {
    let c = caller(&app, &headers).await?;
    let p = visible_policy(&app, &c, &cluster).await?;
    app.control.store.delete_policy(&cluster).await?;
    crate::backup::log::stop(&app.control.store, &cluster).await?;
    // what the cluster kept on its source for incrementals (a replication slot)
    // goes with the policy, in the background (the source may be slow or gone)
    if let (Ok(spec), Ok(sealed)) = (
        serde_json::from_str::<PolicySpec>(&p.spec),
        serde_json::from_str::<crate::backup::policy::PolicySecrets>(&p.secrets),
    ) {
        if let Ok(mut source) = ferry_core::Endpoint::parse(&spec.source, "") {
            source.password = sealed
                .source
                .as_ref()
                .and_then(|s| app.control.secrets().open(s).ok());
            tokio::spawn(async move {
                if let Err(e) = ferry_backup::backup::drop_anchor(&cluster, &source).await {
                    tracing::warn!(cluster = %cluster, "dropping the cluster's anchor on its source: {}", crate::backup::reason_of(&e));
                }
            });
        }
    }
    Ok(StatusCode::NO_CONTENT)
}

/// An instant backup.
#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct InstantBackup {
    /// `full` (default) or `incremental` (the changes since the cluster's newest set).
    #[serde(rename = "type")]
    #[schema(pattern = "^(full|incremental)$")]
    kind: Option<String>,
}

fn has_body(bytes: &[u8]) -> bool {
    !bytes.iter().all(u8::is_ascii_whitespace)
}

/// Take a data backup now (instant backup)
#[utoipa::path(
    post,
    path = "/api/v1/backup/policies/{cluster}/backups",
    tag = "backup",
    params(("cluster" = String, Path, description = "the cluster (policy) name")),
    request_body(content = Option<InstantBackup>, description = "optional; type full (default) or incremental"),
    responses(
        (status = 202, description = "the data backup task (running)", body = BackupTask),
        (status = 400, description = "a bad type", body = ErrorBody),
        (status = 401, description = "no or unknown token", body = ErrorBody),
        (status = 404, description = "no such policy (or not this tenant's)", body = ErrorBody),
        (status = 409, description = "a backup of the cluster is running", body = ErrorBody),
        (status = 413, description = "body larger than 2 MB", body = ErrorBody),
        (status = 415, description = "the body is not sent as Content-Type: application/json", body = ErrorBody),
    )
)]
pub(crate) async fn instant_backup(
    AxState(app): AxState<Shared>,
    headers: HeaderMap,
    Path(cluster): Path<String>,
    bytes: axum::body::Bytes,
) -> BResult<(StatusCode, Json<Value>)> {
    let c = caller(&app, &headers).await?;
    let req: InstantBackup = if has_body(&bytes) {
        body(&headers, &bytes)?
    } else {
        InstantBackup::default()
    };
    let kind = match req.kind.as_deref() {
        None | Some("full") => SetKind::Full,
        Some("incremental") => SetKind::Incremental,
        Some(x) => {
            return Err(invalid(
                "type",
                format!("{x:?} is not a backup type; write full or incremental"),
            ))
        }
    };
    let p = visible_policy(&app, &c, &cluster).await?;
    let store = &app.control.store;
    if let Some(id) = store.running_data_task(&cluster).await? {
        return Err(BadRequest::E(ServiceError::Conflict(format!(
            "backup {id} of cluster {cluster:?} is running; wait for it to end"
        ))));
    }
    let t = new_data_task(&p.tenant, &cluster, kind, "instant");
    store.insert_backup_task(&t).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(to_json(&task_view(&app, &t).await?)),
    ))
}

/// Remove the sets past retention now (a cleanup task)
#[utoipa::path(
    post,
    path = "/api/v1/backup/policies/{cluster}/cleanups",
    tag = "backup",
    params(("cluster" = String, Path, description = "the cluster (policy) name")),
    responses(
        (status = 202, description = "the cleanup task (pending)", body = BackupTask),
        (status = 401, description = "no or unknown token", body = ErrorBody),
        (status = 404, description = "no such policy (or not this tenant's)", body = ErrorBody),
    )
)]
pub(crate) async fn cleanup_now(
    AxState(app): AxState<Shared>,
    headers: HeaderMap,
    Path(cluster): Path<String>,
) -> BResult<(StatusCode, Json<Value>)> {
    let c = caller(&app, &headers).await?;
    let p = visible_policy(&app, &c, &cluster).await?;
    let t = new_follow_up(
        TaskKind::Cleanup,
        &p.tenant,
        &cluster,
        None,
        None,
        json!({"trigger": "on demand"}),
    );
    app.control.store.insert_backup_task(&t).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(to_json(&task_view(&app, &t).await?)),
    ))
}

// ---- tasks ----

/// A secondary copy of a data backup's set.
#[derive(Serialize, ToSchema)]
pub(crate) struct SecondaryCopy {
    /// The secondary task's id.
    id: String,
    /// Its state.
    state: String,
    /// Where the copy is.
    storage_dir: Option<String>,
}

/// A data backup, cleanup, secondary, drill or restore task (the columns of the
/// backup overview; `detail` has everything the kind records).
#[derive(Serialize, ToSchema)]
pub(crate) struct BackupTask {
    /// Id.
    id: String,
    /// `data`, `cleanup`, `secondary`, `secondary-log`, `drill` or `restore`.
    #[schema(pattern = "^(data|cleanup|secondary|secondary-log|drill|restore)$")]
    kind: String,
    /// The cluster (policy).
    cluster: String,
    /// Owner.
    tenant: String,
    /// Data backups: `full` or `incremental`.
    #[serde(rename = "type")]
    backup_type: Option<String>,
    /// Data backups: `logical`.
    method: Option<String>,
    /// The set written, copied or restored.
    set_id: Option<String>,
    /// Data backups: the source server's version.
    data_version: Option<String>,
    /// Where the set is.
    storage_dir: Option<String>,
    /// `pending`, `running`, `completed`, `failed`; restores: `prechecking`,
    /// `precheck_failed`, `restoring`, `succeeded`, `failed`.
    state: String,
    /// The state's label.
    state_label: String,
    /// Why it failed (with the fix).
    reason: Option<String>,
    /// Work started.
    #[schema(format = DateTime)]
    start: Option<String>,
    /// Work ended.
    #[schema(format = DateTime)]
    end: Option<String>,
    /// Created.
    #[schema(format = DateTime)]
    created_at: String,
    /// Data backups: whether the set has a secondary copy.
    has_secondary: bool,
    /// Data backups: the secondary copies.
    secondary: Vec<SecondaryCopy>,
    /// A cleanup removed the set.
    removed: bool,
    /// The data backup a cleanup or secondary task followed.
    parent: Option<String>,
    /// Everything the kind records (rows, bytes, removed sets, per-table progress,
    /// differences, …).
    #[schema(value_type = Object)]
    detail: Value,
}

/// A page of backup tasks.
#[derive(Serialize, ToSchema)]
pub(crate) struct BackupTaskPage {
    /// Newest first.
    tasks: Vec<BackupTask>,
    /// How many match in all.
    total: i64,
    /// Page size.
    limit: i64,
    /// Skipped.
    offset: i64,
}

async fn task_view(app: &Shared, t: &BackupTaskRow) -> BResult<BackupTask> {
    let detail: Value = serde_json::from_str(&t.detail).unwrap_or(Value::Null);
    let s = |k: &str| detail.get(k).and_then(Value::as_str).map(String::from);
    let secondary = if t.kind == "data" {
        let (rows, _) = app
            .control
            .store
            .backup_tasks(&BackupTaskFilter {
                parent: Some(t.id.clone()),
                kinds: vec!["secondary".into()],
                limit: 100,
                ..Default::default()
            })
            .await?;
        rows.iter()
            .map(|r| SecondaryCopy {
                id: r.id.clone(),
                state: r.state.clone(),
                storage_dir: serde_json::from_str::<Value>(&r.detail).ok().and_then(|d| {
                    d.get("storage_dir")
                        .and_then(Value::as_str)
                        .map(String::from)
                }),
            })
            .collect()
    } else {
        Vec::new()
    };
    Ok(BackupTask {
        id: t.id.clone(),
        kind: t.kind.clone(),
        cluster: t.cluster.clone(),
        tenant: t.tenant.clone(),
        backup_type: s("type"),
        method: s("method"),
        set_id: t
            .set_id
            .clone()
            .or_else(|| s("set_id"))
            .or_else(|| s("from_set")),
        data_version: s("data_version"),
        storage_dir: s("storage_dir"),
        state: t.state.clone(),
        state_label: state_label(&t.state).into(),
        reason: t.reason.clone(),
        start: t.started_ms.map(rfc3339),
        end: t.ended_ms.map(rfc3339),
        created_at: rfc3339(t.created_ms),
        has_secondary: secondary.iter().any(|c| c.state == "completed"),
        secondary,
        removed: t.removed,
        parent: t.parent.clone(),
        detail,
    })
}

/// The filters of the backup task lists.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct TaskQuery {
    /// `data` (default), `cleanup`, `secondary`, `secondary-log` (copies of the log
    /// archive), `drill`, or `all`.
    #[param(pattern = "^(data|cleanup|secondary|secondary-log|drill|all)$")]
    kind: Option<String>,
    /// Only this cluster's.
    cluster: Option<String>,
    /// Created in the last `24h`, `7d`, `30d` (any number of m, h or d).
    since: Option<String>,
    /// Created at or after (RFC 3339 or a date); not with since.
    from: Option<String>,
    /// Created before (RFC 3339 or a date).
    to: Option<String>,
    /// Page size.
    #[param(minimum = 1, maximum = 500, default = 50)]
    limit: Option<i64>,
    /// Tasks to skip.
    #[param(minimum = 0, default = 0)]
    offset: Option<i64>,
}

/// The time window of `since` / `from` / `to`.
fn window(
    since: Option<&str>,
    from: Option<&str>,
    to: Option<&str>,
) -> BResult<(Option<i64>, Option<i64>)> {
    if since.is_some() && (from.is_some() || to.is_some()) {
        return Err(invalid(
            "since",
            "since is a window ending now; give either since or from/to",
        ));
    }
    if let Some(s) = since {
        let ok = s.len() > 1
            && s[..s.len() - 1].bytes().all(|b| b.is_ascii_digit())
            && matches!(s.as_bytes()[s.len() - 1], b'm' | b'h' | b'd');
        if !ok {
            return Err(invalid(
                "since",
                format!("{s:?}: write 24h, 7d, 30d (a number and m, h or d), or use from/to"),
            ));
        }
        return Ok((Some(since_ms("since", s)?), None));
    }
    let from = from.map(|s| since_ms("from", s)).transpose()?;
    let to = to.map(|s| since_ms("to", s)).transpose()?;
    if let (Some(a), Some(b)) = (from, to) {
        if b < a {
            return Err(invalid("to", "the window ends before it starts"));
        }
    }
    Ok((from, to))
}

fn page(limit: Option<i64>, offset: Option<i64>) -> BResult<(i64, i64)> {
    let limit = limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(invalid("limit", "between 1 and 500"));
    }
    let offset = offset.unwrap_or(0);
    if offset < 0 {
        return Err(invalid("offset", "0 or more"));
    }
    Ok((limit, offset))
}

async fn task_page(app: &Shared, f: BackupTaskFilter) -> BResult<Json<Value>> {
    let (rows, total) = app.control.store.backup_tasks(&f).await?;
    let mut tasks = Vec::with_capacity(rows.len());
    for r in &rows {
        tasks.push(task_view(app, r).await?);
    }
    Ok(Json(to_json(&BackupTaskPage {
        tasks,
        total,
        limit: f.limit,
        offset: f.offset,
    })))
}

fn tenant_of(c: &Caller) -> Option<String> {
    match c {
        Caller::Admin => None,
        Caller::Tenant(t) => Some(t.clone()),
    }
}

/// List data backup, cleanup, secondary or drill tasks, newest first
#[utoipa::path(
    get,
    path = "/api/v1/backup/tasks",
    tag = "backup",
    params(TaskQuery),
    responses(
        (status = 200, description = "a page of tasks", body = BackupTaskPage),
        (status = 400, description = "a bad filter, named", body = ErrorBody),
        (status = 401, description = "no or unknown token", body = ErrorBody),
    )
)]
pub(crate) async fn list_tasks(
    AxState(app): AxState<Shared>,
    headers: HeaderMap,
    Query(q): Query<TaskQuery>,
) -> BResult<Json<Value>> {
    let c = caller(&app, &headers).await?;
    let kinds = match q.kind.as_deref().unwrap_or("data") {
        "all" => vec!["data", "cleanup", "secondary", "secondary-log", "drill"],
        k @ ("data" | "cleanup" | "secondary" | "secondary-log" | "drill") => vec![k],
        k => {
            return Err(invalid(
                "kind",
                format!("{k:?}: write data, cleanup, secondary, secondary-log, drill or all (restores are at /api/v1/restores, log backup tasks at /api/v1/backup/logs)"),
            ))
        }
    };
    let (since_ms, until_ms) = window(q.since.as_deref(), q.from.as_deref(), q.to.as_deref())?;
    let (limit, offset) = page(q.limit, q.offset)?;
    task_page(
        &app,
        BackupTaskFilter {
            tenant: tenant_of(&c),
            kinds: kinds.into_iter().map(String::from).collect(),
            cluster: q.cluster,
            parent: None,
            since_ms,
            until_ms,
            limit,
            offset,
        },
    )
    .await
}

async fn visible_task(app: &Shared, c: &Caller, id: &str, restore: bool) -> BResult<BackupTaskRow> {
    match app.control.store.backup_task(id).await? {
        Some(t) if c.sees(&t.tenant) && (t.kind == "restore") == restore => Ok(t),
        _ => Err(BadRequest::E(ServiceError::NotFound(format!(
            "{} {id}",
            if restore { "restore" } else { "backup task" }
        )))),
    }
}

/// A data backup, cleanup, secondary or drill task
#[utoipa::path(
    get,
    path = "/api/v1/backup/tasks/{id}",
    tag = "backup",
    params(("id" = String, Path, description = "the task id")),
    responses(
        (status = 200, description = "the task", body = BackupTask),
        (status = 401, description = "no or unknown token", body = ErrorBody),
        (status = 404, description = "no such task (or not this tenant's)", body = ErrorBody),
    )
)]
pub(crate) async fn show_task(
    AxState(app): AxState<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> BResult<Json<Value>> {
    let c = caller(&app, &headers).await?;
    let t = visible_task(&app, &c, &id, false).await?;
    Ok(Json(to_json(&task_view(&app, &t).await?)))
}

// ---- restores ----

/// A new restore: from a set (an incremental brings its chain), a dump file, or a
/// cluster to a point in time (`from_cluster` + `until`).
#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewRestore {
    /// The set to restore (one of from_set, from_dump, from_cluster).
    from_set: Option<String>,
    /// Point-in-time restore: the cluster whose sets and log archive are restored
    /// (with until).
    from_cluster: Option<String>,
    /// Point-in-time restore: where to stop — a time (2026-12-01T10:15:00Z), a
    /// position (lsn:0/3A00F10, binlog:FILE:POS), a GTID (gtid:0-1-4711) or a mark
    /// (mark:NAME).
    until: Option<String>,
    /// A dump file's storage URL (mysqldump / mariadb-dump SQL, pg_dump plain SQL or
    /// custom format).
    from_dump: Option<String>,
    /// The cluster whose storage holds the set (default: the one whose backup
    /// wrote it).
    cluster: Option<String>,
    /// The storage that holds the set (default: the cluster's).
    storage: Option<String>,
    /// The database to restore into (the password is sealed at rest).
    target: String,
    /// Only these tables.
    #[serde(default)]
    include: Vec<String>,
    /// Not these tables.
    #[serde(default)]
    exclude: Vec<String>,
    /// Tables already on the target: fail (default), drop, truncate, append.
    #[schema(pattern = "^(fail|drop|truncate|append)$")]
    existing_data: Option<String>,
    /// Names the restore's checkpoints on the target (default from the task id).
    #[schema(pattern = "^[a-z0-9_]{1,40}$")]
    name: Option<String>,
    /// Admin only: the owning tenant.
    tenant: Option<String>,
}

/// Restore a set or a dump into a database (a restore task)
#[utoipa::path(
    post,
    path = "/api/v1/restores",
    tag = "backup",
    request_body = NewRestore,
    responses(
        (status = 202, description = "the restore task (prechecking)", body = BackupTask),
        (status = 400, description = "a bad field, named", body = ErrorBody),
        (status = 401, description = "no or unknown token", body = ErrorBody),
        (status = 403, description = "a tenant restoring for another", body = ErrorBody),
        (status = 404, description = "no such cluster (or not this tenant's)", body = ErrorBody),
        (status = 413, description = "body larger than 2 MB", body = ErrorBody),
        (status = 415, description = "the body is not sent as Content-Type: application/json", body = ErrorBody),
    )
)]
pub(crate) async fn create_restore(
    AxState(app): AxState<Shared>,
    headers: HeaderMap,
    bytes: axum::body::Bytes,
) -> BResult<(StatusCode, Json<Value>)> {
    let c = caller(&app, &headers).await?;
    let r: NewRestore = body(&headers, &bytes)?;
    let tenant = owner(&app, &c, r.tenant.as_deref()).await?;
    let from_set = r
        .from_set
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty());
    let from_dump = r
        .from_dump
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty());
    let from_cluster = r
        .from_cluster
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty());
    let until = r.until.as_deref().map(str::trim).filter(|s| !s.is_empty());
    match (from_cluster, until) {
        (Some(_), None) => {
            return Err(invalid(
                "until",
                "a point-in-time restore says where to stop: until (a time, lsn:…, binlog:…, gtid:… or mark:…)",
            ))
        }
        (None, Some(_)) => {
            return Err(invalid(
                "from_cluster",
                "until needs the cluster to restore: from_cluster",
            ))
        }
        (Some(cl), Some(u)) => {
            if from_set.is_some() || from_dump.is_some() {
                return Err(invalid(
                    "from_cluster",
                    "give from_cluster + until, from_set or from_dump — one of them",
                ));
            }
            if !policy::valid_cluster(cl) {
                return Err(invalid(
                    "from_cluster",
                    format!("{cl:?}: a cluster name is 1 to 63 of a-z, 0-9, '-' and '_'"),
                ));
            }
            ferry_backup::log::RestorePoint::parse(u).map_err(|e| {
                invalid(
                    "until",
                    format!("{}{}", e.message, e.hint.map(|h| format!("; {h}")).unwrap_or_default()),
                )
            })?;
        }
        (None, None) => {}
    }
    match (from_set, from_dump) {
        _ if from_cluster.is_some() => {}
        (Some(_), Some(_)) => {
            return Err(invalid("from_dump", "give from_set or from_dump, not both"))
        }
        (None, None) => {
            return Err(invalid(
                "from_set",
                "say what to restore: from_set (a set id) or from_dump (a dump file's URL)",
            ))
        }
        (Some(s), None) if !ferry_backup::layout::valid_set_id(s) => {
            return Err(invalid(
                "from_set",
                format!("{s:?} is not a set id (see `ferry backup list`)"),
            ))
        }
        (None, Some(d)) => {
            policy::storage_url("from_dump", d)?;
        }
        _ => {}
    }
    let (target, target_pw) = policy::database_url("target", &r.target)?;
    let existing = r.existing_data.clone().unwrap_or_else(|| "fail".into());
    if !matches!(existing.as_str(), "fail" | "drop" | "truncate" | "append") {
        return Err(invalid(
            "existing_data",
            format!("{existing:?}: write fail, drop, truncate or append"),
        ));
    }
    if let Some(n) = &r.name {
        if n.is_empty()
            || n.len() > 40
            || !n
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        {
            return Err(invalid(
                "name",
                format!("{n:?}: 1 to 40 of a-z, 0-9 and '_'"),
            ));
        }
    }
    ferry_core::select::ObjectFilter::new(&r.include, &r.exclude)
        .map_err(|e| invalid("include", e.to_string()))?;
    let storage = r
        .storage
        .as_deref()
        .map(|s| policy::storage_url("storage", s))
        .transpose()?;
    let cluster = match from_cluster.map(String::from).or(r.cluster.clone()) {
        Some(cl) => {
            let p = visible_policy(&app, &c, &cl).await?;
            if p.tenant != tenant {
                return Err(BadRequest::E(ServiceError::NotFound(format!(
                    "backup policy of cluster {cl:?}"
                ))));
            }
            cl
        }
        None => String::new(),
    };
    let now = now_ms();
    let id = format!("r{}", random_hex(6));
    let detail = json!({
        "from_set": from_set,
        "from_dump": from_dump,
        "from_cluster": from_cluster,
        "until": until,
        "storage": storage,
        "target": target,
        "include": r.include,
        "exclude": r.exclude,
        "existing_data": existing,
        "name": r.name.clone().unwrap_or_else(|| format!("restore_{id}")),
    });
    let sealed = RestoreSecrets {
        target: target_pw.map(|p| app.control.secrets().seal(&p)),
    };
    let t = BackupTaskRow {
        id,
        tenant,
        cluster,
        kind: TaskKind::Restore.id().into(),
        state: TaskKind::Restore.first_state().into(),
        detail: detail.to_string(),
        secrets: serde_json::to_string(&sealed).expect("serialisable"),
        set_id: from_set.map(String::from),
        created_ms: now,
        started_ms: Some(now),
        updated_ms: now,
        ..BackupTaskRow::default()
    };
    app.control.store.insert_backup_task(&t).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(to_json(&task_view(&app, &t).await?)),
    ))
}

/// The filters of the restore list.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct RestoreQuery {
    /// Created in the last `24h`, `7d`, `30d`.
    since: Option<String>,
    /// Created at or after (RFC 3339 or a date); not with since.
    from: Option<String>,
    /// Created before (RFC 3339 or a date).
    to: Option<String>,
    /// Page size.
    #[param(minimum = 1, maximum = 500, default = 50)]
    limit: Option<i64>,
    /// Tasks to skip.
    #[param(minimum = 0, default = 0)]
    offset: Option<i64>,
}

/// List restore tasks, newest first
#[utoipa::path(
    get,
    path = "/api/v1/restores",
    tag = "backup",
    params(RestoreQuery),
    responses(
        (status = 200, description = "a page of restore tasks", body = BackupTaskPage),
        (status = 400, description = "a bad filter, named", body = ErrorBody),
        (status = 401, description = "no or unknown token", body = ErrorBody),
    )
)]
pub(crate) async fn list_restores(
    AxState(app): AxState<Shared>,
    headers: HeaderMap,
    Query(q): Query<RestoreQuery>,
) -> BResult<Json<Value>> {
    let c = caller(&app, &headers).await?;
    let (since_ms, until_ms) = window(q.since.as_deref(), q.from.as_deref(), q.to.as_deref())?;
    let (limit, offset) = page(q.limit, q.offset)?;
    task_page(
        &app,
        BackupTaskFilter {
            tenant: tenant_of(&c),
            kinds: vec!["restore".into()],
            since_ms,
            until_ms,
            limit,
            offset,
            ..Default::default()
        },
    )
    .await
}

/// A restore task: state, reason, per-table progress
#[utoipa::path(
    get,
    path = "/api/v1/restores/{id}",
    tag = "backup",
    params(("id" = String, Path, description = "the restore task id")),
    responses(
        (status = 200, description = "the restore task", body = BackupTask),
        (status = 401, description = "no or unknown token", body = ErrorBody),
        (status = 404, description = "no such restore (or not this tenant's)", body = ErrorBody),
    )
)]
pub(crate) async fn show_restore(
    AxState(app): AxState<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> BResult<Json<Value>> {
    let c = caller(&app, &headers).await?;
    let t = visible_task(&app, &c, &id, true).await?;
    Ok(Json(to_json(&task_view(&app, &t).await?)))
}

// ---- log backup ----

/// A cluster's log backup task (the columns of seed 004's log backup list).
#[derive(Serialize, ToSchema)]
pub(crate) struct LogTask {
    /// The cluster (policy).
    cluster: String,
    /// Owner.
    tenant: String,
    /// `logical` or `physical`.
    method: String,
    /// The service node archiving it (its id starts with the host name).
    host: Option<String>,
    /// The latest backup point: every transaction committed at or before it is
    /// durably archived.
    #[schema(format = DateTime)]
    latest_point: Option<String>,
    /// Now − the latest backup point, in seconds (computed when read).
    latency_seconds: Option<f64>,
    /// Where the archive is.
    storage_dir: String,
    /// `starting`, `running`, `stopping`, `stopped`, `failed`.
    #[schema(pattern = "^(starting|running|stopping|stopped|failed)$")]
    state: String,
    /// The state's label.
    state_label: String,
    /// Why it failed (with the fix).
    reason: Option<String>,
    /// While running: the transient fault being retried (source restart, cut link).
    recovering: Option<String>,
    /// The source position the archive is complete to.
    position: Option<String>,
    /// Pieces stored by the current run.
    pieces: i64,
    /// Created.
    #[schema(format = DateTime)]
    created_at: String,
    /// Last change.
    #[schema(format = DateTime)]
    updated_at: String,
}

/// A page of log backup tasks.
#[derive(Serialize, ToSchema)]
pub(crate) struct LogTaskPage {
    /// By cluster name.
    tasks: Vec<LogTask>,
    /// How many match in all.
    total: i64,
    /// Page size.
    limit: i64,
    /// Skipped.
    offset: i64,
}

fn log_view(r: &crate::backup::log::LogTaskRow) -> LogTask {
    let now_us = now_ms() * 1000;
    LogTask {
        cluster: r.cluster.clone(),
        tenant: r.tenant.clone(),
        method: r.method.clone(),
        host: r.host.clone(),
        latest_point: r.latest_point_us.and_then(crate::backup::log::rfc_us),
        latency_seconds: r
            .latest_point_us
            .map(|p| ((now_us - p).max(0) as f64 / 1e6 * 1000.0).round() / 1000.0),
        storage_dir: format!(
            "{}/{}",
            r.storage.trim_end_matches('/'),
            ferry_backup::log::index::log_dir(&r.cluster)
        ),
        state: r.state.clone(),
        state_label: crate::backup::log::log_state_label(&r.state).into(),
        reason: r.reason.clone(),
        recovering: if r.state == "running" {
            r.recovering.clone()
        } else {
            None
        },
        position: r.position.clone(),
        pieces: r.pieces,
        created_at: rfc3339(r.created_ms),
        updated_at: rfc3339(r.updated_ms),
    }
}

/// The filters of the log backup list.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct LogQuery {
    /// Only this cluster's.
    cluster: Option<String>,
    /// Active (changed) in the last `24h`, `7d`, `30d` (any number of m, h or d).
    since: Option<String>,
    /// Active at or after (RFC 3339 or a date); not with since.
    from: Option<String>,
    /// Active before (RFC 3339 or a date).
    to: Option<String>,
    /// Page size.
    #[param(minimum = 1, maximum = 500, default = 50)]
    limit: Option<i64>,
    /// Tasks to skip.
    #[param(minimum = 0, default = 0)]
    offset: Option<i64>,
}

/// List log backup tasks (one per cluster with log backup), by cluster
#[utoipa::path(
    get,
    path = "/api/v1/backup/logs",
    tag = "backup",
    params(LogQuery),
    responses(
        (status = 200, description = "a page of log backup tasks", body = LogTaskPage),
        (status = 400, description = "a bad filter, named", body = ErrorBody),
        (status = 401, description = "no or unknown token", body = ErrorBody),
    )
)]
pub(crate) async fn list_logs(
    AxState(app): AxState<Shared>,
    headers: HeaderMap,
    Query(q): Query<LogQuery>,
) -> BResult<Json<Value>> {
    let c = caller(&app, &headers).await?;
    let (since_ms, until_ms) = window(q.since.as_deref(), q.from.as_deref(), q.to.as_deref())?;
    let (limit, offset) = page(q.limit, q.offset)?;
    let (rows, total) = app
        .control
        .store
        .log_tasks(&crate::backup::log::LogTaskFilter {
            tenant: tenant_of(&c),
            cluster: q.cluster,
            since_ms,
            until_ms,
            limit,
            offset,
        })
        .await?;
    Ok(Json(to_json(&LogTaskPage {
        tasks: rows.iter().map(log_view).collect(),
        total,
        limit,
        offset,
    })))
}

async fn visible_log(
    app: &Shared,
    c: &Caller,
    cluster: &str,
) -> BResult<crate::backup::log::LogTaskRow> {
    match app.control.store.log_task(cluster).await? {
        Some(t) if c.sees(&t.tenant) => Ok(t),
        _ => Err(BadRequest::E(ServiceError::NotFound(format!(
            "log backup task of cluster {cluster:?}"
        )))),
    }
}

/// A cluster's log backup task
#[utoipa::path(
    get,
    path = "/api/v1/backup/logs/{cluster}",
    tag = "backup",
    params(("cluster" = String, Path, description = "the cluster (policy) name")),
    responses(
        (status = 200, description = "the log backup task", body = LogTask),
        (status = 401, description = "no or unknown token", body = ErrorBody),
        (status = 404, description = "no log backup of this cluster (or not this tenant's)", body = ErrorBody),
    )
)]
pub(crate) async fn show_log(
    AxState(app): AxState<Shared>,
    headers: HeaderMap,
    Path(cluster): Path<String>,
) -> BResult<Json<Value>> {
    let c = caller(&app, &headers).await?;
    Ok(Json(to_json(&log_view(
        &visible_log(&app, &c, &cluster).await?,
    ))))
}

/// Start a cluster's log backup (a stopped or failed one; turns the policy's log on)
#[utoipa::path(
    post,
    path = "/api/v1/backup/logs/{cluster}/start",
    tag = "backup",
    params(("cluster" = String, Path, description = "the cluster (policy) name")),
    responses(
        (status = 202, description = "the log backup task (starting)", body = LogTask),
        (status = 401, description = "no or unknown token", body = ErrorBody),
        (status = 404, description = "no such policy (or not this tenant's)", body = ErrorBody),
        (status = 409, description = "it is running or stopping", body = ErrorBody),
    )
)]
pub(crate) async fn start_log(
    AxState(app): AxState<Shared>,
    headers: HeaderMap,
    Path(cluster): Path<String>,
) -> BResult<(StatusCode, Json<Value>)> {
    let c = caller(&app, &headers).await?;
    let p = visible_policy(&app, &c, &cluster).await?;
    let store = &app.control.store;
    let mut spec: PolicySpec = serde_json::from_str(&p.spec)
        .map_err(|e| BadRequest::E(ServiceError::Internal(format!("stored policy: {e}"))))?;
    if spec.log_method.is_empty() {
        spec.log_method = "logical".into();
    }
    if let Some(t) = store.log_task(&cluster).await? {
        if !matches!(t.state.as_str(), "stopped" | "failed") {
            return Err(BadRequest::E(ServiceError::Conflict(format!(
                "the log backup of cluster {cluster:?} is {}; only a stopped or failed one starts",
                t.state
            ))));
        }
    }
    if !spec.log {
        spec.log = true;
        let row = PolicyRow {
            spec: serde_json::to_string(&spec).expect("serialisable"),
            updated_ms: now_ms(),
            ..p.clone()
        };
        store.put_policy(&row).await?;
    }
    if !store
        .create_log_task(&cluster, &p.tenant, &spec.log_method, &spec.storage)
        .await?
        && !store
            .set_log_state(&cluster, &["stopped", "failed"], "starting", None)
            .await?
    {
        return Err(BadRequest::E(ServiceError::Conflict(format!(
            "the log backup of cluster {cluster:?} changed state meanwhile; look again"
        ))));
    }
    let t = visible_log(&app, &c, &cluster).await?;
    Ok((StatusCode::ACCEPTED, Json(to_json(&log_view(&t)))))
}

/// Stop a cluster's log backup (a starting or running one; the open piece is stored)
#[utoipa::path(
    post,
    path = "/api/v1/backup/logs/{cluster}/stop",
    tag = "backup",
    params(("cluster" = String, Path, description = "the cluster (policy) name")),
    responses(
        (status = 202, description = "the log backup task (stopping)", body = LogTask),
        (status = 401, description = "no or unknown token", body = ErrorBody),
        (status = 404, description = "no log backup of this cluster (or not this tenant's)", body = ErrorBody),
        (status = 409, description = "it is not starting or running", body = ErrorBody),
    )
)]
pub(crate) async fn stop_log(
    AxState(app): AxState<Shared>,
    headers: HeaderMap,
    Path(cluster): Path<String>,
) -> BResult<(StatusCode, Json<Value>)> {
    let c = caller(&app, &headers).await?;
    let t = visible_log(&app, &c, &cluster).await?;
    if !crate::backup::log::stop(&app.control.store, &cluster).await? {
        return Err(BadRequest::E(ServiceError::Conflict(format!(
            "the log backup of cluster {cluster:?} is {}; only a starting or running one stops",
            t.state
        ))));
    }
    let t = visible_log(&app, &c, &cluster).await?;
    Ok((StatusCode::ACCEPTED, Json(to_json(&log_view(&t)))))
}

/// The repository of a cluster's policy (`None` while nothing was written to it).
async fn policy_repo(spec: &PolicySpec) -> BResult<Option<ferry_backup::repo::Repo>> {
    match ferry_backup::repo::Repo::open(&spec.storage, crate::backup::run::repo_key().as_deref())
        .await
    {
        Ok(r) => Ok(Some(r)),
        Err(e) if e.is_transient() => Err(BadRequest::E(ServiceError::Unavailable(format!(
            "the cluster's storage: {}",
            crate::backup::reason_of(&e)
        )))),
        Err(_) => Ok(None),
    }
}

fn storage_error(e: ferry_core::Error) -> BadRequest {
    BadRequest::E(ServiceError::Unavailable(format!(
        "the cluster's storage: {}",
        crate::backup::reason_of(&e)
    )))
}

/// A restorable window of a cluster.
#[derive(Serialize, ToSchema)]
pub(crate) struct Window {
    /// The full set the window starts at.
    from_set: String,
    /// Its consistent position.
    from_position: String,
    /// Its consistent time.
    #[schema(format = DateTime)]
    from_time: Option<String>,
    /// Where the archive is complete to in this window.
    to_position: String,
    /// And when (the latest backup point for the newest window).
    #[schema(format = DateTime)]
    to_time: Option<String>,
    /// First and last log piece of the window.
    pieces: Vec<u64>,
    /// Why an older window ends where it does (a gap's reason, a missing piece).
    ended_by: Option<String>,
}

/// A cluster's restorable windows.
#[derive(Serialize, ToSchema)]
pub(crate) struct WindowList {
    /// The cluster.
    cluster: String,
    /// Oldest first.
    windows: Vec<Window>,
}

/// The restorable windows of a cluster (from a kept full set to the latest backup point)
#[utoipa::path(
    get,
    path = "/api/v1/backup/policies/{cluster}/windows",
    tag = "backup",
    params(("cluster" = String, Path, description = "the cluster (policy) name")),
    responses(
        (status = 200, description = "the windows, oldest first", body = WindowList),
        (status = 401, description = "no or unknown token", body = ErrorBody),
        (status = 404, description = "no such policy (or not this tenant's)", body = ErrorBody),
        (status = 503, description = "the storage cannot be read", body = ErrorBody),
    )
)]
pub(crate) async fn list_windows(
    AxState(app): AxState<Shared>,
    headers: HeaderMap,
    Path(cluster): Path<String>,
) -> BResult<Json<Value>> {
    let c = caller(&app, &headers).await?;
    let p = visible_policy(&app, &c, &cluster).await?;
    let spec: PolicySpec = serde_json::from_str(&p.spec)
        .map_err(|e| BadRequest::E(ServiceError::Internal(format!("stored policy: {e}"))))?;
    let mut out = Vec::new();
    if let Some(repo) = policy_repo(&spec).await? {
        let sets = repo.sets(Some(&cluster)).await.map_err(storage_error)?;
        let archive = ferry_backup::log::index::read_archive(&repo, &cluster)
            .await
            .map_err(storage_error)?;
        for w in ferry_backup::log::window::windows(&sets, &archive).map_err(storage_error)? {
            out.push(Window {
                from_set: w.from_set,
                from_position: w.from_position,
                from_time: w.from_time,
                to_position: w.to_position,
                to_time: w.to_time,
                pieces: vec![w.pieces.0, w.pieces.1],
                ended_by: w.ended_by,
            });
        }
    }
    Ok(Json(to_json(&WindowList {
        cluster,
        windows: out,
    })))
}

/// A named restore point.
#[derive(Serialize, ToSchema)]
pub(crate) struct MarkView {
    /// Its name (`until: mark:NAME`).
    name: String,
    /// The source's log position when it was made.
    position: String,
    /// When it was made.
    #[schema(format = DateTime)]
    at: String,
}

/// A cluster's marks.
#[derive(Serialize, ToSchema)]
pub(crate) struct MarkList {
    /// Oldest first.
    marks: Vec<MarkView>,
}

/// A new mark.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewMark {
    /// Its name: letters, digits, '.', '-', '_' (at most 63).
    #[schema(pattern = "^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,62}$")]
    name: String,
}

fn mark_view(m: ferry_backup::log::Mark) -> MarkView {
    MarkView {
        name: m.name,
        position: m.position,
        at: m.at,
    }
}

/// The named restore points of a cluster
#[utoipa::path(
    get,
    path = "/api/v1/backup/policies/{cluster}/marks",
    tag = "backup",
    params(("cluster" = String, Path, description = "the cluster (policy) name")),
    responses(
        (status = 200, description = "the marks, oldest first", body = MarkList),
        (status = 401, description = "no or unknown token", body = ErrorBody),
        (status = 404, description = "no such policy (or not this tenant's)", body = ErrorBody),
        (status = 503, description = "the storage cannot be read", body = ErrorBody),
    )
)]
pub(crate) async fn list_marks(
    AxState(app): AxState<Shared>,
    headers: HeaderMap,
    Path(cluster): Path<String>,
) -> BResult<Json<Value>> {
    let c = caller(&app, &headers).await?;
    let p = visible_policy(&app, &c, &cluster).await?;
    let spec: PolicySpec = serde_json::from_str(&p.spec)
        .map_err(|e| BadRequest::E(ServiceError::Internal(format!("stored policy: {e}"))))?;
    let marks = match policy_repo(&spec).await? {
        Some(repo) => ferry_backup::log::index::marks(&repo, &cluster)
            .await
            .map_err(storage_error)?,
        None => Vec::new(),
    };
    Ok(Json(to_json(&MarkList {
        marks: marks.into_iter().map(mark_view).collect(),
    })))
}

/// Make a named restore point of a cluster: its source's log position now
#[utoipa::path(
    post,
    path = "/api/v1/backup/policies/{cluster}/marks",
    tag = "backup",
    params(("cluster" = String, Path, description = "the cluster (policy) name")),
    request_body = NewMark,
    responses(
        (status = 201, description = "the mark", body = MarkView),
        (status = 400, description = "a bad name", body = ErrorBody),
        (status = 401, description = "no or unknown token", body = ErrorBody),
        (status = 404, description = "no such policy (or not this tenant's)", body = ErrorBody),
        (status = 409, description = "the cluster has a mark of this name", body = ErrorBody),
        (status = 413, description = "body larger than 2 MB", body = ErrorBody),
        (status = 415, description = "the body is not sent as Content-Type: application/json", body = ErrorBody),
        (status = 503, description = "the source or the storage cannot be reached", body = ErrorBody),
    )
)]
pub(crate) async fn create_mark(
    AxState(app): AxState<Shared>,
    headers: HeaderMap,
    Path(cluster): Path<String>,
    bytes: axum::body::Bytes,
) -> BResult<(StatusCode, Json<Value>)> {
    let c = caller(&app, &headers).await?;
    let m: NewMark = body(&headers, &bytes)?;
    if !ferry_backup::log::index::valid_mark(&m.name) {
        return Err(invalid(
            "name",
            format!(
                "{:?}: a mark name is 1 to 63 of letters, digits, '.', '-' and '_' (not starting with '.')",
                m.name
            ),
        ));
    }
    let p = visible_policy(&app, &c, &cluster).await?;
    let spec: PolicySpec = serde_json::from_str(&p.spec)
        .map_err(|e| BadRequest::E(ServiceError::Internal(format!("stored policy: {e}"))))?;
    let sealed: crate::backup::policy::PolicySecrets = serde_json::from_str(&p.secrets)
        .map_err(|e| BadRequest::E(ServiceError::Internal(format!("stored policy: {e}"))))?;
    let mut source = ferry_core::Endpoint::parse(&spec.source, "")
        .map_err(|e| BadRequest::E(ServiceError::Internal(format!("stored policy: {e}"))))?;
    if let Some(s) = &sealed.source {
        source.password = Some(app.control.secrets().open(s)?);
    }
    let repo = ferry_backup::repo::Repo::create_or_open(
        &spec.storage,
        crate::backup::run::repo_key().as_deref(),
    )
    .await
    .map_err(storage_error)?;
    if ferry_backup::log::index::read_mark(&repo, &cluster, &m.name)
        .await
        .is_ok()
    {
        return Err(BadRequest::E(ServiceError::Conflict(format!(
            "cluster {cluster:?} has a mark {:?} already; choose another name",
            m.name
        ))));
    }
    let mark = ferry_backup::log::make_mark(&repo, &cluster, &source, &m.name)
        .await
        .map_err(|e| {
            BadRequest::E(ServiceError::Unavailable(format!(
                "making the mark: {}",
                crate::backup::reason_of(&e)
            )))
        })?;
    Ok((StatusCode::CREATED, Json(to_json(&mark_view(mark)))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_takes_since_or_from_to() {
        let now = now_ms();
        let (a, b) = window(Some("24h"), None, None).ok().unwrap();
        assert!((now - 86_400_000 - a.unwrap()).abs() < 5_000);
        assert_eq!(b, None);
        let (a, b) = window(None, Some("2026-11-01"), Some("2026-11-02T00:00:00Z"))
            .ok()
            .unwrap();
        assert_eq!(b.unwrap() - a.unwrap(), 86_400_000);
        assert!(window(Some("7d"), Some("2026-11-01"), None).is_err());
        assert!(window(Some("week"), None, None).is_err());
        assert!(window(None, Some("2026-11-02"), Some("2026-11-01")).is_err());
    }
}
