//! `ferry check`: every precondition of the task, each with what was found and how
//! to fix it. Failures stop a run; warnings are things the user should know (tables
//! without keys, settings the incremental phase will need).

use crate::checkpoint::CheckpointStore;
use crate::conn::Conn;
use crate::copy::source_tables;
use crate::schema::mapping::NameMap;
use crate::schema::plan_all;
use ferry_connector::Connector;
use ferry_core::check::Item;
use ferry_core::{ExistingData, LogicalType, TaskSpec};

/// The endpoint, and whether its session is encrypted (when the engine can tell).
async fn described(ep: &ferry_core::Endpoint, c: &mut Conn) -> String {
    match c.encryption().await {
        Some(how) => format!("{ep}, {how}"),
        None => ep.to_string(),
    }
}

/// Runs every check; never fails itself — a failed connection is a failed item.
pub async fn check(spec: &TaskSpec) -> Vec<Item> {
    let mut items = Vec::new();
    let mut src = match Conn::connect(&spec.source).await {
        Ok(mut c) => {
            items.push(Item::new(
                "source connection",
                true,
                described(&spec.source, &mut c).await,
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
    let source = crate::factory::connector(spec.source.engine);
    match source.source_checks(&mut *src, &spec.name).await {
        // what only the incremental phase needs is a failure when the task has one
        Ok(v) => items.extend(v.into_iter().map(|mut i| {
            if spec.mode != ferry_core::Mode::Full && i.stream_only {
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
                format!(
                    "{} table{}, about {rows} row{}",
                    t.len(),
                    if t.len() == 1 { "" } else { "s" },
                    if rows == 1 { "" } else { "s" }
                ),
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
    let streams = spec.mode != ferry_core::Mode::Full;
    for t in &tables {
        if t.primary_key.is_empty() {
            let detail = if streams {
                source.keyless_stream_note()
            } else {
                "copied whole (not split in chunks)"
            };
            items.push(
                Item::new(
                    &format!("{} without a primary key", t.id),
                    false,
                    detail,
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
                    &format!("{} storage engine {engine}", t.id),
                    false,
                    "not transactional: not covered by the consistent snapshot",
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
    let mut dst = match Conn::open_target_or_server(spec).await {
        Ok((mut c, missing)) => {
            items.push(Item::new(
                "target connection",
                true,
                described(&spec.target, &mut c).await,
                "",
            ));
            if let Some(db) = missing {
                items.push(
                    Item::new(
                        "target database",
                        false,
                        format!("{db} does not exist yet: `ferry run` creates it"),
                        "",
                    )
                    .warning(),
                );
            }
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
    let target = crate::factory::connector(spec.target.engine);
    match target.target_checks(&mut *dst).await {
        Ok(v) => items.extend(v),
        Err(e) => items.push(Item::new(
            "target settings",
            false,
            e.message,
            e.hint.unwrap_or_default(),
        )),
    }
    // found out without creating them: a check (and a failed precheck) leaves the
    // target as it was
    match target.can_hold_checkpoints(&mut *dst).await {
        Ok((ok, detail)) => items.push(Item::new(
            "target can hold Ferry's checkpoint tables (ferry.*)",
            ok,
            detail,
            if ok {
                ""
            } else {
                "grant CREATE on the target database to the Ferry user"
            },
        )),
        Err(e) => items.push(Item::new(
            "target can hold Ferry's checkpoint tables (ferry.*)",
            false,
            e.message,
            // the server's own hint (a full disk) before the usual cause
            e.hint
                .as_deref()
                .unwrap_or("grant CREATE on the target database to the Ferry user"),
        )),
    }
    if let Some(item) = extensions_available(&mut dst, &tables).await {
        items.push(item);
    }
    if spec.kind == ferry_core::spec::Kind::Dr {
        items.push(standby_can_be_fenced(target, &mut dst).await);
    }
    if let Err(e) = crate::schema::target_name_clashes(&mut dst, &tables, &names).await {
        items.push(Item::new(
            "target names are distinct",
            false,
            e.message,
            e.hint.unwrap_or_default(),
        ));
    }
    let own = dst.task(&spec.name).await.ok().flatten();
    let mut occupied = Vec::new();
    let mut existing = Vec::new();
    for t in &tables {
        let target = names.target(&t.id);
        match dst.table_state(&target).await {
            Ok(Some(has_rows)) => {
                occupied.push(format!(
                    "{target}{}",
                    if has_rows { " (has rows)" } else { " (empty)" }
                ));
                existing.push(target);
            }
            Ok(None) => {}
            Err(e) => items.push(Item::new("target tables", false, e.message, "")),
        }
    }
    let detail = if occupied.is_empty() {
        "no selected table exists on the target yet".to_string()
    } else {
        occupied.join(", ")
    };
    if own.is_none()
        && matches!(
            spec.existing_data,
            ExistingData::Drop | ExistingData::Truncate
        )
    {
        let selected: Vec<_> = tables.iter().map(|t| names.target(&t.id)).collect();
        let parents: Vec<_> = existing.iter().collect();
        match crate::schema::outside_references(&mut dst, &parents, &selected).await {
            Ok(refs) if refs.is_empty() => {}
            Ok(refs) => items.push(Item::new(
                "no table outside the task references the tables existing_data replaces",
                false,
                refs.join(", "),
                "add those tables to the task's objects, drop those foreign keys on the target, or use existing_data: append",
            )),
            Err(e) => items.push(Item::new("target foreign keys", false, e.message, "")),
        }
    }
    match (&own, spec.existing_data) {
        (Some(own), _) => items.push(Item::new(
            "target is empty",
            true,
            format!(
                "task {} has run here before (phase {}); `ferry run` resumes it",
                spec.name, own.phase
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
            format!("{detail}; existing_data: {} applies", policy.as_str()),
            "",
        )),
    }
    items
}

/// The checks `ferry run` and the service's `starting` run before touching anything
/// (no slot, publication, table or checkpoint yet): every failed item, with its fix,
/// becomes one definite error.
pub async fn precheck(spec: &TaskSpec) -> ferry_core::Result<()> {
    let failed: Vec<Item> = check(spec)
        .await
        .into_iter()
        .filter(|i| !i.ok && !i.warn_only)
        .collect();
    if failed.is_empty() {
        return Ok(());
    }
    let what = failed
        .iter()
        .map(|i| {
            if i.detail.is_empty() {
                i.name.clone()
            } else {
                format!("{} — {}", i.name, ferry_core::redact::redact(&i.detail))
            }
        })
        .collect::<Vec<_>>()
        .join("; ");
    let fixes = failed
        .iter()
        .filter(|i| !i.fix.is_empty())
        .map(|i| i.fix.clone())
        .collect::<Vec<_>>()
        .join("; ");
    let e = ferry_core::Error::definite(format!("precheck failed: {what}"));
    Err(if fixes.is_empty() {
        e
    } else {
        e.with_hint(format!("{fixes} (`ferry check` lists every check)"))
    })
}

/// PostgreSQL → PostgreSQL: the extensions whose types the selected tables use must be
/// installable on the target; `None` when none is needed.
async fn extensions_available(dst: &mut Conn, tables: &[ferry_core::Table]) -> Option<Item> {
    let name = "target has the extensions the tables' types come from";
    match crate::schema::missing_extensions(dst, tables).await {
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

/// DR: the standby (the target) is kept read-only for applications, which Ferry's
/// user must be allowed to do — or the task fails at its start.
async fn standby_can_be_fenced(target: &dyn Connector, dst: &mut Conn) -> Item {
    let name = "DR standby can be made read-only for applications";
    match target.can_fence(&mut **dst).await {
        Ok((yes, fix)) => Item::new(
            name,
            yes,
            if yes {
                "Ferry's user may set it"
            } else {
                "Ferry's user may not set it: the task would fail at its start"
            },
            if yes { "" } else { fix },
        ),
        Err(e) => Item::new(name, false, e.message, e.hint.unwrap_or_default()),
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
