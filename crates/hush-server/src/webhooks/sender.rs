//! The sender: one loop per (app, endpoint) that POSTs the outbox in order,
//! `batch_size` events per request, signed like Pusher's webhooks, with a
//! global bound on requests in flight, a request timeout, exponential back-off
//! with jitter, and dead letters once `max_attempts` is spent.
//!
//! Recovery does not wait for the back-off: while the head of a queue waits
//! for a retry further away than `probe_interval_ms`, the endpoint is probed
//! that often with a signed request holding no events. The first 2xx answer
//! retries the head at once ("early retry"). Neither probes nor the early
//! retry count as attempts, and after an early retry fails the loop waits
//! for the scheduled one without probing, so a receiver that answers probes
//! but refuses the events gets at most one extra request per back-off step
//! and the retry budget (`max_attempts`) keeps its length in time.
//!
//! On a store shared by several nodes (PostgreSQL), a queue is delivered by
//! one node at a time: the loop renews the queue's lease
//! ([`Store::outbox_lease`]) before it reads a batch and again before it
//! sends it, and skips queues another node holds. The lease lasts
//! [`lease_ms`] (three request timeouts, at least 30 s), so a batch is never
//! in flight on two nodes while both live; when a node dies, another takes
//! its queues over once the lease ran out and sends the batch that was in
//! flight again (at-least-once, as after a crash of a single node). A node
//! that stops releases its leases ([`Store::outbox_release`]).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hush_store::{OutboxEvent, Store, Target, now_ms};
use hyper::header::{CONTENT_TYPE, HeaderMap, HeaderValue, USER_AGENT};
use hyper::{Method, Request};
use rand::Rng;
use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinSet;

use super::client::HttpClient;
use super::{EndpointOpts, METRIC_DEAD, METRIC_DELIVERIES, METRIC_PENDING, Signer};
use crate::config::WebhooksConfig;

/// An idle endpoint looks at the outbox this often even without a wake-up
/// (events put back by `hush webhooks retry` from another process).
const IDLE_POLL: Duration = Duration::from_secs(2);
/// The same on a shared store, where events written by other nodes wake
/// nobody here.
const SHARED_IDLE_POLL: Duration = Duration::from_millis(500);
/// The shortest queue lease on a shared store.
const MIN_LEASE: Duration = Duration::from_secs(30);
/// Wait after a store error.
const STORE_RETRY: Duration = Duration::from_secs(1);
/// How often the pending / dead-letter gauges are refreshed.
const GAUGE_INTERVAL: Duration = Duration::from_secs(5);
/// Response bytes read (and thrown away) at most.
const MAX_RESPONSE_BYTES: usize = 64 * 1024;
/// Longest error text kept with an event.
const MAX_ERROR_CHARS: usize = 300;
const USER_AGENT_VALUE: &str = concat!("hush/", env!("CARGO_PKG_VERSION"));

struct Ctx {
    store: Store,
    config: WebhooksConfig,
    client: HttpClient,
    permits: Semaphore,
    /// This node's lease holder id, on a shared store.
    holder: Option<String>,
}

/// How long a queue lease lasts: three request timeouts, at least
/// [`MIN_LEASE`].
pub(super) fn lease_ms(config: &WebhooksConfig) -> i64 {
    let three = Duration::from_secs(config.timeout.saturating_mul(3));
    i64::try_from(three.max(MIN_LEASE).as_millis()).unwrap_or(i64::MAX)
}

/// Whether this node may deliver `target` now: always on a store of its
/// own; on a shared store, when it holds (took or renewed) the queue's
/// lease. A store error counts as not holding it.
async fn hold(ctx: &Ctx, target: &Target) -> bool {
    let Some(holder) = &ctx.holder else {
        return true;
    };
    match ctx
        .store
        .outbox_lease(target, holder, now_ms(), lease_ms(&ctx.config))
        .await
    {
        Ok(held) => held,
        Err(e) => {
            tracing::error!(error = %e, app = %target.app_id, "webhook queue lease failed");
            false
        }
    }
}

/// Abandons outbox queues of endpoints no longer configured, then runs one
/// delivery loop per configured endpoint and the gauge refresher.
pub(super) async fn run(
    store: Store,
    holder: Option<String>,
    client: HttpClient,
    config: WebhooksConfig,
    signers: HashMap<String, Signer>,
    wake: Arc<HashMap<Target, Arc<Notify>>>,
    opts: HashMap<Target, EndpointOpts>,
) {
    match store.outbox_targets().await {
        Ok(targets) => {
            for t in targets.iter().filter(|t| !wake.contains_key(*t)) {
                let reason = "webhook endpoint no longer configured";
                match store.outbox_abandon(t, now_ms(), reason).await {
                    Ok(n) => tracing::warn!(
                        app = %t.app_id,
                        endpoint = %hush_store::redact_url(&t.endpoint),
                        events = n,
                        "webhook endpoint no longer configured: its pending events are now dead letters"
                    ),
                    Err(e) => {
                        tracing::error!(error = %e, "webhook outbox: abandoning a queue failed")
                    }
                }
            }
        }
        Err(e) => tracing::error!(error = %e, "webhook outbox: listing queues failed"),
    }
    let ctx = Arc::new(Ctx {
        store,
        holder,
        client,
        permits: Semaphore::new(config.concurrency.max(1)),
        config,
    });
    let mut tasks = JoinSet::new();
    let mut apps: Vec<String> = signers.keys().cloned().collect();
    apps.sort();
    tasks.spawn(gauges(ctx.clone(), apps));
    for (target, notify) in wake.iter() {
        let Some(signer) = signers.get(&target.app_id) else {
            continue;
        };
        let opts = opts.get(target).cloned().unwrap_or_else(|| EndpointOpts {
            batch_size: ctx.config.batch_size,
            headers: Arc::default(),
        });
        tasks.spawn(deliver_loop(
            ctx.clone(),
            target.clone(),
            opts,
            signer.clone(),
            notify.clone(),
        ));
    }
    // Runs until aborted (dropping the set aborts every loop).
    while tasks.join_next().await.is_some() {}
}

async fn gauges(ctx: Arc<Ctx>, apps: Vec<String>) {
    let mut tick = tokio::time::interval(GAUGE_INTERVAL);
    loop {
        tick.tick().await;
        refresh_gauges(&ctx.store, &apps).await;
    }
}

/// Sets the pending and dead-letter gauges of `apps` from the store.
async fn refresh_gauges(store: &Store, apps: &[String]) {
    match store.outbox_counts().await {
        Ok(counts) => {
            for app in apps {
                let c = counts.iter().find(|c| &c.app_id == app);
                let (pending, dead) = c.map_or((0, 0), |c| (c.pending, c.dead));
                metrics::gauge!(METRIC_PENDING, "app" => app.clone()).set(pending as f64);
                metrics::gauge!(METRIC_DEAD, "app" => app.clone()).set(dead as f64);
            }
        }
        Err(e) => tracing::warn!(error = %e, "webhook gauges: store unavailable"),
    }
}

async fn deliver_loop(
    ctx: Arc<Ctx>,
    target: Target,
    opts: EndpointOpts,
    signer: Signer,
    wake: Arc<Notify>,
) {
    let endpoint_shown = hush_store::redact_url(&target.endpoint);
    let mut probe = Probe::new(Duration::from_millis(ctx.config.probe_interval_ms));
    let idle = if ctx.holder.is_some() {
        SHARED_IDLE_POLL
    } else {
        IDLE_POLL
    };
    loop {
        if !hold(&ctx, &target).await {
            // Another node delivers this queue (or the store is down).
            let _ = tokio::time::timeout(idle, wake.notified()).await;
            continue;
        }
        let batch = match ctx.store.outbox_next_batch(&target, opts.batch_size).await {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(error = %e, app = %target.app_id, "webhook outbox read failed");
                tokio::time::sleep(STORE_RETRY).await;
                continue;
            }
        };
        let Some(head) = batch.first() else {
            let _ = tokio::time::timeout(idle, wake.notified()).await;
            continue;
        };
        let wait = head.next_attempt_ms.saturating_sub(now_ms());
        let mut early = false;
        if wait > 0 {
            let wait = Duration::from_millis(u64::try_from(wait).unwrap_or(0));
            match probe.before_retry(wait, Instant::now()) {
                Step::Sleep(d) => {
                    tokio::time::sleep(d.min(IDLE_POLL)).await;
                    continue;
                }
                Step::Probe => {
                    let answered = {
                        let Ok(_permit) = ctx.permits.acquire().await else {
                            return;
                        };
                        post(
                            &ctx,
                            &target.endpoint,
                            &signer,
                            &opts.headers,
                            probe_body(now_ms()),
                        )
                        .await
                    };
                    if let Err(error) = answered {
                        tracing::debug!(app = %target.app_id, endpoint = %endpoint_shown, %error, "webhook endpoint probe failed");
                        probe.probe_failed(Instant::now());
                        continue;
                    }
                    tracing::info!(app = %target.app_id, endpoint = %endpoint_shown, "webhook endpoint answers again: retrying now");
                    probe.probe_answered();
                    early = true;
                }
            }
        }
        let result = {
            let Ok(_permit) = ctx.permits.acquire().await else {
                return;
            };
            // Waiting for a permit may have taken a while: renew (or find
            // the queue taken over) right before sending.
            if !hold(&ctx, &target).await {
                continue;
            }
            post(&ctx, &target.endpoint, &signer, &opts.headers, body(&batch)).await
        };
        let ids: Vec<i64> = batch.iter().map(|e| e.id).collect();
        let app = target.app_id.clone();
        match result {
            Err(error) if early => {
                // Not an attempt: the scheduled retry stays as it was.
                metrics::counter!(METRIC_DELIVERIES, "app" => app, "outcome" => "retry")
                    .increment(1);
                tracing::warn!(
                    app = %target.app_id, endpoint = %endpoint_shown, events = ids.len(), error = %error,
                    "webhook endpoint answers probes but refused the events; waiting for the scheduled retry"
                );
            }
            Ok(()) => {
                probe.reset();
                metrics::counter!(METRIC_DELIVERIES, "app" => app, "outcome" => "ok").increment(1);
                tracing::debug!(app = %target.app_id, endpoint = %endpoint_shown, events = ids.len(), "webhook delivered");
                // Until this delete lands, a crash means the batch is sent again.
                while let Err(e) = ctx.store.outbox_delivered(&ids).await {
                    tracing::error!(error = %e, "webhook outbox: marking delivered failed; retrying");
                    tokio::time::sleep(STORE_RETRY).await;
                }
            }
            Err(error) => {
                probe.attempt_failed(Instant::now());
                let attempts = head.attempts.saturating_add(1);
                let now = now_ms();
                let next = now.saturating_add(backoff_ms(&ctx.config, attempts));
                let outcome = loop {
                    match ctx
                        .store
                        .outbox_failed(&ids, now, next, &error, ctx.config.max_attempts)
                        .await
                    {
                        Ok(o) => break o,
                        Err(e) => {
                            tracing::error!(error = %e, "webhook outbox: recording a failure failed; retrying");
                            tokio::time::sleep(STORE_RETRY).await;
                        }
                    }
                };
                if outcome.dead > 0 {
                    metrics::counter!(METRIC_DELIVERIES, "app" => app.clone(), "outcome" => "dead")
                        .increment(1);
                    tracing::error!(
                        app = %target.app_id, endpoint = %endpoint_shown, events = outcome.dead,
                        attempts, error = %error,
                        "webhook events gave up after the retry budget: now dead letters (see `hush webhooks list`)"
                    );
                    refresh_gauges(&ctx.store, std::slice::from_ref(&target.app_id)).await;
                } else {
                    metrics::counter!(METRIC_DELIVERIES, "app" => app, "outcome" => "retry")
                        .increment(1);
                    tracing::warn!(
                        app = %target.app_id, endpoint = %endpoint_shown, events = ids.len(),
                        attempts, error = %error, retry_in_ms = next - now,
                        "webhook delivery failed; will retry"
                    );
                }
            }
        }
    }
}

/// The delay before attempt `attempts + 1`: base · 2^(attempts−1), at most
/// the cap, then a random 50–100 % of that (jitter).
fn backoff_ms(config: &WebhooksConfig, attempts: u32) -> i64 {
    let exp = attempts.saturating_sub(1).min(32);
    let full = config
        .backoff_base_ms
        .saturating_mul(1u64 << exp)
        .min(config.backoff_max_ms)
        .max(1);
    let jittered = rand::rng().random_range(full / 2..=full);
    i64::try_from(jittered).unwrap_or(i64::MAX)
}

/// What the loop does while the head of its queue waits for a retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// Sleep this long, then look again.
    Sleep(Duration),
    /// Probe the endpoint now.
    Probe,
}

/// When to probe a failing endpoint (see the module docs).
#[derive(Debug)]
struct Probe {
    /// 0: never.
    every: Duration,
    /// The next probe; `None` while probing is off (no failed attempt yet,
    /// or an early retry already spent in this back-off step).
    next: Option<Instant>,
}

impl Probe {
    fn new(every: Duration) -> Self {
        Self { every, next: None }
    }

    /// The head's retry is `wait` away.
    fn before_retry(&self, wait: Duration, now: Instant) -> Step {
        match self.next {
            Some(due) if !self.every.is_zero() && wait > self.every => {
                if now >= due {
                    Step::Probe
                } else {
                    Step::Sleep(wait.min(due - now))
                }
            }
            _ => Step::Sleep(wait),
        }
    }

    /// A scheduled attempt failed: probe from one interval on.
    fn attempt_failed(&mut self, now: Instant) {
        self.next = Some(now + self.every);
    }

    /// A probe got no 2xx: probe again one interval on.
    fn probe_failed(&mut self, now: Instant) {
        self.next = Some(now + self.every);
    }

    /// A probe got a 2xx: one early retry, then no probing until the
    /// scheduled attempt.
    fn probe_answered(&mut self) {
        self.next = None;
    }

    /// Delivered: nothing to probe.
    fn reset(&mut self) {
        self.next = None;
    }
}

/// A probe: a valid, signed webhook request without events.
fn probe_body(time_ms: i64) -> String {
    format!("{{\"time_ms\":{time_ms},\"events\":[]}}")
}

/// The request body: `{"time_ms":…,"events":[…]}` with the stored event
/// objects. `time_ms` is when the first event happened, so a retried batch
/// carries the same time.
fn body(batch: &[OutboxEvent]) -> String {
    let time_ms = batch.first().map_or(0, |e| e.created_ms);
    let mut s = String::with_capacity(32 + batch.iter().map(|e| e.event.len() + 1).sum::<usize>());
    s.push_str("{\"time_ms\":");
    s.push_str(&time_ms.to_string());
    s.push_str(",\"events\":[");
    for (i, e) in batch.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        s.push_str(&e.event);
    }
    s.push_str("]}");
    s
}

/// POSTs one request body (a batch or a probe) with the endpoint's extra
/// `headers`; `Err` carries a short reason (non-2xx status, timeout,
/// connection error).
async fn post(
    ctx: &Ctx,
    url: &str,
    signer: &Signer,
    headers: &HeaderMap,
    body: String,
) -> Result<(), String> {
    let signature = hush_protocol::webhook::sign_body(signer.secret.as_bytes(), body.as_bytes());
    let mut req = Request::builder().method(Method::POST).uri(url);
    if let Some(h) = req.headers_mut() {
        h.extend(headers.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
    let req = req
        .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
        .header(USER_AGENT, HeaderValue::from_static(USER_AGENT_VALUE))
        .header("X-Pusher-Key", signer.key.as_str())
        .header("X-Pusher-Signature", signature.to_hex())
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| short(&format!("bad request: {e}")))?;
    let timeout = Duration::from_secs(ctx.config.timeout);
    let exchange = async {
        let res = ctx.client.request(req).await.map_err(|e| {
            let mut msg = e.to_string();
            let mut src = std::error::Error::source(&e);
            while let Some(s) = src {
                msg.push_str(": ");
                msg.push_str(&s.to_string());
                src = s.source();
            }
            short(&msg)
        })?;
        let status = res.status();
        // Read (a bounded part of) the answer so the connection can be reused.
        let _ = Limited::new(res.into_body(), MAX_RESPONSE_BYTES)
            .collect()
            .await;
        if status.is_success() {
            Ok(())
        } else {
            Err(format!("HTTP {}", status.as_u16()))
        }
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| format!("timed out after {} s", ctx.config.timeout))?
}

fn short(s: &str) -> String {
    s.chars().take(MAX_ERROR_CHARS).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> WebhooksConfig {
        crate::Config::from_toml("").unwrap().webhooks
    }

    #[test]
    fn backoff_doubles_with_jitter_and_cap() {
        let c = cfg();
        for _ in 0..50 {
            let d1 = backoff_ms(&c, 1);
            assert!((500..=1000).contains(&d1), "{d1}");
            let d3 = backoff_ms(&c, 3);
            assert!((2000..=4000).contains(&d3), "{d3}");
            let d20 = backoff_ms(&c, 20);
            assert!((30_000..=60_000).contains(&d20), "{d20}");
            assert!(backoff_ms(&c, u32::MAX) <= 60_000);
        }
    }

    #[test]
    fn probes_start_after_a_failure_and_stop_after_one_early_retry() {
        let every = Duration::from_secs(2);
        let t0 = Instant::now();
        let mut p = Probe::new(every);
        let long = Duration::from_secs(40);
        // Nothing failed yet: just wait for the retry.
        assert_eq!(p.before_retry(long, t0), Step::Sleep(long));
        p.attempt_failed(t0);
        assert_eq!(p.before_retry(long, t0), Step::Sleep(every));
        assert_eq!(p.before_retry(long, t0 + every), Step::Probe);
        // A retry closer than the interval is simply waited for.
        let short = Duration::from_secs(1);
        assert_eq!(p.before_retry(short, t0 + every), Step::Sleep(short));
        p.probe_failed(t0 + every);
        assert_eq!(p.before_retry(long, t0 + every), Step::Sleep(every));
        assert_eq!(p.before_retry(long, t0 + every * 2), Step::Probe);
        // Answered: one early retry; no probing until the scheduled attempt.
        p.probe_answered();
        assert_eq!(p.before_retry(long, t0 + every * 9), Step::Sleep(long));
        p.attempt_failed(t0 + every * 10);
        assert_eq!(p.before_retry(long, t0 + every * 11), Step::Probe);
        p.reset();
        assert_eq!(p.before_retry(long, t0 + every * 20), Step::Sleep(long));
        // Off.
        let mut off = Probe::new(Duration::ZERO);
        off.attempt_failed(t0);
        assert_eq!(off.before_retry(long, t0 + every), Step::Sleep(long));
    }

    #[test]
    fn a_probe_is_a_signed_webhook_without_events() {
        let v: serde_json::Value = serde_json::from_str(&probe_body(1_700_000_000_000)).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"time_ms": 1_700_000_000_000_i64, "events": []})
        );
    }

    #[test]
    fn body_is_pusher_shaped() {
        let e = |id, ev: &str| OutboxEvent {
            id,
            app_id: "1".into(),
            endpoint: "http://x".into(),
            event: ev.into(),
            created_ms: 1327078148132 + id,
            attempts: 0,
            next_attempt_ms: 0,
            last_error: None,
        };
        let b = body(&[
            e(0, r#"{"name":"channel_occupied","channel":"test_channel"}"#),
            e(1, r#"{"name":"channel_vacated","channel":"test_channel"}"#),
        ]);
        assert_eq!(
            b,
            r#"{"time_ms":1327078148132,"events":[{"name":"channel_occupied","channel":"test_channel"},{"name":"channel_vacated","channel":"test_channel"}]}"#
        );
        let v: serde_json::Value = serde_json::from_str(&b).unwrap();
        assert_eq!(v["events"].as_array().unwrap().len(), 2);
    }
}
