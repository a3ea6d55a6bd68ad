//! Signed-in users of one app: which connections belong to which user id, and
//! who watches whom (watchlist online/offline events), and which users other
//! nodes of the cluster have signed in (so `online`/`offline` are
//! cluster-wide: a user is online while some node has a connection of it).

use std::collections::HashMap;
use std::sync::RwLock;

use hush_protocol::{CloseCode, SocketId, UserId, wire};

use crate::cluster::{Cluster, ClusterMsg, NodeId};
use crate::conn::{ConnHandle, ConnId, Frame};
use crate::lock::{read, write};

#[derive(Default)]
struct Inner {
    conns: HashMap<UserId, HashMap<ConnId, ConnHandle>>,
    watchers: HashMap<UserId, HashMap<ConnId, ConnHandle>>,
    /// The other nodes where each user has a connection.
    remote: HashMap<UserId, Vec<NodeId>>,
}

impl Inner {
    fn online(&self, user: &UserId) -> bool {
        self.conns.get(user).is_some_and(|c| !c.is_empty())
            || self.remote.get(user).is_some_and(|n| !n.is_empty())
    }
}

/// The user index of one app.
#[derive(Default)]
pub struct Users {
    inner: RwLock<Inner>,
    /// Where a user's first and last connection on this node are announced.
    cluster: Cluster,
}

/// The initial watchlist state after a sign-in.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct WatchlistState {
    /// Watched users that are online.
    pub online: Vec<UserId>,
    /// Watched users that are offline.
    pub offline: Vec<UserId>,
}

impl Users {
    /// The user index of this node of `cluster`.
    pub fn new(cluster: Cluster) -> Self {
        Self {
            inner: RwLock::default(),
            cluster,
        }
    }

    /// Records `handle` as signed in as `user`, watching `watchlist`. When this
    /// is the user's first connection, its watchers get an `online` event.
    pub fn sign_in(
        &self,
        user: &UserId,
        handle: &ConnHandle,
        watchlist: &[UserId],
    ) -> WatchlistState {
        self.sign_in_then(user, handle, watchlist, |_| {})
    }

    /// [`Users::sign_in`], calling `confirm` with the watchlist state while
    /// the index is still locked: frames it sends to the signing-in
    /// connection (`signin_success`, the first `watchlist_events`) go out
    /// before any watchlist change another sign-in could send, and only once
    /// the user is findable (so a client that saw `signin_success` is online
    /// for everyone).
    pub fn sign_in_then(
        &self,
        user: &UserId,
        handle: &ConnHandle,
        watchlist: &[UserId],
        confirm: impl FnOnce(&WatchlistState),
    ) -> WatchlistState {
        let mut g = write(&self.inner);
        let was_online = g.online(user);
        let conns = g.conns.entry(user.clone()).or_default();
        let first = conns.is_empty();
        conns.insert(handle.id, handle.clone());
        if first {
            if !was_online {
                notify(&g, user, true);
            }
            self.announce(user, true);
        }
        let mut state = WatchlistState::default();
        for w in watchlist {
            g.watchers
                .entry(w.clone())
                .or_default()
                .insert(handle.id, handle.clone());
            if g.online(w) {
                state.online.push(w.clone());
            } else {
                state.offline.push(w.clone());
            }
        }
        confirm(&state);
        state
    }

    /// Removes a connection; when it was the user's last, watchers get `offline`.
    pub fn sign_out(&self, user: &UserId, conn: ConnId, watchlist: &[UserId]) {
        let mut g = write(&self.inner);
        let mut last = false;
        if let Some(conns) = g.conns.get_mut(user) {
            conns.remove(&conn);
            if conns.is_empty() {
                g.conns.remove(user);
                last = true;
            }
        }
        for w in watchlist {
            if let Some(ws) = g.watchers.get_mut(w) {
                ws.remove(&conn);
                if ws.is_empty() {
                    g.watchers.remove(w);
                }
            }
        }
        if last {
            if !g.online(user) {
                notify(&g, user, false);
            }
            self.announce(user, false);
        }
    }

    /// Tells the other nodes (under the lock: in the order of the changes).
    fn announce(&self, user: &UserId, online: bool) {
        if let Cluster::Shared { node, sink } = &self.cluster {
            sink.send(ClusterMsg::Users {
                node: *node,
                online,
                users: vec![user.clone()],
            });
        }
    }

    /// Applies another node's users: `Users` (signed in or out),
    /// `UsersState` (all of them) or `NodeLeft` (none); watchers here get
    /// `online`/`offline` for users that came or went cluster-wide.
    pub fn apply(&self, msg: &ClusterMsg) {
        let me = self.cluster.node();
        let mut g = write(&self.inner);
        let changes: Vec<(UserId, NodeId, bool)> = match msg {
            ClusterMsg::Users {
                node,
                online,
                users,
            } if *node != me => users.iter().map(|u| (u.clone(), *node, *online)).collect(),
            ClusterMsg::UsersState { node, users } if *node != me => {
                let mut c: Vec<(UserId, NodeId, bool)> = g
                    .remote
                    .iter()
                    .filter(|(u, nodes)| nodes.contains(node) && !users.contains(u))
                    .map(|(u, _)| (u.clone(), *node, false))
                    .collect();
                c.extend(users.iter().map(|u| (u.clone(), *node, true)));
                c
            }
            ClusterMsg::NodeLeft { node } if *node != me => g
                .remote
                .iter()
                .filter(|(_, nodes)| nodes.contains(node))
                .map(|(u, _)| (u.clone(), *node, false))
                .collect(),
            _ => return,
        };
        for (user, node, online) in changes {
            let was = g.online(&user);
            let nodes = g.remote.entry(user.clone()).or_default();
            if online {
                if !nodes.contains(&node) {
                    nodes.push(node);
                }
            } else {
                nodes.retain(|n| *n != node);
                if nodes.is_empty() {
                    g.remote.remove(&user);
                }
            }
            let now = g.online(&user);
            if was != now {
                notify(&g, &user, now);
            }
        }
    }

    /// Sends every user signed in on this node ([`ClusterMsg::UsersState`],
    /// under the lock: in order with the sign-ins and outs).
    pub fn send_state(&self) {
        if let Cluster::Shared { node, sink } = &self.cluster {
            let g = read(&self.inner);
            sink.send(ClusterMsg::UsersState {
                node: *node,
                users: g.conns.keys().cloned().collect(),
            });
        }
    }

    /// Sends `frame` to every connection signed in as `user`, except `except`.
    pub fn publish(&self, user: &UserId, frame: &Frame, except: Option<&SocketId>) -> usize {
        let g = read(&self.inner);
        let mut n = 0;
        if let Some(conns) = g.conns.get(user) {
            for h in conns.values() {
                if except != Some(&h.socket_id) && h.send(frame) {
                    n += 1;
                }
            }
        }
        n
    }

    /// Closes every connection signed in as `user` with 4009. Returns how many.
    pub fn terminate(&self, user: &UserId) -> usize {
        let g = read(&self.inner);
        let Some(conns) = g.conns.get(user) else {
            return 0;
        };
        for h in conns.values() {
            h.close_with(CloseCode::Unauthorized, TERMINATED);
        }
        conns.len()
    }
}

/// What a connection closed by `terminate_connections` is told (Pusher's
/// wording).
const TERMINATED: &str = "You got disconnected by the app.";

fn notify(g: &Inner, user: &UserId, online: bool) {
    let Some(ws) = g.watchers.get(user) else {
        return;
    };
    let ids = [user.as_str()];
    let frame: Frame = if online {
        wire::watchlist_events(&ids, &[])
    } else {
        wire::watchlist_events(&[], &ids)
    }
    .into();
    for h in ws.values() {
        h.send(&frame);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What this node sent to the bus.
    #[derive(Default)]
    struct Collect(std::sync::Mutex<Vec<ClusterMsg>>);

    impl crate::cluster::BusSink for Collect {
        fn send(&self, msg: ClusterMsg) {
            self.0.lock().unwrap().push(msg);
        }
    }

    /// Watchers see a user online while any node has a connection of it;
    /// this node announces only its own first and last connection.
    #[test]
    fn online_offline_across_nodes() {
        let bus = std::sync::Arc::new(Collect::default());
        let users = Users::new(Cluster::Shared {
            node: NodeId(1),
            sink: bus.clone(),
        });
        let (w, rw) = ConnHandle::new(SocketId::from_parts(1, 1), 16, None);
        let (b1, _) = ConnHandle::new(SocketId::from_parts(1, 2), 16, None);
        let bob = UserId::parse("bob").unwrap();
        let next = || {
            rw.outbox()
                .take_queued()
                .iter()
                .map(|f| f.payload().to_owned())
                .collect::<Vec<_>>()
        };
        let remote = |node, online| ClusterMsg::Users {
            node: NodeId(node),
            online,
            users: vec![bob.clone()],
        };
        users.sign_in(&UserId::parse("w").unwrap(), &w, std::slice::from_ref(&bob));
        // Bob on node 2: online; on node 3 too: nothing new.
        users.apply(&remote(2, true));
        assert!(next().iter().any(|f| f.contains("online")));
        users.apply(&remote(3, true));
        assert!(next().is_empty());
        // Bob here as well: nothing for the watcher, one announcement.
        let before = bus.0.lock().unwrap().len();
        users.sign_in(&bob, &b1, &[]);
        assert!(next().is_empty());
        assert_eq!(bus.0.lock().unwrap().len(), before + 1);
        users.sign_out(&bob, b1.id, &[]);
        users.apply(&remote(2, false));
        assert!(next().is_empty(), "still on node 3");
        // Node 3 is gone: bob is offline.
        users.apply(&ClusterMsg::NodeLeft { node: NodeId(3) });
        assert!(next().iter().any(|f| f.contains("offline")));
        // A node's whole state replaces what it had.
        users.apply(&ClusterMsg::UsersState {
            node: NodeId(4),
            users: vec![bob.clone()],
        });
        assert!(next().iter().any(|f| f.contains("online")));
        users.apply(&ClusterMsg::UsersState {
            node: NodeId(4),
            users: vec![],
        });
        assert!(next().iter().any(|f| f.contains("offline")));
        // This node's own messages change nothing here.
        users.apply(&ClusterMsg::Users {
            node: NodeId(1),
            online: true,
            users: vec![bob.clone()],
        });
        assert!(next().is_empty());
    }

    #[test]
    fn online_offline() {
        let users = Users::default();
        let (w, rw) = ConnHandle::new(SocketId::from_parts(1, 1), 16, None);
        let (a1, c1) = ConnHandle::new(SocketId::from_parts(1, 2), 16, None);
        let (a2, _) = ConnHandle::new(SocketId::from_parts(1, 3), 16, None);
        let alice = UserId::parse("alice").unwrap();
        let bob = UserId::parse("bob").unwrap();
        let st = users.sign_in(&bob, &w, std::slice::from_ref(&alice));
        assert_eq!(st.offline, vec![alice.clone()]);
        users.sign_in(&alice, &a1, &[]);
        let next = || {
            rw.outbox()
                .take_queued()
                .first()
                .map(|f| f.payload().to_owned())
        };
        assert!(next().unwrap().contains("online"));
        users.sign_in(&alice, &a2, &[]);
        assert!(next().is_none());
        users.sign_out(&alice, a1.id, &[]);
        assert!(next().is_none());
        assert_eq!(users.publish(&alice, &"x".into(), None), 1);
        users.sign_out(&alice, a2.id, &[]);
        assert!(next().unwrap().contains("offline"));
        users.sign_in(&alice, &a1, &[]);
        assert_eq!(users.terminate(&alice), 1);
        let closed = c1.closer().requested().map(|r| (r.code, r.reason));
        assert_eq!(closed, Some((CloseCode::Unauthorized, TERMINATED)));
    }
}
