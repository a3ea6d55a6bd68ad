//! The device's persistent data and its saved form: the same JSON document
//! as the plaintext of hush-client's key store (`store.rs`: `{secrets,
//! state}`), so the TS layer only has to encrypt it at rest. Duplicated from
//! hush-client (its `DeviceData` is tied to its file store and inbox).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hush_crypto::identity::{CardError, DeviceCard, DeviceId, DeviceKeys, IdentityKey};
use hush_crypto::suite1::{StreamKey, StreamState};
use hush_crypto::transparency::{SignedTreeHead, TreeHead};
use hush_protocol::{ChannelName, UserId};
use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use super::error::CoreError;

const DOC_VERSION: u8 = 1;

/// Fills `buf` from the platform's generator (the browser's
/// `crypto.getRandomValues` on wasm32).
pub(crate) fn random(buf: &mut [u8]) -> Result<(), CoreError> {
    getrandom::fill(buf).map_err(|e| CoreError::Invalid(format!("no random source: {e}")))
}

#[derive(Serialize, Deserialize, Zeroize, ZeroizeOnDrop, Default)]
struct Secrets {
    identity: Option<String>,
    #[serde(default)]
    pending_identity: Option<String>,
    device_signing: String,
    device_encryption: String,
}

/// A contact's keys as last verified (base64 records), and the identity key
/// the user marked verified.
#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq, Eq)]
pub(crate) struct CachedUser {
    pub identity: String,
    pub cards: Vec<String>,
    pub revocations: Vec<String>,
    pub fetched_ms: u64,
    pub verified: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
struct SavedStream {
    user: String,
    device: String,
    channel: String,
    highest: u64,
    seen: u64,
    newest_ms: u64,
}

impl SavedStream {
    fn new(key: &StreamKey, state: &StreamState) -> Self {
        Self {
            user: key.user.as_str().to_owned(),
            device: hex::encode(key.device.0),
            channel: key.channel.as_str().to_owned(),
            highest: state.highest,
            seen: state.seen,
            newest_ms: state.newest_ms,
        }
    }

    fn parse(&self) -> Option<(StreamKey, StreamState)> {
        let device = hex::decode(&self.device).ok()?.try_into().ok()?;
        Some((
            StreamKey {
                user: UserId::parse(&self.user).ok()?,
                device: DeviceId(device),
                channel: ChannelName::parse(&self.channel).ok()?,
            },
            StreamState {
                highest: self.highest,
                seen: self.seen,
                newest_ms: self.newest_ms,
            },
        ))
    }
}

/// The trusted directory: keys and the trusted head.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct LogPin {
    pub log_id: String,
    pub key: String,
    #[serde(default)]
    pub vrf: String,
    #[serde(alias = "size")]
    pub epoch: u64,
    pub root: String,
    pub timestamp: u64,
    #[serde(default)]
    pub signed: String,
}

#[derive(Serialize, Deserialize, Default)]
struct Public {
    version: u8,
    user_id: String,
    device_id: String,
    #[serde(default)]
    log: Option<LogPin>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pinned_log_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pinned_vrf_key: Option<String>,
    #[serde(default)]
    owner_version: u64,
    #[serde(default)]
    card: Option<String>,
    #[serde(default)]
    contacts: BTreeMap<String, CachedUser>,
    #[serde(default)]
    sequences: BTreeMap<String, u64>,
    #[serde(default)]
    streams: Vec<SavedStream>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    mailbox_streams: Vec<SavedStream>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    inbox: Vec<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    known_devices: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    known_revocations: Vec<String>,
}

#[derive(Serialize, Deserialize)]
struct Doc {
    secrets: Secrets,
    state: Public,
}

/// One device's keys and everything it must remember across restarts.
pub(crate) struct DeviceData {
    pub user: UserId,
    pub device_id: DeviceId,
    pub keys: DeviceKeys,
    device_secret: Zeroizing<[u8; 64]>,
    pub identity: Option<IdentityKey>,
    pub pending_identity: Option<IdentityKey>,
    pub card: Option<DeviceCard>,
    pub log: Option<LogPin>,
    pub pinned_log_key: Option<[u8; 32]>,
    pub pinned_vrf_key: Option<[u8; 32]>,
    pub owner_version: u64,
    pub contacts: BTreeMap<String, CachedUser>,
    pub sequences: BTreeMap<String, u64>,
    pub streams: HashMap<StreamKey, StreamState>,
    pub mailbox_streams: HashMap<StreamKey, StreamState>,
    inbox: Vec<serde_json::Value>,
    pub known_devices: BTreeSet<DeviceId>,
    pub known_revocations: BTreeSet<DeviceId>,
}

impl DeviceData {
    /// New keys for `user` (and an identity key when `with_identity`).
    pub fn generate(user: UserId, with_identity: bool) -> Result<Self, CoreError> {
        let mut secret = Zeroizing::new([0u8; 64]);
        random(secret.as_mut_slice())?;
        let identity = if with_identity {
            let mut seed = Zeroizing::new([0u8; 32]);
            random(seed.as_mut_slice())?;
            Some(IdentityKey::from_secret_bytes(&seed))
        } else {
            None
        };
        Ok(Self::from_parts(user, secret, identity))
    }

    fn from_parts(
        user: UserId,
        secret: Zeroizing<[u8; 64]>,
        identity: Option<IdentityKey>,
    ) -> Self {
        let keys = keys_of(&secret);
        Self {
            user,
            device_id: keys.device_id(),
            keys,
            device_secret: secret,
            identity,
            pending_identity: None,
            card: None,
            log: None,
            pinned_log_key: None,
            pinned_vrf_key: None,
            owner_version: 0,
            contacts: BTreeMap::new(),
            sequences: BTreeMap::new(),
            streams: HashMap::new(),
            mailbox_streams: HashMap::new(),
            inbox: Vec::new(),
            known_devices: BTreeSet::new(),
            known_revocations: BTreeSet::new(),
        }
    }

    /// A new X25519 key (a renewed card must carry one).
    pub fn renew_encryption_key(&mut self) -> Result<(), CoreError> {
        random(&mut self.device_secret[32..])?;
        self.keys = keys_of(&self.device_secret);
        Ok(())
    }

    /// The next send sequence on `channel`.
    pub fn next_sequence(&self, channel: &ChannelName) -> u64 {
        self.sequences
            .get(channel.as_str())
            .copied()
            .unwrap_or(0)
            .saturating_add(1)
    }

    /// Records a used send sequence.
    pub fn record_sequence(&mut self, channel: &ChannelName, sequence: u64) {
        let slot = self
            .sequences
            .entry(channel.as_str().to_owned())
            .or_default();
        *slot = (*slot).max(sequence);
    }

    /// The trusted head (unsigned form).
    pub fn trusted_head(&self) -> Option<TreeHead> {
        let pin = self.log.as_ref()?;
        Some(TreeHead {
            log_id: pin.log_id.clone(),
            epoch: pin.epoch,
            root: STANDARD.decode(&pin.root).ok()?.try_into().ok()?,
            timestamp: pin.timestamp,
        })
    }

    /// The trusted head as the directory signed it.
    pub fn trusted_signed_head(&self) -> Option<SignedTreeHead> {
        let bytes = STANDARD.decode(&self.log.as_ref()?.signed).ok()?;
        SignedTreeHead::from_bytes(&bytes).ok()
    }

    /// The trusted directory's log key.
    pub fn log_key(&self) -> Option<[u8; 32]> {
        STANDARD
            .decode(&self.log.as_ref()?.key)
            .ok()?
            .try_into()
            .ok()
    }

    /// The trusted directory's VRF key.
    pub fn vrf_key(&self) -> Option<[u8; 32]> {
        STANDARD
            .decode(&self.log.as_ref()?.vrf)
            .ok()?
            .try_into()
            .ok()
    }

    /// The saved form (JSON; secrets included).
    pub fn to_json(&self) -> Result<Zeroizing<Vec<u8>>, CoreError> {
        let doc = Doc {
            secrets: Secrets {
                identity: self.identity.as_ref().map(encode_identity),
                pending_identity: self.pending_identity.as_ref().map(encode_identity),
                device_signing: STANDARD.encode(&self.device_secret[..32]),
                device_encryption: STANDARD.encode(&self.device_secret[32..]),
            },
            state: Public {
                version: DOC_VERSION,
                user_id: self.user.as_str().to_owned(),
                device_id: hex::encode(self.device_id.0),
                log: self.log.clone(),
                pinned_log_key: self.pinned_log_key.map(|k| STANDARD.encode(k)),
                pinned_vrf_key: self.pinned_vrf_key.map(|k| STANDARD.encode(k)),
                owner_version: self.owner_version,
                card: self.card.as_ref().map(|c| STANDARD.encode(c.to_bytes())),
                contacts: self.contacts.clone(),
                sequences: self.sequences.clone(),
                streams: self
                    .streams
                    .iter()
                    .map(|(k, s)| SavedStream::new(k, s))
                    .collect(),
                mailbox_streams: self
                    .mailbox_streams
                    .iter()
                    .map(|(k, s)| SavedStream::new(k, s))
                    .collect(),
                inbox: self.inbox.clone(),
                known_devices: self
                    .known_devices
                    .iter()
                    .map(|d| hex::encode(d.0))
                    .collect(),
                known_revocations: self
                    .known_revocations
                    .iter()
                    .map(|d| hex::encode(d.0))
                    .collect(),
            },
        };
        serde_json::to_vec(&doc)
            .map(Zeroizing::new)
            .map_err(|e| CoreError::State(e.to_string()))
    }

    /// Parses a saved form.
    pub fn from_json(bytes: &[u8]) -> Result<Self, CoreError> {
        let doc: Doc =
            serde_json::from_slice(bytes).map_err(|e| CoreError::State(e.to_string()))?;
        Self::from_doc(&doc).map_err(CoreError::State)
    }

    fn from_doc(doc: &Doc) -> Result<Self, String> {
        let p = &doc.state;
        if p.version != DOC_VERSION {
            return Err(format!("unsupported version {}", p.version));
        }
        let user = UserId::parse(&p.user_id).map_err(|e| format!("user id: {e}"))?;
        let saved_id: [u8; 16] = hex::decode(&p.device_id)
            .ok()
            .and_then(|v| v.try_into().ok())
            .ok_or("device id")?;
        let mut secret = Zeroizing::new([0u8; 64]);
        let s = Zeroizing::new(
            STANDARD
                .decode(&doc.secrets.device_signing)
                .map_err(|_| "device key")?,
        );
        let e = Zeroizing::new(
            STANDARD
                .decode(&doc.secrets.device_encryption)
                .map_err(|_| "device key")?,
        );
        if s.len() != 32 || e.len() != 32 {
            return Err("device key length".into());
        }
        secret[..32].copy_from_slice(&s);
        secret[32..].copy_from_slice(&e);
        let identity = decode_identity(doc.secrets.identity.as_deref())?;
        let mut d = Self::from_parts(user, secret, identity);
        if d.device_id.0 != saved_id {
            return Err("device id does not match the device key".into());
        }
        d.pending_identity = decode_identity(doc.secrets.pending_identity.as_deref())?;
        if let Some(c) = &p.card {
            let bytes = STANDARD.decode(c).map_err(|_| "card")?;
            d.card = match DeviceCard::from_bytes(&bytes) {
                Ok(card) => Some(card),
                Err(CardError::DeviceIdNotDerived) => None,
                Err(e) => return Err(format!("card: {e}")),
            };
        }
        d.log = p.log.clone().filter(|pin| !pin.vrf.is_empty());
        let key = |k: &Option<String>, what: &str| -> Result<Option<[u8; 32]>, String> {
            match k {
                None => Ok(None),
                Some(k) => Ok(Some(
                    STANDARD
                        .decode(k)
                        .ok()
                        .and_then(|v| v.try_into().ok())
                        .ok_or(what)?,
                )),
            }
        };
        d.pinned_log_key = key(&p.pinned_log_key, "pinned log key")?;
        d.pinned_vrf_key = key(&p.pinned_vrf_key, "pinned VRF key")?;
        d.owner_version = if d.log.is_some() { p.owner_version } else { 0 };
        d.contacts.clone_from(&p.contacts);
        d.sequences.clone_from(&p.sequences);
        d.streams = p.streams.iter().filter_map(SavedStream::parse).collect();
        d.mailbox_streams = p
            .mailbox_streams
            .iter()
            .filter_map(SavedStream::parse)
            .collect();
        d.inbox.clone_from(&p.inbox);
        d.known_devices = parse_ids(&p.known_devices)?;
        d.known_revocations = parse_ids(&p.known_revocations)?;
        Ok(d)
    }
}

fn keys_of(secret: &[u8; 64]) -> DeviceKeys {
    let mut s = Zeroizing::new([0u8; 32]);
    let mut e = Zeroizing::new([0u8; 32]);
    s.copy_from_slice(&secret[..32]);
    e.copy_from_slice(&secret[32..]);
    DeviceKeys::from_secret_bytes(&s, &e)
}

fn parse_ids(list: &[String]) -> Result<BTreeSet<DeviceId>, String> {
    list.iter()
        .map(|s| {
            hex::decode(s)
                .ok()
                .and_then(|v| v.try_into().ok())
                .map(DeviceId)
                .ok_or_else(|| "known device id".to_owned())
        })
        .collect()
}

fn encode_identity(k: &IdentityKey) -> String {
    STANDARD.encode(k.to_secret_bytes().as_slice())
}

fn decode_identity(b64: Option<&str>) -> Result<Option<IdentityKey>, String> {
    let Some(b) = b64 else { return Ok(None) };
    let raw = Zeroizing::new(STANDARD.decode(b).map_err(|_| "identity key")?);
    let seed: Zeroizing<[u8; 32]> = Zeroizing::new(
        raw.as_slice()
            .try_into()
            .map_err(|_| "identity key length")?,
    );
    Ok(Some(IdentityKey::from_secret_bytes(&seed)))
}
