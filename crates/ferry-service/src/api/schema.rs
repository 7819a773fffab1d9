//! The shapes the API answers with, as types: the handlers build them and the
//! OpenAPI document is generated from them, so the two cannot drift.

use ferry_core::lifecycle::{ACTIONS, STATES};
use ferry_core::spec::Kind;
use serde::Serialize;
use serde_json::Value as Json_;
use std::borrow::Cow;
use std::collections::BTreeMap;
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::openapi::RefOr;
use utoipa::{PartialSchema, ToSchema};

/// A string schema that takes one of `ids`.
fn one_of(ids: impl IntoIterator<Item = &'static str>, what: &str) -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(ids))
        .description(Some(what))
        .into()
}

/// A task kind's id (`migration`, `sync`, `dr`); schema only.
pub struct KindId;

impl PartialSchema for KindId {
    fn schema() -> RefOr<Schema> {
        one_of(
            [Kind::Migration, Kind::Sync, Kind::Dr].map(Kind::id),
            "task kind",
        )
    }
}

impl ToSchema for KindId {
    fn name() -> Cow<'static, str> {
        "Kind".into()
    }
}

/// A lifecycle state's id (SPEC.md §2); schema only.
pub struct StateId;

impl PartialSchema for StateId {
    fn schema() -> RefOr<Schema> {
        one_of(STATES.map(|s| s.id()), "lifecycle state")
    }
}

impl ToSchema for StateId {
    fn name() -> Cow<'static, str> {
        "State".into()
    }
}

/// A lifecycle action's id; schema only.
pub struct ActionId;

impl PartialSchema for ActionId {
    fn schema() -> RefOr<Schema> {
        one_of(ACTIONS.map(|a| a.id()), "lifecycle action")
    }
}

impl ToSchema for ActionId {
    fn name() -> Cow<'static, str> {
        "Action".into()
    }
}

/// An error answer.
#[derive(Serialize, ToSchema)]
#[schema(as = Error)]
pub struct ErrorBody {
    /// What went wrong, for a person.
    pub error: String,
    /// On a 500: the id under which the service log has the details.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

/// A refused value (422): which field and why.
#[derive(Serialize, ToSchema)]
pub struct InvalidError {
    /// What went wrong, for a person.
    pub error: String,
    /// The field (of the body, the query or the task file).
    pub field: String,
    /// Why it is refused.
    pub reason: String,
}

/// An action the task's state does not allow (409).
#[derive(Serialize, ToSchema)]
pub struct Refused {
    /// What went wrong, for a person.
    pub error: String,
    /// The task's state.
    #[schema(value_type = StateId)]
    pub state: &'static str,
    /// The actions this state allows.
    #[schema(value_type = Vec<ActionId>)]
    pub allowed: Vec<&'static str>,
}

/// One table of the full copy (in `progress.tables`); schema only.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct TableProgress {
    table: String,
    stage: Option<String>,
    chunks_done: i64,
    chunks: i64,
    rows: i64,
}

/// A table added by a sync edit (in `progress.added_tables`); schema only.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct AddedTable {
    table: String,
    /// Keys below this are on the target.
    next_key: Option<String>,
    done: bool,
    rows: i64,
}

/// A running task's live progress, written by its worker every 2 s; schema only.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct Progress {
    /// Engine phase: full, incremental, backfill (a sync edit's added tables are
    /// being copied), recovering, …
    phase: String,
    position: String,
    lag_seconds: f64,
    transactions_applied: i64,
    rows_applied: i64,
    recoveries: i64,
    at: String,
    /// During the full phase: each table's chunks.
    tables: Option<Vec<TableProgress>>,
    /// During a sync edit: how far the running stream has copied each added table.
    added_tables: Option<Vec<AddedTable>>,
}

/// A task (no passwords: the stored spec has none).
#[derive(Serialize, ToSchema)]
pub struct Task {
    /// The task id.
    pub id: String,
    /// The task file's name.
    pub name: String,
    /// The owning tenant.
    pub tenant: String,
    /// Its kind.
    #[schema(value_type = KindId)]
    pub kind: &'static str,
    /// Its lifecycle state.
    #[schema(value_type = StateId)]
    pub state: &'static str,
    /// The state's label for the console.
    pub state_label: &'static str,
    /// Why the task is in its state (a failure's error, …).
    pub reason: Option<String>,
    /// The actions its state allows.
    #[schema(value_type = Vec<ActionId>)]
    pub allowed_actions: Vec<&'static str>,
    /// The task file's mode.
    #[schema(value_type = Option<String>)]
    pub mode: Option<Json_>,
    /// The source URL, without its password.
    #[schema(value_type = Option<String>)]
    pub source: Option<Json_>,
    /// The target URL, without its password.
    #[schema(value_type = Option<String>)]
    pub target: Option<Json_>,
    /// Scheduled start.
    #[schema(format = DateTime)]
    pub start_at: Option<String>,
    /// When it was created.
    #[schema(format = DateTime)]
    pub created_at: String,
    /// When it last changed.
    #[schema(format = DateTime)]
    pub updated_at: String,
    /// The node holding the task's lease.
    pub worker: Option<String>,
    /// Live progress while it runs.
    #[schema(value_type = Option<Progress>)]
    pub progress: Option<Json_>,
    /// Target connections applying the change stream at once (the task file's
    /// `apply_jobs`); null: the worker machine's cores.
    pub apply_jobs: Option<u64>,
    /// The speed limits in force (each null: not limited); changed with
    /// `PATCH /api/v1/tasks/{id}`.
    pub speed_limit: SpeedLimit,
}

/// A task's speed limits, as the task file's `speed_limit:` writes them; null (or
/// left out of a PATCH): not limited (unchanged).
#[derive(Serialize, ToSchema, Default, Debug, PartialEq)]
pub struct SpeedLimit {
    /// Full copy rows per second, all copy workers together.
    #[schema(minimum = 1, maximum = 1_000_000_000_000_u64)]
    pub copy_rows_per_second: Option<u64>,
    /// Full copy MB per second (1 MB = 1,000,000 bytes; fractions allowed).
    #[schema(exclusive_minimum = 0, maximum = 1_000_000)]
    pub copy_mb_per_second: Option<f64>,
    /// Applied row changes per second.
    #[schema(minimum = 1, maximum = 1_000_000_000_000_u64)]
    pub apply_rows_per_second: Option<u64>,
    /// Applied change MB per second.
    #[schema(exclusive_minimum = 0, maximum = 1_000_000)]
    pub apply_mb_per_second: Option<f64>,
}

impl SpeedLimit {
    /// The view of the engine's limits (bytes shown as MB).
    pub fn of(l: &ferry_core::spec::SpeedLimit) -> SpeedLimit {
        let mb = |b: Option<u64>| b.map(|b| b as f64 / ferry_core::spec::MB);
        SpeedLimit {
            copy_rows_per_second: l.copy_rows_per_second,
            copy_mb_per_second: mb(l.copy_bytes_per_second),
            apply_rows_per_second: l.apply_rows_per_second,
            apply_mb_per_second: mb(l.apply_bytes_per_second),
        }
    }
}

/// A change to a running (or any) task: its speed limits, taken by the running
/// engine within a second and kept in the stored task file.
#[derive(ToSchema)]
#[allow(dead_code)] // schema only: the handler reads the JSON itself (null ≠ absent)
pub struct TaskPatch {
    /// The limits to change: a key set to a value sets that limit, null removes it,
    /// a key left out keeps it.
    speed_limit: SpeedLimit,
}

/// A lifecycle transition of a task.
#[derive(Serialize, ToSchema)]
pub struct Event {
    /// When.
    #[schema(format = DateTime)]
    pub at: String,
    /// The state before (none at creation).
    pub from: Option<String>,
    /// The state after.
    pub to: String,
    /// Why.
    pub reason: Option<String>,
}

/// A task with its lifecycle events.
#[derive(Serialize, ToSchema)]
pub struct TaskDetail {
    /// The task.
    #[serde(flatten)]
    pub task: Task,
    /// Its transitions, oldest first.
    pub events: Vec<Event>,
}

/// A page of tasks, newest first.
#[derive(Serialize, ToSchema)]
pub struct TaskPage {
    /// The page.
    pub tasks: Vec<Task>,
    /// How many tasks match the filter.
    pub total: i64,
    /// The page size asked for.
    pub limit: i64,
    /// How many matching tasks precede the page.
    pub offset: i64,
}

/// A tenant: balance, usage, webhook and tasks by state.
#[derive(Serialize, ToSchema)]
pub struct Tenant {
    /// Its name.
    pub name: String,
    /// What is left to spend.
    pub balance: f64,
    /// What its tasks have used.
    pub usage: f64,
    /// Where its notifications go.
    #[schema(value_type = Option<crate::notify::Webhook>)]
    pub webhook: Option<Json_>,
    /// Its tasks, counted by state.
    pub tasks_by_state: BTreeMap<&'static str, u64>,
    /// The webhook signing secret: only in the answer that created it (the first
    /// webhook set), shown this once. Receivers check `X-Ferry-Signature` with it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signing_secret: Option<String>,
}

/// A tenant's new token after a rotation (shown this once).
#[derive(Serialize, ToSchema)]
pub struct RotatedToken {
    /// The tenant.
    pub name: String,
    /// Its new API token.
    pub token: String,
    /// Until when the previous token still works (with `grace_seconds`); null: it
    /// stopped working at once.
    #[schema(format = DateTime)]
    pub old_token_valid_until: Option<String>,
}

/// The new admin token after a rotation (shown this once).
#[derive(Serialize, ToSchema)]
pub struct AdminToken {
    /// The new admin token; the previous one no longer works.
    pub token: String,
}

/// A tenant's new webhook signing secret (shown this once).
#[derive(Serialize, ToSchema)]
pub struct SigningSecret {
    /// The tenant.
    pub name: String,
    /// The HMAC-SHA256 key of `X-Ferry-Signature`; the previous one no longer signs.
    pub signing_secret: String,
}

/// One audited API call.
#[derive(Serialize, ToSchema)]
pub struct AuditEntry {
    /// When it was answered.
    #[schema(format = DateTime)]
    pub at: String,
    /// `admin`, the tenant's name, or `unauthenticated`.
    pub who: String,
    /// The tenant concerned (the caller's, or the one the target belongs to).
    pub tenant: Option<String>,
    /// HTTP method.
    pub method: String,
    /// Request path, ids included.
    pub path: String,
    /// The object acted on (`task t1a2b3c4d5e6`, `tenant acme`, `admin token`).
    pub target: Option<String>,
    /// HTTP status of the answer.
    pub status: i64,
    /// The error message of a failed call.
    pub error: Option<String>,
    /// The request id (the answer's `x-request-id`).
    pub request_id: String,
    /// The client's address.
    pub remote: Option<String>,
    /// A few fields of the answer (ids, names, states, redacted URLs); never a
    /// token, password or secret.
    #[schema(value_type = Option<Object>)]
    pub summary: Option<Json_>,
}

/// A page of the audit log, oldest first.
#[derive(Serialize, ToSchema)]
pub struct AuditPage {
    /// The page.
    pub entries: Vec<AuditEntry>,
    /// How many entries match the filter.
    pub total: i64,
    /// The page size asked for.
    pub limit: i64,
    /// How many matching entries precede the page.
    pub offset: i64,
}

/// A tenant just created, with its token (shown this once).
#[derive(Serialize, ToSchema)]
pub struct NewTenant {
    /// Its name.
    pub name: String,
    /// Its opening balance.
    pub balance: f64,
    /// Its API token: `Authorization: Bearer <token>`.
    pub token: String,
}

/// `value` as JSON (the handlers' answers and `events` are built as JSON values,
/// exactly what the types serialise to).
pub fn to_json(value: &impl Serialize) -> Json_ {
    serde_json::to_value(value).expect("the API's types serialise")
}

/// The id of an action posted to `/api/v1/tasks/{id}/{action}` (all but `delete`,
/// which is `DELETE /api/v1/tasks/{id}`); schema only.
pub struct PostedActionId;

impl PartialSchema for PostedActionId {
    fn schema() -> RefOr<Schema> {
        let ids = ACTIONS
            .iter()
            .filter(|a| **a != ferry_core::lifecycle::Action::Delete)
            .map(|a| a.id());
        one_of(ids, "lifecycle action")
    }
}

impl ToSchema for PostedActionId {
    fn name() -> Cow<'static, str> {
        "PostedAction".into()
    }
}
