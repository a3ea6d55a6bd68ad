//! Pusher Channels protocol 7, as hush speaks it: pure types, no I/O, no clock.
//!
//! Everything that crosses a trust boundary is parsed into a validating newtype
//! before it is used: [`SocketId`], [`ChannelName`], [`EventName`] and [`UserId`]
//! cannot hold a value that would make a signed string ambiguous. That is what
//! makes the 2015 Pusher `socket_id` injection (`"1.1:private-victim"`) impossible
//! here: such a string never becomes a `SocketId`, and only typed values reach the
//! signers in [`auth`].
//!
//! ```
//! use hush_protocol::{SocketId, ChannelName, auth};
//!
//! let socket: SocketId = "1234.1234".parse().unwrap();
//! let channel = ChannelName::parse("private-foobar").unwrap();
//! let sig = auth::sign_channel(b"7ad3773142a6692b25b8", &socket, &channel, None);
//! assert_eq!(sig.to_hex(), "58df8b0c36d6982b82c3ecf6b4662e34fe8c25bba48f5369f135bf843651c3a4");
//! assert!("1234.1234:private-victim".parse::<SocketId>().is_err());
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod api;
pub mod auth;
pub mod channel;
pub mod close;
pub mod encrypted;
pub mod event;
pub mod limits;
pub mod msgs;
pub mod presence;
pub mod socket_id;
pub mod user;
pub mod webhook;
pub mod wire;

pub use channel::{ChannelKind, ChannelName, ChannelNameError};
pub use close::CloseCode;
pub use event::{EventName, EventNameError};
pub use socket_id::{SocketId, SocketIdError};
pub use user::{UserId, UserIdError};
