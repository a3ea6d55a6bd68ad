//! Replay protection for suite 1: per (sender device, channel), a sliding
//! window of sequence numbers plus the recent message ids, in bounded memory;
//! and the freshness window [`Envelope::open`](super::Envelope::open) holds
//! signed timestamps to, so what the guard forgets (evicted streams, a
//! restart) is refused anyway once it is older than the window.

use std::collections::{HashMap, HashSet, VecDeque};

use hush_protocol::ChannelName;

use crate::identity::DeviceId;

/// How far below the highest sequence number a late message is still
/// accepted (once).
pub const WINDOW: u64 = 128;
/// Message ids remembered per (sender device, channel).
pub const IDS_PER_STREAM: usize = 256;
/// Default number of (sender device, channel) streams tracked.
pub const DEFAULT_STREAMS: usize = 4096;
/// Default freshness window: a message whose signed timestamp is further
/// than this from the receiver's clock, either way, is refused (as for
/// sealed events).
pub const DEFAULT_MAX_AGE_MS: u64 = 300_000;

#[derive(Debug, Default)]
struct Stream {
    /// Highest sequence accepted; `None` before the first message.
    highest: Option<u64>,
    /// Bit `i` set: `highest - i` was accepted (bit 0 is `highest`).
    seen: u128,
    ids: HashSet<[u8; 16]>,
    order: VecDeque<[u8; 16]>,
    last_used: u64,
}

impl Stream {
    fn check(&self, sequence: u64, message_id: &[u8; 16]) -> bool {
        if self.ids.contains(message_id) {
            return false;
        }
        match self.highest {
            None => true,
            Some(h) if sequence > h => true,
            Some(h) => {
                let back = h - sequence;
                back < WINDOW && self.seen & (1u128 << back) == 0
            }
        }
    }

    fn commit(&mut self, sequence: u64, message_id: [u8; 16]) {
        match self.highest {
            // Below the window: nothing to mark (`check` refuses it anyway;
            // this is reached when accepted entries are replayed from a file).
            Some(h) if sequence <= h => {
                if let Some(bit) =
                    1u128.checked_shl(u32::try_from(h - sequence).unwrap_or(u32::MAX))
                {
                    self.seen |= bit;
                }
            }
            Some(h) => {
                let shift = sequence - h;
                self.seen = if shift >= 128 { 0 } else { self.seen << shift };
                self.seen |= 1;
                self.highest = Some(sequence);
            }
            None => {
                self.seen = 1;
                self.highest = Some(sequence);
            }
        }
        if self.ids.insert(message_id) {
            self.order.push_back(message_id);
            if self.order.len() > IDS_PER_STREAM {
                if let Some(old) = self.order.pop_front() {
                    self.ids.remove(&old);
                }
            }
        }
    }
}

/// Remembers what each sender device sent on each channel, so a captured
/// envelope cannot be delivered twice: a message is refused if its message
/// id was seen, if its sequence number was already accepted, or if it is
/// [`WINDOW`] or more below the highest one accepted.
///
/// Memory is bounded: at most `capacity` streams, each with a 128-bit window
/// and [`IDS_PER_STREAM`] ids. When full, the least recently used stream is
/// forgotten; a message from a forgotten stream is judged as from a new
/// sender, so size `capacity` above the number of active senders × channels
/// a device follows, and persist the guard if replays across restarts
/// matter. Whatever is forgotten stays refused once it is older than the
/// freshness window ([`max_age_ms`](Self::max_age_ms), default
/// [`DEFAULT_MAX_AGE_MS`]).
#[derive(Debug)]
pub struct ReplayGuard {
    streams: HashMap<(DeviceId, ChannelName), Stream>,
    capacity: usize,
    clock: u64,
    max_age_ms: u64,
}

impl Default for ReplayGuard {
    fn default() -> Self {
        Self::new(DEFAULT_STREAMS)
    }
}

impl ReplayGuard {
    /// A guard tracking at most `capacity` (sender device, channel) streams
    /// (at least 1).
    pub fn new(capacity: usize) -> Self {
        Self {
            streams: HashMap::new(),
            capacity: capacity.max(1),
            clock: 0,
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

    /// Whether the message would be accepted (does not record it).
    pub fn check(
        &self,
        sender: DeviceId,
        channel: &ChannelName,
        sequence: u64,
        message_id: &[u8; 16],
    ) -> bool {
        self.streams
            .get(&(sender, channel.clone()))
            .is_none_or(|s| s.check(sequence, message_id))
    }

    /// Records an accepted message. Call only after the message was fully
    /// verified, so forgeries cannot fill the window.
    pub fn commit(
        &mut self,
        sender: DeviceId,
        channel: &ChannelName,
        sequence: u64,
        message_id: [u8; 16],
    ) {
        self.clock += 1;
        let key = (sender, channel.clone());
        if !self.streams.contains_key(&key) && self.streams.len() >= self.capacity {
            if let Some(oldest) = self
                .streams
                .iter()
                .min_by_key(|(_, s)| s.last_used)
                .map(|(k, _)| k.clone())
            {
                self.streams.remove(&oldest);
            }
        }
        let stream = self.streams.entry(key).or_default();
        stream.last_used = self.clock;
        stream.commit(sequence, message_id);
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

    fn ch(name: &str) -> ChannelName {
        ChannelName::parse(name).unwrap()
    }

    fn id(n: u8) -> [u8; 16] {
        [n; 16]
    }

    #[test]
    fn window_semantics() {
        let mut g = ReplayGuard::default();
        let d = DeviceId([1; 16]);
        let c = ch("private-a");
        assert!(g.check(d, &c, 10, &id(1)));
        g.commit(d, &c, 10, id(1));
        assert!(!g.check(d, &c, 10, &id(2)), "same sequence");
        assert!(!g.check(d, &c, 11, &id(1)), "same message id");
        assert!(g.check(d, &c, 9, &id(3)), "late but inside the window");
        g.commit(d, &c, 9, id(3));
        assert!(!g.check(d, &c, 9, &id(4)));
        g.commit(d, &c, 200, id(5));
        assert!(!g.check(d, &c, 200 - WINDOW, &id(6)), "too old");
        assert!(g.check(d, &c, 200 - WINDOW + 1, &id(6)));
        assert!(!g.check(d, &c, 10, &id(7)));
        // Other channels and other devices are separate streams.
        assert!(g.check(d, &ch("private-b"), 10, &id(1)));
        assert!(g.check(DeviceId([2; 16]), &c, 10, &id(1)));
    }

    /// Entries replayed from a saved list may lie far below the window: they
    /// mark nothing (a wrapping shift once marked `h - back % 128` as seen,
    /// and panicked in debug builds).
    #[test]
    fn committing_below_the_window_marks_nothing() {
        let mut g = ReplayGuard::default();
        let (d, c) = (DeviceId([1; 16]), ch("private-a"));
        g.commit(d, &c, 1000, id(1));
        g.commit(d, &c, 10, id(2));
        let wrapped = 1000 - (1000 - 10) % 128;
        assert!(g.check(d, &c, wrapped, &id(3)));
        assert!(!g.check(d, &c, 10, &id(4)), "still below the window");
    }

    #[test]
    fn memory_is_bounded() {
        let mut g = ReplayGuard::new(3);
        let c = ch("private-a");
        for n in 0..10u8 {
            g.commit(DeviceId([n; 16]), &c, 1, id(n));
        }
        assert_eq!(g.len(), 3);
        let d = DeviceId([9; 16]);
        for s in 0..(IDS_PER_STREAM as u64 * 3) {
            let mut mid = [0u8; 16];
            mid[..8].copy_from_slice(&s.to_be_bytes());
            g.commit(d, &c, s + 2, mid);
        }
        let stream = &g.streams[&(d, c.clone())];
        assert_eq!(stream.ids.len(), IDS_PER_STREAM);
        assert_eq!(stream.order.len(), IDS_PER_STREAM);
        // The most recent stream survived eviction.
        assert!(!g.check(d, &c, 2, &id(0)));
    }
}
