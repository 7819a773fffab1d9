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
