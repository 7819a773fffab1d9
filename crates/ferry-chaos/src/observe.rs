//! Watching Ferry from the outside: what its target records (phase, position,
//! committed chunks) and whether an id has arrived. Reconnects after every failure,
//! since the target may be the thing that crashed.

use crate::db::{Db, Engine};

/// A session on the target that reopens itself when needed.
pub struct Observer {
    engine: Engine,
    url: String,
    db: Option<Db>,
    task: String,
    prefix: String,
}

/// Ferry's progress as its target holds it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Progress {
    /// `ferry.tasks.phase` (`none` before the first write).
    pub phase: String,
    /// `ferry.tasks.position`.
    pub position: String,
    /// Committed copy chunks.
    pub chunks_done: u64,
}

impl Observer {
    /// Watches task `task` on the target at `url`; ledger tables under `prefix`.
    pub fn new(engine: Engine, url: &str, task: &str, prefix: &str) -> Observer {
        Observer {
            engine,
            url: url.to_string(),
            db: None,
            task: task.to_string(),
            prefix: prefix.to_string(),
        }
    }

    async fn rows(&mut self, sql: &str) -> Option<Vec<Vec<Option<String>>>> {
        if self.db.is_none() {
            self.db = Db::connect(self.engine, &self.url).await.ok();
        }
        let r = self.db.as_mut()?.rows(sql).await;
        match r {
            Ok(r) => Some(r),
            Err(_) => {
                self.db = None;
                None
            }
        }
    }

    /// The task's progress (`None` when the target cannot be read).
    pub async fn progress(&mut self) -> Option<Progress> {
        let t = &self.task;
        let sql = format!(
            "SELECT (SELECT phase FROM ferry.tasks WHERE task = '{t}'), \
                    (SELECT position FROM ferry.tasks WHERE task = '{t}'), \
                    (SELECT count(*) FROM ferry.chunks WHERE task = '{t}' AND done = 1)"
        );
        match self.rows(&sql).await {
            Some(r) => {
                let r = r.into_iter().next()?;
                Some(Progress {
                    phase: r[0].clone().unwrap_or_else(|| "none".into()),
                    position: r[1].clone().unwrap_or_default(),
                    chunks_done: r[2].as_deref().and_then(|s| s.parse().ok()).unwrap_or(0),
                })
            }
            // before Ferry created its checkpoint tables
            None if self.db.is_none() && Db::connect(self.engine, &self.url).await.is_ok() => {
                Some(Progress {
                    phase: "none".into(),
                    ..Progress::default()
                })
            }
            None => None,
        }
    }

    /// Whether ledger id `id` is on the target.
    pub async fn has(&mut self, id: u64) -> bool {
        let sql = format!(
            "SELECT count(*) FROM {}ledger_log WHERE txid = {id}",
            self.prefix
        );
        self.rows(&sql)
            .await
            .and_then(|r| r.into_iter().next())
            .and_then(|r| r[0].clone())
            .is_some_and(|c| c != "0")
    }

    /// Whether Ferry holds a target transaction that has written (MariaDB: many
    /// rows; PostgreSQL cannot tell the size, so any) — called right after a big
    /// source transaction committed, before its ids are on the target.
    pub async fn big_apply_in_flight(&mut self, db: &str) -> bool {
        let sql = match self.engine {
            Engine::Pg => "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
                 AND application_name = 'ferry' AND backend_xid IS NOT NULL"
                .to_string(),
            Engine::My => format!(
                "SELECT count(*) FROM information_schema.innodb_trx t JOIN information_schema.processlist p \
                 ON p.id = t.trx_mysql_thread_id WHERE p.db = '{db}' AND t.trx_rows_modified > 500"
            ),
        };
        self.rows(&sql)
            .await
            .and_then(|r| r.into_iter().next())
            .and_then(|r| r[0].clone())
            .is_some_and(|c| c != "0")
    }
}
