//! Every event name hush sends or receives (PROTOCOL.md §3, §4 and
//! docs/PROTOCOL-EXT.md §1), so no crate spells one as a string literal.

/// `pusher:ping` (both directions).
pub const PING: &str = "pusher:ping";
/// `pusher:pong` (both directions).
pub const PONG: &str = "pusher:pong";
/// `pusher:subscribe` (client to server).
pub const SUBSCRIBE: &str = "pusher:subscribe";
/// `pusher:unsubscribe` (client to server).
pub const UNSUBSCRIBE: &str = "pusher:unsubscribe";
/// `pusher:signin` (client to server).
pub const SIGNIN: &str = "pusher:signin";
/// `pusher:connection_established` (server to client).
pub const CONNECTION_ESTABLISHED: &str = "pusher:connection_established";
/// `pusher:error` (server to client).
pub const ERROR: &str = "pusher:error";
/// `pusher:subscription_error` (server to client).
pub const SUBSCRIPTION_ERROR: &str = "pusher:subscription_error";
/// `pusher:signin_success` (server to client).
pub const SIGNIN_SUCCESS: &str = "pusher:signin_success";
/// `pusher:cache_miss` (server to client).
pub const CACHE_MISS: &str = "pusher:cache_miss";
/// `pusher_internal:subscription_succeeded` (server to client).
pub const SUBSCRIPTION_SUCCEEDED: &str = "pusher_internal:subscription_succeeded";
/// `pusher_internal:member_added` (server to client).
pub const MEMBER_ADDED: &str = "pusher_internal:member_added";
/// `pusher_internal:member_removed` (server to client).
pub const MEMBER_REMOVED: &str = "pusher_internal:member_removed";
/// `pusher_internal:subscription_count` (server to client).
pub const SUBSCRIPTION_COUNT: &str = "pusher_internal:subscription_count";
/// `pusher_internal:watchlist_events` (server to client).
pub const WATCHLIST_EVENTS: &str = "pusher_internal:watchlist_events";
/// `hush:request` (client to server).
pub const HUSH_REQUEST: &str = "hush:request";
/// `hush:response` (server to client).
pub const HUSH_RESPONSE: &str = "hush:response";
/// `hush:mailbox` (server to client): a message queued for this
/// connection's device, pushed as it arrives.
pub const HUSH_MAILBOX: &str = "hush:mailbox";

/// Prefix of Pusher's own events.
pub const PUSHER_PREFIX: &str = "pusher:";
/// Prefix of Pusher's internal events.
pub const PUSHER_INTERNAL_PREFIX: &str = "pusher_internal:";
/// Prefix of client events.
pub const CLIENT_PREFIX: &str = "client-";

/// True for `pusher:*` and `pusher_internal:*` names.
pub fn is_pusher(event: &str) -> bool {
    event.starts_with(PUSHER_PREFIX) || event.starts_with(PUSHER_INTERNAL_PREFIX)
}
