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

    /// Sends a [`ClusterMsg::Barrier`] to this node through the bus and
    /// returns what waits for it; `None` when the bus is known to be down
    /// (then there is nothing to wait for: answers come from this node's
    /// view as it is).
    fn barrier(&self) -> Option<Barrier> {
        None
    }

    /// This node's barrier `token` came back from the bus.
    fn barrier_seen(&self, token: u64) {
        let _ = token;
    }
}

/// A [`ClusterMsg::Barrier`] on its way through the bus.
#[derive(Debug)]
pub struct Barrier {
    /// Its token.
    pub token: u64,
    /// The highest token of this node's that came back so far.
    pub seen: tokio::sync::watch::Receiver<u64>,
}

impl Barrier {
    /// Waits until it came back, for at most `limit`; false when it did
    /// not (the bus is slow or down).
    pub async fn wait(mut self, limit: std::time::Duration) -> bool {
        let token = self.token;
        matches!(
            tokio::time::timeout(limit, self.seen.wait_for(|s| *s >= token)).await,
            Ok(Ok(_))
        )
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
