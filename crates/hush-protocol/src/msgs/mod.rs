//! The wire codec (rustls's `msgs/` shape): one type per message, each with
//! `encode` and `decode`, for both directions of the WebSocket.
//!
//! * [`ClientMessage`]: what a client sends (PROTOCOL.md §3), decoded with
//!   the server's strict rules and limits, encoded as pusher-js writes it.
//! * [`ServerMessage`]: what the server sends (PROTOCOL.md §4), encoded with
//!   the exact `data` encodings Pusher documents; [`encode`] holds the
//!   single-build encoders the server's hot paths call directly.
//! * [`hush`]: `hush:request` / `hush:response` with typed parameters and
//!   results (docs/PROTOCOL-EXT.md).
//! * [`names`]: every event name.
//!
//! `vectors/frames.json` (next to this crate's manifest) lists frames with
//! their exact wire text; the tests replay them both ways.
//!
//! ```
//! use hush_protocol::msgs::{ClientMessage, ServerMessage};
//!
//! let ping = ClientMessage::decode(r#"{"event":"pusher:ping","data":{}}"#).unwrap();
//! assert_eq!(ping, ClientMessage::Ping);
//! assert_eq!(ServerMessage::Pong.encode(), r#"{"event":"pusher:pong","data":"{}"}"#);
//! ```

pub mod client;
pub mod encode;
pub mod hush;
pub mod json;
pub mod names;
pub mod server;

pub use client::{ClientMessage, SubscribeData};
pub use encode::SubscriptionErrorType;
pub use hush::{
    ErrorCode, HushError, HushRequest, HushResponse, MailboxItem, Method, RequestFrame,
    ResponseFrame,
};
pub use json::{EventData, RawJson};
pub use server::{PresenceData, ServerMessage, WatchlistEvent, WatchlistStatus};

/// Why a frame was refused (from a client: answered with `pusher:error`,
/// code `null`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// Not JSON, or no string `event`.
    #[error("Invalid message format: {0}")]
    Malformed(String),
    /// `data` (or another member) of an event has the wrong shape.
    #[error("Invalid data for {event}: {reason}")]
    BadData {
        /// Which event.
        event: String,
        /// Why.
        reason: String,
    },
}

#[cfg(test)]
mod proptests;
