//! The audit log: every mutating API call, refused ones included, is recorded in
//! order with who, what and the outcome; only the admin can list it; no password
//! or token ever appears in it.

use crate::common::text;
use crate::harness::{databases, spec, Service, ADMIN, T};
use serde_json::{json, Value};
use std::process::Command;

/// A password that must appear nowhere in the audit log.
const CANARY: &str = "Canary-Pw-5f3e9a";

/// The entries of `GET /api/v1/audit?{query}` as the admin.
async fn audit(svc: &Service, query: &str) -> Value {
    let (s, v) = svc
        .call("GET", &format!("/api/v1/audit?{query}"), ADMIN, None)
        .await;
    assert_eq!(s, 200, "{v}");
    v
}

/// A tenant and a task created, started, paused, ended and deleted, plus calls
/// refused with 401, 403, 409 and 422: each is an entry, in order, with its caller,
/// path, target and outcome; the tenant filter and the CLI list them; a tenant may
/// not; the canary password in the task's URLs and the tokens are in no entry.
#[tokio::test(flavor = "multi_thread")]
async fn every_mutating_call_is_audited_without_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let svc = Service::start(dir.path(), &[]).await;
    let tok = svc.tenant("acme", 100.0).await;
    let (src, dst) = databases(100).await;
    let spec = spec("audited", "full+incremental", &src, &dst).replace("s3cret", CANARY);
    assert!(spec.contains(CANARY));

    // refused: no token (401), a bad tenant name (422)
    let (s, _) = svc
        .call("POST", "/api/v1/tasks", "", Some(json!({"spec": spec})))
        .await;
    assert_eq!(s, 401);
    let (s, _) = svc
        .call(
            "POST",
            "/api/v1/tenants",
            ADMIN,
            Some(json!({"name": "Not Valid"})),
        )
        .await;
    assert_eq!(s, 422);
    // a tenant creating a tenant (403)
    let (s, _) = svc
        .call(
            "POST",
            "/api/v1/tenants",
            &tok,
            Some(json!({"name": "sneaky"})),
        )
        .await;
    assert_eq!(s, 403);

    let id = svc.create(&tok, &spec, None).await;
    svc.wait_state(&tok, &id, "configuring", T).await;
    assert_eq!(svc.act(&tok, &id, "start").await.0, 202);
    svc.wait_state(&tok, &id, "incremental", T).await;
    assert_eq!(svc.act(&tok, &id, "pause").await.0, 202);
    svc.wait_state(&tok, &id, "paused", T).await;
    // refused by the lifecycle (409): a paused task cannot be paused
    assert_eq!(svc.act(&tok, &id, "pause").await.0, 409);
    assert_eq!(svc.act(ADMIN, &id, "end").await.0, 202);
    svc.wait_state(&tok, &id, "ended", T).await;
    let (s, _) = svc
        .call("DELETE", &format!("/api/v1/tasks/{id}"), &tok, None)
        .await;
    assert_eq!(s, 204);

    let v = audit(&svc, "limit=1000").await;
    let all = v.to_string();
    assert!(
        !all.contains(CANARY),
        "the canary password is in the audit log: {all}"
    );
    assert!(!all.contains(&tok), "a tenant token is in the audit log");
    assert!(!all.contains(ADMIN), "the admin token is in the audit log");
    let entries = v["entries"].as_array().unwrap();
    let seen: Vec<(String, String, String, i64)> = entries
        .iter()
        .map(|e| {
            (
                e["who"].as_str().unwrap().to_string(),
                e["method"].as_str().unwrap().to_string(),
                e["path"].as_str().unwrap().to_string(),
                e["status"].as_i64().unwrap(),
            )
        })
        .collect();
    let task = format!("/api/v1/tasks/{id}");
    let want: Vec<(String, String, String, i64)> = [
        ("admin", "POST", "/api/v1/tenants".to_string(), 201),
        ("unauthenticated", "POST", "/api/v1/tasks".into(), 401),
        ("admin", "POST", "/api/v1/tenants".into(), 422),
        ("acme", "POST", "/api/v1/tenants".into(), 403),
        ("acme", "POST", "/api/v1/tasks".into(), 201),
        ("acme", "POST", format!("{task}/start"), 202),
        ("acme", "POST", format!("{task}/pause"), 202),
        ("acme", "POST", format!("{task}/pause"), 409),
        ("admin", "POST", format!("{task}/end"), 202),
        ("acme", "DELETE", task.clone(), 204),
    ]
    .into_iter()
    .map(|(w, m, p, s)| (w.to_string(), m.to_string(), p, s))
    .collect();
    assert_eq!(seen, want, "{v:#}");
    assert_eq!(v["total"], want.len());

    // outcomes, targets, ids and addresses
    let created = &entries[4];
    assert_eq!(created["target"], format!("task {id}"), "{created}");
    assert_eq!(created["tenant"], "acme");
    assert_eq!(created["summary"]["id"], id.as_str(), "{created}");
    assert!(
        created["summary"]["source"]
            .as_str()
            .unwrap()
            .starts_with("postgres://"),
        "{created}"
    );
    assert_eq!(entries[0]["target"], "tenant acme");
    assert!(entries[0]["summary"].get("token").is_none());
    assert!(entries[1]["error"].as_str().unwrap().contains("no token"));
    assert!(entries[2]["error"].as_str().unwrap().contains("name"));
    assert!(entries[7]["error"].as_str().unwrap().contains("allowed"));
    assert_eq!(entries[8]["tenant"], "acme", "an admin call on acme's task");
    assert_eq!(entries[9]["target"], format!("task {id}"));
    for e in entries {
        assert!(
            e["remote"].as_str().unwrap().starts_with("127.0.0.1:"),
            "{e}"
        );
        assert_eq!(e["request_id"].as_str().unwrap().len(), 16, "{e}");
        assert!(e["at"].as_str().unwrap().ends_with('Z'), "{e}");
    }
    // each answer named its entry's request id
    let r = reqwest::Client::new()
        .post(format!("{}/api/v1/tenants/acme/topup", svc.base))
        .bearer_auth(ADMIN)
        .json(&json!({"amount": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let request_id = r.headers()["x-request-id"].to_str().unwrap().to_string();
    let v = audit(&svc, "tenant=acme&limit=1000").await;
    let acme = v["entries"].as_array().unwrap();
    assert_eq!(acme.len(), want.len() - 1, "the tenant filter: {v:#}");
    let last = acme.last().unwrap();
    assert_eq!(last["path"], "/api/v1/tenants/acme/topup");
    assert_eq!(last["request_id"], request_id.as_str(), "{last}");
    let v = audit(&svc, "since=2000-01-01..2000-01-02").await;
    assert_eq!(v["total"], 0, "{v}");

    // only the admin lists it
    let (s, v) = svc.call("GET", "/api/v1/audit", &tok, None).await;
    assert_eq!(s, 403, "{v}");

    // the CLI
    let cli = |args: &[&str], token: &str| {
        Command::new(env!("CARGO_BIN_EXE_ferry"))
            .args(args)
            .env("FERRY_SERVER", &svc.base)
            .env_remove("FERRY_TOKEN")
            .env("FERRY_ADMIN_TOKEN", token)
            .output()
            .unwrap()
    };
    let o = cli(&["audit", "list", "--tenant", "acme"], ADMIN);
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    assert!(
        out.contains(&format!("{task}/pause")) && out.contains("409"),
        "{out}"
    );
    assert!(!out.contains(CANARY), "{out}");
    let o = cli(&["audit", "list", "-o", "json"], ADMIN);
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["entries"].as_array().unwrap().len(), want.len() + 1);
    let o = cli(&["audit", "list"], &tok);
    assert!(
        !o.status.success() && text(&o).contains("403"),
        "{}",
        text(&o)
    );
    // and the service's log holds no canary either
    assert!(
        !svc.log().contains(CANARY),
        "the canary is in the service log"
    );
}
