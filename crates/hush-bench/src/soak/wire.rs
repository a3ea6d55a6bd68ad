//! What the soak coordinator and its worker processes say to each other:
//! one command per line on the worker's stdin, one JSON object per line on
//! its stdout.

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// A command from the coordinator, one per line on the worker's stdin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// Start the load.
    Start,
    /// Report the interval that just ended.
    Tick,
    /// Stop the load, verify every delivery, report.
    Stop,
    /// Close every connection and exit.
    Close,
}

impl Command {
    /// The line that carries it.
    pub fn line(self) -> &'static str {
        match self {
            Self::Start => "start\n",
            Self::Tick => "tick\n",
            Self::Stop => "stop\n",
            Self::Close => "close\n",
        }
    }

    /// Parses a line (surrounding whitespace ignored).
    pub fn parse(line: &str) -> Option<Self> {
        match line.trim() {
            "start" => Some(Self::Start),
            "tick" => Some(Self::Tick),
            "stop" => Some(Self::Stop),
            "close" => Some(Self::Close),
            _ => None,
        }
    }
}

/// A histogram as (value, count) pairs of its recorded buckets: a few
/// hundred pairs at most, so it crosses a pipe as JSON and merges exactly
/// (to the histogram's precision) in the coordinator.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct HistDump(pub Vec<(u64, u64)>);

impl HistDump {
    /// Dumps `h`.
    pub fn of(h: &Histogram<u64>) -> Self {
        Self(
            h.iter_recorded()
                .map(|v| (v.value_iterated_to(), v.count_at_value()))
                .collect(),
        )
    }

    /// Adds the dump to `h` (values beyond its range are clamped).
    pub fn add_to(&self, h: &mut Histogram<u64>) {
        for &(v, n) in &self.0 {
            h.saturating_record_n(v, n);
        }
    }
}

/// Counters of one interval of one worker (the coordinator adds them up).
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq)]
pub struct Counts {
    /// Connections open at the end of the interval (a gauge: summed over
    /// workers, not over intervals).
    pub open: u64,
    /// Connections opened (churn).
    pub connects: u64,
    /// Connections the generator closed (churn), gracefully or not.
    pub disconnects: u64,
    /// Connections that failed to open or to subscribe, and errors the
    /// server reported.
    pub errors: u64,
    /// Stable connections the server closed or that failed.
    pub dropped: u64,
    /// Subscriptions confirmed.
    pub subscribes: u64,
    /// Unsubscribes sent.
    pub unsubscribes: u64,
    /// Presence channel joins confirmed.
    pub presence_joins: u64,
    /// Presence channel leaves (unsubscribe or disconnect).
    pub presence_leaves: u64,
    /// API publishes answered 200.
    pub publishes: u64,
    /// API publishes that failed.
    pub api_errors: u64,
    /// Client events sent.
    pub client_events: u64,
    /// Deliveries owed to subscriptions (API events and client events).
    pub expected: u64,
    /// Deliveries received.
    pub received: u64,
    /// Deliveries owed that never arrived.
    pub lost: u64,
    /// Deliveries that arrived twice or out of order.
    pub disordered: u64,
    /// Presence membership errors (a member list without oneself, a
    /// member_removed for a member never added, members left over).
    pub presence_errors: u64,
}

impl Counts {
    /// Adds `o` to `self`, field by field.
    pub fn add(&mut self, o: &Self) {
        self.open += o.open;
        self.connects += o.connects;
        self.disconnects += o.disconnects;
        self.errors += o.errors;
        self.dropped += o.dropped;
        self.subscribes += o.subscribes;
        self.unsubscribes += o.unsubscribes;
        self.presence_joins += o.presence_joins;
        self.presence_leaves += o.presence_leaves;
        self.publishes += o.publishes;
        self.api_errors += o.api_errors;
        self.client_events += o.client_events;
        self.expected += o.expected;
        self.received += o.received;
        self.lost += o.lost;
        self.disordered += o.disordered;
        self.presence_errors += o.presence_errors;
    }
}

/// One interval of one worker: counters and latency histograms.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Interval {
    /// Counters.
    pub counts: Counts,
    /// Publish-to-receive latency of API events to the small channels, µs.
    pub latency: HistDump,
    /// The same for the large channels (every stable connection of a
    /// worker), whose whole fan-out one worker reads at once.
    pub large_latency: HistDump,
    /// Send-to-receive latency of client events, µs.
    pub client_latency: HistDump,
    /// HTTP API request latency, µs.
    pub api_latency: HistDump,
}

/// A line a worker writes on its stdout.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum Report {
    /// The stable connections are open and subscribed.
    Ready {
        /// Connections open.
        open: u64,
        /// What opening them counted (subscriptions, joins, errors).
        ramp: Box<Interval>,
    },
    /// One interval (after `tick`), or the last one plus verification (after
    /// `stop`).
    Interval(Box<Interval>),
    /// Every connection is closed; the worker exits.
    Closed,
    /// The worker failed.
    Failed {
        /// Why.
        error: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_dump_round_trips() {
        let mut h =
            Histogram::<u64>::new_with_bounds(1, 100_000_000, 3).unwrap_or_else(|_| unreachable!());
        for v in [1u64, 5, 5, 1200, 99_000, 5_000_000] {
            let _ = h.record(v);
        }
        let d = HistDump::of(&h);
        let json = serde_json::to_string(&Report::Interval(Box::new(Interval {
            latency: d.clone(),
            ..Interval::default()
        })))
        .unwrap_or_default();
        let back: Report = serde_json::from_str(&json).unwrap_or(Report::Closed);
        let Report::Interval(i) = back else {
            panic!("not an interval: {json}")
        };
        let mut h2 =
            Histogram::<u64>::new_with_bounds(1, 100_000_000, 3).unwrap_or_else(|_| unreachable!());
        i.latency.add_to(&mut h2);
        assert_eq!(h2.len(), 6);
        assert_eq!(h2.value_at_quantile(0.99), h.value_at_quantile(0.99));
        assert_eq!(h2.max(), h.max());
    }

    #[test]
    fn commands_round_trip() {
        for c in [Command::Start, Command::Tick, Command::Stop, Command::Close] {
            assert_eq!(Command::parse(c.line()), Some(c));
        }
        assert_eq!(Command::parse("nonsense"), None);
    }
}
