//! Planning a backfill: the tables a task selects but never copied are created on the
//! target and recorded, for the stream to copy.

use crate::checkpoint::{CheckpointStore, TableStage};
use crate::conn::{Conn, Role};
use crate::copy::source_tables;
use crate::schema::mapping::NameMap;
use crate::schema::{add_foreign_keys, create_table_now, make_room, plan_all, Room};
use ferry_core::{Error, Result, Table, TableId, TaskSpec};
use std::collections::HashSet;

/// Finds the tables the task selects but never copied — added to its objects since
/// its full copy (a sync edit, an edited task file) — creates them on the target and
/// plans their backfill, which the stream then carries out. Tables no longer selected
/// are forgotten, so selecting one again copies it anew. Idempotent. Returns the
/// added source tables.
pub async fn adopt_added_tables(spec: &TaskSpec) -> Result<Vec<TableId>> {
    let mut src = Conn::open(spec, Role::Source).await?;
    let all = source_tables(&mut src, spec).await?;
    let names = NameMap::new(spec, &all);
    let mut dst = Conn::open(spec, Role::Target).await?;
    dst.ensure().await?;
    let selected: HashSet<String> = all
        .iter()
        .map(|t| names.target(&t.id).to_string())
        .collect();
    let stages = dst.stages(&spec.name).await?;
    for target in stages.keys().filter(|t| !selected.contains(*t)) {
        dst.forget_stage(&spec.name, target).await?;
    }
    let added: Vec<Table> = all
        .iter()
        .filter(|t| !stages.contains_key(&names.target(&t.id).to_string()))
        .cloned()
        .collect();
    if added.is_empty() {
        return Ok(Vec::new());
    }
    let ddls = plan_all(&mut src, spec, &added, &names).await?;
    let mut refused = Vec::new();
    let mut created = Vec::new();
    let targets: Vec<TableId> = added.iter().map(|t| names.target(&t.id)).collect();
    let all_targets: Vec<TableId> = all.iter().map(|t| names.target(&t.id)).collect();
    let rooms = make_room(&mut dst, spec.existing_data, &targets, &all_targets).await?;
    for ((t, ddl), room) in added.iter().zip(&ddls).zip(rooms) {
        let target = names.target(&t.id);
        match room {
            Room::Free => {
                for w in create_table_now(&mut dst, &target, ddl).await? {
                    tracing::warn!("{w}");
                }
                created.push((target.clone(), ddl));
            }
            Room::Kept => {}
            Room::Refused(why) => {
                refused.push(why);
                continue;
            }
        }
        dst.drop_backfill(&spec.name, &t.id.to_string()).await?;
        dst.add_backfill(&spec.name, &t.id).await?;
        dst.set_stage(&spec.name, &target, TableStage::Backfill)
            .await?;
        tracing::info!(
            "{} was added to the task: it is copied while the stream goes on",
            t.id
        );
    }
    for (target, ddl) in created {
        add_foreign_keys(&mut dst, &target, ddl).await?;
    }
    if !refused.is_empty() {
        return Err(Error::definite(format!(
            "the target already has tables the task would add: {}",
            refused.join(", ")
        ))
        .with_hint(
            "drop them on the target, or set existing_data: drop / truncate / append in the task",
        ));
    }
    if let Some(slot) = crate::factory::connector(spec.source.engine)
        .task_slot(spec)
        .await
        .map_err(|e| e.context("source"))?
    {
        // from here on the slot carries the new tables' changes
        slot.ensure_tables(&all).await?;
    }
    Ok(added.into_iter().map(|t| t.id).collect())
}
