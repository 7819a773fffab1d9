//! How PostgreSQL spells SQL.

use ferry_connector::{Dialect, MatchForm};
use ferry_core::{Column, Engine, LogicalType, Result, TableId, Value};
use std::collections::HashSet;

/// PostgreSQL's SQL dialect.
pub struct PgDialect;

/// Types whose `=` is missing or not equality (`box` and `circle` compare areas):
/// matched as text. Other types are checked in the catalog.
const TEXT_MATCHED: &str =
    "'json', 'xml', 'point', 'line', 'lseg', 'box', 'path', 'polygon', 'circle'";
/// Types whose `=` holds for distinct values: matched by both.
const EQUAL_AND_TEXT: &str = "'numeric', 'interval', 'float4', 'float8', 'citext'";

impl Dialect for PgDialect {
    fn ident(&self, s: &str) -> String {
        crate::conn::quote_ident(s)
    }

    fn literal(&self, s: &str) -> String {
        crate::conn::quote_literal(s)
    }

    fn begin(&self) -> &'static str {
        "BEGIN"
    }

    fn table_exists_sql(&self, t: &TableId) -> String {
        format!(
            "SELECT 1 FROM information_schema.tables WHERE table_schema = {} AND table_name = {}",
            self.literal(&t.schema),
            self.literal(&t.name)
        )
    }

    fn writer_session(&self) -> (&'static str, bool) {
        // needs superuser (or a granted setting): without it triggers and foreign
        // keys stay on, which rows in source order satisfy anyway
        ("SET session_replication_role = replica", false)
    }

    fn value_literal(&self, v: &Value, ty: &LogicalType) -> std::result::Result<String, String> {
        if v.is_null() {
            return Ok("NULL".into());
        }
        // the COPY text form is the type's input form: encoded, then unescaped
        let mut out = Vec::new();
        crate::types::encode_text(v, ty, &mut out)?;
        let raw = crate::copytext::split_line(&out)
            .into_iter()
            .next()
            .flatten()
            .unwrap_or_default();
        Ok(self.literal(&String::from_utf8_lossy(&raw)))
    }

    fn insert_head(&self, qualified: &str, cols: &[String]) -> String {
        // the source chose the values, also of GENERATED ALWAYS identity columns
        format!(
            "INSERT INTO {qualified} ({}) OVERRIDING SYSTEM VALUE",
            cols.join(", ")
        )
    }

    fn upsert_tail(&self, cols: &[String], key: &[usize]) -> String {
        let in_key: HashSet<usize> = key.iter().copied().collect();
        let keys = key
            .iter()
            .map(|i| cols[*i].as_str())
            .collect::<Vec<_>>()
            .join(", ");
        let set: Vec<String> = cols
            .iter()
            .enumerate()
            .filter(|(i, _)| !in_key.contains(i))
            .map(|(_, c)| format!("{c} = EXCLUDED.{c}"))
            .collect();
        if set.is_empty() {
            format!(" ON CONFLICT ({keys}) DO NOTHING")
        } else {
            format!(" ON CONFLICT ({keys}) DO UPDATE SET {}", set.join(", "))
        }
    }

    fn one_row_statement(&self, qualified: &str, head: &str, pred: &str) -> String {
        format!("{head} WHERE ctid = (SELECT ctid FROM {qualified} WHERE {pred} LIMIT 1)")
    }

    fn truncate_in_txn(&self, t: &TableId) -> String {
        format!("TRUNCATE {}", self.qualified(t))
    }

    fn match_forms_sql(&self, t: &TableId) -> String {
        let (schema, name) = (self.literal(&t.schema), self.literal(&t.name));
        // arrays compare by their element type, domains by their base type
        format!(
            "SELECT a.attname, format_type(a.atttypid, a.atttypmod), \
               CASE WHEN e.typname IN ({TEXT_MATCHED}) OR e.typtype = 'c' THEN 'text' \
                    WHEN e.typname IN ({EQUAL_AND_TEXT}) THEN 'exact' \
                    WHEN e.typtype IN ('e', 'r', 'm') THEN 'equal' \
                    WHEN EXISTS (SELECT 1 FROM pg_operator o WHERE o.oprname = '=' \
                                 AND o.oprleft = e.oid AND o.oprright = e.oid) THEN 'equal' \
                    ELSE 'text' END \
             FROM pg_attribute a \
             JOIN pg_class r ON r.oid = a.attrelid \
             JOIN pg_namespace n ON n.oid = r.relnamespace \
             JOIN pg_type t ON t.oid = a.atttypid \
             JOIN pg_type e ON e.oid = CASE WHEN t.typcategory = 'A' THEN t.typelem \
                                            WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END \
             WHERE n.nspname = {schema} AND r.relname = {name} AND a.attnum > 0 AND NOT a.attisdropped"
        )
    }

    fn unique_keys_sql(&self, t: &TableId) -> Option<String> {
        let (schema, name) = (self.literal(&t.schema), self.literal(&t.name));
        // key columns only (not INCLUDE ones); attnum 0 is an expression; a partial
        // index is taken as covering every row (more order, never less); an
        // exclusion constraint conflicts between distinct values: no column
        Some(format!(
            "SELECT c.relname, CASE WHEN i.indisexclusion THEN NULL ELSE a.attname END \
             FROM pg_index i \
             JOIN pg_class r ON r.oid = i.indrelid \
             JOIN pg_namespace n ON n.oid = r.relnamespace \
             JOIN pg_class c ON c.oid = i.indexrelid \
             CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord) \
             LEFT JOIN pg_attribute a ON a.attrelid = r.oid AND a.attnum = k.attnum AND k.attnum > 0 \
             WHERE n.nspname = {schema} AND r.relname = {name} \
               AND (i.indisunique OR i.indisexclusion) AND k.ord <= i.indnkeyatts \
             ORDER BY c.relname, k.ord"
        ))
    }

    fn foreign_keys_sql(&self, t: &TableId) -> Option<String> {
        let (schema, name) = (self.literal(&t.schema), self.literal(&t.name));
        Some(format!(
            "SELECT f.conname, ca.attname, pn.nspname, p.relname, pa.attname \
             FROM pg_constraint f \
             JOIN pg_class r ON r.oid = f.conrelid \
             JOIN pg_namespace n ON n.oid = r.relnamespace \
             JOIN pg_class p ON p.oid = f.confrelid \
             JOIN pg_namespace pn ON pn.oid = p.relnamespace \
             CROSS JOIN LATERAL unnest(f.conkey, f.confkey) WITH ORDINALITY AS k(ck, pk, ord) \
             JOIN pg_attribute ca ON ca.attrelid = f.conrelid AND ca.attnum = k.ck \
             JOIN pg_attribute pa ON pa.attrelid = f.confrelid AND pa.attnum = k.pk \
             WHERE f.contype = 'f' AND n.nspname = {schema} AND r.relname = {name} \
             ORDER BY f.conname, k.ord"
        ))
    }

    fn match_predicate(&self, ident: &str, v: &Value, literal: &str, form: &MatchForm) -> String {
        match (v, form) {
            (Value::Null, _) => format!("{ident} IS NULL"),
            (_, MatchForm::Text(ty)) => format!("{ident}::text = ({literal}::{ty})::text"),
            (_, MatchForm::EqualAndText(ty)) => {
                format!("{ident} = {literal} AND {ident}::text = ({literal}::{ty})::text")
            }
            // the other forms are not produced by this dialect's catalog query
            _ => format!("{ident} = {literal}"),
        }
    }

    fn column_type(&self, c: &Column, from: Engine) -> Result<String> {
        match (from, &c.logical) {
            (Engine::Postgres, _) => Ok(c.native_type.clone()),
            (_, LogicalType::Enum(_)) => Ok("text".into()),
            (_, ty) => crate::ddl::pg_type(ty, "text"),
        }
    }

    fn column_default(&self, c: &Column, from: Engine) -> Option<String> {
        let d = c.default.as_deref()?;
        match from {
            Engine::Postgres => Some(d.to_string()),
            _ => crate::ddl::default_from_mysql(d, &c.logical),
        }
    }

    fn ddl_is_transactional(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cols() -> Vec<String> {
        ["\"a\"", "\"b\"", "\"c\""].map(String::from).to_vec()
    }

    #[test]
    fn upsert_tails() {
        let d = PgDialect;
        assert_eq!(
            d.upsert_tail(&cols(), &[0]),
            " ON CONFLICT (\"a\") DO UPDATE SET \"b\" = EXCLUDED.\"b\", \"c\" = EXCLUDED.\"c\""
        );
        assert_eq!(
            d.upsert_tail(&cols()[..2], &[1, 0]),
            " ON CONFLICT (\"b\", \"a\") DO NOTHING"
        );
        assert_eq!(
            d.insert_head("\"s\".\"t\"", &cols()),
            "INSERT INTO \"s\".\"t\" (\"a\", \"b\", \"c\") OVERRIDING SYSTEM VALUE"
        );
    }

    #[test]
    fn one_row_statements() {
        let d = PgDialect;
        assert_eq!(
            d.one_row_statement("\"s\".\"t\"", "DELETE FROM \"s\".\"t\"", "\"a\" = 1"),
            "DELETE FROM \"s\".\"t\" WHERE ctid = (SELECT ctid FROM \"s\".\"t\" WHERE \"a\" = 1 LIMIT 1)"
        );
        assert_eq!(
            d.truncate_in_txn(&TableId::new("s", "t")),
            "TRUNCATE \"s\".\"t\""
        );
    }

    #[test]
    fn match_predicates() {
        let d = PgDialect;
        let one = Value::Int(1);
        assert_eq!(
            d.match_predicate("\"a\"", &Value::Null, "NULL", &MatchForm::Equal),
            "\"a\" IS NULL"
        );
        assert_eq!(
            d.match_predicate("\"a\"", &one, "'1'", &MatchForm::Equal),
            "\"a\" = '1'"
        );
        assert_eq!(
            d.match_predicate("\"a\"", &one, "'1'", &MatchForm::Text("json".into())),
            "\"a\"::text = ('1'::json)::text"
        );
        assert_eq!(
            d.match_predicate(
                "\"a\"",
                &one,
                "'1'",
                &MatchForm::EqualAndText("numeric(4,1)".into())
            ),
            "\"a\" = '1' AND \"a\"::text = ('1'::numeric(4,1))::text"
        );
        let row = |f: &str| vec![Some("a".into()), Some("numeric".into()), Some(f.into())];
        assert_eq!(
            d.match_form_row(&row("exact")),
            Some(("a".into(), MatchForm::EqualAndText("numeric".into())))
        );
        assert_eq!(
            d.match_form_row(&row("equal")),
            Some(("a".into(), MatchForm::Equal))
        );
    }

    #[test]
    fn literals_and_failed_rows() {
        let d = PgDialect;
        assert_eq!(
            d.value_literal(&Value::Text("a'b\tc\\".into()), &LogicalType::Text),
            Ok("'a''b\tc\\'".to_string())
        );
        assert_eq!(
            d.value_literal(&Value::Null, &LogicalType::Text),
            Ok("NULL".to_string())
        );
        let e = ferry_core::Error::definite("value too long at row 2");
        assert_eq!(d.failed_row(&e), None);
    }
}
