//! Backup of the identity key: sealing it under a password, and restoring it
//! onto this device.

use hush_crypto::backup::{self, BackupParams};

use super::E2eeError;
use super::devices::Devices;
use super::directory::Directory;
use super::state::Shared;

/// The identity backup of one [`E2ee`](super::E2ee).
pub(super) struct Backup<'a> {
    sh: &'a Shared,
}

impl<'a> Backup<'a> {
    pub(super) fn new(sh: &'a Shared) -> Self {
        Self { sh }
    }

    /// See [`E2ee::backup_identity`](super::E2ee::backup_identity).
    pub(super) fn backup_identity(
        &self,
        password: &[u8],
        params: BackupParams,
    ) -> Result<Vec<u8>, E2eeError> {
        self.sh.with(|st| {
            let identity = st.data.identity.as_ref().ok_or(E2eeError::NoIdentityKey)?;
            Ok(backup::seal_identity(identity, password, params)?)
        })
    }

    /// See [`E2ee::restore_identity`](super::E2ee::restore_identity).
    pub(super) async fn restore_identity(
        &self,
        blob: &[u8],
        password: &[u8],
    ) -> Result<(), E2eeError> {
        let identity = backup::open_identity(blob, password)?;
        let dir = Directory::new(self.sh);
        let g = dir.lock().await;
        let own = Devices::new(self.sh).own(&g).await?;
        if let Some(current) = own.identity
            && current != identity.public_key()
        {
            return Err(E2eeError::Card(
                hush_crypto::identity::CardError::IdentityMismatch,
            ));
        }
        self.sh.update(|st| {
            st.data.identity = Some(identity);
            Ok(())
        })
    }
}
