//! Where each source table lands on the target, and what its DDL is.

use crate::conn::Conn;
use ferry_core::{Engine, Error, Result, Table, TableId, TaskSpec};
use std::collections::BTreeMap;

/// Source → target names for a task.
#[derive(Debug, Clone)]
pub struct NameMap {
    renames: BTreeMap<String, String>,
}

impl NameMap {
    /// Builds the map. Schema renames come from the task; with none given, a
    /// MySQL/MariaDB target whose URL names a database receives a single-schema
    /// source into that database (PostgreSQL targets keep schema names).
    pub fn new(spec: &TaskSpec, tables: &[Table]) -> NameMap {
        let mut renames = spec.rename.clone();
        let schemas: std::collections::BTreeSet<&str> =
            tables.iter().map(|t| t.id.schema.as_str()).collect();
        if let (Engine::MySql, Some(db), 1) =
            (spec.target.engine, &spec.target.database, schemas.len())
        {
            let only = schemas
                .iter()
                .next()
                .copied()
                .unwrap_or_default()
                .to_string();
            renames.entry(only).or_insert_with(|| db.clone());
        }
        NameMap { renames }
    }

    /// The target table for a source table.
    pub fn target(&self, t: &TableId) -> TableId {
        TableId::new(
            self.renames
                .get(&t.schema)
                .cloned()
                .unwrap_or_else(|| t.schema.clone()),
            t.name.clone(),
        )
    }
}

/// The DDL plan for a table, whichever the target engine.
pub type Ddl = ferry_core::DdlPlan;

/// Plans the DDL of one table (`create_text` = source `SHOW CREATE TABLE` for
/// MySQL→MySQL).
pub fn plan_ddl(
    t: &Table,
    from: Engine,
    to: Engine,
    names: &NameMap,
    create_text: Option<&str>,
) -> Result<Ddl> {
    let target = names.target(&t.id);
    let map = |id: &TableId| names.target(id);
    Ok(match to {
        Engine::Postgres => ferry_postgres::ddl::plan(t, &target, from, &map)?,
        Engine::MySql => ferry_mysql::ddl::plan(t, &target, from, create_text, &map)?,
    })
}

/// Runs one post-data statement (MySQL AUTO_INCREMENT markers are computed here
/// because the value depends on the copied maximum).
pub async fn run_post(conn: &mut Conn, stmt: &str) -> Result<()> {
    if let Some(rest) = stmt.strip_prefix("/*auto_increment*/ ") {
        // "<qualified table> <quoted column> <next>"
        let (table, rest) = split_quoted(rest)
            .ok_or_else(|| Error::definite("internal: bad auto_increment marker"))?;
        let (col, next) = split_quoted(rest.trim_start())
            .ok_or_else(|| Error::definite("internal: bad auto_increment marker"))?;
        let next: u64 = next.trim().parse().unwrap_or(1);
        let max = conn
            .query_text(&format!("SELECT COALESCE(MAX({col}), 0) FROM {table}"))
            .await?;
        let max: u64 = max
            .first()
            .and_then(|r| r[0].as_deref())
            .and_then(|m| m.parse().ok())
            .unwrap_or(0);
        let value = next.max(max.saturating_add(1));
        return conn
            .exec(&format!("ALTER TABLE {table} AUTO_INCREMENT = {value}"))
            .await;
    }
    conn.exec(stmt).await
}

/// Splits a leading backtick-quoted (possibly `a`.`b`) name from the rest.
fn split_quoted(s: &str) -> Option<(&str, &str)> {
    let b = s.as_bytes();
    let mut i = 0;
    loop {
        if b.get(i) != Some(&b'`') {
            return None;
        }
        i += 1;
        loop {
            match b.get(i)? {
                b'`' if b.get(i + 1) == Some(&b'`') => i += 2,
                b'`' => {
                    i += 1;
                    break;
                }
                _ => i += 1,
            }
        }
        if b.get(i) == Some(&b'.') {
            i += 1;
            continue;
        }
        return Some((&s[..i], &s[i..]));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_quoted_names() {
        assert_eq!(
            split_quoted("`a`.`b c` `id` 5"),
            Some(("`a`.`b c`", " `id` 5"))
        );
        assert_eq!(split_quoted("`x``y` 1"), Some(("`x``y`", " 1")));
        assert_eq!(split_quoted("nope"), None);
    }
}
