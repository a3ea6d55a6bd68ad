//! The collector: takes events off the queue, holds back `channel_vacated` and
//! `member_removed` for `vacate_delay_ms` (a re-occupation or re-join within it
//! cancels the pair, as Pusher does), fans events out to the endpoints that
//! want them and appends them to the outbox in batches.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use hush_protocol::ChannelName;
use hush_store::{NewOutboxEvent, OccupancyChange, Store, Target};
use tokio::sync::{Notify, mpsc, oneshot};
use tokio::time::Instant;

use super::{Endpoint, HookEvent, Queued};
use crate::config::WebhooksConfig;

/// Events appended per store transaction at most.
const MAX_WRITE: usize = 2_000;
/// Wait after a failed store write before the next try.
const STORE_RETRY: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Channel(Arc<str>, String),
    Member(Arc<str>, String, String),
}

pub(super) struct Collector {
    pub(super) store: Store,
    pub(super) routes: HashMap<String, Vec<Endpoint>>,
    pub(super) wake: Arc<HashMap<Target, Arc<Notify>>>,
    pub(super) config: WebhooksConfig,
}

/// What goes to the store in one transaction: outbox rows and the changes to
/// the occupancy journal that the same events make.
#[derive(Default)]
struct Batch {
    events: Vec<NewOutboxEvent>,
    changes: Vec<OccupancyChange>,
}

impl Batch {
    fn is_empty(&self) -> bool {
        self.events.is_empty() && self.changes.is_empty()
    }

    fn len(&self) -> usize {
        self.events.len() + self.changes.len()
    }

    fn clear(&mut self) {
        self.events.clear();
        self.changes.clear();
    }
}

/// Held-back events, by key and by deadline.
#[derive(Default)]
struct Held {
    by_key: HashMap<Key, (Instant, u64, Queued)>,
    by_time: BTreeMap<(Instant, u64), Key>,
    seq: u64,
}

impl Held {
    fn hold(&mut self, key: Key, until: Instant, q: Queued) {
        self.seq += 1;
        if let Some((t, s, _)) = self.by_key.insert(key.clone(), (until, self.seq, q)) {
            self.by_time.remove(&(t, s));
        }
        self.by_time.insert((until, self.seq), key);
    }

    /// Cancels a held event; true when there was one.
    fn cancel(&mut self, key: &Key) -> bool {
        match self.by_key.remove(key) {
            Some((t, s, _)) => {
                self.by_time.remove(&(t, s));
                true
            }
            None => false,
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        self.by_time.keys().next().map(|(t, _)| *t)
    }

    /// Removes and returns the events due at `now` (all of them if `now` is None).
    fn take_due(&mut self, now: Option<Instant>) -> Vec<Queued> {
        let mut out = Vec::new();
        while let Some((&(t, s), _)) = self.by_time.iter().next() {
            if now.is_some_and(|n| t > n) {
                break;
            }
            if let Some(key) = self.by_time.remove(&(t, s)) {
                if let Some((_, _, q)) = self.by_key.remove(&key) {
                    out.push(q);
                }
            }
        }
        out
    }
}

impl Collector {
    pub(super) async fn run(self, mut rx: mpsc::Receiver<Queued>, mut stop: oneshot::Receiver<()>) {
        let delay = Duration::from_millis(self.config.vacate_delay_ms);
        let window = Duration::from_millis(self.config.batch_window_ms);
        let mut held = Held::default();
        let mut out = Batch::default();
        let mut flush_at: Option<Instant> = None;
        // What the previous run left occupied (it crashed, or was killed):
        // vacated / removed now, before anything new.
        self.recover(&mut out).await;
        if !out.is_empty() {
            // The store refused the recovered events: retry with the loop's
            // writes instead of waiting for the next event.
            flush_at = Some(Instant::now());
        }
        'run: loop {
            let wake_at = match (held.next_deadline(), flush_at) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            let sleep = async {
                match wake_at {
                    Some(t) => tokio::time::sleep_until(t).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = &mut stop => break 'run,
                m = rx.recv() => match m {
                    Some(q) => {
                        self.accept(q, &mut held, &mut out, delay);
                        // Take what is already queued without waiting.
                        while out.len() < MAX_WRITE {
                            match rx.try_recv() {
                                Ok(q) => self.accept(q, &mut held, &mut out, delay),
                                Err(_) => break,
                            }
                        }
                    }
                    None => break 'run,
                },
                () = sleep => {}
            }
            let now = Instant::now();
            for q in held.take_due(Some(now)) {
                self.route(&q, &mut out);
            }
            if !out.is_empty() && flush_at.is_none() {
                flush_at = Some(now + window);
            }
            if out.len() >= MAX_WRITE || flush_at.is_some_and(|t| t <= now) {
                // Until the store takes the batch, nothing more is read: the
                // queue fills up and new events are dropped and counted
                // rather than piling up in memory.
                while !self.write(&out).await {
                    tokio::select! {
                        _ = &mut stop => break 'run,
                        () = tokio::time::sleep(STORE_RETRY) => {}
                    }
                }
                out.clear();
                flush_at = None;
            }
        }
        // Shutdown: everything queued and held goes to the outbox now.
        rx.close();
        while let Ok(q) = rx.try_recv() {
            self.accept(q, &mut held, &mut out, delay);
        }
        for q in held.take_due(None) {
            self.route(&q, &mut out);
        }
        for _ in 0..3 {
            if out.is_empty() || self.write(&out).await {
                return;
            }
            tokio::time::sleep(STORE_RETRY).await;
        }
        tracing::error!(
            events = out.len(),
            "webhook events lost at shutdown: the store is unavailable"
        );
    }

    /// Emits `channel_vacated` / `member_removed` for what the occupancy
    /// journal still holds at start: the previous process ended without
    /// emitting them (a crash, SIGKILL), and none of its clients is
    /// connected any more. Members first, as a node leaving does.
    ///
    /// Not on a store shared by several nodes (PostgreSQL): the journal
    /// there is the cluster's, and what it holds may be occupied by the
    /// clients of nodes that are running (emitting vacated for it would be
    /// false). Who emits a dead node's vacated / removed events is the
    /// cluster's occupancy (node leases, issue 15), not this recovery.
    async fn recover(&self, out: &mut Batch) {
        if self.store.is_shared() {
            return;
        }
        let left = match self.store.occupancy().await {
            Ok(left) => left,
            Err(e) => {
                return tracing::error!(error = %e, "webhook occupancy journal unreadable");
            }
        };
        if left.is_empty() {
            return;
        }
        let now = hush_store::now_ms();
        let (members, channels): (Vec<_>, Vec<_>) =
            left.into_iter().partition(|o| !o.user_id.is_empty());
        let count = members.len() + channels.len();
        for o in members.into_iter().chain(channels) {
            let change = OccupancyChange {
                app_id: o.app_id.clone(),
                channel: o.channel.clone(),
                user_id: o.user_id.clone(),
                open: false,
            };
            let Ok(channel) = ChannelName::parse(&o.channel) else {
                out.changes.push(change);
                continue;
            };
            let event = if o.user_id.is_empty() {
                HookEvent::ChannelVacated(channel)
            } else {
                HookEvent::MemberRemoved(channel, o.user_id)
            };
            // Routed like any event (endpoints may have changed since); the
            // journal entry goes whether or not anyone still wants it.
            self.route(
                &Queued {
                    app_id: Arc::from(o.app_id.as_str()),
                    at_ms: now,
                    event,
                },
                out,
            );
        }
        tracing::warn!(
            count,
            "the previous run ended without vacating its channels: channel_vacated / member_removed emitted now"
        );
        for _ in 0..3 {
            if self.write(out).await {
                out.clear();
                return;
            }
            tokio::time::sleep(STORE_RETRY).await;
        }
    }

    /// Applies the debounce to one event.
    fn accept(&self, q: Queued, held: &mut Held, out: &mut Batch, delay: Duration) {
        let app = q.app_id.clone();
        match &q.event {
            HookEvent::ChannelVacated(c) => {
                let key = Key::Channel(app, c.as_str().to_owned());
                held.hold(key, Instant::now() + delay, q);
            }
            HookEvent::MemberRemoved(c, u) => {
                let key = Key::Member(app, c.as_str().to_owned(), u.clone());
                held.hold(key, Instant::now() + delay, q);
            }
            HookEvent::ChannelOccupied(c) => {
                if !held.cancel(&Key::Channel(app, c.as_str().to_owned())) {
                    self.route(&q, out);
                }
            }
            HookEvent::MemberAdded(c, u) => {
                if !held.cancel(&Key::Member(app, c.as_str().to_owned(), u.clone())) {
                    self.route(&q, out);
                }
            }
            _ => self.route(&q, out),
        }
    }

    /// One outbox row per endpoint of the app that wants this event type,
    /// and the event's change to the occupancy journal.
    fn route(&self, q: &Queued, out: &mut Batch) {
        let change = |channel: &ChannelName, user: &str, open: bool| OccupancyChange {
            app_id: q.app_id.to_string(),
            channel: channel.as_str().to_owned(),
            user_id: user.to_owned(),
            open,
        };
        match &q.event {
            HookEvent::ChannelOccupied(c) => out.changes.push(change(c, "", true)),
            HookEvent::ChannelVacated(c) => out.changes.push(change(c, "", false)),
            HookEvent::MemberAdded(c, u) => out.changes.push(change(c, u, true)),
            HookEvent::MemberRemoved(c, u) => out.changes.push(change(c, u, false)),
            _ => {}
        }
        let Some(endpoints) = self.routes.get(&*q.app_id) else {
            return;
        };
        let bit = q.event.kind().bit();
        let channel = q.event.channel().as_str();
        let mut json: Option<String> = None;
        for e in endpoints.iter().filter(|e| e.wants(bit, channel)) {
            let event = json.get_or_insert_with(|| q.event.to_json()).clone();
            out.events.push(NewOutboxEvent {
                app_id: q.app_id.to_string(),
                endpoint: e.url.clone(),
                event,
                created_ms: q.at_ms,
            });
        }
    }

    /// Appends `out` and wakes the endpoints concerned; false on a store error.
    async fn write(&self, out: &Batch) -> bool {
        if let Err(e) = self
            .store
            .outbox_append_journaled(&out.events, &out.changes)
            .await
        {
            tracing::error!(error = %e, events = out.events.len(), "webhook outbox write failed; retrying");
            return false;
        }
        let mut woken: Vec<(&str, &str)> = Vec::new();
        for ev in &out.events {
            let k = (ev.app_id.as_str(), ev.endpoint.as_str());
            if woken.contains(&k) {
                continue;
            }
            woken.push(k);
            let target = Target {
                app_id: ev.app_id.clone(),
                endpoint: ev.endpoint.clone(),
            };
            if let Some(n) = self.wake.get(&target) {
                n.notify_one();
            }
        }
        true
    }
}
