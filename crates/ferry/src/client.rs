//! `ferry task …` / `ferry tenant …`: a thin client of the REST API. Text output for
//! people, `-o json` prints the API's JSON for scripts.

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand, ValueEnum};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::ExitCode;

/// Where the API is and how to print.
#[derive(Args, Debug, Clone)]
pub struct ClientOpts {
    /// The service's address.
    #[arg(
        long,
        env = "FERRY_SERVER",
        default_value = "http://127.0.0.1:8080",
        global = true
    )]
    pub server: String,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value = "text", global = true)]
    pub output: Output,
    /// A PEM file of CA certificates to trust for an https:// service (one signed
    /// by a private CA); the public web roots are trusted anyway.
    #[arg(long, env = "FERRY_CA_CERT", global = true)]
    pub ca_cert: Option<PathBuf>,
}

/// Output format.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// For people.
    Text,
    /// The API's JSON.
    Json,
}

/// `ferry task …`
#[derive(Subcommand, Debug)]
pub enum TaskCmd {
    /// Creates a task from a task file.
    Create {
        /// Task file (YAML).
        #[arg(short = 'f', long = "file")]
        file: PathBuf,
        /// Start automatically at this time (RFC 3339, e.g. 2026-12-01T02:00:00Z).
        #[arg(long)]
        start_at: Option<String>,
        /// Admin only: the owning tenant.
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Lists tasks.
    List {
        /// migration | sync | dr
        #[arg(long)]
        kind: Option<String>,
        /// A state id, e.g. incremental.
        #[arg(long)]
        state: Option<String>,
        /// Created within (24h, 7d, 30d) or since a date/time, or a range FROM..TO.
        #[arg(long)]
        since: Option<String>,
        /// Page size.
        #[arg(long, default_value_t = 50)]
        limit: i64,
        /// Rows skipped.
        #[arg(long, default_value_t = 0)]
        offset: i64,
    },
    /// State, reason, progress, events.
    Show {
        /// Task id.
        id: String,
    },
    /// Starts a configured (or failed) task now.
    Start {
        /// Task id.
        id: String,
    },
    /// Starts a configured task at a given time.
    Schedule {
        /// Task id.
        id: String,
        /// RFC 3339 time.
        #[arg(long)]
        at: String,
    },
    /// Pauses a running task (positions kept).
    Pause {
        /// Task id.
        id: String,
    },
    /// Resumes a paused task.
    Resume {
        /// Task id.
        id: String,
    },
    /// Ends a task: releases slot, publication and worker.
    End {
        /// Task id.
        id: String,
    },
    /// Sync: replaces the task's objects (a YAML file with include / exclude /
    /// rename); added tables are copied while the others keep streaming.
    Edit {
        /// Task id.
        id: String,
        /// YAML file holding the new `objects` section.
        #[arg(long)]
        objects: PathBuf,
    },
    /// DR: planned swap of primary and standby (no change lost).
    Switchover {
        /// Task id.
        id: String,
    },
    /// DR: promote the standby now; reports what it holds.
    Failover {
        /// Task id.
        id: String,
    },
    /// Deletes an ended (or never started) task.
    Delete {
        /// Task id.
        id: String,
    },
}

/// `ferry tenant …` (admin token)
#[derive(Subcommand, Debug)]
pub enum TenantCmd {
    /// Creates a tenant and prints its API token.
    Create {
        /// Tenant name.
        name: String,
        /// Starting balance.
        #[arg(long, default_value_t = 0.0)]
        balance: f64,
    },
    /// Adds to the balance (negative: a charge).
    Topup {
        /// Tenant name.
        name: String,
        /// Amount.
        #[arg(allow_negative_numbers = true)]
        amount: f64,
    },
    /// Balance, usage and tasks by state.
    Show {
        /// Tenant name.
        name: String,
    },
    /// Gives the tenant a new API token (printed once); the old one stops working
    /// at once, or after --grace seconds. The admin or the tenant itself.
    RotateToken {
        /// Tenant name.
        name: String,
        /// Seconds the old token keeps working beside the new one (max a week).
        #[arg(long, default_value_t = 0)]
        grace: i64,
    },
    /// Gives the tenant's webhook a new signing secret (printed once).
    RotateWebhookSecret {
        /// Tenant name.
        name: String,
    },
}

/// `ferry admin …` (admin token)
#[derive(Subcommand, Debug)]
pub enum AdminCmd {
    /// Replaces the admin token (printed once); the old one stops working at once,
    /// and the new one survives restarts.
    RotateToken,
}

/// `ferry audit …` (admin token)
#[derive(Subcommand, Debug)]
pub enum AuditCmd {
    /// Mutating API calls, oldest first: when, who, what, outcome.
    List {
        /// Since (24h, 7d, a date, an RFC 3339 time) or a range FROM..TO.
        #[arg(long)]
        since: Option<String>,
        /// Before (24h, 7d, a date, an RFC 3339 time).
        #[arg(long)]
        until: Option<String>,
        /// Only calls concerning this tenant.
        #[arg(long)]
        tenant: Option<String>,
        /// Page size (1–1000).
        #[arg(long, default_value_t = 100)]
        limit: i64,
        /// Entries skipped.
        #[arg(long, default_value_t = 0)]
        offset: i64,
    },
}

pub(crate) struct Api {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
    /// What to set when no token is set and the service answers 401: the
    /// variable this command reads, not the service's generic hint.
    no_token: &'static str,
}

/// `ferry task …` without a token.
pub(crate) const NO_TASK_TOKEN: &str =
    "no API token: set FERRY_TOKEN to your tenant's token (or FERRY_ADMIN_TOKEN to the admin token)";
/// `ferry tenant create|topup` without a token.
const NO_ADMIN_TOKEN: &str = "no admin token: set FERRY_ADMIN_TOKEN to the server's admin token \
     (its FERRY_ADMIN_TOKEN, or the admin.token file in its --data-dir)";
/// `ferry tenant show` without a token.
const NO_SHOW_TOKEN: &str = "no token: set FERRY_ADMIN_TOKEN to the server's admin token, \
     or FERRY_TOKEN to the tenant's own token";

impl Api {
    /// The first of `token_envs` that is set gives the token; `no_token` is the
    /// hint printed when none is set and the service wants one.
    pub(crate) fn new(
        opts: &ClientOpts,
        token_envs: &[&str],
        no_token: &'static str,
    ) -> Result<Api> {
        let mut http = reqwest::Client::builder().use_rustls_tls();
        if let Some(file) = &opts.ca_cert {
            let pem = std::fs::read(file).with_context(|| {
                format!(
                    "cannot read the CA certificate {} (--ca-cert / FERRY_CA_CERT)",
                    file.display()
                )
            })?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem).with_context(|| {
                format!(
                    "{} is not a PEM certificate file (--ca-cert / FERRY_CA_CERT)",
                    file.display()
                )
            })?;
            if certs.is_empty() {
                bail!(
                    "{} holds no PEM certificate (--ca-cert / FERRY_CA_CERT)",
                    file.display()
                );
            }
            for c in certs {
                http = http.add_root_certificate(c);
            }
        }
        Ok(Api {
            no_token,
            http: http.build().context("cannot set up the HTTP client")?,
            base: opts.server.trim_end_matches('/').to_string(),
            token: token_envs
                .iter()
                .filter_map(|e| std::env::var(e).ok())
                .find(|t| !t.is_empty()),
        })
    }

    /// Why a request did not reach the service, and what to do about it.
    fn unreachable(&self, e: &reqwest::Error) -> String {
        let mut chain = String::new();
        let mut src: Option<&dyn std::error::Error> = Some(e);
        while let Some(x) = src {
            chain.push_str(&format!(": {x}"));
            src = x.source();
        }
        let lower = chain.to_ascii_lowercase();
        if lower.contains("certificate") || lower.contains("unknownissuer") {
            format!(
                "the Ferry service at {} presented a certificate this client does not trust{chain}; \
                 give the CA that signed it with --ca-cert FILE / FERRY_CA_CERT",
                self.base
            )
        } else if self.base.starts_with("http://") && !e.is_connect() && !e.is_timeout() {
            // something listens there but does not speak plain HTTP
            format!(
                "the Ferry service at {} did not answer over plain HTTP{chain}; if it serves \
                 HTTPS (--tls-cert), use an https:// address",
                self.base
            )
        } else {
            format!(
                "cannot reach the Ferry service at {}{chain} (is `ferry serve` running? --server / FERRY_SERVER)",
                self.base
            )
        }
    }

    pub(crate) async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value> {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = match req.send().await {
            Ok(r) => r,
            Err(e) => bail!("{}", self.unreachable(&e)),
        };
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        let v: Value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        if status == reqwest::StatusCode::UNAUTHORIZED && self.token.is_none() {
            bail!("{} ({})", self.no_token, status.as_u16());
        }
        if !status.is_success() {
            let msg = v
                .get("error")
                .and_then(Value::as_str)
                .map(String::from)
                .unwrap_or_else(|| v.to_string());
            bail!("{} ({})", msg, status.as_u16());
        }
        Ok(v)
    }
}

fn s(v: &Value, k: &str) -> String {
    match v.get(k) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => "-".into(),
        Some(o) => o.to_string(),
    }
}

fn print_task(v: &Value) {
    println!("{}  {}  ({})", s(v, "id"), s(v, "name"), s(v, "kind"));
    println!("  state:    {} {}", s(v, "state"), s(v, "state_label"));
    if v.get("reason").is_some_and(|r| !r.is_null()) {
        println!("  reason:   {}", s(v, "reason"));
    }
    println!("  source:   {}", s(v, "source"));
    println!("  target:   {}", s(v, "target"));
    println!("  mode:     {}", s(v, "mode"));
    if v.get("start_at").is_some_and(|r| !r.is_null()) {
        println!("  start at: {}", s(v, "start_at"));
    }
    println!(
        "  created:  {}   updated: {}",
        s(v, "created_at"),
        s(v, "updated_at")
    );
    if let Some(p) = v.get("progress").filter(|p| !p.is_null()) {
        let mut lines = progress_lines(p).into_iter();
        if let Some(first) = lines.next() {
            println!("  progress: {first}");
        }
        for l in lines {
            println!("            {l}");
        }
    }
    if let Some(a) = v.get("allowed_actions").and_then(Value::as_array) {
        let a: Vec<&str> = a.iter().filter_map(Value::as_str).collect();
        println!("  actions:  {}", a.join(", "));
    }
    if let Some(ev) = v.get("events").and_then(Value::as_array) {
        println!("  events:");
        for e in ev {
            println!(
                "    {}  {} → {}  {}",
                s(e, "at"),
                s(e, "from"),
                s(e, "to"),
                s(e, "reason")
            );
        }
    }
}

/// A number as people read it: no trailing `.0`, JSON's own text otherwise.
fn num(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        _ => v.to_string(),
    }
}

/// A task's progress object as readable lines (`-o json` keeps the object): the
/// summary first, then the position and each table; keys this client does not
/// know are shown as `key: value` rather than dropped.
fn progress_lines(p: &Value) -> Vec<String> {
    let Some(o) = p.as_object() else {
        return vec![num(p)];
    };
    let mut head = Vec::new();
    if let Some(ph) = o.get("phase").filter(|v| !v.is_null()) {
        head.push(format!("phase {}", num(ph)));
    }
    if let Some(l) = o.get("lag_seconds").and_then(Value::as_f64) {
        head.push(format!("lag {l:.1} s"));
    }
    for (k, label) in [
        ("transactions_applied", "transactions applied"),
        ("rows_applied", "rows applied"),
        ("recoveries", "recoveries"),
    ] {
        if let Some(n) = o.get(k).filter(|v| !v.is_null()) {
            head.push(format!("{} {label}", num(n)));
        }
    }
    if let Some(at) = o.get("at").filter(|v| !v.is_null()) {
        head.push(format!("as of {}", num(at)));
    }
    let mut lines = vec![head.join(", ")];
    if let Some(pos) = o.get("position").filter(|v| !v.is_null()) {
        lines.push(format!("position {}", num(pos)));
    }
    for t in o
        .get("tables")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        lines.push(format!(
            "table {}: {}, {}/{} chunks, {} rows",
            s(t, "table"),
            s(t, "stage"),
            s(t, "chunks_done"),
            s(t, "chunks"),
            s(t, "rows")
        ));
    }
    for t in o
        .get("added_tables")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let done = t.get("done").and_then(Value::as_bool) == Some(true);
        lines.push(format!(
            "added table {}: {}, {} rows",
            s(t, "table"),
            if done { "copied" } else { "copying" },
            s(t, "rows")
        ));
    }
    const KNOWN: [&str; 9] = [
        "phase",
        "lag_seconds",
        "transactions_applied",
        "rows_applied",
        "recoveries",
        "at",
        "position",
        "tables",
        "added_tables",
    ];
    for (k, v) in o.iter().filter(|(k, _)| !KNOWN.contains(&k.as_str())) {
        lines.push(format!("{k}: {}", num(v)));
    }
    if lines[0].is_empty() {
        lines.remove(0);
    }
    lines
}

/// A tenant's tasks by state as one line: `create_failed 1, incremental 1`.
fn by_state_line(v: &Value) -> String {
    match v.as_object() {
        Some(o) if o.is_empty() => "none".into(),
        Some(o) => o
            .iter()
            .map(|(k, n)| format!("{k} {}", num(n)))
            .collect::<Vec<_>>()
            .join(", "),
        None => num(v),
    }
}

/// Runs `ferry task …`.
pub async fn task(opts: &ClientOpts, cmd: TaskCmd) -> Result<ExitCode> {
    let api = Api::new(opts, &["FERRY_TOKEN", "FERRY_ADMIN_TOKEN"], NO_TASK_TOKEN)?;
    use reqwest::Method as M;
    let v = match cmd {
        TaskCmd::Create {
            file,
            start_at,
            tenant,
        } => {
            let spec = std::fs::read_to_string(&file)
                .with_context(|| format!("cannot read task file {}", file.display()))?;
            api.call(
                M::POST,
                "/api/v1/tasks",
                Some(json!({"spec": spec, "start_at": start_at, "tenant": tenant})),
            )
            .await?
        }
        TaskCmd::List {
            kind,
            state,
            since,
            limit,
            offset,
        } => {
            let mut q = vec![format!("limit={limit}"), format!("offset={offset}")];
            if let Some(k) = kind {
                q.push(format!("kind={k}"));
            }
            if let Some(st) = state {
                q.push(format!("state={st}"));
            }
            if let Some(si) = since {
                match si.split_once("..") {
                    Some((a, b)) => {
                        q.push(format!("since={a}"));
                        q.push(format!("until={b}"));
                    }
                    None => q.push(format!("since={si}")),
                }
            }
            let v = api
                .call(M::GET, &format!("/api/v1/tasks?{}", q.join("&")), None)
                .await?;
            if opts.output == Output::Text {
                println!(
                    "{:<14} {:<24} {:<10} {:<20} REASON",
                    "ID", "NAME", "KIND", "STATE"
                );
                for t in v["tasks"].as_array().into_iter().flatten() {
                    println!(
                        "{:<14} {:<24} {:<10} {:<20} {}",
                        s(t, "id"),
                        s(t, "name"),
                        s(t, "kind"),
                        s(t, "state"),
                        s(t, "reason")
                    );
                }
                println!(
                    "({} of {})",
                    v["tasks"].as_array().map_or(0, Vec::len),
                    s(&v, "total")
                );
                return Ok(ExitCode::SUCCESS);
            }
            v
        }
        TaskCmd::Show { id } => {
            api.call(M::GET, &format!("/api/v1/tasks/{id}"), None)
                .await?
        }
        TaskCmd::Schedule { id, at } => {
            api.call(
                M::POST,
                &format!("/api/v1/tasks/{id}/schedule"),
                Some(json!({"start_at": at})),
            )
            .await?
        }
        TaskCmd::Edit { id, objects } => {
            let text = std::fs::read_to_string(&objects)
                .with_context(|| format!("cannot read {}", objects.display()))?;
            let yaml: serde_norway::Value = serde_norway::from_str(&text)
                .with_context(|| format!("{} is not YAML", objects.display()))?;
            // accept the section alone or a file with an `objects:` key
            let yaml = yaml.get("objects").cloned().unwrap_or(yaml);
            let objects = serde_json::to_value(yaml)?;
            api.call(
                M::POST,
                &format!("/api/v1/tasks/{id}/edit"),
                Some(json!({"objects": objects})),
            )
            .await?
        }
        TaskCmd::Switchover { id } => {
            api.call(M::POST, &format!("/api/v1/tasks/{id}/switchover"), None)
                .await?
        }
        TaskCmd::Failover { id } => {
            api.call(M::POST, &format!("/api/v1/tasks/{id}/failover"), None)
                .await?
        }
        TaskCmd::Start { id } => {
            api.call(M::POST, &format!("/api/v1/tasks/{id}/start"), None)
                .await?
        }
        TaskCmd::Pause { id } => {
            api.call(M::POST, &format!("/api/v1/tasks/{id}/pause"), None)
                .await?
        }
        TaskCmd::Resume { id } => {
            api.call(M::POST, &format!("/api/v1/tasks/{id}/resume"), None)
                .await?
        }
        TaskCmd::End { id } => {
            api.call(M::POST, &format!("/api/v1/tasks/{id}/end"), None)
                .await?
        }
        TaskCmd::Delete { id } => {
            api.call(M::DELETE, &format!("/api/v1/tasks/{id}"), None)
                .await?;
            if opts.output == Output::Text {
                println!("task {id} deleted");
            } else {
                println!("{}", json!({"id": id, "deleted": true}));
            }
            return Ok(ExitCode::SUCCESS);
        }
    };
    match opts.output {
        Output::Json => println!("{v}"),
        Output::Text => print_task(&v),
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs `ferry tenant …` (needs FERRY_ADMIN_TOKEN, or the tenant's own token for `show`).
pub async fn tenant(opts: &ClientOpts, cmd: TenantCmd) -> Result<ExitCode> {
    let no_token = match cmd {
        TenantCmd::Show { .. }
        | TenantCmd::RotateToken { .. }
        | TenantCmd::RotateWebhookSecret { .. } => NO_SHOW_TOKEN,
        TenantCmd::Create { .. } | TenantCmd::Topup { .. } => NO_ADMIN_TOKEN,
    };
    let api = Api::new(opts, &["FERRY_ADMIN_TOKEN", "FERRY_TOKEN"], no_token)?;
    use reqwest::Method as M;
    let v = match cmd {
        TenantCmd::Create { name, balance } => {
            api.call(
                M::POST,
                "/api/v1/tenants",
                Some(json!({"name": name, "balance": balance})),
            )
            .await?
        }
        TenantCmd::Topup { name, amount } => {
            api.call(
                M::POST,
                &format!("/api/v1/tenants/{name}/topup"),
                Some(json!({"amount": amount})),
            )
            .await?
        }
        TenantCmd::Show { name } => {
            api.call(M::GET, &format!("/api/v1/tenants/{name}"), None)
                .await?
        }
        TenantCmd::RotateToken { name, grace } => {
            let v = api
                .call(
                    M::POST,
                    &format!("/api/v1/tenants/{name}/token?grace_seconds={grace}"),
                    None,
                )
                .await?;
            if opts.output == Output::Text {
                println!("tenant {}", s(&v, "name"));
                println!(
                    "  token:   {}   (shown once; the tenant uses it as FERRY_TOKEN)",
                    s(&v, "token")
                );
                match v.get("old_token_valid_until").and_then(Value::as_str) {
                    Some(until) => println!("  the old token works until {until}"),
                    None => println!("  the old token no longer works"),
                }
            } else {
                println!("{v}");
            }
            return Ok(ExitCode::SUCCESS);
        }
        TenantCmd::RotateWebhookSecret { name } => {
            let v = api
                .call(
                    M::POST,
                    &format!("/api/v1/tenants/{name}/webhook/secret"),
                    None,
                )
                .await?;
            if opts.output == Output::Text {
                println!("tenant {}", s(&v, "name"));
                println!(
                    "  signing secret: {}   (shown once; the old one no longer signs)",
                    s(&v, "signing_secret")
                );
            } else {
                println!("{v}");
            }
            return Ok(ExitCode::SUCCESS);
        }
    };
    match opts.output {
        Output::Json => println!("{v}"),
        Output::Text => {
            println!("tenant {}", s(&v, "name"));
            if v.get("token").is_some() {
                println!(
                    "  token:   {}   (shown once; the tenant uses it as FERRY_TOKEN)",
                    s(&v, "token")
                );
            }
            println!("  balance: {}", s(&v, "balance"));
            if v.get("usage").is_some() {
                println!("  usage:   {}", s(&v, "usage"));
                println!("  tasks:   {}", by_state_line(&v["tasks_by_state"]));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `ferry admin …` without a token.
const NO_ROOT_TOKEN: &str = "no admin token: set FERRY_ADMIN_TOKEN to the server's admin token";

/// Runs `ferry admin …` (needs FERRY_ADMIN_TOKEN).
pub async fn admin(opts: &ClientOpts, cmd: AdminCmd) -> Result<ExitCode> {
    let api = Api::new(opts, &["FERRY_ADMIN_TOKEN"], NO_ROOT_TOKEN)?;
    match cmd {
        AdminCmd::RotateToken => {
            let v = api
                .call(reqwest::Method::POST, "/api/v1/admin/token", None)
                .await?;
            match opts.output {
                Output::Json => println!("{v}"),
                Output::Text => println!(
                    "new admin token: {}\n  (shown once; the old one no longer works — update FERRY_ADMIN_TOKEN wherever it is used)",
                    s(&v, "token")
                ),
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs `ferry audit …` (needs FERRY_ADMIN_TOKEN).
pub async fn audit(opts: &ClientOpts, cmd: AuditCmd) -> Result<ExitCode> {
    let api = Api::new(opts, &["FERRY_ADMIN_TOKEN", "FERRY_TOKEN"], NO_ROOT_TOKEN)?;
    let AuditCmd::List {
        since,
        until,
        tenant,
        limit,
        offset,
    } = cmd;
    let mut q = vec![format!("limit={limit}"), format!("offset={offset}")];
    for (k, v) in [("since", since), ("until", until), ("tenant", tenant)] {
        if let Some(v) = v {
            q.push(format!(
                "{k}={}",
                url::form_urlencoded::byte_serialize(v.as_bytes()).collect::<String>()
            ));
        }
    }
    let v = api
        .call(
            reqwest::Method::GET,
            &format!("/api/v1/audit?{}", q.join("&")),
            None,
        )
        .await?;
    if opts.output == Output::Json {
        println!("{v}");
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<24} {:<16} {:<6} {:<44} {:<6} OUTCOME",
        "AT", "WHO", "METHOD", "PATH", "STATUS"
    );
    for e in v["entries"].as_array().into_iter().flatten() {
        let outcome = match e.get("error").and_then(Value::as_str) {
            Some(err) => err.to_string(),
            None => e
                .get("summary")
                .filter(|x| !x.is_null())
                .map(Value::to_string)
                .unwrap_or_default(),
        };
        println!(
            "{:<24} {:<16} {:<6} {:<44} {:<6} {}",
            s(e, "at"),
            s(e, "who"),
            s(e, "method"),
            s(e, "path"),
            s(e, "status"),
            outcome
        );
    }
    println!(
        "({} of {})",
        v["entries"].as_array().map_or(0, Vec::len),
        s(&v, "total")
    );
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_reads_as_lines_not_json() {
        let p = json!({
            "at": "2026-12-01T10:00:00.000Z",
            "lag_seconds": 0.94,
            "phase": "incremental",
            "position": "0/16B3748",
            "recoveries": 0,
            "rows_applied": 340,
            "transactions_applied": 12,
            "tables": [{"table": "public.a", "stage": "done", "chunks_done": 5, "chunks": 5, "rows": 1000}],
            "added_tables": [{"table": "b", "next_key": null, "done": false, "rows": 7}],
            "new_thing": 3
        });
        assert_eq!(
            progress_lines(&p),
            [
                "phase incremental, lag 0.9 s, 12 transactions applied, 340 rows applied, \
                 0 recoveries, as of 2026-12-01T10:00:00.000Z",
                "position 0/16B3748",
                "table public.a: done, 5/5 chunks, 1000 rows",
                "added table b: copying, 7 rows",
                "new_thing: 3",
            ]
        );
        assert_eq!(progress_lines(&json!({"phase": "full"})), ["phase full"]);
        assert!(progress_lines(&json!({})).is_empty());
    }

    #[test]
    fn tasks_by_state_read_as_one_line() {
        assert_eq!(
            by_state_line(&json!({"create_failed": 1, "incremental": 1})),
            "create_failed 1, incremental 1"
        );
        assert_eq!(by_state_line(&json!({})), "none");
    }
}
