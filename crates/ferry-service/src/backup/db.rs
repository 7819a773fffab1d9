//! The store's backup tables: `backup_policies` (one row per cluster, with the
//! next due time of each schedule) and `backup_tasks` (data, cleanup, secondary,
//! drill and restore tasks, leased by workers like the other tasks). Same portable
//! dialect as the rest of the store: TEXT / BIGINT, `$n`, compare-and-set.

use crate::error::{ServiceError, ServiceResult};
use crate::store::{now_ms, Store};
use sqlx::any::AnyRow;
use sqlx::Row;

/// A policy as stored.
#[derive(Debug, Clone)]
pub struct PolicyRow {
    /// The cluster (policy) name, unique.
    pub cluster: String,
    /// Owner.
    pub tenant: String,
    /// [`super::policy::PolicySpec`] as JSON.
    pub spec: String,
    /// [`super::policy::PolicySecrets`] as JSON.
    pub secrets: String,
    /// Next due time of the full schedule.
    pub full_next_ms: Option<i64>,
    /// Next due time of the incremental schedule.
    pub incr_next_ms: Option<i64>,
    /// Next due time of the drill schedule.
    pub drill_next_ms: Option<i64>,
    /// Created.
    pub created_ms: i64,
    /// Last change.
    pub updated_ms: i64,
}

/// Which schedule of a policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Which {
    /// Full sets.
    Full,
    /// Incremental sets.
    Incremental,
    /// Restore drills.
    Drill,
}

impl Which {
    fn column(self) -> &'static str {
        match self {
            Which::Full => "full_next_ms",
            Which::Incremental => "incr_next_ms",
            Which::Drill => "drill_next_ms",
        }
    }
}

/// A backup task as stored.
#[derive(Debug, Clone, Default)]
pub struct BackupTaskRow {
    /// Id (`b…` for backup kinds, `r…` for restores).
    pub id: String,
    /// Owner.
    pub tenant: String,
    /// The cluster (empty for a restore from a dump without one).
    pub cluster: String,
    /// `data`, `cleanup`, `secondary`, `drill`, `restore`.
    pub kind: String,
    /// State id.
    pub state: String,
    /// Why (failures).
    pub reason: Option<String>,
    /// Kind-specific JSON (type, set, storage directory, progress, results).
    pub detail: String,
    /// Sealed passwords (a restore's target) as JSON.
    pub secrets: String,
    /// The data task a cleanup / secondary task follows.
    pub parent: Option<String>,
    /// The set written (data), copied (secondary) or restored (drill, restore).
    pub set_id: Option<String>,
    /// Bytes stored by the set (data, secondary).
    pub bytes: i64,
    /// Whether a cleanup removed the set.
    pub removed: bool,
    /// Worker holding it.
    pub lease_owner: Option<String>,
    /// Until when.
    pub lease_until_ms: Option<i64>,
    /// Created.
    pub created_ms: i64,
    /// Work started.
    pub started_ms: Option<i64>,
    /// Work ended (a final state).
    pub ended_ms: Option<i64>,
    /// Last change.
    pub updated_ms: i64,
}

/// Filters of a backup task list.
#[derive(Debug, Clone, Default)]
pub struct BackupTaskFilter {
    /// Only this tenant's.
    pub tenant: Option<String>,
    /// Only these kinds.
    pub kinds: Vec<String>,
    /// Only this cluster's.
    pub cluster: Option<String>,
    /// Only the tasks a data task `parent` led to.
    pub parent: Option<String>,
    /// Created at or after.
    pub since_ms: Option<i64>,
    /// Created before.
    pub until_ms: Option<i64>,
    /// Page size.
    pub limit: i64,
    /// Rows skipped.
    pub offset: i64,
}

const POLICY_COLUMNS: &str = "cluster, tenant, spec, secrets, full_next_ms, incr_next_ms, \
    drill_next_ms, created_ms, updated_ms";
const TASK_COLUMNS: &str = "id, tenant, cluster, kind, state, reason, detail, secrets, parent, \
    set_id, bytes, removed, lease_owner, lease_until_ms, created_ms, started_ms, ended_ms, updated_ms";

fn policy_of(r: &AnyRow) -> ServiceResult<PolicyRow> {
    Ok(PolicyRow {
        cluster: r.try_get("cluster")?,
        tenant: r.try_get("tenant")?,
        spec: r.try_get("spec")?,
        secrets: r.try_get("secrets")?,
        full_next_ms: r.try_get("full_next_ms")?,
        incr_next_ms: r.try_get("incr_next_ms")?,
        drill_next_ms: r.try_get("drill_next_ms")?,
        created_ms: r.try_get("created_ms")?,
        updated_ms: r.try_get("updated_ms")?,
    })
}

fn task_of(r: &AnyRow) -> ServiceResult<BackupTaskRow> {
    Ok(BackupTaskRow {
        id: r.try_get("id")?,
        tenant: r.try_get("tenant")?,
        cluster: r.try_get("cluster")?,
        kind: r.try_get("kind")?,
        state: r.try_get("state")?,
        reason: r.try_get("reason")?,
        detail: r.try_get("detail")?,
        secrets: r.try_get("secrets")?,
        parent: r.try_get("parent")?,
        set_id: r.try_get("set_id")?,
        bytes: r.try_get("bytes")?,
        removed: r.try_get::<i64, _>("removed")? != 0,
        lease_owner: r.try_get("lease_owner")?,
        lease_until_ms: r.try_get("lease_until_ms")?,
        created_ms: r.try_get("created_ms")?,
        started_ms: r.try_get("started_ms")?,
        ended_ms: r.try_get("ended_ms")?,
        updated_ms: r.try_get("updated_ms")?,
    })
}

/// Final states: the task's end time is recorded on entering one.
pub fn is_final(state: &str) -> bool {
    matches!(
        state,
        "completed" | "failed" | "precheck_failed" | "succeeded"
    )
}

impl Store {
    // ---- policies ----

    /// Creates or replaces the policy of `p.cluster`; `Conflict` when the cluster
    /// belongs to another tenant. Returns whether it was created.
    pub async fn put_policy(&self, p: &PolicyRow) -> ServiceResult<bool> {
        let mut tx = self.pool.begin().await?;
        let owner: Option<String> =
            sqlx::query("SELECT tenant FROM backup_policies WHERE cluster = $1")
                .bind(&p.cluster)
                .fetch_optional(&mut *tx)
                .await?
                .map(|r| r.try_get(0))
                .transpose()?;
        let created = match owner {
            Some(t) if t != p.tenant => {
                return Err(ServiceError::Conflict(format!(
                    "the cluster name {:?} is taken; choose another",
                    p.cluster
                )))
            }
            Some(_) => {
                sqlx::query(
                    "UPDATE backup_policies SET spec = $1, secrets = $2, full_next_ms = $3, \
                     incr_next_ms = $4, drill_next_ms = $5, updated_ms = $6 WHERE cluster = $7",
                )
                .bind(&p.spec)
                .bind(&p.secrets)
                .bind(p.full_next_ms)
                .bind(p.incr_next_ms)
                .bind(p.drill_next_ms)
                .bind(p.updated_ms)
                .bind(&p.cluster)
                .execute(&mut *tx)
                .await?;
                false
            }
            None => {
                sqlx::query(&format!(
                    "INSERT INTO backup_policies ({POLICY_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
                ))
                .bind(&p.cluster)
                .bind(&p.tenant)
                .bind(&p.spec)
                .bind(&p.secrets)
                .bind(p.full_next_ms)
                .bind(p.incr_next_ms)
                .bind(p.drill_next_ms)
                .bind(p.created_ms)
                .bind(p.updated_ms)
                .execute(&mut *tx)
                .await?;
                true
            }
        };
        tx.commit().await?;
        Ok(created)
    }

    /// The policy of `cluster`.
    pub async fn policy(&self, cluster: &str) -> ServiceResult<Option<PolicyRow>> {
        sqlx::query(&format!(
            "SELECT {POLICY_COLUMNS} FROM backup_policies WHERE cluster = $1"
        ))
        .bind(cluster)
        .fetch_optional(&self.pool)
        .await?
        .map(|r| policy_of(&r))
        .transpose()
    }

    /// Every policy (of `tenant`), by cluster name.
    pub async fn policies(&self, tenant: Option<&str>) -> ServiceResult<Vec<PolicyRow>> {
        let rows = match tenant {
            Some(t) => {
                sqlx::query(&format!(
                "SELECT {POLICY_COLUMNS} FROM backup_policies WHERE tenant = $1 ORDER BY cluster"
            ))
                .bind(t)
                .fetch_all(&self.pool)
                .await?
            }
            None => {
                sqlx::query(&format!(
                    "SELECT {POLICY_COLUMNS} FROM backup_policies ORDER BY cluster"
                ))
                .fetch_all(&self.pool)
                .await?
            }
        };
        rows.iter().map(policy_of).collect()
    }

    /// Removes the policy of `cluster` (its tasks stay, as history).
    pub async fn delete_policy(&self, cluster: &str) -> ServiceResult<bool> {
        Ok(
            sqlx::query("DELETE FROM backup_policies WHERE cluster = $1")
                .bind(cluster)
                .execute(&self.pool)
                .await?
                .rows_affected()
                == 1,
        )
    }

    /// Moves a schedule's next time from `old` to `new` if no other node did
    /// (compare-and-set): the winner fires it.
    pub async fn advance_schedule(
        &self,
        cluster: &str,
        which: Which,
        old: i64,
        new: Option<i64>,
    ) -> ServiceResult<bool> {
        let col = which.column();
        Ok(sqlx::query(&format!(
            "UPDATE backup_policies SET {col} = $1 WHERE cluster = $2 AND {col} = $3"
        ))
        .bind(new)
        .bind(cluster)
        .bind(old)
        .execute(&self.pool)
        .await?
        .rows_affected()
            == 1)
    }

    // ---- backup tasks ----

    /// Inserts a new backup task.
    pub async fn insert_backup_task(&self, t: &BackupTaskRow) -> ServiceResult<()> {
        sqlx::query(
            "INSERT INTO backup_tasks (id, tenant, cluster, kind, state, reason, detail, secrets, \
             parent, set_id, bytes, created_ms, started_ms, updated_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $12)",
        )
        .bind(&t.id)
        .bind(&t.tenant)
        .bind(&t.cluster)
        .bind(&t.kind)
        .bind(&t.state)
        .bind(&t.reason)
        .bind(&t.detail)
        .bind(&t.secrets)
        .bind(&t.parent)
        .bind(&t.set_id)
        .bind(t.bytes)
        .bind(t.created_ms)
        .bind(t.started_ms)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// One backup task.
    pub async fn backup_task(&self, id: &str) -> ServiceResult<Option<BackupTaskRow>> {
        sqlx::query(&format!(
            "SELECT {TASK_COLUMNS} FROM backup_tasks WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .map(|r| task_of(&r))
        .transpose()
    }

    /// Backup tasks matching `f`, newest first, and how many match in all.
    pub async fn backup_tasks(
        &self,
        f: &BackupTaskFilter,
    ) -> ServiceResult<(Vec<BackupTaskRow>, i64)> {
        let mut cond = vec!["1 = 1".to_string()];
        let mut text: Vec<String> = Vec::new();
        let mut ints: Vec<i64> = Vec::new();
        let mut push_text = |v: &str, cond: &mut Vec<String>, col: &str| {
            text.push(v.to_string());
            cond.push(format!("{col} = ${}", text.len()));
        };
        if let Some(t) = &f.tenant {
            push_text(t, &mut cond, "tenant");
        }
        if let Some(c) = &f.cluster {
            push_text(c, &mut cond, "cluster");
        }
        if let Some(p) = &f.parent {
            push_text(p, &mut cond, "parent");
        }
        if !f.kinds.is_empty() {
            let mut ors = Vec::new();
            for k in &f.kinds {
                text.push(k.clone());
                ors.push(format!("kind = ${}", text.len()));
            }
            cond.push(format!("({})", ors.join(" OR ")));
        }
        let base = text.len();
        if let Some(s) = f.since_ms {
            ints.push(s);
            cond.push(format!("created_ms >= ${}", base + ints.len()));
        }
        if let Some(u) = f.until_ms {
            ints.push(u);
            cond.push(format!("created_ms < ${}", base + ints.len()));
        }
        let cond = cond.join(" AND ");
        let (rows, total) = self
            .page(
                "backup_tasks",
                TASK_COLUMNS,
                &cond,
                &text,
                &ints,
                (f.limit, f.offset),
            )
            .await?;
        let rows = rows
            .iter()
            .map(task_of)
            .collect::<ServiceResult<Vec<_>>>()?;
        Ok((rows, total))
    }

    /// Backup tasks with work left (a worker takes them), oldest first.
    pub async fn live_backup_tasks(&self) -> ServiceResult<Vec<BackupTaskRow>> {
        let states = super::LIVE_STATES
            .iter()
            .map(|s| format!("'{s}'"))
            .collect::<Vec<_>>()
            .join(", ");
        sqlx::query(&format!(
            "SELECT {TASK_COLUMNS} FROM backup_tasks WHERE state IN ({states}) ORDER BY created_ms, id"
        ))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(task_of)
        .collect()
    }

    /// The id of the cluster's data backup still running, if one is.
    pub async fn running_data_task(&self, cluster: &str) -> ServiceResult<Option<String>> {
        Ok(sqlx::query(
            "SELECT id FROM backup_tasks WHERE cluster = $1 AND kind = 'data' AND state = 'running' \
             ORDER BY created_ms LIMIT 1",
        )
        .bind(cluster)
        .fetch_optional(&self.pool)
        .await?
        .map(|r| r.try_get::<String, _>(0))
        .transpose()?)
    }

    /// Moves a backup task from `from` to `to` (compare-and-set), with `reason`
    /// and, when given, a new detail; records the start and end times.
    pub async fn set_backup_state(
        &self,
        id: &str,
        from: &str,
        to: &str,
        reason: Option<&str>,
        detail: Option<&str>,
    ) -> ServiceResult<bool> {
        let now = now_ms();
        let started = matches!(to, "running" | "prechecking" | "restoring").then_some(now);
        let ended = is_final(to).then_some(now);
        Ok(sqlx::query(
            "UPDATE backup_tasks SET state = $1, reason = $2, detail = COALESCE($3, detail), \
             started_ms = COALESCE(started_ms, $4), ended_ms = $5, updated_ms = $6 \
             WHERE id = $7 AND state = $8",
        )
        .bind(to)
        .bind(reason)
        .bind(detail)
        .bind(started)
        .bind(ended)
        .bind(now)
        .bind(id)
        .bind(from)
        .execute(&self.pool)
        .await?
        .rows_affected()
            == 1)
    }

    /// Replaces a backup task's detail (progress).
    pub async fn set_backup_detail(&self, id: &str, detail: &str) -> ServiceResult<()> {
        sqlx::query("UPDATE backup_tasks SET detail = $1, updated_ms = $2 WHERE id = $3")
            .bind(detail)
            .bind(now_ms())
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Records the set a task wrote or copied, and its bytes.
    pub async fn set_backup_set(&self, id: &str, set: &str, bytes: i64) -> ServiceResult<()> {
        sqlx::query("UPDATE backup_tasks SET set_id = $1, bytes = $2 WHERE id = $3")
            .bind(set)
            .bind(bytes)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Marks the data and secondary tasks of the cluster's removed sets.
    pub async fn mark_set_removed(&self, cluster: &str, set: &str) -> ServiceResult<()> {
        sqlx::query(
            "UPDATE backup_tasks SET removed = 1 WHERE cluster = $1 AND set_id = $2 \
             AND kind IN ('data', 'secondary')",
        )
        .bind(cluster)
        .bind(set)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Takes or renews the lease of backup task `id` for `owner` until `until`,
    /// unless another owner holds an unexpired one.
    pub async fn backup_lease(&self, id: &str, owner: &str, until: i64) -> ServiceResult<bool> {
        Ok(sqlx::query(
            "UPDATE backup_tasks SET lease_owner = $1, lease_until_ms = $2 WHERE id = $3 \
             AND (lease_owner IS NULL OR lease_owner = $1 OR lease_until_ms < $4)",
        )
        .bind(owner)
        .bind(until)
        .bind(id)
        .bind(now_ms())
        .execute(&self.pool)
        .await?
        .rows_affected()
            == 1)
    }

    /// Gives a backup task's lease up.
    pub async fn backup_release(&self, id: &str, owner: &str) -> ServiceResult<()> {
        sqlx::query(
            "UPDATE backup_tasks SET lease_owner = NULL, lease_until_ms = NULL WHERE id = $1 AND lease_owner = $2",
        )
        .bind(id)
        .bind(owner)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Completed data and secondary tasks whose stored bytes are not charged yet:
    /// (id, tenant, bytes).
    pub async fn uncharged_sets(&self) -> ServiceResult<Vec<(String, String, i64)>> {
        sqlx::query(
            "SELECT id, tenant, bytes FROM backup_tasks WHERE charged = 0 AND state = 'completed' \
             AND kind IN ('data', 'secondary') ORDER BY created_ms",
        )
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
        .collect()
    }

    /// Marks a task's bytes charged (compare-and-set: one node charges it).
    pub async fn mark_charged(&self, id: &str) -> ServiceResult<bool> {
        Ok(
            sqlx::query("UPDATE backup_tasks SET charged = 1 WHERE id = $1 AND charged = 0")
                .bind(id)
                .execute(&self.pool)
                .await?
                .rows_affected()
                == 1,
        )
    }

    /// Bytes the tenant's kept sets (and their secondary copies) hold.
    pub async fn stored_bytes(&self, tenant: &str) -> ServiceResult<i64> {
        let r = sqlx::query(
            "SELECT CAST(COALESCE(SUM(bytes), 0) AS BIGINT) AS n FROM backup_tasks WHERE tenant = $1 \
             AND state = 'completed' AND removed = 0 AND kind IN ('data', 'secondary')",
        )
        .bind(tenant)
        .fetch_one(&self.pool)
        .await?;
        Ok(r.try_get::<i64, _>(0)?)
    }
}
