//! Writing one frame to a large channel from more than one thread.
//!
//! A publish writes each subscriber's socket directly (one `sendto` each,
//! see [`crate::outbox`]), so a channel of a thousand subscribers costs the
//! publishing thread a few milliseconds, and the last subscriber waits for
//! all the writes before it. Large channels are therefore not written under
//! the channel lock: [`crate::channels::Channels::publish_deferred`] takes a
//! snapshot of their subscribers' links, and [`deliver`] splits it into
//! parts that the caller and the runtime's blocking pool write side by side.
//!
//! Ordering: [`deliver`] returns only when every part is written, and the
//! HTTP API answers a publish only after that, so a backend's next publish
//! cannot overtake this one at any subscriber. Each frame goes through the
//! subscriber's own outbox, which keeps frames whole and in push order.
//! Blocking-pool threads (not `tokio::spawn`) take the extra parts because a
//! task spawned from a busy worker waits in that worker's LIFO slot, where no
//! other worker may steal it, until the publishing task yields.

use std::ops::Range;
use std::sync::Arc;

use crate::conn::{Frame, Link};

/// A publish reaching at least this many sockets is written outside the
/// channel lock ([`crate::channels::Channels::publish_deferred`]); smaller
/// ones are cheaper to write in place.
pub const DEFER_MIN: usize = 2 * PART_MIN;

/// Fewest sockets a thread is given: below this the hand-off costs more
/// than it saves.
const PART_MIN: usize = 256;

/// Writes `frame` to `recipients`, in parts on as many threads as the
/// runtime has workers (at most). Returns the number of sockets that took it.
pub async fn deliver(recipients: Vec<Arc<Link>>, frame: &Frame) -> usize {
    let ranges = part_ranges(recipients.len(), parts(recipients.len(), workers()));
    let Some((first, rest)) = ranges.split_first() else {
        return 0;
    };
    if rest.is_empty() {
        return write_all(&recipients, frame);
    }
    // Shared as it is (an `Arc<[_]>` would copy the list).
    let recipients = Arc::new(recipients);
    let helpers: Vec<_> = rest
        .iter()
        .map(|r| {
            let (all, frame, r) = (recipients.clone(), frame.clone(), r.clone());
            tokio::task::spawn_blocking(move || write_all(&all[r], &frame))
        })
        .collect();
    let mut sent = write_all(&recipients[first.clone()], frame);
    for h in helpers {
        // A helper only fails by panicking; its sockets are then not counted.
        sent += h.await.unwrap_or(0);
    }
    sent
}

/// `0..len` cut into at most `parts` consecutive ranges of equal size (the
/// last may be shorter); none when `len` is 0.
fn part_ranges(len: usize, parts: usize) -> Vec<Range<usize>> {
    let size = len.div_ceil(parts.max(1)).max(1);
    (0..len)
        .step_by(size)
        .map(|start| start..(start + size).min(len))
        .collect()
}

/// Writes `frame` to each connection in turn.
fn write_all(recipients: &[Arc<Link>], frame: &Frame) -> usize {
    recipients.iter().filter(|l| l.send(frame)).count()
}

/// How many threads write `n` sockets with `workers` available.
fn parts(n: usize, workers: usize) -> usize {
    (n / PART_MIN).clamp(1, workers.max(1))
}

/// The runtime's worker threads (1 outside a runtime).
fn workers() -> usize {
    tokio::runtime::Handle::try_current().map_or(1, |h| h.metrics().num_workers())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_grow_with_size_up_to_workers() {
        assert_eq!(parts(0, 2), 1);
        assert_eq!(parts(PART_MIN * 2 - 1, 2), 1);
        assert_eq!(parts(PART_MIN * 2, 2), 2);
        assert_eq!(parts(100_000, 2), 2);
        assert_eq!(parts(100_000, 8), 8);
        assert_eq!(parts(100_000, 0), 1);
    }

    #[test]
    fn ranges_cover_every_socket_once() {
        for len in [0, 1, 255, 256, 511, 512, 513, 1000, 1031, 65_537] {
            for workers in [1, 2, 3, 8, 300] {
                let parts = parts(len, workers);
                let ranges = part_ranges(len, parts);
                assert!(ranges.len() <= parts, "{len} {workers}");
                let mut next = 0;
                for r in &ranges {
                    assert_eq!(r.start, next, "{len} {workers}");
                    assert!(r.end > r.start);
                    if ranges.len() > 1 {
                        assert!(r.len() >= PART_MIN || r.end == len, "{len} {workers}");
                    }
                    next = r.end;
                }
                assert_eq!(next, len, "{len} {workers}");
            }
        }
    }

    /// Every recipient gets every frame exactly once and in order, whichever
    /// thread wrote it, when publishes follow one another.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn split_delivery_reaches_everyone_in_order() {
        let n = PART_MIN * 4 + 7;
        let boxes: Vec<Arc<Link>> = (0..n).map(|_| Arc::new(Link::new(None, 64))).collect();
        for i in 0..20 {
            let f = Frame::text(&format!("{{\"i\":{i}}}"));
            assert_eq!(deliver(boxes.clone(), &f).await, n);
        }
        for b in &boxes {
            let got: Vec<String> = b
                .outbox()
                .take_queued()
                .iter()
                .map(|f| f.payload().to_owned())
                .collect();
            let want: Vec<String> = (0..20).map(|i| format!("{{\"i\":{i}}}")).collect();
            assert_eq!(got, want);
        }
    }
}
