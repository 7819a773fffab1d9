//! Reading tables, columns, keys, indexes, constraints and sequences from the catalog.
//!
//! Each schema is read with `search_path` set to that schema, so definitions that refer
//! to objects of the same schema (enum types, sequences, referenced tables) come back
//! unqualified and resolve against the *target* schema when replayed there — which is
//! what makes schema renames work.

use crate::conn::{classify, quote_ident, quote_literal, PgConn};
use crate::types::{logical_type, PgTypeInfo};
use ferry_core::{
    schema::{Check, ForeignKey, Index, Sequence},
    select::ObjectFilter,
    Column, Result, Table, TableId,
};

const SYSTEM: &str = "n.nspname NOT IN ('pg_catalog','information_schema','ferry') \
     AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%'";

/// A table's row count estimate. `reltuples` is -1 until the table is first vacuumed
/// or analysed (PostgreSQL 14+), which a freshly loaded table often is not: then the
/// statistics' live-row count, else what the planner itself assumes (the heap's pages
/// times the rows of the columns' widths a page holds).
const ROWS_ESTIMATE: &str = "CASE WHEN c.reltuples >= 0 THEN c.reltuples::int8 \
     WHEN coalesce(pg_stat_get_live_tuples(c.oid), 0) > 0 THEN pg_stat_get_live_tuples(c.oid) \
     ELSE pg_relation_size(c.oid) / current_setting('block_size')::int8 \
          * ((current_setting('block_size')::int8 - 24) / (28 + (SELECT coalesce(sum( \
             CASE WHEN a.attlen > 0 THEN a.attlen ELSE 32 END), 0)::int8 FROM pg_attribute a \
             WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped))) END";

/// Lists the selected user tables with their full definitions.
pub async fn read_tables(conn: &PgConn, filter: &ObjectFilter) -> Result<Vec<Table>> {
    let c = &conn.client;
    let rows = c
        .query(
            &format!(
                "SELECT n.nspname::text, c.relname::text, c.oid, {ROWS_ESTIMATE}, \
                 pg_total_relation_size(c.oid), obj_description(c.oid, 'pg_class') \
                 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE c.relkind IN ('r','p') AND NOT c.relispartition AND {SYSTEM} \
                 AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = c.oid AND d.deptype = 'e') \
                 ORDER BY 1, 2"
            ),
            &[],
        )
        .await
        .map_err(classify)?;
    let mut out = Vec::new();
    let mut current_schema = String::new();
    for r in rows {
        let schema: String = r.get(0);
        let name: String = r.get(1);
        if !filter.matches(&schema, &name) {
            continue;
        }
        if schema != current_schema {
            c.batch_execute(&format!("SET search_path = {}", quote_ident(&schema)))
                .await
                .map_err(classify)?;
            current_schema = schema.clone();
        }
        let oid: u32 = r.get(2);
        let mut t = Table {
            id: TableId::new(schema, name),
            comment: r.get(5),
            estimated_rows: r.get::<_, i64>(3) as u64,
            estimated_bytes: r.get::<_, i64>(4) as u64,
            storage_engine: None,
            next_auto_increment: None,
            ..Table::default()
        };
        read_columns(conn, oid, &mut t).await?;
        read_constraints(conn, oid, &mut t).await?;
        read_indexes(conn, oid, &mut t).await?;
        read_sequences(conn, &mut t).await?;
        out.push(t);
    }
    c.batch_execute("RESET search_path")
        .await
        .map_err(classify)?;
    Ok(out)
}

async fn read_columns(conn: &PgConn, oid: u32, t: &mut Table) -> Result<()> {
    let rows = conn
        .client
        .query(
            "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod), a.attnotnull, \
             pg_get_expr(ad.adbin, ad.adrelid), a.attgenerated::text, a.attidentity::text, \
             col_description(a.attrelid, a.attnum), t.typname::text, t.typtype::text, \
             et.typname::text, et.typtype::text, \
             (SELECT array_agg(e.enumlabel::text ORDER BY e.enumsortorder) FROM pg_enum e \
              WHERE e.enumtypid = coalesce(et.oid, t.oid)), a.atttypid \
             FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid \
             LEFT JOIN pg_type et ON et.oid = t.typelem AND t.typcategory = 'A' \
             LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum \
             WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
            &[&oid],
        )
        .await
        .map_err(classify)?;
    let mut seen = std::collections::HashSet::new();
    for r in &rows {
        let column: String = r.get(0);
        let oid: u32 = r.get(12);
        user_type(conn, oid, &column, &t.id.schema, &mut t.pg_types, &mut seen).await?;
    }
    for r in rows {
        let elem: Option<String> = r.get(9);
        let info = PgTypeInfo {
            typname: r.get(7),
            formatted: r.get(1),
            typtype: r.get(8),
            enum_labels: r.get::<_, Option<Vec<String>>>(11).unwrap_or_default(),
            elem: elem.map(|e| (e, r.get::<_, Option<String>>(10).unwrap_or_default())),
        };
        let default: Option<String> = r.get(3);
        let generated: String = r.get(4);
        let identity: String = r.get(5);
        let is_gen = generated == "s";
        let serial = default
            .as_deref()
            .is_some_and(|d| d.starts_with("nextval("));
        t.columns.push(Column {
            name: r.get(0),
            native_type: info.formatted.clone(),
            logical: logical_type(&info),
            nullable: !r.get::<_, bool>(2),
            default: if is_gen { None } else { default.clone() },
            generated: if is_gen { default } else { None },
            generated_stored: is_gen,
            auto_increment: !identity.is_empty() || serial,
            comment: r.get(6),
            charset: None,
        });
    }
    Ok(())
}

/// OIDs below this are built into the server (`FirstNormalObjectId`).
const FIRST_USER_OID: u32 = 16384;

/// Collects what the target needs to recreate type `oid` (used by `column` of a table
/// in `schema`): the statements that create it after the types it is made of, or the
/// extension that brings it. Names are as `format_type` prints them under the table's
/// `search_path`, so they resolve the same way when replayed in the target schema.
fn user_type<'a>(
    conn: &'a PgConn,
    oid: u32,
    column: &'a str,
    schema: &'a str,
    out: &'a mut ferry_core::PgTypes,
    seen: &'a mut std::collections::HashSet<u32>,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<()>> + Send + 'a>> {
    Box::pin(async move {
        if oid < FIRST_USER_OID || !seen.insert(oid) {
            return Ok(());
        }
        // any user type (or array of one) travels as text: binary forms of arrays and
        // composites carry the source's type OIDs, and some types have none at all
        out.text_copy = true;
        let c = &conn.client;
        let r = c
            .query_one(
                "SELECT t.typtype::text, t.typcategory::text, t.typelem, t.typbasetype, t.typrelid, \
                 format_type(t.oid, NULL), n.nspname::text, \
                 (SELECT e.extname::text FROM pg_depend d JOIN pg_extension e ON e.oid = d.refobjid \
                  WHERE d.classid = 'pg_type'::regclass AND d.objid = t.oid AND d.deptype = 'e' LIMIT 1), \
                 (SELECT en.nspname::text FROM pg_depend d JOIN pg_extension e ON e.oid = d.refobjid \
                  JOIN pg_namespace en ON en.oid = e.extnamespace \
                  WHERE d.classid = 'pg_type'::regclass AND d.objid = t.oid AND d.deptype = 'e' LIMIT 1), \
                 format_type(t.typbasetype, t.typtypmod), t.typnotnull, t.typdefault \
                 FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace WHERE t.oid = $1",
                &[&oid],
            )
            .await
            .map_err(classify)?;
        let (kind, category): (String, String) = (r.get(0), r.get(1));
        let (elem, base, rel): (u32, u32, u32) = (r.get(2), r.get(3), r.get(4));
        let name: String = r.get(5);
        let type_schema: String = r.get(6);
        let wrap = |stmt: String| {
            format!(
                "DO $ferry$ BEGIN {stmt}; EXCEPTION WHEN duplicate_object THEN NULL; END $ferry$"
            )
        };
        let schema_first = |out: &mut ferry_core::PgTypes, s: &str| {
            if s != schema {
                out.create
                    .push(format!("CREATE SCHEMA IF NOT EXISTS {}", quote_ident(s)));
            }
        };
        if let Some(ext) = r.get::<_, Option<String>>(7) {
            let ext_schema: String = r.get::<_, Option<String>>(8).unwrap_or_default();
            schema_first(out, &ext_schema);
            let stmt = if ext_schema == schema {
                // the table's own schema: follows the table to its target schema
                format!("CREATE EXTENSION IF NOT EXISTS {}", quote_ident(&ext))
            } else {
                format!(
                    "CREATE EXTENSION IF NOT EXISTS {} SCHEMA {}",
                    quote_ident(&ext),
                    quote_ident(&ext_schema)
                )
            };
            if !out.create.contains(&stmt) {
                out.create.push(stmt);
            }
            if !out.extensions.iter().any(|(e, _, _)| e == &ext) {
                out.extensions.push((ext, column.to_string(), name));
            }
            return Ok(());
        }
        if category == "A" && elem != 0 {
            return user_type(conn, elem, column, schema, out, seen).await;
        }
        match kind.as_str() {
            "e" => {
                let labels: Vec<String> = c
                    .query_one(
                        "SELECT coalesce(array_agg(enumlabel::text ORDER BY enumsortorder), '{}') \
                         FROM pg_enum WHERE enumtypid = $1",
                        &[&oid],
                    )
                    .await
                    .map_err(classify)?
                    .get(0);
                schema_first(out, &type_schema);
                let labels: Vec<String> = labels.iter().map(|l| quote_literal(l)).collect();
                out.create.push(wrap(format!(
                    "CREATE TYPE {name} AS ENUM ({})",
                    labels.join(", ")
                )));
            }
            "d" => {
                user_type(conn, base, column, schema, out, seen).await?;
                let mut stmt = format!("CREATE DOMAIN {name} AS {}", r.get::<_, String>(9));
                if let Some(d) = r.get::<_, Option<String>>(11) {
                    stmt.push_str(&format!(" DEFAULT {d}"));
                }
                if r.get::<_, bool>(10) {
                    stmt.push_str(" NOT NULL");
                }
                for k in c
                    .query(
                        "SELECT conname::text, pg_get_constraintdef(oid) FROM pg_constraint \
                         WHERE contypid = $1 AND contype = 'c' ORDER BY conname",
                        &[&oid],
                    )
                    .await
                    .map_err(classify)?
                {
                    stmt.push_str(&format!(
                        " CONSTRAINT {} {}",
                        quote_ident(&k.get::<_, String>(0)),
                        k.get::<_, String>(1)
                    ));
                }
                schema_first(out, &type_schema);
                out.create.push(wrap(stmt));
            }
            "c" => {
                let attrs = c
                    .query(
                        "SELECT attname::text, atttypid, format_type(atttypid, atttypmod) \
                         FROM pg_attribute WHERE attrelid = $1 AND attnum > 0 AND NOT attisdropped \
                         ORDER BY attnum",
                        &[&rel],
                    )
                    .await
                    .map_err(classify)?;
                let mut defs = Vec::new();
                for a in &attrs {
                    user_type(conn, a.get(1), column, schema, out, seen).await?;
                    defs.push(format!(
                        "{} {}",
                        quote_ident(&a.get::<_, String>(0)),
                        a.get::<_, String>(2)
                    ));
                }
                schema_first(out, &type_schema);
                out.create
                    .push(wrap(format!("CREATE TYPE {name} AS ({})", defs.join(", "))));
            }
            "r" | "m" => {
                let rg = c
                    .query_one(
                        "SELECT rngtypid, rngsubtype, format_type(rngsubtype, NULL), \
                         rngcanonical::oid <> 0, rngsubdiff::oid, rngsubdiff::regproc::text, \
                         format_type(rngtypid, NULL) \
                         FROM pg_range WHERE rngtypid = $1 OR rngmultitypid = $1",
                        &[&oid],
                    )
                    .await
                    .map_err(classify)?;
                let (range_oid, sub): (u32, u32) = (rg.get(0), rg.get(1));
                if range_oid != oid && !seen.insert(range_oid) {
                    return Ok(());
                }
                if rg.get::<_, bool>(3) {
                    out.unsupported.push((
                        column.to_string(),
                        name,
                        "a range type with a canonical function; create it on the target first"
                            .into(),
                    ));
                    return Ok(());
                }
                user_type(conn, sub, column, schema, out, seen).await?;
                let mut stmt = format!(
                    "CREATE TYPE {} AS RANGE (SUBTYPE = {}",
                    rg.get::<_, String>(6),
                    rg.get::<_, String>(2)
                );
                if rg.get::<_, u32>(4) != 0 {
                    stmt.push_str(&format!(", SUBTYPE_DIFF = {}", rg.get::<_, String>(5)));
                }
                stmt.push(')');
                schema_first(out, &type_schema);
                out.create.push(wrap(stmt));
            }
            _ => out.unsupported.push((
                column.to_string(),
                name,
                "a base type defined outside an extension (its C functions cannot be copied); \
                 create it on the target first, or exclude the table"
                    .into(),
            )),
        }
        Ok(())
    })
}

async fn read_constraints(conn: &PgConn, oid: u32, t: &mut Table) -> Result<()> {
    let rows = conn
        .client
        .query(
            "SELECT c.conname::text, c.contype::text, pg_get_constraintdef(c.oid), \
             ARRAY(SELECT a.attname::text FROM unnest(c.conkey) WITH ORDINALITY k(n, o) \
                   JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.n ORDER BY k.o), \
             rn.nspname::text, rc.relname::text, \
             ARRAY(SELECT a.attname::text FROM unnest(c.confkey) WITH ORDINALITY k(n, o) \
                   JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.n ORDER BY k.o), \
             c.confdeltype::text, c.confupdtype::text \
             FROM pg_constraint c \
             LEFT JOIN pg_class rc ON rc.oid = c.confrelid \
             LEFT JOIN pg_namespace rn ON rn.oid = rc.relnamespace \
             WHERE c.conrelid = $1 ORDER BY c.conname",
            &[&oid],
        )
        .await
        .map_err(classify)?;
    let action = |a: &str| {
        match a {
            "c" => "CASCADE",
            "n" => "SET NULL",
            "d" => "SET DEFAULT",
            "r" => "RESTRICT",
            _ => "NO ACTION",
        }
        .to_string()
    };
    for r in rows {
        let name: String = r.get(0);
        let kind: String = r.get(1);
        let def: String = r.get(2);
        let cols: Vec<String> = r.get(3);
        match kind.as_str() {
            "p" => t.primary_key = cols,
            "u" | "x" => t.indexes.push(Index {
                name,
                prefix: vec![None; cols.len()],
                columns: cols,
                unique: kind == "u",
                native_def: Some(def),
                is_constraint: true,
            }),
            "c" => t.checks.push(Check {
                name,
                expr: def.strip_prefix("CHECK ").unwrap_or(&def).to_string(),
            }),
            "f" => t.foreign_keys.push(ForeignKey {
                name,
                columns: cols,
                ref_table: TableId::new(r.get::<_, String>(4), r.get::<_, String>(5)),
                ref_columns: r.get(6),
                on_delete: action(&r.get::<_, String>(7)),
                on_update: action(&r.get::<_, String>(8)),
            }),
            _ => {}
        }
    }
    Ok(())
}

async fn read_indexes(conn: &PgConn, oid: u32, t: &mut Table) -> Result<()> {
    let rows = conn
        .client
        .query(
            "SELECT ic.relname::text, i.indisunique, pg_get_indexdef(i.indexrelid), \
             ARRAY(SELECT coalesce(a.attname::text, '') FROM unnest(i.indkey) WITH ORDINALITY k(n, o) \
                   LEFT JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.n ORDER BY k.o) \
             FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid \
             WHERE i.indrelid = $1 AND NOT EXISTS \
               (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid AND c.conrelid = i.indrelid) \
             ORDER BY 1",
            &[&oid],
        )
        .await
        .map_err(classify)?;
    for r in rows {
        let def: String = r.get(2);
        let cols: Vec<String> = r.get(3);
        t.indexes.push(Index {
            name: r.get(0),
            prefix: vec![None; cols.len()],
            columns: cols,
            unique: r.get(1),
            native_def: def.find(" USING ").map(|i| def[i + 1..].to_string()),
            is_constraint: false,
        });
    }
    Ok(())
}

async fn read_sequences(conn: &PgConn, t: &mut Table) -> Result<()> {
    let qualified = crate::conn::qualified(&t.id);
    for col in t.columns.iter().filter(|c| c.auto_increment) {
        let row = conn
            .client
            .query_one(
                "SELECT s.relname::text, format('AS %s INCREMENT BY %s MINVALUE %s MAXVALUE %s START WITH %s CACHE %s%s', \
                   format_type(q.seqtypid, NULL), q.seqincrement, q.seqmin, q.seqmax, q.seqstart, q.seqcache, \
                   CASE WHEN q.seqcycle THEN ' CYCLE' ELSE '' END), \
                 CASE a.attidentity WHEN 'a' THEN 'ALWAYS' WHEN 'd' THEN 'BY DEFAULT' END \
                 FROM pg_attribute a JOIN pg_class s ON s.oid = pg_get_serial_sequence($1, $2)::regclass \
                 JOIN pg_sequence q ON q.seqrelid = s.oid \
                 WHERE a.attrelid = $1::regclass AND a.attname = $2",
                &[&qualified, &col.name],
            )
            .await;
        let Ok(row) = row else { continue };
        let name: String = row.get(0);
        let state = conn
            .client
            .query_one(
                &format!(
                    "SELECT CASE WHEN is_called THEN last_value + 1 ELSE last_value END FROM {}.{}",
                    quote_ident(&t.id.schema),
                    quote_ident(&name)
                ),
                &[],
            )
            .await
            .map_err(classify)?;
        t.sequences.push(Sequence {
            name,
            column: col.name.clone(),
            options: row.get(1),
            identity: row.get(2),
            next_value: state.get(0),
        });
    }
    Ok(())
}
