//! Owners watch themselves: the device looks its own user up (verified as
//! every lookup) when it connects and periodically, and raises an
//! [`OwnerAlarm`] for every card, revocation or identity change of its user
//! that it did not make.
//!
//! What one device can know: its own card, the cards it approved
//! ([`E2ee::approve_device`](super::E2ee::approve_device)), the revocations
//! it published and the identity key it holds (or its card is bound to).
//! A card approved by another of the user's devices looks exactly like a
//! card the server or a thief of the identity key added, so it raises an
//! alarm too, until the app asks the user and acknowledges the device
//! ([`E2ee::acknowledge_own_devices`](super::E2ee::acknowledge_own_devices)).
//! The alarm is raised again on every check until then.

use std::sync::Weak;
use std::time::Duration;

use hush_crypto::identity::{CardId, DeviceId, IdentityPublicKey, RevocationKind};

use hush_crypto::transparency::proofs::{MAX_HISTORY_VERSIONS, UserEntry};

use super::directory::Directory;
use super::state::Shared;
use super::store::DeviceData;
use super::{E2eeError, UserKeys};
use crate::client::ConnectionState;

/// Something in this user's own key history that this device did not make
/// (subscribe with [`E2ee::owner_alarms`](super::E2ee::owner_alarms)).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
// Rare events: the identity keys stay typed rather than boxed.
#[allow(clippy::large_enum_variant)]
pub enum OwnerAlarm {
    /// An active card of a device this device neither is, approved, nor
    /// was told about: someone may be reading the user's messages.
    UnknownDevice {
        /// The device.
        device: DeviceId,
        /// Its card.
        card: CardId,
    },
    /// A device of the user was revoked, not by this device.
    UnknownRevocation {
        /// The revoked device.
        device: DeviceId,
    },
    /// The user's identity key in the directory is not the one this device
    /// holds or its card is bound to.
    IdentityChanged {
        /// The identity key this device knows (`None`: none yet).
        expected: Option<IdentityPublicKey>,
        /// The identity key the directory shows.
        found: IdentityPublicKey,
    },
}

/// The alarms for `keys` (this user's verified lookup) as seen by `data`.
pub(super) fn alarms(data: &DeviceData, keys: &UserKeys) -> Vec<OwnerAlarm> {
    let mut out = Vec::new();
    let expected = data
        .identity
        .as_ref()
        .map(hush_crypto::identity::IdentityKey::public_key)
        .or_else(|| data.card.as_ref().map(|c| *c.identity_key()));
    let pending = data
        .pending_identity
        .as_ref()
        .map(hush_crypto::identity::IdentityKey::public_key);
    if let Some(found) = keys.identity {
        if Some(found) != expected && Some(found) != pending {
            out.push(OwnerAlarm::IdentityChanged { expected, found });
        }
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
        if let RevocationKind::Device { device_id, .. } = r.kind() {
            if !data.known_revocations.contains(device_id) {
                out.push(OwnerAlarm::UnknownRevocation { device: *device_id });
            }
        }
    }
    out
}

/// Looks this user up and raises the alarms (also returned): for the
/// user's latest entry and, through a verified history proof, for every
/// version since the last check that found nothing (at most
/// [`MAX_HISTORY_VERSIONS`] back), so a card the directory added and removed
/// again between two checks is found too. Nothing is checked before this
/// device is part of its user's device set (it has a card and trusts a
/// directory head).
pub(super) async fn check(sh: &Shared) -> Result<Vec<OwnerAlarm>, E2eeError> {
    if sh.with(|st| st.data.card.is_none() || st.data.log.is_none()) {
        return Ok(Vec::new());
    }
    let dir = Directory::new(sh);
    let g = sh.directory.lock().await;
    let me = sh.with(|st| st.data.user.clone());
    // One lookup: the latest entry (as keys, and its version).
    let (own, latest) = dir
        .lookup_versions(&g, std::slice::from_ref(&me))
        .await?
        .pop()
        .ok_or_else(|| E2eeError::UnknownUser(me.to_string()))?;
    let checked = sh.with(|st| st.data.owner_version);
    let mut past = Vec::new();
    if let Some(latest) = latest
        && latest > checked.saturating_add(1)
    {
        let versions = (latest - checked).min(MAX_HISTORY_VERSIONS as u64);
        past = dir.own_history(&g, versions).await?;
    }
    drop(g);
    let mut found = sh.with(|st| alarms(&st.data, &own));
    for v in &past {
        let keys = keys_at(&me, &v.entry);
        for a in sh.with(|st| alarms(&st.data, &keys)) {
            if !found.contains(&a) {
                found.push(a);
            }
        }
    }
    for a in &found {
        tracing::warn!(alarm = ?a, "hush-client: owner alarm");
        let _ = sh.alarms.send(a.clone());
    }
    if found.is_empty()
        && let Some(latest) = latest
    {
        sh.update(|st| {
            st.data.owner_version = st.data.owner_version.max(latest);
            Ok(())
        })?;
    }
    Ok(found)
}

/// The keys a past entry showed, whether or not its cards have expired
/// since (a card added and removed again is still someone's).
fn keys_at(user: &hush_protocol::UserId, entry: &UserEntry) -> UserKeys {
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

/// The owner watch: checks when the client (re)connects and every
/// `owner_interval`; ends when the [`Shared`] is gone.
pub(super) async fn watch(sh: Weak<Shared>) {
    let Some(mut states) = sh.upgrade().map(|s| s.client.state_changes()) else {
        return;
    };
    let connected = matches!(
        *states.borrow_and_update(),
        ConnectionState::Connected { .. }
    );
    if connected {
        let Some(shared) = sh.upgrade() else { return };
        if let Err(e) = check(&shared).await {
            tracing::warn!(error = %e, "hush-client: owner check failed");
        }
    }
    loop {
        let Some((interval, wake)) = sh
            .upgrade()
            .map(|s| (s.with(|st| st.owner_interval), s.wake.clone()))
        else {
            return;
        };
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            () = wake.notified() => continue,
            r = states.changed() => {
                if r.is_err() {
                    return;
                }
                let connected = matches!(
                    *states.borrow_and_update(),
                    ConnectionState::Connected { .. }
                );
                if !connected {
                    continue;
                }
            }
        }
        let Some(shared) = sh.upgrade() else { return };
        if let Err(e) = check(&shared).await {
            tracing::warn!(error = %e, "hush-client: owner check failed");
        }
    }
}

/// Default period of the owner watch.
pub const DEFAULT_OWNER_CHECK_INTERVAL: Duration = Duration::from_secs(600);

#[cfg(test)]
mod tests {
    use super::*;
    use hush_crypto::identity::{DeviceCard, DeviceKeys, IdentityKey, Revocation, UnsignedCard};
    use hush_protocol::UserId;

    fn alice() -> UserId {
        UserId::parse("alice").unwrap()
    }

    fn other_card(identity: &IdentityKey) -> DeviceCard {
        let keys = DeviceKeys::generate();
        let now = super::super::now_secs();
        let body = UnsignedCard::new(
            alice(),
            &identity.public_key(),
            &keys,
            now - 10,
            now + 100,
            None,
        );
        DeviceCard::issue(body, &keys, identity).unwrap()
    }

    #[test]
    fn alarms_name_what_this_device_did_not_make() {
        let mut data = DeviceData::generate(alice(), true);
        let identity = data.identity.clone().unwrap();
        let own = super::super::devices::issue(&data, &identity, None).unwrap();
        let mut keys = UserKeys {
            user: alice(),
            identity: Some(identity.public_key()),
            devices: vec![own],
            revocations: Vec::new(),
        };
        // Its own card: nothing.
        assert_eq!(alarms(&data, &keys), vec![]);
        // Another device's card and its revocation, until acknowledged.
        let other = other_card(&identity);
        keys.devices.push(other.clone());
        keys.revocations
            .push(Revocation::revoke_device(&identity, &other, 1).unwrap());
        assert_eq!(
            alarms(&data, &keys),
            vec![
                OwnerAlarm::UnknownDevice {
                    device: other.device_id(),
                    card: other.id()
                },
                OwnerAlarm::UnknownRevocation {
                    device: other.device_id()
                }
            ]
        );
        data.known_devices.insert(other.device_id());
        data.known_revocations.insert(other.device_id());
        assert_eq!(alarms(&data, &keys), vec![]);
        // Another identity, unless it is this device's pending rotation.
        let new = IdentityKey::generate();
        keys.identity = Some(new.public_key());
        assert_eq!(
            alarms(&data, &keys),
            vec![OwnerAlarm::IdentityChanged {
                expected: Some(identity.public_key()),
                found: new.public_key()
            }]
        );
        data.pending_identity = Some(new);
        assert_eq!(alarms(&data, &keys), vec![]);
    }
}
