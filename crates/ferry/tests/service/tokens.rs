//! Tokens replaced while the service runs: a tenant's (by the admin or by itself,
//! at once or with a grace period) and the admin's (at once, kept across a restart),
//! over the API and the CLI.

use crate::common::text;
use crate::harness::{Service, ADMIN};
use std::process::Command;

/// `ferry …` against `svc` with `token` as FERRY_ADMIN_TOKEN (`admin`) or FERRY_TOKEN.
fn cli(svc: &Service, args: &[&str], token: &str, admin: bool) -> std::process::Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_ferry"));
    c.args(args)
        .env("FERRY_SERVER", &svc.base)
        .env_remove("FERRY_TOKEN")
        .env_remove("FERRY_ADMIN_TOKEN")
        .env(
            if admin {
                "FERRY_ADMIN_TOKEN"
            } else {
                "FERRY_TOKEN"
            },
            token,
        );
    c.output().unwrap()
}

/// A tenant's token rotated by the admin stops working at once and the new one
/// works; with a grace period both work; the tenant can rotate its own token with
/// the CLI; another tenant cannot rotate it. No restart anywhere.
#[tokio::test(flavor = "multi_thread")]
async fn a_tenant_token_rotates_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let svc = Service::start(dir.path(), &[]).await;
    let t0 = svc.tenant("acme", 1.0).await;
    let other = svc.tenant("other", 1.0).await;
    let me = "/api/v1/tenants/acme";
    assert_eq!(svc.call("GET", me, &t0, None).await.0, 200);

    // by the admin, no grace: the old token is refused at once
    let (s, v) = svc
        .call("POST", "/api/v1/tenants/acme/token", ADMIN, None)
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["old_token_valid_until"], serde_json::Value::Null, "{v}");
    let t1 = v["token"].as_str().unwrap().to_string();
    assert_ne!(t1, t0);
    let (s, v) = svc.call("GET", me, &t0, None).await;
    assert_eq!(s, 401, "the old token still works: {v}");
    assert_eq!(svc.call("GET", me, &t1, None).await.0, 200);

    // by the tenant itself, with a grace period: both work meanwhile
    let (s, v) = svc
        .call(
            "POST",
            "/api/v1/tenants/acme/token?grace_seconds=300",
            &t1,
            None,
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert!(v["old_token_valid_until"].is_string(), "{v}");
    let t2 = v["token"].as_str().unwrap().to_string();
    assert_eq!(svc.call("GET", me, &t1, None).await.0, 200, "grace");
    assert_eq!(svc.call("GET", me, &t2, None).await.0, 200);
    let (s, v) = svc
        .call(
            "POST",
            "/api/v1/tenants/acme/token?grace_seconds=-5",
            &t2,
            None,
        )
        .await;
    assert_eq!(
        (s, v["field"].as_str()),
        (422, Some("grace_seconds")),
        "{v}"
    );

    // another tenant cannot: it is told there is no such tenant
    let (s, _) = svc
        .call("POST", "/api/v1/tenants/acme/token", &other, None)
        .await;
    assert_eq!(s, 404);
    assert_eq!(svc.call("GET", me, &t2, None).await.0, 200);

    // the CLI, as the tenant: the new token is printed, the grace one ends too
    let o = cli(&svc, &["tenant", "rotate-token", "acme"], &t2, false);
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    assert!(out.contains("the old token no longer works"), "{out}");
    let t3 = out
        .split_whitespace()
        .find(|w| w.starts_with("fy_"))
        .unwrap_or_else(|| panic!("no token printed: {out}"))
        .to_string();
    assert_eq!(svc.call("GET", me, &t2, None).await.0, 401);
    assert_eq!(svc.call("GET", me, &t3, None).await.0, 200);
    // the grace token of before is gone with this rotation as well
    assert_eq!(svc.call("GET", me, &t1, None).await.0, 401);

    // the rotations are audited, and no token is in the log
    let (s, v) = svc
        .call("GET", "/api/v1/audit?limit=1000", ADMIN, None)
        .await;
    assert_eq!(s, 200, "{v}");
    let rotations: Vec<(&str, i64)> = v["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["path"] == "/api/v1/tenants/acme/token")
        .map(|e| (e["who"].as_str().unwrap(), e["status"].as_i64().unwrap()))
        .collect();
    assert_eq!(
        rotations,
        [
            ("admin", 200),
            ("acme", 200),
            ("acme", 422),
            ("other", 404),
            ("acme", 200)
        ],
        "{v:#}"
    );
    let all = v.to_string();
    for t in [&t0, &t1, &t2, &t3, &other] {
        assert!(
            !all.contains(t.as_str()),
            "a token is in the audit log: {all}"
        );
    }
}

/// The admin token rotated over the CLI: the old one is refused at once, the new
/// one works, and a restart (FERRY_ADMIN_TOKEN still set to the old one) keeps the
/// new one; `--reset-admin-token` goes back to the configured one.
#[tokio::test(flavor = "multi_thread")]
async fn the_admin_token_rotates_and_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut svc = Service::start(dir.path(), &[]).await;
    let tenant = svc.tenant("acme", 1.0).await;
    // a tenant cannot rotate the admin token
    let (s, _) = svc.call("POST", "/api/v1/admin/token", &tenant, None).await;
    assert_eq!(s, 403);

    let o = cli(&svc, &["admin", "rotate-token", "-o", "json"], ADMIN, true);
    assert!(o.status.success(), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let new = v["token"].as_str().unwrap().to_string();
    assert_ne!(new, ADMIN);
    let (s, _) = svc.call("GET", "/api/v1/tenants/acme", ADMIN, None).await;
    assert_eq!(s, 401, "the old admin token still works");
    let (s, v) = svc.call("GET", "/api/v1/tenants/acme", &new, None).await;
    assert_eq!(s, 200, "{v}");
    let o = cli(&svc, &["tenant", "create", "beta"], &new, true);
    assert!(o.status.success(), "{}", text(&o));
    // tenants' tokens are untouched
    assert_eq!(
        svc.call("GET", "/api/v1/tenants/acme", &tenant, None)
            .await
            .0,
        200
    );

    // a restart keeps the rotated token (the process still gets FERRY_ADMIN_TOKEN=ADMIN)
    svc.kill();
    svc.spawn().await;
    assert_eq!(
        svc.call("GET", "/api/v1/tenants/acme", ADMIN, None).await.0,
        401
    );
    assert_eq!(
        svc.call("GET", "/api/v1/tenants/acme", &new, None).await.0,
        200
    );
    assert!(!svc.log().contains(&new), "the new admin token was logged");
    let (s, v) = svc.call("GET", "/api/v1/audit", &new, None).await;
    assert_eq!(s, 200, "{v}");
    assert!(
        v["entries"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["path"] == "/api/v1/admin/token" && e["status"] == 200),
        "{v:#}"
    );
    assert!(
        !v.to_string().contains(&new),
        "the admin token is in the audit log"
    );

    // the way back when the rotated token is lost
    svc.kill();
    let mut reset = Service::start(dir.path(), &["--reset-admin-token"]).await;
    assert_eq!(
        reset
            .call("GET", "/api/v1/tenants/acme", ADMIN, None)
            .await
            .0,
        200
    );
    assert_eq!(
        reset
            .call("GET", "/api/v1/tenants/acme", &new, None)
            .await
            .0,
        401
    );
    reset.kill();
}

/// Two API nodes on one PostgreSQL metadata store: the admin token rotated on one
/// is refused by the other at once and the new one accepted there; a tenant token
/// rotated on one is refused by the other; both nodes' calls are in one audit log.
#[tokio::test(flavor = "multi_thread")]
async fn rotations_reach_every_node_sharing_the_metadata() {
    let meta = crate::common::fresh("postgres", "meta").await;
    let key = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let args = ["--meta", meta.url.as_str(), "--no-worker"];
    let a = Service::start_with(da.path(), &args, &[("FERRY_SECRET_KEY", key)]).await;
    let b = Service::start_with(db.path(), &args, &[("FERRY_SECRET_KEY", key)]).await;
    let t0 = a.tenant("shared", 1.0).await;
    let me = "/api/v1/tenants/shared";
    assert_eq!(b.call("GET", me, &t0, None).await.0, 200);
    assert_eq!(b.call("GET", me, ADMIN, None).await.0, 200);

    let (s, v) = a.call("POST", "/api/v1/admin/token", ADMIN, None).await;
    assert_eq!(s, 200, "{v}");
    let admin = v["token"].as_str().unwrap().to_string();
    assert_eq!(b.call("GET", me, ADMIN, None).await.0, 401, "node b");
    assert_eq!(b.call("GET", me, &admin, None).await.0, 200, "node b");

    let (s, v) = b
        .call("POST", "/api/v1/tenants/shared/token", &admin, None)
        .await;
    assert_eq!(s, 200, "{v}");
    let t1 = v["token"].as_str().unwrap().to_string();
    assert_eq!(a.call("GET", me, &t0, None).await.0, 401, "node a");
    assert_eq!(a.call("GET", me, &t1, None).await.0, 200, "node a");

    let (s, v) = a
        .call("GET", "/api/v1/audit?tenant=shared", &admin, None)
        .await;
    assert_eq!(s, 200, "{v}");
    let paths: Vec<&str> = v["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap())
        .collect();
    assert_eq!(
        paths,
        ["/api/v1/tenants", "/api/v1/tenants/shared/token"],
        "{v:#}"
    );
}
