//! Replay protection for suite 1: one stream per (sender user, sender
//! device, channel), each a contiguous counter (1, 2, 3, …) with an
//! RFC 6479-style sliding bitmap of the last [`WINDOW`] numbers, so a
//! reordered message is accepted once, a replay never, and a skipped
//! number shows as a gap; and the freshness window
//! [`Envelope::open`](super::Envelope::open) holds signed timestamps to.
//!
//! A stream is forgotten only once everything it accepted has left the
//! freshness window, so forgetting it cannot reopen an old message; its
//! state is plain numbers ([`StreamState`]) that a client persists and
//! restores ([`ReplayGuard::streams`], [`ReplayGuard::restore`]).

use std::collections::HashMap;

use hush_protocol::{ChannelName, UserId};

use crate::identity::DeviceId;

/// How many sequence numbers below the highest one accepted a late
/// (reordered) message may have and still be accepted (once).
pub const WINDOW: u64 = 64;
/// Default number of streams above which the guard sweeps out streams whose
/// messages have all expired (a soft bound: streams that could still be
/// replayed are never dropped).
pub const DEFAULT_STREAMS: usize = 4096;
/// Default freshness window: a message whose signed timestamp is further
/// than this from the receiver's clock, either way, is refused (as for
/// sealed events).
pub const DEFAULT_MAX_AGE_MS: u64 = 300_000;

/// Which sender stream a message belongs to: the sender's user, device and
/// the channel. Keyed by the user too, so a device id copied by another
/// user cannot touch the victim's stream (issue 13, finding 3).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StreamKey {
    /// The sender's user id.
    pub user: UserId,
    /// The sending device.
    pub device: DeviceId,
    /// The channel.
    pub channel: ChannelName,
}

/// What the guard remembers of one stream: the high-water mark, the window
/// below it, and the newest signed timestamp accepted (to know when the
/// stream can be forgotten safely).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StreamState {
    /// Highest sequence number accepted (0: none yet; senders start at 1).
    pub highest: u64,
    /// Bit `i` set: `highest - i` was accepted (bit 0 is `highest`).
    pub seen: u64,
    /// Newest signed timestamp (Unix ms) of an accepted message.
    pub newest_ms: u64,
}

impl StreamState {
    fn check(&self, sequence: u64) -> bool {
        if sequence == 0 {
            return false;
        }
        if sequence > self.highest {
            return true;
        }
        let back = self.highest - sequence;
        back < WINDOW && self.seen & (1u64 << back) == 0
    }

    /// Records `sequence` and returns how many numbers it skipped beyond the
    /// previous highest (0 for the next one in order or a late one).
    fn commit(&mut self, sequence: u64, timestamp_ms: u64) -> u64 {
        self.newest_ms = self.newest_ms.max(timestamp_ms);
        if sequence > self.highest {
            let shift = sequence - self.highest;
            let missed = if self.highest == 0 { 0 } else { shift - 1 };
            self.seen = if shift >= WINDOW {
                0
            } else {
                self.seen << shift
            };
            self.seen |= 1;
            self.highest = sequence;
            missed
        } else {
            let back = self.highest - sequence;
            if back < WINDOW {
                self.seen |= 1u64 << back;
            }
            0
        }
    }
}

/// What [`ReplayGuard::commit`] learned about an accepted message.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Accepted {
    /// Sequence numbers skipped between the previous highest of this stream
    /// and this message: messages not (yet) received. They still open if
    /// they arrive within [`WINDOW`]; otherwise they are lost (a relay
    /// dropped them, or they were not addressed to this device). 0 for the
    /// first message of a stream the guard does not know.
    pub missed: u64,
}

/// Remembers, per (sender user, sender device, channel) stream, which
/// sequence numbers were accepted, so a captured envelope cannot be
/// delivered twice: a message is refused if its number was accepted, is 0,
/// or is [`WINDOW`] or more below the highest one accepted.
///
/// Streams are forgotten only when the guard holds more than `capacity` of
/// them, and then only those whose newest accepted message is older than the
/// freshness window ([`max_age_ms`](Self::max_age_ms)): everything such a
/// stream accepted is refused as expired anyway, so flooding the guard with
/// new streams cannot reopen an old message. Memory is therefore bounded by
/// the streams active within the window (each needs a verified message).
#[derive(Debug)]
pub struct ReplayGuard {
    streams: HashMap<StreamKey, StreamState>,
    capacity: usize,
    sweep_at: usize,
    max_age_ms: u64,
}

impl Default for ReplayGuard {
    fn default() -> Self {
        Self::new(DEFAULT_STREAMS)
    }
}

impl ReplayGuard {
    /// A guard that sweeps out expired streams once it holds more than
    /// `capacity` (at least 1).
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        Self {
            streams: HashMap::new(),
            capacity,
            sweep_at: capacity,
            max_age_ms: DEFAULT_MAX_AGE_MS,
        }
    }

    /// The same guard with a freshness window of `max_age_ms` either side of
    /// the receiver's clock (default [`DEFAULT_MAX_AGE_MS`]).
    pub fn with_max_age_ms(mut self, max_age_ms: u64) -> Self {
        self.max_age_ms = max_age_ms;
        self
    }

    /// The freshness window, in milliseconds either side of the receiver's
    /// clock.
    pub fn max_age_ms(&self) -> u64 {
        self.max_age_ms
    }

    /// Whether a message with `sequence` on `stream` would be accepted (does
    /// not record it).
    pub fn check(&self, stream: &StreamKey, sequence: u64) -> bool {
        match self.streams.get(stream) {
            Some(s) => s.check(sequence),
            None => sequence != 0,
        }
    }

    /// Records an accepted message (signed time `timestamp_ms`, receiver
    /// time `now_ms`). Call only after the message was fully verified, so
    /// forgeries cannot move the window.
    pub fn commit(
        &mut self,
        stream: &StreamKey,
        sequence: u64,
        timestamp_ms: u64,
        now_ms: u64,
    ) -> Accepted {
        if !self.streams.contains_key(stream) && self.streams.len() >= self.sweep_at {
            self.sweep(now_ms);
        }
        let missed = self
            .streams
            .entry(stream.clone())
            .or_default()
            .commit(sequence, timestamp_ms);
        Accepted { missed }
    }

    /// Forgets the streams whose every accepted message is outside the
    /// freshness window at `now_ms`; if that frees too little, the next
    /// sweep waits until the guard has doubled (amortised cost).
    fn sweep(&mut self, now_ms: u64) {
        let max_age = self.max_age_ms;
        self.streams
            .retain(|_, s| s.newest_ms.saturating_add(max_age) >= now_ms);
        self.sweep_at = self.capacity.max(self.streams.len().saturating_mul(2));
    }

    /// The state of one stream, if tracked.
    pub fn state(&self, stream: &StreamKey) -> Option<StreamState> {
        self.streams.get(stream).copied()
    }

    /// Every stream's state, to persist (a restart then keeps refusing what
    /// was accepted, however many messages that was).
    pub fn streams(&self) -> impl Iterator<Item = (&StreamKey, &StreamState)> {
        self.streams.iter()
    }

    /// Restores a persisted stream (merging with what the guard already
    /// holds for it: the higher mark wins).
    pub fn restore(&mut self, stream: StreamKey, state: StreamState) {
        let slot = self.streams.entry(stream).or_default();
        if state.highest > slot.highest
            || (state.highest == slot.highest && state.seen | slot.seen != slot.seen)
        {
            let newest = slot.newest_ms.max(state.newest_ms);
            *slot = state;
            slot.newest_ms = newest;
        }
    }

    /// Number of streams tracked.
    pub fn len(&self) -> usize {
        self.streams.len()
    }

    /// Whether nothing is tracked yet.
    pub fn is_empty(&self) -> bool {
        self.streams.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_750_000_000_000;

    fn key(user: &str, device: u8, channel: &str) -> StreamKey {
        StreamKey {
            user: UserId::parse(user).unwrap(),
            device: DeviceId([device; 16]),
            channel: ChannelName::parse(channel).unwrap(),
        }
    }

    #[test]
    fn window_semantics() {
        let mut g = ReplayGuard::default();
        let k = key("alice", 1, "private-a");
        assert!(!g.check(&k, 0), "counters start at 1");
        assert!(g.check(&k, 10));
        assert_eq!(g.commit(&k, 10, NOW, NOW).missed, 0, "unknown start");
        assert!(!g.check(&k, 10), "same sequence");
        assert!(g.check(&k, 9), "late but inside the window");
        g.commit(&k, 9, NOW, NOW);
        assert!(!g.check(&k, 9));
        assert_eq!(g.commit(&k, 200, NOW, NOW).missed, 189);
        assert!(!g.check(&k, 200 - WINDOW), "too old");
        assert!(g.check(&k, 200 - WINDOW + 1));
        assert!(!g.check(&k, 10));
        // Other channels, devices and users are separate streams.
        assert!(g.check(&key("alice", 1, "private-b"), 10));
        assert!(g.check(&key("alice", 2, "private-a"), 10));
        assert!(g.check(&key("bob", 1, "private-a"), 10));
    }

    #[test]
    fn gaps_are_counted_once_and_late_messages_fill_them() {
        let mut g = ReplayGuard::default();
        let k = key("alice", 1, "private-a");
        assert_eq!(g.commit(&k, 1, NOW, NOW).missed, 0);
        assert_eq!(g.commit(&k, 2, NOW, NOW).missed, 0);
        assert_eq!(g.commit(&k, 5, NOW, NOW).missed, 2);
        assert!(g.check(&k, 3) && g.check(&k, 4));
        assert_eq!(g.commit(&k, 4, NOW, NOW).missed, 0);
        assert!(!g.check(&k, 4));
        assert_eq!(g.commit(&k, 6, NOW, NOW).missed, 0);
        assert!(g.check(&k, 3), "still inside the window");
    }

    #[test]
    fn only_expired_streams_are_swept() {
        let mut g = ReplayGuard::new(2);
        g.commit(&key("a", 1, "private-a"), 1, NOW, NOW);
        g.commit(&key("a", 2, "private-a"), 1, NOW, NOW);
        // Full, nothing expired: the guard grows rather than forget.
        g.commit(&key("a", 3, "private-a"), 1, NOW, NOW + 1);
        assert_eq!(g.len(), 3);
        assert!(!g.check(&key("a", 1, "private-a"), 1));
        // Once expired they go at the next sweep.
        let later = NOW + DEFAULT_MAX_AGE_MS + 1;
        for d in 4..8 {
            g.commit(&key("a", d, "private-a"), 1, later, later);
        }
        assert!(g.check(&key("a", 1, "private-a"), 1), "swept");
        assert!(g.len() <= 5);
    }

    #[test]
    fn streams_round_trip_through_restore() {
        let mut g = ReplayGuard::default();
        let k = key("alice", 1, "private-a");
        for s in [1, 2, 4] {
            g.commit(&k, s, NOW, NOW);
        }
        let saved: Vec<_> = g.streams().map(|(k, s)| (k.clone(), *s)).collect();
        let mut back = ReplayGuard::default();
        for (k, s) in saved {
            back.restore(k, s);
        }
        assert!(!back.check(&k, 1) && !back.check(&k, 2) && !back.check(&k, 4));
        assert!(back.check(&k, 3) && back.check(&k, 5));
    }
}
