//! The log backup task of a cluster (seed 004): one row per cluster in
//! `backup_log_tasks`, and the runner that keeps its archiver
//! ([`ferry_backup::log::run_archive`]) going on one node.
//!
//! States: `starting` (wanted; an archiver is connecting), `running` (archiving;
//! `recovering` says why while a transient fault is retried), `stopping` (asked to
//! stop; the open piece is being stored), `stopped`, `failed` (an error retrying
//! cannot fix: `reason`, and the `log_backup_failed` webhook). The policy's `log`
//! switch and the start/stop routes move the row; the runner follows the row.
//!
//! One archiver per cluster: the row is leased like a task (the node holding an
//! unexpired lease archives, no other node starts one), and a node holds at most
//! one archiver per cluster. A node that stops gives its leases up and leaves the
//! rows `running`, so the next node (or the same one restarted) resumes the archive
//! where its head says.

use super::policy::{PolicySecrets, PolicySpec};
use super::reason_of;
use crate::control::Control;
use crate::error::ServiceResult;
use crate::store::{now_ms, Store};
use ferry_backup::log::{ArchiveRequest, ArchiveState, ArchiveStatus};
use ferry_backup::repo::Repo;
use serde_json::json;
use sqlx::any::AnyRow;
use sqlx::Row;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Every state of a log backup task, with its label (seed 004).
pub const LOG_STATES: [(&str, &str); 5] = [
    ("starting", "启动中"),
    ("running", "进行中"),
    ("stopping", "停止中"),
    ("stopped", "已停止"),
    ("failed", "失败"),
];

/// The label of a log task state.
pub fn log_state_label(s: &str) -> &'static str {
    LOG_STATES
        .iter()
        .find(|(id, _)| *id == s)
        .map(|(_, l)| *l)
        .unwrap_or("")
}

/// A cluster's log backup task as stored.
#[derive(Debug, Clone, Default)]
pub struct LogTaskRow {
    /// The cluster (one task per cluster).
    pub cluster: String,
    /// Owner.
    pub tenant: String,
    /// `logical` or `physical`.
    pub method: String,
    /// The node archiving it (its id names the host).
    pub host: Option<String>,
    /// State id.
    pub state: String,
    /// Why it failed.
    pub reason: Option<String>,
    /// While running: the transient fault being retried.
    pub recovering: Option<String>,
    /// The latest backup point (µs since the epoch).
    pub latest_point_us: Option<i64>,
    /// The source position the archive is complete to.
    pub position: Option<String>,
    /// Pieces stored by the current run.
    pub pieces: i64,
    /// The policy's storage URL.
    pub storage: String,
    /// Node holding it.
    pub lease_owner: Option<String>,
    /// Until when.
    pub lease_until_ms: Option<i64>,
    /// Created.
    pub created_ms: i64,
    /// The current run started.
    pub started_ms: Option<i64>,
    /// Stopped or failed.
    pub ended_ms: Option<i64>,
    /// Last change.
    pub updated_ms: i64,
}

/// Filters of the log task list.
#[derive(Debug, Clone, Default)]
pub struct LogTaskFilter {
    /// Only this tenant's.
    pub tenant: Option<String>,
    /// Only this cluster's.
    pub cluster: Option<String>,
    /// Changed at or after.
    pub since_ms: Option<i64>,
    /// Changed before.
    pub until_ms: Option<i64>,
    /// Page size.
    pub limit: i64,
    /// Rows skipped.
    pub offset: i64,
}

const COLUMNS: &str = "cluster, tenant, method, host, state, reason, recovering, \
    latest_point_us, position, pieces, storage, lease_owner, lease_until_ms, created_ms, \
    started_ms, ended_ms, updated_ms";

fn row_of(r: &AnyRow) -> ServiceResult<LogTaskRow> {
    Ok(LogTaskRow {
        cluster: r.try_get("cluster")?,
        tenant: r.try_get("tenant")?,
        method: r.try_get("method")?,
        host: r.try_get("host")?,
        state: r.try_get("state")?,
        reason: r.try_get("reason")?,
        recovering: r.try_get("recovering")?,
        latest_point_us: r.try_get("latest_point_us")?,
        position: r.try_get("position")?,
        pieces: r.try_get("pieces")?,
        storage: r.try_get("storage")?,
        lease_owner: r.try_get("lease_owner")?,
        lease_until_ms: r.try_get("lease_until_ms")?,
        created_ms: r.try_get("created_ms")?,
        started_ms: r.try_get("started_ms")?,
        ended_ms: r.try_get("ended_ms")?,
        updated_ms: r.try_get("updated_ms")?,
    })
}

impl Store {
    /// Creates the cluster's log task in `starting` unless it has one; returns
    /// whether it was created.
    pub async fn create_log_task(
        &self,
        cluster: &str,
        tenant: &str,
        method: &str,
        storage: &str,
    ) -> ServiceResult<bool> {
        let now = now_ms();
        let r = sqlx::query(
            "INSERT INTO backup_log_tasks (cluster, tenant, method, state, pieces, storage, \
             created_ms, updated_ms) SELECT $1, $2, $3, 'starting', 0, $4, $5, $5 \
             WHERE NOT EXISTS (SELECT 1 FROM backup_log_tasks WHERE cluster = $1)",
        )
        .bind(cluster)
        .bind(tenant)
        .bind(method)
        .bind(storage)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    /// The cluster's log task.
    pub async fn log_task(&self, cluster: &str) -> ServiceResult<Option<LogTaskRow>> {
        sqlx::query(&format!(
            "SELECT {COLUMNS} FROM backup_log_tasks WHERE cluster = $1"
        ))
        .bind(cluster)
        .fetch_optional(&self.pool)
        .await?
        .map(|r| row_of(&r))
        .transpose()
    }

    /// Log tasks matching `f` (by cluster name), and how many match in all.
    pub async fn log_tasks(&self, f: &LogTaskFilter) -> ServiceResult<(Vec<LogTaskRow>, i64)> {
        let mut cond = vec!["1 = 1".to_string()];
        let mut text: Vec<String> = Vec::new();
        if let Some(t) = &f.tenant {
            text.push(t.clone());
            cond.push(format!("tenant = ${}", text.len()));
        }
        if let Some(c) = &f.cluster {
            text.push(c.clone());
            cond.push(format!("cluster = ${}", text.len()));
        }
        let mut ints = Vec::new();
        if let Some(s) = f.since_ms {
            ints.push(s);
            cond.push(format!("updated_ms >= ${}", text.len() + ints.len()));
        }
        if let Some(u) = f.until_ms {
            ints.push(u);
            cond.push(format!("created_ms < ${}", text.len() + ints.len()));
        }
        let cond = cond.join(" AND ");
        let n = text.len() + ints.len();
        let count_sql = format!("SELECT count(*) FROM backup_log_tasks WHERE {cond}");
        let list_sql = format!(
            "SELECT {COLUMNS} FROM backup_log_tasks WHERE {cond} ORDER BY cluster LIMIT ${} OFFSET ${}",
            n + 1,
            n + 2
        );
        let mut q = sqlx::query(&count_sql);
        for a in &text {
            q = q.bind(a);
        }
        for a in &ints {
            q = q.bind(*a);
        }
        let total: i64 = q.fetch_one(&self.pool).await?.try_get(0)?;
        let mut q = sqlx::query(&list_sql);
        for a in &text {
            q = q.bind(a);
        }
        for a in &ints {
            q = q.bind(*a);
        }
        let rows = q.bind(f.limit).bind(f.offset).fetch_all(&self.pool).await?;
        let rows = rows.iter().map(row_of).collect::<ServiceResult<Vec<_>>>()?;
        Ok((rows, total))
    }

    /// Log tasks a runner has to look at (starting, running, stopping).
    pub async fn live_log_tasks(&self) -> ServiceResult<Vec<LogTaskRow>> {
        sqlx::query(&format!(
            "SELECT {COLUMNS} FROM backup_log_tasks WHERE state IN ('starting', 'running', 'stopping') ORDER BY cluster"
        ))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(row_of)
        .collect()
    }

    /// Moves the cluster's log task from one of `from` to `to` (compare-and-set)
    /// with `reason`; `starting` clears the last run's reason and progress.
    pub async fn set_log_state(
        &self,
        cluster: &str,
        from: &[&str],
        to: &str,
        reason: Option<&str>,
    ) -> ServiceResult<bool> {
        let now = now_ms();
        let ended = matches!(to, "stopped" | "failed").then_some(now);
        let ors = (0..from.len())
            .map(|i| format!("state = ${}", i + 6))
            .collect::<Vec<_>>()
            .join(" OR ");
        let extra = if to == "starting" {
            ", pieces = 0, recovering = NULL, started_ms = NULL"
        } else if matches!(to, "stopped" | "failed") {
            ", recovering = NULL"
        } else {
            ""
        };
        let sql = format!(
            "UPDATE backup_log_tasks SET state = $1, reason = $2, ended_ms = $3, updated_ms = $4{extra} \
             WHERE cluster = $5 AND ({ors})"
        );
        let mut q = sqlx::query(&sql)
            .bind(to)
            .bind(reason)
            .bind(ended)
            .bind(now)
            .bind(cluster);
        for f in from {
            q = q.bind(*f);
        }
        Ok(q.execute(&self.pool).await?.rows_affected() == 1)
    }

    /// Stores what the archiver reported (only while the row is live).
    pub async fn set_log_status(
        &self,
        cluster: &str,
        s: &ArchiveStatus,
        method: &str,
        storage: &str,
    ) -> ServiceResult<()> {
        sqlx::query(
            "UPDATE backup_log_tasks SET latest_point_us = COALESCE($1, latest_point_us), \
             position = COALESCE($2, position), pieces = $3, recovering = $4, method = $5, \
             storage = $6, updated_ms = $7 \
             WHERE cluster = $8 AND state IN ('starting', 'running', 'stopping')",
        )
        .bind(s.latest_point_us)
        .bind(&s.position)
        .bind(s.pieces as i64)
        .bind(&s.recovering)
        .bind(method)
        .bind(storage)
        .bind(now_ms())
        .bind(cluster)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Takes or renews the cluster's log task lease for `owner` (recording it as
    /// the host), unless another owner holds an unexpired one.
    pub async fn log_lease(&self, cluster: &str, owner: &str, until: i64) -> ServiceResult<bool> {
        Ok(sqlx::query(
            "UPDATE backup_log_tasks SET lease_owner = $1, lease_until_ms = $2, host = $1 \
             WHERE cluster = $3 AND (lease_owner IS NULL OR lease_owner = $1 OR lease_until_ms < $4)",
        )
        .bind(owner)
        .bind(until)
        .bind(cluster)
        .bind(now_ms())
        .execute(&self.pool)
        .await?
        .rows_affected()
            == 1)
    }

    /// Gives the cluster's log task lease up.
    pub async fn log_release(&self, cluster: &str, owner: &str) -> ServiceResult<()> {
        sqlx::query(
            "UPDATE backup_log_tasks SET lease_owner = NULL, lease_until_ms = NULL \
             WHERE cluster = $1 AND lease_owner = $2",
        )
        .bind(cluster)
        .bind(owner)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Whether the cluster has a secondary-log copy still to run.
    pub async fn live_secondary_log(&self, cluster: &str) -> ServiceResult<bool> {
        Ok(sqlx::query(
            "SELECT id FROM backup_tasks WHERE cluster = $1 AND kind = 'secondary-log' \
             AND state IN ('pending', 'running') LIMIT 1",
        )
        .bind(cluster)
        .fetch_optional(&self.pool)
        .await?
        .is_some())
    }
}

/// Follows the policy's `log` switch: on creates the task (or starts a stopped or
/// failed one when the switch was off before), off stops it.
pub async fn follow_policy(
    store: &Store,
    cluster: &str,
    tenant: &str,
    spec: &PolicySpec,
    was_on: bool,
) -> ServiceResult<()> {
    if spec.log {
        if !store
            .create_log_task(cluster, tenant, &spec.log_method, &spec.storage)
            .await?
            && !was_on
        {
            store
                .set_log_state(cluster, &["stopped", "failed"], "starting", None)
                .await?;
        }
    } else {
        stop(store, cluster).await?;
    }
    Ok(())
}

/// Asks the cluster's log task to stop (a starting or running one); whether it did.
pub async fn stop(store: &Store, cluster: &str) -> ServiceResult<bool> {
    store
        .set_log_state(cluster, &["starting", "running"], "stopping", None)
        .await
}

/// An archiver running on this node.
pub struct Archiver {
    handle: JoinHandle<()>,
    stop: watch::Sender<bool>,
    status: Arc<Mutex<Option<ArchiveStatus>>>,
    /// Pieces the last secondary copy was asked for at.
    copied_at: u64,
    /// When the last secondary copy was asked for.
    copied_ms: i64,
}

/// The archivers of this node, by cluster.
pub type Archivers = HashMap<String, Archiver>;

/// How long a piece stays open (seconds; `FERRY_LOG_PIECE_SECONDS`, default 5).
fn piece_seconds() -> u64 {
    std::env::var("FERRY_LOG_PIECE_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(5)
}

/// Least time between two secondary copies of a cluster's log.
const COPY_EVERY_MS: i64 = 5_000;

/// One pass of the runner: starts the tasks this node should archive, passes stop
/// requests on, ends what is stopped, asks for secondary copies of new pieces.
pub async fn tick(control: &Control, me: &str, archivers: &mut Archivers) -> ServiceResult<()> {
    archivers.retain(|_, a| !a.handle.is_finished());
    let store = &control.store;
    let now = now_ms();
    let until = now + crate::worker::LEASE.as_millis() as i64;
    let mut specs: HashMap<String, (String, PolicySpec)> = HashMap::new();
    for p in store.policies(None).await? {
        let Ok(spec) = serde_json::from_str::<PolicySpec>(&p.spec) else {
            continue;
        };
        if spec.log {
            // a policy set before its log task was created (or by an older node)
            store
                .create_log_task(&p.cluster, &p.tenant, &spec.log_method, &spec.storage)
                .await?;
        }
        specs.insert(p.cluster.clone(), (p.tenant.clone(), spec));
    }
    for mut row in store.live_log_tasks().await? {
        let wanted = specs.get(&row.cluster).is_some_and(|(_, s)| s.log);
        if !wanted && row.state != "stopping" && stop(store, &row.cluster).await? {
            row.state = "stopping".into();
        }
        if let Some(a) = archivers.get_mut(&row.cluster) {
            if !store.log_lease(&row.cluster, me, until).await? {
                // another node took it over: ours must not write beside it
                let _ = a.stop.send(true);
                continue;
            }
            if row.state == "stopping" {
                let _ = a.stop.send(true);
            }
            let pieces = a.status.lock().unwrap().as_ref().map_or(0, |s| s.pieces);
            if let Some((tenant, spec)) = specs.get(&row.cluster) {
                if spec.secondary.is_some()
                    && pieces > a.copied_at
                    && now - a.copied_ms >= COPY_EVERY_MS
                    && !store.live_secondary_log(&row.cluster).await?
                {
                    a.copied_at = pieces;
                    a.copied_ms = now;
                    ask_copy(control, tenant, &row.cluster, spec, "new pieces").await?;
                }
            }
            continue;
        }
        let held_elsewhere = row
            .lease_owner
            .as_deref()
            .is_some_and(|o| o != me && row.lease_until_ms.is_some_and(|u| u >= now));
        if held_elsewhere {
            continue;
        }
        if row.state == "stopping" {
            // nobody archives it any more: stopped
            store
                .set_log_state(&row.cluster, &["stopping"], "stopped", None)
                .await?;
            continue;
        }
        if !store.log_lease(&row.cluster, me, until).await? {
            continue;
        }
        if row.lease_owner.as_deref().is_some_and(|o| o != me) {
            tracing::info!(cluster = %row.cluster, "log backup taken over; resuming the archive");
        }
        let (tx, rx) = watch::channel(false);
        let status: Arc<Mutex<Option<ArchiveStatus>>> = Arc::default();
        let (c, m, cluster, st) = (
            control.clone(),
            me.to_string(),
            row.cluster.clone(),
            status.clone(),
        );
        let handle = tokio::spawn(async move {
            archive(&c, &cluster, rx, st).await;
            let _ = c.store.log_release(&cluster, &m).await;
        });
        archivers.insert(
            row.cluster.clone(),
            Archiver {
                handle,
                stop: tx,
                status,
                copied_at: 0,
                copied_ms: 0,
            },
        );
    }
    Ok(())
}

/// A secondary-log copy task of the cluster.
async fn ask_copy(
    control: &Control,
    tenant: &str,
    cluster: &str,
    spec: &PolicySpec,
    trigger: &str,
) -> ServiceResult<()> {
    let Some(to) = &spec.secondary else {
        return Ok(());
    };
    let t = super::run::new_follow_up(
        super::TaskKind::SecondaryLog,
        tenant,
        cluster,
        None,
        None,
        json!({"from": spec.storage, "to": to, "trigger": trigger}),
    );
    control.store.insert_backup_task(&t).await
}

/// Stops every archiver of this node (each stores its open piece), giving their
/// leases up: the rows stay as they are, so the next start resumes them.
pub async fn shutdown(control: &Control, me: &str, archivers: Archivers) {
    for (cluster, a) in archivers {
        let _ = a.stop.send(true);
        if tokio::time::timeout(Duration::from_secs(10), a.handle)
            .await
            .is_err()
        {
            tracing::warn!(cluster = %cluster, "log archiver did not stop in 10 s; abandoned (the archive continues from its head)");
        }
        let _ = control.store.log_release(&cluster, me).await;
    }
}

/// The policy of a cluster, as the archiver needs it.
async fn policy(
    control: &Control,
    cluster: &str,
) -> Result<(String, PolicySpec, PolicySecrets), String> {
    let p = control
        .store
        .policy(cluster)
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("the backup policy of cluster {cluster:?} was deleted"))?;
    let spec = serde_json::from_str(&p.spec).map_err(|e| format!("stored policy: {e}"))?;
    let sealed = serde_json::from_str(&p.secrets).map_err(|e| format!("stored policy: {e}"))?;
    Ok((p.tenant, spec, sealed))
}

/// The request of a cluster's archiver, and its repository.
async fn setup(
    control: &Control,
    cluster: &str,
) -> Result<(String, PolicySpec, Repo, ArchiveRequest), ferry_core::Error> {
    let (tenant, spec, sealed) = policy(control, cluster)
        .await
        .map_err(ferry_core::Error::definite)?;
    let mut source = ferry_core::Endpoint::parse(&spec.source, "")?;
    if let Some(s) = &sealed.source {
        source.password = Some(
            control
                .secrets()
                .open(s)
                .map_err(|e| ferry_core::Error::definite(e.to_string()))?,
        );
    }
    let objects = ferry_core::select::ObjectFilter::new(&spec.include, &spec.exclude)?;
    let repo = Repo::create_or_open(&spec.storage, super::run::repo_key().as_deref()).await?;
    let req = ArchiveRequest {
        cluster: cluster.to_string(),
        source,
        objects,
        method: spec.log_method.clone(),
        piece_seconds: piece_seconds(),
        piece_bytes: 16 << 20,
        quiet: true,
    };
    Ok((tenant, spec, repo, req))
}

/// Runs the cluster's archiver until it is stopped or fails, keeping the row up to
/// date (at most once a second); a transient error is retried with backoff.
async fn archive(
    control: &Control,
    cluster: &str,
    stop: watch::Receiver<bool>,
    latest: Arc<Mutex<Option<ArchiveStatus>>>,
) {
    let store = &control.store;
    let mut backoff = Duration::from_secs(1);
    loop {
        let outcome = match setup(control, cluster).await {
            Ok((_, spec, repo, req)) => {
                let sink = latest.clone();
                let report = move |s: &ArchiveStatus| {
                    *sink.lock().unwrap() = Some(s.clone());
                };
                let (c, cl, src, method, storage) = (
                    control.clone(),
                    cluster.to_string(),
                    latest.clone(),
                    spec.log_method.clone(),
                    spec.storage.clone(),
                );
                let ticker = tokio::spawn(async move {
                    loop {
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        store_status(&c, &cl, &src, &method, &storage).await;
                    }
                });
                // a task of its own: a panic in it fails this cluster's archive only
                let stop_rx = stop.clone();
                let r = tokio::spawn(async move {
                    ferry_backup::log::run_archive(&repo, &req, stop_rx, &report).await
                })
                .await
                .unwrap_or_else(|e| {
                    Err(ferry_core::Error::definite(format!(
                        "the log archiver ended abnormally: {e}"
                    )))
                });
                ticker.abort();
                store_status(control, cluster, &latest, &spec.log_method, &spec.storage).await;
                r
            }
            Err(e) => Err(e),
        };
        let stopping = *stop.borrow();
        match outcome {
            Ok(()) => {
                // asked to stop (or the node is stopping: the row stays running)
                let _ = store
                    .set_log_state(cluster, &["stopping"], "stopped", None)
                    .await;
                tracing::info!(cluster, "log backup stopped");
                return;
            }
            Err(e) if e.is_transient() && !stopping => {
                let why = reason_of(&e);
                tracing::warn!(cluster, "log backup: {why}; retrying in {backoff:?}");
                let s = ArchiveStatus {
                    state: ArchiveState::Running,
                    latest_point_us: None,
                    position: None,
                    pieces: latest.lock().unwrap().as_ref().map_or(0, |s| s.pieces),
                    recovering: Some(why),
                    reason: None,
                };
                let _ = sqlx::query(
                    "UPDATE backup_log_tasks SET recovering = $1, updated_ms = $2 WHERE cluster = $3",
                )
                .bind(&s.recovering)
                .bind(now_ms())
                .bind(cluster)
                .execute(&store.pool)
                .await;
                let mut stop2 = stop.clone();
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = stop2.changed() => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(30));
            }
            Err(e) => {
                let why = reason_of(&e);
                if stopping {
                    let _ = store
                        .set_log_state(cluster, &["stopping"], "stopped", None)
                        .await;
                }
                fail(control, cluster, &why).await;
                return;
            }
        }
    }
}

/// Writes the newest status the archiver reported; `running` once it says so.
async fn store_status(
    control: &Control,
    cluster: &str,
    latest: &Arc<Mutex<Option<ArchiveStatus>>>,
    method: &str,
    storage: &str,
) {
    let s = latest.lock().unwrap().clone();
    let Some(s) = s else { return };
    if let Err(e) = control
        .store
        .set_log_status(cluster, &s, method, storage)
        .await
    {
        tracing::warn!(cluster, "log backup status: {e}");
    }
    if s.state == ArchiveState::Running {
        let _ = control
            .store
            .set_log_state(cluster, &["starting"], "running", None)
            .await;
    }
}

/// Fails the cluster's log task with `why` and tells the tenant's webhook.
async fn fail(control: &Control, cluster: &str, why: &str) {
    match control
        .store
        .set_log_state(
            cluster,
            &["starting", "running", "stopping"],
            "failed",
            Some(why),
        )
        .await
    {
        Ok(true) => {
            tracing::warn!(cluster, reason = why, "log backup failed");
            if let Ok(Some(row)) = control.store.log_task(cluster).await {
                let task = super::db::BackupTaskRow {
                    id: format!("log-{cluster}"),
                    tenant: row.tenant.clone(),
                    cluster: cluster.to_string(),
                    kind: "log".into(),
                    state: "failed".into(),
                    reason: Some(why.to_string()),
                    ..Default::default()
                };
                crate::notify::send_backup(
                    control,
                    &task,
                    "log_backup_failed",
                    json!({
                        "method": row.method,
                        "latest_point": row.latest_point_us.and_then(rfc_us),
                        "position": row.position,
                    }),
                );
            }
        }
        Ok(false) => {}
        Err(e) => tracing::warn!(cluster, "log backup state: {e}"),
    }
}

/// RFC 3339 text of a time in µs since the epoch.
pub fn rfc_us(us: i64) -> Option<String> {
    chrono::DateTime::from_timestamp_micros(us)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
}
