//! DR tasks: the standby is fenced while it replicates; a switchover reverses the
//! direction without loss (or refuses when the sides differ); a failover promotes the
//! standby and reports what it holds; on PostgreSQL and on MariaDB.

use crate::common::{self, ferry, text};
use crate::harness::{
    compare_equal, databases, try_write, try_write_mariadb, wait_for_switchover, wait_rows,
    write_past_fence, Service, T,
};

/// DR: initializing → initialized → replicating; a switchover fences the primary,
/// waits for the standby and reverses the direction with no change lost; a failover
/// then promotes the (new) standby and reports what it holds.
#[tokio::test(flavor = "multi_thread")]
async fn dr_switchover_reverses_without_loss_and_failover_reports_the_window() {
    let dir = tempfile::tempdir().unwrap();
    let svc = Service::start(dir.path(), &[]).await;
    let tok = svc.tenant("acme", 100.0).await;
    let (primary, standby) = databases(5_000).await;
    let spec = format!(
        "name: dr\nkind: dr\nmode: full+incremental\nsource: {}\ntarget: {}\n",
        primary.url, standby.url
    );
    let id = svc.create(&tok, &spec, None).await;
    svc.wait_state(&tok, &id, "configuring", T).await;
    svc.act(&tok, &id, "start").await;
    let v = svc.wait_state(&tok, &id, "replicating", T).await;
    let seen: Vec<&str> = v["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["to"].as_str().unwrap())
        .collect();
    assert!(seen.contains(&"initialized"), "{seen:?}");
    // migration-only actions are refused on DR and vice versa
    let (s, _) = svc.act(&tok, &id, "edit").await;
    assert_eq!(s, 409);

    // the standby is read-only for applications while it replicates: a row written
    // there would never reach the primary (nor the reverse stream after a switchover)
    let refused = try_write(
        &standby.url,
        "INSERT INTO acct VALUES (9000001, 'written on the standby', 1)",
    )
    .await;
    assert!(
        refused.as_deref().unwrap_or_default().contains("read-only"),
        "the standby takes application writes while replicating: {refused:?}"
    );
    // the switchover compares both sides before it reports done: a difference made
    // past the fence (a session that turns read-only off) makes it refuse, naming
    // the table, and the primary stays the primary, writable
    assert_eq!(
        write_past_fence(
            &standby.url,
            "INSERT INTO acct VALUES (9000001, 'rogue', 1)"
        )
        .await,
        None
    );
    let (s, v) = svc.act(&tok, &id, "switchover").await;
    assert_eq!(s, 202, "{v}");
    let v = svc.wait_state(&tok, &id, "abnormal", T).await;
    let reason = v["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("switchover refused") && reason.contains("acct"),
        "{v:#}"
    );
    assert!(
        v["source"].as_str().unwrap().ends_with(&primary.name),
        "{v:#}"
    );
    assert_eq!(
        try_write(
            &primary.url,
            "INSERT INTO acct VALUES (7000000, 'still the primary', 1)"
        )
        .await,
        None
    );
    // repaired, the task goes on replicating (the standby fenced again)
    assert_eq!(
        write_past_fence(&standby.url, "DELETE FROM acct WHERE id = 9000001").await,
        None
    );
    let (s, v) = svc.act(&tok, &id, "start").await;
    assert_eq!(s, 202, "{v}");
    svc.wait_state(&tok, &id, "replicating", T).await;
    wait_rows(
        "postgres",
        &standby.url,
        "SELECT count(*) FROM acct WHERE id = 7000000",
        &["1"],
        "a change made while the task was abnormal never reached the standby",
        || svc.log(),
    )
    .await;
    assert!(
        try_write(&standby.url, "DELETE FROM acct WHERE id = 1")
            .await
            .unwrap_or_default()
            .contains("read-only"),
        "the standby takes application writes after a restart"
    );

    ferry_testkit::pg_exec(&primary.url, "INSERT INTO acct VALUES (7000001, 'before switch', 1); UPDATE acct SET balance = 2 WHERE id <= 10;").await;
    let (s, v) = svc.act(&tok, &id, "switchover").await;
    assert_eq!(s, 202, "{v}");
    let v = wait_for_switchover(&svc, &tok, &id).await;
    assert!(
        v["source"].as_str().unwrap().ends_with(&standby.name),
        "{v:#}"
    );
    // the old primary is fenced; the new one takes writes, which flow back
    let refused = try_write(
        &primary.url,
        "INSERT INTO acct VALUES (7000002, 'fenced', 1)",
    )
    .await;
    assert!(
        refused.as_deref().unwrap_or_default().contains("read-only"),
        "{refused:?}"
    );
    assert_eq!(
        try_write(
            &standby.url,
            "INSERT INTO acct VALUES (7000003, 'after switch', 1); DELETE FROM acct WHERE id = 20;"
        )
        .await,
        None
    );
    wait_rows(
        "postgres",
        &primary.url,
        "SELECT count(*) FROM acct WHERE id = 7000003",
        &["1"],
        "changes on the new primary never reached the old one",
        || svc.log(),
    )
    .await;
    compare_equal(dir.path(), &standby, &primary);

    // failover: the standby (the old primary) is promoted and says what it holds
    let (s, v) = svc.act(&tok, &id, "failover").await;
    assert_eq!(s, 202, "{v}");
    let v = svc.wait_state(&tok, &id, "ended", T).await;
    let reason = v["reason"].as_str().unwrap();
    assert!(
        reason.contains("failover done") && reason.contains("holds every change up to"),
        "{reason}"
    );
    // the old primary (reachable here) no longer keeps the task's slot
    assert_eq!(
        common::query_lines(
            "postgres",
            &standby.url,
            &format!("SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'ferry_{id}'"),
        )
        .await,
        ["0"],
        "{reason}"
    );
    assert_eq!(
        try_write(
            &primary.url,
            "INSERT INTO acct VALUES (7000004, 'promoted', 1)"
        )
        .await,
        None
    );
}

/// DR between two MariaDB servers: the switchover fences the old primary with
/// `read_only` (an application user's writes are refused there; Ferry's reversed
/// stream still applies), and the changes written on the new primary flow back.
#[tokio::test(flavor = "multi_thread")]
async fn mariadb_dr_switchover_fences_the_old_primary_with_read_only() {
    let dir = tempfile::tempdir().unwrap();
    let svc = Service::start(dir.path(), &[]).await;
    let tok = svc.tenant("acme", 100.0).await;
    let (primary, standby) = tokio::task::spawn_blocking(|| {
        (
            ferry_testkit::private_mariadb("dr_primary"),
            ferry_testkit::private_mariadb("dr_standby"),
        )
    })
    .await
    .unwrap();
    for srv in [&primary, &standby] {
        ferry_testkit::mysql_exec(
            &srv.url_for(""),
            "CREATE DATABASE shop; CREATE USER app@'%' IDENTIFIED BY 'app'; GRANT ALL ON shop.* TO app@'%';",
        )
        .await;
    }
    ferry_testkit::mysql_exec(
        &primary.url_for("shop"),
        "CREATE TABLE acct (id bigint PRIMARY KEY, owner varchar(40), balance int);
         INSERT INTO acct SELECT seq, 'o', 1 FROM seq_1_to_5000;",
    )
    .await;
    let spec = format!(
        "name: drm\nkind: dr\nmode: full+incremental\nsource: {}\ntarget: {}\n",
        primary.url_for("shop"),
        standby.url_for("shop")
    );
    let id = svc.create(&tok, &spec, None).await;
    svc.wait_state(&tok, &id, "configuring", T).await;
    svc.act(&tok, &id, "start").await;
    svc.wait_state(&tok, &id, "replicating", T).await;
    // the standby is read-only for applications while it replicates
    let refused = try_write_mariadb(
        &standby,
        "app",
        "INSERT INTO acct VALUES (9000001, 'written on the standby', 1)",
    )
    .await;
    assert!(
        refused.as_deref().unwrap_or_default().contains("read-only"),
        "the standby takes application writes while replicating: {refused:?}"
    );
    assert_eq!(
        try_write_mariadb(
            &primary,
            "app",
            "INSERT INTO acct VALUES (7000001, 'before switch', 1)"
        )
        .await,
        None
    );
    let (s, v) = svc.act(&tok, &id, "switchover").await;
    assert_eq!(s, 202, "{v}");
    wait_for_switchover(&svc, &tok, &id).await;
    let refused = try_write_mariadb(
        &primary,
        "app",
        "INSERT INTO acct VALUES (7000002, 'fenced', 1)",
    )
    .await;
    assert!(
        refused.as_deref().unwrap_or_default().contains("read-only"),
        "the old primary still takes application writes: {refused:?}"
    );
    assert_eq!(
        try_write_mariadb(
            &standby,
            "app",
            "INSERT INTO acct VALUES (7000003, 'after switch', 1); DELETE FROM acct WHERE id = 20;"
        )
        .await,
        None
    );
    wait_rows(
        "mysql",
        &primary.url_for("shop"),
        "SELECT count(*) FROM acct WHERE id IN (7000001, 7000003)",
        &["2"],
        "changes on the new primary never reached the old one",
        || svc.log(),
    )
    .await;
    let f = common::task_file(
        dir.path(),
        &standby.url_for("shop"),
        &primary.url_for("shop"),
        "",
    );
    let c = ferry(&["compare", &f]);
    assert!(
        c.status.success(),
        "source and target differ:\n{}",
        text(&c)
    );
    // ending the task lifts the fence: its standby (the old primary) is nobody's
    // standby any more and takes application writes again
    let (s, v) = svc.act(&tok, &id, "end").await;
    assert_eq!(s, 202, "{v}");
    let v = svc.wait_state(&tok, &id, "ended", T).await;
    assert!(
        v["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("writable again"),
        "{v:#}"
    );
    assert_eq!(
        try_write_mariadb(
            &primary,
            "app",
            "INSERT INTO acct VALUES (7000004, 'task ended', 1)"
        )
        .await,
        None
    );
}
