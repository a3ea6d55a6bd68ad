//! The soak's report: one row per interval, totals, the server before and
//! after, and the verdict.

use std::fmt;
use std::time::Instant;

use hdrhistogram::Histogram;
use serde::Serialize;

use super::SoakOptions;
use super::probe::ServerSample;
use super::stats::histogram;
use super::wire::{Counts, Interval};
use crate::report::Percentiles;

/// One interval, all workers together.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// Interval number, or "end" for the last one plus verification.
    pub label: String,
    /// Seconds since the load started.
    pub t_s: f64,
    /// The server when the interval ended.
    pub server: ServerSample,
    /// Server CPU over the interval, % of one core.
    pub server_cpu_pct: Option<f64>,
    /// Generator counters.
    pub counts: Counts,
    /// API publish-to-receive latency, small channels.
    pub latency_ms: Option<Percentiles>,
    /// API publish-to-receive latency, large channels.
    pub large_latency_ms: Option<Percentiles>,
    /// Client event latency.
    pub client_latency_ms: Option<Percentiles>,
    /// API request latency.
    pub api_latency_ms: Option<Percentiles>,
    /// Resident memory of all worker processes together, bytes.
    pub generator_rss_bytes: Option<u64>,
    /// CPU of all worker processes over the interval, % of one core.
    pub generator_cpu_pct: Option<f64>,
}

fn merged(it: impl Iterator<Item = Histogram<u64>>) -> Histogram<u64> {
    let mut h = histogram();
    for x in it {
        let _ = h.add(&x);
    }
    h
}

fn hist(d: &super::wire::HistDump) -> Histogram<u64> {
    let mut h = histogram();
    d.add_to(&mut h);
    h
}

fn mib(b: Option<u64>) -> String {
    b.map_or_else(|| "?".into(), |b| format!("{:.1}", b as f64 / 1_048_576.0))
}

fn num(v: Option<u64>) -> String {
    v.map_or_else(|| "?".into(), |v| v.to_string())
}

fn ms(p: Option<Percentiles>, f: fn(&Percentiles) -> f64) -> String {
    p.map_or_else(|| "-".into(), |p| format!("{:.1}", f(&p)))
}

impl Row {
    /// Builds a row from the workers' intervals and the server sample at its
    /// end, taken `at` (`prev`: the sample at its start and when it was
    /// taken).
    pub fn build(
        label: String,
        t_s: f64,
        (server, at): (ServerSample, Instant),
        prev: (ServerSample, Instant),
        intervals: &[Interval],
    ) -> Self {
        let mut counts = Counts::default();
        for i in intervals {
            counts.add(&i.counts);
        }
        let dt = at.saturating_duration_since(prev.1).as_secs_f64();
        let server_cpu_pct = match (server.cpu_s, prev.0.cpu_s) {
            (Some(a), Some(b)) if dt > 0.0 => Some((a - b) * 100.0 / dt),
            _ => None,
        };
        let p = |f: fn(&Interval) -> &super::wire::HistDump| {
            Percentiles::from_micros(&merged(intervals.iter().map(|i| hist(f(i)))))
        };
        Self {
            label,
            t_s,
            server,
            server_cpu_pct,
            counts,
            latency_ms: p(|i| &i.latency),
            large_latency_ms: p(|i| &i.large_latency),
            client_latency_ms: p(|i| &i.client_latency),
            api_latency_ms: p(|i| &i.api_latency),
            generator_rss_bytes: None,
            generator_cpu_pct: None,
        }
    }

    /// The table cells of this row, in [`COLUMNS`] order.
    fn cells(&self) -> Vec<String> {
        let c = &self.counts;
        let pct = |p: Option<f64>| p.map_or_else(|| "?".into(), |p| format!("{p:.0}"));
        vec![
            self.label.clone(),
            format!("{:.0}", self.t_s),
            num(self.server.connections),
            c.open.to_string(),
            mib(self.server.rss_bytes),
            num(self.server.fds),
            num(self.server.tasks),
            pct(self.server_cpu_pct),
            pct(self.generator_cpu_pct),
            c.connects.to_string(),
            c.subscribes.to_string(),
            c.expected.to_string(),
            c.received.to_string(),
            c.lost.to_string(),
            c.publishes.to_string(),
            ms(self.latency_ms, |p| p.p50),
            ms(self.latency_ms, |p| p.p99),
            ms(self.latency_ms, |p| p.max),
            ms(self.large_latency_ms, |p| p.p99),
            ms(self.client_latency_ms, |p| p.p99),
            (c.errors + c.dropped + c.api_errors + c.disordered + c.presence_errors).to_string(),
        ]
    }

    /// The column titles of [`Row`]'s `Display`.
    pub fn header() -> String {
        line(COLUMNS.iter().map(|(t, _)| (*t).to_owned()))
    }
}

/// Column titles and widths: interval, seconds into the load, server
/// connections (its gauge), generator connections, server RSS, server
/// descriptors, server tasks, server and generator CPU (% of one core),
/// connections opened, subscriptions, deliveries owed / received / lost,
/// API publishes, small-channel latency p50 / p99 / max, large-channel p99,
/// client-event p99, errors of any kind.
const COLUMNS: [(&str, usize); 21] = [
    ("int", 5),
    ("t s", 4),
    ("srv con", 7),
    ("gen con", 7),
    ("RSS MiB", 7),
    ("fds", 6),
    ("tasks", 6),
    ("CPU%", 4),
    ("gen%", 4),
    ("conn+", 6),
    ("subs", 6),
    ("owed", 8),
    ("received", 8),
    ("lost", 4),
    ("pub", 6),
    ("p50 ms", 6),
    ("p99 ms", 6),
    ("max ms", 7),
    ("lg p99", 6),
    ("ce p99", 6),
    ("errors", 6),
];

fn line(cells: impl Iterator<Item = String>) -> String {
    cells
        .zip(COLUMNS.iter())
        .map(|(c, (_, w))| format!("{c:>w$}"))
        .collect::<Vec<_>>()
        .join(" ")
}

impl fmt::Display for Row {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&line(self.cells().into_iter()))
    }
}

/// The whole soak.
#[derive(Debug, Clone, Serialize)]
pub struct SoakReport {
    /// Parameters.
    pub options: SoakOptions,
    /// Stable connections opened.
    pub stable_opened: u64,
    /// Seconds to open them.
    pub ramp_s: f64,
    /// Seconds the load ran (with the final verification).
    pub load_s: f64,
    /// Seconds the server took to settle after every connection closed.
    pub settle_s: f64,
    /// The server before any connection.
    pub baseline: ServerSample,
    /// The server with the stable connections open, before the load.
    pub loaded: ServerSample,
    /// The server after every connection closed and it settled.
    pub after: ServerSample,
    /// One row per interval.
    pub rows: Vec<Row>,
    /// Everything added up.
    pub totals: Counts,
    /// API publish-to-receive latency over the whole run, small channels.
    pub latency_ms: Option<Percentiles>,
    /// The same, large channels.
    pub large_latency_ms: Option<Percentiles>,
    /// Client event latency over the whole run.
    pub client_latency_ms: Option<Percentiles>,
    /// API request latency over the whole run.
    pub api_latency_ms: Option<Percentiles>,
    /// Why the run failed; empty when it passed.
    pub failures: Vec<String>,
    /// The other processes accounted for (a cluster's nodes and Redis).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub observed: Vec<Observed>,
    #[serde(skip)]
    all_latency: Option<[Histogram<u64>; 4]>,
}

impl SoakReport {
    /// An empty report.
    pub fn new(options: SoakOptions, baseline: ServerSample) -> Self {
        Self {
            options,
            stable_opened: 0,
            ramp_s: 0.0,
            load_s: 0.0,
            settle_s: 0.0,
            baseline,
            loaded: ServerSample::default(),
            after: ServerSample::default(),
            rows: Vec::new(),
            totals: Counts::default(),
            latency_ms: None,
            large_latency_ms: None,
            client_latency_ms: None,
            api_latency_ms: None,
            failures: Vec::new(),
            observed: Vec::new(),
            all_latency: Some([histogram(), histogram(), histogram(), histogram()]),
        }
    }

    /// Adds a row (and its intervals' histograms to the run's).
    pub fn add(&mut self, row: Row, intervals: &[Interval]) {
        let open = self.totals.open;
        self.totals.add(&row.counts);
        self.totals.open = open.max(row.counts.open);
        if let Some(all) = &mut self.all_latency {
            for i in intervals {
                i.latency.add_to(&mut all[0]);
                i.client_latency.add_to(&mut all[1]);
                i.api_latency.add_to(&mut all[2]);
                i.large_latency.add_to(&mut all[3]);
            }
            self.latency_ms = Percentiles::from_micros(&all[0]);
            self.client_latency_ms = Percentiles::from_micros(&all[1]);
            self.api_latency_ms = Percentiles::from_micros(&all[2]);
            self.large_latency_ms = Percentiles::from_micros(&all[3]);
        }
        self.rows.push(row);
    }

    /// Fills in [`SoakReport::failures`].
    pub fn judge(&mut self) {
        let t = self.totals;
        let mut f = Vec::new();
        let stable = (self.options.connections - self.options.churners) as u64;
        if self.stable_opened < stable {
            f.push(format!(
                "only {} of {stable} stable connections opened",
                self.stable_opened
            ));
        }
        let checks = [
            (t.lost, "deliveries lost"),
            (t.disordered, "deliveries duplicated or out of order"),
            (t.dropped, "stable connections dropped"),
            (t.errors, "connection, subscription or server errors"),
            (t.api_errors, "API publishes failed"),
            (t.presence_errors, "presence membership errors"),
        ];
        for (n, what) in checks {
            if n > 0 {
                f.push(format!("{n} {what}"));
            }
        }
        if t.expected == 0 {
            f.push("no deliveries were owed: the load did not run".into());
        }
        let (b, a) = (self.baseline, self.after);
        if let Some(c) = a.connections.filter(|c| *c > 0) {
            f.push(format!(
                "{c} connections still open on the server after the load"
            ));
        }
        if let (Some(x), Some(y)) = (a.fds, b.fds) {
            if x > y {
                f.push(format!(
                    "descriptors leaked: {x} open after the load, {y} before"
                ));
            }
        }
        if let (Some(x), Some(y)) = (a.tasks, b.tasks) {
            if x > y {
                f.push(format!(
                    "tasks leaked: {x} alive after the load, {y} before"
                ));
            }
        }
        self.failures = f;
    }

    /// Whether the run passed.
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }
}

/// One observed process: before any connection, with the stable
/// connections open, and when the load stopped.
#[derive(Debug, Clone, Serialize)]
pub struct Observed {
    /// What it is (`node 2`, `redis`).
    pub name: String,
    /// Before any connection.
    pub baseline: crate::procstat::Sample,
    /// With the stable connections open, before the load.
    pub loaded: crate::procstat::Sample,
    /// When the load stopped.
    pub end: crate::procstat::Sample,
}

impl Observed {
    /// Memory added per stable connection, bytes.
    pub fn rss_per_connection(&self, connections: u64) -> Option<f64> {
        (connections > 0)
            .then(|| (self.loaded.rss as f64 - self.baseline.rss as f64) / connections as f64)
    }

    /// CPU microseconds of the load per change (subscription or membership).
    pub fn cpu_us_per_change(&self, changes: u64) -> Option<f64> {
        (changes > 0).then(|| {
            self.end.cpu.saturating_sub(self.loaded.cpu).as_secs_f64() * 1e6 / changes as f64
        })
    }
}

impl fmt::Display for SoakReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let o = &self.options;
        writeln!(
            f,
            "scenario     soak: {} connections ({} stable, {} churning, mean life {} s) over {} workers and {} source addresses, {} s",
            o.connections,
            o.connections - o.churners,
            o.churners,
            o.churn_hold_s,
            o.workers,
            o.sources,
            o.duration_s
        )?;
        writeln!(
            f,
            "load         {} API publishes/s to channels of {}, one to each worker's all-stable channel every {} s, {} client-event pairs at {}/s",
            o.publish_rate, o.channel_size, o.big_every_s, o.client_pairs, o.client_rate
        )?;
        writeln!(
            f,
            "ramp         {} stable connections in {:.1} s",
            self.stable_opened, self.ramp_s
        )?;
        writeln!(f, "{}", Row::header())?;
        for r in &self.rows {
            writeln!(f, "{r}")?;
        }
        let rss: Vec<f64> = self
            .rows
            .iter()
            .filter(|r| r.label != "end")
            .filter_map(|r| r.server.rss_bytes)
            .map(|b| b as f64 / 1_048_576.0)
            .collect();
        if rss.len() >= 3 {
            let (first, mid, last) = (rss[0], rss[rss.len() / 2], rss[rss.len() - 1]);
            writeln!(
                f,
                "RSS curve    {first:.1} MiB after the ramp, {mid:.1} at half time ({:+.1}), {last:.1} at the end ({:+.1} over the second half)",
                mid - first,
                last - mid
            )?;
        }
        if let Some(g) = self.rows.iter().filter_map(|r| r.generator_rss_bytes).max() {
            writeln!(
                f,
                "generator    RSS {} MiB at most ({} workers together)",
                mib(Some(g)),
                o.workers
            )?;
        }
        let t = &self.totals;
        writeln!(
            f,
            "deliveries   {} owed, {} received, {} lost, {} out of order",
            t.expected, t.received, t.lost, t.disordered
        )?;
        writeln!(
            f,
            "churn        {} connects, {} disconnects, {} subscribes, {} unsubscribes, {} presence joins, {} leaves",
            t.connects,
            t.disconnects,
            t.subscribes,
            t.unsubscribes,
            t.presence_joins,
            t.presence_leaves
        )?;
        writeln!(
            f,
            "traffic      {} API publishes ({} failed), {} client events",
            t.publishes, t.api_errors, t.client_events
        )?;
        writeln!(
            f,
            "errors       {} connection/subscription/server, {} stable dropped, {} presence",
            t.errors, t.dropped, t.presence_errors
        )?;
        let lat = |name: &str, p: Option<Percentiles>, f: &mut fmt::Formatter<'_>| match p {
            Some(p) => writeln!(
                f,
                "{name} p50 {:.2}  p99 {:.2}  p99.9 {:.2}  max {:.2}  ({} samples)",
                p.p50, p.p99, p.p999, p.max, p.count
            ),
            None => Ok(()),
        };
        lat("latency ms  ", self.latency_ms, f)?;
        lat("large ms    ", self.large_latency_ms, f)?;
        lat("client ms   ", self.client_latency_ms, f)?;
        lat("API ms      ", self.api_latency_ms, f)?;
        let s = |x: &ServerSample| {
            format!(
                "RSS {} MiB, {} descriptors, {} connections, {} tasks",
                mib(x.rss_bytes),
                num(x.fds),
                num(x.connections),
                num(x.tasks)
            )
        };
        writeln!(f, "server before  {}", s(&self.baseline))?;
        writeln!(f, "server loaded  {}", s(&self.loaded))?;
        writeln!(
            f,
            "server after   {} ({:.1} s after the last close)",
            s(&self.after),
            self.settle_s
        )?;
        let t = &self.totals;
        let membership = t.presence_joins + t.presence_leaves;
        let changes = t.subscribes + t.unsubscribes + membership;
        // A cluster's nodes share the connections evenly (one node's share
        // each); other processes are per connection of the whole run.
        let nodes = self
            .observed
            .iter()
            .filter(|o| o.name.starts_with("node"))
            .count()
            .max(1) as u64;
        for o in &self.observed {
            let conns = if o.name.starts_with("node") {
                self.stable_opened / nodes
            } else {
                self.stable_opened
            };
            writeln!(
                f,
                "{:<14} RSS {} → {} MiB ({} B per stable connection it holds), CPU {:.1} s during the load ({} µs per subscription or membership change, {} changes, {} of them presence)",
                o.name,
                mib(Some(o.baseline.rss)),
                mib(Some(o.loaded.rss)),
                o.rss_per_connection(conns)
                    .map_or("-".into(), |b| format!("{b:.0}")),
                o.end.cpu.saturating_sub(o.loaded.cpu).as_secs_f64(),
                o.cpu_us_per_change(changes)
                    .map_or("-".into(), |u| format!("{u:.1}")),
                changes,
                membership
            )?;
        }
        if self.passed() {
            writeln!(f, "verdict      passed")
        } else {
            writeln!(f, "verdict      FAILED: {}", self.failures.join("; "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> SoakReport {
        let base = ServerSample {
            fds: Some(20),
            connections: Some(0),
            tasks: Some(10),
            ..ServerSample::default()
        };
        let mut r = SoakReport::new(SoakOptions::smoke(), base);
        r.stable_opened = 260;
        r.after = base;
        let i = Interval {
            counts: Counts {
                expected: 100,
                received: 100,
                ..Counts::default()
            },
            ..Interval::default()
        };
        let row = Row::build(
            "1".into(),
            5.0,
            (base, Instant::now()),
            (base, Instant::now()),
            &[i.clone(), i.clone()],
        );
        assert_eq!(row.counts.expected, 200);
        r.add(row, &[i]);
        r
    }

    #[test]
    fn a_clean_run_passes() {
        let mut r = report();
        r.judge();
        assert!(r.passed(), "{:?}", r.failures);
        assert!(r.to_string().contains("verdict      passed"));
    }

    #[test]
    fn loss_and_leaks_fail_the_run() {
        let mut r = report();
        r.totals.lost = 1;
        r.judge();
        assert!(!r.passed());
        let mut r = report();
        r.after.fds = Some(21);
        r.judge();
        assert!(
            r.failures.iter().any(|f| f.contains("descriptors leaked")),
            "{:?}",
            r.failures
        );
        let mut r = report();
        r.after.connections = Some(3);
        r.after.tasks = Some(11);
        r.judge();
        assert_eq!(r.failures.len(), 2, "{:?}", r.failures);
        let mut r = report();
        r.stable_opened = 10;
        r.judge();
        assert!(!r.passed());
    }
}
