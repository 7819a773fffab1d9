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
    meter: Arc<Meter>,
}

/// When a table's copy started and ended in this run, how many rows it had before,
/// and a smoothed recent rate: what the bar shows and the summary prints, so both
/// say the same thing.
#[derive(Default)]
struct Meter {
    /// Rows done before this run (a resumed copy).
    base: u64,
    /// Rows done (a copy of [`TableProgress::done`] the bar's closures can read).
    done: AtomicU64,
    total: AtomicU64,
    started: std::sync::Mutex<Option<Instant>>,
    finished: std::sync::Mutex<Option<Instant>>,
    smoothed: std::sync::Mutex<Smoothed>,
}

/// An exponentially weighted moving average of the rate, sampled at most once a
/// second, so the ETA moves steadily instead of jumping with every chunk commit.
#[derive(Default)]
struct Smoothed {
    at: Option<Instant>,
    rows: u64,
    rate: f64,
}

/// Weight of the newest one-second sample (about a 3-second memory).
const EWMA_ALPHA: f64 = 0.3;

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Meter {
    fn seconds(&self) -> f64 {
        match (*lock(&self.started), *lock(&self.finished)) {
            (Some(s), Some(f)) => (f - s).as_secs_f64(),
            (Some(s), None) => s.elapsed().as_secs_f64(),
            _ => 0.0,
        }
    }

    /// Rows copied in this run per second spent on the table in this run (0 before
    /// it started).
    fn rate(&self) -> f64 {
        let secs = self.seconds();
        if secs <= 0.0 {
            return 0.0;
        }
        self.done.load(Ordering::Relaxed).saturating_sub(self.base) as f64 / secs
    }

    /// The smoothed recent rate; the average since the start until the first
    /// one-second sample exists.
    fn recent_rate(&self) -> f64 {
        let Some(started) = *lock(&self.started) else {
            return 0.0;
        };
        let now = Instant::now();
        let done = self.done.load(Ordering::Relaxed);
        let mut sm = lock(&self.smoothed);
        let (at, rows) = match sm.at {
            Some(at) => (at, sm.rows),
            None => (started, self.base),
        };
        if now - at >= Duration::from_secs(1) {
            let sample = done.saturating_sub(rows) as f64 / (now - at).as_secs_f64();
            sm.rate = if sm.at.is_some() {
                EWMA_ALPHA * sample + (1.0 - EWMA_ALPHA) * sm.rate
            } else {
                sample
            };
            sm.at = Some(now);
            sm.rows = done;
        }
        if sm.at.is_some() {
            sm.rate
        } else {
            self.rate()
        }
    }

    /// `waiting`, the rate, or the final rate.
    fn rate_text(&self) -> String {
        if lock(&self.started).is_none() {
            return "waiting".into();
        }
        let rate = if lock(&self.finished).is_some() {
            self.rate()
        } else {
            self.recent_rate()
        };
        format!("{rate:.0} rows/s")
    }

    /// `eta …` from the smoothed rate; `done` when finished; empty while unknown.
    fn eta_text(&self) -> String {
        if lock(&self.finished).is_some() {
            return "done".into();
        }
        if lock(&self.started).is_none() {
            return String::new();
        }
        let rate = self.recent_rate();
        let left = self
            .total
            .load(Ordering::Relaxed)
            .saturating_sub(self.done.load(Ordering::Relaxed));
        if rate < 1.0 {
            return String::new();
        }
        let secs = (left as f64 / rate).round() as u64;
        match secs {
            0..=59 => format!("eta {secs}s"),
            60..=3599 => format!("eta {}m{:02}s", secs / 60, secs % 60),
            _ => format!("eta {}h{:02}m", secs / 3600, secs % 3600 / 60),
        }
    }
}

impl TableProgress {
    fn set_done(&self, done: u64) {
        self.meter.done.store(done, Ordering::Relaxed);
        if let Some(b) = &self.bar {
            b.set_position(done);
        }
    }

    /// Rows streamed so far in chunks not yet committed (reported as they flow).
    pub fn streaming(&self, rows: u64) {
        let done = self.done.fetch_add(rows, Ordering::Relaxed) + rows;
        self.set_done(done);
    }

    /// Takes back rows of a chunk that was rolled back.
    pub fn rollback(&self, rows: u64) {
        self.done.fetch_sub(
            rows.min(self.done.load(Ordering::Relaxed)),
            Ordering::Relaxed,
        );
        self.set_done(self.done.load(Ordering::Relaxed));
    }

    /// Adds copied rows.
    pub fn add(&self, rows: u64) {
        self.start();
        let done = self.done.fetch_add(rows, Ordering::Relaxed) + rows;
        self.set_done(done);
    }

    /// Marks the table started (first chunk picked up).
    pub fn start(&self) {
        lock(&self.meter.started).get_or_insert_with(Instant::now);
    }

    /// Marks the table finished.
    pub fn finish(&self) {
        *lock(&self.meter.finished) = Some(Instant::now());
        if let Some(b) = &self.bar {
            b.finish();
        }
    }

    /// Seconds spent on this table in this run.
    pub fn seconds(&self) -> f64 {
        self.meter.seconds()
    }

    /// Rows copied in this run per second spent on the table in this run: the
    /// figure both the bar (once finished) and the summary show.
    pub fn rate(&self) -> f64 {
        self.meter.rate()
    }

    /// What the bar shows after the counts: `waiting`, or the rate and ETA (the
    /// bar's template reads the same two texts).
    #[cfg(test)]
    fn rate_and_eta(&self) -> (String, String) {
        (self.meter.rate_text(), self.meter.eta_text())
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
        let meter = Arc::new(Meter {
            base: already,
            done: AtomicU64::new(already),
            total: AtomicU64::new(total),
            ..Meter::default()
        });
        let bar = self.multi.as_ref().map(|m| {
            let b = m.add(ProgressBar::new(total));
            let (for_rate, for_eta) = (meter.clone(), meter.clone());
            b.set_style(
                ProgressStyle::with_template(
                    "{prefix:<32!} [{bar:30}] {pos:>10}/{len:<10} {rate:>14} {eta}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .with_key(
                    "rate",
                    move |_: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                        let _ = w.write_str(&for_rate.rate_text());
                    },
                )
                .with_key(
                    "eta",
                    move |_: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                        let _ = w.write_str(&for_eta.eta_text());
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
            meter,
        });
        self.tables.push(t.clone());
        t
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
                    .filter(|t| lock(&t.meter.finished).is_some())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_table_not_started_is_waiting_without_an_eta() {
        let mut p = Progress::new(true);
        let t = p.table("public.big", 1_000, 0);
        assert_eq!(t.rate_and_eta(), ("waiting".to_string(), String::new()));
    }

    #[test]
    fn the_final_rate_is_the_summarys_rate() {
        let mut p = Progress::new(true);
        // resumed: 400 rows were copied by an earlier run
        let t = p.table("public.t", 1_000, 400);
        t.start();
        std::thread::sleep(Duration::from_millis(50));
        t.add(600);
        t.finish();
        let rate = t.rate();
        let expected = 600.0 / t.seconds();
        assert!((rate - expected).abs() < 1e-6, "{rate} vs {expected}");
        assert_eq!(
            t.rate_and_eta(),
            (format!("{rate:.0} rows/s"), "done".to_string())
        );
    }

    #[test]
    fn the_eta_rate_is_smoothed() {
        let mut p = Progress::new(true);
        let t = p.table("public.t", 1_000_000, 0);
        t.start();
        {
            let mut sm = lock(&t.meter.smoothed);
            sm.at = Some(Instant::now() - Duration::from_secs(1));
            sm.rows = 0;
            sm.rate = 1_000.0;
        }
        // a burst of 5,000 rows in the last second moves the rate 30% of the way
        t.add(5_000);
        let r = t.meter.recent_rate();
        assert!((2_100.0..2_300.0).contains(&r), "{r}");
        let (_, eta) = t.rate_and_eta();
        assert!(eta.starts_with("eta 7m"), "{eta}");
    }
}
