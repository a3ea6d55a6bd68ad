//! Device authentication on a connection (issue 18): after `pusher:signin`
//! has told the server which *user* a connection is, the device proves
//! which of that user's *devices* it is by signing a fresh server nonce
//! with its device signing key. The server checks the signature against the
//! device's card in the key directory, and only then routes that device's
//! mailbox to the connection.
//!
//! What is signed: `"hush/v1/device-auth\0" ‖ str16(app key) ‖ str16(socket
//! id) ‖ str16(user id) ‖ device id (16) ‖ nonce (32)`. The socket id and
//! the nonce make a proof good for one connection only (a proof seen on one
//! connection cannot be replayed on another); the user id ties it to the
//! signed-in user (a device of Alice cannot be claimed by Mallory's
//! connection, even with Alice's proof); the app key keeps apps apart.

use crate::identity::{DeviceCard, DeviceId, DeviceKeys, SIGNATURE_LEN};
use crate::wire::Writer;

/// Length of the server's nonce.
pub const NONCE_LEN: usize = 32;
const CTX: &[u8] = b"hush/v1/device-auth\0";

/// What a device-authentication proof binds: the app, the connection, the
/// signed-in user and the server's nonce.
#[derive(Debug, Clone, Copy)]
pub struct Challenge<'a> {
    /// The app's key (public: the one clients connect with).
    pub app_key: &'a str,
    /// The connection's socket id.
    pub socket_id: &'a str,
    /// The user the connection signed in as.
    pub user_id: &'a str,
    /// The nonce the server issued to this connection.
    pub nonce: &'a [u8; NONCE_LEN],
}

/// Why a proof was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DeviceAuthError {
    /// The card is for another user or device than the proof claims.
    #[error("the card is not this user's device")]
    WrongCard,
    /// The signature does not verify under the device's signing key.
    #[error("the device signature does not verify")]
    BadSignature,
}

impl Challenge<'_> {
    fn message(&self, device: DeviceId) -> Vec<u8> {
        let mut w = Writer::with_capacity(
            CTX.len() + 6 + self.app_key.len() + self.socket_id.len() + self.user_id.len() + 48,
        );
        w.bytes(CTX)
            .str16(self.app_key.as_bytes())
            .str16(self.socket_id.as_bytes())
            .str16(self.user_id.as_bytes())
            .bytes(&device.0)
            .bytes(self.nonce);
        w.into_vec()
    }

    /// The device's proof for this challenge.
    pub fn sign(&self, keys: &DeviceKeys) -> [u8; SIGNATURE_LEN] {
        keys.sign_prefixed(&self.message(keys.device_id()))
    }

    /// Checks `signature` against `card` (a card of the signed-in user,
    /// from the directory): the card must be this user's, and the signature
    /// the card's device key over this challenge.
    pub fn verify(
        &self,
        card: &DeviceCard,
        signature: &[u8; SIGNATURE_LEN],
    ) -> Result<(), DeviceAuthError> {
        if card.user_id().as_str() != self.user_id {
            return Err(DeviceAuthError::WrongCard);
        }
        card.signing_key()
            .verify_prefixed(&self.message(card.device_id()), signature)
            .map_err(|_| DeviceAuthError::BadSignature)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::{IdentityKey, UnsignedCard};
    use hush_protocol::UserId;

    fn card(user: &str, keys: &DeviceKeys) -> DeviceCard {
        let identity = IdentityKey::generate();
        let user = UserId::parse(user).unwrap();
        let body = UnsignedCard::new(user, &identity.public_key(), keys, 1_000, 2_000, None);
        DeviceCard::issue(body, keys, &identity).unwrap()
    }

    #[test]
    fn a_proof_is_good_for_its_connection_user_and_nonce_only() {
        let keys = DeviceKeys::generate();
        let alice = card("alice", &keys);
        let nonce = [7u8; NONCE_LEN];
        let c = Challenge {
            app_key: "k1",
            socket_id: "1.2",
            user_id: "alice",
            nonce: &nonce,
        };
        let sig = c.sign(&keys);
        assert_eq!(c.verify(&alice, &sig), Ok(()));
        let other_nonce = [8u8; NONCE_LEN];
        for wrong in [
            Challenge {
                socket_id: "1.3",
                ..c
            },
            Challenge { app_key: "k2", ..c },
            Challenge {
                nonce: &other_nonce,
                ..c
            },
        ] {
            assert_eq!(
                wrong.verify(&alice, &sig),
                Err(DeviceAuthError::BadSignature)
            );
        }
        // Mallory's connection cannot claim Alice's device with her proof.
        let mallory = Challenge {
            user_id: "mallory",
            ..c
        };
        assert_eq!(
            mallory.verify(&alice, &sig),
            Err(DeviceAuthError::WrongCard)
        );
        // Another device's key does not sign for this one.
        let other = DeviceKeys::generate();
        assert_eq!(
            c.verify(&alice, &c.sign(&other)),
            Err(DeviceAuthError::BadSignature)
        );
    }
}
