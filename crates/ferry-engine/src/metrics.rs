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
    /// Changes to keyed tables that found no row on the target.
    pub unmatched: AtomicU64,
    /// Bytes moved: the full copy's tables (source size) and the applied changes.
    pub bytes: AtomicU64,
    position: Mutex<String>,
}

impl Metrics {
    /// Metrics of task `task`.
    pub fn new(task: &str) -> Metrics {
        Metrics {
            task: task.to_string(),
            ..Metrics::default()
        }
    }

    /// Records the last applied position.
    pub fn set_position(&self, p: &str) {
        *self.position.lock().unwrap_or_else(|p| p.into_inner()) = p.to_string();
    }

    /// The applied position, as text.
    pub fn position(&self) -> String {
        self.position
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Prometheus exposition text.
    pub fn render(&self) -> String {
        render_all(std::slice::from_ref(&self))
    }

    fn label(&self) -> String {
        self.task.replace(['"', '\\', '\n'], "")
    }
}

/// Prometheus exposition text for several tasks: each metric family once, one
/// sample per task (the format refuses repeated HELP/TYPE lines).
pub fn render_all(tasks: &[&Metrics]) -> String {
    let mut out = String::new();
    let mut family = |name: &str, kind: &str, help: &str, sample: &dyn Fn(&Metrics) -> String| {
        out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n"));
        for m in tasks {
            out.push_str(&sample(m));
        }
    };
    family(
        "ferry_applied_rows_total",
        "counter",
        "Row changes applied to the target.",
        &|m| {
            format!(
                "ferry_applied_rows_total{{task=\"{}\"}} {}\n",
                m.label(),
                m.rows.load(Ordering::Relaxed)
            )
        },
    );
    family(
        "ferry_applied_transactions_total",
        "counter",
        "Source transactions applied to the target.",
        &|m| {
            format!(
                "ferry_applied_transactions_total{{task=\"{}\"}} {}\n",
                m.label(),
                m.txns.load(Ordering::Relaxed)
            )
        },
    );
    family(
        "ferry_lag_seconds",
        "gauge",
        "Age of the last applied source commit when it was applied (0 when caught up).",
        &|m| {
            format!(
                "ferry_lag_seconds{{task=\"{}\"}} {:.3}\n",
                m.label(),
                m.lag_us.load(Ordering::Relaxed) as f64 / 1e6
            )
        },
    );
    family(
        "ferry_unmatched_changes_total",
        "counter",
        "Deletes and key-changing updates of keyed tables that found no row on the target.",
        &|m| {
            format!(
                "ferry_unmatched_changes_total{{task=\"{}\"}} {}\n",
                m.label(),
                m.unmatched.load(Ordering::Relaxed)
            )
        },
    );
    family(
        "ferry_recoveries_total",
        "counter",
        "Recoveries from transient faults.",
        &|m| {
            format!(
                "ferry_recoveries_total{{task=\"{}\"}} {}\n",
                m.label(),
                m.recoveries.load(Ordering::Relaxed)
            )
        },
    );
    family("ferry_task_info", "gauge", "Task applied position.", &|m| {
        format!(
            "ferry_task_info{{task=\"{}\",position=\"{}\"}} 1\n",
            m.label(),
            m.position().replace('"', "")
        )
    });
    out
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
