//! Verifying contacts: safety numbers and the verified marks.

use hush_crypto::identity::{IdentityKey, IdentityPublicKey};
use hush_crypto::safety::SafetyNumber;

use super::directory::Directory;
use super::state::Shared;
use super::store::DeviceData;
use super::{E2eeError, b64};

fn own_identity(d: &DeviceData) -> Option<IdentityPublicKey> {
    d.identity
        .as_ref()
        .map(IdentityKey::public_key)
        .or_else(|| d.card.as_ref().map(|c| *c.identity_key()))
}

/// Contact verification of one [`E2ee`](super::E2ee).
pub(super) struct Verification<'a> {
    sh: &'a Shared,
}

impl<'a> Verification<'a> {
    pub(super) fn new(sh: &'a Shared) -> Self {
        Self { sh }
    }

    /// See [`E2ee::safety_number`](super::E2ee::safety_number).
    pub(super) async fn safety_number(&self, user: &str) -> Result<SafetyNumber, E2eeError> {
        let keys = Directory::new(self.sh).lookup(&[user]).await?;
        let found = keys
            .first()
            .ok_or_else(|| E2eeError::UnknownUser(user.to_owned()))?;
        let remote = found
            .identity
            .ok_or_else(|| E2eeError::UnknownUser(user.to_owned()))?;
        self.sh.with(|st| {
            let local = own_identity(&st.data).ok_or(E2eeError::NotPublished)?;
            Ok(SafetyNumber::for_users(
                &st.data.user,
                &local,
                &found.user,
                &remote,
            ))
        })
    }

    /// See [`E2ee::mark_verified`](super::E2ee::mark_verified).
    pub(super) async fn mark_verified(&self, user: &str) -> Result<(), E2eeError> {
        let keys = Directory::new(self.sh).lookup(&[user]).await?;
        let identity = keys
            .first()
            .and_then(|k| k.identity)
            .ok_or_else(|| E2eeError::UnknownUser(user.to_owned()))?;
        self.sh.update(|st| {
            if let Some(c) = st.data.contacts.get_mut(user) {
                c.verified = Some(b64(&identity.to_bytes()));
            }
            Ok(())
        })
    }

    /// See [`E2ee::unverify`](super::E2ee::unverify).
    pub(super) fn unverify(&self, user: &str) -> Result<(), E2eeError> {
        self.sh.update(|st| {
            if let Some(c) = st.data.contacts.get_mut(user) {
                c.verified = None;
            }
            Ok(())
        })
    }

    /// See [`E2ee::is_verified`](super::E2ee::is_verified).
    pub(super) fn is_verified(&self, user: &str) -> bool {
        self.sh.with(|st| {
            st.data
                .contacts
                .get(user)
                .is_some_and(|c| c.verified.as_deref() == Some(c.identity.as_str()))
        })
    }
}
