//! Sealed events on encrypted channels (docs/E2EE-CHANNELS.md §2): the real
//! event name, a sender id, a per-sender sequence number, a message id and a
//! timestamp travel *inside* the suite 0 box, padded to a size bucket, under
//! a constant outer event name.
//!
//! The box is sealed under [`sealed_key`], derived from the channel (epoch)
//! key with HKDF and a label of its own, never under the channel key itself:
//! a relay that renames a sealed event into a plain suite 0 event (which
//! receivers open with the channel key, without replay or freshness checks)
//! gets an event nobody can open.
//!
//! ```
//! use hush_crypto::epoch::epoch_key;
//! use hush_crypto::sealed::{self, ReplayGuard, Sender};
//! use hush_crypto::{EncryptedData, MasterKey};
//! use hush_protocol::ChannelName;
//!
//! let master = MasterKey::generate();
//! let channel = ChannelName::parse("private-encrypted-room")?;
//! let key = epoch_key(&channel, &master, 3);
//! let now_ms = 1_700_000_000_000;
//!
//! let mut sender = Sender::new();
//! let data = sender.seal(&key, &channel, 3, "message", r#"{"text":"hi"}"#, now_ms)?;
//!
//! let envelope = EncryptedData::from_json(&data)?;
//! assert_eq!(envelope.epoch(), 3);
//! let event = sealed::open(&key, &channel, &envelope)?;
//! let mut guard = ReplayGuard::default();
//! guard.check(&event, now_ms)?;
//! assert_eq!((event.event.as_str(), event.data.as_str()), ("message", r#"{"text":"hi"}"#));
//! assert!(guard.check(&event, now_ms).is_err()); // the same event twice is a replay
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::HashMap;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use crypto_secretbox::aead::OsRng;
use crypto_secretbox::aead::rand_core::RngCore;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use hkdf::Hkdf;
use hush_protocol::ChannelName;
use hush_protocol::EventName;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use zeroize::{Zeroize, Zeroizing};

use crate::wire::Writer;

use crate::suite0::{ChannelKey, EncryptedData, KEY_LEN, NONCE_LEN};

/// Outer event name of a sealed event the app backend triggers.
pub const SERVER_EVENT: &str = "hush-sealed";
/// Outer event name of a sealed client event.
pub const CLIENT_EVENT: &str = "client-hush-sealed";
/// Plaintext sizes a sealed event is padded to.
pub const BUCKETS: [usize; 7] = [128, 256, 512, 1024, 2048, 4096, 7168];
/// Largest padded plaintext: its outer data string stays under Pusher's
/// 10 240-byte event limit.
pub const MAX_PLAINTEXT: usize = 7168;
/// Default freshness window: events whose timestamp is further than this
/// from the receiver's clock are refused.
pub const DEFAULT_MAX_AGE_MS: u64 = 300_000;
/// Width of the per-sender replay window, in sequence numbers.
pub const REPLAY_WINDOW: u64 = 1024;
/// Senders tracked per [`ReplayGuard`] by default.
pub const DEFAULT_MAX_SENDERS: usize = 4096;

/// The HKDF salt of [`sealed_key`] (24 ASCII bytes).
pub const SEALED_KEY_SALT: &[u8] = b"hush sealed event key v1";

/// Version 2: the sender id is derived from the sender's Ed25519 key, which
/// signs every event (issue 13, finding 8).
const FORMAT_VERSION: u8 = 2;
const CTX_SENDER_ID: &[u8] = b"hush/v1/sealed/sender-id\0";
const CTX_SIGNATURE: &[u8] = b"hush/v1/sealed/signature\0";
const ID_LEN: usize = 16;
/// Length of a base64url (unpadded) 16-byte id.
const ID_TEXT_LEN: usize = 22;

/// Why a sealed event was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SealedError {
    /// The padded plaintext would exceed [`MAX_PLAINTEXT`].
    #[error("sealed event too large: {len} bytes of plaintext, at most {MAX_PLAINTEXT}")]
    TooLarge {
        /// Unpadded plaintext length.
        len: usize,
    },
    /// The real event name is not one an event may have (empty, too long,
    /// control characters, or a reserved `pusher:` / `pusher_internal:`
    /// name).
    #[error("invalid event name for a sealed event")]
    EventName,
    /// The outer data is not an envelope, or the plaintext is not a version 1
    /// sealed event (including an invalid real event name).
    #[error("malformed sealed event")]
    Malformed,
    /// Wrong key (or wrong epoch key), or altered data.
    #[error("decryption failed: wrong key or altered data")]
    Decrypt,
    /// Sealed for another channel.
    #[error("sealed event belongs to another channel")]
    WrongChannel,
    /// The sender id is not the one derived from the sender key the event
    /// carries, or that key's signature does not verify: someone claimed
    /// another sender's id.
    #[error("sealed event signature invalid or sender id not the sender key's")]
    BadSignature,
    /// The inner epoch differs from the epoch the envelope names.
    #[error("sealed event epoch does not match its envelope")]
    WrongEpoch,
    /// The timestamp is outside the freshness window.
    #[error("sealed event expired or from the future (timestamp outside the window)")]
    Expired,
    /// This sender's sequence number was already seen.
    #[error("replayed sealed event (sequence number already seen)")]
    Replayed,
    /// This sender's sequence number is below the replay window.
    #[error("stale sealed event (sequence number below the replay window)")]
    Stale,
}

/// The plaintext of a sealed event, members in wire order.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Inner<'a> {
    v: u8,
    #[serde(borrow)]
    ch: &'a str,
    ep: u64,
    #[serde(borrow)]
    sid: &'a str,
    #[serde(borrow)]
    spk: &'a str,
    seq: u64,
    #[serde(borrow)]
    mid: &'a str,
    ts: u64,
    // Owned: JSON escapes in these make borrowing impossible in general.
    ev: String,
    data: String,
    #[serde(borrow)]
    sig: &'a str,
    #[serde(borrow)]
    pad: &'a str,
}

/// A sealed event after opening: who sent it and what it says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opened {
    /// The key epoch it was sealed under.
    pub epoch: u64,
    /// The sender id (22 characters of base64url).
    pub sender: String,
    /// The sender's sequence number.
    pub seq: u64,
    /// The message id (22 characters of base64url).
    pub message_id: String,
    /// The sender's clock, Unix milliseconds.
    pub timestamp_ms: u64,
    /// The real event name.
    pub event: String,
    /// The real event data.
    pub data: String,
}

/// The key sealed events of a channel (epoch) are boxed under:
/// `HKDF-SHA256(salt = "hush sealed event key v1", IKM = channel key,
/// info = "")`, 32 bytes. Distinct from the channel key, so a sealed event
/// never opens as a plain suite 0 event and a plain event never opens as a
/// sealed one. [`Sender::seal`] and [`open`] derive it themselves from the
/// channel key they are given.
///
/// The pseudo-random key and the output are wiped; the HMAC state inside
/// `hkdf` 0.12 is not (that crate has no `zeroize` support).
pub fn sealed_key(channel_key: &ChannelKey) -> ChannelKey {
    let (mut prk, hkdf) = Hkdf::<Sha256>::extract(Some(SEALED_KEY_SALT), channel_key.as_bytes());
    prk.as_mut_slice().zeroize();
    let mut okm = Zeroizing::new([0u8; KEY_LEN]);
    // 32 bytes is far below HKDF-SHA256's 8160-byte output limit, so `expand`
    // cannot fail; the all-zero fallback is unreachable.
    let _ = hkdf.expand(b"", okm.as_mut_slice());
    ChannelKey::take_bytes(&mut okm)
}

fn random_id() -> String {
    let mut id = [0u8; ID_LEN];
    OsRng.fill_bytes(&mut id);
    URL_SAFE_NO_PAD.encode(id)
}

fn is_id(text: &str) -> bool {
    text.len() == ID_TEXT_LEN
        && URL_SAFE_NO_PAD
            .decode(text)
            .is_ok_and(|bytes| bytes.len() == ID_LEN)
}

/// The sender id of the sender whose Ed25519 public key is `key`: the first
/// 16 bytes of `SHA-256("hush/v1/sealed/sender-id\0" ‖ key)`, base64url.
fn sender_id(key: &[u8; 32]) -> String {
    let mut h = Sha256::new();
    h.update(CTX_SENDER_ID);
    h.update(key);
    let digest: [u8; 32] = h.finalize().into();
    URL_SAFE_NO_PAD.encode(&digest[..ID_LEN])
}

/// What a sender signs: every member but the padding, with lengths, so no
/// two events share the bytes. Holds the data, so it is wiped when dropped.
#[allow(clippy::too_many_arguments)]
fn signed_bytes(
    ch: &str,
    ep: u64,
    sid: &str,
    seq: u64,
    mid: &str,
    ts: u64,
    ev: &str,
    data: &str,
) -> Zeroizing<Vec<u8>> {
    let mut w = Writer::with_capacity(CTX_SIGNATURE.len() + 128 + data.len());
    w.bytes(CTX_SIGNATURE)
        .str16(ch.as_bytes())
        .u64(ep)
        .str16(sid.as_bytes())
        .u64(seq)
        .str16(mid.as_bytes())
        .u64(ts)
        .str16(ev.as_bytes())
        .u64(data.len() as u64)
        .bytes(data.as_bytes());
    Zeroizing::new(w.into_vec())
}

/// Seals events for one sender: an Ed25519 key of its own, the sender id
/// derived from it, and a sequence number that grows by one per event. Every
/// event is signed, so no other member can claim this sender's id (and push
/// its replay window away). Keep one per client (or backend process) for
/// its lifetime; a new one is a new sender to every receiver.
pub struct Sender {
    id: String,
    key: SigningKey,
    next_seq: u64,
}

impl std::fmt::Debug for Sender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sender")
            .field("id", &self.id)
            .field("next_seq", &self.next_seq)
            .finish_non_exhaustive()
    }
}

impl Sender {
    /// A new sender with a random key, starting at sequence number 1.
    pub fn new() -> Self {
        let mut seed = Zeroizing::new([0u8; 32]);
        OsRng.fill_bytes(seed.as_mut_slice());
        Self::from_seed(&seed)
    }

    fn from_seed(seed: &[u8; 32]) -> Self {
        let key = SigningKey::from_bytes(seed);
        Self {
            id: sender_id(&key.verifying_key().to_bytes()),
            key,
            next_seq: 1,
        }
    }

    /// This sender's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Seals `event`/`data` for `channel` under `key` (the key of `epoch`)
    /// and returns the outer `data` string to send as event
    /// [`SERVER_EVENT`] or [`CLIENT_EVENT`]. `now_ms` is the sender's clock.
    pub fn seal(
        &mut self,
        key: &ChannelKey,
        channel: &ChannelName,
        epoch: u64,
        event: &str,
        data: &str,
        now_ms: u64,
    ) -> Result<String, SealedError> {
        let mut nonce = [0u8; NONCE_LEN];
        OsRng.fill_bytes(&mut nonce);
        let message_id = random_id();
        let sealed =
            self.seal_with(key, channel, epoch, event, data, now_ms, &message_id, nonce)?;
        Ok(sealed)
    }

    /// [`Self::seal`] with the random inputs given (known-answer tests).
    #[allow(clippy::too_many_arguments)]
    fn seal_with(
        &mut self,
        key: &ChannelKey,
        channel: &ChannelName,
        epoch: u64,
        event: &str,
        data: &str,
        now_ms: u64,
        message_id: &str,
        nonce: [u8; NONCE_LEN],
    ) -> Result<String, SealedError> {
        EventName::parse_api(event).map_err(|_| SealedError::EventName)?;
        let signed = signed_bytes(
            channel.as_str(),
            epoch,
            &self.id,
            self.next_seq,
            message_id,
            now_ms,
            event,
            data,
        );
        let sig = URL_SAFE_NO_PAD.encode(self.key.sign(&signed).to_bytes());
        drop(signed);
        let spk = URL_SAFE_NO_PAD.encode(self.key.verifying_key().to_bytes());
        let mut plaintext = padded_plaintext(Inner {
            v: FORMAT_VERSION,
            ch: channel.as_str(),
            ep: epoch,
            sid: &self.id,
            spk: &spk,
            seq: self.next_seq,
            mid: message_id,
            ts: now_ms,
            ev: event.to_owned(),
            data: data.to_owned(),
            sig: &sig,
            pad: "",
        })?;
        self.next_seq = self.next_seq.saturating_add(1);
        let wire = EncryptedData::seal_with_nonce(&sealed_key(key), nonce, &plaintext)
            .with_epoch(epoch)
            .to_json();
        plaintext.zeroize();
        Ok(wire)
    }
}

impl Default for Sender {
    fn default() -> Self {
        Self::new()
    }
}

/// Serializes `inner` padded with spaces to the smallest bucket that holds it.
fn padded_plaintext(inner: Inner<'_>) -> Result<Vec<u8>, SealedError> {
    let bare = serde_json::to_vec(&inner).map_err(|_| SealedError::Malformed)?;
    let Some(bucket) = BUCKETS.iter().copied().find(|b| *b >= bare.len()) else {
        return Err(SealedError::TooLarge { len: bare.len() });
    };
    let padding = " ".repeat(bucket - bare.len());
    let inner = Inner {
        pad: &padding,
        ..inner
    };
    let mut padded = serde_json::to_vec(&inner).map_err(|_| SealedError::Malformed)?;
    let mut bare = bare;
    bare.zeroize();
    // Spaces need no escaping, so the length is exact; say so if not.
    if padded.len() != bucket {
        padded.zeroize();
        return Err(SealedError::Malformed);
    }
    Ok(padded)
}

/// Opens a sealed event that arrived on `channel`, with the key of the epoch
/// the envelope names (the channel key: the [`sealed_key`] is derived from
/// it here), and checks it belongs there. Replay and freshness are checked by
/// [`ReplayGuard::check`] afterwards.
pub fn open(
    key: &ChannelKey,
    channel: &ChannelName,
    envelope: &EncryptedData,
) -> Result<Opened, SealedError> {
    let mut plaintext = envelope
        .open(&sealed_key(key))
        .map_err(|_| SealedError::Decrypt)?;
    let opened = parse_inner(&plaintext, channel, envelope.epoch());
    plaintext.zeroize();
    opened
}

fn parse_inner(plaintext: &[u8], channel: &ChannelName, epoch: u64) -> Result<Opened, SealedError> {
    let inner: Inner<'_> = serde_json::from_slice(plaintext).map_err(|_| SealedError::Malformed)?;
    let well_formed = inner.v == FORMAT_VERSION
        && is_id(inner.sid)
        && is_id(inner.mid)
        // The same rules as any event a listener sees: a member cannot
        // smuggle `pusher:…` or control characters in through a seal.
        && EventName::parse_api(&inner.ev).is_ok()
        && inner.pad.bytes().all(|b| b == b' ');
    if !well_formed {
        return Err(SealedError::Malformed);
    }
    if inner.ch != channel.as_str() {
        return Err(SealedError::WrongChannel);
    }
    if inner.ep != epoch {
        return Err(SealedError::WrongEpoch);
    }
    // The sender id is the carried key's, and that key signed the event: a
    // member can only ever advance the replay window of its own id.
    let spk: [u8; 32] = URL_SAFE_NO_PAD
        .decode(inner.spk)
        .ok()
        .and_then(|v| v.try_into().ok())
        .ok_or(SealedError::Malformed)?;
    let sig: [u8; 64] = URL_SAFE_NO_PAD
        .decode(inner.sig)
        .ok()
        .and_then(|v| v.try_into().ok())
        .ok_or(SealedError::Malformed)?;
    if sender_id(&spk) != inner.sid {
        return Err(SealedError::BadSignature);
    }
    let signed = signed_bytes(
        inner.ch,
        inner.ep,
        inner.sid,
        inner.seq,
        inner.mid,
        inner.ts,
        &inner.ev,
        &inner.data,
    );
    VerifyingKey::from_bytes(&spk)
        .and_then(|k| k.verify_strict(&signed, &Signature::from_bytes(&sig)))
        .map_err(|_| SealedError::BadSignature)?;
    drop(signed);
    Ok(Opened {
        epoch,
        sender: inner.sid.to_owned(),
        seq: inner.seq,
        message_id: inner.mid.to_owned(),
        timestamp_ms: inner.ts,
        event: inner.ev,
        data: inner.data,
    })
}

/// One sender's replay state: the highest sequence number seen and a ring
/// bitmap of the [`REPLAY_WINDOW`] numbers below it (bit `seq % 1024`).
#[derive(Debug)]
struct Window {
    highest: u64,
    seen: [u64; (REPLAY_WINDOW / 64) as usize],
    last_used_ms: u64,
}

impl Window {
    fn new(seq: u64) -> Self {
        let mut window = Self {
            highest: seq,
            seen: [0; (REPLAY_WINDOW / 64) as usize],
            last_used_ms: 0,
        };
        window.set(seq);
        window
    }

    fn slot(seq: u64) -> (usize, u64) {
        let bit = seq % REPLAY_WINDOW;
        ((bit / 64) as usize, 1 << (bit % 64))
    }

    fn set(&mut self, seq: u64) {
        let (word, mask) = Self::slot(seq);
        self.seen[word] |= mask;
    }

    fn is_set(&self, seq: u64) -> bool {
        let (word, mask) = Self::slot(seq);
        self.seen[word] & mask != 0
    }

    /// Accepts `seq` once, or says why not.
    fn accept(&mut self, seq: u64) -> Result<(), SealedError> {
        if seq > self.highest {
            if seq - self.highest >= REPLAY_WINDOW {
                self.seen = [0; (REPLAY_WINDOW / 64) as usize];
            } else {
                for skipped in self.highest + 1..=seq {
                    let (word, mask) = Self::slot(skipped);
                    self.seen[word] &= !mask;
                }
            }
            self.highest = seq;
            self.set(seq);
            return Ok(());
        }
        if self.highest - seq >= REPLAY_WINDOW {
            return Err(SealedError::Stale);
        }
        if self.is_set(seq) {
            return Err(SealedError::Replayed);
        }
        self.set(seq);
        Ok(())
    }
}

/// Replay and freshness checks for the sealed events of one channel.
#[derive(Debug)]
pub struct ReplayGuard {
    max_age_ms: u64,
    max_senders: usize,
    senders: HashMap<String, Window>,
}

impl ReplayGuard {
    /// A guard with a freshness window of `max_age_ms` (either side of the
    /// receiver's clock) that tracks at most `max_senders` senders (the least
    /// recently seen is forgotten first).
    pub fn new(max_age_ms: u64, max_senders: usize) -> Self {
        Self {
            max_age_ms,
            max_senders: max_senders.max(1),
            senders: HashMap::new(),
        }
    }

    /// Accepts `event` if it is fresh and its (sender, sequence number) was
    /// not seen before; records it. `now_ms` is the receiver's clock.
    pub fn check(&mut self, event: &Opened, now_ms: u64) -> Result<(), SealedError> {
        if event.timestamp_ms.abs_diff(now_ms) > self.max_age_ms {
            return Err(SealedError::Expired);
        }
        if let Some(window) = self.senders.get_mut(&event.sender) {
            window.accept(event.seq)?;
            window.last_used_ms = now_ms;
            return Ok(());
        }
        if self.senders.len() >= self.max_senders {
            let oldest = self
                .senders
                .iter()
                .min_by_key(|(_, w)| w.last_used_ms)
                .map(|(id, _)| id.clone());
            if let Some(oldest) = oldest {
                self.senders.remove(&oldest);
            }
        }
        let mut window = Window::new(event.seq);
        window.last_used_ms = now_ms;
        self.senders.insert(event.sender.clone(), window);
        Ok(())
    }

    /// Number of senders currently tracked.
    pub fn senders(&self) -> usize {
        self.senders.len()
    }
}

impl Default for ReplayGuard {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_AGE_MS, DEFAULT_MAX_SENDERS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::epoch::epoch_key;
    use crate::suite0::{MasterKey, open as open_suite0};

    const NOW: u64 = 1_700_000_000_000;

    fn master() -> MasterKey {
        MasterKey::from_base64("dGhpcyBpcyAzMiBieXRlcyBsb25nLCBpdCByZWFsbHk=").unwrap()
    }

    fn foo() -> ChannelName {
        ChannelName::parse("private-encrypted-foo").unwrap()
    }

    /// A sender with a fixed key (seed 32 × 0x11), for known answers.
    fn fixed_sender() -> Sender {
        Sender::from_seed(&[0x11; 32])
    }

    fn seal_fixed(sender: &mut Sender, epoch: u64, event: &str, data: &str) -> String {
        let key = epoch_key(&foo(), &master(), epoch);
        let mid = URL_SAFE_NO_PAD.encode([0x22; ID_LEN]);
        sender
            .seal_with(&key, &foo(), epoch, event, data, NOW, &mid, [0; NONCE_LEN])
            .unwrap()
    }

    fn open_at(epoch: u64, wire: &str) -> Result<Opened, SealedError> {
        let envelope = EncryptedData::from_json(wire).map_err(|_| SealedError::Malformed)?;
        open(&epoch_key(&foo(), &master(), epoch), &foo(), &envelope)
    }

    /// The plaintext layout of docs/E2EE-CHANNELS.md §2, byte for byte.
    #[test]
    fn kat_plaintext_layout() {
        let wire = seal_fixed(&mut fixed_sender(), 7, "message", r#"{"text":"hi"}"#);
        let key = sealed_key(&epoch_key(&foo(), &master(), 7));
        let plaintext = open_suite0(&key, &wire).unwrap();
        assert_eq!(plaintext.len(), 512);
        let text = String::from_utf8(plaintext).unwrap();
        // Sender key: Ed25519 seed 32 × 0x11; sid, spk and sig reproduced
        // with Python's `cryptography` and `hashlib`.
        let expected_prefix = concat!(
            r#"{"v":2,"ch":"private-encrypted-foo","ep":7,"#,
            r#""sid":"pXOKEz11LuomGswmF_uybg","#,
            r#""spk":"0EqyMnQrtKs6E2i9RhXk5tAiSrcaAWuvhSCjMsl3hzc","seq":1,"#,
            r#""mid":"IiIiIiIiIiIiIiIiIiIiIg","ts":1700000000000,"#,
            r#""ev":"message","data":"{\"text\":\"hi\"}","#,
            r#""sig":"jzX8b39WiLbWGS4AMmrs7k6stL3cMlHZQ6XKaZqFNb9Hy5TEKuTybJxbJ4KQZ8-SYRzDCIjCJse5miVjfgLTAA","#,
            r#""pad":""#
        );
        assert!(text.starts_with(expected_prefix), "{text}");
        assert_eq!(text.len() - expected_prefix.len() - 2, 182, "spaces");
        assert!(text.ends_with(r#"   "}"#));
    }

    /// Whole-envelope known answer (nonce all zero, which only tests may do).
    /// The keys (epoch key, sealed-event key) are cross-checked with an RFC
    /// 5869 HKDF in Python; the secretbox layer is suite 0's, whose own
    /// vectors are cross-checked with PyNaCl and pusher-http-node.
    #[test]
    fn kat_envelope() {
        let wire = seal_fixed(&mut fixed_sender(), 7, "message", r#"{"text":"hi"}"#);
        assert!(wire.ends_with(r#","epoch":7}"#));
        let digest = {
            use sha2::Digest;
            hex::encode(sha2::Sha256::digest(wire.as_bytes()))
        };
        assert_eq!(
            digest,
            crate::known_answers::ka("sealed.envelope.wire_sha256"),
            "{wire}"
        );
        if std::env::var_os("HUSH_PRINT_KAT").is_some() {
            eprintln!("sealed.envelope.wire = {wire}");
        }
        assert_eq!(wire, crate::known_answers::ka("sealed.envelope.wire"));
    }

    #[test]
    fn round_trip_and_buckets() {
        let mut sender = Sender::new();
        let key = epoch_key(&foo(), &master(), 2);
        for len in [0usize, 1, 50, 200, 1000, 3000, 6700] {
            let data = "x".repeat(len);
            let wire = sender.seal(&key, &foo(), 2, "ev", &data, NOW).unwrap();
            assert!(wire.len() <= hush_protocol::limits::MAX_EVENT_DATA_BYTES);
            assert!(hush_protocol::encrypted::is_ciphertext_envelope(&wire));
            let plaintext = open_suite0(&sealed_key(&key), &wire).unwrap();
            assert!(BUCKETS.contains(&plaintext.len()), "{}", plaintext.len());
            let opened = open_at(2, &wire).unwrap();
            assert_eq!(opened.data, data);
            assert_eq!(opened.event, "ev");
            assert_eq!(opened.sender, sender.id());
        }
        let too_big = "x".repeat(7200);
        assert!(matches!(
            sender.seal(&key, &foo(), 2, "ev", &too_big, NOW),
            Err(SealedError::TooLarge { .. })
        ));
    }

    #[test]
    fn largest_bucket_fits_pushers_limit() {
        let wire_len = EncryptedData::wire_len_at(MAX_PLAINTEXT, u64::MAX);
        assert!(
            wire_len <= hush_protocol::limits::MAX_EVENT_DATA_BYTES,
            "{wire_len}"
        );
    }

    #[test]
    fn sequence_numbers_grow() {
        let mut sender = fixed_sender();
        let a = open_at(0, &seal_fixed(&mut sender, 0, "e", "1")).unwrap();
        let b = open_at(0, &seal_fixed(&mut sender, 0, "e", "2")).unwrap();
        assert_eq!((a.seq, b.seq), (1, 2));
    }

    #[test]
    fn tampering_is_refused() {
        let wire = seal_fixed(&mut fixed_sender(), 1, "message", "hello");
        let mut envelope = EncryptedData::from_json(&wire).unwrap();
        // Relabel the epoch: the wrong key is chosen and opening fails.
        envelope = envelope.with_epoch(2);
        assert_eq!(
            open(&epoch_key(&foo(), &master(), 2), &foo(), &envelope),
            Err(SealedError::Decrypt)
        );
        // Right key for the old epoch, but the envelope claims another one.
        assert_eq!(
            open(&epoch_key(&foo(), &master(), 1), &foo(), &envelope),
            Err(SealedError::WrongEpoch)
        );
        // Moved to another channel that happens to share the key.
        let bar = ChannelName::parse("private-encrypted-bar").unwrap();
        let original = EncryptedData::from_json(&wire).unwrap();
        assert_eq!(
            open(&epoch_key(&foo(), &master(), 1), &bar, &original),
            Err(SealedError::WrongChannel)
        );
        // Any flipped ciphertext bit.
        let value: serde_json::Value = serde_json::from_str(&wire).unwrap();
        let mut ct = base64::engine::general_purpose::STANDARD
            .decode(value["ciphertext"].as_str().unwrap())
            .unwrap();
        ct[40] ^= 1;
        let tampered = format!(
            r#"{{"nonce":"{}","ciphertext":"{}","epoch":1}}"#,
            value["nonce"].as_str().unwrap(),
            base64::engine::general_purpose::STANDARD.encode(&ct)
        );
        assert_eq!(open_at(1, &tampered), Err(SealedError::Decrypt));
    }

    /// A member cannot make listeners see a reserved or malformed event name
    /// through a seal: sealing refuses it, and a hand-made plaintext that
    /// carries one does not open.
    #[test]
    fn real_event_names_follow_the_event_rules() {
        let key = epoch_key(&foo(), &master(), 0);
        for bad in [
            "pusher:subscription_succeeded",
            "pusher_internal:x",
            "",
            "a\nb",
        ] {
            assert_eq!(
                Sender::new().seal(&key, &foo(), 0, bad, "{}", NOW),
                Err(SealedError::EventName),
                "{bad:?}"
            );
            let plaintext = padded_plaintext(Inner {
                v: FORMAT_VERSION,
                ch: foo().as_str(),
                ep: 0,
                sid: &URL_SAFE_NO_PAD.encode([0x11; ID_LEN]),
                spk: "",
                seq: 1,
                mid: &URL_SAFE_NO_PAD.encode([0x22; ID_LEN]),
                ts: NOW,
                ev: bad.to_owned(),
                data: "{}".to_owned(),
                sig: "",
                pad: "",
            })
            .unwrap();
            let wire =
                EncryptedData::seal_with_nonce(&sealed_key(&key), [0; NONCE_LEN], &plaintext)
                    .to_json();
            assert_eq!(open_at(0, &wire), Err(SealedError::Malformed), "{bad:?}");
        }
        assert!(
            Sender::new()
                .seal(&key, &foo(), 0, "message", "{}", NOW)
                .is_ok()
        );
    }

    #[test]
    fn plain_suite0_payloads_are_not_sealed_events() {
        let key = epoch_key(&foo(), &master(), 0);
        let wire = crate::suite0::seal(&key, br#"{"message":"hello"}"#);
        assert_eq!(open_at(0, &wire), Err(SealedError::Decrypt));
        // Even a sealed-event record boxed under the channel key itself.
        let record = padded_plaintext(Inner {
            v: FORMAT_VERSION,
            ch: foo().as_str(),
            ep: 0,
            sid: &URL_SAFE_NO_PAD.encode([0x11; ID_LEN]),
            spk: "",
            seq: 1,
            mid: &URL_SAFE_NO_PAD.encode([0x22; ID_LEN]),
            ts: NOW,
            ev: "message".to_owned(),
            data: "{}".to_owned(),
            sig: "",
            pad: "",
        })
        .unwrap();
        let wire = EncryptedData::seal_with_nonce(&key, [0; NONCE_LEN], &record).to_json();
        assert_eq!(open_at(0, &wire), Err(SealedError::Decrypt));
    }

    /// Finding 7: the relay renames a sealed event (`hush-sealed`) into a
    /// plain event (`message`) on the same channel. Receivers open plain
    /// suite 0 events with the channel key and no replay or freshness check,
    /// so before the sealed key was separate, the sealed record opened there
    /// (and could be replayed forever). Now it opens only as a sealed event.
    #[test]
    fn attack_sealed_event_relabelled_as_plain_suite0() {
        for epoch in [0, 3] {
            let key = epoch_key(&foo(), &master(), epoch);
            let wire = Sender::new()
                .seal(&key, &foo(), epoch, "message", r#"{"text":"hi"}"#, NOW)
                .unwrap();
            let envelope = EncryptedData::from_json(&wire).unwrap();
            assert!(
                envelope.open(&key).is_err(),
                "epoch {epoch}: a sealed event opened as plain suite 0"
            );
            assert!(open_suite0(&key, &wire).is_err());
            // As a sealed event it still opens.
            assert_eq!(open(&key, &foo(), &envelope).unwrap().event, "message");
        }
    }

    /// Known answer (docs/E2EE-CHANNELS.md §2), computed independently with
    /// Python's `hmac`/`hashlib` (RFC 5869).
    #[test]
    fn kat_sealed_key() {
        let key = sealed_key(&epoch_key(&foo(), &master(), 0));
        assert_eq!(
            hex::encode(key.as_bytes()),
            crate::known_answers::ka("sealed.sealed_keys.0.key_hex")
        );
        let key = sealed_key(&epoch_key(&foo(), &master(), 7));
        assert_eq!(
            hex::encode(key.as_bytes()),
            crate::known_answers::ka("sealed.sealed_keys.1.key_hex")
        );
    }

    fn opened(sender: &str, seq: u64, ts: u64) -> Opened {
        Opened {
            epoch: 0,
            sender: sender.to_owned(),
            seq,
            message_id: String::new(),
            timestamp_ms: ts,
            event: "e".into(),
            data: String::new(),
        }
    }

    #[test]
    fn replay_window() {
        let mut guard = ReplayGuard::default();
        guard.check(&opened("a", 5, NOW), NOW).unwrap();
        assert_eq!(
            guard.check(&opened("a", 5, NOW), NOW),
            Err(SealedError::Replayed)
        );
        // Out of order within the window is fine, once.
        guard.check(&opened("a", 3, NOW), NOW).unwrap();
        assert_eq!(
            guard.check(&opened("a", 3, NOW), NOW),
            Err(SealedError::Replayed)
        );
        guard.check(&opened("a", 2000, NOW), NOW).unwrap();
        assert_eq!(
            guard.check(&opened("a", 976, NOW), NOW),
            Err(SealedError::Stale)
        );
        guard.check(&opened("a", 977, NOW), NOW).unwrap();
        // Skipped numbers become acceptable, seen ones stay refused after a jump.
        guard.check(&opened("a", 2003, NOW), NOW).unwrap();
        guard.check(&opened("a", 2001, NOW), NOW).unwrap();
        assert_eq!(
            guard.check(&opened("a", 2000, NOW), NOW),
            Err(SealedError::Replayed)
        );
        // Another sender has its own numbers.
        guard.check(&opened("b", 5, NOW), NOW).unwrap();
    }

    #[test]
    fn freshness() {
        let mut guard = ReplayGuard::new(1_000, 16);
        assert_eq!(
            guard.check(&opened("a", 1, NOW - 1_001), NOW),
            Err(SealedError::Expired)
        );
        assert_eq!(
            guard.check(&opened("a", 1, NOW + 1_001), NOW),
            Err(SealedError::Expired)
        );
        guard.check(&opened("a", 1, NOW - 1_000), NOW).unwrap();
    }

    #[test]
    fn sender_table_is_bounded() {
        let mut guard = ReplayGuard::new(DEFAULT_MAX_AGE_MS, 3);
        for (i, s) in ["a", "b", "c", "d"].iter().enumerate() {
            guard.check(&opened(s, 1, NOW), NOW + i as u64).unwrap();
        }
        assert_eq!(guard.senders(), 3);
    }

    /// Finding 8: Mallory, a channel member (she has the channel key),
    /// seals an event under the victim's sender id with sequence `u64::MAX`.
    /// Before, it opened and moved the victim's replay window to the top:
    /// every later event of the victim was `Stale`, for good. Now the sender
    /// id is derived from the key that signs the event, and Mallory can sign
    /// only with her own.
    #[test]
    fn attack_member_claims_sender_id_with_max_sequence() {
        let key = epoch_key(&foo(), &master(), 0);
        let mut victim = Sender::new();
        let mut mallory = Sender::new();
        let mut guard = ReplayGuard::default();
        let seal =
            |s: &mut Sender, text: &str| s.seal(&key, &foo(), 0, "message", text, NOW).unwrap();
        let first = open_at(0, &seal(&mut victim, "one")).unwrap();
        guard.check(&first, NOW).unwrap();

        mallory.id = victim.id().to_owned();
        mallory.next_seq = u64::MAX;
        if let Ok(claim) = open_at(0, &seal(&mut mallory, "silence")) {
            let _ = guard.check(&claim, NOW);
        }
        let second = open_at(0, &seal(&mut victim, "two")).unwrap();
        guard
            .check(&second, NOW)
            .expect("the victim's next event is refused after Mallory's claim");
        assert_eq!(second.data, "two");
    }

    /// The fix for finding 8, piece by piece: a claimed id with the
    /// claimant's own key is refused, and so is a changed signed member.
    #[test]
    fn sender_ids_are_bound_to_a_signing_key() {
        let key = epoch_key(&foo(), &master(), 0);
        let victim = Sender::new();
        let mut mallory = Sender::new();
        mallory.id = victim.id().to_owned();
        let wire = mallory.seal(&key, &foo(), 0, "m", "x", NOW).unwrap();
        assert_eq!(open_at(0, &wire), Err(SealedError::BadSignature));

        // A member re-boxes a genuine event with a larger sequence number.
        let wire = fixed_sender().seal(&key, &foo(), 0, "m", "x", NOW).unwrap();
        let plaintext = open_suite0(&sealed_key(&key), &wire).unwrap();
        let text = String::from_utf8(plaintext).unwrap();
        let bumped = text.replacen(r#""seq":1,"#, r#""seq":9,"#, 1);
        assert_ne!(bumped, text);
        let wire =
            EncryptedData::seal_with_nonce(&sealed_key(&key), [0; NONCE_LEN], bumped.as_bytes())
                .to_json();
        assert_eq!(open_at(0, &wire), Err(SealedError::BadSignature));
    }

    #[test]
    fn error_text_reveals_nothing() {
        assert_eq!(
            SealedError::Decrypt.to_string(),
            "decryption failed: wrong key or altered data"
        );
    }
}
