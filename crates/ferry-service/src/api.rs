//! The REST API (`/api/v1/…`, JSON): tasks and their actions, tenants, health and
//! metrics. Every error answers with a status and `{error, field?, state?, allowed?}`
//! so a script or a person can act on it. Passwords are never returned.

use crate::control::{random_hex, token_hash, Caller, Control};
use crate::error::ServiceError;
use crate::store::{now_ms, rfc3339, TaskFilter, TaskRow};
use crate::worker::Worker;
use axum::extract::{Path, Query, State as AxState};
use axum::http::Method;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, MethodRouter};
use axum::{Json, Router};
use ferry_core::lifecycle::{self, Action, State};
use ferry_core::spec::Kind;
use serde::Deserialize;
use serde_json::{json, Value as Json_};
use std::collections::BTreeMap;
use std::sync::Arc;
use utoipa::{IntoParams, ToSchema};

mod backup;
mod openapi;
pub mod schema;

use schema::{
    to_json, AuditPage, ErrorBody, Event, InvalidError, NewTenant, Refused, RotatedToken,
    SigningSecret, TaskDetail, TaskPage,
};

fn parse_time(field: &str, s: &str) -> Result<i64, ServiceError> {
    chrono::DateTime::parse_from_rfc3339(s)
        .map(|d| d.timestamp_millis())
        .map_err(|e| ServiceError::Invalid {
            field: field.into(),
            reason: format!("{s:?} is not an RFC 3339 time ({e}); write e.g. 2026-12-01T02:00:00Z"),
        })
}

/// What the handlers share.
pub struct App {
    /// Task operations.
    pub control: Control,
    /// The admin token (from `FERRY_ADMIN_TOKEN` or the data directory, or the
    /// rotated one from the store), replaceable while the service runs.
    pub admin_token: crate::tokens::AdminToken,
    /// A token that reads `/metrics` only (`FERRY_METRICS_TOKEN`), for a scraper
    /// that should not hold the admin token.
    pub metrics_token: Option<String>,
    /// The in-process worker, when this node runs one (for `/metrics`).
    pub worker: Option<Arc<Worker>>,
}

type Shared = Arc<App>;

impl IntoResponse for ServiceError {
    fn into_response(self) -> Response {
        let error = self.to_string();
        let plain = |error: String| {
            to_json(&ErrorBody {
                error,
                request_id: None,
            })
        };
        let (status, body) = match &self {
            ServiceError::NotFound(_) => (StatusCode::NOT_FOUND, plain(error)),
            ServiceError::Invalid { field, reason } => (
                StatusCode::UNPROCESSABLE_ENTITY,
                to_json(&InvalidError {
                    error,
                    field: field.clone(),
                    reason: reason.clone(),
                }),
            ),
            ServiceError::Refused(r) => (
                StatusCode::CONFLICT,
                to_json(&Refused {
                    error,
                    state: r.state.id(),
                    allowed: r.allowed.iter().map(|a| a.id()).collect(),
                }),
            ),
            ServiceError::Conflict(_) => (StatusCode::CONFLICT, plain(error)),
            ServiceError::Unauthorized(_) => (StatusCode::UNAUTHORIZED, plain(error)),
            ServiceError::Forbidden(_) => (StatusCode::FORBIDDEN, plain(error)),
            ServiceError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, plain(error)),
            ServiceError::Internal(_) => {
                tracing::error!("{self}");
                (StatusCode::INTERNAL_SERVER_ERROR, plain(error))
            }
        };
        (status, Json(body)).into_response()
    }
}

type ApiResult<T> = Result<T, ServiceError>;

/// The token of `Authorization: Bearer <token>`; the scheme name is
/// case-insensitive (RFC 7235).
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get("authorization")?.to_str().ok()?.trim();
    let (scheme, token) = v.split_once(|c: char| c.is_ascii_whitespace())?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// Who sends `headers`: the admin, a tenant, or an error (401) for no or an unknown
/// token.
pub(crate) async fn caller(app: &App, headers: &HeaderMap) -> ApiResult<Caller> {
    let token = bearer(headers).ok_or_else(|| {
        ServiceError::Unauthorized(
            "no token: send Authorization: Bearer <token> (the CLI reads FERRY_TOKEN, \
             or FERRY_ADMIN_TOKEN for `ferry tenant create|topup`)"
                .into(),
        )
    })?;
    let store = &app.control.store;
    if app.admin_token.matches(store, token, false).await? {
        return Ok(Caller::Admin);
    }
    match store.tenant_by_token(&token_hash(token)).await? {
        Some(t) => Ok(Caller::Tenant(t.name)),
        // another node may have rotated the admin token to this one
        None if app.admin_token.matches(store, token, true).await? => Ok(Caller::Admin),
        None => Err(ServiceError::Unauthorized("unknown token".into())),
    }
}

fn admin_only(c: &Caller) -> ApiResult<()> {
    match c {
        Caller::Admin => Ok(()),
        Caller::Tenant(_) => Err(ServiceError::Forbidden(
            "this needs the admin token (FERRY_ADMIN_TOKEN of the server)".into(),
        )),
    }
}

/// The task object the API returns (no passwords: the stored spec has none).
fn task_view(t: &TaskRow) -> schema::Task {
    let spec: Json_ = serde_norway::from_str::<serde_norway::Value>(&t.spec)
        .ok()
        .and_then(|v| serde_json::to_value(v).ok())
        .unwrap_or(Json_::Null);
    schema::Task {
        id: t.id.clone(),
        name: t.name.clone(),
        tenant: t.tenant.clone(),
        kind: t.kind.id(),
        state: t.state.id(),
        state_label: t.state.label_zh(),
        reason: t.reason.clone(),
        allowed_actions: lifecycle::allowed_actions(t.kind, t.state)
            .iter()
            .map(|a| a.id())
            .collect(),
        mode: spec.get("mode").cloned(),
        source: spec.get("source").cloned(),
        target: spec.get("target").cloned(),
        start_at: t.start_at_ms.map(rfc3339),
        created_at: rfc3339(t.created_ms),
        updated_at: rfc3339(t.updated_ms),
        worker: t.lease_owner.clone(),
        progress: t
            .progress
            .as_deref()
            .and_then(|p| serde_json::from_str::<Json_>(p).ok()),
        apply_jobs: spec.get("apply_jobs").and_then(Json_::as_u64),
        speed_limit: schema::SpeedLimit::of(
            &ferry_core::spec::speed_limit_of(&t.spec).unwrap_or_default(),
        ),
    }
}

/// [`task_view`] as JSON.
fn task_json(t: &TaskRow) -> Json_ {
    to_json(&task_view(t))
}

/// A new task.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct CreateTask {
    /// The task file's YAML (name, kind, mode, source, target, objects, …);
    /// passwords in the URLs are sealed at rest and never returned.
    spec: String,
    /// Scheduled start (RFC 3339).
    #[schema(format = DateTime)]
    start_at: Option<String>,
    /// Admin only: the owning tenant.
    tenant: Option<String>,
}

/// Create a task from its task file
#[utoipa::path(
    post,
    path = "/api/v1/tasks",
    tag = "tasks",
    request_body = CreateTask,
    responses(
        (status = 201, description = "created (state creating)", body = schema::Task),
        (status = 400, description = "malformed JSON body", body = ErrorBody),
        (status = 401, description = "no or unknown token", body = ErrorBody),
        (status = 403, description = "a tenant creating for another", body = ErrorBody),
        (status = 413, description = "body larger than 2 MB", body = ErrorBody),
        (status = 415, description = "the body is not sent as Content-Type: application/json", body = ErrorBody),
        (status = 422, description = "invalid spec or start_at", body = InvalidError),
    )
)]
async fn create_task(
    AxState(app): AxState<Shared>,
    headers: HeaderMap,
    Json(body): Json<CreateTask>,
) -> ApiResult<(StatusCode, Json<Json_>)> {
    let c = caller(&app, &headers).await?;
    let tenant = match (&c, body.tenant) {
        (Caller::Tenant(t), None) => t.clone(),
        (Caller::Tenant(t), Some(x)) if &x == t => x,
        (Caller::Tenant(_), Some(_)) => {
            return Err(ServiceError::Forbidden(
                "a tenant creates tasks for itself only".into(),
            ))
        }
        (Caller::Admin, Some(x)) => {
            if app.control.store.tenant(&x).await?.is_none() {
                return Err(ServiceError::Invalid {
                    field: "tenant".into(),
                    reason: format!("no tenant {x:?}"),
                });
            }
            x
        }
        (Caller::Admin, None) => {
            return Err(ServiceError::Invalid {
                field: "tenant".into(),
                reason: "the admin must say which tenant owns the task".into(),
            })
        }
    };
    let start_at = body
        .start_at
        .as_deref()
        .map(|s| parse_time("start_at", s))
        .transpose()?;
    // everything is checked before anything is written: a refused request leaves
    // no task behind. A scheduled task is handed to the scheduler once configured.
    let t = app
        .control
        .create_task(&tenant, &body.spec, start_at)
        .await?;
    Ok((StatusCode::CREATED, Json(task_json(&t))))
}

/// The filters of the task list.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// Tasks of this kind.
    #[param(value_type = Option<schema::KindId>)]
    kind: Option<String>,
    /// Tasks in this state.
    #[param(value_type = Option<schema::StateId>)]
    state: Option<String>,
    /// Created since: 24h, 7d, 30d, a date (2026-11-01) or an RFC 3339 time; or a
    /// range FROM..TO of those (2026-11-01..2026-12-20), the same as
    /// since=FROM&until=TO and not combinable with until.
    since: Option<String>,
    /// Created before: 24h, 7d, 30d, a date (2026-11-01) or an RFC 3339 time (not a
    /// range; not with a range in since).
    until: Option<String>,
    /// Page size.
    #[param(minimum = 1, maximum = 500, default = 50)]
    limit: Option<i64>,
    /// Tasks to skip.
    #[param(minimum = 0, default = 0)]
    offset: Option<i64>,
}

/// `24h`, `7d`, `30m` → milliseconds ago; otherwise an RFC 3339 time or a date.
fn since_ms(field: &str, s: &str) -> ApiResult<i64> {
    let unit_ms = |c: char| match c {
        'm' => Some(60_000i64),
        'h' => Some(3_600_000),
        'd' => Some(86_400_000),
        _ => None,
    };
    // the unit is the last character, whatever its width (never a byte slice)
    if let Some((n, ms)) = s
        .chars()
        .next_back()
        .and_then(|u| unit_ms(u).map(|ms| (&s[..s.len() - u.len_utf8()], ms)))
    {
        if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) {
            return n
                .parse::<i64>()
                .ok()
                .and_then(|n| n.checked_mul(ms))
                .map(|ago| now_ms().saturating_sub(ago))
                .ok_or_else(|| ServiceError::Invalid {
                    field: field.into(),
                    reason: format!("{s:?} reaches too far back; write e.g. 30d or a date"),
                });
        }
    }
    if let Ok(d) = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return Ok(d.and_hms_opt(0, 0, 0).unwrap().and_utc().timestamp_millis());
    }
    parse_time(field, s).map_err(|_| ServiceError::Invalid {
        field: field.into(),
        reason: if field == "since" {
            format!("{s:?}: {SINCE_FORMS}")
        } else {
            format!("{s:?}: write 24h, 7d, 30d, a date (2026-11-01) or an RFC 3339 time")
        },
    })
}

/// What `since` accepts, for its refusals.
const SINCE_FORMS: &str = "write 24h, 7d, 30d, a date (2026-11-01), an RFC 3339 time, \
     or a range FROM..TO of those (2026-11-01..2026-12-20); the end alone goes in until=";

/// `since` and `until` as bounds in milliseconds. `since` may be a range `A..B`
/// (what README documents for `--since`): the same as `since=A&until=B`, so it
/// may not be combined with `until`.
fn since_until(since: Option<&str>, until: Option<&str>) -> ApiResult<(Option<i64>, Option<i64>)> {
    let range = since.and_then(|s| s.split_once(".."));
    let Some((a, b)) = range else {
        return Ok((
            since.map(|s| since_ms("since", s)).transpose()?,
            until.map(|s| since_ms("until", s)).transpose()?,
        ));
    };
    let bad = |reason: String| ServiceError::Invalid {
        field: "since".into(),
        reason,
    };
    let whole = since.unwrap_or_default();
    if until.is_some() {
        return Err(bad(format!(
            "{whole:?} is a range and gives the end already; drop until= or write since=FROM"
        )));
    }
    if a.is_empty() || b.is_empty() {
        return Err(bad(format!(
            "{whole:?}: a range needs both ends; {SINCE_FORMS}"
        )));
    }
    let from = since_ms("since", a)
        .map_err(|_| bad(format!("{whole:?}: {a:?} is not a start; {SINCE_FORMS}")))?;
    let to = since_ms("since", b)
        .map_err(|_| bad(format!("{whole:?}: {b:?} is not an end; {SINCE_FORMS}")))?;
    if to < from {
        return Err(bad(format!("{whole:?} ends before it starts")));
    }
    Ok((Some(from), Some(to)))
}

/// List tasks, newest first
#[utoipa::path(
    get,
    path = "/api/v1/tasks",
    tag = "tasks",
    params(ListQuery),
    responses(
        (status = 200, description = "a page of tasks", body = TaskPage),
        (status = 400, description = "a malformed query or path parameter", body = ErrorBody),
        (status = 401, description = "no or unknown token", body = ErrorBody),
        (status = 422, description = "bad filter", body = InvalidError),
    )
)]
async fn list_tasks(
    AxState(app): AxState<Shared>,
    headers: HeaderMap,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Json_>> {
    let c = caller(&app, &headers).await?;
    let kind = q
        .kind
        .as_deref()
        .map(|k| {
            Kind::from_id(k).ok_or_else(|| ServiceError::Invalid {
                field: "kind".into(),
                reason: format!("{k:?} is not a kind (migration, sync, dr)"),
            })
        })
        .transpose()?;
    let state = q
        .state
        .as_deref()
        .map(|s| {
            State::from_id(s).ok_or_else(|| ServiceError::Invalid {
                field: "state".into(),
                reason: format!("{s:?} is not a state"),
            })
        })
        .transpose()?;
    let limit = q.limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(ServiceError::Invalid {
            field: "limit".into(),
            reason: "between 1 and 500".into(),
        });
    }
    let offset = q.offset.unwrap_or(0);
    if offset < 0 {
        return Err(ServiceError::Invalid {
            field: "offset".into(),
            reason: "0 or more".into(),
        });
    }
    let (since_ms, until_ms) = since_until(q.since.as_deref(), q.until.as_deref())?;
    let filter = TaskFilter {
        tenant: match &c {
            Caller::Admin => None,
            Caller::Tenant(t) => Some(t.clone()),
        },
        kind,
        state,
        since_ms,
        until_ms,
        limit,
        offset,
    };
    let (rows, total) = app.control.store.tasks(&filter).await?;
    Ok(Json(to_json(&TaskPage {
        tasks: rows.iter().map(task_view).collect(),
        total,
        limit: filter.limit,
        offset: filter.offset,
    })))
}

/// A task with its progress and events
#[utoipa::path(
    get,
    path = "/api/v1/tasks/{id}",
    tag = "tasks",
    params(("id" = String, Path, description = "the task id")),
    responses(
        (status = 200, description = "the task", body = TaskDetail),
        (status = 400, description = "a malformed query or path parameter", body = ErrorBody),
        (status = 401, description = "no or unknown token", body = ErrorBody),
        (status = 404, description = "no such task (or not this tenant's)", body = ErrorBody),
    )
)]
async fn show_task(
    AxState(app): AxState<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult<Json<Json_>> {
    let c = caller(&app, &headers).await?;
    let t = app.control.visible_task(&c, &id).await?;
    let events = app
        .control
        .store
        .events(&id)
        .await?
        .into_iter()
        .map(|e| Event {
            at: rfc3339(e.at_ms),
            from: e.from_state,
            to: e.to_state,
            reason: e.reason,
        })
        .collect();
    Ok(Json(to_json(&TaskDetail {
        task: task_view(&t),
        events,
    })))
}

/// Change a task's speed limits
#[utoipa::path(
    patch,
    path = "/api/v1/tasks/{id}",
    tag = "tasks",
    params(("id" = String, Path, description = "the task id")),
    request_body = schema::TaskPatch,
    responses(
        (status = 200, description = "changed; a running task's engine takes the new limits within a second", body = schema::Task),
        (status = 400, description = "malformed JSON body", body = ErrorBody),
        (status = 401, description = "no or unknown token", body = ErrorBody),
        (status = 404, description = "no such task (or not this tenant's)", body = ErrorBody),
        (status = 413, description = "body larger than 2 MB", body = ErrorBody),
        (status = 415, description = "the body is not sent as Content-Type: application/json", body = ErrorBody),
        (status = 422, description = "a bad limit (the field names it) or a key that cannot be changed", body = InvalidError),
    )
)]
async fn patch_task(
    AxState(app): AxState<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Json(body): Json<Json_>,
) -> ApiResult<Json<Json_>> {
    let c = caller(&app, &headers).await?;
    let t = app.control.set_speed_limit(&c, &id, body).await?;
    Ok(Json(task_json(&t)))
}

/// The optional body of an action.
#[derive(Deserialize, Default, ToSchema)]
#[serde(deny_unknown_fields)]
struct ActionBody {
    /// schedule: when.
    #[schema(format = DateTime)]
    start_at: Option<String>,
    /// edit: the new `objects` section.
    #[schema(value_type = Option<Object>)]
    objects: Option<Json_>,
}

/// A lifecycle action
#[utoipa::path(
    post,
    path = "/api/v1/tasks/{id}/{action}",
    tag = "tasks",
    params(
        ("id" = String, Path, description = "the task id"),
        ("action" = schema::PostedActionId, Path, description = "the action"),
    ),
    request_body(content = Option<ActionBody>, description = "optional; schedule: start_at, edit: objects"),
    responses(
        (status = 202, description = "accepted; the task's new state", body = schema::Task),
        (status = 400, description = "malformed JSON body", body = ErrorBody),
        (status = 401, description = "no or unknown token", body = ErrorBody),
        (status = 404, description = "no such task (or not this tenant's)", body = ErrorBody),
        (status = 409, description = "not allowed in this state", body = Refused),
        (status = 413, description = "body larger than 2 MB", body = ErrorBody),
        (status = 415, description = "the body is not sent as Content-Type: application/json", body = ErrorBody),
        (status = 422, description = "bad start_at or objects", body = InvalidError),
    )
)]
async fn act(
    AxState(app): AxState<Shared>,
    headers: HeaderMap,
    Path((id, action)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> ApiResult<Response> {
    let c = caller(&app, &headers).await?;
    let a = Action::from_id(&action)
        .filter(|a| *a != Action::Delete)
        .ok_or_else(|| ServiceError::NotFound(format!("action {action:?} (start, schedule, pause, resume, end, edit, switchover, failover)")))?;
    // the body is optional, but one that is sent is never ignored: JSON with its
    // content type, or a 415 / 400 / 422 (made JSON by `json_errors`)
    let body = if body.iter().all(u8::is_ascii_whitespace) {
        ActionBody::default()
    } else {
        let json = headers
            .get(axum::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                v.trim_start()
                    .to_ascii_lowercase()
                    .starts_with("application/json")
            });
        if !json {
            return Ok((
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "the request has a body but no `Content-Type: application/json`",
            )
                .into_response());
        }
        match Json::<ActionBody>::from_bytes(&body) {
            Ok(Json(b)) => b,
            Err(rejection) => return Ok(rejection.into_response()),
        }
    };
    if a == Action::Edit {
        let objects = body.objects.unwrap_or(Json_::Null);
        let t = app.control.edit(&c, &id, objects).await?;
        return Ok((StatusCode::ACCEPTED, Json(task_json(&t))).into_response());
    }
    let start_at = body
        .start_at
        .map(|s| parse_time("start_at", &s))
        .transpose()?;
    match app.control.act(&c, &id, a, start_at).await? {
        Some(t) => Ok((StatusCode::ACCEPTED, Json(task_json(&t))).into_response()),
        None => Ok(StatusCode::NO_CONTENT.into_response()),
    }
}

/// Delete an ended (or never started) task
#[utoipa::path(
    delete,
    path = "/api/v1/tasks/{id}",
    tag = "tasks",
    params(("id" = String, Path, description = "the task id")),
    responses(
        (status = 204, description = "deleted"),
        (status = 400, description = "a malformed query or path parameter", body = ErrorBody),
        (status = 401, description = "no or unknown token", body = ErrorBody),
        (status = 404, description = "no such task (or not this tenant's)", body = ErrorBody),
        (status = 409, description = "not allowed in this state", body = Refused),
    )
)]
async fn delete_task(
    AxState(app): AxState<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let c = caller(&app, &headers).await?;
    app.control.act(&c, &id, Action::Delete, None).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A new tenant.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct CreateTenant {
    /// 1–40 lower-case letters, digits, '-' or '_'.
    #[schema(pattern = "^[a-z0-9_-]{1,40}$")]
    name: String,
    /// Opening balance.
    #[serde(default)]
    #[schema(default = 0)]
    balance: f64,
}

fn micros(field: &str, x: f64) -> ApiResult<i64> {
    if !x.is_finite() || x.abs() > 1e12 {
        return Err(ServiceError::Invalid {
            field: field.into(),
            reason: "not a usable amount".into(),
        });
    }
    Ok((x * 1e6).round() as i64)
}

/// Create a tenant (admin); the token is shown once
#[utoipa::path(
    post,
    path = "/api/v1/tenants",
    tag = "tenants",
    request_body = CreateTenant,
    responses(
        (status = 201, description = "created", body = NewTenant),
        (status = 400, description = "malformed JSON body", body = ErrorBody),
        (status = 401, description = "no or unknown token", body = ErrorBody),
        (status = 403, description = "admin only", body = ErrorBody),
        (status = 409, description = "exists", body = ErrorBody),
        (status = 413, description = "body larger than 2 MB", body = ErrorBody),
        (status = 415, description = "the body is not sent as Content-Type: application/json", body = ErrorBody),
        (status = 422, description = "bad name", body = InvalidError),
    )
)]
async fn create_tenant(
    AxState(app): AxState<Shared>,
    headers: HeaderMap,
    Json(body): Json<CreateTenant>,
) -> ApiResult<(StatusCode, Json<Json_>)> {
    admin_only(&caller(&app, &headers).await?)?;
    if body.name.is_empty()
        || body.name.len() > 40
        || !body
            .name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
    {
        return Err(ServiceError::Invalid {
            field: "name".into(),
            reason: "1–40 lower-case letters, digits, '-' or '_'".into(),
        });
    }
    let token = format!("fy_{}", random_hex(24));
    app.control
        .store
        .create_tenant(
            &body.name,
            &token_hash(&token),
            micros("balance", body.balance)?,
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(to_json(&NewTenant {
            name: body.name,
            balance: body.balance,
            token,
        })),
    ))
}

/// A top-up (negative: a charge).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct Topup {
    /// What to add to the balance.
    amount: f64,
}

/// Add to the balance (admin; negative = a charge)
///
/// A balance > 0 returns frozen tasks to where they were; ≤ 0 freezes them.
#[utoipa::path(
    post,
    path = "/api/v1/tenants/{name}/topup",
    tag = "tenants",
    params(("name" = String, Path, description = "the tenant")),
    request_body = Topup,
    responses(
        (status = 200, description = "the tenant", body = schema::Tenant),
        (status = 400, description = "malformed JSON body", body = ErrorBody),
        (status = 401, description = "no or unknown token", body = ErrorBody),
        (status = 403, description = "admin only", body = ErrorBody),
        (status = 404, description = "no such tenant (or not this tenant's)", body = ErrorBody),
        (status = 413, description = "body larger than 2 MB", body = ErrorBody),
        (status = 415, description = "the body is not sent as Content-Type: application/json", body = ErrorBody),
        (status = 422, description = "a field has the wrong type or value", body = InvalidError),
    )
)]
async fn topup(
    AxState(app): AxState<Shared>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Json(body): Json<Topup>,
) -> ApiResult<Json<Json_>> {
    admin_only(&caller(&app, &headers).await?)?;
    let balance = app
        .control
        .store
        .add_balance(&name, micros("amount", body.amount)?, 0)
        .await?;
    crate::billing::settle(&app.control, &name, balance).await?;
    tenant_json(&app, &name).await.map(Json)
}

async fn tenant_json(app: &App, name: &str) -> ApiResult<Json_> {
    let t = app
        .control
        .store
        .tenant(name)
        .await?
        .ok_or_else(|| ServiceError::NotFound(format!("tenant {name:?}")))?;
    let (tasks, _) = app
        .control
        .store
        .tasks(&TaskFilter {
            tenant: Some(name.into()),
            limit: 100_000,
            ..TaskFilter::default()
        })
        .await?;
    let mut by_state: BTreeMap<&str, u64> = BTreeMap::new();
    for t in &tasks {
        *by_state.entry(t.state.id()).or_default() += 1;
    }
    Ok(to_json(&schema::Tenant {
        name: t.name,
        balance: t.balance_micros as f64 / 1e6,
        usage: t.usage_micros as f64 / 1e6,
        webhook: t
            .webhook
            .as_deref()
            .and_then(|w| serde_json::from_str::<Json_>(w).ok()),
        tasks_by_state: by_state,
        signing_secret: None,
    }))
}

/// Balance, usage, tasks by state (admin or the tenant)
#[utoipa::path(
    get,
    path = "/api/v1/tenants/{name}",
    tag = "tenants",
    params(("name" = String, Path, description = "the tenant")),
    responses(
        (status = 200, description = "the tenant", body = schema::Tenant),
        (status = 400, description = "a malformed query or path parameter", body = ErrorBody),
        (status = 401, description = "no or unknown token", body = ErrorBody),
        (status = 404, description = "no such tenant (or not this tenant's)", body = ErrorBody),
    )
)]
async fn show_tenant(
    AxState(app): AxState<Shared>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> ApiResult<Json<Json_>> {
    let c = caller(&app, &headers).await?;
    if !c.sees(&name) {
        return Err(ServiceError::NotFound(format!("tenant {name:?}")));
    }
    tenant_json(&app, &name).await.map(Json)
}

/// Where to POST notifications
///
/// Failure states; lag above lag_seconds for lag_for_seconds. The url is an http://
/// URL of a public address (https is not supported by this build); private and
/// loopback destinations only when the server's FERRY_WEBHOOK_ALLOW /
/// --webhook-allow names them; link-local (cloud metadata), multicast, broadcast and
/// unspecified addresses never. Checked when saved and, on the resolved address, at
/// every send.
#[utoipa::path(
    put,
    path = "/api/v1/tenants/{name}/webhook",
    tag = "tenants",
    params(("name" = String, Path, description = "the tenant")),
    request_body = crate::notify::Webhook,
    responses(
        (status = 200, description = "the tenant", body = schema::Tenant),
        (status = 400, description = "malformed JSON body", body = ErrorBody),
        (status = 401, description = "no or unknown token", body = ErrorBody),
        (status = 404, description = "no such tenant (or not this tenant's)", body = ErrorBody),
        (status = 413, description = "body larger than 2 MB", body = ErrorBody),
        (status = 415, description = "the body is not sent as Content-Type: application/json", body = ErrorBody),
        (status = 422, description = "bad URL or lag settings", body = InvalidError),
    )
)]
async fn set_webhook(
    AxState(app): AxState<Shared>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Json(hook): Json<crate::notify::Webhook>,
) -> ApiResult<Json<Json_>> {
    let c = caller(&app, &headers).await?;
    if !c.sees(&name) {
        return Err(ServiceError::NotFound(format!("tenant {name:?}")));
    }
    hook.validate(&app.control.webhook_allow)
        .await
        .map_err(|(field, reason)| ServiceError::Invalid {
            field: field.into(),
            reason,
        })?;
    let text = serde_json::to_string(&hook).expect("serialisable");
    app.control.store.set_webhook(&name, Some(&text)).await?;
    // the first webhook gets a signing secret, shown in this answer only; later
    // changes keep it (receivers keep verifying) — rotate it on its own route
    let fresh = match app.control.store.webhook_secret(&name).await? {
        Some(_) => None,
        None => {
            let secret = crate::notify::new_signing_secret();
            app.control
                .store
                .set_webhook_secret(&name, Some(&app.control.secrets().seal(&secret)))
                .await?;
            Some(secret)
        }
    };
    let mut v = tenant_json(&app, &name).await?;
    if let Some(secret) = fresh {
        v["signing_secret"] = Json_::String(secret);
    }
    Ok(Json(v))
}

/// A new webhook signing secret (admin or the tenant)
///
/// The previous secret stops signing at once; the new one is shown in this answer
/// only. Every webhook POST carries `X-Ferry-Signature: t=<unix seconds>,v1=<hex
/// HMAC-SHA256 of "<t>.<raw body>" keyed with the secret>`.
#[utoipa::path(
    post,
    path = "/api/v1/tenants/{name}/webhook/secret",
    tag = "tenants",
    params(("name" = String, Path, description = "the tenant")),
    responses(
        (status = 200, description = "the new secret (shown once)", body = SigningSecret),
        (status = 400, description = "a malformed query or path parameter", body = ErrorBody),
        (status = 401, description = "no or unknown token", body = ErrorBody),
        (status = 404, description = "no such tenant (or not this tenant's)", body = ErrorBody),
        (status = 409, description = "the tenant has no webhook", body = ErrorBody),
    )
)]
async fn rotate_webhook_secret(
    AxState(app): AxState<Shared>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> ApiResult<Json<Json_>> {
    let c = caller(&app, &headers).await?;
    let t = match app.control.store.tenant(&name).await? {
        Some(t) if c.sees(&name) => t,
        _ => return Err(ServiceError::NotFound(format!("tenant {name:?}"))),
    };
    if t.webhook.is_none() {
        return Err(ServiceError::Conflict(format!(
            "tenant {name:?} has no webhook; set one (PUT /api/v1/tenants/{name}/webhook) and its answer holds the secret"
        )));
    }
    let secret = crate::notify::new_signing_secret();
    app.control
        .store
        .set_webhook_secret(&name, Some(&app.control.secrets().seal(&secret)))
        .await?;
    tracing::info!(tenant = %name, "webhook signing secret rotated");
    Ok(Json(to_json(&SigningSecret {
        name,
        signing_secret: secret,
    })))
}

/// The options of a tenant token rotation.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct RotateQuery {
    /// Seconds the previous token keeps working beside the new one (0–604800);
    /// 0 or absent: it stops working at once.
    #[param(minimum = 0, maximum = 604800, default = 0)]
    grace_seconds: Option<i64>,
}

/// A new token for a tenant (admin or the tenant itself)
///
/// The new token is shown in this answer only. The previous token stops working at
/// once, or after `grace_seconds` (both work meanwhile); no restart is needed.
#[utoipa::path(
    post,
    path = "/api/v1/tenants/{name}/token",
    tag = "tenants",
    params(("name" = String, Path, description = "the tenant"), RotateQuery),
    responses(
        (status = 200, description = "the new token (shown once)", body = RotatedToken),
        (status = 400, description = "a malformed query or path parameter", body = ErrorBody),
        (status = 401, description = "no or unknown token", body = ErrorBody),
        (status = 404, description = "no such tenant (or not this tenant's)", body = ErrorBody),
        (status = 422, description = "grace_seconds out of range", body = InvalidError),
    )
)]
async fn rotate_tenant_token(
    AxState(app): AxState<Shared>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Query(q): Query<RotateQuery>,
) -> ApiResult<Json<Json_>> {
    let c = caller(&app, &headers).await?;
    if !c.sees(&name) {
        return Err(ServiceError::NotFound(format!("tenant {name:?}")));
    }
    let (token, until) =
        crate::tokens::rotate_tenant(&app.control.store, &name, q.grace_seconds).await?;
    Ok(Json(to_json(&RotatedToken {
        name,
        token,
        old_token_valid_until: until.map(rfc3339),
    })))
}

/// A new admin token (admin)
///
/// The previous admin token stops working at once, on every node sharing the
/// metadata store; the new one (shown in this answer only) is kept, hashed, in the
/// store and survives restarts (it takes precedence over FERRY_ADMIN_TOKEN and the
/// admin.token file; `ferry serve --reset-admin-token` goes back to those).
#[utoipa::path(
    post,
    path = "/api/v1/admin/token",
    tag = "admin",
    responses(
        (status = 200, description = "the new admin token (shown once)", body = schema::AdminToken),
        (status = 401, description = "no or unknown token", body = ErrorBody),
        (status = 403, description = "admin only", body = ErrorBody),
    )
)]
async fn rotate_admin_token(
    AxState(app): AxState<Shared>,
    headers: HeaderMap,
) -> ApiResult<Json<Json_>> {
    admin_only(&caller(&app, &headers).await?)?;
    let token = app.admin_token.rotate(&app.control.store).await?;
    Ok(Json(to_json(&schema::AdminToken { token })))
}

/// The filters of the audit log.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct AuditQuery {
    /// Since: 24h, 7d, 30d, a date (2026-11-01) or an RFC 3339 time; or a range
    /// FROM..TO (not combinable with until).
    since: Option<String>,
    /// Before: 24h, 7d, 30d, a date or an RFC 3339 time.
    until: Option<String>,
    /// Only calls concerning this tenant (made by it, or on its tasks and settings).
    tenant: Option<String>,
    /// Page size.
    #[param(minimum = 1, maximum = 1000, default = 100)]
    limit: Option<i64>,
    /// Entries to skip.
    #[param(minimum = 0, default = 0)]
    offset: Option<i64>,
}

/// The audit log of mutating calls, oldest first (admin)
///
/// Every POST, PUT, PATCH and DELETE, refused ones included: when, who, method,
/// path, target, status, error, request id, client address and a redacted summary.
#[utoipa::path(
    get,
    path = "/api/v1/audit",
    tag = "admin",
    params(AuditQuery),
    responses(
        (status = 200, description = "a page of entries", body = AuditPage),
        (status = 400, description = "a malformed query parameter", body = ErrorBody),
        (status = 401, description = "no or unknown token", body = ErrorBody),
        (status = 403, description = "admin only", body = ErrorBody),
        (status = 422, description = "bad filter", body = InvalidError),
    )
)]
async fn list_audit(
    AxState(app): AxState<Shared>,
    headers: HeaderMap,
    Query(q): Query<AuditQuery>,
) -> ApiResult<Json<Json_>> {
    admin_only(&caller(&app, &headers).await?).map_err(|_| {
        ServiceError::Forbidden("the audit log is the admin's: it needs the admin token".into())
    })?;
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ServiceError::Invalid {
            field: "limit".into(),
            reason: "between 1 and 1000".into(),
        });
    }
    let offset = q.offset.unwrap_or(0);
    if offset < 0 {
        return Err(ServiceError::Invalid {
            field: "offset".into(),
            reason: "0 or more".into(),
        });
    }
    let (since_ms, until_ms) = since_until(q.since.as_deref(), q.until.as_deref())?;
    let filter = crate::store::AuditFilter {
        tenant: q.tenant,
        since_ms,
        until_ms,
        limit,
        offset,
    };
    let (rows, total) = app.control.store.audit(&filter).await?;
    let entries = rows
        .into_iter()
        .map(|r| schema::AuditEntry {
            at: rfc3339(r.at_ms),
            who: r.who,
            tenant: r.tenant,
            method: r.method,
            path: r.path,
            target: r.target,
            status: r.status,
            error: r.error,
            request_id: r.request_id,
            remote: r.remote,
            summary: r.summary.and_then(|s| serde_json::from_str(&s).ok()),
        })
        .collect();
    Ok(Json(to_json(&schema::AuditPage {
        entries,
        total,
        limit,
        offset,
    })))
}

/// Liveness (the metadata store answers)
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "service",
    responses(
        (status = 200, description = "ok", body = String, content_type = "text/plain"),
        (status = 503, description = "metadata store unavailable", body = ErrorBody),
    )
)]
async fn healthz(AxState(app): AxState<Shared>) -> ApiResult<&'static str> {
    app.control.store.tenants().await?;
    Ok("ok\n")
}

/// `ferry_tasks{kind,state}`: the store's task counts, in its order (kind, state).
#[derive(Debug)]
struct TaskCounts(Vec<(String, String, i64)>);

impl prometheus_client::collector::Collector for TaskCounts {
    fn encode(
        &self,
        mut encoder: prometheus_client::encoding::DescriptorEncoder,
    ) -> std::fmt::Result {
        use prometheus_client::encoding::EncodeMetric;
        let mut family = encoder.encode_descriptor(
            "ferry_tasks",
            "Tasks by kind and state.",
            None,
            prometheus_client::metrics::MetricType::Gauge,
        )?;
        for (kind, state, n) in &self.0 {
            let labels = [("kind", kind.as_str()), ("state", state.as_str())];
            prometheus_client::metrics::gauge::ConstGauge::new(*n)
                .encode(family.encode_family(&labels)?)?;
        }
        Ok(())
    }
}

/// Prometheus metrics (admin token or FERRY_METRICS_TOKEN)
///
/// Tasks by kind and state; the counters, lag and apply-latency histograms of the
/// tasks this node runs. Prometheus text 0.0.4, or OpenMetrics 1.0 when the
/// `Accept` header asks for `application/openmetrics-text`. It names every
/// tenant's tasks, hence the admin token or the metrics token.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "service",
    responses(
        (status = 200, description = "Prometheus text format (or OpenMetrics)", body = String, content_type = "text/plain"),
        (status = 401, description = "no or unknown token", body = ErrorBody),
        (status = 403, description = "a tenant's token (needs the admin token or the metrics token)", body = ErrorBody),
    )
)]
async fn metrics(AxState(app): AxState<Shared>, headers: HeaderMap) -> ApiResult<Response> {
    let scraper = match (&app.metrics_token, bearer(&headers)) {
        (Some(m), Some(t)) => token_hash(t) == token_hash(m),
        _ => false,
    };
    if bearer(&headers).is_none() {
        return Err(ServiceError::Unauthorized(
            "no token: /metrics needs Authorization: Bearer with the admin token or the \
             metrics token (FERRY_METRICS_TOKEN of the server)"
                .into(),
        ));
    }
    if !scraper {
        admin_only(&caller(&app, &headers).await?).map_err(|_| {
            ServiceError::Forbidden(
                "/metrics needs the admin token or the metrics token (FERRY_METRICS_TOKEN of the server)"
                    .into(),
            )
        })?;
    }
    let mut registry = prometheus_client::registry::Registry::default();
    registry.register_collector(Box::new(TaskCounts(app.control.store.task_counts().await?)));
    if let Some(w) = &app.worker {
        let running: Vec<_> = w.metrics.lock().unwrap().values().cloned().collect();
        let refs: Vec<&ferry_engine::metrics::Metrics> =
            running.iter().map(|m| m.as_ref()).collect();
        registry.register_collector(Box::new(ferry_engine::metrics::collector(&refs)));
    }
    let format = ferry_engine::metrics::Format::negotiate(
        headers
            .get(axum::http::header::ACCEPT)
            .and_then(|v| v.to_str().ok()),
    );
    Ok((
        [(axum::http::header::CONTENT_TYPE, format.content_type())],
        format.encode(&registry),
    )
        .into_response())
}

/// The OpenAPI document, generated from the handlers and their types (see
/// `api/openapi.rs`); built once.
pub fn openapi_document() -> &'static utoipa::openapi::OpenApi {
    static DOC: std::sync::LazyLock<utoipa::openapi::OpenApi> =
        std::sync::LazyLock::new(openapi::document);
    &DOC
}

/// The web console: one static page over this API (the token stays in the browser).
const CONSOLE: &str = include_str!("console.html");

async fn console() -> axum::response::Html<&'static str> {
    axum::response::Html(CONSOLE)
}

/// This document
#[utoipa::path(
    get,
    path = "/api/v1/openapi.json",
    tag = "service",
    responses((status = 200, description = "OpenAPI 3.1"))
)]
async fn openapi() -> Response {
    static JSON: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        serde_json::to_string(openapi_document()).expect("the OpenAPI document serialises")
    });
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        JSON.as_str(),
    )
        .into_response()
}

/// The documented routes: path, method and handler. The router is built from this
/// list, and a test checks it against the generated document both ways.
fn api_routes() -> Vec<(&'static str, Method, MethodRouter<Shared>)> {
    use axum::routing::{delete, patch, put};
    vec![
        ("/api/v1/openapi.json", Method::GET, get(openapi)),
        ("/healthz", Method::GET, get(healthz)),
        ("/metrics", Method::GET, get(metrics)),
        ("/api/v1/tasks", Method::POST, post(create_task)),
        ("/api/v1/tasks", Method::GET, get(list_tasks)),
        ("/api/v1/tasks/{id}", Method::GET, get(show_task)),
        ("/api/v1/tasks/{id}", Method::DELETE, delete(delete_task)),
        ("/api/v1/tasks/{id}", Method::PATCH, patch(patch_task)),
        ("/api/v1/tasks/{id}/{action}", Method::POST, post(act)),
        ("/api/v1/tenants", Method::POST, post(create_tenant)),
        ("/api/v1/tenants/{name}", Method::GET, get(show_tenant)),
        ("/api/v1/tenants/{name}/topup", Method::POST, post(topup)),
        (
            "/api/v1/tenants/{name}/webhook",
            Method::PUT,
            put(set_webhook),
        ),
        (
            "/api/v1/tenants/{name}/webhook/secret",
            Method::POST,
            post(rotate_webhook_secret),
        ),
        (
            "/api/v1/tenants/{name}/token",
            Method::POST,
            post(rotate_tenant_token),
        ),
        (
            "/api/v1/admin/token",
            Method::POST,
            post(rotate_admin_token),
        ),
        ("/api/v1/audit", Method::GET, get(list_audit)),
        (
            "/api/v1/backup/policies",
            Method::GET,
            get(backup::list_policies),
        ),
        (
            "/api/v1/backup/policies/{cluster}",
            Method::GET,
            get(backup::show_policy),
        ),
        (
            "/api/v1/backup/policies/{cluster}",
            Method::PUT,
            put(backup::put_policy),
        ),
        (
            "/api/v1/backup/policies/{cluster}",
            Method::DELETE,
            delete(backup::delete_policy),
        ),
        (
            "/api/v1/backup/policies/{cluster}/backups",
            Method::POST,
            post(backup::instant_backup),
        ),
        (
            "/api/v1/backup/policies/{cluster}/cleanups",
            Method::POST,
            post(backup::cleanup_now),
        ),
        ("/api/v1/backup/tasks", Method::GET, get(backup::list_tasks)),
        (
            "/api/v1/backup/tasks/{id}",
            Method::GET,
            get(backup::show_task),
        ),
        (
            "/api/v1/restores",
            Method::POST,
            post(backup::create_restore),
        ),
        ("/api/v1/restores", Method::GET, get(backup::list_restores)),
        ("/api/v1/backup/logs", Method::GET, get(backup::list_logs)),
        (
            "/api/v1/backup/logs/{cluster}",
            Method::GET,
            get(backup::show_log),
        ),
        (
            "/api/v1/backup/logs/{cluster}/start",
            Method::POST,
            post(backup::start_log),
        ),
        (
            "/api/v1/backup/logs/{cluster}/stop",
            Method::POST,
            post(backup::stop_log),
        ),
        (
            "/api/v1/backup/policies/{cluster}/windows",
            Method::GET,
            get(backup::list_windows),
        ),
        (
            "/api/v1/backup/policies/{cluster}/marks",
            Method::GET,
            get(backup::list_marks),
        ),
        (
            "/api/v1/backup/policies/{cluster}/marks",
            Method::POST,
            post(backup::create_mark),
        ),
        (
            "/api/v1/restores/{id}",
            Method::GET,
            get(backup::show_restore),
        ),
    ]
}

/// The API's routes, with Swagger UI at `/api/v1/docs` and the console at `/`;
/// every mutating call goes through the audit layer (the outermost, so it records
/// the answer the client gets).
pub fn router(app: Arc<App>) -> Router {
    let docs = utoipa_swagger_ui::SwaggerUi::new("/api/v1/docs")
        .url("/api/v1/docs/openapi.json", openapi_document().clone());
    let routes = api_routes()
        .into_iter()
        .fold(Router::new(), |r, (path, _, handler)| {
            r.route(path, handler)
        });
    routes
        .merge(docs)
        .route("/", get(console))
        .fallback(no_route)
        .method_not_allowed_fallback(no_method)
        .layer(axum::middleware::from_fn(json_errors))
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            crate::audit::record,
        ))
        .with_state(app)
}

async fn no_route(method: axum::http::Method, uri: axum::http::Uri) -> Response {
    error_json(
        StatusCode::NOT_FOUND,
        json!({"error": format!("no such path: {method} {}", uri.path())}),
    )
}

async fn no_method(method: axum::http::Method, uri: axum::http::Uri) -> Response {
    error_json(
        StatusCode::METHOD_NOT_ALLOWED,
        json!({"error": format!("method not allowed: {method} {}", uri.path())}),
    )
}

fn error_json(status: StatusCode, body: Json_) -> Response {
    (status, Json(body)).into_response()
}

/// A future whose panic comes back as an `Err` instead of unwinding into the
/// server (which would drop the connection without an answer).
struct CatchUnwind<F>(std::pin::Pin<Box<F>>);

impl<F: std::future::Future> std::future::Future for CatchUnwind<F> {
    type Output = std::thread::Result<F::Output>;

    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        let f = self.get_mut().0.as_mut();
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f.poll(cx))) {
            Ok(std::task::Poll::Pending) => std::task::Poll::Pending,
            Ok(std::task::Poll::Ready(v)) => std::task::Poll::Ready(Ok(v)),
            Err(panic) => std::task::Poll::Ready(Err(panic)),
        }
    }
}

/// Every answer is the documented JSON: a handler that panics answers 500 with a
/// request id (the log has the panic under the same id), and the framework's own
/// rejections (malformed JSON 400, body too large 413, no JSON content type 415,
/// a field of the wrong type 422, a bad query 400), which axum writes as plain
/// text, are rewritten into `{error}` (`{error, field, reason}` for 422).
async fn json_errors(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let (method, path) = (req.method().clone(), req.uri().path().to_string());
    let res = match CatchUnwind(Box::pin(next.run(req))).await {
        Ok(res) => res,
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "(no message)".into());
            let id = random_hex(8);
            tracing::error!(request_id = %id, %method, %path, "a request handler panicked: {what}");
            let mut res = error_json(
                StatusCode::INTERNAL_SERVER_ERROR,
                json!({
                    "error": format!("internal error: the request failed unexpectedly; the service log has the details under request id {id}"),
                    "request_id": id,
                }),
            );
            if let Ok(v) = axum::http::HeaderValue::from_str(&id) {
                res.headers_mut().insert("x-request-id", v);
            }
            return res;
        }
    };
    let json = res
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if res.status().as_u16() < 400 || json {
        return res;
    }
    let (mut parts, body) = res.into_parts();
    let text = axum::body::to_bytes(body, 64 * 1024)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_string())
        .unwrap_or_default();
    let text = if text.is_empty() {
        parts
            .status
            .canonical_reason()
            .unwrap_or("error")
            .to_string()
    } else {
        text
    };
    let body = if parts.status == StatusCode::UNPROCESSABLE_ENTITY {
        // serde's message names the field first: `spec: invalid type: …`
        let detail = text
            .split_once("target type: ")
            .map_or(text.as_str(), |x| x.1);
        let (field, reason) = match detail.split_once(": ") {
            Some((f, r)) if !f.is_empty() && !f.contains(' ') => (f.to_string(), r.to_string()),
            _ => ("body".to_string(), detail.to_string()),
        };
        json!({"error": format!("{field}: {reason}"), "field": field, "reason": reason})
    } else {
        json!({"error": text})
    };
    parts.headers.remove(axum::http::header::CONTENT_LENGTH);
    parts.headers.insert(
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static("application/json"),
    );
    Response::from_parts(parts, axum::body::Body::from(body.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_openapi_document_parses() {
        let text = serde_json::to_string(openapi_document()).unwrap();
        let doc: utoipa::openapi::OpenApi = serde_json::from_str(&text).unwrap();
        assert!(doc.paths.paths.contains_key("/api/v1/tasks/{id}/{action}"));
        let v: Json_ = serde_json::from_str(&text).unwrap();
        assert_eq!(v["openapi"], "3.1.0");
        assert_eq!(
            v["components"]["securitySchemes"]["bearer"]["scheme"],
            "bearer"
        );
        assert_eq!(v["security"], json!([{"bearer": []}]));
        assert_eq!(v["paths"]["/healthz"]["get"]["security"], json!([]));
        // every referenced schema is defined
        let schemas = v["components"]["schemas"].as_object().unwrap();
        for name in text.split("\"#/components/schemas/").skip(1) {
            let name = name.split('"').next().unwrap();
            assert!(
                schemas.contains_key(name),
                "{name} is referenced but not defined"
            );
        }
    }

    /// The document lists exactly the routes the router serves: each (path,
    /// method) of [`api_routes`] is documented, and nothing else is.
    #[test]
    fn every_route_is_documented_and_every_documented_route_is_served() {
        let doc = serde_json::to_value(openapi_document()).unwrap();
        let mut documented = std::collections::BTreeSet::new();
        for (path, ops) in doc["paths"].as_object().unwrap() {
            for method in ops.as_object().unwrap().keys() {
                documented.insert((path.clone(), method.to_uppercase()));
            }
        }
        let served: std::collections::BTreeSet<_> = api_routes()
            .into_iter()
            .map(|(path, method, _)| (path.to_string(), method.to_string()))
            .collect();
        assert_eq!(served, documented);
        // and every operation says what an error looks like
        for (path, method) in &documented {
            let op = &doc["paths"][path][method.to_lowercase()];
            assert!(op["responses"]["500"].is_object(), "{method} {path}");
            assert!(op["tags"].is_array(), "{method} {path}");
            assert!(op["summary"].is_string(), "{method} {path}");
        }
    }

    #[test]
    fn since_and_until_refuse_what_they_cannot_read_without_panicking() {
        for bad in [
            "ù",
            "24ч",
            "ч",
            "чd",
            "d",
            "-5d",
            "+5d",
            "5 d",
            "99999999999999999d",
            "1e3h",
        ] {
            match since_ms("since", bad) {
                Err(ServiceError::Invalid { field, .. }) => assert_eq!(field, "since", "{bad}"),
                other => panic!("{bad:?}: {other:?}"),
            }
        }
        let now = now_ms();
        let ago = now - since_ms("since", "24h").unwrap();
        assert!((86_400_000..86_500_000).contains(&ago), "{ago}");
        assert!(now - since_ms("since", "30m").unwrap() >= 1_800_000);
        assert!(now - since_ms("since", "7d").unwrap() >= 7 * 86_400_000);
        assert_eq!(since_ms("until", "2026-11-01").unwrap(), 1_793_491_200_000);
        assert_eq!(
            since_ms("until", "2026-11-01T00:00:00Z").unwrap(),
            1_793_491_200_000
        );
    }

    #[test]
    fn since_takes_a_range_as_since_and_until() {
        let day = |d: &str| since_ms("until", d).unwrap();
        assert_eq!(
            since_until(Some("2026-11-01..2026-12-20"), None).unwrap(),
            (Some(day("2026-11-01")), Some(day("2026-12-20")))
        );
        assert_eq!(
            since_until(Some("2026-11-01"), Some("2026-12-20")).unwrap(),
            (Some(day("2026-11-01")), Some(day("2026-12-20")))
        );
        assert_eq!(since_until(None, None).unwrap(), (None, None));
        for (since, until, says) in [
            ("2026-11-01..2026-12-20", Some("2026-12-01"), "drop until="),
            ("2026-11-01..", None, "both ends"),
            ("..2026-12-20", None, "both ends"),
            ("2026-12-20..2026-11-01", None, "ends before it starts"),
            ("2026-11-01..soon", None, "\"soon\" is not an end"),
            ("whenever", None, "FROM..TO"),
        ] {
            match since_until(Some(since), until) {
                Err(ServiceError::Invalid { field, reason }) => {
                    assert_eq!(field, "since");
                    assert!(reason.contains(says), "{since}: {reason}");
                    if says != "drop until=" && !says.starts_with("ends") {
                        assert!(reason.contains("until="), "{since}: {reason}");
                    }
                }
                other => panic!("{since:?}: {other:?}"),
            }
        }
    }

    /// The console says what to do before a token is set, and when the list is empty.
    #[test]
    fn the_console_prompts_for_a_token_and_says_when_there_are_no_tasks() {
        let rows = CONSOLE
            .split("<tbody id=\"rows\">")
            .nth(1)
            .and_then(|r| r.split("</tbody>").next())
            .unwrap();
        assert!(rows.contains("Enter an API token"), "{rows}");
        assert!(CONSOLE.contains("No tasks yet"));
        assert!(CONSOLE.contains("No tasks match these filters"));
    }

    #[test]
    fn the_bearer_scheme_is_case_insensitive() {
        let h = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert("authorization", v.parse().unwrap());
            h
        };
        for ok in ["Bearer tok", "bearer tok", "BEARER  tok ", "bEaReR\ttok"] {
            assert_eq!(bearer(&h(ok)), Some("tok"), "{ok:?}");
        }
        for bad in ["Basic tok", "Bearer", "Bearer ", "Bearertok", "tok"] {
            assert_eq!(bearer(&h(bad)), None, "{bad:?}");
        }
        assert_eq!(bearer(&HeaderMap::new()), None);
    }

    async fn boom() -> &'static str {
        panic!("a handler bug")
    }

    /// A handler that panics answers 500 with the JSON error and a request id
    /// instead of dropping the connection; framework rejections are JSON too.
    #[tokio::test]
    async fn a_panic_answers_500_with_a_request_id_and_rejections_are_json() {
        #[derive(Deserialize)]
        struct Body {
            #[allow(dead_code)]
            n: i64,
        }
        let app = Router::new()
            .route("/boom", get(boom))
            .route("/json", post(|Json(_b): Json<Body>| async { "ok" }))
            .fallback(no_route)
            .layer(axum::middleware::from_fn(json_errors));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        let r = reqwest::get(format!("{base}/boom")).await.unwrap();
        assert_eq!(r.status().as_u16(), 500);
        let id = r.headers()["x-request-id"].to_str().unwrap().to_string();
        let v: Json_ = r.json().await.unwrap();
        assert_eq!(v["request_id"], id.as_str(), "{v}");
        assert!(v["error"].as_str().unwrap().contains(&id), "{v}");
        // the server still answers afterwards
        let r = reqwest::get(format!("{base}/nowhere")).await.unwrap();
        assert_eq!(r.status().as_u16(), 404);
        let v: Json_ = r.json().await.unwrap();
        assert!(v["error"].as_str().unwrap().contains("no such path"), "{v}");

        let c = reqwest::Client::new();
        let send = |body: &'static str, json: bool| {
            let mut r = c.post(format!("{base}/json")).body(body);
            if json {
                r = r.header("content-type", "application/json");
            }
            r.send()
        };
        for (body, json, status) in [
            ("{", true, 400),
            ("{\"n\": 1}", false, 415),
            ("{\"n\": \"x\"}", true, 422),
        ] {
            let r = send(body, json).await.unwrap();
            assert_eq!(r.status().as_u16(), status, "{body}");
            assert_eq!(r.headers()["content-type"], "application/json", "{body}");
            let v: Json_ = r.json().await.unwrap();
            assert!(v["error"].is_string(), "{v}");
            if status == 422 {
                assert_eq!(v["field"], "n", "{v}");
            }
        }
        let big = format!("{{\"n\": 1, \"pad\": \"{}\"}}", "x".repeat(3 << 20));
        let r = c
            .post(format!("{base}/json"))
            .header("content-type", "application/json")
            .body(big)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 413);
        let v: Json_ = r.json().await.unwrap();
        assert!(v["error"].is_string(), "{v}");
    }
}
