//! `hush bench soak`: many connections on one node for a long time, with
//! churn (connect/disconnect, subscribe/unsubscribe), presence joins and
//! leaves, client events and API publishes, checked every interval (server
//! memory, descriptors, connections, tasks; deliveries owed against
//! received; latency) and after the load stops (connections, descriptors
//! and tasks back to their baseline).
//!
//! The generator is split over worker processes (the bench re-executes
//! itself; see [`Launch`]) so that no process needs more descriptors than
//! its limit allows, and each worker connects from several 127.0.0.x source
//! addresses so that no address runs out of ephemeral ports. A coordinator
//! drives them over their stdin/stdout ([`wire`]) on one clock.

pub mod account;
pub mod frame;
pub mod probe;
pub mod report;
pub mod session;
pub mod stats;
pub mod wire;
pub mod worker;

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use indicatif::ProgressBar;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin};
use tokio::sync::mpsc;

use crate::{BenchError, Target};
pub use report::{Row, SoakReport};
use wire::{Command, Interval, Report};

/// Microseconds since the Unix epoch (the clock every process shares).
pub fn now_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// Parameters of a soak run (also sent to every worker).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SoakOptions {
    /// Connections at the peak: stable ones plus churners.
    pub connections: usize,
    /// Worker processes the generator is split over.
    pub workers: usize,
    /// Loopback source addresses (127.0.0.2, 127.0.0.3, …); 0 connects
    /// from the kernel's choice (one address).
    pub sources: usize,
    /// Seconds of load.
    pub duration_s: u64,
    /// Seconds between two report rows.
    pub interval_s: u64,
    /// Churn connections alive at once (each connects, subscribes,
    /// unsubscribes and disconnects again and again).
    pub churners: usize,
    /// Mean seconds one churn connection lives.
    pub churn_hold_s: f64,
    /// Stable subscribers per small channel (one in five small channels is
    /// private, one presence).
    pub channel_size: usize,
    /// API publishes per second to the small channels, all workers together.
    pub publish_rate: f64,
    /// Seconds between two API publishes to each worker's large channel
    /// (every stable connection of the worker); 0 for none.
    pub big_every_s: f64,
    /// Pairs of stable connections exchanging client events on a private
    /// channel.
    pub client_pairs: usize,
    /// Client events per second per sender.
    pub client_rate: f64,
}

impl SoakOptions {
    /// The full run: as many connections as a 20,000-descriptor limit per
    /// process allows, 10 minutes.
    pub fn full() -> Self {
        Self::for_connections(19_000, 600, 60)
    }

    /// Defaults scaled to `connections`.
    pub fn for_connections(connections: usize, duration_s: u64, interval_s: u64) -> Self {
        let per_process = 5_000;
        Self {
            connections,
            workers: connections.div_ceil(per_process).max(1),
            sources: connections.div_ceil(per_process).max(2),
            duration_s,
            interval_s,
            churners: connections / 20,
            churn_hold_s: 10.0,
            channel_size: 20,
            publish_rate: 200.0,
            big_every_s: 10.0,
            client_pairs: (connections / 100).min(500),
            client_rate: 1.0,
        }
    }

    /// A few hundred connections for about 20 seconds (CI).
    pub fn smoke() -> Self {
        Self {
            connections: 300,
            workers: 2,
            sources: 2,
            duration_s: 15,
            interval_s: 5,
            churners: 40,
            churn_hold_s: 2.0,
            channel_size: 10,
            publish_rate: 40.0,
            big_every_s: 2.0,
            client_pairs: 10,
            client_rate: 2.0,
        }
    }

    /// Checks the parameters fit together.
    pub fn validate(&self) -> Result<(), BenchError> {
        let bad = |m: &str| Err(BenchError::Protocol(format!("soak options: {m}")));
        if self.connections == 0 || self.churners >= self.connections {
            return bad("need connections > churners");
        }
        if self.workers == 0 || self.workers > 256 {
            return bad("workers must be 1..=256");
        }
        if self.sources > 250 {
            return bad("at most 250 source addresses (127.0.0.2 ..)");
        }
        if self.channel_size == 0 || self.channel_size > 50 {
            return bad("channel size must be 1..=50 (presence channels hold at most 100 members)");
        }
        if self.duration_s == 0 || self.interval_s == 0 {
            return bad("duration and interval must be at least 1 s");
        }
        let rates = [
            self.churn_hold_s,
            self.publish_rate,
            self.big_every_s,
            self.client_rate,
        ];
        if rates.iter().any(|r| !r.is_finite() || *r < 0.0) || self.churn_hold_s < 0.1 {
            return bad("rates must be finite and non-negative, churn hold at least 0.1 s");
        }
        Ok(())
    }

    /// The loopback source addresses workers connect from, for a server on
    /// `server` (none for an IPv6 server: ::1 is a single address).
    pub fn source_addrs(&self, server: IpAddr) -> Vec<IpAddr> {
        if !server.is_ipv4() {
            return Vec::new();
        }
        (0..self.sources)
            .map(|i| IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2 + i as u8)))
            .collect()
    }

    /// Most connections one worker holds at once.
    pub fn per_worker(&self) -> usize {
        self.connections.div_ceil(self.workers.max(1))
    }
}

/// What a worker process is told on its command line.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct WorkerSpec {
    /// Server address (of the node this worker's WebSockets connect to).
    pub addr: SocketAddr,
    /// Where its API requests go when not to `addr` (a cluster: another
    /// node, so every publish crosses the bus).
    #[serde(default)]
    pub api_addr: Option<SocketAddr>,
    /// App id.
    pub app_id: String,
    /// App key.
    pub key: String,
    /// App secret.
    pub secret: String,
    /// This worker's index (0-based).
    pub index: usize,
    /// The run's parameters.
    pub options: SoakOptions,
}

/// How the coordinator starts a worker process: `exe args… --spec JSON`
/// (for `hush`: `hush bench soak-worker --spec …`), and where the server's
/// `/metrics` is, if anywhere.
#[derive(Debug, Clone)]
pub struct Launch {
    /// The executable.
    pub exe: PathBuf,
    /// Arguments before `--spec`.
    pub args: Vec<String>,
    /// The server's Prometheus endpoint.
    pub metrics: Option<SocketAddr>,
    /// Other processes to account for (a cluster's nodes, its Redis): their
    /// CPU time and memory before, during and after the load.
    pub observe: Vec<(String, u32)>,
}

/// How long the soak waits for the server to return to its baseline after
/// the load.
const SETTLE: Duration = Duration::from_secs(30);

struct Workers {
    children: Vec<Child>,
    stdins: Vec<ChildStdin>,
    reports: mpsc::UnboundedReceiver<(usize, Report)>,
}

impl Workers {
    fn spawn(t: &Target, o: &SoakOptions, launch: &Launch) -> Result<Self, BenchError> {
        let (tx, reports) = mpsc::unbounded_channel();
        let mut children = Vec::new();
        let mut stdins = Vec::new();
        for index in 0..o.workers {
            let spec = WorkerSpec {
                addr: t.ws_target(index).addr,
                api_addr: (!t.ws_nodes.is_empty()).then(|| t.ws_target(index + 1).addr),
                app_id: t.app_id.clone(),
                key: t.key.clone(),
                secret: t.secret.clone(),
                index,
                options: o.clone(),
            };
            let spec =
                serde_json::to_string(&spec).map_err(|e| BenchError::Protocol(e.to_string()))?;
            let mut child = tokio::process::Command::new(&launch.exe)
                .args(&launch.args)
                .arg("--spec")
                .arg(spec)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .kill_on_drop(true)
                .spawn()?;
            let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
                return Err(BenchError::Protocol("worker without stdin/stdout".into()));
            };
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut lines = BufReader::new(stdout).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    let r = serde_json::from_str(&line).unwrap_or_else(|_| Report::Failed {
                        error: format!("unreadable report {line:?}"),
                    });
                    let _ = tx.send((index, r));
                }
                let _ = tx.send((
                    index,
                    Report::Failed {
                        error: "exited".into(),
                    },
                ));
            });
            children.push(child);
            stdins.push(stdin);
        }
        Ok(Self {
            children,
            stdins,
            reports,
        })
    }

    async fn send(&mut self, c: Command) -> Result<(), BenchError> {
        for s in &mut self.stdins {
            s.write_all(c.line().as_bytes()).await?;
            s.flush().await?;
        }
        Ok(())
    }

    /// The next report of every worker, in worker order.
    async fn gather(&mut self, timeout: Duration, what: &str) -> Result<Vec<Report>, BenchError> {
        let n = self.stdins.len();
        let mut got: BTreeMap<usize, Report> = BTreeMap::new();
        let deadline = tokio::time::Instant::now() + timeout;
        while got.len() < n {
            let next = tokio::time::timeout_at(deadline, self.reports.recv())
                .await
                .map_err(|_| {
                    BenchError::Protocol(format!(
                        "workers did not report ({what}) within {timeout:?}"
                    ))
                })?;
            match next {
                Some((k, Report::Failed { error })) => {
                    if !got.contains_key(&k) {
                        return Err(BenchError::Protocol(format!(
                            "worker {k} failed ({what}): {error}"
                        )));
                    }
                }
                Some((k, r)) => {
                    got.insert(k, r);
                }
                None => return Err(BenchError::Protocol("workers gone".into())),
            }
        }
        Ok(got.into_values().collect())
    }

    /// Resident memory and CPU time of the worker processes together.
    fn sample(&self) -> Option<crate::procstat::Sample> {
        let all: Option<Vec<_>> = self
            .children
            .iter()
            .map(|c| c.id().and_then(|p| crate::procstat::sample(Some(p))))
            .collect();
        all.map(|v| crate::procstat::Sample {
            cpu: v.iter().map(|s| s.cpu).sum(),
            rss: v.iter().map(|s| s.rss).sum(),
        })
    }

    /// Fills in the generator's figures of `row` (CPU since `prev`, which
    /// becomes now).
    fn measure(&self, row: &mut Row, prev: &mut Option<(Duration, Instant)>) {
        let now = self.sample();
        row.generator_rss_bytes = now.map(|s| s.rss);
        if let (Some(s), Some((cpu, at))) = (now, *prev) {
            let dt = at.elapsed().as_secs_f64();
            if dt > 0.0 {
                row.generator_cpu_pct = Some(s.cpu.saturating_sub(cpu).as_secs_f64() * 100.0 / dt);
            }
        }
        *prev = now.map(|s| (s.cpu, Instant::now()));
    }

    fn intervals(reports: Vec<Report>) -> Result<Vec<Interval>, BenchError> {
        reports
            .into_iter()
            .map(|r| match r {
                Report::Interval(i) => Ok(*i),
                other => Err(BenchError::Protocol(format!(
                    "expected an interval, got {other:?}"
                ))),
            })
            .collect()
    }

    async fn wait(mut self) {
        for c in &mut self.children {
            if tokio::time::timeout(Duration::from_secs(10), c.wait())
                .await
                .is_err()
            {
                let _ = c.start_kill();
            }
        }
    }
}

/// Runs the soak against `t`, starting its workers with `launch`.
pub async fn soak(
    t: &Target,
    o: &SoakOptions,
    launch: &Launch,
    pb: &ProgressBar,
) -> Result<SoakReport, BenchError> {
    t.check()?;
    o.validate()?;
    let pid = t.pid;
    let baseline = steady(pid, launch.metrics).await;
    let started = Instant::now();
    let mut r = SoakReport::new(o.clone(), baseline);
    let observe0 = observe(launch);
    let mut workers = Workers::spawn(t, o, launch)?;
    pb.set_message(format!(
        "opening {} stable connections",
        o.connections - o.churners
    ));
    // A generous bound for opening the stable connections (≈ 1000/s here).
    let ramp_timeout = Duration::from_secs(60 + o.connections as u64 / 50);
    let ready = workers.gather(ramp_timeout, "ramp").await?;
    let mut ramp = Vec::new();
    for x in ready {
        if let Report::Ready { open, ramp: i } = x {
            r.stable_opened += open;
            ramp.push(*i);
        }
    }
    r.ramp_s = started.elapsed().as_secs_f64();
    r.loaded = probe::sample(pid, launch.metrics).await;
    let observe1 = observe(launch);
    let mut row = Row::build(
        "ramp".into(),
        0.0,
        (r.loaded, Instant::now()),
        (baseline, started),
        &ramp,
    );
    let mut gen_prev = None;
    workers.measure(&mut row, &mut gen_prev);
    r.add(row, &ramp);
    eprintln!(
        "soak: {} stable connections open in {:.1} s; server RSS {:.1} MiB, {} descriptors",
        r.stable_opened,
        r.ramp_s,
        mib(r.loaded.rss_bytes),
        r.loaded.fds.map_or("?".into(), |f| f.to_string())
    );
    eprintln!("{}", report::Row::header());
    if let Some(row) = r.rows.last() {
        eprintln!("{row}");
    }
    workers.send(Command::Start).await?;
    let t0 = tokio::time::Instant::now();
    let load_start = Instant::now();
    let duration = Duration::from_secs(o.duration_s);
    let interval = Duration::from_secs(o.interval_s);
    let mut prev = (r.loaded, Instant::now());
    let mut k = 1u32;
    pb.set_message("load running");
    while interval * k < duration {
        tokio::time::sleep_until(t0 + interval * k).await;
        workers.send(Command::Tick).await?;
        let sample = probe::sample(pid, launch.metrics).await;
        let now = Instant::now();
        let got = Workers::intervals(workers.gather(Duration::from_secs(60), "tick").await?)?;
        let mut row = Row::build(
            format!("{}", k),
            load_start.elapsed().as_secs_f64(),
            (sample, now),
            prev,
            &got,
        );
        workers.measure(&mut row, &mut gen_prev);
        eprintln!("{row}");
        r.add(row, &got);
        prev = (sample, now);
        k += 1;
    }
    tokio::time::sleep_until(t0 + duration).await;
    workers.send(Command::Stop).await?;
    let observe2 = observe(launch);
    r.observed = launch
        .observe
        .iter()
        .zip(observe0.into_iter().zip(observe1).zip(observe2))
        .filter_map(|((name, _), ((a, b), c))| {
            Some(report::Observed {
                name: name.clone(),
                baseline: a?,
                loaded: b?,
                end: c?,
            })
        })
        .collect();
    let sample = probe::sample(pid, launch.metrics).await;
    let now = Instant::now();
    let got = Workers::intervals(workers.gather(Duration::from_secs(300), "stop").await?)?;
    let mut row = Row::build(
        "end".into(),
        load_start.elapsed().as_secs_f64(),
        (sample, now),
        prev,
        &got,
    );
    workers.measure(&mut row, &mut gen_prev);
    eprintln!("{row}");
    r.add(row, &got);
    r.load_s = load_start.elapsed().as_secs_f64();
    pb.set_message("closing");
    workers.send(Command::Close).await?;
    workers.gather(Duration::from_secs(120), "close").await?;
    workers.wait().await;
    let closed = Instant::now();
    pb.set_message("waiting for the server to settle");
    let mut after = probe::sample(pid, launch.metrics).await;
    while closed.elapsed() < SETTLE && !settled(&baseline, &after) {
        tokio::time::sleep(Duration::from_millis(500)).await;
        after = probe::sample(pid, launch.metrics).await;
    }
    r.settle_s = closed.elapsed().as_secs_f64();
    r.after = after;
    r.judge();
    pb.finish_and_clear();
    Ok(r)
}

/// A sample of every observed process, in [`Launch::observe`]'s order.
fn observe(launch: &Launch) -> Vec<Option<crate::procstat::Sample>> {
    launch
        .observe
        .iter()
        .map(|(_, pid)| crate::procstat::sample(Some(*pid)))
        .collect()
}

/// The server's baseline: sampled until two samples half a second apart
/// agree on descriptors and tasks (a server that just started may still be
/// starting a background task), for at most five seconds.
async fn steady(pid: Option<u32>, metrics: Option<SocketAddr>) -> probe::ServerSample {
    let mut last = probe::sample(pid, metrics).await;
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = probe::sample(pid, metrics).await;
        let same = now.fds == last.fds && now.tasks == last.tasks;
        last = now;
        if same {
            break;
        }
    }
    last
}

/// Whether the server is back to its baseline: no connections, no more
/// descriptors or tasks than before the load (each as far as readable).
pub fn settled(baseline: &probe::ServerSample, now: &probe::ServerSample) -> bool {
    let le = |a: Option<u64>, b: Option<u64>| match (a, b) {
        (Some(now), Some(base)) => now <= base,
        _ => true,
    };
    now.connections.is_none_or(|c| c == 0)
        && le(now.fds, baseline.fds)
        && le(now.tasks, baseline.tasks)
}

fn mib(b: Option<u64>) -> f64 {
    b.map_or(0.0, |b| b as f64 / 1_048_576.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use probe::ServerSample;

    #[test]
    fn defaults_are_valid_and_scale() {
        for o in [
            SoakOptions::full(),
            SoakOptions::smoke(),
            SoakOptions::for_connections(100_000, 600, 60),
        ] {
            assert!(o.validate().is_ok(), "{o:?}");
            assert!(o.per_worker() <= 5_000, "{o:?}");
        }
        let big = SoakOptions::for_connections(100_000, 600, 60);
        assert_eq!(big.workers, 20);
        assert_eq!(
            big.source_addrs(
                "127.0.0.1"
                    .parse()
                    .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST))
            )
            .len(),
            20
        );
        let mut bad = SoakOptions::smoke();
        bad.churners = bad.connections;
        assert!(bad.validate().is_err());
        bad = SoakOptions::smoke();
        bad.channel_size = 99;
        assert!(bad.validate().is_err());
    }

    #[test]
    fn settling_needs_every_readable_gauge_back_at_baseline() {
        let base = ServerSample {
            fds: Some(20),
            connections: Some(0),
            tasks: Some(12),
            ..ServerSample::default()
        };
        assert!(settled(&base, &base));
        let leak = ServerSample {
            fds: Some(21),
            ..base
        };
        assert!(!settled(&base, &leak));
        let conns = ServerSample {
            connections: Some(1),
            ..base
        };
        assert!(!settled(&base, &conns));
        let tasks = ServerSample {
            tasks: Some(13),
            ..base
        };
        assert!(!settled(&base, &tasks));
        let unreadable = ServerSample::default();
        assert!(settled(&base, &unreadable));
    }
}
