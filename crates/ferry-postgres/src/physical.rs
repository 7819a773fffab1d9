//! The physical side of the replication protocol (`replication=true`): a base
//! backup (`BASE_BACKUP`, PostgreSQL 15's CopyData framing of archives), physical
//! slots (`CREATE_REPLICATION_SLOT … PHYSICAL RESERVE_WAL`) and streaming raw WAL
//! from one (`START_REPLICATION SLOT s PHYSICAL X/Y TIMELINE n`).
//!
//! PostgreSQL 13/14 frame a base backup differently (one raw tar COPY per
//! tablespace); Ferry refuses them with a clear message rather than guessing.

use crate::replication::{ReplConn, STALL_TIMEOUT};
use bytes::{Buf, Bytes, BytesMut};
use ferry_core::{Error, Result};
use std::time::Duration;

/// The oldest server version whose base backup framing Ferry reads.
pub const MIN_VERSION_NUM: u32 = 150_000;

const COPY_TIMEOUT: Duration = Duration::from_secs(300);

/// Formats an LSN as PostgreSQL writes it (`0/3A00F10`).
pub fn lsn_text(lsn: u64) -> String {
    format!("{:X}/{:X}", lsn >> 32, lsn & 0xffff_ffff)
}

/// Reads `0/3A00F10`.
pub fn parse_lsn(s: &str) -> Option<u64> {
    let (hi, lo) = s.trim().split_once('/')?;
    Some((u64::from_str_radix(hi, 16).ok()? << 32) | u64::from_str_radix(lo, 16).ok()?)
}

/// What `IDENTIFY_SYSTEM` and a few settings say about the server.
#[derive(Debug, Clone)]
pub struct SystemInfo {
    /// The cluster's system identifier (a WAL archive belongs to one).
    pub system_id: String,
    /// The current timeline.
    pub timeline: u32,
    /// The current WAL write position.
    pub xlogpos: u64,
    /// `server_version_num`.
    pub version_num: u32,
    /// `server_version`.
    pub version: String,
    /// WAL segment size in bytes.
    pub segment_size: u64,
}

/// One message of a running base backup.
#[derive(Debug)]
pub enum BackupMsg {
    /// A new archive starts (`base.tar` for the main data directory, `<oid>.tar`
    /// for a tablespace).
    Archive {
        /// The archive's name.
        name: String,
        /// The tablespace's location (empty for the main data directory).
        location: String,
    },
    /// The next bytes of the current archive.
    Data(Bytes),
    /// The backup manifest follows (Ferry asks for none; skipped).
    Manifest,
    /// Bytes sent so far.
    Progress(u64),
    /// The backup ended at `end_lsn` on `timeline`.
    Done {
        /// The WAL position the backup is consistent at.
        end_lsn: u64,
        /// Its timeline.
        timeline: u32,
    },
}

/// One message of a physical WAL stream.
#[derive(Debug)]
pub enum WalMsg {
    /// Raw WAL bytes starting at `start`.
    Data {
        /// WAL position of the first byte.
        start: u64,
        /// The server's WAL end when it sent them.
        wal_end: u64,
        /// The server's clock when it sent them (µs since the Unix epoch).
        server_us: i64,
        /// The bytes.
        data: Bytes,
    },
    /// A keepalive.
    Keepalive {
        /// The server's WAL end.
        wal_end: u64,
        /// The server's clock (µs since the Unix epoch).
        server_us: i64,
        /// The server wants a status update now.
        reply: bool,
    },
}

fn proto(what: &str) -> Error {
    Error::transient(format!("base backup: unexpected protocol message: {what}"))
}

fn cell(row: &[Option<String>], i: usize) -> Option<&str> {
    row.get(i).and_then(|c| c.as_deref())
}

/// Bytes of a size setting as `SHOW` prints it (`16MB`, `1GB`, `8192kB`).
fn size_setting(s: &str) -> Option<u64> {
    let s = s.trim();
    let digits: String = s.chars().take_while(|c| c.is_ascii_digit()).collect();
    let n: u64 = digits.parse().ok()?;
    let unit = s[digits.len()..].trim();
    let mul = match unit {
        "" | "B" => 1,
        "kB" => 1 << 10,
        "MB" => 1 << 20,
        "GB" => 1 << 30,
        _ => return None,
    };
    Some(n * mul)
}

fn pg_time_us(pg: i64) -> i64 {
    pg + crate::replication::PG_EPOCH_OFFSET_US
}

impl ReplConn {
    /// `IDENTIFY_SYSTEM` plus the version and WAL segment size; refuses servers
    /// older than PostgreSQL 15.
    pub async fn identify_system(&mut self) -> Result<SystemInfo> {
        let rows = self.simple_query("IDENTIFY_SYSTEM").await?;
        let row = rows
            .first()
            .ok_or_else(|| proto("IDENTIFY_SYSTEM returned no row"))?;
        let system_id = cell(row, 0).unwrap_or_default().to_string();
        let timeline = cell(row, 1)
            .and_then(|t| t.parse().ok())
            .ok_or_else(|| proto("IDENTIFY_SYSTEM: no timeline"))?;
        let xlogpos = cell(row, 2)
            .and_then(parse_lsn)
            .ok_or_else(|| proto("IDENTIFY_SYSTEM: no WAL position"))?;
        let one = |rows: Vec<Vec<Option<String>>>| -> String {
            rows.first()
                .and_then(|r| cell(r, 0))
                .unwrap_or_default()
                .to_string()
        };
        let version_num: u32 = one(self.simple_query("SHOW server_version_num").await?)
            .parse()
            .unwrap_or(0);
        let version = one(self.simple_query("SHOW server_version").await?);
        if version_num < MIN_VERSION_NUM {
            return Err(Error::definite(format!(
                "{}: PostgreSQL {version} is too old for Ferry's physical backup (it reads the base backup protocol of PostgreSQL 15 and later)",
                self.endpoint()
            ))
            .with_hint("use --method logical for this server, or upgrade it to PostgreSQL 15+"));
        }
        let seg = one(self.simple_query("SHOW wal_segment_size").await?);
        let segment_size = size_setting(&seg)
            .filter(|s| s.is_power_of_two())
            .ok_or_else(|| proto(&format!("wal_segment_size {seg:?}")))?;
        Ok(SystemInfo {
            system_id,
            timeline,
            xlogpos,
            version_num,
            version,
            segment_size,
        })
    }

    /// Creates physical slot `slot` reserving WAL from now; returns where the
    /// reserved WAL starts. An existing slot of that name is an error the caller
    /// may take as "already there" (SQLSTATE 42710 in the message).
    pub async fn create_physical_slot(&mut self, slot: &str) -> Result<Option<u64>> {
        let rows = self
            .simple_query(&format!(
                "CREATE_REPLICATION_SLOT {} PHYSICAL RESERVE_WAL",
                crate::conn::quote_ident(slot)
            ))
            .await?;
        Ok(rows.first().and_then(|r| cell(r, 1)).and_then(parse_lsn))
    }

    /// Starts a base backup (fast checkpoint, no manifest; with `wal` the WAL
    /// from its start to its end is added to `base.tar`'s `pg_wal`). Returns the
    /// start LSN and timeline and the tablespaces' locations (`None`: the main
    /// data directory). Read the archives with [`ReplConn::base_backup_next`].
    pub async fn base_backup_start(
        &mut self,
        label: &str,
        wal: bool,
    ) -> Result<(u64, u32, Vec<Option<String>>)> {
        let sql = format!(
            "BASE_BACKUP (LABEL {}, CHECKPOINT 'fast', WAL {}, WAIT true, MANIFEST 'no')",
            crate::conn::quote_literal(label),
            if wal { "true" } else { "false" }
        );
        self.send_query(&sql).await?;
        let mut sets = 0;
        let mut start = None;
        let mut spaces = Vec::new();
        loop {
            let (tag, mut body) = self.read(COPY_TIMEOUT).await?;
            match tag {
                b'T' => sets += 1,
                b'D' => {
                    let row = data_row(&mut body);
                    if sets == 1 {
                        let lsn = cell(&row, 0).and_then(parse_lsn);
                        let tli = cell(&row, 1).and_then(|t| t.parse().ok());
                        start = lsn.zip(tli);
                    } else {
                        spaces.push(cell(&row, 1).map(str::to_string));
                    }
                }
                b'E' => {
                    let e = self.server_error(&body);
                    self.drain_to_ready().await;
                    return Err(e.context("BASE_BACKUP"));
                }
                b'H' => break,
                _ => {}
            }
        }
        let (lsn, tli) = start.ok_or_else(|| proto("no start position before the data"))?;
        Ok((lsn, tli, spaces))
    }

    async fn drain_to_ready(&mut self) {
        while let Ok((tag, _)) = self.read(Duration::from_secs(10)).await {
            if tag == b'Z' {
                break;
            }
        }
    }

    /// The next message of a running base backup; [`BackupMsg::Done`] last.
    pub async fn base_backup_next(&mut self) -> Result<BackupMsg> {
        loop {
            let (tag, mut body) = self.read(COPY_TIMEOUT).await?;
            match tag {
                b'd' => {
                    if body.is_empty() {
                        continue;
                    }
                    let kind = body.get_u8();
                    match kind {
                        b'n' => {
                            let name = cstr(&mut body);
                            let location = cstr(&mut body);
                            return Ok(BackupMsg::Archive { name, location });
                        }
                        b'd' => return Ok(BackupMsg::Data(body.freeze())),
                        b'p' => {
                            let n = if body.len() >= 8 { body.get_u64() } else { 0 };
                            return Ok(BackupMsg::Progress(n));
                        }
                        b'm' => return Ok(BackupMsg::Manifest),
                        _ => continue,
                    }
                }
                b'c' => {
                    // the end result set follows
                    let mut end = None;
                    loop {
                        let (tag, mut body) = self.read(COPY_TIMEOUT).await?;
                        match tag {
                            b'D' => {
                                let row = data_row(&mut body);
                                let lsn = cell(&row, 0).and_then(parse_lsn);
                                let tli = cell(&row, 1).and_then(|t| t.parse().ok());
                                end = lsn.zip(tli);
                            }
                            b'E' => {
                                let e = self.server_error(&body);
                                self.drain_to_ready().await;
                                return Err(e.context("BASE_BACKUP"));
                            }
                            b'Z' => break,
                            _ => {}
                        }
                    }
                    let (end_lsn, timeline) =
                        end.ok_or_else(|| proto("no end position after the data"))?;
                    return Ok(BackupMsg::Done { end_lsn, timeline });
                }
                b'E' => {
                    let e = self.server_error(&body);
                    self.drain_to_ready().await;
                    return Err(e.context("BASE_BACKUP"));
                }
                _ => {}
            }
        }
    }

    /// Starts streaming WAL from physical slot `slot` at `start` on `timeline`.
    pub async fn start_physical(&mut self, slot: &str, start: u64, timeline: u32) -> Result<()> {
        let sql = format!(
            "START_REPLICATION SLOT {} PHYSICAL {} TIMELINE {timeline}",
            crate::conn::quote_ident(slot),
            lsn_text(start)
        );
        self.send_query(&sql).await?;
        loop {
            let (tag, body) = self.read(COPY_TIMEOUT).await?;
            match tag {
                b'W' => return Ok(()),
                b'E' => return Err(self.server_error(&body).context(sql)),
                _ => {}
            }
        }
    }

    /// The next message of a physical WAL stream. The end of the timeline (the
    /// source was promoted or switched timelines) is a definite error: the
    /// archive follows one timeline.
    pub async fn next_wal(&mut self) -> Result<WalMsg> {
        loop {
            let (tag, mut body) = self.read_until(STALL_TIMEOUT).await?;
            match tag {
                b'd' => match body.first() {
                    Some(b'w') if body.len() >= 25 => {
                        body.advance(1);
                        let start = body.get_u64();
                        let wal_end = body.get_u64();
                        let server_us = pg_time_us(body.get_i64());
                        return Ok(WalMsg::Data {
                            start,
                            wal_end,
                            server_us,
                            data: body.freeze(),
                        });
                    }
                    Some(b'k') if body.len() >= 18 => {
                        body.advance(1);
                        let wal_end = body.get_u64();
                        let server_us = pg_time_us(body.get_i64());
                        let reply = body.get_u8() != 0;
                        return Ok(WalMsg::Keepalive {
                            wal_end,
                            server_us,
                            reply,
                        });
                    }
                    _ => {}
                },
                b'E' => return Err(self.server_error(&body)),
                b'c' => {
                    return Err(Error::definite(format!(
                        "{} ended the WAL stream: its timeline ended (the server was promoted or recovered to a new timeline)",
                        self.endpoint()
                    ))
                    .with_hint(
                        "Ferry's physical WAL archive follows one timeline: take a new physical full backup (`ferry backup now --method physical`) and start the log backup again",
                    ))
                }
                _ => {}
            }
        }
    }
}

fn data_row(body: &mut BytesMut) -> Vec<Option<String>> {
    if body.len() < 2 {
        return Vec::new();
    }
    let n = body.get_u16();
    let mut row = Vec::with_capacity(n as usize);
    for _ in 0..n {
        if body.len() < 4 {
            break;
        }
        let len = body.get_i32();
        if len < 0 || len as usize > body.len() {
            row.push(None);
        } else {
            let v = body.split_to(len as usize);
            row.push(Some(String::from_utf8_lossy(&v).into_owned()));
        }
    }
    row
}

fn cstr(body: &mut BytesMut) -> String {
    let end = body.iter().position(|b| *b == 0).unwrap_or(body.len());
    let s = String::from_utf8_lossy(&body[..end]).into_owned();
    body.advance((end + 1).min(body.len()));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lsns_and_sizes_read() {
        assert_eq!(parse_lsn("0/3A00F10"), Some(0x3A00F10));
        assert_eq!(parse_lsn("1/0"), Some(1 << 32));
        assert_eq!(lsn_text(0x1_0000_0010), "1/10");
        assert_eq!(size_setting("16MB"), Some(16 << 20));
        assert_eq!(size_setting("1GB"), Some(1 << 30));
        assert_eq!(size_setting("x"), None);
    }
}
