//! Occupancy: one channel's cluster-wide subscription counts and presence
//! members, by node ([`ClusterView`]), and the one place where
//! `channel_occupied` / `channel_vacated` and `member_added` /
//! `member_removed` are decided ([`Transition`]) and emitted as webhooks
//! ([`Occupancy`]).
//!
//! The channel registry keeps a [`ClusterView`] beside each channel, in the
//! same shard and under the same lock, and feeds it this node's counts and
//! first/last sockets of presence users; the cluster backend feeds it the
//! other nodes' ([`crate::cluster::ClusterMsg`]). A transition is decided
//! from the cluster-wide total only: a channel is occupied when the sum over
//! nodes leaves zero and vacated when it returns to zero, a user is a member
//! while some node has a socket of it. Every update is idempotent (a node's
//! count is set, not added to; a node joining as a member it already is
//! changes nothing), so nodes that apply the same ordered stream of changes
//! hold the same view and decide the same transitions; only the node whose
//! change caused a transition emits its webhook, so each is emitted once per
//! cluster.

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
    /// The nodes where it has at least one socket on the channel.
    nodes: Vec<NodeId>,
}

/// One channel as the cluster sees it: subscriptions and presence members by
/// node.
#[derive(Debug, Default)]
pub struct ClusterView {
    /// Sockets subscribed, per node (nodes with none are left out).
    subs: Vec<(NodeId, usize)>,
    /// Presence members by user id.
    members: HashMap<String, Member>,
}

impl ClusterView {
    /// Sockets subscribed in the cluster.
    pub fn subscriptions(&self) -> usize {
        self.subs.iter().map(|(_, n)| n).sum()
    }

    /// True when some node has a subscriber.
    pub fn is_occupied(&self) -> bool {
        !self.subs.is_empty()
    }

    /// True when the view holds nothing (no subscriber, no member).
    pub fn is_empty(&self) -> bool {
        self.subs.is_empty() && self.members.is_empty()
    }

    /// Distinct presence users in the cluster.
    pub fn user_count(&self) -> usize {
        self.members.len()
    }

    /// True when `user_id` is a member somewhere in the cluster.
    pub fn has_member(&self, user_id: &str) -> bool {
        self.members.contains_key(user_id)
    }

    /// The members' user ids.
    pub fn user_ids(&self) -> impl Iterator<Item = &str> {
        self.members.keys().map(String::as_str)
    }

    /// The members: user id and `user_info` JSON (`{}` when none).
    pub fn members(&self) -> impl Iterator<Item = (&str, &str)> {
        self.members
            .iter()
            .map(|(id, m)| (id.as_str(), m.info.as_deref().map_or("{}", |r| r.get())))
    }

    /// The `user_info` JSON of a member (`{}` when none or not a member).
    pub fn member_info(&self, user_id: &str) -> &str {
        self.members
            .get(user_id)
            .and_then(|m| m.info.as_deref())
            .map_or("{}", |r| r.get())
    }

    /// `node` now has `count` subscribers: `Occupied` when the cluster had
    /// none before, `Vacated` when it has none now.
    pub fn set_subscriptions(&mut self, node: NodeId, count: usize) -> Option<Transition> {
        let was = self.is_occupied();
        match self.subs.iter().position(|(n, _)| *n == node) {
            Some(i) if count == 0 => {
                self.subs.swap_remove(i);
            }
            Some(i) => self.subs[i].1 = count,
            None if count > 0 => self.subs.push((node, count)),
            None => {}
        }
        match (was, self.is_occupied()) {
            (false, true) => Some(Transition::Occupied),
            (true, false) => Some(Transition::Vacated),
            _ => None,
        }
    }

    /// The first socket of `user_id` on `node` joined: `MemberAdded` when it
    /// was no member anywhere.
    pub fn member_joined(
        &mut self,
        node: NodeId,
        user_id: &str,
        info: Option<&RawValue>,
    ) -> Option<Transition> {
        match self.members.get_mut(user_id) {
            Some(m) => {
                if !m.nodes.contains(&node) {
                    m.nodes.push(node);
                }
                None
            }
            None => {
                self.members.insert(
                    user_id.to_owned(),
                    Member {
                        info: info.map(ToOwned::to_owned),
                        nodes: vec![node],
                    },
                );
                Some(Transition::MemberAdded(user_id.to_owned()))
            }
        }
    }

    /// The last socket of `user_id` on `node` left: `MemberRemoved` when it
    /// has none on any node now.
    pub fn member_left(&mut self, node: NodeId, user_id: &str) -> Option<Transition> {
        let m = self.members.get_mut(user_id)?;
        let i = m.nodes.iter().position(|n| *n == node)?;
        m.nodes.swap_remove(i);
        if !m.nodes.is_empty() {
            return None;
        }
        self.members.remove(user_id);
        Some(Transition::MemberRemoved(user_id.to_owned()))
    }

    /// Drops everything `node` held (it left, or its lease expired): its
    /// members first (`MemberRemoved` for those on no other node, in user id
    /// order), then its subscribers (`Vacated` if no other node has any).
    pub fn remove_node(&mut self, node: NodeId) -> Vec<Transition> {
        let mut gone: Vec<String> = self
            .members
            .iter()
            .filter(|(_, m)| m.nodes.contains(&node))
            .map(|(id, _)| id.clone())
            .collect();
        gone.sort();
        let mut out: Vec<Transition> = gone
            .iter()
            .filter_map(|id| self.member_left(node, id))
            .collect();
        out.extend(self.set_subscriptions(node, 0));
        out
    }

    /// Applies another node's membership message about this channel (other
    /// messages change nothing here).
    pub fn apply(&mut self, msg: &ClusterMsg) -> Vec<Transition> {
        match msg {
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
            ClusterMsg::NodeLeft { node } => self.remove_node(*node),
            _ => Vec::new(),
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
