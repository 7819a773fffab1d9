//! Webhook notifications per tenant: a POST when a task enters a failure state, and
//! when its lag stays above the tenant's threshold for the configured time. Delivery
//! is best effort (logged on failure), never blocking a state change.

use crate::store::{Store, TaskRow};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// A tenant's webhook settings (stored as JSON with the tenant).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Webhook {
    /// `http://…` URL that receives the POSTs.
    pub url: String,
    /// Lag (seconds) above which a task is reported…
    #[serde(default)]
    pub lag_seconds: Option<f64>,
    /// …once it stayed above for this long (seconds).
    #[serde(default)]
    pub lag_for_seconds: Option<f64>,
}

impl Webhook {
    /// Checks the URL so a typo is refused at configuration time.
    pub fn validate(&self) -> Result<(), String> {
        let u =
            url::Url::parse(&self.url).map_err(|e| format!("{:?} is not a URL: {e}", self.url))?;
        if u.scheme() != "http" {
            return Err(
                "only http:// webhooks are supported (put a TLS proxy in front for https)".into(),
            );
        }
        if self.lag_seconds.is_some_and(|s| s.is_nan() || s <= 0.0)
            || self.lag_for_seconds.is_some_and(|s| s < 0.0)
        {
            return Err("lag_seconds must be > 0 and lag_for_seconds ≥ 0".into());
        }
        Ok(())
    }
}

/// The webhook of the task's tenant, if any.
pub async fn webhook_of(store: &Store, tenant: &str) -> Option<Webhook> {
    let t = store.tenant(tenant).await.ok()??;
    serde_json::from_str(t.webhook.as_deref()?).ok()
}

/// Posts `event` about `task` to its tenant's webhook, in the background.
pub fn send(store: Store, task: &TaskRow, event: &str, detail: serde_json::Value) {
    let body = serde_json::json!({
        "event": event,
        "task": {
            "id": task.id,
            "name": task.name,
            "kind": task.kind.id(),
            "state": task.state.id(),
            "reason": task.reason,
        },
        "detail": detail,
        "at": crate::store::rfc3339(crate::store::now_ms()),
    });
    let tenant = task.tenant.clone();
    tokio::spawn(async move {
        let Some(hook) = webhook_of(&store, &tenant).await else {
            return;
        };
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .expect("http client");
        match client.post(&hook.url).json(&body).send().await {
            Ok(r) if r.status().is_success() => {}
            Ok(r) => tracing::warn!(tenant = %tenant, "webhook answered {}", r.status()),
            Err(e) => tracing::warn!(tenant = %tenant, "webhook not delivered: {e}"),
        }
    });
}
