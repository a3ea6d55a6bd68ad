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

/// The ones a [`Cluster::Shared`] is waiting for (kept by its bus).
#[derive(Debug, Default)]
pub struct Settles {
    next: u64,
    open: std::collections::HashMap<u64, OpenSettle>,
}

#[derive(Debug)]
struct OpenSettle {
    /// Its own request has not come back yet.
    own: bool,
    /// The nodes that have not answered yet.
    waiting: Vec<NodeId>,
    done: tokio::sync::oneshot::Sender<()>,
}

impl Settles {
    /// Opens a settle waiting for `peers` (and for the request's own way
    /// through the bus); returns its token and its [`Barrier`]. Settles whose
    /// waiter gave up are dropped here.
    pub fn open(&mut self, peers: Vec<NodeId>) -> (u64, Barrier) {
        self.open.retain(|_, o| !o.done.is_closed());
        self.next += 1;
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.open.insert(
            self.next,
            OpenSettle {
                own: true,
                waiting: peers,
                done: tx,
            },
        );
        (self.next, Barrier { done: rx })
    }

    /// Applies a bus message of `origin` (this node is `me`); returns the
    /// [`ClusterMsg::SettleAck`] to send when it is another node's request.
    pub fn apply(&mut self, me: NodeId, origin: NodeId, msg: &ClusterMsg) -> Option<ClusterMsg> {
        match msg {
            ClusterMsg::SettleRequest { token } if origin == me => {
                if let Some(o) = self.open.get_mut(token) {
                    o.own = false;
                }
                self.finish(*token);
            }
            ClusterMsg::SettleRequest { token } => {
                return Some(ClusterMsg::SettleAck {
                    to: origin,
                    token: *token,
                });
            }
            ClusterMsg::SettleAck { to, token } if *to == me => {
                if let Some(o) = self.open.get_mut(token) {
                    o.waiting.retain(|n| *n != origin);
                }
                self.finish(*token);
            }
            ClusterMsg::NodeLeft { node } => {
                let tokens: Vec<u64> = self.open.keys().copied().collect();
                for t in tokens {
                    if let Some(o) = self.open.get_mut(&t) {
                        o.waiting.retain(|n| n != node);
                    }
                    self.finish(t);
                }
            }
            _ => {}
        }
        None
    }

    fn finish(&mut self, token: u64) {
        if self
            .open
            .get(&token)
            .is_some_and(|o| !o.own && o.waiting.is_empty())
        {
            if let Some(o) = self.open.remove(&token) {
                let _ = o.done.send(());
            }
        }
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
    /// been applied on this node (a [`ClusterMsg::Barrier`] there and back;
    /// at most `limit`). [`Cluster::Local`]: at once. False when the wait
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

    #[test]
    fn a_settle_is_done_when_its_request_came_back_and_every_peer_answered() {
        let mut s = Settles::default();
        let (t, mut b) = s.open(vec![B, C]);
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
    }

    #[test]
    fn a_node_that_left_is_not_waited_for_and_others_requests_are_answered() {
        let mut s = Settles::default();
        let (t, mut b) = s.open(vec![B]);
        s.apply(ME, ME, &ClusterMsg::SettleRequest { token: t });
        assert!(!done(&mut b));
        s.apply(ME, C, &ClusterMsg::NodeLeft { node: B });
        assert!(done(&mut b));
        let ack = s.apply(ME, B, &ClusterMsg::SettleRequest { token: 7 });
        assert!(matches!(ack, Some(ClusterMsg::SettleAck { to, token: 7 }) if to == B));
        // A waiter that gave up is dropped at the next open.
        let (_, gone) = s.open(vec![B]);
        drop(gone);
        s.open(vec![]);
        assert_eq!(s.open.len(), 1);
    }
}
