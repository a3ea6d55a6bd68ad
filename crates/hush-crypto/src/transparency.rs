//! Key transparency: the key directory's signed epoch heads, the entries it
//! commits to per user and their proofs ([`proofs`], on Meta's akd), and the
//! client-side [`LogMonitor`] that pins the directory's keys and refuses a
//! head that rolls back, forks or is stale.
//!
//! * [`TreeHead`]: `{log id, epoch, root, timestamp}` signed by the
//!   directory's Ed25519 key ([`SignedTreeHead`]). The server signs a fresh
//!   head (timestamp = its clock) with every answer, saying "at this time the
//!   latest epoch is `epoch`, with this root".
//! * [`proofs`]: the per-user [`UserEntry`](proofs::UserEntry) the tree
//!   commits to, and lookup and history proof verification.
//! * [`LogMonitor`]: the pinned key and the last head the client trusted;
//!   a head for an older epoch is a rollback, two roots for one epoch a fork
//!   (also across clients: [`LogMonitor::cross_check`], fed by the heads
//!   suite 1 envelopes gossip), a head outside [`Freshness`] stale.
//! * [`LogEntry`]: the signed records (cards and revocations) the server
//!   keeps in order and replays through the directory rules
//!   ([`crate::directory::DirectoryState`]).
//!
//! Full description: `docs/KEY-TRANSPARENCY.md`.

use std::collections::VecDeque;
use std::fmt;

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use subtle::ConstantTimeEq;

use crate::identity::{DeviceCard, Revocation, hex_str};

pub mod proofs;
use crate::wire::{Reader, Writer};

/// A 32-byte tree hash (akd's root hashes are BLAKE3).
pub type Hash = [u8; 32];

const STH_MAGIC: &[u8; 4] = b"HSTH";
const STH_VERSION: u8 = 2;
const CTX_STH: &[u8] = b"hush/v2/epoch-head\0";
/// Epoch heads a [`LogMonitor`] remembers for [`LogMonitor::cross_check`].
pub const REMEMBERED_HEADS: usize = 256;

/// Why a proof, tree head or directory entry was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LogError {
    /// The tree head's signature does not verify under the log key.
    #[error("tree head signature is invalid")]
    BadSignature,
    /// The tree head is for another log.
    #[error("tree head belongs to another log")]
    WrongLog,
    /// The directory offered an older epoch than one it showed before.
    #[error("directory rolled back from epoch {trusted} to {offered}")]
    Rollback {
        /// The epoch the client trusts.
        trusted: u64,
        /// The epoch offered.
        offered: u64,
    },
    /// Two different roots for one epoch: the directory forked or rewrote
    /// its history, or showed different trees to different clients.
    #[error("directory fork detected: two roots for one epoch")]
    Fork,
    /// A lookup or history proof that does not verify against the head
    /// (e.g. an entry that is not the user's latest, or another user's).
    #[error("directory proof does not verify")]
    BadProof,
    /// The client has no trusted tree head yet.
    #[error("no trusted tree head yet")]
    NoTrustedHead,
    /// Bytes that are not a tree head, entry or proof.
    #[error("malformed tree head, entry or proof")]
    Malformed,
    /// The tree head was signed longer ago than the [`Freshness`] bound: a
    /// directory replaying an old head to freeze the client on an old view.
    #[error("stale tree head: signed at {signed} ms, now is {now} ms")]
    Stale {
        /// The head's signed timestamp (Unix milliseconds).
        signed: u64,
        /// The client's clock (Unix milliseconds).
        now: u64,
    },
    /// The tree head's timestamp is further in the future than the clock
    /// skew [`Freshness`] allows.
    #[error("tree head from the future: signed at {signed} ms, now is {now} ms")]
    FromTheFuture {
        /// The head's signed timestamp (Unix milliseconds).
        signed: u64,
        /// The client's clock (Unix milliseconds).
        now: u64,
    },
}

/// How fresh a tree head served by the directory must be: the directory
/// signs a new head (timestamp = its clock) on every answer, so a head older
/// than `max_age_ms` is a replay, and one more than `max_skew_ms` ahead of
/// the client's clock is refused too ([`LogMonitor::update_fresh`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Freshness {
    /// The oldest a head may be (milliseconds).
    pub max_age_ms: u64,
    /// How far a head may be ahead of the client's clock (milliseconds).
    pub max_skew_ms: u64,
}

impl Freshness {
    /// Default bound on a head's age: 10 minutes.
    pub const DEFAULT_MAX_AGE_MS: u64 = 10 * 60 * 1000;
    /// Default bound on clock skew: 5 minutes (as sealed events' ±300 s).
    pub const DEFAULT_MAX_SKEW_MS: u64 = 5 * 60 * 1000;

    /// Checks `head`'s signed timestamp against `now_ms`.
    pub fn check(&self, head: &TreeHead, now_ms: u64) -> Result<(), LogError> {
        let (signed, now) = (head.timestamp, now_ms);
        if signed > now.saturating_add(self.max_skew_ms) {
            return Err(LogError::FromTheFuture { signed, now });
        }
        if now.saturating_sub(signed) > self.max_age_ms {
            return Err(LogError::Stale { signed, now });
        }
        Ok(())
    }
}

impl Default for Freshness {
    fn default() -> Self {
        Self {
            max_age_ms: Self::DEFAULT_MAX_AGE_MS,
            max_skew_ms: Self::DEFAULT_MAX_SKEW_MS,
        }
    }
}

/// What a key-directory log entry records. The leaf data is a tag byte and
/// the record's own wire form: `0x01 ‖ card` or `0x02 ‖ revocation`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogEntry {
    /// A device card was published.
    Card(DeviceCard),
    /// A revocation was published.
    Revocation(Revocation),
}

impl LogEntry {
    /// The leaf data.
    pub fn to_bytes(&self) -> Vec<u8> {
        let (tag, body) = match self {
            LogEntry::Card(c) => (1u8, c.to_bytes()),
            LogEntry::Revocation(r) => (2u8, r.to_bytes()),
        };
        let mut out = Vec::with_capacity(1 + body.len());
        out.push(tag);
        out.extend_from_slice(&body);
        out
    }

    /// Parses leaf data, verifying the record's signatures.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, LogError> {
        match bytes.split_first() {
            Some((1, body)) => DeviceCard::from_bytes(body)
                .map(LogEntry::Card)
                .map_err(|_| LogError::Malformed),
            Some((2, body)) => Revocation::from_bytes(body)
                .map(LogEntry::Revocation)
                .map_err(|_| LogError::Malformed),
            _ => Err(LogError::Malformed),
        }
    }
}

/// The log's Ed25519 signing key (held by the hush server). Zeroized on
/// drop; `Debug` is redacted.
#[derive(Clone)]
pub struct LogKey(SigningKey);

crate::identity::ed25519_secret!(LogKey);

impl LogKey {
    /// The public key clients pin.
    pub fn public_key(&self) -> LogPublicKey {
        LogPublicKey(self.0.verifying_key())
    }
    /// Signs a tree head.
    pub fn sign(&self, head: TreeHead) -> SignedTreeHead {
        let signature = self.0.sign(&head.signed_bytes()).to_bytes();
        SignedTreeHead { head, signature }
    }
}

impl fmt::Debug for LogKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LogKey(<redacted>, public {:?})", self.public_key())
    }
}

/// The log's public key.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct LogPublicKey(VerifyingKey);

impl LogPublicKey {
    /// Parses 32 bytes, refusing invalid and weak keys.
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<Self, LogError> {
        let key = VerifyingKey::from_bytes(bytes).map_err(|_| LogError::Malformed)?;
        if key.is_weak() {
            return Err(LogError::Malformed);
        }
        Ok(Self(key))
    }
    /// The 32 bytes.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.0.to_bytes()
    }
}

impl fmt::Debug for LogPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LogPublicKey({})", hex_str(self.0.as_bytes()))
    }
}

/// An epoch head: which directory, which epoch, its root, and when the
/// directory said so.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeHead {
    /// The directory's name (hush uses the app id: one directory per app).
    pub log_id: String,
    /// The epoch (0 before the first publication).
    pub epoch: u64,
    /// The akd root hash at that epoch.
    pub root: Hash,
    /// When the head was signed (Unix milliseconds).
    pub timestamp: u64,
}

impl TreeHead {
    /// `"HSTH" ‖ version 2 ‖ u16 len ‖ log id ‖ epoch (u64) ‖ root (32) ‖
    /// timestamp (u64)`.
    fn body(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(64 + self.log_id.len());
        w.bytes(STH_MAGIC)
            .u8(STH_VERSION)
            .str16(self.log_id.as_bytes())
            .u64(self.epoch)
            .bytes(&self.root)
            .u64(self.timestamp);
        w.into_vec()
    }

    fn signed_bytes(&self) -> Vec<u8> {
        [CTX_STH, &self.body()].concat()
    }
}

/// A tree head with the log's signature over
/// `"hush/v2/epoch-head\0" ‖ encoded head`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedTreeHead {
    /// The head.
    pub head: TreeHead,
    /// Ed25519 signature.
    pub signature: [u8; 64],
}

impl SignedTreeHead {
    /// Wire form: encoded head ‖ signature (64).
    pub fn to_bytes(&self) -> Vec<u8> {
        [self.head.body().as_slice(), &self.signature].concat()
    }

    /// Parses the wire form (does not check the signature: see
    /// [`verify`](Self::verify)).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, LogError> {
        let m = |_| LogError::Malformed;
        let mut r = Reader::new(bytes);
        if r.take(4).map_err(m)? != STH_MAGIC || r.u8().map_err(m)? != STH_VERSION {
            return Err(LogError::Malformed);
        }
        let log_id = std::str::from_utf8(r.str16().map_err(m)?)
            .map_err(|_| LogError::Malformed)?
            .to_owned();
        let epoch = r.u64().map_err(m)?;
        let root = r.array().map_err(m)?;
        let timestamp = r.u64().map_err(m)?;
        let signature = r.array().map_err(m)?;
        r.finish().map_err(m)?;
        Ok(Self {
            head: TreeHead {
                log_id,
                epoch,
                root,
                timestamp,
            },
            signature,
        })
    }

    /// Checks the signature (strict Ed25519) and the log id.
    pub fn verify(&self, key: &LogPublicKey, log_id: &str) -> Result<(), LogError> {
        if self.head.log_id != log_id {
            return Err(LogError::WrongLog);
        }
        key.0
            .verify_strict(
                &self.head.signed_bytes(),
                &Signature::from_bytes(&self.signature),
            )
            .map_err(|_| LogError::BadSignature)
    }
}

/// A client's view of one directory: the pinned key, the last head it
/// trusted, and the roots of the last [`REMEMBERED_HEADS`] epochs it saw.
/// Persist [`trusted`](Self::trusted) between runs.
#[derive(Debug, Clone)]
pub struct LogMonitor {
    log_id: String,
    key: LogPublicKey,
    trusted: Option<TreeHead>,
    seen: VecDeque<(u64, Hash)>,
}

impl LogMonitor {
    /// A monitor with no trusted head yet: the first signed head it sees is
    /// accepted (the key is pinned; the epoch is not yet).
    pub fn new(log_id: impl Into<String>, key: LogPublicKey) -> Self {
        Self {
            log_id: log_id.into(),
            key,
            trusted: None,
            seen: VecDeque::new(),
        }
    }

    /// A monitor resuming from a head trusted earlier.
    pub fn resume(log_id: impl Into<String>, key: LogPublicKey, trusted: TreeHead) -> Self {
        let mut m = Self::new(log_id, key);
        m.remember(&trusted);
        m.trusted = Some(trusted);
        m
    }

    /// The last trusted head.
    pub fn trusted(&self) -> Option<&TreeHead> {
        self.trusted.as_ref()
    }

    fn remember(&mut self, head: &TreeHead) {
        if self.seen.iter().any(|(e, _)| *e == head.epoch) {
            return;
        }
        if self.seen.len() == REMEMBERED_HEADS {
            self.seen.pop_front();
        }
        self.seen.push_back((head.epoch, head.root));
    }

    /// The root this monitor saw for `epoch`, if it remembers one.
    fn root_of(&self, epoch: u64) -> Option<&Hash> {
        self.seen.iter().find(|(e, _)| *e == epoch).map(|(_, r)| r)
    }

    /// Checks `head` (already signature-checked) against what this monitor
    /// saw: an older epoch than the trusted one is [`LogError::Rollback`],
    /// another root for an epoch it saw [`LogError::Fork`].
    fn check_against_seen(&self, head: &TreeHead) -> Result<(), LogError> {
        if let Some(root) = self.root_of(head.epoch)
            && !bool::from(root.ct_eq(&head.root))
        {
            return Err(LogError::Fork);
        }
        Ok(())
    }

    /// Accepts a new signed head if it is signed by the directory, is not
    /// older than the trusted head and does not contradict a root seen for
    /// its epoch. The trusted head is unchanged on error.
    ///
    /// Whether the tree at the new epoch extends the trusted one is what
    /// auditors check (`hush audit`, append-only proofs between epochs);
    /// clients catch a split view by comparing roots at equal epochs, here
    /// and through gossip ([`cross_check`](Self::cross_check)).
    pub fn update(&mut self, sth: &SignedTreeHead) -> Result<(), LogError> {
        sth.verify(&self.key, &self.log_id)?;
        self.check_against_seen(&sth.head)?;
        if let Some(trusted) = &self.trusted
            && sth.head.epoch < trusted.epoch
        {
            return Err(LogError::Rollback {
                trusted: trusted.epoch,
                offered: sth.head.epoch,
            });
        }
        self.remember(&sth.head);
        self.trusted = Some(sth.head.clone());
        Ok(())
    }

    /// [`update`](Self::update) for a head the directory just served: also
    /// refuses a head whose signed timestamp is outside `fresh` at `now_ms`
    /// ([`LogError::Stale`], [`LogError::FromTheFuture`]), checked after the
    /// signature. The trusted head is unchanged on error.
    pub fn update_fresh(
        &mut self,
        sth: &SignedTreeHead,
        now_ms: u64,
        fresh: Freshness,
    ) -> Result<(), LogError> {
        sth.verify(&self.key, &self.log_id)?;
        fresh.check(&sth.head, now_ms)?;
        self.update(sth)
    }

    /// Cross-checks a head another client saw (gossip), without changing the
    /// trusted head: signed by the directory, and the same root as this
    /// monitor saw for that epoch, if it saw it. Two clients shown different
    /// trees at one epoch get [`LogError::Fork`] here.
    pub fn cross_check(&self, other: &SignedTreeHead) -> Result<(), LogError> {
        other.verify(&self.key, &self.log_id)?;
        if self.trusted.is_none() {
            return Err(LogError::NoTrustedHead);
        }
        self.check_against_seen(&other.head)
    }
}

#[cfg(test)]
mod tests;
