//! Typed errors of the client.

use hush_protocol::ChannelNameError;

/// Why a [`ClientBuilder`](crate::ClientBuilder) refused its settings.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The URL is not `ws://host[:port][/prefix]` (or `http://…`).
    #[error("invalid server URL {url:?}: {reason}")]
    BadUrl {
        /// The URL given.
        url: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// `wss://` / `https://`: this build has no TLS support.
    #[error(
        "TLS (wss://) is not supported by this build of hush-client; use ws:// behind a local TLS terminator"
    )]
    TlsNotSupported,
    /// The app key is empty or holds characters that cannot appear in a URL path.
    #[error("invalid app key: must be non-empty ASCII letters, digits, '-' or '_'")]
    BadAppKey,
    /// A duration or size setting is zero or out of range.
    #[error("invalid setting {0}")]
    BadSetting(&'static str),
    /// `build()` was called outside a tokio runtime.
    #[error("hush-client must be built inside a tokio runtime")]
    NoRuntime,
}

/// Why an authorization (channel auth or user sign-in) failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// The channel needs authorization but the client has no authorizer.
    #[error("no authorizer configured: {0} needs authorization")]
    NoAuthorizer(String),
    /// The authorizer cannot authenticate users (no user endpoint).
    #[error("the authorizer has no user authentication (set a user endpoint)")]
    NoUserAuthentication,
    /// The endpoint answered with a status other than 200.
    #[error("auth endpoint answered HTTP {status}")]
    Status {
        /// The HTTP status.
        status: u16,
    },
    /// The endpoint could not be reached.
    #[error("auth endpoint unreachable: {0}")]
    Transport(String),
    /// The endpoint did not answer in time.
    #[error("auth endpoint timed out")]
    Timeout,
    /// The closure authorizer refused.
    #[error("authorizer refused: {0}")]
    Refused(String),
    /// The response is not the JSON object expected.
    #[error("invalid auth response: {0}")]
    BadResponse(String),
    /// `auth` is not `"{app_key}:{64 hex digits}"` for this client's app key.
    #[error("invalid auth response: `auth` must be \"{{app key}}:{{64 hex digits}}\" for this app")]
    BadAuthValue,
    /// An encrypted channel's response lacks `shared_secret`.
    #[error("invalid auth response: no shared_secret for encrypted channel {0}")]
    MissingSharedSecret(String),
    /// `shared_secret` is not standard base64 of 32 bytes.
    #[error("invalid auth response: shared_secret must be base64 of 32 bytes")]
    BadSharedSecret,
    /// `channel_data` / `user_data` would be refused by the server.
    #[error("invalid auth response: {0}")]
    BadMemberData(String),
}

/// Errors returned by [`Client`](crate::Client) and [`Channel`](crate::Channel) calls.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The channel name does not parse.
    #[error(transparent)]
    ChannelName(#[from] ChannelNameError),
    /// The event name is not a valid client event name (`client-…`, ≤ 200 bytes).
    #[error(
        "invalid client event name {0:?}: must start with \"client-\" and be at most 200 bytes"
    )]
    EventName(String),
    /// Client events are only allowed on private and presence channels.
    #[error("client events are not allowed on {0} (only private- and presence- channels)")]
    ClientEventsNotAllowed(String),
    /// The channel is not subscribed (yet).
    #[error("not subscribed to {0}")]
    NotSubscribed(String),
    /// The client is not connected right now.
    #[error("not connected")]
    NotConnected,
    /// The data could not be serialized, or is too large.
    #[error("invalid event data: {0}")]
    Data(String),
    /// Authorization failed.
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// The server refused the sign-in or the connection stopped before it finished.
    #[error("sign-in failed: {0}")]
    Signin(String),
    /// The connection failed for good (e.g. unknown app key, 4001).
    #[error("connection failed: {0}")]
    Failed(String),
    /// The client was disconnected (or every handle dropped).
    #[error("the client is disconnected")]
    Closed,
}
