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
//!
//! Consecutive changes of one table are sent as one statement where the outcome is
//! the same: upserts of distinct keys as one multi-row INSERT, DELETEs of distinct
//! keys of a keyed table as one `DELETE … WHERE k IN (…)` (a one-column key compared
//! with `=`) or `… WHERE (row 1) OR (row 2) …` (other keys, each row compared in its
//! exact form). A DELETE by key removes at most one row per key, so the rows it
//! deleted say how many of its keys the target did not hold: those are counted as
//! unmatched, and the warning names the table, the source transactions and the
//! statement's keys. A table without a key is still changed one row per statement.

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
    /// The row image it looked for (of a multi-row DELETE: its rows' keys).
    row: String,
    /// How many rows it must find (a multi-row DELETE by key: one per row).
    expected: u64,
}

/// Consecutive DELETEs of one keyed table, sent as one statement: `k IN (…)` for a
/// one-column key compared with `=`, the rows' predicates joined by OR otherwise.
/// Its keys are distinct (a repeated key starts a new statement), so the rows it
/// deleted tell how many found no row.
struct PendingDelete {
    shape: Arc<Shape>,
    target: TableId,
    /// `k IN (…)`: the key literals; otherwise the rows' predicates.
    in_list: bool,
    terms: Vec<String>,
    /// Per row: the source transaction it came from (an index into `Applier::marks`).
    from: Vec<usize>,
    /// The rows' key images, for messages.
    images: Vec<String>,
    keys: HashSet<String>,
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
    delete: Option<PendingDelete>,
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
            delete: None,
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
        self.in_txn || !self.buf.is_empty() || self.insert.is_some() || self.delete.is_some()
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
            expected: 1,
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
            let found = counts[e.stmt];
            if found >= e.expected {
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
            let missing = e.expected - found;
            self.open_unmatched += missing;
            if e.expected == 1 {
                tracing::warn!(
                    table = %e.table,
                    "{}: {} from the source found no row with its key on the target ({}); \
                     row ({}) — counted as unmatched",
                    e.table,
                    e.what,
                    e.at,
                    e.row
                );
            } else {
                tracing::warn!(
                    table = %e.table,
                    "{}: {missing} of {} DELETEs from the source found no row with their key on \
                     the target ({}); their rows are among ({}) — counted as unmatched",
                    e.table,
                    e.expected,
                    e.at,
                    e.row
                );
            }
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

    /// Adds the pending multi-row statement (an upsert or a DELETE) to the buffer.
    fn flush_insert(&mut self) -> Result<()> {
        self.flush_delete();
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

    fn flush_delete(&mut self) {
        let Some(p) = self.delete.take() else {
            return;
        };
        let t = self.qualified(&p.target);
        let sql = if p.in_list {
            let k = self.ident(&p.shape.columns[p.shape.key[0]].name);
            format!("DELETE FROM {t} WHERE {k} IN ({})", p.terms.join(", "))
        } else {
            format!("DELETE FROM {t} WHERE {}", p.terms.join(" OR "))
        };
        let n = p.terms.len();
        let first = p.from.first().copied().unwrap_or(0);
        let at = if p.from.iter().all(|f| *f == first) {
            self.describe_mark(first)
        } else {
            match self.marks.get(first) {
                Some(Some(pos)) => format!("the source transactions from the one at {pos} on"),
                _ => "several source transactions".to_string(),
            }
        };
        self.expects.push(Expect {
            stmt: self.stmts,
            table: p.target.clone(),
            what: if n == 1 { "a DELETE" } else { "DELETEs" },
            keyless: false,
            at,
            row: bounded(&p.images.join("; ")),
            expected: n as u64,
        });
        let span = self.add(&sql);
        self.tags.push(Tag {
            span,
            table: p.target,
            source: p.shape.table.clone(),
            from: p.from,
            rows: if n == 1 { p.images } else { Vec::new() },
        });
    }

    /// Adds the DELETE of row `old` of keyed table `shape` to the pending multi-row
    /// DELETE of its table.
    async fn delete_by_key(
        &mut self,
        shape: &Arc<Shape>,
        target: &TableId,
        old: &[Value],
    ) -> Result<()> {
        let mut lits = Vec::with_capacity(shape.key.len());
        for &i in &shape.key {
            lits.push(self.stored_lit(shape, i, &old[i])?);
        }
        let key_text = lits.join("\u{1}");
        let k = shape.key[0];
        let in_list = shape.key.len() == 1
            && !old[k].is_null()
            && self
                .columns
                .get(target)
                .and_then(|c| c.get(&shape.columns[k].name))
                .is_none_or(|f| *f == MatchForm::Equal);
        let term = if in_list {
            lits.swap_remove(0)
        } else {
            format!("({})", self.predicate(shape, target, old)?)
        };
        let same = self.delete.as_ref().is_some_and(|p| {
            Arc::ptr_eq(&p.shape, shape)
                && p.in_list == in_list
                && p.terms.len() < ROWS_PER_INSERT
                && !p.keys.contains(&key_text)
        });
        if !same {
            self.flush_insert()?;
            if self.buf.len() >= FLUSH_BYTES {
                self.send().await?;
            }
            self.delete = Some(PendingDelete {
                shape: shape.clone(),
                target: target.clone(),
                in_list,
                terms: Vec::new(),
                from: Vec::new(),
                images: Vec::new(),
                keys: HashSet::new(),
            });
        }
        let mark = self.mark();
        let image = shape
            .key
            .iter()
            .map(|i| format!("{}={}", shape.columns[*i].name, old[*i].describe()))
            .collect::<Vec<_>>()
            .join(", ");
        if let Some(p) = self.delete.as_mut() {
            p.terms.push(term);
            p.from.push(mark);
            p.images.push(image);
            p.keys.insert(key_text);
        }
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
        if !same || self.delete.is_some() {
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
            RowOp::Delete(old) if !one_row => self.delete_by_key(shape, &target, &old).await?,
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
        self.delete = None;
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

/// At most [`MAX_ROW_IMAGE`] bytes of rows' text, for a message.
fn bounded(s: &str) -> String {
    if s.len() <= MAX_ROW_IMAGE {
        return s.to_string();
    }
    let cut = (0..=MAX_ROW_IMAGE)
        .rev()
        .find(|i| s.is_char_boundary(*i))
        .unwrap_or(0);
    format!("{} …", &s[..cut])
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

    use crate::checkpoint::{CheckpointStore, Claim};
    use ferry_core::{Endpoint, TaskSpec};

    /// An applier writing to the fresh database `url` of `engine`.
    async fn applier(url: &str, engine: Engine) -> Applier {
        let mut c = Conn::connect(&Endpoint::parse(url, "NONE").unwrap())
            .await
            .unwrap();
        c.ensure().await.unwrap();
        let task = format!("apply-test-{}", std::process::id());
        let fence = Fence::claim(&mut c, &task, &Claim::default())
            .await
            .unwrap();
        let spec = TaskSpec::from_yaml(&format!(
            "name: {task}\nkind: migration\nmode: incremental\nsource: {url}\ntarget: {url}\n"
        ))
        .unwrap();
        Applier::new(c, engine, fence, NameMap::new(&spec, &[]))
            .await
            .unwrap()
    }

    fn int_col(name: &str) -> Column {
        Column::new(
            name,
            "int",
            LogicalType::Int {
                bytes: 4,
                unsigned: false,
            },
        )
    }

    async fn count(a: &mut Applier, sql: &str) -> String {
        a.conn().query_text(sql).await.unwrap()[0][0]
            .clone()
            .unwrap_or_default()
    }

    /// 1,000 DELETEs by key over ten source transactions, 100 of whose rows the
    /// target lost: a few multi-row statements, the 100 counted as unmatched, the
    /// other rows gone; a composite key deletes by an OR of its rows; a keyless
    /// table still deletes one row per statement.
    async fn deletes_by_key_in_batches(url: &str, schema: &str, engine: Engine) {
        let mut a = applier(url, engine).await;
        let t = |n: &str| a.qualified(&TableId::new(schema, n));
        let (keyed, pair, nk) = (t("keyed"), t("pair"), t("nk"));
        let mut setup = vec![
            format!("CREATE TABLE {keyed} (id int PRIMARY KEY, v int)"),
            format!("CREATE TABLE {pair} (a int, b int, PRIMARY KEY (a, b))"),
            format!("CREATE TABLE {nk} (a int, b int)"),
            format!("INSERT INTO {pair} VALUES (1, 1), (1, 2), (2, 1)"),
            format!("INSERT INTO {nk} VALUES (1, 1), (1, 1), (2, 2)"),
        ];
        let values: Vec<String> = (1..=1000).map(|i| format!("({i}, {i})")).collect();
        setup.push(format!("INSERT INTO {keyed} VALUES {}", values.join(", ")));
        // the target lost every tenth row
        setup.push(format!("DELETE FROM {keyed} WHERE id % 10 = 0"));
        for s in setup {
            a.conn().exec(&s).await.unwrap();
        }
        let shape = |name: &str, key: Vec<usize>| {
            Arc::new(Shape {
                table: TableId::new(schema, name),
                columns: vec![
                    int_col(if name == "keyed" { "id" } else { "a" }),
                    int_col(if name == "keyed" { "v" } else { "b" }),
                ],
                key,
            })
        };
        let (keyed_s, pair_s, nk_s) = (
            shape("keyed", vec![0]),
            shape("pair", vec![0, 1]),
            shape("nk", vec![]),
        );
        let pos = |i: u64| match engine {
            Engine::Postgres => Position::PgLsn(i),
            _ => Position::Binlog {
                file: "b.000001".into(),
                pos: i,
                gtid: String::new(),
            },
        };
        for txn in 0..10 {
            a.source_transaction(Some(pos(txn + 1)));
            for i in 1..=100 {
                let id = (txn * 100 + i) as i64;
                let row = vec![Value::Int(id), Value::Int(id)];
                a.row(&keyed_s, RowOp::Delete(row)).await.unwrap();
            }
            a.end_source_txn();
        }
        a.flush_insert().unwrap();
        // 1,000 rows in two statements of 500
        assert_eq!(a.buf.matches("DELETE FROM").count(), 2, "{}", &a.buf[..300]);
        assert!(a.buf.contains(" IN ("));
        a.source_transaction(Some(pos(11)));
        for (x, y) in [(1, 2), (2, 1), (3, 3)] {
            let row = vec![Value::Int(x), Value::Int(y)];
            a.row(&pair_s, RowOp::Delete(row)).await.unwrap();
        }
        for _ in 0..2 {
            let row = vec![Value::Int(1), Value::Int(1)];
            a.row(&nk_s, RowOp::Delete(row)).await.unwrap();
        }
        a.end_source_txn();
        a.flush_insert().unwrap();
        assert_eq!(a.buf.matches("DELETE FROM").count(), 5);
        assert_eq!(a.buf.matches(" OR ").count(), 2);
        a.commit(&pos(12), None).await.unwrap();
        // 100 lost rows of keyed, one of pair
        assert_eq!(a.applied.unmatched, 101);
        assert_eq!(a.applied.rows, 1005);
        assert_eq!(
            count(&mut a, &format!("SELECT count(*) FROM {keyed}")).await,
            "0"
        );
        assert_eq!(
            count(&mut a, &format!("SELECT count(*) FROM {pair}")).await,
            "1"
        );
        assert_eq!(
            count(&mut a, &format!("SELECT count(*) FROM {nk}")).await,
            "1"
        );

        // a keyless DELETE that finds no row still fails, naming table, transaction, row
        a.source_transaction(Some(pos(13)));
        let row = vec![Value::Int(1), Value::Int(1)];
        a.row(&nk_s, RowOp::Delete(row)).await.unwrap();
        a.end_source_txn();
        let e = a.commit(&pos(14), None).await.unwrap_err().to_string();
        for want in ["nk", "matched no row", &pos(13).to_string(), "a=1, b=1"] {
            assert!(e.contains(want), "{want} not in {e}");
        }
    }

    #[tokio::test]
    async fn postgres_deletes_by_key_in_batches() {
        let db = ferry_testkit::fresh_pg_database("apply_deletes").await;
        deletes_by_key_in_batches(db.url(), "public", Engine::Postgres).await;
    }

    #[tokio::test]
    async fn mariadb_deletes_by_key_in_batches() {
        let db = ferry_testkit::fresh_mysql_database("apply_deletes").await;
        deletes_by_key_in_batches(db.url(), db.name(), Engine::MySql).await;
    }

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
