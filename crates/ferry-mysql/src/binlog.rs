//! MySQL/MariaDB as a change source: the ROW-format binlog, read as a replica would
//! (`COM_BINLOG_DUMP` from a file and offset), turned into [`Event`]s.
//!
//! Positions are the end offsets of transaction-ending events (XID, or `COMMIT`
//! / DDL query events), so resuming at a stored position starts exactly at the next
//! transaction. The GTID state is tracked alongside (MariaDB `domain-server-seq`)
//! and recorded with each position. The server is asked for heartbeats, so an idle
//! stream is told the log end (for "caught up") and a silent one is a stalled link.

use crate::binlog_value::convert;
use crate::catalog::read_tables;
use crate::conn::{classify, MyConn};
use ferry_connector::Retention;
use ferry_core::change::{Cell, Event, RowOp, Shape};
use ferry_core::{select::ObjectFilter, Endpoint, Error, Position, Result, Table, TableId};
use futures::StreamExt;
use mysql_async::binlog::events::{EventData, RowsEventData, TableMapEvent};
use mysql_async::BinlogStreamRequest;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// No event (not even a heartbeat) for this long means the link stalled.
pub const STALL_TIMEOUT: Duration = Duration::from_secs(15);
const HEARTBEAT_NS: u64 = 2_000_000_000;
const MARIADB_GTID_EVENT: u8 = 0xA2;

/// Checks that the binlog can feed an incremental phase from `start`.
pub async fn verify_source(conn: &mut MyConn, start: &Position) -> Result<()> {
    let vars = conn
        .query_text("SELECT @@binlog_format, @@binlog_row_image, @@log_bin")
        .await?;
    let row = vars.into_iter().next().unwrap_or_default();
    let get = |i: usize| row.get(i).cloned().flatten().unwrap_or_default();
    if get(2) != "1" {
        return Err(Error::definite("the source has binary logging off")
            .with_hint("start the server with log_bin (and binlog_format=ROW)"));
    }
    if !get(0).eq_ignore_ascii_case("ROW") {
        return Err(
            Error::definite(format!("the source's binlog_format is {}, not ROW", get(0)))
                .with_hint(
                "SET GLOBAL binlog_format = ROW (and in the server config), then restart the task",
            ),
        );
    }
    if !get(1).eq_ignore_ascii_case("FULL") {
        return Err(Error::definite(format!(
            "the source's binlog_row_image is {}, not FULL",
            get(1)
        ))
        .with_hint("SET GLOBAL binlog_row_image = FULL (and in the server config)"));
    }
    if let Position::Binlog { file, .. } = start {
        binlogs_from(conn, file).await?;
    }
    Ok(())
}

/// How to keep binlogs from being purged under a task again.
const KEEP_BINLOGS: &str = "keep binlogs longer (binlog_expire_logs_seconds) than a task may be \
                            stopped or behind, and purge none a task still needs";

/// The binlog files from `file` (the one a task resumes in) to the newest, with
/// their sizes; fails with "full resync needed" ([`ferry_core::ErrorKind::PositionLost`]) when
/// the source no longer has `file`.
pub async fn binlogs_from(conn: &mut MyConn, file: &str) -> Result<Vec<(String, u64)>> {
    let logs: Vec<(String, u64)> = conn
        .query_text("SHOW BINARY LOGS")
        .await?
        .into_iter()
        .filter_map(|r| {
            let name = r.first().cloned().flatten()?;
            let size = r.get(1).cloned().flatten().and_then(|s| s.parse().ok());
            Some((name, size.unwrap_or(0)))
        })
        .collect();
    let Some(at) = logs.iter().position(|(n, _)| n == file) else {
        return Err(purged(file, &logs));
    };
    Ok(logs[at..].to_vec())
}

/// "Binlog purged": `file` is gone (the oldest the source still has is named).
fn purged(file: &str, logs: &[(String, u64)]) -> Error {
    Error::position_lost(
        format!(
            "binlog purged: the source no longer has {file}, where this task must resume{}",
            logs.first()
                .map(|(n, _)| format!(" (its oldest binlog is {n})"))
                .unwrap_or_default()
        ),
        KEEP_BINLOGS,
    )
}

/// `e` from the binlog dump, as "full resync needed" when the server says the
/// file or GTID position it was asked for is gone (error 1236, "Could not find
/// first log file name in binary log index file" and its GTID variants).
fn lost_or(e: mysql_async::Error, file: &str) -> Error {
    match &e {
        // 1236 also covers other dump failures (a duplicate server_id, a packet too
        // big, a corrupt event): only the "it is gone" messages mean a lost position
        mysql_async::Error::Server(s) if s.code == 1236 && is_purged(&s.message) => {
            Error::position_lost(
                format!(
                    "binlog purged: the source cannot send the binlog from {file} ({}, error 1236)",
                    s.message
                ),
                KEEP_BINLOGS,
            )
        }
        _ => classify(e),
    }
}

/// Whether error 1236's message says the requested binlog or GTID position is gone.
fn is_purged(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    [
        "could not find first log file name",
        "purged",
        "could not find gtid state",
        "is not in the binlog",
        "contains gtid",
        "no longer in the binlog",
    ]
    .iter()
    .any(|p| m.contains(p))
}

/// What the source keeps of its binlog from `file` on (the one the task resumes
/// in), and after how long it expires binlogs.
pub async fn retention(conn: &mut MyConn, file: &str) -> Result<Retention> {
    let logs = binlogs_from(conn, file).await?;
    Ok(Retention {
        holder: format!("binlog {file}"),
        held_for_task: false,
        retained_bytes: Some(logs.iter().map(|(_, s)| s).sum()),
        expire_seconds: crate::precheck::binlog_expiry(conn).await?.seconds(),
        ..Retention::default()
    })
}

/// Replica server id for a task: stable, and far from ids DBAs hand out.
fn server_id(task: &str) -> u32 {
    let h = task
        .bytes()
        .fold(2166136261u32, |h, b| (h ^ b as u32).wrapping_mul(16777619));
    1_000_000_000 + h % 1_000_000_000
}

struct Mapped {
    shape: Arc<Shape>,
    /// Binlog column index → shape column index (None: generated, not replicated).
    slots: Vec<Option<usize>>,
}

struct Decoder {
    catalog: MyConn,
    filter: ObjectFilter,
    /// The source URL's database: without literal schemas in the filter, only its
    /// tables are selected (as for the full copy).
    default_db: Option<String>,
    tables: HashMap<TableId, Table>,
    mapped: HashMap<(TableId, usize), Arc<Mapped>>,
    file: String,
    gtid: BTreeMap<u32, String>,
    in_txn: bool,
}

fn gtid_text(g: &BTreeMap<u32, String>) -> String {
    g.values().cloned().collect::<Vec<_>>().join(",")
}

/// The column names a table map event carries (`binlog_row_metadata=FULL`).
fn column_names(tme: &TableMapEvent<'_>) -> Option<Vec<String>> {
    tme.iter_optional_meta().find_map(|f| match f {
        Ok(mysql_async::binlog::events::OptionalMetadataField::ColumnName(names)) => Some(
            names
                .iter_names()
                .filter_map(|n| n.ok())
                .map(|n| n.name().to_string())
                .collect(),
        ),
        _ => None,
    })
}

impl Decoder {
    fn selected(&self, id: &TableId) -> bool {
        const SYSTEM: [&str; 5] = [
            "mysql",
            "information_schema",
            "performance_schema",
            "sys",
            "ferry",
        ];
        self.filter.matches(&id.schema, &id.name)
            && !SYSTEM.contains(&id.schema.as_str())
            && (self.filter.literal_schemas().is_some()
                || self.default_db.as_deref().is_none_or(|db| db == id.schema))
    }

    fn position(&self, pos: u64) -> Position {
        Position::Binlog {
            file: self.file.clone(),
            pos,
            gtid: gtid_text(&self.gtid),
        }
    }

    async fn reload(&mut self, id: &TableId) -> Result<()> {
        let f = ObjectFilter::table(id);
        self.tables.remove(id);
        for t in read_tables(&mut self.catalog, &f, None).await? {
            self.tables.insert(t.id.clone(), t);
        }
        self.mapped.retain(|(t, _), _| t != id);
        Ok(())
    }

    async fn mapping(&mut self, tme: &TableMapEvent<'_>) -> Result<Option<Arc<Mapped>>> {
        let id = TableId::new(
            tme.database_name().to_string(),
            tme.table_name().to_string(),
        );
        if !self.selected(&id) {
            return Ok(None);
        }
        let n = tme.columns_count() as usize;
        if let Some(m) = self.mapped.get(&(id.clone(), n)) {
            return Ok(Some(m.clone()));
        }
        if self.tables.get(&id).is_none_or(|t| t.columns.len() != n) {
            self.reload(&id).await?;
        }
        let table = self.tables.get(&id).ok_or_else(|| {
            Error::definite(format!(
                "{id} appears in the binlog but not in the source catalog"
            ))
        })?;
        let binlog_columns: Vec<&ferry_core::Column> = if table.columns.len() == n {
            table.columns.iter().collect()
        } else {
            // a row written before a column was added (read again after a restart):
            // the table map names its columns (binlog_row_metadata=FULL)
            let names = column_names(tme);
            let picked: Option<Vec<&ferry_core::Column>> = names
                .filter(|names| names.len() == n)
                .and_then(|names| names.iter().map(|n| table.column(n)).collect());
            picked.ok_or_else(|| {
                Error::definite(format!(
                    "{id}: the binlog row has {n} columns, the table now has {} (its definition changed since)",
                    table.columns.len()
                ))
                .with_hint("a full resync of this table is needed")
            })?
        };
        let mut columns = Vec::new();
        let mut slots = Vec::new();
        for c in binlog_columns {
            if matches!(c.logical, ferry_core::LogicalType::Time(1..=2)) {
                // mysql_common 0.37 decodes negative TIME(1..2) values with an
                // unsigned underflow; refuse rather than replicate a wrong value
                return Err(Error::definite(format!(
                    "{id}.{}: {} columns are not supported by the incremental reader (TIME with 0 or 3..6 fractional digits is)",
                    c.name, c.native_type
                ))
                .with_hint("ALTER the column to TIME(6) on the source, or exclude the table"));
            }
            if c.is_generated() {
                slots.push(None);
            } else {
                slots.push(Some(columns.len()));
                columns.push(c.clone());
            }
        }
        let key: Vec<usize> = table
            .primary_key
            .iter()
            .filter_map(|k| columns.iter().position(|c| &c.name == k))
            .collect();
        let m = Arc::new(Mapped {
            shape: Arc::new(Shape {
                table: id.clone(),
                columns,
                key,
            }),
            slots,
        });
        self.mapped.insert((id, n), m.clone());
        Ok(Some(m))
    }

    /// A DDL statement: follow column changes of selected tables, pass on the rest.
    async fn query(
        &mut self,
        schema: &str,
        sql: &str,
        start: u64,
        pos: u64,
        out: &mut Vec<Event>,
    ) -> Result<()> {
        let upper = sql.trim_start().to_ascii_uppercase();
        if upper.starts_with("BEGIN") {
            if !self.in_txn {
                self.in_txn = true;
                out.push(Event::Begin {
                    marker: Some(self.position(start)),
                    xid: None,
                });
            }
            return Ok(());
        }
        if upper.starts_with("COMMIT") {
            self.in_txn = false;
            out.push(Event::Commit {
                position: self.position(pos),
                commit_time_us: None,
            });
            return Ok(());
        }
        let words = ddl_words(sql);
        let verb = words
            .first()
            .map(|w| w.to_ascii_uppercase())
            .unwrap_or_default();
        let object = words
            .get(1)
            .map(|w| w.to_ascii_uppercase())
            .unwrap_or_default();
        let target = ddl_table(&words, schema);
        let selected = target.as_ref().is_some_and(|t| self.selected(t));
        if selected {
            let t = target.clone().unwrap_or_default();
            match (verb.as_str(), object.as_str()) {
                ("ALTER", "TABLE") => {
                    let old = self.tables.get(&t).cloned();
                    self.reload(&t).await?;
                    if let (Some(old), Some(new)) = (old, self.tables.get(&t)) {
                        let shape = |tb: &Table| {
                            Arc::new(Shape {
                                table: tb.id.clone(),
                                columns: tb.copied_columns().cloned().collect(),
                                key: vec![],
                            })
                        };
                        let (o, n) = (shape(&old), shape(new));
                        let renamed_or_retyped = old.columns.iter().any(|c| {
                            new.columns
                                .iter()
                                .find(|x| x.name == c.name)
                                .is_some_and(|x| x.native_type != c.native_type)
                        });
                        let only_columns = upper.contains(" ADD ") || upper.contains(" DROP ");
                        if renamed_or_retyped
                            || !only_columns
                            || upper.contains(" CHANGE ")
                            || upper.contains(" RENAME ")
                            || upper.contains(" MODIFY ")
                        {
                            out.push(Event::Ddl {
                                schema: schema.to_string(),
                                statement: sql.to_string(),
                                position: self.position(pos),
                            });
                            return Ok(());
                        }
                        out.push(Event::Begin {
                            marker: Some(self.position(start)),
                            xid: None,
                        });
                        out.push(Event::Reshape { old: o, new: n });
                    }
                }
                ("TRUNCATE", _) => {
                    out.push(Event::Begin {
                        marker: Some(self.position(start)),
                        xid: None,
                    });
                    out.push(Event::Truncate(vec![t]));
                }
                ("CREATE", "TABLE")
                | ("DROP", "TABLE")
                | ("CREATE", "INDEX")
                | ("DROP", "INDEX") => {
                    out.push(Event::Ddl {
                        schema: schema.to_string(),
                        statement: sql.to_string(),
                        position: self.position(pos),
                    });
                    return Ok(());
                }
                _ => {
                    out.push(Event::Ddl {
                        schema: schema.to_string(),
                        statement: sql.to_string(),
                        position: self.position(pos),
                    });
                    return Ok(());
                }
            }
        }
        // a DDL statement is its own transaction: the position moves past it
        self.in_txn = false;
        out.push(Event::Commit {
            position: self.position(pos),
            commit_time_us: None,
        });
        Ok(())
    }

    fn rows(
        &self,
        m: &Mapped,
        tme: &TableMapEvent<'_>,
        ev: &RowsEventData<'_>,
        out: &mut Vec<Event>,
    ) -> Result<()> {
        let shape = &m.shape;
        let image = |row: Option<mysql_async::binlog::row::BinlogRow>| -> Result<Vec<mysql_async::binlog::value::BinlogValue<'static>>> {
            row.map(|r| r.unwrap()).ok_or_else(|| Error::definite(format!("{}: a binlog row image is missing", shape.table)))
        };
        let decode = |vals: Vec<mysql_async::binlog::value::BinlogValue<'static>>| -> Result<Vec<ferry_core::Value>> {
            let mut out = vec![ferry_core::Value::Null; shape.columns.len()];
            for (i, v) in vals.into_iter().enumerate() {
                if let Some(Some(slot)) = m.slots.get(i) {
                    let col = &shape.columns[*slot];
                    out[*slot] = convert(Some(v), col)
                        .map_err(|e| Error::definite(format!("{}.{}: {e}", shape.table, col.name)))?;
                }
            }
            Ok(out)
        };
        let rows: Box<dyn Iterator<Item = std::io::Result<(Option<_>, Option<_>)>>> = match ev {
            RowsEventData::WriteRowsEvent(e) => Box::new(e.rows(tme)),
            RowsEventData::UpdateRowsEvent(e) => Box::new(e.rows(tme)),
            RowsEventData::DeleteRowsEvent(e) => Box::new(e.rows(tme)),
            RowsEventData::WriteRowsEventV1(e) => Box::new(e.rows(tme)),
            RowsEventData::UpdateRowsEventV1(e) => Box::new(e.rows(tme)),
            RowsEventData::DeleteRowsEventV1(e) => Box::new(e.rows(tme)),
            RowsEventData::PartialUpdateRowsEvent(_) => {
                return Err(Error::definite("partial JSON updates are in the binlog")
                    .with_hint("SET GLOBAL binlog_row_value_options = '' on the source"))
            }
        };
        for r in rows {
            let (before, after) = r.map_err(|e| {
                Error::definite(format!("{}: cannot decode a binlog row: {e}", shape.table))
            })?;
            let op = match ev {
                RowsEventData::WriteRowsEvent(_) | RowsEventData::WriteRowsEventV1(_) => {
                    RowOp::Insert(decode(image(after)?)?)
                }
                RowsEventData::DeleteRowsEvent(_) | RowsEventData::DeleteRowsEventV1(_) => {
                    RowOp::Delete(decode(image(before)?)?)
                }
                _ => RowOp::Update {
                    old: Some(decode(image(before)?)?),
                    new: decode(image(after)?)?
                        .into_iter()
                        .map(Cell::Value)
                        .collect(),
                },
            };
            out.push(Event::Row {
                shape: shape.clone(),
                op,
            });
        }
        Ok(())
    }
}

/// The words of a DDL statement, comments and quotes removed (a dot inside backticks
/// stays U+0003, for [`ddl_table`]).
pub fn ddl_words(sql: &str) -> Vec<String> {
    let mut s = String::new();
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '/' && chars.peek() == Some(&'*') {
            chars.next();
            let mut prev = ' ';
            for d in chars.by_ref() {
                if prev == '*' && d == '/' {
                    break;
                }
                prev = d;
            }
            s.push(' ');
        } else if c == '`' {
            s.push('\u{1}');
            for d in chars.by_ref() {
                if d == '`' {
                    break;
                }
                // a dot inside backticks is part of the name, not a qualifier:
                // kept as U+0003 until ddl_table has split the qualified name
                s.push(match d {
                    ' ' => '\u{2}',
                    '.' => '\u{3}',
                    d => d,
                });
            }
        } else {
            s.push(c);
        }
    }
    s.split(|c: char| c.is_whitespace() || c == '(' || c == ',' || c == ';')
        .filter(|w| !w.is_empty())
        .map(|w| w.replace('\u{1}', "").replace('\u{2}', " "))
        .collect()
}

/// The table a DDL statement names (after `TABLE`, `IF [NOT] EXISTS`, `ON` for indexes).
pub fn ddl_table(words: &[String], schema: &str) -> Option<TableId> {
    let up: Vec<String> = words.iter().map(|w| w.to_ascii_uppercase()).collect();
    let mut i = if up.first().map(String::as_str) == Some("TRUNCATE") {
        1
    } else {
        up.iter().position(|w| w == "TABLE" || w == "ON")? + 1
    };
    if up.first().map(String::as_str) == Some("CREATE")
        && up.get(1).is_some_and(|w| w == "INDEX" || w == "UNIQUE")
    {
        i = up.iter().position(|w| w == "ON")? + 1;
    }
    if up.get(i).map(String::as_str) == Some("TABLE") {
        i += 1;
    }
    while matches!(up.get(i).map(String::as_str), Some("IF" | "NOT" | "EXISTS")) {
        i += 1;
    }
    let name = words.get(i)?;
    let part = |s: &str| s.replace('\u{3}', ".");
    Some(match name.split_once('.') {
        Some((s, t)) => TableId::new(part(s), part(t)),
        None => TableId::new(schema, part(name)),
    })
}

/// Streams changes after `start` into `tx` until the channel closes or an error.
pub async fn stream(
    ep: &Endpoint,
    task: &str,
    start: &Position,
    filter: ObjectFilter,
    tables: Vec<Table>,
    tx: &mpsc::Sender<Event>,
) -> Result<()> {
    let default_db = ep.database.clone();
    let Position::Binlog { file, pos, gtid } = start else {
        return Err(Error::definite(format!("{start} is not a binlog position")));
    };
    let mut catalog = crate::connect(ep).await?;
    verify_source(&mut catalog, start).await?;
    let mut conn = crate::connect(ep).await?;
    conn.exec(&format!(
        "SET @master_heartbeat_period = {HEARTBEAT_NS}, @mariadb_slave_capability = 4"
    ))
    .await?;
    let request = BinlogStreamRequest::new(server_id(task))
        .with_filename(file.as_bytes())
        .with_pos(*pos);
    let mut binlog = conn
        .conn
        .get_binlog_stream(request)
        .await
        .map_err(|e| lost_or(e, file).context("starting the binlog stream"))?;
    tracing::debug!("binlog stream requested from {file}:{pos}");
    let mut dec = Decoder {
        catalog,
        filter,
        default_db,
        tables: tables.into_iter().map(|t| (t.id.clone(), t)).collect(),
        mapped: HashMap::new(),
        file: file.clone(),
        gtid: gtid
            .split(',')
            .filter(|g| !g.is_empty())
            .filter_map(|g| Some((g.split('-').next()?.parse().ok()?, g.to_string())))
            .collect(),
        in_txn: false,
    };
    let mut out = Vec::new();
    let mut commit_time: Option<i64> = None;
    loop {
        let ev = match tokio::time::timeout(STALL_TIMEOUT, binlog.next()).await {
            Err(_) => {
                return Err(Error::transient(format!(
                "the binlog stream from {ep} has been silent for {}s (stalled network or server)",
                STALL_TIMEOUT.as_secs()
            )))
            }
            Ok(None) => return Err(Error::transient(format!("{ep} ended the binlog stream"))),
            Ok(Some(Err(e))) => return Err(lost_or(e, &dec.file).context("reading the binlog")),
            Ok(Some(Ok(ev))) => ev,
        };
        let header = ev.header();
        let end = header.log_pos() as u64;
        let start = end.saturating_sub(header.event_size() as u64);
        if header.event_type_raw() == MARIADB_GTID_EVENT {
            let d = ev.data();
            if d.len() >= 13 {
                let seq = u64::from_le_bytes(d[0..8].try_into().unwrap_or_default());
                let domain = u32::from_le_bytes(d[8..12].try_into().unwrap_or_default());
                let standalone = d[12] & 1 == 1;
                dec.gtid
                    .insert(domain, format!("{domain}-{}-{seq}", header.server_id()));
                if !standalone {
                    dec.in_txn = true;
                    out.push(Event::Begin {
                        marker: Some(dec.position(start)),
                        xid: None,
                    });
                }
            }
            commit_time = Some(header.timestamp() as i64 * 1_000_000);
        } else {
            match ev
                .read_data()
                .map_err(|e| Error::definite(format!("cannot decode a binlog event: {e}")))?
            {
                Some(EventData::RotateEvent(r)) => {
                    // the name may be followed by the event's checksum bytes: the
                    // real name is the longest binlog the server lists that starts it
                    let raw = r.name().to_string();
                    let logs = dec.catalog.query_text("SHOW BINARY LOGS").await?;
                    dec.file = logs
                        .into_iter()
                        .filter_map(|l| l.into_iter().next().flatten())
                        .filter(|n| raw.starts_with(n.as_str()))
                        .max_by_key(|n| n.len())
                        .unwrap_or(raw);
                }
                Some(EventData::QueryEvent(q)) => {
                    commit_time = Some(header.timestamp() as i64 * 1_000_000);
                    let schema = q.schema().to_string();
                    let sql = q.query().to_string();
                    dec.query(&schema, &sql, start, end, &mut out).await?;
                    if let Some(Event::Commit { commit_time_us, .. }) = out.last_mut() {
                        *commit_time_us = commit_time;
                    }
                }
                Some(EventData::RowsEvent(rows)) => {
                    let tme = binlog.get_tme(rows.table_id()).ok_or_else(|| {
                        Error::definite("a binlog rows event without its table map")
                    })?;
                    let tme = tme.clone().into_owned();
                    if let Some(m) = dec.mapping(&tme).await? {
                        if !dec.in_txn {
                            dec.in_txn = true;
                            out.push(Event::Begin {
                                marker: Some(dec.position(start)),
                                xid: None,
                            });
                        }
                        let at = dec.position(start);
                        dec.rows(&m, &tme, &rows, &mut out)
                            .map_err(|e| e.context(format!("binlog event at {at}")))?;
                    }
                }
                Some(EventData::XidEvent(_)) => {
                    tracing::trace!("binlog commit at {}:{end}", dec.file);
                    dec.in_txn = false;
                    out.push(Event::Commit {
                        position: dec.position(end),
                        commit_time_us: commit_time.or(Some(header.timestamp() as i64 * 1_000_000)),
                    });
                }
                Some(EventData::HeartbeatEvent) if !dec.in_txn && end > 0 => {
                    tracing::debug!("binlog heartbeat at {}:{end}", dec.file);
                    out.push(Event::Idle {
                        position: dec.position(end),
                    });
                }
                _ => {}
            }
        }
        for e in out.drain(..) {
            if tx.send(e).await.is_err() {
                return Ok(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_gone_position_is_a_lost_one() {
        assert!(is_purged(
            "Could not find first log file name in binary log index file"
        ));
        assert!(is_purged(
            "Cannot replicate because the master purged required binary logs"
        ));
        assert!(!is_purged(
            "A slave with the same server_uuid/server_id as this slave has connected to the master"
        ));
        assert!(!is_purged(
            "log event entry exceeded max_allowed_packet; Increase max_allowed_packet on master"
        ));
    }

    #[test]
    fn finds_ddl_tables() {
        let t = |sql: &str| ddl_table(&ddl_words(sql), "db");
        assert_eq!(
            t("ALTER TABLE `a b`.t ADD COLUMN x int"),
            Some(TableId::new("a b", "t"))
        );
        assert_eq!(t("alter table t add x int"), Some(TableId::new("db", "t")));
        assert_eq!(
            t("DROP TABLE IF EXISTS `t` /* generated by server */"),
            Some(TableId::new("db", "t"))
        );
        assert_eq!(
            t("CREATE TABLE IF NOT EXISTS s.t (id int)"),
            Some(TableId::new("s", "t"))
        );
        assert_eq!(t("TRUNCATE TABLE t"), Some(TableId::new("db", "t")));
        assert_eq!(
            t("ALTER TABLE `a.b`.`c.d` ADD x int"),
            Some(TableId::new("a.b", "c.d"))
        );
        assert_eq!(t("DROP TABLE `x.y`"), Some(TableId::new("db", "x.y")));
        assert_eq!(t("CREATE INDEX i ON t (x)"), Some(TableId::new("db", "t")));
    }
}
