//! An incremental set: the net row changes the source's log holds between the
//! cluster's newest complete set and now — no table is scanned. It continues that
//! set (its `parent`) on its chain, and restores only on it.

use super::changes::{self, keyless, schema_changed, NetChanges};
use super::{new_set, now_unix, server_version, BackupReport, BackupRequest, ProgressRecord};
use crate::layout;
use crate::manifest::{Manifest, SetKind, TableEntry};
use crate::repo::Repo;
use ferry_core::{Error, Position, Result, TaskSpec};
use ferry_engine::copy::source_tables;
use ferry_engine::{Conn, Role};

/// Takes an incremental set of the cluster.
pub(super) async fn run(repo: &Repo, req: &BackupRequest, spec: &TaskSpec) -> Result<BackupReport> {
    let engine = req.source.engine;
    let take_full = "take a full backup of the cluster first (`ferry backup now CLUSTER` \
                     without --incremental)";
    let sets = repo.sets(Some(&req.cluster)).await?;
    let latest = sets.last().map(|m| m.id.clone());
    let Some(parent) = newest(sets) else {
        return Err(match latest {
            // sets without a log position cannot be continued from
            Some(id) => Error::definite(format!(
                "set {id} of cluster {} has no log position (the source kept no log when it \
                 was taken): an incremental cannot continue from it",
                req.cluster
            ))
            .with_hint(
                "enable the source's log (MySQL/MariaDB: log_bin with binlog_format=ROW; \
                 PostgreSQL: wal_level=logical), then take a full backup",
            ),
            None => Error::definite(format!(
                "cluster {} has no complete backup set to continue",
                req.cluster
            ))
            .with_hint(take_full),
        });
    };
    if parent.engine != engine.to_string() {
        return Err(Error::definite(format!(
            "the newest set {} of cluster {} is of a {} source, not {}",
            parent.id, req.cluster, parent.engine, req.source
        ))
        .with_hint(take_full));
    }
    let Some(start) = parent.position.as_deref() else {
        return Err(Error::definite(format!(
            "set {} has no log position (the source kept no log when it was taken)",
            parent.id
        ))
        .with_hint(
            "enable the source's log (binlog / wal_level=logical), then take a full backup",
        ));
    };
    let start = Position::parse(start)?;

    let mut src = Conn::open(spec, Role::Source).await?;
    let tables = source_tables(&mut src, spec).await?;
    let version = server_version(&mut src).await;
    drop(src);
    // the same tables, with the same columns, as the chain holds
    let same = tables.len() == parent.tables.len()
        && tables.iter().zip(&parent.tables).all(|(t, p)| {
            t.id == p.table.id
                && t.columns == p.table.columns
                && t.primary_key == p.table.primary_key
        });
    if !same {
        if let Some(t) = tables
            .iter()
            .zip(&parent.tables)
            .find(|(t, p)| t.id == p.table.id && t.columns != p.table.columns)
        {
            return Err(schema_changed(&t.0.id));
        }
        return Err(Error::definite(format!(
            "the selected tables differ from those of set {} (added, removed or renamed tables)",
            parent.id
        ))
        .with_hint("take a full backup (`ferry backup now CLUSTER` without --incremental)"));
    }
    if let Some(t) = tables.iter().find(|t| t.primary_key.is_empty()) {
        return Err(keyless(&t.id));
    }
    let connector = ferry_engine::factory::connector(engine);
    let slot = connector
        .task_slot(spec)
        .await
        .map_err(|e| e.context("source"))?;
    if let Some(slot) = &slot {
        slot.verify().await.map_err(|e| {
            e.context(format!(
                "the cluster's replication slot {} (the log since set {})",
                slot.name(),
                parent.id
            ))
            .with_hint(take_full)
        })?;
    }
    // an earlier incremental that died cannot be continued: removed
    let mut warnings = Vec::new();
    for (cluster, set) in repo.incomplete_sets(Some(&req.cluster)).await? {
        warnings.push(format!(
            "removed the incomplete set {set} of an earlier run"
        ));
        repo.delete_set(&cluster, &set).await?;
    }

    let set = new_set(SetKind::Incremental);
    let started_at = layout::rfc3339(now_unix());
    let record = ProgressRecord {
        set: set.clone(),
        cluster: req.cluster.clone(),
        kind: SetKind::Incremental,
        started_at: started_at.clone(),
        engine: engine.to_string(),
        first_position: Some(start.to_string()),
        tables: tables.iter().map(|t| t.id.to_string()).collect(),
        plan: Vec::new(),
        files: Vec::new(),
    };
    repo.put_json(&layout::progress(&req.cluster, &set), &record)
        .await?;
    let goal = connector.catch_up_goal(spec).await?;
    if !req.quiet {
        eprintln!(
            "taking incremental set {set} of cluster {}: changes from {start} to {goal}",
            req.cluster
        );
    }
    let net = NetChanges::new(changes::Target {
        repo,
        cluster: &req.cluster,
        set: &set,
        tables: &tables,
    })?;
    let read = changes::read_log(spec, &start, &goal, net).await?;
    let entries: Vec<TableEntry> = parent
        .tables
        .iter()
        .zip(&read.changes)
        .map(|(p, n)| TableEntry {
            table: p.table.clone(),
            create_text: p.create_text.clone(),
            rows: *n,
            digest: None,
        })
        .collect();
    let mut files = read.files;
    files.sort_by(|a, b| (a.table, &a.path).cmp(&(b.table, &b.path)));
    let consistent_at = read
        .commit_time_us
        .and_then(chrono::DateTime::from_timestamp_micros)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .or_else(|| Some(layout::rfc3339(now_unix())));
    let manifest = Manifest {
        format: layout::FORMAT,
        id: set.clone(),
        cluster: req.cluster.clone(),
        kind: SetKind::Incremental,
        method: "logical".into(),
        parent: Some(parent.id.clone()),
        chain: parent.chain.clone(),
        engine: engine.to_string(),
        server_version: version,
        source: req.source.to_string(),
        start_position: parent.position.clone(),
        position: Some(read.position.to_string()),
        consistent_at,
        started_at,
        finished_at: layout::rfc3339(now_unix()),
        encrypted: repo.cipher.is_some(),
        compression: "zstd".into(),
        tables: entries,
        files,
    };
    repo.write_manifest(&manifest).await?;
    // the log up to this set is safe in the repository now
    if let Some(slot) = &slot {
        if let Err(e) = slot.advance(&read.position).await {
            warnings.push(format!("{e}"));
        }
    }
    Ok(BackupReport {
        manifest,
        resumed: false,
        files_reused: 0,
        warnings,
    })
}

/// The set an incremental continues: the one furthest along the source's log (set
/// ids only resolve seconds); among sets at the same position, one no other of
/// them continues, the last finished.
fn newest(sets: Vec<Manifest>) -> Option<Manifest> {
    let at = |m: &Manifest| m.position.as_deref().and_then(|p| Position::parse(p).ok());
    let with: Vec<(Position, Manifest)> = sets
        .into_iter()
        .filter_map(|m| at(&m).map(|p| (p, m)))
        .collect();
    let furthest = with
        .iter()
        .map(|(p, _)| p)
        .find(|p| with.iter().all(|(q, _)| p.reached(q)))?
        .clone();
    let top: Vec<&Manifest> = with
        .iter()
        .filter(|(p, _)| *p == furthest)
        .map(|(_, m)| m)
        .collect();
    top.iter()
        .filter(|m| {
            !top.iter()
                .any(|o| o.parent.as_deref() == Some(m.id.as_str()))
        })
        .max_by(|a, b| (&a.finished_at, &a.id).cmp(&(&b.finished_at, &b.id)))
        .or_else(|| top.last())
        .map(|m| (*m).clone())
}
