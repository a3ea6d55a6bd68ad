//! This user's devices: publishing this device's card, cross-signing new
//! devices ([`CardRequest`]), revoking devices, rotating the identity key.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hush_crypto::identity::{
    CardId, DeviceCard, DeviceId, DeviceSigningPublicKey, EncryptionPublicKey, IdentityKey,
    IdentityPublicKey, Revocation, RevocationKind, SIGNATURE_LEN, UnsignedCard,
};
use hush_protocol::UserId;
use serde::{Deserialize, Serialize};

use super::directory::Directory;
use super::state::{Shared, State};
use super::store::DeviceData;
use super::{CARD_VALIDITY_SECS, E2eeError, b64, now_secs};

/// A new device's request to be cross-signed by the identity key (carried to
/// an existing device by the application, e.g. as a QR code). Its text form
/// ([`CardRequest::to_text`]) is compact JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CardRequest {
    user: String,
    device: String,
    identity: String,
    signing: String,
    encryption: String,
    created: u64,
    expires: u64,
    signature: String,
}

impl CardRequest {
    /// The text form.
    pub fn to_text(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Parses the text form.
    pub fn parse(text: &str) -> Result<Self, E2eeError> {
        serde_json::from_str(text).map_err(|e| E2eeError::Invalid(format!("card request: {e}")))
    }

    fn body(&self) -> Result<(UnsignedCard, [u8; SIGNATURE_LEN]), E2eeError> {
        let bad = |w: &str| E2eeError::Invalid(format!("card request: bad {w}"));
        let key32 = |s: &str, w: &str| -> Result<[u8; 32], E2eeError> {
            STANDARD
                .decode(s)
                .ok()
                .and_then(|v| v.try_into().ok())
                .ok_or_else(|| bad(w))
        };
        let device: [u8; 16] = hex::decode(&self.device)
            .ok()
            .and_then(|v| v.try_into().ok())
            .ok_or_else(|| bad("device"))?;
        let signature: [u8; SIGNATURE_LEN] = STANDARD
            .decode(&self.signature)
            .ok()
            .and_then(|v| v.try_into().ok())
            .ok_or_else(|| bad("signature"))?;
        Ok((
            UnsignedCard {
                user_id: UserId::parse(&self.user).map_err(|_| bad("user"))?,
                device_id: DeviceId(device),
                identity_key: IdentityPublicKey::from_bytes(&key32(&self.identity, "identity")?)?,
                signing_key: DeviceSigningPublicKey::from_bytes(&key32(&self.signing, "signing")?)?,
                encryption_key: EncryptionPublicKey::from_bytes(&key32(
                    &self.encryption,
                    "encryption",
                )?)?,
                created_at: self.created,
                expires_at: self.expires,
                previous: None,
            },
            signature,
        ))
    }
}

/// Issues this device's card under `identity`.
pub(super) fn issue(
    d: &DeviceData,
    identity: &IdentityKey,
    previous: Option<CardId>,
) -> Result<DeviceCard, E2eeError> {
    let now = now_secs();
    let body = UnsignedCard::new(
        d.user.clone(),
        &identity.public_key(),
        &d.keys,
        now.saturating_sub(60),
        now + CARD_VALIDITY_SECS,
        previous,
    );
    Ok(DeviceCard::issue(body, &d.keys, identity)?)
}

/// Before a card renewal: if the device still has the X25519 key of the
/// card being replaced (`old`), draws a new one and saves it at once
/// (before the new card is sent, so a lost answer cannot lose the key the
/// directory may already list). A key stolen from this device stops
/// opening what is sent after the renewal.
fn renew_encryption_key(
    sh: &Shared,
    st: &mut State,
    old: &EncryptionPublicKey,
) -> Result<(), E2eeError> {
    if st.data.keys.encryption_public_key() == *old {
        st.data.renew_encryption_key();
        sh.save(st)?;
    }
    Ok(())
}

/// The device management of one [`E2ee`](super::E2ee).
pub(super) struct Devices<'a> {
    sh: &'a Shared,
    dir: Directory<'a>,
}

impl<'a> Devices<'a> {
    pub(super) fn new(sh: &'a Shared) -> Self {
        Self {
            sh,
            dir: Directory::new(sh),
        }
    }

    /// This user's keys as the directory proves them (directory lock held).
    pub(super) async fn own(
        &self,
        g: &super::state::DirectoryGuard<'_>,
    ) -> Result<super::UserKeys, E2eeError> {
        let me = self.sh.with(|st| st.data.user.clone());
        let mut own = self.dir.lookup_locked(g, std::slice::from_ref(&me)).await?;
        own.pop()
            .ok_or_else(|| E2eeError::UnknownUser(me.to_string()))
    }

    /// See [`E2ee::publish`](super::E2ee::publish).
    pub(super) async fn publish(&self) -> Result<DeviceCard, E2eeError> {
        let g = self.dir.lock().await;
        let own = self.own(&g).await?;
        let card = self.sh.with(|st| {
            let me = &st.data.user;
            Ok::<_, E2eeError>(match st.data.card.clone() {
                Some(c) if c.verify(me, c.identity_key(), now_secs()).is_ok() => c,
                _ => {
                    if st.data.identity.is_none() {
                        return Err(E2eeError::NoIdentityKey);
                    }
                    // The card this one renews: the directory's, else this
                    // device's own last card (an expired one is not listed).
                    let previous = own
                        .devices
                        .iter()
                        .find(|c| c.device_id() == st.data.device_id)
                        .or(st.data.card.as_ref())
                        .map(|c| (c.id(), *c.encryption_key()));
                    if let Some((_, key)) = previous {
                        renew_encryption_key(self.sh, st, &key)?;
                    }
                    let identity = st.data.identity.as_ref().ok_or(E2eeError::NoIdentityKey)?;
                    issue(&st.data, identity, previous.map(|(id, _)| id))?
                }
            })
        })?;
        if own.devices.iter().any(|c| c.id() == card.id()) {
            self.sh.update(|st| {
                st.data.card = Some(card.clone());
                Ok(())
            })?;
            return Ok(card);
        }
        self.dir.publish_card(&g, card).await
    }

    /// See [`E2ee::card_request`](super::E2ee::card_request).
    pub(super) async fn card_request(&self) -> Result<CardRequest, E2eeError> {
        let g = self.dir.lock().await;
        let own = self.own(&g).await?;
        drop(g);
        let identity = own
            .identity
            .ok_or_else(|| E2eeError::UnknownUser(own.user.to_string()))?;
        self.sh.with(|st| {
            let me = st.data.user.clone();
            let now = now_secs();
            let body = UnsignedCard::new(
                me.clone(),
                &identity,
                &st.data.keys,
                now.saturating_sub(60),
                now + CARD_VALIDITY_SECS,
                None,
            );
            let sig = body.self_sign(&st.data.keys)?;
            Ok(CardRequest {
                user: me.as_str().to_owned(),
                device: hex::encode(st.data.device_id.0),
                identity: b64(&identity.to_bytes()),
                signing: b64(&body.signing_key.to_bytes()),
                encryption: b64(&body.encryption_key.to_bytes()),
                created: body.created_at,
                expires: body.expires_at,
                signature: b64(&sig),
            })
        })
    }

    /// See [`E2ee::approve_device`](super::E2ee::approve_device).
    pub(super) fn approve_device(&self, request: &CardRequest) -> Result<DeviceCard, E2eeError> {
        self.sh.with(|st| {
            let identity = st.data.identity.as_ref().ok_or(E2eeError::NoIdentityKey)?;
            let (body, device_sig) = request.body()?;
            if body.user_id != st.data.user || body.identity_key != identity.public_key() {
                return Err(E2eeError::Card(
                    hush_crypto::identity::CardError::IdentityMismatch,
                ));
            }
            let identity_sig = body.cross_sign(identity)?;
            let card = DeviceCard::assemble(body, device_sig, identity_sig)?;
            // The owner watch raises no alarm for a device approved here.
            st.data.known_devices.insert(card.device_id());
            self.sh.save(st)?;
            Ok(card)
        })
    }

    /// See [`E2ee::install_card`](super::E2ee::install_card).
    pub(super) fn install_card(&self, card: DeviceCard) -> Result<(), E2eeError> {
        self.sh.update(|st| {
            let d = &st.data;
            if *card.user_id() != d.user
                || card.device_id() != d.device_id
                || *card.signing_key() != d.keys.signing_public_key()
                || *card.encryption_key() != d.keys.encryption_public_key()
            {
                return Err(E2eeError::Card(
                    hush_crypto::identity::CardError::KeyMismatch,
                ));
            }
            st.data.card = Some(card);
            Ok(())
        })
    }

    /// See [`E2ee::revoke_device`](super::E2ee::revoke_device).
    pub(super) async fn revoke_device(&self, device: DeviceId) -> Result<(), E2eeError> {
        let g = self.dir.lock().await;
        let own = self.own(&g).await?;
        let rev = self.sh.with(|st| {
            let identity = st.data.identity.as_ref().ok_or(E2eeError::NoIdentityKey)?;
            let card = own
                .devices
                .iter()
                .find(|c| c.device_id() == device)
                .ok_or_else(|| E2eeError::Invalid(format!("no active device {device}")))?;
            Ok::<_, E2eeError>(Revocation::revoke_device(identity, card, now_secs())?)
        })?;
        // Recorded before it is sent: a revocation whose answer is lost must
        // not raise an owner alarm later.
        self.sh.update(|st| {
            st.data.known_revocations.insert(device);
            Ok(())
        })?;
        self.dir.publish_revocation(&g, rev).await?;
        self.sh.update(|st| {
            if device == st.data.device_id {
                st.data.card = None;
            }
            Ok(())
        })
    }

    /// See [`E2ee::rotation_pending`](super::E2ee::rotation_pending).
    pub(super) fn rotation_pending(&self) -> bool {
        self.sh.with(|st| st.data.pending_identity.is_some())
    }

    /// See [`E2ee::rotate_identity`](super::E2ee::rotate_identity).
    pub(super) async fn rotate_identity(&self) -> Result<DeviceCard, E2eeError> {
        let g = self.dir.lock().await;
        let (old, new, user) = self.sh.with(|st| {
            let old = st.data.identity.clone().ok_or(E2eeError::NoIdentityKey)?;
            let new = match &st.data.pending_identity {
                Some(k) => k.clone(),
                None => {
                    let k = IdentityKey::generate();
                    st.data.pending_identity = Some(k.clone());
                    self.sh.save(st)?;
                    k
                }
            };
            Ok::<_, E2eeError>((old, new, st.data.user.clone()))
        })?;
        let own = self.own(&g).await?;
        let already = own.revocations.iter().any(|r| {
            matches!(r.kind(), RevocationKind::IdentityRotation { new_identity }
                if *new_identity == new.public_key())
        });
        if !already {
            let rev = Revocation::rotate_identity(user, &old, &new, now_secs())?;
            self.dir.publish_revocation(&g, rev).await?;
        }
        let card = self.sh.update(|st| {
            let previous = st.data.card.as_ref().map(|c| (c.id(), *c.encryption_key()));
            if let Some((_, key)) = previous {
                renew_encryption_key(self.sh, st, &key)?;
            }
            let card = issue(&st.data, &new, previous.map(|(id, _)| id))?;
            st.data.identity = Some(new);
            st.data.pending_identity = None;
            st.data.card = None;
            Ok(card)
        })?;
        self.dir.publish_card(&g, card).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn card_requests_parse_strictly() {
        assert!(CardRequest::parse("{").is_err());
        let r = CardRequest {
            user: "alice".into(),
            device: "00".into(),
            identity: String::new(),
            signing: String::new(),
            encryption: String::new(),
            created: 0,
            expires: 1,
            signature: String::new(),
        };
        let back = CardRequest::parse(&r.to_text()).unwrap();
        assert_eq!(back, r);
        assert!(matches!(back.body(), Err(E2eeError::Invalid(_))));
    }
}
