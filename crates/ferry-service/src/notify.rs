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

/// Posts `event` about `task` to its tenant's webhook, in the background.
pub fn send(control: &Control, task: &TaskRow, event: &str, detail: serde_json::Value) {
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
    let (store, allow) = (control.store.clone(), control.webhook_allow.clone());
    tokio::spawn(async move {
        let Some(hook) = webhook_of(&store, &tenant).await else {
            return;
        };
        if let Err(e) = post(&hook.url, &body, &allow).await {
            tracing::warn!(tenant = %tenant, "webhook not delivered: {e}");
        }
    });
}

/// POSTs `body` to `url` after checking where it goes; no redirects are followed
/// and no proxy is used, so the request reaches the checked address only.
async fn post(url: &str, body: &serde_json::Value, allow: &WebhookAllow) -> Result<(), String> {
    let u = url::Url::parse(url).map_err(|e| format!("{url:?} is not a URL: {e}"))?;
    let addr = destination(&u, allow).await?;
    let mut client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy();
    if let Some(url::Host::Domain(d)) = u.host() {
        client = client.resolve(d, addr);
    }
    let client = client.build().map_err(|e| format!("http client: {e}"))?;
    match client.post(u).json(body).send().await {
        Ok(r) if r.status().is_success() => Ok(()),
        Ok(r) => Err(format!("the webhook answered {}", r.status())),
        Err(e) => Err(e.to_string()),
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
        let e = post("http://169.254.169.254/", &serde_json::json!({}), &allow)
            .await
            .unwrap_err();
        assert!(e.contains("link-local"), "{e}");
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
