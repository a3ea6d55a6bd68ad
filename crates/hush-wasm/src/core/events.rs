//! Events a device queues for the app (hush-client's broadcast channels:
//! key changes, forks, owner alarms), drained with `take_events`.

use hush_crypto::identity::{CardId, DeviceId, IdentityPublicKey};
use hush_crypto::transparency::SignedTreeHead;
use serde_json::{Value, json};

use super::directory::b64;

/// One event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Event {
    /// A contact's keys or device set changed (hush-client `KeyChanged`).
    KeyChanged {
        user: String,
        identity_changed: bool,
        added: Vec<DeviceId>,
        removed: Vec<DeviceId>,
        was_verified: bool,
    },
    /// A gossiped head disagrees with this device's view (`ForkDetected`).
    Fork {
        ours: SignedTreeHead,
        theirs: SignedTreeHead,
        sender: String,
        channel: String,
    },
    /// A change of this user's keys this device did not make.
    OwnerAlarm(OwnerAlarm),
}

/// hush-client's `OwnerAlarm` (rare events: the keys stay typed, as there).
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum OwnerAlarm {
    /// A card of a device this device does not know.
    UnknownDevice { device: DeviceId, card: CardId },
    /// A revocation this device did not publish.
    UnknownRevocation { device: DeviceId },
    /// Another identity key than this device's.
    IdentityChanged {
        expected: Option<IdentityPublicKey>,
        found: IdentityPublicKey,
    },
}

impl OwnerAlarm {
    /// The JSON form.
    pub fn to_json(&self) -> Value {
        match self {
            Self::UnknownDevice { device, card } => json!({
                "type": "owner-alarm", "kind": "unknown-device",
                "device": hex::encode(device.0), "card": hex::encode(card.0),
            }),
            Self::UnknownRevocation { device } => json!({
                "type": "owner-alarm", "kind": "unknown-revocation",
                "device": hex::encode(device.0),
            }),
            Self::IdentityChanged { expected, found } => json!({
                "type": "owner-alarm", "kind": "identity-changed",
                "expected": expected.map(|k| b64(&k.to_bytes())),
                "found": b64(&found.to_bytes()),
            }),
        }
    }
}

impl Event {
    /// The JSON form (README "Events").
    pub fn to_json(&self) -> Value {
        let ids = |v: &[DeviceId]| v.iter().map(|d| hex::encode(d.0)).collect::<Vec<_>>();
        match self {
            Self::KeyChanged {
                user,
                identity_changed,
                added,
                removed,
                was_verified,
            } => json!({
                "type": "key-changed", "user": user, "identityChanged": identity_changed,
                "added": ids(added), "removed": ids(removed), "wasVerified": was_verified,
            }),
            Self::Fork {
                ours,
                theirs,
                sender,
                channel,
            } => json!({
                "type": "fork", "ours": b64(&ours.to_bytes()), "theirs": b64(&theirs.to_bytes()),
                "oursEpoch": ours.head.epoch, "theirsEpoch": theirs.head.epoch,
                "sender": sender, "channel": channel,
            }),
            Self::OwnerAlarm(a) => a.to_json(),
        }
    }
}
