//! `ferry backup …` / `ferry restore …` against a running service (REST API): the
//! cluster's policy names the storage, and the work runs as service tasks. Text
//! output for people, `-o json` prints the API's JSON.

use crate::backup_cmd::{BackupCmd, LogCmd, PolicyCmd, RestoreCmd, Window};
use crate::client::{Api, ClientOpts, Output, NO_TASK_TOKEN};
use anyhow::{bail, Result};
use reqwest::Method as M;
use serde_json::{json, Value};
use std::process::ExitCode;

fn api(client: &ClientOpts) -> Result<Api> {
    Api::new(client, &["FERRY_TOKEN", "FERRY_ADMIN_TOKEN"], NO_TASK_TOKEN)
}

fn s(v: &Value, k: &str) -> String {
    match v.get(k) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => "-".into(),
        Some(o) => o.to_string(),
    }
}

/// Query text of a time window (`since=` or `from=`/`to=`), percent-encoded.
fn window_query(w: &Window) -> Vec<String> {
    let enc = |x: &str| url::form_urlencoded::byte_serialize(x.as_bytes()).collect::<String>();
    let mut q = Vec::new();
    if let Some(x) = &w.since {
        q.push(format!("since={}", enc(x)));
    }
    if let Some(x) = &w.from {
        q.push(format!("from={}", enc(x)));
    }
    if let Some(x) = &w.to {
        q.push(format!("to={}", enc(x)));
    }
    q
}

fn print_policy(p: &Value) {
    println!("{}  (tenant {})", s(p, "cluster"), s(p, "tenant"));
    println!("  source:      {}", s(p, "source"));
    println!("  storage:     {}", s(p, "storage"));
    println!(
        "  full:        {}   next {}",
        s(p, "full"),
        s(p, "next_full")
    );
    println!(
        "  incremental: {}   next {}",
        s(p, "incremental"),
        s(p, "next_incremental")
    );
    println!("  retain:      {}", s(p, "retain"));
    if p["log"] == json!(true) {
        println!("  log backup:  on ({})", s(p, "log_method"));
    }
    if !p["secondary"].is_null() {
        println!("  secondary:   {}", s(p, "secondary"));
    }
    if !p["drill"].is_null() {
        println!(
            "  drill:       {} into {}   next {}",
            s(p, "drill"),
            s(p, "drill_target"),
            s(p, "next_drill")
        );
    }
    println!("  stored:      {} bytes", s(p, "stored_bytes"));
}

/// One line per task: the columns of the backup overview.
fn print_tasks(v: &Value) {
    let tasks = v["tasks"].as_array().cloned().unwrap_or_default();
    if tasks.is_empty() {
        println!("no tasks");
        return;
    }
    for t in &tasks {
        let kind = s(t, "kind");
        let mut line = format!(
            "{}  {:<9} {:<12} {:<16}",
            s(t, "id"),
            kind,
            s(t, "cluster"),
            format!("{} {}", s(t, "state"), s(t, "state_label"))
        );
        match kind.as_str() {
            "data" => line.push_str(&format!(
                " {} {} set {} v{} {} → {} secondary {}",
                s(t, "type"),
                s(t, "method"),
                s(t, "set_id"),
                s(t, "data_version"),
                s(t, "start"),
                s(t, "end"),
                if t["has_secondary"] == json!(true) {
                    "yes"
                } else {
                    "no"
                }
            )),
            _ => line.push_str(&format!(
                " set {} {} → {}",
                s(t, "set_id"),
                s(t, "start"),
                s(t, "end")
            )),
        }
        println!("{line}");
        if !t["reason"].is_null() {
            println!("    reason: {}", s(t, "reason"));
        }
    }
    println!("({} of {})", tasks.len(), s(v, "total"));
}

fn print_task(t: &Value) {
    println!(
        "{}  {}  cluster {}",
        s(t, "id"),
        s(t, "kind"),
        s(t, "cluster")
    );
    println!("  state:   {} {}", s(t, "state"), s(t, "state_label"));
    if !t["reason"].is_null() {
        println!("  reason:  {}", s(t, "reason"));
    }
    for k in [
        "type",
        "method",
        "set_id",
        "data_version",
        "storage_dir",
        "start",
        "end",
    ] {
        if !t[k].is_null() {
            println!("  {k:<8} {}", s(t, k));
        }
    }
    if let Some(copies) = t["secondary"].as_array().filter(|c| !c.is_empty()) {
        for c in copies {
            println!(
                "  secondary {} {} {}",
                s(c, "id"),
                s(c, "state"),
                s(c, "storage_dir")
            );
        }
    }
    if let Some(tables) = t["detail"]["tables"].as_array() {
        for tb in tables {
            println!(
                "  table {}  {}/{} rows{}",
                s(tb, "table"),
                s(tb, "rows_done"),
                s(tb, "rows_total"),
                if tb["done"] == json!(true) {
                    "  done"
                } else {
                    ""
                }
            );
        }
    }
    if let Some(d) = t["detail"]["differences"]
        .as_array()
        .filter(|d| !d.is_empty())
    {
        for x in d {
            println!("  differs: {}", x.as_str().unwrap_or_default());
        }
    }
    if let Some(r) = t["detail"]["removed"].as_array() {
        println!(
            "  removed: {}",
            r.iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
}

/// One line per log backup task: the columns of seed 004's log backup list.
fn print_logs(v: &Value) {
    let tasks = v["tasks"].as_array().cloned().unwrap_or_default();
    if tasks.is_empty() {
        println!("no log backup tasks");
        return;
    }
    for t in &tasks {
        print_log(t);
    }
    println!("({} of {})", tasks.len(), s(v, "total"));
}

fn print_log(t: &Value) {
    let latency = match t["latency_seconds"].as_f64() {
        Some(x) => format!("{x:.1}s"),
        None => "-".into(),
    };
    println!(
        "{:<12} {:<8} {:<16} latest {} latency {} host {} {}",
        s(t, "cluster"),
        s(t, "method"),
        format!("{} {}", s(t, "state"), s(t, "state_label")),
        s(t, "latest_point"),
        latency,
        s(t, "host"),
        s(t, "storage_dir"),
    );
    if !t["recovering"].is_null() {
        println!("    recovering: {}", s(t, "recovering"));
    }
    if !t["reason"].is_null() {
        println!("    reason: {}", s(t, "reason"));
    }
}

fn print_windows(v: &Value) {
    let ws = v["windows"].as_array().cloned().unwrap_or_default();
    if ws.is_empty() {
        println!("no restorable window yet (it needs a full set and the log archived after it)");
    }
    for w in &ws {
        println!(
            "{} → {}   from set {} ({} → {}){}",
            s(w, "from_time"),
            s(w, "to_time"),
            s(w, "from_set"),
            s(w, "from_position"),
            s(w, "to_position"),
            if w["ended_by"].is_null() {
                String::new()
            } else {
                format!("   ended by: {}", s(w, "ended_by"))
            }
        );
    }
}

fn print_marks(v: &Value) {
    let ms = v["marks"].as_array().cloned().unwrap_or_default();
    if ms.is_empty() {
        println!("no marks");
    }
    for m in &ms {
        println!("{:<24} {}  {}", s(m, "name"), s(m, "at"), s(m, "position"));
    }
}

fn out(client: &ClientOpts, v: &Value, text: impl FnOnce(&Value)) -> ExitCode {
    match client.output {
        Output::Json => println!("{}", serde_json::to_string_pretty(v).unwrap_or_default()),
        Output::Text => text(v),
    }
    ExitCode::SUCCESS
}

/// Runs a backup command on the service.
pub async fn backup(client: &ClientOpts, cmd: BackupCmd) -> Result<ExitCode> {
    let api = api(client)?;
    match cmd {
        BackupCmd::Log { cmd } => {
            let (cluster, action) = match cmd {
                LogCmd::Start { cluster } => (cluster, "start"),
                LogCmd::Stop { cluster } => (cluster, "stop"),
                LogCmd::WalFetch { .. } => bail!(
                    "`ferry backup log wal-fetch` reads the repository directly: give --storage"
                ),
                LogCmd::Run { .. } => bail!(
                    "`ferry backup log run` archives here: give --storage (the service runs the cluster's log backup task itself: `ferry backup log start CLUSTER`)"
                ),
            };
            let v = api
                .call(
                    M::POST,
                    &format!("/api/v1/backup/logs/{cluster}/{action}"),
                    None,
                )
                .await?;
            Ok(out(client, &v, print_log))
        }
        BackupCmd::Mark {
            cluster,
            name,
            source,
            ..
        } => {
            if source.is_some() {
                bail!("--source is for direct mode (with --storage); the service marks the source of the cluster's policy");
            }
            let v = api
                .call(
                    M::POST,
                    &format!("/api/v1/backup/policies/{cluster}/marks"),
                    Some(json!({"name": name})),
                )
                .await?;
            Ok(out(client, &v, |v| {
                println!(
                    "mark {} of cluster {cluster} at {} ({}): restore to it with --until mark:{}",
                    s(v, "name"),
                    s(v, "position"),
                    s(v, "at"),
                    s(v, "name")
                )
            }))
        }
        BackupCmd::Policy { cmd } => match cmd {
            PolicyCmd::Set(a) => {
                let body = json!({
                    "source": a.source,
                    "storage": a.storage,
                    "full": a.full,
                    "incremental": a.incremental,
                    "retain": a.retain,
                    "secondary": a.secondary,
                    "drill": a.drill,
                    "drill_target": a.drill_target,
                    "include": a.include,
                    "exclude": a.exclude,
                    "log": match a.log.as_str() {
                        "on" | "true" | "yes" => true,
                        "off" | "false" | "no" => false,
                        x => bail!("--log {x:?}: write on or off"),
                    },
                    "log_method": a.log_method,
                    "tenant": a.tenant,
                });
                let v = api
                    .call(
                        M::PUT,
                        &format!("/api/v1/backup/policies/{}", a.cluster),
                        Some(body),
                    )
                    .await?;
                Ok(out(client, &v, print_policy))
            }
            PolicyCmd::Show { cluster: Some(c) } => {
                let v = api
                    .call(M::GET, &format!("/api/v1/backup/policies/{c}"), None)
                    .await?;
                Ok(out(client, &v, print_policy))
            }
            PolicyCmd::Show { cluster: None } => {
                let v = api.call(M::GET, "/api/v1/backup/policies", None).await?;
                Ok(out(client, &v, |v| {
                    let ps = v["policies"].as_array().cloned().unwrap_or_default();
                    if ps.is_empty() {
                        println!("no backup policies");
                    }
                    for p in &ps {
                        print_policy(p);
                    }
                }))
            }
            PolicyCmd::Delete { cluster } => {
                api.call(
                    M::DELETE,
                    &format!("/api/v1/backup/policies/{cluster}"),
                    None,
                )
                .await?;
                if client.output == Output::Text {
                    println!("policy {cluster} deleted (its sets stay in storage)");
                }
                Ok(ExitCode::SUCCESS)
            }
        },
        BackupCmd::Now {
            cluster,
            incremental,
            source,
            ..
        } => {
            if source.is_some() {
                bail!("--source is for direct mode (with --storage); the service backs up the source of the cluster's policy");
            }
            let kind = if incremental { "incremental" } else { "full" };
            let v = api
                .call(
                    M::POST,
                    &format!("/api/v1/backup/policies/{cluster}/backups"),
                    Some(json!({"type": kind})),
                )
                .await?;
            Ok(out(client, &v, |v| {
                println!(
                    "{} backup of {cluster} started: task {} (ferry backup list {cluster})",
                    kind,
                    s(v, "id")
                )
            }))
        }
        BackupCmd::List {
            cluster,
            kind,
            window,
            ..
        } => {
            let mut q = window_query(&window);
            let enc =
                |x: &str| url::form_urlencoded::byte_serialize(x.as_bytes()).collect::<String>();
            match kind.as_str() {
                "log" => {
                    if let Some(c) = &cluster {
                        q.push(format!("cluster={}", enc(c)));
                    }
                    let v = api
                        .call(M::GET, &format!("/api/v1/backup/logs?{}", q.join("&")), None)
                        .await?;
                    return Ok(out(client, &v, print_logs));
                }
                "window" | "mark" => {
                    let Some(c) = &cluster else {
                        bail!("--kind {kind} lists one cluster's: name the cluster (ferry backup list CLUSTER --kind {kind})");
                    };
                    let what = if kind == "window" { "windows" } else { "marks" };
                    let v = api
                        .call(
                            M::GET,
                            &format!("/api/v1/backup/policies/{}/{what}", enc(c)),
                            None,
                        )
                        .await?;
                    return Ok(if kind == "window" {
                        out(client, &v, print_windows)
                    } else {
                        out(client, &v, print_marks)
                    });
                }
                _ => {}
            }
            let path = if kind == "restore" {
                "/api/v1/restores"
            } else {
                q.push(format!("kind={kind}"));
                if let Some(c) = &cluster {
                    q.push(format!("cluster={c}"));
                }
                "/api/v1/backup/tasks"
            };
            let v = api
                .call(M::GET, &format!("{path}?{}", q.join("&")), None)
                .await?;
            Ok(out(client, &v, print_tasks))
        }
        BackupCmd::Show { set, .. } => {
            // the data task that wrote the set (the manifest itself: --storage)
            let v = api
                .call(M::GET, "/api/v1/backup/tasks?kind=data&limit=500", None)
                .await?;
            let found = v["tasks"]
                .as_array()
                .and_then(|ts| ts.iter().find(|t| t["set_id"] == json!(set)))
                .cloned();
            match found {
                Some(t) => Ok(out(client, &t, print_task)),
                None => bail!(
                    "no data backup of yours wrote set {set:?} (the newest 500 are searched); \
                     give --storage URL to read the set's manifest from the repository"
                ),
            }
        }
        BackupCmd::Verify { set, .. } => bail!(
            "verify re-reads the set's files from the repository: run `ferry backup verify {set} --storage URL`"
        ),
    }
}

/// Runs a restore command on the service.
pub async fn restore(client: &ClientOpts, cmd: RestoreCmd) -> Result<ExitCode> {
    let api = api(client)?;
    match cmd {
        RestoreCmd::Create {
            from,
            until,
            data_dir,
            from_dump,
            target,
            include,
            exclude,
            existing_data,
            name,
            ..
        } => {
            if data_dir.is_some() {
                bail!("--data-dir writes a data directory here: give --storage (the service restores rows into --target)");
            }
            // with --until, --from names the cluster restored to that point
            let (from_set, from_cluster) = match &until {
                Some(_) => (None, from),
                None => (from, None),
            };
            let v = api
                .call(
                    M::POST,
                    "/api/v1/restores",
                    Some(json!({
                        "from_set": from_set,
                        "from_cluster": from_cluster,
                        "until": until,
                        "from_dump": from_dump,
                        "target": target,
                        "include": include,
                        "exclude": exclude,
                        "existing_data": existing_data,
                        "name": name,
                    })),
                )
                .await?;
            Ok(out(client, &v, |v| {
                println!(
                    "restore {} created ({}): ferry restore show {}",
                    s(v, "id"),
                    s(v, "state"),
                    s(v, "id")
                )
            }))
        }
        RestoreCmd::List { window, limit } => {
            let mut q = window_query(&window);
            q.push(format!("limit={limit}"));
            let v = api
                .call(M::GET, &format!("/api/v1/restores?{}", q.join("&")), None)
                .await?;
            Ok(out(client, &v, print_tasks))
        }
        RestoreCmd::Show { id } => {
            let v = api
                .call(M::GET, &format!("/api/v1/restores/{id}"), None)
                .await?;
            Ok(out(client, &v, print_task))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_becomes_query_text() {
        let w = Window {
            since: None,
            from: Some("2026-12-01T00:00:00+01:00".into()),
            to: Some("2026-12-02".into()),
        };
        assert_eq!(
            window_query(&w),
            vec!["from=2026-12-01T00%3A00%3A00%2B01%3A00", "to=2026-12-02"]
        );
    }
}
