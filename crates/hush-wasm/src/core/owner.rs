//! Owner self-monitoring (hush-client `e2ee/owner.rs`): the alarms a
//! device raises for changes of its own user's keys it did not make.

use hush_crypto::identity::{IdentityKey, RevocationKind};
use hush_crypto::transparency::proofs::UserEntry;
use hush_protocol::UserId;

use super::data::DeviceData;
use super::directory::UserKeys;
use super::events::OwnerAlarm;

/// The alarms `keys` (this user's verified keys) raise on this device.
pub(crate) fn alarms(data: &DeviceData, keys: &UserKeys) -> Vec<OwnerAlarm> {
    let mut out = Vec::new();
    let expected = data
        .identity
        .as_ref()
        .map(IdentityKey::public_key)
        .or_else(|| data.card.as_ref().map(|c| *c.identity_key()));
    let pending = data.pending_identity.as_ref().map(IdentityKey::public_key);
    if let Some(found) = keys.identity
        && Some(found) != expected
        && Some(found) != pending
    {
        out.push(OwnerAlarm::IdentityChanged { expected, found });
    }
    for card in &keys.devices {
        let device = card.device_id();
        if device != data.device_id && !data.known_devices.contains(&device) {
            out.push(OwnerAlarm::UnknownDevice {
                device,
                card: card.id(),
            });
        }
    }
    for r in &keys.revocations {
        if let RevocationKind::Device { device_id, .. } = r.kind()
            && !data.known_revocations.contains(device_id)
        {
            out.push(OwnerAlarm::UnknownRevocation { device: *device_id });
        }
    }
    out
}

/// The keys of a past entry (every card not revoked in it).
pub(crate) fn keys_at(user: &UserId, entry: &UserEntry) -> UserKeys {
    UserKeys {
        user: user.clone(),
        identity: Some(entry.identity),
        devices: entry
            .cards
            .iter()
            .filter(|c| !entry.revocations.iter().any(|r| r.revokes(c)))
            .cloned()
            .collect(),
        revocations: entry.revocations.clone(),
    }
}
