//! The app's master key and the per-channel keys derived from it.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use crypto_secretbox::aead::OsRng;
use crypto_secretbox::aead::rand_core::RngCore;
use hush_protocol::ChannelName;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, Zeroizing};

/// Length of a master key and of a channel key, in bytes.
pub const KEY_LEN: usize = 32;

/// Standard alphabet; the trailing `=` may be present or not (keys are
/// configured by hand, so both forms are accepted).
const KEY_BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Why a base64 key was refused. Never carries the key itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MasterKeyError {
    /// The text is not standard base64.
    #[error("encryption key is not valid base64")]
    NotBase64,
    /// The text decodes to something other than 32 bytes.
    #[error("encryption key must decode to 32 bytes, but it decodes to {0} bytes")]
    WrongLength(usize),
}

/// Decodes base64 into exactly [`KEY_LEN`] bytes, wiping every temporary copy.
fn decode_key(text: &str) -> Result<Box<[u8; KEY_LEN]>, MasterKeyError> {
    let decoded = Zeroizing::new(
        KEY_BASE64
            .decode(text.trim().as_bytes())
            .map_err(|_| MasterKeyError::NotBase64)?,
    );
    if decoded.len() != KEY_LEN {
        return Err(MasterKeyError::WrongLength(decoded.len()));
    }
    let mut key = Box::new([0u8; KEY_LEN]);
    key.copy_from_slice(&decoded);
    Ok(key)
}

fn random_key() -> Box<[u8; KEY_LEN]> {
    let mut key = Box::new([0u8; KEY_LEN]);
    OsRng.fill_bytes(key.as_mut_slice());
    key
}

/// The app's encryption master key: 32 secret bytes held by the app backend
/// only, never by hush (PROTOCOL.md §11).
///
/// Zeroized on drop; `Debug` prints `<redacted>`; `==` is constant time.
#[derive(Clone)]
pub struct MasterKey(Box<[u8; KEY_LEN]>);

impl MasterKey {
    /// Parses the base64 form used in configuration (44 characters with the
    /// `=`, or 43 without). Surrounding whitespace is ignored; anything that
    /// does not decode to exactly 32 bytes is refused.
    pub fn from_base64(text: &str) -> Result<Self, MasterKeyError> {
        decode_key(text).map(Self)
    }

    /// A new random key from the operating system's generator.
    pub fn generate() -> Self {
        Self(random_key())
    }
}

/// A channel's secretbox key, `SHA-256(channel name ‖ master key)`: what the
/// app's auth endpoint hands to subscribers as `shared_secret`.
///
/// Zeroized on drop; `Debug` prints `<redacted>`; `==` is constant time.
#[derive(Clone)]
pub struct ChannelKey(Box<[u8; KEY_LEN]>);

impl ChannelKey {
    /// Parses the `shared_secret` of a channel auth response (standard base64
    /// of 32 bytes).
    pub fn from_base64(text: &str) -> Result<Self, MasterKeyError> {
        decode_key(text).map(Self)
    }
}

/// Derives the key of `channel`: `SHA-256(UTF-8 channel name ‖ master key)`,
/// as pusher-http-node's `channelSharedSecret` (PROTOCOL.md §17 c).
///
/// Meant for `private-encrypted-` channels; like the Pusher SDKs it computes
/// the value for any name (callers decide which channels are encrypted).
pub fn shared_secret(channel: &ChannelName, master_key: &MasterKey) -> ChannelKey {
    let mut hasher = Sha256::new();
    hasher.update(channel.as_str().as_bytes());
    hasher.update(master_key.0.as_slice());
    let mut digest = hasher.finalize();
    let mut key = Box::new([0u8; KEY_LEN]);
    key.copy_from_slice(&digest);
    digest.as_mut_slice().zeroize();
    // sha2 0.10 does not wipe its internal block buffer, which held the master
    // key until `finalize` consumed the hasher; nothing else keeps a copy.
    ChannelKey(key)
}

/// What both key types share: construction from bytes, base64 and byte
/// views, wiping on drop, a redacted `Debug`, constant-time equality.
macro_rules! secret_impls {
    ($t:ident, $b64_doc:literal) => {
        impl $t {
            /// Wraps 32 raw bytes. The array is passed by value, so this
            /// wipes only its own copy: the caller's array (arrays are
            /// `Copy`) stays in memory. Prefer [`take_bytes`](Self::take_bytes),
            /// which wipes the caller's buffer.
            pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
                let mut bytes = bytes;
                Self::take_bytes(&mut bytes)
            }

            /// Moves 32 raw bytes into a new key and wipes `bytes` (the
            /// caller's buffer), so no copy outside the key remains.
            pub fn take_bytes(bytes: &mut [u8; KEY_LEN]) -> Self {
                let mut key = Box::new([0u8; KEY_LEN]);
                key.copy_from_slice(bytes.as_slice());
                bytes.zeroize();
                Self(key)
            }

            #[doc = $b64_doc]
            pub fn to_base64(&self) -> String {
                STANDARD.encode(self.0.as_slice())
            }

            /// The raw key bytes.
            pub fn as_bytes(&self) -> &[u8; KEY_LEN] {
                &self.0
            }
        }

        impl Drop for $t {
            fn drop(&mut self) {
                self.0.zeroize();
            }
        }

        impl fmt::Debug for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(concat!(stringify!($t), "(<redacted>)"))
            }
        }

        impl ConstantTimeEq for $t {
            fn ct_eq(&self, other: &Self) -> subtle::Choice {
                self.0.as_slice().ct_eq(other.0.as_slice())
            }
        }

        impl PartialEq for $t {
            fn eq(&self, other: &Self) -> bool {
                self.ct_eq(other).into()
            }
        }

        impl Eq for $t {}
    };
}

secret_impls!(
    MasterKey,
    "The key in standard base64 with padding — the form pusher-http-node's \
     `encryptionMasterKeyBase64` takes. This is the secret itself: do not log it."
);
secret_impls!(
    ChannelKey,
    "Standard base64 with padding: the `shared_secret` field of the channel auth \
     response. This is the channel's secret: send it only to an authorized \
     subscriber, and do not log it."
);

#[cfg(test)]
mod tests {
    use super::*;

    const DOC_KEY_B64: &str = "dGhpcyBpcyAzMiBieXRlcyBsb25nLCBpdCByZWFsbHk=";

    fn chan(s: &str) -> ChannelName {
        ChannelName::parse(s).unwrap()
    }

    #[test]
    fn kat_protocol_17c() {
        let master =
            MasterKey::from_base64(&crate::known_answers::ka("suite0.master_key_b64")).unwrap();
        assert_eq!(
            master.as_bytes(),
            crate::known_answers::ka("suite0.master_key_text").as_bytes()
        );
        let key = shared_secret(&chan(&crate::known_answers::ka("suite0.channel")), &master);
        assert_eq!(
            hex::encode(key.as_bytes()),
            crate::known_answers::ka("suite0.channel_key_hex")
        );
        assert_eq!(
            key.to_base64(),
            crate::known_answers::ka("suite0.channel_key_b64")
        );
    }

    #[test]
    fn kat_pusher_http_node_cross_check() {
        let master = MasterKey::from_base64(&crate::known_answers::ka(
            "suite0.pusher_http_node.master_key_b64",
        ))
        .unwrap();
        let key = shared_secret(
            &chan(&crate::known_answers::ka("suite0.pusher_http_node.channel")),
            &master,
        );
        assert_eq!(
            key.to_base64(),
            crate::known_answers::ka("suite0.pusher_http_node.channel_key_b64")
        );
    }

    #[test]
    fn the_channel_name_is_part_of_the_key() {
        let master = MasterKey::from_base64(DOC_KEY_B64).unwrap();
        assert_ne!(
            shared_secret(&chan("private-encrypted-foo"), &master),
            shared_secret(&chan("private-encrypted-fo"), &master)
        );
    }

    #[test]
    fn base64_forms() {
        let padded = MasterKey::from_base64(DOC_KEY_B64).unwrap();
        let unpadded = MasterKey::from_base64(DOC_KEY_B64.trim_end_matches('=')).unwrap();
        assert_eq!(padded, unpadded);
        let spaced = MasterKey::from_base64(&format!(" {DOC_KEY_B64}\n")).unwrap();
        assert_eq!(padded, spaced);
        assert_eq!(padded.to_base64(), DOC_KEY_B64);
        assert_eq!(
            MasterKey::from_base64("dGhpcyBpcyAzMiBieXRlcyBsb25nLCBpdCByZWFsbA=="),
            Err(MasterKeyError::WrongLength(31))
        );
        assert_eq!(
            MasterKey::from_base64(&STANDARD.encode([7u8; 33])),
            Err(MasterKeyError::WrongLength(33))
        );
        assert_eq!(
            MasterKey::from_base64(""),
            Err(MasterKeyError::WrongLength(0))
        );
        assert_eq!(
            MasterKey::from_base64("not base64 at all!"),
            Err(MasterKeyError::NotBase64)
        );
        // URL-safe alphabet is not standard base64.
        assert_eq!(
            MasterKey::from_base64("zyrm8pvV2C9fJcBfhyXzvxbJVN_H7QLmbe0xJi1GhPU="),
            Err(MasterKeyError::NotBase64)
        );
        // The raw 32-character text is not accepted as a key.
        assert!(MasterKey::from_base64("this is 32 bytes long, it really").is_err());
    }

    #[test]
    fn errors_and_debug_never_show_the_key() {
        let master = MasterKey::from_base64(DOC_KEY_B64).unwrap();
        let key = shared_secret(&chan("private-encrypted-foo"), &master);
        assert_eq!(format!("{master:?}"), "MasterKey(<redacted>)");
        assert_eq!(format!("{key:?}"), "ChannelKey(<redacted>)");
        let e = MasterKey::from_base64("c2VjcmV0").unwrap_err();
        assert!(!e.to_string().contains("c2VjcmV0"));
        assert!(!e.to_string().contains("secret"));
    }

    #[test]
    fn generated_keys_differ_and_round_trip() {
        let a = MasterKey::generate();
        let b = MasterKey::generate();
        assert_ne!(a, b);
        assert_eq!(MasterKey::from_base64(&a.to_base64()).unwrap(), a);
        assert_eq!(a.to_base64().len(), 44);
        let c = ChannelKey::from_bytes([9u8; KEY_LEN]);
        assert_eq!(ChannelKey::from_base64(&c.to_base64()).unwrap(), c);
        // `take_bytes` wipes the caller's buffer.
        let mut raw = [9u8; KEY_LEN];
        assert_eq!(ChannelKey::take_bytes(&mut raw), c);
        assert_eq!(raw, [0u8; KEY_LEN]);
        assert_eq!(
            MasterKey::from_bytes([1u8; KEY_LEN]).as_bytes(),
            &[1u8; KEY_LEN]
        );
    }
}
