//! Typed errors of the E2EE layer.

use hush_crypto::backup::BackupError;
use hush_crypto::identity::CardError;
use hush_crypto::suite1::{OpenError, SealError};
use hush_crypto::transparency::LogError;

use super::store::StoreError;
use crate::error::Error;
use crate::request::DirectoryError;

/// Why an E2EE operation failed. Receiving never panics: every refusal of an
/// envelope is [`E2eeError::Open`] with the reason (tampered, replayed,
/// unknown or revoked sender, not addressed to this device).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum E2eeError {
    /// The local key store.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A `hush:request` to the directory failed (server error code, timeout,
    /// connection lost).
    #[error("key directory: {0}")]
    Directory(#[from] DirectoryError),
    /// The client (sign-in, sending the event).
    #[error(transparent)]
    Client(#[from] Error),
    /// The transparency log failed verification: a forked or rewritten log
    /// ([`LogError::Fork`]), a rollback, a bad tree-head signature or an
    /// entry without a valid inclusion proof. Treat as an attack.
    #[error("transparency log verification failed: {0}")]
    Log(#[from] LogError),
    /// The directory served a tree head signed longer ago than the bound
    /// ([`E2ee::set_max_head_age`](super::E2ee::set_max_head_age), default
    /// 10 minutes) or too far in the future: a replayed head freezing this
    /// device on an old view of the directory. Treat as an attack (or a
    /// badly wrong clock).
    #[error(
        "the key directory served a stale tree head (signed at {signed_ms} ms, now {now_ms} ms)"
    )]
    StaleHead {
        /// The head's signed timestamp (Unix milliseconds).
        signed_ms: u64,
        /// This device's clock (Unix milliseconds).
        now_ms: u64,
    },
    /// The directory is signed by another key than the one the app pinned
    /// ([`E2ee::pin_directory_key`](super::E2ee::pin_directory_key)).
    #[error("the key directory is signed by {served}, not by the pinned key {pinned}")]
    UntrustedDirectory {
        /// The pinned key (base64).
        pinned: String,
        /// The key the server presented (base64).
        served: String,
    },
    /// The device has not seen the directory yet and the app neither
    /// pinned its keys ([`E2ee::pin_directory_key`](super::E2ee::pin_directory_key),
    /// [`E2ee::pin_directory_vrf_key`](super::E2ee::pin_directory_vrf_key)) nor
    /// allowed trust on first use
    /// ([`E2ee::set_trust_on_first_use`](super::E2ee::set_trust_on_first_use)).
    #[error(
        "the key directory's keys are not pinned: configure them (hush directory-key prints them) \
         or allow trust on first use explicitly"
    )]
    DirectoryNotPinned,
    /// The directory returned a record that does not verify or breaks the
    /// directory's rules.
    #[error("the directory returned an invalid record: {0}")]
    InvalidRecord(String),
    /// A card or revocation could not be made.
    #[error(transparent)]
    Card(#[from] CardError),
    /// The operation needs the identity key, which this device does not hold.
    #[error("this device does not hold the identity key")]
    NoIdentityKey,
    /// This device has no card in the directory yet ([`E2ee::publish`](super::E2ee::publish)).
    #[error("this device has not published its card")]
    NotPublished,
    /// The user has no identity in the directory (never published a card).
    #[error("user {0} has no keys in the directory")]
    UnknownUser(String),
    /// The user has no active device to encrypt to.
    #[error("user {0} has no active device")]
    NoDevices(String),
    /// The contact was marked verified, and their identity key changed
    /// since: sending is refused until the user re-verifies
    /// ([`E2ee::mark_verified`](super::E2ee::mark_verified)).
    #[error("the identity key of verified contact {0} changed: compare safety numbers again")]
    KeyChangedSinceVerified(String),
    /// Sealing failed (too many recipients for one event, bad key).
    #[error(transparent)]
    Seal(#[from] SealError),
    /// The envelope was refused.
    #[error("envelope refused: {0}")]
    Open(#[from] OpenError),
    /// The event is not a suite 1 envelope (other name, or data not a string).
    #[error("not a suite 1 envelope")]
    NotAnEnvelope,
    /// The envelope names another channel than the one it arrived on.
    #[error("the envelope was sealed for another channel")]
    WrongChannel,
    /// An identity backup could not be made or opened.
    #[error(transparent)]
    Backup(#[from] BackupError),
    /// Bad input from the application (event name, data, card request).
    #[error("invalid input: {0}")]
    Invalid(String),
}
