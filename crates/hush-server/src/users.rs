//! Signed-in users of one app: which connections belong to which user id, and
//! who watches whom (watchlist online/offline events).

use std::collections::HashMap;
use std::sync::RwLock;

use hush_protocol::{CloseCode, SocketId, UserId, wire};

use crate::conn::{ConnHandle, ConnId, Frame};
use crate::lock::{read, write};

#[derive(Default)]
struct Inner {
    conns: HashMap<UserId, HashMap<ConnId, ConnHandle>>,
    watchers: HashMap<UserId, HashMap<ConnId, ConnHandle>>,
}

/// The user index of one app.
#[derive(Default)]
pub struct Users {
    inner: RwLock<Inner>,
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
        let conns = g.conns.entry(user.clone()).or_default();
        let first = conns.is_empty();
        conns.insert(handle.id, handle.clone());
        if first {
            notify(&g, user, true);
        }
        let mut state = WatchlistState::default();
        for w in watchlist {
            g.watchers
                .entry(w.clone())
                .or_default()
                .insert(handle.id, handle.clone());
            if g.conns.get(w).is_some_and(|c| !c.is_empty()) {
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
            notify(&g, user, false);
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
