//! The core's typed error, with the stable code the JS layer sees as the
//! prefix of an `Error`'s message (`"stale-head: …"`).

use hush_crypto::backup::BackupError;
use hush_crypto::identity::CardError;
use hush_crypto::suite1::{OpenError, SealError};
use hush_crypto::transparency::LogError;

/// Why a device operation failed (the variants mirror hush-client's
/// `E2eeError`, minus its I/O cases).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CoreError {
    /// A bad argument (user id, channel, base64, JSON…).
    #[error("invalid input: {0}")]
    Invalid(String),
    /// A saved state that cannot be loaded.
    #[error("device state: {0}")]
    State(String),
    /// A directory answer of the wrong shape, or a step out of order.
    #[error("protocol: {0}")]
    Protocol(String),
    /// A failed directory request (the server's error code and message).
    #[error("key directory: {0}")]
    Directory(String),
    /// A transparency-log check failed.
    #[error("transparency log verification failed: {0}")]
    Log(LogError),
    /// A stale (or future) head.
    #[error(
        "the key directory served a stale tree head (signed at {signed_ms} ms, now {now_ms} ms)"
    )]
    StaleHead {
        /// When the head was signed.
        signed_ms: u64,
        /// The caller's clock.
        now_ms: u64,
    },
    /// The directory's key is not the pinned one.
    #[error("the key directory is signed by {served}, not by the pinned key {pinned}")]
    UntrustedDirectory {
        /// The pinned key (base64).
        pinned: String,
        /// The served key (base64).
        served: String,
    },
    /// No pinned keys and no trust on first use.
    #[error(
        "the key directory's keys are not pinned: pin them (hush directory-key prints them) \
         or allow trust on first use explicitly"
    )]
    DirectoryNotPinned,
    /// A directory answer that does not hold what it should.
    #[error("the directory returned an invalid record: {0}")]
    InvalidRecord(String),
    /// A card or revocation failed its checks.
    #[error("card: {0}")]
    Card(CardError),
    /// This device holds no identity key.
    #[error("this device does not hold the identity key")]
    NoIdentityKey,
    /// This device has no card yet.
    #[error("this device has not published its card")]
    NotPublished,
    /// The user has no keys.
    #[error("user {0} has no keys in the directory")]
    UnknownUser(String),
    /// The user has no active device.
    #[error("user {0} has no active device")]
    NoDevices(String),
    /// A verified contact's identity key changed.
    #[error("the identity key of verified contact {0} changed: compare safety numbers again")]
    KeyChangedSinceVerified(String),
    /// Sealing refused.
    #[error("{0}")]
    Seal(SealError),
    /// Opening refused.
    #[error("envelope refused: {0}")]
    Open(OpenError),
    /// Not a suite 1 event.
    #[error("not a suite 1 envelope")]
    NotAnEnvelope,
    /// The envelope names another channel or event.
    #[error("the envelope was sealed for another channel")]
    WrongChannel,
    /// Backup refused.
    #[error("{0}")]
    Backup(BackupError),
    /// Suite 0 / epoch / sealed-event failure (code, text).
    #[error("{1}")]
    Channel(&'static str, String),
}

impl CoreError {
    /// The stable code (the message prefix the JS layer maps).
    pub fn code(&self) -> &'static str {
        match self {
            Self::Invalid(_) => "invalid",
            Self::State(_) => "state",
            Self::Protocol(_) => "protocol",
            Self::Directory(_) => "directory",
            Self::Log(e) => match e {
                LogError::BadSignature => "bad-signature",
                LogError::WrongLog => "wrong-log",
                LogError::Rollback { .. } => "rollback",
                LogError::Fork => "fork",
                LogError::BadProof => "bad-proof",
                LogError::NoTrustedHead => "no-trusted-head",
                LogError::Malformed => "malformed",
                LogError::Stale { .. } | LogError::FromTheFuture { .. } => "stale-head",
            },
            Self::StaleHead { .. } => "stale-head",
            Self::UntrustedDirectory { .. } => "untrusted-directory",
            Self::DirectoryNotPinned => "directory-not-pinned",
            Self::InvalidRecord(_) => "invalid-record",
            Self::Card(_) => "card",
            Self::NoIdentityKey => "no-identity-key",
            Self::NotPublished => "not-published",
            Self::UnknownUser(_) => "unknown-user",
            Self::NoDevices(_) => "no-devices",
            Self::KeyChangedSinceVerified(_) => "unverified-change",
            Self::Seal(_) => "seal",
            Self::Open(e) => match e {
                OpenError::Malformed => "malformed",
                OpenError::Unsupported { .. } => "unsupported",
                OpenError::NotARecipient => "not-a-recipient",
                OpenError::UnknownSender => "unknown-sender",
                OpenError::RevokedSender => "revoked-sender",
                OpenError::Decrypt => "decrypt",
                OpenError::BadSignature => "bad-envelope-signature",
                OpenError::Replay => "replay",
                OpenError::Expired => "expired",
                OpenError::TooManyStreams(_) => "too-many-streams",
            },
            Self::NotAnEnvelope => "not-an-envelope",
            Self::WrongChannel => "wrong-channel",
            Self::Backup(_) => "backup",
            Self::Channel(code, _) => code,
        }
    }

    /// `"<code>: <text>"`, the JS `Error` message.
    pub fn to_js_message(&self) -> String {
        format!("{}: {self}", self.code())
    }
}

impl From<LogError> for CoreError {
    fn from(e: LogError) -> Self {
        Self::Log(e)
    }
}

impl From<CardError> for CoreError {
    fn from(e: CardError) -> Self {
        Self::Card(e)
    }
}

impl From<SealError> for CoreError {
    fn from(e: SealError) -> Self {
        Self::Seal(e)
    }
}

impl From<OpenError> for CoreError {
    fn from(e: OpenError) -> Self {
        Self::Open(e)
    }
}

impl From<BackupError> for CoreError {
    fn from(e: BackupError) -> Self {
        Self::Backup(e)
    }
}
