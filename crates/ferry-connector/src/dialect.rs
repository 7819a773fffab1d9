//! How an engine spells SQL. Pure functions of their arguments: the engine builds
//! every statement it sends through a dialect, never by naming an engine.

use ferry_core::{Column, Engine, Error, LogicalType, Result, TableId, Value};

/// How a target column is compared with a value when the applier looks a row up by
/// every column (a table without a key): the form its type compares exactly in. The
/// target's catalog says which form a column takes ([`Dialect::match_forms_sql`]).
#[derive(Debug, Clone, PartialEq)]
pub enum MatchForm {
    /// `col = literal`: the type's `=` is exact equality.
    Equal,
    /// The type has no usable `=` (PostgreSQL `json`, `xml`, geometric types): both
    /// sides compared in the type's own text form; carries the column's type.
    Text(String),
    /// A JSON column compared with a JSON value built from the literal.
    Json,
    /// The type's `=` holds for distinct values (`1.0 = 1.00`, `'1 day' = '24
    /// hours'`, `-0 = 0`): `=` (an index can serve it) and the text form, so of two
    /// rows equal under `=` the one the source changed is found; carries the type.
    EqualAndText(String),
    /// A character column whose collation may ignore case, accents and trailing
    /// spaces: `=` and the very same string (binary collation, same length).
    EqualExactString,
    /// A fixed-length character column (stored without trailing spaces): `=` and the
    /// binary collation.
    EqualSameCase,
}

/// SQL spelling of one engine.
pub trait Dialect: Send + Sync {
    /// Quotes an identifier.
    fn ident(&self, s: &str) -> String;

    /// Quotes a string literal.
    fn literal(&self, s: &str) -> String;

    /// `schema.table`, quoted.
    fn qualified(&self, t: &TableId) -> String {
        format!("{}.{}", self.ident(&t.schema), self.ident(&t.name))
    }

    /// The statement that opens a transaction.
    fn begin(&self) -> &'static str;

    /// A query returning a row when table `t` exists.
    fn table_exists_sql(&self, t: &TableId) -> String;

    /// The session setting of a connection that writes replicated rows (foreign keys
    /// hold on the source already, and a subset of tables may be replicated), and
    /// whether it must succeed (`false`: best effort, a refusal is ignored).
    fn writer_session(&self) -> (&'static str, bool);

    /// The SQL literal of `v`, a value of (source) logical type `ty` (`NULL` for a
    /// null value); an error says why the target cannot store it.
    fn value_literal(&self, v: &Value, ty: &LogicalType) -> std::result::Result<String, String>;

    /// The value to write instead of `v` into column `col` (read from a `from`
    /// source) when the target would refuse `v` as it is although it stores the same
    /// thing; `None`: write `v`. An error says why the column cannot hold it.
    fn fit_for_write(
        &self,
        _v: &Value,
        _col: &Column,
        _from: Engine,
    ) -> std::result::Result<Option<Value>, String> {
        Ok(None)
    }

    /// `INSERT INTO t (cols)` and whatever lets the source's values go in as they
    /// are (also into identity columns the target would generate); `VALUES …`
    /// follows.
    fn insert_head(&self, qualified: &str, cols: &[String]) -> String;

    /// The tail that makes an INSERT of columns `cols` (quoted) an upsert on the key
    /// made of the columns at `key` (not empty): a row with the same key is updated
    /// to the new values.
    fn upsert_tail(&self, cols: &[String], key: &[usize]) -> String;

    /// `head` (`UPDATE t SET …` / `DELETE FROM t`) limited to one row matching
    /// `pred`, in table `qualified` that has no key.
    fn one_row_statement(&self, qualified: &str, head: &str, pred: &str) -> String;

    /// Empties table `t` inside an open transaction (without committing it).
    fn truncate_in_txn(&self, t: &TableId) -> String;

    /// A query over the columns of table `t` returning per column: its name, its
    /// type, and how it is matched — `text` ([`MatchForm::Text`]), `json`, `exact`
    /// ([`MatchForm::EqualAndText`]), `string` ([`MatchForm::EqualExactString`]),
    /// `char` ([`MatchForm::EqualSameCase`]), anything else [`MatchForm::Equal`]. No
    /// row: there is no such table.
    fn match_forms_sql(&self, t: &TableId) -> String;

    /// A query over the unique indexes and constraints of table `t` (its primary key
    /// included) returning one row per key column, in key order and grouped by
    /// index: the index's name and the column's name — NULL for a part the applier
    /// cannot compute from a row (an expression, a column prefix, an exclusion
    /// constraint), which makes every row of the table conflict on that index. Read
    /// by parallel apply to keep the order of changes that collide on a unique
    /// value; `None`: the engine cannot say.
    fn unique_keys_sql(&self, _t: &TableId) -> Option<String> {
        None
    }

    /// A query over the foreign keys of table `t` returning one row per column pair,
    /// in key order and grouped by constraint: the constraint's name, the child
    /// column, the parent table's schema and name, and the referenced column. Read
    /// by parallel apply to keep a child's change in order with its parent row's;
    /// `None`: the engine cannot say.
    fn foreign_keys_sql(&self, _t: &TableId) -> Option<String> {
        None
    }

    /// One row of [`Dialect::match_forms_sql`]: the column's name and form.
    fn match_form_row(&self, row: &[Option<String>]) -> Option<(String, MatchForm)> {
        let ty = || row.get(1).cloned().flatten();
        let form = match row.get(2).and_then(|c| c.as_deref()) {
            Some("text") => MatchForm::Text(ty()?),
            Some("json") => MatchForm::Json,
            Some("exact") => MatchForm::EqualAndText(ty()?),
            Some("string") => MatchForm::EqualExactString,
            Some("char") => MatchForm::EqualSameCase,
            _ => MatchForm::Equal,
        };
        Some((row.first().cloned().flatten()?, form))
    }

    /// The predicate finding column `ident` (quoted) holding `v`, whose literal is
    /// `literal`, compared in `form` (`ident IS NULL` for a null value).
    fn match_predicate(&self, ident: &str, v: &Value, literal: &str, form: &MatchForm) -> String;

    /// The target type of column `c` read from a `from` source (the same engine
    /// keeps the native type, another engine gets the documented mapping).
    fn column_type(&self, c: &Column, from: Engine) -> Result<String>;

    /// The target default of column `c` read from a `from` source, when it has one
    /// the target can take.
    fn column_default(&self, c: &Column, from: Engine) -> Option<String>;

    /// Whether schema statements run inside an open transaction (`false`: they
    /// commit it implicitly).
    fn ddl_is_transactional(&self) -> bool;

    /// The row (from 1) of a multi-row INSERT that the error `e` names, when the
    /// server names one.
    fn failed_row(&self, _e: &Error) -> Option<usize> {
        None
    }
}
