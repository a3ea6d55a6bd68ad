//! The handle other parts of the server use to reach one connection: a bounded
//! queue of encoded frames and a way to ask the connection to close.

use std::sync::Arc;
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};

use hush_protocol::{CloseCode, SocketId};
use tokio::net::TcpStream;
use tokio::sync::Notify;

use crate::outbox::Outbox;

/// A process-unique connection number (cheaper to hash than a socket id).
pub type ConnId = u64;

static NEXT_CONN_ID: AtomicU64 = AtomicU64::new(1);

/// Allocates a new connection number.
pub fn next_conn_id() -> ConnId {
    NEXT_CONN_ID.fetch_add(1, Ordering::Relaxed)
}

pub use crate::outbox::Frame;

/// Asks a connection to close, from anywhere.
#[derive(Debug, Default)]
pub struct Closer {
    code: AtomicU16,
    notify: Notify,
}

impl Closer {
    /// Requests a close with `code`; the first request wins.
    pub fn close(&self, code: CloseCode) {
        if self
            .code
            .compare_exchange(0, code.code(), Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            self.notify.notify_one();
        }
    }

    /// The requested close code, if any.
    pub fn requested(&self) -> Option<u16> {
        match self.code.load(Ordering::Acquire) {
            0 => None,
            c => Some(c),
        }
    }

    /// Waits until a close is requested.
    pub async fn wait(&self) {
        loop {
            let notified = self.notify.notified();
            if self.requested().is_some() {
                return;
            }
            notified.await;
        }
    }
}

/// A cheap, cloneable way to send frames to one connection.
#[derive(Debug, Clone)]
pub struct ConnHandle {
    /// Process-unique number.
    pub id: ConnId,
    /// The connection's socket id.
    pub socket_id: SocketId,
    outbox: Arc<Outbox>,
    closer: Arc<Closer>,
}

impl ConnHandle {
    /// Creates a handle whose frames go to `tcp` (directly when it can take
    /// them), or only through the connection task's drain when `None`, with
    /// at most `limits` (frames, or frames and bytes) waiting.
    pub fn new(
        socket_id: SocketId,
        limits: impl Into<crate::outbox::QueueLimits>,
        tcp: Option<Arc<TcpStream>>,
    ) -> (Self, Arc<Outbox>, Arc<Closer>) {
        let closer = Arc::new(Closer::default());
        let outbox = Arc::new(Outbox::new(tcp, limits, closer.clone()));
        (
            Self {
                id: next_conn_id(),
                socket_id,
                outbox: outbox.clone(),
                closer: closer.clone(),
            },
            outbox,
            closer,
        )
    }

    /// Sends a frame: written at once when the socket takes it, else queued.
    /// A full queue means the client does not read fast enough: the
    /// connection is closed with 4100 (pusher-js reconnects) and the frame is
    /// dropped, so one slow reader never grows the server's memory. Returns
    /// false if the frame was dropped.
    pub fn send(&self, frame: &Frame) -> bool {
        self.outbox.push(frame)
    }

    /// Asks the connection to close with `code`.
    pub fn close(&self, code: CloseCode) {
        self.closer.close(code);
    }

    /// The connection's outbox, for writers holding many of them
    /// ([`crate::fanout`]).
    pub fn outbox(&self) -> &Arc<Outbox> {
        &self.outbox
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn full_queue_closes_with_4100() {
        let (h, out, closer) = ConnHandle::new(SocketId::from_parts(1, 1), 2, None);
        assert!(h.send(&"a".into()));
        assert!(h.send(&"b".into()));
        assert!(!h.send(&"c".into()));
        assert_eq!(closer.requested(), Some(4100));
        closer.wait().await;
        assert_eq!(out.take_queued()[0].wire(), Frame::text("a").wire());
        // The first close request wins.
        h.close(CloseCode::Reconnect);
        assert_eq!(closer.requested(), Some(4100));
    }
}
