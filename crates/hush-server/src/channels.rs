//! The per-app channel registry: subscribers, presence members and the last
//! event of cache channels, sharded so that publishing never takes a global lock.
//!
//! Frames that must be ordered relative to a subscription change (the
//! subscriber's `subscription_succeeded`, its cached event, `member_added`,
//! `subscription_count`) are queued while the shard lock is held, so a
//! subscriber never sees a channel event before its own
//! `subscription_succeeded`, and a cached event is never replayed after a newer one.
//!
//! Beside each channel's local subscribers lives its
//! [`ClusterView`] (cluster-wide counts and presence members by node), in
//! the same shard under the same lock: this node's changes are applied to it
//! directly, the other nodes' through [`Channels::apply`]. Cluster-scoped
//! answers (counts, members, occupied channels) and the occupancy and
//! membership webhooks ([`Occupancy`]) come from the view.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::RwLock;
use std::time::{Duration, Instant};

use hush_protocol::presence::PresenceMember;
use hush_protocol::wire;
use hush_protocol::{ChannelName, SocketId};

use crate::cluster::{Cluster, ClusterMsg, NodeId};
use crate::config::WebhookEventType;
use crate::conn::{ConnHandle, ConnId, Frame};
use crate::fanout;
use crate::lock::{read, write};
use crate::occupancy::{ClusterView, Occupancy, Transition};
use crate::webhooks::{AppHooks, HookEvent};

const SHARDS: usize = 32;

/// Subscription-count events on channels larger than this are sent at most
/// every [`LARGE_CHANNEL_COUNT_INTERVAL`].
const LARGE_CHANNEL: usize = 100;
const LARGE_CHANNEL_COUNT_INTERVAL: Duration = Duration::from_secs(5);

struct Channel {
    subs: HashMap<ConnId, Sub>,
    /// Presence: this node's sockets per user id.
    members: HashMap<String, usize>,
    /// The channel across the cluster (this node included).
    view: ClusterView,
    cache: Option<CachedEvent>,
    last_count_sent: Option<Instant>,
    /// A count change was held back by the large-channel interval.
    count_pending: bool,
    /// Shared cluster: when this node last sent a `subscription_count`
    /// webhook decided on the bus order, and whether one is held back.
    hook_count_sent: Option<Instant>,
    hook_count_pending: bool,
    /// A `cache_miss` webhook was sent and no event has been cached since.
    miss_reported: bool,
}

struct Sub {
    handle: ConnHandle,
    /// Presence: the user id this socket joined as.
    user_id: Option<String>,
}

/// The last event published to a cache channel.
#[derive(Debug, Clone)]
pub struct CachedEvent {
    /// The encoded channel event frame.
    pub frame: Frame,
    /// The event's `data` string.
    pub data: String,
    /// When it stops being replayed.
    pub expires: Instant,
}

impl Channel {
    fn new(me: NodeId) -> Self {
        Self {
            subs: HashMap::new(),
            members: HashMap::new(),
            view: ClusterView::new(me),
            cache: None,
            last_count_sent: None,
            count_pending: false,
            hook_count_sent: None,
            hook_count_pending: false,
            miss_reported: false,
        }
    }

    fn cache_live(&self, now: Instant) -> Option<&CachedEvent> {
        self.cache.as_ref().filter(|c| c.expires > now)
    }

    fn is_garbage(&self, now: Instant) -> bool {
        self.subs.is_empty() && self.view.is_empty() && self.cache_live(now).is_none()
    }
}

/// What [`Channels::publish_deferred`] did.
#[derive(Debug)]
pub enum Published {
    /// Written (or queued) for this many sockets under the channel lock.
    Sent(usize),
    /// A large channel: its recipients' links, to be written outside the
    /// lock by [`fanout::deliver`].
    Deferred(Vec<std::sync::Arc<crate::conn::Link>>),
}

/// What a subscription did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscribed {
    /// The socket was already subscribed (only `subscription_succeeded` was re-sent).
    pub already: bool,
    /// The channel had no subscriber in the cluster before
    /// (`channel_occupied`).
    pub occupied: bool,
    /// Presence: this was the user's first socket in the cluster
    /// (`member_added`).
    pub member_added: bool,
    /// Cache channel: no live cached event (a `pusher:cache_miss` was sent).
    pub cache_miss: bool,
}

/// What an unsubscription did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Unsubscribed {
    /// The socket was subscribed.
    pub was_subscribed: bool,
    /// The channel has no subscriber left in the cluster
    /// (`channel_vacated`).
    pub vacated: bool,
    /// Presence: the user whose last socket in the cluster left
    /// (`member_removed`).
    pub member_removed: Option<String>,
}

/// Refusal of a presence subscription.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Maximum number of presence members ({0}) reached")]
pub struct MemberLimit(pub usize);

/// Facts about one channel for the HTTP API, cluster-wide.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChannelInfo {
    /// Sockets subscribed.
    pub subscription_count: usize,
    /// Distinct presence users.
    pub user_count: usize,
}

impl ChannelInfo {
    fn of(view: &ClusterView) -> Self {
        Self {
            subscription_count: view.subscriptions(),
            user_count: view.user_count(),
        }
    }
}

/// Options that shape subscription side effects.
#[derive(Debug, Clone, Copy)]
pub struct SubscribeOptions {
    /// Most distinct presence users.
    pub max_members: usize,
    /// Send `pusher_internal:subscription_count` to subscribers.
    pub subscription_count: bool,
}

/// The registry of one app on one node.
pub struct Channels {
    shards: Box<[RwLock<HashMap<ChannelName, Channel>>]>,
    hasher: RandomState,
    /// This node.
    node: NodeId,
    /// Where this node's changes go ([`Cluster::Local`]: straight into the
    /// bus-ordered view).
    cluster: Cluster,
    /// Webhook events are emitted under the shard lock, so their order per
    /// channel is the order of the changes. Occupancy and membership
    /// events go through `occupancy`, the others (cache miss, subscription
    /// count) straight to `hooks`.
    hooks: Option<AppHooks>,
    occupancy: Occupancy,
}

impl Default for Channels {
    fn default() -> Self {
        Self::with_hooks(None)
    }
}

impl Channels {
    /// A registry of a node alone ([`NodeId::LOCAL`]) whose changes emit
    /// webhook events to `hooks`.
    pub fn with_hooks(hooks: Option<AppHooks>) -> Self {
        Self::new(Cluster::Local, hooks)
    }

    /// The registry of this node of `cluster`, emitting webhook events to
    /// `hooks`.
    pub fn new(cluster: Cluster, hooks: Option<AppHooks>) -> Self {
        let node = cluster.node();
        Self {
            shards: (0..SHARDS).map(|_| RwLock::default()).collect(),
            hasher: RandomState::new(),
            node,
            cluster,
            occupancy: Occupancy::new(node, hooks.clone()),
            hooks,
        }
    }

    /// The hooks, if webhooks of type `t` are wanted.
    fn hook(&self, t: WebhookEventType) -> Option<&AppHooks> {
        self.hooks.as_ref().filter(|h| h.wants(t))
    }

    /// True when `subscription_count` webhooks are wanted (then held-back
    /// counts must be flushed even if clients do not get counts).
    pub fn counts_hooked(&self) -> bool {
        self.hook(WebhookEventType::SubscriptionCount).is_some()
    }

    fn shard(&self, name: &ChannelName) -> &RwLock<HashMap<ChannelName, Channel>> {
        let i = (self.hasher.hash_one(name) as usize) % self.shards.len();
        &self.shards[i]
    }

    /// Adds `handle` to `name` and queues, in order: `subscription_succeeded`,
    /// then (cache channels) the cached event or `pusher:cache_miss`; and to the
    /// others: `member_added` (first socket of a user) and `subscription_count`.
    pub fn subscribe(
        &self,
        name: &ChannelName,
        handle: &ConnHandle,
        member: Option<PresenceMember>,
        opts: SubscribeOptions,
    ) -> Result<Subscribed, MemberLimit> {
        let now = Instant::now();
        let node = self.node;
        let mut shard = write(self.shard(name));
        let ch = shard
            .entry(name.clone())
            .or_insert_with(|| Channel::new(node));
        if let Some(m) = &member {
            if !ch.view.has_member(&m.user_id) && ch.view.user_count() >= opts.max_members {
                if ch.is_garbage(now) {
                    shard.remove(name);
                }
                return Err(MemberLimit(opts.max_members));
            }
        }
        if ch.subs.contains_key(&handle.id) {
            handle.send(&succeeded_frame(name, ch, member.is_some()));
            return Ok(Subscribed {
                already: true,
                occupied: false,
                member_added: false,
                cache_miss: false,
            });
        }
        let occupied = !ch.view.is_occupied();
        ch.view.set_here(ch.subs.len() + 1);
        self.own_count(name, ch, ch.subs.len() + 1);
        let mut member_added = false;
        let user_id = member.map(|m| {
            let sockets = ch.members.entry(m.user_id.clone()).or_insert(0);
            *sockets += 1;
            if *sockets == 1 {
                member_added = ch.view.here_joined(&m.user_id, m.user_info.as_deref());
                if member_added {
                    let t = Transition::MemberAdded(m.user_id.clone());
                    member_frame(name, ch, &t, &m.user_id);
                }
                self.own_member(name, ch, &m.user_id, true);
            }
            m.user_id
        });
        let is_presence = user_id.is_some();
        ch.subs.insert(
            handle.id,
            Sub {
                handle: handle.clone(),
                user_id,
            },
        );
        handle.send(&succeeded_frame(name, ch, is_presence));
        let mut cache_miss = false;
        if name.is_cache() {
            match ch.cache_live(now) {
                Some(c) => {
                    handle.send(&c.frame);
                }
                None => {
                    cache_miss = true;
                    handle.send(&wire::cache_miss(name.as_str()).into());
                    if !ch.miss_reported {
                        if let Some(h) = self.hook(WebhookEventType::CacheMiss) {
                            ch.miss_reported = true;
                            h.emit(HookEvent::CacheMiss(name.clone()));
                        }
                    }
                }
            }
        }
        let count_hook = self.local_count_hook();
        if (opts.subscription_count || count_hook.is_some()) && !is_presence {
            send_count(name, ch, now, opts.subscription_count, count_hook);
        }
        Ok(Subscribed {
            already: false,
            occupied,
            member_added,
            cache_miss,
        })
    }

    /// Removes `conn` from `name`, queueing `member_removed` (last socket of a
    /// user) and `subscription_count` to the remaining subscribers.
    pub fn unsubscribe(
        &self,
        name: &ChannelName,
        conn: ConnId,
        subscription_count: bool,
    ) -> Unsubscribed {
        let now = Instant::now();
        let mut shard = write(self.shard(name));
        let Some(ch) = shard.get_mut(name) else {
            return Unsubscribed::default();
        };
        let Some(sub) = ch.subs.remove(&conn) else {
            return Unsubscribed::default();
        };
        let mut out = Unsubscribed {
            was_subscribed: true,
            vacated: false,
            member_removed: None,
        };
        if let Some(uid) = sub.user_id {
            let last = match ch.members.get_mut(&uid) {
                Some(sockets) => {
                    *sockets = sockets.saturating_sub(1);
                    *sockets == 0
                }
                None => false,
            };
            if last {
                ch.members.remove(&uid);
                if ch.view.here_left(&uid) {
                    let t = Transition::MemberRemoved(uid.clone());
                    member_frame(name, ch, &t, &uid);
                    out.member_removed = Some(uid.clone());
                }
                self.own_member(name, ch, &uid, false);
            }
        }
        let was_occupied = ch.view.is_occupied();
        ch.view.set_here(ch.subs.len());
        out.vacated = was_occupied && !ch.view.is_occupied();
        let count_hook = self.local_count_hook();
        if !name.kind().is_presence()
            && (subscription_count || count_hook.is_some())
            && !ch.subs.is_empty()
        {
            send_count(name, ch, now, subscription_count, count_hook);
        }
        self.own_count(name, ch, ch.subs.len());
        if ch.is_garbage(now) {
            shard.remove(name);
        }
        out
    }

    /// Sends `frame` to every subscriber of `name` except `except`. For cache
    /// channels, `cache` (event data and TTL) is stored as the last event.
    /// Returns the number of sockets the frame was queued for.
    pub fn publish(
        &self,
        name: &ChannelName,
        frame: &Frame,
        except: Option<&SocketId>,
        cache: Option<(&str, Duration)>,
    ) -> usize {
        self.with_publish(name, frame, cache, |ch| send_all(ch, frame, except))
            .unwrap_or(0)
    }

    /// Like [`Channels::publish`], but a channel of at least
    /// [`fanout::DEFER_MIN`] subscribers is not written under its lock: its
    /// recipients' links are returned for [`fanout::deliver`].
    pub fn publish_deferred(
        &self,
        name: &ChannelName,
        frame: &Frame,
        except: Option<&SocketId>,
        cache: Option<(&str, Duration)>,
    ) -> Published {
        self.with_publish(name, frame, cache, |ch| {
            if ch.subs.len() < fanout::DEFER_MIN {
                return Published::Sent(send_all(ch, frame, except));
            }
            Published::Deferred(recipients(ch, except).map(|h| h.link().clone()).collect())
        })
        .unwrap_or(Published::Sent(0))
    }

    /// Runs `deliver` on channel `name` under its lock (the write lock for a
    /// cache channel, whose last event is stored first); `None` if the
    /// channel does not exist and nothing is cached.
    fn with_publish<R>(
        &self,
        name: &ChannelName,
        frame: &Frame,
        cache: Option<(&str, Duration)>,
        deliver: impl FnOnce(&Channel) -> R,
    ) -> Option<R> {
        let Some((data, ttl)) = cache else {
            return read(self.shard(name)).get(name).map(deliver);
        };
        let mut shard = write(self.shard(name));
        let node = self.node;
        let ch = shard
            .entry(name.clone())
            .or_insert_with(|| Channel::new(node));
        ch.miss_reported = false;
        ch.cache = Some(CachedEvent {
            frame: frame.clone(),
            data: data.to_owned(),
            expires: Instant::now() + ttl,
        });
        Some(deliver(ch))
    }

    /// Subscription and user counts of one channel, cluster-wide.
    pub fn info(&self, name: &ChannelName) -> ChannelInfo {
        read(self.shard(name))
            .get(name)
            .map_or_else(ChannelInfo::default, |ch| ChannelInfo::of(&ch.view))
    }

    /// The live cached event of a cache channel, with its remaining TTL.
    pub fn cached(&self, name: &ChannelName) -> Option<(String, Duration)> {
        let now = Instant::now();
        read(self.shard(name))
            .get(name)
            .and_then(|ch| ch.cache_live(now))
            .map(|c| (c.data.clone(), c.expires.saturating_duration_since(now)))
    }

    /// Distinct presence user ids of a channel, cluster-wide.
    pub fn user_ids(&self, name: &ChannelName) -> Vec<String> {
        read(self.shard(name))
            .get(name)
            .map_or_else(Vec::new, |ch| {
                ch.view.user_ids().map(str::to_owned).collect()
            })
    }

    /// Every channel occupied in the cluster whose name starts with
    /// `prefix`, with its info.
    pub fn occupied(&self, prefix: &str) -> Vec<(ChannelName, ChannelInfo)> {
        let mut out = Vec::new();
        for shard in self.shards.iter() {
            for (name, ch) in read(shard).iter() {
                if ch.view.is_occupied() && name.as_str().starts_with(prefix) {
                    out.push((name.clone(), ChannelInfo::of(&ch.view)));
                }
            }
        }
        out
    }

    /// The `subscription_count` webhook hooks to feed on this node's own
    /// changes: on [`Cluster::Local`] only (a shared cluster emits it from
    /// the bus-ordered view, [`Channels::apply`]).
    fn local_count_hook(&self) -> Option<&AppHooks> {
        match self.cluster {
            Cluster::Local => self.hook(WebhookEventType::SubscriptionCount),
            Cluster::Shared { .. } => None,
        }
    }

    /// This node now has `count` subscribers on `name`: applied to the
    /// bus-ordered view at once ([`Cluster::Local`], emitting its webhook)
    /// or sent to the bus (under the shard lock: this node's messages about
    /// a channel leave in the order of its changes).
    fn own_count(&self, name: &ChannelName, ch: &mut Channel, count: usize) {
        match &self.cluster {
            Cluster::Local => {
                if let Some(t) = ch.view.set_subscriptions(self.node, count) {
                    self.occupancy.emit(self.node, name, &t);
                }
            }
            Cluster::Shared { node, sink } => sink.send(ClusterMsg::Subscriptions {
                node: *node,
                channel: name.clone(),
                count,
            }),
        }
    }

    /// The first socket of `user_id` on this node joined `name` (`joined`)
    /// or its last one left; like [`Channels::own_count`].
    fn own_member(&self, name: &ChannelName, ch: &mut Channel, user_id: &str, joined: bool) {
        match &self.cluster {
            Cluster::Local => {
                let t = if joined {
                    let info = ch.view.member_raw(user_id).map(ToOwned::to_owned);
                    ch.view.member_joined(self.node, user_id, info.as_deref())
                } else {
                    ch.view.member_left(self.node, user_id)
                };
                if let Some(t) = t {
                    self.occupancy.emit(self.node, name, &t);
                }
            }
            Cluster::Shared { node, sink } => sink.send(if joined {
                ClusterMsg::MemberJoined {
                    node: *node,
                    channel: name.clone(),
                    user_id: user_id.to_owned(),
                    user_info: ch.view.member_raw(user_id).map(ToOwned::to_owned),
                }
            } else {
                ClusterMsg::MemberLeft {
                    node: *node,
                    channel: name.clone(),
                    user_id: user_id.to_owned(),
                }
            }),
        }
    }

    /// Applies a bus message (`origin`: the node that sent it; this node's
    /// own messages come back too) to the channel's view: this node's
    /// subscribers get the `member_added` / `member_removed` (and, with
    /// `to_clients`, `subscription_count`) of what they now see change, and
    /// the occupancy, membership and count webhooks are emitted if `origin`
    /// is this node. A [`ClusterMsg::NodeLeft`] is applied to every channel.
    pub fn apply(&self, origin: NodeId, msg: &ClusterMsg, to_clients: bool) {
        let now = Instant::now();
        let name = match msg {
            ClusterMsg::Subscriptions { channel, .. }
            | ClusterMsg::MemberJoined { channel, .. }
            | ClusterMsg::MemberLeft { channel, .. }
            | ClusterMsg::NodeState { channel, .. } => channel,
            ClusterMsg::NodeLeft { .. } => {
                for shard in self.shards.iter() {
                    let mut g = write(shard);
                    for (name, ch) in g.iter_mut() {
                        self.apply_to(origin, name, ch, msg, now, to_clients);
                    }
                    g.retain(|_, ch| !ch.is_garbage(now));
                }
                return;
            }
            _ => return,
        };
        let mut shard = write(self.shard(name));
        let node = self.node;
        let ch = shard
            .entry(name.clone())
            .or_insert_with(|| Channel::new(node));
        self.apply_to(origin, name, ch, msg, now, to_clients);
        if ch.is_garbage(now) {
            shard.remove(name);
        }
    }

    fn apply_to(
        &self,
        origin: NodeId,
        name: &ChannelName,
        ch: &mut Channel,
        msg: &ClusterMsg,
        now: Instant,
        to_clients: bool,
    ) {
        let bus_before = ch.view.bus_subscriptions();
        let applied = ch.view.apply(msg);
        for t in &applied.visible {
            if let Transition::MemberAdded(uid) | Transition::MemberRemoved(uid) = t {
                member_frame(name, ch, t, uid);
            }
        }
        for t in &applied.transitions {
            self.occupancy.emit(origin, name, t);
        }
        if name.kind().is_presence() {
            return;
        }
        if applied.count_changed && to_clients && !ch.subs.is_empty() {
            send_count(name, ch, now, true, None);
        }
        let bus_after = ch.view.bus_subscriptions();
        if self.cluster.is_shared()
            && origin == self.node
            && bus_after != bus_before
            && bus_after > 0
        {
            if let Some(h) = self.hook(WebhookEventType::SubscriptionCount) {
                bus_count_hook(name, ch, now, h);
            }
        }
    }

    /// Sends this node's whole contribution to every channel it has
    /// subscribers on or the bus-ordered view credits it with (zero then):
    /// the [`ClusterMsg::NodeState`]s of a resynchronisation, each sent
    /// under its shard lock (after every earlier change of the channel,
    /// before every later one).
    pub fn send_own_states(&self) {
        let Cluster::Shared { sink, .. } = &self.cluster else {
            return;
        };
        for shard in self.shards.iter() {
            let g = read(shard);
            for (name, ch) in g.iter() {
                if ch.subs.is_empty() && !ch.view.credits_me() {
                    continue;
                }
                let members = ch
                    .members
                    .keys()
                    .map(|u| (u.clone(), ch.view.member_raw(u).map(ToOwned::to_owned)))
                    .collect();
                sink.send(ClusterMsg::NodeState {
                    node: self.node,
                    channel: name.clone(),
                    count: ch.subs.len(),
                    members,
                });
            }
        }
    }

    /// The live last events of cache channels, as [`ClusterMsg::Cached`].
    pub fn cached_states(&self) -> Vec<ClusterMsg> {
        let now = Instant::now();
        let mut out = Vec::new();
        for shard in self.shards.iter() {
            for (name, ch) in read(shard).iter() {
                if let Some(c) = ch.cache_live(now) {
                    out.push(ClusterMsg::Cached {
                        channel: name.clone(),
                        frame: c.frame.clone(),
                        data: c.data.clone(),
                        ttl: c.expires.saturating_duration_since(now),
                    });
                }
            }
        }
        out
    }

    /// Stores another node's cached event of `name` unless this node has a
    /// live one (which is as new or newer: it was delivered here).
    pub fn store_cached(&self, name: &ChannelName, frame: &Frame, data: &str, ttl: Duration) {
        self.put_cached(name, frame, data, ttl, false);
    }

    /// Stores the cache event another node just published on `name` (it
    /// replaces the channel's last event).
    pub fn set_cached(&self, name: &ChannelName, frame: &Frame, data: &str, ttl: Duration) {
        self.put_cached(name, frame, data, ttl, true);
    }

    fn put_cached(
        &self,
        name: &ChannelName,
        frame: &Frame,
        data: &str,
        ttl: Duration,
        replace: bool,
    ) {
        let now = Instant::now();
        let node = self.node;
        let mut shard = write(self.shard(name));
        let ch = shard
            .entry(name.clone())
            .or_insert_with(|| Channel::new(node));
        if replace || ch.cache_live(now).is_none() {
            ch.miss_reported = false;
            ch.cache = Some(CachedEvent {
                frame: frame.clone(),
                data: data.to_owned(),
                expires: now + ttl,
            });
        }
    }

    /// Occupied channels and subscriptions (socket × channel), for metrics.
    pub fn totals(&self) -> (usize, usize) {
        let (mut channels, mut subs) = (0, 0);
        for shard in self.shards.iter() {
            for ch in read(shard).values().filter(|ch| !ch.subs.is_empty()) {
                channels += 1;
                subs += ch.subs.len();
            }
        }
        (channels, subs)
    }

    /// Sends the `subscription_count` changes held back on large channels once
    /// their interval has passed (to subscribers when `to_clients`, and to
    /// the webhooks that want them).
    pub fn flush_counts(&self, to_clients: bool) {
        let now = Instant::now();
        let count_hook = self.local_count_hook();
        let bus_hook = self
            .cluster
            .is_shared()
            .then(|| self.hook(WebhookEventType::SubscriptionCount))
            .flatten();
        for shard in self.shards.iter() {
            let mut g = write(shard);
            for (name, ch) in g.iter_mut() {
                if ch.count_pending {
                    send_count(name, ch, now, to_clients, count_hook);
                }
                if let Some(h) = bus_hook.filter(|_| ch.hook_count_pending) {
                    bus_count_hook(name, ch, now, h);
                }
            }
        }
    }

    /// Drops expired cache entries of channels nobody is subscribed to.
    pub fn sweep(&self) {
        let now = Instant::now();
        for shard in self.shards.iter() {
            write(shard).retain(|_, ch| !ch.is_garbage(now));
        }
    }
}

/// Sends `member_added` or `member_removed` of `uid` to this node's
/// subscribers of `ch`.
fn member_frame(name: &ChannelName, ch: &Channel, t: &Transition, uid: &str) {
    let frame: Frame = match t {
        Transition::MemberAdded(_) => {
            wire::member_added(name.as_str(), uid, ch.view.member_info(uid)).into()
        }
        Transition::MemberRemoved(_) => wire::member_removed(name.as_str(), uid).into(),
        _ => return,
    };
    for s in ch.subs.values() {
        s.handle.send(&frame);
    }
}

fn succeeded_frame(name: &ChannelName, ch: &Channel, presence: bool) -> Frame {
    if presence {
        let data = wire::presence_data(ch.view.members());
        wire::subscription_succeeded(name.as_str(), &data).into()
    } else {
        wire::subscription_succeeded(name.as_str(), "{}").into()
    }
}

/// A shared cluster's `subscription_count` webhook, from the bus-ordered
/// count; on large channels at most every [`LARGE_CHANNEL_COUNT_INTERVAL`]
/// (the last change held back is sent by [`Channels::flush_counts`]).
fn bus_count_hook(name: &ChannelName, ch: &mut Channel, now: Instant, hook: &AppHooks) {
    let n = ch.view.bus_subscriptions();
    if n > LARGE_CHANNEL
        && ch
            .hook_count_sent
            .is_some_and(|t| now.duration_since(t) < LARGE_CHANNEL_COUNT_INTERVAL)
    {
        ch.hook_count_pending = true;
        return;
    }
    ch.hook_count_sent = Some(now);
    ch.hook_count_pending = false;
    if n > 0 {
        hook.emit(HookEvent::SubscriptionCount(name.clone(), n));
    }
}

fn send_count(
    name: &ChannelName,
    ch: &mut Channel,
    now: Instant,
    to_clients: bool,
    hook: Option<&AppHooks>,
) {
    let n = ch.view.subscriptions();
    if n > LARGE_CHANNEL {
        if let Some(last) = ch.last_count_sent {
            if now.duration_since(last) < LARGE_CHANNEL_COUNT_INTERVAL {
                // Sent later by `flush_counts`, so the last change is never lost.
                ch.count_pending = true;
                return;
            }
        }
    }
    ch.last_count_sent = Some(now);
    ch.count_pending = false;
    if let Some(h) = hook {
        h.emit(HookEvent::SubscriptionCount(name.clone(), n));
    }
    if to_clients {
        let frame: Frame = wire::subscription_count(name.as_str(), n).into();
        for s in ch.subs.values() {
            s.handle.send(&frame);
        }
    }
}

/// The subscribers of `ch` a publish goes to.
fn recipients<'a>(
    ch: &'a Channel,
    except: Option<&'a SocketId>,
) -> impl Iterator<Item = &'a ConnHandle> {
    ch.subs
        .values()
        .map(|s| &s.handle)
        .filter(move |h| except != Some(&h.socket_id))
}

/// Writes `frame` to the recipients of `ch`; returns how many took it.
fn send_all(ch: &Channel, frame: &Frame, except: Option<&SocketId>) -> usize {
    recipients(ch, except).filter(|h| h.send(frame)).count()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conn::Link;

    type Rx = std::sync::Arc<Link>;

    fn conn() -> (ConnHandle, Rx) {
        ConnHandle::new(SocketId::from_parts(1, rand::random()), 64, None)
    }

    fn drain(rx: &mut Rx) -> Vec<String> {
        rx.outbox()
            .take_queued()
            .iter()
            .map(|f| f.payload().to_owned())
            .collect()
    }

    fn member(id: &str) -> Option<PresenceMember> {
        Some(
            hush_protocol::presence::parse_channel_data(&format!(r#"{{"user_id":"{id}"}}"#), 1024)
                .unwrap(),
        )
    }

    const OPTS: SubscribeOptions = SubscribeOptions {
        max_members: 2,
        subscription_count: false,
    };

    #[test]
    fn presence_one_member_per_user() {
        let ch = Channels::default();
        let name = ChannelName::parse("presence-x").unwrap();
        let (a1, mut ra1) = conn();
        let (a2, mut ra2) = conn();
        let (b, mut rb) = conn();
        assert!(
            ch.subscribe(&name, &a1, member("a"), OPTS)
                .unwrap()
                .member_added
        );
        assert!(
            !ch.subscribe(&name, &a2, member("a"), OPTS)
                .unwrap()
                .member_added
        );
        assert!(
            ch.subscribe(&name, &b, member("b"), OPTS)
                .unwrap()
                .member_added
        );
        assert_eq!(
            ch.info(&name),
            ChannelInfo {
                subscription_count: 3,
                user_count: 2
            }
        );
        // a1 saw its success then b's member_added, but not a2's second socket.
        let got = drain(&mut ra1);
        assert_eq!(got.len(), 2, "{got:?}");
        assert!(got[1].contains("member_added"));
        drain(&mut ra2);
        drain(&mut rb);
        // Limit: a third distinct user is refused, another socket of "a" is fine.
        let (c, _rc) = conn();
        assert_eq!(
            ch.subscribe(&name, &c, member("c"), OPTS),
            Err(MemberLimit(2))
        );
        // a1 leaves: a still has a2, nothing is broadcast.
        assert_eq!(ch.unsubscribe(&name, a1.id, false).member_removed, None);
        assert!(drain(&mut rb).is_empty());
        let out = ch.unsubscribe(&name, a2.id, false);
        assert_eq!(out.member_removed.as_deref(), Some("a"));
        assert!(drain(&mut rb)[0].contains("member_removed"));
        assert!(ch.unsubscribe(&name, b.id, false).vacated);
        assert_eq!(ch.info(&name), ChannelInfo::default());
    }

    #[test]
    fn publish_excludes_and_caches() {
        let ch = Channels::default();
        let name = ChannelName::parse("cache-x").unwrap();
        let (a, mut ra) = conn();
        let s = ch.subscribe(&name, &a, None, OPTS).unwrap();
        assert!(s.cache_miss && s.occupied);
        let f: Frame = wire::channel_event("e", "cache-x", "1").into();
        assert_eq!(
            ch.publish(
                &name,
                &f,
                Some(&a.socket_id),
                Some(("1", Duration::from_secs(60)))
            ),
            0
        );
        drain(&mut ra);
        let (b, mut rb) = conn();
        assert!(!ch.subscribe(&name, &b, None, OPTS).unwrap().cache_miss);
        let got = drain(&mut rb);
        assert_eq!(got[1], f.payload());
        assert_eq!(ch.cached(&name).unwrap().0, "1");
        ch.unsubscribe(&name, a.id, false);
        ch.unsubscribe(&name, b.id, false);
        ch.sweep();
        // The cached event outlives its subscribers until the TTL.
        assert!(ch.cached(&name).is_some());
        assert_eq!(ch.occupied(""), vec![]);
    }

    #[test]
    fn held_back_counts_are_flushed() {
        let ch = Channels::default();
        let name = ChannelName::parse("big").unwrap();
        let opts = SubscribeOptions {
            max_members: 0,
            subscription_count: true,
        };
        // Queues large enough for one count frame per join.
        let mut conns: Vec<_> = (0..=LARGE_CHANNEL)
            .map(|i| ConnHandle::new(SocketId::from_parts(2, i as u64), 4 * LARGE_CHANNEL, None))
            .collect();
        for (h, _) in &conns {
            ch.subscribe(&name, h, None, opts).unwrap();
        }
        // Up to 100 subscribers every change is sent; the 101st and the late
        // one come within the interval and are held back.
        let (late, _rl) = conn();
        ch.subscribe(&name, &late, None, opts).unwrap();
        let (_, rx0) = &mut conns[0];
        let counts = |rx: &mut Rx| {
            drain(rx)
                .into_iter()
                .filter(|f| f.contains("subscription_count"))
                .collect::<Vec<_>>()
        };
        let seen = counts(rx0);
        assert!(
            seen.last()
                .unwrap()
                .contains(&format!("\\\"subscription_count\\\":{LARGE_CHANNEL}")),
            "{seen:?}"
        );
        // Nothing due yet.
        ch.flush_counts(true);
        assert!(counts(rx0).is_empty());
        // Once the interval has passed, the held-back count goes out.
        {
            let mut g = write(ch.shard(&name));
            g.get_mut(&name).unwrap().last_count_sent =
                Some(Instant::now() - LARGE_CHANNEL_COUNT_INTERVAL);
        }
        ch.flush_counts(true);
        let got = counts(rx0);
        assert_eq!(got.len(), 1);
        assert!(
            got[0].contains(&format!("{}", LARGE_CHANNEL + 2)),
            "{got:?}"
        );
    }

    /// Another node's counts and members, applied to the view, reach this
    /// node's subscribers and answers, and leave with that node.
    #[test]
    fn another_nodes_members_and_counts_are_part_of_the_channel() {
        let ch = Channels::default();
        let name = ChannelName::parse("presence-x").unwrap();
        let b = NodeId(7);
        let (a1, mut ra1) = conn();
        ch.subscribe(&name, &a1, member("a"), OPTS).unwrap();
        drain(&mut ra1);
        let channel = name.clone();
        ch.apply(
            b,
            &ClusterMsg::Subscriptions {
                node: b,
                channel,
                count: 2,
            },
            false,
        );
        let (channel, user_id) = (name.clone(), "b".to_owned());
        ch.apply(
            b,
            &ClusterMsg::MemberJoined {
                node: b,
                channel,
                user_id,
                user_info: None,
            },
            false,
        );
        let got = drain(&mut ra1);
        assert!(got.len() == 1 && got[0].contains("member_added"), "{got:?}");
        let info = |subscription_count, user_count| ChannelInfo {
            subscription_count,
            user_count,
        };
        assert_eq!(ch.info(&name), info(3, 2));
        // The member limit (2) counts b: c is refused.
        let (c, _rc) = conn();
        assert_eq!(
            ch.subscribe(&name, &c, member("c"), OPTS),
            Err(MemberLimit(2))
        );
        // A new local socket's member list has b.
        let (a2, mut ra2) = conn();
        ch.subscribe(&name, &a2, member("a"), OPTS).unwrap();
        assert!(drain(&mut ra2)[0].contains(r#"\"b\""#));
        assert!(!ch.unsubscribe(&name, a1.id, false).vacated);
        assert_eq!(ch.occupied(""), vec![(name.clone(), info(3, 2))]);
        // B's node is gone: b leaves a2's list, the counts drop.
        ch.apply(NodeId::LOCAL, &ClusterMsg::NodeLeft { node: b }, false);
        let got = drain(&mut ra2);
        assert!(
            got.len() == 1 && got[0].contains("member_removed"),
            "{got:?}"
        );
        assert_eq!(ch.info(&name), info(1, 1));
        assert!(ch.unsubscribe(&name, a2.id, false).vacated);
        assert_eq!(ch.info(&name), ChannelInfo::default());
        assert_eq!(ch.occupied(""), vec![]);
    }

    /// A node's bus: what it sent, in order.
    #[derive(Default)]
    struct Collect(std::sync::Mutex<Vec<ClusterMsg>>);

    impl crate::cluster::BusSink for Collect {
        fn send(&self, msg: ClusterMsg) {
            self.0.lock().unwrap().push(msg);
        }
    }

    type Node = (
        Channels,
        std::sync::Arc<Collect>,
        tokio::sync::mpsc::Receiver<crate::webhooks::Queued>,
    );

    /// Node `id` of a shared cluster, with its bus and its webhooks.
    fn shared_node(id: u64) -> Node {
        shared_node_with(
            id,
            "['channel_occupied','channel_vacated','member_added','member_removed']",
        )
    }

    /// Node `id` of a shared cluster whose webhooks want `types`.
    fn shared_node_with(id: u64, types: &str) -> Node {
        let (hooks, rx) = AppHooks::for_test(types, 100);
        let bus = std::sync::Arc::new(Collect::default());
        let cluster = Cluster::Shared {
            node: NodeId(id),
            sink: bus.clone(),
        };
        (Channels::new(cluster, Some(hooks)), bus, rx)
    }

    /// Two nodes whose first subscribers join (and later leave) "at the
    /// same time", each applying its own change at once before either
    /// message is on the bus: decided on the bus order, the cluster emits
    /// one `channel_occupied`, one `member_added` per user, and one
    /// `channel_vacated`; each node's clients see the other node's member
    /// come and go.
    #[test]
    fn two_nodes_joining_at_once_make_one_occupied_and_one_vacated() {
        let name = ChannelName::parse("presence-x").unwrap();
        let (a, bus_a, mut hooks_a) = shared_node(1);
        let (b, bus_b, mut hooks_b) = shared_node(2);
        let (ca, mut ra) = conn();
        let (cb, mut rb) = conn();
        assert!(a.subscribe(&name, &ca, member("u"), OPTS).unwrap().occupied);
        assert!(b.subscribe(&name, &cb, member("v"), OPTS).unwrap().occupied);
        // The bus: A's messages, then B's; every node applies all of them.
        let run = |a: &Channels, b: &Channels| {
            let mut stream: Vec<(NodeId, ClusterMsg)> = Vec::new();
            stream.extend(bus_a.0.lock().unwrap().drain(..).map(|m| (NodeId(1), m)));
            stream.extend(bus_b.0.lock().unwrap().drain(..).map(|m| (NodeId(2), m)));
            for (origin, m) in &stream {
                a.apply(*origin, m, false);
                b.apply(*origin, m, false);
            }
        };
        run(&a, &b);
        let emitted = |rx: &mut tokio::sync::mpsc::Receiver<crate::webhooks::Queued>| {
            let mut out = Vec::new();
            while let Ok(q) = rx.try_recv() {
                out.push(q.event().clone());
            }
            out
        };
        let (ea, eb) = (emitted(&mut hooks_a), emitted(&mut hooks_b));
        assert_eq!(
            ea,
            [
                HookEvent::ChannelOccupied(name.clone()),
                HookEvent::MemberAdded(name.clone(), "u".into()),
            ],
            "A's messages came first: A emits occupied"
        );
        assert_eq!(eb, [HookEvent::MemberAdded(name.clone(), "v".into())]);
        // Each node's client saw its own success, then the other's member.
        let got = drain(&mut ra);
        assert!(got.len() == 2 && got[1].contains("member_added") && got[1].contains(r#"\"v\""#));
        let got = drain(&mut rb);
        assert!(got.len() == 2 && got[1].contains("member_added") && got[1].contains(r#"\"u\""#));
        let both = ChannelInfo {
            subscription_count: 2,
            user_count: 2,
        };
        assert_eq!((a.info(&name), b.info(&name)), (both.clone(), both));
        // Both leave at once: one vacated (B's message is the last).
        assert!(!a.unsubscribe(&name, ca.id, false).vacated);
        assert!(!b.unsubscribe(&name, cb.id, false).vacated);
        run(&a, &b);
        let (ea, eb) = (emitted(&mut hooks_a), emitted(&mut hooks_b));
        assert_eq!(ea, [HookEvent::MemberRemoved(name.clone(), "u".into())]);
        assert_eq!(
            eb,
            [
                HookEvent::MemberRemoved(name.clone(), "v".into()),
                HookEvent::ChannelVacated(name.clone()),
            ]
        );
        assert_eq!((a.info(&name), b.info(&name)), Default::default());
        assert_eq!(a.occupied(""), vec![]);
    }

    /// `subscription_count` webhooks of a shared cluster: decided on the
    /// bus-ordered count, sent by the node whose change it was, once.
    #[test]
    fn subscription_count_webhooks_follow_the_bus_once() {
        let name = ChannelName::parse("news").unwrap();
        let (a, bus_a, mut hooks_a) = shared_node_with(1, "['subscription_count']");
        let (b, bus_b, mut hooks_b) = shared_node_with(2, "['subscription_count']");
        let run = |stream: Vec<(NodeId, ClusterMsg)>| {
            for (origin, m) in &stream {
                a.apply(*origin, m, false);
                b.apply(*origin, m, false);
            }
        };
        let take = |bus: &Collect, id| {
            bus.0
                .lock()
                .unwrap()
                .drain(..)
                .map(|m| (NodeId(id), m))
                .collect::<Vec<_>>()
        };
        let counts = |rx: &mut tokio::sync::mpsc::Receiver<crate::webhooks::Queued>| {
            let mut out = Vec::new();
            while let Ok(q) = rx.try_recv() {
                out.push(q.event().clone());
            }
            out
        };
        let (ca, _ra) = conn();
        let (cb, _rb) = conn();
        a.subscribe(&name, &ca, None, OPTS).unwrap();
        b.subscribe(&name, &cb, None, OPTS).unwrap();
        // Nothing before the bus.
        assert!(counts(&mut hooks_a).is_empty() && counts(&mut hooks_b).is_empty());
        run(take(&bus_a, 1));
        run(take(&bus_b, 2));
        assert_eq!(
            counts(&mut hooks_a),
            [HookEvent::SubscriptionCount(name.clone(), 1)]
        );
        assert_eq!(
            counts(&mut hooks_b),
            [HookEvent::SubscriptionCount(name.clone(), 2)]
        );
        b.unsubscribe(&name, cb.id, false);
        run(take(&bus_b, 2));
        assert!(counts(&mut hooks_a).is_empty());
        assert_eq!(
            counts(&mut hooks_b),
            [HookEvent::SubscriptionCount(name.clone(), 1)]
        );
    }

    #[test]
    fn resubscribe_only_resends_success() {
        let ch = Channels::default();
        let name = ChannelName::parse("news").unwrap();
        let (a, mut ra) = conn();
        ch.subscribe(&name, &a, None, OPTS).unwrap();
        assert!(ch.subscribe(&name, &a, None, OPTS).unwrap().already);
        assert_eq!(drain(&mut ra).len(), 2);
        assert_eq!(ch.info(&name).subscription_count, 1);
    }
}
