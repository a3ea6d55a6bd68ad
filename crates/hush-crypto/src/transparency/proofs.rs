//! The key directory's per-user entries and the proofs that serve them.
//!
//! The directory is Meta's auditable key directory ([akd]): a sparse Merkle
//! prefix tree whose leaves are VRF-hidden labels (one per user id and
//! version) committing to values; each epoch has one root hash, which the
//! hush server signs in a [`TreeHead`] (`epoch`, `root`, `timestamp`).
//!
//! * The value committed for a user is its whole current [`UserEntry`]:
//!   identity key, active device cards and newest revocations. A lookup proof
//!   ([`verify_lookup`]) shows that this value is the user's *latest* version
//!   at the head's epoch, so a directory that leaves out a revocation, a card
//!   or an identity rotation serves a value that does not verify
//!   (`attack_lookup_omits_revocation`).
//! * A history proof ([`verify_history`]) gives a user's last versions; a
//!   device checks its own user's with it and raises an alarm for any change
//!   it did not make.
//! * The VRF hides user ids: the tree's labels and the audit proofs between
//!   epochs do not name users.
//!
//! Proofs travel as akd's own protobuf messages (`akd_core::proto`), the
//! format akd's auditors read.
//!
//! [akd]: https://github.com/facebook/akd

use akd_core::configuration::DomainLabel;
use akd_core::proto::specs::types as pb;
use akd_core::verify::history::{HistoryParams, HistoryVerificationParams};
use akd_core::{AkdLabel, ExperimentalConfiguration, HistoryProof, LookupProof};
use hush_protocol::UserId;
use protobuf::Message;

use super::{LogError, TreeHead};
use crate::identity::{DeviceCard, IdentityPublicKey, Revocation};
use crate::wire::{Reader, Writer};

/// The domain label of hush's directory hashes (akd's `DomainLabel`).
#[derive(Debug, Clone, Copy)]
pub struct HushDomain;

impl DomainLabel for HushDomain {
    fn domain_label() -> &'static [u8] {
        b"hush/v2/key-directory"
    }
}

/// akd's configuration for hush: BLAKE3 with hush's domain label.
pub type AkdConfig = ExperimentalConfiguration<HushDomain>;

/// Largest proof the client parses (a lookup proof is a few KiB; a history
/// proof of 64 versions some tens of KiB).
pub const MAX_PROOF_BYTES: usize = 512 * 1024;
/// Revocations a [`UserEntry`] carries: the newest ones (revoked devices never
/// come back, so older revocations only tell "revoked" from "unknown").
pub const ENTRY_REVOCATIONS: usize = 32;
/// Cards a [`UserEntry`] may carry (the server's per-user device cap is lower).
pub const MAX_ENTRY_CARDS: usize = 256;
/// Versions one history request may ask for.
pub const MAX_HISTORY_VERSIONS: usize = 64;

const ENTRY_MAGIC: &[u8; 4] = b"HUE2";
const ENTRY_VERSION: u8 = 1;

/// The VRF public key of a directory: with the tree-head key, what a client
/// pins (`hush directory-key` prints both).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct VrfPublicKey([u8; 32]);

impl VrfPublicKey {
    /// Parses 32 bytes (a valid Ed25519 point, as akd's VRF requires).
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<Self, LogError> {
        akd_core::ecvrf::VRFPublicKey::try_from(&bytes[..]).map_err(|_| LogError::Malformed)?;
        Ok(Self(*bytes))
    }

    /// The 32 bytes.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.0
    }
}

impl std::fmt::Debug for VrfPublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "VrfPublicKey({})", crate::identity::hex_str(&self.0))
    }
}

/// A user's state as the directory commits to it: the identity key, the
/// latest card of every active device (ordered by device id) and the newest
/// [`ENTRY_REVOCATIONS`] revocations (in the order they were published).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserEntry {
    /// The current identity key.
    pub identity: IdentityPublicKey,
    /// Active devices' latest cards, by device id.
    pub cards: Vec<DeviceCard>,
    /// Newest revocations, oldest first.
    pub revocations: Vec<Revocation>,
}

fn len16(n: usize) -> u16 {
    u16::try_from(n).unwrap_or(u16::MAX)
}

impl UserEntry {
    /// `"HUE2" ‖ 1 ‖ identity (32) ‖ u16 n ‖ n × (u16 len ‖ card) ‖ u16 m ‖
    /// m × (u16 len ‖ revocation)`.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(64 + self.cards.len() * 256);
        w.bytes(ENTRY_MAGIC)
            .u8(ENTRY_VERSION)
            .bytes(&self.identity.to_bytes())
            .u16(len16(self.cards.len()));
        for c in &self.cards {
            w.str16(&c.to_bytes());
        }
        w.u16(len16(self.revocations.len()));
        for r in &self.revocations {
            w.str16(&r.to_bytes());
        }
        w.into_vec()
    }

    /// Parses the value the directory committed for `user`, verifying every
    /// record's signatures and the entry's own rules: every card is `user`'s
    /// and cross-signed by the entry's identity key, device ids strictly
    /// increase (one card per device, one encoding per entry), and every
    /// revocation is `user`'s. Whether a revocation retires a card is the
    /// reader's check (as for cards it had cached).
    pub fn from_bytes(user: &UserId, bytes: &[u8]) -> Result<Self, LogError> {
        let m = |_| LogError::Malformed;
        let mut r = Reader::new(bytes);
        if r.take(4).map_err(m)? != ENTRY_MAGIC || r.u8().map_err(m)? != ENTRY_VERSION {
            return Err(LogError::Malformed);
        }
        let identity = IdentityPublicKey::from_bytes(&r.array().map_err(m)?)
            .map_err(|_| LogError::Malformed)?;
        let n = usize::from(r.u16().map_err(m)?);
        if n > MAX_ENTRY_CARDS {
            return Err(LogError::Malformed);
        }
        let mut cards: Vec<DeviceCard> = Vec::with_capacity(n);
        for _ in 0..n {
            let card =
                DeviceCard::from_bytes(r.str16().map_err(m)?).map_err(|_| LogError::Malformed)?;
            if card.user_id() != user || *card.identity_key() != identity {
                return Err(LogError::Malformed);
            }
            if cards
                .last()
                .is_some_and(|p| p.device_id() >= card.device_id())
            {
                return Err(LogError::Malformed);
            }
            cards.push(card);
        }
        let k = usize::from(r.u16().map_err(m)?);
        if k > ENTRY_REVOCATIONS {
            return Err(LogError::Malformed);
        }
        let mut revocations = Vec::with_capacity(k);
        for _ in 0..k {
            let rev =
                Revocation::from_bytes(r.str16().map_err(m)?).map_err(|_| LogError::Malformed)?;
            if rev.user_id() != user {
                return Err(LogError::Malformed);
            }
            revocations.push(rev);
        }
        r.finish().map_err(m)?;
        Ok(Self {
            identity,
            cards,
            revocations,
        })
    }
}

/// A user's entry as a proof showed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedEntry {
    /// The entry.
    pub entry: UserEntry,
    /// Its version (1 for the user's first entry, +1 per change).
    pub version: u64,
    /// The epoch it was published in.
    pub epoch: u64,
}

/// The directory label of `user`: the user id's bytes (the VRF hides it in
/// the tree).
pub fn label(user: &UserId) -> AkdLabel {
    AkdLabel(user.as_str().as_bytes().to_vec())
}

/// Encodes a lookup proof (akd's protobuf message).
pub fn encode_lookup_proof(proof: &LookupProof) -> Vec<u8> {
    pb::LookupProof::from(proof)
        .write_to_bytes()
        .unwrap_or_default()
}

/// Encodes a history proof (akd's protobuf message).
pub fn encode_history_proof(proof: &HistoryProof) -> Vec<u8> {
    pb::HistoryProof::from(proof)
        .write_to_bytes()
        .unwrap_or_default()
}

fn decode<P: Message, T>(bytes: &[u8]) -> Result<T, LogError>
where
    for<'a> T: TryFrom<&'a P>,
{
    if bytes.len() > MAX_PROOF_BYTES {
        return Err(LogError::Malformed);
    }
    let message = P::parse_from_bytes(bytes).map_err(|_| LogError::Malformed)?;
    T::try_from(&message).map_err(|_| LogError::Malformed)
}

/// Verifies that `proof` shows `user`'s latest entry at `head`'s epoch and
/// root (the head's signature and freshness are the monitor's job), and
/// parses the entry ([`UserEntry::from_bytes`]).
pub fn verify_lookup(
    vrf: &VrfPublicKey,
    head: &TreeHead,
    user: &UserId,
    proof: &[u8],
) -> Result<VerifiedEntry, LogError> {
    let proof: LookupProof = decode::<pb::LookupProof, _>(proof)?;
    let r = akd_core::verify::lookup_verify::<AkdConfig>(
        &vrf.0,
        head.root,
        head.epoch,
        label(user),
        proof,
    )
    .map_err(|_| LogError::BadProof)?;
    Ok(VerifiedEntry {
        entry: UserEntry::from_bytes(user, &r.value.0)?,
        version: r.version,
        epoch: r.epoch,
    })
}

/// Verifies that `proof` shows `user`'s `versions` most recent entries (or
/// all of them, when the user has fewer) at `head`'s epoch and root, the
/// newest first, and that no newer version exists.
pub fn verify_history(
    vrf: &VrfPublicKey,
    head: &TreeHead,
    user: &UserId,
    proof: &[u8],
    versions: usize,
) -> Result<Vec<VerifiedEntry>, LogError> {
    let proof: HistoryProof = decode::<pb::HistoryProof, _>(proof)?;
    let params = HistoryVerificationParams::Default {
        history_params: HistoryParams::MostRecent(versions.clamp(1, MAX_HISTORY_VERSIONS)),
    };
    let results = akd_core::verify::key_history_verify::<AkdConfig>(
        &vrf.0,
        head.root,
        head.epoch,
        label(user),
        proof,
        params,
    )
    .map_err(|_| LogError::BadProof)?;
    results
        .into_iter()
        .map(|r| {
            Ok(VerifiedEntry {
                entry: UserEntry::from_bytes(user, &r.value.0)?,
                version: r.version,
                epoch: r.epoch,
            })
        })
        .collect()
}
