//! The load scenarios.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use hush_protocol::msgs::{ClientMessage, RawJson, names};
use indicatif::ProgressBar;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

use crate::http::ApiClient;
use crate::procstat::{self, Sample};
use crate::report::{Percentiles, Report};
use crate::ws::{self, Conn, extract_num};
use crate::{BenchError, Target};

/// How long to wait for stragglers after the load stops.
const GRACE: Duration = Duration::from_secs(3);
/// Connections opened at once.
const CONNECT_CONCURRENCY: usize = 64;
/// Most API connections publishing side by side in the fan-out scenarios.
const PUBLISHERS: usize = 4;
/// Events per second one publishing connection is asked for before another
/// one joins.
const RATE_PER_PUBLISHER: u32 = 100;

fn now_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

fn histogram() -> Histogram<u64> {
    // 1 µs .. 100 s, 3 significant digits; these bounds are valid constants.
    Histogram::new_with_bounds(1, 100_000_000, 3)
        .unwrap_or_else(|_| unreachable!("valid histogram bounds"))
}

/// Samples the server and this process before and after a run.
struct Meter {
    pids: Vec<u32>,
    server0: Option<Sample>,
    self0: Option<Sample>,
    t0: Instant,
}

impl Meter {
    fn start(t: &Target) -> Self {
        let pids = t.pids();
        Self {
            server0: procstat::sample_all(&pids),
            pids,
            self0: procstat::sample(None),
            t0: Instant::now(),
        }
    }

    /// A report of a delivery scenario: counts, loss, latencies, then the
    /// meter's CPU and memory readings. `load` is how long the load ran.
    #[allow(clippy::too_many_arguments)]
    fn deliveries(
        &self,
        scenario: &str,
        params: serde_json::Value,
        sent: u64,
        expected: u64,
        delivered: u64,
        latency: &Histogram<u64>,
        api: Option<&Histogram<u64>>,
        load: Duration,
    ) -> Report {
        let mut r = Report {
            scenario: scenario.into(),
            params,
            sent,
            expected,
            delivered,
            lost: expected.saturating_sub(delivered),
            latency_ms: Percentiles::from_micros(latency),
            api_latency_ms: api.and_then(Percentiles::from_micros),
            deliveries_per_s: delivered as f64 / load.as_secs_f64(),
            ..Report::default()
        };
        self.finish(&mut r);
        r
    }

    fn finish(&self, r: &mut Report) {
        r.duration_s = self.t0.elapsed().as_secs_f64();
        if let (Some(a), Some(b)) = (self.server0, procstat::sample_all(&self.pids)) {
            let cpu = b.cpu.saturating_sub(a.cpu).as_secs_f64();
            r.server_cpu_s = Some(cpu);
            r.server_rss_bytes = Some(b.rss);
            if r.delivered > 0 && cpu > 0.0 {
                r.deliveries_per_server_cpu_s = Some(r.delivered as f64 / cpu);
                r.server_cpu_s_per_million = Some(cpu * 1e6 / r.delivered as f64);
            }
        }
        if let (Some(a), Some(b)) = (self.self0, procstat::sample(None)) {
            r.bench_cpu_s = b.cpu.saturating_sub(a.cpu).as_secs_f64();
        }
    }
}

/// Opens `n` connections, each subscribed to `channel_of(i)`.
async fn open_many(
    t: &Target,
    n: usize,
    channel_of: impl Fn(usize) -> String,
    pb: &ProgressBar,
) -> Result<Vec<Conn>, BenchError> {
    pb.set_length(n as u64);
    pb.set_position(0);
    pb.set_message("connecting");
    let mut conns = Vec::with_capacity(n);
    let names: Vec<(Target, String)> = (0..n).map(|i| (t.ws_target(i), channel_of(i))).collect();
    for chunk in names.chunks(CONNECT_CONCURRENCY) {
        let opened = futures_util::future::join_all(chunk.iter().map(|(t, ch)| async move {
            let mut c = ws::connect(t).await?;
            c.subscribe(t, ch).await?;
            Ok::<_, BenchError>(c)
        }))
        .await;
        for c in opened {
            conns.push(c?);
            pb.inc(1);
        }
    }
    Ok(conns)
}

/// Opens a sealed event frame and reads the timestamp inside; `None` if it
/// does not open (counted as not delivered).
fn open_stamp(key: &hush_crypto::ChannelKey, frame: &str) -> Option<u64> {
    let v: serde_json::Value = serde_json::from_str(frame).ok()?;
    let plain = hush_crypto::open(key, v["data"].as_str()?).ok()?;
    extract_num(std::str::from_utf8(&plain).ok()?, "t")
}

/// Latency histograms shared by the readers, swapped out at the end of each
/// step. A few shards, not one per reader: a 3-digit histogram over
/// 1 µs..100 s is ≈ 220 KiB, so one per connection made every `record` a
/// cache miss and every step's merge a scan of hundreds of MiB, all billed
/// to the generator that shares the server's cores.
type Stats = Arc<Vec<Mutex<(Histogram<u64>, u64)>>>;

/// Histogram shards; readers pick one by index.
const SHARDS: usize = 8;

/// Readers that record the latency of every `event` they receive.
struct Readers {
    stats: Stats,
    total: Arc<AtomicU64>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Readers {
    fn spawn(conns: Vec<Conn>, event: &'static str) -> Self {
        Self::spawn_with_key(conns, event, None)
    }

    /// Like [`Readers::spawn`]; with a key, every event's data is opened
    /// (suite 0) before its timestamp is read, so decryption is measured.
    fn spawn_with_key(
        conns: Vec<Conn>,
        event: &'static str,
        key: Option<Arc<hush_crypto::ChannelKey>>,
    ) -> Self {
        let stats: Stats = Arc::new((0..SHARDS).map(|_| Mutex::new((histogram(), 0))).collect());
        let total = Arc::new(AtomicU64::new(0));
        let needle: Arc<str> = format!("\"event\":\"{event}\"").into();
        let tasks = conns
            .into_iter()
            .enumerate()
            .map(|(i, mut c)| {
                let stats = stats.clone();
                let total = total.clone();
                let needle = needle.clone();
                let key = key.clone();
                // Stopped by aborting the task: no per-message poll of a
                // stop signal.
                tokio::spawn(async move {
                    while let Some(Ok(m)) = c.ws.next().await {
                        // Arrival time, before any decryption: the latency is
                        // the server's delivery, not this reader's crypto.
                        let received = now_micros();
                        let Message::Text(text) = m else { continue };
                        if text.as_str().contains(&*needle) {
                            let stamp = match &key {
                                None => extract_num(text.as_str(), "t"),
                                Some(key) => open_stamp(key, text.as_str()),
                            };
                            if let Some(t) = stamp {
                                let lat = received.saturating_sub(t).max(1);
                                let mut g = stats[i % SHARDS]
                                    .lock()
                                    .unwrap_or_else(PoisonError::into_inner);
                                let _ = g.0.record(lat);
                                g.1 += 1;
                                drop(g);
                                total.fetch_add(1, Ordering::Relaxed);
                            }
                        } else if text.as_str().contains(names::PING) {
                            let pong = ClientMessage::Pong.encode();
                            let _ = c.ws.send(Message::Text(pong.into())).await;
                        }
                    }
                })
            })
            .collect();
        Self {
            stats,
            total,
            tasks,
        }
    }

    /// Waits until `expected` deliveries arrived (or the grace ran out), then
    /// takes the step's statistics.
    async fn collect(&self, expected: u64, base: u64) -> (u64, Histogram<u64>) {
        let deadline = Instant::now() + GRACE;
        while self.total.load(Ordering::Relaxed) - base < expected && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let mut merged = histogram();
        let mut n = 0;
        for s in self.stats.iter() {
            let mut g = s.lock().unwrap_or_else(PoisonError::into_inner);
            let _ = merged.add(&g.0);
            n += g.1;
            g.0.reset();
            g.1 = 0;
        }
        (n, merged)
    }

    /// Stops every reader and closes its connection.
    async fn stop(self) {
        for t in &self.tasks {
            t.abort();
        }
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

/// Parameters of the fan-out scenario.
#[derive(Debug, Clone)]
pub struct FanoutOptions {
    /// Subscribers on the channel.
    pub subscribers: usize,
    /// Events per second.
    pub rate: u32,
    /// Seconds of load (per step with `max`).
    pub duration: Duration,
    /// Extra payload bytes per event.
    pub payload: usize,
    /// Channel name.
    pub channel: String,
    /// Ramp the rate up by 1.5× per step until loss or p99 > 1 s.
    pub max: bool,
    /// Highest rate tried with `max`.
    pub max_rate: u32,
    /// Seal every event with suite 0 (the channel must be
    /// `private-encrypted-`) and make every subscriber open it, as pusher-js
    /// would: the `encrypted` scenario.
    pub encrypt: bool,
}

/// The channel key of an encrypted run: a fresh master key, as an app
/// backend would hold it (the server never sees it).
fn channel_key(channel: &str) -> Result<Arc<hush_crypto::ChannelKey>, BenchError> {
    let name = hush_protocol::ChannelName::parse(channel)
        .map_err(|e| BenchError::Protocol(e.to_string()))?;
    Ok(Arc::new(hush_crypto::shared_secret(
        &name,
        &hush_crypto::MasterKey::generate(),
    )))
}

/// Posts a signed API request, records its latency, and fails on a non-200.
async fn timed_post(
    api: &mut ApiClient,
    path: &str,
    body: &str,
    hist: &mut Histogram<u64>,
) -> Result<(), BenchError> {
    let t0 = Instant::now();
    let (status, text) = api.post(path, body).await?;
    let _ = hist.record((t0.elapsed().as_micros() as u64).max(1));
    if status == 200 {
        Ok(())
    } else {
        Err(BenchError::Protocol(format!(
            "{path} returned {status}: {text}"
        )))
    }
}

/// Publishes at `rate`/s for `duration` (each event sealed under `key` when
/// given), its ticks shifted by `offset` of a period (0..1) so that side-by-side
/// publishers do not fire together; returns (sent, API latency histogram).
#[allow(clippy::too_many_arguments)]
async fn publish_for(
    api: &mut ApiClient,
    t: &Target,
    channel: &str,
    rate: u32,
    offset: f64,
    duration: Duration,
    payload: &str,
    key: Option<&hush_crypto::ChannelKey>,
    pb: &ProgressBar,
) -> Result<(u64, Histogram<u64>), BenchError> {
    let path = format!("/apps/{}/events", t.app_id);
    let period = Duration::from_secs_f64(1.0 / f64::from(rate.max(1)));
    let mut tick =
        tokio::time::interval_at(tokio::time::Instant::now() + period.mul_f64(offset), period);
    let mut api_h = histogram();
    let end = Instant::now() + duration;
    let mut seq = 0u64;
    pb.set_length(duration.as_secs().max(1));
    pb.set_position(0);
    let start = Instant::now();
    while Instant::now() < end {
        tick.tick().await;
        let ts = now_micros();
        let mut data = format!("{{\"t\":{ts},\"s\":{seq},\"p\":\"{payload}\"}}");
        if let Some(key) = key {
            data = hush_crypto::seal(key, data.as_bytes());
        }
        let body = json!({"name":"bench","channels":[channel],"data":data}).to_string();
        timed_post(api, &path, &body, &mut api_h).await?;
        seq += 1;
        pb.set_position(start.elapsed().as_secs());
    }
    Ok((seq, api_h))
}

/// Fan-out: many subscribers on one channel, HTTP triggers at a fixed rate.
pub async fn fanout(t: &Target, o: &FanoutOptions, pb: &ProgressBar) -> Result<Report, BenchError> {
    t.check()?;
    let key = if o.encrypt {
        Some(channel_key(&o.channel)?)
    } else {
        None
    };
    let conns = open_many(t, o.subscribers, |_| o.channel.clone(), pb).await?;
    let readers = Readers::spawn_with_key(conns, "bench", key.clone());
    // Several keep-alive API connections publish side by side at high rates:
    // one request waits for the server's whole fan-out, so a single
    // sequential publisher would measure itself, not the server.
    let mut apis: Vec<ApiClient> = (0..PUBLISHERS).map(|_| ApiClient::new(t.clone())).collect();
    let payload = "x".repeat(o.payload);
    let params = json!({"subscribers": o.subscribers, "rate": o.rate, "duration_s": o.duration.as_secs_f64(), "payload": o.payload, "channel": o.channel, "max": o.max, "encrypted": o.encrypt});
    let name = if o.encrypt { "encrypted" } else { "fanout" };
    let mut steps = Vec::new();
    let mut rate = o.rate;
    let mut base = 0u64;
    loop {
        pb.set_message(format!("publishing {rate}/s"));
        let meter = Meter::start(t);
        let publishers = rate
            .div_ceil(RATE_PER_PUBLISHER)
            .clamp(1, PUBLISHERS as u32);
        let share = rate.div_ceil(publishers);
        let runs = futures_util::future::join_all(
            apis.iter_mut()
                .take(publishers as usize)
                .enumerate()
                .map(|(k, api)| {
                    publish_for(
                        api,
                        t,
                        &o.channel,
                        share,
                        k as f64 / f64::from(publishers),
                        o.duration,
                        &payload,
                        key.as_deref(),
                        pb,
                    )
                }),
        )
        .await;
        let mut sent = 0;
        let mut api_h = histogram();
        for run in runs {
            let (n, h) = run?;
            sent += n;
            let _ = api_h.add(&h);
        }
        let asked = share * publishers;
        let expected = sent * o.subscribers as u64;
        let (delivered, lat) = readers.collect(expected, base).await;
        base += delivered;
        let r = meter.deliveries(
            name,
            json!({"rate": asked, "achieved_rate": sent as f64 / o.duration.as_secs_f64()}),
            sent,
            expected,
            delivered,
            &lat,
            Some(&api_h),
            o.duration,
        );
        let p99 = r.latency_ms.map_or(0.0, |l| l.p99);
        let stop = !o.max || r.lost > 0 || p99 > 1000.0 || rate >= o.max_rate;
        steps.push(r);
        if stop {
            break;
        }
        rate = ((f64::from(rate) * 1.5) as u32).min(o.max_rate);
    }
    readers.stop().await;
    pb.finish_and_clear();
    if !o.max {
        let mut r = steps.remove(0);
        r.params = params;
        return Ok(r);
    }
    // The best sustained step: the last one without loss and with p99 ≤ 1 s.
    let best = steps
        .iter()
        .rev()
        .find(|s| s.lost == 0 && s.latency_ms.is_some_and(|l| l.p99 <= 1000.0))
        .or(steps.first())
        .cloned()
        .unwrap_or_default();
    Ok(Report {
        scenario: "fanout --max".into(),
        params,
        steps,
        ..best
    })
}

/// Parameters of the idle-connections scenario.
#[derive(Debug, Clone)]
pub struct ConnectionsOptions {
    /// Connections to open, each on its own channel.
    pub count: usize,
    /// Seconds to hold them before measuring.
    pub settle: Duration,
}

/// Idle connections: memory and CPU per connection.
pub async fn connections(
    t: &Target,
    o: &ConnectionsOptions,
    pb: &ProgressBar,
) -> Result<Report, BenchError> {
    t.check()?;
    let meter = Meter::start(t);
    let rss0 = t.pid.and_then(|p| procstat::sample(Some(p))).map(|s| s.rss);
    let conns = open_many(t, o.count, |i| format!("bench-idle-{i}"), pb).await?;
    let cpu_after_open = t.pid.and_then(|p| procstat::sample(Some(p)));
    pb.set_message("holding");
    tokio::time::sleep(o.settle).await;
    let mut r = Report {
        scenario: "connections".into(),
        params: json!({"count": o.count, "settle_s": o.settle.as_secs_f64()}),
        ..Report::default()
    };
    meter.finish(&mut r);
    if let (Some(rss0), Some(rss1)) = (rss0, r.server_rss_bytes) {
        r.rss_per_connection_bytes = Some(rss1.saturating_sub(rss0) as f64 / o.count as f64);
    }
    if let (Some(a), Some(b)) = (meter.server0, cpu_after_open) {
        r.cpu_ms_per_connection =
            Some(b.cpu.saturating_sub(a.cpu).as_secs_f64() * 1000.0 / o.count as f64);
    }
    drop(conns);
    pb.finish_and_clear();
    Ok(r)
}

/// Parameters of the many-channels scenario.
#[derive(Debug, Clone)]
pub struct ChannelsOptions {
    /// Channels.
    pub channels: usize,
    /// Subscribers per channel.
    pub per_channel: usize,
    /// Batch requests per second (10 events each, to 10 channels).
    pub batches_per_s: u32,
    /// Seconds of load.
    pub duration: Duration,
}

/// Many channels with a few subscribers each, fed by batch triggers.
pub async fn channels(
    t: &Target,
    o: &ChannelsOptions,
    pb: &ProgressBar,
) -> Result<Report, BenchError> {
    t.check()?;
    let n = o.channels * o.per_channel;
    let conns = open_many(t, n, |i| format!("bench-ch-{}", i % o.channels), pb).await?;
    let readers = Readers::spawn(conns, "bench");
    let mut api = ApiClient::new(t.clone());
    let path = format!("/apps/{}/batch_events", t.app_id);
    pb.set_message("publishing batches");
    pb.set_length(o.duration.as_secs().max(1));
    pb.set_position(0);
    let meter = Meter::start(t);
    let mut api_h = histogram();
    let mut tick = tokio::time::interval(Duration::from_secs_f64(
        1.0 / f64::from(o.batches_per_s.max(1)),
    ));
    let end = Instant::now() + o.duration;
    let start = Instant::now();
    let (mut sent, mut next_channel) = (0u64, 0usize);
    while Instant::now() < end {
        tick.tick().await;
        let batch: Vec<_> = (0..10)
            .map(|k| {
                let ch = format!("bench-ch-{}", next_channel % o.channels);
                next_channel += 1;
                json!({"name":"bench","channel":ch,"data":format!("{{\"t\":{},\"s\":{}}}", now_micros(), sent + k)})
            })
            .collect();
        let body = json!({ "batch": batch }).to_string();
        timed_post(&mut api, &path, &body, &mut api_h).await?;
        sent += 10;
        pb.set_position(start.elapsed().as_secs());
    }
    let expected = sent * o.per_channel as u64;
    let (delivered, lat) = readers.collect(expected, 0).await;
    let params = json!({"channels": o.channels, "per_channel": o.per_channel, "batches_per_s": o.batches_per_s, "duration_s": o.duration.as_secs_f64()});
    let r = meter.deliveries(
        "channels",
        params,
        sent,
        expected,
        delivered,
        &lat,
        Some(&api_h),
        o.duration,
    );
    readers.stop().await;
    pb.finish_and_clear();
    Ok(r)
}

/// Parameters of the client-events scenario.
#[derive(Debug, Clone)]
pub struct ClientEventsOptions {
    /// Private channels, each with one sender and one receiver.
    pub pairs: usize,
    /// Client events per second per sender.
    pub rate: u32,
    /// Seconds of load.
    pub duration: Duration,
}

/// Client events between pairs of connections on private channels (the app
/// must have client events enabled).
pub async fn client_events(
    t: &Target,
    o: &ClientEventsOptions,
    pb: &ProgressBar,
) -> Result<Report, BenchError> {
    t.check()?;
    let receivers = open_many(t, o.pairs, |i| format!("private-bench-ce-{i}"), pb).await?;
    let senders = open_many(t, o.pairs, |i| format!("private-bench-ce-{i}"), pb).await?;
    let readers = Readers::spawn(receivers, "client-bench");
    pb.set_message("sending client events");
    let meter = Meter::start(t);
    let sent = Arc::new(AtomicU64::new(0));
    // Senders are spread evenly over one period, as independent clients
    // would be: started in lockstep, all of them would fire at the same
    // instant and the run would measure that burst's queueing.
    let period = Duration::from_secs_f64(1.0 / f64::from(o.rate.max(1)));
    let start = tokio::time::Instant::now();
    let pairs = o.pairs.max(1) as u32;
    let tasks: Vec<_> = senders
        .into_iter()
        .enumerate()
        .map(|(i, mut c)| {
            let sent = sent.clone();
            let duration = o.duration;
            let first = start + period * (i as u32) / pairs;
            tokio::spawn(async move {
                let mut tick = tokio::time::interval_at(first, period);
                let end = Instant::now() + duration;
                let ch = format!("private-bench-ce-{i}");
                let mut seq = 0u64;
                while Instant::now() < end {
                    tick.tick().await;
                    let data = format!(r#"{{"t":{},"s":{seq}}}"#, now_micros());
                    let Ok(data) = RawJson::from_string(data) else {
                        break;
                    };
                    let msg = ClientMessage::ClientEvent {
                        event: "client-bench".into(),
                        channel: Some(ch.clone()),
                        data: Some(data),
                    }
                    .encode();
                    if c.ws.send(Message::Text(msg.into())).await.is_err() {
                        break;
                    }
                    seq += 1;
                    sent.fetch_add(1, Ordering::Relaxed);
                }
                c
            })
        })
        .collect();
    let mut keep = Vec::new();
    for t in tasks {
        if let Ok(c) = t.await {
            keep.push(c);
        }
    }
    let sent = sent.load(Ordering::Relaxed);
    let (delivered, lat) = readers.collect(sent, 0).await;
    let params = json!({"pairs": o.pairs, "rate": o.rate, "duration_s": o.duration.as_secs_f64()});
    let r = meter.deliveries(
        "client-events",
        params,
        sent,
        sent,
        delivered,
        &lat,
        None,
        o.duration,
    );
    readers.stop().await;
    drop(keep);
    pb.finish_and_clear();
    Ok(r)
}
