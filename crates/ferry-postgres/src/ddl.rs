//! CREATE statements for a PostgreSQL target: verbatim native definitions when the
//! source is PostgreSQL, mapped types (docs/type-mapping.md) when it is MySQL/MariaDB.
//!
//! The table is created bare (no keys or indexes) so the bulk load is fast; keys,
//! indexes and checks follow the data, foreign keys follow all tables' data.

use crate::conn::{qualified, quote_ident, quote_literal};
use ferry_core::{DdlPlan, Engine, Error, LogicalType, Result, Table, TableId};

/// PostgreSQL type for a MySQL/MariaDB logical type.
pub fn pg_type(ty: &LogicalType, enum_type: &str) -> Result<String> {
    Ok(match ty {
        LogicalType::Bool => "boolean".into(),
        LogicalType::Int { bytes, unsigned } => match (bytes, unsigned) {
            (1, _) | (2, false) => "smallint".into(),
            (2, true) | (3, _) | (4, false) => "integer".into(),
            (4, true) | (8, false) => "bigint".into(),
            _ => "numeric(20,0)".into(),
        },
        LogicalType::Decimal {
            precision: Some(p),
            scale,
        } => format!("numeric({p},{})", scale.unwrap_or(0)),
        LogicalType::Decimal { .. } => "numeric".into(),
        LogicalType::Float32 => "real".into(),
        LogicalType::Float64 => "double precision".into(),
        LogicalType::Char(Some(n)) if *n > 0 => format!("character({n})"),
        LogicalType::Char(_) => "character(1)".into(),
        LogicalType::VarChar(Some(n)) => format!("character varying({n})"),
        LogicalType::VarChar(None) | LogicalType::Text | LogicalType::Set(_) => "text".into(),
        LogicalType::Bytes => "bytea".into(),
        LogicalType::Date => "date".into(),
        LogicalType::Time(_) | LogicalType::Interval => "interval".into(),
        LogicalType::TimeTz(p) => format!("time({p}) with time zone"),
        LogicalType::Timestamp(p) => format!("timestamp({p}) without time zone"),
        LogicalType::TimestampTz(p) => format!("timestamp({p}) with time zone"),
        LogicalType::Year => "smallint".into(),
        LogicalType::Bit {
            len,
            varying: false,
        } => format!("bit({len})"),
        LogicalType::Bit { len, varying: true } => format!("bit varying({len})"),
        LogicalType::Enum(_) => enum_type.to_string(),
        LogicalType::Json => "jsonb".into(),
        LogicalType::Uuid => "uuid".into(),
        LogicalType::Network => "inet".into(),
        LogicalType::Array(_) => "jsonb".into(),
        LogicalType::Unsupported(n) => {
            return Err(
                Error::definite(format!("type {n} has no PostgreSQL mapping")).with_hint(
                    "exclude the table (objects.exclude) or convert the column on the source",
                ),
            )
        }
    })
}

fn cut63(s: String) -> String {
    let mut s = s;
    while s.len() > 63 {
        s.pop();
    }
    s
}

/// Translates a MySQL/MariaDB default expression into PostgreSQL, if it has a meaning there.
pub fn default_from_mysql(expr: &str, ty: &LogicalType) -> Option<String> {
    let e = expr.trim();
    let lower = e.to_ascii_lowercase();
    if lower == "null" {
        return None;
    }
    if lower.starts_with("current_timestamp")
        || lower.starts_with("now(")
        || lower == "localtimestamp"
    {
        return Some("CURRENT_TIMESTAMP".into());
    }
    if lower == "curdate()" || lower == "current_date" {
        return Some("CURRENT_DATE".into());
    }
    if let Some(bits) = lower.strip_prefix("b'") {
        return Some(format!("B'{}", bits));
    }
    if e.starts_with('\'') && e.ends_with('\'') && e.len() >= 2 {
        return match ty {
            LogicalType::Bytes => Some(format!(
                "'\\x{}'::bytea",
                ferry_core::value::hex(&e.as_bytes()[1..e.len() - 1])
            )),
            LogicalType::Bool => Some(
                if &e[1..e.len() - 1] == "0" {
                    "false"
                } else {
                    "true"
                }
                .into(),
            ),
            _ => Some(e.to_string()),
        };
    }
    if e.parse::<f64>().is_ok() {
        return Some(match ty {
            LogicalType::Bool => if e == "0" { "false" } else { "true" }.into(),
            LogicalType::Bytes | LogicalType::Bit { .. } => return None,
            _ => e.to_string(),
        });
    }
    None
}

fn mysql_expr_to_pg(expr: &str) -> String {
    expr.replace('`', "\"")
}

/// Plans the statements for `t` copied to `target` from an `from`-engine source.
/// `map` gives the target name of any source table (for foreign keys).
pub fn plan(
    t: &Table,
    target: &TableId,
    from: Engine,
    map: &dyn Fn(&TableId) -> TableId,
) -> Result<DdlPlan> {
    let same = from == Engine::Postgres;
    let mut p = DdlPlan::default();
    let q = qualified(target);
    let schema = quote_ident(&target.schema);
    p.create
        .push(format!("CREATE SCHEMA IF NOT EXISTS {schema}"));
    p.create.push(format!("SET search_path = {schema}"));
    let mut cols = Vec::new();
    let mut owned: Vec<(String, String)> = Vec::new();
    if same {
        if let Some((col, ty, why)) = t.pg_types.unsupported.first() {
            return Err(Error::definite(format!(
                "table {}, column {col}: type {ty} cannot be created on the target: {why}",
                t.id
            )));
        }
        // extensions, enums, domains, composite and range types the columns use
        p.create.extend(t.pg_types.create.iter().cloned());
    }
    for c in &t.columns {
        let ty = if same {
            c.native_type.clone()
        } else {
            let enum_name = format!(
                "{}.{}",
                schema,
                quote_ident(&cut63(format!("{}_{}", target.name, c.name)))
            );
            if let LogicalType::Enum(labels) = &c.logical {
                p.create.push(create_enum(&enum_name, labels));
            }
            pg_type(&c.logical, &enum_name)
                .map_err(|e| e.context(format!("table {}, column {}", t.id, c.name)))?
        };
        let mut def = format!("{} {ty}", quote_ident(&c.name));
        let seq = t.sequences.iter().find(|s| s.column == c.name);
        if let Some(g) = &c.generated {
            let g = if same { g.clone() } else { mysql_expr_to_pg(g) };
            def.push_str(&format!(" GENERATED ALWAYS AS ({g}) STORED"));
        } else if same {
            match seq {
                Some(s) if s.identity.is_some() => def.push_str(&format!(
                    " GENERATED {} AS IDENTITY ({})",
                    s.identity.as_deref().unwrap_or("BY DEFAULT"),
                    // the column's type already fixes the sequence type
                    s.options
                        .split_once(" INCREMENT")
                        .map(|(_, r)| format!("INCREMENT{r}"))
                        .unwrap_or_default()
                )),
                Some(s) => {
                    p.create.push(format!(
                        "CREATE SEQUENCE IF NOT EXISTS {}.{} {}",
                        schema,
                        quote_ident(&s.name),
                        s.options
                    ));
                    if let Some(d) = &c.default {
                        def.push_str(&format!(" DEFAULT {d}"));
                    }
                }
                None => {
                    if let Some(d) = &c.default {
                        def.push_str(&format!(" DEFAULT {d}"));
                    }
                }
            }
        } else if c.auto_increment
            && c.logical
                == (LogicalType::Int {
                    bytes: 8,
                    unsigned: true,
                })
        {
            // numeric(20,0) cannot be an identity; an owned sequence keeps the type
            // (and so foreign keys from other unsigned BIGINT columns) intact
            let seq = quote_ident(&cut63(format!("{}_{}_seq", target.name, c.name)));
            p.create
                .push(format!("CREATE SEQUENCE IF NOT EXISTS {schema}.{seq}"));
            def.push_str(&format!(
                " DEFAULT nextval('{}.{}'::regclass)",
                schema.replace('\'', "''"),
                seq.replace('\'', "''")
            ));
            owned.push((seq, c.name.clone()));
        } else if c.auto_increment {
            def.push_str(" GENERATED BY DEFAULT AS IDENTITY");
        } else if let Some(d) = &c.default {
            match default_from_mysql(d, &c.logical) {
                Some(x) => def.push_str(&format!(" DEFAULT {x}")),
                None if d.eq_ignore_ascii_case("null") => {}
                None => p.warnings.push(format!(
                    "{}.{}: default {d} has no PostgreSQL equivalent and was left out",
                    t.id, c.name
                )),
            }
        }
        if !c.nullable {
            def.push_str(" NOT NULL");
        }
        cols.push(def);
    }
    p.create
        .push(format!("CREATE TABLE {q} (\n  {}\n)", cols.join(",\n  ")));
    for s in t.sequences.iter().filter(|s| s.identity.is_none() && same) {
        p.create.push(format!(
            "ALTER SEQUENCE {}.{} OWNED BY {q}.{}",
            schema,
            quote_ident(&s.name),
            quote_ident(&s.column)
        ));
    }
    for (seq, col) in &owned {
        p.create.push(format!(
            "ALTER SEQUENCE {schema}.{seq} OWNED BY {q}.{}",
            quote_ident(col)
        ));
    }
    if let Some(cmt) = &t.comment {
        p.create
            .push(format!("COMMENT ON TABLE {q} IS {}", quote_literal(cmt)));
    }
    for c in &t.columns {
        if let Some(cmt) = c.comment.as_ref().filter(|c| !c.is_empty()) {
            p.create.push(format!(
                "COMMENT ON COLUMN {q}.{} IS {}",
                quote_ident(&c.name),
                quote_literal(cmt)
            ));
        }
    }
    p.create.push("RESET search_path".into());

    // after the data
    p.post.push(format!("SET search_path = {schema}"));
    if !t.primary_key.is_empty() {
        let cols: Vec<String> = t.primary_key.iter().map(|c| quote_ident(c)).collect();
        let name = cut63(format!("{}_pkey", target.name));
        p.post.push(format!(
            "ALTER TABLE {q} ADD CONSTRAINT {} PRIMARY KEY ({})",
            quote_ident(&name),
            cols.join(", ")
        ));
    }
    for ix in &t.indexes {
        if same {
            match (&ix.native_def, ix.is_constraint) {
                (Some(d), true) => p.post.push(format!(
                    "ALTER TABLE {q} ADD CONSTRAINT {} {d}",
                    quote_ident(&ix.name)
                )),
                (Some(d), false) => p.post.push(format!(
                    "CREATE {}INDEX {} ON {q} {d}",
                    if ix.unique { "UNIQUE " } else { "" },
                    quote_ident(&ix.name)
                )),
                (None, _) => {}
            }
        } else {
            if ix.columns.iter().any(|c| t.column(c).is_none()) {
                p.warnings.push(format!(
                    "{}: index {} on an expression was left out",
                    t.id, ix.name
                ));
                continue;
            }
            let cols: Vec<String> = ix.columns.iter().map(|c| quote_ident(c)).collect();
            p.post.push(format!(
                "CREATE {}INDEX {} ON {q} ({})",
                if ix.unique { "UNIQUE " } else { "" },
                quote_ident(&cut63(format!("{}_{}", target.name, ix.name))),
                cols.join(", ")
            ));
        }
    }
    for ck in &t.checks {
        let name = if same {
            ck.name.clone()
        } else {
            cut63(format!("{}_{}", target.name, ck.name))
        };
        let stmt = if same {
            format!(
                "ALTER TABLE {q} ADD CONSTRAINT {} CHECK {}",
                quote_ident(&name),
                ck.expr
            )
        } else {
            format!(
                "ALTER TABLE {q} ADD CONSTRAINT {} CHECK ({})",
                quote_ident(&name),
                mysql_expr_to_pg(&ck.expr)
            )
        };
        if same {
            p.post.push(stmt)
        } else {
            p.optional.push(stmt)
        }
    }
    for c in t.columns.iter().filter(|c| c.auto_increment) {
        let next = t
            .sequences
            .iter()
            .find(|s| s.column == c.name)
            .map(|s| s.next_value as i128)
            .or(t.next_auto_increment.map(|n| n as i128))
            .unwrap_or(1);
        let col = quote_ident(&c.name);
        p.counters.push(format!(
            "SELECT setval(pg_get_serial_sequence({}, {}), greatest({next}, coalesce((SELECT max({col}) + 1 FROM {q}), {next}))::bigint, false)",
            quote_literal(&q),
            quote_literal(&c.name),
        ));
    }
    p.post.push("RESET search_path".into());
    for fk in &t.foreign_keys {
        let rt = map(&fk.ref_table);
        let cols: Vec<String> = fk.columns.iter().map(|c| quote_ident(c)).collect();
        let rcols: Vec<String> = fk.ref_columns.iter().map(|c| quote_ident(c)).collect();
        let name = if same {
            fk.name.clone()
        } else {
            cut63(format!("{}_{}", target.name, fk.name))
        };
        p.foreign_keys.push(format!(
            "ALTER TABLE {q} ADD CONSTRAINT {} FOREIGN KEY ({}) REFERENCES {} ({}) ON DELETE {} ON UPDATE {}",
            quote_ident(&name),
            cols.join(", "),
            qualified(&rt),
            rcols.join(", "),
            fk.on_delete,
            fk.on_update
        ));
    }
    Ok(p)
}

fn create_enum(name: &str, labels: &[String]) -> String {
    let labels: Vec<String> = labels.iter().map(|l| quote_literal(l)).collect();
    format!(
        "DO $ferry$ BEGIN CREATE TYPE {name} AS ENUM ({}); EXCEPTION WHEN duplicate_object THEN NULL; END $ferry$",
        labels.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn translates_mysql_defaults() {
        let txt = LogicalType::Text;
        assert_eq!(
            default_from_mysql("current_timestamp(6)", &LogicalType::Timestamp(6)).as_deref(),
            Some("CURRENT_TIMESTAMP")
        );
        assert_eq!(
            default_from_mysql("'it''s'", &txt).as_deref(),
            Some("'it''s'")
        );
        assert_eq!(
            default_from_mysql(
                "42",
                &LogicalType::Int {
                    bytes: 4,
                    unsigned: false
                }
            )
            .as_deref(),
            Some("42")
        );
        assert_eq!(default_from_mysql("NULL", &txt), None);
        assert_eq!(default_from_mysql("uuid()", &txt), None);
    }

    #[test]
    fn maps_unsigned_to_wider_types() {
        assert_eq!(
            pg_type(
                &LogicalType::Int {
                    bytes: 8,
                    unsigned: true
                },
                ""
            )
            .unwrap(),
            "numeric(20,0)"
        );
        assert_eq!(
            pg_type(
                &LogicalType::Int {
                    bytes: 4,
                    unsigned: true
                },
                ""
            )
            .unwrap(),
            "bigint"
        );
        assert!(pg_type(&LogicalType::Unsupported("geometry".into()), "").is_err());
    }
}
