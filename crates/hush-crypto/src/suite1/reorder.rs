//! The mailbox's reorder buffer (pure: no I/O, time is a number of
//! milliseconds the caller passes in, so tests drive a virtual clock).
//! Shared by hush-client's mailbox receiver and hush-wasm's device core
//! (moved here from hush-client `e2ee/reorder.rs` unchanged).
//!
//! Per suite 1 stream (sender user, sender device, conversation), messages
//! are handed to the opener in sequence order. A message that skips ahead
//! of the next expected number is held (and not acknowledged) until the
//! missing one arrives, or until its deadline passes or the caller flushes
//! (the end of a fetch cycle); held messages are then released in order and
//! the opener reports the hole as a gap. The sequence numbers used here come
//! from the unauthenticated header: they only decide the order in which
//! envelopes are opened; what is reported (gaps, duplicates) comes from the
//! replay guard, after authentication.
//!
//! Bounded: at most [`MAX_HELD_PER_STREAM`] messages per stream and
//! [`MAX_HELD`] in all; past a bound, the fullest stream is released.

use std::collections::{BTreeMap, HashMap};

use super::{StreamKey, WINDOW};

/// Most messages held for one stream.
pub const MAX_HELD_PER_STREAM: usize = WINDOW as usize;
/// Most messages held in all.
pub const MAX_HELD: usize = 1024;

/// A message handed back to the caller, to be opened now.
#[derive(Debug, PartialEq, Eq)]
pub struct Released<T> {
    /// Its stream.
    pub stream: StreamKey,
    /// Its (header) sequence number.
    pub sequence: u64,
    /// The caller's item.
    pub item: T,
    /// It arrived after a higher number of its stream (the relay delivered
    /// the stream out of order).
    pub reordered: bool,
}

struct Entry<T> {
    item: T,
    reordered: bool,
}

struct StreamHold<T> {
    /// Held messages by sequence (a repeated number keeps every copy, in
    /// arrival order: the opener refuses all but the first).
    items: BTreeMap<u64, Vec<Entry<T>>>,
    /// Release everything by then (virtual ms), if set.
    deadline: Option<u64>,
    count: usize,
}

/// The buffer. `T` is what the caller needs to open the message later.
pub struct ReorderBuffer<T> {
    streams: HashMap<StreamKey, StreamHold<T>>,
    total: usize,
}

impl<T> Default for ReorderBuffer<T> {
    fn default() -> Self {
        Self {
            streams: HashMap::new(),
            total: 0,
        }
    }
}

impl<T> ReorderBuffer<T> {
    /// Messages held now.
    pub fn len(&self) -> usize {
        self.total
    }

    /// Whether no message is held.
    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    /// Offers a message with header sequence `sequence` on `stream`.
    /// `expected` is the next number the stream needs (the replay guard's
    /// high-water mark plus one), or `None` when the stream is new to this
    /// device (then it is held until a flush, which sorts it). `deadline`
    /// (virtual ms), if given, is the latest a held message waits.
    /// Returns what can be opened now, in order.
    pub fn insert(
        &mut self,
        stream: StreamKey,
        sequence: u64,
        item: T,
        expected: Option<u64>,
        deadline: Option<u64>,
    ) -> Vec<Released<T>> {
        let mut out = Vec::new();
        let higher_held = self
            .streams
            .get(&stream)
            .is_some_and(|s| s.items.range(sequence.saturating_add(1)..).next().is_some());
        if let Some(next) = expected {
            // Anything held below the next expected number is stale: the
            // stream moved on past it (late, or a copy): open it now.
            self.release_below(&stream, next, &mut out);
            if sequence < next {
                out.push(Released {
                    stream,
                    sequence,
                    item,
                    reordered: true,
                });
                return out;
            }
            if sequence == next {
                out.push(Released {
                    stream: stream.clone(),
                    sequence,
                    item,
                    reordered: higher_held,
                });
                self.release_chain(&stream, sequence.saturating_add(1), &mut out);
                return out;
            }
        }
        let hold = self.streams.entry(stream.clone()).or_insert(StreamHold {
            items: BTreeMap::new(),
            deadline: None,
            count: 0,
        });
        hold.items.entry(sequence).or_default().push(Entry {
            item,
            reordered: higher_held,
        });
        hold.count += 1;
        if let Some(d) = deadline {
            hold.deadline = Some(hold.deadline.map_or(d, |old| old.min(d)));
        }
        self.total += 1;
        if hold.count > MAX_HELD_PER_STREAM {
            self.release_stream(&stream, &mut out);
        } else if self.total > MAX_HELD {
            let fullest = self
                .streams
                .iter()
                .max_by_key(|(_, s)| s.count)
                .map(|(k, _)| k.clone());
            if let Some(k) = fullest {
                self.release_stream(&k, &mut out);
            }
        }
        out
    }

    /// Releases the streams whose deadline is at or before `now`.
    pub fn expire(&mut self, now: u64) -> Vec<Released<T>> {
        let due: Vec<StreamKey> = self
            .streams
            .iter()
            .filter(|(_, s)| s.deadline.is_some_and(|d| d <= now))
            .map(|(k, _)| k.clone())
            .collect();
        let mut out = Vec::new();
        for k in due {
            self.release_stream(&k, &mut out);
        }
        out
    }

    /// Releases everything (the end of a fetch cycle), each stream in order.
    pub fn flush(&mut self) -> Vec<Released<T>> {
        let keys: Vec<StreamKey> = self.streams.keys().cloned().collect();
        let mut out = Vec::new();
        for k in keys {
            self.release_stream(&k, &mut out);
        }
        out
    }

    /// The earliest deadline of a held message, if any.
    pub fn next_deadline(&self) -> Option<u64> {
        self.streams.values().filter_map(|s| s.deadline).min()
    }

    fn release_stream(&mut self, stream: &StreamKey, out: &mut Vec<Released<T>>) {
        if let Some(hold) = self.streams.remove(stream) {
            self.total -= hold.count;
            for (sequence, entries) in hold.items {
                for e in entries {
                    out.push(Released {
                        stream: stream.clone(),
                        sequence,
                        item: e.item,
                        reordered: e.reordered,
                    });
                }
            }
        }
    }

    fn release_below(&mut self, stream: &StreamKey, next: u64, out: &mut Vec<Released<T>>) {
        let Some(hold) = self.streams.get_mut(stream) else {
            return;
        };
        let keep = hold.items.split_off(&next);
        let below = std::mem::replace(&mut hold.items, keep);
        for (sequence, entries) in below {
            for e in entries {
                hold.count -= 1;
                self.total -= 1;
                out.push(Released {
                    stream: stream.clone(),
                    sequence,
                    item: e.item,
                    reordered: e.reordered,
                });
            }
        }
        if hold.count == 0 {
            self.streams.remove(stream);
        }
    }

    /// Releases the held run `from`, `from + 1`, … of `stream`.
    fn release_chain(&mut self, stream: &StreamKey, from: u64, out: &mut Vec<Released<T>>) {
        let Some(hold) = self.streams.get_mut(stream) else {
            return;
        };
        let mut next = from;
        while let Some(entries) = hold.items.remove(&next) {
            for e in entries {
                hold.count -= 1;
                self.total -= 1;
                out.push(Released {
                    stream: stream.clone(),
                    sequence: next,
                    item: e.item,
                    reordered: e.reordered,
                });
            }
            next = next.saturating_add(1);
        }
        if hold.count == 0 {
            self.streams.remove(stream);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::DeviceId;
    use hush_protocol::{ChannelName, UserId};

    fn key(device: u8) -> StreamKey {
        StreamKey {
            user: UserId::parse("alice").unwrap(),
            device: DeviceId([device; 16]),
            channel: ChannelName::parse("private-hush-mailbox-00").unwrap(),
        }
    }

    fn seqs(r: &[Released<&'static str>]) -> Vec<(u64, &'static str, bool)> {
        r.iter()
            .map(|x| (x.sequence, x.item, x.reordered))
            .collect()
    }

    #[test]
    fn in_order_messages_pass_straight_through() {
        let mut b = ReorderBuffer::default();
        let r = b.insert(key(1), 5, "a", Some(5), Some(2_000));
        assert_eq!(seqs(&r), vec![(5, "a", false)]);
        assert_eq!(b.len(), 0);
        assert_eq!(b.next_deadline(), None);
    }

    #[test]
    fn a_message_that_skips_ahead_waits_for_the_missing_one() {
        let mut b = ReorderBuffer::default();
        assert!(b.insert(key(1), 3, "c", Some(1), Some(2_000)).is_empty());
        assert!(b.insert(key(1), 2, "b", Some(1), Some(2_500)).is_empty());
        assert_eq!(b.len(), 2);
        assert_eq!(b.next_deadline(), Some(2_000));
        // The missing one arrives: the run comes out in order, the two that
        // came before it flagged as reordered.
        let r = b.insert(key(1), 1, "a", Some(1), Some(3_000));
        assert_eq!(
            seqs(&r),
            vec![(1, "a", true), (2, "b", true), (3, "c", false)]
        );
        assert_eq!(b.len(), 0);
    }

    #[test]
    fn held_messages_are_released_in_order_at_their_deadline() {
        let mut b = ReorderBuffer::default();
        assert!(b.insert(key(1), 4, "d", Some(2), Some(2_000)).is_empty());
        assert!(b.insert(key(1), 3, "c", Some(2), Some(2_100)).is_empty());
        assert!(b.insert(key(2), 9, "x", Some(7), Some(5_000)).is_empty());
        // Virtual clock: nothing before the deadline.
        assert!(b.expire(1_999).is_empty());
        let r = b.expire(2_000);
        assert_eq!(seqs(&r), vec![(3, "c", true), (4, "d", false)]);
        assert_eq!(b.len(), 1);
        assert_eq!(b.next_deadline(), Some(5_000));
        assert_eq!(seqs(&b.expire(10_000)), vec![(9, "x", false)]);
    }

    #[test]
    fn new_streams_wait_for_the_flush_and_come_out_sorted() {
        let mut b = ReorderBuffer::default();
        for (s, v) in [(12, "m"), (10, "k"), (11, "l")] {
            assert!(b.insert(key(1), s, v, None, None).is_empty());
        }
        assert_eq!(b.next_deadline(), None);
        assert!(b.expire(u64::MAX).is_empty());
        assert_eq!(
            seqs(&b.flush()),
            vec![(10, "k", true), (11, "l", true), (12, "m", false)]
        );
        assert_eq!(b.len(), 0);
    }

    #[test]
    fn late_and_repeated_numbers_are_handed_on_for_the_guard_to_judge() {
        let mut b = ReorderBuffer::default();
        // Below the next expected number: opened at once (the guard decides
        // whether it is late or a replay).
        assert_eq!(
            seqs(&b.insert(key(1), 3, "old", Some(5), Some(1))),
            vec![(3, "old", true)]
        );
        // The same number twice while held: both copies come out together.
        assert!(b.insert(key(1), 7, "x", Some(5), Some(100)).is_empty());
        assert!(b.insert(key(1), 7, "x2", Some(5), Some(100)).is_empty());
        assert_eq!(seqs(&b.insert(key(1), 6, "w", Some(5), Some(100))), vec![]);
        let r = b.insert(key(1), 5, "v", Some(5), Some(100));
        assert_eq!(
            seqs(&r),
            vec![
                (5, "v", true),
                (6, "w", true),
                (7, "x", false),
                (7, "x2", false)
            ]
        );
        // Held messages below a newer expectation are released first.
        assert!(b.insert(key(1), 9, "i", Some(8), Some(100)).is_empty());
        let r = b.insert(key(1), 12, "l", Some(11), Some(100));
        assert_eq!(seqs(&r), vec![(9, "i", false)]);
        assert_eq!(b.len(), 1);
    }

    #[test]
    fn the_buffer_is_bounded_per_stream_and_in_all() {
        let mut b = ReorderBuffer::default();
        let mut released = 0;
        for s in 0..MAX_HELD_PER_STREAM as u64 {
            released += b.insert(key(1), 10 + s, "h", Some(1), None).len();
        }
        assert_eq!(released, 0);
        assert_eq!(b.len(), MAX_HELD_PER_STREAM);
        let r = b.insert(key(1), 5, "h", Some(1), None);
        assert_eq!(r.len(), MAX_HELD_PER_STREAM + 1);
        assert!(r.windows(2).all(|w| w[0].sequence <= w[1].sequence));
        assert_eq!(b.len(), 0);
        // Many streams: never more than MAX_HELD held.
        let mut out = 0;
        for d in 0..=255u8 {
            for s in 0..8 {
                out += b.insert(key(d), 100 + s, "h", Some(1), None).len();
            }
            assert!(b.len() <= MAX_HELD);
        }
        assert_eq!(out + b.len(), 256 * 8);
        assert!(out > 0);
    }
}
