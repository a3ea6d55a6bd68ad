//! Gossip of tree heads inside suite 1 envelopes (docs/E2EE-SUITE1.md §4.7).
//!
//! Every envelope's signed header carries the sender's latest verified epoch
//! head. The receiver checks its signature against its own pinned directory
//! key before opening (a head that does not verify refuses the envelope),
//! and compares it with the heads it accepted itself after opening: for an
//! epoch it kept a head of, locally (a different root at one epoch is a
//! fork, no round trip); for another epoch, against the directory's own
//! signed head of that epoch (`log.head {epoch}`), fetched without the
//! state lock held, once per pair of heads. A fork is reported as a
//! [`ForkDetected`] event carrying both signed heads, and the message is
//! still returned, flagged [`GossipCheck::Fork`].

use std::collections::HashSet;

use hush_crypto::transparency::{Hash, LogPublicKey, SignedTreeHead};

use super::E2eeError;
use super::state::State;

/// Most remembered pairs of heads known to be consistent (then forgotten
/// all at once; a forgotten pair only costs another round trip).
const MAX_CHECKED: usize = 1024;

/// What the gossiped tree head of an opened message says about the
/// directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GossipCheck {
    /// The sender's head is consistent with this device's trusted head.
    Consistent,
    /// Not checked: the envelope carries no head (e.g. sealed by a backend),
    /// this device has no trusted head yet, or the directory's head of that
    /// epoch could not be fetched (directory unreachable).
    Unchecked,
    /// The sender was shown another log than this device: the directory
    /// forked. A [`ForkDetected`] event with both heads was raised. The
    /// message's signature verified under the sender card of this device's
    /// view, but that view is the one in doubt: treat the conversation's
    /// keys as suspect until the fork is resolved.
    Fork,
}

/// Evidence of a forked directory: two heads signed by the same directory
/// key for one epoch with different roots. Shown to an auditor together,
/// they prove the directory misbehaved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForkDetected {
    /// The head this device holds for that epoch (its own, or the
    /// directory's answer for the gossiped epoch).
    pub ours: SignedTreeHead,
    /// The head gossiped in the message.
    pub theirs: SignedTreeHead,
    /// The sender of the message that carried `theirs`.
    pub sender: String,
    /// The channel it arrived on.
    pub channel: String,
}

/// Heads already proven consistent: (our epoch, our root, their epoch,
/// their root).
#[derive(Debug, Default)]
pub(super) struct Checked(HashSet<(u64, Hash, u64, Hash)>);

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
    pub(super) fn insert(&mut self, ours: &SignedTreeHead, theirs: &SignedTreeHead) {
        if self.0.len() >= MAX_CHECKED {
            self.0.clear();
        }
        self.0.insert(Self::key(ours, theirs));
    }
}

/// Checks a gossiped head's log signature and log id against this device's
/// pinned log (nothing to check against before the first lookup).
pub(super) fn verify(st: &State, theirs: &SignedTreeHead) -> Result<(), E2eeError> {
    let (Some(key), Some(trusted)) = (st.data.log_key(), st.data.trusted_head()) else {
        return Ok(());
    };
    // The common case, the sender's head is the one this device trusts:
    // verified already, no second signature check per message.
    if st.data.trusted_signed_head().as_ref() == Some(theirs) {
        return Ok(());
    }
    theirs.verify(&LogPublicKey::from_bytes(&key)?, &trusted.log_id)?;
    Ok(())
}

/// The outcome of comparing without the directory.
pub(super) enum Local {
    /// Settled: consistent, or nothing to compare.
    Done(GossipCheck),
    /// Another root than the head this device kept for that epoch (that
    /// head).
    Fork(SignedTreeHead),
    /// An epoch this device kept no head of: the directory's head of it is
    /// needed (our trusted head).
    NeedsProof(SignedTreeHead),
}

/// Compares a gossiped head (already signature-checked) with the heads this
/// device kept.
pub(super) fn compare(st: &State, theirs: Option<&SignedTreeHead>) -> Local {
    let (Some(theirs), Some(ours)) = (theirs, st.data.trusted_signed_head()) else {
        return Local::Done(GossipCheck::Unchecked);
    };
    match super::directory::kept_head(st, theirs.head.epoch) {
        Some(kept) if kept.head.root == theirs.head.root => Local::Done(GossipCheck::Consistent),
        Some(kept) => Local::Fork(kept),
        None if st.gossip_checked.contains(&ours, theirs) => {
            Local::Done(GossipCheck::Consistent)
        }
        None => Local::NeedsProof(ours),
    }
}
