//! The handle other parts of the server use to reach one connection: a bounded
//! queue of encoded frames and a way to ask the connection to close.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use hush_protocol::{CloseCode, SocketId};
use tokio::net::TcpStream;
use tokio::sync::Notify;

use crate::outbox::{Outbox, PushError};

/// A process-unique connection number (cheaper to hash than a socket id).
pub type ConnId = u64;

static NEXT_CONN_ID: AtomicU64 = AtomicU64::new(1);

/// Allocates a new connection number.
pub fn next_conn_id() -> ConnId {
    NEXT_CONN_ID.fetch_add(1, Ordering::Relaxed)
}

pub use crate::frame::Frame;

/// What a slow reader is told when its queue fills up (4100).
const SLOW_CLIENT: &str = "Client too slow: outgoing queue full";

/// A close asked of one connection: the code and the reason sent with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CloseRequest {
    /// The close code (also sent in a `pusher:error` for Pusher codes).
    pub code: CloseCode,
    /// The human-readable reason.
    pub reason: &'static str,
}

/// Asks a connection to close, from anywhere.
#[derive(Debug, Default)]
pub struct Closer {
    request: OnceLock<CloseRequest>,
    notify: Notify,
}

impl Closer {
    /// Requests a close with `code` and its usual message; the first
    /// request wins.
    pub fn close(&self, code: CloseCode) {
        self.close_with(code, code.message());
    }

    /// Requests a close with `code` and `reason`; the first request wins.
    pub fn close_with(&self, code: CloseCode, reason: &'static str) {
        if self.request.set(CloseRequest { code, reason }).is_ok() {
            self.notify.notify_one();
        }
    }

    /// The requested close, if any.
    pub fn requested(&self) -> Option<CloseRequest> {
        self.request.get().copied()
    }

    /// Waits until a close is requested, and returns it.
    pub async fn wait(&self) -> CloseRequest {
        loop {
            let notified = self.notify.notified();
            if let Some(r) = self.requested() {
                return r;
            }
            notified.await;
        }
    }
}

/// The parts of one connection that other tasks write to: its outbox and
/// its closer. The outbox only reports a frame it could not take; this is
/// where the connection decides what that means.
#[derive(Debug)]
pub struct Link {
    outbox: Outbox,
    closer: Closer,
}

impl Link {
    /// A link writing to `tcp` directly when it can (see [`Outbox::new`]).
    pub fn new(tcp: Option<Arc<TcpStream>>, limits: impl Into<crate::outbox::QueueLimits>) -> Self {
        Self {
            outbox: Outbox::new(tcp, limits),
            closer: Closer::default(),
        }
    }

    /// Sends a frame: written at once when the socket takes it, else queued.
    /// A full queue means the client does not read fast enough: the
    /// connection is closed with 4100 (pusher-js reconnects) and the frame is
    /// dropped, so one slow reader never grows the server's memory. Returns
    /// false if the frame was dropped.
    pub fn send(&self, frame: &Frame) -> bool {
        self.sent(self.outbox.push(frame))
    }

    /// Sends bytes tungstenite framed itself (its pong and close replies),
    /// with the same policy as [`Link::send`].
    pub fn send_raw(&self, bytes: &[u8]) -> bool {
        self.sent(self.outbox.push_raw(bytes))
    }

    fn sent(&self, pushed: Result<(), PushError>) -> bool {
        match pushed {
            Ok(()) => true,
            Err(PushError::Full) => {
                if self.closer.requested().is_none() {
                    tracing::info!("slow client: outgoing queue full, closing with 4100");
                }
                self.closer.close_with(CloseCode::OverCapacity, SLOW_CLIENT);
                false
            }
            Err(PushError::Closed) => false,
        }
    }

    /// Asks the connection to close with `code` and its usual message.
    pub fn close(&self, code: CloseCode) {
        self.closer.close(code);
    }

    /// The connection's outbox (its task drains it).
    pub fn outbox(&self) -> &Outbox {
        &self.outbox
    }

    /// The connection's closer (its task waits on it).
    pub fn closer(&self) -> &Closer {
        &self.closer
    }
}

/// A cheap, cloneable way to send frames to one connection.
#[derive(Debug, Clone)]
pub struct ConnHandle {
    /// Process-unique number.
    pub id: ConnId,
    /// The connection's socket id.
    pub socket_id: SocketId,
    link: Arc<Link>,
}

impl ConnHandle {
    /// Creates a handle whose frames go to `tcp` (directly when it can take
    /// them), or only through the connection task's drain when `None`, with
    /// at most `limits` (frames, or frames and bytes) waiting. Also returns
    /// the link, for the connection's task.
    pub fn new(
        socket_id: SocketId,
        limits: impl Into<crate::outbox::QueueLimits>,
        tcp: Option<Arc<TcpStream>>,
    ) -> (Self, Arc<Link>) {
        let link = Arc::new(Link::new(tcp, limits));
        (
            Self {
                id: next_conn_id(),
                socket_id,
                link: link.clone(),
            },
            link,
        )
    }

    /// Sends a frame (see [`Link::send`]). Returns false if it was dropped.
    pub fn send(&self, frame: &Frame) -> bool {
        self.link.send(frame)
    }

    /// Asks the connection to close with `code` and its usual message.
    pub fn close(&self, code: CloseCode) {
        self.link.closer.close(code);
    }

    /// Asks the connection to close with `code` and `reason`.
    pub fn close_with(&self, code: CloseCode, reason: &'static str) {
        self.link.closer.close_with(code, reason);
    }

    /// The connection's link, for writers holding many of them
    /// ([`crate::fanout`]).
    pub fn link(&self) -> &Arc<Link> {
        &self.link
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn full_queue_closes_with_4100() {
        let (h, link) = ConnHandle::new(SocketId::from_parts(1, 1), 2, None);
        assert!(h.send(&"a".into()));
        assert!(h.send(&"b".into()));
        assert!(!h.send(&"c".into()));
        let slow = CloseRequest {
            code: CloseCode::OverCapacity,
            reason: SLOW_CLIENT,
        };
        assert_eq!(link.closer().requested(), Some(slow));
        assert_eq!(link.closer().wait().await, slow);
        assert_eq!(
            link.outbox().take_queued()[0].wire(),
            Frame::text("a").wire()
        );
        // The first close request wins.
        h.close(CloseCode::Reconnect);
        assert_eq!(link.closer().requested(), Some(slow));
    }

    #[test]
    fn a_closed_outbox_drops_frames_without_closing() {
        let (h, link) = ConnHandle::new(SocketId::from_parts(1, 2), 2, None);
        link.outbox().finish(&[]);
        assert!(!h.send(&"late".into()));
        assert_eq!(link.closer().requested(), None);
    }

    #[test]
    fn the_close_carries_its_code_and_reason() {
        let (h, link) = ConnHandle::new(SocketId::from_parts(1, 3), 2, None);
        h.close_with(CloseCode::Unauthorized, "You got disconnected by the app.");
        h.close(CloseCode::AppNotFound);
        assert_eq!(
            link.closer().requested(),
            Some(CloseRequest {
                code: CloseCode::Unauthorized,
                reason: "You got disconnected by the app.",
            })
        );
    }
}
