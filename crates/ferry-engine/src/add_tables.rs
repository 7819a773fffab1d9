//! Adding tables to a task that already streams (a sync edit), without stopping the
//! replication of the others for longer than the copy of the new ones.
//!
//! The new tables are copied from a snapshot of their own under a *helper* task name
//! (`<task>-add`), so the main task's recorded stream position is never touched. The
//! position of that snapshot becomes the new tables' watermark: the main stream
//! resumes from its own, older position and skips exactly the changes of those tables
//! that the copy already holds (as for a resumed copy, see `full.rs`). A crash in
//! between is harmless: a finished helper copy is found again by its checkpoint, an
//! unfinished one is redone from scratch (its tables are Ferry's own until then).

use crate::checkpoint;
use crate::conn::{Conn, Role};
use crate::full::{run_full, source_tables, Handoff, RunOptions};
use ferry_core::select::ObjectFilter;
use ferry_core::{Error, ExistingData, Mode, Position, Result, TableId, TaskSpec};
use ferry_postgres::cdc;
use std::collections::HashSet;

/// Copies the tables `new` selects and `old` did not, and records their watermarks
/// for task `new.name`. Returns the added source tables.
pub async fn add_tables(old: &TaskSpec, new: &TaskSpec, opts: &RunOptions) -> Result<Vec<TableId>> {
    let mut src = Conn::open(new, Role::Source).await?;
    let before: HashSet<TableId> = match source_tables(&mut src, old).await {
        Ok(t) => t.into_iter().map(|t| t.id).collect(),
        Err(_) => HashSet::new(),
    };
    let all = source_tables(&mut src, new).await?;
    let added: Vec<TableId> = all
        .iter()
        .map(|t| t.id.clone())
        .filter(|id| !before.contains(id))
        .collect();
    if added.is_empty() {
        if let Conn::Pg(pg) = &src {
            // removed tables leave the publication
            cdc::ensure_publication(pg, &cdc::slot_name(&new.name), &all).await?;
        }
        return Ok(added);
    }
    let mut helper = new.clone();
    helper.name = format!("{}-add", new.name);
    helper.mode = Mode::Full;
    let exact: Vec<String> = added.iter().map(|t| t.to_string()).collect();
    helper.objects = ObjectFilter::new(&exact, &[])?;

    let mut dst = Conn::open(new, Role::Target).await?;
    checkpoint::ensure(&mut dst).await?;
    let position = match checkpoint::task(&mut dst, &helper.name).await? {
        Some((phase, Some(p))) if phase == "done" => p,
        prior => {
            if prior.is_some() {
                // an interrupted earlier attempt: its tables are ours, copy again
                checkpoint::reset(&mut dst, &helper.name).await?;
                helper.existing_data = ExistingData::Drop;
            }
            copy(&mut src, new, &helper, &all, opts).await?
        }
    };
    for id in &added {
        let sql = checkpoint::watermark_sql(&dst, &new.name, id, &position);
        dst.exec(&sql).await?;
    }
    checkpoint::reset(&mut dst, &helper.name).await?;
    Ok(added)
}

/// The helper's copy; returns the snapshot's position.
async fn copy(
    src: &mut Conn,
    main: &TaskSpec,
    helper: &TaskSpec,
    all: &[ferry_core::Table],
    opts: &RunOptions,
) -> Result<String> {
    let summary = match src {
        Conn::Pg(pg) => {
            // the tables join the publication before the snapshot, so every change
            // after it reaches the task's slot
            let slot = cdc::slot_name(&main.name);
            cdc::ensure_publication(pg, &slot, all).await?;
            let mut repl = ferry_postgres::replication::ReplConn::connect(&main.source).await?;
            let (lsn, snapshot) = cdc::create_slot(&mut repl, &format!("{slot}_add"), true).await?;
            let handoff = Handoff {
                snapshot,
                position: Position::PgLsn(lsn),
            };
            let s = run_full(helper, opts, Some(&handoff)).await;
            drop(repl);
            s?
        }
        Conn::My(_) => run_full(helper, opts, None).await?,
    };
    summary
        .position
        .ok_or_else(|| Error::definite("the copy of the added tables recorded no source position"))
}
