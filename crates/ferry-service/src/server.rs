//! `ferry serve` / `ferry worker`: wires the store, the secrets, the API and the
//! workers of one node together and stops them gracefully.

use crate::api::{router, App};
use crate::billing::{meter, Prices};
use crate::control::{random_hex, Control};
use crate::error::{ServiceError, ServiceResult};
use crate::notify::WebhookAllow;
use crate::secrets::Secrets;
use crate::store::Store;
use crate::worker::Worker;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// How a node runs.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// Where SQLite metadata, the secret key and the admin token live.
    pub data_dir: PathBuf,
    /// A PostgreSQL metadata URL shared by several nodes (default: SQLite in data_dir).
    pub meta: Option<String>,
    /// API address (`None`: a worker-only node).
    pub listen: Option<String>,
    /// Run a worker on this node.
    pub work: bool,
    /// Prices for metering.
    pub prices: Prices,
    /// How often running tasks are charged.
    pub meter_every: Duration,
    /// Private/loopback webhook destinations the admin allows (comma-separated
    /// addresses and CIDR blocks); webhooks reach public addresses only otherwise.
    pub webhook_allow: Option<String>,
    /// Serve HTTPS with this PEM certificate chain and PEM private key (both or
    /// neither; plain HTTP without them).
    pub tls: Option<(PathBuf, PathBuf)>,
    /// How webhook deliveries are retried.
    pub webhook_retry: crate::notify::RetryPolicy,
    /// Forget a rotated admin token: FERRY_ADMIN_TOKEN / the admin.token file are
    /// the admin token again (the way back when the rotated one is lost).
    pub reset_admin_token: bool,
}

fn admin_token(dir: &std::path::Path) -> ServiceResult<String> {
    if let Ok(t) = std::env::var("FERRY_ADMIN_TOKEN") {
        if !t.is_empty() {
            return Ok(t);
        }
    }
    let path = dir.join("admin.token");
    if let Ok(t) = std::fs::read_to_string(&path) {
        return Ok(t.trim().to_string());
    }
    let t = format!("fa_{}", random_hex(24));
    let io = |e: std::io::Error| ServiceError::Unavailable(format!("{}: {e}", path.display()));
    #[cfg(unix)]
    {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .and_then(|mut f| f.write_all(t.as_bytes()))
            .map_err(io)?;
    }
    #[cfg(not(unix))]
    std::fs::write(&path, &t).map_err(io)?;
    eprintln!(
        "FERRY_ADMIN_TOKEN is not set: the admin token was written to {}",
        path.display()
    );
    Ok(t)
}

/// Runs a node until `stop` turns true.
pub async fn run_node(cfg: NodeConfig, stop: watch::Receiver<bool>) -> ServiceResult<()> {
    let fresh_dir = !cfg.data_dir.exists();
    std::fs::create_dir_all(&cfg.data_dir).map_err(|e| {
        ServiceError::Unavailable(format!("data directory {}: {e}", cfg.data_dir.display()))
    })?;
    #[cfg(unix)]
    if fresh_dir {
        // metadata, key and token files: only the service's user reads them
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&cfg.data_dir, std::fs::Permissions::from_mode(0o700));
    }
    let meta = cfg
        .meta
        .clone()
        .unwrap_or_else(|| format!("sqlite://{}", cfg.data_dir.join("ferry.db").display()));
    let store = Store::open(&meta).await?;
    let secrets = Secrets::load(&cfg.data_dir.join("secret.key"))?;
    // every node must seal with the same key, or one cannot read what another stored
    let canary = store.kv_init("key_check", &secrets.seal("ferry")).await?;
    if secrets.open(&canary).is_err() {
        return Err(ServiceError::Unavailable(
            "this node's secret key differs from the one the metadata was written with; \
             give every node the same FERRY_SECRET_KEY (or the same key file)"
                .into(),
        ));
    }
    let allow = WebhookAllow::parse(cfg.webhook_allow.as_deref().unwrap_or("")).map_err(|e| {
        ServiceError::Unavailable(format!("--webhook-allow / FERRY_WEBHOOK_ALLOW: {e}"))
    })?;
    let control = Control::new(store, secrets)
        .with_webhook_allow(allow)
        .with_webhook_retry(cfg.webhook_retry);
    if cfg.reset_admin_token {
        control
            .store
            .kv_delete(crate::tokens::ADMIN_TOKEN_KEY)
            .await?;
        eprintln!("ferry serve: --reset-admin-token: a rotated admin token no longer works; FERRY_ADMIN_TOKEN (or the admin.token file) is the admin token again");
    }
    let node = format!(
        "{}-{}",
        std::env::var("HOSTNAME").unwrap_or_else(|_| "node".into()),
        random_hex(3)
    );
    let worker = cfg.work.then(|| Worker::new(control.clone(), node.clone()));
    let mut jobs = Vec::new();
    if let Some(w) = &worker {
        jobs.push(tokio::spawn(w.clone().run(stop.clone())));
        jobs.push(tokio::spawn(meter(
            control.clone(),
            w.clone(),
            cfg.prices,
            cfg.meter_every,
            stop.clone(),
        )));
    }
    if let Some(addr) = &cfg.listen {
        // read the certificate before anything listens: a bad file stops the start
        let tls = cfg
            .tls
            .as_ref()
            .map(|(cert, key)| crate::tls::server_config(cert, key))
            .transpose()?;
        let token_file = cfg.data_dir.join("admin.token");
        let app = Arc::new(App {
            control: control.clone(),
            admin_token: crate::tokens::AdminToken::load(
                &control.store,
                || admin_token(&cfg.data_dir),
                Some(token_file),
            )
            .await?,
            // a scraper's token that reads /metrics and nothing else
            metrics_token: std::env::var("FERRY_METRICS_TOKEN")
                .ok()
                .filter(|t| !t.is_empty()),
            worker: worker.clone(),
        });
        let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
            ServiceError::Unavailable(format!(
                "cannot listen on {addr}: {e} (choose another with --listen)"
            ))
        })?;
        eprintln!(
            "ferry serve: API on {}://{addr} (node {node}, metadata {})",
            if tls.is_some() { "https" } else { "http" },
            ferry_core::redact::redact(&meta)
        );
        let mut stop2 = stop.clone();
        let shutdown = async move {
            let _ = stop2.changed().await;
        };
        // the client's address reaches the handlers (the audit log records it)
        let service = router(app).into_make_service_with_connect_info::<crate::audit::Remote>();
        match tls {
            Some(cfg) => {
                let listener = crate::tls::TlsListener::new(listener, cfg)
                    .map_err(|e| ServiceError::Unavailable(format!("API server: {e}")))?;
                axum::serve(listener, service)
                    .with_graceful_shutdown(shutdown)
                    .await
            }
            None => {
                axum::serve(listener, service)
                    .with_graceful_shutdown(shutdown)
                    .await
            }
        }
        .map_err(|e| ServiceError::Unavailable(format!("API server: {e}")))?;
    } else {
        eprintln!(
            "ferry worker: node {node}, metadata {}",
            ferry_core::redact::redact(&meta)
        );
        let mut s = stop.clone();
        let _ = s.changed().await;
    }
    for j in jobs {
        let _ = j.await;
    }
    Ok(())
}
