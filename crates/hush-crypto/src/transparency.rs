//! Key transparency: an RFC 9162 (Certificate Transparency v2) Merkle log of
//! key-directory changes, signed tree heads, and the client-side
//! [`LogMonitor`] that detects a directory which forks or rewrites its log.
//!
//! * Hashing (RFC 9162 §2.1.1): leaf = `SHA-256(0x00 ‖ data)`, node =
//!   `SHA-256(0x01 ‖ left ‖ right)`, empty tree = `SHA-256("")`; a tree of
//!   `n` leaves splits at the largest power of two below `n`.
//! * [`MerkleLog`]: an in-memory append-only log that gives the root of any
//!   past size, inclusion proofs (§2.1.3.1) and consistency proofs
//!   (§2.1.4.1). The functions [`root`], [`inclusion_proof`] and
//!   [`consistency_proof`] work on any slice of leaf hashes, so a store can
//!   reuse them.
//! * [`verify_inclusion`] and [`verify_consistency`]: the verification
//!   algorithms of §2.1.3.2 and §2.1.4.2.
//! * [`SignedTreeHead`]: `{log id, size, root, timestamp}` signed by the
//!   log's Ed25519 key.
//! * [`LogMonitor`]: keeps the last tree head the client trusted; every new
//!   head must be signed and provably extend it; looked-up entries must be
//!   included in it; heads seen by other clients can be cross-checked
//!   (gossip). A fork or rewrite is a typed [`LogError`].
//! * [`audit`]: an end-to-end check of a whole log (the core of
//!   `hush audit`), replaying every entry through the directory rules of
//!   [`crate::directory::DirectoryState`].
//!
//! Full description: `docs/KEY-TRANSPARENCY.md`.

use std::fmt;

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::identity::{DeviceCard, Revocation, hex_str};

mod audit;
use crate::wire::{Reader, Writer};
pub use audit::{AuditReport, audit};

/// A SHA-256 hash in the tree.
pub type Hash = [u8; 32];

const STH_MAGIC: &[u8; 4] = b"HSTH";
const STH_VERSION: u8 = 1;
const CTX_STH: &[u8] = b"hush/v1/tree-head\0";

/// Why a proof, tree head or log entry was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LogError {
    /// The tree head's signature does not verify under the log key.
    #[error("tree head signature is invalid")]
    BadSignature,
    /// The tree head is for another log.
    #[error("tree head belongs to another log")]
    WrongLog,
    /// The directory offered a smaller tree than one it showed before.
    #[error("log rolled back from size {trusted} to {offered}")]
    Rollback {
        /// The size the client trusts.
        trusted: u64,
        /// The size offered.
        offered: u64,
    },
    /// The new tree head is not an append-only extension of the trusted one
    /// (or two heads of the same size differ): the directory forked or
    /// rewrote its history, or showed different logs to different clients.
    #[error("log fork detected: the tree head is not consistent with the trusted one")]
    Fork,
    /// The entry is not in the tree at the claimed position.
    #[error("entry is not included in the log")]
    NotIncluded,
    /// The client has no trusted tree head yet.
    #[error("no trusted tree head yet")]
    NoTrustedHead,
    /// Bytes that are not a tree head or log entry.
    #[error("malformed tree head or log entry")]
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

/// `SHA-256(0x00 ‖ data)`.
pub fn leaf_hash(data: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0x00]);
    h.update(data);
    h.finalize().into()
}

/// `SHA-256(0x01 ‖ left ‖ right)`.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([0x01]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// The largest power of two strictly below `n` (`n ≥ 2`).
fn split(n: usize) -> usize {
    debug_assert!(n >= 2);
    let k = 1usize << (usize::BITS - 1 - (n - 1).leading_zeros());
    if k == n { k / 2 } else { k }
}

/// Where the RFC 9162 recursions get the hash of a subtree: leaves
/// `start..start + n`, with `start` a multiple of the largest power of two
/// not above `n` (true of every subtree the recursions visit).
trait Subtrees {
    fn mth(&self, start: usize, n: usize) -> Hash;
}

/// A plain list of leaf hashes: subtree hashes computed on demand, O(n).
struct Plain<'a>(&'a [Hash]);

impl Subtrees for Plain<'_> {
    fn mth(&self, start: usize, n: usize) -> Hash {
        match n {
            0 => Sha256::digest([]).into(),
            1 => self.0[start],
            n => {
                let k = split(n);
                node_hash(&self.mth(start, k), &self.mth(start + k, n - k))
            }
        }
    }
}

/// The Merkle tree hash (RFC 9162 §2.1.1) of a list of leaf hashes.
pub fn root(leaves: &[Hash]) -> Hash {
    Plain(leaves).mth(0, leaves.len())
}

/// The inclusion proof (audit path) of leaf `index` in the tree of `leaves`,
/// RFC 9162 §2.1.3.1. `None` if `index` is out of range.
pub fn inclusion_proof(leaves: &[Hash], index: usize) -> Option<Vec<Hash>> {
    inclusion_in(&Plain(leaves), leaves.len(), index)
}

fn inclusion_in(t: &impl Subtrees, size: usize, index: usize) -> Option<Vec<Hash>> {
    if index >= size {
        return None;
    }
    let mut proof = Vec::new();
    path(t, index, 0, size, &mut proof);
    Some(proof)
}

fn path(t: &impl Subtrees, m: usize, start: usize, n: usize, out: &mut Vec<Hash>) {
    if n <= 1 {
        return;
    }
    let k = split(n);
    if m < k {
        path(t, m, start, k, out);
        out.push(t.mth(start + k, n - k));
    } else {
        path(t, m - k, start + k, n - k, out);
        out.push(t.mth(start, k));
    }
}

/// The consistency proof between the first `first` leaves and all of
/// `leaves`, RFC 9162 §2.1.4.1. `None` unless `first ≤ leaves.len()`.
/// Empty when `first` is 0 or equals the size.
pub fn consistency_proof(leaves: &[Hash], first: usize) -> Option<Vec<Hash>> {
    consistency_in(&Plain(leaves), leaves.len(), first)
}

fn consistency_in(t: &impl Subtrees, size: usize, first: usize) -> Option<Vec<Hash>> {
    if first > size {
        return None;
    }
    let mut proof = Vec::new();
    if first > 0 && first < size {
        subproof(t, first, 0, size, true, &mut proof);
    }
    Some(proof)
}

fn subproof(t: &impl Subtrees, m: usize, start: usize, n: usize, whole: bool, out: &mut Vec<Hash>) {
    if m == n {
        if !whole {
            out.push(t.mth(start, n));
        }
        return;
    }
    let k = split(n);
    if m <= k {
        subproof(t, m, start, k, whole, out);
        out.push(t.mth(start + k, n - k));
    } else {
        subproof(t, m - k, start + k, n - k, false, out);
        out.push(t.mth(start, k));
    }
}

fn ct_eq(a: &Hash, b: &Hash) -> bool {
    a.ct_eq(b).into()
}

/// Verifies an inclusion proof (RFC 9162 §2.1.3.2): leaf hash `leaf` is at
/// `index` in the tree of `size` leaves whose root is `root`.
pub fn verify_inclusion(
    leaf: &Hash,
    index: u64,
    size: u64,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), LogError> {
    if index >= size {
        return Err(LogError::NotIncluded);
    }
    let (mut fnode, mut snode) = (index, size - 1);
    let mut r = *leaf;
    for p in proof {
        if snode == 0 {
            return Err(LogError::NotIncluded);
        }
        if fnode & 1 == 1 || fnode == snode {
            r = node_hash(p, &r);
            if fnode & 1 == 0 {
                while fnode & 1 == 0 && fnode != 0 {
                    fnode >>= 1;
                    snode >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    if snode == 0 && ct_eq(&r, root) {
        Ok(())
    } else {
        Err(LogError::NotIncluded)
    }
}

/// Verifies a consistency proof (RFC 9162 §2.1.4.2) that the tree of size
/// `second` with root `second_root` extends the tree of size `first` with
/// root `first_root`. Equal sizes need equal roots and an empty proof; size
/// 0 is consistent with anything (empty proof); shrinking is
/// [`LogError::Rollback`]; everything else that fails is [`LogError::Fork`].
pub fn verify_consistency(
    first: u64,
    second: u64,
    first_root: &Hash,
    second_root: &Hash,
    proof: &[Hash],
) -> Result<(), LogError> {
    if first > second {
        return Err(LogError::Rollback {
            trusted: first,
            offered: second,
        });
    }
    if first == second {
        return if proof.is_empty() && ct_eq(first_root, second_root) {
            Ok(())
        } else {
            Err(LogError::Fork)
        };
    }
    if first == 0 {
        return if proof.is_empty() {
            Ok(())
        } else {
            Err(LogError::Fork)
        };
    }
    let (&head, tail) = proof.split_first().ok_or(LogError::Fork)?;
    let mut path: Vec<&Hash> = Vec::with_capacity(proof.len() + 1);
    if first.is_power_of_two() {
        path.push(first_root);
        path.push(&head);
        path.extend(tail.iter());
    } else {
        path.push(&head);
        path.extend(tail.iter());
    }
    let (mut fnode, mut snode) = (first - 1, second - 1);
    while fnode & 1 == 1 {
        fnode >>= 1;
        snode >>= 1;
    }
    let mut fr = *path[0];
    let mut sr = *path[0];
    for c in &path[1..] {
        if snode == 0 {
            return Err(LogError::Fork);
        }
        if fnode & 1 == 1 || fnode == snode {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            if fnode & 1 == 0 {
                while fnode & 1 == 0 && fnode != 0 {
                    fnode >>= 1;
                    snode >>= 1;
                }
            }
        } else {
            sr = node_hash(&sr, c);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    if snode == 0 && ct_eq(&fr, first_root) && ct_eq(&sr, second_root) {
        Ok(())
    } else {
        Err(LogError::Fork)
    }
}

/// An append-only, in-memory Merkle log. It keeps the hash of every
/// complete, aligned subtree (`levels[h][j]` covers leaves
/// `j·2^h .. (j+1)·2^h`; `levels[0]` are the leaf hashes), updated in
/// O(log n) per append, so roots and proofs cost O(log n) hashes instead of
/// re-hashing the whole log.
#[derive(Debug, Clone, Default)]
pub struct MerkleLog {
    levels: Vec<Vec<Hash>>,
}

impl Subtrees for MerkleLog {
    fn mth(&self, start: usize, n: usize) -> Hash {
        if n.is_power_of_two() {
            let h = n.trailing_zeros() as usize;
            if let Some(hash) = self.levels.get(h).and_then(|l| l.get(start >> h)) {
                return *hash;
            }
        }
        match n {
            0 => Sha256::digest([]).into(),
            n => {
                let k = split(n);
                node_hash(&self.mth(start, k), &self.mth(start + k, n - k))
            }
        }
    }
}

impl MerkleLog {
    /// An empty log.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends an entry (its leaf hash is stored) and returns its index.
    pub fn append(&mut self, data: &[u8]) -> u64 {
        let mut hash = leaf_hash(data);
        let mut h = 0;
        loop {
            if self.levels.len() == h {
                self.levels.push(Vec::new());
            }
            let level = &mut self.levels[h];
            level.push(hash);
            // A right child completes its parent.
            if level.len() % 2 == 1 {
                break;
            }
            hash = node_hash(&level[level.len() - 2], &level[level.len() - 1]);
            h += 1;
        }
        self.size() - 1
    }

    /// The number of entries.
    pub fn size(&self) -> u64 {
        self.leaves().len() as u64
    }

    /// The leaf hashes.
    pub fn leaves(&self) -> &[Hash] {
        self.levels.first().map_or(&[], Vec::as_slice)
    }

    /// The root of the first `size` entries (`None` past the end).
    pub fn root_at(&self, size: u64) -> Option<Hash> {
        let size = usize::try_from(size).ok()?;
        (size <= self.leaves().len()).then(|| self.mth(0, size))
    }

    /// The current root.
    pub fn root(&self) -> Hash {
        self.mth(0, self.leaves().len())
    }

    /// Inclusion proof of entry `index` in the tree of the first `size`
    /// entries.
    pub fn inclusion_proof(&self, index: u64, size: u64) -> Option<Vec<Hash>> {
        let size = usize::try_from(size).ok()?;
        if size > self.leaves().len() {
            return None;
        }
        inclusion_in(self, size, usize::try_from(index).ok()?)
    }

    /// Consistency proof from size `first` to size `second`.
    pub fn consistency_proof(&self, first: u64, second: u64) -> Option<Vec<Hash>> {
        let second = usize::try_from(second).ok()?;
        if second > self.leaves().len() {
            return None;
        }
        consistency_in(self, second, usize::try_from(first).ok()?)
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

    /// The leaf hash.
    pub fn leaf_hash(&self) -> Hash {
        leaf_hash(&self.to_bytes())
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

/// A tree head: which log, how many entries, their root, and when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeHead {
    /// The log's name (hush uses the app id: one log per app).
    pub log_id: String,
    /// Number of entries.
    pub size: u64,
    /// Root hash of those entries.
    pub root: Hash,
    /// When the head was signed (Unix milliseconds).
    pub timestamp: u64,
}

impl TreeHead {
    /// `"HSTH" ‖ version 1 ‖ u16 len ‖ log id ‖ size (u64) ‖ root (32) ‖
    /// timestamp (u64)`.
    fn body(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(64 + self.log_id.len());
        w.bytes(STH_MAGIC)
            .u8(STH_VERSION)
            .str16(self.log_id.as_bytes())
            .u64(self.size)
            .bytes(&self.root)
            .u64(self.timestamp);
        w.into_vec()
    }

    fn signed_bytes(&self) -> Vec<u8> {
        [CTX_STH, &self.body()].concat()
    }
}

/// A tree head with the log's signature over
/// `"hush/v1/tree-head\0" ‖ encoded head`.
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
        let size = r.u64().map_err(m)?;
        let root = r.array().map_err(m)?;
        let timestamp = r.u64().map_err(m)?;
        let signature = r.array().map_err(m)?;
        r.finish().map_err(m)?;
        Ok(Self {
            head: TreeHead {
                log_id,
                size,
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

/// A client's view of one log: the pinned log key and the last tree head it
/// trusted. Persist [`trusted`](Self::trusted) between runs.
#[derive(Debug, Clone)]
pub struct LogMonitor {
    log_id: String,
    key: LogPublicKey,
    trusted: Option<TreeHead>,
}

impl LogMonitor {
    /// A monitor with no trusted head yet: the first signed head it sees is
    /// accepted (trust on first use of the log, not of each key).
    pub fn new(log_id: impl Into<String>, key: LogPublicKey) -> Self {
        Self {
            log_id: log_id.into(),
            key,
            trusted: None,
        }
    }

    /// A monitor resuming from a head trusted earlier.
    pub fn resume(log_id: impl Into<String>, key: LogPublicKey, trusted: TreeHead) -> Self {
        Self {
            log_id: log_id.into(),
            key,
            trusted: Some(trusted),
        }
    }

    /// The last trusted head.
    pub fn trusted(&self) -> Option<&TreeHead> {
        self.trusted.as_ref()
    }

    /// Accepts a new signed head if it is signed by the log and `proof`
    /// shows it is an append-only extension of the trusted head (consistency
    /// proof from the trusted size to the new size). A smaller size is
    /// [`LogError::Rollback`], anything inconsistent [`LogError::Fork`]; the
    /// trusted head is unchanged on error.
    pub fn update(&mut self, sth: &SignedTreeHead, proof: &[Hash]) -> Result<(), LogError> {
        sth.verify(&self.key, &self.log_id)?;
        if let Some(trusted) = &self.trusted {
            verify_consistency(
                trusted.size,
                sth.head.size,
                &trusted.root,
                &sth.head.root,
                proof,
            )?;
        }
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
        proof: &[Hash],
        now_ms: u64,
        fresh: Freshness,
    ) -> Result<(), LogError> {
        sth.verify(&self.key, &self.log_id)?;
        fresh.check(&sth.head, now_ms)?;
        self.update(sth, proof)
    }

    /// Checks that a looked-up entry is in the trusted tree at `index`.
    pub fn verify_entry(&self, entry: &[u8], index: u64, proof: &[Hash]) -> Result<(), LogError> {
        let trusted = self.trusted.as_ref().ok_or(LogError::NoTrustedHead)?;
        verify_inclusion(&leaf_hash(entry), index, trusted.size, proof, &trusted.root)
    }

    /// Cross-checks a head another client saw (gossip), without changing the
    /// trusted head. `proof` is the consistency proof from the smaller of the
    /// two sizes to the larger. Two clients shown different logs get
    /// [`LogError::Fork`] here.
    pub fn cross_check(&self, other: &SignedTreeHead, proof: &[Hash]) -> Result<(), LogError> {
        other.verify(&self.key, &self.log_id)?;
        let trusted = self.trusted.as_ref().ok_or(LogError::NoTrustedHead)?;
        let (a, b) = if other.head.size <= trusted.size {
            (&other.head, trusted)
        } else {
            (trusted, &other.head)
        };
        verify_consistency(a.size, b.size, &a.root, &b.root, proof)
    }
}

#[cfg(test)]
mod tests;
