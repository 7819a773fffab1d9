//! Progress display: per-table bars with rows/s and ETA on a terminal, periodic plain
//! log lines otherwise, and the final summary table.

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Progress of one table.
pub struct TableProgress {
    /// Display name (target table).
    pub name: String,
    /// Rows expected.
    pub total: AtomicU64,
    /// Rows copied.
    pub done: AtomicU64,
    bar: Option<ProgressBar>,
    started: std::sync::Mutex<Option<Instant>>,
    finished: std::sync::Mutex<Option<Instant>>,
}

impl TableProgress {
    /// Rows streamed so far in chunks not yet committed (reported as they flow).
    pub fn streaming(&self, rows: u64) {
        self.done.fetch_add(rows, Ordering::Relaxed);
        if let Some(b) = &self.bar {
            b.inc(rows);
        }
    }

    /// Takes back rows of a chunk that was rolled back.
    pub fn rollback(&self, rows: u64) {
        self.done.fetch_sub(
            rows.min(self.done.load(Ordering::Relaxed)),
            Ordering::Relaxed,
        );
        if let Some(b) = &self.bar {
            b.set_position(self.done.load(Ordering::Relaxed));
        }
    }

    /// Adds copied rows.
    pub fn add(&self, rows: u64) {
        self.started
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_or_insert_with(Instant::now);
        self.done.fetch_add(rows, Ordering::Relaxed);
        if let Some(b) = &self.bar {
            b.inc(rows);
        }
    }

    /// Marks the table started (first chunk picked up).
    pub fn start(&self) {
        self.started
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_or_insert_with(Instant::now);
    }

    /// Marks the table finished.
    pub fn finish(&self) {
        *self.finished.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
        if let Some(b) = &self.bar {
            b.finish();
        }
    }

    /// Seconds spent on this table.
    pub fn seconds(&self) -> f64 {
        let s = *self.started.lock().unwrap_or_else(|p| p.into_inner());
        let f = *self.finished.lock().unwrap_or_else(|p| p.into_inner());
        match (s, f) {
            (Some(s), Some(f)) => (f - s).as_secs_f64(),
            (Some(s), None) => s.elapsed().as_secs_f64(),
            _ => 0.0,
        }
    }
}

/// All tables' progress plus the display.
pub struct Progress {
    /// Per table, in plan order.
    pub tables: Vec<Arc<TableProgress>>,
    multi: Option<MultiProgress>,
    started: Instant,
}

impl Progress {
    /// Bars when stderr is a terminal and `quiet` is false; log lines otherwise.
    pub fn new(quiet: bool) -> Progress {
        let multi = (!quiet && std::io::stderr().is_terminal())
            .then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(4)));
        Progress {
            tables: vec![],
            multi,
            started: Instant::now(),
        }
    }

    /// Registers a table with its expected row count.
    pub fn table(&mut self, name: &str, total: u64, already: u64) -> Arc<TableProgress> {
        let bar = self.multi.as_ref().map(|m| {
            let b = m.add(ProgressBar::new(total));
            b.set_style(
                ProgressStyle::with_template(
                    "{prefix:<32!} [{bar:30}] {pos:>10}/{len:<10} {rate:>12} eta {eta}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .with_key(
                    "rate",
                    |s: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                        let _ = write!(w, "{:.0} rows/s", s.per_sec());
                    },
                )
                .progress_chars("=> "),
            );
            b.set_prefix(name.to_string());
            b.set_position(already);
            b
        });
        let t = Arc::new(TableProgress {
            name: name.to_string(),
            total: AtomicU64::new(total),
            done: AtomicU64::new(already),
            bar,
            started: Default::default(),
            finished: Default::default(),
        });
        self.tables.push(t.clone());
        t
    }

    /// Prints a line above the bars (or to stderr).
    pub fn println(&self, line: &str) {
        match &self.multi {
            Some(m) => {
                let _ = m.println(line);
            }
            None => eprintln!("{line}"),
        }
    }

    /// Whether bars are drawn (else the caller runs [`Progress::log_loop`]).
    pub fn has_bars(&self) -> bool {
        self.multi.is_some()
    }

    /// Logs overall progress every `every` until the returned handle is aborted.
    pub fn log_loop(self: &Arc<Self>, every: Duration) -> tokio::task::JoinHandle<()> {
        let me = self.clone();
        tokio::spawn(async move {
            let mut last = 0u64;
            loop {
                tokio::time::sleep(every).await;
                let done: u64 = me
                    .tables
                    .iter()
                    .map(|t| t.done.load(Ordering::Relaxed))
                    .sum();
                let total: u64 = me
                    .tables
                    .iter()
                    .map(|t| t.total.load(Ordering::Relaxed))
                    .sum();
                let finished = me
                    .tables
                    .iter()
                    .filter(|t| t.finished.lock().map(|f| f.is_some()).unwrap_or(false))
                    .count();
                let rate = (done - last.min(done)) as f64 / every.as_secs_f64();
                last = done;
                tracing::info!(
                    "copied {done}/{total} rows ({:.0} rows/s), {finished}/{} tables done, {:.0}s elapsed",
                    rate,
                    me.tables.len(),
                    me.started.elapsed().as_secs_f64()
                );
            }
        })
    }

    /// Seconds since the run started.
    pub fn elapsed(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }
}
