//! A PostgreSQL *replication* connection (`replication=database`), spoken directly on
//! the wire: `tokio-postgres` cannot open one. It creates the task's slot with an
//! exported snapshot (the full copy reads exactly the state the slot starts after),
//! streams `pgoutput` with `START_REPLICATION`, and sends standby status updates.
//!
//! Every read has a deadline: the session asks the server for keepalives every few
//! seconds (`wal_sender_timeout`), so a link that stops delivering anything is a
//! stalled link, reported as a transient error rather than waited on forever.

use bytes::{Buf, BufMut, BytesMut};
use ferry_core::{Endpoint, Error, Result};
use postgres_protocol::authentication::sasl::{ChannelBinding, ScramSha256};
use postgres_protocol::message::frontend;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Server silence longer than this on a streaming connection means the link stalled.
/// The server is asked to ping every `WAL_SENDER_TIMEOUT / 2`.
pub const STALL_TIMEOUT: Duration = Duration::from_secs(15);
const WAL_SENDER_TIMEOUT: &str = "10s";
const IO_TIMEOUT: Duration = Duration::from_secs(30);

/// Microseconds between the Unix epoch and PostgreSQL's (2000-01-01).
pub const PG_EPOCH_OFFSET_US: i64 = 946_684_800_000_000;

/// One message of the replication stream.
#[derive(Debug)]
pub enum StreamMessage {
    /// WAL data: a `pgoutput` message starting at `start`.
    XLogData {
        /// WAL position of this message.
        start: u64,
        /// Server's current WAL end.
        wal_end: u64,
        /// The `pgoutput` message.
        data: bytes::Bytes,
    },
    /// A keepalive: the server has sent everything up to `wal_end`.
    Keepalive {
        /// Server's WAL end.
        wal_end: u64,
        /// The server wants a status update now.
        reply: bool,
    },
}

/// An open replication connection.
pub struct ReplConn {
    stream: crate::tls::MaybeTls,
    buf: BytesMut,
    out: BytesMut,
    endpoint: String,
    /// When the server last sent anything: a stream read fails once this is
    /// [`STALL_TIMEOUT`] ago, however often the read is interrupted and restarted.
    last_rx: std::time::Instant,
}

fn io_err(what: &str, e: impl std::fmt::Display) -> Error {
    Error::transient(format!("replication connection: {what}: {e}"))
}

impl ReplConn {
    /// Opens a replication connection to `ep`'s database.
    pub async fn connect(ep: &Endpoint) -> Result<ReplConn> {
        ReplConn::connect_mode(ep, "database").await
    }

    /// Opens a *physical* replication connection (`replication=true`): base
    /// backups and WAL streaming from a physical slot ([`crate::physical`]).
    pub async fn connect_physical(ep: &Endpoint) -> Result<ReplConn> {
        ReplConn::connect_mode(ep, "true").await
    }

    async fn connect_mode(ep: &Endpoint, mode: &str) -> Result<ReplConn> {
        if ep.socket.is_some() {
            return Err(Error::definite(
                "incremental replication from PostgreSQL needs a TCP host in the source URL",
            )
            .with_hint("use host=127.0.0.1 instead of a socket path"));
        }
        let addr = format!("{}:{}", ep.host, ep.port);
        let stream = tokio::time::timeout(Duration::from_secs(10), TcpStream::connect(&addr))
            .await
            .map_err(|_| Error::transient(format!("cannot connect to {ep}: timed out")))?
            .map_err(|e| Error::transient(format!("cannot connect to {ep}: {e}")))?;
        let _ = stream.set_nodelay(true);
        // sslmode as for every other connection: SSLRequest, then TLS (or plain
        // under prefer when the server says no)
        let stream = crate::tls::negotiate(stream, ep).await?;
        let mut c = ReplConn {
            stream,
            buf: BytesMut::with_capacity(64 * 1024),
            out: BytesMut::new(),
            endpoint: ep.to_string(),
            last_rx: std::time::Instant::now(),
        };
        let db = ep.database.clone().unwrap_or_else(|| "postgres".into());
        let options = format!(
            "-c wal_sender_timeout={WAL_SENDER_TIMEOUT} -c DateStyle=ISO,YMD -c IntervalStyle=postgres \
             -c extra_float_digits=3 -c bytea_output=hex -c TimeZone=UTC"
        );
        let params = [
            ("user", ep.user.as_str()),
            ("database", db.as_str()),
            ("replication", mode),
            ("application_name", "ferry"),
            ("client_encoding", "UTF8"),
            ("options", options.as_str()),
        ];
        frontend::startup_message(params.iter().copied(), &mut c.out)
            .map_err(|e| io_err("startup", e))?;
        c.flush().await?;
        c.authenticate(ep).await?;
        Ok(c)
    }

    /// Whether the connection is encrypted (TLS).
    pub fn is_encrypted(&self) -> bool {
        self.stream.is_encrypted()
    }

    pub(crate) async fn flush(&mut self) -> Result<()> {
        let out = self.out.split();
        // a TLS stream buffers what it encrypts: flush sends it
        let stream = &mut self.stream;
        let write = async move {
            stream.write_all(&out).await?;
            stream.flush().await
        };
        tokio::time::timeout(IO_TIMEOUT, write)
            .await
            .map_err(|_| io_err("write", "timed out"))?
            .map_err(|e| io_err("write", e))
    }

    /// Reads one backend message (tag, body), waiting at most `wait` from now.
    pub(crate) async fn read(&mut self, wait: Duration) -> Result<(u8, BytesMut)> {
        self.last_rx = std::time::Instant::now();
        self.read_until(wait).await
    }

    /// Reads one backend message; fails once the server has been silent for `wait`.
    pub(crate) async fn read_until(&mut self, wait: Duration) -> Result<(u8, BytesMut)> {
        loop {
            if self.buf.len() >= 5 {
                let len = u32::from_be_bytes([self.buf[1], self.buf[2], self.buf[3], self.buf[4]])
                    as usize;
                if self.buf.len() > len {
                    let mut msg = self.buf.split_to(len + 1);
                    let tag = msg[0];
                    msg.advance(5);
                    return Ok((tag, msg));
                }
                self.buf.reserve(len + 1 - self.buf.len());
            }
            let left = wait.saturating_sub(self.last_rx.elapsed());
            let n = tokio::time::timeout(left, self.stream.read_buf(&mut self.buf))
                .await
                .map_err(|_| {
                    Error::transient(format!(
                        "the replication link to {} has been silent for {}s (stalled network or server)",
                        self.endpoint,
                        wait.as_secs()
                    ))
                })?
                .map_err(|e| io_err("read", e))?;
            if n == 0 {
                return Err(Error::transient(format!(
                    "the server {} closed the replication connection",
                    self.endpoint
                )));
            }
            self.last_rx = std::time::Instant::now();
        }
    }

    async fn authenticate(&mut self, ep: &Endpoint) -> Result<()> {
        let password = ep.password.clone().unwrap_or_default();
        let mut scram: Option<ScramSha256> = None;
        loop {
            let (tag, mut body) = self.read(IO_TIMEOUT).await?;
            match tag {
                b'R' => {
                    let kind = body.get_i32();
                    match kind {
                        0 => {}
                        3 => {
                            frontend::password_message(password.as_bytes(), &mut self.out)
                                .map_err(|e| io_err("auth", e))?;
                            self.flush().await?;
                        }
                        5 => {
                            let salt = [body[0], body[1], body[2], body[3]];
                            let h = postgres_protocol::authentication::md5_hash(
                                ep.user.as_bytes(),
                                password.as_bytes(),
                                salt,
                            );
                            frontend::password_message(h.as_bytes(), &mut self.out)
                                .map_err(|e| io_err("auth", e))?;
                            self.flush().await?;
                        }
                        10 => {
                            let s = ScramSha256::new(password.as_bytes(), ChannelBinding::unsupported());
                            frontend::sasl_initial_response("SCRAM-SHA-256", s.message(), &mut self.out)
                                .map_err(|e| io_err("auth", e))?;
                            scram = Some(s);
                            self.flush().await?;
                        }
                        11 => {
                            let s = scram.as_mut().ok_or_else(|| io_err("auth", "unexpected SASL continue"))?;
                            s.update(&body).map_err(|e| Error::definite(format!("SCRAM authentication to {} failed: {e}", self.endpoint)))?;
                            frontend::sasl_response(s.message(), &mut self.out)
                                .map_err(|e| io_err("auth", e))?;
                            self.flush().await?;
                        }
                        12 => {
                            let s = scram.as_mut().ok_or_else(|| io_err("auth", "unexpected SASL final"))?;
                            s.finish(&body).map_err(|e| Error::definite(format!("SCRAM authentication to {} failed: {e}", self.endpoint)))?;
                        }
                        other => {
                            return Err(Error::definite(format!(
                                "{} asks for an authentication method Ferry's replication connection does not speak (code {other})",
                                self.endpoint
                            ))
                            .with_hint("allow scram-sha-256, md5 or password for replication connections in pg_hba.conf"))
                        }
                    }
                }
                b'E' => return Err(self.server_error(&body)),
                b'Z' => return Ok(()),
                _ => {}
            }
        }
    }

    pub(crate) fn server_error(&self, body: &[u8]) -> Error {
        let mut code = String::new();
        let mut message = String::new();
        for field in body.split(|b| *b == 0) {
            if field.is_empty() {
                continue;
            }
            let text = String::from_utf8_lossy(&field[1..]).into_owned();
            match field[0] {
                b'C' => code = text,
                b'M' => message = text,
                _ => {}
            }
        }
        let text = format!("{message} (SQLSTATE {code}) on {}", self.endpoint);
        // connection-level and resource-busy conditions pass; the rest are definite
        if code == "53400" {
            return Error::definite(text).with_hint(
                "raise max_replication_slots / max_wal_senders on the source, or `ferry end` tasks that are finished",
            );
        }
        let transient = code.starts_with("08")
            || code.starts_with("57")
            || code.starts_with("53")
            || code == "55006";
        if code == "28000" && message.contains("pg_hba") {
            return Error::definite(text).with_hint(
                "add a `host replication <user> <client-address> scram-sha-256` line to pg_hba.conf and reload",
            );
        }
        if code == "42501" {
            return Error::definite(text).with_hint(
                "the source user needs the REPLICATION attribute: ALTER ROLE <user> REPLICATION",
            );
        }
        if transient {
            Error::transient(text)
        } else {
            Error::definite(text)
        }
    }

    /// Runs a replication command or plain query; every row's cells as text.
    pub async fn simple_query(&mut self, sql: &str) -> Result<Vec<Vec<Option<String>>>> {
        frontend::query(sql, &mut self.out).map_err(|e| io_err("query", e))?;
        self.flush().await?;
        let mut rows = Vec::new();
        let mut error = None;
        loop {
            let (tag, mut body) = self.read(IO_TIMEOUT * 4).await?;
            match tag {
                b'D' => {
                    let n = body.get_u16();
                    let mut row = Vec::with_capacity(n as usize);
                    for _ in 0..n {
                        let len = body.get_i32();
                        if len < 0 {
                            row.push(None);
                        } else {
                            let v = body.split_to(len as usize);
                            row.push(Some(String::from_utf8_lossy(&v).into_owned()));
                        }
                    }
                    rows.push(row);
                }
                b'E' => error = Some(self.server_error(&body)),
                b'Z' => break,
                _ => {}
            }
        }
        match error {
            Some(e) => Err(e.context(format!("`{sql}`"))),
            None => Ok(rows),
        }
    }

    /// Starts streaming `slot` from `start` with the `pgoutput` plugin. `in_progress`
    /// asks for protocol version 2 with `streaming 'on'` (PostgreSQL 14+): the server
    /// then sends a transaction whose decoded changes outgrow its
    /// `logical_decoding_work_mem` in stream blocks before it commits, instead of
    /// spilling it to disk and sending it whole after its commit. Without it, protocol
    /// version 1: whole transactions only.
    pub async fn start_replication(
        &mut self,
        slot: &str,
        publication: &str,
        start: u64,
        in_progress: bool,
    ) -> Result<()> {
        let sql = format!(
            "START_REPLICATION SLOT {} LOGICAL {:X}/{:X} ({}, publication_names {}, messages 'true')",
            crate::conn::quote_ident(slot),
            start >> 32,
            start & 0xffff_ffff,
            if in_progress {
                "proto_version '2', streaming 'on'"
            } else {
                "proto_version '1'"
            },
            crate::conn::quote_literal(publication),
        );
        self.send_query(&sql).await?;
        loop {
            let (tag, body) = self.read(IO_TIMEOUT * 4).await?;
            match tag {
                b'W' => return Ok(()),
                b'E' => return Err(self.server_error(&body)),
                _ => {}
            }
        }
    }

    /// Sends a query (or replication command) without reading its answer.
    pub(crate) async fn send_query(&mut self, sql: &str) -> Result<()> {
        frontend::query(sql, &mut self.out).map_err(|e| io_err("query", e))?;
        self.flush().await
    }

    /// The server this connection talks to (for messages).
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Next message of the stream; an error if the server is silent too long.
    pub async fn next(&mut self) -> Result<StreamMessage> {
        loop {
            let (tag, mut body) = self.read_until(STALL_TIMEOUT).await?;
            match tag {
                b'd' => match body.first() {
                    Some(b'w') => {
                        body.advance(1);
                        let start = body.get_u64();
                        let wal_end = body.get_u64();
                        let _time = body.get_i64();
                        return Ok(StreamMessage::XLogData {
                            start,
                            wal_end,
                            data: body.freeze(),
                        });
                    }
                    Some(b'k') => {
                        body.advance(1);
                        let wal_end = body.get_u64();
                        let _time = body.get_i64();
                        let reply = body.get_u8() != 0;
                        return Ok(StreamMessage::Keepalive { wal_end, reply });
                    }
                    _ => {}
                },
                b'E' => return Err(self.server_error(&body)),
                b'c' => {
                    return Err(Error::transient(format!(
                        "{} ended the replication stream",
                        self.endpoint
                    )))
                }
                _ => {}
            }
        }
    }

    /// Tells the server everything up to `flushed` is safely applied: it may recycle
    /// that WAL and will resume after it.
    pub async fn send_status(&mut self, flushed: u64) -> Result<()> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_micros() as i64)
            .unwrap_or(0)
            - PG_EPOCH_OFFSET_US;
        let mut payload = BytesMut::with_capacity(34);
        payload.put_u8(b'r');
        payload.put_u64(flushed);
        payload.put_u64(flushed);
        payload.put_u64(flushed);
        payload.put_i64(now);
        payload.put_u8(0);
        frontend::CopyData::new(payload.freeze())
            .map_err(|e| io_err("status", e))?
            .write(&mut self.out);
        self.flush().await
    }
}
