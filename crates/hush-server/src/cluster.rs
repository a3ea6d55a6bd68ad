//! The cluster seam: what one node tells the others, and the backend that
//! carries it.
//!
//! Every delivery and every cluster-scoped question of an app goes through
//! [`crate::app::App`]; `App` owns a [`Cluster`] backend. Today the only
//! backend is [`Cluster::Local`]: the node is the whole cluster, so a node
//! applies its own changes directly to its replicated view
//! ([`crate::occupancy::ClusterView`], one per channel, kept beside the
//! channel in the registry's shard) and nothing is sent anywhere: no queue,
//! no message is built, nothing is allocated on the publish path.
//!
//! # How Redis will plug in (the next step of issue 15)
//!
//! A `Cluster::Redis` variant owns a client (reconnecting, Sentinel and
//! Redis Cluster aware) and a node id ([`NodeId`], random per process).
//!
//! - **Pub/sub, one channel per app** (`{prefix}{app:<id>}#bus`, the hash tag
//!   keeps an app's keys and its channel on one Redis Cluster slot; sharded
//!   pub/sub with `SSUBSCRIBE`). Carried there: every [`ClusterMsg`]. A node
//!   applies *its own* membership messages at once (so its subscribers see
//!   their own `subscription_succeeded` in order, under the shard lock, as
//!   today) and the others' as they arrive. Since every node applies the same
//!   totally ordered stream and every apply is idempotent (a count is set,
//!   not added; a join of a member already present on that node changes
//!   nothing), the views converge. Webhooks are decided by
//!   [`crate::occupancy`] from cluster-wide counts and emitted only by the
//!   node whose message caused the transition (`origin`), so each is
//!   emitted once per cluster.
//! - **State in Redis keys** (all under the app's hash tag): a hash per node
//!   and app of its channel counts and presence members
//!   (`{prefix}{app:<id>}#node:<node>`), rewritten on change, read whole by a
//!   node that (re)connects to resynchronise its view; the cache channels'
//!   last events (`…#cache:<channel>`, `SET … PX ttl`); the nodes' leases
//!   (`…#nodes`, a sorted set of node id → expiry, refreshed by a
//!   heartbeat every lease/3).
//! - **Leases.** A node whose lease expired is removed by whichever node
//!   notices first, by publishing [`ClusterMsg::NodeLeft`]; a node that
//!   stops (SIGTERM) publishes it for itself. Applying `NodeLeft` twice is
//!   harmless: the second finds nothing of that node left, so its members'
//!   `member_removed` and the channels' `channel_vacated` are emitted once.
//! - **Questions the view cannot answer** (a user's connections on every
//!   node, for `terminate_connections`' count and the app connection quota
//!   across nodes) go out as [`ClusterMsg::Query`] and are gathered from
//!   the [`ClusterMsg::Answer`]s until a deadline.

use std::time::Duration;

use hush_protocol::{ChannelName, SocketId, UserId};
use serde_json::value::RawValue;

use crate::conn::Frame;

/// A node of the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(pub u64);

impl NodeId {
    /// The node of a [`Cluster::Local`] backend (the only one there is).
    pub const LOCAL: Self = Self(0);
}

/// What one node tells the others about an app. Each variant says what it
/// carries; none is built by [`Cluster::Local`], which has no one to tell.
#[derive(Debug, Clone)]
pub enum ClusterMsg {
    /// A channel event to deliver to the subscribers on every other node:
    /// the frame as encoded once by the publishing node, the socket it must
    /// not reach, and for cache channels the event's `data` and TTL, to be
    /// stored as the channel's last event.
    Event {
        /// The channel.
        channel: ChannelName,
        /// The encoded `channel_event` frame.
        frame: Frame,
        /// The publisher's socket (`socket_id` of the API call, or the
        /// sender of a client event).
        except: Option<SocketId>,
        /// Cache channels: the data and how long it is replayed.
        cache: Option<(String, Duration)>,
    },
    /// `node` now has `count` subscriptions (sockets) on `channel`: the
    /// input of `subscription_count`, `/channels` and occupied/vacated.
    Subscriptions {
        /// The node whose count this is.
        node: NodeId,
        /// The channel.
        channel: ChannelName,
        /// Its sockets subscribed to the channel on that node.
        count: usize,
    },
    /// The first socket of `user_id` on `node` joined the presence channel.
    MemberJoined {
        /// The node.
        node: NodeId,
        /// The presence channel.
        channel: ChannelName,
        /// The member's user id.
        user_id: String,
        /// Its `user_info` JSON, as signed by the app's backend.
        user_info: Option<Box<RawValue>>,
    },
    /// The last socket of `user_id` on `node` left the presence channel.
    MemberLeft {
        /// The node.
        node: NodeId,
        /// The presence channel.
        channel: ChannelName,
        /// The member's user id.
        user_id: String,
    },
    /// Close every connection signed in as `user` (4009,
    /// `terminate_connections`).
    Terminate {
        /// The user.
        user: UserId,
    },
    /// Something for every connection signed in as `user`, on every node.
    UserSignal {
        /// The user.
        user: UserId,
        /// What to do.
        signal: UserSignal,
    },
    /// `node` is gone (it announced its exit, or its lease expired): every
    /// count and member it held is dropped.
    NodeLeft {
        /// The node.
        node: NodeId,
    },
    /// A question only the other nodes can answer; each answers with an
    /// [`ClusterMsg::Answer`] of the same `id` to `from`.
    Query {
        /// Chosen by the asking node, unique among its open questions.
        id: u64,
        /// The asking node.
        from: NodeId,
        /// The question.
        query: Query,
    },
    /// One node's answer to a [`ClusterMsg::Query`].
    Answer {
        /// The question's id.
        id: u64,
        /// The asking node.
        to: NodeId,
        /// The node answering.
        from: NodeId,
        /// The answer.
        answer: Answer,
    },
}

/// What [`ClusterMsg::UserSignal`] asks of a user's connections.
#[derive(Debug, Clone)]
pub enum UserSignal {
    /// A `#server-to-user-` event (the frame as encoded once), except to
    /// one socket.
    Event {
        /// The encoded frame.
        frame: Frame,
        /// The socket it must not reach.
        except: Option<SocketId>,
    },
    /// The user's first connection in the cluster signed in: its watchers
    /// get `online`.
    Online,
    /// The user's last connection in the cluster signed out: its watchers
    /// get `offline`.
    Offline,
}

/// A question to the other nodes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Query {
    /// How many connections are signed in as this user on your node?
    UserConnections(UserId),
    /// How many connections of the app are open on your node?
    AppConnections,
}

/// An answer to a [`Query`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// A number of connections.
    Count(usize),
}

/// The backend that carries an app's [`ClusterMsg`]s between nodes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Cluster {
    /// One node alone: its view is the cluster's, nothing is sent.
    #[default]
    Local,
}

impl Cluster {
    /// This node's id.
    pub fn node(&self) -> NodeId {
        match self {
            Self::Local => NodeId::LOCAL,
        }
    }

    /// True when other nodes may exist (then events and changes must be
    /// sent to them).
    pub fn is_shared(&self) -> bool {
        match self {
            Self::Local => false,
        }
    }
}
