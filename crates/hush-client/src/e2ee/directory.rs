//! The directory client: `hush:request`s to the key directory, the log
//! monitor (pinned key, trusted tree head), verified lookups and the card
//! cache they fill, and verified writes.
//!
//! Round trips are ordered by the directory lock ([`Shared::directory`]);
//! the device state is only locked between awaits.

use std::collections::{BTreeMap, BTreeSet};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hush_crypto::identity::{DeviceCard, DeviceId, Revocation};
use hush_crypto::transparency::{
    Hash, LogEntry, LogError, LogMonitor, LogPublicKey, SignedTreeHead,
};
use hush_protocol::UserId;
use hush_protocol::msgs::hush::{Appended, Base64, LogHead, UserRecords};
use hush_protocol::msgs::{HushRequest, HushResponse};

use super::state::{DirectoryGuard, Parsed, Shared, State};
use super::store::LogPin;
use super::{E2eeError, KeyChanged, UserKeys, b64, now_ms, now_secs};

/// Accepts a head the directory just served into `m`: signed, fresh (see
/// [`Freshness`](hush_crypto::transparency::Freshness); a stale or future
/// head is [`E2eeError::StaleHead`]) and consistent with the trusted head.
fn accept(
    sh: &Shared,
    m: &mut LogMonitor,
    head: &SignedTreeHead,
    proof: &[Hash],
) -> Result<(), E2eeError> {
    let fresh = sh.with(|st| st.freshness);
    m.update_fresh(head, proof, now_ms(), fresh)
        .map_err(|e| match e {
            LogError::Stale { signed, now } | LogError::FromTheFuture { signed, now } => {
                E2eeError::StaleHead {
                    signed_ms: signed,
                    now_ms: now,
                }
            }
            e => E2eeError::Log(e),
        })
}

fn unb64(s: &str, what: &str) -> Result<Vec<u8>, E2eeError> {
    STANDARD
        .decode(s)
        .map_err(|_| E2eeError::InvalidRecord(format!("{what} is not base64")))
}

fn hashes(list: &[Base64], what: &str) -> Result<Vec<Hash>, E2eeError> {
    list.iter()
        .map(|h| {
            unb64(h, what)?
                .try_into()
                .map_err(|_| E2eeError::InvalidRecord(format!("{what}: not a 32-byte hash")))
        })
        .collect()
}

fn sth(s: &str) -> Result<SignedTreeHead, E2eeError> {
    Ok(SignedTreeHead::from_bytes(&unb64(s, "head")?)?)
}

/// A typed answer of another method than the one asked (impossible with
/// [`crate::Client::call`], which reads the answer as the asked method's).
fn mismatched(method: &str) -> E2eeError {
    E2eeError::InvalidRecord(format!("answer to {method} has another shape"))
}

/// The directory client of one [`E2ee`](super::E2ee).
pub(super) struct Directory<'a> {
    sh: &'a Shared,
}

impl<'a> Directory<'a> {
    pub(super) fn new(sh: &'a Shared) -> Self {
        Self { sh }
    }

    /// Takes the directory lock (see the module docs).
    pub(super) async fn lock(&self) -> DirectoryGuard<'a> {
        self.sh.directory.lock().await
    }

    async fn call(&self, request: HushRequest) -> Result<HushResponse, E2eeError> {
        let c = &self.sh.client;
        // Bounded: while offline, a sign-in waits for the next connection.
        tokio::time::timeout(c.request_timeout(), c.signin())
            .await
            .map_err(|_| E2eeError::Directory(crate::DirectoryError::Timeout))??;
        Ok(c.call(&request).await?)
    }

    async fn log_head(&self) -> Result<LogHead, E2eeError> {
        match self.call(HushRequest::LogHead).await? {
            HushResponse::LogHead(h) => Ok(h),
            _ => Err(mismatched("log.head")),
        }
    }

    async fn consistency(&self, from: u64, to: u64) -> Result<Vec<Hash>, E2eeError> {
        let request = HushRequest::LogConsistency {
            from: Some(from),
            to,
        };
        match self.call(request).await? {
            HushResponse::LogConsistency(c) => hashes(&c.proof, "consistency proof"),
            _ => Err(mismatched("log.consistency")),
        }
    }

    /// The log monitor: pinned key and trusted head; on first use, pins the
    /// key from `log.head` (trust on first use of the log).
    async fn monitor(&self, _g: &DirectoryGuard<'_>) -> Result<LogMonitor, E2eeError> {
        let pinned = self
            .sh
            .with(|st| (st.data.log_key(), st.data.trusted_head()));
        if let (Some(key), Some(head)) = pinned {
            let key = LogPublicKey::from_bytes(&key)?;
            return Ok(LogMonitor::resume(head.log_id.clone(), key, head));
        }
        let r = self.log_head().await?;
        let key: [u8; 32] = unb64(&r.key, "log key")?
            .try_into()
            .map_err(|_| E2eeError::InvalidRecord("log key length".into()))?;
        // Pinned trust: the app configured the key; anything else is refused
        // (trust on first use only when no key was pinned).
        if let Some(pinned) = self.sh.with(|st| st.data.pinned_log_key) {
            check_pinned(&pinned, &key)?;
        }
        let head = sth(&r.head)?;
        let mut m = LogMonitor::new(head.head.log_id.clone(), LogPublicKey::from_bytes(&key)?);
        accept(self.sh, &mut m, &head, &[])?;
        self.sh.update(|st| {
            pin(st, &head, &key);
            Ok(())
        })?;
        Ok(m)
    }

    /// Accepts the head a write returned (fetching the consistency proof
    /// from the trusted size) and checks that `leaf` is in it at `index`.
    async fn verify_write(
        &self,
        g: &DirectoryGuard<'_>,
        leaf: &[u8],
        result: &Appended,
    ) -> Result<u64, E2eeError> {
        let mut m = self.monitor(g).await?;
        let head = sth(&result.head)?;
        let from = m.trusted().map_or(0, |t| t.size);
        let proof = if head.head.size > from && from > 0 {
            self.consistency(from, head.head.size).await?
        } else {
            Vec::new()
        };
        accept(self.sh, &mut m, &head, &proof)?;
        let index = result.index;
        m.verify_entry(leaf, index, &hashes(&result.proof, "inclusion proof")?)?;
        self.sh.with(|st| {
            let key = m_key(st);
            pin(st, &head, &key);
        });
        Ok(index)
    }

    /// Appends `rev` to the directory and checks the write against the log.
    pub(super) async fn publish_revocation(
        &self,
        g: &DirectoryGuard<'_>,
        rev: Revocation,
    ) -> Result<(), E2eeError> {
        let leaf = LogEntry::Revocation(rev.clone()).to_bytes();
        let request = HushRequest::DirectoryRevoke {
            revocation: b64(&rev.to_bytes()),
        };
        let HushResponse::DirectoryRevoke(r) = self.call(request).await? else {
            return Err(mismatched("directory.revoke"));
        };
        self.verify_write(g, &leaf, &r).await?;
        Ok(())
    }

    /// Appends this device's `card` to the directory, checks the write
    /// against the log, and keeps the card as this device's own.
    pub(super) async fn publish_card(
        &self,
        g: &DirectoryGuard<'_>,
        card: DeviceCard,
    ) -> Result<DeviceCard, E2eeError> {
        let leaf = LogEntry::Card(card.clone()).to_bytes();
        let request = HushRequest::DirectoryPublish {
            card: b64(&card.to_bytes()),
        };
        let HushResponse::DirectoryPublish(r) = self.call(request).await? else {
            return Err(mismatched("directory.publish"));
        };
        self.verify_write(g, &leaf, &r).await?;
        self.sh.update(|st| {
            st.data.card = Some(card.clone());
            Ok(())
        })?;
        Ok(card)
    }

    /// See [`E2ee::cross_check`](super::E2ee::cross_check).
    pub(super) async fn cross_check(&self, other: &SignedTreeHead) -> Result<(), E2eeError> {
        let g = self.lock().await;
        let m = self.monitor(&g).await?;
        let mine = m.trusted().map_or(0, |t| t.size);
        let theirs = other.head.size;
        let proof = if mine == theirs {
            Vec::new()
        } else {
            self.consistency(mine.min(theirs), mine.max(theirs)).await?
        };
        Ok(m.cross_check(other, &proof)?)
    }

    /// See [`E2ee::lookup`](super::E2ee::lookup).
    pub(super) async fn lookup(&self, users: &[&str]) -> Result<Vec<UserKeys>, E2eeError> {
        let ids = users
            .iter()
            .map(|u| UserId::parse(u).map_err(|e| E2eeError::Invalid(format!("user {u:?}: {e}"))))
            .collect::<Result<Vec<_>, _>>()?;
        let g = self.lock().await;
        self.lookup_locked(&g, &ids).await
    }

    /// Looks `users` up with the directory lock held.
    pub(super) async fn lookup_locked(
        &self,
        g: &DirectoryGuard<'_>,
        users: &[UserId],
    ) -> Result<Vec<UserKeys>, E2eeError> {
        let mut m = self.monitor(g).await?;
        let since = m.trusted().map_or(0, |t| t.size);
        let request = HushRequest::DirectoryLookup {
            users: users.iter().map(|u| u.as_str().to_owned()).collect(),
            since: Some(since),
        };
        let r = match self.call(request).await {
            Ok(HushResponse::DirectoryLookup(r)) => r,
            Ok(_) => return Err(mismatched("directory.lookup")),
            Err(E2eeError::Directory(e))
                if e.code() == Some(&crate::request::ErrorCode::NotFound) =>
            {
                // The log is smaller than the size we trust: a rollback.
                let h = self.log_head().await?;
                m.update(&sth(&h.head)?, &[])?;
                return Err(E2eeError::Directory(e));
            }
            Err(e) => return Err(e),
        };
        let head = sth(&r.head)?;
        let consistency = r.consistency.as_deref().unwrap_or_default();
        accept(
            self.sh,
            &mut m,
            &head,
            &hashes(consistency, "consistency proof")?,
        )?;
        self.sh.with(|st| {
            let key = m_key(st);
            pin(st, &head, &key);
        });
        let now = now_secs();
        let mut out = Vec::with_capacity(users.len());
        for user in users {
            let none = UserRecords::default();
            let entry = r.users.get(user.as_str()).unwrap_or(&none);
            out.push(verify_user(&m, user, entry, now)?);
        }
        self.sh.update(|st| {
            for keys in &out {
                self.remember(st, keys);
            }
            Ok(())
        })?;
        Ok(out)
    }

    /// Updates the cache with verified keys; raises [`KeyChanged`].
    fn remember(&self, st: &mut State, keys: &UserKeys) {
        let identity = keys
            .identity
            .map(|k| b64(&k.to_bytes()))
            .unwrap_or_default();
        let cards: Vec<String> = keys.devices.iter().map(|c| b64(&c.to_bytes())).collect();
        let new_ids: BTreeSet<DeviceId> = keys.devices.iter().map(DeviceCard::device_id).collect();
        // Users without keys are not cached (envelopes name arbitrary
        // senders: they must not grow the store).
        if keys.identity.is_none() && !st.data.contacts.contains_key(keys.user.as_str()) {
            return;
        }
        let entry = st
            .data
            .contacts
            .entry(keys.user.as_str().to_owned())
            .or_default();
        let first = entry.fetched_ms == 0;
        if !first {
            let old_ids: BTreeSet<DeviceId> = entry
                .cards
                .iter()
                .filter_map(|c| STANDARD.decode(c).ok())
                .filter_map(|b| DeviceCard::from_bytes(&b).ok())
                .map(|c| c.device_id())
                .collect();
            let identity_changed = entry.identity != identity;
            if identity_changed || old_ids != new_ids {
                let ev = KeyChanged {
                    user: keys.user.as_str().to_owned(),
                    identity_changed,
                    added: new_ids.difference(&old_ids).copied().collect(),
                    removed: old_ids.difference(&new_ids).copied().collect(),
                    was_verified: entry.verified.is_some(),
                };
                tracing::info!(user = %ev.user, identity_changed, "hush-client: key change");
                let _ = self.sh.changes.send(ev);
            }
        }
        entry.identity = identity;
        entry.cards = cards;
        st.parsed.insert(
            keys.user.as_str().to_owned(),
            Parsed {
                identity: keys.identity,
                cards: keys.devices.clone(),
                revocations: keys.revocations.clone(),
            },
        );
        let Some(entry) = st.data.contacts.get_mut(keys.user.as_str()) else {
            return;
        };
        entry.revocations = keys
            .revocations
            .iter()
            .map(|r| b64(&r.to_bytes()))
            .collect();
        entry.fetched_ms = now_ms();
    }
}

fn m_key(st: &State) -> [u8; 32] {
    st.data.log_key().unwrap_or([0; 32])
}

/// Refuses a directory log key other than the pinned one (public keys: a
/// plain comparison).
pub(super) fn check_pinned(pinned: &[u8; 32], served: &[u8; 32]) -> Result<(), E2eeError> {
    if pinned == served {
        return Ok(());
    }
    Err(E2eeError::UntrustedDirectory {
        pinned: b64(pinned),
        served: b64(served),
    })
}

/// Records `sth` (just accepted by the monitor) as the trusted head.
fn pin(st: &mut State, sth: &SignedTreeHead, key: &[u8; 32]) {
    let t = &sth.head;
    st.data.log = Some(LogPin {
        log_id: t.log_id.clone(),
        key: b64(key),
        size: t.size,
        root: b64(&t.root),
        timestamp: t.timestamp,
        signed: b64(&sth.to_bytes()),
    });
}

/// Verifies one user's lookup entry against the (updated) monitor.
fn verify_user(
    m: &LogMonitor,
    user: &UserId,
    entry: &UserRecords,
    now: u64,
) -> Result<UserKeys, E2eeError> {
    let bad = |w: String| E2eeError::InvalidRecord(format!("{user}: {w}"));
    let mut cards = Vec::new();
    let mut revocations = Vec::new();
    for (kind, list) in [("cards", &entry.cards), ("revocations", &entry.revocations)] {
        for e in list {
            let leaf = unb64(&e.record, "record")?;
            m.verify_entry(&leaf, e.index, &hashes(&e.proof, "inclusion proof")?)?;
            match (kind, LogEntry::from_bytes(&leaf)) {
                ("cards", Ok(LogEntry::Card(c))) if c.user_id() == user => cards.push(c),
                ("revocations", Ok(LogEntry::Revocation(r))) if r.user_id() == user => {
                    revocations.push(r);
                }
                _ => return Err(bad(format!("unexpected record in {kind}"))),
            }
        }
    }
    let identity = match cards.first() {
        None => None,
        Some(first) => {
            let id = *first.identity_key();
            if cards.iter().any(|c| *c.identity_key() != id) {
                return Err(bad("cards under different identity keys".into()));
            }
            Some(id)
        }
    };
    let mut devices = Vec::with_capacity(cards.len());
    let mut seen = BTreeMap::new();
    for c in cards {
        let Some(id) = identity.as_ref() else { break };
        if seen.insert(c.device_id(), ()).is_some() {
            return Err(bad("two cards for one device".into()));
        }
        let revoked = revocations
            .iter()
            .any(|r| r.verify(user, id).is_ok() && r.revokes(&c));
        if !revoked && c.verify(user, id, now).is_ok() {
            devices.push(c);
        }
    }
    Ok(UserKeys {
        user: user.clone(),
        identity,
        devices,
        revocations,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use hush_crypto::identity::{DeviceKeys, IdentityKey, UnsignedCard};
    use hush_crypto::transparency::{LogKey, MerkleLog, TreeHead};
    use hush_protocol::msgs::hush::LogRecord;

    fn alice() -> UserId {
        UserId::parse("alice").unwrap()
    }

    fn card(identity: &IdentityKey, created: u64, expires: u64) -> DeviceCard {
        let keys = DeviceKeys::generate();
        let body = UnsignedCard::new(
            alice(),
            &identity.public_key(),
            &keys,
            created,
            expires,
            None,
        );
        DeviceCard::issue(body, &keys, identity).unwrap()
    }

    /// A log holding `entries`, a monitor trusting its head, and the lookup
    /// entry JSON the server would send for them.
    fn served(entries: &[LogEntry]) -> (LogMonitor, UserRecords) {
        let key = LogKey::generate();
        let mut log = MerkleLog::new();
        for e in entries {
            log.append(&e.to_bytes());
        }
        let head = key.sign(TreeHead {
            log_id: "3".into(),
            size: log.size(),
            root: log.root(),
            timestamp: 1,
        });
        let mut m = LogMonitor::new("3", key.public_key());
        m.update(&head, &[]).unwrap();
        let json_of = |e: &LogEntry, i: u64| {
            let proof = log.inclusion_proof(i, log.size()).unwrap();
            LogRecord {
                record: b64(&e.to_bytes()),
                index: i,
                proof: proof.iter().map(|h| b64(h)).collect(),
            }
        };
        let mut cards = Vec::new();
        let mut revs = Vec::new();
        for (i, e) in entries.iter().enumerate() {
            match e {
                LogEntry::Card(_) => cards.push(json_of(e, i as u64)),
                LogEntry::Revocation(_) => revs.push(json_of(e, i as u64)),
            }
        }
        (
            m,
            UserRecords {
                cards,
                revocations: revs,
            },
        )
    }

    #[test]
    fn lookups_are_checked_client_side() {
        let now = now_secs();
        let id = IdentityKey::generate();
        let good = card(&id, now - 10, now + 100);
        let expired = card(&id, now - 100, now - 1);
        let revoked = card(&id, now - 10, now + 100);
        let rev = Revocation::revoke_device(&id, &revoked, now).unwrap();
        let entries = [
            LogEntry::Card(good.clone()),
            LogEntry::Card(expired),
            LogEntry::Card(revoked),
            LogEntry::Revocation(rev),
        ];
        let (m, entry) = served(&entries);
        let keys = verify_user(&m, &alice(), &entry, now).unwrap();
        assert_eq!(keys.identity, Some(id.public_key()));
        assert_eq!(
            keys.devices.iter().map(DeviceCard::id).collect::<Vec<_>>(),
            vec![good.id()]
        );
        assert_eq!(keys.revocations.len(), 1);

        // A tampered proof, a record for another user, two identities.
        let mut bad = entry.clone();
        bad.cards[0].index = 1;
        assert!(matches!(
            verify_user(&m, &alice(), &bad, now),
            Err(E2eeError::Log(_))
        ));
        let bob = UserId::parse("bob").unwrap();
        assert!(matches!(
            verify_user(&m, &bob, &entry, now),
            Err(E2eeError::InvalidRecord(_))
        ));
        let other = IdentityKey::generate();
        let (m2, two) = served(&[
            LogEntry::Card(good),
            LogEntry::Card(card(&other, now - 10, now + 100)),
        ]);
        assert!(matches!(
            verify_user(&m2, &alice(), &two, now),
            Err(E2eeError::InvalidRecord(_))
        ));
        // A card presented as a revocation.
        let mut swapped = entry.clone();
        swapped.revocations = vec![entry.cards[0].clone()];
        assert!(matches!(
            verify_user(&m, &alice(), &swapped, now),
            Err(E2eeError::InvalidRecord(_))
        ));
    }
}
