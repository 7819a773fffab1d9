//! Live counters of a running task, exposed through `prometheus-client` in the
//! Prometheus text format (or OpenMetrics, when the scraper asks for it).
//!
//! The atomics stay the source of truth (the engine and the service read and bump
//! them directly); a [`Collector`] turns them into metric families at scrape time.
//! Lag and apply latency are histograms, so p50/p99 come from `/metrics`.

use crate::phase::Phases;
use crate::stream::protect::SourceRetention;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// What a running task exposes.
#[derive(Debug)]
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
    /// The last sample of what the source keeps of its log for the task.
    retention: Mutex<Option<SourceRetention>>,
    /// The engine's phase, exported as the `state` label of `ferry_task_info` (the
    /// metrics only read it; the engine reports it through [`Phases`]).
    phases: Option<Arc<Phases>>,
    /// Seconds behind the source at each committed group.
    commit_lag: Histogram,
    /// Seconds to commit one group on the target.
    apply: Histogram,
}

/// Lag buckets: 1 ms to about 35 minutes, doubling.
fn lag_buckets() -> impl Iterator<Item = f64> {
    exponential_buckets(0.001, 2.0, 22)
}

/// Apply-latency buckets: 100 µs to about 52 seconds, doubling.
fn apply_buckets() -> impl Iterator<Item = f64> {
    exponential_buckets(0.0001, 2.0, 20)
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics {
            task: String::new(),
            rows: AtomicU64::new(0),
            txns: AtomicU64::new(0),
            lag_us: AtomicI64::new(0),
            recoveries: AtomicU64::new(0),
            unmatched: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            position: Mutex::new(String::new()),
            retention: Mutex::new(None),
            phases: None,
            commit_lag: Histogram::new(lag_buckets()),
            apply: Histogram::new(apply_buckets()),
        }
    }
}

impl Metrics {
    /// Metrics of task `task`.
    pub fn new(task: &str) -> Metrics {
        Metrics {
            task: task.to_string(),
            ..Metrics::default()
        }
    }

    /// Metrics of task `task` whose engine reports its phase through `phases`.
    pub fn watching(task: &str, phases: Arc<Phases>) -> Metrics {
        Metrics {
            phases: Some(phases),
            ..Metrics::new(task)
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

    /// Records the last sample of the source's retention for the task.
    pub fn set_retention(&self, r: Option<SourceRetention>) {
        *self.retention.lock().unwrap_or_else(|p| p.into_inner()) = r;
    }

    /// The last sample of the source's retention for the task (`None`: none yet,
    /// or the source keeps nothing Ferry can see).
    pub fn retention(&self) -> Option<SourceRetention> {
        self.retention
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Records one committed group: how far behind the source its last commit was
    /// (`None` when the source gave no commit time) and how long the target took
    /// to commit it, both in seconds. Feeds the lag and apply-latency histograms.
    pub fn observe_commit(&self, lag_seconds: Option<f64>, apply_seconds: f64) {
        if let Some(lag) = lag_seconds {
            self.commit_lag.observe(lag.max(0.0));
        }
        self.apply.observe(apply_seconds.max(0.0));
    }

    /// Prometheus exposition text (format 0.0.4).
    pub fn render(&self) -> String {
        render_all(std::slice::from_ref(&self))
    }

    /// The values of this task at this instant.
    fn sample(&self) -> Sample {
        Sample {
            task: self.task.clone(),
            rows: self.rows.load(Ordering::Relaxed),
            txns: self.txns.load(Ordering::Relaxed),
            lag_seconds: self.lag_us.load(Ordering::Relaxed) as f64 / 1e6,
            unmatched: self.unmatched.load(Ordering::Relaxed),
            recoveries: self.recoveries.load(Ordering::Relaxed),
            position: self.position(),
            retained_bytes: self.retention().and_then(|r| r.retained_bytes),
            state: self
                .phases
                .as_ref()
                .map(|p| p.current().name())
                .unwrap_or_default(),
            commit_lag: self.commit_lag.clone(),
            apply: self.apply.clone(),
        }
    }
}

/// One task's values read at scrape time (the histograms are shared handles).
#[derive(Debug)]
struct Sample {
    task: String,
    rows: u64,
    txns: u64,
    lag_seconds: f64,
    unmatched: u64,
    recoveries: u64,
    position: String,
    retained_bytes: Option<u64>,
    state: &'static str,
    commit_lag: Histogram,
    apply: Histogram,
}

impl Sample {
    fn label(&self) -> [(&'static str, &str); 1] {
        [("task", self.task.as_str())]
    }
}

/// The metric families of several running tasks, for a [`Registry`]: each family
/// once, one sample (or one histogram) per task.
#[derive(Debug)]
pub struct Tasks(Vec<Sample>);

/// A collector of the tasks' current values, to register in a [`Registry`] beside
/// other metrics (the service adds its task counts).
pub fn collector(tasks: &[&Metrics]) -> Tasks {
    Tasks(tasks.iter().map(|m| m.sample()).collect())
}

impl Tasks {
    fn counter(
        &self,
        encoder: &mut DescriptorEncoder,
        name: &str,
        help: &str,
        value: impl Fn(&Sample) -> u64,
    ) -> std::fmt::Result {
        let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
        for s in &self.0 {
            ConstCounter::new(value(s)).encode(family.encode_family(&s.label())?)?;
        }
        Ok(())
    }

    fn histogram(
        &self,
        encoder: &mut DescriptorEncoder,
        name: &str,
        help: &str,
        value: impl Fn(&Sample) -> &Histogram,
    ) -> std::fmt::Result {
        let mut family = encoder.encode_descriptor(name, help, None, MetricType::Histogram)?;
        for s in &self.0 {
            value(s).encode(family.encode_family(&s.label())?)?;
        }
        Ok(())
    }
}

impl Collector for Tasks {
    fn encode(&self, mut encoder: DescriptorEncoder) -> std::fmt::Result {
        // counters are named without `_total`: the encoder adds it to the samples
        self.counter(
            &mut encoder,
            "ferry_applied_rows",
            "Row changes applied to the target.",
            |s| s.rows,
        )?;
        self.counter(
            &mut encoder,
            "ferry_applied_transactions",
            "Source transactions applied to the target.",
            |s| s.txns,
        )?;
        let mut lag = encoder.encode_descriptor(
            "ferry_lag_seconds",
            "Age of the last applied source commit when it was applied (0 when caught up).",
            None,
            MetricType::Gauge,
        )?;
        for s in &self.0 {
            ConstGauge::new(s.lag_seconds).encode(lag.encode_family(&s.label())?)?;
        }
        self.counter(
            &mut encoder,
            "ferry_unmatched_changes",
            "Deletes and key-changing updates of keyed tables that found no row on the target.",
            |s| s.unmatched,
        )?;
        self.counter(
            &mut encoder,
            "ferry_recoveries",
            "Recoveries from transient faults.",
            |s| s.recoveries,
        )?;
        let mut retained = encoder.encode_descriptor(
            "ferry_source_retained_bytes",
            "Bytes of log the source keeps for the task (PostgreSQL: its slot's WAL from restart_lsn; \
             MySQL/MariaDB: the binlogs from the one it resumes in), as last sampled.",
            None,
            MetricType::Gauge,
        )?;
        for s in &self.0 {
            if let Some(b) = s.retained_bytes {
                ConstGauge::new(b as i64).encode(retained.encode_family(&s.label())?)?;
            }
        }
        // an info family: `ferry_task_info{task,state,position} 1`
        let mut info = encoder.encode_descriptor(
            "ferry_task",
            "Task state (the engine's phase) and applied position.",
            None,
            MetricType::Info,
        )?;
        for s in &self.0 {
            info.encode_info(&[
                ("task", s.task.as_str()),
                ("state", s.state),
                ("position", &s.position),
            ])?;
        }
        self.histogram(
            &mut encoder,
            "ferry_commit_lag_seconds",
            "Seconds behind the source at each committed group (age of its last source commit).",
            |s| &s.commit_lag,
        )?;
        self.histogram(
            &mut encoder,
            "ferry_apply_seconds",
            "Seconds the target took to commit one group of source transactions.",
            |s| &s.apply,
        )
    }
}

/// Exposition text for several tasks: each metric family once, one sample per
/// task (the format refuses repeated HELP/TYPE lines). Prometheus text 0.0.4.
pub fn render_all(tasks: &[&Metrics]) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(collector(tasks)));
    Format::Prometheus.encode(&registry)
}

/// The exposition formats a scraper may ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// The Prometheus text format 0.0.4 (the default).
    Prometheus,
    /// OpenMetrics 1.0 text, when the `Accept` header asks for it (Prometheus does).
    OpenMetrics,
}

impl Format {
    /// The format an `Accept` header asks for: OpenMetrics when one of its media
    /// ranges names `application/openmetrics-text` with a weight above 0,
    /// otherwise the Prometheus text format.
    pub fn negotiate(accept: Option<&str>) -> Format {
        let wants_open_metrics = accept.is_some_and(|a| {
            a.split(',').any(|range| {
                let mut parts = range.split(';').map(str::trim);
                let media = parts.next().unwrap_or_default();
                let refused = parts.any(|p| {
                    p.strip_prefix("q=")
                        .and_then(|q| q.trim().parse::<f64>().ok())
                        .is_some_and(|q| q <= 0.0)
                });
                media.eq_ignore_ascii_case("application/openmetrics-text") && !refused
            })
        });
        if wants_open_metrics {
            Format::OpenMetrics
        } else {
            Format::Prometheus
        }
    }

    /// The `Content-Type` of an answer in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Prometheus => prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }

    /// `registry` in this format.
    pub fn encode(self, registry: &Registry) -> String {
        let mut out = String::new();
        let done = match self {
            Format::Prometheus => {
                prometheus_client::encoding::prometheus_text::encode(&mut out, registry)
            }
            Format::OpenMetrics => prometheus_client::encoding::text::encode(&mut out, registry),
        };
        // writing to a String fails only if a metric's own encoding does
        done.expect("metrics encode into a String");
        out
    }
}

/// The `Accept` header of a raw HTTP request, if any.
fn accept_header(request: &str) -> Option<&str> {
    request
        .lines()
        .skip(1)
        .take_while(|l| !l.is_empty())
        .filter_map(|l| l.split_once(':'))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("accept"))
        .map(|(_, v)| v.trim())
}

/// The most a scrape request may hold before its headers end.
const MAX_REQUEST: usize = 16 * 1024;
/// How long a scraper may take to send its request.
const REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Reads an HTTP request's head (up to the blank line that ends the headers),
/// whatever the number of reads it arrives in; `None` when the client sends too
/// much, too slowly, or goes away.
async fn read_head(sock: &mut tokio::net::TcpStream) -> Option<String> {
    let mut head = Vec::new();
    let mut buf = [0u8; 2048];
    let read = async {
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = sock.read(&mut buf).await.ok()?;
            if n == 0 || head.len() + n > MAX_REQUEST {
                return None;
            }
            head.extend_from_slice(&buf[..n]);
        }
        Some(())
    };
    tokio::time::timeout(REQUEST_TIMEOUT, read).await.ok()??;
    Some(String::from_utf8_lossy(&head).into_owned())
}

/// The answer to one scrape request: metrics for `GET /metrics` (the headers only
/// for `HEAD`), 404 for other paths, 405 for other methods.
fn answer(request: &str, m: &Metrics) -> String {
    let mut first = request
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace();
    let (method, path) = (
        first.next().unwrap_or_default(),
        first.next().unwrap_or_default(),
    );
    let path = path.split('?').next().unwrap_or_default();
    let plain = |status: &str, extra: &str| {
        let body = format!("{status}\n");
        format!(
            "HTTP/1.1 {status}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\n{extra}Connection: close\r\n\r\n{body}",
            body.len()
        )
    };
    if path != "/metrics" {
        return plain("404 Not Found", "");
    }
    if method != "GET" && method != "HEAD" {
        return plain("405 Method Not Allowed", "Allow: GET, HEAD\r\n");
    }
    let format = Format::negotiate(accept_header(request));
    let mut registry = Registry::default();
    registry.register_collector(Box::new(collector(&[m])));
    let body = format.encode(&registry);
    format!(
        "HTTP/1.1 200 OK\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
        format.content_type(),
        body.len(),
        if method == "HEAD" { "" } else { body.as_str() }
    )
}

/// Serves `GET /metrics` on `addr` until the process ends.
pub async fn serve(addr: &str, metrics: std::sync::Arc<Metrics>) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                continue;
            };
            let m = metrics.clone();
            tokio::spawn(async move {
                if let Some(request) = read_head(&mut sock).await {
                    let _ = sock.write_all(answer(&request, &m).as_bytes()).await;
                }
            });
        }
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn running(name: &str) -> Metrics {
        let phases = Arc::new(Phases::new());
        phases.set(crate::phase::Phase::Recovering {
            reason: "reset".into(),
        });
        let m = Metrics::watching(name, phases);
        m.rows.fetch_add(12, Ordering::Relaxed);
        m.txns.fetch_add(3, Ordering::Relaxed);
        m.lag_us.store(1_500_000, Ordering::Relaxed);
        m.unmatched.fetch_add(1, Ordering::Relaxed);
        m.recoveries.fetch_add(2, Ordering::Relaxed);
        m.set_position("0/16B3748");
        m.set_retention(Some(SourceRetention {
            retained_bytes: Some(12_345),
            ..SourceRetention::default()
        }));
        m
    }

    /// The names, labels and values are what dashboards and alerts already use;
    /// each family is described once however many tasks run.
    #[test]
    fn the_prometheus_text_keeps_the_families_and_describes_each_once() {
        let (a, b) = (running("a"), running("b"));
        a.observe_commit(Some(0.25), 0.004);
        a.observe_commit(None, 0.002);
        let text = render_all(&[&a, &b]);
        for line in [
            "# HELP ferry_applied_rows_total Row changes applied to the target.",
            "# TYPE ferry_applied_rows_total counter",
            "ferry_applied_rows_total{task=\"a\"} 12",
            "ferry_applied_rows_total{task=\"b\"} 12",
            "ferry_applied_transactions_total{task=\"a\"} 3",
            "# TYPE ferry_lag_seconds gauge",
            "ferry_lag_seconds{task=\"a\"} 1.5",
            "ferry_unmatched_changes_total{task=\"a\"} 1",
            "ferry_recoveries_total{task=\"b\"} 2",
            "# TYPE ferry_task_info gauge",
            "ferry_task_info{task=\"a\",state=\"recovering\",position=\"0/16B3748\"} 1",
            "# TYPE ferry_commit_lag_seconds histogram",
            "ferry_commit_lag_seconds_count{task=\"a\"} 1",
            "ferry_commit_lag_seconds_bucket{task=\"a\",le=\"+Inf\"} 1",
            "ferry_commit_lag_seconds_count{task=\"b\"} 0",
            "ferry_apply_seconds_count{task=\"a\"} 2",
            "ferry_apply_seconds_sum{task=\"a\"} 0.006",
            "# TYPE ferry_source_retained_bytes gauge",
            "ferry_source_retained_bytes{task=\"a\"} 12345",
        ] {
            assert!(text.lines().any(|l| l == line), "{line:?} in\n{text}");
        }
        for family in [
            "ferry_lag_seconds ",
            "ferry_applied_rows_total ",
            "ferry_task_info ",
        ] {
            assert_eq!(text.matches(&format!("# HELP {family}")).count(), 1);
        }
        assert!(!text.contains("# EOF"), "{text}");
    }

    /// A scraper that asks for OpenMetrics gets it (counter families named without
    /// `_total`, the samples with it, an EOF line); anything else gets 0.0.4.
    #[test]
    fn openmetrics_is_served_when_asked_for() {
        let accept = "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5";
        assert_eq!(Format::negotiate(Some(accept)), Format::OpenMetrics);
        assert_eq!(Format::negotiate(Some("*/*")), Format::Prometheus);
        assert_eq!(Format::negotiate(None), Format::Prometheus);
        let req = format!("GET /metrics HTTP/1.1\r\nHost: x\r\nACCEPT: {accept}\r\n\r\n");
        assert_eq!(accept_header(&req), Some(accept));
        let m = running("a");
        let mut registry = Registry::default();
        registry.register_collector(Box::new(collector(&[&m])));
        let text = Format::OpenMetrics.encode(&registry);
        assert!(
            text.contains("# TYPE ferry_applied_rows counter\n"),
            "{text}"
        );
        assert!(
            text.contains("ferry_applied_rows_total{task=\"a\"} 12\n"),
            "{text}"
        );
        assert!(text.contains("# TYPE ferry_task info\n"), "{text}");
        assert!(text.contains(
            "ferry_task_info{task=\"a\",state=\"recovering\",position=\"0/16B3748\"} 1\n"
        ));
        assert!(text.ends_with("# EOF\n"), "{text}");
    }

    /// `--metrics` answers a scrape with the format's Content-Type: 0.0.4 by
    /// default, OpenMetrics when the Accept header asks for it.
    #[tokio::test]
    async fn the_endpoint_answers_with_the_negotiated_content_type() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr = format!("127.0.0.1:{port}");
        let m = std::sync::Arc::new(running("cli"));
        m.observe_commit(Some(2.0), 0.01);
        serve(&addr, m).await.unwrap();
        let get = |accept: &'static str| {
            let addr = addr.clone();
            async move {
                let mut sock = tokio::net::TcpStream::connect(&addr).await.unwrap();
                let req = format!("GET /metrics HTTP/1.1\r\nHost: x\r\n{accept}\r\n");
                sock.write_all(req.as_bytes()).await.unwrap();
                let mut answer = String::new();
                sock.read_to_string(&mut answer).await.unwrap();
                answer
            }
        };
        let plain = get("").await;
        assert!(plain.starts_with("HTTP/1.1 200 OK\r\n"), "{plain}");
        assert!(
            plain.contains("\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n"),
            "{plain}"
        );
        assert!(plain.contains("\nferry_applied_rows_total{task=\"cli\"} 12\n"));
        assert!(plain.contains("\nferry_commit_lag_seconds_count{task=\"cli\"} 1\n"));
        let open = get("Accept: application/openmetrics-text;version=1.0.0\r\n").await;
        assert!(
            open.contains("\r\nContent-Type: application/openmetrics-text; version=1.0.0"),
            "{open}"
        );
        assert!(open.ends_with("# EOF\n"), "{open}");
    }

    /// Task names are label values: quotes and backslashes are escaped, not lost.
    #[test]
    fn label_values_are_escaped() {
        let text = Metrics::new("a\"b\\c").render();
        assert!(
            text.contains("ferry_applied_rows_total{task=\"a\\\"b\\\\c\"} 0"),
            "{text}"
        );
    }

    /// A weight of 0 refuses OpenMetrics; other paths and methods are refused; a
    /// HEAD request gets the headers alone.
    #[test]
    fn scrapes_are_answered_by_path_method_and_weight() {
        let refused = "text/plain;version=0.0.4, application/openmetrics-text;q=0";
        assert_eq!(Format::negotiate(Some(refused)), Format::Prometheus);
        let weighted = "application/openmetrics-text; version=1.0.0; q=0.5";
        assert_eq!(Format::negotiate(Some(weighted)), Format::OpenMetrics);
        let m = running("a");
        let get = answer("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", &m);
        assert!(get.starts_with("HTTP/1.1 200 OK\r\n") && get.contains("ferry_applied_rows_total"));
        let head = answer("HEAD /metrics?x=1 HTTP/1.1\r\n\r\n", &m);
        assert!(
            head.starts_with("HTTP/1.1 200 OK\r\n") && head.ends_with("\r\n\r\n"),
            "{head}"
        );
        let elsewhere = answer("GET /nonexistent HTTP/1.1\r\n\r\n", &m);
        assert!(
            elsewhere.starts_with("HTTP/1.1 404 Not Found\r\n"),
            "{elsewhere}"
        );
        let post = answer("POST /metrics HTTP/1.1\r\n\r\n", &m);
        assert!(
            post.starts_with("HTTP/1.1 405 Method Not Allowed\r\n")
                && post.contains("Allow: GET, HEAD")
        );
    }

    /// A request whose headers arrive in several writes (and past 2 KB) is read
    /// whole before it is answered: its Accept header counts.
    #[tokio::test]
    async fn a_request_in_pieces_is_read_whole() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr = format!("127.0.0.1:{port}");
        serve(&addr, std::sync::Arc::new(running("a")))
            .await
            .unwrap();
        let mut sock = tokio::net::TcpStream::connect(&addr).await.unwrap();
        let pad = "x".repeat(3000);
        sock.write_all(format!("GET /metrics HTTP/1.1\r\nX-Pad: {pad}\r\n").as_bytes())
            .await
            .unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        sock.write_all(b"Accept: application/openmetrics-text\r\n\r\n")
            .await
            .unwrap();
        let mut answer = String::new();
        sock.read_to_string(&mut answer).await.unwrap();
        assert!(
            answer.contains("Content-Type: application/openmetrics-text"),
            "{answer}"
        );
        assert!(answer.ends_with("# EOF\n"));
    }
}
