//! Which connections are which devices: each connection's device state
//! ([`ConnDevice`]: the pending nonce, the proven device) and the registry
//! of connected devices the mailbox pushes to.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use hush_crypto::device_auth::NONCE_LEN;
use hush_crypto::identity::DeviceId;
use hush_store::mailbox::DeviceRef;

use super::lock;
use crate::conn::{ConnHandle, ConnId, Frame};

#[derive(Default)]
struct DeviceAuth {
    nonce: Option<[u8; NONCE_LEN]>,
    /// The proven device and its user.
    device: Option<(String, DeviceId)>,
}

/// One connection's device: the nonce of its last `device.challenge` and,
/// once proven, which device it is. A revoked device loses it.
#[derive(Default)]
pub struct ConnDevice(Mutex<DeviceAuth>);

impl std::fmt::Debug for ConnDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnDevice")
            .field("device", &self.device())
            .finish_non_exhaustive()
    }
}

impl ConnDevice {
    /// A fresh nonce for this connection (replacing any earlier one).
    pub fn new_nonce(&self) -> [u8; NONCE_LEN] {
        let mut nonce = [0u8; NONCE_LEN];
        rand::Rng::fill(&mut rand::rng(), &mut nonce);
        lock(&self.0).nonce = Some(nonce);
        nonce
    }

    /// Takes the nonce (it is good for one attempt).
    pub fn take_nonce(&self) -> Option<[u8; NONCE_LEN]> {
        lock(&self.0).nonce.take()
    }

    /// The proven device, if any.
    pub fn device(&self) -> Option<DeviceId> {
        lock(&self.0).device.as_ref().map(|(_, d)| *d)
    }

    pub(super) fn set_device(&self, user: &str, device: DeviceId) {
        lock(&self.0).device = Some((user.to_owned(), device));
    }

    fn clear(&self) {
        lock(&self.0).device = None;
    }
}

type Key = (String, String, [u8; 16]);
/// One connection of a device.
type Conn = (ConnId, ConnHandle, Arc<ConnDevice>);

/// The connected devices, by (app, user, device).
#[derive(Default)]
pub(super) struct Live(Mutex<HashMap<Key, Vec<Conn>>>);

fn key(app_id: &str, d: &DeviceRef) -> Key {
    (app_id.to_owned(), d.user.clone(), d.device)
}

impl Live {
    pub(super) fn register(
        &self,
        app_id: &str,
        d: &DeviceRef,
        handle: &ConnHandle,
        device: &Arc<ConnDevice>,
    ) {
        let mut map = lock(&self.0);
        let conns = map.entry(key(app_id, d)).or_default();
        if !conns.iter().any(|(id, _, _)| *id == handle.id) {
            conns.push((handle.id, handle.clone(), device.clone()));
        }
    }

    pub(super) fn unregister(&self, app_id: &str, handle: &ConnHandle, device: &ConnDevice) {
        let Some((user, dev)) = lock(&device.0).device.clone() else {
            return;
        };
        let k = (app_id.to_owned(), user, dev.0);
        let mut map = lock(&self.0);
        if let Some(conns) = map.get_mut(&k) {
            conns.retain(|(id, _, _)| *id != handle.id);
            if conns.is_empty() {
                map.remove(&k);
            }
        }
    }

    /// Sends `frame` to every connection of `d`; true if one took it.
    pub(super) fn push(&self, app_id: &str, d: &DeviceRef, frame: &Frame) -> bool {
        let map = lock(&self.0);
        map.get(&key(app_id, d)).is_some_and(|conns| {
            conns
                .iter()
                .fold(false, |any, (_, h, _)| h.send(frame) || any)
        })
    }

    /// Forgets the connections of `user`'s devices not in `keep` (revoked):
    /// they are no longer pushed to and lose their proven device.
    pub(super) fn forget_except(&self, app_id: &str, user: &str, keep: &[[u8; 16]]) {
        let mut map = lock(&self.0);
        map.retain(|k, conns| {
            let gone = k.0 == app_id && k.1 == user && !keep.contains(&k.2);
            if gone {
                for (_, _, d) in conns.iter() {
                    d.clear();
                }
            }
            !gone
        });
    }
}
