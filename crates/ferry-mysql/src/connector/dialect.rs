//! How MySQL/MariaDB spell SQL.

use ferry_connector::{Dialect, MatchForm};
use ferry_core::{Column, Engine, Error, LogicalType, Result, TableId, Value};
use std::collections::HashSet;

/// MySQL/MariaDB's SQL dialect.
pub struct MyDialect;

impl Dialect for MyDialect {
    fn ident(&self, s: &str) -> String {
        crate::conn::quote_ident(s)
    }

    fn literal(&self, s: &str) -> String {
        crate::conn::quote_literal(s)
    }

    fn begin(&self) -> &'static str {
        "START TRANSACTION"
    }

    fn table_exists_sql(&self, t: &TableId) -> String {
        format!(
            "SELECT 1 FROM information_schema.TABLES WHERE TABLE_SCHEMA = {} AND TABLE_NAME = {}",
            self.literal(&t.schema),
            self.literal(&t.name)
        )
    }

    fn writer_session(&self) -> (&'static str, bool) {
        ("SET SESSION foreign_key_checks = 0", true)
    }

    fn value_literal(&self, v: &Value, ty: &LogicalType) -> std::result::Result<String, String> {
        if v.is_null() {
            return Ok("NULL".into());
        }
        // the LOAD DATA field is the value's input form: encoded, then unescaped
        let mut out = Vec::new();
        crate::types::encode_field(v, ty, &mut out)?;
        let raw = unescape_load_data(&out);
        let text = String::from_utf8_lossy(&raw);
        Ok(match (v, crate::types::load_conversion(ty)) {
            (Value::Bytes(_), _) => format!("X'{text}'"),
            (Value::Bits(_), Some(_)) => format!("b'{text}'"),
            (
                Value::Int(_)
                | Value::UInt(_)
                | Value::Bool(_)
                | Value::F32(_)
                | Value::F64(_)
                | Value::Decimal(_),
                _,
            ) => text.into_owned(),
            _ => self.literal(&text),
        })
    }

    fn fit_for_write(
        &self,
        v: &Value,
        col: &Column,
        from: Engine,
    ) -> std::result::Result<Option<Value>, String> {
        // a FLOAT(M,D) column's stored value may lie beyond its declared bound
        if from != Engine::MySql {
            return Ok(None);
        }
        match crate::types::declared_float(&col.native_type) {
            Some((m, d)) => crate::types::fit_declared_float(v, m, d),
            None => Ok(None),
        }
    }

    fn insert_head(&self, qualified: &str, cols: &[String]) -> String {
        format!("INSERT INTO {qualified} ({})", cols.join(", "))
    }

    fn upsert_tail(&self, cols: &[String], key: &[usize]) -> String {
        let in_key: HashSet<usize> = key.iter().copied().collect();
        let mut set: Vec<String> = cols
            .iter()
            .enumerate()
            .filter(|(i, _)| !in_key.contains(i))
            .map(|(_, c)| format!("{c} = VALUES({c})"))
            .collect();
        if set.is_empty() {
            // every column is in the key: a no-op assignment keeps the row
            set.push(format!("{0} = {0}", cols[key[0]]));
        }
        format!(" ON DUPLICATE KEY UPDATE {}", set.join(", "))
    }

    fn one_row_statement(&self, _qualified: &str, head: &str, pred: &str) -> String {
        format!("{head} WHERE {pred} LIMIT 1")
    }

    fn truncate_in_txn(&self, t: &TableId) -> String {
        // TRUNCATE would commit the open transaction
        format!("DELETE FROM {}", self.qualified(t))
    }

    fn match_forms_sql(&self, t: &TableId) -> String {
        let (schema, name) = (self.literal(&t.schema), self.literal(&t.name));
        format!(
            "SELECT COLUMN_NAME, DATA_TYPE, CASE WHEN DATA_TYPE = 'json' THEN 'json' \
               WHEN DATA_TYPE IN ('varchar', 'tinytext', 'text', 'mediumtext', 'longtext') THEN 'string' \
               WHEN DATA_TYPE = 'char' THEN 'char' \
               ELSE 'equal' END \
             FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = {schema} AND TABLE_NAME = {name}"
        )
    }

    fn unique_keys_sql(&self, t: &TableId) -> Option<String> {
        let (schema, name) = (self.literal(&t.schema), self.literal(&t.name));
        // a column prefix (SUB_PART) or a functional part (no COLUMN_NAME) cannot be
        // computed from a row: NULL. InnoDB lets a foreign key reference columns that
        // are not unique: the columns other tables reference count as a key too, so
        // that a child's parent key meets the parent's own changes.
        Some(format!(
            "SELECT CONCAT('u:', INDEX_NAME) AS k, CASE WHEN SUB_PART IS NULL THEN COLUMN_NAME END, \
                    SEQ_IN_INDEX AS o \
             FROM information_schema.STATISTICS \
             WHERE TABLE_SCHEMA = {schema} AND TABLE_NAME = {name} AND NON_UNIQUE = 0 \
             UNION ALL \
             SELECT CONCAT('r:', CONSTRAINT_SCHEMA, '.', CONSTRAINT_NAME), REFERENCED_COLUMN_NAME, \
                    ORDINAL_POSITION \
             FROM information_schema.KEY_COLUMN_USAGE \
             WHERE REFERENCED_TABLE_SCHEMA = {schema} AND REFERENCED_TABLE_NAME = {name} \
             ORDER BY k, o"
        ))
    }

    fn foreign_keys_sql(&self, t: &TableId) -> Option<String> {
        let (schema, name) = (self.literal(&t.schema), self.literal(&t.name));
        Some(format!(
            "SELECT CONSTRAINT_NAME, COLUMN_NAME, REFERENCED_TABLE_SCHEMA, REFERENCED_TABLE_NAME, \
                    REFERENCED_COLUMN_NAME \
             FROM information_schema.KEY_COLUMN_USAGE \
             WHERE TABLE_SCHEMA = {schema} AND TABLE_NAME = {name} \
               AND REFERENCED_TABLE_NAME IS NOT NULL \
             ORDER BY CONSTRAINT_NAME, ORDINAL_POSITION"
        ))
    }

    fn match_predicate(&self, ident: &str, v: &Value, literal: &str, form: &MatchForm) -> String {
        let text = matches!(v, Value::Text(_) | Value::Json(_));
        match (v, form) {
            (Value::Null, _) => format!("{ident} IS NULL"),
            (_, MatchForm::Json) => format!("{ident} = CAST({literal} AS JSON)"),
            (_, MatchForm::EqualExactString) if text => format!(
                "{ident} = {literal} AND {ident} = {literal} COLLATE utf8mb4_bin \
                 AND CHAR_LENGTH({ident}) = CHAR_LENGTH({literal})"
            ),
            (_, MatchForm::EqualSameCase) if text => {
                format!("{ident} = {literal} AND {ident} = {literal} COLLATE utf8mb4_bin")
            }
            // the text forms are not produced by this dialect's catalog query
            _ => format!("{ident} = {literal}"),
        }
    }

    fn column_type(&self, c: &Column, from: Engine) -> Result<String> {
        match from {
            Engine::MySql => Ok(c.native_type.clone()),
            _ => crate::ddl::mysql_type(&c.logical, false),
        }
    }

    fn column_default(&self, c: &Column, from: Engine) -> Option<String> {
        let d = c.default.as_deref()?;
        match from {
            Engine::MySql => Some(d.to_string()),
            _ => crate::ddl::default_from_pg(d, &c.logical),
        }
    }

    fn ddl_is_transactional(&self) -> bool {
        false
    }

    fn failed_row(&self, e: &Error) -> Option<usize> {
        // the server names the row of a multi-row statement: "… at row 2"
        e.message
            .rsplit_once(" at row ")
            .and_then(|(_, r)| r.split(|c: char| !c.is_ascii_digit()).next())
            .and_then(|n| n.parse::<usize>().ok())
    }
}

/// Undoes `LOAD DATA` field escaping (`\\`, `\t`, `\n`, `\r`, `\0`).
fn unescape_load_data(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'\\' && i + 1 < s.len() {
            out.push(match s[i + 1] {
                b't' => b'\t',
                b'n' => b'\n',
                b'r' => b'\r',
                b'0' => 0,
                other => other,
            });
            i += 2;
        } else {
            out.push(s[i]);
            i += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn load_data_unescape() {
        let mut out = Vec::new();
        crate::types::encode_field(
            &Value::Text("a\tb\\n\n\0'".into()),
            &LogicalType::Text,
            &mut out,
        )
        .unwrap();
        assert_eq!(unescape_load_data(&out), b"a\tb\\n\n\0'".to_vec());
    }

    fn cols() -> Vec<String> {
        ["`a`", "`b`", "`c`"].map(String::from).to_vec()
    }

    #[test]
    fn upsert_tails() {
        let d = MyDialect;
        assert_eq!(
            d.upsert_tail(&cols(), &[0]),
            " ON DUPLICATE KEY UPDATE `b` = VALUES(`b`), `c` = VALUES(`c`)"
        );
        assert_eq!(
            d.upsert_tail(&cols()[..2], &[1, 0]),
            " ON DUPLICATE KEY UPDATE `b` = `b`"
        );
        assert_eq!(
            d.insert_head("`s`.`t`", &cols()),
            "INSERT INTO `s`.`t` (`a`, `b`, `c`)"
        );
    }

    #[test]
    fn one_row_statements() {
        let d = MyDialect;
        assert_eq!(
            d.one_row_statement("`s`.`t`", "UPDATE `s`.`t` SET `a` = 2", "`a` = 1"),
            "UPDATE `s`.`t` SET `a` = 2 WHERE `a` = 1 LIMIT 1"
        );
        assert_eq!(
            d.truncate_in_txn(&TableId::new("s", "t")),
            "DELETE FROM `s`.`t`"
        );
    }

    #[test]
    fn match_predicates() {
        let d = MyDialect;
        let s = Value::Text("x".into());
        assert_eq!(
            d.match_predicate("`a`", &Value::Null, "NULL", &MatchForm::Json),
            "`a` IS NULL"
        );
        assert_eq!(
            d.match_predicate("`a`", &s, "'x'", &MatchForm::Json),
            "`a` = CAST('x' AS JSON)"
        );
        assert_eq!(
            d.match_predicate("`a`", &s, "'x'", &MatchForm::EqualExactString),
            "`a` = 'x' AND `a` = 'x' COLLATE utf8mb4_bin AND CHAR_LENGTH(`a`) = CHAR_LENGTH('x')"
        );
        assert_eq!(
            d.match_predicate("`a`", &s, "'x'", &MatchForm::EqualSameCase),
            "`a` = 'x' AND `a` = 'x' COLLATE utf8mb4_bin"
        );
        // a number in a character column: plain `=`
        assert_eq!(
            d.match_predicate("`a`", &Value::Int(7), "7", &MatchForm::EqualSameCase),
            "`a` = 7"
        );
        let row = vec![Some("a".into()), Some("char".into()), Some("char".into())];
        assert_eq!(
            d.match_form_row(&row),
            Some(("a".into(), MatchForm::EqualSameCase))
        );
    }

    #[test]
    fn failed_rows() {
        let d = MyDialect;
        let e = |m: &str| Error::definite(m);
        assert_eq!(
            d.failed_row(&e("Data too long for column 'b' at row 3")),
            Some(3)
        );
        assert_eq!(
            d.failed_row(&e("Out of range value for column 'a' at row 12 (x)")),
            Some(12)
        );
        assert_eq!(
            d.failed_row(&e("Duplicate entry '1' for key 'PRIMARY'")),
            None
        );
    }

    #[test]
    fn literals() {
        let d = MyDialect;
        assert_eq!(
            d.value_literal(&Value::Text("a\\b'\n".into()), &LogicalType::Text),
            Ok("'a\\\\b''\n'".to_string())
        );
        assert_eq!(
            d.value_literal(&Value::Bytes(b"ef".to_vec()), &LogicalType::Bytes),
            Ok("X'6566'".to_string())
        );
        assert_eq!(
            d.value_literal(
                &Value::Int(5),
                &LogicalType::Int {
                    bytes: 8,
                    unsigned: false
                }
            ),
            Ok("5".to_string())
        );
    }
}
