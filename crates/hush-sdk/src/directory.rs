//! Typed answers of the key-directory HTTP API (docs/PROTOCOL-EXT.md §3):
//! the base64 strings of the wire are decoded here; heads and proofs are
//! checked by the caller with [`hush_crypto::transparency`] (see
//! [`DirectoryLookup::verify`]).

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hush_crypto::transparency::proofs::{VerifiedEntry, VrfPublicKey, verify_lookup};
use hush_crypto::transparency::{LogError, LogMonitor, LogPublicKey, SignedTreeHead};
use hush_protocol::UserId;
use serde::Deserialize;

use crate::error::Error;

/// Most users one lookup may name.
pub const MAX_LOOKUP_USERS: usize = 50;

/// The current signed epoch head of an app's directory and its keys
/// (`GET /directory/log/head`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LogHead {
    /// The signed epoch head (signature not yet checked).
    pub head: SignedTreeHead,
    /// The key the server signs heads with.
    pub key: LogPublicKey,
    /// The directory's VRF key.
    pub vrf: VrfPublicKey,
}

/// Answer of `GET /directory/users`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DirectoryLookup {
    /// The head every proof is for.
    pub head: SignedTreeHead,
    /// Lookup proofs (akd protobuf) per user id with an entry.
    pub users: BTreeMap<String, Vec<u8>>,
    /// Ids asked for that did not fit in this answer (the server bounds an
    /// answer's size): ask for them again.
    pub more: Vec<String>,
}

impl DirectoryLookup {
    /// Checks the answer against a client's view of the directory: `monitor`
    /// accepts the head (signed by its pinned key, not older than the head
    /// it trusted), then every user's proof must show its latest entry at
    /// that head under the directory's `vrf` key. Returns the verified
    /// entries by user id.
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

fn bytes(text: &str, what: &str) -> Result<Vec<u8>, Error> {
    STANDARD
        .decode(text)
        .map_err(|e| Error::Decode(format!("{what} is not base64: {e}")))
}

fn head(text: &str) -> Result<SignedTreeHead, Error> {
    SignedTreeHead::from_bytes(&bytes(text, "head")?)
        .map_err(|e| Error::Decode(format!("head: {e}")))
}

fn key32(text: &str, what: &str) -> Result<[u8; 32], Error> {
    bytes(text, what)?
        .try_into()
        .map_err(|_| Error::Decode(format!("the {what} is not 32 bytes")))
}

#[derive(Deserialize)]
pub(crate) struct HeadBody {
    head: String,
    key: String,
    vrf: String,
}

impl HeadBody {
    pub(crate) fn decode(self) -> Result<LogHead, Error> {
        Ok(LogHead {
            head: head(&self.head)?,
            key: LogPublicKey::from_bytes(&key32(&self.key, "log key")?)
                .map_err(|e| Error::Decode(format!("log key: {e}")))?,
            vrf: VrfPublicKey::from_bytes(&key32(&self.vrf, "VRF key")?)
                .map_err(|e| Error::Decode(format!("VRF key: {e}")))?,
        })
    }
}

#[derive(Deserialize)]
pub(crate) struct LookupBody {
    head: String,
    users: BTreeMap<String, String>,
    #[serde(default)]
    more: Vec<String>,
}

impl LookupBody {
    pub(crate) fn decode(self) -> Result<DirectoryLookup, Error> {
        let users = self
            .users
            .iter()
            .map(|(id, p)| Ok((id.clone(), bytes(p, "proof")?)))
            .collect::<Result<_, Error>>()?;
        Ok(DirectoryLookup {
            head: head(&self.head)?,
            users,
            more: self.more,
        })
    }
}
