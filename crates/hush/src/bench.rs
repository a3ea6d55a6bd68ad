//! `hush bench`: load scenarios against hush (spawned here by default) or any
//! other Pusher-protocol server on loopback.

use std::net::{SocketAddr, ToSocketAddrs};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use hush_bench::scenarios::{
    self, ChannelsOptions, ClientEventsOptions, ConnectionsOptions, FanoutOptions,
};
use hush_bench::soak::{self, Launch, SoakOptions, WorkerSpec};
use hush_bench::{Report, Target};
use indicatif::{ProgressBar, ProgressStyle};
use tokio::io::{AsyncBufReadExt, BufReader};

/// Options of `hush bench`.
#[derive(Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    scenario: Scenario,
    /// Server to load (loopback only), e.g. http://127.0.0.1:6001. Without it,
    /// a `hush serve` child process is started on a free port and measured.
    #[arg(long, global = true)]
    url: Option<String>,
    /// App id of the target server.
    #[arg(
        long,
        global = true,
        env = "HUSH_BENCH_APP_ID",
        default_value = "bench"
    )]
    app_id: String,
    /// App key of the target server.
    #[arg(
        long,
        global = true,
        env = "HUSH_BENCH_APP_KEY",
        default_value = "bench-key"
    )]
    key: String,
    /// App secret of the target server.
    #[arg(
        long,
        global = true,
        env = "HUSH_BENCH_APP_SECRET",
        default_value = "bench-secret"
    )]
    secret: String,
    /// Pid of the target server, to read its CPU time and memory from /proc.
    #[arg(long, global = true)]
    pid: Option<u32>,
    /// Print the report as JSON.
    #[arg(long, global = true)]
    json: bool,
}

#[derive(Subcommand)]
enum Scenario {
    /// Subscribers on one public channel, HTTP triggers at a fixed rate.
    Fanout {
        /// Subscribers.
        #[arg(long, default_value_t = 1000)]
        subscribers: usize,
        /// Events per second.
        #[arg(long, default_value_t = 50)]
        rate: u32,
        /// Seconds of load (per step with --max).
        #[arg(long, default_value_t = 20)]
        duration: u64,
        /// Extra payload bytes per event.
        #[arg(long, default_value_t = 0)]
        payload: usize,
        /// Raise the rate 1.5× per step until loss or p99 > 1 s.
        #[arg(long)]
        max: bool,
        /// Highest rate tried with --max.
        #[arg(long, default_value_t = 5000)]
        max_rate: u32,
        /// Small and quick (50 subscribers, 20/s for 2 s); exits non-zero on any loss.
        #[arg(long)]
        smoke: bool,
    },
    /// Fan-out on a `private-encrypted-` channel: suite 0 events sealed by the
    /// generator (as an app backend would), opened by every subscriber.
    Encrypted {
        /// Subscribers.
        #[arg(long, default_value_t = 1000)]
        subscribers: usize,
        /// Events per second.
        #[arg(long, default_value_t = 50)]
        rate: u32,
        /// Seconds of load.
        #[arg(long, default_value_t = 20)]
        duration: u64,
        /// Extra payload bytes per event (before sealing).
        #[arg(long, default_value_t = 0)]
        payload: usize,
    },
    /// Idle connections, each on its own channel: server memory and CPU per connection.
    Connections {
        /// Connections.
        #[arg(long, default_value_t = 5000)]
        count: usize,
        /// Seconds to hold them before measuring.
        #[arg(long, default_value_t = 2)]
        settle: u64,
    },
    /// Many channels with a few subscribers each, fed by batch triggers.
    Channels {
        /// Channels.
        #[arg(long, default_value_t = 1000)]
        channels: usize,
        /// Subscribers per channel.
        #[arg(long, default_value_t = 5)]
        per_channel: usize,
        /// Batch requests (10 events each) per second.
        #[arg(long, default_value_t = 20)]
        batches_per_s: u32,
        /// Seconds of load.
        #[arg(long, default_value_t = 20)]
        duration: u64,
    },
    /// Many connections for a long time (10 minutes by default) with churn,
    /// presence, client events and API publishes; reports the server's memory,
    /// descriptors, connections and tasks and the delivery latency every
    /// interval, fails on any lost delivery or on descriptors, connections
    /// or tasks left after the load. The generator re-executes this binary
    /// as worker processes (`soak-worker`).
    Soak {
        /// Connections at the peak (stable plus churning). Default: 19,000,
        /// which fits a 20,000-descriptor limit per process.
        #[arg(long)]
        connections: Option<usize>,
        /// Seconds of load.
        #[arg(long, default_value_t = 600)]
        duration: u64,
        /// Seconds between report rows.
        #[arg(long, default_value_t = 60)]
        interval: u64,
        /// Worker processes (default: one per 5,000 connections).
        #[arg(long)]
        workers: Option<usize>,
        /// Loopback source addresses 127.0.0.2.. (default: one per 5,000
        /// connections, at least 2).
        #[arg(long)]
        sources: Option<usize>,
        /// Churning connections alive at once (default: 5 % of --connections).
        #[arg(long)]
        churners: Option<usize>,
        /// Mean seconds one churning connection lives.
        #[arg(long)]
        churn_hold: Option<f64>,
        /// Stable subscribers per small channel (1..=50).
        #[arg(long)]
        channel_size: Option<usize>,
        /// API publishes per second to the small channels, in total.
        #[arg(long)]
        publish_rate: Option<f64>,
        /// Seconds between publishes to each worker's all-stable channel (0: none).
        #[arg(long)]
        big_every: Option<f64>,
        /// Client-event pairs, in total.
        #[arg(long)]
        client_pairs: Option<usize>,
        /// Client events per second per sender.
        #[arg(long)]
        client_rate: Option<f64>,
        /// The server's /metrics (connections and task gauges), with --url.
        /// Without --url the spawned server's own is used.
        #[arg(long)]
        metrics: Option<String>,
        /// Small and quick (300 connections, 15 s, a row every 5 s): CI.
        #[arg(long)]
        smoke: bool,
        /// Load a cluster of this many hush nodes on one Redis (Debian's
        /// redis-server, started here) instead of one node: each worker's
        /// WebSockets go to one node and its API publishes to the next, and
        /// every node's and Redis's memory and CPU are reported per
        /// connection and per subscription or membership change.
        #[arg(long)]
        cluster: Option<usize>,
    },
    /// One generator process of `soak` (started by it; not for direct use).
    #[command(hide = true)]
    SoakWorker {
        /// The worker's parameters, as JSON.
        #[arg(long)]
        spec: String,
    },
    /// The encrypted mailbox: enqueue, fetch and acknowledge throughput of
    /// the SQLite store, store bytes per queued message, and a device that
    /// reconnects to a queue of messages on a `hush serve` child (its own,
    /// on a file store in a temporary directory; --url is not used).
    Mailbox {
        /// Messages through the store.
        #[arg(long, default_value_t = 20_000)]
        messages: usize,
        /// Envelope bytes per message in the store part.
        #[arg(long, default_value_t = 1024)]
        size: usize,
        /// Messages queued for the reconnecting device.
        #[arg(long, default_value_t = 1000)]
        queued: usize,
    },
    /// One hush node against a cluster of nodes on one Redis (Debian's
    /// redis-server, started here), same load, alternating rounds: fan-out
    /// deliveries per CPU-second of all nodes plus Redis, latency, loss, and
    /// the latency the bus adds to a publish (--url is not used).
    Cluster {
        /// hush nodes in the cluster.
        #[arg(long, default_value_t = 3)]
        nodes: usize,
        /// Subscribers, spread over the nodes.
        #[arg(long, default_value_t = 1000)]
        subscribers: usize,
        /// Events per second.
        #[arg(long, default_value_t = 50)]
        rate: u32,
        /// Seconds of each fan-out run.
        #[arg(long, default_value_t = 10)]
        duration: u64,
        /// Single/cluster pairs of runs.
        #[arg(long, default_value_t = 3)]
        rounds: usize,
        /// Small and quick (60 subscribers, 20/s, 2 s, one round); exits
        /// non-zero on any loss.
        #[arg(long)]
        smoke: bool,
    },
    /// Client events between pairs of connections on private channels.
    ClientEvents {
        /// Pairs.
        #[arg(long, default_value_t = 100)]
        pairs: usize,
        /// Events per second per sender.
        #[arg(long, default_value_t = 5)]
        rate: u32,
        /// Seconds of load.
        #[arg(long, default_value_t = 20)]
        duration: u64,
    },
}

/// A `hush serve` child process for the bench to load.
pub(crate) struct Child {
    /// The process.
    pub(crate) child: tokio::process::Child,
    /// Where it listens.
    pub(crate) addr: SocketAddr,
    metrics: Option<SocketAddr>,
}

/// Starts `hush serve` on a free loopback port; with `metrics`, its
/// `/metrics` on another. It inherits this process's open-files limit,
/// raised to the hard limit by [`run`].
async fn spawn_server(t: &BenchArgs, metrics: bool) -> anyhow::Result<Child> {
    crate::bench_cluster::node((&t.app_id, &t.key, &t.secret), None, metrics).await
}

/// Runs `cmd` (the hush binary, with the caller's environment and working
/// directory) as `hush serve` on a free loopback port and waits until it
/// listens (and, with `metrics`, serves `/metrics`).
pub(crate) async fn start_serve(
    mut cmd: tokio::process::Command,
    metrics: bool,
) -> anyhow::Result<Child> {
    let mut child = cmd
        .args(["serve", "--port", "0", "--host", "127.0.0.1"])
        .env("HUSH_LOG", "warn")
        .env_remove("HUSH_CONFIG")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .context("starting hush serve")?;
    let stdout = child.stdout.take().context("no stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let (addr, metrics) = tokio::time::timeout(Duration::from_secs(10), async {
        let mut addr = None;
        while let Some(line) = lines.next_line().await? {
            if let Some(a) = line.strip_prefix("hush listening on ") {
                let a = a
                    .trim()
                    .parse::<SocketAddr>()
                    .context("parsing the listen address")?;
                if !metrics {
                    return Ok((a, None));
                }
                addr = Some(a);
            } else if let Some(m) = line.strip_prefix("metrics on http://") {
                let m = m
                    .trim()
                    .trim_end_matches("/metrics")
                    .parse::<SocketAddr>()
                    .context("parsing the metrics address")?;
                if let Some(a) = addr {
                    return Ok((a, Some(m)));
                }
            }
        }
        bail!("hush serve exited before listening")
    })
    .await
    .context("hush serve did not start within 10 s")??;
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Ok(Child {
        child,
        addr,
        metrics,
    })
}

fn parse_url(url: &str) -> anyhow::Result<SocketAddr> {
    let hostport = url
        .trim_start_matches("http://")
        .trim_start_matches("ws://")
        .trim_end_matches('/');
    hostport
        .to_socket_addrs()
        .with_context(|| format!("resolving {url}"))?
        .next()
        .context("no address")
}

/// Runs `hush bench`.
pub fn run(args: BenchArgs) -> anyhow::Result<()> {
    let limit = hush_bench::raise_nofile_limit();
    if let Scenario::SoakWorker { spec } = &args.scenario {
        return soak_worker(spec);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    if matches!(args.scenario, Scenario::Soak { .. }) {
        return rt.block_on(soak(&args, limit));
    }
    if let Scenario::Cluster {
        nodes,
        subscribers,
        rate,
        duration,
        rounds,
        smoke,
    } = &args.scenario
    {
        let o = if *smoke {
            crate::bench_cluster::ClusterOptions {
                nodes: *nodes,
                subscribers: 60,
                rate: 20,
                duration: Duration::from_secs(2),
                rounds: 1,
                smoke: true,
            }
        } else {
            crate::bench_cluster::ClusterOptions {
                nodes: *nodes,
                subscribers: *subscribers,
                rate: *rate,
                duration: Duration::from_secs(*duration),
                rounds: (*rounds).max(1),
                smoke: false,
            }
        };
        let app = (
            args.app_id.as_str(),
            args.key.as_str(),
            args.secret.as_str(),
        );
        let r = rt.block_on(crate::bench_cluster::run(app, &o))?;
        if args.json {
            println!("{}", serde_json::to_string_pretty(&r)?);
        } else {
            crate::bench_cluster::print(&r);
        }
        let lost = crate::bench_cluster::lost(&r);
        if o.smoke && lost > 0 {
            bail!("{lost} deliveries lost");
        }
        return Ok(());
    }
    if let Scenario::Mailbox {
        messages,
        size,
        queued,
    } = &args.scenario
    {
        let exe = std::env::current_exe().context("locating the hush binary")?;
        let o = crate::bench_mailbox::MailboxOptions {
            messages: *messages,
            size: *size,
            queued: *queued,
        };
        let r = rt.block_on(crate::bench_mailbox::run(&exe, &args.key, &args.secret, &o))?;
        if args.json {
            println!("{}", serde_json::to_string_pretty(&r)?);
        } else {
            crate::bench_mailbox::print(&r);
        }
        return Ok(());
    }
    let report = rt.block_on(async {
        let mut child = None;
        let (addr, pid) = match &args.url {
            Some(u) => (parse_url(u)?, args.pid),
            None => {
                let c = spawn_server(&args, false).await?;
                let pid = c.child.id();
                let addr = c.addr;
                child = Some(c);
                (addr, pid)
            }
        };
        let target = Target::new(addr, &args.app_id, &args.key, &args.secret, pid);
        let pb = if args.json {
            ProgressBar::hidden()
        } else {
            ProgressBar::new(0)
        };
        pb.set_style(
            ProgressStyle::with_template("{spinner} {msg} [{bar:30}] {pos}/{len}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        let secs = Duration::from_secs;
        let report = match &args.scenario {
            Scenario::Fanout {
                subscribers,
                rate,
                duration,
                payload,
                max,
                max_rate,
                smoke,
            } => {
                let o = if *smoke {
                    FanoutOptions {
                        subscribers: 50,
                        rate: 20,
                        duration: secs(2),
                        payload: *payload,
                        channel: "bench-fanout".into(),
                        max: false,
                        max_rate: *max_rate,
                        encrypt: false,
                    }
                } else {
                    FanoutOptions {
                        subscribers: *subscribers,
                        rate: *rate,
                        duration: secs(*duration),
                        payload: *payload,
                        channel: "bench-fanout".into(),
                        max: *max,
                        max_rate: *max_rate,
                        encrypt: false,
                    }
                };
                if o.subscribers as u64 + 64 > limit && limit > 0 {
                    bail!(
                        "open-files limit {limit} is too low for {} subscribers",
                        o.subscribers
                    );
                }
                scenarios::fanout(&target, &o, &pb).await?
            }
            Scenario::Encrypted {
                subscribers,
                rate,
                duration,
                payload,
            } => {
                if *subscribers as u64 + 64 > limit && limit > 0 {
                    bail!("open-files limit {limit} is too low for {subscribers} subscribers");
                }
                let o = FanoutOptions {
                    subscribers: *subscribers,
                    rate: *rate,
                    duration: secs(*duration),
                    payload: *payload,
                    channel: "private-encrypted-bench".into(),
                    max: false,
                    max_rate: *rate,
                    encrypt: true,
                };
                scenarios::fanout(&target, &o, &pb).await?
            }
            Scenario::Connections { count, settle } => {
                scenarios::connections(
                    &target,
                    &ConnectionsOptions {
                        count: *count,
                        settle: secs(*settle),
                    },
                    &pb,
                )
                .await?
            }
            Scenario::Channels {
                channels,
                per_channel,
                batches_per_s,
                duration,
            } => {
                let o = ChannelsOptions {
                    channels: *channels,
                    per_channel: *per_channel,
                    batches_per_s: *batches_per_s,
                    duration: secs(*duration),
                };
                scenarios::channels(&target, &o, &pb).await?
            }
            Scenario::Soak { .. }
            | Scenario::SoakWorker { .. }
            | Scenario::Mailbox { .. }
            | Scenario::Cluster { .. } => {
                unreachable!("handled before")
            }
            Scenario::ClientEvents {
                pairs,
                rate,
                duration,
            } => {
                scenarios::client_events(
                    &target,
                    &ClientEventsOptions {
                        pairs: *pairs,
                        rate: *rate,
                        duration: secs(*duration),
                    },
                    &pb,
                )
                .await?
            }
        };
        if let Some(mut c) = child {
            let _ = c.child.start_kill();
            let _ = c.child.wait().await;
        }
        Ok::<Report, anyhow::Error>(report)
    })?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{report}");
    }
    let ramp = matches!(args.scenario, Scenario::Fanout { max: true, .. });
    if report.lost > 0 && !ramp {
        bail!("{} of {} deliveries lost", report.lost, report.expected);
    }
    Ok(())
}

/// One soak generator process: a single-threaded runtime (the load is
/// split over processes, not threads).
fn soak_worker(spec: &str) -> anyhow::Result<()> {
    let spec: WorkerSpec = serde_json::from_str(spec).context("reading --spec")?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(soak::worker::run(spec))?;
    Ok(())
}

/// The soak's options from the command line.
fn soak_options(s: &Scenario) -> anyhow::Result<SoakOptions> {
    let Scenario::Soak {
        connections,
        duration,
        interval,
        workers,
        sources,
        churners,
        churn_hold,
        channel_size,
        publish_rate,
        big_every,
        client_pairs,
        client_rate,
        smoke,
        ..
    } = s
    else {
        bail!("not a soak");
    };
    let mut o = if *smoke {
        SoakOptions::smoke()
    } else {
        SoakOptions::for_connections(connections.unwrap_or(19_000), *duration, *interval)
    };
    if *smoke {
        o.connections = connections.unwrap_or(o.connections);
    }
    o.workers = workers.unwrap_or(o.workers);
    o.sources = sources.unwrap_or(o.sources);
    o.churners = churners.unwrap_or(o.churners);
    o.churn_hold_s = churn_hold.unwrap_or(o.churn_hold_s);
    o.channel_size = channel_size.unwrap_or(o.channel_size);
    o.publish_rate = publish_rate.unwrap_or(o.publish_rate);
    o.big_every_s = big_every.unwrap_or(o.big_every_s);
    o.client_pairs = client_pairs.unwrap_or(o.client_pairs);
    o.client_rate = client_rate.unwrap_or(o.client_rate);
    o.validate()?;
    Ok(o)
}

/// `hush bench soak`: starts the server (unless --url), runs the soak,
/// prints the report and fails on any loss or leak.
async fn soak(args: &BenchArgs, limit: u64) -> anyhow::Result<()> {
    let o = soak_options(&args.scenario)?;
    let cluster = match &args.scenario {
        Scenario::Soak {
            cluster: Some(n), ..
        } => *n,
        _ => 0,
    };
    // Every process (each server, which inherits this limit, and each
    // worker) needs its connections plus a reserve for its own files; a
    // cluster's nodes share the connections.
    let reserve = 200;
    let per_server = o.connections.div_ceil(cluster.max(1));
    if limit > 0 && (o.per_worker() as u64 + reserve > limit || per_server as u64 + reserve > limit)
    {
        bail!(
            "open-files limit {limit} is too low for {} connections ({} per worker): raise the hard limit (ulimit -Hn) or lower --connections",
            o.connections,
            o.per_worker()
        );
    }
    if cluster > 0 {
        return soak_cluster(args, &o, cluster).await;
    }
    let mut child = None;
    let (addr, pid, metrics) = match &args.url {
        Some(u) => {
            let m = match &args.scenario {
                Scenario::Soak {
                    metrics: Some(m), ..
                } => Some(parse_url(m.trim_end_matches("/metrics"))?),
                _ => None,
            };
            (parse_url(u)?, args.pid, m)
        }
        None => {
            let c = spawn_server(args, true).await?;
            let r = (c.addr, c.child.id(), c.metrics);
            child = Some(c);
            r
        }
    };
    let target = Target::new(addr, &args.app_id, &args.key, &args.secret, pid);
    let launch = Launch {
        exe: std::env::current_exe().context("locating the hush binary")?,
        args: vec!["bench".into(), "soak-worker".into()],
        metrics,
        observe: Vec::new(),
    };
    let result = run_soak(args, &target, &o, &launch).await;
    if let Some(mut c) = child {
        let _ = c.child.start_kill();
        let _ = c.child.wait().await;
    }
    print_soak(args, result?)
}

/// `hush bench soak --cluster N`: the soak over `n` nodes on one Redis.
async fn soak_cluster(args: &BenchArgs, o: &SoakOptions, n: usize) -> anyhow::Result<()> {
    if n < 2 {
        bail!("--cluster needs at least 2 nodes");
    }
    let app = (
        args.app_id.as_str(),
        args.key.as_str(),
        args.secret.as_str(),
    );
    let redis = crate::bench_cluster::Redis::start().await?;
    let mut nodes = Vec::with_capacity(n);
    for _ in 0..n {
        nodes.push(crate::bench_cluster::node(app, Some(&redis.url()), true).await?);
    }
    let mut target = Target::new(nodes[0].addr, app.0, app.1, app.2, nodes[0].child.id());
    target.ws_nodes = nodes.iter().map(|c| c.addr).collect();
    let mut observe: Vec<(String, u32)> = nodes
        .iter()
        .enumerate()
        .filter_map(|(i, c)| Some((format!("node {}", i + 1), c.child.id()?)))
        .collect();
    observe.extend(redis.child.id().map(|p| ("redis".to_owned(), p)));
    let launch = Launch {
        exe: std::env::current_exe().context("locating the hush binary")?,
        args: vec!["bench".into(), "soak-worker".into()],
        metrics: nodes[0].metrics,
        observe,
    };
    let result = run_soak(args, &target, o, &launch).await;
    drop(nodes);
    drop(redis);
    print_soak(args, result?)
}

async fn run_soak(
    args: &BenchArgs,
    target: &Target,
    o: &SoakOptions,
    launch: &Launch,
) -> Result<soak::SoakReport, hush_bench::BenchError> {
    let pb = if args.json {
        ProgressBar::hidden()
    } else {
        ProgressBar::new_spinner()
    };
    soak::soak(target, o, launch, &pb).await
}

fn print_soak(args: &BenchArgs, report: soak::SoakReport) -> anyhow::Result<()> {
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{report}");
    }
    if !report.passed() {
        bail!("soak failed: {}", report.failures.join("; "));
    }
    Ok(())
}
