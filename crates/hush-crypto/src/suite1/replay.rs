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
//!
//! The number of live streams is capped per sender user and in total
//! ([`ReplayGuard::with_stream_limits`]): past a cap, a message that would
//! open a new stream is refused ([`StreamLimit`]) rather than any live
//! stream evicted, so a malicious server or member who invents devices,
//! channels or users can neither grow the guard without bound nor push out
//! the state that keeps an old message refused.

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
/// Default cap on the live streams of one sender user (devices × channels
/// that sent within the freshness window).
pub const DEFAULT_MAX_STREAMS_PER_USER: usize = 1024;
/// Default cap on the live streams of all senders together.
pub const DEFAULT_MAX_STREAMS: usize = 16_384;
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

/// Why the guard refused to open a new stream: every stream it holds under
/// the cap may still be replayed (its newest message is inside the freshness
/// window), and forgetting one could reopen its messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum StreamLimit {
    /// The sender's user already has this many live streams.
    #[error("the sender already has {0} live replay streams")]
    PerUser(usize),
    /// The guard already holds this many live streams in all.
    #[error("the replay guard already holds {0} live streams")]
    Total(usize),
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
/// them or a cap is reached, and then only those whose newest accepted
/// message is older than the freshness window
/// ([`max_age_ms`](Self::max_age_ms)): everything such a stream accepted is
/// refused as expired anyway, so flooding the guard with new streams cannot
/// reopen an old message. Memory is bounded by the caps
/// ([`with_stream_limits`](Self::with_stream_limits)): a new stream past
/// the sender user's cap or the total cap is refused with a [`StreamLimit`]
/// until enough streams have expired; streams already held are never
/// evicted.
#[derive(Debug)]
pub struct ReplayGuard {
    streams: HashMap<StreamKey, StreamState>,
    /// Live streams per sender user (every key of `streams`, counted).
    per_user: HashMap<UserId, usize>,
    capacity: usize,
    sweep_at: usize,
    max_per_user: usize,
    max_streams: usize,
    max_age_ms: u64,
    /// No stream expires before this time (a lower bound on the earliest
    /// `newest_ms + max_age_ms`): a sweep before it could free nothing.
    next_expiry_ms: u64,
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
            per_user: HashMap::new(),
            capacity,
            sweep_at: capacity,
            max_per_user: DEFAULT_MAX_STREAMS_PER_USER,
            max_streams: DEFAULT_MAX_STREAMS,
            max_age_ms: DEFAULT_MAX_AGE_MS,
            next_expiry_ms: u64::MAX,
        }
    }

    /// The same guard with a freshness window of `max_age_ms` either side of
    /// the receiver's clock (default [`DEFAULT_MAX_AGE_MS`]).
    pub fn with_max_age_ms(mut self, max_age_ms: u64) -> Self {
        self.max_age_ms = max_age_ms;
        // Expiry times change with the window: let the next sweep recompute.
        self.next_expiry_ms = 0;
        self
    }

    /// The same guard with at most `per_user` live streams per sender user
    /// and `total` in all (each at least 1; defaults
    /// [`DEFAULT_MAX_STREAMS_PER_USER`], [`DEFAULT_MAX_STREAMS`]). Past a
    /// cap, a message that would open a new stream is refused until streams
    /// expire; streams restored with [`restore`](Self::restore) count but
    /// are never refused.
    pub fn with_stream_limits(mut self, per_user: usize, total: usize) -> Self {
        self.max_per_user = per_user.max(1);
        self.max_streams = total.max(1);
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

    /// Whether a message on `stream` at `now_ms` could be recorded: `Ok` if
    /// the stream is held already, there is room under both caps, or some
    /// stream may have expired (the next [`commit`](Self::commit) sweeps);
    /// else the cap in the way. Does not change the guard;
    /// [`Envelope::open`](super::Envelope::open) asks before decrypting, so
    /// a refused stream costs no decryption.
    pub fn room(&self, stream: &StreamKey, now_ms: u64) -> Result<(), StreamLimit> {
        if self.streams.contains_key(stream) || now_ms > self.next_expiry_ms {
            return Ok(());
        }
        self.limit_for(&stream.user).map_or(Ok(()), Err)
    }

    /// Records an accepted message (signed time `timestamp_ms`, receiver
    /// time `now_ms`). Call only after the message was fully verified, so
    /// forgeries cannot move the window. A message that would open a new
    /// stream past a cap is refused (nothing recorded) unless sweeping out
    /// expired streams makes room.
    pub fn commit(
        &mut self,
        stream: &StreamKey,
        sequence: u64,
        timestamp_ms: u64,
        now_ms: u64,
    ) -> Result<Accepted, StreamLimit> {
        if let Some(s) = self.streams.get_mut(stream) {
            let missed = s.commit(sequence, timestamp_ms);
            return Ok(Accepted { missed });
        }
        let full = self.limit_for(&stream.user).is_some();
        if (full || self.streams.len() >= self.sweep_at) && now_ms > self.next_expiry_ms {
            self.sweep(now_ms);
        }
        if let Some(limit) = self.limit_for(&stream.user) {
            return Err(limit);
        }
        let mut state = StreamState::default();
        let missed = state.commit(sequence, timestamp_ms);
        self.insert(stream.clone(), state);
        Ok(Accepted { missed })
    }

    /// The cap a new stream of `user` would break, if any.
    fn limit_for(&self, user: &UserId) -> Option<StreamLimit> {
        if self.per_user.get(user).copied().unwrap_or(0) >= self.max_per_user {
            Some(StreamLimit::PerUser(self.max_per_user))
        } else if self.streams.len() >= self.max_streams {
            Some(StreamLimit::Total(self.max_streams))
        } else {
            None
        }
    }

    /// Adds a stream the guard does not hold.
    fn insert(&mut self, stream: StreamKey, state: StreamState) {
        *self.per_user.entry(stream.user.clone()).or_default() += 1;
        self.next_expiry_ms = self.next_expiry_ms.min(self.expiry(&state));
        self.streams.insert(stream, state);
    }

    /// The first time at which everything `state` accepted is outside the
    /// freshness window (a sweep after it forgets the stream).
    fn expiry(&self, state: &StreamState) -> u64 {
        state.newest_ms.saturating_add(self.max_age_ms)
    }

    /// Forgets the streams whose every accepted message is outside the
    /// freshness window at `now_ms`; if that frees too little, the next
    /// sweep waits until the guard has doubled (amortised cost), and none
    /// runs before the earliest remaining stream can expire.
    fn sweep(&mut self, now_ms: u64) {
        let max_age = self.max_age_ms;
        let per_user = &mut self.per_user;
        self.streams.retain(|k, s| {
            let keep = s.newest_ms.saturating_add(max_age) >= now_ms;
            if !keep && let Some(n) = per_user.get_mut(&k.user) {
                *n = n.saturating_sub(1);
            }
            keep
        });
        per_user.retain(|_, n| *n > 0);
        self.next_expiry_ms = self
            .streams
            .values()
            .map(|s| s.newest_ms.saturating_add(max_age))
            .min()
            .unwrap_or(u64::MAX);
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
    /// holds for it: the higher mark wins). Never refused, even past a cap:
    /// dropping persisted state could reopen the messages it refuses.
    pub fn restore(&mut self, stream: StreamKey, state: StreamState) {
        if !self.streams.contains_key(&stream) {
            self.insert(stream, state);
            return;
        }
        let Some(slot) = self.streams.get_mut(&stream) else {
            return;
        };
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
        assert_eq!(
            g.commit(&k, 10, NOW, NOW).unwrap().missed,
            0,
            "unknown start"
        );
        assert!(!g.check(&k, 10), "same sequence");
        assert!(g.check(&k, 9), "late but inside the window");
        g.commit(&k, 9, NOW, NOW).unwrap();
        assert!(!g.check(&k, 9));
        assert_eq!(g.commit(&k, 200, NOW, NOW).unwrap().missed, 189);
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
        assert_eq!(g.commit(&k, 1, NOW, NOW).unwrap().missed, 0);
        assert_eq!(g.commit(&k, 2, NOW, NOW).unwrap().missed, 0);
        assert_eq!(g.commit(&k, 5, NOW, NOW).unwrap().missed, 2);
        assert!(g.check(&k, 3) && g.check(&k, 4));
        assert_eq!(g.commit(&k, 4, NOW, NOW).unwrap().missed, 0);
        assert!(!g.check(&k, 4));
        assert_eq!(g.commit(&k, 6, NOW, NOW).unwrap().missed, 0);
        assert!(g.check(&k, 3), "still inside the window");
    }

    #[test]
    fn only_expired_streams_are_swept() {
        let mut g = ReplayGuard::new(2);
        g.commit(&key("a", 1, "private-a"), 1, NOW, NOW).unwrap();
        g.commit(&key("a", 2, "private-a"), 1, NOW, NOW).unwrap();
        // Full, nothing expired: the guard grows rather than forget.
        g.commit(&key("a", 3, "private-a"), 1, NOW, NOW + 1)
            .unwrap();
        assert_eq!(g.len(), 3);
        assert!(!g.check(&key("a", 1, "private-a"), 1));
        // Once expired they go at the next sweep.
        let later = NOW + DEFAULT_MAX_AGE_MS + 1;
        for d in 4..8 {
            g.commit(&key("a", d, "private-a"), 1, later, later)
                .unwrap();
        }
        assert!(g.check(&key("a", 1, "private-a"), 1), "swept");
        assert!(g.len() <= 5);
    }

    #[test]
    fn caps_refuse_new_streams_and_keep_the_held_ones() {
        let mut g = ReplayGuard::default().with_stream_limits(2, 3);
        g.commit(&key("a", 1, "private-a"), 1, NOW, NOW).unwrap();
        g.commit(&key("a", 2, "private-a"), 1, NOW, NOW).unwrap();
        let third = key("a", 3, "private-a");
        assert_eq!(g.room(&third, NOW), Err(StreamLimit::PerUser(2)));
        assert_eq!(g.commit(&third, 1, NOW, NOW), Err(StreamLimit::PerUser(2)));
        assert_eq!(g.state(&third), None, "nothing recorded");
        // Held streams go on; other users have room.
        assert_eq!(g.room(&key("a", 1, "private-a"), NOW), Ok(()));
        g.commit(&key("a", 1, "private-a"), 2, NOW, NOW).unwrap();
        g.commit(&key("b", 1, "private-a"), 1, NOW, NOW).unwrap();
        let c = key("c", 1, "private-a");
        assert_eq!(g.commit(&c, 1, NOW, NOW), Err(StreamLimit::Total(3)));
        assert_eq!(g.len(), 3);
        // Not yet expired: still refused a moment before the window ends.
        let edge = NOW + DEFAULT_MAX_AGE_MS;
        assert_eq!(g.commit(&c, 1, edge, edge), Err(StreamLimit::Total(3)));
        // Once the streams have expired there is room again, per user too.
        let later = edge + 1;
        assert_eq!(g.room(&c, later), Ok(()));
        g.commit(&c, 1, later, later).unwrap();
        assert_eq!(g.len(), 1);
        g.commit(&key("a", 3, "private-a"), 1, later, later)
            .unwrap();
        g.commit(&key("a", 4, "private-a"), 1, later, later)
            .unwrap();
        assert_eq!(
            g.commit(&key("a", 5, "private-a"), 1, later, later),
            Err(StreamLimit::PerUser(2))
        );
    }

    #[test]
    fn restored_streams_count_but_are_never_refused() {
        let mut g = ReplayGuard::default().with_stream_limits(1, 2);
        let held = StreamState {
            highest: 7,
            seen: 1,
            newest_ms: NOW,
        };
        for d in 0..5 {
            g.restore(key("a", d, "private-a"), held);
        }
        assert_eq!(g.len(), 5);
        for d in 0..5 {
            assert!(!g.check(&key("a", d, "private-a"), 7), "device {d}");
        }
        assert_eq!(
            g.commit(&key("b", 1, "private-a"), 1, NOW, NOW),
            Err(StreamLimit::Total(2))
        );
        assert_eq!(
            g.commit(&key("a", 9, "private-a"), 1, NOW, NOW),
            Err(StreamLimit::PerUser(1))
        );
    }

    #[test]
    fn streams_round_trip_through_restore() {
        let mut g = ReplayGuard::default();
        let k = key("alice", 1, "private-a");
        for s in [1, 2, 4] {
            g.commit(&k, s, NOW, NOW).unwrap();
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
