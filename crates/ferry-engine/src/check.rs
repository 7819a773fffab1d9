//! `ferry check`: every precondition of the task, each with what was found and how
//! to fix it. Failures stop a run; warnings are things the user should know (tables
//! without keys, settings the incremental phase will need).

use crate::conn::Conn;
use crate::full::{plan_all, source_tables};
use crate::mapping::NameMap;
use ferry_core::check::Item;
use ferry_core::{ExistingData, LogicalType, TaskSpec};

/// Runs every check; never fails itself — a failed connection is a failed item.
pub async fn check(spec: &TaskSpec) -> Vec<Item> {
    let mut items = Vec::new();
    let mut src = match Conn::connect(&spec.source).await {
        Ok(c) => {
            items.push(Item::new(
                "source connection",
                true,
                spec.source.to_string(),
                "",
            ));
            c
        }
        Err(e) => {
            items.push(Item::new(
                "source connection",
                false,
                e.message,
                e.hint.unwrap_or_default(),
            ));
            return items;
        }
    };
    let source_items = match &mut src {
        Conn::Pg(c) => ferry_postgres::precheck::source_checks(c).await,
        Conn::My(c) => ferry_mysql::precheck::source_checks(c).await,
    };
    match source_items {
        // what only the incremental phase needs is a failure when the task has one
        Ok(v) => items.extend(v.into_iter().map(|mut i| {
            if spec.mode != ferry_core::Mode::Full
                && i.name.contains("(for incremental)")
                && !i.name.contains("metadata")
            {
                i.warn_only = false;
            }
            i
        })),
        Err(e) => items.push(Item::new(
            "source settings",
            false,
            e.message,
            e.hint.unwrap_or_default(),
        )),
    }
    let tables = match source_tables(&mut src, spec).await {
        Ok(t) => {
            let rows: u64 = t.iter().map(|t| t.estimated_rows).sum();
            items.push(Item::new(
                "tables selected",
                true,
                format!("{} tables, about {rows} rows", t.len()),
                "",
            ));
            t
        }
        Err(e) => {
            items.push(Item::new(
                "tables selected",
                false,
                e.message,
                e.hint.unwrap_or_default(),
            ));
            return items;
        }
    };
    if let Some(item) = unmatched_excludes(&mut src, spec).await {
        items.push(item);
    }
    for t in &tables {
        if t.primary_key.is_empty() {
            items.push(
                Item::new(
                    &format!("{} has a primary key", t.id),
                    false,
                    "no primary key: copied whole (not split in chunks); incremental changes are matched on all columns",
                    "add a primary key on the source if the table has a natural one",
                )
                .warning(),
            );
        }
        if let Some(engine) = t
            .storage_engine
            .as_deref()
            .filter(|e| !e.eq_ignore_ascii_case("InnoDB"))
        {
            items.push(
                Item::new(
                    &format!("{} is transactional", t.id),
                    false,
                    format!("storage engine {engine}: not covered by the consistent snapshot"),
                    "ALTER TABLE … ENGINE=InnoDB, or stop writes to it during the copy",
                )
                .warning(),
            );
        }
        for c in &t.columns {
            if let LogicalType::Unsupported(n) = &c.logical {
                if spec.source.engine != spec.target.engine {
                    items.push(Item::new(
                        &format!("{}.{} type supported", t.id, c.name),
                        false,
                        format!("type {n} cannot be mapped to {}", spec.target.engine),
                        "exclude the table (objects.exclude) or convert the column on the source",
                    ));
                }
            }
            if c.charset
                .as_deref()
                .is_some_and(|cs| !cs.starts_with("utf8") && cs != "binary" && cs != "ascii")
            {
                items.push(
                    Item::new(
                        &format!("{}.{} character set", t.id, c.name),
                        true,
                        format!(
                            "{} — converted to UTF-8 on the way",
                            c.charset.as_deref().unwrap_or("")
                        ),
                        "",
                    )
                    .warning(),
                );
            }
        }
    }
    if spec.mode != ferry_core::Mode::Full {
        let keyless: Vec<String> = tables
            .iter()
            .filter(|t| t.primary_key.is_empty())
            .map(|t| t.id.to_string())
            .collect();
        if !keyless.is_empty() {
            items.push(
                Item::new(
                    "tables without a primary key (incremental)",
                    false,
                    format!(
                        "{}: changes are matched on every column, one row at a time (slower; \
                         identical duplicate rows are interchangeable){}",
                        keyless.join(", "),
                        if spec.source.engine == ferry_core::Engine::Postgres {
                            "; Ferry sets REPLICA IDENTITY FULL on them"
                        } else {
                            ""
                        }
                    ),
                    "add a primary key on the source where you can",
                )
                .warning(),
            );
        }
    }
    let names = NameMap::new(spec, &tables);
    match plan_all(&mut src, spec, &tables, &names).await {
        Ok(ddls) => {
            items.push(Item::new(
                "schema can be created on the target",
                true,
                "",
                "",
            ));
            for w in ddls.iter().flat_map(|d| d.warnings.iter()) {
                items.push(Item::new("schema detail", false, w.clone(), "").warning());
            }
        }
        Err(e) => items.push(Item::new(
            "schema can be created on the target",
            false,
            e.message,
            "see docs/type-mapping.md; exclude or convert the columns named",
        )),
    }
    let mut dst = match Conn::connect(&spec.target).await {
        Ok(c) => {
            items.push(Item::new(
                "target connection",
                true,
                spec.target.to_string(),
                "",
            ));
            c
        }
        Err(e) => {
            items.push(Item::new(
                "target connection",
                false,
                e.message,
                e.hint.unwrap_or_default(),
            ));
            return items;
        }
    };
    let target_items = match &mut dst {
        Conn::Pg(c) => ferry_postgres::precheck::version(c).await.map(|(v, _)| {
            vec![Item::new(
                "target version",
                true,
                format!("PostgreSQL {v}"),
                "",
            )]
        }),
        Conn::My(c) => ferry_mysql::precheck::target_checks(c).await,
    };
    match target_items {
        Ok(v) => items.extend(v),
        Err(e) => items.push(Item::new(
            "target settings",
            false,
            e.message,
            e.hint.unwrap_or_default(),
        )),
    }
    match crate::checkpoint::ensure(&mut dst).await {
        Ok(()) => items.push(Item::new(
            "target can hold Ferry's checkpoint tables (ferry.*)",
            true,
            "",
            "",
        )),
        Err(e) => items.push(Item::new(
            "target can hold Ferry's checkpoint tables (ferry.*)",
            false,
            e.message,
            "grant CREATE on the target database to the Ferry user",
        )),
    }
    if let Some(item) = extensions_available(&mut dst, &tables).await {
        items.push(item);
    }
    if let Err(e) = crate::full::target_name_clashes(&mut dst, &tables, &names).await {
        items.push(Item::new(
            "target names are distinct",
            false,
            e.message,
            e.hint.unwrap_or_default(),
        ));
    }
    let own = crate::checkpoint::task(&mut dst, &spec.name)
        .await
        .ok()
        .flatten();
    let mut occupied = Vec::new();
    for t in &tables {
        let target = names.target(&t.id);
        match dst.table_state(&target).await {
            Ok(Some(has_rows)) => occupied.push(format!(
                "{target}{}",
                if has_rows { " (has rows)" } else { " (empty)" }
            )),
            Ok(None) => {}
            Err(e) => items.push(Item::new("target tables", false, e.message, "")),
        }
    }
    let detail = if occupied.is_empty() {
        "no selected table exists on the target yet".to_string()
    } else {
        occupied.join(", ")
    };
    match (&own, spec.existing_data) {
        (Some((phase, _)), _) => items.push(Item::new(
            "target is empty",
            true,
            format!(
                "task {} has run here before (phase {phase}); `ferry run` resumes it",
                spec.name
            ),
            "",
        )),
        (None, ExistingData::Fail) => items.push(Item::new(
            "target is empty",
            occupied.is_empty(),
            detail,
            "set existing_data: drop | truncate | append in the task file, or use an empty target",
        )),
        (None, policy) => items.push(Item::new(
            "target is empty",
            true,
            format!("{detail}; existing_data: {policy:?} applies"),
            "",
        )),
    }
    items
}

/// PostgreSQL → PostgreSQL: the extensions whose types the selected tables use must be
/// installable on the target; `None` when none is needed.
async fn extensions_available(dst: &mut Conn, tables: &[ferry_core::Table]) -> Option<Item> {
    let name = "target has the extensions the tables' types come from";
    match crate::full::missing_extensions(dst, tables).await {
        Ok(None) => None,
        Ok(Some(exts)) => Some(Item::new(
            name,
            true,
            format!("{exts} (created if missing)"),
            "",
        )),
        Err(e) => Some(Item::new(
            name,
            false,
            e.message,
            e.hint.unwrap_or_default(),
        )),
    }
}

/// A warning naming the `objects.exclude` patterns that leave out no table.
async fn unmatched_excludes(src: &mut Conn, spec: &TaskSpec) -> Option<Item> {
    let rows = src
        .query_text(
            "SELECT table_schema, table_name FROM information_schema.tables \
             WHERE table_type = 'BASE TABLE'",
        )
        .await
        .ok()?;
    let all: Vec<ferry_core::TableId> = rows
        .into_iter()
        .filter_map(|r| Some(ferry_core::TableId::new(r[0].clone()?, r[1].clone()?)))
        .collect();
    let unmatched = spec.objects.unmatched_excludes(&all);
    (!unmatched.is_empty()).then(|| {
        Item::new(
            "objects.exclude patterns leave tables out",
            false,
            format!(
                "{} exclude{} no selected table",
                unmatched
                    .iter()
                    .map(|p| format!("{p:?}"))
                    .collect::<Vec<_>>()
                    .join(", "),
                if unmatched.len() == 1 { "s" } else { "" }
            ),
            "check the pattern for a typo; a name that contains a dot goes in double quotes: '\"a.b\".t'",
        )
        .warning()
    })
}
