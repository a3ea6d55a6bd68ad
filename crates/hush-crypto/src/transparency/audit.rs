//! An end-to-end audit of a key-directory log (the pure core of
//! `hush audit`): the signed tree head covers exactly the entries, every entry
//! parses with valid signatures, and every entry follows the directory rules
//! of [`crate::directory::DirectoryState`] (the same rules the server applies
//! before appending).

use super::{Hash, LogEntry, LogError, LogPublicKey, SignedTreeHead, leaf_hash, root};
use crate::directory::{DirectoryState, RuleError};
use crate::identity::RevocationKind;

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
    pub violations: Vec<(u64, RuleError)>,
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
    let (mut cards, mut revocations, mut rotations) = (0, 0, 0);
    for (i, bytes) in (0u64..).zip(entries) {
        let result = LogEntry::from_bytes(bytes)
            .map_err(|_| RuleError::InvalidEntry)
            .and_then(|e| state.apply(&e, i).map(|()| e));
        match result {
            Ok(LogEntry::Card(_)) => cards += 1,
            Ok(LogEntry::Revocation(r)) => match r.kind() {
                RevocationKind::Device { .. } => revocations += 1,
                RevocationKind::IdentityRotation { .. } => rotations += 1,
            },
            Err(v) => violations.push((i, v)),
        }
    }
    Ok(AuditReport {
        entries: entries.len() as u64,
        users: state.user_count(),
        cards,
        revocations,
        rotations,
        violations,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::{CardId, DeviceCard, DeviceKeys, IdentityKey, Revocation, UnsignedCard};
    use crate::transparency::{LogKey, MerkleLog, TreeHead};
    use hush_protocol::UserId;

    fn card(
        user: &str,
        identity: &IdentityKey,
        device: u8,
        keys_seed: u8,
        previous: Option<CardId>,
    ) -> DeviceCard {
        // The signing key (so the device id) from `device`; a new X25519
        // key per `keys_seed`.
        let keys = DeviceKeys::from_secret_bytes(&[device; 32], &[keys_seed ^ 0xff; 32]);
        let body = UnsignedCard::new(
            UserId::parse(user).unwrap(),
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
        for (i, e) in (0u64..).zip(&entries) {
            state.apply(e, i).unwrap();
        }
        let user = state.user(&alice).unwrap();
        assert_eq!(user.identity, id2.public_key());
        let active: Vec<_> = user
            .active_cards()
            .iter()
            .map(|d| (d.card.device_id(), d.card.id()))
            .collect();
        assert_eq!(active, vec![(phone3.device_id(), phone3.id())]);

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
                (1, RuleError::WrongIdentity),
                (2, RuleError::BrokenChain),
                (3, RuleError::Duplicate),
                (6, RuleError::DeviceRevoked),
                (7, RuleError::UnknownUser),
                (9, RuleError::UnknownCard),
                (10, RuleError::InvalidEntry),
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
            state.apply(&LogEntry::Card(dangling), 0),
            Err(RuleError::BrokenChain)
        );
        assert!(state.user(&alice).is_none());
        state
            .apply(&LogEntry::Card(card("alice", &id1, 1, 12, None)), 0)
            .unwrap();
        assert_eq!(state.user(&alice).unwrap().identity, id1.public_key());
    }
}
