//! Webhook notifications per tenant: a POST when a task enters a failure state, and
//! when its lag stays above the tenant's threshold for the configured time. Delivery
//! is best effort (logged on failure), never blocking a state change. A webhook
//! reaches public addresses only, unless the admin allows private/loopback ones:
//! checked when it is saved and again, on the resolved address, at every send.

use crate::control::Control;
use crate::store::{Store, TaskRow};
use serde::{Deserialize, Serialize};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

/// A tenant's webhook settings (stored as JSON with the tenant).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
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
    /// Checks the settings so a typo — or an internal address — is refused at
    /// configuration time: `Err((field, reason))`. The address is checked again
    /// at every send (a name may resolve elsewhere by then).
    pub async fn validate(&self, allow: &WebhookAllow) -> Result<(), (&'static str, String)> {
        if let Some(s) = self.lag_seconds {
            if !s.is_finite() || s <= 0.0 {
                return Err(("lag_seconds", format!("{s} is not a number of seconds > 0")));
            }
        }
        if let Some(s) = self.lag_for_seconds {
            if !s.is_finite() || s < 0.0 {
                return Err((
                    "lag_for_seconds",
                    format!("{s} is not a number of seconds ≥ 0"),
                ));
            }
        }
        let u = url::Url::parse(&self.url)
            .map_err(|e| ("url", format!("{:?} is not a URL: {e}", self.url)))?;
        destination(&u, allow).await.map_err(|e| ("url", e))?;
        Ok(())
    }
}

/// Private and loopback destinations an admin lets webhooks reach
/// (`FERRY_WEBHOOK_ALLOW=127.0.0.1,10.0.0.0/8`); without it a webhook reaches public
/// addresses only, so a tenant cannot make the service call into its own network.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WebhookAllow(Vec<(IpAddr, u8)>);

impl WebhookAllow {
    /// Parses a comma-separated list of addresses and CIDR blocks.
    pub fn parse(text: &str) -> Result<WebhookAllow, String> {
        let mut nets = Vec::new();
        for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let bad = || {
                format!("{item:?} is not an address or a CIDR block (e.g. 127.0.0.1 or 10.0.0.0/8)")
            };
            let (ip, bits) = match item.split_once('/') {
                Some((ip, bits)) => (ip, Some(bits.parse::<u8>().map_err(|_| bad())?)),
                None => (item, None),
            };
            let ip = canonical(ip.parse::<IpAddr>().map_err(|_| bad())?);
            let max = if ip.is_ipv4() { 32 } else { 128 };
            let bits = bits.unwrap_or(max);
            if bits > max {
                return Err(bad());
            }
            nets.push((ip, bits));
        }
        Ok(WebhookAllow(nets))
    }

    /// Whether the list names `ip`.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.0.iter().any(|(net, bits)| match (net, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => prefix_eq(&n.octets(), &a.octets(), *bits),
            (IpAddr::V6(n), IpAddr::V6(a)) => prefix_eq(&n.octets(), &a.octets(), *bits),
            _ => false,
        })
    }
}

fn prefix_eq(a: &[u8], b: &[u8], bits: u8) -> bool {
    let (whole, rest) = ((bits / 8) as usize, bits % 8);
    if a[..whole] != b[..whole] {
        return false;
    }
    rest == 0 || {
        let mask = 0xffu8 << (8 - rest);
        a[whole] & mask == b[whole] & mask
    }
}

/// An IPv4 address written as IPv6 (`::ffff:a.b.c.d`, or NAT64 `64:ff9b::a.b.c.d`)
/// is judged as the IPv4 address it reaches.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return IpAddr::V4(v4);
            }
            let s = v6.segments();
            if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
                let o = v6.octets();
                return IpAddr::V4(Ipv4Addr::new(o[12], o[13], o[14], o[15]));
            }
            IpAddr::V6(v6)
        }
        v4 => v4,
    }
}

/// Why a webhook may not be sent to an address: what kind of address it is, and
/// whether the admin's allow-list could let it through (so the refusal can say
/// what to do about it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    /// The kind of address, as a noun phrase ("a loopback address").
    pub what: &'static str,
    /// Private/loopback: FERRY_WEBHOOK_ALLOW may allow it; otherwise never.
    pub allowable: bool,
}

/// Why a webhook may not be sent to `ip` (`None`: it may). Unspecified, link-local
/// (cloud metadata services live there), multicast, broadcast and reserved
/// addresses are never reached; private, shared (CGNAT) and loopback ones only
/// when `allow` names them.
pub fn refused(ip: IpAddr, allow: &WebhookAllow) -> Option<Refusal> {
    let ip = canonical(ip);
    let (never, internal) = match ip {
        IpAddr::V4(a) => {
            let o = a.octets();
            let never = if a.is_unspecified() || o[0] == 0 {
                Some("an unspecified address")
            } else if a.is_link_local() {
                Some("a link-local address (where cloud metadata services answer)")
            } else if a.is_multicast() {
                Some("a multicast address")
            } else if a.is_broadcast() {
                Some("the broadcast address")
            } else if o[0] >= 240 {
                Some("a reserved address")
            } else {
                None
            };
            let internal = if a.is_loopback() {
                Some("a loopback address")
            } else if a.is_private() || (o[0] == 100 && (o[1] & 0xc0) == 64) {
                Some("a private address")
            } else {
                None
            };
            (never, internal)
        }
        IpAddr::V6(a) => {
            let s = a.segments();
            let never = if a.is_unspecified() {
                Some("an unspecified address")
            } else if (s[0] & 0xffc0) == 0xfe80 {
                Some("a link-local address")
            } else if a.is_multicast() {
                Some("a multicast address")
            } else {
                None
            };
            let internal = if a.is_loopback() {
                Some("a loopback address")
            } else if (s[0] & 0xfe00) == 0xfc00 || (s[0] & 0xffc0) == 0xfec0 {
                Some("a private address")
            } else {
                None
            };
            (never, internal)
        }
    };
    let never = never.map(|what| Refusal {
        what,
        allowable: false,
    });
    never.or_else(|| {
        internal
            .filter(|_| !allow.contains(ip))
            .map(|what| Refusal {
                what,
                allowable: true,
            })
    })
}

/// Where a webhook URL may be sent: an address its host resolves to now that
/// [`refused`] lets through. The POST connects to exactly this address, so a name
/// that resolves elsewhere a moment later (DNS rebinding) changes nothing.
pub async fn destination(u: &url::Url, allow: &WebhookAllow) -> Result<SocketAddr, String> {
    match u.scheme() {
        "http" => {}
        "https" => {
            return Err(
                "https webhooks are not supported by this build (no TLS client); \
                 use http://, or a TLS-terminating proxy the admin allows (FERRY_WEBHOOK_ALLOW)"
                    .into(),
            )
        }
        s => return Err(format!("{s}:// is not a webhook scheme; use http://")),
    }
    let port = u.port_or_known_default().unwrap_or(80);
    let addrs: Vec<SocketAddr> = match u.host() {
        Some(url::Host::Ipv4(a)) => vec![SocketAddr::new(IpAddr::V4(a), port)],
        Some(url::Host::Ipv6(a)) => vec![SocketAddr::new(IpAddr::V6(a), port)],
        Some(url::Host::Domain(d)) => {
            tokio::time::timeout(Duration::from_secs(5), tokio::net::lookup_host((d, port)))
                .await
                .map_err(|_| format!("{d} did not resolve within 5 s"))?
                .map_err(|e| format!("{d} does not resolve: {e}"))?
                .collect()
        }
        None => return Err("the URL names no host".into()),
    };
    let mut why = Vec::new();
    for a in &addrs {
        match refused(a.ip(), allow) {
            None => return Ok(*a),
            Some(r) => why.push((a.ip(), r)),
        }
    }
    let host = u.host_str().unwrap_or("");
    if why.is_empty() {
        return Err(format!("{host} resolves to no address"));
    }
    Err(refusal_message(host, &why))
}

/// One sentence saying which address a webhook may not reach, why, and how to
/// allow it (or that it never will be).
fn refusal_message(host: &str, why: &[(IpAddr, Refusal)]) -> String {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let what = match why {
        [(ip, r)] if ip.to_string() == host => format!("it is {}", r.what),
        _ => {
            let each: Vec<String> = why
                .iter()
                .map(|(ip, r)| format!("{ip}, {}", r.what))
                .collect();
            format!("it resolves to {}", each.join("; "))
        }
    };
    let how = if why.iter().any(|(_, r)| r.allowable) {
        "private and loopback addresses are refused unless the server's admin allows them \
         with FERRY_WEBHOOK_ALLOW / --webhook-allow"
    } else {
        "such addresses are refused whatever the allow-list says; use a public address"
    };
    format!("webhooks may not reach {host}: {what}; {how}")
}

/// The webhook of the task's tenant, if any.
pub async fn webhook_of(store: &Store, tenant: &str) -> Option<Webhook> {
    let t = store.tenant(tenant).await.ok()??;
    serde_json::from_str(t.webhook.as_deref()?).ok()
}

/// How webhook deliveries are retried: `attempts` in all, the first retry after
/// `first_delay`, each next one after twice as long (capped at five minutes), each
/// delay varied by ±25 % so receivers that came back are not hit by every sender at
/// once. Connection errors, timeouts, 5xx and 429 are retried; other answers not.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// Attempts in all (at least 1).
    pub attempts: u32,
    /// Wait before the first retry.
    pub first_delay: Duration,
}

impl Default for RetryPolicy {
    /// 5 attempts: after 1, 2, 4 and 8 s (about 15 s in all, plus jitter).
    fn default() -> RetryPolicy {
        RetryPolicy {
            attempts: 5,
            first_delay: Duration::from_secs(1),
        }
    }
}

/// The longest wait between two attempts.
const MAX_DELAY: Duration = Duration::from_secs(300);

impl RetryPolicy {
    /// The wait after failed attempt `n` (1-based), jittered.
    pub fn delay(&self, n: u32) -> Duration {
        let base = self
            .first_delay
            .saturating_mul(1u32 << (n.saturating_sub(1)).min(20))
            .min(MAX_DELAY);
        base.mul_f64(0.75 + rand::random::<f64>() * 0.5)
    }
}

/// Webhook deliveries in flight: spawned so they never hold up a worker, at most
/// [`MAX_IN_FLIGHT`] sending at once.
#[derive(Debug)]
pub struct Deliveries {
    /// How failed deliveries are retried.
    pub policy: RetryPolicy,
    slots: std::sync::Arc<tokio::sync::Semaphore>,
}

/// Deliveries sending at the same time (the others wait their turn).
pub const MAX_IN_FLIGHT: usize = 16;

impl Deliveries {
    /// Deliveries retried by `policy`.
    pub fn new(policy: RetryPolicy) -> Deliveries {
        Deliveries {
            policy: RetryPolicy {
                attempts: policy.attempts.max(1),
                ..policy
            },
            slots: std::sync::Arc::new(tokio::sync::Semaphore::new(MAX_IN_FLIGHT)),
        }
    }
}

impl Default for Deliveries {
    fn default() -> Deliveries {
        Deliveries::new(RetryPolicy::default())
    }
}

/// A new webhook signing secret (shown to the tenant once, stored sealed).
pub fn new_signing_secret() -> String {
    format!("whsec_{}", crate::control::random_hex(24))
}

/// The `X-Ferry-Signature` value of `body` sent at `t` (Unix seconds):
/// `t=<t>,v1=<hex HMAC-SHA256 under the secret of "<t>.<body>">`. A receiver
/// recomputes it over the raw body and compares in constant time, and refuses old
/// `t` values to stop replays.
pub fn signature(secret: &str, t: i64, body: &[u8]) -> String {
    use hmac::{Hmac, Mac};
    let mut mac =
        Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("t={t},v1={}", hex::encode(mac.finalize().into_bytes()))
}

/// Posts `event` about `task` to its tenant's webhook, in the background: signed,
/// retried as the control's [`RetryPolicy`] says, every attempt logged (without
/// the URL's credentials or the secret), one delivery id across the attempts.
pub fn send(control: &Control, task: &TaskRow, event: &str, detail: serde_json::Value) {
    let subject = serde_json::json!({
        "id": task.id,
        "name": task.name,
        "kind": task.kind.id(),
        "state": task.state.id(),
        "reason": task.reason,
    });
    send_about(control, &task.tenant, event, subject, detail);
}

/// Posts `event` about a backup, cleanup, secondary, drill or restore task to its
/// tenant's webhook, like [`send`] (the same signing, retries and log).
pub fn send_backup(
    control: &Control,
    task: &crate::backup::db::BackupTaskRow,
    event: &str,
    detail: serde_json::Value,
) {
    let subject = serde_json::json!({
        "id": task.id,
        "cluster": task.cluster,
        "kind": task.kind,
        "state": task.state,
        "reason": task.reason,
    });
    send_about(control, &task.tenant, event, subject, detail);
}

/// Posts `event` about `subject` (the `task` member of the body) to `tenant`'s webhook.
fn send_about(
    control: &Control,
    tenant: &str,
    event: &str,
    subject: serde_json::Value,
    detail: serde_json::Value,
) {
    let body = serde_json::json!({
        "event": event,
        "task": subject,
        "detail": detail,
        "at": crate::store::rfc3339(crate::store::now_ms()),
    });
    let tenant = tenant.to_string();
    let event = event.to_string();
    let control = control.clone();
    tokio::spawn(async move {
        let Some(hook) = webhook_of(&control.store, &tenant).await else {
            return;
        };
        let secret = match control.store.webhook_secret(&tenant).await {
            Ok(Some(sealed)) => match control.secrets().open(&sealed) {
                Ok(s) => Some(s),
                Err(e) => {
                    // unsigned would let receivers that check signatures accept it
                    // only by dropping the check: not sent at all
                    tracing::error!(tenant = %tenant, "webhook not delivered: its signing secret cannot be opened ({e}); rotate it with POST /api/v1/tenants/{tenant}/webhook/secret");
                    return;
                }
            },
            Ok(None) => {
                tracing::warn!(tenant = %tenant, "the webhook has no signing secret (set before signing existed); sending unsigned — rotate it with POST /api/v1/tenants/{tenant}/webhook/secret");
                None
            }
            Err(e) => {
                tracing::warn!(tenant = %tenant, "webhook not delivered: {e}");
                return;
            }
        };
        let delivery = format!("wd_{}", crate::control::random_hex(8));
        let deliveries = control.webhook_deliveries.clone();
        let out = Outgoing {
            url: &hook.url,
            body: body.to_string().into_bytes(),
            secret: secret.as_deref(),
            delivery: &delivery,
            event: &event,
        };
        deliver(&out, &deliveries, &control.webhook_allow, &tenant).await;
    });
}

/// One webhook message, the same bytes and delivery id at every attempt.
struct Outgoing<'a> {
    url: &'a str,
    body: Vec<u8>,
    secret: Option<&'a str>,
    delivery: &'a str,
    event: &'a str,
}

/// What one attempt came to.
#[derive(Debug, PartialEq)]
enum Attempt {
    /// A 2xx answer.
    Delivered(u16),
    /// Worth another try (connection failed, 5xx, 429), after at least this long
    /// when the receiver said so (`Retry-After`).
    Retry(String, Option<Duration>),
    /// Not retried (another 4xx, a refused destination).
    Final(String),
}

/// Attempts `out` until it is delivered, refused or out of attempts.
async fn deliver(out: &Outgoing<'_>, deliveries: &Deliveries, allow: &WebhookAllow, tenant: &str) {
    let policy = deliveries.policy;
    for n in 1..=policy.attempts {
        // a slot per attempt, not across the waits: a slow receiver's retries never
        // hold up other tenants' deliveries
        let slot = deliveries.slots.clone().acquire_owned().await;
        let result = attempt(out, allow).await;
        drop(slot);
        match result {
            Attempt::Delivered(status) => {
                tracing::info!(
                    tenant,
                    delivery = out.delivery,
                    event = out.event,
                    attempt = n,
                    status,
                    "webhook delivered"
                );
                return;
            }
            Attempt::Final(why) => {
                tracing::warn!(
                    tenant,
                    delivery = out.delivery,
                    event = out.event,
                    attempt = n,
                    "webhook not delivered, not retried: {why}"
                );
                return;
            }
            Attempt::Retry(why, _) if n == policy.attempts => {
                tracing::warn!(
                    tenant,
                    delivery = out.delivery,
                    event = out.event,
                    attempt = n,
                    "webhook not delivered after {n} attempts: {why}"
                );
                return;
            }
            Attempt::Retry(why, asked) => {
                let wait = policy
                    .delay(n)
                    .max(asked.unwrap_or_default().min(MAX_DELAY));
                tracing::info!(
                    tenant,
                    delivery = out.delivery,
                    event = out.event,
                    attempt = n,
                    "webhook attempt failed: {why}; retrying in {:.1} s",
                    wait.as_secs_f64()
                );
                tokio::time::sleep(wait).await;
            }
        }
    }
}

/// One POST of `out`, after checking where it goes; no redirects are followed and
/// no proxy is used, so the request reaches the checked address only.
async fn attempt(out: &Outgoing<'_>, allow: &WebhookAllow) -> Attempt {
    let u = match url::Url::parse(out.url) {
        Ok(u) => u,
        Err(e) => return Attempt::Final(format!("the webhook URL is not a URL: {e}")),
    };
    let addr = match destination(&u, allow).await {
        Ok(a) => a,
        Err(e) => return Attempt::Final(e),
    };
    let mut client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy();
    if let Some(url::Host::Domain(d)) = u.host() {
        client = client.resolve(d, addr);
    }
    let client = match client.build() {
        Ok(c) => c,
        Err(e) => return Attempt::Final(format!("http client: {e}")),
    };
    let mut req = client
        .post(u)
        .header("content-type", "application/json")
        .header("x-ferry-delivery", out.delivery)
        .header("x-ferry-event", out.event);
    if let Some(secret) = out.secret {
        let t = chrono::Utc::now().timestamp();
        req = req.header("x-ferry-signature", signature(secret, t, &out.body));
    }
    match req.body(out.body.clone()).send().await {
        Ok(r) if r.status().is_success() => Attempt::Delivered(r.status().as_u16()),
        Ok(r) if r.status().is_server_error() || r.status().as_u16() == 429 => {
            let after = r
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            Attempt::Retry(format!("the webhook answered {}", r.status()), after)
        }
        Ok(r) => Attempt::Final(format!("the webhook answered {}", r.status())),
        // the error names the URL: without its credentials
        Err(e) => Attempt::Retry(
            ferry_core::redact::redact(&e.without_url().to_string()),
            None,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn internal_destinations_are_refused_unless_allowed() {
        let none = WebhookAllow::default();
        for never in [
            "169.254.169.254",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "::",
            "fe80::1",
            "ff02::1",
            "::ffff:169.254.169.254",
            "64:ff9b::a9fe:a9fe",
        ] {
            assert!(refused(ip(never), &none).is_some(), "{never}");
        }
        for internal in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "100.64.0.1",
            "::1",
            "fd00::1",
            "::ffff:10.0.0.1",
        ] {
            assert!(refused(ip(internal), &none).is_some(), "{internal}");
        }
        for public in ["93.184.216.34", "2606:2800:220:1::1", "172.32.0.1"] {
            assert_eq!(refused(ip(public), &none), None, "{public}");
        }
        let allow = WebhookAllow::parse("127.0.0.1, 10.0.0.0/8,fd00::/8,169.254.0.0/16").unwrap();
        assert_eq!(refused(ip("127.0.0.1"), &allow), None);
        assert_eq!(refused(ip("10.200.0.9"), &allow), None);
        assert_eq!(refused(ip("::ffff:10.0.0.1"), &allow), None);
        assert_eq!(refused(ip("fd12::1"), &allow), None);
        assert!(refused(ip("127.0.0.2"), &allow).is_some());
        assert!(refused(ip("11.0.0.1"), &none).is_none());
        assert!(refused(ip("192.168.0.1"), &allow).is_some());
        // link-local stays refused whatever the list says
        assert!(refused(ip("169.254.169.254"), &allow).is_some());
    }

    #[test]
    fn allow_lists_parse_or_say_why_not() {
        assert_eq!(WebhookAllow::parse("").unwrap(), WebhookAllow::default());
        assert!(WebhookAllow::parse("10.0.0.0/33").is_err());
        assert!(WebhookAllow::parse("intranet").is_err());
        assert!(WebhookAllow::parse("10.0.0.0/x").is_err());
        assert!(WebhookAllow::parse("10.0.0.0/12")
            .unwrap()
            .contains(ip("10.15.255.255")));
        assert!(!WebhookAllow::parse("10.0.0.0/12")
            .unwrap()
            .contains(ip("10.16.0.0")));
    }

    /// The check a send makes before connecting: internal addresses are refused
    /// without any request (nothing listens on these in a test, and nothing is sent).
    #[tokio::test]
    async fn sends_are_checked_on_the_resolved_address() {
        let none = WebhookAllow::default();
        let url = |s: &str| url::Url::parse(s).unwrap();
        for bad in [
            "http://169.254.169.254/latest/meta-data/",
            "http://10.0.0.5/hook",
            "http://[::ffff:169.254.169.254]/",
            "http://localhost:9/hook",
            "http://127.1:9/hook",
        ] {
            let e = destination(&url(bad), &none).await.unwrap_err();
            assert!(e.contains("may not reach"), "{bad}: {e}");
        }
        assert!(destination(&url("https://example.com/"), &none)
            .await
            .is_err());
        assert!(destination(&url("ftp://example.com/"), &none)
            .await
            .is_err());
        let allow = WebhookAllow::parse("127.0.0.1").unwrap();
        let a = destination(&url("http://localhost:9/hook"), &allow)
            .await
            .unwrap();
        assert_eq!(a, "127.0.0.1:9".parse().unwrap());
        let out = Outgoing {
            url: "http://169.254.169.254/",
            body: b"{}".to_vec(),
            secret: None,
            delivery: "wd_test",
            event: "test",
        };
        match attempt(&out, &allow).await {
            Attempt::Final(e) => assert!(e.contains("link-local"), "{e}"),
            other => panic!("{other:?}"),
        }
    }

    /// A refusal is one sentence: the address, why, and how to allow it.
    #[tokio::test]
    async fn refusals_say_what_why_and_how() {
        let none = WebhookAllow::default();
        let url = |s: &str| url::Url::parse(s).unwrap();
        let e = destination(&url("http://169.254.169.254/latest/"), &none)
            .await
            .unwrap_err();
        assert_eq!(
            e,
            "webhooks may not reach 169.254.169.254: it is a link-local address (where \
             cloud metadata services answer); such addresses are refused whatever the \
             allow-list says; use a public address"
        );
        let e = destination(&url("http://127.0.0.1:9/hook"), &none)
            .await
            .unwrap_err();
        assert_eq!(
            e,
            "webhooks may not reach 127.0.0.1: it is a loopback address; private and \
             loopback addresses are refused unless the server's admin allows them with \
             FERRY_WEBHOOK_ALLOW / --webhook-allow"
        );
        let e = destination(&url("http://[::1]:9/"), &none)
            .await
            .unwrap_err();
        assert!(
            e.starts_with("webhooks may not reach ::1: it is a loopback"),
            "{e}"
        );
        let e = destination(&url("http://localhost:9/"), &none)
            .await
            .unwrap_err();
        assert!(
            e.starts_with("webhooks may not reach localhost: it resolves to "),
            "{e}"
        );
        assert!(e.contains("FERRY_WEBHOOK_ALLOW"), "{e}");
        assert!(!e.contains(" is a "), "{e}");
    }

    /// The signature is the documented HMAC: a value computed independently
    /// (Python's hmac module) for a fixed secret, time and body.
    #[test]
    fn the_signature_is_hmac_sha256_of_time_dot_body() {
        assert_eq!(
            signature("whsec_test", 1700000000, br#"{"event":"x"}"#),
            "t=1700000000,v1=332db6eb98751d218da10bd89e81ba421029f17447c481788ffc4b6fa408fd56"
        );
        let d = RetryPolicy {
            attempts: 5,
            first_delay: Duration::from_secs(1),
        };
        for (n, base) in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (30, 300.0)] {
            let s = d.delay(n).as_secs_f64();
            assert!((base * 0.75..=base * 1.25).contains(&s), "{n}: {s}");
        }
    }

    #[tokio::test]
    async fn a_webhook_names_the_field_that_is_wrong() {
        let allow = WebhookAllow::parse("127.0.0.1").unwrap();
        let hook = |url: &str, lag: Option<f64>| Webhook {
            url: url.into(),
            lag_seconds: lag,
            lag_for_seconds: None,
        };
        assert_eq!(
            hook("http://127.0.0.1:9/", Some(-1.0))
                .validate(&allow)
                .await
                .unwrap_err()
                .0,
            "lag_seconds"
        );
        assert_eq!(
            hook("http://169.254.169.254/", None)
                .validate(&allow)
                .await
                .unwrap_err()
                .0,
            "url"
        );
        hook("http://127.0.0.1:9/", Some(5.0))
            .validate(&allow)
            .await
            .unwrap();
    }
}
