//! The directory client's checks, without I/O (hush-client
//! `e2ee/directory.rs`): the trusted directory (pinned keys, trusted head),
//! accepting served heads (signed, fresh, not older than the trusted one,
//! not another root for a kept epoch), verified lookups and the card cache
//! they fill (raising key-change events).

use std::collections::{BTreeSet, VecDeque};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hush_crypto::identity::{DeviceCard, DeviceId, IdentityPublicKey, Revocation};
use hush_crypto::transparency::proofs::{UserEntry, VrfPublicKey};
use hush_crypto::transparency::{LogError, LogMonitor, LogPublicKey, SignedTreeHead, TreeHead};
use hush_protocol::UserId;
use hush_protocol::msgs::hush::LogHead;

use super::data::LogPin;
use super::device::{Device, Parsed};
use super::error::CoreError;
use super::events::Event;

/// Signed heads this device keeps for comparing gossiped ones.
pub(crate) const KEPT_HEADS: usize = 256;

/// The signed heads this device keeps (newest last).
pub(crate) type KeptHeads = VecDeque<SignedTreeHead>;

/// A user's keys as the directory proved them.
#[derive(Debug, Clone)]
pub(crate) struct UserKeys {
    pub user: UserId,
    pub identity: Option<IdentityPublicKey>,
    pub devices: Vec<DeviceCard>,
    pub revocations: Vec<Revocation>,
}

/// The directory this device trusts: its monitor and VRF key.
pub(crate) struct Trusted {
    pub monitor: LogMonitor,
    pub vrf: VrfPublicKey,
}

pub(crate) fn b64(b: &[u8]) -> String {
    STANDARD.encode(b)
}

pub(crate) fn unb64(s: &str, what: &str) -> Result<Vec<u8>, CoreError> {
    STANDARD
        .decode(s)
        .map_err(|_| CoreError::InvalidRecord(format!("{what} is not base64")))
}

pub(crate) fn key32(s: &str, what: &str) -> Result<[u8; 32], CoreError> {
    unb64(s, what)?
        .try_into()
        .map_err(|_| CoreError::InvalidRecord(format!("{what}: not 32 bytes")))
}

pub(crate) fn sth(s: &str) -> Result<SignedTreeHead, CoreError> {
    Ok(SignedTreeHead::from_bytes(&unb64(s, "head")?)?)
}

/// The signed head this device holds for `epoch`: its trusted head or one
/// of the heads it accepted lately.
pub(crate) fn kept_head(dev: &Device, epoch: u64) -> Option<SignedTreeHead> {
    dev.data
        .trusted_signed_head()
        .filter(|h| h.head.epoch == epoch)
        .or_else(|| dev.heads.iter().find(|h| h.head.epoch == epoch).cloned())
}

/// A fork when `head` has another root than a head kept for its epoch.
pub(crate) fn fork_against_kept(dev: &Device, head: &SignedTreeHead) -> Result<(), CoreError> {
    match kept_head(dev, head.head.epoch) {
        Some(kept) if kept.head.root != head.head.root => Err(CoreError::Log(LogError::Fork)),
        _ => Ok(()),
    }
}

/// Refuses a directory key other than the pinned one.
pub(crate) fn check_pinned(pinned: &[u8; 32], served: &[u8; 32]) -> Result<(), CoreError> {
    if pinned == served {
        return Ok(());
    }
    Err(CoreError::UntrustedDirectory {
        pinned: b64(pinned),
        served: b64(served),
    })
}

/// The trusted directory, when this device has one (pinned keys and a
/// trusted head).
pub(crate) fn trusted(dev: &Device) -> Result<Option<Trusted>, CoreError> {
    let (Some(key), Some(vrf), Some(head)) = (
        dev.data.log_key(),
        dev.data.vrf_key(),
        dev.data.trusted_head(),
    ) else {
        return Ok(None);
    };
    Ok(Some(Trusted {
        monitor: LogMonitor::resume(head.log_id.clone(), LogPublicKey::from_bytes(&key)?, head),
        vrf: VrfPublicKey::from_bytes(&vrf)?,
    }))
}

/// Whether the first `log.head` may be asked (keys pinned, or TOFU).
pub(crate) fn may_fetch_keys(dev: &Device) -> Result<(), CoreError> {
    if (dev.data.pinned_log_key.is_none() || dev.data.pinned_vrf_key.is_none()) && !dev.tofu {
        return Err(CoreError::DirectoryNotPinned);
    }
    Ok(())
}

/// First contact: the `log.head` answer's keys (checked against the pinned
/// ones) and head become the trusted directory.
pub(crate) fn first_head(dev: &mut Device, r: &LogHead, now_ms: u64) -> Result<(), CoreError> {
    let key = key32(&r.key, "log key")?;
    let vrf = key32(&r.vrf, "VRF key")?;
    if let Some(pinned) = dev.data.pinned_log_key {
        check_pinned(&pinned, &key)?;
    }
    if let Some(pinned) = dev.data.pinned_vrf_key {
        check_pinned(&pinned, &vrf)?;
    }
    let head = sth(&r.head)?;
    let mut monitor = LogMonitor::new(head.head.log_id.clone(), LogPublicKey::from_bytes(&key)?);
    accept(dev, &mut monitor, &head, now_ms)?;
    VrfPublicKey::from_bytes(&vrf)?;
    pin(dev, &head, &key, &vrf);
    Ok(())
}

/// Accepts a served head into `m`: signed, fresh, not older than the
/// trusted head and not another root for an epoch this device saw.
fn accept(
    dev: &Device,
    m: &mut LogMonitor,
    head: &SignedTreeHead,
    now_ms: u64,
) -> Result<(), CoreError> {
    fork_against_kept(dev, head)?;
    m.update_fresh(head, now_ms, dev.freshness)
        .map_err(|e| match e {
            LogError::Stale { signed, now } | LogError::FromTheFuture { signed, now } => {
                CoreError::StaleHead {
                    signed_ms: signed,
                    now_ms: now,
                }
            }
            e => CoreError::Log(e),
        })
}

/// Accepts `head` and records it as the trusted head.
pub(crate) fn accept_and_pin(
    dev: &mut Device,
    t: &mut Trusted,
    head: &SignedTreeHead,
    now_ms: u64,
) -> Result<(), CoreError> {
    accept(dev, &mut t.monitor, head, now_ms)?;
    let vrf = t.vrf.to_bytes();
    let key = dev.data.log_key().unwrap_or([0; 32]);
    pin(dev, head, &key, &vrf);
    Ok(())
}

/// Keeps `sth` among the heads gossip is compared with.
pub(crate) fn keep(dev: &mut Device, sth: &SignedTreeHead) {
    if dev.heads.iter().any(|h| h.head.epoch == sth.head.epoch) {
        return;
    }
    if dev.heads.len() >= KEPT_HEADS {
        dev.heads.pop_front();
    }
    dev.heads.push_back(sth.clone());
}

fn pin(dev: &mut Device, sth: &SignedTreeHead, key: &[u8; 32], vrf: &[u8; 32]) {
    keep(dev, sth);
    let t: &TreeHead = &sth.head;
    dev.data.log = Some(LogPin {
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
/// key, the unexpired cards not retired by a revocation, the revocations.
pub(crate) fn user_keys(user: &UserId, entry: Option<UserEntry>, now_secs: u64) -> UserKeys {
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
                && c.verify(user, &id, now_secs).is_ok()
        })
        .collect();
    UserKeys {
        user: user.clone(),
        identity: Some(id),
        devices,
        revocations: entry.revocations,
    }
}

/// Updates the card cache with verified keys; queues a key-change event.
pub(crate) fn remember(dev: &mut Device, keys: &UserKeys, now_ms: u64) {
    let identity = keys
        .identity
        .map(|k| b64(&k.to_bytes()))
        .unwrap_or_default();
    let cards: Vec<String> = keys.devices.iter().map(|c| b64(&c.to_bytes())).collect();
    let new_ids: BTreeSet<DeviceId> = keys.devices.iter().map(DeviceCard::device_id).collect();
    // Users without keys are not cached (envelopes name arbitrary senders).
    if keys.identity.is_none() && !dev.data.contacts.contains_key(keys.user.as_str()) {
        return;
    }
    let entry = dev
        .data
        .contacts
        .entry(keys.user.as_str().to_owned())
        .or_default();
    let first = entry.fetched_ms == 0;
    let mut event = None;
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
            event = Some(Event::KeyChanged {
                user: keys.user.as_str().to_owned(),
                identity_changed,
                added: new_ids.difference(&old_ids).copied().collect(),
                removed: old_ids.difference(&new_ids).copied().collect(),
                was_verified: entry.verified.is_some(),
            });
        }
    }
    entry.identity = identity;
    entry.cards = cards;
    entry.revocations = keys
        .revocations
        .iter()
        .map(|r| b64(&r.to_bytes()))
        .collect();
    entry.fetched_ms = now_ms;
    dev.parsed.insert(
        keys.user.as_str().to_owned(),
        Parsed {
            identity: keys.identity,
            cards: keys.devices.clone(),
            revocations: keys.revocations.clone(),
        },
    );
    if let Some(e) = event {
        dev.events.push(e);
    }
}
