//! Server SDK for hush — and for Pusher Channels, whose HTTP API and signatures
//! hush speaks. It mirrors the official Pusher server SDKs (pusher-http-node,
//! -php, -go), so their users feel at home:
//!
//! | Pusher SDK (Node) | hush-sdk |
//! |---|---|
//! | `new Pusher({appId, key, secret, host, port, useTLS, encryptionMasterKeyBase64})` | [`Client::new`]`(`[`Config`]`)` |
//! | `trigger(channels, event, data, {socket_id, info})` | [`Client::trigger`] / [`Client::trigger_raw`] |
//! | `triggerBatch([...])` | [`Client::trigger_batch`] |
//! | `get({path: "/channels", params})` | [`Client::channels`], [`Client::channel`], [`Client::channel_users`] |
//! | `sendToUser`, `terminateUserConnections` | [`Client::send_to_user`], [`Client::terminate_user_connections`] |
//! | `authorizeChannel`, `authenticateUser` | [`Client::authorize_channel`], [`Client::authenticate_user`] |
//! | `webhook(req).isValid()` | [`Client::verify_webhook`] |
//! | — (hush key directory) | [`Client::directory_users`], [`Client::directory_log_head`], [`Client::directory_log_head_at`], [`Client::directory_log_audit`] |
//!
//! ```no_run
//! use hush_sdk::{Client, Config, TriggerOptions};
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let client = Client::new(Config::new("3", "278d425bdf160c739803", "7ad3773142a6692b25b8"))?;
//! client
//!     .trigger(&["my-channel"], "my-event", &serde_json::json!({"message": "hi"}), &TriggerOptions::default())
//!     .await?;
//! # Ok(()) }
//! ```
//!
//! # Validation before anything is signed or sent
//!
//! Socket ids, channel names, event names and user ids are parsed with
//! hush-protocol's strict newtypes, so a socket id such as
//! `1.1:private-victim` (the 2015 Pusher injection), `1.1\n` or one written in
//! non-ASCII digits is refused with a typed error and never signed. Triggers
//! are checked against the Pusher limits: data ≤ 10 240 bytes (after
//! encryption), ≤ 100 channels, ≤ 10 events per batch.
//!
//! # Encrypted channels (suite 0)
//!
//! With [`Config::encryption_master_key`] set, events to `private-encrypted-`
//! channels are sealed with [`hush_crypto`] (NaCl secretbox, key
//! `SHA-256(channel ‖ master key)`), and [`Client::authorize_channel`] adds the
//! channel's `shared_secret` to the auth response. As in the Pusher SDKs, an
//! encrypted trigger names exactly one channel.
//!
//! # Data: JSON like the Node SDK
//!
//! [`Client::trigger`] serializes `data` to JSON. On ordinary channels a value
//! that serializes to a JSON *string* is sent as that string without quotes
//! (the Node SDK's `ensureJSON`); on encrypted channels the JSON text itself is
//! sealed, so a `&str` is encrypted *with* its quotes (`JSON.stringify`).
//! pusher-js hands the same value to the app either way. Use
//! [`Client::trigger_raw`] to send (or seal) a string byte for byte.
//!
//! # Key directory (hush extension)
//!
//! [`Client::directory_users`], [`Client::directory_log_head`],
//! [`Client::directory_log_head_at`] and [`Client::directory_log_audit`]
//! call hush's signed key-directory endpoints (docs/PROTOCOL-EXT.md §3) and
//! decode their base64 into [`hush_crypto::transparency`] types. The
//! directory is Meta's akd: signed epoch heads, lookup proofs that show a
//! user's entry is the latest at an epoch, append-only proofs between
//! epochs; the VRF hides user ids, so nobody can list the users. Nothing is
//! trusted by decoding alone: check lookups with [`DirectoryLookup::verify`]
//! against a [`LogMonitor`](hush_crypto::transparency::LogMonitor) that pins
//! the head-signing key and with the pinned
//! [`VrfPublicKey`](hush_crypto::transparency::proofs::VrfPublicKey); audits
//! ([`Audit`]) are verified by `hush audit`, with akd's auditor.
//!
//! # TLS
//!
//! The HTTP client is hyper (already part of a hush build). HTTPS needs the
//! `tls` cargo feature (rustls + ring + system roots); without it,
//! [`Scheme::Https`] is refused when the client is built.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod auth;
mod client;
mod config;
pub mod directory;
mod error;
mod http;
mod payload;
mod responses;
pub mod webhook;

pub use auth::{AuthError, ChannelAuth, PresenceData, UserAuth, UserData};
pub use client::Client;
pub use config::{Config, ConfigError, DEFAULT_PORT, DEFAULT_TIMEOUT, EpochPolicy, Scheme};
pub use directory::{Audit, DirectoryLookup, LogHead};
pub use error::{Error, ValidationError};
pub use hush_crypto::MasterKey;
pub use payload::{Attribute, BatchEvent, ChannelsQuery, TriggerOptions};
pub use responses::{
    BatchResponse, CacheInfo, ChannelInfo, ChannelsList, PresenceUser, TriggerResponse,
};
pub use webhook::{Webhook, WebhookError, WebhookEvent};
