//! What a tenant is charged and told: task time and bytes moved are metered (a balance
//! running out freezes the task, a top-up thaws it), and sustained lag reaches the
//! tenant's webhook.

use crate::harness::{
    create_and_start, databases, spec, wait_rows, webhook_sink, Service, ADMIN, T,
};
use serde_json::json;
use std::time::{Duration, Instant};

/// A balance that runs out freezes the tenant's running task (positions kept); an
/// admin top-up sends it back to streaming, and changes made while frozen arrive.
#[tokio::test(flavor = "multi_thread")]
async fn a_balance_running_out_freezes_and_a_top_up_thaws() {
    let dir = tempfile::tempdir().unwrap();
    // 3,600 per task-hour = 1 per second, charged every second
    let svc = Service::start(
        dir.path(),
        &["--price-task-hour", "3600", "--meter-every", "1"],
    )
    .await;
    let tok = svc.tenant("poor", 4.0).await;
    let (src, dst) = databases(1_000).await;
    let id = svc
        .create(&tok, &spec("meter", "full+incremental", &src, &dst), None)
        .await;
    svc.wait_state(&tok, &id, "configuring", T).await;
    svc.act(&tok, &id, "start").await;
    let v = svc.wait_state(&tok, &id, "frozen", T).await;
    assert!(v["reason"].as_str().unwrap().contains("balance"), "{v}");
    let (_, t) = svc.call("GET", "/api/v1/tenants/poor", &tok, None).await;
    assert!(t["balance"].as_f64().unwrap() <= 0.0, "{t}");
    assert!(t["usage"].as_f64().unwrap() >= 4.0, "{t}");
    ferry_testkit::pg_exec(&src.url, "INSERT INTO acct VALUES (3000001, 'frozen', 1);").await;
    let (s, _) = svc
        .call(
            "POST",
            "/api/v1/tenants/poor/topup",
            ADMIN,
            Some(json!({"amount": 1000})),
        )
        .await;
    assert_eq!(s, 200);
    let v = svc.wait_state(&tok, &id, "incremental", T).await;
    assert!(
        v["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["from"] == "frozen"),
        "{v:#}"
    );
    wait_rows(
        "postgres",
        &dst.url,
        "SELECT count(*) FROM acct WHERE id = 3000001",
        &["1"],
        "the change made while frozen never arrived",
        || svc.log(),
    )
    .await;
    svc.act(&tok, &id, "end").await;
    svc.wait_state(&tok, &id, "ended", T).await;
}

/// Bytes moved are metered too: at one unit per byte, copying a table uses up a
/// balance of 50,000 and freezes the task; the tenant's usage shows the charge.
#[tokio::test(flavor = "multi_thread")]
async fn moving_data_is_metered_per_gb() {
    let dir = tempfile::tempdir().unwrap();
    let svc = Service::start(
        dir.path(),
        &[
            "--price-task-hour",
            "0",
            "--price-gb",
            "1000000000",
            "--meter-every",
            "1",
        ],
    )
    .await;
    let tok = svc.tenant("bytes", 50_000.0).await;
    let (src, dst) = databases(20_000).await;
    let id = create_and_start(&svc, &tok, &spec("heavy", "full+incremental", &src, &dst)).await;
    let v = svc.wait_state(&tok, &id, "frozen", T).await;
    assert!(v["reason"].as_str().unwrap().contains("balance"), "{v}");
    let (_, t) = svc.call("GET", "/api/v1/tenants/bytes", &tok, None).await;
    assert!(t["usage"].as_f64().unwrap() >= 50_000.0, "{t}");
}

/// A task whose lag stays above the tenant's threshold is reported to its webhook.
#[tokio::test(flavor = "multi_thread")]
async fn sustained_lag_is_reported_to_the_webhook() {
    let dir = tempfile::tempdir().unwrap();
    let svc = Service::start_with(dir.path(), &[], &[("FERRY_WEBHOOK_ALLOW", "127.0.0.1")]).await;
    let tok = svc.tenant("laggy", 100.0).await;
    let (hook, mut heard) = webhook_sink().await;
    // any lag at all, for no time: the first sample with lag fires
    let (s, v) = svc
        .call(
            "PUT",
            "/api/v1/tenants/laggy/webhook",
            &tok,
            Some(json!({"url": hook, "lag_seconds": 0.000001, "lag_for_seconds": 0})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let (src, dst) = databases(100).await;
    let id = create_and_start(&svc, &tok, &spec("lag", "full+incremental", &src, &dst)).await;
    svc.wait_state(&tok, &id, "incremental", T).await;
    let t0 = Instant::now();
    let mut i = 0;
    let note = loop {
        i += 1;
        ferry_testkit::pg_exec(
            &src.url,
            &format!("UPDATE acct SET balance = {i} WHERE id = 1;"),
        )
        .await;
        if let Ok(Some(n)) = tokio::time::timeout(Duration::from_millis(50), heard.recv()).await {
            break n;
        }
        assert!(t0.elapsed() < T, "no lag notification\n{}", svc.log());
    };
    assert_eq!(note["event"], "lag_high", "{note}");
    assert_eq!(note["task"]["id"], id.as_str());
    assert!(
        note["detail"]["lag_seconds"].as_f64().unwrap() > 0.0,
        "{note}"
    );
}

/// One request a [`scripted_receiver`] got: its headers (lower-case names) and raw body.
struct Received {
    headers: std::collections::BTreeMap<String, String>,
    body: Vec<u8>,
}

/// A webhook receiver on 127.0.0.1 that answers its n-th request with the n-th
/// status of `script` (200 once the script is used up) and hands every request to
/// the returned channel.
async fn scripted_receiver(
    script: Vec<u16>,
) -> (String, tokio::sync::mpsc::UnboundedReceiver<Received>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut n = 0;
        while let Ok((mut sock, _)) = listener.accept().await {
            let status = script.get(n).copied().unwrap_or(200);
            n += 1;
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            let received = loop {
                let k = sock.read(&mut chunk).await.unwrap_or(0);
                if k == 0 {
                    break None;
                }
                buf.extend_from_slice(&chunk[..k]);
                let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                    continue;
                };
                let head = String::from_utf8_lossy(&buf[..end]).to_string();
                let headers: std::collections::BTreeMap<String, String> = head
                    .lines()
                    .skip(1)
                    .filter_map(|l| l.split_once(':'))
                    .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
                    .collect();
                let len: usize = headers
                    .get("content-length")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                if buf.len() >= end + 4 + len {
                    break Some(Received {
                        headers,
                        body: buf[end + 4..end + 4 + len].to_vec(),
                    });
                }
            };
            let Some(r) = received else { continue };
            let _ = sock
                .write_all(
                    format!(
                        "HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                    )
                    .as_bytes(),
                )
                .await;
            let _ = tx.send(r);
        }
    });
    (url, rx)
}

/// What a receiver does with `X-Ferry-Signature`: recompute the HMAC-SHA256 of
/// "<t>.<body>" under the secret and compare.
fn signature_ok(secret: &str, header: &str, body: &[u8]) -> bool {
    use hmac::{Hmac, Mac};
    let mut t = None;
    let mut v1 = None;
    for part in header.split(',') {
        match part.split_once('=') {
            Some(("t", x)) => t = Some(x.to_string()),
            Some(("v1", x)) => v1 = Some(x.to_string()),
            _ => {}
        }
    }
    let (Some(t), Some(v1)) = (t, v1) else {
        return false;
    };
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{t}.").as_bytes());
    mac.update(body);
    mac.verify_slice(&hex::decode(v1).unwrap_or_default())
        .is_ok()
}

/// A task failing makes a signed webhook POST; the receiver fails the first two
/// attempts with 503 and the third arrives, same delivery id, signature valid under
/// the secret shown once when the webhook was set (and no longer after a rotation).
/// A receiver answering 400 gets exactly one attempt.
#[tokio::test(flavor = "multi_thread")]
async fn webhooks_are_signed_and_retried_with_one_delivery_id() {
    let dir = tempfile::tempdir().unwrap();
    let svc = Service::start_with(
        dir.path(),
        &["--webhook-retry-delay", "0.2", "--webhook-attempts", "4"],
        &[("FERRY_WEBHOOK_ALLOW", "127.0.0.1")],
    )
    .await;
    let tok = svc.tenant("hooked", 100.0).await;
    let (hook, mut heard) = scripted_receiver(vec![503, 503]).await;
    let (s, v) = svc
        .call(
            "PUT",
            "/api/v1/tenants/hooked/webhook",
            &tok,
            Some(json!({"url": hook})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let secret = v["signing_secret"].as_str().unwrap().to_string();
    assert!(secret.starts_with("whsec_"), "{v}");
    // shown once: not in a later answer, nor when the webhook is changed
    let (_, v) = svc.call("GET", "/api/v1/tenants/hooked", &tok, None).await;
    assert!(v.get("signing_secret").is_none(), "{v}");
    let (_, v) = svc
        .call(
            "PUT",
            "/api/v1/tenants/hooked/webhook",
            &tok,
            Some(json!({"url": hook, "lag_seconds": 3600})),
        )
        .await;
    assert!(v.get("signing_secret").is_none(), "{v}");

    // start_failed: the target already holds the table
    let (src, dst) = databases(10).await;
    ferry_testkit::pg_exec(&dst.url, "CREATE TABLE acct (id bigint PRIMARY KEY);").await;
    let id = create_and_start(&svc, &tok, &spec("hook", "full+incremental", &src, &dst)).await;
    svc.wait_state(&tok, &id, "start_failed", T).await;
    let mut got = Vec::new();
    while got.len() < 3 {
        let r = tokio::time::timeout(T, heard.recv())
            .await
            .unwrap_or_else(|_| panic!("{} of 3 attempts arrived\n{}", got.len(), svc.log()))
            .unwrap();
        got.push(r);
    }
    let ids: Vec<&str> = got
        .iter()
        .map(|r| r.headers["x-ferry-delivery"].as_str())
        .collect();
    assert!(ids[0].starts_with("wd_"), "{ids:?}");
    assert!(
        ids.iter().all(|i| *i == ids[0]),
        "the delivery id changed: {ids:?}"
    );
    for r in &got {
        let sig = &r.headers["x-ferry-signature"];
        assert!(signature_ok(&secret, sig, &r.body), "bad signature {sig}");
        assert!(!signature_ok("whsec_other", sig, &r.body));
        assert_eq!(r.headers["x-ferry-event"], "task_failed");
    }
    let body: serde_json::Value = serde_json::from_slice(&got[2].body).unwrap();
    assert_eq!(body["event"], "task_failed");
    assert_eq!(body["task"]["id"], id.as_str());
    // the service logs the delivery once it has read the answer
    let t0 = Instant::now();
    while !svc.log().contains("webhook delivered") {
        assert!(t0.elapsed() < T, "no delivery logged:\n{}", svc.log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let log = svc.log();
    assert!(log.contains("webhook attempt failed"), "{log}");
    assert!(!log.contains(&secret), "the signing secret was logged");

    // a rotated secret signs from then on; a 400 is not retried
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(["tenant", "rotate-webhook-secret", "hooked", "-o", "json"])
        .env("FERRY_SERVER", &svc.base)
        .env("FERRY_TOKEN", &tok)
        .env_remove("FERRY_ADMIN_TOKEN")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", crate::common::text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let secret2 = v["signing_secret"].as_str().unwrap().to_string();
    assert_ne!(secret2, secret);
    let (hook400, mut heard400) = scripted_receiver(vec![400, 400, 400]).await;
    let (s, _) = svc
        .call(
            "PUT",
            "/api/v1/tenants/hooked/webhook",
            &tok,
            Some(json!({"url": hook400})),
        )
        .await;
    assert_eq!(s, 200);
    let (s, v) = svc.act(&tok, &id, "start").await;
    assert_eq!(s, 202, "{v}");
    let r = tokio::time::timeout(T, heard400.recv())
        .await
        .expect("no attempt at the 400 receiver")
        .unwrap();
    assert!(signature_ok(
        &secret2,
        &r.headers["x-ferry-signature"],
        &r.body
    ));
    assert!(!signature_ok(
        &secret,
        &r.headers["x-ferry-signature"],
        &r.body
    ));
    // retries would come within 0.25 s, 0.5 s, 1 s: wait well past them
    let again = tokio::time::timeout(Duration::from_secs(3), heard400.recv()).await;
    assert!(again.is_err(), "a 400 was retried");
    assert!(svc.log().contains("not retried"), "{}", svc.log());
    // the secrets are in no audit entry either
    let (_, v) = svc
        .call("GET", "/api/v1/audit?tenant=hooked", ADMIN, None)
        .await;
    assert!(v["total"].as_i64().unwrap() >= 5, "{v:#}");
    let all = v.to_string();
    assert!(!all.contains(&secret) && !all.contains(&secret2), "{all}");
}
