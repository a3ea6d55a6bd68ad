//! Directory rules over the log, and an end-to-end audit of a log (the pure
//! core of `hush audit`).
//!
//! [`DirectoryState`] replays log entries and enforces what a key directory
//! may do, so a server can validate a publish or revoke *before* appending
//! it, and an auditor can check a whole log afterwards:
//!
//! * a user's first entry is a card; its identity key becomes the user's
//!   current identity key;
//! * every later card of the user is cross-signed by the current identity
//!   key, and a card that names a `previous` card names an earlier card of
//!   the same device;
//! * a device revocation is signed by the current identity key and names the
//!   device's latest card; no card for that device may follow it;
//! * an identity rotation is signed by the current key (and the new one); the
//!   new key becomes current and earlier devices need new cards.

use std::collections::{HashMap, HashSet};

use hush_protocol::UserId;

use super::{Hash, LogEntry, LogError, LogPublicKey, SignedTreeHead, leaf_hash, root};
use crate::identity::{
    CardId, DeviceCard, DeviceId, IdentityPublicKey, Revocation, RevocationKind,
};

/// A directory rule an entry breaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Violation {
    /// The entry's bytes are not a valid card or revocation (bad signature,
    /// bad encoding).
    #[error("entry is not a valid card or revocation")]
    InvalidEntry,
    /// A revocation for a user with no card yet.
    #[error("revocation for a user who has no card")]
    UnknownUser,
    /// Cross-signed (or signed) by a key that is not the user's current
    /// identity key.
    #[error("signed by a key that is not the user's current identity key")]
    WrongIdentity,
    /// `previous` names no earlier card of the same device.
    #[error("card's previous link names no earlier card of this device")]
    BrokenChain,
    /// A card for a device that was revoked.
    #[error("card for a revoked device")]
    RevokedDevice,
    /// A device revocation that does not name the device's latest card.
    #[error("revocation names a card that is not the device's latest")]
    StaleRevocation,
    /// The same card published twice.
    #[error("card published twice")]
    Duplicate,
}

#[derive(Debug, Default, Clone)]
struct UserState {
    identity: Option<IdentityPublicKey>,
    /// Latest card id per device, under the current identity.
    latest: HashMap<DeviceId, CardId>,
    /// Every card id seen per device (any identity).
    history: HashMap<DeviceId, HashSet<CardId>>,
    revoked: HashSet<DeviceId>,
}

/// The directory as the log describes it so far.
#[derive(Debug, Default, Clone)]
pub struct DirectoryState {
    users: HashMap<UserId, UserState>,
    cards: usize,
    revocations: usize,
    rotations: usize,
}

impl DirectoryState {
    /// An empty directory.
    pub fn new() -> Self {
        Self::default()
    }

    /// Checks `entry` against the rules and applies it. On error nothing
    /// changes.
    pub fn apply(&mut self, entry: &LogEntry) -> Result<(), Violation> {
        match entry {
            LogEntry::Card(card) => self.apply_card(card),
            LogEntry::Revocation(rev) => self.apply_revocation(rev),
        }
    }

    fn apply_card(&mut self, card: &DeviceCard) -> Result<(), Violation> {
        let device = card.device_id();
        let id = card.id();
        let existing = self.users.get(card.user_id());
        let identity = existing
            .and_then(|u| u.identity)
            .unwrap_or(*card.identity_key());
        if identity != *card.identity_key() {
            return Err(Violation::WrongIdentity);
        }
        let seen = existing.and_then(|u| u.history.get(&device));
        if existing.is_some_and(|u| u.revoked.contains(&device)) {
            return Err(Violation::RevokedDevice);
        }
        if seen.is_some_and(|s| s.contains(&id)) {
            return Err(Violation::Duplicate);
        }
        if let Some(prev) = card.body().previous {
            if !seen.is_some_and(|s| s.contains(&prev)) {
                return Err(Violation::BrokenChain);
            }
        }
        let user = self.users.entry(card.user_id().clone()).or_default();
        user.identity = Some(identity);
        user.history.entry(device).or_default().insert(id);
        user.latest.insert(device, id);
        self.cards += 1;
        Ok(())
    }

    fn apply_revocation(&mut self, rev: &Revocation) -> Result<(), Violation> {
        let user = self
            .users
            .get_mut(rev.user_id())
            .ok_or(Violation::UnknownUser)?;
        if user.identity != Some(*rev.identity_key()) {
            return Err(Violation::WrongIdentity);
        }
        match rev.kind() {
            RevocationKind::Device { device_id, card_id } => {
                if user.latest.get(device_id) != Some(card_id) {
                    return Err(Violation::StaleRevocation);
                }
                user.latest.remove(device_id);
                user.revoked.insert(*device_id);
                self.revocations += 1;
            }
            RevocationKind::IdentityRotation { new_identity } => {
                user.identity = Some(*new_identity);
                user.latest.clear();
                self.rotations += 1;
            }
        }
        Ok(())
    }

    /// The user's current identity key, if the user has published anything.
    pub fn identity(&self, user: &UserId) -> Option<&IdentityPublicKey> {
        self.users.get(user).and_then(|u| u.identity.as_ref())
    }

    /// The latest card id of each of the user's live devices.
    pub fn devices(&self, user: &UserId) -> Vec<(DeviceId, CardId)> {
        let mut out: Vec<_> = self
            .users
            .get(user)
            .map(|u| u.latest.iter().map(|(d, c)| (*d, *c)).collect())
            .unwrap_or_default();
        out.sort();
        out
    }
}

/// What an audit found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditReport {
    /// Entries checked.
    pub entries: u64,
    /// Users seen.
    pub users: usize,
    /// Cards published.
    pub cards: usize,
    /// Device revocations.
    pub revocations: usize,
    /// Identity rotations.
    pub rotations: usize,
    /// Entries that break a directory rule: (index, rule). Empty for a
    /// healthy log.
    pub violations: Vec<(u64, Violation)>,
}

/// Audits a whole log: the signed tree head is the log's, covers exactly
/// `entries` and their Merkle root; every entry parses with valid
/// signatures; and every entry follows the directory rules. A broken
/// signature, size or root is an error (the log cannot be trusted at all);
/// rule violations are listed in the report.
pub fn audit(
    log_id: &str,
    key: &LogPublicKey,
    sth: &SignedTreeHead,
    entries: &[Vec<u8>],
) -> Result<AuditReport, LogError> {
    sth.verify(key, log_id)?;
    if sth.head.size != entries.len() as u64 {
        return Err(LogError::Fork);
    }
    let leaves: Vec<Hash> = entries.iter().map(|e| leaf_hash(e)).collect();
    if root(&leaves) != sth.head.root {
        return Err(LogError::Fork);
    }
    let mut state = DirectoryState::new();
    let mut violations = Vec::new();
    for (i, bytes) in entries.iter().enumerate() {
        let result = LogEntry::from_bytes(bytes)
            .map_err(|_| Violation::InvalidEntry)
            .and_then(|e| state.apply(&e));
        if let Err(v) = result {
            violations.push((i as u64, v));
        }
    }
    Ok(AuditReport {
        entries: entries.len() as u64,
        users: state.users.len(),
        cards: state.cards,
        revocations: state.revocations,
        rotations: state.rotations,
        violations,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::{DeviceKeys, IdentityKey, UnsignedCard};
    use crate::transparency::{LogKey, MerkleLog, TreeHead};

    fn card(
        user: &str,
        identity: &IdentityKey,
        device: u8,
        keys_seed: u8,
        previous: Option<CardId>,
    ) -> DeviceCard {
        let keys = DeviceKeys::from_secret_bytes(&[keys_seed; 32], &[keys_seed ^ 0xff; 32]);
        let body = UnsignedCard::new(
            UserId::parse(user).unwrap(),
            DeviceId([device; 16]),
            &identity.public_key(),
            &keys,
            10,
            1_000,
            previous,
        );
        DeviceCard::issue(body, &keys, identity).unwrap()
    }

    #[test]
    fn a_healthy_history() {
        let id1 = IdentityKey::from_secret_bytes(&[1; 32]);
        let id2 = IdentityKey::from_secret_bytes(&[2; 32]);
        let alice = UserId::parse("alice").unwrap();
        let phone = card("alice", &id1, 1, 11, None);
        let laptop = card("alice", &id1, 2, 12, None);
        let phone2 = card("alice", &id1, 1, 13, Some(phone.id()));
        let revoke_laptop = Revocation::revoke_device(&id1, &laptop, 20).unwrap();
        let rotate = Revocation::rotate_identity(alice.clone(), &id1, &id2, 30).unwrap();
        let phone3 = card("alice", &id2, 1, 14, Some(phone2.id()));
        let bob = card("bob", &id2, 9, 15, None);
        let entries: Vec<LogEntry> = vec![
            LogEntry::Card(phone),
            LogEntry::Card(laptop),
            LogEntry::Card(phone2.clone()),
            LogEntry::Revocation(revoke_laptop),
            LogEntry::Revocation(rotate),
            LogEntry::Card(phone3.clone()),
            LogEntry::Card(bob),
        ];
        let mut state = DirectoryState::new();
        for e in &entries {
            state.apply(e).unwrap();
        }
        assert_eq!(state.identity(&alice), Some(&id2.public_key()));
        assert_eq!(
            state.devices(&alice),
            vec![(DeviceId([1; 16]), phone3.id())]
        );

        let key = LogKey::from_secret_bytes(&[42; 32]);
        let bytes: Vec<Vec<u8>> = entries.iter().map(LogEntry::to_bytes).collect();
        let mut log = MerkleLog::new();
        for b in &bytes {
            log.append(b);
        }
        let sth = key.sign(TreeHead {
            log_id: "app".into(),
            size: log.size(),
            root: log.root(),
            timestamp: 1,
        });
        let report = audit("app", &key.public_key(), &sth, &bytes).unwrap();
        assert_eq!(
            report,
            AuditReport {
                entries: 7,
                users: 2,
                cards: 5,
                revocations: 1,
                rotations: 1,
                violations: vec![],
            }
        );
        // A log that does not match its head is refused outright.
        assert_eq!(
            audit("app", &key.public_key(), &sth, &bytes[..6]),
            Err(LogError::Fork)
        );
        let mut swapped = bytes.clone();
        swapped.swap(0, 1);
        assert_eq!(
            audit("app", &key.public_key(), &sth, &swapped),
            Err(LogError::Fork)
        );
        assert_eq!(
            audit("other", &key.public_key(), &sth, &bytes),
            Err(LogError::WrongLog)
        );
    }

    #[test]
    fn rule_violations_are_reported() {
        let id1 = IdentityKey::from_secret_bytes(&[1; 32]);
        let mallory = IdentityKey::from_secret_bytes(&[6; 32]);
        let phone = card("alice", &id1, 1, 11, None);
        let laptop = card("alice", &id1, 2, 12, None);
        let entries: Vec<Vec<u8>> = vec![
            LogEntry::Card(phone.clone()).to_bytes(),
            // A card for alice cross-signed by someone else's identity.
            LogEntry::Card(card("alice", &mallory, 3, 13, None)).to_bytes(),
            // A successor naming a card that never existed.
            LogEntry::Card(card("alice", &id1, 1, 14, Some(CardId([9; 32])))).to_bytes(),
            // The same card again.
            LogEntry::Card(phone.clone()).to_bytes(),
            LogEntry::Card(laptop.clone()).to_bytes(),
            LogEntry::Revocation(Revocation::revoke_device(&id1, &laptop, 5).unwrap()).to_bytes(),
            // The revoked device comes back.
            LogEntry::Card(card("alice", &id1, 2, 15, None)).to_bytes(),
            // Revoking a device of a user nobody knows.
            LogEntry::Revocation(
                Revocation::revoke_device(&mallory, &card("carol", &mallory, 1, 16, None), 5)
                    .unwrap(),
            )
            .to_bytes(),
            // A revocation naming an older card of the phone.
            LogEntry::Card(card("alice", &id1, 1, 17, Some(phone.id()))).to_bytes(),
            LogEntry::Revocation(Revocation::revoke_device(&id1, &phone, 6).unwrap()).to_bytes(),
            // Garbage.
            vec![1, 2, 3],
        ];
        let key = LogKey::from_secret_bytes(&[42; 32]);
        let mut log = MerkleLog::new();
        for b in &entries {
            log.append(b);
        }
        let sth = key.sign(TreeHead {
            log_id: "app".into(),
            size: log.size(),
            root: log.root(),
            timestamp: 1,
        });
        let report = audit("app", &key.public_key(), &sth, &entries).unwrap();
        assert_eq!(
            report.violations,
            vec![
                (1, Violation::WrongIdentity),
                (2, Violation::BrokenChain),
                (3, Violation::Duplicate),
                (6, Violation::RevokedDevice),
                (7, Violation::UnknownUser),
                (9, Violation::StaleRevocation),
                (10, Violation::InvalidEntry),
            ]
        );
    }

    #[test]
    fn a_refused_entry_changes_nothing() {
        let id1 = IdentityKey::from_secret_bytes(&[1; 32]);
        let mallory = IdentityKey::from_secret_bytes(&[6; 32]);
        let alice = UserId::parse("alice").unwrap();
        let mut state = DirectoryState::new();
        // A first card with a dangling previous link must not claim the user.
        let dangling = card("alice", &mallory, 1, 11, Some(CardId([9; 32])));
        assert_eq!(
            state.apply(&LogEntry::Card(dangling)),
            Err(Violation::BrokenChain)
        );
        assert_eq!(state.identity(&alice), None);
        state
            .apply(&LogEntry::Card(card("alice", &id1, 1, 12, None)))
            .unwrap();
        assert_eq!(state.identity(&alice), Some(&id1.public_key()));
    }
}
