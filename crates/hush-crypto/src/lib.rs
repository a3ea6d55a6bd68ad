//! End-to-end encryption for hush. Pure: no I/O, no clock; the only outside
//! input is the operating system's random number generator (nonces and keys).
//!
//! # Suite 0: Pusher-compatible encrypted channels
//!
//! [`suite0`] is byte-compatible with Pusher's `private-encrypted-` channels
//! (PROTOCOL.md §11): the app backend holds a 32-byte [`MasterKey`]; each
//! channel's key is `SHA-256(UTF-8 channel name ‖ master key)`
//! ([`shared_secret`]); event data is sealed with NaCl `secretbox`
//! (XSalsa20-Poly1305, random 24-byte nonce) and travels as the string
//! `{"nonce":"<base64>","ciphertext":"<base64 of tag ‖ ciphertext>"}`, exactly
//! as pusher-http-node writes it and pusher-js reads it.
//!
//! ```
//! use hush_crypto::{MasterKey, shared_secret, seal, open};
//! use hush_protocol::ChannelName;
//!
//! let master = MasterKey::from_base64("dGhpcyBpcyAzMiBieXRlcyBsb25nLCBpdCByZWFsbHk=")?;
//! let channel = ChannelName::parse("private-encrypted-foo")?;
//! let key = shared_secret(&channel, &master);
//! assert_eq!(key.to_base64(), "3x0KbqI7rIgm1LH1vj0MbmQu3a1H1t0DYjzwM8+rKlc=");
//!
//! let data = seal(&key, br#"{"message":"hello"}"#);
//! assert_eq!(open(&key, &data)?, br#"{"message":"hello"}"#);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! What suite 0 does **not** give (Pusher's own "Limitations"): forward
//! secrecy, replay protection, sender authentication beyond "holds the master
//! key", hidden channel or event names. Anyone holding the master key — the app
//! backend — can read everything; the relay (hush) cannot.
//!
//! # Secrets
//!
//! [`MasterKey`] and [`ChannelKey`] are zeroized when dropped, compare in
//! constant time, and print as `<redacted>`. Decryption failures are opaque
//! ([`OpenError`]): they never say which byte or which check failed.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod backup;
pub mod device_auth;
pub mod directory;
pub mod epoch;
pub mod identity;
pub mod safety;
pub mod sealed;
pub mod suite0;
pub mod suite1;
pub mod transparency;
mod wire;

pub use suite0::{
    ChannelKey, EncryptedData, MasterKey, MasterKeyError, NONCE_LEN, OpenError, TAG_LEN, open,
    seal, shared_secret,
};

/// The committed known answers (`tests/vectors/known-answers.json`), read at
/// run time by the unit tests, and by the WebAssembly build's test
/// (js/packages/e2ee/test/vectors.test.mjs): one file, two readers.
#[cfg(test)]
pub(crate) mod known_answers {
    /// The value at a dotted path (`"sealed.sealed_keys.0.key_hex"`), as text.
    #[allow(clippy::unwrap_used, clippy::expect_used)]
    pub(crate) fn ka(path: &str) -> String {
        let file = std::path::PathBuf::from(
            std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_else(|| ".".into()),
        )
        .join("tests/vectors/known-answers.json");
        let text = std::fs::read_to_string(&file).expect("tests/vectors/known-answers.json");
        let mut v: serde_json::Value = serde_json::from_str(&text).expect("known answers: JSON");
        for part in path.split('.') {
            v = match part.parse::<usize>() {
                Ok(i) => v[i].take(),
                Err(_) => v[part].take(),
            };
        }
        match v {
            serde_json::Value::String(s) => s,
            serde_json::Value::Null => panic!("known answer {path} is missing"),
            other => other.to_string(),
        }
    }
}
