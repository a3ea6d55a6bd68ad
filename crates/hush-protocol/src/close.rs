//! Pusher close and error codes (PROTOCOL.md §1.4, §1.5), in one place.

/// Every code hush sends in a `pusher:error` or a WebSocket close.
///
/// The match in [`CloseCode::code`] is exhaustive on purpose: a new variant must
/// choose its code, and nothing falls through to a "do not reconnect" code by
/// accident. The enum is `#[non_exhaustive]`: codes are added as the
/// protocol grows, so matches outside this crate need a wildcard arm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CloseCode {
    /// 1002 (RFC 6455): the client broke the WebSocket protocol.
    ProtocolError,
    /// 1007 (RFC 6455): a text message that is not UTF-8.
    InvalidPayload,
    /// 1009 (RFC 6455): a message over the size limit.
    MessageTooBig,
    /// 4001: no app with this key.
    AppNotFound,
    /// 4003: the app is disabled.
    AppDisabled,
    /// 4004: the app is over its connection quota.
    OverQuota,
    /// 4005: the path is not `/app/{key}`.
    PathNotFound,
    /// 4006: the `protocol` parameter is not a number.
    InvalidVersion,
    /// 4007: unsupported protocol version.
    UnsupportedVersion,
    /// 4008: no `protocol` parameter.
    NoVersion,
    /// 4009: connection unauthorized (terminated by the app, or not signed in in time).
    Unauthorized,
    /// 4100: over capacity, or a slow reader whose queue stayed full.
    OverCapacity,
    /// 4200: generic reconnect (server draining).
    Reconnect,
    /// 4201: pong not received.
    PongNotReceived,
    /// 4202: closed after inactivity.
    Inactive,
    /// 4301: client event rejected by the rate limit (sent as an error, no close).
    ClientEventRateLimit,
    /// 4302: watchlist over its limit (sent as an error, no close).
    WatchlistLimit,
}

impl CloseCode {
    /// The numeric code.
    pub fn code(self) -> u16 {
        match self {
            Self::ProtocolError => 1002,
            Self::InvalidPayload => 1007,
            Self::MessageTooBig => 1009,
            Self::AppNotFound => 4001,
            Self::AppDisabled => 4003,
            Self::OverQuota => 4004,
            Self::PathNotFound => 4005,
            Self::InvalidVersion => 4006,
            Self::UnsupportedVersion => 4007,
            Self::NoVersion => 4008,
            Self::Unauthorized => 4009,
            Self::OverCapacity => 4100,
            Self::Reconnect => 4200,
            Self::PongNotReceived => 4201,
            Self::Inactive => 4202,
            Self::ClientEventRateLimit => 4301,
            Self::WatchlistLimit => 4302,
        }
    }

    /// True for Pusher's own codes (4000 and up), which the server also
    /// announces in a `pusher:error` before the close frame; the WebSocket
    /// codes of RFC 6455 (below 4000) are sent in the close frame only.
    pub fn is_pusher(self) -> bool {
        self.code() >= 4000
    }

    /// The default human-readable message.
    pub fn message(self) -> &'static str {
        match self {
            Self::ProtocolError => "Protocol error",
            Self::InvalidPayload => "Invalid UTF-8 in a text message",
            Self::MessageTooBig => "Message too big",
            Self::AppNotFound => "Application does not exist",
            Self::AppDisabled => "Application disabled",
            Self::OverQuota => "Application is over connection quota",
            Self::PathNotFound => "Path not found",
            Self::InvalidVersion => "Invalid version string format",
            Self::UnsupportedVersion => "Unsupported protocol version",
            Self::NoVersion => "No protocol version supplied",
            Self::Unauthorized => "Connection not authorized",
            Self::OverCapacity => "Over capacity",
            Self::Reconnect => "Server is restarting, please reconnect",
            Self::PongNotReceived => "Pong reply not received",
            Self::Inactive => "Closed after inactivity",
            Self::ClientEventRateLimit => "Client event rejected - rate limit exceeded",
            Self::WatchlistLimit => "Watchlist limit exceeded",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reconnectable_codes_are_in_reconnect_ranges() {
        // Transient conditions must never use 4000-4099 or >= 4300 (pusher-js stops).
        for c in [
            CloseCode::OverCapacity,
            CloseCode::Reconnect,
            CloseCode::PongNotReceived,
            CloseCode::Inactive,
        ] {
            assert!((4100..4300).contains(&c.code()), "{c:?}");
        }
    }

    #[test]
    fn websocket_codes_are_not_pusher_codes() {
        for (c, n) in [
            (CloseCode::ProtocolError, 1002),
            (CloseCode::InvalidPayload, 1007),
            (CloseCode::MessageTooBig, 1009),
        ] {
            assert_eq!(c.code(), n);
            assert!(!c.is_pusher(), "{c:?}");
        }
        assert!(CloseCode::AppNotFound.is_pusher());
        assert!(CloseCode::OverCapacity.is_pusher());
    }
}
