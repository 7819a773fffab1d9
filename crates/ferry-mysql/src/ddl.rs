//! CREATE statements for a MySQL/MariaDB target: `SHOW CREATE TABLE` replayed when the
//! source is MySQL/MariaDB too (keys after the data), mapped types
//! (docs/type-mapping.md) when it is PostgreSQL.

use crate::conn::{qualified, quote_ident, quote_literal};
use ferry_core::{DdlPlan, Engine, Error, LogicalType, Result, Table, TableId};

/// MySQL type for a PostgreSQL logical type. `keyed` columns (in a key or index)
/// cannot be TEXT, so unlimited text becomes `varchar(768)` there.
pub fn mysql_type(ty: &LogicalType, keyed: bool) -> Result<String> {
    Ok(match ty {
        LogicalType::Bool => "tinyint(1)".into(),
        LogicalType::Int { bytes: 1 | 2, .. } => "smallint".into(),
        LogicalType::Int { bytes: 3 | 4, .. } => "int".into(),
        LogicalType::Int { .. } => "bigint".into(),
        LogicalType::Decimal {
            precision: Some(p),
            scale,
        } if *p <= 65 && scale.unwrap_or(0) <= 30 => {
            format!("decimal({p},{})", scale.unwrap_or(0))
        }
        LogicalType::Decimal {
            precision: None, ..
        } => "decimal(65,30)".into(),
        LogicalType::Decimal { precision, scale } => {
            return Err(Error::definite(format!(
                "NUMERIC({},{}) is wider than MySQL's DECIMAL(65,30)",
                precision.unwrap_or(0),
                scale.unwrap_or(0)
            ))
            .with_hint("narrow the column on the source or exclude the table"))
        }
        LogicalType::Float32 => "float".into(),
        LogicalType::Float64 => "double".into(),
        LogicalType::Char(Some(n)) if *n <= 255 => format!("char({n})"),
        LogicalType::Char(n) | LogicalType::VarChar(n) if n.is_some_and(|n| n <= 1024) => {
            format!("varchar({})", n.unwrap_or(255))
        }
        LogicalType::Char(_)
        | LogicalType::VarChar(_)
        | LogicalType::Text
        | LogicalType::Set(_) => {
            if keyed {
                "varchar(768)".into()
            } else {
                "longtext".into()
            }
        }
        LogicalType::Bytes => {
            if keyed {
                "varbinary(3072)".into()
            } else {
                "longblob".into()
            }
        }
        LogicalType::Date => "date".into(),
        LogicalType::Time(p) => format!("time({})", (*p).min(6)),
        LogicalType::TimeTz(_) => "varchar(32)".into(),
        LogicalType::Interval => "varchar(64)".into(),
        LogicalType::Timestamp(p) | LogicalType::TimestampTz(p) => {
            format!("datetime({})", (*p).min(6))
        }
        LogicalType::Year => "year".into(),
        LogicalType::Bit {
            len,
            varying: false,
        } if *len <= 64 => format!("bit({len})"),
        // unbounded (len 0) or long bit strings: the '0'/'1' text, whole
        LogicalType::Bit { len, .. } if *len == 0 || *len > 1024 => {
            if keyed {
                "varchar(768)".into()
            } else {
                "longtext".into()
            }
        }
        LogicalType::Bit { len, .. } => format!("varchar({len})"),
        LogicalType::Enum(labels) => format!(
            "enum({})",
            labels
                .iter()
                .map(|l| quote_literal(l))
                .collect::<Vec<_>>()
                .join(",")
        ),
        LogicalType::Json | LogicalType::Array(_) => "json".into(),
        LogicalType::Uuid => "char(36)".into(),
        LogicalType::Network => "varchar(43)".into(),
        LogicalType::Unsupported(n) => {
            return Err(
                Error::definite(format!("type {n} has no MySQL/MariaDB mapping")).with_hint(
                    "exclude the table (objects.exclude) or convert the column on the source",
                ),
            )
        }
    })
}

/// Strips PostgreSQL casts (`'x'::text`, `(0)::numeric`) and turns `"ident"` into
/// `` `ident` `` so simple expressions read the same in MySQL.
pub fn pg_expr_to_mysql(expr: &str) -> String {
    let mut out = String::new();
    let mut chars = expr.chars().peekable();
    let mut in_str = false;
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_str = !in_str;
                out.push(c)
            }
            '"' if !in_str => out.push('`'),
            ':' if !in_str && chars.peek() == Some(&':') => {
                chars.next();
                // skip the type name (letters, digits, spaces inside "character varying", [])
                while let Some(&n) = chars.peek() {
                    if n.is_alphanumeric() || n == '_' || n == '[' || n == ']' || n == '"' {
                        chars.next();
                    } else if n == ' ' {
                        let rest: String = chars.clone().collect();
                        if rest.trim_start().starts_with("varying")
                            || rest.trim_start().starts_with("precision")
                            || rest.trim_start().starts_with("without")
                            || rest.trim_start().starts_with("with")
                            || rest.trim_start().starts_with("time")
                            || rest.trim_start().starts_with("zone")
                        {
                            chars.next();
                        } else {
                            break;
                        }
                    } else if n == '(' {
                        // typmod like ::character varying(10)
                        for m in chars.by_ref() {
                            if m == ')' {
                                break;
                            }
                        }
                    } else {
                        break;
                    }
                }
            }
            _ => out.push(c),
        }
    }
    out
}

/// Translates a PostgreSQL default into MySQL, if it has a meaning there.
pub fn default_from_pg(expr: &str, ty: &LogicalType) -> Option<String> {
    let e = pg_expr_to_mysql(expr.trim());
    let lower = e.to_ascii_lowercase();
    if lower.starts_with("nextval(") || lower == "null" {
        return None;
    }
    if lower == "now()"
        || lower.starts_with("current_timestamp")
        || lower == "transaction_timestamp()"
    {
        let fsp = match ty {
            LogicalType::Timestamp(p) | LogicalType::TimestampTz(p) => (*p).min(6),
            _ => 0,
        };
        return Some(format!("CURRENT_TIMESTAMP({fsp})"));
    }
    if lower == "current_date" {
        return Some("(CURRENT_DATE)".into());
    }
    if lower == "true" || lower == "false" {
        return Some(if lower == "true" { "1" } else { "0" }.into());
    }
    if lower == "gen_random_uuid()" || lower == "uuid_generate_v4()" {
        return Some("(uuid())".into());
    }
    if e.starts_with('\'') && e.ends_with('\'') {
        if matches!(
            ty,
            LogicalType::Json | LogicalType::Array(_) | LogicalType::Bytes | LogicalType::Text
        ) {
            return Some(format!("({e})"));
        }
        return Some(e);
    }
    let trimmed = e.trim_start_matches('(').trim_end_matches(')');
    if trimmed.parse::<f64>().is_ok() {
        return Some(trimmed.to_string());
    }
    None
}

fn table_options(t: &Table) -> String {
    let mut s = " ENGINE=InnoDB DEFAULT CHARSET=utf8mb4".to_string();
    if let Some(c) = &t.comment {
        s.push_str(&format!(" COMMENT={}", quote_literal(c)));
    }
    s
}

/// Plans the statements for `t` copied to `target`. `create_text` is the source's
/// `SHOW CREATE TABLE` when the source is MySQL/MariaDB.
pub fn plan(
    t: &Table,
    target: &TableId,
    from: Engine,
    create_text: Option<&str>,
    map: &dyn Fn(&ferry_core::TableId) -> ferry_core::TableId,
) -> Result<DdlPlan> {
    let mut p = DdlPlan::default();
    let q = qualified(target);
    p.create.push(format!(
        "CREATE DATABASE IF NOT EXISTS {} CHARACTER SET utf8mb4",
        quote_ident(&target.schema)
    ));
    match (from, create_text) {
        (Engine::MySql, Some(text)) => same_engine(t, target, text, &mut p, map),
        _ => cross_engine(t, target, &mut p, map)?,
    }
    // AUTO_INCREMENT past the copied maximum (and never below the source's counter)
    if let Some(c) = t.columns.iter().find(|c| c.auto_increment) {
        let next = t
            .sequences
            .iter()
            .find(|s| s.column == c.name)
            .map(|s| s.next_value.max(1) as u64)
            .or(t.next_auto_increment)
            .unwrap_or(1);
        // ALTER TABLE … AUTO_INCREMENT takes no expression: compute it, then run it
        let col = quote_ident(&c.name);
        let alter = quote_literal(&format!("ALTER TABLE {q} AUTO_INCREMENT = "));
        p.counters.push(format!(
            "SET @ferry_next = (SELECT GREATEST({next}, COALESCE(MAX({col}), 0) + 1) FROM {q}); \
             SET @ferry_sql = CONCAT({alter}, @ferry_next); \
             PREPARE ferry_stmt FROM @ferry_sql; EXECUTE ferry_stmt; DEALLOCATE PREPARE ferry_stmt"
        ));
    }
    Ok(p)
}

fn same_engine(
    t: &Table,
    target: &TableId,
    text: &str,
    p: &mut DdlPlan,
    map: &dyn Fn(&TableId) -> TableId,
) {
    let q = qualified(target);
    let mut body = Vec::new();
    let mut keys = Vec::new();
    let mut lines = text.lines();
    let header = lines.next().unwrap_or_default();
    let _ = header;
    let mut tail = String::new();
    for line in lines {
        let l = line.trim().trim_end_matches(',');
        if let Some(rest) = l.strip_prefix(')') {
            tail = rest.to_string();
            break;
        }
        if l.starts_with("KEY ")
            || l.starts_with("UNIQUE KEY ")
            || l.starts_with("FULLTEXT KEY ")
            || l.starts_with("SPATIAL KEY ")
        {
            keys.push(l.to_string());
        } else if l.starts_with("CONSTRAINT ") && l.contains(" FOREIGN KEY ") {
            // foreign keys come after all data
        } else {
            body.push(l.to_string());
        }
    }
    p.create.push(format!(
        "CREATE TABLE {q} (\n  {}\n){tail}",
        body.join(",\n  ")
    ));
    if !keys.is_empty() {
        p.post.push(format!(
            "ALTER TABLE {q} {}",
            keys.iter()
                .map(|k| format!("ADD {k}"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    for fk in &t.foreign_keys {
        p.foreign_keys.push(fk_sql(&q, fk, map));
    }
}

fn fk_sql(q: &str, fk: &ferry_core::ForeignKey, map: &dyn Fn(&TableId) -> TableId) -> String {
    let cols: Vec<String> = fk.columns.iter().map(|c| quote_ident(c)).collect();
    let rcols: Vec<String> = fk.ref_columns.iter().map(|c| quote_ident(c)).collect();
    format!(
        "ALTER TABLE {q} ADD CONSTRAINT {} FOREIGN KEY ({}) REFERENCES {} ({}) ON DELETE {} ON UPDATE {}",
        quote_ident(&fk.name.chars().take(64).collect::<String>()),
        cols.join(", "),
        qualified(&map(&fk.ref_table)),
        rcols.join(", "),
        fk.on_delete,
        fk.on_update
    )
}

/// InnoDB's limit on the bytes of one index (DYNAMIC/COMPRESSED rows, MariaDB 10.3+).
const MAX_KEY_BYTES: u32 = 3072;

/// Bytes a column of this logical type takes in an index on MySQL/MariaDB (utf8mb4:
/// 4 bytes a character), or `None` for a column of unlimited length on the source
/// (text, bytea, unbounded varchar/varbit) whose key width Ferry chooses.
fn key_bytes(ty: &LogicalType) -> Option<u32> {
    Some(match ty {
        LogicalType::Bool | LogicalType::Int { bytes: 1, .. } => 1,
        LogicalType::Int { bytes: 2, .. } => 2,
        LogicalType::Int { bytes: 3 | 4, .. } | LogicalType::Float32 => 4,
        LogicalType::Int { .. } | LogicalType::Float64 => 8,
        LogicalType::Decimal { .. } => 30,
        LogicalType::Char(Some(n)) if *n <= 255 => 4 * n,
        LogicalType::Char(Some(n)) | LogicalType::VarChar(Some(n)) if *n <= 1024 => 4 * n,
        LogicalType::Date | LogicalType::Year => 3,
        LogicalType::Time(_) => 6,
        LogicalType::Timestamp(_) | LogicalType::TimestampTz(_) => 8,
        LogicalType::TimeTz(_) => 4 * 32,
        LogicalType::Interval => 4 * 64,
        LogicalType::Bit {
            len,
            varying: false,
        } if *len <= 64 => 8,
        LogicalType::Bit { len, .. } if *len > 0 && *len <= 1024 => 4 * len,
        LogicalType::Enum(_) => 2,
        LogicalType::Uuid => 4 * 36,
        LogicalType::Network => 4 * 43,
        // not indexable on MySQL at all (JSON, …): the server says so
        t if !open_key(t) => 0,
        _ => return None,
    })
}

/// Unlimited text or binary: the kinds whose key width Ferry picks.
fn open_key(ty: &LogicalType) -> bool {
    matches!(
        ty,
        LogicalType::Text
            | LogicalType::Char(_)
            | LogicalType::VarChar(_)
            | LogicalType::Set(_)
            | LogicalType::Bytes
            | LogicalType::Bit { .. }
    )
}

/// Unlimited source columns in keys share what InnoDB allows one index (3072 bytes)
/// with the key's other columns: each gets an equal part as `varchar(n)` /
/// `varbinary(n)`, so the key stays a real, exact PRIMARY KEY or UNIQUE constraint on
/// whole values (a prefix index would not keep uniqueness). A longer value is then
/// refused by the load, naming the row — never cut. A key whose bounded columns
/// alone are too wide cannot be created at all: refused, naming table, key and bytes.
/// Returns the byte width chosen per such column.
fn key_widths(t: &Table) -> Result<std::collections::BTreeMap<String, u32>> {
    let mut keys: Vec<(String, &[String])> = Vec::new();
    if !t.primary_key.is_empty() {
        keys.push(("PRIMARY KEY".into(), &t.primary_key));
    }
    for ix in t.indexes.iter().filter(|ix| ix.unique) {
        if ix.columns.iter().all(|c| t.column(c).is_some()) {
            keys.push((format!("unique index {}", ix.name), &ix.columns));
        }
    }
    let mut widths = std::collections::BTreeMap::new();
    for (name, cols) in keys {
        let cols: Vec<&ferry_core::Column> = cols.iter().filter_map(|c| t.column(c)).collect();
        let fixed: u32 = cols.iter().filter_map(|c| key_bytes(&c.logical)).sum();
        let open: Vec<&&ferry_core::Column> = cols
            .iter()
            .filter(|c| key_bytes(&c.logical).is_none())
            .collect();
        // an open text column needs at least one character (4 bytes) of room
        if fixed + 4 * open.len() as u32 > MAX_KEY_BYTES {
            let list: Vec<String> = cols
                .iter()
                .map(|c| {
                    format!(
                        "{} {} ({} bytes)",
                        c.name,
                        c.native_type,
                        key_bytes(&c.logical).unwrap_or(4)
                    )
                })
                .collect();
            return Err(Error::definite(format!(
                "table {}: {name} ({}) needs {} bytes on MySQL/MariaDB, more than InnoDB's \
                 {MAX_KEY_BYTES}-byte limit for one index",
                t.id,
                list.join(", "),
                fixed + 4 * open.len() as u32
            ))
            .with_hint(
                "narrow the key's columns on the source (utf8mb4 counts 4 bytes a character), \
                 key the table on a shorter column (e.g. a surrogate id), or exclude the table",
            ));
        }
        if open.is_empty() {
            continue;
        }
        let share = (MAX_KEY_BYTES - fixed) / open.len() as u32;
        for c in open {
            let w = widths.entry(c.name.clone()).or_insert(MAX_KEY_BYTES);
            *w = (*w).min(share);
        }
    }
    Ok(widths)
}

/// The column list of a non-unique index: unlimited columns that no unique key bounds
/// stay LONGTEXT/LONGBLOB (values of any length) and are indexed by a prefix that fits
/// the 3072-byte budget — a prefix only narrows lookups, it cannot break uniqueness
/// since the index has none. Refused like [`key_widths`] when the bounded columns alone
/// are too wide.
fn index_columns(
    t: &Table,
    ix: &ferry_core::Index,
    widths: &std::collections::BTreeMap<String, u32>,
) -> Result<Vec<String>> {
    let cols: Vec<&ferry_core::Column> = ix.columns.iter().filter_map(|c| t.column(c)).collect();
    let size = |c: &ferry_core::Column| key_bytes(&c.logical).or(widths.get(&c.name).copied());
    let fixed: u32 = cols.iter().filter_map(|c| size(c)).sum();
    let open = cols.iter().filter(|c| size(c).is_none()).count() as u32;
    if fixed + 4 * open > MAX_KEY_BYTES {
        return Err(Error::definite(format!(
            "table {}: index {} ({}) needs {} bytes on MySQL/MariaDB, more than InnoDB's \
             {MAX_KEY_BYTES}-byte limit for one index",
            t.id,
            ix.name,
            ix.columns.join(", "),
            fixed + 4 * open
        ))
        .with_hint("narrow the index's columns on the source, or exclude the table"));
    }
    let share = (MAX_KEY_BYTES - fixed).checked_div(open).unwrap_or(0);
    Ok(cols
        .iter()
        .map(|c| match (size(c), &c.logical) {
            (Some(_), _) => quote_ident(&c.name),
            (None, LogicalType::Bytes) => format!("{}({share})", quote_ident(&c.name)),
            (None, _) => format!("{}({})", quote_ident(&c.name), (share / 4).clamp(1, 768)),
        })
        .collect())
}

/// The MySQL type of an unlimited column kept in a key at `bytes` bytes.
fn keyed_type(ty: &LogicalType, bytes: u32) -> String {
    match ty {
        LogicalType::Bytes => format!("varbinary({bytes})"),
        // utf8mb4: 4 bytes a character
        _ => format!("varchar({})", (bytes / 4).clamp(1, 768)),
    }
}

fn cross_engine(
    t: &Table,
    target: &TableId,
    p: &mut DdlPlan,
    map: &dyn Fn(&TableId) -> TableId,
) -> Result<()> {
    let q = qualified(target);
    // columns of unique keys must be bounded types; non-unique indexes use prefixes
    let keyed = |name: &str| {
        t.primary_key.iter().any(|k| k == name)
            || t.indexes
                .iter()
                .any(|i| i.unique && i.columns.iter().any(|c| c == name))
    };
    let widths = key_widths(t)?;
    let mut defs = Vec::new();
    for c in &t.columns {
        let ty = match widths.get(&c.name) {
            Some(&w) => {
                let ty = keyed_type(&c.logical, w);
                if w < MAX_KEY_BYTES {
                    p.warnings.push(format!(
                        "{}.{}: {} is in a key; InnoDB keys hold at most {MAX_KEY_BYTES} bytes, \
                         so it becomes {ty} — a longer value stops the copy, naming the row",
                        t.id, c.name, c.native_type
                    ));
                }
                ty
            }
            None => mysql_type(&c.logical, keyed(&c.name))
                .map_err(|e| e.context(format!("table {}, column {}", t.id, c.name)))?,
        };
        let mut d = format!("{} {ty}", quote_ident(&c.name));
        if let Some(g) = &c.generated {
            d.push_str(&format!(
                " GENERATED ALWAYS AS ({}) STORED",
                pg_expr_to_mysql(g)
            ));
        }
        if !c.nullable {
            d.push_str(" NOT NULL");
        }
        if c.auto_increment && t.primary_key.first() == Some(&c.name) {
            d.push_str(" AUTO_INCREMENT");
        } else if let Some(def) = c.default.as_deref().filter(|_| c.generated.is_none()) {
            match default_from_pg(def, &c.logical) {
                Some(x) => d.push_str(&format!(" DEFAULT {x}")),
                None if def.starts_with("nextval(") => {}
                None => p.warnings.push(format!(
                    "{}.{}: default {def} has no MySQL equivalent and was left out",
                    t.id, c.name
                )),
            }
        }
        if let Some(cmt) = &c.comment {
            d.push_str(&format!(" COMMENT {}", quote_literal(cmt)));
        }
        defs.push(d);
    }
    if !t.primary_key.is_empty() {
        let cols: Vec<String> = t.primary_key.iter().map(|c| quote_ident(c)).collect();
        defs.push(format!("PRIMARY KEY ({})", cols.join(", ")));
    }
    p.create.push(format!(
        "CREATE TABLE {q} (\n  {}\n){}",
        defs.join(",\n  "),
        table_options(t)
    ));
    for ix in &t.indexes {
        if ix.columns.iter().any(|c| t.column(c).is_none())
            || ix
                .native_def
                .as_deref()
                .is_some_and(|d| d.starts_with("EXCLUDE"))
        {
            p.warnings.push(format!(
                "{}: index {} (expression or exclusion) was left out",
                t.id, ix.name
            ));
            continue;
        }
        let cols: Vec<String> = if ix.unique {
            ix.columns.iter().map(|c| quote_ident(c)).collect()
        } else {
            index_columns(t, ix, &widths)?
        };
        p.post.push(format!(
            "ALTER TABLE {q} ADD {}INDEX {} ({})",
            if ix.unique { "UNIQUE " } else { "" },
            quote_ident(&ix.name.chars().take(64).collect::<String>()),
            cols.join(", ")
        ));
    }
    for ck in &t.checks {
        p.optional.push(format!(
            "ALTER TABLE {q} ADD CONSTRAINT {} CHECK {}",
            quote_ident(&ck.name.chars().take(64).collect::<String>()),
            pg_expr_to_mysql(&ck.expr)
        ));
    }
    for fk in &t.foreign_keys {
        p.foreign_keys.push(fk_sql(&q, fk, map));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_pg_casts() {
        assert_eq!(pg_expr_to_mysql("'abc'::character varying"), "'abc'");
        assert_eq!(
            pg_expr_to_mysql("((price > (0)::numeric))"),
            "((price > (0)))"
        );
        assert_eq!(pg_expr_to_mysql("(\"Qty\" * 2)"), "(`Qty` * 2)");
        assert_eq!(pg_expr_to_mysql("'a::b'::text"), "'a::b'");
        assert_eq!(
            default_from_pg("now()", &LogicalType::TimestampTz(6)).as_deref(),
            Some("CURRENT_TIMESTAMP(6)")
        );
        assert_eq!(
            default_from_pg("true", &LogicalType::Bool).as_deref(),
            Some("1")
        );
        assert_eq!(
            default_from_pg(
                "nextval('t_id_seq'::regclass)",
                &LogicalType::Int {
                    bytes: 4,
                    unsigned: false
                }
            ),
            None
        );
    }

    #[test]
    fn maps_types() {
        assert_eq!(
            mysql_type(&LogicalType::Text, true).unwrap(),
            "varchar(768)"
        );
        assert_eq!(mysql_type(&LogicalType::Text, false).unwrap(), "longtext");
        assert_eq!(
            mysql_type(
                &LogicalType::Decimal {
                    precision: None,
                    scale: None
                },
                false
            )
            .unwrap(),
            "decimal(65,30)"
        );
        assert!(mysql_type(
            &LogicalType::Decimal {
                precision: Some(80),
                scale: Some(2)
            },
            false
        )
        .is_err());
        let varbit = LogicalType::Bit {
            len: 0,
            varying: true,
        };
        assert_eq!(mysql_type(&varbit, false).unwrap(), "longtext");
    }

    fn col(name: &str, logical: LogicalType, native: &str) -> ferry_core::Column {
        ferry_core::Column {
            nullable: false,
            ..ferry_core::Column::new(name, native, logical)
        }
    }

    #[test]
    fn unlimited_key_columns_share_the_innodb_key_budget() {
        let t = Table {
            id: TableId::new("public", "k"),
            columns: vec![
                col(
                    "name",
                    LogicalType::VarChar(Some(50)),
                    "character varying(50)",
                ),
                col("blob", LogicalType::Bytes, "bytea"),
                col("note", LogicalType::Text, "text"),
            ],
            primary_key: vec!["name".into(), "blob".into()],
            ..Table::default()
        };
        let w = key_widths(&t).unwrap();
        assert_eq!(w.get("blob"), Some(&(3072 - 200)));
        assert_eq!(w.get("note"), None);
        let mut p = DdlPlan::default();
        cross_engine(&t, &t.id, &mut p, &|x| x.clone()).unwrap();
        assert!(
            p.create[0].contains("`blob` varbinary(2872)"),
            "{}",
            p.create[0]
        );
        assert!(p.create[0].contains("`note` longtext"), "{}", p.create[0]);

        // bounded columns alone too wide: refused with the numbers
        let t = Table {
            id: TableId::new("public", "wide"),
            columns: vec![
                col(
                    "a",
                    LogicalType::VarChar(Some(500)),
                    "character varying(500)",
                ),
                col(
                    "b",
                    LogicalType::VarChar(Some(400)),
                    "character varying(400)",
                ),
            ],
            primary_key: vec!["a".into(), "b".into()],
            ..Table::default()
        };
        let e = key_widths(&t).unwrap_err().to_string();
        assert!(
            e.contains("public.wide") && e.contains("PRIMARY KEY") && e.contains("3600 bytes"),
            "{e}"
        );

        // a non-unique index keeps whole values and indexes a prefix
        let t = Table {
            id: TableId::new("public", "ix"),
            columns: vec![
                col(
                    "id",
                    LogicalType::Int {
                        bytes: 4,
                        unsigned: false,
                    },
                    "integer",
                ),
                col("body", LogicalType::Text, "text"),
                col("raw", LogicalType::Bytes, "bytea"),
            ],
            primary_key: vec!["id".into()],
            indexes: vec![ferry_core::Index {
                name: "ix_body_raw".into(),
                columns: vec!["id".into(), "body".into(), "raw".into()],
                unique: false,
                native_def: None,
                prefix: vec![None; 3],
                is_constraint: false,
            }],
            ..Table::default()
        };
        let mut p = DdlPlan::default();
        cross_engine(&t, &t.id, &mut p, &|x| x.clone()).unwrap();
        assert!(p.create[0].contains("`body` longtext"), "{}", p.create[0]);
        assert!(p.create[0].contains("`raw` longblob"), "{}", p.create[0]);
        assert!(
            p.post[0].contains("(`id`, `body`(383), `raw`(1534))"),
            "{}",
            p.post[0]
        );
    }
}
