//! Source protection in the service: a task whose slot retains more WAL than its
//! threshold says so in its reason and progress and tells the tenant's webhook once;
//! a paused task whose slot still holds WAL is flagged.

use crate::harness::{create_and_start, databases, spec, webhook_sink, Service, T};
use serde_json::json;
use std::time::{Duration, Instant};

/// A threshold of 1 byte: the first sample of the running task's slot crosses it.
/// The reason and `progress.source_retention` say it, one `source_retention_warning`
/// reaches the webhook; paused, the task's reason names the slot and what it retains.
#[tokio::test(flavor = "multi_thread")]
async fn retained_wal_above_the_threshold_warns_once_and_a_paused_slot_is_flagged() {
    let dir = tempfile::tempdir().unwrap();
    let svc = Service::start_with(dir.path(), &[], &[("FERRY_WEBHOOK_ALLOW", "127.0.0.1")]).await;
    let tok = svc.tenant("keeper", 100.0).await;
    let (hook, mut heard) = webhook_sink().await;
    let (s, v) = svc
        .call(
            "PUT",
            "/api/v1/tenants/keeper/webhook",
            &tok,
            Some(json!({"url": hook})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let (src, dst) = databases(100).await;
    let yaml = format!(
        "{}source_protection: {{max_retained_wal: 1, sample_seconds: 1}}\n",
        spec("keeper", "full+incremental", &src, &dst)
    );
    let id = create_and_start(&svc, &tok, &yaml).await;
    svc.wait_state(&tok, &id, "incremental", T).await;
    // writes move the WAL end past the slot's restart point
    let t0 = Instant::now();
    let mut i = 0;
    let note = loop {
        i += 1;
        ferry_testkit::pg_exec(
            &src.url,
            &format!("UPDATE acct SET balance = {i} WHERE id = 1;"),
        )
        .await;
        if let Ok(Some(n)) = tokio::time::timeout(Duration::from_millis(200), heard.recv()).await {
            if n["event"] == "source_retention_warning" {
                break n;
            }
        }
        assert!(t0.elapsed() < T, "no retention warning\n{}", svc.log());
    };
    assert_eq!(note["task"]["id"], id.as_str(), "{note}");
    // the service names the task (and its slot) by its id
    let slot = format!("ferry_{}", id.replace('-', "_"));
    assert!(
        note["detail"]["holder"].as_str().unwrap().contains(&slot),
        "{note}"
    );
    assert_eq!(note["detail"]["threshold_bytes"], 1, "{note}");
    assert!(
        note["task"]["reason"]
            .as_str()
            .unwrap()
            .starts_with("source retains "),
        "{note}"
    );
    let (_, v) = svc
        .call("GET", &format!("/api/v1/tasks/{id}"), &tok, None)
        .await;
    assert!(
        v["progress"]["source_retention"]["retained_bytes"]
            .as_u64()
            .is_some(),
        "{v:#}"
    );
    // once per crossing: more samples above the threshold send nothing more
    for j in 0..20 {
        ferry_testkit::pg_exec(
            &src.url,
            &format!("UPDATE acct SET balance = {} WHERE id = 2;", i + j),
        )
        .await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    while let Ok(n) = heard.try_recv() {
        assert_ne!(n["event"], "source_retention_warning", "sent twice: {n}");
    }

    svc.act(&tok, &id, "pause").await;
    svc.wait_state(&tok, &id, "paused", T).await;
    let t0 = Instant::now();
    let v = loop {
        let (_, v) = svc
            .call("GET", &format!("/api/v1/tasks/{id}"), &tok, None)
            .await;
        if v["reason"]
            .as_str()
            .is_some_and(|r| r.contains("while the task is paused"))
        {
            break v;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "the paused slot was never flagged: {v:#}\n{}",
            svc.log()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let reason = v["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("pause requested — slot ") && reason.contains(&slot),
        "{reason}"
    );
    assert!(reason.contains("of WAL on the source"), "{reason}");
    assert_eq!(v["progress"]["source_slot"]["name"], slot.as_str(), "{v:#}");
    assert_eq!(v["state"], "paused");
}
