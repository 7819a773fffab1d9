//! Why a connection could not be opened, and what fixes each reason.
//!
//! A wrong password, a server that is down, a wrong port and a missing database need
//! different fixes; one generic hint for all of them sends people to the wrong place.
//! Each connector sorts its driver's failure into one [`ConnectFailure`]; the message
//! and the hint are written here once, the same for both engines.

use crate::tls::{RootCerts, TlsMode, TlsParam};
use crate::{Endpoint, Engine, Error};

/// Why a connection attempt failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectFailure {
    /// The server refused the user or password (or, PostgreSQL, no `pg_hba.conf` line
    /// lets this user in from here).
    Auth,
    /// Nothing listens at host:port.
    Refused,
    /// No answer in time.
    Timeout,
    /// The host name does not resolve.
    Dns,
    /// The server insists on an encrypted connection and the URL disables TLS.
    Tls,
    /// The URL insists on TLS and the server does not offer it.
    TlsUnsupported,
    /// The server's certificate does not chain to a trusted CA.
    CertUntrusted,
    /// The server's certificate is trusted but names another host (verify-full /
    /// VERIFY_IDENTITY).
    CertName,
    /// The TLS handshake failed for another reason (protocol versions, a client
    /// certificate the server refused, …).
    TlsHandshake,
    /// Something answered, but not the database the URL's scheme names.
    WrongProtocol,
    /// The URL's database does not exist on the server.
    NoDatabase,
    /// The server closed the connection during the handshake (starting, stopping,
    /// too many connections).
    Dropped,
    /// Anything else.
    Other,
}

impl ConnectFailure {
    /// Whether retrying may help: a server that is down or restarting comes back; a
    /// wrong password or a wrong port does not fix itself.
    pub fn transient(self) -> bool {
        matches!(
            self,
            ConnectFailure::Refused
                | ConnectFailure::Timeout
                | ConnectFailure::Dns
                | ConnectFailure::Dropped
                | ConnectFailure::Other
        )
    }

    /// A few words naming the failure.
    pub fn title(self) -> &'static str {
        match self {
            ConnectFailure::Auth => "authentication failed",
            ConnectFailure::Refused => "connection refused",
            ConnectFailure::Timeout => "no answer",
            ConnectFailure::Dns => "host name not found",
            ConnectFailure::Tls => "the server requires TLS",
            ConnectFailure::TlsUnsupported => "the server does not accept TLS",
            ConnectFailure::CertUntrusted => "the server's certificate is not trusted",
            ConnectFailure::CertName => "the server's certificate is for another host",
            ConnectFailure::TlsHandshake => "the TLS handshake failed",
            ConnectFailure::WrongProtocol => "not a database server of this kind",
            ConnectFailure::NoDatabase => "database does not exist",
            ConnectFailure::Dropped => "connection closed during the handshake",
            ConnectFailure::Other => "connection failed",
        }
    }

    /// How to fix it, for this endpoint.
    pub fn hint(self, ep: &Endpoint) -> String {
        let at = format!("{}:{}", ep.host, ep.port);
        let mode = TlsParam::Mode.name(ep.engine);
        let ca = TlsParam::RootCert.name(ep.engine);
        let (engine, port) = match ep.engine {
            Engine::Postgres => ("PostgreSQL", 5432),
            Engine::MySql => ("MySQL/MariaDB", 3306),
        };
        match self {
            ConnectFailure::Auth => {
                let server_side = match ep.engine {
                    Engine::Postgres => format!(
                        "pg_hba.conf must also let user {} in from this host with a password method",
                        ep.user
                    ),
                    Engine::MySql => format!(
                        "the account must exist for this client's host ('{}'@'%' or '{}'@'<this host>')",
                        ep.user, ep.user
                    ),
                };
                let tls = if ep.engine == Engine::MySql && ep.tls.mode == TlsMode::Disable {
                    "; MariaDB refuses an unencrypted connection the same way when the \
                     account has REQUIRE SSL or the server require_secure_transport=ON: \
                     drop ssl-mode=DISABLED"
                } else {
                    ""
                };
                format!(
                    "check the user ({}) and the password: in the task's URL (`ferry run` also \
                     reads FERRY_SOURCE_PASSWORD / FERRY_TARGET_PASSWORD; a service task takes \
                     it from the URL it was created with); {server_side}{tls}",
                    ep.user
                )
            }
            ConnectFailure::Refused => format!(
                "nothing accepts connections at {at}: is the {engine} server running, and \
                 are the host and port right? (the server must also listen on that address: \
                 {})",
                match ep.engine {
                    Engine::Postgres => "listen_addresses, port",
                    Engine::MySql => "bind_address, port",
                }
            ),
            ConnectFailure::Timeout => format!(
                "{at} did not answer: check the host and port, and that no firewall drops \
                 traffic between this machine and the server"
            ),
            ConnectFailure::Dns => format!(
                "the host name {} cannot be resolved: check its spelling, or use an IP address",
                ep.host
            ),
            ConnectFailure::Tls => format!(
                "the URL says {mode}={off}: connect with TLS ({mode}={full} and {ca}=<the \
                 server's CA file>, or {mode}={prefer}), or let the server accept \
                 unencrypted connections ({server})",
                off = TlsMode::Disable.word(ep.engine),
                full = TlsMode::VerifyFull.word(ep.engine),
                prefer = TlsMode::Prefer.word(ep.engine),
                server = match ep.engine {
                    Engine::Postgres => "a `host` line, not `hostssl`, in pg_hba.conf",
                    Engine::MySql =>
                        "require_secure_transport=OFF, and no REQUIRE SSL on the account",
                }
            ),
            ConnectFailure::TlsUnsupported => format!(
                "the URL says {mode}={word}, which needs TLS: use {mode}={prefer} or \
                 {mode}={off}, or enable TLS on the server ({server})",
                word = ep.tls.mode.word(ep.engine),
                prefer = TlsMode::Prefer.word(ep.engine),
                off = TlsMode::Disable.word(ep.engine),
                server = match ep.engine {
                    Engine::Postgres => "ssl = on with ssl_cert_file and ssl_key_file",
                    Engine::MySql => "ssl_cert and ssl_key in the server's configuration",
                }
            ),
            ConnectFailure::CertUntrusted => match &ep.tls.root_cert {
                Some(RootCerts::File(f)) => format!(
                    "the certificate of {at} is not signed by a CA in {ca}={}: give the CA \
                     file that signed the server's certificate, or use {mode}={req} to \
                     encrypt without checking it",
                    f.display(),
                    req = TlsMode::Require.word(ep.engine),
                ),
                Some(RootCerts::System) => format!(
                    "the certificate of {at} is not signed by a public CA: pass the server's \
                     CA file as {ca}=<file>"
                ),
                None => format!(
                    "pass the CA file that signed the server's certificate as {ca}=<file> \
                     (or use {mode}={req} to encrypt without checking the certificate)",
                    req = TlsMode::Require.word(ep.engine),
                ),
            },
            ConnectFailure::CertName => format!(
                "the certificate is trusted but does not name {host} (the names it is for \
                 are above): connect by a name the certificate lists, have the server's \
                 certificate issued for {host}, or use {mode}={ca_mode} to check the chain \
                 only",
                host = ep.host,
                ca_mode = TlsMode::VerifyCa.word(ep.engine),
            ),
            ConnectFailure::TlsHandshake => format!(
                "the TLS handshake with {at} failed (see the reason above): check the \
                 client certificate and key ({cert}, {key}) if the server asks for one, and \
                 that the server allows TLS 1.2 or 1.3",
                cert = TlsParam::Cert.name(ep.engine),
                key = TlsParam::Key.name(ep.engine),
            ),
            ConnectFailure::WrongProtocol => format!(
                "something at {at} answered, but it is not {engine}: check the port ({engine} \
                 usually listens on {port}) and the URL's scheme"
            ),
            ConnectFailure::NoDatabase => format!(
                "create the database ({}) or name an existing one in the URL",
                match ep.engine {
                    Engine::Postgres => format!(
                        "CREATE DATABASE \"{}\"",
                        ep.database.as_deref().unwrap_or_default()
                    ),
                    Engine::MySql => format!(
                        "CREATE DATABASE `{}`",
                        ep.database.as_deref().unwrap_or_default()
                    ),
                }
            ),
            ConnectFailure::Dropped => format!(
                "the server at {at} closed the connection: it may be starting, stopping or \
                 out of connections; see its log"
            ),
            ConnectFailure::Other => format!("check that the {engine} server at {at} is reachable"),
        }
    }

    /// The classified error: `cannot connect to <endpoint>: <title>: <detail>`, with the
    /// hint. `detail` is the driver's own words (already without secrets).
    pub fn error(self, ep: &Endpoint, detail: &str) -> Error {
        let message = format!(
            "cannot connect to {ep}: {}: {}",
            self.title(),
            tidy_detail(detail)
        );
        let err = if self.transient() {
            Error::transient(message)
        } else {
            Error::definite(message)
        };
        err.with_hint(self.hint(ep))
    }
}

/// The driver's words without what says nothing: drivers wrap a socket error in
/// layers (`Input/output error: Input/output error: Connection refused (os error
/// 111)`); the generic and repeated layers go, the specific one stays.
fn tidy_detail(detail: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for p in detail.split(": ").map(str::trim) {
        if parts.last() != Some(&p) {
            parts.push(p);
        }
    }
    let generic = |p: &&str| {
        let l = p.to_ascii_lowercase();
        l == "input/output error" || l == "io error" || l == "i/o error" || l == "error"
    };
    if parts.iter().any(|p| !generic(p)) {
        parts.retain(|p| !generic(p));
    }
    parts.join(": ")
}

/// Sorts an I/O error of a connection attempt (the engines' drivers both surface the
/// socket's errors).
pub fn io_failure(e: &std::io::Error) -> ConnectFailure {
    use std::io::ErrorKind::*;
    let text = e.to_string();
    match e.kind() {
        ConnectionRefused => ConnectFailure::Refused,
        TimedOut | WouldBlock => ConnectFailure::Timeout,
        ConnectionReset | ConnectionAborted | BrokenPipe | UnexpectedEof => ConnectFailure::Dropped,
        _ if looks_like_dns(&text) => ConnectFailure::Dns,
        // a framing or parse error of the handshake ("bytes remaining on stream",
        // "packet is larger than max_allowed_packet", "unknown message tag"): the peer
        // sent bytes that are not this protocol's messages
        InvalidData | InvalidInput | Other => ConnectFailure::WrongProtocol,
        _ => ConnectFailure::Other,
    }
}

/// The resolver's words for "no such host" (glibc, musl, macOS).
pub fn looks_like_dns(text: &str) -> bool {
    let t = text.to_ascii_lowercase();
    t.contains("failed to lookup address")
        || t.contains("name or service not known")
        || t.contains("nodename nor servname")
        || t.contains("no address associated")
        || t.contains("temporary failure in name resolution")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ep(url: &str) -> Endpoint {
        Endpoint::parse(url, "FERRY_TEST_UNSET_PASSWORD").unwrap()
    }

    #[test]
    fn each_failure_has_its_own_fix() {
        let pg = ep("postgres://app@db.example:6432/shop");
        let hints: Vec<String> = [
            ConnectFailure::Auth,
            ConnectFailure::Refused,
            ConnectFailure::Timeout,
            ConnectFailure::Dns,
            ConnectFailure::Tls,
            ConnectFailure::TlsUnsupported,
            ConnectFailure::CertUntrusted,
            ConnectFailure::CertName,
            ConnectFailure::TlsHandshake,
            ConnectFailure::WrongProtocol,
            ConnectFailure::NoDatabase,
            ConnectFailure::Dropped,
        ]
        .iter()
        .map(|f| f.hint(&pg))
        .collect();
        for (i, h) in hints.iter().enumerate() {
            assert!(!h.contains("grant"), "{h}");
            assert!(hints[i + 1..].iter().all(|o| o != h), "{h} repeated");
        }
        assert!(hints[0].contains("FERRY_SOURCE_PASSWORD") && hints[0].contains("pg_hba"));
        assert!(hints[1].contains("db.example:6432") && hints[1].contains("running"));
        assert!(hints[4].contains("sslmode=disable") && hints[4].contains("hostssl"));
        assert!(hints[5].contains("sslmode=prefer") && hints[5].contains("ssl = on"));
        assert!(hints[6].contains("sslrootcert=<file>"));
        assert!(hints[7].contains("db.example") && hints[7].contains("verify-ca"));
        assert!(hints[9].contains("not PostgreSQL"));
        assert!(hints[10].contains("CREATE DATABASE \"shop\""));
        let my = ep("mysql://app@db.example:3306/shop?ssl-mode=verify_identity&ssl-ca=/etc/ca.pem");
        let h = ConnectFailure::CertUntrusted.hint(&my);
        assert!(
            h.contains("ssl-ca=/etc/ca.pem") && h.contains("ssl-mode=REQUIRED"),
            "{h}"
        );
        let h = ConnectFailure::TlsUnsupported.hint(&my);
        assert!(
            h.contains("ssl-mode=VERIFY_IDENTITY") && h.contains("ssl-mode=PREFERRED"),
            "{h}"
        );
    }

    #[test]
    fn only_what_can_heal_is_retried() {
        assert!(ConnectFailure::Refused.transient());
        assert!(!ConnectFailure::Auth.transient());
        assert!(!ConnectFailure::WrongProtocol.transient());
        let e = ConnectFailure::Auth.error(&ep("mysql://root@127.0.0.1:3306/x"), "denied");
        assert!(!e.is_transient());
        assert!(
            e.message.starts_with(
                "cannot connect to mysql://root@127.0.0.1:3306/x: authentication failed: denied"
            ),
            "{}",
            e.message
        );
    }

    #[test]
    fn driver_detail_loses_its_empty_layers() {
        assert_eq!(
            tidy_detail(
                "Input/output error: Input/output error: Connection refused (os error 111)"
            ),
            "Connection refused (os error 111)"
        );
        assert_eq!(tidy_detail("Input/output error"), "Input/output error");
        assert_eq!(
            tidy_detail("db error: FATAL: password authentication failed for user \"x\""),
            "db error: FATAL: password authentication failed for user \"x\""
        );
    }

    #[test]
    fn io_errors_are_sorted() {
        use std::io::{Error, ErrorKind};
        assert_eq!(
            io_failure(&Error::from(ErrorKind::ConnectionRefused)),
            ConnectFailure::Refused
        );
        assert_eq!(
            io_failure(&Error::other("bytes remaining on stream")),
            ConnectFailure::WrongProtocol
        );
        assert_eq!(
            io_failure(&Error::other(
                "failed to lookup address information: Name or service not known"
            )),
            ConnectFailure::Dns
        );
    }
}
