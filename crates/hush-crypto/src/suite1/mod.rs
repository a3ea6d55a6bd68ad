//! Suite 1: signed multi-recipient envelopes (shared E2EE.md §7.3; byte
//! layout in `docs/E2EE-SUITE1.md`).
//!
//! One random 32-byte content key per message. The body is sealed once with
//! ChaCha20-Poly1305 under that key; the key is wrapped for every recipient
//! device with HPKE (RFC 9180, base mode, DHKEM(X25519, HKDF-SHA256),
//! HKDF-SHA256, ChaCha20-Poly1305). The sender device's Ed25519 signature
//! over `header ‖ inner event ‖ plaintext` sits inside the ciphertext; the
//! header commits to the recipient list, and header ‖ recipient table are the
//! body's associated data, so an envelope cannot be moved to another
//! channel, re-addressed or stripped of recipients. Each recipient entry
//! names the recipient's user id, device id and the hash of the card the
//! sender encrypted to ([`Recipient::binding`]), so a recipient who re-wraps
//! the content key for someone else cannot pass it off as addressed to
//! them, even under a copied device id. The inner event name and
//! the plaintext are padded together, so the length the relay sees does not
//! depend on the event name. The result travels as standard base64 in
//! Pusher's `data` string (at most 10 240 bytes).
//!
//! **Body nonce.** The body uses the IETF ChaCha20-Poly1305 with an all-zero
//! 12-byte nonce. That is safe because the content key is 32 fresh random
//! bytes used for exactly one encryption (a nonce must be unique per key,
//! not globally), and it is what HPKE itself does for the first message of a
//! context. It saves the 24 bytes of an XChaCha20 nonce per message and
//! keeps to primitives that CryptoKit, Android and WebCrypto-based HPKE
//! libraries have natively.
//!
//! Receivers ([`Envelope::open`]) check that they are listed, unwrap,
//! decrypt, verify the signature against the sender's device card (which the
//! caller obtained from the directory and verified against the sender's
//! trusted identity key), refuse revoked senders, refuse messages whose
//! signed timestamp is outside the freshness window around the receiver's
//! clock ([`ReplayGuard::max_age_ms`], ±300 s by default), and refuse replays
//! ([`ReplayGuard`]).
//!
//! Sealing draws its randomness from the operating system only: there is no
//! public way to seal with a caller's generator (a deterministic one would
//! repeat content keys and HPKE ephemerals).

pub mod conversation;
pub mod reorder;
mod replay;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Nonce};
use hpke::{Deserializable, OpModeR, OpModeS, Serializable};
use hush_protocol::limits::MAX_EVENT_DATA_BYTES;
use hush_protocol::{ChannelName, EventName, UserId};
use rand_core::CryptoRng;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

pub use replay::{
    Accepted, DEFAULT_MAX_AGE_MS, DEFAULT_MAX_STREAMS, DEFAULT_MAX_STREAMS_PER_USER,
    DEFAULT_STREAMS, ReplayGuard, StreamKey, StreamLimit, StreamState, WINDOW,
};

use crate::identity::{
    CardId, DEVICE_ID_LEN, DeviceCard, DeviceId, DeviceKeys, EncryptionPublicKey,
    IdentityPublicKey, Kem, Revocation, SIGNATURE_LEN, os_rng,
};
use crate::transparency::SignedTreeHead;
use crate::wire::{Reader, Writer};

type HpkeAead = hpke::aead::ChaCha20Poly1305;
type HpkeKdf = hpke::kdf::HkdfSha256;

/// Envelope format version (4: every recipient entry carries the
/// recipient's binding (user id, device id, card id) and the signed
/// recipients hash covers it; 3 added the gossiped tree head; 2 put the
/// inner event name inside the padding). Other versions are refused.
pub const VERSION: u8 = 4;
/// Suite id.
pub const SUITE: u8 = 1;
/// First bytes of every envelope (base64 `aHVzaA…`).
pub const MAGIC: &[u8; 4] = b"hush";
/// Length of a message id.
pub const MESSAGE_ID_LEN: usize = 16;
/// Length of a recipient binding ([`Recipient::binding`]).
pub const BINDING_LEN: usize = 32;
/// Bytes per recipient-table entry: device id (16) ‖ recipient binding (32)
/// ‖ HPKE `enc` (32) ‖ wrapped content key (32 + 16-byte tag).
pub const RECIPIENT_ENTRY_LEN: usize = DEVICE_ID_LEN + BINDING_LEN + 32 + 48;
/// Most recipients a table can hold (its count is a `u16`).
pub const MAX_TABLE_ENTRIES: usize = u16::MAX as usize;
/// Pusher's limit on the `data` string, in bytes.
pub const MAX_DATA_LEN: usize = MAX_EVENT_DATA_BYTES;
/// The padded part of the body (inner event name, plaintext length and
/// plaintext) is padded up to one of these buckets, then to a multiple of
/// 1024.
pub const PADDING_BUCKETS: [usize; 5] = [256, 512, 1024, 2048, 4096];

const TAG_LEN: usize = 16;
const CTX_SIGNATURE: &[u8] = b"hush/v1/suite1/signature\0";
const CTX_RECIPIENTS: &[u8] = b"hush/v1/suite1/recipients\0";
const CTX_RECIPIENT: &[u8] = b"hush/v1/suite1/recipient\0";
const HPKE_INFO_PREFIX: &[u8] = b"hush/v1/suite1\0";

/// Why an envelope could not be sealed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    /// The recipient list is empty.
    #[error("an envelope needs at least one recipient device")]
    NoRecipients,
    /// A device appears twice in the recipient list.
    #[error("recipient device {0} is listed twice")]
    DuplicateRecipient(DeviceId),
    /// A recipient's encryption key is unusable (low-order point).
    #[error("recipient device {0} has an invalid encryption key")]
    InvalidRecipientKey(DeviceId),
    /// The base64 envelope would exceed Pusher's 10 240-byte `data` limit.
    #[error(
        "envelope would be {data_len} bytes of event data, over the {max} byte limit; \
         this message fits at most {max_recipients} recipient devices (use a group key above that)"
    )]
    TooLarge {
        /// Length of the base64 data string.
        data_len: usize,
        /// The limit.
        max: usize,
        /// How many recipient devices this message could have had.
        max_recipients: usize,
    },
}

/// Why an envelope was refused. Decryption failures are one opaque
/// [`OpenError::Decrypt`]: they never say which byte or check failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    /// Not a suite 1 envelope (bad base64, truncated, bad field).
    #[error("not a suite 1 envelope")]
    Malformed,
    /// Another format version or suite.
    #[error("unsupported envelope version {version} / suite {suite}")]
    Unsupported {
        /// Version byte.
        version: u8,
        /// Suite byte.
        suite: u8,
    },
    /// This device is not in the recipient table, or its entry names
    /// another user or another card of this device (a message addressed to
    /// someone else, or to a card this device has replaced).
    #[error("this device is not a recipient of the message")]
    NotARecipient,
    /// The supplied card is not the sender's, is not bound to the trusted
    /// identity key, or was not valid at the message's time.
    #[error("unknown sender: no valid card for the sending device")]
    UnknownSender,
    /// The sender's device (or identity key) has been revoked.
    #[error("the sending device has been revoked")]
    RevokedSender,
    /// Unwrapping or decrypting failed: wrong key, or the header, table or
    /// body was altered.
    #[error("decryption failed: altered data or wrong key")]
    Decrypt,
    /// Decrypted, but the sender's signature does not verify.
    #[error("the sender's signature is invalid")]
    BadSignature,
    /// Already seen: a sequence number this sender stream already had
    /// accepted, 0, or one [`WINDOW`] or more below the highest accepted.
    #[error("replayed message")]
    Replay,
    /// The signed timestamp is outside the freshness window around the
    /// receiver's clock ([`ReplayGuard::max_age_ms`]): too old, or from the
    /// future.
    #[error("message expired or from the future (timestamp outside the window)")]
    Expired,
    /// The message would open a new sender stream, but the replay guard is
    /// at its cap for the sender's user or in all
    /// ([`ReplayGuard::with_stream_limits`]) and none of its streams has
    /// expired yet. Nothing was recorded; the same message opens once
    /// streams expire (within the freshness window, or it is `Expired`).
    #[error("too many live sender streams: {0}")]
    TooManyStreams(#[from] StreamLimit),
}

/// One recipient device, made from the device card the sender encrypts to
/// (`Recipient::from(&card)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recipient {
    /// The device.
    pub device_id: DeviceId,
    /// Its HPKE (X25519) key.
    pub key: EncryptionPublicKey,
    /// Commitment to the recipient's user id, device id and card id.
    binding: [u8; BINDING_LEN],
}

impl Recipient {
    /// The recipient's binding, as its table entry carries it:
    /// `SHA-256("hush/v1/suite1/recipient\0" ‖ str16(user id) ‖ device id
    /// ‖ card id)`. The signed recipients hash covers it, and a receiver
    /// opens only an entry whose binding is its own (its user, its device,
    /// the card it holds).
    pub fn binding(&self) -> [u8; BINDING_LEN] {
        self.binding
    }
}

impl From<&DeviceCard> for Recipient {
    fn from(card: &DeviceCard) -> Self {
        Self {
            device_id: card.device_id(),
            key: *card.encryption_key(),
            binding: binding_of(card),
        }
    }
}

/// The binding of a recipient: its user id, device id and the id (hash) of
/// the card the sender encrypted to.
fn binding(user: &UserId, device: &DeviceId, card: &CardId) -> [u8; BINDING_LEN] {
    let mut h = Sha256::new();
    h.update(CTX_RECIPIENT);
    h.update(
        u16::try_from(user.as_str().len())
            .unwrap_or(u16::MAX)
            .to_be_bytes(),
    );
    h.update(user.as_str().as_bytes());
    h.update(device.0);
    h.update(card.0);
    h.finalize().into()
}

/// The binding of the device `card` describes.
fn binding_of(card: &DeviceCard) -> [u8; BINDING_LEN] {
    binding(card.user_id(), &card.device_id(), &card.id())
}

/// Everything but the plaintext that goes into an envelope.
#[derive(Debug, Clone, Copy)]
pub struct SealRequest<'a> {
    /// The sender's user id.
    pub sender_user: &'a UserId,
    /// The sending device.
    pub sender_device: DeviceId,
    /// The sending device's keys (its signing key signs the message).
    pub sender_keys: &'a DeviceKeys,
    /// The channel the event is published on.
    pub channel: &'a ChannelName,
    /// The visible (outer) event name, e.g. a constant `e2ee`.
    pub event: &'a EventName,
    /// The real event name, carried inside the ciphertext.
    pub inner_event: &'a EventName,
    /// Sender time, Unix milliseconds.
    pub timestamp_ms: u64,
    /// The sender device's counter on this channel: 1 for the first
    /// message, then +1 per message (receivers report skipped numbers as
    /// gaps and accept reordering within [`WINDOW`] messages).
    pub sequence: u64,
    /// Recipient devices (include the sender's other devices to sync them).
    pub recipients: &'a [Recipient],
    /// The sender's latest verified directory tree head, as the directory
    /// signed it (gossip: receivers compare it with their own view and so
    /// detect a directory that shows them a different log). `None` for a
    /// sender without a directory view (a backend).
    pub tree_head: Option<&'a SignedTreeHead>,
}

/// The envelope header: associated data of the body and the first part of
/// what the sender signs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Sender's user id.
    pub sender_user: UserId,
    /// Sending device.
    pub sender_device: DeviceId,
    /// Channel.
    pub channel: ChannelName,
    /// Outer event name.
    pub event: EventName,
    /// Random message id.
    pub message_id: [u8; MESSAGE_ID_LEN],
    /// Sender time, Unix milliseconds.
    pub timestamp_ms: u64,
    /// Sender device's per-channel counter: 1, 2, 3, … with no holes, so a
    /// receiver sees a dropped message as a gap.
    pub sequence: u64,
    /// SHA-256 over the recipient table's device ids and bindings (user
    /// id, device id, card id), in table order.
    pub recipients_hash: [u8; 32],
    /// The sender's latest verified directory tree head (gossip), covered
    /// by the sender's signature and the body's associated data. Its log
    /// signature is not checked here (the receiver's directory client knows
    /// the log key).
    pub tree_head: Option<SignedTreeHead>,
}

impl Header {
    fn write(&self, w: &mut Writer) {
        w.bytes(MAGIC)
            .u8(VERSION)
            .u8(SUITE)
            .str16(self.sender_user.as_str().as_bytes())
            .bytes(&self.sender_device.0)
            .str16(self.channel.as_str().as_bytes())
            .str16(self.event.as_str().as_bytes())
            .bytes(&self.message_id)
            .u64(self.timestamp_ms)
            .u64(self.sequence)
            .bytes(&self.recipients_hash)
            .str16(&self.tree_head_bytes());
    }

    /// The gossiped head's wire form, empty when there is none.
    fn tree_head_bytes(&self) -> Vec<u8> {
        self.tree_head
            .as_ref()
            .map(SignedTreeHead::to_bytes)
            .unwrap_or_default()
    }

    fn encoded_len(&self) -> usize {
        4 + 2
            + 2
            + self.sender_user.as_str().len()
            + DEVICE_ID_LEN
            + 2
            + self.channel.as_str().len()
            + 2
            + self.event.as_str().len()
            + MESSAGE_ID_LEN
            + 8
            + 8
            + 32
            + 2
            + self.tree_head_bytes().len()
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, OpenError> {
        let m = |_| OpenError::Malformed;
        if r.take(4).map_err(m)? != MAGIC {
            return Err(OpenError::Malformed);
        }
        let version = r.u8().map_err(m)?;
        let suite = r.u8().map_err(m)?;
        if version != VERSION || suite != SUITE {
            return Err(OpenError::Unsupported { version, suite });
        }
        let sender_user =
            UserId::parse(text(r.str16().map_err(m)?)?).map_err(|_| OpenError::Malformed)?;
        let sender_device = DeviceId(r.array().map_err(m)?);
        let channel =
            ChannelName::parse(text(r.str16().map_err(m)?)?).map_err(|_| OpenError::Malformed)?;
        let event =
            EventName::parse_api(text(r.str16().map_err(m)?)?).map_err(|_| OpenError::Malformed)?;
        Ok(Self {
            sender_user,
            sender_device,
            channel,
            event,
            message_id: r.array().map_err(m)?,
            timestamp_ms: r.u64().map_err(m)?,
            sequence: r.u64().map_err(m)?,
            recipients_hash: r.array().map_err(m)?,
            tree_head: match r.str16().map_err(m)? {
                [] => None,
                b => Some(SignedTreeHead::from_bytes(b).map_err(|_| OpenError::Malformed)?),
            },
        })
    }
}

fn text(b: &[u8]) -> Result<&str, OpenError> {
    std::str::from_utf8(b).map_err(|_| OpenError::Malformed)
}

/// `SHA-256(ctx ‖ count ‖ (device id ‖ binding)…)` over the table's entries.
fn recipients_hash<'a>(
    entries: impl ExactSizeIterator<Item = (DeviceId, &'a [u8; BINDING_LEN])>,
) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(CTX_RECIPIENTS);
    h.update(
        u16::try_from(entries.len())
            .unwrap_or(u16::MAX)
            .to_be_bytes(),
    );
    for (id, binding) in entries {
        h.update(id.0);
        h.update(binding);
    }
    h.finalize().into()
}

/// The padded length of a `len`-byte padded part (`str16(inner event) ‖
/// u32 length ‖ plaintext`).
pub fn padded_len(len: usize) -> usize {
    PADDING_BUCKETS
        .iter()
        .copied()
        .find(|&b| len <= b)
        .unwrap_or_else(|| len.div_ceil(1024) * 1024)
}

fn base64_len(n: usize) -> usize {
    n.div_ceil(3) * 4
}

/// Bytes of `str16(inner event) ‖ u32 length ‖ plaintext`, before padding.
fn inner_len(inner_event: &EventName, plaintext_len: usize) -> usize {
    2 + inner_event.as_str().len() + 4 + plaintext_len
}

/// Bytes of the encrypted body for this inner event and plaintext length.
fn body_len(inner_event: &EventName, plaintext_len: usize) -> usize {
    SIGNATURE_LEN + padded_len(inner_len(inner_event, plaintext_len)) + TAG_LEN
}

/// Length of the base64 `data` string for `recipients` devices.
fn data_len(header_len: usize, body_len: usize, recipients: usize) -> usize {
    base64_len(header_len + 2 + recipients * RECIPIENT_ENTRY_LEN + body_len)
}

/// How many recipient devices fit in one event for these names and this
/// plaintext length (0 if not even one does).
pub fn max_recipients(
    sender_user: &UserId,
    channel: &ChannelName,
    event: &EventName,
    inner_event: &EventName,
    plaintext_len: usize,
) -> usize {
    let header = Header {
        sender_user: sender_user.clone(),
        sender_device: DeviceId([0; DEVICE_ID_LEN]),
        channel: channel.clone(),
        event: event.clone(),
        message_id: [0; MESSAGE_ID_LEN],
        timestamp_ms: 0,
        sequence: 0,
        recipients_hash: [0; 32],
        tree_head: None,
    };
    max_recipients_for(
        header.encoded_len(),
        body_len(inner_event, plaintext_len),
        MAX_DATA_LEN,
    )
}

fn max_recipients_for(header_len: usize, body_len: usize, limit: usize) -> usize {
    let raw_max = limit / 4 * 3;
    let fixed = header_len + 2 + body_len;
    (raw_max.saturating_sub(fixed) / RECIPIENT_ENTRY_LEN).min(MAX_TABLE_ENTRIES)
}

/// Seals `plaintext` for the recipients and returns the base64 `data`
/// string. Randomness (message id, content key, HPKE ephemeral keys) comes
/// from the operating system.
pub fn seal(req: &SealRequest<'_>, plaintext: &[u8]) -> Result<String, SealError> {
    seal_inner(req, plaintext, MAX_DATA_LEN, &mut os_rng())
}

/// [`seal`] with the randomness drawn from `rng`, in this order: message id
/// (16 bytes), content key (32), then for each recipient in order the
/// 32-byte HPKE ephemeral key material (RFC 9180 `DeriveKeyPair` input).
/// Ed25519 signatures are deterministic, so a seeded `rng` gives
/// reproducible known-answer vectors. Tests only (and the `kat` feature, for
/// hush-wasm's known-answer replay): a deterministic generator in production
/// would reuse content keys and HPKE ephemerals.
#[cfg(any(test, feature = "kat"))]
pub fn seal_with_rng(
    req: &SealRequest<'_>,
    plaintext: &[u8],
    rng: &mut impl CryptoRng,
) -> Result<String, SealError> {
    seal_inner(req, plaintext, MAX_DATA_LEN, rng)
}

/// [`seal`] for transports without Pusher's 10 240-byte event limit (for
/// example a mailbox fetched over hush's own API): the base64 output may be
/// up to `max_data_len` bytes. [`Envelope::from_data`] reads envelopes of
/// any size. A receiver that fetches such messages later than the freshness
/// window allows (±300 s by default) must open them with a wider window
/// ([`ReplayGuard::with_max_age_ms`]), or they are refused as
/// [`OpenError::Expired`].
pub fn seal_with_limit(
    req: &SealRequest<'_>,
    plaintext: &[u8],
    max_data_len: usize,
) -> Result<String, SealError> {
    seal_inner(req, plaintext, max_data_len, &mut os_rng())
}

fn seal_inner(
    req: &SealRequest<'_>,
    plaintext: &[u8],
    limit: usize,
    rng: &mut impl CryptoRng,
) -> Result<String, SealError> {
    let n = req.recipients.len();
    if n == 0 {
        return Err(SealError::NoRecipients);
    }
    let mut seen = std::collections::HashSet::with_capacity(n);
    for r in req.recipients {
        if !seen.insert(r.device_id) {
            return Err(SealError::DuplicateRecipient(r.device_id));
        }
    }

    let mut message_id = [0u8; MESSAGE_ID_LEN];
    rng.fill_bytes(&mut message_id);
    let header = Header {
        sender_user: req.sender_user.clone(),
        sender_device: req.sender_device,
        channel: req.channel.clone(),
        event: req.event.clone(),
        message_id,
        timestamp_ms: req.timestamp_ms,
        sequence: req.sequence,
        recipients_hash: recipients_hash(req.recipients.iter().map(|r| (r.device_id, &r.binding))),
        tree_head: req.tree_head.cloned(),
    };
    let header_len = header.encoded_len();
    let body_len = body_len(req.inner_event, plaintext.len());
    let total = data_len(header_len, body_len, n);
    if total > limit || n > MAX_TABLE_ENTRIES || u32::try_from(plaintext.len()).is_err() {
        return Err(SealError::TooLarge {
            data_len: total,
            max: limit,
            max_recipients: max_recipients_for(header_len, body_len, limit),
        });
    }

    let mut out = Writer::with_capacity(header_len + 2 + n * RECIPIENT_ENTRY_LEN + body_len);
    header.write(&mut out);
    let header_bytes = out.as_slice().to_vec();

    let signed = signed_message(
        &header_bytes,
        req.inner_event.as_str().as_bytes(),
        plaintext,
    );
    let signature = req.sender_keys.sign_prefixed(&signed);
    drop(signed);

    let mut content_key = Zeroizing::new([0u8; 32]);
    rng.fill_bytes(content_key.as_mut_slice());

    // Recipient table.
    out.u16(n as u16);
    let info = hpke_info(&message_id);
    for r in req.recipients {
        let pk = r
            .key
            .to_hpke()
            .ok_or(SealError::InvalidRecipientKey(r.device_id))?;
        let aad = wrap_aad(&header_bytes, &r.device_id, &r.binding);
        let (enc, wrapped) = hpke::single_shot_seal_with_rng::<HpkeAead, HpkeKdf, Kem>(
            &OpModeS::Base,
            &pk,
            &info,
            content_key.as_slice(),
            &aad,
            rng,
        )
        .map_err(|_| SealError::InvalidRecipientKey(r.device_id))?;
        out.bytes(&r.device_id.0)
            .bytes(&r.binding)
            .bytes(&enc.to_bytes())
            .bytes(&wrapped);
    }

    // Body: signature ‖ padded(str16(inner event) ‖ u32 length ‖ plaintext
    // ‖ zeros): the padding covers the event name too, so its length does
    // not show.
    let inner = inner_len(req.inner_event, plaintext.len());
    let mut body = Zeroizing::new(Vec::with_capacity(body_len));
    body.extend_from_slice(&signature);
    body.extend_from_slice(
        &u16::try_from(req.inner_event.as_str().len())
            .unwrap_or(u16::MAX)
            .to_be_bytes(),
    );
    body.extend_from_slice(req.inner_event.as_str().as_bytes());
    body.extend_from_slice(&(plaintext.len() as u32).to_be_bytes());
    body.extend_from_slice(plaintext);
    body.resize(SIGNATURE_LEN + padded_len(inner), 0);
    let sealed = content_cipher(&content_key)
        .encrypt(
            &Nonce::default(),
            Payload {
                msg: &body,
                // header ‖ recipient table: every recipient notices a
                // change to any entry, not only to its own.
                aad: out.as_slice(),
            },
        )
        .map_err(|_| SealError::TooLarge {
            data_len: total,
            max: limit,
            max_recipients: 0,
        })?;
    out.bytes(&sealed);
    Ok(STANDARD.encode(out.into_vec()))
}

/// The sender as the receiver knows it: the sending device's card (from the
/// directory), the identity key the receiver trusts for that user (from the
/// transparency log or a verified safety number), and the revocations the
/// directory returned for that user.
#[derive(Debug, Clone, Copy)]
pub struct TrustedSender<'a> {
    /// The sending device's card.
    pub card: &'a DeviceCard,
    /// The identity key trusted for the sender's user id.
    pub identity: &'a IdentityPublicKey,
    /// Revocation records for the sender's user.
    pub revocations: &'a [Revocation],
}

/// An opened, verified message. `Debug` shows the plaintext's length, not
/// its content, so logging an `Opened` cannot leak the message.
#[derive(Clone, PartialEq, Eq)]
pub struct Opened {
    /// The header (sender, channel, message id, time, sequence).
    pub header: Header,
    /// The real event name.
    pub event: EventName,
    /// The plaintext.
    pub plaintext: Vec<u8>,
    /// Messages of this sender stream skipped by this one (a gap: dropped by
    /// the relay, still in flight, or not addressed to this device); see
    /// [`Accepted::missed`].
    pub missed: u64,
}

impl std::fmt::Debug for Opened {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Opened")
            .field("header", &self.header)
            .field("event", &self.event)
            .field("plaintext_len", &self.plaintext.len())
            .field("missed", &self.missed)
            .finish()
    }
}

struct Entry<'a> {
    device_id: DeviceId,
    binding: &'a [u8; BINDING_LEN],
    enc: &'a [u8],
    wrapped: &'a [u8],
}

/// A parsed (not yet opened) envelope. Read [`header`](Self::header) to know
/// which sender card to fetch, then [`open`](Self::open).
pub struct Envelope {
    header: Header,
    bytes: Vec<u8>,
    header_len: usize,
    table_start: usize,
    count: usize,
}

impl std::fmt::Debug for Envelope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Envelope")
            .field("header", &self.header)
            .field("recipients", &self.count)
            .field("len", &self.bytes.len())
            .finish()
    }
}

impl Envelope {
    /// Parses the base64 `data` string.
    pub fn from_data(data: &str) -> Result<Self, OpenError> {
        let bytes = STANDARD
            .decode(data.as_bytes())
            .map_err(|_| OpenError::Malformed)?;
        Self::from_bytes(bytes)
    }

    /// Parses the binary envelope.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self, OpenError> {
        let m = |_| OpenError::Malformed;
        let mut r = Reader::new(&bytes);
        let header = Header::read(&mut r)?;
        let header_len = header.encoded_len();
        let count = usize::from(r.u16().map_err(m)?);
        if count == 0 {
            return Err(OpenError::Malformed);
        }
        let table_start = header_len + 2;
        r.take(count * RECIPIENT_ENTRY_LEN).map_err(m)?;
        // signature + event length + plaintext length + tag, at least.
        if bytes.len() < table_start + count * RECIPIENT_ENTRY_LEN + SIGNATURE_LEN + 2 + 4 + TAG_LEN
        {
            return Err(OpenError::Malformed);
        }
        Ok(Self {
            header,
            bytes,
            header_len,
            table_start,
            count,
        })
    }

    /// The envelope's bytes, as parsed (what a relay stores).
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The header (authenticated only once [`open`](Self::open) succeeds).
    pub fn header(&self) -> &Header {
        &self.header
    }

    fn entry(&self, i: usize) -> Entry<'_> {
        let start = self.table_start + i * RECIPIENT_ENTRY_LEN;
        let e = &self.bytes[start..start + RECIPIENT_ENTRY_LEN];
        let (id, rest) = e.split_at(DEVICE_ID_LEN);
        let (binding, rest) = rest.split_at(BINDING_LEN);
        let (enc, wrapped) = rest.split_at(32);
        Entry {
            device_id: DeviceId(id.try_into().unwrap_or_default()),
            binding: binding.try_into().unwrap_or(&[0; BINDING_LEN]),
            enc,
            wrapped,
        }
    }

    /// The recipient device ids, in table order.
    pub fn recipients(&self) -> Vec<DeviceId> {
        (0..self.count).map(|i| self.entry(i).device_id).collect()
    }

    /// Opens the envelope as the device of card `me` (this device's own
    /// card, the one senders encrypt to; `keys` its private keys) at the
    /// receiver's time `now_ms` (Unix milliseconds) and verifies it:
    /// `sender.card` must be the
    /// header's sender device, bound to `sender.identity`, valid at `now_ms`
    /// (not expired, not created in the future beyond the allowed clock skew)
    /// and not revoked; this device must be listed with the binding of
    /// `me` (its user id, device id and card id: an entry the sender made
    /// for another user or another card is not this device's); the table
    /// must match the header's recipient hash; unwrapping, decryption and the
    /// signature must
    /// succeed; the signed timestamp must be within
    /// [`guard.max_age_ms()`](ReplayGuard::max_age_ms) of `now_ms`; and
    /// `guard` must not have seen the message. Only then is the message
    /// recorded in `guard`.
    pub fn open(
        &self,
        me: &DeviceCard,
        keys: &DeviceKeys,
        sender: &TrustedSender<'_>,
        guard: &mut ReplayGuard,
        now_ms: u64,
    ) -> Result<Opened, OpenError> {
        let h = &self.header;
        let card = sender.card;
        if *card.user_id() != h.sender_user || card.device_id() != h.sender_device {
            return Err(OpenError::UnknownSender);
        }
        card.verify(&h.sender_user, sender.identity, now_ms / 1000)
            .map_err(|_| OpenError::UnknownSender)?;
        let revoked = sender
            .revocations
            .iter()
            .any(|rev| rev.verify(&h.sender_user, sender.identity).is_ok() && rev.revokes(card));
        if revoked {
            return Err(OpenError::RevokedSender);
        }
        let stream = StreamKey {
            user: h.sender_user.clone(),
            device: h.sender_device,
            channel: h.channel.clone(),
        };
        if !guard.check(&stream, h.sequence) {
            return Err(OpenError::Replay);
        }
        guard.room(&stream, now_ms)?;
        let my_id = me.device_id();
        let mine = binding_of(me);
        let entry = (0..self.count)
            .map(|i| self.entry(i))
            .find(|e| e.device_id == my_id && *e.binding == mine)
            .ok_or(OpenError::NotARecipient)?;
        let expected = recipients_hash((0..self.count).map(|i| {
            let e = self.entry(i);
            (e.device_id, e.binding)
        }));
        if !bool::from(expected.ct_eq(&h.recipients_hash)) {
            return Err(OpenError::Decrypt);
        }

        let header_bytes = &self.bytes[..self.header_len];
        let info = hpke_info(&h.message_id);
        let aad = wrap_aad(header_bytes, &my_id, &mine);
        let enc = <Kem as hpke::Kem>::EncappedKey::from_bytes(entry.enc)
            .map_err(|_| OpenError::Decrypt)?;
        let content_key = Zeroizing::new(
            hpke::single_shot_open::<HpkeAead, HpkeKdf, Kem>(
                &OpModeR::Base,
                keys.encryption_key(),
                &enc,
                &info,
                entry.wrapped,
                &aad,
            )
            .map_err(|_| OpenError::Decrypt)?,
        );
        // A reference into the wiped buffer: no stack copy of the key.
        let key: &[u8; 32] = content_key
            .as_slice()
            .try_into()
            .map_err(|_| OpenError::Decrypt)?;
        let body_start = self.table_start + self.count * RECIPIENT_ENTRY_LEN;
        let body = Zeroizing::new(
            content_cipher(key)
                .decrypt(
                    &Nonce::default(),
                    Payload {
                        msg: &self.bytes[body_start..],
                        aad: &self.bytes[..body_start],
                    },
                )
                .map_err(|_| OpenError::Decrypt)?,
        );

        // signature ‖ padded(u16 len ‖ inner event ‖ u32 len ‖ plaintext ‖ zeros)
        let d = |_| OpenError::Decrypt;
        let mut r = Reader::new(&body);
        let signature: [u8; SIGNATURE_LEN] = r.array().map_err(d)?;
        let event_bytes = r.str16().map_err(d)?;
        let len = u32::from_be_bytes(r.array().map_err(d)?) as usize;
        let plaintext = r.take(len).map_err(d)?;
        let inner = 2 + event_bytes.len() + 4 + len;
        let padding = r.take(padded_len(inner) - inner).map_err(d)?;
        r.finish().map_err(d)?;
        if padding.iter().any(|&b| b != 0) {
            return Err(OpenError::Decrypt);
        }
        let event = std::str::from_utf8(event_bytes)
            .ok()
            .and_then(|s| EventName::parse_api(s).ok())
            .ok_or(OpenError::Decrypt)?;

        let signed = signed_message(header_bytes, event_bytes, plaintext);
        card.signing_key()
            .verify_prefixed(&signed, &signature)
            .map_err(|_| OpenError::BadSignature)?;
        drop(signed);

        // The timestamp is the sender's signed claim: judged only now that
        // the signature holds.
        if h.timestamp_ms.abs_diff(now_ms) > guard.max_age_ms() {
            return Err(OpenError::Expired);
        }

        let accepted = guard.commit(&stream, h.sequence, h.timestamp_ms, now_ms)?;
        Ok(Opened {
            header: h.clone(),
            event,
            plaintext: plaintext.to_vec(),
            missed: accepted.missed,
        })
    }
}

/// The body's AEAD, keyed straight from the content key's wiped buffer (no
/// stack copy; the cipher wipes its own copy when dropped).
fn content_cipher(key: &[u8; 32]) -> ChaCha20Poly1305 {
    ChaCha20Poly1305::new(key.into())
}

/// The HPKE `info` of every wrapped content key: the suite's label and the
/// message id. Sealing and opening build it here only, so they cannot drift.
fn hpke_info(message_id: &[u8; MESSAGE_ID_LEN]) -> Vec<u8> {
    [HPKE_INFO_PREFIX, message_id.as_slice()].concat()
}

/// The associated data of one recipient's wrapped key: header ‖ device id
/// ‖ binding.
fn wrap_aad(header: &[u8], device: &DeviceId, binding: &[u8; BINDING_LEN]) -> Vec<u8> {
    [header, device.0.as_slice(), binding.as_slice()].concat()
}

/// What the sender signs: the signature context ‖ header ‖ u16-length inner
/// event ‖ plaintext, built once (signing and verifying make no further
/// copy). It holds a copy of the plaintext, so it is wiped when dropped (the
/// buffer is allocated at its final size: no reallocation leaves a copy).
fn signed_message(header: &[u8], event: &[u8], plaintext: &[u8]) -> Zeroizing<Vec<u8>> {
    let len = CTX_SIGNATURE.len() + header.len() + 2 + event.len() + plaintext.len();
    let mut w = Writer::with_capacity(len);
    w.bytes(CTX_SIGNATURE)
        .bytes(header)
        .str16(event)
        .bytes(plaintext);
    Zeroizing::new(w.into_vec())
}

/// Finding 11: no public way to seal with a caller-chosen generator. A
/// deterministic (or attacker-influenced) one would give two messages the
/// same content key and HPKE ephemerals. This must not compile:
///
/// ```compile_fail
/// use hush_crypto::suite1::seal_with_rng;
/// ```
///
/// while the operating-system sealers stay public:
///
/// ```
/// use hush_crypto::suite1::{seal, seal_with_limit};
/// ```
#[cfg(doctest)]
pub mod attack_seal_with_rng_is_public {}

#[cfg(test)]
mod kat;
#[cfg(test)]
mod tests;
