//! The device's local key store: one file, encrypted at rest with
//! XChaCha20-Poly1305 under a 32-byte key the application supplies.
//!
//! File layout: `"HKS1" ‖ nonce (24) ‖ XChaCha20-Poly1305(key, nonce,
//! aad = "HKS1", plaintext = JSON document)`. Every save draws a fresh nonce
//! and replaces the file atomically (temporary file in the same directory,
//! `fsync`, rename). Secrets are zeroized when dropped, including the
//! serialized plaintext.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::io::Write;
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hush_crypto::identity::{CardError, DeviceCard, DeviceId, DeviceKeys, IdentityKey};
use hush_crypto::suite1::{StreamKey, StreamState};
use hush_crypto::transparency::{SignedTreeHead, TreeHead};
use hush_protocol::{ChannelName, UserId};
use rand::{RngCore, TryRngCore};
use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use super::inbox::InboxEntry;

const MAGIC: &[u8; 4] = b"HKS1";
const NONCE_LEN: usize = 24;
/// Version of the JSON document inside.
const DOC_VERSION: u8 = 1;

/// Why the key store could not be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// Reading or writing the file failed.
    #[error("key store {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The file is not a hush key store (wrong magic, too short).
    #[error("{0} is not a hush key store")]
    NotAKeyStore(PathBuf),
    /// Authentication failed: the store key is wrong, or the file was
    /// altered or corrupted (the two cannot be told apart).
    #[error("key store {0}: wrong store key, or the file is corrupted")]
    WrongKeyOrCorrupted(PathBuf),
    /// The file decrypted but its content is invalid.
    #[error("key store {path}: invalid content: {reason}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// `create` found an existing file.
    #[error("key store {0} already exists")]
    Exists(PathBuf),
}

/// The 32-byte key that encrypts the store at rest, supplied by the
/// application (e.g. from the platform keychain). Zeroized on drop; `Debug`
/// is redacted.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct StoreKey([u8; 32]);

impl StoreKey {
    /// Wraps 32 key bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// A new random key.
    pub fn generate() -> Self {
        let mut k = [0u8; 32];
        rand::rngs::OsRng.unwrap_err().fill_bytes(&mut k);
        Self(k)
    }

    /// Parses standard base64 of 32 bytes.
    pub fn from_base64(s: &str) -> Option<Self> {
        let bytes = Zeroizing::new(STANDARD.decode(s.trim()).ok()?);
        let k: [u8; 32] = bytes.as_slice().try_into().ok()?;
        Some(Self(k))
    }

    /// Standard base64 of the key (handle with care).
    pub fn to_base64(&self) -> Zeroizing<String> {
        Zeroizing::new(STANDARD.encode(self.0))
    }
}

impl std::fmt::Debug for StoreKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StoreKey(<redacted>)")
    }
}

/// The secret part of the document (base64 strings, wiped on drop).
#[derive(Serialize, Deserialize, Zeroize, ZeroizeOnDrop, Default)]
struct Secrets {
    identity: Option<String>,
    /// An identity key made for a rotation that may not have completed.
    #[serde(default)]
    pending_identity: Option<String>,
    device_signing: String,
    device_encryption: String,
}

/// What the device remembers about a contact (or about its own user).
#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq, Eq)]
pub(crate) struct CachedUser {
    /// Identity public key, base64.
    pub identity: String,
    /// Active device cards (wire form, base64), as last verified.
    pub cards: Vec<String>,
    /// Revocation records (wire form, base64).
    pub revocations: Vec<String>,
    /// Unix ms of the last verified lookup.
    pub fetched_ms: u64,
    /// The identity key (base64) the user marked verified, if any.
    pub verified: Option<String>,
}

/// One sender stream's replay state as saved: (sender user, sender device,
/// channel) and its high-water mark, window and newest timestamp
/// ([`StreamState`]). Restored into the replay guard after a restart, so
/// everything accepted before stays refused, however many messages that was.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
struct SavedStream {
    user: String,
    /// Sender device, hex.
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

/// The pinned transparency log.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct LogPin {
    pub log_id: String,
    /// Ed25519 head-signing key, base64.
    pub key: String,
    /// VRF public key, base64 (absent in pins of the chronological log of
    /// earlier versions: such a pin is dropped on load).
    #[serde(default)]
    pub vrf: String,
    /// The trusted epoch (`size` in pins of earlier versions).
    #[serde(alias = "size")]
    pub epoch: u64,
    /// Root hash, base64.
    pub root: String,
    pub timestamp: u64,
    /// The signed head's wire form, base64 (for gossip).
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
    /// The directory log key the app configured (base64), when pinned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pinned_log_key: Option<String>,
    /// The directory VRF key the app configured (base64), when pinned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pinned_vrf_key: Option<String>,
    /// The last version of this user's own directory entry the owner
    /// watch checked.
    #[serde(default)]
    owner_version: u64,
    #[serde(default)]
    card: Option<String>,
    #[serde(default)]
    contacts: BTreeMap<String, CachedUser>,
    /// This device's send counter per channel (the last number used).
    #[serde(default)]
    sequences: BTreeMap<String, u64>,
    /// Replay state of the sender streams this device accepted messages on.
    #[serde(default)]
    streams: Vec<SavedStream>,
    /// Replay state of the mailbox's sender streams (its own guard, whose
    /// freshness window covers the mailbox's time to live).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    mailbox_streams: Vec<SavedStream>,
    /// The newest mailbox messages opened (oldest first, bounded).
    #[serde(default, skip_serializing_if = "VecDeque::is_empty")]
    inbox: VecDeque<InboxEntry>,
    /// Devices (hex ids) of this user whose cards this device made,
    /// approved or the user acknowledged (owner watch).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    known_devices: Vec<String>,
    /// Devices (hex ids) of this user whose revocation this device made or
    /// the user acknowledged (owner watch).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    known_revocations: Vec<String>,
}

#[derive(Serialize, Deserialize)]
struct Doc {
    secrets: Secrets,
    state: Public,
}

/// A device's keys and what it has learned, as kept in the key store:
/// the user id, the device id and keys, the identity key (absent on
/// secondary devices), this device's card, the pinned log key and last
/// trusted tree head, the card cache and the verified contacts.
pub struct DeviceData {
    pub(crate) user: UserId,
    pub(crate) device_id: DeviceId,
    pub(crate) keys: DeviceKeys,
    device_secret: Zeroizing<[u8; 64]>,
    pub(crate) identity: Option<IdentityKey>,
    /// The next identity key while a rotation is under way: saved before the
    /// rotation is sent, so a lost answer cannot lose the key the directory
    /// may already require.
    pub(crate) pending_identity: Option<IdentityKey>,
    pub(crate) card: Option<DeviceCard>,
    pub(crate) log: Option<LogPin>,
    /// The directory log key the app pinned ([`E2ee::pin_directory_key`](super::E2ee::pin_directory_key)).
    pub(crate) pinned_log_key: Option<[u8; 32]>,
    /// The directory VRF key the app pinned ([`E2ee::pin_directory_vrf_key`](super::E2ee::pin_directory_vrf_key)).
    pub(crate) pinned_vrf_key: Option<[u8; 32]>,
    /// The last version of this user's own directory entry the owner watch
    /// checked (its history is checked from there).
    pub(crate) owner_version: u64,
    pub(crate) contacts: BTreeMap<String, CachedUser>,
    /// The last sequence number this device sent on each channel (its
    /// per-channel counters: 1, 2, 3, …).
    pub(crate) sequences: BTreeMap<String, u64>,
    /// The replay state of every sender stream accepted (mirrors the
    /// in-memory guard, so a restart keeps it).
    pub(crate) streams: HashMap<StreamKey, StreamState>,
    /// The replay state of every mailbox sender stream accepted (mirrors
    /// the mailbox's own guard).
    pub(crate) mailbox_streams: HashMap<StreamKey, StreamState>,
    /// The newest mailbox messages opened, oldest first (at most
    /// [`INBOX_LIMIT`](super::INBOX_LIMIT)).
    pub(crate) inbox: VecDeque<InboxEntry>,
    /// The user's devices whose cards this device issued, approved, or the
    /// user acknowledged ([`E2ee::acknowledge_own_devices`](super::E2ee::acknowledge_own_devices)):
    /// the owner watch raises no alarm for their cards.
    pub(crate) known_devices: BTreeSet<DeviceId>,
    /// The user's devices whose revocation this device published or the
    /// user acknowledged: the owner watch raises no alarm for it.
    pub(crate) known_revocations: BTreeSet<DeviceId>,
}

impl std::fmt::Debug for DeviceData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceData")
            .field("user", &self.user)
            .field("device_id", &self.device_id)
            .field("has_identity_key", &self.identity.is_some())
            .field("published", &self.card.is_some())
            .finish_non_exhaustive()
    }
}

impl DeviceData {
    /// New device keys (and, for a user's first device, a new identity key).
    pub fn generate(user: UserId, with_identity: bool) -> Self {
        let mut secret = Zeroizing::new([0u8; 64]);
        rand::rngs::OsRng
            .unwrap_err()
            .fill_bytes(secret.as_mut_slice());
        Self::from_parts(user, secret, with_identity.then(IdentityKey::generate))
    }

    /// The device's data from its keys; its id is derived from the signing
    /// key ([`DeviceId::of_signing_key`]).
    fn from_parts(
        user: UserId,
        secret: Zeroizing<[u8; 64]>,
        identity: Option<IdentityKey>,
    ) -> Self {
        let mut s = Zeroizing::new([0u8; 32]);
        let mut e = Zeroizing::new([0u8; 32]);
        s.copy_from_slice(&secret[..32]);
        e.copy_from_slice(&secret[32..]);
        let keys = DeviceKeys::from_secret_bytes(&s, &e);
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
            inbox: VecDeque::new(),
            known_devices: BTreeSet::new(),
            known_revocations: BTreeSet::new(),
        }
    }

    /// Replaces the device's X25519 encryption key with a new random one
    /// (the signing key stays), for a card renewal. The old secret is
    /// overwritten in place and the old keys are wiped when dropped.
    pub(crate) fn renew_encryption_key(&mut self) {
        rand::rngs::OsRng
            .unwrap_err()
            .fill_bytes(&mut self.device_secret[32..]);
        let mut s = Zeroizing::new([0u8; 32]);
        let mut e = Zeroizing::new([0u8; 32]);
        s.copy_from_slice(&self.device_secret[..32]);
        e.copy_from_slice(&self.device_secret[32..]);
        self.keys = DeviceKeys::from_secret_bytes(&s, &e);
    }

    /// The sequence number of this device's next message on `channel`: its
    /// counter there plus one (1 for the first). Contiguous, so receivers
    /// see a dropped message as a gap; recorded by
    /// [`record_sequence`](Self::record_sequence) once the envelope is made.
    pub(crate) fn next_sequence(&self, channel: &ChannelName) -> u64 {
        self.sequences
            .get(channel.as_str())
            .copied()
            .unwrap_or(0)
            .saturating_add(1)
    }

    /// Records that `sequence` was used on `channel`.
    pub(crate) fn record_sequence(&mut self, channel: &ChannelName, sequence: u64) {
        let slot = self
            .sequences
            .entry(channel.as_str().to_owned())
            .or_default();
        *slot = (*slot).max(sequence);
    }

    /// The user this device belongs to.
    pub fn user_id(&self) -> &UserId {
        &self.user
    }

    /// This device's id.
    pub fn device_id(&self) -> DeviceId {
        self.device_id
    }

    /// Whether this device holds the user's identity key.
    pub fn has_identity_key(&self) -> bool {
        self.identity.is_some()
    }

    /// This device's published (or installed) card.
    pub fn card(&self) -> Option<&DeviceCard> {
        self.card.as_ref()
    }

    /// The last tree head this device trusts, once it has seen the log.
    pub fn trusted_head(&self) -> Option<TreeHead> {
        let pin = self.log.as_ref()?;
        Some(TreeHead {
            log_id: pin.log_id.clone(),
            epoch: pin.epoch,
            root: STANDARD.decode(&pin.root).ok()?.try_into().ok()?,
            timestamp: pin.timestamp,
        })
    }

    /// The last trusted head with the log's signature, to share with other
    /// clients for [`E2ee::cross_check`](super::E2ee::cross_check).
    pub fn trusted_signed_head(&self) -> Option<SignedTreeHead> {
        let bytes = STANDARD.decode(&self.log.as_ref()?.signed).ok()?;
        SignedTreeHead::from_bytes(&bytes).ok()
    }

    /// The pinned log public key (32 bytes), once pinned.
    pub fn log_key(&self) -> Option<[u8; 32]> {
        STANDARD
            .decode(&self.log.as_ref()?.key)
            .ok()?
            .try_into()
            .ok()
    }

    /// The directory's VRF public key this device trusts (32 bytes), once
    /// it has seen the directory.
    pub fn vrf_key(&self) -> Option<[u8; 32]> {
        STANDARD
            .decode(&self.log.as_ref()?.vrf)
            .ok()?
            .try_into()
            .ok()
    }

    /// Users this device has verified (marked after comparing safety numbers).
    pub fn verified_contacts(&self) -> Vec<String> {
        self.contacts
            .iter()
            .filter(|(_, c)| c.verified.is_some())
            .map(|(u, _)| u.clone())
            .collect()
    }

    fn to_doc(&self) -> Doc {
        Doc {
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
        }
    }

    fn from_doc(doc: &Doc) -> Result<Self, String> {
        let p = &doc.state;
        if p.version != DOC_VERSION {
            return Err(format!("unsupported version {}", p.version));
        }
        let user = UserId::parse(&p.user_id).map_err(|e| format!("user id: {e}"))?;
        // The saved id is informative: the id is the one derived from the
        // signing key (a store written before ids were derived gets its new
        // id here, and must publish a new card).
        let _: [u8; 16] = hex::decode(&p.device_id)
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
        d.pending_identity = decode_identity(doc.secrets.pending_identity.as_deref())?;
        if let Some(c) = &p.card {
            let bytes = STANDARD.decode(c).map_err(|_| "card")?;
            d.card = match DeviceCard::from_bytes(&bytes) {
                Ok(card) => Some(card),
                // A card from before device ids were derived: publish anew.
                Err(CardError::DeviceIdNotDerived) => None,
                Err(e) => return Err(format!("card: {e}")),
            };
        }
        // A pin of the chronological log of earlier versions (no VRF key)
        // names heads of another format: trust the directory anew (the
        // pinned keys, if any, still apply).
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

/// Device ids saved as hex.
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

/// Where the key store lives and the key that opens it.
#[derive(Debug, Clone)]
pub struct KeyStore {
    path: PathBuf,
    key: StoreKey,
}

impl KeyStore {
    /// A store at `path`, encrypted under `key`.
    pub fn new(path: impl Into<PathBuf>, key: StoreKey) -> Self {
        Self {
            path: path.into(),
            key,
        }
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the file exists.
    pub fn exists(&self) -> bool {
        self.path.exists()
    }

    fn io(&self, source: std::io::Error) -> StoreError {
        StoreError::Io {
            path: self.path.clone(),
            source,
        }
    }

    /// Writes `data` to a new store; refuses to overwrite an existing file.
    pub fn create(&self, data: &DeviceData) -> Result<(), StoreError> {
        if self.exists() {
            return Err(StoreError::Exists(self.path.clone()));
        }
        self.save(data)
    }

    /// Reads and decrypts the store.
    pub fn load(&self) -> Result<DeviceData, StoreError> {
        let bytes = std::fs::read(&self.path).map_err(|e| self.io(e))?;
        if bytes.len() < MAGIC.len() + NONCE_LEN + 16 || &bytes[..4] != MAGIC {
            return Err(StoreError::NotAKeyStore(self.path.clone()));
        }
        let mut n = [0u8; NONCE_LEN];
        n.copy_from_slice(&bytes[4..4 + NONCE_LEN]);
        let nonce = XNonce::from(n);
        let plain = Zeroizing::new(
            XChaCha20Poly1305::new(&self.key.0.into())
                .decrypt(
                    &nonce,
                    Payload {
                        msg: &bytes[4 + NONCE_LEN..],
                        aad: MAGIC,
                    },
                )
                .map_err(|_| StoreError::WrongKeyOrCorrupted(self.path.clone()))?,
        );
        let invalid = |reason: String| StoreError::Invalid {
            path: self.path.clone(),
            reason,
        };
        let doc: Doc = serde_json::from_slice(&plain).map_err(|e| invalid(e.to_string()))?;
        DeviceData::from_doc(&doc).map_err(invalid)
    }

    /// Encrypts `data` and atomically replaces the file.
    pub fn save(&self, data: &DeviceData) -> Result<(), StoreError> {
        let doc = data.to_doc();
        let plain = Zeroizing::new(serde_json::to_vec(&doc).map_err(|e| StoreError::Invalid {
            path: self.path.clone(),
            reason: e.to_string(),
        })?);
        let mut nonce = [0u8; NONCE_LEN];
        rand::rngs::OsRng.unwrap_err().fill_bytes(&mut nonce);
        let ct = XChaCha20Poly1305::new(&self.key.0.into())
            .encrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: &plain,
                    aad: MAGIC,
                },
            )
            .map_err(|_| StoreError::Invalid {
                path: self.path.clone(),
                reason: "encryption failed".into(),
            })?;
        let dir = match self.path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let name = self
            .path
            .file_name()
            .map_or_else(|| "keystore".into(), |n| n.to_string_lossy().into_owned());
        let mut suffix = [0u8; 6];
        rand::rngs::OsRng.unwrap_err().fill_bytes(&mut suffix);
        let tmp = dir.join(format!(".{name}.{}.tmp", hex::encode(suffix)));
        let write = || -> std::io::Result<()> {
            let mut opts = std::fs::OpenOptions::new();
            opts.write(true).create_new(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                opts.mode(0o600);
            }
            let mut f = opts.open(&tmp)?;
            f.write_all(MAGIC)?;
            f.write_all(&nonce)?;
            f.write_all(&ct)?;
            f.sync_all()?;
            std::fs::rename(&tmp, &self.path)?;
            if let Ok(d) = std::fs::File::open(&dir) {
                let _ = d.sync_all();
            }
            Ok(())
        };
        write().map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            self.io(e)
        })
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_wrong_keys_and_damage() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("device.hks");
        let key = StoreKey::generate();
        let store = KeyStore::new(&path, key.clone());
        let mut data = DeviceData::generate(UserId::parse("alice").unwrap(), true);
        data.sequences.insert("private-a".into(), 42);
        let stream = StreamKey {
            user: UserId::parse("bob").unwrap(),
            device: DeviceId([7; 16]),
            channel: ChannelName::parse("private-a").unwrap(),
        };
        let state = StreamState {
            highest: 5000,
            seen: 0b1011,
            newest_ms: 1_750_000_000_000,
        };
        data.streams.insert(stream.clone(), state);
        data.mailbox_streams.insert(
            stream.clone(),
            StreamState {
                highest: 7,
                ..state
            },
        );
        data.inbox.push_back(InboxEntry {
            mailbox_id: 3,
            message_id: "00".repeat(16),
            sender_user: "bob".into(),
            sender_device: "07".repeat(16),
            conversation: "private-hush-mailbox-00".into(),
            sequence: 7,
            event: "message".into(),
            data: serde_json::json!({"text": "hi"}),
            timestamp_ms: 1,
            queued_ms: 2,
            received_ms: 3,
            late: false,
        });
        data.contacts.insert(
            "bob".into(),
            CachedUser {
                identity: "x".into(),
                verified: Some("x".into()),
                ..Default::default()
            },
        );
        store.create(&data).unwrap();
        assert!(matches!(store.create(&data), Err(StoreError::Exists(_))));
        let back = store.load().unwrap();
        assert_eq!(back.user_id().as_str(), "alice");
        assert_eq!(back.device_id(), data.device_id());
        assert_eq!(back.sequences["private-a"], 42);
        assert_eq!(back.streams[&stream], state);
        // The mailbox's guard state and inbox survive too.
        assert_eq!(back.mailbox_streams[&stream].highest, 7);
        assert_eq!(back.inbox, data.inbox);
        assert_eq!(back.verified_contacts(), vec!["bob".to_owned()]);
        assert_eq!(
            back.keys.encryption_public_key(),
            data.keys.encryption_public_key()
        );
        assert_eq!(
            back.identity.as_ref().unwrap().public_key(),
            data.identity.as_ref().unwrap().public_key()
        );

        // The file holds no key material in the clear.
        let raw = std::fs::read(&path).unwrap();
        let seed = data.identity.as_ref().unwrap().to_secret_bytes();
        assert!(!raw.windows(32).any(|w| w == seed.as_slice()));
        assert!(!String::from_utf8_lossy(&raw).contains("alice"));

        let wrong = KeyStore::new(&path, StoreKey::generate());
        assert!(matches!(
            wrong.load(),
            Err(StoreError::WrongKeyOrCorrupted(_))
        ));
        let mut bad = raw.clone();
        let n = bad.len() - 5;
        bad[n] ^= 1;
        std::fs::write(&path, &bad).unwrap();
        assert!(matches!(
            store.load(),
            Err(StoreError::WrongKeyOrCorrupted(_))
        ));
        std::fs::write(&path, b"nope").unwrap();
        assert!(matches!(store.load(), Err(StoreError::NotAKeyStore(_))));
        let missing = KeyStore::new(dir.path().join("missing"), key);
        assert!(matches!(missing.load(), Err(StoreError::Io { .. })));
        // Saving again replaces the file atomically, leaving no temp files.
        store.save(&data).unwrap();
        assert_eq!(store.load().unwrap().sequences["private-a"], 42);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    /// A card renewal's new X25519 key: the signing key stays, the
    /// encryption key changes, and the store keeps the new one.
    #[test]
    fn renewing_the_encryption_key_keeps_the_signing_key() {
        let dir = tempfile::tempdir().unwrap();
        let store = KeyStore::new(dir.path().join("d.hks"), StoreKey::generate());
        let mut data = DeviceData::generate(UserId::parse("alice").unwrap(), true);
        let before = data.keys.clone();
        data.renew_encryption_key();
        assert_eq!(data.keys.signing_public_key(), before.signing_public_key());
        assert_ne!(
            data.keys.encryption_public_key(),
            before.encryption_public_key()
        );
        store.create(&data).unwrap();
        let back = store.load().unwrap();
        assert_eq!(
            back.keys.encryption_public_key(),
            data.keys.encryption_public_key()
        );
    }
}
