//! The metadata store: tenants, tasks, their events and leases, in SQLite (one
//! node, WAL mode) or PostgreSQL (many nodes) through one portable dialect — only
//! TEXT / BIGINT columns, `$n` parameters, compare-and-set updates instead of
//! backend-specific locking, so both backends run the same statements.

use crate::error::{ServiceError, ServiceResult};
use ferry_core::lifecycle::State;
use ferry_core::spec::Kind;
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Row};
use std::time::Duration;

/// Milliseconds since the epoch (how every time is stored).
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// RFC 3339 text of a stored time (how the API and notifications show it).
pub fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
}

/// Versioned schema; each entry runs once, in order, at start.
fn migrations(postgres: bool) -> Vec<String> {
    let serial = if postgres {
        "BIGSERIAL PRIMARY KEY"
    } else {
        "INTEGER PRIMARY KEY AUTOINCREMENT"
    };
    vec![
        "CREATE TABLE tenants (name TEXT PRIMARY KEY, token_hash TEXT NOT NULL UNIQUE, \
           balance_micros BIGINT NOT NULL, usage_micros BIGINT NOT NULL DEFAULT 0, \
           webhook TEXT, created_ms BIGINT NOT NULL)"
            .into(),
        "CREATE TABLE tasks (id TEXT PRIMARY KEY, tenant TEXT NOT NULL, name TEXT NOT NULL, \
           kind TEXT NOT NULL, state TEXT NOT NULL, reason TEXT, spec TEXT NOT NULL, \
           secrets TEXT NOT NULL, start_at_ms BIGINT, frozen_from TEXT, lease_owner TEXT, \
           lease_until_ms BIGINT, progress TEXT, created_ms BIGINT NOT NULL, \
           updated_ms BIGINT NOT NULL, deleted BIGINT NOT NULL DEFAULT 0)"
            .into(),
        "CREATE INDEX tasks_tenant ON tasks (tenant, created_ms)".into(),
        format!(
            "CREATE TABLE events (id {serial}, task_id TEXT NOT NULL, at_ms BIGINT NOT NULL, \
               from_state TEXT, to_state TEXT NOT NULL, reason TEXT)"
        ),
        "CREATE INDEX events_task ON events (task_id, id)".into(),
        "CREATE TABLE meta_kv (k TEXT PRIMARY KEY, v TEXT NOT NULL)".into(),
        "ALTER TABLE tasks ADD COLUMN pending_spec TEXT".into(),
        "ALTER TABLE tasks ADD COLUMN pending_action TEXT".into(),
        // token rotation with a grace period: the previous token and until when it works
        "ALTER TABLE tenants ADD COLUMN old_token_hash TEXT".into(),
        "ALTER TABLE tenants ADD COLUMN old_token_until_ms BIGINT".into(),
        // the webhook signing secret, sealed like the database passwords
        "ALTER TABLE tenants ADD COLUMN webhook_secret TEXT".into(),
        format!(
            "CREATE TABLE audit (id {serial}, at_ms BIGINT NOT NULL, who TEXT NOT NULL, \
               tenant TEXT, method TEXT NOT NULL, path TEXT NOT NULL, target TEXT, \
               status BIGINT NOT NULL, error TEXT, request_id TEXT NOT NULL, remote TEXT, \
               summary TEXT)"
        ),
        "CREATE INDEX audit_at ON audit (at_ms, id)".into(),
        "CREATE INDEX tenants_old_token ON tenants (old_token_hash)".into(),
        // backup policies and backup / cleanup / secondary / drill / restore tasks
        "CREATE TABLE backup_policies (cluster TEXT PRIMARY KEY, tenant TEXT NOT NULL, \
           spec TEXT NOT NULL, secrets TEXT NOT NULL, full_next_ms BIGINT, \
           incr_next_ms BIGINT, drill_next_ms BIGINT, created_ms BIGINT NOT NULL, \
           updated_ms BIGINT NOT NULL)"
            .into(),
        "CREATE TABLE backup_tasks (id TEXT PRIMARY KEY, tenant TEXT NOT NULL, \
           cluster TEXT NOT NULL, kind TEXT NOT NULL, state TEXT NOT NULL, reason TEXT, \
           detail TEXT NOT NULL, secrets TEXT NOT NULL, parent TEXT, set_id TEXT, \
           bytes BIGINT NOT NULL DEFAULT 0, charged BIGINT NOT NULL DEFAULT 0, \
           removed BIGINT NOT NULL DEFAULT 0, lease_owner TEXT, lease_until_ms BIGINT, \
           created_ms BIGINT NOT NULL, started_ms BIGINT, ended_ms BIGINT, \
           updated_ms BIGINT NOT NULL)"
            .into(),
        "CREATE INDEX backup_tasks_list ON backup_tasks (tenant, kind, created_ms)".into(),
        "CREATE INDEX backup_tasks_state ON backup_tasks (state)".into(),
        // the log backup task of each cluster (seed 004)
        "CREATE TABLE backup_log_tasks (cluster TEXT PRIMARY KEY, tenant TEXT NOT NULL, \
           method TEXT NOT NULL, host TEXT, state TEXT NOT NULL, reason TEXT, recovering TEXT, \
           latest_point_us BIGINT, position TEXT, pieces BIGINT NOT NULL DEFAULT 0, \
           storage TEXT NOT NULL, lease_owner TEXT, lease_until_ms BIGINT, \
           created_ms BIGINT NOT NULL, started_ms BIGINT, ended_ms BIGINT, \
           updated_ms BIGINT NOT NULL)"
            .into(),
    ]
}

/// A tenant as stored.
#[derive(Debug, Clone)]
pub struct TenantRow {
    /// Unique name.
    pub name: String,
    /// Balance in millionths of a unit.
    pub balance_micros: i64,
    /// Charged so far, in millionths.
    pub usage_micros: i64,
    /// Webhook URL for notifications.
    pub webhook: Option<String>,
}

/// One audited API call (never a token, password or secret: a redacted summary).
#[derive(Debug, Clone)]
pub struct AuditRow {
    /// When the answer was sent.
    pub at_ms: i64,
    /// `admin`, a tenant's name, or `unauthenticated`.
    pub who: String,
    /// The tenant the call concerns (the caller's, or the one its target belongs to).
    pub tenant: Option<String>,
    /// HTTP method.
    pub method: String,
    /// Path, with the ids in it.
    pub path: String,
    /// The object acted on (`task t1a2b3c`, `tenant acme`).
    pub target: Option<String>,
    /// HTTP status of the answer.
    pub status: i64,
    /// The error message of a failed call (redacted).
    pub error: Option<String>,
    /// The request id (also in the answer's `x-request-id`).
    pub request_id: String,
    /// The client's address.
    pub remote: Option<String>,
    /// What was created or changed (JSON of a few whitelisted fields).
    pub summary: Option<String>,
}

/// Filters of the audit list.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// Only entries concerning this tenant.
    pub tenant: Option<String>,
    /// At or after.
    pub since_ms: Option<i64>,
    /// Before.
    pub until_ms: Option<i64>,
    /// Page size.
    pub limit: i64,
    /// Rows skipped.
    pub offset: i64,
}

/// `sql` with the audit filter's values bound, in the order `Store::audit` numbers them.
fn audit_query<'q>(
    sql: &'q str,
    f: &'q AuditFilter,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    let mut q = sqlx::query(sql);
    if let Some(t) = &f.tenant {
        q = q.bind(t.as_str());
    }
    if let Some(s) = f.since_ms {
        q = q.bind(s);
    }
    if let Some(u) = f.until_ms {
        q = q.bind(u);
    }
    q
}

/// A task as stored.
#[derive(Debug, Clone)]
pub struct TaskRow {
    /// Service-assigned id (also the engine's task name).
    pub id: String,
    /// Owner.
    pub tenant: String,
    /// The user's name for it.
    pub name: String,
    /// Kind.
    pub kind: Kind,
    /// Current state.
    pub state: State,
    /// Why it is in that state (failures, recoveries).
    pub reason: Option<String>,
    /// Task YAML without passwords.
    pub spec: String,
    /// Encrypted passwords (JSON of sealed strings).
    pub secrets: String,
    /// Scheduled start.
    pub start_at_ms: Option<i64>,
    /// The state a frozen task returns to.
    pub frozen_from: Option<State>,
    /// Worker holding the task.
    pub lease_owner: Option<String>,
    /// Until when.
    pub lease_until_ms: Option<i64>,
    /// Progress JSON written by the worker.
    pub progress: Option<String>,
    /// An edited spec waiting to be applied (sync edits).
    pub pending_spec: Option<String>,
    /// A DR action waiting for the worker (`switchover`, `failover`).
    pub pending_action: Option<String>,
    /// Created.
    pub created_ms: i64,
    /// Last change.
    pub updated_ms: i64,
}

/// One state change.
#[derive(Debug, Clone)]
pub struct EventRow {
    /// When.
    pub at_ms: i64,
    /// From (none for the first).
    pub from_state: Option<String>,
    /// To.
    pub to_state: String,
    /// Why.
    pub reason: Option<String>,
}

/// Filters of a task list.
#[derive(Debug, Clone, Default)]
pub struct TaskFilter {
    /// Only this tenant's (None = all, for the admin).
    pub tenant: Option<String>,
    /// Only this kind.
    pub kind: Option<Kind>,
    /// Only this state.
    pub state: Option<State>,
    /// Created at or after.
    pub since_ms: Option<i64>,
    /// Created before.
    pub until_ms: Option<i64>,
    /// Page size.
    pub limit: i64,
    /// Rows skipped.
    pub offset: i64,
}

/// The metadata store.
#[derive(Clone)]
pub struct Store {
    pub(crate) pool: AnyPool,
}

const TASK_COLUMNS: &str = "id, tenant, name, kind, state, reason, spec, secrets, start_at_ms, \
    frozen_from, lease_owner, lease_until_ms, progress, pending_spec, pending_action, created_ms, updated_ms";

fn state_of(s: &str) -> ServiceResult<State> {
    State::from_id(s).ok_or_else(|| ServiceError::Internal(format!("unknown state {s:?} in store")))
}

fn task_of(r: &AnyRow) -> ServiceResult<TaskRow> {
    let kind: String = r.try_get("kind")?;
    Ok(TaskRow {
        id: r.try_get("id")?,
        tenant: r.try_get("tenant")?,
        name: r.try_get("name")?,
        kind: Kind::from_id(&kind)
            .ok_or_else(|| ServiceError::Internal(format!("unknown kind {kind:?} in store")))?,
        state: state_of(&r.try_get::<String, _>("state")?)?,
        reason: r.try_get("reason")?,
        spec: r.try_get("spec")?,
        secrets: r.try_get("secrets")?,
        start_at_ms: r.try_get("start_at_ms")?,
        frozen_from: r
            .try_get::<Option<String>, _>("frozen_from")?
            .map(|s| state_of(&s))
            .transpose()?,
        lease_owner: r.try_get("lease_owner")?,
        lease_until_ms: r.try_get("lease_until_ms")?,
        progress: r.try_get("progress")?,
        pending_spec: r.try_get("pending_spec")?,
        pending_action: r.try_get("pending_action")?,
        created_ms: r.try_get("created_ms")?,
        updated_ms: r.try_get("updated_ms")?,
    })
}

fn tenant_of(r: &AnyRow) -> ServiceResult<TenantRow> {
    Ok(TenantRow {
        name: r.try_get("name")?,
        balance_micros: r.try_get("balance_micros")?,
        usage_micros: r.try_get("usage_micros")?,
        webhook: r.try_get("webhook")?,
    })
}

impl Store {
    /// Opens `url` (`sqlite://path` or `postgres://…`) and runs pending migrations.
    pub async fn open(url: &str) -> ServiceResult<Store> {
        sqlx::any::install_default_drivers();
        let postgres = url.starts_with("postgres");
        let url = if postgres || url.contains('?') {
            url.to_string()
        } else {
            format!("{url}?mode=rwc")
        };
        let mut opts = AnyPoolOptions::new().acquire_timeout(Duration::from_secs(10));
        if !postgres {
            // one writer: SQLite serialises writes anyway; WAL lets readers run beside it
            opts = opts.max_connections(1).after_connect(|conn, _| {
                Box::pin(async move {
                    sqlx::query("PRAGMA journal_mode = WAL")
                        .execute(&mut *conn)
                        .await?;
                    sqlx::query("PRAGMA busy_timeout = 5000")
                        .execute(&mut *conn)
                        .await?;
                    sqlx::query("PRAGMA synchronous = NORMAL")
                        .execute(&mut *conn)
                        .await?;
                    Ok(())
                })
            });
        } else {
            opts = opts.max_connections(8);
        }
        let pool = opts.connect(&url).await.map_err(|e| {
            ServiceError::Unavailable(format!(
                "cannot open the metadata store {}: {e}",
                ferry_core::redact::redact(&url)
            ))
        })?;
        let store = Store { pool };
        store.migrate(postgres).await?;
        Ok(store)
    }

    async fn migrate(&self, postgres: bool) -> ServiceResult<()> {
        // nodes starting together race for the same versions: the loser rereads
        let mut attempt = 0;
        loop {
            match self.migrate_once(postgres).await {
                Err(e) if attempt < 3 => {
                    attempt += 1;
                    tracing::debug!("migration attempt {attempt} lost a race: {e}");
                    tokio::time::sleep(Duration::from_millis(300)).await;
                }
                r => return r,
            }
        }
    }

    async fn migrate_once(&self, postgres: bool) -> ServiceResult<()> {
        sqlx::query("CREATE TABLE IF NOT EXISTS meta_migrations (version BIGINT PRIMARY KEY)")
            .execute(&self.pool)
            .await?;
        let done: Vec<i64> = sqlx::query("SELECT version FROM meta_migrations")
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| r.try_get::<i64, _>(0))
            .collect::<Result<_, _>>()?;
        for (i, stmt) in migrations(postgres).iter().enumerate() {
            let v = i as i64 + 1;
            if done.contains(&v) {
                continue;
            }
            let mut tx = self.pool.begin().await?;
            sqlx::query(stmt).execute(&mut *tx).await?;
            // two nodes starting together: the second one's insert conflicts and rolls back
            sqlx::query("INSERT INTO meta_migrations (version) VALUES ($1)")
                .bind(v)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
        }
        Ok(())
    }

    /// A small setting shared by all nodes.
    pub async fn kv(&self, k: &str) -> ServiceResult<Option<String>> {
        Ok(sqlx::query("SELECT v FROM meta_kv WHERE k = $1")
            .bind(k)
            .fetch_optional(&self.pool)
            .await?
            .map(|r| r.try_get::<String, _>(0))
            .transpose()?)
    }

    /// Sets `k` unless it is set; returns the value now stored.
    pub async fn kv_init(&self, k: &str, v: &str) -> ServiceResult<String> {
        let _ = sqlx::query("INSERT INTO meta_kv (k, v) VALUES ($1, $2)")
            .bind(k)
            .bind(v)
            .execute(&self.pool)
            .await;
        self.kv(k)
            .await?
            .ok_or_else(|| ServiceError::Internal(format!("setting {k} was not stored")))
    }

    // ---- tenants ----

    /// Creates a tenant holding `token_hash`.
    pub async fn create_tenant(
        &self,
        name: &str,
        token_hash: &str,
        balance: i64,
    ) -> ServiceResult<()> {
        let r = sqlx::query(
            "INSERT INTO tenants (name, token_hash, balance_micros, created_ms) VALUES ($1, $2, $3, $4)",
        )
        .bind(name)
        .bind(token_hash)
        .bind(balance)
        .bind(now_ms())
        .execute(&self.pool)
        .await;
        match r {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_database_error()
                    .is_some_and(|d| d.is_unique_violation()) =>
            {
                Err(ServiceError::Conflict(format!(
                    "tenant {name:?} already exists"
                )))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The tenant with this name.
    pub async fn tenant(&self, name: &str) -> ServiceResult<Option<TenantRow>> {
        sqlx::query(
            "SELECT name, balance_micros, usage_micros, webhook FROM tenants WHERE name = $1",
        )
        .bind(name)
        .fetch_optional(&self.pool)
        .await?
        .map(|r| tenant_of(&r))
        .transpose()
    }

    /// The tenant a token hash belongs to.
    pub async fn tenant_by_token(&self, token_hash: &str) -> ServiceResult<Option<TenantRow>> {
        sqlx::query(
            "SELECT name, balance_micros, usage_micros, webhook FROM tenants WHERE token_hash = $1 \
             OR (old_token_hash = $2 AND old_token_until_ms > $3)",
        )
        .bind(token_hash)
        .bind(token_hash)
        .bind(now_ms())
        .fetch_optional(&self.pool)
        .await?
        .map(|r| tenant_of(&r))
        .transpose()
    }

    /// All tenants.
    pub async fn tenants(&self) -> ServiceResult<Vec<TenantRow>> {
        sqlx::query("SELECT name, balance_micros, usage_micros, webhook FROM tenants ORDER BY name")
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(tenant_of)
            .collect()
    }

    /// Adds `delta` to the balance (negative: a charge); returns the new balance.
    pub async fn add_balance(&self, name: &str, delta: i64, usage: i64) -> ServiceResult<i64> {
        let n = sqlx::query(
            "UPDATE tenants SET balance_micros = balance_micros + $1, usage_micros = usage_micros + $2 WHERE name = $3",
        )
        .bind(delta)
        .bind(usage)
        .bind(name)
        .execute(&self.pool)
        .await?
        .rows_affected();
        if n == 0 {
            return Err(ServiceError::NotFound(format!("tenant {name:?}")));
        }
        Ok(self
            .tenant(name)
            .await?
            .map(|t| t.balance_micros)
            .unwrap_or(0))
    }

    /// Gives tenant `name` a new token hash. With `grace_until_ms` the current token
    /// keeps working until then (one previous token at most); without, it stops now.
    pub async fn rotate_tenant_token(
        &self,
        name: &str,
        new_hash: &str,
        grace_until_ms: Option<i64>,
    ) -> ServiceResult<()> {
        let sql = if grace_until_ms.is_some() {
            "UPDATE tenants SET old_token_hash = token_hash, old_token_until_ms = $1, \
             token_hash = $2 WHERE name = $3"
        } else {
            "UPDATE tenants SET old_token_hash = NULL, old_token_until_ms = $1, \
             token_hash = $2 WHERE name = $3"
        };
        let n = sqlx::query(sql)
            .bind(grace_until_ms)
            .bind(new_hash)
            .bind(name)
            .execute(&self.pool)
            .await?
            .rows_affected();
        if n == 0 {
            return Err(ServiceError::NotFound(format!("tenant {name:?}")));
        }
        Ok(())
    }

    /// The tenant's sealed webhook signing secret.
    pub async fn webhook_secret(&self, name: &str) -> ServiceResult<Option<String>> {
        Ok(
            sqlx::query("SELECT webhook_secret FROM tenants WHERE name = $1")
                .bind(name)
                .fetch_optional(&self.pool)
                .await?
                .map(|r| r.try_get::<Option<String>, _>(0))
                .transpose()?
                .flatten(),
        )
    }

    /// Stores the tenant's sealed webhook signing secret.
    pub async fn set_webhook_secret(&self, name: &str, sealed: Option<&str>) -> ServiceResult<()> {
        sqlx::query("UPDATE tenants SET webhook_secret = $1 WHERE name = $2")
            .bind(sealed)
            .bind(name)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Sets `k` to `v` (a setting shared by all nodes, e.g. the rotated admin token's hash).
    pub async fn kv_set(&self, k: &str, v: &str) -> ServiceResult<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM meta_kv WHERE k = $1")
            .bind(k)
            .execute(&mut *tx)
            .await?;
        sqlx::query("INSERT INTO meta_kv (k, v) VALUES ($1, $2)")
            .bind(k)
            .bind(v)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Removes setting `k`.
    pub async fn kv_delete(&self, k: &str) -> ServiceResult<()> {
        sqlx::query("DELETE FROM meta_kv WHERE k = $1")
            .bind(k)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    // ---- audit ----

    /// Appends one audit entry.
    pub async fn insert_audit(&self, e: &AuditRow) -> ServiceResult<()> {
        sqlx::query(
            "INSERT INTO audit (at_ms, who, tenant, method, path, target, status, error, \
             request_id, remote, summary) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(e.at_ms)
        .bind(&e.who)
        .bind(&e.tenant)
        .bind(&e.method)
        .bind(&e.path)
        .bind(&e.target)
        .bind(e.status)
        .bind(&e.error)
        .bind(&e.request_id)
        .bind(&e.remote)
        .bind(&e.summary)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Audit entries matching `f`, oldest first, and how many match in all.
    pub async fn audit(&self, f: &AuditFilter) -> ServiceResult<(Vec<AuditRow>, i64)> {
        let mut cond = vec!["1 = 1".to_string()];
        let mut n = 0;
        let mut arg = || {
            n += 1;
            format!("${n}")
        };
        if f.tenant.is_some() {
            cond.push(format!("tenant = {}", arg()));
        }
        if f.since_ms.is_some() {
            cond.push(format!("at_ms >= {}", arg()));
        }
        if f.until_ms.is_some() {
            cond.push(format!("at_ms < {}", arg()));
        }
        let (limit, offset) = (arg(), arg());
        let cond = cond.join(" AND ");
        let count_sql = format!("SELECT count(*) FROM audit WHERE {cond}");
        let list_sql = format!(
            "SELECT at_ms, who, tenant, method, path, target, status, error, request_id, \
             remote, summary FROM audit WHERE {cond} ORDER BY at_ms, id LIMIT {limit} OFFSET {offset}"
        );
        let total: i64 = audit_query(&count_sql, f)
            .fetch_one(&self.pool)
            .await?
            .try_get(0)?;
        let rows = audit_query(&list_sql, f)
            .bind(f.limit)
            .bind(f.offset)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| {
                Ok(AuditRow {
                    at_ms: r.try_get("at_ms")?,
                    who: r.try_get("who")?,
                    tenant: r.try_get("tenant")?,
                    method: r.try_get("method")?,
                    path: r.try_get("path")?,
                    target: r.try_get("target")?,
                    status: r.try_get("status")?,
                    error: r.try_get("error")?,
                    request_id: r.try_get("request_id")?,
                    remote: r.try_get("remote")?,
                    summary: r.try_get("summary")?,
                })
            })
            .collect::<ServiceResult<Vec<_>>>()?;
        Ok((rows, total))
    }

    /// Sets the tenant's webhook.
    pub async fn set_webhook(&self, name: &str, url: Option<&str>) -> ServiceResult<()> {
        sqlx::query("UPDATE tenants SET webhook = $1 WHERE name = $2")
            .bind(url)
            .bind(name)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    // ---- tasks ----

    /// Inserts a new task (state `creating`) and its first event.
    pub async fn insert_task(&self, t: &TaskRow) -> ServiceResult<()> {
        let taken =
            sqlx::query("SELECT id FROM tasks WHERE tenant = $1 AND name = $2 AND deleted = 0")
                .bind(&t.tenant)
                .bind(&t.name)
                .fetch_optional(&self.pool)
                .await?;
        if taken.is_some() {
            return Err(ServiceError::Invalid {
                field: "name".into(),
                reason: format!("a task named {:?} already exists for this tenant", t.name),
            });
        }
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO tasks (id, tenant, name, kind, state, reason, spec, secrets, start_at_ms, \
               created_ms, updated_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10)",
        )
        .bind(&t.id)
        .bind(&t.tenant)
        .bind(&t.name)
        .bind(t.kind.id())
        .bind(t.state.id())
        .bind(&t.reason)
        .bind(&t.spec)
        .bind(&t.secrets)
        .bind(t.start_at_ms)
        .bind(t.created_ms)
        .execute(&mut *tx)
        .await?;
        sqlx::query("INSERT INTO events (task_id, at_ms, from_state, to_state, reason) VALUES ($1, $2, NULL, $3, $4)")
            .bind(&t.id)
            .bind(t.created_ms)
            .bind(t.state.id())
            .bind(&t.reason)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// One task (not deleted).
    pub async fn task(&self, id: &str) -> ServiceResult<Option<TaskRow>> {
        sqlx::query(&format!(
            "SELECT {TASK_COLUMNS} FROM tasks WHERE id = $1 AND deleted = 0"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .map(|r| task_of(&r))
        .transpose()
    }

    /// One page of `SELECT {columns} FROM {table} WHERE {cond}`, newest first, and
    /// how many rows match in all. `cond` numbers its parameters `$1…`: the `text`
    /// ones first, then the `ints` (the task lists build their filters so).
    pub(crate) async fn page(
        &self,
        table: &str,
        columns: &str,
        cond: &str,
        text: &[String],
        ints: &[i64],
        (limit, offset): (i64, i64),
    ) -> ServiceResult<(Vec<AnyRow>, i64)> {
        let count_sql = format!("SELECT count(*) FROM {table} WHERE {cond}");
        let mut q = sqlx::query(&count_sql);
        for a in text {
            q = q.bind(a);
        }
        for a in ints {
            q = q.bind(*a);
        }
        let total: i64 = q.fetch_one(&self.pool).await?.try_get(0)?;
        let n = text.len() + ints.len();
        let list_sql = format!(
            "SELECT {columns} FROM {table} WHERE {cond} ORDER BY created_ms DESC, id LIMIT ${} OFFSET ${}",
            n + 1,
            n + 2
        );
        let mut q = sqlx::query(&list_sql);
        for a in text {
            q = q.bind(a);
        }
        for a in ints {
            q = q.bind(*a);
        }
        let rows = q.bind(limit).bind(offset).fetch_all(&self.pool).await?;
        Ok((rows, total))
    }

    /// Tasks matching `f`, newest first, and how many match in all.
    pub async fn tasks(&self, f: &TaskFilter) -> ServiceResult<(Vec<TaskRow>, i64)> {
        let mut cond = vec!["deleted = 0".to_string()];
        let mut args: Vec<String> = Vec::new();
        let mut int_args: Vec<i64> = Vec::new();
        // text parameters first ($1..), then integer ones
        if let Some(t) = &f.tenant {
            args.push(t.clone());
            cond.push(format!("tenant = ${}", args.len()));
        }
        if let Some(k) = f.kind {
            args.push(k.id().into());
            cond.push(format!("kind = ${}", args.len()));
        }
        if let Some(s) = f.state {
            args.push(s.id().into());
            cond.push(format!("state = ${}", args.len()));
        }
        let base = args.len();
        if let Some(s) = f.since_ms {
            int_args.push(s);
            cond.push(format!("created_ms >= ${}", base + int_args.len()));
        }
        if let Some(u) = f.until_ms {
            int_args.push(u);
            cond.push(format!("created_ms < ${}", base + int_args.len()));
        }
        let cond = cond.join(" AND ");
        let (rows, total) = self
            .page(
                "tasks",
                TASK_COLUMNS,
                &cond,
                &args,
                &int_args,
                (f.limit, f.offset),
            )
            .await?;
        let rows = rows
            .iter()
            .map(task_of)
            .collect::<ServiceResult<Vec<_>>>()?;
        Ok((rows, total))
    }

    /// How many tasks (not deleted) are in each (kind, state), failed and ended ones
    /// included: what `/metrics` counts.
    pub async fn task_counts(&self) -> ServiceResult<Vec<(String, String, i64)>> {
        sqlx::query(
            "SELECT kind, state, count(*) AS n FROM tasks WHERE deleted = 0 GROUP BY kind, state ORDER BY kind, state",
        )
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| Ok((r.try_get("kind")?, r.try_get("state")?, r.try_get("n")?)))
        .collect()
    }

    /// Tasks not deleted and not in one of `exclude` (for workers and metering).
    pub async fn live_tasks(&self) -> ServiceResult<Vec<TaskRow>> {
        sqlx::query(&format!(
            "SELECT {TASK_COLUMNS} FROM tasks WHERE deleted = 0 AND state NOT IN ('ended', 'create_failed') ORDER BY created_ms"
        ))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(task_of)
        .collect()
    }

    /// Moves the task from `from` to `to` if it is still in `from` (compare-and-set),
    /// recording the event. Returns the time recorded as the task's `updated_ms`
    /// (so a caller's copy of the row can show it), or `None` when another actor
    /// changed the task first.
    pub async fn set_state(
        &self,
        id: &str,
        from: State,
        to: State,
        reason: Option<&str>,
        frozen_from: Option<State>,
    ) -> ServiceResult<Option<i64>> {
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        let n = sqlx::query(
            "UPDATE tasks SET state = $1, reason = $2, frozen_from = $3, updated_ms = $4 \
             WHERE id = $5 AND state = $6 AND deleted = 0",
        )
        .bind(to.id())
        .bind(reason)
        .bind(frozen_from.map(|s| s.id()))
        .bind(now)
        .bind(id)
        .bind(from.id())
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n == 0 {
            tx.rollback().await?;
            return Ok(None);
        }
        sqlx::query("INSERT INTO events (task_id, at_ms, from_state, to_state, reason) VALUES ($1, $2, $3, $4, $5)")
            .bind(id)
            .bind(now)
            .bind(from.id())
            .bind(to.id())
            .bind(reason)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Some(now))
    }

    /// Marks a task deleted if it is still in `state`.
    pub async fn delete_task(&self, id: &str, state: State) -> ServiceResult<bool> {
        Ok(sqlx::query("UPDATE tasks SET deleted = 1, updated_ms = $1 WHERE id = $2 AND state = $3 AND deleted = 0")
            .bind(now_ms())
            .bind(id)
            .bind(state.id())
            .execute(&self.pool)
            .await?
            .rows_affected()
            == 1)
    }

    /// Sets the scheduled start.
    pub async fn set_start_at(&self, id: &str, at: Option<i64>) -> ServiceResult<()> {
        sqlx::query("UPDATE tasks SET start_at_ms = $1 WHERE id = $2")
            .bind(at)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Stores (or clears) an edited spec waiting to be applied.
    pub async fn set_pending_spec(&self, id: &str, spec: Option<&str>) -> ServiceResult<()> {
        sqlx::query("UPDATE tasks SET pending_spec = $1 WHERE id = $2")
            .bind(spec)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Stores (or clears) a DR action for the worker.
    pub async fn set_pending_action(&self, id: &str, action: Option<&str>) -> ServiceResult<()> {
        sqlx::query("UPDATE tasks SET pending_action = $1 WHERE id = $2")
            .bind(action)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Replaces the task's spec and sealed passwords (a reversed DR direction).
    pub async fn set_spec(&self, id: &str, spec: &str, secrets: &str) -> ServiceResult<()> {
        sqlx::query("UPDATE tasks SET spec = $1, secrets = $2 WHERE id = $3")
            .bind(spec)
            .bind(secrets)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Replaces the task's spec and pending spec if they are still `old` (a speed
    /// limit written into both, never over an edit committed meanwhile). Returns
    /// whether it did.
    pub async fn replace_specs(
        &self,
        id: &str,
        old: (&str, Option<&str>),
        new: (&str, Option<&str>),
    ) -> ServiceResult<bool> {
        Ok(sqlx::query(
            "UPDATE tasks SET spec = $1, pending_spec = $2, updated_ms = $3 \
             WHERE id = $4 AND spec = $5 AND COALESCE(pending_spec, '') = COALESCE($6, '')",
        )
        .bind(new.0)
        .bind(new.1)
        .bind(now_ms())
        .bind(id)
        .bind(old.0)
        .bind(old.1)
        .execute(&self.pool)
        .await?
        .rows_affected()
            == 1)
    }

    /// Makes the pending spec the task's spec.
    pub async fn commit_pending_spec(&self, id: &str) -> ServiceResult<()> {
        sqlx::query(
            "UPDATE tasks SET spec = pending_spec, pending_spec = NULL WHERE id = $1 AND pending_spec IS NOT NULL",
        )
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Replaces the reason of a task still in `state` (a warning about a running or
    /// stopped task that changes no state: no event is recorded). Returns whether
    /// it did.
    pub async fn set_reason(&self, id: &str, state: State, reason: &str) -> ServiceResult<bool> {
        Ok(
            sqlx::query(
                "UPDATE tasks SET reason = $1 WHERE id = $2 AND state = $3 AND deleted = 0",
            )
            .bind(reason)
            .bind(id)
            .bind(state.id())
            .execute(&self.pool)
            .await?
            .rows_affected()
                == 1,
        )
    }

    /// Records the worker's progress JSON.
    pub async fn set_progress(&self, id: &str, progress: &str) -> ServiceResult<()> {
        sqlx::query("UPDATE tasks SET progress = $1 WHERE id = $2")
            .bind(progress)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Takes or renews the lease of `id` for `owner` until `until`, unless another
    /// owner holds an unexpired one. Returns whether `owner` now holds it.
    pub async fn lease(&self, id: &str, owner: &str, until: i64) -> ServiceResult<bool> {
        Ok(sqlx::query(
            "UPDATE tasks SET lease_owner = $1, lease_until_ms = $2 WHERE id = $3 AND deleted = 0 \
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

    /// Gives the lease up.
    pub async fn release(&self, id: &str, owner: &str) -> ServiceResult<()> {
        sqlx::query("UPDATE tasks SET lease_owner = NULL, lease_until_ms = NULL WHERE id = $1 AND lease_owner = $2")
            .bind(id)
            .bind(owner)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The task's state changes, oldest first.
    pub async fn events(&self, id: &str) -> ServiceResult<Vec<EventRow>> {
        sqlx::query(
            "SELECT at_ms, from_state, to_state, reason FROM events WHERE task_id = $1 ORDER BY id",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| {
            Ok(EventRow {
                at_ms: r.try_get("at_ms")?,
                from_state: r.try_get("from_state")?,
                to_state: r.try_get("to_state")?,
                reason: r.try_get("reason")?,
            })
        })
        .collect()
    }
}
