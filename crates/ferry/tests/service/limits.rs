//! Speed limits on the service: a task's limits and apply_jobs come from its task
//! file and show in the API; `PATCH /api/v1/tasks/{id}` changes a running task's
//! limit (its engine follows within a second) and keeps it in the stored task file;
//! bad bodies are refused naming the field.

use crate::harness::{compare_equal, create_and_start, databases, spec, Service, ADMIN, T};
use serde_json::json;
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread")]
async fn a_running_copys_limit_is_changed_through_the_api() {
    let dir = tempfile::tempdir().unwrap();
    let svc = Service::start(dir.path(), &[]).await;
    let tok = svc.tenant("acme", 100.0).await;
    let (src, dst) = databases(20_000).await;
    // 100 rows/s: this copy would take 200 s
    let text = format!(
        "{}jobs: 1\nchunk_rows: 1000\napply_jobs: 3\nspeed_limit:\n  copy_rows_per_second: 100\n  apply_mb_per_second: 0.5\n",
        spec("limited", "full", &src, &dst)
    );
    let id = create_and_start(&svc, &tok, &text).await;
    let path = format!("/api/v1/tasks/{id}");
    let (s, v) = svc.call("GET", &path, &tok, None).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["apply_jobs"], 3, "{v}");
    assert_eq!(
        v["speed_limit"],
        json!({"copy_rows_per_second": 100, "copy_mb_per_second": null,
               "apply_rows_per_second": null, "apply_mb_per_second": 0.5}),
        "{v}"
    );
    // the list shows them too
    let (_, list) = svc.call("GET", "/api/v1/tasks", &tok, None).await;
    assert_eq!(list["tasks"][0]["speed_limit"]["copy_rows_per_second"], 100);

    // copying, held by the limit (a lower bound: still not done after 3 s)
    svc.wait_state(&tok, &id, "full", T).await;
    let running = Instant::now();
    while running.elapsed() < Duration::from_secs(3) {
        let (_, v) = svc.call("GET", &path, &tok, None).await;
        assert_eq!(v["state"], "full", "the limited copy finished early: {v}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // bad bodies: 4xx naming the field, nothing changed
    for (body, field) in [
        (
            json!({"speed_limit": {"copy_rows_per_second": 0}}),
            "speed_limit.copy_rows_per_second",
        ),
        (
            json!({"speed_limit": {"copy_rows_per_second": "fast"}}),
            "speed_limit.copy_rows_per_second",
        ),
        (
            json!({"speed_limit": {"apply_mb_per_second": -1}}),
            "speed_limit.apply_mb_per_second",
        ),
        (
            json!({"speed_limit": {"copy_rows_per_sec": 10}}),
            "speed_limit.copy_rows_per_sec",
        ),
        (json!({"speed_limit": 5}), "speed_limit"),
        (json!({"apply_jobs": 2}), "apply_jobs"),
        (json!([1]), "speed_limit"),
    ] {
        let (s, v) = svc.call("PATCH", &path, &tok, Some(body.clone())).await;
        assert_eq!(s, 422, "{body}: {v}");
        assert_eq!(v["field"], field, "{body}: {v}");
    }
    let (s, _) = svc
        .call(
            "PATCH",
            "/api/v1/tasks/t000000000000",
            &tok,
            Some(json!({"speed_limit": {}})),
        )
        .await;
    assert_eq!(s, 404);
    let (s, v) = svc.call("GET", &path, &tok, None).await;
    assert_eq!(s, 200);
    assert_eq!(v["speed_limit"]["copy_rows_per_second"], 100, "{v}");

    // raised to 20,000 rows/s: the rest of the copy is done in about a second
    let (s, v) = svc
        .call(
            "PATCH",
            &path,
            &tok,
            Some(json!({"speed_limit": {"copy_rows_per_second": 20000, "apply_mb_per_second": null}})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        v["speed_limit"],
        json!({"copy_rows_per_second": 20000, "copy_mb_per_second": null,
               "apply_rows_per_second": null, "apply_mb_per_second": null}),
        "{v}"
    );
    let done = svc.wait_state(&tok, &id, "ended", T).await;
    assert!(
        done["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("full copy finished"),
        "{done}"
    );
    compare_equal(dir.path(), &src, &dst);
    // the worker followed the stored text, and said so
    assert!(svc.log().contains("speed limit now"), "{}", svc.log());
    // the admin sees the same
    let (_, v) = svc.call("GET", &path, ADMIN, None).await;
    assert_eq!(v["speed_limit"]["copy_rows_per_second"], 20000);
}
