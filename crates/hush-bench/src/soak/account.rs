//! Delivery accounting: which events a subscription was owed, and which
//! arrived.
//!
//! Every publishing stream (one channel fed by one sequential publisher, or
//! one client-event sender) numbers its events 0, 1, 2, … and keeps two
//! counters: `started` (events whose request was begun) and `finished`
//! (events whose request was answered, i.e. written to every subscriber).
//! A subscription is owed exactly the events started after its
//! `subscription_succeeded` arrived and finished before it unsubscribed.
//! One stream reaches a subscriber in order, so a gap in the sequence is a
//! loss the moment the next event arrives, and what is still missing when
//! the window closes (after a ping/pong round trip that flushes everything
//! written before it) is lost too.

use std::sync::atomic::{AtomicU64, Ordering};

/// One publishing stream's counters, shared by its publisher and every
/// subscriber's [`Window`].
#[derive(Debug, Default)]
pub struct Stream {
    started: AtomicU64,
    finished: AtomicU64,
}

impl Stream {
    /// Takes the next sequence number (the event is about to be sent).
    pub fn start(&self) -> u64 {
        self.started.fetch_add(1, Ordering::SeqCst)
    }

    /// Marks every event up to `seq` as written to all subscribers.
    pub fn finish(&self, seq: u64) {
        self.finished.fetch_max(seq + 1, Ordering::SeqCst);
    }

    /// Events started so far: the first sequence number a subscription that
    /// is confirmed now can be owed.
    pub fn started(&self) -> u64 {
        self.started.load(Ordering::SeqCst)
    }

    /// Events finished so far: a subscription that ends now is owed every
    /// sequence number below this.
    pub fn finished(&self) -> u64 {
        self.finished.load(Ordering::SeqCst)
    }
}

/// Totals of one reporting interval, added to by every window.
#[derive(Debug, Default)]
pub struct Tally {
    /// Deliveries owed (received + lost).
    pub expected: AtomicU64,
    /// Deliveries received.
    pub received: AtomicU64,
    /// Deliveries owed that never arrived.
    pub lost: AtomicU64,
    /// Events that arrived twice or out of order.
    pub disordered: AtomicU64,
}

impl Tally {
    fn add(&self, c: &AtomicU64, n: u64) {
        if n > 0 {
            c.fetch_add(n, Ordering::Relaxed);
        }
    }

    /// Reads and resets the four counters: (expected, received, lost, disordered).
    pub fn take(&self) -> (u64, u64, u64, u64) {
        (
            self.expected.swap(0, Ordering::Relaxed),
            self.received.swap(0, Ordering::Relaxed),
            self.lost.swap(0, Ordering::Relaxed),
            self.disordered.swap(0, Ordering::Relaxed),
        )
    }
}

/// What one subscription to one stream was owed and received.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    first: u64,
    next: u64,
    end: Option<u64>,
}

impl Window {
    /// Opens a window owed every event from `first` on (the stream's
    /// `started()` read after `subscription_succeeded` arrived).
    pub fn open(first: u64) -> Self {
        Self {
            first,
            next: first,
            end: None,
        }
    }

    /// Stops owing events from `end` on (the stream's `finished()` read
    /// just before unsubscribing); later events are ignored.
    pub fn end_at(&mut self, end: u64) {
        self.end = Some(end.max(self.first));
    }

    /// Records an arrival of `seq`.
    pub fn on_seq(&mut self, seq: u64, tally: &Tally) {
        if seq < self.first || self.end.is_some_and(|e| seq >= e) {
            // Started before the subscription was confirmed, or finished
            // after it ended: not owed, not counted.
            return;
        }
        if seq < self.next {
            tally.add(&tally.disordered, 1);
            return;
        }
        let gap = seq - self.next;
        tally.add(&tally.lost, gap);
        tally.add(&tally.received, 1);
        tally.add(&tally.expected, gap + 1);
        self.next = seq + 1;
    }

    /// Closes the window once everything written before its end has been
    /// flushed: what is still missing below the end is lost. Without an end
    /// (the connection dropped while subscribed, so nothing was flushed),
    /// only gaps already seen count.
    pub fn close(&mut self, tally: &Tally) {
        if let Some(end) = self.end {
            let missing = end.saturating_sub(self.next);
            tally.add(&tally.lost, missing);
            tally.add(&tally.expected, missing);
            self.next = self.next.max(end);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(first: u64, seqs: &[u64], end: Option<u64>) -> (u64, u64, u64, u64) {
        let t = Tally::default();
        let mut w = Window::open(first);
        for &s in seqs {
            w.on_seq(s, &t);
        }
        if let Some(e) = end {
            w.end_at(e);
            w.close(&t);
        }
        t.take()
    }

    #[test]
    fn everything_owed_and_received() {
        assert_eq!(run(0, &[0, 1, 2, 3], Some(4)), (4, 4, 0, 0));
    }

    #[test]
    fn a_gap_is_a_loss_as_soon_as_the_next_event_arrives() {
        let t = Tally::default();
        let mut w = Window::open(0);
        w.on_seq(0, &t);
        w.on_seq(3, &t);
        assert_eq!(t.take(), (4, 2, 2, 0));
    }

    #[test]
    fn a_missing_tail_is_a_loss_when_the_window_closes() {
        assert_eq!(run(0, &[0, 1], Some(5)), (5, 2, 3, 0));
        // Nothing received at all.
        assert_eq!(run(7, &[], Some(10)), (3, 0, 3, 0));
    }

    #[test]
    fn events_before_the_subscription_or_after_its_end_are_not_owed() {
        // Events 3 and 4 started before subscription_succeeded; 9 finished
        // after the unsubscribe (and arrives during the flush).
        let t = Tally::default();
        let mut w = Window::open(5);
        for s in [3, 4, 5, 6, 7, 8] {
            w.on_seq(s, &t);
        }
        w.end_at(9);
        w.on_seq(9, &t);
        w.close(&t);
        assert_eq!(t.take(), (4, 4, 0, 0));
    }

    #[test]
    fn duplicates_and_reordering_are_counted() {
        assert_eq!(run(0, &[0, 2, 1, 2, 3], Some(4)), (4, 3, 1, 2));
    }

    #[test]
    fn a_dropped_connection_counts_only_gaps_seen() {
        assert_eq!(run(0, &[0, 1, 3], None), (4, 3, 1, 0));
        let t = Tally::default();
        let mut w = Window::open(0);
        w.on_seq(0, &t);
        w.close(&t);
        assert_eq!(t.take(), (1, 1, 0, 0));
    }

    #[test]
    fn stream_counters() {
        let s = Stream::default();
        assert_eq!((s.start(), s.start()), (0, 1));
        assert_eq!((s.started(), s.finished()), (2, 0));
        s.finish(1);
        s.finish(0);
        assert_eq!(s.finished(), 2);
    }
}
