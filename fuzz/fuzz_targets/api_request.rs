//! The service API's request bodies and query strings, sent through the real router
//! (with its JSON-error layer) over a real SQLite metadata store: every request is
//! answered, never with a 5xx, and every rejection is JSON naming what is wrong —
//! a 422 names the field and the reason.
//!
//! The first input byte picks the route, the rest is the body (or the query string).
//! Webhook URLs are left out: validating one resolves its host name.
#![no_main]

use axum::body::Body;
use axum::http::{Method, Request};
use ferry_service::api::{router, App};
use ferry_service::control::Control;
use ferry_service::secrets::Secrets;
use ferry_service::store::Store;
use libfuzzer_sys::fuzz_target;
use std::sync::{Arc, OnceLock};
use tower::ServiceExt;

const ADMIN: &str = "fuzz-admin-token";

struct Fixture {
    rt: tokio::runtime::Runtime,
    router: axum::Router,
    task: String,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let dir = std::env::temp_dir().join(format!("ferry-fuzz-api-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let (router, task) = rt.block_on(async {
            let store = Store::open(&format!("sqlite://{}", dir.join("ferry.db").display()))
                .await
                .unwrap();
            let secrets = Secrets::load(&dir.join("secret.key")).unwrap();
            let app = Arc::new(App {
                control: Control::new(store, secrets),
                admin_token: ADMIN.into(),
                metrics_token: None,
                worker: None,
            });
            let router = router(app);
            let send = |uri: &str, body: &str| {
                router.clone().oneshot(
                    Request::post(uri)
                        .header("authorization", format!("Bearer {ADMIN}"))
                        .header("content-type", "application/json")
                        .body(Body::from(body.to_string()))
                        .unwrap(),
                )
            };
            send("/api/v1/tenants", r#"{"name":"t1","balance":10}"#)
                .await
                .unwrap();
            let spec = "name: one\\nkind: sync\\nmode: full+incremental\\n\
                        source: mysql://u:pw@127.0.0.1:1/a\\ntarget: postgres://u@127.0.0.1:1/b\\n";
            let r = send(
                "/api/v1/tasks",
                &format!(r#"{{"tenant":"t1","spec":"{spec}"}}"#),
            )
            .await
            .unwrap();
            assert_eq!(r.status(), 201);
            let body = axum::body::to_bytes(r.into_body(), 1 << 20).await.unwrap();
            let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
            (router, v["id"].as_str().unwrap().to_string())
        });
        Fixture { rt, router, task }
    })
}

fn percent_encode(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|&b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'=' | b'&' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fuzz_target!(|data: &[u8]| {
    let Some((&route, rest)) = data.split_first() else {
        return;
    };
    let f = fixture();
    let actions = [
        "start",
        "schedule",
        "pause",
        "resume",
        "end",
        "edit",
        "switchover",
    ];
    let (method, uri, body) = match route % 6 {
        0 => (Method::POST, "/api/v1/tasks".to_string(), rest.to_vec()),
        1 => (Method::POST, "/api/v1/tenants".to_string(), rest.to_vec()),
        2 => (
            Method::POST,
            "/api/v1/tenants/t1/topup".to_string(),
            rest.to_vec(),
        ),
        3 => (
            Method::POST,
            format!(
                "/api/v1/tasks/{}/{}",
                f.task,
                actions[(route / 6) as usize % actions.len()]
            ),
            rest.to_vec(),
        ),
        4 => (
            Method::GET,
            format!("/api/v1/tasks?{}", percent_encode(rest)),
            Vec::new(),
        ),
        _ => (
            Method::GET,
            format!("/api/v1/tasks/{}", percent_encode(rest)),
            Vec::new(),
        ),
    };
    let req = Request::builder()
        .method(method)
        .uri(&uri)
        .header("authorization", format!("Bearer {ADMIN}"))
        .header("content-type", "application/json")
        .body(Body::from(body))
        .unwrap();
    let (status, body) = f.rt.block_on(async {
        let r = f.router.clone().oneshot(req).await.unwrap();
        let status = r.status();
        (
            status,
            axum::body::to_bytes(r.into_body(), 8 << 20).await.unwrap(),
        )
    });
    assert!(
        !status.is_server_error(),
        "{uri}: {status} {}",
        String::from_utf8_lossy(&body)
    );
    if status.is_client_error() {
        let v: serde_json::Value = serde_json::from_slice(&body)
            .unwrap_or_else(|e| panic!("{uri}: {status} with a body that is not JSON ({e})"));
        assert!(
            v["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{uri}: {v}"
        );
        if status == 422 {
            assert!(
                v["field"].as_str().is_some_and(|e| !e.is_empty()),
                "{uri}: {v}"
            );
            assert!(
                v["reason"].as_str().is_some_and(|e| !e.is_empty()),
                "{uri}: {v}"
            );
        }
    }
});
