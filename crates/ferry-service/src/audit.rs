//! The audit log: every mutating API call (POST, PUT, PATCH, DELETE) is recorded in
//! the metadata store by a middleware layer — no handler can forget it — with when,
//! who, what (method, path, target object), the outcome (status, error message),
//! the request id and the client's address. Never a body: a few whitelisted fields
//! of the answer, redacted, so no token, password or webhook secret is kept.

use crate::api::{caller, App};
use crate::control::{random_hex, Caller};
use crate::store::{now_ms, AuditRow};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, Method};
use axum::middleware::Next;
use axum::response::Response;
use ferry_core::redact::redact;
use serde_json::Value;
use std::net::SocketAddr;
use std::sync::Arc;

/// The answer fields an entry's summary may hold: what was created or changed,
/// never a token or a secret (`token`, `signing_secret` are not in the list).
const SUMMARY_FIELDS: [&str; 10] = [
    "id",
    "name",
    "tenant",
    "kind",
    "state",
    "mode",
    "source",
    "target",
    "webhook",
    "old_token_valid_until",
];

/// Largest answer read back for the summary (the API's answers are far smaller).
const MAX_ANSWER: usize = 4 << 20;

/// The client's address, as the audit log records it: the connection's peer, for
/// plain and TLS listeners alike (`into_make_service_with_connect_info::<Remote>`).
#[derive(Debug, Clone, Copy)]
pub struct Remote(pub SocketAddr);

impl
    axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, tokio::net::TcpListener>>
    for Remote
{
    fn connect_info(stream: axum::serve::IncomingStream<'_, tokio::net::TcpListener>) -> Remote {
        Remote(*stream.remote_addr())
    }
}

impl
    axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, crate::tls::TlsListener>>
    for Remote
{
    fn connect_info(stream: axum::serve::IncomingStream<'_, crate::tls::TlsListener>) -> Remote {
        Remote(*stream.remote_addr())
    }
}

/// Whether calls with `method` are audited.
pub fn mutating(method: &Method) -> bool {
    matches!(
        *method,
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE
    )
}

/// The object a path names and the tenant it belongs to, when the path says.
async fn target_of(app: &App, path: &str) -> (Option<String>, Option<String>) {
    let rest = path.trim_start_matches("/api/v1/");
    let mut parts = rest.split('/');
    match (parts.next(), parts.next()) {
        (Some("tasks"), Some(id)) if !id.is_empty() => {
            let tenant = app
                .control
                .store
                .task(id)
                .await
                .ok()
                .flatten()
                .map(|t| t.tenant);
            (Some(format!("task {id}")), tenant)
        }
        (Some("tenants"), Some(name)) if !name.is_empty() => {
            (Some(format!("tenant {name}")), Some(name.to_string()))
        }
        (Some("admin"), Some("token")) => (Some("admin token".into()), None),
        _ => (None, None),
    }
}

/// A few fields of a successful answer, redacted, as JSON text.
fn summary_of(answer: &Value) -> Option<String> {
    let o = answer.as_object()?;
    let kept: serde_json::Map<String, Value> = SUMMARY_FIELDS
        .iter()
        .filter_map(|k| o.get(*k).map(|v| (k.to_string(), v.clone())))
        .collect();
    (!kept.is_empty()).then(|| redact(&Value::Object(kept).to_string()))
}

/// The middleware: runs the call, then records it (a failure to record is logged,
/// the answer is sent anyway — the call has happened).
pub async fn record(State(app): State<Arc<App>>, req: Request, next: Next) -> Response {
    if !mutating(req.method()) {
        return next.run(req).await;
    }
    let method = req.method().to_string();
    let path = req.uri().path().to_string();
    let remote = req
        .extensions()
        .get::<ConnectInfo<Remote>>()
        .map(|c| c.0 .0.to_string());
    let who = caller(&app, req.headers()).await.ok();
    let (mut target, path_tenant) = target_of(&app, &path).await;
    let res = next.run(req).await;
    let (mut parts, body) = res.into_parts();
    let bytes = axum::body::to_bytes(body, MAX_ANSWER)
        .await
        .unwrap_or_default();
    let answer: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    let status = parts.status;
    let ok = status.is_success();
    // a created object is named by the answer
    if ok && target.is_none() {
        if let Some(id) = answer.get("id").and_then(Value::as_str) {
            target = Some(format!("task {id}"));
        } else if let Some(n) = answer.get("name").and_then(Value::as_str) {
            target = Some(format!("tenant {n}"));
        }
    }
    let tenant = match &who {
        Some(Caller::Tenant(t)) => Some(t.clone()),
        _ => path_tenant.or_else(|| {
            answer
                .get("tenant")
                .or_else(|| ok.then(|| answer.get("name")).flatten())
                .and_then(Value::as_str)
                .map(String::from)
        }),
    };
    let error = (!ok).then(|| {
        redact(
            answer
                .get("error")
                .and_then(Value::as_str)
                .unwrap_or_else(|| status.canonical_reason().unwrap_or("error")),
        )
    });
    let request_id = match parts
        .headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
    {
        Some(id) => id.to_string(),
        None => {
            let id = random_hex(8);
            parts.headers.insert(
                "x-request-id",
                HeaderValue::from_str(&id).expect("hex is a header value"),
            );
            id
        }
    };
    let row = AuditRow {
        at_ms: now_ms(),
        who: match who {
            Some(Caller::Admin) => "admin".into(),
            Some(Caller::Tenant(t)) => t,
            None => "unauthenticated".into(),
        },
        tenant,
        method,
        path,
        target,
        status: i64::from(status.as_u16()),
        error,
        request_id,
        remote,
        summary: if ok { summary_of(&answer) } else { None },
    };
    if let Err(e) = app.control.store.insert_audit(&row).await {
        tracing::error!(request_id = %row.request_id, "the audit entry of {} {} was not stored: {e}", row.method, row.path);
    }
    Response::from_parts(parts, axum::body::Body::from(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_summary_keeps_whitelisted_fields_only_and_redacts_them() {
        let s = summary_of(&json!({
            "name": "acme",
            "token": "fy_secret",
            "signing_secret": "whsec_x",
            "webhook": {"url": "http://u:pw@127.0.0.1/hook"},
            "source": "postgres://app@db/x",
        }))
        .unwrap();
        assert!(!s.contains("fy_secret") && !s.contains("whsec_x"), "{s}");
        assert!(!s.contains(":pw@"), "{s}");
        assert!(
            s.contains("\"name\":\"acme\"") && s.contains("postgres://app@db/x"),
            "{s}"
        );
        assert_eq!(summary_of(&json!({"token": "x"})), None);
        assert_eq!(summary_of(&Value::Null), None);
    }

    #[test]
    fn only_mutating_methods_are_audited() {
        for m in [Method::POST, Method::PUT, Method::PATCH, Method::DELETE] {
            assert!(mutating(&m), "{m}");
        }
        for m in [Method::GET, Method::HEAD, Method::OPTIONS] {
            assert!(!mutating(&m), "{m}");
        }
    }
}
