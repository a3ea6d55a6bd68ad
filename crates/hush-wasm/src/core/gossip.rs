//! Gossip of tree heads inside suite 1 envelopes (hush-client
//! `e2ee/gossip.rs`, docs/E2EE-SUITE1.md §4.7), without I/O.

use std::collections::HashSet;

use hush_crypto::transparency::{Hash, LogPublicKey, SignedTreeHead};

use super::device::Device;
use super::directory::kept_head;
use super::error::CoreError;

const MAX_CHECKED: usize = 1024;

/// What a message's gossiped head says about the directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GossipCheck {
    /// Consistent with this device's view.
    Consistent,
    /// Not checked (no head, no trusted head, or the directory's head of
    /// that epoch could not be fetched).
    Unchecked,
    /// The sender was shown another log: a fork event was queued.
    Fork,
}

impl GossipCheck {
    /// The JSON name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Consistent => "consistent",
            Self::Unchecked => "unchecked",
            Self::Fork => "fork",
        }
    }
}

/// Heads already proven consistent.
#[derive(Debug, Default)]
pub(crate) struct Checked(HashSet<(u64, Hash, u64, Hash)>);

impl Checked {
    fn key(ours: &SignedTreeHead, theirs: &SignedTreeHead) -> (u64, Hash, u64, Hash) {
        (
            ours.head.epoch,
            ours.head.root,
            theirs.head.epoch,
            theirs.head.root,
        )
    }

    fn contains(&self, ours: &SignedTreeHead, theirs: &SignedTreeHead) -> bool {
        self.0.contains(&Self::key(ours, theirs))
    }

    /// Remembers that `theirs` is consistent with `ours`.
    pub fn insert(&mut self, ours: &SignedTreeHead, theirs: &SignedTreeHead) {
        if self.0.len() >= MAX_CHECKED {
            self.0.clear();
        }
        self.0.insert(Self::key(ours, theirs));
    }
}

/// Checks a gossiped head's signature and log id against the pinned log.
pub(crate) fn verify(dev: &Device, theirs: &SignedTreeHead) -> Result<(), CoreError> {
    let (Some(key), Some(trusted)) = (dev.data.log_key(), dev.data.trusted_head()) else {
        return Ok(());
    };
    if dev.data.trusted_signed_head().as_ref() == Some(theirs) {
        return Ok(());
    }
    theirs.verify(&LogPublicKey::from_bytes(&key)?, &trusted.log_id)?;
    Ok(())
}

/// The outcome of comparing without the directory.
pub(crate) enum Local {
    /// Settled.
    Done(GossipCheck),
    /// Another root than the head kept for that epoch (that head).
    Fork(SignedTreeHead),
    /// The directory's head of that epoch is needed (our trusted head).
    NeedsProof(SignedTreeHead),
}

/// Compares a gossiped head (signature already checked) with kept heads.
pub(crate) fn compare(dev: &Device, theirs: Option<&SignedTreeHead>) -> Local {
    let (Some(theirs), Some(ours)) = (theirs, dev.data.trusted_signed_head()) else {
        return Local::Done(GossipCheck::Unchecked);
    };
    match kept_head(dev, theirs.head.epoch) {
        Some(kept) if kept.head.root == theirs.head.root => Local::Done(GossipCheck::Consistent),
        Some(kept) => Local::Fork(kept),
        None if dev.gossip_checked.contains(&ours, theirs) => Local::Done(GossipCheck::Consistent),
        None => Local::NeedsProof(ours),
    }
}
