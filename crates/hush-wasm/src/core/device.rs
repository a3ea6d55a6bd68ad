//! One device's whole E2EE state and its synchronous operations (the
//! round-trip operations are in `ops.rs`).

use std::collections::HashMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hush_crypto::backup::{self, BackupParams};
use hush_crypto::device_auth::{self, Challenge};
use hush_crypto::identity::{DeviceCard, DeviceId, IdentityKey, IdentityPublicKey, Revocation};
use hush_crypto::safety::SafetyNumber;
use hush_crypto::suite1::ReplayGuard;
use hush_crypto::transparency::Freshness;
use hush_crypto::transparency::LogPublicKey;
use hush_crypto::transparency::proofs::VrfPublicKey;
use hush_protocol::UserId;
use zeroize::Zeroizing;

use super::data::DeviceData;
use super::directory::{KeptHeads, b64, check_pinned};
use super::error::CoreError;
use super::events::Event;
use super::gossip::Checked;

/// How long a card this core issues is valid (hush-client's
/// `CARD_VALIDITY_SECS`).
pub const CARD_VALIDITY_SECS: u64 = 365 * 24 * 3600;
/// Default age after which a cached sender card is looked up again.
pub const DEFAULT_CACHE_TTL_MS: u64 = 60_000;
/// The mailbox replay guard's window (hush-client `MAILBOX_MAX_AGE`).
pub const MAILBOX_MAX_AGE_MS: u64 = 31 * 24 * 3600 * 1000;

/// A contact's parsed cached keys.
#[derive(Clone)]
pub(crate) struct Parsed {
    pub identity: Option<IdentityPublicKey>,
    pub cards: Vec<DeviceCard>,
    pub revocations: Vec<Revocation>,
}

/// One device's E2EE state: keys, pins, trusted and kept heads, contacts'
/// verified cards and identity keys, verified marks, replay state,
/// sequences, and queued events.
pub struct Device {
    pub(crate) data: DeviceData,
    pub(crate) guard: ReplayGuard,
    pub(crate) mailbox_guard: ReplayGuard,
    pub(crate) cache_ttl_ms: u64,
    pub(crate) freshness: Freshness,
    pub(crate) tofu: bool,
    pub(crate) parsed: HashMap<String, Parsed>,
    pub(crate) gossip_checked: Checked,
    pub(crate) heads: KeptHeads,
    pub(crate) events: Vec<Event>,
}

impl std::fmt::Debug for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Device")
            .field("user", &self.data.user)
            .field("device", &self.data.device_id)
            .finish_non_exhaustive()
    }
}

pub(crate) fn parse_user(u: &str) -> Result<UserId, CoreError> {
    UserId::parse(u).map_err(|e| CoreError::Invalid(format!("user {u:?}: {e}")))
}

pub(crate) fn new_mailbox_guard() -> ReplayGuard {
    ReplayGuard::default().with_max_age_ms(MAILBOX_MAX_AGE_MS)
}

fn b64_32(s: &str, what: &str) -> Result<[u8; 32], CoreError> {
    STANDARD
        .decode(s.trim())
        .ok()
        .and_then(|v| v.try_into().ok())
        .ok_or_else(|| CoreError::Invalid(format!("{what}: not 32 bytes of standard base64")))
}

impl Device {
    /// New keys for `user` (with an identity key when `first_device`).
    pub fn create(user: &str, first_device: bool) -> Result<Self, CoreError> {
        let user = parse_user(user)?;
        Ok(Self::from_data(DeviceData::generate(user, first_device)?))
    }

    /// A device from its saved state.
    pub fn load(state: &[u8]) -> Result<Self, CoreError> {
        Ok(Self::from_data(DeviceData::from_json(state)?))
    }

    /// The saved state (JSON, secrets included: encrypt it at rest).
    pub fn save(&self) -> Result<Zeroizing<Vec<u8>>, CoreError> {
        self.data.to_json()
    }

    pub(crate) fn from_data(data: DeviceData) -> Self {
        let mut guard = ReplayGuard::default();
        for (stream, state) in &data.streams {
            guard.restore(stream.clone(), *state);
        }
        let mut mailbox_guard = new_mailbox_guard();
        for (stream, state) in &data.mailbox_streams {
            mailbox_guard.restore(stream.clone(), *state);
        }
        Self {
            data,
            guard,
            mailbox_guard,
            cache_ttl_ms: DEFAULT_CACHE_TTL_MS,
            freshness: Freshness::default(),
            tofu: false,
            parsed: HashMap::new(),
            gossip_checked: Checked::default(),
            heads: KeptHeads::new(),
            events: Vec::new(),
        }
    }

    /// The user id.
    pub fn user_id(&self) -> &str {
        self.data.user.as_str()
    }

    /// The device id (hex).
    pub fn device_id(&self) -> String {
        hex::encode(self.data.device_id.0)
    }

    /// This device's card (base64), once published or installed.
    pub fn card(&self) -> Option<String> {
        self.data.card.as_ref().map(|c| b64(&c.to_bytes()))
    }

    /// Whether this device holds the identity key.
    pub fn has_identity_key(&self) -> bool {
        self.data.identity.is_some()
    }

    /// Pins the directory's log key (refused if another one is trusted).
    pub fn pin_directory_key(&mut self, key_b64: &str) -> Result<(), CoreError> {
        let key = b64_32(key_b64, "directory key")?;
        LogPublicKey::from_bytes(&key)?;
        if let Some(trusted) = self.data.log_key() {
            check_pinned(&key, &trusted)?;
        }
        self.data.pinned_log_key = Some(key);
        Ok(())
    }

    /// Pins the directory's VRF key.
    pub fn pin_vrf_key(&mut self, key_b64: &str) -> Result<(), CoreError> {
        let key = b64_32(key_b64, "VRF key")?;
        VrfPublicKey::from_bytes(&key)?;
        if let Some(trusted) = self.data.vrf_key() {
            check_pinned(&key, &trusted)?;
        }
        self.data.pinned_vrf_key = Some(key);
        Ok(())
    }

    /// Allows taking unpinned directory keys on first contact.
    pub fn set_trust_on_first_use(&mut self, allow: bool) {
        self.tofu = allow;
    }

    /// Bound on the age of a served head.
    pub fn set_max_head_age(&mut self, ms: u64) {
        self.freshness.max_age_ms = ms;
    }

    /// How long a sender's cached cards are used before looking up again.
    pub fn set_cache_ttl(&mut self, ms: u64) {
        self.cache_ttl_ms = ms;
    }

    /// The events queued since the last call.
    pub(crate) fn take_events(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.events)
    }

    /// The events queued since the last call, in their JSON form
    /// (README "Events").
    pub fn take_events_json(&mut self) -> Vec<serde_json::Value> {
        self.take_events().iter().map(Event::to_json).collect()
    }

    /// A contact's parsed cached keys.
    pub(crate) fn parsed(&mut self, user: &str) -> Option<&Parsed> {
        if !self.parsed.contains_key(user) {
            let c = self.data.contacts.get(user)?;
            let decode = |s: &String| STANDARD.decode(s).ok();
            let p = Parsed {
                identity: decode(&c.identity)
                    .and_then(|b| <[u8; 32]>::try_from(b).ok())
                    .and_then(|b| IdentityPublicKey::from_bytes(&b).ok()),
                cards: c
                    .cards
                    .iter()
                    .filter_map(decode)
                    .filter_map(|b| DeviceCard::from_bytes(&b).ok())
                    .collect(),
                revocations: c
                    .revocations
                    .iter()
                    .filter_map(decode)
                    .filter_map(|b| Revocation::from_bytes(&b).ok())
                    .collect(),
            };
            self.parsed.insert(user.to_owned(), p);
        }
        self.parsed.get(user)
    }

    /// This user's identity key: held, or the one this device's card is bound to.
    pub(crate) fn own_identity(&self) -> Option<IdentityPublicKey> {
        self.data
            .identity
            .as_ref()
            .map(IdentityKey::public_key)
            .or_else(|| self.data.card.as_ref().map(|c| *c.identity_key()))
    }

    /// Whether `user` is marked verified and its identity key is still the
    /// verified one.
    pub fn is_verified(&self, user: &str) -> bool {
        self.data
            .contacts
            .get(user)
            .is_some_and(|c| c.verified.as_deref() == Some(c.identity.as_str()))
    }

    /// Drops the verified mark.
    pub fn unverify(&mut self, user: &str) {
        if let Some(c) = self.data.contacts.get_mut(user) {
            c.verified = None;
        }
    }

    /// The safety number with `user` from the cached (verified) keys.
    pub(crate) fn cached_safety_number(&mut self, user: &str) -> Result<SafetyNumber, CoreError> {
        let remote_user = parse_user(user)?;
        let remote = self
            .parsed(user)
            .and_then(|p| p.identity)
            .ok_or_else(|| CoreError::UnknownUser(user.to_owned()))?;
        let local = self.own_identity().ok_or(CoreError::NotPublished)?;
        Ok(SafetyNumber::for_users(
            &self.data.user,
            &local,
            &remote_user,
            &remote,
        ))
    }

    /// Compares a scanned QR payload with the safety number with `user`
    /// (its keys must have been looked up).
    pub fn compare_scanned(&mut self, user: &str, scanned: &[u8]) -> Result<bool, CoreError> {
        let n = self.cached_safety_number(user)?;
        n.compare_scanned(scanned)
            .map_err(|e| CoreError::Invalid(format!("scanned code: {e}")))
    }

    /// Seals the identity key under `password` (Argon2id with `params`).
    pub fn backup(&self, password: &[u8], params: BackupParams) -> Result<Vec<u8>, CoreError> {
        let identity = self
            .data
            .identity
            .as_ref()
            .ok_or(CoreError::NoIdentityKey)?;
        Ok(backup::seal_identity(identity, password, params)?)
    }

    /// Silences owner alarms for these devices.
    pub fn acknowledge_own_devices(&mut self, devices: &[DeviceId]) {
        self.data.known_devices.extend(devices.iter().copied());
        self.data.known_revocations.extend(devices.iter().copied());
    }

    /// The `device.auth` params for a `device.challenge` nonce.
    pub fn device_auth(
        &self,
        nonce_b64: &str,
        app_key: &str,
        socket_id: &str,
    ) -> Result<serde_json::Value, CoreError> {
        if self.data.card.is_none() {
            return Err(CoreError::NotPublished);
        }
        let nonce: [u8; device_auth::NONCE_LEN] = STANDARD
            .decode(nonce_b64)
            .ok()
            .and_then(|v| v.try_into().ok())
            .ok_or_else(|| CoreError::Invalid("challenge nonce".into()))?;
        let c = Challenge {
            app_key,
            socket_id,
            user_id: self.data.user.as_str(),
            nonce: &nonce,
        };
        let sig = c.sign(&self.data.keys);
        Ok(serde_json::json!({
            "device": hex::encode(self.data.device_id.0),
            "signature": b64(&sig),
        }))
    }
}
