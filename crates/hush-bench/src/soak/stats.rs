//! One worker's counters, taken (read and reset) once per interval.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use hdrhistogram::Histogram;

use super::account::Tally;
use super::wire::{Counts, HistDump, Interval};

/// A latency histogram, 1 µs .. 100 s, 3 significant digits.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 100_000_000, 3)
        .unwrap_or_else(|_| unreachable!("valid histogram bounds"))
}

/// A histogram shared by a worker's tasks.
#[derive(Debug)]
pub struct Latency(Mutex<Histogram<u64>>);

impl Default for Latency {
    fn default() -> Self {
        Self(Mutex::new(histogram()))
    }
}

impl Latency {
    /// Records `us` microseconds (at least 1).
    pub fn record(&self, us: u64) {
        let mut h = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        h.saturating_record(us.max(1));
    }

    fn take(&self) -> HistDump {
        let mut h = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let d = HistDump::of(&h);
        h.reset();
        d
    }
}

/// A worker's counters (see [`Counts`] for what each one counts).
#[derive(Debug, Default)]
#[allow(missing_docs)]
pub struct Stats {
    pub open: AtomicU64,
    pub connects: AtomicU64,
    pub errors: AtomicU64,
    pub dropped: AtomicU64,
    pub disconnects: AtomicU64,
    pub subscribes: AtomicU64,
    pub unsubscribes: AtomicU64,
    pub presence_joins: AtomicU64,
    pub presence_leaves: AtomicU64,
    pub publishes: AtomicU64,
    pub api_errors: AtomicU64,
    pub client_events: AtomicU64,
    pub presence_errors: AtomicU64,
    pub tally: Tally,
    pub latency: Latency,
    pub large_latency: Latency,
    pub client_latency: Latency,
    pub api_latency: Latency,
}

/// Adds one to a counter.
pub fn inc(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

impl Stats {
    /// The interval since the last call (`open` is a gauge, not reset).
    pub fn take(&self) -> Interval {
        let t = |c: &AtomicU64| c.swap(0, Ordering::Relaxed);
        let (expected, received, lost, disordered) = self.tally.take();
        Interval {
            counts: Counts {
                open: self.open.load(Ordering::Relaxed),
                connects: t(&self.connects),
                disconnects: t(&self.disconnects),
                errors: t(&self.errors),
                dropped: t(&self.dropped),
                subscribes: t(&self.subscribes),
                unsubscribes: t(&self.unsubscribes),
                presence_joins: t(&self.presence_joins),
                presence_leaves: t(&self.presence_leaves),
                publishes: t(&self.publishes),
                api_errors: t(&self.api_errors),
                client_events: t(&self.client_events),
                expected,
                received,
                lost,
                disordered,
                presence_errors: t(&self.presence_errors),
            },
            latency: self.latency.take(),
            large_latency: self.large_latency.take(),
            client_latency: self.client_latency.take(),
            api_latency: self.api_latency.take(),
        }
    }
}
