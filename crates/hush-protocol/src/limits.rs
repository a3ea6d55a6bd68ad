//! Default limits (PROTOCOL.md §14).

/// Event `data` bytes accepted from the HTTP API and from client events.
pub const MAX_EVENT_DATA_BYTES: usize = 10_240;
/// Channels one trigger may name.
pub const MAX_CHANNELS_PER_TRIGGER: usize = 100;
/// Events in one batch.
pub const MAX_BATCH_EVENTS: usize = 10;
/// Distinct users in one presence channel.
pub const MAX_PRESENCE_MEMBERS: usize = 100;
/// Serialized `user_info` bytes of one presence member.
pub const MAX_PRESENCE_USER_INFO_BYTES: usize = 1_024;
/// Client events per second per connection.
pub const MAX_CLIENT_EVENTS_PER_SECOND: u32 = 10;
/// Watchlist entries kept.
pub const MAX_WATCHLIST: usize = 100;
/// Seconds a cache channel keeps its last event.
pub const CACHE_TTL_SECS: u64 = 1_800;
/// Seconds advertised as `activity_timeout`.
pub const ACTIVITY_TIMEOUT_SECS: u64 = 120;
/// Seconds to wait for a pong.
pub const PONG_TIMEOUT_SECS: u64 = 30;
