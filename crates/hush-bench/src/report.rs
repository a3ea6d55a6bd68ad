//! Results of a scenario, for the terminal and as JSON.

use std::fmt;

use hdrhistogram::Histogram;
use serde::Serialize;

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct Percentiles {
    /// Samples.
    pub count: u64,
    /// Median.
    pub p50: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// Largest.
    pub max: f64,
}

impl Percentiles {
    /// From a histogram of microseconds; `None` when empty.
    pub fn from_micros(h: &Histogram<u64>) -> Option<Self> {
        if h.is_empty() {
            return None;
        }
        let ms = |v: u64| v as f64 / 1000.0;
        Some(Self {
            count: h.len(),
            p50: ms(h.value_at_quantile(0.5)),
            p99: ms(h.value_at_quantile(0.99)),
            p999: ms(h.value_at_quantile(0.999)),
            max: ms(h.max()),
        })
    }
}

/// What one scenario measured.
#[derive(Debug, Clone, Serialize, Default)]
pub struct Report {
    /// Scenario name.
    pub scenario: String,
    /// Its parameters.
    pub params: serde_json::Value,
    /// Seconds the load ran.
    pub duration_s: f64,
    /// Events published (or client events sent).
    pub sent: u64,
    /// Deliveries expected (sent × recipients).
    pub expected: u64,
    /// Deliveries received.
    pub delivered: u64,
    /// Expected − delivered.
    pub lost: u64,
    /// Deliveries per wall-clock second.
    pub deliveries_per_s: f64,
    /// Publish-to-receive latency.
    pub latency_ms: Option<Percentiles>,
    /// HTTP API request latency.
    pub api_latency_ms: Option<Percentiles>,
    /// Server CPU seconds used during the run.
    pub server_cpu_s: Option<f64>,
    /// Deliveries per server CPU second.
    pub deliveries_per_server_cpu_s: Option<f64>,
    /// Server CPU seconds per million deliveries.
    pub server_cpu_s_per_million: Option<f64>,
    /// Server RSS at the end, bytes.
    pub server_rss_bytes: Option<u64>,
    /// Server RSS growth per connection, bytes (connections scenario).
    pub rss_per_connection_bytes: Option<f64>,
    /// Server CPU milliseconds per connection opened (connections scenario).
    pub cpu_ms_per_connection: Option<f64>,
    /// The load generator's own CPU seconds.
    pub bench_cpu_s: f64,
    /// Steps of a `--max` ramp.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<Report>,
}

fn opt<T: fmt::Display>(v: Option<T>) -> String {
    v.map_or_else(|| "n/a (give --pid)".to_owned(), |v| v.to_string())
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "scenario     {} {}", self.scenario, self.params)?;
        writeln!(f, "duration     {:.1} s", self.duration_s)?;
        if self.expected > 0 {
            writeln!(
                f,
                "deliveries   {} of {} expected, {} lost ({:.0}/s)",
                self.delivered, self.expected, self.lost, self.deliveries_per_s
            )?;
        }
        if let Some(l) = self.latency_ms {
            writeln!(
                f,
                "latency ms   p50 {:.2}  p99 {:.2}  p99.9 {:.2}  max {:.2}",
                l.p50, l.p99, l.p999, l.max
            )?;
        }
        if let Some(l) = self.api_latency_ms {
            writeln!(
                f,
                "API ms       p50 {:.2}  p99 {:.2}  max {:.2}",
                l.p50, l.p99, l.max
            )?;
        }
        writeln!(
            f,
            "server CPU   {} s",
            opt(self.server_cpu_s.map(|c| format!("{c:.2}")))
        )?;
        if self.expected > 0 {
            writeln!(
                f,
                "per CPU-s    {} deliveries",
                opt(self.deliveries_per_server_cpu_s.map(|c| format!("{c:.0}")))
            )?;
            writeln!(
                f,
                "per million  {} server CPU-s",
                opt(self.server_cpu_s_per_million.map(|c| format!("{c:.2}")))
            )?;
        }
        if let Some(r) = self.rss_per_connection_bytes {
            writeln!(f, "RSS/conn     {:.0} bytes ({:.1} KiB)", r, r / 1024.0)?;
        }
        if let Some(c) = self.cpu_ms_per_connection {
            writeln!(f, "CPU/conn     {c:.3} ms")?;
        }
        if let Some(r) = self.server_rss_bytes {
            writeln!(f, "server RSS   {:.1} MiB", r as f64 / 1048576.0)?;
        }
        writeln!(f, "bench CPU    {:.2} s", self.bench_cpu_s)
    }
}
