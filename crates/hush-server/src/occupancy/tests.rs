//! The occupancy component on a virtual cluster: every node applies the
//! same ordered stream of membership messages to its own view, and only
//! the node whose message caused a transition emits its webhook.

use std::collections::{HashMap, HashSet};

use hush_protocol::ChannelName;
use tokio::sync::mpsc;

use super::*;
use crate::webhooks::Queued;

const A: NodeId = NodeId(1);
const B: NodeId = NodeId(2);
const C: NodeId = NodeId(3);

fn chan() -> ChannelName {
    ChannelName::parse("presence-room").unwrap()
}

fn subs(node: NodeId, count: usize) -> ClusterMsg {
    ClusterMsg::Subscriptions {
        node,
        channel: chan(),
        count,
    }
}

fn joined(node: NodeId, user: &str) -> ClusterMsg {
    ClusterMsg::MemberJoined {
        node,
        channel: chan(),
        user_id: user.into(),
        user_info: Some(RawValue::from_string(format!(r#"{{"name":"{user}"}}"#)).unwrap()),
    }
}

fn left(node: NodeId, user: &str) -> ClusterMsg {
    ClusterMsg::MemberLeft {
        node,
        channel: chan(),
        user_id: user.into(),
    }
}

/// One node of the virtual cluster: its view of the channel, its emitter and
/// what it emitted.
struct Node {
    view: ClusterView,
    occupancy: Occupancy,
    rx: mpsc::Receiver<Queued>,
}

impl Node {
    fn new(id: NodeId) -> Self {
        let (hooks, rx) = AppHooks::for_test(
            "['channel_occupied','channel_vacated','member_added','member_removed']",
            10_000,
        );
        Self {
            view: ClusterView::default(),
            occupancy: Occupancy::new(id, Some(hooks)),
            rx,
        }
    }

    fn apply(&mut self, origin: NodeId, msg: &ClusterMsg) {
        for t in self.view.apply(msg).transitions {
            self.occupancy.emit(origin, &chan(), &t);
        }
    }

    fn emitted(&mut self) -> Vec<HookEvent> {
        let mut out = Vec::new();
        while let Ok(q) = self.rx.try_recv() {
            out.push(q.event().clone());
        }
        out
    }
}

/// A cluster of `ids`, every node applying `stream` (origin, message) in
/// order. Returns every webhook emitted, node by node in stream order, and
/// checks that the views agree.
fn run(ids: &[NodeId], stream: &[(NodeId, ClusterMsg)]) -> Vec<HookEvent> {
    let mut nodes: Vec<Node> = ids.iter().map(|id| Node::new(*id)).collect();
    let mut all = Vec::new();
    for (origin, msg) in stream {
        for n in &mut nodes {
            n.apply(*origin, msg);
        }
        // Collected after each message, so `all` is in stream order.
        for n in &mut nodes {
            all.extend(n.emitted());
        }
    }
    let summary = |v: &ClusterView| {
        let mut ids: Vec<String> = v.user_ids().map(str::to_owned).collect();
        ids.sort();
        (v.subscriptions(), ids)
    };
    for n in &nodes[1..] {
        assert_eq!(summary(&n.view), summary(&nodes[0].view), "views diverged");
    }
    all
}

/// Every way of interleaving `a` and `b` that keeps each one's own order.
fn interleavings<T: Clone>(a: &[T], b: &[T]) -> Vec<Vec<T>> {
    if a.is_empty() {
        return vec![b.to_vec()];
    }
    if b.is_empty() {
        return vec![a.to_vec()];
    }
    let mut out = Vec::new();
    for mut rest in interleavings(&a[1..], b) {
        rest.insert(0, a[0].clone());
        out.push(rest);
    }
    for mut rest in interleavings(a, &b[1..]) {
        rest.insert(0, b[0].clone());
        out.push(rest);
    }
    out
}

/// What a single server holding every socket would emit for `stream`: a
/// plain model (totals and sets), written apart from [`ClusterView`].
fn model(stream: &[(NodeId, ClusterMsg)]) -> Vec<HookEvent> {
    let mut counts: HashMap<NodeId, usize> = HashMap::new();
    let mut members: HashMap<String, HashSet<NodeId>> = HashMap::new();
    let mut out = Vec::new();
    for (_, msg) in stream {
        match msg {
            ClusterMsg::Subscriptions { node, count, .. } => {
                let before: usize = counts.values().sum();
                counts.insert(*node, *count);
                let after: usize = counts.values().sum();
                if before == 0 && after > 0 {
                    out.push(HookEvent::ChannelOccupied(chan()));
                }
                if before > 0 && after == 0 {
                    out.push(HookEvent::ChannelVacated(chan()));
                }
            }
            ClusterMsg::MemberJoined { node, user_id, .. } => {
                let on = members.entry(user_id.clone()).or_default();
                if on.is_empty() {
                    out.push(HookEvent::MemberAdded(chan(), user_id.clone()));
                }
                on.insert(*node);
            }
            ClusterMsg::MemberLeft { node, user_id, .. } => {
                let on = members.entry(user_id.clone()).or_default();
                if on.remove(node) && on.is_empty() {
                    out.push(HookEvent::MemberRemoved(chan(), user_id.clone()));
                }
            }
            _ => unreachable!("not in these streams"),
        }
    }
    out
}

fn count(events: &[HookEvent], want: &HookEvent) -> usize {
    events.iter().filter(|e| *e == want).count()
}

/// Node A: two sockets, users u and w; node B: one socket, user u (so u is
/// on both nodes).
fn node_a() -> Vec<(NodeId, ClusterMsg)> {
    [
        subs(A, 1),
        joined(A, "u"),
        subs(A, 2),
        joined(A, "w"),
        left(A, "u"),
        subs(A, 1),
        left(A, "w"),
        subs(A, 0),
    ]
    .into_iter()
    .map(|m| (A, m))
    .collect()
}

fn node_b() -> Vec<(NodeId, ClusterMsg)> {
    [subs(B, 1), joined(B, "u"), left(B, "u"), subs(B, 0)]
        .into_iter()
        .map(|m| (B, m))
        .collect()
}

#[test]
fn every_interleaving_of_two_nodes_emits_each_transition_once() {
    let all = interleavings(&node_a(), &node_b());
    assert_eq!(all.len(), 495);
    for stream in &all {
        let got = run(&[A, B], stream);
        // Exactly what one server with all the sockets would have emitted:
        // nothing twice because two nodes saw it.
        assert_eq!(got, model(stream), "{stream:?}");
        // Occupied and vacated alternate, starting with occupied, and the
        // channel ends vacated; u is added and removed as often as w.
        let oc = count(&got, &HookEvent::ChannelOccupied(chan()));
        assert!(oc >= 1);
        assert_eq!(oc, count(&got, &HookEvent::ChannelVacated(chan())));
        let u = count(&got, &HookEvent::MemberAdded(chan(), "u".into()));
        assert!(u >= 1);
        assert_eq!(
            u,
            count(&got, &HookEvent::MemberRemoved(chan(), "u".into()))
        );
        assert_eq!(count(&got, &HookEvent::MemberAdded(chan(), "w".into())), 1);
    }
}

#[test]
fn overlapping_nodes_make_one_occupied_one_vacated_and_one_member_added() {
    // First subscriber on A, last one leaves on B; u is on both in between.
    let stream = vec![
        (A, subs(A, 1)),
        (A, joined(A, "u")),
        (B, subs(B, 1)),
        (B, joined(B, "u")),
        (A, left(A, "u")),
        (A, subs(A, 0)),
        (B, left(B, "u")),
        (B, subs(B, 0)),
    ];
    assert_eq!(
        run(&[A, B, C], &stream),
        vec![
            HookEvent::ChannelOccupied(chan()),
            HookEvent::MemberAdded(chan(), "u".into()),
            HookEvent::MemberRemoved(chan(), "u".into()),
            HookEvent::ChannelVacated(chan()),
        ]
    );
}

#[test]
fn a_node_whose_lease_expired_takes_its_members_and_counts_with_it_once() {
    // u on A and B, v only on B, w only on A.
    let setup = vec![
        (A, subs(A, 2)),
        (A, joined(A, "u")),
        (A, joined(A, "w")),
        (B, subs(B, 2)),
        (B, joined(B, "u")),
        (B, joined(B, "v")),
    ];
    // B dies; A and C both notice its lease expired and say so.
    let gone_b = ClusterMsg::NodeLeft { node: B };
    let mut stream = setup.clone();
    stream.push((A, gone_b.clone()));
    stream.push((C, gone_b.clone()));
    let got = run(&[A, B, C], &stream);
    let setup_events = run(&[A, B, C], &setup);
    assert_eq!(
        got[setup_events.len()..],
        [HookEvent::MemberRemoved(chan(), "v".into())],
        "v leaves once; u stays (on A), the channel stays occupied (A)"
    );
    // Then A stops (SIGTERM): it announces itself; the announcement is
    // applied twice (say, once more on a resynchronisation).
    let gone_a = ClusterMsg::NodeLeft { node: A };
    stream.push((A, gone_a.clone()));
    stream.push((C, gone_a));
    let got = run(&[A, B, C], &stream);
    assert_eq!(
        got[setup_events.len() + 1..],
        [
            HookEvent::MemberRemoved(chan(), "u".into()),
            HookEvent::MemberRemoved(chan(), "w".into()),
            HookEvent::ChannelVacated(chan()),
        ]
    );
    let mut view = ClusterView::default();
    for (_, m) in &stream {
        view.apply(m);
    }
    assert!(view.is_empty());
}

#[test]
fn counts_are_set_not_added_so_a_repeated_message_changes_nothing() {
    let mut v = ClusterView::default();
    assert_eq!(v.set_subscriptions(A, 3), Some(Transition::Occupied));
    assert_eq!(v.set_subscriptions(A, 3), None);
    assert_eq!(v.set_subscriptions(B, 2), None);
    assert_eq!(v.subscriptions(), 5);
    assert_eq!(
        v.member_joined(A, "u", None),
        Some(Transition::MemberAdded("u".into()))
    );
    assert_eq!(v.member_joined(A, "u", None), None);
    assert_eq!(v.member_joined(B, "u", None), None);
    assert_eq!(v.user_count(), 1);
    assert_eq!(v.member_left(A, "u"), None);
    assert_eq!(v.member_left(A, "u"), None, "A had already left");
    assert_eq!(
        v.member_left(B, "u"),
        Some(Transition::MemberRemoved("u".into()))
    );
    assert_eq!(v.set_subscriptions(A, 0), None);
    assert_eq!(v.set_subscriptions(B, 0), Some(Transition::Vacated));
    assert!(v.is_empty());
}

#[test]
fn the_first_join_keeps_its_user_info() {
    let mut v = ClusterView::default();
    let info = |s: &str| RawValue::from_string(s.to_owned()).unwrap();
    v.member_joined(A, "u", Some(&info(r#"{"n":1}"#)));
    v.member_joined(B, "u", Some(&info(r#"{"n":2}"#)));
    assert_eq!(v.member_info("u"), r#"{"n":1}"#);
    assert_eq!(v.members().collect::<Vec<_>>(), [("u", r#"{"n":1}"#)]);
}
