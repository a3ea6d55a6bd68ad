//! The key directory's rules, as a pure state machine over log entries.
//!
//! The hush server applies every publish and revoke through
//! [`DirectoryState::apply`] before recording it, and commits each changed
//! user's [`DirectoryState::entry`] to the key directory's tree at the next
//! epoch. The rules:
//!
//! * a user's first card sets the user's identity key; every later card must
//!   be cross-signed by the current identity key;
//! * a card for a device that already has one must link to that device's
//!   latest card and carry a new X25519 encryption key
//!   ([`DeviceCard::check_follows`]); a first card for a device must not
//!   name a previous card;
//! * a revoked device never gets a card again;
//! * a revocation must be signed by the user's current identity key; a device
//!   revocation must name that device's latest card; an identity rotation
//!   retires every card of the old identity and installs the new key.
//!
//! Signatures inside the records were already checked when they were parsed
//! ([`DeviceCard::from_bytes`], [`Revocation::from_bytes`]). Expiry is not a
//! replay rule (the log carries no publish time): the server refuses expired
//! cards at publish time and readers check expiry when they use a card.

use std::collections::{HashMap, HashSet};

use hush_protocol::UserId;

use crate::identity::{
    CardId, DeviceCard, DeviceId, IdentityPublicKey, Revocation, RevocationKind,
};
use crate::transparency::LogEntry;
use crate::transparency::proofs::{ENTRY_REVOCATIONS, UserEntry};

/// Why an entry breaks the directory's rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    /// Signed by another identity key than the user's current one.
    #[error("signed by an identity key that is not the user's current one")]
    WrongIdentity,
    /// A card for a known device that does not link to its latest card, or a
    /// first card that names a previous one.
    #[error("card does not follow the device's latest card")]
    BrokenChain,
    /// A card for a device that was revoked.
    #[error("device was revoked")]
    DeviceRevoked,
    /// A revocation for a device the user has no card for, or naming a card
    /// that is not the device's latest.
    #[error("revocation names an unknown device or an outdated card")]
    UnknownCard,
    /// A revocation for a user with no identity yet.
    #[error("user has no identity key yet")]
    UnknownUser,
    /// The same card published again.
    #[error("card published twice")]
    Duplicate,
    /// Log leaf data that is not a valid card or revocation (bad encoding or
    /// signature); only a replay of a stored record list meets this.
    #[error("entry is not a valid card or revocation")]
    InvalidEntry,
}

/// One device's state: its latest card and where that card is in the log.
#[derive(Debug, Clone)]
pub struct DeviceState {
    /// The latest card.
    pub card: DeviceCard,
    /// Its log index.
    pub index: u64,
    /// Whether the device was revoked (then `card` is its last card).
    pub revoked: bool,
}

/// One user's state.
#[derive(Debug, Clone)]
pub struct UserState {
    /// The current identity key.
    pub identity: IdentityPublicKey,
    /// Devices under the current identity key.
    pub devices: HashMap<DeviceId, DeviceState>,
    /// Devices revoked under any identity (never reusable).
    revoked: HashSet<DeviceId>,
    /// Latest card of each device retired by an identity rotation: a new
    /// card for the device may link to it.
    retired: HashMap<DeviceId, CardId>,
    /// Log indexes of every entry of this user, in order.
    pub entries: Vec<u64>,
    /// The user's revocations with their log indexes, in order (served with
    /// every lookup, so they stay in memory).
    pub revocations: Vec<(u64, Revocation)>,
}

impl UserState {
    /// Cards of devices that are not revoked, ordered by device id.
    pub fn active_cards(&self) -> Vec<&DeviceState> {
        let mut active: Vec<&DeviceState> = self.devices.values().filter(|d| !d.revoked).collect();
        active.sort_by_key(|d| d.card.device_id());
        active
    }
}

/// The directory of one app: every user's identity key and devices.
#[derive(Debug, Clone, Default)]
pub struct DirectoryState {
    users: HashMap<UserId, UserState>,
}

impl DirectoryState {
    /// An empty directory.
    pub fn new() -> Self {
        Self::default()
    }

    /// A user's state.
    pub fn user(&self, user: &UserId) -> Option<&UserState> {
        self.users.get(user)
    }

    /// The entry the directory commits to for `user` (its identity key,
    /// active devices' latest cards by device id, newest
    /// [`ENTRY_REVOCATIONS`] revocations), if the user has an identity.
    pub fn entry(&self, user: &UserId) -> Option<UserEntry> {
        let u = self.users.get(user)?;
        let from = u.revocations.len().saturating_sub(ENTRY_REVOCATIONS);
        Some(UserEntry {
            identity: u.identity,
            cards: u
                .active_cards()
                .into_iter()
                .map(|d| d.card.clone())
                .collect(),
            revocations: u.revocations[from..]
                .iter()
                .map(|(_, r)| r.clone())
                .collect(),
        })
    }

    /// Number of users with an identity.
    pub fn user_count(&self) -> usize {
        self.users.len()
    }

    /// Checks `entry` (at log `index`) against the rules without applying it.
    pub fn check(&self, entry: &LogEntry) -> Result<(), RuleError> {
        match entry {
            LogEntry::Card(card) => self.check_card(card),
            LogEntry::Revocation(rev) => self.check_revocation(rev),
        }
    }

    /// Checks and applies `entry`, which sits at log `index`.
    pub fn apply(&mut self, entry: &LogEntry, index: u64) -> Result<(), RuleError> {
        self.check(entry)?;
        match entry {
            LogEntry::Card(card) => {
                let user = self
                    .users
                    .entry(card.user_id().clone())
                    .or_insert_with(|| UserState {
                        identity: *card.identity_key(),
                        devices: HashMap::new(),
                        revoked: HashSet::new(),
                        retired: HashMap::new(),
                        entries: Vec::new(),
                        revocations: Vec::new(),
                    });
                user.devices.insert(
                    card.device_id(),
                    DeviceState {
                        card: card.clone(),
                        index,
                        revoked: false,
                    },
                );
                user.entries.push(index);
            }
            LogEntry::Revocation(rev) => {
                let Some(user) = self.users.get_mut(rev.user_id()) else {
                    return Err(RuleError::UnknownUser);
                };
                match rev.kind() {
                    RevocationKind::Device { device_id, .. } => {
                        if let Some(device) = user.devices.get_mut(device_id) {
                            device.revoked = true;
                        }
                        user.revoked.insert(*device_id);
                    }
                    RevocationKind::IdentityRotation { new_identity } => {
                        user.identity = *new_identity;
                        for (device, state) in user.devices.drain() {
                            if !state.revoked {
                                user.retired.insert(device, state.card.id());
                            }
                        }
                    }
                }
                user.entries.push(index);
                user.revocations.push((index, rev.clone()));
            }
        }
        Ok(())
    }

    fn check_card(&self, card: &DeviceCard) -> Result<(), RuleError> {
        let Some(user) = self.users.get(card.user_id()) else {
            // A first card: it must not claim to replace anything.
            return match card.body().previous {
                None => Ok(()),
                Some(_) => Err(RuleError::BrokenChain),
            };
        };
        if *card.identity_key() != user.identity {
            return Err(RuleError::WrongIdentity);
        }
        if user.revoked.contains(&card.device_id()) {
            return Err(RuleError::DeviceRevoked);
        }
        match user.devices.get(&card.device_id()) {
            Some(latest) if latest.card.id() == card.id() => Err(RuleError::Duplicate),
            Some(latest) => card
                .check_follows(&latest.card)
                .map_err(|_| RuleError::BrokenChain),
            None => match card.body().previous {
                None => Ok(()),
                // After a rotation a device may link to its last card under
                // the old identity.
                Some(previous) if user.retired.get(&card.device_id()) == Some(&previous) => Ok(()),
                Some(_) => Err(RuleError::BrokenChain),
            },
        }
    }

    fn check_revocation(&self, rev: &Revocation) -> Result<(), RuleError> {
        let user = self
            .users
            .get(rev.user_id())
            .ok_or(RuleError::UnknownUser)?;
        rev.verify(rev.user_id(), &user.identity)
            .map_err(|_| RuleError::WrongIdentity)?;
        match rev.kind() {
            RevocationKind::Device { device_id, card_id } => {
                let latest: Option<CardId> = user
                    .devices
                    .get(device_id)
                    .filter(|d| !d.revoked)
                    .map(|d| d.card.id());
                if latest == Some(*card_id) {
                    Ok(())
                } else {
                    Err(RuleError::UnknownCard)
                }
            }
            RevocationKind::IdentityRotation { .. } => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::{DeviceKeys, IdentityKey, UnsignedCard};

    const NOW: u64 = 1_700_000_000;

    /// A card for `device` (a fresh X25519 key each time, as a renewal
    /// needs; the signing key, and so the device id, stays).
    fn card(
        user: &str,
        device: &DeviceKeys,
        identity: &IdentityKey,
        previous: Option<CardId>,
    ) -> DeviceCard {
        let keys = device.with_new_encryption_key();
        let body = UnsignedCard::new(
            UserId::parse(user).unwrap(),
            &identity.public_key(),
            &keys,
            NOW,
            NOW + 86_400,
            previous,
        );
        DeviceCard::issue(body, &keys, identity).unwrap()
    }

    #[test]
    fn cards_chains_revocations_and_rotation() {
        let mut dir = DirectoryState::new();
        let alice = IdentityKey::generate();
        let phone = DeviceKeys::generate();
        let laptop = DeviceKeys::generate();

        let c1 = card("alice", &phone, &alice, None);
        dir.apply(&LogEntry::Card(c1.clone()), 0).unwrap();
        dir.apply(&LogEntry::Card(card("alice", &laptop, &alice, None)), 1)
            .unwrap();
        let user = dir.user(&UserId::parse("alice").unwrap()).unwrap();
        assert_eq!(user.active_cards().len(), 2);

        // Another identity key cannot add a device.
        let mallory = IdentityKey::generate();
        let forged = card("alice", &DeviceKeys::generate(), &mallory, None);
        assert_eq!(
            dir.apply(&LogEntry::Card(forged), 2),
            Err(RuleError::WrongIdentity)
        );
        // A replacement card must link to the latest one.
        assert_eq!(
            dir.apply(&LogEntry::Card(card("alice", &phone, &alice, None)), 2),
            Err(RuleError::BrokenChain)
        );
        let c2 = card("alice", &phone, &alice, Some(c1.id()));
        dir.apply(&LogEntry::Card(c2.clone()), 2).unwrap();
        assert_eq!(
            dir.apply(
                &LogEntry::Card(card("alice", &phone, &alice, Some(c1.id()))),
                3
            ),
            Err(RuleError::BrokenChain)
        );

        // Revoking needs the latest card; then the device is gone for good.
        let stale = Revocation::revoke_device(&alice, &c1, NOW).unwrap();
        assert_eq!(
            dir.apply(&LogEntry::Revocation(stale), 3),
            Err(RuleError::UnknownCard)
        );
        let rev = Revocation::revoke_device(&alice, &c2, NOW).unwrap();
        dir.apply(&LogEntry::Revocation(rev), 3).unwrap();
        let user = dir.user(&UserId::parse("alice").unwrap()).unwrap();
        assert_eq!(user.active_cards().len(), 1);
        assert_eq!(
            dir.apply(
                &LogEntry::Card(card("alice", &phone, &alice, Some(c2.id()))),
                4
            ),
            Err(RuleError::DeviceRevoked)
        );

        // Rotation: only the old key may rotate; afterwards only the new key signs.
        let alice2 = IdentityKey::generate();
        let uid = UserId::parse("alice").unwrap();
        let bogus = Revocation::rotate_identity(uid.clone(), &mallory, &alice2, NOW).unwrap();
        assert_eq!(
            dir.apply(&LogEntry::Revocation(bogus), 4),
            Err(RuleError::WrongIdentity)
        );
        let rotation = Revocation::rotate_identity(uid.clone(), &alice, &alice2, NOW).unwrap();
        dir.apply(&LogEntry::Revocation(rotation), 4).unwrap();
        let user = dir.user(&uid).unwrap();
        assert!(user.active_cards().is_empty());
        assert_eq!(user.identity, alice2.public_key());
        assert_eq!(
            dir.apply(
                &LogEntry::Card(card("alice", &DeviceKeys::generate(), &alice, None)),
                5
            ),
            Err(RuleError::WrongIdentity)
        );
        dir.apply(
            &LogEntry::Card(card("alice", &DeviceKeys::generate(), &alice2, None)),
            5,
        )
        .unwrap();
        assert_eq!(dir.user(&uid).unwrap().entries, vec![0, 1, 2, 3, 4, 5]);
        let revoked_at: Vec<u64> = dir
            .user(&uid)
            .unwrap()
            .revocations
            .iter()
            .map(|(i, _)| *i)
            .collect();
        assert_eq!(revoked_at, vec![3, 4]);
    }

    #[test]
    fn revocations_need_a_user_and_first_cards_no_previous() {
        let mut dir = DirectoryState::new();
        let bob = IdentityKey::generate();
        let c = card("bob", &DeviceKeys::generate(), &bob, None);
        let rev = Revocation::revoke_device(&bob, &c, NOW).unwrap();
        assert_eq!(
            dir.apply(&LogEntry::Revocation(rev), 0),
            Err(RuleError::UnknownUser)
        );
        let orphan = card("bob", &DeviceKeys::generate(), &bob, Some(c.id()));
        assert_eq!(
            dir.apply(&LogEntry::Card(orphan), 0),
            Err(RuleError::BrokenChain)
        );
        assert_eq!(dir.user_count(), 0);
    }
}
