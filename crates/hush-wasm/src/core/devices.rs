//! Linking a second device (hush-client `e2ee/devices.rs` `CardRequest`):
//! the new device's self-signed request, its approval by a device holding
//! the identity key, and installing the resulting card.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hush_crypto::identity::{
    CardError, DeviceCard, DeviceId, DeviceSigningPublicKey, EncryptionPublicKey,
    IdentityPublicKey, SIGNATURE_LEN, UnsignedCard,
};
use hush_protocol::UserId;
use serde::{Deserialize, Serialize};

use super::device::{CARD_VALIDITY_SECS, Device};
use super::directory::b64;
use super::error::CoreError;

/// hush-client's `CardRequest` (the same JSON text).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct CardRequest {
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
    fn body(&self) -> Result<(UnsignedCard, [u8; SIGNATURE_LEN]), CoreError> {
        let bad = |w: &str| CoreError::Invalid(format!("card request: bad {w}"));
        let key32 = |s: &str, w: &str| -> Result<[u8; 32], CoreError> {
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

/// The new device's request text, bound to `identity` (its user's verified
/// identity key).
pub(crate) fn card_request(
    dev: &Device,
    identity: &IdentityPublicKey,
    now_ms: u64,
) -> Result<String, CoreError> {
    let me = dev.data.user.clone();
    let now = now_ms / 1000;
    let body = UnsignedCard::new(
        me.clone(),
        identity,
        &dev.data.keys,
        now.saturating_sub(60),
        now + CARD_VALIDITY_SECS,
        None,
    );
    let sig = body.self_sign(&dev.data.keys)?;
    let r = CardRequest {
        user: me.as_str().to_owned(),
        device: hex::encode(dev.data.device_id.0),
        identity: b64(&identity.to_bytes()),
        signing: b64(&body.signing_key.to_bytes()),
        encryption: b64(&body.encryption_key.to_bytes()),
        created: body.created_at,
        expires: body.expires_at,
        signature: b64(&sig),
    };
    serde_json::to_string(&r).map_err(|e| CoreError::Invalid(e.to_string()))
}

impl Device {
    /// Cross-signs a new device's request with this device's identity key
    /// (the device is then known: no owner alarm). Returns its card.
    pub fn approve_device(&mut self, request: &str) -> Result<String, CoreError> {
        let request: CardRequest = serde_json::from_str(request)
            .map_err(|e| CoreError::Invalid(format!("card request: {e}")))?;
        let identity = self
            .data
            .identity
            .as_ref()
            .ok_or(CoreError::NoIdentityKey)?;
        let (body, device_sig) = request.body()?;
        if body.user_id != self.data.user || body.identity_key != identity.public_key() {
            return Err(CoreError::Card(CardError::IdentityMismatch));
        }
        let identity_sig = body.cross_sign(identity)?;
        let card = DeviceCard::assemble(body, device_sig, identity_sig)?;
        self.data.known_devices.insert(card.device_id());
        Ok(b64(&card.to_bytes()))
    }

    /// Installs the card another device approved for this one.
    pub fn install_card(&mut self, card_b64: &str) -> Result<(), CoreError> {
        let bytes = STANDARD
            .decode(card_b64.trim())
            .map_err(|_| CoreError::Invalid("card: not base64".into()))?;
        let card = DeviceCard::from_bytes(&bytes)?;
        let d = &self.data;
        if *card.user_id() != d.user
            || card.device_id() != d.device_id
            || *card.signing_key() != d.keys.signing_public_key()
            || *card.encryption_key() != d.keys.encryption_public_key()
        {
            return Err(CoreError::Card(CardError::KeyMismatch));
        }
        self.data.card = Some(card);
        Ok(())
    }
}
