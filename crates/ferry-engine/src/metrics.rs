//! Live counters of a running task, served in the Prometheus text format.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Mutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// What a running task exposes.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Task name (label).
    pub task: String,
    /// Row changes applied.
    pub rows: AtomicU64,
    /// Source transactions applied.
    pub txns: AtomicU64,
    /// Seconds behind the source, in microseconds (0 when idle and caught up).
    pub lag_us: AtomicI64,
    /// Recoveries from transient faults.
    pub recoveries: AtomicU64,
    state: Mutex<String>,
    position: Mutex<String>,
    reason: Mutex<String>,
    seen: Mutex<Vec<String>>,
}

impl Metrics {
    /// Metrics of task `task`.
    pub fn new(task: &str) -> Metrics {
        Metrics {
            task: task.to_string(),
            ..Metrics::default()
        }
    }

    /// Records the task state (`full`, `incremental`, `recovering`, …).
    pub fn set_state(&self, s: &str) {
        *self.state.lock().unwrap_or_else(|p| p.into_inner()) = s.to_string();
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if !seen.iter().any(|x| x == s) {
            seen.push(s.to_string());
        }
    }

    /// Whether the task was in state `s` at some point of this run (a watcher that
    /// samples `state()` can miss a short phase).
    pub fn saw(&self, s: &str) -> bool {
        self.seen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .any(|x| x == s)
    }

    /// Records the last applied position.
    pub fn set_position(&self, p: &str) {
        *self.position.lock().unwrap_or_else(|p| p.into_inner()) = p.to_string();
    }

    /// Why the task is in its state (the fault being recovered from).
    pub fn set_reason(&self, r: &str) {
        *self.reason.lock().unwrap_or_else(|p| p.into_inner()) = r.to_string();
    }

    /// The last reason set.
    pub fn reason(&self) -> String {
        self.reason
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The applied position, as text.
    pub fn position(&self) -> String {
        self.position
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Current state.
    pub fn state(&self) -> String {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Prometheus exposition text.
    pub fn render(&self) -> String {
        let task = self.task.replace('"', "");
        let state = self.state();
        let position = self
            .position
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .replace('"', "");
        format!(
            "# HELP ferry_applied_rows_total Row changes applied to the target.\n\
             # TYPE ferry_applied_rows_total counter\n\
             ferry_applied_rows_total{{task=\"{task}\"}} {}\n\
             # HELP ferry_applied_transactions_total Source transactions applied to the target.\n\
             # TYPE ferry_applied_transactions_total counter\n\
             ferry_applied_transactions_total{{task=\"{task}\"}} {}\n\
             # HELP ferry_lag_seconds Age of the last applied source commit when it was applied (0 when caught up).\n\
             # TYPE ferry_lag_seconds gauge\n\
             ferry_lag_seconds{{task=\"{task}\"}} {:.3}\n\
             # HELP ferry_recoveries_total Recoveries from transient faults.\n\
             # TYPE ferry_recoveries_total counter\n\
             ferry_recoveries_total{{task=\"{task}\"}} {}\n\
             # HELP ferry_task_info Task state and applied position.\n\
             # TYPE ferry_task_info gauge\n\
             ferry_task_info{{task=\"{task}\",state=\"{state}\",position=\"{position}\"}} 1\n",
            self.rows.load(Ordering::Relaxed),
            self.txns.load(Ordering::Relaxed),
            self.lag_us.load(Ordering::Relaxed) as f64 / 1e6,
            self.recoveries.load(Ordering::Relaxed),
        )
    }
}

/// Serves `GET /metrics` (any path) on `addr` until the process ends.
pub async fn serve(addr: &str, metrics: std::sync::Arc<Metrics>) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                continue;
            };
            let m = metrics.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 2048];
                let _ = sock.read(&mut buf).await;
                let body = m.render();
                let resp = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = sock.write_all(resp.as_bytes()).await;
            });
        }
    });
    Ok(())
}
