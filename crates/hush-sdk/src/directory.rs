//! Typed answers of the key-directory HTTP API (docs/PROTOCOL-EXT.md §3):
//! the base64 strings of the wire are decoded here; the records, heads and
//! proofs are checked by the caller with [`hush_crypto::transparency`]
//! (see [`DirectoryLookup::verify`]).

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hush_crypto::transparency::{
    Hash, LogEntry, LogError, LogMonitor, LogPublicKey, SignedTreeHead,
};
use serde::Deserialize;

use crate::error::Error;

/// Most users one lookup may name.
pub const MAX_LOOKUP_USERS: usize = 50;
/// Most log entries one request returns.
pub const MAX_LOG_ENTRIES: u64 = 1000;

/// The current signed tree head of an app's directory log and the log's
/// public key (`GET /directory/log/head`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LogHead {
    /// The signed tree head (signature not yet checked).
    pub head: SignedTreeHead,
    /// The key the server signs heads with.
    pub key: LogPublicKey,
}

/// One looked-up record with its place in the log.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DirectoryEntry {
    /// Log leaf data: tag byte (`0x01` card, `0x02` revocation) ‖ record.
    pub record: Vec<u8>,
    /// Its index in the log.
    pub index: u64,
    /// Inclusion proof against the head returned with it.
    pub proof: Vec<Hash>,
}

impl DirectoryEntry {
    /// Parses the record, verifying its signatures.
    pub fn entry(&self) -> Result<LogEntry, LogError> {
        LogEntry::from_bytes(&self.record)
    }
}

/// A user's active cards and revocations.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct UserRecords {
    /// The latest card of every device that is not revoked.
    pub cards: Vec<DirectoryEntry>,
    /// Device revocations and identity rotations, in log order.
    pub revocations: Vec<DirectoryEntry>,
}

/// Answer of `GET /directory/users`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DirectoryLookup {
    /// The head every inclusion proof is against.
    pub head: SignedTreeHead,
    /// Consistency proof from the `since` size asked for to `head`.
    pub consistency: Option<Vec<Hash>>,
    /// Per user id asked for (users without records have empty lists).
    pub users: BTreeMap<String, UserRecords>,
    /// Ids asked for that did not fit in this answer (the server bounds an
    /// answer's size): ask for them again.
    pub more: Vec<String>,
}

impl DirectoryLookup {
    /// Checks the answer against a client's view of the log: `monitor`
    /// accepts the head (signed by its pinned key, consistent with the head
    /// it trusted, through [`consistency`](Self::consistency)), then every
    /// card and revocation must be included in it. The monitor's trusted
    /// head moves forward only when the head is accepted.
    pub fn verify(&self, monitor: &mut LogMonitor) -> Result<(), LogError> {
        monitor.update(&self.head, self.consistency.as_deref().unwrap_or_default())?;
        for user in self.users.values() {
            for e in user.cards.iter().chain(&user.revocations) {
                monitor.verify_entry(&e.record, e.index, &e.proof)?;
            }
        }
        Ok(())
    }
}

fn bytes(text: &str, what: &str) -> Result<Vec<u8>, Error> {
    STANDARD
        .decode(text)
        .map_err(|e| Error::Decode(format!("{what} is not base64: {e}")))
}

fn head(text: &str) -> Result<SignedTreeHead, Error> {
    SignedTreeHead::from_bytes(&bytes(text, "head")?)
        .map_err(|e| Error::Decode(format!("head: {e}")))
}

fn hashes(list: &[String]) -> Result<Vec<Hash>, Error> {
    list.iter()
        .map(|h| {
            bytes(h, "proof hash")?
                .try_into()
                .map_err(|_| Error::Decode("a proof hash is not 32 bytes".into()))
        })
        .collect()
}

#[derive(Deserialize)]
pub(crate) struct HeadBody {
    head: String,
    key: String,
}

impl HeadBody {
    pub(crate) fn decode(self) -> Result<LogHead, Error> {
        let key: [u8; 32] = bytes(&self.key, "key")?
            .try_into()
            .map_err(|_| Error::Decode("the log key is not 32 bytes".into()))?;
        Ok(LogHead {
            head: head(&self.head)?,
            key: LogPublicKey::from_bytes(&key)
                .map_err(|e| Error::Decode(format!("log key: {e}")))?,
        })
    }
}

#[derive(Deserialize)]
pub(crate) struct ProofBody {
    proof: Vec<String>,
}

impl ProofBody {
    pub(crate) fn decode(self) -> Result<Vec<Hash>, Error> {
        hashes(&self.proof)
    }
}

#[derive(Deserialize)]
pub(crate) struct EntriesBody {
    entries: Vec<String>,
}

impl EntriesBody {
    pub(crate) fn decode(self) -> Result<Vec<Vec<u8>>, Error> {
        self.entries.iter().map(|e| bytes(e, "entry")).collect()
    }
}

#[derive(Deserialize)]
struct EntryBody {
    record: String,
    index: u64,
    proof: Vec<String>,
}

#[derive(Deserialize)]
struct UserBody {
    #[serde(default)]
    cards: Vec<EntryBody>,
    #[serde(default)]
    revocations: Vec<EntryBody>,
}

#[derive(Deserialize)]
pub(crate) struct LookupBody {
    head: String,
    #[serde(default)]
    consistency: Option<Vec<String>>,
    users: BTreeMap<String, UserBody>,
    #[serde(default)]
    more: Vec<String>,
}

impl LookupBody {
    pub(crate) fn decode(self) -> Result<DirectoryLookup, Error> {
        let entries = |list: &[EntryBody]| -> Result<Vec<DirectoryEntry>, Error> {
            list.iter()
                .map(|e| {
                    Ok(DirectoryEntry {
                        record: bytes(&e.record, "record")?,
                        index: e.index,
                        proof: hashes(&e.proof)?,
                    })
                })
                .collect()
        };
        let users = self
            .users
            .iter()
            .map(|(id, u)| {
                Ok((
                    id.clone(),
                    UserRecords {
                        cards: entries(&u.cards)?,
                        revocations: entries(&u.revocations)?,
                    },
                ))
            })
            .collect::<Result<_, Error>>()?;
        Ok(DirectoryLookup {
            head: head(&self.head)?,
            consistency: self.consistency.as_deref().map(hashes).transpose()?,
            users,
            more: self.more,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hush_crypto::transparency::{LogKey, MerkleLog, TreeHead};

    fn b64(b: &[u8]) -> String {
        STANDARD.encode(b)
    }

    #[test]
    fn decodes_and_verifies_a_lookup() {
        let key = LogKey::from_secret_bytes(&[7; 32]);
        let mut log = MerkleLog::new();
        let leaves: Vec<Vec<u8>> = (0u8..5).map(|i| vec![1, i]).collect();
        for l in &leaves {
            log.append(l);
        }
        let sth = key.sign(TreeHead {
            log_id: "3".into(),
            size: 5,
            root: log.root(),
            timestamp: 1,
        });
        let proof: Vec<String> = log
            .inclusion_proof(3, 5)
            .unwrap()
            .iter()
            .map(|h| b64(h))
            .collect();
        let body = serde_json::json!({
            "head": b64(&sth.to_bytes()),
            "users": {
                "alice": {"cards": [{"record": b64(&leaves[3]), "index": 3, "proof": proof}], "revocations": []},
                "nobody": {"cards": [], "revocations": []},
            },
        });
        let lookup = serde_json::from_value::<LookupBody>(body.clone())
            .unwrap()
            .decode()
            .unwrap();
        assert_eq!(lookup.head, sth);
        assert_eq!(lookup.consistency, None);
        assert_eq!(lookup.users["alice"].cards[0].index, 3);
        assert!(lookup.users["nobody"].cards.is_empty());

        let mut monitor = LogMonitor::new("3", key.public_key());
        lookup.verify(&mut monitor).unwrap();
        assert_eq!(monitor.trusted().unwrap().size, 5);

        // A record at the wrong index is not included; a head of another
        // key is refused.
        let mut wrong = lookup.clone();
        wrong.users.get_mut("alice").unwrap().cards[0].index = 2;
        assert_eq!(
            wrong.verify(&mut LogMonitor::new("3", key.public_key())),
            Err(LogError::NotIncluded)
        );
        let other = LogKey::from_secret_bytes(&[8; 32]).public_key();
        assert_eq!(
            lookup.verify(&mut LogMonitor::new("3", other)),
            Err(LogError::BadSignature)
        );

        // Malformed base64, hash lengths and heads are decode errors.
        let mut bad = body.clone();
        bad["users"]["alice"]["cards"][0]["proof"][0] = "AAAA".into();
        assert!(matches!(
            serde_json::from_value::<LookupBody>(bad).unwrap().decode(),
            Err(Error::Decode(_))
        ));
        let mut bad = body;
        bad["head"] = "%%".into();
        assert!(matches!(
            serde_json::from_value::<LookupBody>(bad).unwrap().decode(),
            Err(Error::Decode(_))
        ));
    }

    #[test]
    fn decodes_heads_proofs_and_entries() {
        let key = LogKey::from_secret_bytes(&[7; 32]);
        let sth = key.sign(TreeHead {
            log_id: "3".into(),
            size: 0,
            root: [0; 32],
            timestamp: 1,
        });
        let h = HeadBody {
            head: b64(&sth.to_bytes()),
            key: b64(&key.public_key().to_bytes()),
        }
        .decode()
        .unwrap();
        assert_eq!((h.head, h.key), (sth.clone(), key.public_key()));
        assert!(
            HeadBody {
                head: b64(&sth.to_bytes()),
                key: b64(&[1; 31]),
            }
            .decode()
            .is_err()
        );
        let p = ProofBody {
            proof: vec![b64(&[9; 32])],
        };
        assert_eq!(p.decode().unwrap(), vec![[9; 32]]);
        let e = EntriesBody {
            entries: vec![b64(b"\x01ab"), String::new()],
        };
        assert_eq!(e.decode().unwrap(), vec![b"\x01ab".to_vec(), vec![]]);
    }
}
