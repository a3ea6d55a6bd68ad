//! Rust client for hush and Pusher Channels (protocol 7), for devices and
//! services that listen.
//!
//! * One connection task per [`Client`]; handles are cheap clones.
//! * Reconnects by itself: exponential backoff with full jitter, respecting
//!   the close-code classes (4000–4099 never, 4100–4199 after ≥ 1 s,
//!   4200–4299 at once), then resubscribes every channel (re-authorizing
//!   private, presence and encrypted ones) and signs in again.
//! * Pings after the activity timeout of silence and reconnects when no pong
//!   comes; answers the server's pings.
//! * Channels, presence members, client events, user sign-in and
//!   server-to-user events; `pusher:error` is delivered as an event.
//! * `private-encrypted-` channels are decrypted (suite 0). A payload that
//!   does not open makes the client re-fetch the channel key once (as pusher-js
//!   does); if it still fails, a [`DECRYPTION_FAILED`](event::DECRYPTION_FAILED)
//!   event with a typed [`DecryptError`] is delivered instead — never a panic,
//!   never a dropped connection.
//! * Events are delivered through bounded streams ([`EventStream`]): the
//!   connection task never waits for the application; a full stream loses the
//!   event and counts it ([`EventStream::dropped`], [`Client::dropped_events`]).
//!
//! ```no_run
//! use hush_client::{Client, HttpAuthorizer, event};
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let client = Client::builder("app-key")
//!     .url("ws://127.0.0.1:6001")
//!     .authorizer(HttpAuthorizer::new("http://127.0.0.1:3000/pusher/auth")?)
//!     .build()?;
//! let mut channel = client.subscribe("private-encrypted-orders").await?;
//! while let Some(e) = channel.recv().await {
//!     match e.event.as_str() {
//!         event::SUBSCRIPTION_SUCCEEDED => eprintln!("subscribed"),
//!         event::DECRYPTION_FAILED => eprintln!("undecryptable: {:?}", e.failure),
//!         _ => println!("{}", e.to_json_line()),
//!     }
//! }
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod auth;
mod backoff;
mod client;
mod config;
mod connection;
mod error;
pub mod event;
mod frames;
mod listeners;

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
