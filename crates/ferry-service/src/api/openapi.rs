//! The OpenAPI document, generated from the handlers' `#[utoipa::path]`
//! attributes and the request and answer types (no hand-written copy to drift).

use super::schema::{
    ActionId, AdminToken, AuditEntry, AuditPage, ErrorBody, Event, InvalidError, KindId, NewTenant,
    PostedActionId, Progress, Refused, RotatedToken, SigningSecret, StateId, Task, TaskDetail,
    TaskPage, Tenant,
};
use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
use utoipa::{Modify, OpenApi};

/// Ferry's REST API as OpenAPI 3.1.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Ferry",
        version = "1",
        description = "Ferry's REST API: migration, sync and DR tasks with their lifecycles, \
            tenants with tokens and balances. Authenticate with `Authorization: Bearer <token>` \
            (a tenant's token, or the admin token). Passwords are never returned."
    ),
    servers((url = "/")),
    security(("bearer" = [])),
    paths(
        super::healthz,
        super::metrics,
        super::create_task,
        super::list_tasks,
        super::show_task,
        super::patch_task,
        super::delete_task,
        super::act,
        super::create_tenant,
        super::show_tenant,
        super::topup,
        super::set_webhook,
        super::rotate_webhook_secret,
        super::rotate_tenant_token,
        super::rotate_admin_token,
        super::list_audit,
        super::openapi,
        super::backup::list_policies,
        super::backup::show_policy,
        super::backup::put_policy,
        super::backup::delete_policy,
        super::backup::instant_backup,
        super::backup::cleanup_now,
        super::backup::list_tasks,
        super::backup::show_task,
        super::backup::create_restore,
        super::backup::list_restores,
        super::backup::show_restore,
        super::backup::list_logs,
        super::backup::show_log,
        super::backup::start_log,
        super::backup::stop_log,
        super::backup::list_windows,
        super::backup::list_marks,
        super::backup::create_mark,
    ),
    components(schemas(
        ErrorBody,
        InvalidError,
        Refused,
        Task,
        TaskDetail,
        super::schema::SpeedLimit,
        super::schema::TaskPatch,
        TaskPage,
        Event,
        Progress,
        Tenant,
        NewTenant,
        KindId,
        StateId,
        ActionId,
        PostedActionId,
        crate::notify::Webhook,
        RotatedToken,
        AdminToken,
        SigningSecret,
        AuditEntry,
        AuditPage,
        super::backup::Policy,
        super::backup::PolicyList,
        crate::backup::policy::PolicyInput,
        super::backup::InstantBackup,
        super::backup::BackupTask,
        super::backup::BackupTaskPage,
        super::backup::SecondaryCopy,
        super::backup::NewRestore,
        super::backup::LogTask,
        super::backup::LogTaskPage,
        super::backup::Window,
        super::backup::WindowList,
        super::backup::MarkView,
        super::backup::MarkList,
        super::backup::NewMark,
    )),
    tags(
        (name = "tasks", description = "Migration, sync and DR tasks and their lifecycle actions"),
        (name = "tenants", description = "Tenants: tokens, balances, webhooks (admin, or the tenant itself)"),
        (name = "service", description = "Health, metrics and this document"),
        (name = "backup", description = "Backup policies, instant backups, the backup overview's task lists (data, cleanup, secondary, drill) and restores"),
        (name = "admin", description = "The admin token and the audit log (admin token)"),
    ),
    modifiers(&Conventions)
)]
struct ApiDoc;

/// What every operation shares: the bearer scheme, a 500 with a request id, and
/// no token for the public routes.
struct Conventions;

/// Routes that answer without a token.
const PUBLIC: [&str; 2] = ["/healthz", "/api/v1/openapi.json"];

impl Modify for Conventions {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
        let internal = ResponseBuilder::new()
            .description("internal error (request_id names it in the service log)")
            .content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("Error")))
                    .build(),
            )
            .build();
        for (path, item) in doc.paths.paths.iter_mut() {
            let ops: [&mut Option<Operation>; 5] = [
                &mut item.get,
                &mut item.post,
                &mut item.put,
                &mut item.patch,
                &mut item.delete,
            ];
            for op in ops.into_iter().flatten() {
                op.responses
                    .responses
                    .entry("500".into())
                    .or_insert_with(|| internal.clone().into());
                if PUBLIC.contains(&path.as_str()) {
                    op.security = Some(Vec::new());
                }
            }
        }
    }
}

/// The generated document.
pub fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}
