//! Rust client for hush and Pusher Channels (protocol 7).
//!
//! The crate README (below) is compiled as documentation tests.
#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod auth;
mod backoff;
mod client;
mod config;
mod connection;
pub mod e2ee;
mod error;
pub mod event;
mod listeners;
mod request;
mod sansio;
#[cfg(feature = "tls")]
pub mod tls;

pub use auth::{
    AuthFuture, Authorizer, ChannelAuthorization, FnAuthorizer, HttpAuthorizer, UserAuthentication,
};
pub use backoff::Backoff;
pub use client::{Channel, Client, ConnectionState, MAX_CLIENT_EVENT_BYTES, Member, Members};
pub use config::ClientBuilder;
pub use error::{AuthError, ConfigError, Error};
pub use event::{DecryptError, Event, SealedInfo};
pub use hush_protocol::{ChannelName, SocketId, UserId};
pub use listeners::EventStream;
pub use request::{DirectoryError, ErrorCode, MAX_IN_FLIGHT};
