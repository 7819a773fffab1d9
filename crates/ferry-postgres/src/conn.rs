//! Connections and error classification.

use ferry_core::tls::TlsMode;
use ferry_core::{redact::redact, Endpoint, Error, ErrorKind, Result};
use tokio_postgres::config::SslMode;
use tokio_postgres::{error::SqlState, Client, Config, NoTls};

/// A connected client; the connection task runs in the background.
pub struct PgConn {
    /// The client.
    pub client: Client,
    /// What we connected to (for messages; no password).
    pub endpoint: Endpoint,
}

/// Connects and sets the session up for exact, predictable text output.
pub async fn connect(ep: &Endpoint) -> Result<PgConn> {
    let mut cfg = Config::new();
    match &ep.socket {
        Some(s) => cfg.host_path(s),
        None => cfg.host(&ep.host),
    };
    cfg.port(ep.port)
        .user(&ep.user)
        .dbname(ep.database.as_deref().unwrap_or("postgres"))
        .application_name("ferry")
        .connect_timeout(std::time::Duration::from_secs(10))
        .keepalives_idle(std::time::Duration::from_secs(30));
    if let Some(p) = &ep.password {
        cfg.password(p);
    }
    // libpq's sslmode: tokio-postgres speaks prefer/require itself; verify-ca and
    // verify-full are require with a checking verifier (crate::tls)
    let tls = crate::tls::client_config(ep)?;
    cfg.ssl_mode(match ep.tls.mode {
        _ if tls.is_none() => SslMode::Disable,
        TlsMode::Disable => SslMode::Disable,
        TlsMode::Prefer => SslMode::Prefer,
        _ => SslMode::Require,
    });
    // connect_timeout covers the socket only: a peer that accepts and never answers
    // would hang the handshake
    let client = match tls {
        None => start(cfg.connect(NoTls), ep).await?,
        Some(config) => start(cfg.connect(crate::tls::MakeRustls::new(config)), ep).await?,
    };
    client
        .batch_execute(
            "SET DateStyle = 'ISO, YMD'; SET IntervalStyle = 'postgres'; \
             SET extra_float_digits = 3; SET bytea_output = 'hex'; SET TimeZone = 'UTC'; \
             SET client_encoding = 'UTF8'; SET statement_timeout = 0; SET client_min_messages = warning; \
             SET idle_in_transaction_session_timeout = 0; \
             SET default_transaction_read_only = off",
        )
        .await
        .map_err(classify)?;
    Ok(PgConn {
        client,
        endpoint: ep.clone(),
    })
}

/// Awaits a connection attempt (within the handshake deadline) and runs its
/// connection task in the background.
async fn start<S, T>(
    attempt: impl std::future::Future<
        Output = std::result::Result<
            (Client, tokio_postgres::Connection<S, T>),
            tokio_postgres::Error,
        >,
    >,
    ep: &Endpoint,
) -> Result<Client>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (client, connection) = match tokio::time::timeout(HANDSHAKE_TIMEOUT, attempt).await {
        Ok(r) => r.map_err(|e| classify_connect(e, ep))?,
        Err(_) => {
            return Err(ferry_core::connect::ConnectFailure::Timeout.error(
                ep,
                &format!("no handshake within {} s", HANDSHAKE_TIMEOUT.as_secs()),
            ))
        }
    };
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!("postgres connection closed: {}", redact(&e.to_string()));
        }
    });
    Ok(client)
}

/// How long connecting, including the server's answer to the startup, may take.
const HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Turns a failed connection attempt into an error naming why (wrong password, server
/// down, not PostgreSQL at that port, database missing, …) with that reason's fix.
pub fn classify_connect(e: tokio_postgres::Error, ep: &Endpoint) -> Error {
    use ferry_core::connect::{io_failure, looks_like_dns, ConnectFailure as F};
    let source = std::error::Error::source(&e);
    let detail = redact(&match (e.as_db_error(), source) {
        // the server's own words ("no pg_hba.conf entry … no encryption"), not the
        // driver's bare "db error"
        (Some(db), _) => format!("{}: {}", db.severity(), db.message()),
        (None, Some(s)) => format!("{e}: {s}"),
        (None, None) => e.to_string(),
    });
    let failure = if let Some(db) = e.as_db_error() {
        let code = db.code();
        let text = db.message().to_ascii_lowercase();
        if *code == SqlState::INVALID_PASSWORD {
            F::Auth
        } else if *code == SqlState::INVALID_AUTHORIZATION_SPECIFICATION {
            // pg_hba.conf: "no pg_hba.conf entry for host …, no encryption" when only
            // hostssl lines would let this user in
            if text.contains("no encryption") || text.contains("ssl") {
                F::Tls
            } else {
                F::Auth
            }
        } else if *code == SqlState::INVALID_CATALOG_NAME {
            F::NoDatabase
        } else {
            // too many connections, starting up, shutting down, …: the server's own words
            return classify(e).context(format!("cannot connect to {ep}"));
        }
    } else if let Some((tls, why)) = source.and_then(crate::tls::tls_failure) {
        return tls.error(ep, &redact(&why));
    } else if e.to_string().starts_with("error performing TLS handshake")
        && detail.contains("server does not support TLS")
    {
        F::TlsUnsupported
    } else if let Some(io) = source.and_then(|s| s.downcast_ref::<std::io::Error>()) {
        io_failure(io)
    } else {
        // the kind's words; the cause (e.g. "password missing") is in `detail`
        let text = e.to_string();
        if text.starts_with("unexpected message") || text.starts_with("error parsing") {
            F::WrongProtocol
        } else if e.is_closed() {
            F::Dropped
        } else if detail.contains("password missing") || text.starts_with("authentication") {
            F::Auth
        } else if text.starts_with("timeout") {
            F::Timeout
        } else if looks_like_dns(&detail) {
            F::Dns
        } else {
            F::Other
        }
    };
    failure.error(ep, &detail)
}

/// Turns a driver error into a classified Ferry error.
pub fn classify(e: tokio_postgres::Error) -> Error {
    if let Some(db) = e.as_db_error() {
        let code = db.code();
        let mut msg = format!("{} (SQLSTATE {})", db.message(), code.code());
        if let Some(d) = db.detail() {
            msg.push_str(&format!("; detail: {d}"));
        }
        let transient = code.code().starts_with("08")
            || [
                SqlState::T_R_SERIALIZATION_FAILURE,
                SqlState::T_R_DEADLOCK_DETECTED,
                SqlState::LOCK_NOT_AVAILABLE,
                SqlState::ADMIN_SHUTDOWN,
                SqlState::CRASH_SHUTDOWN,
                SqlState::CANNOT_CONNECT_NOW,
                SqlState::TOO_MANY_CONNECTIONS,
            ]
            .contains(code);
        // class 53: out of disk space, memory or connections — the server recovers
        // once it has room again
        let short = code.code().starts_with("53");
        let err = if transient || short {
            Error::transient(redact(&msg))
        } else {
            Error::definite(redact(&msg))
        };
        if short && db.hint().is_none() {
            return err.with_hint(
                "the server is short of disk space, memory or connections: free some (for \
                 a full disk, the filesystem of its data directory); Ferry retries meanwhile",
            );
        }
        let err = match db.hint() {
            Some(h) => err.with_hint(h),
            None => err,
        };
        if *code == SqlState::INSUFFICIENT_PRIVILEGE {
            return err
                .with_kind(ErrorKind::NoPrivilege)
                .with_hint("grant the Ferry user the privilege named above (see `ferry check`)");
        }
        // 42P16 covers every invalid table definition; of those only a second
        // primary key means "already there" (the server has no finer code)
        let second_key = *code == SqlState::INVALID_TABLE_DEFINITION
            && db.message().starts_with("multiple primary keys");
        if second_key
            || [
                SqlState::DUPLICATE_TABLE,
                SqlState::DUPLICATE_OBJECT,
                SqlState::DUPLICATE_SCHEMA,
            ]
            .contains(code)
        {
            return err.with_kind(ErrorKind::AlreadyExists);
        }
        return err;
    }
    // no server error: connection closed, I/O, timeout — worth retrying
    let text = redact(&e.to_string());
    let source = std::error::Error::source(&e)
        .map(|s| format!(": {s}"))
        .unwrap_or_default();
    Error::transient(format!("{text}{}", redact(&source)))
}

/// Quotes an identifier for PostgreSQL (`"Mixed ""Case"""`).
pub fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// Quotes a string literal for PostgreSQL (`E'…'` free form: standard strings on).
pub fn quote_literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// `"schema"."table"`.
pub fn qualified(t: &ferry_core::TableId) -> String {
    format!("{}.{}", quote_ident(&t.schema), quote_ident(&t.name))
}
