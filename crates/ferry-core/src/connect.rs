//! Why a connection could not be opened, and what fixes each reason.
//!
//! A wrong password, a server that is down, a wrong port and a missing database need
//! different fixes; one generic hint for all of them sends people to the wrong place.
//! Each connector sorts its driver's failure into one [`ConnectFailure`]; the message
//! and the hint are written here once, the same for both engines.

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
    /// The server insists on an encrypted connection.
    Tls,
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
            ConnectFailure::WrongProtocol => "not a database server of this kind",
            ConnectFailure::NoDatabase => "database does not exist",
            ConnectFailure::Dropped => "connection closed during the handshake",
            ConnectFailure::Other => "connection failed",
        }
    }

    /// How to fix it, for this endpoint.
    pub fn hint(self, ep: &Endpoint) -> String {
        let at = format!("{}:{}", ep.host, ep.port);
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
                format!(
                    "check the user ({}) and the password: in the task's URL (`ferry run` also \
                     reads FERRY_SOURCE_PASSWORD / FERRY_TARGET_PASSWORD; a service task takes \
                     it from the URL it was created with); {server_side}",
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
                "Ferry connects without TLS: let it in unencrypted ({})",
                match ep.engine {
                    Engine::Postgres => "a `host` line, not `hostssl`, in pg_hba.conf",
                    Engine::MySql =>
                        "require_secure_transport=OFF, and no REQUIRE SSL on the account",
                }
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
        assert!(hints[5].contains("not PostgreSQL"));
        assert!(hints[6].contains("CREATE DATABASE \"shop\""));
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
