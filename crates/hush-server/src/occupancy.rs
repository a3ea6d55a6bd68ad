//! Occupancy: one channel's cluster-wide subscription counts and presence
//! members, by node ([`ClusterView`]), and the one place where
//! `channel_occupied` / `channel_vacated` and `member_added` /
//! `member_removed` are decided ([`Transition`]) and emitted as webhooks
//! ([`Occupancy`]).
//!
//! The channel registry keeps a [`ClusterView`] beside each channel, in the
//! same shard and under the same lock. The view holds the other nodes'
//! contributions as the app's bus delivered them, and this node's twice:
//! *immediate* (fed by its own subscribe/unsubscribe at once: what its
//! clients see) and *bus-ordered* (fed when its own message comes back from
//! the bus). A transition is decided on the bus-ordered view only, from the
//! cluster-wide total: a channel is occupied when the sum over nodes leaves
//! zero and vacated when it returns to zero, a user is a member while some
//! node has a socket of it. Every update is idempotent (a node's count is
//! set, not added to; a node joining as a member it already is changes
//! nothing), so nodes that apply the same ordered stream of messages hold
//! the same view and decide the same transitions; only the node whose
//! message caused a transition emits its webhook, so each is emitted once
//! per cluster. On a node alone ([`crate::cluster::Cluster::Local`]) both
//! of its contributions are updated together.

use std::collections::HashMap;

use hush_protocol::ChannelName;
use serde_json::value::RawValue;

use crate::cluster::{ClusterMsg, NodeId};
use crate::config::WebhookEventType;
use crate::webhooks::{AppHooks, HookEvent};

/// A change of a channel's cluster-wide occupancy or membership.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transition {
    /// The channel's first subscriber in the cluster.
    Occupied,
    /// The channel's last subscriber in the cluster left.
    Vacated,
    /// A user's first socket in the cluster joined (the presence channel).
    MemberAdded(String),
    /// A user's last socket in the cluster left.
    MemberRemoved(String),
}

/// One presence member, cluster-wide.
#[derive(Debug)]
struct Member {
    /// The `user_info` it joined with first.
    info: Option<Box<RawValue>>,
    /// Bus order: the nodes where it has at least one socket on the channel.
    nodes: Vec<NodeId>,
    /// Immediate: this node has a socket of it.
    here: bool,
}

/// What applying a bus message changed in a [`ClusterView`].
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Applied {
    /// Bus-ordered transitions: the webhooks (emitted by the origin only).
    pub transitions: Vec<Transition>,
    /// Changes of what this node's clients see (`member_added` /
    /// `member_removed` frames): another node's member appeared or left.
    pub visible: Vec<Transition>,
    /// The client-visible subscription count changed.
    pub count_changed: bool,
}

/// One channel as the cluster sees it: subscriptions and presence members by
/// node, with this node's contribution twice: *immediate* (what its own
/// subscribers see at once) and *bus-ordered* (as its own messages came back
/// from the bus, in the order every node applies them).
///
/// Client-visible answers (counts, member lists, the member limit) are the
/// other nodes' bus-ordered contributions plus this node's immediate one;
/// webhook transitions ([`Transition`]) are decided on the bus-ordered view
/// only. On [`crate::cluster::Cluster::Local`] both of this node's
/// contributions are updated together, so they are one.
#[derive(Debug, Default)]
pub struct ClusterView {
    /// This node.
    me: NodeId,
    /// Bus order: sockets subscribed, per node (nodes with none left out).
    subs: Vec<(NodeId, usize)>,
    /// Immediate: this node's sockets subscribed.
    here: usize,
    /// Presence members by user id.
    members: HashMap<String, Member>,
}

impl Member {
    fn visible(&self, me: NodeId) -> bool {
        self.here || self.nodes.iter().any(|n| *n != me)
    }
}

impl ClusterView {
    /// The view of node `me`.
    pub fn new(me: NodeId) -> Self {
        Self {
            me,
            ..Self::default()
        }
    }

    /// Sockets subscribed in the cluster (client-visible).
    pub fn subscriptions(&self) -> usize {
        self.here
            + self
                .subs
                .iter()
                .filter(|(n, _)| *n != self.me)
                .map(|(_, c)| c)
                .sum::<usize>()
    }

    /// True when some node has a subscriber (client-visible).
    pub fn is_occupied(&self) -> bool {
        self.here > 0 || self.subs.iter().any(|(n, _)| *n != self.me)
    }

    /// True when the bus-ordered view has a subscriber.
    fn bus_occupied(&self) -> bool {
        !self.subs.is_empty()
    }

    /// True when the view holds nothing (no subscriber, no member).
    pub fn is_empty(&self) -> bool {
        self.subs.is_empty() && self.here == 0 && self.members.is_empty()
    }

    /// True when the bus-ordered view credits this node with anything.
    pub fn credits_me(&self) -> bool {
        self.subs.iter().any(|(n, _)| *n == self.me)
            || self.members.values().any(|m| m.nodes.contains(&self.me))
    }

    /// Distinct presence users in the cluster (client-visible).
    pub fn user_count(&self) -> usize {
        self.members.values().filter(|m| m.visible(self.me)).count()
    }

    /// True when `user_id` is a member somewhere in the cluster
    /// (client-visible).
    pub fn has_member(&self, user_id: &str) -> bool {
        self.members
            .get(user_id)
            .is_some_and(|m| m.visible(self.me))
    }

    /// The members' user ids (client-visible).
    pub fn user_ids(&self) -> impl Iterator<Item = &str> {
        self.members
            .iter()
            .filter(|(_, m)| m.visible(self.me))
            .map(|(id, _)| id.as_str())
    }

    /// The members: user id and `user_info` JSON (`{}` when none),
    /// client-visible.
    pub fn members(&self) -> impl Iterator<Item = (&str, &str)> {
        self.members
            .iter()
            .filter(|(_, m)| m.visible(self.me))
            .map(|(id, m)| (id.as_str(), m.info.as_deref().map_or("{}", |r| r.get())))
    }

    /// The `user_info` JSON of a member (`{}` when none or not a member).
    pub fn member_info(&self, user_id: &str) -> &str {
        self.members
            .get(user_id)
            .and_then(|m| m.info.as_deref())
            .map_or("{}", |r| r.get())
    }

    /// The `user_info` of a member as given (`None`: none, or no member).
    pub fn member_raw(&self, user_id: &str) -> Option<&RawValue> {
        self.members.get(user_id).and_then(|m| m.info.as_deref())
    }

    /// Sockets subscribed in the bus-ordered view (webhooks).
    pub fn bus_subscriptions(&self) -> usize {
        self.subs.iter().map(|(_, c)| c).sum()
    }

    /// Immediate: this node now has `count` subscribers.
    pub fn set_here(&mut self, count: usize) {
        self.here = count;
    }

    /// The member `user_id`, made with `info` (the first join's user info
    /// is kept) when it is none yet.
    fn member(&mut self, user_id: &str, info: Option<&RawValue>) -> &mut Member {
        self.members
            .entry(user_id.to_owned())
            .or_insert_with(|| Member {
                info: info.map(ToOwned::to_owned),
                nodes: Vec::new(),
                here: false,
            })
    }

    /// Immediate: the first socket of `user_id` on this node joined; true
    /// when its clients did not see it as a member before.
    pub fn here_joined(&mut self, user_id: &str, info: Option<&RawValue>) -> bool {
        let me = self.me;
        let m = self.member(user_id, info);
        let was = m.visible(me);
        m.here = true;
        !was
    }

    /// Immediate: the last socket of `user_id` on this node left; true when
    /// its clients see it as a member no more.
    pub fn here_left(&mut self, user_id: &str) -> bool {
        let me = self.me;
        let Some(m) = self.members.get_mut(user_id) else {
            return false;
        };
        let was = m.visible(me);
        m.here = false;
        let now = m.visible(me);
        if m.nodes.is_empty() {
            self.members.remove(user_id);
        }
        was && !now
    }

    /// Bus order: `node` now has `count` subscribers: `Occupied` when the
    /// cluster had none before, `Vacated` when it has none now.
    pub fn set_subscriptions(&mut self, node: NodeId, count: usize) -> Option<Transition> {
        let was = self.bus_occupied();
        match self.subs.iter().position(|(n, _)| *n == node) {
            Some(i) if count == 0 => {
                self.subs.swap_remove(i);
            }
            Some(i) => self.subs[i].1 = count,
            None if count > 0 => self.subs.push((node, count)),
            None => {}
        }
        match (was, self.bus_occupied()) {
            (false, true) => Some(Transition::Occupied),
            (true, false) => Some(Transition::Vacated),
            _ => None,
        }
    }

    /// Bus order: the first socket of `user_id` on `node` joined:
    /// `MemberAdded` when it was no member anywhere.
    pub fn member_joined(
        &mut self,
        node: NodeId,
        user_id: &str,
        info: Option<&RawValue>,
    ) -> Option<Transition> {
        let m = self.member(user_id, info);
        if m.nodes.contains(&node) {
            return None;
        }
        m.nodes.push(node);
        (m.nodes.len() == 1).then(|| Transition::MemberAdded(user_id.to_owned()))
    }

    /// Bus order: the last socket of `user_id` on `node` left:
    /// `MemberRemoved` when it has none on any node now.
    pub fn member_left(&mut self, node: NodeId, user_id: &str) -> Option<Transition> {
        let m = self.members.get_mut(user_id)?;
        let i = m.nodes.iter().position(|n| *n == node)?;
        m.nodes.swap_remove(i);
        if !m.nodes.is_empty() {
            return None;
        }
        if !m.here {
            self.members.remove(user_id);
        }
        Some(Transition::MemberRemoved(user_id.to_owned()))
    }

    /// Bus order: drops everything `node` held (it left, or its lease
    /// expired): its members first (`MemberRemoved` for those on no other
    /// node, in user id order), then its subscribers (`Vacated` if no other
    /// node has any).
    pub fn remove_node(&mut self, node: NodeId) -> Vec<Transition> {
        self.replace_node(node, 0, &[])
    }

    /// Bus order: `node`'s whole contribution becomes `count` subscribers
    /// and `members` (user id, info): members it no longer has leave (in
    /// user id order), new ones join (in the given order), then the count.
    pub fn replace_node(
        &mut self,
        node: NodeId,
        count: usize,
        members: &[(String, Option<Box<RawValue>>)],
    ) -> Vec<Transition> {
        let mut gone: Vec<String> = self
            .members
            .iter()
            .filter(|(id, m)| m.nodes.contains(&node) && !members.iter().any(|(u, _)| u == *id))
            .map(|(id, _)| id.clone())
            .collect();
        gone.sort();
        let mut out: Vec<Transition> = gone
            .iter()
            .filter_map(|id| self.member_left(node, id))
            .collect();
        for (u, info) in members {
            out.extend(self.member_joined(node, u, info.as_deref()));
        }
        out.extend(self.set_subscriptions(node, count));
        out
    }

    /// Applies a bus message about this channel (other messages change
    /// nothing here): the bus-ordered transitions, and what this node's
    /// clients see change (nothing, for this node's own messages: its
    /// clients saw its changes at once).
    pub fn apply(&mut self, msg: &ClusterMsg) -> Applied {
        let count_before = self.subscriptions();
        let affected: Vec<String> = match msg {
            ClusterMsg::MemberJoined { user_id, .. } | ClusterMsg::MemberLeft { user_id, .. } => {
                vec![user_id.clone()]
            }
            ClusterMsg::NodeState { node, members, .. } => self
                .members
                .iter()
                .filter(|(_, m)| m.nodes.contains(node))
                .map(|(id, _)| id.clone())
                .chain(members.iter().map(|(u, _)| u.clone()))
                .collect(),
            ClusterMsg::NodeLeft { node } => self
                .members
                .iter()
                .filter(|(_, m)| m.nodes.contains(node))
                .map(|(id, _)| id.clone())
                .collect(),
            _ => Vec::new(),
        };
        let visible_before: Vec<bool> = affected.iter().map(|u| self.has_member(u)).collect();
        let transitions = match msg {
            ClusterMsg::Subscriptions { node, count, .. } => {
                self.set_subscriptions(*node, *count).into_iter().collect()
            }
            ClusterMsg::MemberJoined {
                node,
                user_id,
                user_info,
                ..
            } => self
                .member_joined(*node, user_id, user_info.as_deref())
                .into_iter()
                .collect(),
            ClusterMsg::MemberLeft { node, user_id, .. } => {
                self.member_left(*node, user_id).into_iter().collect()
            }
            ClusterMsg::NodeState {
                node,
                count,
                members,
                ..
            } => self.replace_node(*node, *count, members),
            ClusterMsg::NodeLeft { node } => self.remove_node(*node),
            _ => Vec::new(),
        };
        let mut visible = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for (u, was) in affected.into_iter().zip(visible_before) {
            if !seen.insert(u.clone()) {
                continue;
            }
            match (was, self.has_member(&u)) {
                (false, true) => visible.push(Transition::MemberAdded(u)),
                (true, false) => visible.push(Transition::MemberRemoved(u)),
                _ => {}
            }
        }
        Applied {
            transitions,
            visible,
            count_changed: self.subscriptions() != count_before,
        }
    }
}

/// Emits an app's occupancy and membership webhooks: only those of
/// transitions this node caused, so each goes out once per cluster.
#[derive(Debug, Clone)]
pub struct Occupancy {
    node: NodeId,
    hooks: Option<AppHooks>,
}

impl Occupancy {
    /// The emitter of node `node`, to `hooks` (`None`: no webhook).
    pub fn new(node: NodeId, hooks: Option<AppHooks>) -> Self {
        Self { node, hooks }
    }

    /// The hooks, if webhooks of type `t` are wanted.
    pub fn hook(&self, t: WebhookEventType) -> Option<&AppHooks> {
        self.hooks.as_ref().filter(|h| h.wants(t))
    }

    /// Emits the webhook of `t` on `channel` if some endpoint wants it and
    /// `origin` (the node whose change caused it) is this node.
    pub fn emit(&self, origin: NodeId, channel: &ChannelName, t: &Transition) {
        if origin != self.node {
            return;
        }
        let kind = match t {
            Transition::Occupied => WebhookEventType::ChannelOccupied,
            Transition::Vacated => WebhookEventType::ChannelVacated,
            Transition::MemberAdded(_) => WebhookEventType::MemberAdded,
            Transition::MemberRemoved(_) => WebhookEventType::MemberRemoved,
        };
        // Nothing is built for an app that does not want it.
        let Some(h) = self.hook(kind) else {
            return;
        };
        let event = match t {
            Transition::Occupied => HookEvent::ChannelOccupied(channel.clone()),
            Transition::Vacated => HookEvent::ChannelVacated(channel.clone()),
            Transition::MemberAdded(u) => HookEvent::MemberAdded(channel.clone(), u.clone()),
            Transition::MemberRemoved(u) => HookEvent::MemberRemoved(channel.clone(), u.clone()),
        };
        h.emit(event);
    }
}

#[cfg(test)]
mod tests;
