//! Closing many connections at once without a registry of them.
//!
//! A [`CloseSignal`] is a `tokio::sync::watch` channel: each connection
//! subscribes once when it is admitted and its task waits on a
//! [`Signalled`]; a reload that disables or removes an app, or the node's
//! drain, sends one value that wakes every subscriber. Connecting and
//! disconnecting touch no shared map and no global lock (only the watch's
//! receiver count).
//!
//! Cost per wake-up: a connection task wakes for every message and every
//! queued frame, and polling a waiting watch locks the watch's (shared)
//! waiter list. [`Signalled`] therefore polls the watches only once to
//! register, and after that only when a signal's generation counter (a
//! plain atomic load) shows a close was sent.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use hush_protocol::CloseCode;
use tokio::sync::watch;

/// Asks every connection subscribed so far to close.
#[derive(Debug)]
pub struct CloseSignal {
    tx: watch::Sender<Option<CloseCode>>,
    /// Closes sent so far; changed under the watch's write lock, before the
    /// subscribers are woken.
    generation: Arc<AtomicU64>,
}

impl Default for CloseSignal {
    fn default() -> Self {
        Self {
            tx: watch::Sender::new(None),
            generation: Arc::default(),
        }
    }
}

impl CloseSignal {
    /// A watch that fires on the next [`CloseSignal::close`], not on one
    /// sent before this call.
    pub fn subscribe(&self) -> CloseWatch {
        let mut rx = self.tx.subscribe();
        // Read under the watch's read lock, so the generation seen and the
        // version marked seen belong to the same close.
        let seen = {
            let _current = rx.borrow_and_update();
            self.generation.load(Ordering::Acquire)
        };
        CloseWatch {
            rx,
            generation: self.generation.clone(),
            seen,
        }
    }

    /// Asks every subscribed connection to close with `code`; returns how
    /// many connections are subscribed (open, or being admitted).
    pub fn close(&self, code: CloseCode) -> usize {
        let mut told = 0;
        self.tx.send_modify(|value| {
            // Counted before anyone is woken: afterwards, connections that
            // already closed (on other threads) no longer count.
            told = self.tx.receiver_count();
            self.generation.fetch_add(1, Ordering::AcqRel);
            *value = Some(code);
        });
        told
    }
}

/// One connection's view of a [`CloseSignal`].
#[derive(Debug)]
pub struct CloseWatch {
    rx: watch::Receiver<Option<CloseCode>>,
    generation: Arc<AtomicU64>,
    seen: u64,
}

impl CloseWatch {
    /// Waits for a close sent after this watch was made, and returns its
    /// code. Never returns if the signal is dropped without one.
    pub async fn closed(&mut self) -> CloseCode {
        loop {
            if self.rx.changed().await.is_err() {
                return std::future::pending().await;
            }
            if let Some(code) = *self.rx.borrow_and_update() {
                return code;
            }
        }
    }

    /// What [`Signalled`] checks before polling: the generation seen, and
    /// where to read the current one.
    fn hint(&self) -> (Arc<AtomicU64>, u64) {
        (self.generation.clone(), self.seen)
    }
}

/// Waits until the node's drain or the connection's app signals a close.
///
/// Poll it from one task only: after its first poll it is polled through
/// (and locks the watches' waiter lists) only once a close was sent, and
/// relies on the waker registered then.
pub struct Signalled {
    wait: Pin<Box<dyn Future<Output = CloseCode> + Send>>,
    hints: [(Arc<AtomicU64>, u64); 2],
    registered: bool,
}

impl std::fmt::Debug for Signalled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signalled")
            .field("registered", &self.registered)
            .finish_non_exhaustive()
    }
}

impl Signalled {
    /// Watches `node` (the drain) and `app` (its reloads).
    pub fn new(node: &CloseSignal, app: &CloseSignal) -> Self {
        let (mut node, mut app) = (node.subscribe(), app.subscribe());
        let hints = [node.hint(), app.hint()];
        let wait = Box::pin(async move {
            tokio::select! {
                biased;
                code = node.closed() => code,
                code = app.closed() => code,
            }
        });
        Self {
            wait,
            hints,
            registered: false,
        }
    }

    /// True once either signal sent a close after subscribing.
    fn sent(&self) -> bool {
        self.hints
            .iter()
            .any(|(generation, seen)| generation.load(Ordering::Acquire) != *seen)
    }
}

impl Future for Signalled {
    type Output = CloseCode;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<CloseCode> {
        if self.registered && !self.sent() {
            // The first poll registered this task's waker with both
            // watches; a close wakes it and moves a generation first.
            return Poll::Pending;
        }
        self.registered = true;
        self.wait.as_mut().poll(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    async fn fired(w: &mut Signalled) -> Option<CloseCode> {
        tokio::time::timeout(Duration::from_millis(50), w)
            .await
            .ok()
    }

    #[tokio::test(start_paused = true)]
    async fn a_close_reaches_the_subscribers_of_its_signal_only() {
        let (node, app, other) = (
            CloseSignal::default(),
            CloseSignal::default(),
            CloseSignal::default(),
        );
        let mut a = Signalled::new(&node, &app);
        let mut b = Signalled::new(&node, &other);
        // Waiting first: the close must wake a registered waiter.
        assert_eq!(fired(&mut a).await, None);
        assert_eq!(fired(&mut b).await, None);
        assert_eq!(app.close(CloseCode::AppDisabled), 1);
        assert_eq!(fired(&mut a).await, Some(CloseCode::AppDisabled));
        assert_eq!(fired(&mut b).await, None);
        // `a` is done (its watches are dropped): only `b` is told.
        assert_eq!(node.close(CloseCode::Reconnect), 1);
        assert_eq!(fired(&mut b).await, Some(CloseCode::Reconnect));
    }

    #[tokio::test(start_paused = true)]
    async fn a_waiting_task_is_woken_by_a_close() {
        let (node, app) = (CloseSignal::default(), CloseSignal::default());
        let task = tokio::spawn(Signalled::new(&node, &app));
        tokio::task::yield_now().await;
        node.close(CloseCode::Reconnect);
        let code = tokio::time::timeout(Duration::from_secs(1), task).await;
        assert_eq!(code.ok().and_then(Result::ok), Some(CloseCode::Reconnect));
    }

    #[tokio::test(start_paused = true)]
    async fn a_close_sent_before_subscribing_is_not_seen() {
        let (node, app) = (CloseSignal::default(), CloseSignal::default());
        app.close(CloseCode::AppDisabled);
        let mut late = Signalled::new(&node, &app);
        assert_eq!(fired(&mut late).await, None);
        drop(late);
        assert_eq!(app.close(CloseCode::AppNotFound), 0);
    }
}
