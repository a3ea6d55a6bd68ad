//! Bounded event delivery to the application.
//!
//! Every stream the application asks for ([`EventStream`]) is a bounded
//! queue. The connection task never waits for the application: when a
//! stream's queue is full the event is **dropped for that stream only**, and
//! the stream's [`EventStream::dropped`] counter (and the client's total,
//! [`Client::dropped_events`](crate::Client::dropped_events)) goes up. Streams
//! the application dropped are forgotten at the next delivery.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use futures_util::Stream;
use hush_protocol::channel::SERVER_TO_USER_PREFIX;
use tokio::sync::mpsc;

use crate::event::Event;

/// Which events a stream receives.
#[derive(Debug, Clone)]
pub(crate) enum Filter {
    /// Everything.
    All,
    /// Every event with this name, on any channel or none.
    Event(String),
    /// Every event of this channel.
    Channel(String),
    /// This event name on this channel.
    ChannelEvent(String, String),
    /// Events on the signed-in user's `#server-to-user-` channel.
    User,
}

impl Filter {
    fn matches(&self, e: &Event) -> bool {
        let ch = e.channel.as_deref();
        match self {
            Self::All => true,
            Self::Event(n) => e.event == *n,
            Self::Channel(c) => ch == Some(c.as_str()),
            Self::ChannelEvent(c, n) => ch == Some(c.as_str()) && e.event == *n,
            Self::User => ch.is_some_and(|c| c.starts_with(SERVER_TO_USER_PREFIX)),
        }
    }
}

struct Listener {
    filter: Filter,
    tx: mpsc::Sender<Event>,
    dropped: Arc<AtomicU64>,
}

/// The registry of streams.
pub(crate) struct Listeners {
    list: Mutex<Vec<Listener>>,
    capacity: usize,
    dropped_total: AtomicU64,
}

impl Listeners {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            list: Mutex::new(Vec::new()),
            capacity,
            dropped_total: AtomicU64::new(0),
        }
    }

    pub(crate) fn add(&self, filter: Filter) -> EventStream {
        let (tx, rx) = mpsc::channel(self.capacity);
        let dropped = Arc::new(AtomicU64::new(0));
        self.list
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Listener {
                filter,
                tx,
                dropped: dropped.clone(),
            });
        EventStream { rx, dropped }
    }

    /// Delivers `e` to every matching stream without waiting.
    pub(crate) fn dispatch(&self, e: &Event) {
        let mut list = self.list.lock().unwrap_or_else(PoisonError::into_inner);
        list.retain(|l| {
            if !l.filter.matches(e) {
                return !l.tx.is_closed();
            }
            match l.tx.try_send(e.clone()) {
                Ok(()) => true,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    l.dropped.fetch_add(1, Ordering::Relaxed);
                    self.dropped_total.fetch_add(1, Ordering::Relaxed);
                    true
                }
                Err(mpsc::error::TrySendError::Closed(_)) => false,
            }
        });
    }

    pub(crate) fn dropped_total(&self) -> u64 {
        self.dropped_total.load(Ordering::Relaxed)
    }
}

/// A bounded stream of events (see the module docs for the overflow policy).
/// Also a [`futures_util::Stream`].
#[derive(Debug)]
pub struct EventStream {
    rx: mpsc::Receiver<Event>,
    dropped: Arc<AtomicU64>,
}

impl EventStream {
    /// The next event; `None` once the client is gone.
    pub async fn recv(&mut self) -> Option<Event> {
        self.rx.recv().await
    }

    /// The next event if one is queued.
    pub fn try_recv(&mut self) -> Option<Event> {
        self.rx.try_recv().ok()
    }

    /// How many events this stream missed because its queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

impl Stream for EventStream {
    type Item = Event;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Event>> {
        self.rx.poll_recv(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn full_stream_drops_and_counts_without_blocking() {
        let l = Listeners::new(2);
        let mut s = l.add(Filter::Channel("a".into()));
        let mut other = l.add(Filter::ChannelEvent("b".into(), "x".into()));
        for i in 0..5 {
            l.dispatch(&Event::new(Some("a"), "x", json!(i)));
        }
        l.dispatch(&Event::new(Some("b"), "y", json!(0)));
        assert_eq!(s.dropped(), 3);
        assert_eq!(l.dropped_total(), 3);
        assert_eq!(s.try_recv().unwrap().data, json!(0));
        assert_eq!(s.try_recv().unwrap().data, json!(1));
        assert!(s.try_recv().is_none());
        assert!(other.try_recv().is_none());
        drop(s);
        l.dispatch(&Event::new(Some("a"), "x", json!(9)));
        assert_eq!(l.list.lock().unwrap().len(), 1);
    }

    #[test]
    fn filters() {
        let e = Event::new(Some("#server-to-user-7"), "hello", json!(1));
        assert!(Filter::User.matches(&e));
        assert!(Filter::Event("hello".into()).matches(&e));
        assert!(!Filter::Channel("x".into()).matches(&e));
        assert!(Filter::All.matches(&Event::new(None, "pusher:error", json!({}))));
    }
}
