//! One soak worker process: its share of the stable connections, churners,
//! client-event pairs and API publishes, driven by the coordinator's
//! commands on stdin and reported as JSON lines on stdout.

use std::io::Write;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use rand::Rng;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;

use super::session::{Action, Chan, Kind, Session};
use super::stats::{Stats, inc};
use super::wire::{Command, Report};
use super::{SoakOptions, WorkerSpec, now_micros};
use crate::http::ApiClient;
use crate::{BenchError, Target};

/// Where the load is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Opening the stable connections.
    Ramp,
    /// Load running.
    Load,
    /// Load stopping: publishers and churners end, senders flush.
    Stop,
    /// Every stable connection flushes and closes its windows.
    Verify,
    /// Every connection closes.
    Close,
}

/// Connections opened at once while ramping up.
const RAMP_CONCURRENCY: usize = 32;
/// How long the stop and verify steps may take.
const STEP_TIMEOUT: Duration = Duration::from_secs(60);
/// At most this many errors are printed (to stderr) per worker.
const LOGGED_ERRORS: u64 = 20;

/// What every task of the worker shares.
struct Ctx {
    target: Target,
    /// Where API requests go (another node of a cluster, or `target`).
    api: Target,
    index: usize,
    options: SoakOptions,
    sources: Vec<IpAddr>,
    small: Vec<Arc<Chan>>,
    big: Arc<Chan>,
    stats: Stats,
    phase: watch::Receiver<Phase>,
    flushed: AtomicU64,
    verified: AtomicU64,
    logged: AtomicU64,
}

impl Ctx {
    fn source(&self, n: usize) -> Option<IpAddr> {
        (!self.sources.is_empty()).then(|| self.sources[n % self.sources.len()])
    }

    fn error(&self, what: &str, e: &dyn std::fmt::Display) {
        inc(&self.stats.errors);
        self.log(what, e);
    }

    fn log(&self, what: &str, e: &dyn std::fmt::Display) {
        if self.logged.fetch_add(1, Ordering::Relaxed) < LOGGED_ERRORS {
            eprintln!("soak worker {}: {what}: {e}", self.index);
        }
    }

    fn opened(&self) {
        self.stats.open.fetch_add(1, Ordering::Relaxed);
    }

    fn closed(&self) {
        self.stats.open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// `n`'s share of `total` split over `parts` (the first ones take the rest).
pub fn share(total: usize, parts: usize, n: usize) -> usize {
    let parts = parts.max(1);
    total / parts + usize::from(n < total % parts)
}

/// The kind of the worker's small channel `c`: three public, one private,
/// one presence in every five.
fn kind_of(c: usize) -> Kind {
    match c % 5 {
        3 => Kind::Private,
        4 => Kind::Presence,
        _ => Kind::Public,
    }
}

fn emit(r: &Report) {
    let mut out = std::io::stdout().lock();
    let _ = serde_json::to_writer(&mut out, r);
    let _ = out.write_all(b"\n");
    let _ = out.flush();
}

/// Runs a worker until the coordinator closes it (or stdin ends).
pub async fn run(spec: WorkerSpec) -> Result<(), BenchError> {
    let o = spec.options.clone();
    let k = spec.index;
    let target = Target::new(spec.addr, &spec.app_id, &spec.key, &spec.secret, None);
    target.check()?;
    let api = Target::new(
        spec.api_addr.unwrap_or(spec.addr),
        &spec.app_id,
        &spec.key,
        &spec.secret,
        None,
    );
    api.check()?;
    let stable = share(o.connections - o.churners, o.workers, k);
    let churners = share(o.churners, o.workers, k);
    let pairs = share(o.client_pairs, o.workers, k).min(stable / 2);
    let channels = stable.div_ceil(o.channel_size.max(1));
    let (phase_tx, phase) = watch::channel(Phase::Ramp);
    let ctx = Arc::new(Ctx {
        sources: o.source_addrs(spec.addr.ip()),
        small: (0..channels)
            .map(|c| Arc::new(Chan::new(kind_of(c), &format!("soak-{k}-{c}"))))
            .collect(),
        big: Arc::new(Chan::large(&format!("soak-{k}-all"))),
        target,
        api,
        index: k,
        options: o.clone(),
        stats: Stats::default(),
        phase,
        flushed: AtomicU64::new(0),
        verified: AtomicU64::new(0),
        logged: AtomicU64::new(0),
    });
    let pair_chans: Vec<Arc<Chan>> = (0..pairs)
        .map(|p| Arc::new(Chan::new(Kind::Private, &format!("soak-{k}-ce-{p}"))))
        .collect();

    // Ramp: every stable connection open and subscribed before the load.
    let opened: Vec<_> = futures_util::stream::iter(0..stable)
        .map(|j| open_stable(&ctx, &pair_chans, j))
        .buffer_unordered(RAMP_CONCURRENCY)
        .collect()
        .await;
    let mut stable_tasks = Vec::new();
    let mut senders = 0u64;
    for r in opened {
        match r {
            Ok((s, sends, j)) => {
                senders += u64::from(sends.is_some());
                stable_tasks.push(tokio::spawn(stable_conn(ctx.clone(), s, sends, j)));
            }
            Err(e) => ctx.error("opening a stable connection", &e),
        }
    }
    let stable_open = stable_tasks.len() as u64;
    emit(&Report::Ready {
        open: stable_open,
        ramp: Box::new(ctx.stats.take()),
    });

    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let mut publisher: Option<JoinHandle<()>> = None;
    let mut churn: Vec<JoinHandle<()>> = Vec::new();
    while let Some(line) = lines.next_line().await? {
        match Command::parse(&line) {
            Some(Command::Start) => {
                let _ = phase_tx.send(Phase::Load);
                let rate = o.publish_rate / o.workers.max(1) as f64;
                publisher = Some(tokio::spawn(publish(ctx.clone(), rate)));
                churn = (0..churners)
                    .map(|i| tokio::spawn(churner(ctx.clone(), i)))
                    .collect();
            }
            Some(Command::Tick) => emit(&Report::Interval(Box::new(ctx.stats.take()))),
            Some(Command::Stop) => {
                let _ = phase_tx.send(Phase::Stop);
                let deadline = tokio::time::Instant::now() + STEP_TIMEOUT;
                for t in publisher.take().into_iter().chain(churn.drain(..)) {
                    if tokio::time::timeout_at(deadline, t).await.is_err() {
                        ctx.error(
                            "stopping",
                            &"a churner or the publisher did not stop in time",
                        );
                    }
                }
                wait_for(&ctx.flushed, senders).await;
                let _ = phase_tx.send(Phase::Verify);
                if !wait_for(&ctx.verified, stable_open).await {
                    ctx.error(
                        "verifying",
                        &"stable connections did not finish verifying in time",
                    );
                }
                emit(&Report::Interval(Box::new(ctx.stats.take())));
            }
            Some(Command::Close) => {
                let _ = phase_tx.send(Phase::Close);
                let deadline = tokio::time::Instant::now() + STEP_TIMEOUT;
                for t in stable_tasks.drain(..) {
                    let _ = tokio::time::timeout_at(deadline, t).await;
                }
                emit(&Report::Closed);
                return Ok(());
            }
            None => {}
        }
    }
    Ok(())
}

/// Waits until `counter` reaches `n` (false after [`STEP_TIMEOUT`]).
async fn wait_for(counter: &AtomicU64, n: u64) -> bool {
    let deadline = Instant::now() + STEP_TIMEOUT;
    while counter.load(Ordering::SeqCst) < n {
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    true
}

/// Opens stable connection `j`: its small channel, the worker's large
/// channel and, for the first `2 × pairs`, a client-event pair channel (even
/// ones send, odd ones receive). Returns the channel it sends on.
async fn open_stable(
    ctx: &Arc<Ctx>,
    pairs: &[Arc<Chan>],
    j: usize,
) -> Result<(Session, Option<Arc<Chan>>, usize), BenchError> {
    let mut s = Session::open(&ctx.target, ctx.source(j), true).await?;
    let user = format!("s{}-{j}", ctx.index);
    let st = &ctx.stats;
    let small = ctx.small[j / ctx.options.channel_size.max(1)].clone();
    s.subscribe(&ctx.target, small, &user, st, true).await?;
    s.subscribe(&ctx.target, ctx.big.clone(), &user, st, true)
        .await?;
    let mut sends = None;
    if let Some(pair) = pairs.get(j / 2) {
        let sender = j.is_multiple_of(2);
        s.subscribe(&ctx.target, pair.clone(), &user, st, !sender)
            .await?;
        if sender {
            sends = Some(pair.clone());
        }
    }
    ctx.opened();
    Ok((s, sends, j))
}

/// A stable connection: reads for the whole run (sending client events on
/// `sends` at the configured rate), then verifies what it was owed.
async fn stable_conn(ctx: Arc<Ctx>, s: Session, sends: Option<Arc<Chan>>, j: usize) {
    let st = &ctx.stats;
    let mut phase = ctx.phase.clone();
    let mut conn = Some(s);
    let rate = ctx.options.client_rate.max(0.001);
    let period = Duration::from_secs_f64(1.0 / rate);
    // Senders spread over one period, as independent clients would be.
    let spread = period.mul_f64((j as f64 * 0.618_034) % 1.0);
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + spread, period);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut current = *phase.borrow_and_update();
    loop {
        if current == Phase::Close {
            if let Some(s) = conn.take() {
                s.close().await;
                ctx.closed();
            }
            return;
        }
        let entered = match conn.as_mut() {
            None => match phase.changed().await {
                Ok(()) => Some(*phase.borrow_and_update()),
                Err(_) => return,
            },
            Some(s) => {
                tokio::select! {
                    r = s.pump(st) => match r {
                        Ok(Action::Error(e)) => {
                            ctx.error("stable connection", &e);
                            None
                        }
                        Ok(_) => None,
                        Err(e) => {
                            lost_stable(&ctx, &mut conn, &e);
                            None
                        }
                    },
                    _ = tick.tick(), if sends.is_some() && current == Phase::Load => {
                        if let (Some(ch), Some(s)) = (&sends, conn.as_mut()) {
                            let seq = ch.stream.start();
                            let msg = format!(
                                r#"{{"event":"{}","channel":"{}","data":{{"t":{},"s":{seq}}}}}"#,
                                super::frame::CLIENT_EVENT, ch.name, now_micros()
                            );
                            match s.send(msg).await {
                                Ok(()) => {
                                    ch.stream.finish(seq);
                                    inc(&st.client_events);
                                }
                                Err(e) => lost_stable(&ctx, &mut conn, &e),
                            }
                        }
                        None
                    }
                    r = phase.changed() => match r {
                        Ok(()) => Some(*phase.borrow_and_update()),
                        Err(_) => return,
                    },
                }
            }
        };
        let Some(p) = entered else { continue };
        current = p;
        match p {
            Phase::Stop => {
                if sends.is_some() {
                    if let Some(s) = conn.as_mut() {
                        if let Err(e) = s.flush(st).await {
                            lost_stable(&ctx, &mut conn, &e);
                        }
                    }
                    ctx.flushed.fetch_add(1, Ordering::SeqCst);
                }
            }
            Phase::Verify => {
                if let Some(s) = conn.as_mut() {
                    s.end_all();
                    match verify(s, st).await {
                        Ok(()) => s.close_all(st, false),
                        Err(e) => lost_stable(&ctx, &mut conn, &e),
                    }
                }
                ctx.verified.fetch_add(1, Ordering::SeqCst);
            }
            Phase::Ramp | Phase::Load | Phase::Close => {}
        }
    }
}

/// Flushes a stable connection and waits (within the answer timeout) until
/// every churn member it saw join its presence channel has left; members
/// still there count as presence errors.
async fn verify(s: &mut Session, st: &Stats) -> Result<(), BenchError> {
    s.flush(st).await?;
    let deadline = tokio::time::Instant::now() + super::session::ANSWER_TIMEOUT;
    while s.members_left_over() > 0 {
        match tokio::time::timeout_at(deadline, s.pump(st)).await {
            Ok(r) => {
                r?;
            }
            Err(_) => break,
        }
    }
    st.presence_errors
        .fetch_add(s.members_left_over() as u64, Ordering::Relaxed);
    Ok(())
}

/// A stable connection ended without being asked to: everything it was
/// owed up to now and did not get is lost.
fn lost_stable(ctx: &Ctx, conn: &mut Option<Session>, e: &dyn std::fmt::Display) {
    if let Some(mut s) = conn.take() {
        inc(&ctx.stats.dropped);
        ctx.log("stable connection lost", e);
        s.end_all();
        s.close_all(&ctx.stats, true);
        ctx.closed();
    }
}

/// One churner: connects, subscribes to one to three random channels one
/// after the other (holding each a while, then unsubscribing, or, for the
/// last one now and then, dropping the connection while subscribed), and
/// disconnects, gracefully or not; again and again while the load runs.
async fn churner(ctx: Arc<Ctx>, i: usize) {
    let mut phase = ctx.phase.clone();
    let mut n = 0usize;
    while *phase.borrow_and_update() == Phase::Load {
        n += 1;
        let from = ctx.source(i + n);
        match Session::open(&ctx.target, from, false).await {
            Ok(s) => {
                inc(&ctx.stats.connects);
                ctx.opened();
                let user = format!("c{}-{i}-{n}", ctx.index);
                lifecycle(&ctx, s, &user, &mut phase).await;
                ctx.closed();
                inc(&ctx.stats.disconnects);
            }
            Err(e) => {
                ctx.error("churn connect", &e);
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

async fn lifecycle(ctx: &Ctx, mut s: Session, user: &str, phase: &mut watch::Receiver<Phase>) {
    let st = &ctx.stats;
    let (subs, life, abrupt, graceful) = {
        let mut r = rand::rng();
        (
            r.random_range(1..=3u32),
            ctx.options.churn_hold_s * r.random_range(0.2..1.8),
            r.random_bool(1.0 / 3.0),
            r.random_bool(0.5),
        )
    };
    let per = Duration::from_secs_f64(life / f64::from(subs));
    for k in 0..subs {
        if ctx.small.is_empty() {
            break;
        }
        let c = rand::rng().random_range(0..ctx.small.len());
        if let Err(e) = s
            .subscribe(&ctx.target, ctx.small[c].clone(), user, st, true)
            .await
        {
            ctx.error("churn subscribe", &e);
            s.end_all();
            s.close_all(st, true);
            return;
        }
        if let Err(e) = hold(ctx, &mut s, phase, per).await {
            ctx.error("churn connection lost", &e);
            s.end_all();
            s.close_all(st, true);
            return;
        }
        let last = k + 1 == subs || *phase.borrow() != Phase::Load;
        if last && abrupt {
            // Dropped while subscribed: the server must clean up.
            s.close_all(st, true);
            return;
        }
        if let Err(e) = s.unsubscribe_last(st).await {
            ctx.error("churn unsubscribe", &e);
            s.close_all(st, true);
            return;
        }
        if last {
            break;
        }
    }
    if graceful {
        s.close().await;
    }
}

/// Reads for `d` (or until the load stops).
async fn hold(
    ctx: &Ctx,
    s: &mut Session,
    phase: &mut watch::Receiver<Phase>,
    d: Duration,
) -> Result<(), BenchError> {
    let until = tokio::time::Instant::now() + d;
    loop {
        tokio::select! {
            r = s.pump(&ctx.stats) => {
                if let Action::Error(e) = r? {
                    ctx.error("churn connection", &e);
                }
            }
            () = tokio::time::sleep_until(until) => return Ok(()),
            r = phase.changed() => {
                if r.is_err() || *phase.borrow_and_update() != Phase::Load {
                    return Ok(());
                }
            }
        }
    }
}

/// Publishes over the HTTP API at `rate`/s, round robin over the worker's
/// small channels, and every `big_every_s` to its large channel instead.
async fn publish(ctx: Arc<Ctx>, rate: f64) {
    let st = &ctx.stats;
    let mut api = ApiClient::new(ctx.api.clone());
    let path = format!("/apps/{}/events", ctx.api.app_id);
    let period = Duration::from_secs_f64(1.0 / rate.max(0.01));
    let big_every = Duration::from_secs_f64(ctx.options.big_every_s.max(0.0));
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut next_big = Instant::now() + big_every;
    let mut i = 0usize;
    let phase = ctx.phase.clone();
    loop {
        tick.tick().await;
        if *phase.borrow() != Phase::Load {
            return;
        }
        let chan = if !big_every.is_zero() && Instant::now() >= next_big {
            next_big += big_every;
            ctx.big.clone()
        } else if ctx.small.is_empty() {
            continue;
        } else {
            i += 1;
            ctx.small[i % ctx.small.len()].clone()
        };
        let seq = chan.stream.start();
        let data = format!("{{\"t\":{},\"s\":{seq}}}", now_micros());
        let body = serde_json::json!({"name": super::frame::API_EVENT, "channels": [chan.name], "data": data})
            .to_string();
        let t0 = Instant::now();
        match api.post(&path, &body).await {
            Ok((200, _)) => inc(&st.publishes),
            Ok((status, text)) => {
                inc(&st.api_errors);
                ctx.log("publish", &format!("{status} {text}"));
            }
            Err(e) => {
                inc(&st.api_errors);
                ctx.log("publish", &e);
            }
        }
        st.api_latency.record(t0.elapsed().as_micros() as u64);
        // Answered (or failed): a subscriber that unsubscribes from now on
        // was owed it.
        chan.stream.finish(seq);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_add_up() {
        for (total, parts) in [(19_000, 4), (7, 3), (0, 2), (5, 1), (100_000, 21)] {
            let sum: usize = (0..parts).map(|n| share(total, parts, n)).sum();
            assert_eq!(sum, total);
        }
        assert_eq!(share(7, 3, 0), 3);
        assert_eq!(share(7, 3, 2), 2);
    }

    #[test]
    fn one_channel_in_five_is_private_and_one_presence() {
        let kinds: Vec<Kind> = (0..5).map(kind_of).collect();
        assert_eq!(kinds.iter().filter(|k| **k == Kind::Public).count(), 3);
        assert_eq!(kind_of(3), Kind::Private);
        assert_eq!(kind_of(9), Kind::Presence);
    }
}
