//! Applying row changes to the target, exactly once.
//!
//! Source transactions are applied in commit order; several small ones may share one
//! target transaction, a big one is streamed into its target transaction in pieces.
//! The task's source position is written by the same target transaction that holds
//! the changes, so after a crash the target says exactly which changes it has: the
//! stream resumes after that position and nothing is lost or applied twice.
//!
//! Statements are idempotent where the table has a key (inserts and full-row updates
//! are upserts, deletes remove what is there), so a replayed overlap is harmless.
//! Tables without a key are matched on every column, one row at a time, each column
//! by a form its type can compare exactly (PostgreSQL `json`, `xml`, `point` and the
//! other geometric types have no usable `=`: they are compared as text; a MySQL
//! `JSON` column is compared with a JSON value).
//!
//! A change must never pass silently: every UPDATE/DELETE that finds its row by a
//! predicate is checked after it runs. In a table without a key a change that
//! matched no row means the target no longer holds the source's row, and the task
//! fails naming the table, the source transaction and the row. In a table with a
//! key, a DELETE (or a key-changing UPDATE) of a key the target does not hold is
//! what a replayed overlap produces (a resumed copy, an upserted backfill), so it is
//! logged and counted (`unmatched` in `ferry status`, `ferry_unmatched_changes_total`).

use crate::checkpoint::Fence;
use crate::conn::Conn;
use crate::schema::mapping::NameMap;
use ferry_connector::{Dialect, MatchForm};
use ferry_core::change::{Cell, RowOp, Shape};
use ferry_core::{Column, Engine, Error, ErrorKind, LogicalType, Position, Result, TableId, Value};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// Pending statements are sent once they exceed this size.
const FLUSH_BYTES: usize = 512 * 1024;
/// Rows per multi-row upsert.
const ROWS_PER_INSERT: usize = 500;

/// Counters of what the applier did (for progress, status and metrics).
#[derive(Debug, Default, Clone, Copy)]
pub struct Applied {
    /// Source transactions committed on the target.
    pub txns: u64,
    /// Row changes committed on the target.
    pub rows: u64,
    /// Changes to keyed tables that found no row on the target (see the module doc).
    pub unmatched: u64,
}

/// Longest row image quoted in an error.
const MAX_ROW_IMAGE: usize = 1000;

/// A sent statement that must find its row.
struct Expect {
    /// Its index among the statements of the buffer.
    stmt: usize,
    table: TableId,
    /// `an UPDATE` / `a DELETE`.
    what: &'static str,
    keyless: bool,
    /// The source transaction it came from.
    at: String,
    /// The row image it looked for.
    row: String,
}

struct PendingInsert {
    shape: Arc<Shape>,
    target: TableId,
    rows: Vec<String>,
    /// Per row: the source transaction it came from (an index into `Applier::marks`).
    from: Vec<usize>,
    keys: HashSet<String>,
}

/// Where a statement in the unsent buffer came from, so that a statement the target
/// refuses can be named: its table, the source transaction, the row.
struct Tag {
    /// Byte range of the statement in the buffer.
    span: std::ops::Range<usize>,
    /// Target table.
    table: TableId,
    /// Source table.
    source: TableId,
    /// Per row (one for UPDATE/DELETE): index into `Applier::marks`.
    from: Vec<usize>,
    /// The rows' literals of a multi-row INSERT (the server names a row by number).
    rows: Vec<String>,
}

/// The applier of one task: a target connection with an open transaction.
pub struct Applier {
    dst: Conn,
    /// The source's engine (the dialect maps values and columns from it).
    from: Engine,
    /// How the target spells SQL.
    dialect: &'static dyn Dialect,
    /// This run's claim on the task: every commit checks it.
    fence: Fence,
    names: NameMap,
    buf: String,
    in_txn: bool,
    insert: Option<PendingInsert>,
    /// Rows applied in the open target transaction (not yet committed).
    open_rows: u64,
    open_txns: u64,
    /// Statement bytes sent in the open target transaction (what metering counts).
    open_bytes: u64,
    /// Committed totals.
    pub applied: Applied,
    /// Target columns per target table (and how each is matched), loaded when a
    /// table is first seen.
    columns: HashMap<TableId, HashMap<String, MatchForm>>,
    /// Statements in `buf`.
    stmts: usize,
    /// Statements of `buf` that must find their row.
    expects: Vec<Expect>,
    /// Keyed changes in the open target transaction that found no row.
    open_unmatched: u64,
    /// Shapes already checked, by address; holding the Arc keeps the address from
    /// being reused by a newer shape.
    checked: HashMap<usize, Arc<Shape>>,
    /// Positions of the source transactions in the open target transaction (for
    /// errors); the last one is the transaction being applied.
    marks: Vec<Option<Position>>,
    /// The statements of `buf` that apply row changes.
    tags: Vec<Tag>,
}

impl Applier {
    /// An applier writing through `dst` for the run holding `fence`.
    pub async fn new(mut dst: Conn, from: Engine, fence: Fence, names: NameMap) -> Result<Applier> {
        let dialect = dst.dialect();
        dst.begin_writer_session().await?;
        Ok(Applier {
            dst,
            from,
            dialect,
            fence,
            names,
            buf: String::new(),
            in_txn: false,
            insert: None,
            open_rows: 0,
            open_txns: 0,
            open_bytes: 0,
            applied: Applied::default(),
            columns: HashMap::new(),
            checked: HashMap::new(),
            marks: Vec::new(),
            tags: Vec::new(),
            stmts: 0,
            expects: Vec::new(),
            open_unmatched: 0,
        })
    }

    /// Notes where the source transaction whose changes follow is in the source's log
    /// (named by errors about its changes).
    pub fn source_transaction(&mut self, at: Option<Position>) {
        self.marks.push(at);
    }

    fn mark(&self) -> usize {
        self.marks.len().saturating_sub(1)
    }

    fn describe_mark(&self, i: usize) -> String {
        match self.marks.get(i) {
            Some(Some(p)) => format!("the source transaction at {p}"),
            _ => "a source transaction".to_string(),
        }
    }

    /// True while changes are applied but not committed.
    pub fn has_open_work(&self) -> bool {
        self.in_txn || !self.buf.is_empty() || self.insert.is_some()
    }

    /// Rows waiting in the open target transaction.
    pub fn open_rows(&self) -> u64 {
        self.open_rows
    }

    /// Bytes of statements sent in the open target transaction; read, then reset.
    pub fn take_open_bytes(&mut self) -> u64 {
        std::mem::take(&mut self.open_bytes)
    }

    /// Source transactions waiting in the open target transaction.
    pub fn open_txns(&self) -> u64 {
        self.open_txns
    }

    fn ident(&self, s: &str) -> String {
        self.dialect.ident(s)
    }

    fn qualified(&self, t: &TableId) -> String {
        self.dst.qualified(t)
    }

    /// A SQL literal for `v`, stored in a column of source type `ty`.
    fn literal(&self, v: &Value, ty: &LogicalType) -> std::result::Result<String, String> {
        self.dialect.value_literal(v, ty)
    }

    fn value_error(&self, shape: &Shape, col: usize, v: &Value, why: String) -> Error {
        // worded as the full copy words it: table, column, value, then where in the log
        Error::definite(format!(
            "table {}, column {}: value {} cannot be stored: {why} (in {})",
            shape.table,
            shape.columns[col].name,
            v.describe(),
            self.describe_mark(self.mark())
        ))
        .with_hint("fix the value on the source, or exclude the table from the task")
    }

    /// The stored value itself, never a bound fitted for writing it: what a row is
    /// looked up by.
    fn stored_lit(&self, shape: &Shape, col: usize, v: &Value) -> Result<String> {
        self.literal(v, &shape.columns[col].logical)
            .map_err(|why| self.value_error(shape, col, v, why))
    }

    /// The literal that writes `v` into column `col`.
    fn lit(&self, shape: &Shape, col: usize, v: &Value) -> Result<String> {
        let c = &shape.columns[col];
        match self.dialect.fit_for_write(v, c, self.from) {
            Ok(Some(w)) => return self.lit(shape, col, &w),
            Ok(None) => {}
            Err(why) => return Err(self.value_error(shape, col, v, why)),
        }
        self.literal(v, &c.logical)
            .map_err(|why| self.value_error(shape, col, v, why))
    }

    /// `a = 1 AND b IS NULL` over the matching columns of `row` in target table
    /// `target`, each compared in a form its type compares exactly.
    fn predicate(&self, shape: &Shape, target: &TableId, row: &[Value]) -> Result<String> {
        let cols = self.columns.get(target);
        let mut parts = Vec::new();
        for i in shape.match_columns() {
            let name = self.ident(&shape.columns[i].name);
            let form = cols
                .and_then(|c| c.get(&shape.columns[i].name))
                .unwrap_or(&MatchForm::Equal);
            let v = &row[i];
            let l = self.stored_lit(shape, i, v)?;
            parts.push(self.dialect.match_predicate(&name, v, &l, form));
        }
        Ok(parts.join(" AND "))
    }

    /// `a=1, b=0x6566, …` for messages, bounded.
    fn row_image(shape: &Shape, row: &[Value]) -> String {
        let mut out = String::new();
        for (c, v) in shape.columns.iter().zip(row) {
            if !out.is_empty() {
                out.push_str(", ");
            }
            out.push_str(&format!("{}={}", c.name, v.describe()));
            if out.len() > MAX_ROW_IMAGE {
                let cut = (0..=MAX_ROW_IMAGE)
                    .rev()
                    .find(|i| out.is_char_boundary(*i))
                    .unwrap_or(0);
                out.truncate(cut);
                out.push_str(" …");
                break;
            }
        }
        out
    }

    /// Pushes an UPDATE/DELETE that must find the row `row` of `shape`'s table.
    async fn push_checked(
        &mut self,
        stmt: String,
        shape: &Shape,
        target: &TableId,
        what: &'static str,
        row: &[Value],
    ) -> Result<()> {
        self.flush_insert()?;
        self.expects.push(Expect {
            stmt: self.stmts,
            table: target.clone(),
            what,
            keyless: shape.key.is_empty(),
            at: self.describe_mark(self.mark()),
            row: Self::row_image(shape, row),
        });
        self.push_tagged(stmt, Some((target, &shape.table))).await
    }

    /// Makes sure the target table has the shape's columns (adds missing ones).
    async fn check_shape(&mut self, shape: &Arc<Shape>) -> Result<()> {
        if self.checked.contains_key(&(Arc::as_ptr(shape) as usize)) {
            return Ok(());
        }
        let target = self.names.target(&shape.table);
        if !self.columns.contains_key(&target) {
            let cols = self.target_columns(&target).await?;
            self.columns.insert(target.clone(), cols);
        }
        let have = &self.columns[&target];
        let missing: Vec<Column> = shape
            .columns
            .iter()
            .filter(|c| !have.contains_key(&c.name))
            .cloned()
            .collect();
        if !missing.is_empty() {
            for c in &missing {
                let ty = self.column_type(c)?;
                let default = self.column_default(c);
                // existing rows take the default, as they did on the source
                let not_null = if default.is_some() && !c.nullable {
                    " NOT NULL"
                } else {
                    ""
                };
                self.schema_change(&format!(
                    "ALTER TABLE {} ADD COLUMN {} {ty}{}{not_null}",
                    self.qualified(&target),
                    self.ident(&c.name),
                    default.map(|d| format!(" DEFAULT {d}")).unwrap_or_default()
                ))
                .await?;
                if let Some(set) = self.columns.get_mut(&target) {
                    set.insert(c.name.clone(), MatchForm::Equal);
                }
            }
            // how the new columns compare comes from the target's catalog
            let cols = self.target_columns(&target).await?;
            self.columns.insert(target.clone(), cols);
            tracing::info!(
                "{target}: added column(s) {} that the source added",
                missing
                    .iter()
                    .map(|c| c.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        self.checked
            .insert(Arc::as_ptr(shape) as usize, shape.clone());
        Ok(())
    }

    /// The type of an added column: the shape's columns come from the source catalog.
    fn column_type(&self, c: &Column) -> Result<String> {
        self.dialect.column_type(c, self.from)
    }

    /// The default of an added column, when the target can take it.
    fn column_default(&self, c: &Column) -> Option<String> {
        self.dialect.column_default(c, self.from)
    }

    /// The target table's columns and how each is matched.
    async fn target_columns(&mut self, t: &TableId) -> Result<HashMap<String, MatchForm>> {
        let sql = self.dialect.match_forms_sql(t);
        let rows = self.dst.query_text(&sql).await?;
        if rows.is_empty() {
            return Err(Error::definite(format!(
                "the target has no table {t} to apply changes to"
            ))
            .with_hint("it was dropped on the target; run the task again with existing_data: drop to copy it"));
        }
        Ok(rows
            .iter()
            .filter_map(|r| self.dialect.match_form_row(r))
            .collect())
    }

    /// Runs a schema statement. A target with transactional DDL (PostgreSQL) runs it
    /// inside the open transaction; one that commits implicitly on DDL (MySQL) has
    /// the open transaction rolled back first, and the stream restarts from the last
    /// committed position (a [`restart`] error).
    async fn schema_change(&mut self, stmt: &str) -> Result<()> {
        if self.dialect.ddl_is_transactional() {
            self.flush_insert()?;
            self.add(stmt);
            self.send().await
        } else {
            let had_work = self.open_rows > 0 || self.open_txns > 0;
            self.rollback().await;
            self.dst.exec(stmt).await?;
            if had_work {
                Err(restart(
                    "the target's schema changed under an open transaction",
                ))
            } else {
                Ok(())
            }
        }
    }

    /// Follows a column change of a source table: adds new columns, drops removed ones.
    pub async fn reshape(&mut self, old: &Shape, new: &Arc<Shape>) -> Result<()> {
        let target = self.names.target(&new.table);
        let dropped: Vec<&Column> = old
            .columns
            .iter()
            .filter(|c| !new.columns.iter().any(|n| n.name == c.name))
            .collect();
        for c in dropped {
            let stmt = format!(
                "ALTER TABLE {} DROP COLUMN {}",
                self.qualified(&target),
                self.ident(&c.name)
            );
            let exists = self
                .columns
                .get(&target)
                .is_none_or(|s| s.contains_key(&c.name));
            if exists {
                self.schema_change(&stmt).await?;
                tracing::info!(
                    "{target}: dropped column {} that the source dropped",
                    c.name
                );
            }
            if let Some(s) = self.columns.get_mut(&target) {
                s.remove(&c.name);
            }
        }
        self.check_shape(new).await
    }

    /// Appends one statement to the buffer (counted: results come back in order).
    /// Returns where the statement stands in the buffer.
    fn add(&mut self, stmt: &str) -> std::ops::Range<usize> {
        let start = self.buf.len();
        self.buf.push_str(stmt);
        let span = start..self.buf.len();
        self.buf.push_str(";\n");
        self.stmts += 1;
        span
    }

    fn begin_if_needed(&mut self) {
        if !self.in_txn {
            self.add(self.dialect.begin());
            self.in_txn = true;
        }
    }

    async fn send(&mut self) -> Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let sql = std::mem::take(&mut self.buf);
        let tags = std::mem::take(&mut self.tags);
        let stmts = std::mem::take(&mut self.stmts);
        let expects = std::mem::take(&mut self.expects);
        self.open_bytes += sql.len() as u64;
        let sent = if expects.is_empty() {
            self.dst.exec(&sql).await.map(|()| Vec::new())
        } else {
            self.dst.exec_counts(&sql).await
        };
        let counts = match sent {
            Ok(c) => c,
            Err(e) => {
                let marks = self.marks.clone();
                self.rollback().await;
                if e.is_transient() || tags.is_empty() {
                    return Err(e);
                }
                return Err(self.locate(e, &sql, &tags, &marks).await);
            }
        };
        if expects.is_empty() {
            return Ok(());
        }
        if counts.len() != stmts {
            self.rollback().await;
            return Err(Error::definite(format!(
                "applying changes: {stmts} statements were sent but {} results came back, \
                 so Ferry cannot tell whether every change found its row",
                counts.len()
            ))
            .with_hint("this is a bug in Ferry: report it with the task's log"));
        }
        for e in expects {
            if counts[e.stmt] > 0 {
                continue;
            }
            if e.keyless {
                self.rollback().await;
                return Err(Error::definite(format!(
                    "{}: {} from the source matched no row on the target ({}); the table has \
                     no primary key, so rows are matched on every column, and the target holds no \
                     row equal to the source's old row ({})",
                    e.table, e.what, e.at, e.row
                ))
                .with_hint(
                    "the target's copy of this table differs from the source (changed on the target, \
                     or copied differently): run `ferry compare`, then copy the table again \
                     (existing_data: drop); a primary key on the source table avoids matching on \
                     every column",
                ));
            }
            self.open_unmatched += 1;
            tracing::warn!(
                table = %e.table,
                "{}: {} from the source found no row with its key on the target ({}); \
                 row ({}) — counted as unmatched",
                e.table,
                e.what,
                e.at,
                e.row
            );
        }
        Ok(())
    }

    /// Names what the target refused: the table, the source transaction and (for a
    /// multi-row insert) the row. When the buffer held statements for several
    /// tables, they run again one by one in a transaction that is rolled back, to find
    /// the one that fails.
    async fn locate(
        &mut self,
        e: Error,
        sql: &str,
        tags: &[Tag],
        marks: &[Option<Position>],
    ) -> Error {
        let mut culprit = None;
        let same_place = tags.iter().all(|t| {
            t.table == tags[0].table && t.from.first() == tags[0].from.first() && t.from.len() <= 1
        });
        if tags.len() == 1 || same_place {
            culprit = Some(if tags.len() == 1 {
                &tags[0]
            } else {
                &tags[tags.len() - 1]
            });
        } else if self.dst.exec(self.dialect.begin()).await.is_ok() {
            for t in tags {
                if self.dst.exec(&sql[t.span.clone()]).await.is_err() {
                    culprit = Some(t);
                    break;
                }
            }
            let _ = self.dst.exec("ROLLBACK").await;
        }
        let at = |i: usize| match marks.get(i) {
            Some(Some(p)) => format!("the source transaction at {p}"),
            _ => "a source transaction".to_string(),
        };
        let Some(t) = culprit else {
            let mut tables: Vec<String> = tags.iter().map(|t| t.table.to_string()).collect();
            tables.dedup();
            let first = tags
                .iter()
                .flat_map(|t| t.from.iter())
                .min()
                .copied()
                .unwrap_or(0);
            return e.context(format!(
                "applying changes to {} (from {} on)",
                tables.join(", "),
                at(first)
            ));
        };
        // the server may name the row of a multi-row statement
        let row = self
            .dialect
            .failed_row(&e)
            .filter(|n| *n >= 1 && *n <= t.from.len());
        let (from, mut row_text) = match row {
            Some(n) => (t.from[n - 1], t.rows.get(n - 1).map(|r| shorten(r))),
            None if t.from.len() == 1 => (t.from[0], t.rows.first().map(|r| shorten(r))),
            None => (t.from.iter().min().copied().unwrap_or(0), None),
        };
        if tags.len() > 1 && same_place {
            // several statements of one table and one source transaction, not replayed:
            // the table and the transaction are right, which row is not known
            row_text = None;
        }
        let e = e.context(format!(
            "applying changes to {} (source table {}, {}{})",
            t.table,
            t.source,
            if row.is_none() && t.from.len() > 1 {
                format!("one of its rows from {} on", at(from))
            } else {
                at(from)
            },
            row_text.map(|r| format!(", row {r}")).unwrap_or_default()
        ));
        // a fault that passes (a full disk, a lost connection) keeps its own hint
        if e.is_transient() {
            return e;
        }
        e.with_hint("a value does not fit its target column (see docs/type-mapping.md): fix it on the source, or exclude the table, then run the task again")
    }

    fn flush_insert(&mut self) -> Result<()> {
        let Some(p) = self.insert.take() else {
            return Ok(());
        };
        let cols: Vec<String> = p
            .shape
            .columns
            .iter()
            .map(|c| self.ident(&c.name))
            .collect();
        let mut sql = format!(
            "{} VALUES {}",
            self.dialect.insert_head(&self.qualified(&p.target), &cols),
            p.rows.join(", ")
        );
        if !p.shape.key.is_empty() {
            sql.push_str(&self.dialect.upsert_tail(&cols, &p.shape.key));
        }
        let span = self.add(&sql);
        self.tags.push(Tag {
            span,
            table: p.target,
            source: p.shape.table.clone(),
            from: p.from,
            rows: p.rows,
        });
        Ok(())
    }

    async fn push(&mut self, stmt: String) -> Result<()> {
        self.push_tagged(stmt, None).await
    }

    /// Buffers a statement; `table` names the table of a row change.
    async fn push_tagged(
        &mut self,
        stmt: String,
        table: Option<(&TableId, &TableId)>,
    ) -> Result<()> {
        self.flush_insert()?;
        let span = self.add(&stmt);
        if let Some((t, source)) = table {
            self.tags.push(Tag {
                span,
                table: t.clone(),
                source: source.clone(),
                from: vec![self.mark()],
                rows: Vec::new(),
            });
        }
        if self.buf.len() >= FLUSH_BYTES {
            self.send().await?;
        }
        Ok(())
    }

    /// Adds one full row to the pending multi-row upsert of its table.
    async fn upsert(&mut self, shape: &Arc<Shape>, row: &[Value]) -> Result<()> {
        let mut lits = Vec::with_capacity(row.len());
        for (i, v) in row.iter().enumerate() {
            lits.push(self.lit(shape, i, v)?);
        }
        let key_text = shape
            .key
            .iter()
            .map(|i| lits[*i].as_str())
            .collect::<Vec<_>>()
            .join("\u{1}");
        let same = self.insert.as_ref().is_some_and(|p| {
            Arc::ptr_eq(&p.shape, shape)
                && p.rows.len() < ROWS_PER_INSERT
                && (shape.key.is_empty() || !p.keys.contains(&key_text))
        });
        if !same {
            self.flush_insert()?;
            if self.buf.len() >= FLUSH_BYTES {
                self.send().await?;
            }
            self.insert = Some(PendingInsert {
                shape: shape.clone(),
                target: self.names.target(&shape.table),
                rows: Vec::new(),
                from: Vec::new(),
                keys: HashSet::new(),
            });
        }
        let mark = self.mark();
        if let Some(p) = self.insert.as_mut() {
            p.rows.push(format!("({})", lits.join(", ")));
            p.from.push(mark);
            if !shape.key.is_empty() {
                p.keys.insert(key_text);
            }
        }
        Ok(())
    }

    /// Applies one row change inside the open target transaction.
    pub async fn row(&mut self, shape: &Arc<Shape>, op: RowOp) -> Result<()> {
        self.check_shape(shape).await?;
        self.begin_if_needed();
        self.open_rows += 1;
        let target = self.names.target(&shape.table);
        let t = self.qualified(&target);
        let one_row = shape.key.is_empty();
        match op {
            RowOp::Insert(row) => self.upsert(shape, &row).await?,
            RowOp::Update { old, new } => {
                let full: Option<Vec<Value>> = new
                    .iter()
                    .map(|c| match c {
                        Cell::Value(v) => Some(v.clone()),
                        Cell::Unchanged => None,
                    })
                    .collect();
                let key_same = match (&old, &full) {
                    (None, _) => true,
                    (Some(o), Some(n)) => shape.key.iter().all(|i| o[*i] == n[*i]),
                    (Some(_), None) => false,
                };
                match (full, key_same && !one_row) {
                    (Some(row), true) => self.upsert(shape, &row).await?,
                    (full, _) => {
                        let mut sets = Vec::new();
                        for (i, c) in new.iter().enumerate() {
                            if let Cell::Value(v) = c {
                                sets.push(format!(
                                    "{} = {}",
                                    self.ident(&shape.columns[i].name),
                                    self.lit(shape, i, v)?
                                ));
                            }
                        }
                        let old_row: Vec<Value> = match old {
                            Some(o) => o,
                            None => new
                                .iter()
                                .map(|c| match c {
                                    Cell::Value(v) => v.clone(),
                                    Cell::Unchanged => Value::Null,
                                })
                                .collect(),
                        };
                        let pred = self.predicate(shape, &target, &old_row)?;
                        let stmt = self.one_row_statement(
                            &t,
                            &format!("UPDATE {t} SET {}", sets.join(", ")),
                            &pred,
                            one_row,
                        );
                        self.push_checked(stmt, shape, &target, "an UPDATE", &old_row)
                            .await?;
                        // a key-changing UPDATE of a row the target lacks (a replayed
                        // overlap) must still leave the new row; when the UPDATE found
                        // its row, upserting the same full image changes nothing
                        if let (Some(row), false) = (full, one_row) {
                            self.upsert(shape, &row).await?;
                        }
                    }
                }
            }
            RowOp::Delete(old) => {
                let pred = self.predicate(shape, &target, &old)?;
                let stmt = self.one_row_statement(&t, &format!("DELETE FROM {t}"), &pred, one_row);
                self.push_checked(stmt, shape, &target, "a DELETE", &old)
                    .await?;
            }
        }
        Ok(())
    }

    /// `UPDATE …`/`DELETE …` with a predicate; limited to one row for keyless tables.
    fn one_row_statement(&self, t: &str, head: &str, pred: &str, one_row: bool) -> String {
        if one_row {
            self.dialect.one_row_statement(t, head, pred)
        } else {
            format!("{head} WHERE {pred}")
        }
    }

    /// Empties tables (inside the transaction, which a TRUNCATE may commit).
    pub async fn truncate(&mut self, tables: &[TableId]) -> Result<()> {
        self.begin_if_needed();
        for t in tables {
            let target = self.names.target(t);
            let stmt = self.dialect.truncate_in_txn(&target);
            self.push(stmt).await?;
        }
        Ok(())
    }

    /// Adds a statement of Ferry's own (a checkpoint row) to the open target
    /// transaction, so it commits or rolls back with the changes it describes.
    pub async fn statement(&mut self, sql: &str) -> Result<()> {
        self.begin_if_needed();
        self.push(sql.to_string()).await
    }

    /// Sends what is buffered, so that the open target transaction can take a bulk
    /// load on the same connection (a backfill chunk); returns that connection.
    pub async fn bulk_conn(&mut self) -> Result<&mut Conn> {
        self.begin_if_needed();
        self.flush_insert()?;
        self.send().await?;
        Ok(&mut self.dst)
    }

    /// Counts the rows (and about the bytes) a bulk load added to the open target
    /// transaction.
    pub fn bulk_rows(&mut self, rows: u64, bytes: u64) {
        self.open_rows += rows;
        self.open_bytes += bytes;
    }

    /// Marks the end of a source transaction (applied, not yet committed).
    pub fn end_source_txn(&mut self) {
        self.open_txns += 1;
    }

    /// Commits the open target transaction together with `position`.
    pub async fn commit(&mut self, position: &Position, commit_time_us: Option<i64>) -> Result<()> {
        self.begin_if_needed();
        self.flush_insert()?;
        let now = now_us();
        let (t, p) = (
            self.dst.literal(&self.fence.task),
            self.dst.literal(&position.to_string()),
        );
        // changes that must find their row are checked before the COMMIT is sent
        if !self.expects.is_empty() {
            self.send().await?;
        }
        let tasks = format!(
            "UPDATE ferry.tasks SET position = {p}, phase = 'incremental', updated_at = {} WHERE task = {t}",
            self.dst.literal(&(now / 1_000_000).to_string())
        );
        self.add(&tasks);
        let unmatched = if self.open_unmatched > 0 {
            format!(", unmatched = unmatched + {}", self.open_unmatched)
        } else {
            String::new()
        };
        let stream = format!(
            "UPDATE ferry.stream SET source_commit_us = {}, applied_at_us = {now}, txns = txns + {}, row_changes = row_changes + {}{unmatched} WHERE task = {t}",
            commit_time_us.map(|v| v.to_string()).unwrap_or_else(|| "source_commit_us".into()),
            self.open_txns,
            self.open_rows,
        );
        self.add(&stream);
        // in the same round trip as the COMMIT: a run that lost the task commits nothing
        let fence = self.fence.check_sql(&self.dst);
        self.add(&fence);
        self.buf.push_str("COMMIT");
        self.stmts += 1;
        if let Err(e) = self.send().await {
            let _ = self.dst.exec("ROLLBACK").await;
            return Err(self.fence.explain(&mut self.dst, e).await);
        }
        self.in_txn = false;
        self.marks.clear();
        self.applied.txns += self.open_txns;
        self.applied.rows += self.open_rows;
        self.applied.unmatched += self.open_unmatched;
        self.open_txns = 0;
        self.open_rows = 0;
        self.open_unmatched = 0;
        Ok(())
    }

    /// Abandons the open target transaction (its source transactions will be read again).
    pub async fn rollback(&mut self) {
        self.buf.clear();
        self.tags.clear();
        self.marks.clear();
        self.stmts = 0;
        self.expects.clear();
        self.open_unmatched = 0;
        self.insert = None;
        if self.in_txn {
            let _ = self.dst.exec("ROLLBACK").await;
        }
        self.in_txn = false;
        self.open_rows = 0;
        self.open_bytes = 0;
        self.open_txns = 0;
    }

    /// The target connection (for statements outside the stream).
    pub fn conn(&mut self) -> &mut Conn {
        &mut self.dst
    }
}

/// Microseconds since the Unix epoch.
pub fn now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

/// A transient error asking the run loop to reconnect at once and resume from the
/// last committed position.
pub fn restart(why: &str) -> Error {
    Error::transient(format!("restarting the stream: {why}")).with_kind(ErrorKind::RestartStream)
}

/// At most 200 characters of a row's text, for an error message.
fn shorten(s: &str) -> String {
    if s.chars().count() > 200 {
        format!("{}…", s.chars().take(200).collect::<String>())
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn row_images_are_bounded() {
        let col = |i: usize| Column::new(format!("c{i}"), "text", LogicalType::Text);
        let shape = Shape {
            table: TableId::new("s", "t"),
            columns: (0..3).map(col).collect(),
            key: vec![],
        };
        let row = vec![Value::Int(1), Value::Bytes(b"ef\0\0".to_vec()), Value::Null];
        assert_eq!(
            Applier::row_image(&shape, &row),
            "c0=1, c1=0x65660000, c2=NULL"
        );
        let wide = Shape {
            columns: (0..100).map(col).collect(),
            ..shape
        };
        let row: Vec<Value> = (0..100).map(|_| Value::Text("é".repeat(200))).collect();
        let image = Applier::row_image(&wide, &row);
        assert!(image.len() <= MAX_ROW_IMAGE + 4, "{}", image.len());
        assert!(image.ends_with(" …"));
    }
}
