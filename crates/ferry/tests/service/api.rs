//! The API's contract: tokens and tenants (each sees only its own tasks, only the admin
//! administers), bad input refused with the documented JSON error before anything is
//! written, and an OpenAPI document that matches the routes.

use crate::harness::{databases, spec, webhook_sink, Service, ADMIN, T};
use serde_json::{json, Value};

/// Tenants see only their own tasks; bad input is a 422 naming the field; an
/// unreachable endpoint ends in create_failed with the reason; concurrent pause and
/// end leave a valid state.
#[tokio::test(flavor = "multi_thread")]
async fn tenants_are_isolated_and_bad_input_is_explained() {
    let dir = tempfile::tempdir().unwrap();
    // the webhook sink listens on loopback: the admin allows it
    let svc = Service::start_with(dir.path(), &[], &[("FERRY_WEBHOOK_ALLOW", "127.0.0.1")]).await;
    let a = svc.tenant("alpha", 10.0).await;
    let b = svc.tenant("beta", 10.0).await;
    let (src, dst) = databases(100).await;
    let id = svc
        .create(&a, &spec("mine", "full+incremental", &src, &dst), None)
        .await;
    svc.wait_state(&a, &id, "configuring", T).await;

    let (s, _) = svc
        .call("GET", &format!("/api/v1/tasks/{id}"), &b, None)
        .await;
    assert_eq!(s, 404, "another tenant's task looks missing");
    let (s, _) = svc.act(&b, &id, "start").await;
    assert_eq!(s, 404);
    let (_, list) = svc.call("GET", "/api/v1/tasks", &b, None).await;
    assert_eq!(list["total"], 0);
    let (_, list) = svc
        .call("GET", "/api/v1/tasks?kind=migration&since=24h", ADMIN, None)
        .await;
    assert_eq!(list["total"], 1, "the admin sees all: {list}");
    let (s, _) = svc.call("GET", "/api/v1/tasks", "nope", None).await;
    assert_eq!(s, 401);
    let (s, _) = svc
        .call("POST", "/api/v1/tenants", &a, Some(json!({"name": "x"})))
        .await;
    assert_eq!(s, 403, "only the admin creates tenants");

    let (s, v) = svc
        .call(
            "POST",
            "/api/v1/tasks",
            &a,
            Some(json!({"spec": "name: x\nkind: migration\n"})),
        )
        .await;
    assert_eq!(s, 422, "{v}");
    assert_eq!(v["field"], "spec");
    let (s, v) = svc.call("GET", "/api/v1/tasks?state=bogus", &a, None).await;
    assert_eq!((s, v["field"].as_str()), (422, Some("state")));

    // the tenant's webhook hears about failures
    let (hook, mut heard) = webhook_sink().await;
    let (s, v) = svc
        .call(
            "PUT",
            "/api/v1/tenants/alpha/webhook",
            &a,
            Some(json!({"url": hook, "lag_seconds": 30, "lag_for_seconds": 60})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let (s, v) = svc
        .call(
            "PUT",
            "/api/v1/tenants/alpha/webhook",
            &a,
            Some(json!({"url": "ftp://x"})),
        )
        .await;
    assert_eq!((s, v["field"].as_str()), (422, Some("url")), "{v}");

    // nothing listens on port 1: validation fails with the reason
    let bad = spec("unreachable", "full", &src, &dst).replace(
        &format!(":{}/", url::Url::parse(&src.url).unwrap().port().unwrap()),
        ":1/",
    );
    let bad_id = svc.create(&a, &bad, None).await;
    let v = svc.wait_state(&a, &bad_id, "create_failed", T).await;
    assert!(v["reason"].as_str().unwrap().contains("source"), "{v}");
    assert!(!v.to_string().contains("s3cret"));
    let note = tokio::time::timeout(T, heard.recv())
        .await
        .expect("webhook called")
        .unwrap();
    assert_eq!(note["event"], "task_failed", "{note}");
    assert_eq!(note["task"]["id"], bad_id.as_str());
    assert_eq!(note["task"]["state"], "create_failed");
    assert!(!note.to_string().contains("s3cret"));

    // pause and end at once: whichever wins, the task ends up in a valid state
    let (s, _) = svc.act(&a, &id, "start").await;
    assert_eq!(s, 202);
    svc.wait_state(&a, &id, "incremental", T).await;
    let (p, e) = tokio::join!(svc.act(&a, &id, "pause"), svc.act(&a, &id, "end"));
    assert!(p.0 == 202 || p.0 == 409, "{p:?}");
    assert_eq!(
        e.0, 202,
        "end is allowed from incremental and from paused: {e:?}"
    );
    svc.wait_state(&a, &id, "ended", T).await;
}

/// Bad requests are refused with the documented JSON error, before anything is
/// written: dates the parser cannot read (multi-byte, overflowing), a start time in
/// the past, webhooks to internal addresses, malformed or mistyped bodies; the
/// metrics need a token and count every task.
#[tokio::test(flavor = "multi_thread")]
async fn bad_requests_are_refused_with_json_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let svc = Service::start_with(dir.path(), &[], &[("FERRY_METRICS_TOKEN", "scrape-me")]).await;
    let tok = svc.tenant("acme", 10.0).await;
    let c = reqwest::Client::new();
    let url = |p: &str| format!("{}{p}", svc.base);

    // multi-byte and overflowing `since`/`until`: a 422 naming the field, never a
    // dropped connection
    for (q, field) in [
        ("since=%C3%B9", "since"),
        ("until=24%D1%87", "until"),
        ("since=99999999999999999d", "since"),
        ("since=2026-11-01..2026-12-20&until=2026-12-01", "since"),
    ] {
        let (s, v) = svc
            .call("GET", &format!("/api/v1/tasks?{q}"), &tok, None)
            .await;
        assert_eq!((s, v["field"].as_str()), (422, Some(field)), "{q}: {v}");
    }
    let (s, _) = svc.call("GET", "/api/v1/tasks?since=24h", &tok, None).await;
    assert_eq!(s, 200);
    // the range README documents for --since works in the API too
    let (s, v) = svc
        .call(
            "GET",
            "/api/v1/tasks?since=2026-11-01..2026-12-20",
            &tok,
            None,
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let (_, v) = svc
        .call("GET", "/api/v1/tasks?since=soon", &tok, None)
        .await;
    let why = v["error"].as_str().unwrap_or_default();
    assert!(why.contains("FROM..TO") && why.contains("until="), "{v}");

    // a start time in the past is refused and no task is left behind
    let spec = "name: later\nkind: migration\nmode: full\nsource: postgres://u@127.0.0.1:1/a\ntarget: postgres://u@127.0.0.1:1/b\n";
    let (s, v) = svc
        .call(
            "POST",
            "/api/v1/tasks",
            &tok,
            Some(json!({"spec": spec, "start_at": "2001-01-01T00:00:00Z"})),
        )
        .await;
    assert_eq!((s, v["field"].as_str()), (422, Some("start_at")), "{v}");
    let (_, list) = svc.call("GET", "/api/v1/tasks", &tok, None).await;
    assert_eq!(list["total"], 0, "a refused create left a task: {list}");
    let id = svc.create(&tok, spec, None).await;
    svc.wait_state(&tok, &id, "create_failed", T).await;

    // webhooks to internal addresses are refused when saved (nothing is sent: no
    // address here is reachable from the test anyway but 127.0.0.1)
    for hook in [
        "http://169.254.169.254/latest/meta-data/",
        "http://10.1.2.3/hook",
        "http://127.0.0.1:9/hook",
        "http://[::1]:9/hook",
        "http://0.0.0.0:9/hook",
    ] {
        let (s, v) = svc
            .call(
                "PUT",
                "/api/v1/tenants/acme/webhook",
                &tok,
                Some(json!({"url": hook})),
            )
            .await;
        assert_eq!((s, v["field"].as_str()), (422, Some("url")), "{hook}: {v}");
    }
    let (s, v) = svc
        .call(
            "PUT",
            "/api/v1/tenants/acme/webhook",
            &tok,
            Some(json!({"url": "http://127.0.0.1:9/hook", "lag_seconds": -1})),
        )
        .await;
    assert_eq!((s, v["field"].as_str()), (422, Some("lag_seconds")), "{v}");
    let (_, t) = svc.call("GET", "/api/v1/tenants/acme", &tok, None).await;
    assert!(t["webhook"].is_null(), "{t}");

    // /metrics: a token is needed; the admin's or the metrics token; failed tasks count
    let metrics = |token: Option<&str>| {
        let mut r = c.get(url("/metrics"));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        r.send()
    };
    let none = metrics(None).await.unwrap();
    assert_eq!(none.status().as_u16(), 401);
    let why = none.text().await.unwrap();
    assert!(why.contains("FERRY_METRICS_TOKEN"), "{why}");
    assert_eq!(metrics(Some(&tok)).await.unwrap().status().as_u16(), 403);
    for t in [ADMIN, "scrape-me"] {
        let r = metrics(Some(t)).await.unwrap();
        assert_eq!(r.status().as_u16(), 200);
        let m = r.text().await.unwrap();
        assert!(
            m.contains("ferry_tasks{kind=\"migration\",state=\"create_failed\"} 1"),
            "{m}"
        );
    }
    // the metrics token is no admin token
    let (s, _) = svc.call("GET", "/api/v1/tasks", "scrape-me", None).await;
    assert_eq!(s, 401);

    // the Bearer scheme is case-insensitive
    let r = c
        .get(url("/api/v1/tasks"))
        .header("authorization", format!("bearer {tok}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);

    // the framework's own rejections answer the documented JSON error
    for (body, content_type, status) in [
        ("{\"spec\": ", Some("application/json"), 400),
        ("{\"spec\": \"x\"}", None, 415),
        ("{\"spec\": 5}", Some("application/json"), 422),
    ] {
        let mut r = c.post(url("/api/v1/tasks")).bearer_auth(&tok).body(body);
        if let Some(ct) = content_type {
            r = r.header("content-type", ct);
        }
        let r = r.send().await.unwrap();
        assert_eq!(r.status().as_u16(), status, "{body}");
        assert_eq!(r.headers()["content-type"], "application/json", "{body}");
        let v: Value = r.json().await.unwrap();
        assert!(v["error"].is_string(), "{v}");
        if status == 422 {
            assert_eq!(v["field"], "spec", "{v}");
        }
    }
    let r = c
        .get(url("/api/v1/tasks?limit=many"))
        .bearer_auth(&tok)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    assert_eq!(r.headers()["content-type"], "application/json");
    // as documented, an offset is 0 or more
    let (s, v) = svc.call("GET", "/api/v1/tasks?offset=-1", &tok, None).await;
    assert_eq!(s, 422, "{v}");
    assert_eq!(v["field"], "offset", "{v}");

    // an action's body is optional, but one that is sent is never ignored
    let act = url(&format!("/api/v1/tasks/{id}/schedule"));
    for (body, content_type, status) in [
        ("{\"start_at\": \"2099-01-01T00:00:00Z\"}", None, 415),
        ("{\"start_at\": ", Some("application/json"), 400),
        ("{\"start_at\": 5}", Some("application/json"), 422),
        ("{\"when\": \"soon\"}", Some("application/json"), 422),
    ] {
        let mut r = c.post(&act).bearer_auth(&tok).body(body);
        if let Some(ct) = content_type {
            r = r.header("content-type", ct);
        }
        let r = r.send().await.unwrap();
        assert_eq!(r.status().as_u16(), status, "{body}");
        assert_eq!(r.headers()["content-type"], "application/json", "{body}");
    }
}

/// Every path the OpenAPI document lists is served (and only documented ones are
/// relied on by the CLI); Swagger UI is there.
#[tokio::test(flavor = "multi_thread")]
async fn the_openapi_document_matches_the_routes() {
    let dir = tempfile::tempdir().unwrap();
    let svc = Service::start(dir.path(), &[]).await;
    let (s, doc) = svc.call("GET", "/api/v1/openapi.json", "", None).await;
    assert_eq!(s, 200);
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().unwrap();
    assert!(paths.len() >= 10);
    for (path, ops) in paths {
        for method in ops.as_object().unwrap().keys() {
            let p = path
                .replace("{id}", "tnothere")
                .replace("{action}", "start")
                .replace("{name}", "nobody");
            let c = reqwest::Client::new();
            let r = c
                .request(
                    method.to_uppercase().parse().unwrap(),
                    format!("{}{p}", svc.base),
                )
                .bearer_auth(ADMIN)
                .json(&json!({}))
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            let body = r.text().await.unwrap();
            // a route the router does not know answers "no such path" / "method not
            // allowed"
            assert!(
                !((status == 404 || status == 405)
                    && (body.is_empty()
                        || body.contains("no such path")
                        || body.contains("method not allowed"))),
                "{method} {path} is documented but not served ({status}): {body}"
            );
        }
    }
    let ui = reqwest::get(format!("{}/api/v1/docs/", svc.base))
        .await
        .unwrap();
    assert_eq!(ui.status().as_u16(), 200);
    assert!(ui.text().await.unwrap().contains("swagger"), "Swagger UI");
    let console = reqwest::get(format!("{}/", svc.base)).await.unwrap();
    assert_eq!(console.status().as_u16(), 200);
    let html = console.text().await.unwrap();
    assert!(
        html.contains("/api/v1/tasks") && html.contains("waiting_to_start"),
        "console page"
    );
}
