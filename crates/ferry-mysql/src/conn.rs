//! Connections and error classification.

use crate::tls;
use ferry_core::tls::TlsMode;
use ferry_core::{redact::redact, Endpoint, Error, ErrorKind, Result, TableId};
use mysql_async::{prelude::Queryable, Conn, OptsBuilder};

/// A connection plus what it points at (for messages; no password).
pub struct MyConn {
    /// The connection.
    pub conn: Conn,
    /// Where it points.
    pub endpoint: Endpoint,
}

/// Connects with the session settings every Ferry connection relies on: utf8mb4,
/// UTC, strict SQL mode (an out-of-range value is an error, not a warning) and
/// `NO_AUTO_VALUE_ON_ZERO` (a copied id 0 stays 0).
pub async fn connect(ep: &Endpoint) -> Result<MyConn> {
    let mut opts = OptsBuilder::default()
        .ip_or_hostname(ep.host.clone())
        .tcp_port(ep.port)
        .user(Some(ep.user.clone()))
        .pass(ep.password.clone())
        .db_name(ep.database.clone())
        .stmt_cache_size(0)
        .prefer_socket(false)
        .tcp_keepalive(Some(std::time::Duration::from_secs(30)))
        .max_allowed_packet(Some(64 * 1024 * 1024));
    if let Some(s) = &ep.socket {
        opts = opts.socket(Some(s.clone()));
    }
    let mode = ep.tls.effective_mode();
    let ssl = tls::ssl_opts(ep)?;
    let mut conn = match attempt(opts.clone().ssl_opts(ssl.clone())).await {
        // PREFERRED: encrypt if the server can, else go on in plain text
        Err(Some(mysql_async::Error::Driver(
            mysql_async::DriverError::NoClientSslFlagFromServer,
        ))) if mode == TlsMode::Prefer => {
            tls::remember_no_tls(ep);
            attempt(opts).await
        }
        // VERIFY_CA: the chain is good (WebPKI checks it before the name) and only the
        // name differs; connect again expecting the name the certificate gives, so
        // the chain is checked again on the connection that is used
        Err(Some(e)) if mode == TlsMode::VerifyCa => match tls::presented_name(&e) {
            Some(name) => {
                let ssl = ssl.map(|s| s.with_danger_tls_hostname_override(Some(name)));
                attempt(opts.ssl_opts(ssl)).await
            }
            None => Err(Some(e)),
        },
        r => r,
    }
    .map_err(|e| match e {
        Some(e) => classify_connect(e, ep),
        None => ferry_core::connect::ConnectFailure::Timeout.error(
            ep,
            &format!("no handshake within {} s", CONNECT_TIMEOUT.as_secs()),
        ),
    })?;
    conn.query_drop(
        "SET NAMES utf8mb4, time_zone = '+00:00', \
         SESSION sql_mode = 'STRICT_ALL_TABLES,NO_AUTO_VALUE_ON_ZERO,NO_ENGINE_SUBSTITUTION,ERROR_FOR_DIVISION_BY_ZERO', \
         SESSION net_read_timeout = 3600, SESSION net_write_timeout = 3600, \
         SESSION wait_timeout = 86400, SESSION group_concat_max_len = 1048576",
    )
    .await
    .map_err(classify)?;
    Ok(MyConn {
        conn,
        endpoint: ep.clone(),
    })
}

/// One connection attempt; `Err(None)` when it timed out (the driver has no connect
/// timeout of its own: a peer that accepts and never answers would hang the task).
async fn attempt(opts: OptsBuilder) -> std::result::Result<Conn, Option<mysql_async::Error>> {
    match tokio::time::timeout(CONNECT_TIMEOUT, Conn::new(opts)).await {
        Ok(r) => r.map_err(Some),
        Err(_) => Err(None),
    }
}

/// How long a connection attempt may take (the same as for PostgreSQL).
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Turns a failed connection attempt into an error naming why (wrong password, server
/// down, not MySQL at that port, database missing, …) with that reason's fix.
pub fn classify_connect(e: mysql_async::Error, ep: &Endpoint) -> Error {
    use ferry_core::connect::{io_failure, ConnectFailure as F};
    use mysql_async::{DriverError as D, Error as E};
    let detail = redact(&match &e {
        E::Server(s) => format!("{} (error {}, SQLSTATE {})", s.message, s.code, s.state),
        other => other.to_string(),
    });
    let failure = match &e {
        E::Server(s) => match s.code {
            // access denied (password), MariaDB unix_socket/plugin denial, host not allowed
            1045 | 1698 | 1130 => F::Auth,
            1049 => F::NoDatabase,
            // ER_SECURE_TRANSPORT_REQUIRED
            3159 => F::Tls,
            _ if s.message.to_ascii_lowercase().contains("secure transport") => F::Tls,
            // too many connections, no privilege on the database, …: the server's words
            _ => return classify(e).context(format!("cannot connect to {ep}")),
        },
        E::Io(_) if tls::rustls_error(&e).is_some() => {
            let (failure, why) = tls::failure(tls::rustls_error(&e).expect("checked"));
            return failure.error(ep, &redact(&why));
        }
        E::Io(io) => match io {
            mysql_async::IoError::Io(io) => io_failure(io),
            #[allow(unreachable_patterns)]
            _ => F::TlsHandshake,
        },
        E::Driver(D::NoClientSslFlagFromServer) => F::TlsUnsupported,
        E::Driver(D::NoKeyFound) => {
            return Error::definite(format!(
                "cannot connect to {ep}: the ssl-key file holds no private key"
            ))
            .with_hint("ssl-key must be a PEM private key (PKCS#8, PKCS#1 or SEC1)")
        }
        E::Driver(D::ConnectionClosed) => F::Dropped,
        E::Driver(
            D::UnexpectedPacket { .. }
            | D::PacketOutOfOrder
            | D::PacketTooLarge
            | D::CantParseServerVersion { .. }
            | D::BadCompressedPacketHeader,
        ) => F::WrongProtocol,
        E::Driver(D::UnknownAuthPlugin { .. } | D::MysqlOldPasswordDisabled) => F::Auth,
        E::Url(_) => return classify(e),
        _ => F::Other,
    };
    failure.error(ep, &detail)
}

/// Server error codes worth retrying: lock wait timeout, deadlock, too many
/// connections, shutdown in progress, connection killed, server gone.
const TRANSIENT: &[u16] = &[
    1205, 1213, 1040, 1053, 1927, 2006, 2013, 1152, 1158, 1159, 1160, 1161,
];

/// Turns a driver error into a classified Ferry error.
pub fn classify(e: mysql_async::Error) -> Error {
    match e {
        mysql_async::Error::Server(s) => {
            let msg = redact(&format!(
                "{} (error {}, SQLSTATE {})",
                s.message, s.code, s.state
            ));
            let err = if TRANSIENT.contains(&s.code) {
                Error::transient(msg)
            } else {
                Error::definite(msg)
            };
            match s.code {
                1044 | 1045 | 1142 | 1227 => err.with_kind(ErrorKind::NoPrivilege).with_hint(
                    "grant the Ferry user the privilege named above (see `ferry check`)",
                ),
                // table exists, duplicate key name, multiple primary key, duplicate
                // foreign key constraint name
                1050 | 1061 | 1068 | 1826 => err.with_kind(ErrorKind::AlreadyExists),
                1148 | 3948 | 4166 => err
                    .with_hint("enable LOAD DATA LOCAL on the target: SET GLOBAL local_infile = 1"),
                _ => err,
            }
        }
        mysql_async::Error::Url(u) => Error::definite(redact(&u.to_string())),
        other => Error::transient(redact(&other.to_string())),
    }
}

/// Quotes an identifier with backticks.
pub fn quote_ident(s: &str) -> String {
    format!("`{}`", s.replace('`', "``"))
}

/// Quotes a string literal (backslashes escaped for the default SQL mode).
pub fn quote_literal(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "''"))
}

/// `` `db`.`table` ``.
pub fn qualified(t: &TableId) -> String {
    format!("{}.{}", quote_ident(&t.schema), quote_ident(&t.name))
}

impl MyConn {
    /// Runs statements, no results.
    pub async fn exec(&mut self, sql: &str) -> Result<()> {
        self.conn.query_drop(sql).await.map_err(classify)
    }

    /// Runs statements; returns how many rows each one matched, in order. An UPDATE
    /// counts the rows it *matched* (the server's affected count leaves out rows
    /// whose values were already the new ones), so a statement that found its row
    /// never reads as one that did not.
    pub async fn exec_counts(&mut self, sql: &str) -> Result<Vec<u64>> {
        let mut result = self.conn.query_iter(sql).await.map_err(classify)?;
        let mut counts = Vec::new();
        loop {
            counts.push(matched_rows(&result.info(), result.affected_rows()));
            if result.is_empty() {
                break;
            }
            // consumes this result set and steps to the next one
            let _: Vec<mysql_async::Row> = result.collect().await.map_err(classify)?;
        }
        Ok(counts)
    }

    /// Runs a query and returns every cell as optional text.
    pub async fn query_text(&mut self, sql: &str) -> Result<Vec<Vec<Option<String>>>> {
        let rows: Vec<mysql_async::Row> = self.conn.query(sql).await.map_err(classify)?;
        Ok(rows
            .into_iter()
            .map(|r| {
                r.unwrap_raw()
                    .into_iter()
                    .map(|v| match v {
                        Some(mysql_async::Value::Bytes(b)) => {
                            Some(String::from_utf8_lossy(&b).into_owned())
                        }
                        Some(mysql_async::Value::NULL) | None => None,
                        Some(other) => Some(other.as_sql(true).trim_matches('\'').to_string()),
                    })
                    .collect()
            })
            .collect())
    }
}

/// Connects to `ep`'s server without selecting its database (to see whether the
/// database exists, or to create it).
pub async fn connect_server(ep: &Endpoint) -> Result<MyConn> {
    let mut server = ep.clone();
    server.database = None;
    let mut c = connect(&server).await?;
    c.endpoint = ep.clone();
    Ok(c)
}

/// Whether database `db` exists on the server.
pub async fn database_exists(conn: &mut MyConn, db: &str) -> Result<bool> {
    let rows = conn
        .query_text(&format!(
            "SELECT 1 FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = {}",
            quote_literal(db)
        ))
        .await?;
    Ok(!rows.is_empty())
}

/// The default character set and collation of database `db`, if it exists.
pub async fn database_charset(conn: &mut MyConn, db: &str) -> Result<Option<(String, String)>> {
    let rows = conn
        .query_text(&format!(
            "SELECT DEFAULT_CHARACTER_SET_NAME, DEFAULT_COLLATION_NAME \
             FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = {}",
            quote_literal(db)
        ))
        .await?;
    Ok(rows.into_iter().next().map(|r| {
        (
            r.first().cloned().flatten().unwrap_or_default(),
            r.get(1).cloned().flatten().unwrap_or_default(),
        )
    }))
}

/// Creates the database `ep` names when it does not exist yet, with `charset` (and
/// `collation`, else the charset's default): a target URL may name a database Ferry
/// is to create, as it creates the PostgreSQL schemas it needs. Returns whether it
/// created it.
pub async fn ensure_database(
    ep: &Endpoint,
    charset: &str,
    collation: Option<&str>,
) -> Result<bool> {
    let Some(db) = ep.database.as_deref() else {
        return Ok(false);
    };
    let mut c = connect_server(ep).await?;
    if database_exists(&mut c, db).await? {
        return Ok(false);
    }
    let mut sql = format!(
        "CREATE DATABASE IF NOT EXISTS {} CHARACTER SET {}",
        quote_ident(db),
        quote_ident(charset)
    );
    if let Some(coll) = collation.filter(|c| !c.is_empty()) {
        sql.push_str(&format!(" COLLATE {}", quote_ident(coll)));
    }
    c.exec(&sql).await.map_err(|e| {
        e.context(format!("creating the target database {db}"))
            .with_hint(
                "grant the Ferry user CREATE on the target server, or create the database yourself",
            )
    })?;
    Ok(true)
}

/// Rows a statement matched: an UPDATE's info text says `Rows matched: N  Changed: M
/// Warnings: W`; other statements report what they affected.
fn matched_rows(info: &str, affected: u64) -> u64 {
    info.strip_prefix("Rows matched:")
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(affected)
}

#[cfg(test)]
mod tests {
    #[test]
    fn matched_rows_of_an_update() {
        assert_eq!(
            super::matched_rows("Rows matched: 1  Changed: 0  Warnings: 0", 0),
            1
        );
        assert_eq!(super::matched_rows("", 3), 3);
        assert_eq!(
            super::matched_rows("Records: 2  Duplicates: 0  Warnings: 0", 2),
            2
        );
    }
}
