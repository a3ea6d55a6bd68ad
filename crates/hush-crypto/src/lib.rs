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
