//! Applying one changes file of an incremental set: its net row changes, in one
//! target transaction with the file's done mark. The changes are idempotent (a Put
//! is an upsert of the final image, a Delete removes what is there), so a file the
//! target had applied but not marked cannot exist, and one applied twice would not
//! matter either. Statements are spelled by the target's dialect, as the stream's
//! applier spells them.

use super::precheck::RestoreTable;
use crate::codec::Change;
use ferry_core::change::Cell;
use ferry_core::chunk::Chunk;
use ferry_core::{Column, Engine, Error, Result, Value};
use ferry_engine::checkpoint::{mark_done_sql, Fence};
use ferry_engine::conn::Conn;

/// Rows per multi-row upsert.
const ROWS_PER_INSERT: usize = 500;
/// Statements are sent once the buffer holds this many bytes.
const FLUSH_BYTES: usize = 512 * 1024;

/// Statement builder for one table.
struct Writer<'a> {
    dialect: &'static dyn ferry_connector::Dialect,
    from: Engine,
    qualified: String,
    columns: Vec<&'a Column>,
    idents: Vec<String>,
    key: Vec<usize>,
    table: String,
}

impl Writer<'_> {
    /// The literal writing `v` into column `i`.
    fn lit(&self, i: usize, v: &Value) -> Result<String> {
        let c = self.columns[i];
        let v = match self.dialect.fit_for_write(v, c, self.from) {
            Ok(Some(w)) => w,
            Ok(None) => v.clone(),
            Err(why) => return Err(self.value_error(i, v, why)),
        };
        self.dialect
            .value_literal(&v, &c.logical)
            .map_err(|why| self.value_error(i, &v, why))
    }

    /// The literal a stored value is looked up by.
    fn key_lit(&self, i: usize, v: &Value) -> Result<String> {
        self.dialect
            .value_literal(v, &self.columns[i].logical)
            .map_err(|why| self.value_error(i, v, why))
    }

    fn value_error(&self, i: usize, v: &Value, why: String) -> Error {
        Error::definite(format!(
            "table {}, column {}: value {} cannot be stored: {why}",
            self.table,
            self.columns[i].name,
            v.describe()
        ))
        .with_hint("exclude the table (--exclude), or restore into the set's own engine")
    }

    fn key_predicate(&self, key: &[Value]) -> Result<String> {
        let mut parts = Vec::new();
        for (k, v) in self.key.iter().zip(key) {
            let l = self.key_lit(*k, v)?;
            parts.push(if matches!(v, Value::Null) {
                format!("{} IS NULL", self.idents[*k])
            } else {
                format!("{} = {l}", self.idents[*k])
            });
        }
        Ok(parts.join(" AND "))
    }

    fn insert(&self, rows: &[String]) -> String {
        let mut sql = format!(
            "{} VALUES {}",
            self.dialect.insert_head(&self.qualified, &self.idents),
            rows.join(", ")
        );
        if !self.key.is_empty() {
            sql.push_str(&self.dialect.upsert_tail(&self.idents, &self.key));
        }
        sql
    }
}

/// Applies `changes` (one file, chunk `chunk` of the restore's plan) to table `t`
/// in one transaction with the file's done mark; returns the changes applied.
pub async fn apply_file(
    dst: &mut Conn,
    fence: &Fence,
    from: Engine,
    t: &RestoreTable,
    chunk: &Chunk,
    changes: &[Change],
) -> Result<u64> {
    let columns: Vec<&Column> = t.table.copied_columns().collect();
    let dialect = dst.dialect();
    let w = Writer {
        dialect,
        from,
        qualified: dst.qualified(&t.target),
        idents: columns.iter().map(|c| dialect.ident(&c.name)).collect(),
        key: t
            .table
            .primary_key
            .iter()
            .filter_map(|k| columns.iter().position(|c| &c.name == k))
            .collect(),
        columns,
        table: t.target.to_string(),
    };
    let arrays = super::array_columns(&t.table, from, dst.connector().engine());
    let converted;
    let changes = if arrays.is_empty() {
        changes
    } else {
        converted = changes
            .iter()
            .map(|c| match c {
                Change::Put(cells) => {
                    let mut cells = cells.clone();
                    for &i in &arrays {
                        if let Some(Cell::Value(v)) = cells.get_mut(i) {
                            super::native_arrays(std::slice::from_mut(v), &[0]);
                        }
                    }
                    Change::Put(cells)
                }
                d => d.clone(),
            })
            .collect::<Vec<_>>();
        &converted[..]
    };
    dst.exec(dialect.begin()).await?;
    match apply(dst, &w, changes).await {
        Ok(()) => {
            let mark = mark_done_sql(dst, &fence.task, chunk, changes.len() as u64);
            dst.exec(&mark).await?;
            let commit = format!("{}; COMMIT", fence.check_sql(dst));
            if let Err(e) = dst.exec(&commit).await {
                let _ = dst.exec("ROLLBACK").await;
                return Err(fence.explain(dst, e).await);
            }
            Ok(changes.len() as u64)
        }
        Err(e) => {
            let _ = dst.exec("ROLLBACK").await;
            Err(e)
        }
    }
}

async fn apply(dst: &mut Conn, w: &Writer<'_>, changes: &[Change]) -> Result<()> {
    let mut buf = String::new();
    let mut pending: Vec<String> = Vec::new();
    let mut pending_keys = std::collections::HashSet::new();
    let flush_insert = |buf: &mut String,
                        pending: &mut Vec<String>,
                        keys: &mut std::collections::HashSet<String>| {
        if !pending.is_empty() {
            if !buf.is_empty() {
                buf.push_str(";\n");
            }
            buf.push_str(&w.insert(pending));
            pending.clear();
            keys.clear();
        }
    };
    for c in changes {
        match c {
            Change::Put(cells) if cells.len() != w.columns.len() => {
                return Err(Error::definite(format!(
                    "table {}: a change has {} values but the table has {} copied columns",
                    w.table,
                    cells.len(),
                    w.columns.len()
                ))
                .with_hint("the set is damaged or of a newer Ferry: restore with a newer Ferry"));
            }
            Change::Put(cells) => {
                let full: Option<Vec<&Value>> = cells
                    .iter()
                    .map(|c| match c {
                        Cell::Value(v) => Some(v),
                        Cell::Unchanged => None,
                    })
                    .collect();
                match full {
                    Some(values) => {
                        let mut lits = Vec::with_capacity(values.len());
                        for (i, v) in values.iter().enumerate() {
                            lits.push(w.lit(i, v)?);
                        }
                        let key_text = w
                            .key
                            .iter()
                            .map(|k| lits[*k].as_str())
                            .collect::<Vec<_>>()
                            .join("\u{1}");
                        if pending.len() >= ROWS_PER_INSERT
                            || (!w.key.is_empty() && pending_keys.contains(&key_text))
                        {
                            flush_insert(&mut buf, &mut pending, &mut pending_keys);
                        }
                        pending.push(format!("({})", lits.join(", ")));
                        if !w.key.is_empty() {
                            pending_keys.insert(key_text);
                        }
                    }
                    None => {
                        // some columns keep the target's value: an UPDATE by key
                        if w.key.is_empty() {
                            return Err(Error::definite(format!(
                                "table {}: a change keeps unchanged columns but the table has no key to find its row by",
                                w.table
                            ))
                            .with_hint("give the source table a primary key, then take a new full backup"));
                        }
                        flush_insert(&mut buf, &mut pending, &mut pending_keys);
                        let mut sets = Vec::new();
                        for (i, c) in cells.iter().enumerate() {
                            if let Cell::Value(v) = c {
                                sets.push(format!("{} = {}", w.idents[i], w.lit(i, v)?));
                            }
                        }
                        let key: Vec<Value> = w
                            .key
                            .iter()
                            .map(|k| match &cells[*k] {
                                Cell::Value(v) => v.clone(),
                                Cell::Unchanged => Value::Null,
                            })
                            .collect();
                        if !buf.is_empty() {
                            buf.push_str(";\n");
                        }
                        buf.push_str(&format!(
                            "UPDATE {} SET {} WHERE {}",
                            w.qualified,
                            sets.join(", "),
                            w.key_predicate(&key)?
                        ));
                    }
                }
            }
            Change::Delete(key) => {
                flush_insert(&mut buf, &mut pending, &mut pending_keys);
                if !buf.is_empty() {
                    buf.push_str(";\n");
                }
                if w.key.is_empty() {
                    // a table without a key: the values are the whole row; one row goes
                    if key.len() != w.columns.len() {
                        return Err(Error::definite(format!(
                            "table {}: a delete names {} values but the table has no key and {} columns",
                            w.table,
                            key.len(),
                            w.columns.len()
                        )));
                    }
                    let mut parts = Vec::new();
                    for (i, v) in key.iter().enumerate() {
                        let l = w.key_lit(i, v)?;
                        parts.push(if matches!(v, Value::Null) {
                            format!("{} IS NULL", w.idents[i])
                        } else {
                            format!("{} = {l}", w.idents[i])
                        });
                    }
                    let head = format!("DELETE FROM {}", w.qualified);
                    buf.push_str(&w.dialect.one_row_statement(
                        &w.qualified,
                        &head,
                        &parts.join(" AND "),
                    ));
                } else {
                    if key.len() != w.key.len() {
                        return Err(Error::definite(format!(
                            "table {}: a delete names {} key values, the key has {} columns",
                            w.table,
                            key.len(),
                            w.key.len()
                        ))
                        .with_hint(
                            "the set is damaged or of a newer Ferry: restore with a newer Ferry",
                        ));
                    }
                    buf.push_str(&format!(
                        "DELETE FROM {} WHERE {}",
                        w.qualified,
                        w.key_predicate(key)?
                    ));
                }
            }
        }
        if buf.len() >= FLUSH_BYTES {
            dst.exec(&buf).await?;
            buf.clear();
        }
    }
    flush_insert(&mut buf, &mut pending, &mut pending_keys);
    if !buf.is_empty() {
        dst.exec(&buf).await?;
    }
    Ok(())
}
