//! Reading tables from `information_schema` (MariaDB and MySQL 8 forms).

use crate::conn::{quote_literal, MyConn};
use crate::types::logical_type;
use ferry_core::{
    schema::{Check, ForeignKey, Index},
    select::ObjectFilter,
    Column, LogicalType, Result, Table, TableId,
};

/// Databases that are never user data.
pub const SYSTEM: &str = "'mysql','information_schema','performance_schema','sys','ferry'";

/// Lists selected tables. `default_db` (the URL's database) limits the search when
/// the filter names no schema literally.
pub async fn read_tables(
    conn: &mut MyConn,
    filter: &ObjectFilter,
    default_db: Option<&str>,
) -> Result<Vec<Table>> {
    let schemas = match (filter.literal_schemas(), default_db) {
        (Some(s), _) => format!(
            "IN ({})",
            s.iter()
                .map(|x| quote_literal(x))
                .collect::<Vec<_>>()
                .join(",")
        ),
        (None, Some(db)) => format!("= {}", quote_literal(db)),
        (None, None) => format!("NOT IN ({SYSTEM})"),
    };
    let rows = conn
        .query_text(&format!(
            "SELECT TABLE_SCHEMA, TABLE_NAME, COALESCE(TABLE_ROWS,0), COALESCE(DATA_LENGTH,0)+COALESCE(INDEX_LENGTH,0), \
             ENGINE, AUTO_INCREMENT, TABLE_COMMENT FROM information_schema.TABLES \
             WHERE TABLE_TYPE = 'BASE TABLE' AND TABLE_SCHEMA {schemas} ORDER BY 1, 2"
        ))
        .await?;
    let mut out = Vec::new();
    for r in rows {
        let (schema, name) = (
            r[0].clone().unwrap_or_default(),
            r[1].clone().unwrap_or_default(),
        );
        if !filter.matches(&schema, &name) {
            continue;
        }
        let mut t = Table {
            id: TableId::new(schema, name),
            comment: r[6].clone().filter(|c| !c.is_empty()),
            estimated_rows: r[2].as_deref().and_then(|x| x.parse().ok()).unwrap_or(0),
            estimated_bytes: r[3].as_deref().and_then(|x| x.parse().ok()).unwrap_or(0),
            storage_engine: r[4].clone(),
            next_auto_increment: r[5].as_deref().and_then(|x| x.parse().ok()),
            ..Table::default()
        };
        read_columns(conn, &mut t).await?;
        read_keys(conn, &mut t).await?;
        out.push(t);
    }
    Ok(out)
}

fn where_table(t: &TableId) -> String {
    format!(
        "TABLE_SCHEMA = {} AND TABLE_NAME = {}",
        quote_literal(&t.schema),
        quote_literal(&t.name)
    )
}

async fn read_columns(conn: &mut MyConn, t: &mut Table) -> Result<()> {
    let rows = conn
        .query_text(&format!(
            "SELECT COLUMN_NAME, COLUMN_TYPE, DATA_TYPE, IS_NULLABLE, COLUMN_DEFAULT, EXTRA, \
             GENERATION_EXPRESSION, COLUMN_COMMENT, CHARACTER_SET_NAME \
             FROM information_schema.COLUMNS WHERE {} ORDER BY ORDINAL_POSITION",
            where_table(&t.id)
        ))
        .await?;
    let mariadb_json_checks = conn
        .query_text(&format!(
            "SELECT CONSTRAINT_NAME, CHECK_CLAUSE, LEVEL FROM information_schema.CHECK_CONSTRAINTS \
             WHERE CONSTRAINT_SCHEMA = {} AND TABLE_NAME = {}",
            quote_literal(&t.id.schema),
            quote_literal(&t.id.name)
        ))
        .await
        .unwrap_or_default();
    for r in rows {
        let s = |i: usize| r[i].clone().unwrap_or_default();
        let name = s(0);
        let column_type = s(1);
        let extra = s(5).to_ascii_lowercase();
        let generated = (extra.contains("generated") && !extra.contains("default_generated"))
            .then(|| s(6))
            .filter(|g| !g.is_empty());
        let json_check = format!("json_valid(`{}`)", name.replace('`', "``"));
        let mut logical = logical_type(&s(2), &column_type);
        if logical == LogicalType::Text
            && mariadb_json_checks
                .iter()
                .any(|c| c[1].as_deref() == Some(json_check.as_str()))
        {
            logical = LogicalType::Json;
        }
        // MySQL 8 reports literal defaults unquoted; MariaDB quotes them already
        let default = r[4].clone().map(|d| {
            let is_expr = extra.contains("default_generated")
                || d.starts_with('\'')
                || d.eq_ignore_ascii_case("null")
                || d.contains('(')
                || d.parse::<f64>().is_ok()
                || d.starts_with("b'");
            if is_expr {
                d
            } else {
                quote_literal(&d)
            }
        });
        t.columns.push(Column {
            name,
            native_type: column_type,
            logical,
            nullable: s(3) == "YES",
            default: if generated.is_some() { None } else { default },
            generated_stored: extra.contains("stored") || extra.contains("persistent"),
            generated,
            auto_increment: extra.contains("auto_increment"),
            comment: r[7].clone().filter(|c| !c.is_empty()),
            charset: r[8].clone(),
        });
    }
    for c in mariadb_json_checks {
        let (name, clause) = (
            c[0].clone().unwrap_or_default(),
            c[1].clone().unwrap_or_default(),
        );
        if clause.starts_with("json_valid(") {
            continue;
        }
        t.checks.push(Check { name, expr: clause });
    }
    Ok(())
}

async fn read_keys(conn: &mut MyConn, t: &mut Table) -> Result<()> {
    let rows = conn
        .query_text(&format!(
            "SELECT INDEX_NAME, NON_UNIQUE, COLUMN_NAME, SUB_PART, INDEX_TYPE FROM information_schema.STATISTICS \
             WHERE {} ORDER BY INDEX_NAME = 'PRIMARY' DESC, INDEX_NAME, SEQ_IN_INDEX",
            where_table(&t.id)
        ))
        .await?;
    for r in rows {
        let name = r[0].clone().unwrap_or_default();
        let col = r[2].clone().unwrap_or_default();
        if name == "PRIMARY" {
            t.primary_key.push(col);
            continue;
        }
        let prefix = r[3].as_deref().and_then(|x| x.parse().ok());
        let kind = r[4].clone().unwrap_or_default();
        match t.indexes.iter_mut().find(|i| i.name == name) {
            Some(ix) => {
                ix.columns.push(col);
                ix.prefix.push(prefix);
            }
            None => t.indexes.push(Index {
                name,
                columns: vec![col],
                unique: r[1].as_deref() == Some("0"),
                native_def: (kind != "BTREE" && kind != "HASH").then_some(kind),
                prefix: vec![prefix],
                is_constraint: false,
            }),
        }
    }
    let fks = conn
        .query_text(&format!(
            "SELECT k.CONSTRAINT_NAME, k.COLUMN_NAME, k.REFERENCED_TABLE_SCHEMA, k.REFERENCED_TABLE_NAME, \
             k.REFERENCED_COLUMN_NAME, r.DELETE_RULE, r.UPDATE_RULE \
             FROM information_schema.KEY_COLUMN_USAGE k JOIN information_schema.REFERENTIAL_CONSTRAINTS r \
             ON r.CONSTRAINT_SCHEMA = k.CONSTRAINT_SCHEMA AND r.CONSTRAINT_NAME = k.CONSTRAINT_NAME AND r.TABLE_NAME = k.TABLE_NAME \
             WHERE k.{} AND k.REFERENCED_TABLE_NAME IS NOT NULL ORDER BY k.CONSTRAINT_NAME, k.ORDINAL_POSITION",
            where_table(&t.id).replace(" AND TABLE_NAME", " AND k.TABLE_NAME")
        ))
        .await?;
    for r in fks {
        let s = |i: usize| r[i].clone().unwrap_or_default();
        match t.foreign_keys.iter_mut().find(|f| f.name == s(0)) {
            Some(fk) => {
                fk.columns.push(s(1));
                fk.ref_columns.push(s(4));
            }
            None => t.foreign_keys.push(ForeignKey {
                name: s(0),
                columns: vec![s(1)],
                ref_table: TableId::new(s(2), s(3)),
                ref_columns: vec![s(4)],
                on_delete: s(5),
                on_update: s(6),
            }),
        }
    }
    Ok(())
}

/// `SHOW CREATE TABLE` text (same-engine copies replay it).
pub async fn show_create(conn: &mut MyConn, t: &TableId) -> Result<String> {
    let rows = conn
        .query_text(&format!("SHOW CREATE TABLE {}", crate::conn::qualified(t)))
        .await?;
    Ok(rows
        .into_iter()
        .next()
        .and_then(|r| r.get(1).cloned().flatten())
        .unwrap_or_default())
}
