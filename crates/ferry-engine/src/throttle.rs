//! Speed limits: a task's copy or apply waits here so that its rows and bytes per
//! second stay under what the user allowed (a production source or target shared
//! with other work), and the limit can change while the task runs.
//!
//! One [`Throttle`] per phase and task, shared by all of that phase's workers (the
//! limit is the task's, not each connection's): [`Limits`] holds the copy's and the
//! apply's, built from the task's [`SpeedLimit`], and the service changes them in
//! place when the user edits a running task's limit.
//!
//! The bucket is a virtual-clock one (GCRA): each rate keeps the instant at which
//! everything granted so far will have "drained" at that rate; a taker may go when
//! that instant is at most [`BURST`] ahead of now, and pushes it on by its own cost.
//! So the workers together never run more than `BURST` of the rate ahead (plus the
//! one piece just granted, which the copy keeps at most `BURST` of the rate too), at
//! 1 row/s as at millions; a taker bigger than that (one large source transaction)
//! passes and the takers after it pay its debt.

use ferry_core::chunk::Batch;
use ferry_core::spec::SpeedLimit;
use ferry_core::Value;
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, watch};
use tokio::time::{Duration, Instant};

/// How far the workers together may run ahead of a rate: the largest burst is
/// this much of the rate (plus the piece just granted).
pub const BURST: Duration = Duration::from_millis(50);

/// Longest single wait one take can be charged (a typo-sized take at 1 byte/s must
/// not overflow the clock); far beyond any real debt.
const MAX_COST: Duration = Duration::from_secs(1_000_000);

/// Rates in force.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rates {
    /// Rows per second; `None` = no limit.
    pub rows_per_second: Option<u64>,
    /// Bytes per second; `None` = no limit.
    pub bytes_per_second: Option<u64>,
}

impl Rates {
    /// Whether nothing is limited.
    pub fn unlimited(&self) -> bool {
        self.rows_per_second.is_none() && self.bytes_per_second.is_none()
    }
}

/// One limited quantity (rows or bytes).
#[derive(Debug)]
struct Lane {
    /// Seconds one unit costs.
    per_unit: f64,
    /// When everything granted so far has drained at the rate.
    drained_at: Instant,
}

impl Lane {
    fn new(rate: Option<u64>, now: Instant) -> Option<Lane> {
        rate.map(|r| Lane {
            per_unit: 1.0 / r.max(1) as f64,
            drained_at: now,
        })
    }

    /// Grants `n` units: returns when the taker may go and charges its cost.
    fn reserve(&mut self, n: u64, now: Instant) -> Instant {
        if n == 0 {
            return now;
        }
        let go = self.drained_at.checked_sub(BURST).unwrap_or(now).max(now);
        let cost = Duration::try_from_secs_f64(n as f64 * self.per_unit)
            .unwrap_or(MAX_COST)
            .min(MAX_COST);
        self.drained_at = self.drained_at.max(now) + cost;
        go
    }
}

#[derive(Debug)]
struct State {
    rates: Rates,
    rows: Option<Lane>,
    bytes: Option<Lane>,
}

impl State {
    fn new(rates: Rates) -> State {
        let now = Instant::now();
        State {
            rates,
            rows: Lane::new(rates.rows_per_second, now),
            bytes: Lane::new(rates.bytes_per_second, now),
        }
    }
}

/// A limit shared by every worker of one phase.
#[derive(Debug)]
pub struct Throttle {
    state: Mutex<State>,
    /// Bumped by [`Throttle::set`]: a waiting taker wakes and takes again under the
    /// new rates (so a raised limit frees it at once, not after its old wait).
    changed: watch::Sender<u64>,
}

impl Default for Throttle {
    fn default() -> Throttle {
        Throttle::new(Rates::default())
    }
}

impl Throttle {
    /// A throttle holding to `rates`.
    pub fn new(rates: Rates) -> Throttle {
        Throttle {
            state: Mutex::new(State::new(rates)),
            changed: watch::channel(0).0,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The rates in force.
    pub fn rates(&self) -> Rates {
        self.lock().rates
    }

    /// Changes the rates (a running task's limit edited). Takes effect at once:
    /// debts under the old rates are forgiven and waiting takers take again.
    pub fn set(&self, rates: Rates) {
        let mut s = self.lock();
        if s.rates == rates {
            return;
        }
        *s = State::new(rates);
        // under the lock: a taker subscribes under it too, so none misses this
        self.changed.send_modify(|g| *g = g.wrapping_add(1));
    }

    /// Waits until `rows` rows and `bytes` bytes more may pass under the limits.
    /// Returns at once when nothing is limited.
    pub async fn take(&self, rows: u64, bytes: u64) {
        loop {
            let (go, mut changed) = {
                let mut s = self.lock();
                if s.rates.unlimited() {
                    return;
                }
                let now = Instant::now();
                let mut go = now;
                if let Some(l) = &mut s.rows {
                    go = go.max(l.reserve(rows, now));
                }
                if let Some(l) = &mut s.bytes {
                    go = go.max(l.reserve(bytes, now));
                }
                if go <= now {
                    return;
                }
                (go, self.changed.subscribe())
            };
            tokio::select! {
                () = tokio::time::sleep_until(go) => return,
                // the limits changed: take again under the new ones
                _ = changed.changed() => {}
            }
        }
    }
}

/// The speed limits of one task: one throttle for its copy, one for its apply,
/// each shared by all of that phase's workers.
#[derive(Debug, Clone, Default)]
pub struct Limits {
    /// Full copy (and sync-edit copies).
    pub copy: Arc<Throttle>,
    /// Change stream apply.
    pub apply: Arc<Throttle>,
}

impl Limits {
    /// The throttles holding to `limit`.
    pub fn new(limit: &SpeedLimit) -> Limits {
        let (copy, apply) = split(limit);
        Limits {
            copy: Arc::new(Throttle::new(copy)),
            apply: Arc::new(Throttle::new(apply)),
        }
    }

    /// Changes both throttles to `limit` (a no-op for an unchanged one).
    pub fn set(&self, limit: &SpeedLimit) {
        let (copy, apply) = split(limit);
        self.copy.set(copy);
        self.apply.set(apply);
    }

    /// The limits in force.
    pub fn get(&self) -> SpeedLimit {
        let (c, a) = (self.copy.rates(), self.apply.rates());
        SpeedLimit {
            copy_rows_per_second: c.rows_per_second,
            copy_bytes_per_second: c.bytes_per_second,
            apply_rows_per_second: a.rows_per_second,
            apply_bytes_per_second: a.bytes_per_second,
        }
    }
}

fn split(l: &SpeedLimit) -> (Rates, Rates) {
    (
        Rates {
            rows_per_second: l.copy_rows_per_second,
            bytes_per_second: l.copy_bytes_per_second,
        },
        Rates {
            rows_per_second: l.apply_rows_per_second,
            bytes_per_second: l.apply_bytes_per_second,
        },
    )
}

/// What a row's values weigh against a bytes limit when the copy moves decoded
/// rows (or the apply row changes): their own sizes — text and binary by length,
/// numbers by width — close to what crosses the network.
pub fn row_bytes(row: &[Value]) -> u64 {
    row.iter().map(value_bytes).sum()
}

/// About the bytes one value carries (what a bytes limit meters).
pub fn value_bytes(v: &Value) -> u64 {
    match v {
        Value::Null => 1,
        Value::Bool(_) => 1,
        Value::F32(_) => 4,
        Value::Int(_) | Value::UInt(_) | Value::F64(_) => 8,
        Value::Decimal(s)
        | Value::Text(s)
        | Value::Date(s)
        | Value::Time(s)
        | Value::Timestamp(s)
        | Value::TimestampTz(s)
        | Value::Interval(s)
        | Value::Json(s)
        | Value::Bits(s) => s.len() as u64,
        Value::Bytes(b) => b.len() as u64,
    }
}

/// The shape of a chunk's passthrough bytes (a PostgreSQL source's COPY output),
/// for counting their rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RawFormat {
    /// COPY text: one line per row (a newline inside a value is escaped).
    Text,
    /// COPY binary: a header, then per row a field count and length-prefixed fields.
    Binary,
}

/// Counts the rows of COPY bytes fed in any pieces (a row may straddle two).
#[derive(Debug)]
struct RowCounter {
    format: RawFormat,
    step: Step,
    buf: [u8; 19],
    have: usize,
    skip: u64,
    fields_left: u16,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// Binary: signature, flags and extension length (19 bytes).
    Header,
    /// Binary: skipping the header extension.
    HeaderExt,
    /// Binary: a row's field count, or the trailer (-1).
    Count,
    /// Binary: a field's length.
    FieldLen,
    /// Binary: skipping a field's data.
    FieldData,
    /// Binary: after the trailer.
    End,
}

impl RowCounter {
    fn new(format: RawFormat) -> RowCounter {
        RowCounter {
            format,
            step: Step::Header,
            buf: [0; 19],
            have: 0,
            skip: 0,
            fields_left: 0,
        }
    }

    /// Reads `data` up to the end of its `max_rows`-th complete row (or its end):
    /// returns (bytes read, rows completed).
    fn advance(&mut self, data: &[u8], max_rows: u64) -> (usize, u64) {
        let mut rows = 0;
        if self.format == RawFormat::Text {
            let mut i = 0;
            while rows < max_rows {
                match data[i..].iter().position(|&b| b == b'\n') {
                    Some(p) => {
                        i += p + 1;
                        rows += 1;
                    }
                    None => return (data.len(), rows),
                }
            }
            return (i, rows);
        }
        let mut i = 0;
        while i < data.len() && rows < max_rows {
            match self.step {
                Step::End => i = data.len(),
                Step::HeaderExt | Step::FieldData => {
                    let k = self.skip.min((data.len() - i) as u64);
                    i += k as usize;
                    self.skip -= k;
                    if self.skip == 0 {
                        if self.step == Step::HeaderExt {
                            self.step = Step::Count;
                        } else {
                            rows += self.field_done();
                        }
                    }
                }
                Step::Header | Step::Count | Step::FieldLen => {
                    let need = match self.step {
                        Step::Header => 19,
                        Step::Count => 2,
                        _ => 4,
                    };
                    let k = (need - self.have).min(data.len() - i);
                    self.buf[self.have..self.have + k].copy_from_slice(&data[i..i + k]);
                    self.have += k;
                    i += k;
                    if self.have < need {
                        continue;
                    }
                    self.have = 0;
                    let b = &self.buf;
                    match self.step {
                        Step::Header => {
                            self.skip = u32::from_be_bytes([b[15], b[16], b[17], b[18]]) as u64;
                            self.step = if self.skip > 0 {
                                Step::HeaderExt
                            } else {
                                Step::Count
                            };
                        }
                        Step::Count => match i16::from_be_bytes([b[0], b[1]]) {
                            -1 => self.step = Step::End,
                            n if n <= 0 => rows += 1,
                            n => {
                                self.fields_left = n as u16;
                                self.step = Step::FieldLen;
                            }
                        },
                        _ => {
                            let len = i32::from_be_bytes([b[0], b[1], b[2], b[3]]);
                            if len > 0 {
                                self.skip = len as u64;
                                self.step = Step::FieldData;
                            } else {
                                rows += self.field_done();
                            }
                        }
                    }
                }
            }
        }
        (i, rows)
    }

    /// One field read: 1 when it was its row's last.
    fn field_done(&mut self) -> u64 {
        self.fields_left = self.fields_left.saturating_sub(1);
        if self.fields_left == 0 {
            self.step = Step::Count;
            1
        } else {
            self.step = Step::FieldLen;
            0
        }
    }
}

/// Paces one chunk's batches on their way from the reader to the writer: each batch
/// goes on in pieces of at most [`BURST`] of the copy's rates, each after its turn
/// at the task's copy [`Throttle`] — smooth even when a batch holds seconds' worth
/// of a low limit. Without a limit a batch passes untouched.
#[derive(Debug)]
pub struct CopyPacer {
    throttle: Arc<Throttle>,
    /// Counts passthrough rows (set up when the chunk starts under a limit; a limit
    /// set later in the chunk counts them by `bytes_per_row` until the next chunk).
    counter: Option<RowCounter>,
    /// Estimated bytes per passthrough row when they are not counted.
    bytes_per_row: u64,
}

impl CopyPacer {
    /// A pacer for one chunk; `raw` is the shape of its passthrough bytes (if any),
    /// `bytes_per_row` a size estimate for rows that cannot be counted.
    pub fn new(throttle: Arc<Throttle>, raw: Option<RawFormat>, bytes_per_row: u64) -> CopyPacer {
        let counter = raw
            .filter(|_| !throttle.rates().unlimited())
            .map(RowCounter::new);
        CopyPacer {
            throttle,
            counter,
            bytes_per_row: bytes_per_row.max(1),
        }
    }

    /// The pacer of one chunk of `table` (`passthrough`: its bytes go through as the
    /// source's COPY output).
    pub fn for_table(
        throttle: &Arc<Throttle>,
        table: &ferry_core::Table,
        passthrough: bool,
    ) -> CopyPacer {
        let raw = passthrough.then_some(if table.pg_types.text_copy {
            RawFormat::Text
        } else {
            RawFormat::Binary
        });
        let per_row = table.estimated_bytes / table.estimated_rows.max(1);
        CopyPacer::new(throttle.clone(), raw, per_row.max(16))
    }

    /// Sends `batch` on `tx` in paced pieces; `Err` when the writer is gone.
    pub async fn send(&mut self, batch: Batch, tx: &mpsc::Sender<Batch>) -> Result<(), ()> {
        let rates = self.throttle.rates();
        if rates.unlimited() {
            return tx.send(batch).await.map_err(drop);
        }
        let piece = |rate: Option<u64>| {
            rate.map_or(u64::MAX, |r| {
                ((r as f64 * BURST.as_secs_f64()) as u64).max(1)
            })
        };
        let (max_rows, max_bytes) = (piece(rates.rows_per_second), piece(rates.bytes_per_second));
        let count_bytes = rates.bytes_per_second.is_some();
        match batch {
            Batch::Rows(mut rows) => {
                while !rows.is_empty() {
                    let (mut n, mut bytes) = (0usize, 0u64);
                    while n < rows.len() && (n as u64) < max_rows && (n == 0 || bytes < max_bytes) {
                        if count_bytes {
                            bytes += row_bytes(&rows[n]);
                        }
                        n += 1;
                    }
                    let rest = rows.split_off(n);
                    self.throttle.take(n as u64, bytes).await;
                    tx.send(Batch::Rows(rows)).await.map_err(drop)?;
                    rows = rest;
                }
            }
            Batch::Raw(mut data) => {
                while !data.is_empty() {
                    let cap = data
                        .len()
                        .min(usize::try_from(max_bytes).unwrap_or(usize::MAX));
                    let (len, rows) = match &mut self.counter {
                        Some(c) => c.advance(&data[..cap], max_rows),
                        None => {
                            let len = cap.min(
                                usize::try_from(max_rows.saturating_mul(self.bytes_per_row))
                                    .unwrap_or(usize::MAX),
                            );
                            (len, (len as u64).div_ceil(self.bytes_per_row))
                        }
                    };
                    // a trailer or header alone completes no row: still bytes
                    let len = len.max(1);
                    let piece = data.split_to(len);
                    self.throttle.take(rows, len as u64).await;
                    tx.send(Batch::Raw(piece)).await.map_err(drop)?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(n: u64) -> Rates {
        Rates {
            rows_per_second: Some(n),
            bytes_per_second: None,
        }
    }

    /// Largest number of units granted within any window of `window` (grants are
    /// (instant, units), in order).
    fn max_in_window(grants: &[(Instant, u64)], window: Duration) -> u64 {
        let mut best = 0;
        for (i, (t0, _)) in grants.iter().enumerate() {
            let sum: u64 = grants[i..]
                .iter()
                .take_while(|(t, _)| *t < *t0 + window)
                .map(|(_, n)| n)
                .sum();
            best = best.max(sum);
        }
        best
    }

    /// Four workers sharing one throttle of 1000 rows/s: 4000 rows take ≥ 3.9 s, and
    /// no second (nor tenth of one) sees more than the rate plus the burst.
    #[tokio::test(start_paused = true)]
    async fn workers_share_one_smooth_rate() {
        let t = Arc::new(Throttle::new(rows(1000)));
        let start = Instant::now();
        let grants = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for _ in 0..4 {
            let (t, grants) = (t.clone(), grants.clone());
            tasks.push(tokio::spawn(async move {
                for _ in 0..100 {
                    t.take(10, 0).await;
                    grants.lock().unwrap().push((Instant::now(), 10u64));
                }
            }));
        }
        for h in tasks {
            h.await.unwrap();
        }
        let took = start.elapsed();
        assert!(took >= Duration::from_millis(3900), "{took:?}");
        let mut g = grants.lock().unwrap().clone();
        g.sort_by_key(|(t, _)| *t);
        let per_second = max_in_window(&g, Duration::from_secs(1));
        assert!(per_second <= 1000 + 60, "{per_second} rows in one second");
        let per_tenth = max_in_window(&g, Duration::from_millis(100));
        assert!(
            per_tenth <= 100 + 60,
            "{per_tenth} rows in a tenth of a second"
        );
    }

    /// The bucket holds to very low and very high rates alike.
    #[tokio::test(start_paused = true)]
    async fn one_row_a_second_and_millions_of_bytes() {
        let t = Throttle::new(rows(1));
        let start = Instant::now();
        for _ in 0..5 {
            t.take(1, 0).await;
        }
        // the first goes at once, each next one a second later (less the burst)
        assert!(
            start.elapsed() >= Duration::from_millis(3800),
            "{:?}",
            start.elapsed()
        );

        let t = Throttle::new(Rates {
            rows_per_second: None,
            bytes_per_second: Some(5_000_000),
        });
        let start = Instant::now();
        for _ in 0..20_000 {
            t.take(1, 1000).await;
        }
        // 20 MB at 5 MB/s
        assert!(
            start.elapsed() >= Duration::from_millis(3950),
            "{:?}",
            start.elapsed()
        );
        // rows are not limited by a bytes-only throttle
        let start = Instant::now();
        t.take(1_000_000, 0).await;
        assert!(start.elapsed() < Duration::from_millis(100));
    }

    /// No limit: nothing waits, however much passes.
    #[tokio::test(start_paused = true)]
    async fn unlimited_never_waits() {
        let t = Throttle::default();
        let start = Instant::now();
        for _ in 0..1000 {
            t.take(1_000_000, 1 << 30).await;
        }
        assert_eq!(start.elapsed(), Duration::ZERO);
    }

    /// A changed limit frees a taker waiting under the old one at once (here: a
    /// 1000-row debt at 1 row/s, raised to unlimited and then to 1000 rows/s).
    #[tokio::test(start_paused = true)]
    async fn set_takes_effect_at_once() {
        let t = Arc::new(Throttle::new(rows(1)));
        t.take(1000, 0).await; // passes, leaving a 1000 s debt
        let start = Instant::now();
        let waiter = {
            let t = t.clone();
            tokio::spawn(async move {
                t.take(1, 0).await;
                Instant::now()
            })
        };
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(!waiter.is_finished());
        t.set(rows(1000));
        assert_eq!(t.rates(), rows(1000));
        let done = waiter.await.unwrap();
        assert!(done - start < Duration::from_secs(1), "{:?}", done - start);
        // and the new rate holds: 2000 rows at 1000/s
        let start = Instant::now();
        for _ in 0..200 {
            t.take(10, 0).await;
        }
        assert!(
            start.elapsed() >= Duration::from_millis(1900),
            "{:?}",
            start.elapsed()
        );
        // lowered: 20 rows at 10/s
        t.set(rows(10));
        let start = Instant::now();
        for _ in 0..20 {
            t.take(1, 0).await;
        }
        assert!(
            start.elapsed() >= Duration::from_millis(1850),
            "{:?}",
            start.elapsed()
        );
        t.set(Rates::default());
        let start = Instant::now();
        t.take(1_000_000, 0).await;
        assert_eq!(start.elapsed(), Duration::ZERO);
    }

    #[test]
    fn limits_are_built_from_the_task_spec() {
        let l = Limits::new(&SpeedLimit {
            copy_rows_per_second: Some(5),
            copy_bytes_per_second: None,
            apply_rows_per_second: None,
            apply_bytes_per_second: Some(7),
        });
        assert_eq!(l.copy.rates(), rows(5));
        assert_eq!(l.apply.rates().bytes_per_second, Some(7));
        let shared = l.clone();
        shared.set(&SpeedLimit::default());
        assert!(l.copy.rates().unlimited() && l.apply.rates().unlimited());
        assert_eq!(l.get(), SpeedLimit::default());
    }

    /// COPY binary: header (with an extension), rows of 2 fields (one NULL), trailer.
    fn binary_copy(n: u16) -> Vec<u8> {
        let mut b = b"PGCOPY\n\xff\r\n\0".to_vec();
        b.extend_from_slice(&0u32.to_be_bytes());
        b.extend_from_slice(&3u32.to_be_bytes());
        b.extend_from_slice(b"ext");
        for i in 0..n {
            b.extend_from_slice(&2i16.to_be_bytes());
            b.extend_from_slice(&4i32.to_be_bytes());
            b.extend_from_slice(&u32::from(i).to_be_bytes());
            b.extend_from_slice(&(-1i32).to_be_bytes());
        }
        b.extend_from_slice(&(-1i16).to_be_bytes());
        b
    }

    #[test]
    fn counts_copy_rows_fed_in_any_pieces() {
        let data = binary_copy(50);
        for piece in [1, 2, 3, 7, 19, 64, data.len()] {
            let mut c = RowCounter::new(RawFormat::Binary);
            let total: u64 = data.chunks(piece).map(|p| c.advance(p, u64::MAX).1).sum();
            assert_eq!(total, 50, "pieces of {piece}");
        }
        // stops right after the asked-for rows
        let mut c = RowCounter::new(RawFormat::Binary);
        let (len, rows) = c.advance(&data, 3);
        assert_eq!((len, rows), (19 + 3 + 3 * 14, 3));
        let (_, rest) = c.advance(&data[len..], u64::MAX);
        assert_eq!(rest, 47);
        let mut c = RowCounter::new(RawFormat::Text);
        assert_eq!(c.advance(b"1\ta\\nb\n2\tc\n3\t", 1), (7, 1));
        assert_eq!(c.advance(b"2\tc\n3\t", u64::MAX), (6, 1));
    }

    /// A batch of 1000 rows under 2000 rows/s goes on in pieces of 100 (1/20 s),
    /// and the whole batch arrives, in order.
    #[tokio::test(start_paused = true)]
    async fn the_copy_pacer_splits_batches_into_small_pieces() {
        let t = Arc::new(Throttle::new(rows(2000)));
        let (tx, mut rx) = mpsc::channel(100);
        let mut pacer = CopyPacer::new(t.clone(), None, 10);
        let batch: Vec<Vec<Value>> = (0..1000).map(|i| vec![Value::Int(i)]).collect();
        let start = Instant::now();
        pacer.send(Batch::Rows(batch.clone()), &tx).await.unwrap();
        pacer.send(Batch::Rows(batch), &tx).await.unwrap();
        drop(tx);
        let mut got = Vec::new();
        let mut pieces = 0;
        while let Some(Batch::Rows(r)) = rx.recv().await {
            assert!(r.len() <= 100, "{}", r.len());
            pieces += 1;
            got.extend(r);
        }
        assert_eq!(got.len(), 2000);
        assert_eq!(pieces, 20);
        assert_eq!(got[1000], vec![Value::Int(0)]);
        assert!(
            start.elapsed() >= Duration::from_millis(900),
            "{:?}",
            start.elapsed()
        );

        // passthrough bytes: counted rows, split at row ends
        let (tx, mut rx) = mpsc::channel(1000);
        let mut pacer = CopyPacer::new(t, Some(RawFormat::Binary), 10);
        let data = binary_copy(500);
        pacer
            .send(Batch::Raw(data.clone().into()), &tx)
            .await
            .unwrap();
        drop(tx);
        let mut joined = Vec::new();
        let mut pieces = 0;
        while let Some(Batch::Raw(b)) = rx.recv().await {
            pieces += 1;
            joined.extend_from_slice(&b);
        }
        assert_eq!(joined, data);
        assert!(pieces >= 5, "{pieces}");
    }
}
