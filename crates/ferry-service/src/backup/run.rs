//! The worker side of backups: a scheduler that fires the policies' due schedules
//! (once, however many slots a stopped service missed) and runners that take backup
//! tasks by lease — data backups, cleanups, secondary copies, drills and restores.
//! A task whose worker stopped renewing its lease is taken over by any worker and
//! run again: a backup resumes its set, a restore resumes from its target
//! checkpoints, a cleanup recomputes what is left to remove.

use super::db::{BackupTaskRow, Which};
use super::policy::{PolicySecrets, PolicySpec};
use super::retention::{self, Retention, SetInfo};
use super::{reason_of, schedule, TaskKind};
use crate::control::{random_hex, Control};
use crate::error::{ServiceError, ServiceResult};
use crate::store::now_ms;
use ferry_backup::manifest::{Manifest, SetKind};
use ferry_backup::repo::Repo;
use ferry_backup::restore::{RestoreFrom, RestoreRequest, TableRestore};
use ferry_core::select::ObjectFilter;
use ferry_core::{Endpoint, ExistingData};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

const TICK: Duration = Duration::from_millis(500);
/// Parallel readers / writers of one backup or restore run by the service.
const JOBS: usize = 2;
/// Rows per chunk of a split table.
const CHUNK_ROWS: u64 = 100_000;

/// A new data backup task of `policy`'s cluster (state `running`: a worker takes
/// it at once). `trigger` says why: `schedule`, `catch-up`, `instant`.
pub fn new_data_task(tenant: &str, cluster: &str, kind: SetKind, trigger: &str) -> BackupTaskRow {
    let now = now_ms();
    BackupTaskRow {
        id: format!("b{}", random_hex(6)),
        tenant: tenant.into(),
        cluster: cluster.into(),
        kind: TaskKind::Data.id().into(),
        state: TaskKind::Data.first_state().into(),
        detail: json!({"type": kind.as_str(), "method": "logical", "trigger": trigger}).to_string(),
        secrets: "{}".into(),
        created_ms: now,
        started_ms: Some(now),
        updated_ms: now,
        ..BackupTaskRow::default()
    }
}

/// A new task of `kind` (cleanup, secondary, drill) for `cluster`, after data task
/// `parent` when there is one.
pub fn new_follow_up(
    kind: TaskKind,
    tenant: &str,
    cluster: &str,
    parent: Option<&str>,
    set: Option<&str>,
    detail: Value,
) -> BackupTaskRow {
    let now = now_ms();
    BackupTaskRow {
        id: format!("b{}", random_hex(6)),
        tenant: tenant.into(),
        cluster: cluster.into(),
        kind: kind.id().into(),
        state: kind.first_state().into(),
        detail: detail.to_string(),
        secrets: "{}".into(),
        parent: parent.map(String::from),
        set_id: set.map(String::from),
        created_ms: now,
        updated_ms: now,
        ..BackupTaskRow::default()
    }
}

/// Runs the scheduler and the backup task runners of worker `me` until `stop`.
pub async fn run(control: Control, me: String, mut stop: watch::Receiver<bool>) {
    let mut running: HashMap<String, JoinHandle<()>> = HashMap::new();
    let mut archivers = super::log::Archivers::new();
    loop {
        if let Err(e) = fire_due(&control, now_ms()).await {
            tracing::warn!(worker = %me, "backup scheduler: {e}");
        }
        if let Err(e) = take(&control, &me, &mut running).await {
            tracing::warn!(worker = %me, "backup tasks: {e}");
        }
        if let Err(e) = super::log::tick(&control, &me, &mut archivers).await {
            tracing::warn!(worker = %me, "log backup: {e}");
        }
        tokio::select! {
            _ = tokio::time::sleep(TICK) => {}
            _ = stop.changed() => break,
        }
    }
    // a stopped worker's tasks are resumed by the next (their leases are given up)
    super::log::shutdown(&control, &me, archivers).await;
    for (id, h) in running {
        h.abort();
        let _ = control.store.backup_release(&id, &me).await;
    }
}

/// Fires every due schedule once (see [`schedule::due`]); another node that fired
/// it first wins the compare-and-set.
pub async fn fire_due(control: &Control, now: i64) -> ServiceResult<()> {
    let store = &control.store;
    for p in store.policies(None).await? {
        let spec: PolicySpec = match serde_json::from_str(&p.spec) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(cluster = %p.cluster, "stored policy unreadable: {e}");
                continue;
            }
        };
        let mut fired_data = false;
        for (which, text, next) in [
            (Which::Full, &spec.full, p.full_next_ms),
            (Which::Incremental, &spec.incremental, p.incr_next_ms),
            (Which::Drill, &spec.drill, p.drill_next_ms),
        ] {
            let (Some(text), Some(old)) = (text, next) else {
                continue;
            };
            let Ok(cron) = schedule::parse(text) else {
                continue;
            };
            let Some(new) = schedule::due(&cron, Some(old), now) else {
                continue;
            };
            if !store.advance_schedule(&p.cluster, which, old, new).await? {
                continue;
            }
            // more than one slot behind: the service was down; one run catches up
            let missed = schedule::next_after(&cron, old).is_some_and(|n| n <= now);
            let trigger = if missed { "catch-up" } else { "schedule" };
            match which {
                Which::Full | Which::Incremental => {
                    if fired_data {
                        // full and incremental due together: the full set serves both
                        continue;
                    }
                    if let Some(id) = store.running_data_task(&p.cluster).await? {
                        tracing::warn!(cluster = %p.cluster, "scheduled backup skipped: backup {id} of the cluster is still running");
                        continue;
                    }
                    let kind = if which == Which::Full {
                        SetKind::Full
                    } else {
                        SetKind::Incremental
                    };
                    let t = new_data_task(&p.tenant, &p.cluster, kind, trigger);
                    tracing::info!(cluster = %p.cluster, task = %t.id, "{} backup fired ({trigger})", kind.as_str());
                    store.insert_backup_task(&t).await?;
                    fired_data = true;
                }
                Which::Drill => {
                    let t = new_follow_up(
                        TaskKind::Drill,
                        &p.tenant,
                        &p.cluster,
                        None,
                        None,
                        json!({"trigger": trigger}),
                    );
                    store.insert_backup_task(&t).await?;
                }
            }
        }
    }
    Ok(())
}

/// Renews the leases of the tasks running here and takes free ones.
async fn take(
    control: &Control,
    me: &str,
    running: &mut HashMap<String, JoinHandle<()>>,
) -> ServiceResult<()> {
    running.retain(|_, h| !h.is_finished());
    let now = now_ms();
    let until = now + crate::worker::LEASE.as_millis() as i64;
    for t in control.store.live_backup_tasks().await? {
        if running.contains_key(&t.id) {
            control.store.backup_lease(&t.id, me, until).await?;
            continue;
        }
        if t.lease_owner
            .as_deref()
            .is_some_and(|o| o != me && t.lease_until_ms.is_some_and(|u| u >= now))
        {
            continue;
        }
        if !control.store.backup_lease(&t.id, me, until).await? {
            continue;
        }
        if let Some(owner) = &t.lease_owner {
            tracing::info!(task = %t.id, "backup task taken over from {owner}; resuming");
        }
        let (c, m, id) = (control.clone(), me.to_string(), t.id.clone());
        running.insert(
            id.clone(),
            tokio::spawn(async move {
                if let Err(e) = execute(&c, t).await {
                    tracing::warn!(task = %id, "backup task: {e}");
                }
                let _ = c.store.backup_release(&id, &m).await;
            }),
        );
    }
    Ok(())
}

/// The repository passphrase of the service (FERRY_REPO_KEY), if any.
pub(crate) fn repo_key() -> Option<String> {
    std::env::var(ferry_backup::repo::KEY_ENV)
        .ok()
        .filter(|k| !k.is_empty())
}

/// A stored database URL with its sealed password.
fn endpoint(control: &Control, url: &str, sealed: Option<&String>) -> ServiceResult<Endpoint> {
    let mut e = Endpoint::parse(url, "")
        .map_err(|e| ServiceError::Internal(format!("stored URL: {}", reason_of(&e))))?;
    if let Some(s) = sealed {
        e.password = Some(control.secrets().open(s)?);
    }
    Ok(e)
}

/// The policy of a task's cluster, with its passwords' seals.
async fn policy_of(
    control: &Control,
    cluster: &str,
) -> Result<(PolicySpec, PolicySecrets), String> {
    let p = control
        .store
        .policy(cluster)
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| {
            format!("the backup policy of cluster {cluster:?} was deleted; set it again with `ferry backup policy set`")
        })?;
    let spec = serde_json::from_str(&p.spec).map_err(|e| format!("stored policy: {e}"))?;
    let sealed = serde_json::from_str(&p.secrets).map_err(|e| format!("stored policy: {e}"))?;
    Ok((spec, sealed))
}

fn detail_of(t: &BackupTaskRow) -> serde_json::Map<String, Value> {
    serde_json::from_str::<Value>(&t.detail)
        .ok()
        .and_then(|v| v.as_object().cloned())
        .unwrap_or_default()
}

/// Moves `t` to `to`; a failure is sent to the tenant's webhook.
async fn finish(
    control: &Control,
    t: &BackupTaskRow,
    from: &str,
    to: &str,
    reason: Option<&str>,
    detail: &serde_json::Map<String, Value>,
) -> ServiceResult<()> {
    let text = Value::Object(detail.clone()).to_string();
    if control
        .store
        .set_backup_state(&t.id, from, to, reason, Some(&text))
        .await?
    {
        tracing::info!(task = %t.id, kind = %t.kind, from, to, reason = reason.unwrap_or(""), "backup task state");
        if matches!(to, "failed" | "precheck_failed") {
            let kind = TaskKind::from_id(&t.kind).unwrap_or(TaskKind::Data);
            let row = BackupTaskRow {
                state: to.into(),
                reason: reason.map(String::from),
                ..t.clone()
            };
            crate::notify::send_backup(
                control,
                &row,
                kind.failure_event(),
                json!({"from": from, "set_id": t.set_id}),
            );
        }
    }
    Ok(())
}

fn sendable<F: std::future::Future + Send>(f: F) -> F {
    f
}

/// [`ferry_backup::restore::precheck`] with owned arguments (what the task runners
/// hold).
async fn precheck(
    repo: Option<Repo>,
    req: RestoreRequest,
) -> ferry_core::Result<ferry_backup::restore::RestorePlan> {
    ferry_backup::restore::precheck(repo.as_ref(), &req).await
}

/// Does what task `t` is for, from the state it is in.
async fn execute(control: &Control, t: BackupTaskRow) -> ServiceResult<()> {
    let Some(kind) = TaskKind::from_id(&t.kind) else {
        return Err(ServiceError::Internal(format!(
            "backup task {} of unknown kind {:?}",
            t.id, t.kind
        )));
    };
    let mut detail = detail_of(&t);
    // pending → running first (the list shows it at once)
    let state = if t.state == "pending" {
        if !control
            .store
            .set_backup_state(&t.id, "pending", "running", None, None)
            .await?
        {
            return Ok(());
        }
        "running".to_string()
    } else {
        t.state.clone()
    };
    let outcome = match kind {
        TaskKind::Data => sendable(data(control, &t, &mut detail)).await,
        TaskKind::Cleanup => sendable(cleanup(control, &t, &mut detail)).await,
        TaskKind::Secondary => sendable(secondary(control, &t, &mut detail)).await,
        TaskKind::SecondaryLog => sendable(secondary_log(control, &t, &mut detail)).await,
        TaskKind::Drill => sendable(drill(control, &t, &mut detail)).await,
        TaskKind::Restore => return sendable(restore(control, &t, detail)).await,
    };
    match outcome {
        Ok(()) => finish(control, &t, &state, "completed", None, &detail).await,
        Err(why) => finish(control, &t, &state, "failed", Some(&why), &detail).await,
    }
}

/// How long a full backup waits for the cluster's log archive to start.
const LOG_START_WAIT: std::time::Duration = std::time::Duration::from_secs(60);

/// With log backup on, a full set opens a restorable window only when the archive
/// started before its snapshot. A backup asked for right after log backup was
/// turned on (the natural first steps) waits for the archive's head, up to
/// [`LOG_START_WAIT`]; then it runs anyway (the set restores on its own).
async fn wait_for_log_archive(repo: &Repo, cluster: &str) {
    let started = std::time::Instant::now();
    while started.elapsed() < LOG_START_WAIT {
        match ferry_backup::log::index::read_archive(repo, cluster).await {
            Ok(a) if a.head.is_some() => return,
            Err(_) => return,
            Ok(_) => tokio::time::sleep(std::time::Duration::from_millis(500)).await,
        }
    }
    tracing::warn!(
        cluster,
        "the log archive has not started: this full set opens no restorable window"
    );
}

fn storage_dir(storage: &str, cluster: &str, set: &str) -> String {
    format!(
        "{}/{}",
        storage.trim_end_matches('/'),
        ferry_backup::layout::set_dir(cluster, set)
    )
}

async fn data(
    control: &Control,
    t: &BackupTaskRow,
    detail: &mut serde_json::Map<String, Value>,
) -> Result<(), String> {
    let (spec, sealed) = policy_of(control, &t.cluster).await?;
    let kind = match detail.get("type").and_then(Value::as_str) {
        Some("incremental") => SetKind::Incremental,
        _ => SetKind::Full,
    };
    let source =
        endpoint(control, &spec.source, sealed.source.as_ref()).map_err(|e| e.to_string())?;
    let objects = ObjectFilter::new(&spec.include, &spec.exclude).map_err(|e| reason_of(&e))?;
    let repo = Repo::create_or_open(&spec.storage, repo_key().as_deref())
        .await
        .map_err(|e| reason_of(&e))?;
    if spec.log && kind == SetKind::Full && spec.log_method == "logical" {
        wait_for_log_archive(&repo, &t.cluster).await;
    }
    let req = ferry_backup::backup::BackupRequest {
        cluster: t.cluster.clone(),
        source,
        objects,
        kind,
        jobs: JOBS,
        chunk_rows: CHUNK_ROWS,
        quiet: true,
    };
    let report = ferry_backup::backup::run_backup(&repo, &req)
        .await
        .map_err(|e| reason_of(&e))?;
    let m = &report.manifest;
    detail.insert("set_id".into(), json!(m.id));
    detail.insert("data_version".into(), json!(m.server_version));
    detail.insert(
        "storage_dir".into(),
        json!(storage_dir(&spec.storage, &t.cluster, &m.id)),
    );
    detail.insert("rows".into(), json!(m.rows()));
    detail.insert("bytes".into(), json!(m.bytes()));
    detail.insert("files".into(), json!(m.files.len()));
    detail.insert("position".into(), json!(m.position));
    detail.insert("parent_set".into(), json!(m.parent));
    detail.insert("resumed".into(), json!(report.resumed));
    detail.insert("warnings".into(), json!(report.warnings));
    let store = &control.store;
    store
        .set_backup_set(&t.id, &m.id, m.bytes() as i64)
        .await
        .map_err(|e| e.to_string())?;
    // what follows every completed set: retention, then the second copy
    let cleanup = new_follow_up(
        TaskKind::Cleanup,
        &t.tenant,
        &t.cluster,
        Some(&t.id),
        None,
        json!({"trigger": "after backup"}),
    );
    store
        .insert_backup_task(&cleanup)
        .await
        .map_err(|e| e.to_string())?;
    if let Some(to) = &spec.secondary {
        let copy = new_follow_up(
            TaskKind::Secondary,
            &t.tenant,
            &t.cluster,
            Some(&t.id),
            Some(&m.id),
            json!({"from": spec.storage, "to": to, "set_id": m.id}),
        );
        store
            .insert_backup_task(&copy)
            .await
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

fn set_info(m: &Manifest) -> SetInfo {
    let at = |s: &str| {
        chrono::DateTime::parse_from_rfc3339(s)
            .map(|d| d.timestamp_millis())
            .ok()
    };
    SetInfo {
        id: m.id.clone(),
        parent: m.parent.clone(),
        finished_ms: at(&m.finished_at)
            .or_else(|| at(&m.started_at))
            .unwrap_or(0),
    }
}

/// Removes what `retention` allows from `repo`'s sets of `cluster`; the ids removed.
async fn apply_retention(
    repo: &Repo,
    cluster: &str,
    retention: Retention,
) -> Result<(Vec<String>, usize), String> {
    let sets = repo.sets(Some(cluster)).await.map_err(|e| reason_of(&e))?;
    let infos: Vec<SetInfo> = sets.iter().map(set_info).collect();
    let doomed = retention::plan(&infos, retention, now_ms());
    for id in &doomed {
        // the manifest goes first: an interrupted removal leaves a consistent repository
        repo.delete_set(cluster, id)
            .await
            .map_err(|e| reason_of(&e))?;
    }
    Ok((doomed.clone(), sets.len() - doomed.len()))
}

async fn cleanup(
    control: &Control,
    t: &BackupTaskRow,
    detail: &mut serde_json::Map<String, Value>,
) -> Result<(), String> {
    let (spec, _) = policy_of(control, &t.cluster).await?;
    let retention = Retention::parse(&spec.retain)?;
    let key = repo_key();
    let repo = Repo::open(&spec.storage, key.as_deref())
        .await
        .map_err(|e| reason_of(&e))?;
    let (removed, kept) = apply_retention(&repo, &t.cluster, retention).await?;
    for id in &removed {
        let _ = control.store.mark_set_removed(&t.cluster, id).await;
    }
    // the log pieces no kept set's window needs
    let pruned = prune_log(&repo, &t.cluster).await?;
    detail.insert("log_pieces_removed".into(), json!(pruned.pieces_removed));
    detail.insert("log_oldest_kept".into(), json!(pruned.oldest_kept));
    detail.insert("storage".into(), json!(spec.storage));
    detail.insert("retain".into(), json!(spec.retain));
    detail.insert("removed".into(), json!(removed));
    detail.insert("kept".into(), json!(kept));
    if let Some(second) = &spec.secondary {
        // the copies age like the originals; a secondary not written yet has none
        if let Ok(repo2) = Repo::open(second, key.as_deref()).await {
            let (removed2, _) = apply_retention(&repo2, &t.cluster, retention).await?;
            detail.insert("secondary_removed".into(), json!(removed2));
            let pruned2 = prune_log(&repo2, &t.cluster).await?;
            detail.insert(
                "secondary_log_pieces_removed".into(),
                json!(pruned2.pieces_removed),
            );
        }
    }
    Ok(())
}

/// Removes the log pieces of `cluster` no window of its kept sets needs.
async fn prune_log(
    repo: &Repo,
    cluster: &str,
) -> Result<ferry_backup::log::prune::PruneReport, String> {
    let kept = repo.sets(Some(cluster)).await.map_err(|e| reason_of(&e))?;
    ferry_backup::log::prune::prune_log(repo, cluster, &kept)
        .await
        .map_err(|e| reason_of(&e))
}

/// Copies the cluster's log archive (what the secondary storage does not hold yet).
async fn secondary_log(
    control: &Control,
    t: &BackupTaskRow,
    detail: &mut serde_json::Map<String, Value>,
) -> Result<(), String> {
    let (spec, _) = policy_of(control, &t.cluster).await?;
    let to_url = detail
        .get("to")
        .and_then(Value::as_str)
        .map(String::from)
        .or(spec.secondary.clone())
        .ok_or_else(|| "the policy has no secondary storage any more".to_string())?;
    let key = repo_key();
    let from = Repo::open(&spec.storage, key.as_deref())
        .await
        .map_err(|e| reason_of(&e))?;
    let to = Repo::create_or_open(&to_url, key.as_deref())
        .await
        .map_err(|e| reason_of(&e))?;
    let r = ferry_backup::log::copy::copy_log(&from, &to, &t.cluster)
        .await
        .map_err(|e| reason_of(&e))?;
    control
        .store
        .set_backup_set(&t.id, "", r.bytes as i64)
        .await
        .map_err(|e| e.to_string())?;
    detail.insert(
        "storage_dir".into(),
        json!(format!(
            "{}/{}",
            to_url.trim_end_matches('/'),
            ferry_backup::log::index::log_dir(&t.cluster)
        )),
    );
    detail.insert("pieces_copied".into(), json!(r.pieces_copied));
    detail.insert("pieces_skipped".into(), json!(r.pieces_skipped));
    detail.insert("last_piece".into(), json!(r.last_piece));
    detail.insert("marks".into(), json!(r.marks));
    detail.insert("bytes".into(), json!(r.bytes));
    detail.insert(
        "latest_point".into(),
        json!(r.archived_through_us.and_then(super::log::rfc_us)),
    );
    Ok(())
}

async fn secondary(
    control: &Control,
    t: &BackupTaskRow,
    detail: &mut serde_json::Map<String, Value>,
) -> Result<(), String> {
    let (spec, _) = policy_of(control, &t.cluster).await?;
    let set = t
        .set_id
        .clone()
        .ok_or_else(|| "the task names no set to copy".to_string())?;
    let to_url = detail
        .get("to")
        .and_then(Value::as_str)
        .map(String::from)
        .or(spec.secondary.clone())
        .ok_or_else(|| "the policy has no secondary storage any more".to_string())?;
    let key = repo_key();
    let from = Repo::open(&spec.storage, key.as_deref())
        .await
        .map_err(|e| reason_of(&e))?;
    let to = Repo::create_or_open(&to_url, key.as_deref())
        .await
        .map_err(|e| reason_of(&e))?;
    let m = from
        .copy_set(&to, &t.cluster, &set)
        .await
        .map_err(|e| reason_of(&e))?;
    control
        .store
        .set_backup_set(&t.id, &set, m.bytes() as i64)
        .await
        .map_err(|e| e.to_string())?;
    detail.insert(
        "storage_dir".into(),
        json!(storage_dir(&to_url, &t.cluster, &set)),
    );
    detail.insert("files".into(), json!(m.files.len()));
    detail.insert("bytes".into(), json!(m.bytes()));
    detail.insert("verified".into(), json!(true));
    Ok(())
}

/// Progress of a restore as it goes: the engine's callback fills it, a ticker
/// stores it.
type Shared = Arc<Mutex<Option<Vec<TableRestore>>>>;

/// Runs a restore, storing its per-table progress every second.
async fn restore_with_progress(
    control: &Control,
    id: &str,
    repo: Option<&Repo>,
    req: &RestoreRequest,
    plan: ferry_backup::restore::RestorePlan,
    detail: &serde_json::Map<String, Value>,
) -> ferry_core::Result<ferry_backup::restore::RestoreReport> {
    let latest: Shared = Arc::default();
    let sink = latest.clone();
    let progress = move |tables: &[TableRestore]| {
        *sink.lock().unwrap() = Some(tables.to_vec());
    };
    let (c, tid, base, src) = (
        control.clone(),
        id.to_string(),
        detail.clone(),
        latest.clone(),
    );
    let ticker = tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let tables = src.lock().unwrap().take();
            if let Some(tables) = tables {
                let mut d = base.clone();
                d.insert("tables".into(), json!(tables));
                let _ = c
                    .store
                    .set_backup_detail(&tid, &Value::Object(d).to_string())
                    .await;
            }
        }
    });
    let r = sendable(ferry_backup::restore::run_restore(
        repo, req, plan, &progress,
    ))
    .await;
    ticker.abort();
    r
}

async fn drill(
    control: &Control,
    t: &BackupTaskRow,
    detail: &mut serde_json::Map<String, Value>,
) -> Result<(), String> {
    let (spec, sealed) = policy_of(control, &t.cluster).await?;
    let target_url = spec
        .drill_target
        .clone()
        .ok_or_else(|| "the policy has no drill target any more".to_string())?;
    let target =
        endpoint(control, &target_url, sealed.drill_target.as_ref()).map_err(|e| e.to_string())?;
    let repo = Repo::open(&spec.storage, repo_key().as_deref())
        .await
        .map_err(|e| reason_of(&e))?;
    let sets = repo
        .sets(Some(&t.cluster))
        .await
        .map_err(|e| reason_of(&e))?;
    let newest = sets.last().ok_or_else(|| {
        format!(
            "cluster {:?} has no complete backup set to drill yet",
            t.cluster
        )
    })?;
    detail.insert("set_id".into(), json!(newest.id));
    detail.insert("target".into(), json!(target_url));
    let _ = control.store.set_backup_set(&t.id, &newest.id, 0).await;
    let req = RestoreRequest {
        name: format!("drill_{}", t.id),
        from: RestoreFrom::Set(newest.id.clone()),
        target,
        objects: ObjectFilter::new(&spec.include, &spec.exclude).map_err(|e| reason_of(&e))?,
        existing_data: ExistingData::Drop,
        jobs: JOBS,
        quiet: true,
    };
    let plan = precheck(Some(repo.clone()), req.clone())
        .await
        .map_err(|e| format!("precheck: {}", reason_of(&e)))?;
    let report = restore_with_progress(control, &t.id, Some(&repo), &req, plan, detail)
        .await
        .map_err(|e| reason_of(&e))?;
    detail.insert("tables".into(), json!(report.tables));
    detail.insert("rows".into(), json!(report.rows));
    detail.insert("seconds".into(), json!(report.seconds));
    detail.insert("differences".into(), json!(report.differences));
    if !report.differences.is_empty() {
        return Err(format!(
            "set {} restored but differs from its digests: {}",
            newest.id,
            report.differences.join("; ")
        ));
    }
    Ok(())
}

/// The sealed password of a restore's target.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct RestoreSecrets {
    /// The target's.
    pub target: Option<String>,
}

/// Where a restore of set `set` reads from: the storage it names, else the
/// storage of the cluster it names, else of the tenant's cluster whose backup
/// wrote the set.
async fn restore_repo_url(
    control: &Control,
    t: &BackupTaskRow,
    detail: &serde_json::Map<String, Value>,
    set: &str,
) -> Result<String, String> {
    if let Some(s) = detail.get("storage").and_then(Value::as_str) {
        return Ok(s.to_string());
    }
    let mut cluster = (!t.cluster.is_empty()).then(|| t.cluster.clone());
    if cluster.is_none() {
        let (rows, _) = control
            .store
            .backup_tasks(&super::db::BackupTaskFilter {
                tenant: Some(t.tenant.clone()),
                kinds: vec!["data".into()],
                limit: 100_000,
                ..Default::default()
            })
            .await
            .map_err(|e| e.to_string())?;
        cluster = rows
            .into_iter()
            .find(|r| r.set_id.as_deref() == Some(set))
            .map(|r| r.cluster);
    }
    let Some(cluster) = cluster else {
        return Err(format!(
            "backup set {set:?} is not one of your clusters' sets (fix: check the id with `ferry backup list`, or give the storage it is in)"
        ));
    };
    let (spec, _) = policy_of(control, &cluster).await?;
    Ok(spec.storage)
}

fn text_of(detail: &serde_json::Map<String, Value>, k: &str) -> Option<String> {
    detail.get(k).and_then(Value::as_str).map(String::from)
}

fn list_of(detail: &serde_json::Map<String, Value>, k: &str) -> Vec<String> {
    detail
        .get(k)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// The request, repository and plan of a restore: its precheck.
async fn restore_setup(
    control: &Control,
    t: &BackupTaskRow,
    detail: &serde_json::Map<String, Value>,
) -> Result<
    (
        RestoreRequest,
        Option<Repo>,
        ferry_backup::restore::RestorePlan,
    ),
    String,
> {
    let sealed: RestoreSecrets = serde_json::from_str(&t.secrets).unwrap_or_default();
    let target_url = text_of(detail, "target").unwrap_or_default();
    let existing = match text_of(detail, "existing_data").as_deref() {
        Some("drop") => ExistingData::Drop,
        Some("truncate") => ExistingData::Truncate,
        Some("append") => ExistingData::Append,
        _ => ExistingData::Fail,
    };
    let target =
        endpoint(control, &target_url, sealed.target.as_ref()).map_err(|e| e.to_string())?;
    let objects = ObjectFilter::new(&list_of(detail, "include"), &list_of(detail, "exclude"))
        .map_err(|e| reason_of(&e))?;
    let (from, repo) = match (text_of(detail, "from_set"), text_of(detail, "from_dump")) {
        _ if text_of(detail, "until").is_some() => {
            let cluster = text_of(detail, "from_cluster")
                .ok_or_else(|| "a point-in-time restore names no cluster".to_string())?;
            let until = ferry_backup::log::RestorePoint::parse(
                &text_of(detail, "until").unwrap_or_default(),
            )
            .map_err(|e| reason_of(&e))?;
            let url = match text_of(detail, "storage") {
                Some(s) => s,
                None => policy_of(control, &cluster).await?.0.storage,
            };
            let repo = Repo::open(&url, repo_key().as_deref())
                .await
                .map_err(|e| reason_of(&e))?;
            (RestoreFrom::PointInTime { cluster, until }, Some(repo))
        }
        (Some(set), _) => {
            let url = restore_repo_url(control, t, detail, &set).await?;
            let repo = Repo::open(&url, repo_key().as_deref())
                .await
                .map_err(|e| reason_of(&e))?;
            (RestoreFrom::Set(set), Some(repo))
        }
        (None, Some(dump)) => (RestoreFrom::Dump(dump), None),
        (None, None) => return Err("the restore names no set and no dump".to_string()),
    };
    let req = RestoreRequest {
        name: text_of(detail, "name").unwrap_or_else(|| format!("restore_{}", t.id)),
        from,
        target,
        objects,
        existing_data: existing,
        jobs: JOBS,
        quiet: true,
    };
    let plan = precheck(repo.clone(), req.clone())
        .await
        .map_err(|e| reason_of(&e))?;
    Ok((req, repo, plan))
}

async fn restore(
    control: &Control,
    t: &BackupTaskRow,
    mut detail: serde_json::Map<String, Value>,
) -> ServiceResult<()> {
    let from_state = t.state.clone();
    let (req, repo, plan) = match restore_setup(control, t, &detail).await {
        Ok(x) => x,
        Err(why) => {
            let to = if from_state == "prechecking" {
                "precheck_failed"
            } else {
                "failed"
            };
            return finish(control, t, &from_state, to, Some(&why), &detail).await;
        }
    };
    detail.insert(
        "chain".into(),
        json!(plan.chain.iter().map(|m| m.id.clone()).collect::<Vec<_>>()),
    );
    detail.insert("warnings".into(), json!(plan.warnings));
    detail.insert(
        "tables".into(),
        json!(plan
            .tables
            .iter()
            .map(|id| TableRestore {
                table: id.to_string(),
                ..TableRestore::default()
            })
            .collect::<Vec<_>>()),
    );
    if from_state == "prechecking" {
        let text = Value::Object(detail.clone()).to_string();
        if !control
            .store
            .set_backup_state(&t.id, "prechecking", "restoring", None, Some(&text))
            .await?
        {
            return Ok(());
        }
    }
    match restore_with_progress(control, &t.id, repo.as_ref(), &req, plan, &detail).await {
        Ok(report) => {
            detail.insert("tables".into(), json!(report.tables));
            detail.insert("rows".into(), json!(report.rows));
            detail.insert("seconds".into(), json!(report.seconds));
            detail.insert("resumed".into(), json!(report.resumed));
            detail.insert("differences".into(), json!(report.differences));
            if report.differences.is_empty() {
                finish(control, t, "restoring", "succeeded", None, &detail).await
            } else {
                let why = format!(
                    "restored, but the rows differ from the set's digests: {}",
                    report.differences.join("; ")
                );
                finish(control, t, "restoring", "failed", Some(&why), &detail).await
            }
        }
        Err(e) => {
            finish(
                control,
                t,
                "restoring",
                "failed",
                Some(&reason_of(&e)),
                &detail,
            )
            .await
        }
    }
}
