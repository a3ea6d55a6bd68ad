//! Suite 0: Pusher-compatible encrypted channels (PROTOCOL.md §11).
//!
//! * [`keys`]: the app's [`MasterKey`] and the per-channel [`ChannelKey`]
//!   derived from it by [`shared_secret`].
//! * [`envelope`]: sealing and opening event data ([`seal`], [`open`]) and the
//!   wire form of a sealed payload ([`EncryptedData`]).

pub mod envelope;
pub mod keys;

pub use envelope::{EncryptedData, NONCE_LEN, OpenError, TAG_LEN, open, seal};
pub use keys::{ChannelKey, KEY_LEN, MasterKey, MasterKeyError, shared_secret};
