//! The schema toolbox: planning every table's DDL, refusing what cannot land on the
//! target (names that collide there, missing extensions), making room for the copy
//! (`existing_data`), and one "create on target" sequence for every caller — the
//! full copy (keys after the data), and tables joining a task that already streams
//! (keys at once).
//!
//! Engine-blind: engine facts and statements come from the connectors' `Schema`.

pub mod mapping;

use crate::conn::Conn;
use crate::factory::connector;
use crate::schema::mapping::{plan_ddl, Ddl, NameMap};
use ferry_connector::NameFolding;
use ferry_core::{Error, ErrorKind, ExistingData, Result, Table, TableId, TaskSpec};
use std::collections::HashMap;

/// Plans the DDL of every table; all mapping errors are reported together.
pub async fn plan_all(
    src: &mut Conn,
    spec: &TaskSpec,
    tables: &[Table],
    names: &NameMap,
) -> Result<Vec<Ddl>> {
    let (from, to) = (spec.source.engine, spec.target.engine);
    let mut out = Vec::new();
    let mut errors = Vec::new();
    for t in tables {
        let create_text = connector(from).create_text(&mut **src, &t.id, to).await?;
        match plan_ddl(t, from, to, names, create_text.as_deref()) {
            Ok(d) => out.push(d),
            Err(e) => errors.push(e.to_string()),
        }
    }
    if !errors.is_empty() {
        return Err(Error::definite(format!(
            "cannot map the schema:\n  {}",
            errors.join("\n  ")
        )));
    }
    Ok(out)
}

/// Refuses selected tables that would land on one and the same target table or
/// column: MySQL/MariaDB compare column names without case always, and database and
/// table names too when `lower_case_table_names` is not 0 — `"A"."T"` and `a.t` of a
/// PostgreSQL source are then one table there.
pub async fn target_name_clashes(dst: &mut Conn, tables: &[Table], names: &NameMap) -> Result<()> {
    let folding = dst.connector().name_folding(&mut **dst).await?;
    if folding == NameFolding::default() {
        return Ok(());
    }
    let clashes = name_clashes(tables, names, folding);
    if clashes.is_empty() {
        return Ok(());
    }
    Err(Error::definite(format!(
        "names collide on the MySQL/MariaDB target:\n  {}",
        clashes.join("\n  ")
    ))
    .with_hint(
        "rename one of them on the source, copy them by separate tasks into different \
         target databases (objects.rename), or exclude one (objects.exclude)",
    ))
}

/// The selected tables that would be one table (when the target folds table names)
/// or have columns that would be one column (when it folds column names).
pub(crate) fn name_clashes(tables: &[Table], names: &NameMap, folding: NameFolding) -> Vec<String> {
    let mut clashes = Vec::new();
    if folding.tables {
        let mut seen: HashMap<(String, String), &TableId> = HashMap::new();
        for t in tables {
            let target = names.target(&t.id);
            let key = (target.schema.to_lowercase(), target.name.to_lowercase());
            match seen.get(&key) {
                Some(other) => clashes.push(format!(
                    "{other} and {} are one table on the target ({target}): its \
                     lower_case_table_names is not 0, so names there ignore case",
                    t.id
                )),
                None => {
                    seen.insert(key, &t.id);
                }
            }
        }
    }
    if !folding.columns {
        return clashes;
    }
    for t in tables {
        let mut seen: HashMap<String, &str> = HashMap::new();
        for c in &t.columns {
            match seen.get(&c.name.to_lowercase()) {
                Some(other) => clashes.push(format!(
                    "{}: columns {other:?} and {:?} differ only in case; MySQL/MariaDB column \
                     names ignore case, so the target table cannot have both",
                    t.id, c.name
                )),
                None => {
                    seen.insert(c.name.to_lowercase(), &c.name);
                }
            }
        }
    }
    clashes
}

/// Refuses tables whose column types come from an extension the target server does
/// not have available, naming table, column, type and extension (for a target
/// engine with extensions: PostgreSQL's `pg_available_extensions`). `Ok(Some(list))`
/// names the extensions needed.
pub async fn missing_extensions(dst: &mut Conn, tables: &[Table]) -> Result<Option<String>> {
    let needed: Vec<(&Table, &(String, String, String))> = tables
        .iter()
        .flat_map(|t| t.pg_types.extensions.iter().map(move |e| (t, e)))
        .collect();
    if needed.is_empty() {
        return Ok(None);
    }
    let Some(available) = dst.connector().available_extensions(&mut **dst).await? else {
        return Ok(None);
    };
    let missing = missing_among(&needed, &available);
    if !missing.is_empty() {
        return Err(Error::definite(format!(
            "the target server lacks extensions the tables' types come from: {}",
            missing.join("; ")
        ))
        .with_hint(
            "install the extension's package on the target server (e.g. postgresql-contrib), \
             or exclude the tables (objects.exclude)",
        ));
    }
    let mut exts: Vec<&str> = needed.iter().map(|(_, (e, _, _))| e.as_str()).collect();
    exts.sort();
    exts.dedup();
    Ok(Some(exts.join(", ")))
}

/// The needed `(extension, column, type)` of each table that `available` lacks.
fn missing_among(
    needed: &[(&Table, &(String, String, String))],
    available: &[String],
) -> Vec<String> {
    needed
        .iter()
        .filter(|(_, (ext, _, _))| !available.contains(ext))
        .map(|(t, (ext, col, ty))| format!("{}.{col} (type {ty}) needs extension {ext}", t.id))
        .collect()
}

/// What became of a target table that may already exist.
pub enum Room {
    /// No such table: create it.
    Free,
    /// Kept (emptied for `truncate`): the copy goes into it.
    Kept,
    /// `existing_data: fail` and the table exists: why.
    Refused(String),
}

/// What `existing_data` makes of a target table in state `state` (see
/// [`ferry_connector::SqlConn::table_state`]).
fn room_for(t: &TableId, state: Option<bool>, policy: ExistingData) -> Room {
    match (state, policy) {
        (None, _) => Room::Free,
        (Some(has_rows), ExistingData::Fail) => Room::Refused(format!(
            "{t} ({})",
            if has_rows {
                "has rows"
            } else {
                "exists, empty"
            }
        )),
        (Some(_), ExistingData::Drop) => Room::Free,
        (Some(_), ExistingData::Truncate | ExistingData::Append) => Room::Kept,
    }
}

/// Applies `existing_data` to the `targets` a copy is about to create or fill
/// (`selected`: every target table of the task). `drop` and `truncate` treat the
/// existing ones together, so foreign keys among them are no obstacle (see the
/// connectors' `Schema::clear_tables`). A foreign key of a table outside the task
/// that references one of them is refused, naming it: dropping or emptying its
/// parent would leave its rows dangling, and the task cannot know what they should
/// point at.
pub async fn make_room(
    dst: &mut Conn,
    policy: ExistingData,
    targets: &[TableId],
    selected: &[TableId],
) -> Result<Vec<Room>> {
    let mut states = Vec::with_capacity(targets.len());
    for t in targets {
        states.push(dst.table_state(t).await?);
    }
    let existing: Vec<&TableId> = targets
        .iter()
        .zip(&states)
        .filter(|(_, s)| s.is_some())
        .map(|(t, _)| t)
        .collect();
    let rooms = targets
        .iter()
        .zip(&states)
        .map(|(t, s)| room_for(t, *s, policy))
        .collect();
    if existing.is_empty() || !matches!(policy, ExistingData::Drop | ExistingData::Truncate) {
        return Ok(rooms);
    }
    let what = if policy == ExistingData::Drop {
        "drop"
    } else {
        "truncate"
    };
    let outside = outside_references(dst, &existing, selected).await?;
    if !outside.is_empty() {
        return Err(Error::definite(format!(
            "existing_data: {what} would leave rows of tables outside the task pointing at nothing: {}",
            outside.join(", ")
        ))
        .with_hint(
            "add those tables to the task's objects, drop those foreign keys on the target \
             (ALTER TABLE … DROP FOREIGN KEY / DROP CONSTRAINT …), or use existing_data: append",
        ));
    }
    let names = existing
        .iter()
        .map(|t| t.to_string())
        .collect::<Vec<_>>()
        .join(", ");
    dst.connector()
        .clear_tables(&mut **dst, &existing, policy == ExistingData::Drop)
        .await
        .map_err(|e| {
            e.context(format!("existing_data: {what} of {names}"))
                .with_hint(
                    "objects on the target that depend on these tables (views, triggers, foreign keys) \
                     must be dropped first, or use existing_data: append",
                )
        })?;
    Ok(rooms)
}

/// Foreign keys of tables not in `selected` that reference one of `parents`, as
/// `constraint (child → parent)`.
pub(crate) async fn outside_references(
    dst: &mut Conn,
    parents: &[&TableId],
    selected: &[TableId],
) -> Result<Vec<String>> {
    let schemas: std::collections::BTreeSet<&str> =
        parents.iter().map(|t| t.schema.as_str()).collect();
    if schemas.is_empty() {
        return Ok(Vec::new());
    }
    let schemas: Vec<&str> = schemas.into_iter().collect();
    let sql = dst.connector().foreign_keys_into_sql(&schemas);
    let rows = dst.query_text(&sql).await?;
    Ok(outside_of(&rows, parents, selected))
}

/// The rows of a `Schema::foreign_keys_into_sql` query whose parent is one of
/// `parents` and whose child is not `selected`.
fn outside_of(
    rows: &[Vec<Option<String>>],
    parents: &[&TableId],
    selected: &[TableId],
) -> Vec<String> {
    let mut out = Vec::new();
    for r in rows {
        let cell = |i: usize| r.get(i).cloned().flatten().unwrap_or_default();
        let child = TableId::new(cell(1), cell(2));
        let parent = TableId::new(cell(3), cell(4));
        if parents.contains(&&parent) && !selected.contains(&child) {
            out.push(format!("{} ({child} → {parent})", cell(0)));
        }
    }
    out
}

/// When a table created on the target gets its keys and indexes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keys {
    /// With the table: its rows arrive as upserts (a table joining a task that
    /// already streams), which need the key. Translated checks follow at once too.
    Now,
    /// After its data ([`build_keys`]), which then loads faster; translated checks
    /// and foreign keys once every table's data is in ([`finish_after_data`]).
    AfterData,
}

/// "Create this table on the target": the table (with its keys and indexes when
/// `keys` is [`Keys::Now`]). Foreign keys always come later ([`add_foreign_keys`],
/// once every table they reference exists). Returns the translated checks that
/// could not be recreated (only with [`Keys::Now`]).
pub async fn create_table(
    dst: &mut Conn,
    target: &TableId,
    ddl: &Ddl,
    keys: Keys,
) -> Result<Vec<String>> {
    let now: &[String] = match keys {
        Keys::Now => &ddl.post,
        Keys::AfterData => &[],
    };
    let counters: &[String] = match keys {
        Keys::Now => &ddl.counters,
        Keys::AfterData => &[],
    };
    for stmt in ddl.create.iter().chain(now).chain(counters) {
        dst.exec(stmt)
            .await
            .map_err(|e| e.context(format!("creating {target}")))?;
    }
    Ok(match keys {
        Keys::Now => optional_statements(dst, target, ddl, false).await,
        Keys::AfterData => Vec::new(),
    })
}

/// Keys, indexes, checks and counter positions of a table created with
/// [`Keys::AfterData`], once its data is in. `tolerant` skips objects an
/// interrupted attempt left behind.
pub async fn build_keys(dst: &mut Conn, target: &TableId, ddl: &Ddl, tolerant: bool) -> Result<()> {
    for stmt in ddl.post.iter().chain(&ddl.counters) {
        match dst.exec(stmt).await {
            Ok(()) => {}
            Err(e) if tolerant && e.is(ErrorKind::AlreadyExists) => {}
            Err(e) => return Err(e.context(format!("building keys/indexes of {target}"))),
        }
    }
    Ok(())
}

/// The last step for a table created with [`Keys::AfterData`], once every table's
/// data is in: its foreign keys, then its translated checks. Returns the checks
/// that could not be recreated (those already there are not reported).
pub async fn finish_after_data(dst: &mut Conn, target: &TableId, ddl: &Ddl) -> Result<Vec<String>> {
    add_foreign_keys(dst, target, ddl).await?;
    Ok(optional_statements(dst, target, ddl, true).await)
}

/// Runs the statements that may fail without failing the task (translated checks);
/// returns a warning for each failure (but those already there when
/// `skip_existing`).
async fn optional_statements(
    dst: &mut Conn,
    target: &TableId,
    ddl: &Ddl,
    skip_existing: bool,
) -> Vec<String> {
    let mut warnings = Vec::new();
    for stmt in &ddl.optional {
        if let Err(e) = dst.exec(stmt).await {
            if !(skip_existing && e.is(ErrorKind::AlreadyExists)) {
                warnings.push(format!(
                    "{target}: could not recreate `{stmt}`: {}",
                    e.message
                ));
            }
        }
    }
    warnings
}

/// Creates a table with its keys and indexes at once ([`create_table`] with
/// [`Keys::Now`]), for a table that joins a task that already streams. Returns the
/// plan's warnings and what could not be carried.
pub async fn create_table_now(dst: &mut Conn, target: &TableId, ddl: &Ddl) -> Result<Vec<String>> {
    let mut warnings = ddl.warnings.clone();
    warnings.extend(create_table(dst, target, ddl, Keys::Now).await?);
    Ok(warnings)
}

/// The foreign keys of a created table, but those it has already (a kept table,
/// `existing_data: truncate | append`, or an interrupted attempt).
pub async fn add_foreign_keys(dst: &mut Conn, target: &TableId, ddl: &Ddl) -> Result<()> {
    if ddl.foreign_keys.is_empty() {
        return Ok(());
    }
    let sql = format!(
        "SELECT constraint_name FROM information_schema.table_constraints \
         WHERE table_schema = {} AND table_name = {} AND constraint_type = 'FOREIGN KEY'",
        dst.literal(&target.schema),
        dst.literal(&target.name)
    );
    let present: Vec<String> = dst
        .query_text(&sql)
        .await?
        .into_iter()
        .filter_map(|r| r.into_iter().next().flatten())
        .map(|name| format!(" ADD CONSTRAINT {} FOREIGN KEY ", dst.ident(&name)))
        .collect();
    for fk in &ddl.foreign_keys {
        if present.iter().any(|p| fk.contains(p.as_str())) {
            continue;
        }
        match dst.exec(fk).await {
            Ok(()) => {}
            Err(e) if e.is(ErrorKind::AlreadyExists) => {}
            Err(e) => return Err(e.context(format!("adding a foreign key to {target}"))),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(s: &str, n: &str, cols: &[&str]) -> Table {
        let int = ferry_core::LogicalType::Int {
            bytes: 4,
            unsigned: false,
        };
        Table {
            id: TableId::new(s, n),
            columns: cols
                .iter()
                .map(|c| ferry_core::Column::new(*c, "int", int.clone()))
                .collect(),
            ..Table::default()
        }
    }

    #[test]
    fn names_differing_only_in_case_clash_where_the_target_folds_them() {
        let spec = TaskSpec::from_yaml(
            "name: t\nkind: migration\nmode: full\nsource: postgres://u@h/db\ntarget: mysql://u@h:3306\n",
        )
        .unwrap();
        let tables = vec![table("A", "T", &["id"]), table("a", "t", &["id", "Id"])];
        let names = NameMap::new(&spec, &tables);
        let all = NameFolding {
            columns: true,
            tables: true,
        };
        let folded = name_clashes(&tables, &names, all);
        assert_eq!(folded.len(), 2, "{folded:?}");
        assert!(folded[0].contains("A.T and a.t"), "{folded:?}");
        assert!(folded[1].contains("\"id\" and \"Id\""), "{folded:?}");
        // lower_case_table_names = 0: the tables are distinct, the columns still clash
        let columns = NameFolding {
            columns: true,
            tables: false,
        };
        assert_eq!(name_clashes(&tables, &names, columns).len(), 1);
        // a target that folds nothing
        assert!(name_clashes(&tables, &names, NameFolding::default()).is_empty());
    }

    #[test]
    fn existing_data_decides_the_room() {
        let t = TableId::new("s", "t");
        assert!(matches!(room_for(&t, None, ExistingData::Fail), Room::Free));
        assert!(matches!(
            room_for(&t, Some(true), ExistingData::Fail),
            Room::Refused(w) if w == "s.t (has rows)"
        ));
        assert!(matches!(
            room_for(&t, Some(false), ExistingData::Fail),
            Room::Refused(w) if w == "s.t (exists, empty)"
        ));
        assert!(matches!(
            room_for(&t, Some(true), ExistingData::Drop),
            Room::Free
        ));
        assert!(matches!(
            room_for(&t, Some(true), ExistingData::Truncate),
            Room::Kept
        ));
        assert!(matches!(
            room_for(&t, Some(false), ExistingData::Append),
            Room::Kept
        ));
    }

    #[test]
    fn only_references_from_outside_the_task_count() {
        let row = |c: &str, cs: &str, ct: &str, ps: &str, pt: &str| {
            [c, cs, ct, ps, pt]
                .iter()
                .map(|s| Some(s.to_string()))
                .collect::<Vec<_>>()
        };
        let rows = vec![
            row("fk_in", "s", "child", "s", "parent"),
            row("fk_out", "s", "other", "s", "parent"),
            row("fk_elsewhere", "s", "other", "s", "unrelated"),
        ];
        let parent = TableId::new("s", "parent");
        let selected = vec![parent.clone(), TableId::new("s", "child")];
        let out = outside_of(&rows, &[&parent], &selected);
        assert_eq!(out, vec!["fk_out (s.other → s.parent)".to_string()]);
    }

    #[test]
    fn missing_extensions_are_named_with_their_column() {
        let t = table("s", "t", &["g"]);
        let need = (
            "postgis".to_string(),
            "g".to_string(),
            "geometry".to_string(),
        );
        let needed = vec![(&t, &need)];
        assert_eq!(
            missing_among(&needed, &["hstore".into()]),
            vec!["s.t.g (type geometry) needs extension postgis".to_string()]
        );
        assert!(missing_among(&needed, &["postgis".into()]).is_empty());
    }
}
