//! The CLI as a client of the API: `ferry tenant …` and `ferry task …` against a
//! running service, and the token variable each command reads.

use crate::common::text;
use crate::harness::{databases, spec, Service, ADMIN, T};
use serde_json::Value;
use std::process::Command;

/// The CLI is a client of the API: `ferry tenant …` with the admin token, `ferry task
/// …` with the tenant's, `-o json` for scripts, errors with the API's reason.
#[tokio::test(flavor = "multi_thread")]
async fn the_cli_drives_the_service() {
    let dir = tempfile::tempdir().unwrap();
    let svc = Service::start(dir.path(), &[]).await;
    let cli = |args: &[&str], token: Option<&str>| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_ferry"));
        c.args(args)
            .env("FERRY_SERVER", &svc.base)
            .env_remove("FERRY_TOKEN")
            .env_remove("FERRY_ADMIN_TOKEN");
        match token {
            Some(t) if t == ADMIN => c.env("FERRY_ADMIN_TOKEN", t),
            Some(t) => c.env("FERRY_TOKEN", t),
            None => &mut c,
        };
        c.output().unwrap()
    };
    let o = cli(
        &["tenant", "create", "cli", "--balance", "10", "-o", "json"],
        Some(ADMIN),
    );
    assert!(o.status.success(), "{}", text(&o));
    let tenant: Value = serde_json::from_slice(&o.stdout).unwrap();
    let tok = tenant["token"].as_str().unwrap().to_string();
    let o = cli(&["tenant", "create", "other"], Some(&tok));
    assert!(
        !o.status.success() && text(&o).contains("403"),
        "{}",
        text(&o)
    );

    let (src, dst) = databases(100).await;
    let file = dir.path().join("task.yaml");
    std::fs::write(&file, spec("viacli", "full", &src, &dst)).unwrap();
    let o = cli(
        &["task", "create", "-f", file.to_str().unwrap(), "-o", "json"],
        Some(&tok),
    );
    assert!(o.status.success(), "{}", text(&o));
    let task: Value = serde_json::from_slice(&o.stdout).unwrap();
    let id = task["id"].as_str().unwrap().to_string();
    assert_eq!(task["state"], "creating");
    assert!(!text(&o).contains("s3cret"));
    svc.wait_state(&tok, &id, "configuring", T).await;
    let o = cli(&["task", "start", &id], Some(&tok));
    assert!(o.status.success(), "{}", text(&o));
    svc.wait_state(&tok, &id, "ended", T).await;
    let o = cli(
        &[
            "task",
            "list",
            "--kind",
            "migration",
            "--since",
            "24h",
            "-o",
            "json",
        ],
        Some(&tok),
    );
    let list: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(list["total"], 1, "{list}");
    let o = cli(&["task", "show", &id], Some(&tok));
    let shown = text(&o);
    assert!(
        shown.contains("full copy finished") && shown.contains("events:"),
        "{shown}"
    );
    let o = cli(&["task", "pause", &id], Some(&tok));
    assert!(
        !o.status.success() && text(&o).contains("allowed: delete") && text(&o).contains("(409)"),
        "{}",
        text(&o)
    );
    let o = cli(&["task", "delete", &id], Some(&tok));
    assert!(o.status.success(), "{}", text(&o));
    let o = cli(&["tenant", "show", "cli", "-o", "json"], Some(&tok));
    let t: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(t["name"], "cli");
    let o = cli(&["task", "list"], None);
    assert!(
        !o.status.success() && text(&o).contains("401"),
        "{}",
        text(&o)
    );
}

/// Without a token the CLI names the variable the command reads: FERRY_ADMIN_TOKEN
/// for tenant administration, FERRY_TOKEN for tasks.
#[tokio::test(flavor = "multi_thread")]
async fn the_cli_names_the_token_variable_each_command_reads() {
    let dir = tempfile::tempdir().unwrap();
    let svc = Service::start(dir.path(), &[]).await;
    let cli = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_ferry"))
            .args(args)
            .env("FERRY_SERVER", &svc.base)
            .env_remove("FERRY_TOKEN")
            .env_remove("FERRY_ADMIN_TOKEN")
            .output()
            .unwrap()
    };
    for args in [
        &["tenant", "create", "acme"][..],
        &["tenant", "topup", "acme", "5"],
    ] {
        let o = cli(args);
        let t = text(&o);
        assert!(!o.status.success(), "{t}");
        assert!(
            t.contains("set FERRY_ADMIN_TOKEN") && t.contains("(401)"),
            "{t}"
        );
        assert!(!t.contains("FERRY_TOKEN "), "{t}");
    }
    let t = text(&cli(&["tenant", "show", "acme"]));
    assert!(
        t.contains("FERRY_ADMIN_TOKEN") && t.contains("FERRY_TOKEN "),
        "{t}"
    );
    let t = text(&cli(&["task", "list"]));
    assert!(t.contains("set FERRY_TOKEN") && t.contains("(401)"), "{t}");

    // text output reads as lines, not JSON
    svc.tenant("acme", 1.0).await;
    let o = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(["tenant", "show", "acme"])
        .env("FERRY_SERVER", &svc.base)
        .env("FERRY_ADMIN_TOKEN", ADMIN)
        .output()
        .unwrap();
    let t = text(&o);
    assert!(o.status.success() && t.contains("tasks:   none"), "{t}");
    assert!(!t.contains('{'), "{t}");
}
