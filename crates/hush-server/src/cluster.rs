//! The cluster seam: what one node tells the others ([`ClusterMsg`]), and
//! the backend that carries it ([`Cluster`]).
//!
//! Every delivery and every cluster-scoped question of an app goes through
//! [`crate::app::App`]; `App` owns a [`Cluster`] backend:
//!
//! - [`Cluster::Local`]: the node is the whole cluster. It applies its own
//!   changes to its replicated view ([`crate::occupancy::ClusterView`]) at
//!   once, and nothing is sent anywhere: no queue, no message built, nothing
//!   allocated on the publish path.
//! - [`Cluster::Shared`]: other nodes exist; this node's changes and
//!   deliveries go to a [`BusSink`] (in production the app's Redis bus,
//!   [`redis::AppBus`]), and the other nodes' messages come back through
//!   [`crate::app::App::apply_bus`].
//!
//! # One total order
//!
//! Each app has one bus channel (`{prefix}{app:<id>}#bus`; the hash tag
//! keeps it on one Redis Cluster shard). Every node, the sender included,
//! receives the app's messages in the same order. Each channel's view holds
//! two contributions of this node: the *immediate* one (what its own
//! subscribers see at once) and the *bus-ordered* one (updated when its own
//! message comes back). Occupancy and membership webhooks are decided only
//! from the bus-ordered view, on applying a bus message, and emitted only by
//! the message's origin node: every node decides the same transitions on
//! the same stream, one of them emits. See [`crate::occupancy`].

pub mod msg;
pub mod redis;

use std::sync::Arc;

pub use msg::{ClusterMsg, Envelope};

/// A node of the cluster.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(pub u64);

impl NodeId {
    /// The node of a [`Cluster::Local`] backend (the only one there is).
    pub const LOCAL: Self = Self(0);

    /// A random id for this process (never [`NodeId::LOCAL`]).
    pub fn random() -> Self {
        Self(rand::random::<u64>().max(1))
    }
}

impl std::fmt::Display for NodeId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// Where a node's messages about one app go: the app's bus. Sending never
/// blocks (a full queue drops the message, counts it and asks for a
/// resynchronisation).
pub trait BusSink: Send + Sync {
    /// Queues `msg` for every node of the cluster (this one included: it
    /// comes back in bus order).
    fn send(&self, msg: ClusterMsg);

    /// Starts a settle ([`ClusterMsg::SettleRequest`] to every node) and
    /// returns what waits for its answers; `None` when the bus is known to
    /// be down (then there is nothing to wait for: answers come from this
    /// node's view as it is).
    fn barrier(&self) -> Option<Barrier> {
        None
    }

    /// A message of `origin` came on this app's bus: that node serves the
    /// app, and this node's settles wait for its answer (until it is known
    /// gone).
    fn heard(&self, origin: NodeId) {
        let _ = origin;
    }

    /// A settle message ([`ClusterMsg::SettleRequest`],
    /// [`ClusterMsg::SettleAck`]) or a [`ClusterMsg::NodeLeft`] (a node
    /// nobody waits for any more) came from `origin` in bus order.
    fn settle_msg(&self, origin: NodeId, msg: &ClusterMsg) {
        let _ = (origin, msg);
    }

    /// Takes one of the app's `limit` connection slots in the whole cluster,
    /// exactly (one atomic step where the slots are counted); `None` when
    /// that cannot be asked now (the caller falls back to the approximate
    /// count of [`ClusterMsg::Load`]).
    fn reserve_connection(&self, limit: usize) -> SlotFuture {
        let _ = limit;
        Box::pin(async { None })
    }

    /// Gives back a slot taken by [`BusSink::reserve_connection`].
    fn release_connection(&self) {}

    /// Sets this node's slots to `n` (its connections that hold one), after
    /// the store of slots may have lost them (a Redis restarted empty).
    fn restore_connections(&self, n: usize) {
        let _ = n;
    }
}

/// What [`BusSink::reserve_connection`] returns.
pub type SlotFuture =
    std::pin::Pin<Box<dyn std::future::Future<Output = Option<bool>> + Send + 'static>>;

/// A settle on its way: done when every node it waits for answered.
#[derive(Debug)]
pub struct Barrier {
    /// Fired when the last answer came.
    pub done: tokio::sync::oneshot::Receiver<()>,
}

impl Barrier {
    /// Waits until every answer came, for at most `limit`; false when they
    /// did not (the bus is slow, or a node died and is not yet known gone).
    pub async fn wait(self, limit: std::time::Duration) -> bool {
        matches!(tokio::time::timeout(limit, self.done).await, Ok(Ok(())))
    }
}

/// The settles of one app's bus on this node, as group commit: at most one
/// [`ClusterMsg::SettleRequest`] is out at a time. Readers that arrive
/// while it is out cannot share it (it left before they came, so it does
/// not cover what they were told since): they wait together for the next
/// one, which leaves when the current one is done. However many readers
/// come, the bus carries at most one request per round trip and each peer
/// one answer to it. A pure core: the caller passes the time and sends what
/// it is told to.
#[derive(Debug, Default)]
pub struct Settles {
    next: u64,
    /// The request on the bus, if any.
    flying: Option<Round>,
    /// Readers waiting for the next request.
    queued: Vec<tokio::sync::oneshot::Sender<()>>,
}

#[derive(Debug)]
struct Round {
    token: u64,
    /// When it left (a round older than the settle limit is given up:
    /// its readers have stopped waiting, perhaps for a dead node).
    started: std::time::Instant,
    /// Its own request has not come back yet.
    own: bool,
    /// The nodes that have not answered yet.
    waiting: Vec<NodeId>,
    /// The readers it answers.
    readers: Vec<tokio::sync::oneshot::Sender<()>>,
}

impl Settles {
    /// A reader joins the next request; returns what it waits on. The
    /// caller then asks [`Settles::due`].
    pub fn join(&mut self) -> Barrier {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.queued.retain(|r| !r.is_closed());
        self.queued.push(tx);
        Barrier { done: rx }
    }

    /// True when a request should leave now: readers wait for one and none
    /// is out (or the one out is older than `give_up`).
    pub fn due(&self, now: std::time::Instant, give_up: std::time::Duration) -> bool {
        self.queued.iter().any(|r| !r.is_closed())
            && self
                .flying
                .as_ref()
                .is_none_or(|r| now.saturating_duration_since(r.started) >= give_up)
    }

    /// Starts the next request for the queued readers, waiting for `peers`
    /// and for its own way through the bus; returns the message to send.
    pub fn start(&mut self, now: std::time::Instant, peers: Vec<NodeId>) -> ClusterMsg {
        self.next += 1;
        self.flying = Some(Round {
            token: self.next,
            started: now,
            own: true,
            waiting: peers,
            readers: std::mem::take(&mut self.queued),
        });
        ClusterMsg::SettleRequest { token: self.next }
    }

    /// Applies a bus message of `origin` (this node is `me`); returns the
    /// [`ClusterMsg::SettleAck`] to send when it is another node's request.
    /// The caller then asks [`Settles::due`]: the round may be done.
    pub fn apply(&mut self, me: NodeId, origin: NodeId, msg: &ClusterMsg) -> Option<ClusterMsg> {
        match msg {
            ClusterMsg::SettleRequest { token } if origin == me => {
                if let Some(r) = self.flying.as_mut().filter(|r| r.token == *token) {
                    r.own = false;
                }
            }
            ClusterMsg::SettleRequest { token } => {
                return Some(ClusterMsg::SettleAck {
                    to: origin,
                    token: *token,
                });
            }
            ClusterMsg::SettleAck { to, token } if *to == me => {
                if let Some(r) = self.flying.as_mut().filter(|r| r.token == *token) {
                    r.waiting.retain(|n| *n != origin);
                }
            }
            ClusterMsg::NodeLeft { node } => {
                if let Some(r) = self.flying.as_mut() {
                    r.waiting.retain(|n| n != node);
                }
            }
            _ => return None,
        }
        if self
            .flying
            .as_ref()
            .is_some_and(|r| !r.own && r.waiting.is_empty())
        {
            if let Some(r) = self.flying.take() {
                for reader in r.readers {
                    let _ = reader.send(());
                }
            }
        }
        None
    }
}

/// The backend that carries an app's [`ClusterMsg`]s between nodes.
#[derive(Clone, Default)]
pub enum Cluster {
    /// One node alone: its view is the cluster's, nothing is sent.
    #[default]
    Local,
    /// One node of several: this node's changes go to `sink`.
    Shared {
        /// This node.
        node: NodeId,
        /// The app's bus.
        sink: Arc<dyn BusSink>,
    },
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Local => f.write_str("Local"),
            Self::Shared { node, .. } => write!(f, "Shared({node})"),
        }
    }
}

impl Cluster {
    /// This node's id.
    pub fn node(&self) -> NodeId {
        match self {
            Self::Local => NodeId::LOCAL,
            Self::Shared { node, .. } => *node,
        }
    }

    /// True when other nodes may exist (then events and changes must be
    /// sent to them).
    pub fn is_shared(&self) -> bool {
        matches!(self, Self::Shared { .. })
    }

    /// Waits until every bus message published before now, by any node, has
    /// been applied on this node (a [`ClusterMsg::SettleRequest`] there and
    /// answers back, shared with other readers: [`Settles`]; at most
    /// `limit`). [`Cluster::Local`]: at once. False when the wait
    /// gave up (the bus is down or slow): the caller answers from this
    /// node's view as it is.
    pub async fn settle(&self, limit: std::time::Duration) -> bool {
        match self {
            Self::Local => true,
            Self::Shared { sink, .. } => match sink.barrier() {
                Some(b) => b.wait(limit).await,
                None => false,
            },
        }
    }

    /// A message of `origin` came on the app's bus (see [`BusSink::heard`]).
    pub fn heard(&self, origin: NodeId) {
        if let Self::Shared { sink, node } = self {
            if origin != *node {
                sink.heard(origin);
            }
        }
    }

    /// Sends `msg` to the other nodes ([`Cluster::Local`]: nothing; callers
    /// on hot paths check [`Cluster::is_shared`] before building one).
    pub fn send(&self, msg: ClusterMsg) {
        if let Self::Shared { sink, .. } = self {
            sink.send(msg);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ME: NodeId = NodeId(1);
    const B: NodeId = NodeId(2);
    const C: NodeId = NodeId(3);

    fn done(b: &mut Barrier) -> bool {
        b.done.try_recv().is_ok()
    }

    const LIMIT: std::time::Duration = std::time::Duration::from_millis(500);

    /// Joins a reader and starts a request if one is due (what the bus does).
    fn read(s: &mut Settles, now: std::time::Instant, peers: &[NodeId]) -> (Barrier, Option<u64>) {
        let b = s.join();
        let sent = s
            .due(now, LIMIT)
            .then(|| match s.start(now, peers.to_vec()) {
                ClusterMsg::SettleRequest { token } => token,
                other => panic!("not a request: {other:?}"),
            });
        (b, sent)
    }

    #[test]
    fn a_settle_is_done_when_its_request_came_back_and_every_peer_answered() {
        let now = std::time::Instant::now();
        let mut s = Settles::default();
        let (mut b, t) = read(&mut s, now, &[B, C]);
        let t = t.expect("the first reader sends a request");
        assert!(
            s.apply(ME, B, &ClusterMsg::SettleAck { to: ME, token: t })
                .is_none()
        );
        // The request's own way through the bus is part of it.
        assert!(!done(&mut b));
        s.apply(ME, ME, &ClusterMsg::SettleRequest { token: t });
        assert!(!done(&mut b), "C has not answered");
        // An answer to another node, or to another token, is not C's.
        s.apply(ME, C, &ClusterMsg::SettleAck { to: B, token: t });
        s.apply(
            ME,
            C,
            &ClusterMsg::SettleAck {
                to: ME,
                token: t + 1,
            },
        );
        assert!(!done(&mut b));
        s.apply(ME, C, &ClusterMsg::SettleAck { to: ME, token: t });
        assert!(done(&mut b));
        assert!(!s.due(now, LIMIT), "nobody waits: nothing to send");
    }

    #[test]
    fn a_node_that_left_is_not_waited_for_and_others_requests_are_answered() {
        let now = std::time::Instant::now();
        let mut s = Settles::default();
        let (mut b, t) = read(&mut s, now, &[B]);
        let t = t.expect("a request");
        s.apply(ME, ME, &ClusterMsg::SettleRequest { token: t });
        assert!(!done(&mut b));
        s.apply(ME, C, &ClusterMsg::NodeLeft { node: B });
        assert!(done(&mut b));
        let ack = s.apply(ME, B, &ClusterMsg::SettleRequest { token: 7 });
        assert!(matches!(ack, Some(ClusterMsg::SettleAck { to, token: 7 }) if to == B));
    }

    /// A hostile client asking the API for channel info in a loop must not
    /// turn each question into a request on the bus and an answer from every
    /// peer: readers that come while a request is out share the next one.
    #[test]
    fn readers_during_a_round_trip_share_the_next_request() {
        let now = std::time::Instant::now();
        let mut s = Settles::default();
        let (mut first, t1) = read(&mut s, now, &[B]);
        let t1 = t1.expect("the first reader sends a request");
        // 100 readers while it is out: no request of their own.
        let mut later: Vec<Barrier> = (0..100)
            .map(|_| {
                let (b, sent) = read(&mut s, now, &[B]);
                assert_eq!(sent, None, "a request is already out");
                b
            })
            .collect();
        s.apply(ME, ME, &ClusterMsg::SettleRequest { token: t1 });
        s.apply(ME, B, &ClusterMsg::SettleAck { to: ME, token: t1 });
        assert!(done(&mut first));
        // The first request left before they came: it does not answer them.
        assert!(later.iter_mut().all(|b| !done(b)));
        assert!(s.due(now, LIMIT), "they wait for the next request");
        let ClusterMsg::SettleRequest { token: t2 } = s.start(now, vec![B]) else {
            panic!("not a request")
        };
        assert!(!s.due(now, LIMIT), "one request for all of them");
        s.apply(ME, ME, &ClusterMsg::SettleRequest { token: t2 });
        s.apply(ME, B, &ClusterMsg::SettleAck { to: ME, token: t2 });
        assert!(later.iter_mut().all(done));
    }

    #[test]
    fn a_round_stuck_on_a_dead_node_is_given_up_after_the_limit() {
        let now = std::time::Instant::now();
        let mut s = Settles::default();
        let (_first, t1) = read(&mut s, now, &[B]);
        assert!(t1.is_some());
        let (mut second, sent) = read(&mut s, now + LIMIT / 2, &[B]);
        assert_eq!(sent, None);
        // B never answers; after the limit the queued reader gets a request
        // of its own, without B (known gone by then).
        assert!(s.due(now + LIMIT, LIMIT));
        let ClusterMsg::SettleRequest { token: t2 } = s.start(now + LIMIT, vec![]) else {
            panic!("not a request")
        };
        // A late answer to the abandoned round changes nothing.
        s.apply(
            ME,
            B,
            &ClusterMsg::SettleAck {
                to: ME,
                token: t1.unwrap_or(0),
            },
        );
        assert!(!done(&mut second));
        s.apply(ME, ME, &ClusterMsg::SettleRequest { token: t2 });
        assert!(done(&mut second));
    }
}
