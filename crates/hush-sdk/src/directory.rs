//! Typed answers of the key-directory HTTP API (docs/PROTOCOL-EXT.md §3):
//! the base64 strings of the wire are decoded here; heads and proofs are
//! checked by the caller with [`hush_crypto::transparency`] (see
//! [`DirectoryLookup::verify`]). The directory is Meta's akd: lookup proofs
//! show that a user's entry is the latest at a signed epoch head, and
//! append-only proofs ([`Audit`]) show that each epoch extends the previous
//! one (what `hush audit` checks).

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hush_crypto::transparency::proofs::{VerifiedEntry, VrfPublicKey, verify_lookup};
use hush_crypto::transparency::{LogError, LogMonitor, LogPublicKey, SignedTreeHead};
use hush_protocol::UserId;
use hush_protocol::msgs::hush as wire;

use crate::error::Error;

/// Most users one lookup may name.
pub const MAX_LOOKUP_USERS: usize = 50;
/// Most epochs one audit request may span (`to - from`), the server's
/// bound.
pub const MAX_AUDIT_EPOCHS: u64 = 16;

/// The current signed epoch head of an app's directory and the keys a
/// client pins (`GET /directory/log/head`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LogHead {
    /// The signed epoch head (signature not yet checked).
    pub head: SignedTreeHead,
    /// The key the server signs heads with.
    pub key: LogPublicKey,
    /// The directory's VRF public key (lookup proofs verify under it).
    pub vrf: VrfPublicKey,
}

impl LogHead {
    /// Decodes the wire answer.
    pub fn from_wire(w: &wire::LogHead) -> Result<Self, Error> {
        Ok(Self {
            head: head(&w.head)?,
            key: LogPublicKey::from_bytes(&key32(&w.key, "log key")?)
                .map_err(|e| Error::Decode(format!("log key: {e}")))?,
            vrf: VrfPublicKey::from_bytes(&key32(&w.vrf, "VRF key")?)
                .map_err(|e| Error::Decode(format!("VRF key: {e}")))?,
        })
    }
}

/// Answer of `GET /directory/users`: lookup proofs at one epoch head.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DirectoryLookup {
    /// The head every proof is against.
    pub head: SignedTreeHead,
    /// Lookup proofs (akd protobuf, each carrying the user's entry) by user
    /// id; users with no entry are absent.
    pub users: BTreeMap<String, Vec<u8>>,
    /// Ids asked for that did not fit in this answer (the server bounds an
    /// answer's size): ask for them again.
    pub more: Vec<String>,
}

impl DirectoryLookup {
    /// Decodes the wire answer.
    pub fn from_wire(w: &wire::Lookup) -> Result<Self, Error> {
        let users = w
            .users
            .iter()
            .map(|(id, proof)| Ok((id.clone(), bytes(proof, "lookup proof")?)))
            .collect::<Result<_, Error>>()?;
        Ok(Self {
            head: head(&w.head)?,
            users,
            more: w.more.clone(),
        })
    }

    /// Checks the answer against a client's view of the directory: `monitor`
    /// accepts the head (signed by its pinned key, for its app, not older
    /// than the head it trusted, no second root for an epoch it saw), then
    /// every user's proof must show that user's latest entry at that head
    /// under the pinned VRF key. Returns the verified entries by user id.
    /// The monitor's trusted head moves forward only when the head is
    /// accepted (even if a proof then fails).
    ///
    /// Freshness is not checked here: call
    /// [`LogMonitor::update_fresh`] with the head first to refuse a
    /// replayed old head.
    pub fn verify(
        &self,
        monitor: &mut LogMonitor,
        vrf: &VrfPublicKey,
    ) -> Result<BTreeMap<String, VerifiedEntry>, LogError> {
        monitor.update(&self.head)?;
        self.users
            .iter()
            .map(|(id, proof)| {
                let user = UserId::parse(id).map_err(|_| LogError::Malformed)?;
                Ok((
                    id.clone(),
                    verify_lookup(vrf, &self.head.head, &user, proof)?,
                ))
            })
            .collect()
    }
}

/// Answer of `GET /directory/log/audit?from=&to=`: the signed heads of
/// epochs `from..=to` (each signed with its publication time) and akd's
/// append-only proof between them. Nothing is checked here: `hush audit`
/// verifies the signatures, the epochs and the proof.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Audit {
    /// The heads, in the order served.
    pub heads: Vec<SignedTreeHead>,
    /// akd's `AppendOnlyProof` (protobuf).
    pub proof: Vec<u8>,
}

impl Audit {
    /// Decodes the wire answer.
    pub fn from_wire(w: &wire::Audit) -> Result<Self, Error> {
        Ok(Self {
            heads: w.heads.iter().map(|h| head(h)).collect::<Result<_, _>>()?,
            proof: bytes(&w.proof, "audit proof")?,
        })
    }
}

fn bytes(text: &str, what: &str) -> Result<Vec<u8>, Error> {
    STANDARD
        .decode(text)
        .map_err(|e| Error::Decode(format!("{what} is not base64: {e}")))
}

fn key32(text: &str, what: &str) -> Result<[u8; 32], Error> {
    bytes(text, what)?
        .try_into()
        .map_err(|_| Error::Decode(format!("the {what} is not 32 bytes")))
}

fn head(text: &str) -> Result<SignedTreeHead, Error> {
    SignedTreeHead::from_bytes(&bytes(text, "head")?)
        .map_err(|e| Error::Decode(format!("head: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use hush_crypto::transparency::{LogKey, TreeHead};

    fn b64(b: &[u8]) -> String {
        STANDARD.encode(b)
    }

    fn signed(key: &LogKey, epoch: u64, root: u8) -> SignedTreeHead {
        key.sign(TreeHead {
            log_id: "3".into(),
            epoch,
            root: [root; 32],
            timestamp: 1,
        })
    }

    /// A valid VRF public key (akd's VRF keys are Ed25519 points, as any
    /// Ed25519 public key is).
    fn vrf_bytes() -> [u8; 32] {
        LogKey::from_secret_bytes(&[5; 32]).public_key().to_bytes()
    }

    #[test]
    fn decodes_heads_and_keys() {
        let key = LogKey::from_secret_bytes(&[7; 32]);
        let sth = signed(&key, 4, 9);
        let w = wire::LogHead {
            head: b64(&sth.to_bytes()),
            key: b64(&key.public_key().to_bytes()),
            vrf: b64(&vrf_bytes()),
        };
        let h = LogHead::from_wire(&w).unwrap();
        assert_eq!((h.head, h.key), (sth.clone(), key.public_key()));
        assert_eq!(h.vrf.to_bytes(), vrf_bytes());
        for bad in [
            wire::LogHead {
                key: b64(&[1; 31]),
                ..w.clone()
            },
            wire::LogHead {
                vrf: "%%".into(),
                ..w.clone()
            },
            wire::LogHead {
                head: b64(b"HSTH"),
                ..w.clone()
            },
        ] {
            assert!(matches!(LogHead::from_wire(&bad), Err(Error::Decode(_))));
        }
    }

    #[test]
    fn decodes_audits_and_lookups() {
        let key = LogKey::from_secret_bytes(&[7; 32]);
        let heads = [signed(&key, 1, 1), signed(&key, 2, 2)];
        let w = wire::Audit {
            heads: heads.iter().map(|h| b64(&h.to_bytes())).collect(),
            proof: b64(b"proof"),
        };
        let a = Audit::from_wire(&w).unwrap();
        assert_eq!(a.heads, heads.to_vec());
        assert_eq!(a.proof, b"proof");
        let bad = wire::Audit {
            heads: vec!["AAAA".into()],
            ..w
        };
        assert!(matches!(Audit::from_wire(&bad), Err(Error::Decode(_))));

        let mut users = BTreeMap::new();
        users.insert("alice".to_owned(), b64(b"p"));
        let w = wire::Lookup {
            head: b64(&heads[1].to_bytes()),
            more: vec!["bob".into()],
            users,
        };
        let l = DirectoryLookup::from_wire(&w).unwrap();
        assert_eq!(l.head, heads[1]);
        assert_eq!(l.users["alice"], b"p");
        assert_eq!(l.more, vec!["bob".to_owned()]);
    }

    #[test]
    fn verify_refuses_foreign_heads_and_bad_proofs() {
        let key = LogKey::from_secret_bytes(&[7; 32]);
        let vrf = VrfPublicKey::from_bytes(&vrf_bytes()).unwrap();
        let mut users = BTreeMap::new();
        users.insert("alice".to_owned(), b"not a proof".to_vec());
        let lookup = DirectoryLookup {
            head: signed(&key, 2, 2),
            users,
            more: vec![],
        };
        // Another key's head is refused before any proof is read, and the
        // monitor keeps its trusted head.
        let other = LogKey::from_secret_bytes(&[8; 32]).public_key();
        let mut m = LogMonitor::new("3", other);
        assert_eq!(lookup.verify(&mut m, &vrf), Err(LogError::BadSignature));
        assert!(m.trusted().is_none());
        // The right key: the head is accepted, the garbage proof is not.
        let mut m = LogMonitor::new("3", key.public_key());
        assert_eq!(lookup.verify(&mut m, &vrf), Err(LogError::Malformed));
        assert_eq!(m.trusted().map(|h| h.epoch), Some(2));
        // An older epoch afterwards is a rollback.
        let old = DirectoryLookup {
            head: signed(&key, 1, 1),
            users: BTreeMap::new(),
            more: vec![],
        };
        assert!(matches!(
            old.verify(&mut m, &vrf),
            Err(LogError::Rollback { .. })
        ));
    }
}
