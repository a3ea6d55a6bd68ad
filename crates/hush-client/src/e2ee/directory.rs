//! The directory client: `hush:request`s to the key directory, the
//! directory monitor (pinned head-signing and VRF keys, trusted epoch head),
//! verified lookups and the card cache they fill, and verified writes.
//!
//! Every answer is checked as an auditor would not need to: the head is
//! signed by the pinned key, fresh, not older than the trusted one and not
//! another root for an epoch this device saw; every user's entry comes with
//! an akd lookup proof showing it is the user's latest at that head
//! ([`verify_lookup`]), so a directory cannot leave out a revocation or serve
//! a stale identity (docs/KEY-TRANSPARENCY.md).
//!
//! Round trips are ordered by the directory lock ([`Shared::directory`]);
//! the device state is only locked between awaits.

use std::collections::{BTreeSet, VecDeque};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hush_crypto::identity::{DeviceCard, DeviceId, Revocation};
use hush_crypto::transparency::proofs::{
    UserEntry, VerifiedEntry, VrfPublicKey, verify_history, verify_lookup,
};
use hush_crypto::transparency::{LogError, LogMonitor, LogPublicKey, SignedTreeHead, TreeHead};
use hush_protocol::UserId;
use hush_protocol::msgs::hush::{LogHead, Published};
use hush_protocol::msgs::{HushRequest, HushResponse};

use super::state::{DirectoryGuard, Parsed, Shared, State};
use super::store::LogPin;
use super::{E2eeError, KeyChanged, UserKeys, b64, now_ms, now_secs};

/// Signed heads this device keeps for comparing gossiped ones.
pub(super) const KEPT_HEADS: usize = 256;

/// Accepts a head the directory just served into `m`: signed, fresh (see
/// [`Freshness`](hush_crypto::transparency::Freshness); a stale or future
/// head is [`E2eeError::StaleHead`]), not older than the trusted head and
/// not another root for an epoch this device saw.
fn accept(sh: &Shared, m: &mut LogMonitor, head: &SignedTreeHead) -> Result<(), E2eeError> {
    let fresh = sh.with(|st| st.freshness);
    sh.with(|st| fork_against_kept(st, head))?;
    m.update_fresh(head, now_ms(), fresh).map_err(|e| match e {
        LogError::Stale { signed, now } | LogError::FromTheFuture { signed, now } => {
            E2eeError::StaleHead {
                signed_ms: signed,
                now_ms: now,
            }
        }
        e => E2eeError::Log(e),
    })
}

/// The signed head this device holds for `epoch`: its trusted head (kept in
/// the key store) or one of the heads it accepted lately.
pub(super) fn kept_head(st: &State, epoch: u64) -> Option<SignedTreeHead> {
    st.data
        .trusted_signed_head()
        .filter(|h| h.head.epoch == epoch)
        .or_else(|| st.heads.iter().find(|h| h.head.epoch == epoch).cloned())
}

/// [`LogError::Fork`] when `head` has another root than a head this
/// device kept for its epoch.
fn fork_against_kept(st: &State, head: &SignedTreeHead) -> Result<(), E2eeError> {
    match kept_head(st, head.head.epoch) {
        Some(kept) if kept.head.root != head.head.root => Err(E2eeError::Log(LogError::Fork)),
        _ => Ok(()),
    }
}

fn unb64(s: &str, what: &str) -> Result<Vec<u8>, E2eeError> {
    STANDARD
        .decode(s)
        .map_err(|_| E2eeError::InvalidRecord(format!("{what} is not base64")))
}

fn key32(s: &str, what: &str) -> Result<[u8; 32], E2eeError> {
    unb64(s, what)?
        .try_into()
        .map_err(|_| E2eeError::InvalidRecord(format!("{what}: not 32 bytes")))
}

fn sth(s: &str) -> Result<SignedTreeHead, E2eeError> {
    Ok(SignedTreeHead::from_bytes(&unb64(s, "head")?)?)
}

/// A typed answer of another method than the one asked (impossible with
/// [`crate::Client::call`], which reads the answer as the asked method's).
fn mismatched(method: &str) -> E2eeError {
    E2eeError::InvalidRecord(format!("answer to {method} has another shape"))
}

/// The directory this device trusts: its monitor and VRF key.
pub(super) struct Trusted {
    pub(super) monitor: LogMonitor,
    pub(super) vrf: VrfPublicKey,
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

    async fn log_head(&self, epoch: Option<u64>) -> Result<LogHead, E2eeError> {
        match self.call(HushRequest::LogHead { epoch }).await? {
            HushResponse::LogHead(h) => Ok(h),
            _ => Err(mismatched("log.head")),
        }
    }

    /// The trusted directory: pinned keys and trusted head; on first use,
    /// takes the keys from `log.head`, refusing keys other than the ones the
    /// app pinned (trust on first use only for what was not pinned).
    pub(super) async fn trusted(&self, _g: &DirectoryGuard<'_>) -> Result<Trusted, E2eeError> {
        let pinned = self
            .sh
            .with(|st| (st.data.log_key(), st.data.vrf_key(), st.data.trusted_head()));
        if let (Some(key), Some(vrf), Some(head)) = pinned {
            return Ok(Trusted {
                monitor: LogMonitor::resume(
                    head.log_id.clone(),
                    LogPublicKey::from_bytes(&key)?,
                    head,
                ),
                vrf: VrfPublicKey::from_bytes(&vrf)?,
            });
        }
        let (pinned_key, pinned_vrf, tofu) = self.sh.with(|st| {
            (
                st.data.pinned_log_key,
                st.data.pinned_vrf_key,
                st.trust_on_first_use,
            )
        });
        if (pinned_key.is_none() || pinned_vrf.is_none()) && !tofu {
            return Err(E2eeError::DirectoryNotPinned);
        }
        let r = self.log_head(None).await?;
        let key = key32(&r.key, "log key")?;
        let vrf = key32(&r.vrf, "VRF key")?;
        if let Some(pinned) = pinned_key {
            check_pinned(&pinned, &key)?;
        }
        if let Some(pinned) = pinned_vrf {
            check_pinned(&pinned, &vrf)?;
        }
        let head = sth(&r.head)?;
        let mut monitor =
            LogMonitor::new(head.head.log_id.clone(), LogPublicKey::from_bytes(&key)?);
        accept(self.sh, &mut monitor, &head)?;
        self.sh.update(|st| {
            pin(st, &head, &key, &vrf);
            Ok(())
        })?;
        Ok(Trusted {
            monitor,
            vrf: VrfPublicKey::from_bytes(&vrf)?,
        })
    }

    /// Accepts `head` into `t` and records it as the trusted head.
    fn accept_and_pin(&self, t: &mut Trusted, head: &SignedTreeHead) -> Result<(), E2eeError> {
        accept(self.sh, &mut t.monitor, head)?;
        let vrf = t.vrf.to_bytes();
        self.sh.with(|st| {
            let key = st.data.log_key().unwrap_or([0; 32]);
            pin(st, head, &key, &vrf);
        });
        Ok(())
    }

    /// Checks a write's answer: the head is accepted and the proof shows
    /// this user's latest entry holding `wrote`.
    async fn verify_write(
        &self,
        g: &DirectoryGuard<'_>,
        result: &Published,
        wrote: impl Fn(&UserEntry) -> bool,
    ) -> Result<(), E2eeError> {
        let mut t = self.trusted(g).await?;
        let head = sth(&result.head)?;
        self.accept_and_pin(&mut t, &head)?;
        let me = self.sh.with(|st| st.data.user.clone());
        let v = verify_lookup(&t.vrf, &head.head, &me, &unb64(&result.proof, "proof")?)?;
        if !wrote(&v.entry) {
            return Err(E2eeError::InvalidRecord(
                "the directory's entry for this user does not hold the write".into(),
            ));
        }
        Ok(())
    }

    /// Publishes `rev` and checks that the directory's entry holds it.
    pub(super) async fn publish_revocation(
        &self,
        g: &DirectoryGuard<'_>,
        rev: Revocation,
    ) -> Result<(), E2eeError> {
        let request = HushRequest::DirectoryRevoke {
            revocation: b64(&rev.to_bytes()),
        };
        let HushResponse::DirectoryRevoke(r) = self.call(request).await? else {
            return Err(mismatched("directory.revoke"));
        };
        self.verify_write(g, &r, |e| e.revocations.contains(&rev))
            .await
    }

    /// Publishes this device's `card`, checks that the directory's entry
    /// holds it, and keeps the card as this device's own.
    pub(super) async fn publish_card(
        &self,
        g: &DirectoryGuard<'_>,
        card: DeviceCard,
    ) -> Result<DeviceCard, E2eeError> {
        let request = HushRequest::DirectoryPublish {
            card: b64(&card.to_bytes()),
        };
        let HushResponse::DirectoryPublish(r) = self.call(request).await? else {
            return Err(mismatched("directory.publish"));
        };
        self.verify_write(g, &r, |e| e.cards.contains(&card))
            .await?;
        self.sh.update(|st| {
            st.data.card = Some(card.clone());
            Ok(())
        })?;
        Ok(card)
    }

    /// See [`E2ee::cross_check`](super::E2ee::cross_check): `other` must be
    /// signed by the trusted directory and, for an epoch this device saw,
    /// carry the same root; for another epoch, the directory's own signed
    /// head of that epoch must carry the same root (two signed heads with
    /// different roots for one epoch are the fork's evidence).
    pub(super) async fn cross_check(&self, other: &SignedTreeHead) -> Result<(), E2eeError> {
        let g = self.lock().await;
        let t = self.trusted(&g).await?;
        t.monitor.cross_check(other)?;
        self.sh.with(|st| fork_against_kept(st, other))?;
        let known = self.sh.with(|st| kept_head(st, other.head.epoch).is_some());
        if known {
            return Ok(());
        }
        let theirs = sth(&self.log_head(Some(other.head.epoch)).await?.head)?;
        t.monitor.cross_check(&theirs)?;
        if theirs.head.epoch != other.head.epoch {
            return Err(E2eeError::InvalidRecord(
                "log.head answered another epoch than asked".into(),
            ));
        }
        // Kept either way: on a fork it is the directory's half of the
        // evidence.
        self.sh.with(|st| keep(st, &theirs));
        if theirs.head.root != other.head.root {
            return Err(E2eeError::Log(LogError::Fork));
        }
        Ok(())
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

    /// Looks `users` up with the directory lock held (asking again for the
    /// users an answer names in `more`).
    pub(super) async fn lookup_locked(
        &self,
        g: &DirectoryGuard<'_>,
        users: &[UserId],
    ) -> Result<Vec<UserKeys>, E2eeError> {
        Ok(self
            .lookup_versions(g, users)
            .await?
            .into_iter()
            .map(|(keys, _)| keys)
            .collect())
    }

    /// [`lookup_locked`](Self::lookup_locked), with each user's verified
    /// entry version (`None`: no entry).
    pub(super) async fn lookup_versions(
        &self,
        g: &DirectoryGuard<'_>,
        users: &[UserId],
    ) -> Result<Vec<(UserKeys, Option<u64>)>, E2eeError> {
        let verified = self.verified_entries(g, users).await?;
        let now = now_secs();
        let out: Vec<(UserKeys, Option<u64>)> = users
            .iter()
            .zip(verified)
            .map(|(u, v)| {
                let version = v.as_ref().map(|v| v.version);
                (user_keys(u, v.map(|v| v.entry), now), version)
            })
            .collect();
        self.sh.update(|st| {
            for (keys, _) in &out {
                self.remember(st, keys);
            }
            Ok(())
        })?;
        Ok(out)
    }

    /// The verified latest entries of `users` (in order; `None`: no entry).
    pub(super) async fn verified_entries(
        &self,
        g: &DirectoryGuard<'_>,
        users: &[UserId],
    ) -> Result<Vec<Option<VerifiedEntry>>, E2eeError> {
        let mut t = self.trusted(g).await?;
        let mut out: Vec<Option<VerifiedEntry>> = vec![None; users.len()];
        let mut ask: Vec<usize> = (0..users.len()).collect();
        while !ask.is_empty() {
            let request = HushRequest::DirectoryLookup {
                users: ask.iter().map(|&i| users[i].as_str().to_owned()).collect(),
            };
            let HushResponse::DirectoryLookup(r) = self.call(request).await? else {
                return Err(mismatched("directory.lookup"));
            };
            let head = sth(&r.head)?;
            self.accept_and_pin(&mut t, &head)?;
            let more: BTreeSet<&str> = r.more.iter().map(String::as_str).collect();
            let mut again = Vec::new();
            for &i in &ask {
                let user = &users[i];
                if more.contains(user.as_str()) {
                    again.push(i);
                    continue;
                }
                if let Some(proof) = r.users.get(user.as_str()) {
                    out[i] = Some(verify_lookup(
                        &t.vrf,
                        &head.head,
                        user,
                        &unb64(proof, "lookup proof")?,
                    )?);
                }
            }
            // A server that names every user in `more` makes no progress.
            if again.len() == ask.len() {
                return Err(E2eeError::InvalidRecord(
                    "the directory answered none of the users asked".into(),
                ));
            }
            ask = again;
        }
        Ok(out)
    }

    /// This user's `versions` most recent entries, verified (newest first).
    pub(super) async fn own_history(
        &self,
        g: &DirectoryGuard<'_>,
        versions: u64,
    ) -> Result<Vec<VerifiedEntry>, E2eeError> {
        let mut t = self.trusted(g).await?;
        let request = HushRequest::DirectoryHistory {
            versions: Some(versions),
        };
        let HushResponse::DirectoryHistory(r) = self.call(request).await? else {
            return Err(mismatched("directory.history"));
        };
        let head = sth(&r.head)?;
        self.accept_and_pin(&mut t, &head)?;
        let me = self.sh.with(|st| st.data.user.clone());
        let n = usize::try_from(versions).unwrap_or(usize::MAX);
        Ok(verify_history(
            &t.vrf,
            &head.head,
            &me,
            &unb64(&r.proof, "history proof")?,
            n,
        )?)
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

/// Keeps `sth` among the heads gossip is compared with.
fn keep(st: &mut State, sth: &SignedTreeHead) {
    if st.heads.iter().any(|h| h.head.epoch == sth.head.epoch) {
        return;
    }
    if st.heads.len() >= KEPT_HEADS {
        st.heads.pop_front();
    }
    st.heads.push_back(sth.clone());
}

/// Records `sth` (just accepted by the monitor) as the trusted head of the
/// directory with these keys.
fn pin(st: &mut State, sth: &SignedTreeHead, key: &[u8; 32], vrf: &[u8; 32]) {
    keep(st, sth);
    let t: &TreeHead = &sth.head;
    st.data.log = Some(LogPin {
        log_id: t.log_id.clone(),
        key: b64(key),
        vrf: b64(vrf),
        epoch: t.epoch,
        root: b64(&t.root),
        timestamp: t.timestamp,
        signed: b64(&sth.to_bytes()),
    });
}

/// A user's keys from its verified entry (`None`: no entry): the identity
/// key, the cards that are unexpired and not retired by a revocation in the
/// entry, and the revocations.
fn user_keys(user: &UserId, entry: Option<UserEntry>, now: u64) -> UserKeys {
    let Some(entry) = entry else {
        return UserKeys {
            user: user.clone(),
            identity: None,
            devices: Vec::new(),
            revocations: Vec::new(),
        };
    };
    let id = entry.identity;
    let devices = entry
        .cards
        .into_iter()
        .filter(|c| {
            !entry
                .revocations
                .iter()
                .any(|r| r.verify(user, &id).is_ok() && r.revokes(c))
                && c.verify(user, &id, now).is_ok()
        })
        .collect();
    UserKeys {
        user: user.clone(),
        identity: Some(id),
        devices,
        revocations: entry.revocations,
    }
}

/// The signed heads this device keeps (newest last).
pub(super) type KeptHeads = VecDeque<SignedTreeHead>;

#[cfg(test)]
mod tests {
    use super::*;
    use hush_crypto::identity::{DeviceKeys, IdentityKey, UnsignedCard};

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

    #[test]
    fn entries_give_unexpired_unrevoked_cards() {
        let now = now_secs();
        let id = IdentityKey::generate();
        let good = card(&id, now - 10, now + 100);
        let expired = card(&id, now - 100, now - 1);
        let revoked = card(&id, now - 10, now + 100);
        let rev = Revocation::revoke_device(&id, &revoked, now).unwrap();
        let mut cards = vec![good.clone(), expired, revoked];
        cards.sort_by_key(DeviceCard::device_id);
        let entry = UserEntry {
            identity: id.public_key(),
            cards,
            revocations: vec![rev],
        };
        let keys = user_keys(&alice(), Some(entry), now);
        assert_eq!(keys.identity, Some(id.public_key()));
        assert_eq!(
            keys.devices.iter().map(DeviceCard::id).collect::<Vec<_>>(),
            vec![good.id()]
        );
        assert_eq!(keys.revocations.len(), 1);
        let none = user_keys(&alice(), None, now);
        assert_eq!(none.identity, None);
        assert!(none.devices.is_empty());
    }
}
