//! `hush bench cluster`: one hush node against a cluster of hush nodes on one
//! Redis, in the same run, with the same load.
//!
//! - **Fan-out, single vs cluster**: `--subscribers` on one public channel,
//!   events published through the HTTP API of one node at `--rate`. The
//!   single node takes everything; in the cluster the subscribers are spread
//!   over all nodes in turn and the API is node 1, so two thirds of the
//!   deliveries cross Redis. Deliveries per CPU-second count every hush node
//!   *and* the Redis server. Rounds alternate single and cluster, so a noisy
//!   neighbour on this shared machine hits both alike.
//! - **The latency Redis adds**: a few subscribers on the publishing node
//!   and a few on another node, at a low rate, measured one after the other;
//!   the difference of the medians is what the bus costs a publish.
//!
//! Redis is Debian's `redis-server`, started on a free loopback port in a
//! temporary directory (no persistence) and killed at the end; nodes are
//! `hush serve` children of this process on `sqlite::memory:` stores.

use std::net::{Ipv4Addr, TcpListener};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use hush_bench::scenarios::{self, FanoutOptions};
use hush_bench::{Report, Target};
use indicatif::ProgressBar;
use serde::Serialize;

use crate::bench::{Child, start_serve};

/// Parameters of `hush bench cluster`.
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    /// hush nodes in the cluster.
    pub nodes: usize,
    /// Subscribers of the fan-out (spread over the nodes).
    pub subscribers: usize,
    /// Events per second.
    pub rate: u32,
    /// Seconds of each fan-out run.
    pub duration: Duration,
    /// Single/cluster pairs of fan-out runs.
    pub rounds: usize,
    /// Small and quick; fails on any loss.
    pub smoke: bool,
}

/// One fan-out run's figures.
#[derive(Debug, Clone, Serialize)]
pub struct Run {
    /// `single` or `cluster`.
    pub setup: &'static str,
    /// Deliveries per CPU-second of every node and Redis.
    pub deliveries_per_cpu_s: Option<f64>,
    /// Publish-to-receive p50, ms.
    pub p50_ms: Option<f64>,
    /// Publish-to-receive p99, ms.
    pub p99_ms: Option<f64>,
    /// Deliveries lost.
    pub lost: u64,
    /// Deliveries expected.
    pub expected: u64,
    /// Memory of every node and Redis at the end, bytes.
    pub rss_bytes: Option<u64>,
}

/// What `hush bench cluster` measured.
#[derive(Debug, Clone, Serialize)]
pub struct ClusterReport {
    /// Nodes in the cluster.
    pub nodes: usize,
    /// Subscribers of the fan-out.
    pub subscribers: usize,
    /// Events per second.
    pub rate: u32,
    /// Every fan-out run, in the order run.
    pub runs: Vec<Run>,
    /// Median cluster figure over median single figure (deliveries per
    /// CPU-second).
    pub efficiency: Option<f64>,
    /// p50 latency of subscribers on the publishing node, ms.
    pub local_p50_ms: Option<f64>,
    /// p50 latency of subscribers on another node, ms.
    pub remote_p50_ms: Option<f64>,
    /// What the bus adds to a publish at the median, ms.
    pub bus_extra_p50_ms: Option<f64>,
}

/// A `redis-server` child on a free loopback port.
pub(crate) struct Redis {
    pub(crate) child: tokio::process::Child,
    port: u16,
    _dir: tempfile::TempDir,
}

fn free_port() -> anyhow::Result<u16> {
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    Ok(l.local_addr()?.port())
}

fn redis_server() -> anyhow::Result<PathBuf> {
    ["/usr/bin/redis-server", "/usr/local/bin/redis-server"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .context("redis-server not found: install Debian's redis-server package")
}

impl Redis {
    /// Starts one and waits until it accepts connections.
    pub(crate) async fn start() -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let port = free_port()?;
        let child = tokio::process::Command::new(redis_server()?)
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--loglevel", "warning"])
            .arg("--dir")
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .context("starting redis-server")?;
        for _ in 0..200 {
            if tokio::net::TcpStream::connect((Ipv4Addr::LOCALHOST, port))
                .await
                .is_ok()
            {
                return Ok(Self {
                    child,
                    port,
                    _dir: dir,
                });
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        bail!("redis-server did not listen on 127.0.0.1:{port} within 5 s")
    }

    /// Its `redis://` URL.
    pub(crate) fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

/// Starts a `hush serve` child with the bench app, `redis` naming its
/// cluster's Redis (`None`: a node alone); with `metrics`, its `/metrics`
/// too.
pub(crate) async fn node(
    key: (&str, &str, &str),
    redis: Option<&str>,
    metrics: bool,
) -> anyhow::Result<Child> {
    let exe = std::env::current_exe().context("locating the hush binary")?;
    let mut cmd = tokio::process::Command::new(exe);
    if metrics {
        cmd.env("HUSH_METRICS__ENABLED", "true")
            .env("HUSH_METRICS__HOST", "127.0.0.1")
            .env("HUSH_METRICS__PORT", "0");
    }
    cmd.env("HUSH_APPS__BENCH__ID", key.0)
        .env("HUSH_APPS__BENCH__KEY", key.1)
        .env("HUSH_APPS__BENCH__SECRET", key.2)
        .env("HUSH_APPS__BENCH__CLIENT_EVENTS", "true")
        .env("HUSH_APPS__BENCH__MAX_CLIENT_EVENTS_PER_SECOND", "1000")
        .env("HUSH_STORE__URL", "sqlite::memory:")
        .current_dir(std::env::temp_dir());
    if let Some(url) = redis {
        cmd.env("HUSH_CLUSTER__REDIS_URL", url)
            .env("HUSH_CLUSTER__PREFIX", "bench:");
    }
    start_serve(cmd, metrics).await
}

fn run_of(setup: &'static str, r: &Report) -> Run {
    Run {
        setup,
        deliveries_per_cpu_s: r.deliveries_per_server_cpu_s,
        p50_ms: r.latency_ms.map(|l| l.p50),
        p99_ms: r.latency_ms.map(|l| l.p99),
        lost: r.lost,
        expected: r.expected,
        rss_bytes: r.server_rss_bytes,
    }
}

fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    Some(v[v.len() / 2])
}

/// Runs the comparison.
pub async fn run(app: (&str, &str, &str), o: &ClusterOptions) -> anyhow::Result<ClusterReport> {
    if o.nodes < 2 {
        bail!("a cluster has at least 2 nodes");
    }
    let redis = Redis::start().await?;
    let single = node(app, None, false).await?;
    let mut nodes = Vec::with_capacity(o.nodes);
    for _ in 0..o.nodes {
        nodes.push(node(app, Some(&redis.url()), false).await?);
    }
    let pid = |c: &Child| c.child.id();
    let single_t = Target::new(single.addr, app.0, app.1, app.2, pid(&single));
    let mut cluster_t = Target::new(nodes[0].addr, app.0, app.1, app.2, pid(&nodes[0]));
    cluster_t.ws_nodes = nodes.iter().map(|n| n.addr).collect();
    cluster_t.extra_pids = nodes[1..]
        .iter()
        .filter_map(pid)
        .chain(redis.child.id())
        .collect();
    // Let the nodes see each other on the bus before the load starts.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let pb = ProgressBar::hidden();
    let fanout = |subscribers: usize, rate: u32, duration: Duration, channel: &str| FanoutOptions {
        subscribers,
        rate,
        duration,
        payload: 0,
        channel: channel.into(),
        max: false,
        max_rate: rate,
        encrypt: false,
    };
    let mut runs = Vec::new();
    for round in 0..o.rounds {
        let ch = format!("bench-cluster-{round}");
        let f = fanout(o.subscribers, o.rate, o.duration, &ch);
        let s = scenarios::fanout(&single_t, &f, &pb).await?;
        runs.push(run_of("single", &s));
        let c = scenarios::fanout(&cluster_t, &f, &pb).await?;
        runs.push(run_of("cluster", &c));
    }
    let per = |setup: &str| {
        median(
            runs.iter()
                .filter(|r| r.setup == setup)
                .filter_map(|r| r.deliveries_per_cpu_s)
                .collect(),
        )
    };
    let efficiency = per("cluster").zip(per("single")).map(|(c, s)| c / s);

    // Latency: subscribers only on node 1 (where the API is), then only on
    // node 2 (every delivery crosses Redis).
    let lat = fanout(10, 100, o.duration.min(Duration::from_secs(5)), "bench-lat");
    let mut local_t = cluster_t.clone();
    local_t.ws_nodes = vec![nodes[0].addr];
    let local = scenarios::fanout(&local_t, &lat, &pb).await?;
    let mut remote_t = cluster_t.clone();
    remote_t.ws_nodes = vec![nodes[1].addr];
    let remote = scenarios::fanout(&remote_t, &lat, &pb).await?;
    let local_p50 = local.latency_ms.map(|l| l.p50);
    let remote_p50 = remote.latency_ms.map(|l| l.p50);
    runs.push(run_of("latency-local", &local));
    runs.push(run_of("latency-remote", &remote));
    drop(nodes);
    drop(single);
    drop(redis);
    Ok(ClusterReport {
        nodes: o.nodes,
        subscribers: o.subscribers,
        rate: o.rate,
        runs,
        efficiency,
        local_p50_ms: local_p50,
        remote_p50_ms: remote_p50,
        bus_extra_p50_ms: local_p50.zip(remote_p50).map(|(l, r)| r - l),
    })
}

fn opt(v: Option<f64>, digits: usize) -> String {
    v.map_or_else(|| "-".into(), |v| format!("{v:.digits$}"))
}

/// Prints the report as a table.
pub fn print(r: &ClusterReport) {
    println!(
        "hush bench cluster: {} nodes on one Redis, {} subscribers, {} events/s",
        r.nodes, r.subscribers, r.rate
    );
    println!(
        "{:<15} {:>22} {:>9} {:>9} {:>8} {:>10}",
        "run", "deliveries/CPU-s (all)", "p50 ms", "p99 ms", "lost", "RSS MiB"
    );
    for run in &r.runs {
        println!(
            "{:<15} {:>22} {:>9} {:>9} {:>8} {:>10}",
            run.setup,
            opt(run.deliveries_per_cpu_s, 0),
            opt(run.p50_ms, 2),
            opt(run.p99_ms, 2),
            run.lost,
            opt(run.rss_bytes.map(|b| b as f64 / 1048576.0), 1),
        );
    }
    println!(
        "cluster / single deliveries per CPU-second (medians): {}",
        opt(r.efficiency, 2)
    );
    println!(
        "publish latency p50: {} ms on the publishing node, {} ms across Redis (+{} ms)",
        opt(r.local_p50_ms, 2),
        opt(r.remote_p50_ms, 2),
        opt(r.bus_extra_p50_ms, 2)
    );
}

/// Deliveries lost over every run.
pub fn lost(r: &ClusterReport) -> u64 {
    r.runs.iter().map(|x| x.lost).sum()
}
