//! The handle other parts of the server use to reach one connection: a bounded
//! queue of encoded frames and a way to ask the connection to close.

use std::sync::Arc;
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};

use axum::extract::ws::Utf8Bytes;
use hush_protocol::{CloseCode, SocketId};
use tokio::sync::{Notify, mpsc};

/// A process-unique connection number (cheaper to hash than a socket id).
pub type ConnId = u64;

static NEXT_CONN_ID: AtomicU64 = AtomicU64::new(1);

/// Allocates a new connection number.
pub fn next_conn_id() -> ConnId {
    NEXT_CONN_ID.fetch_add(1, Ordering::Relaxed)
}

/// A frame ready to write: shared, encoded once (cloning is a reference-count bump).
pub type Frame = Utf8Bytes;

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
    tx: mpsc::Sender<Frame>,
    closer: Arc<Closer>,
}

impl ConnHandle {
    /// Creates a handle and the receiving end of its queue (`capacity` frames).
    pub fn new(socket_id: SocketId, capacity: usize) -> (Self, mpsc::Receiver<Frame>, Arc<Closer>) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let closer = Arc::new(Closer::default());
        (
            Self {
                id: next_conn_id(),
                socket_id,
                tx,
                closer: closer.clone(),
            },
            rx,
            closer,
        )
    }

    /// Queues a frame. A full queue means the client does not read fast enough:
    /// the connection is closed with 4100 (pusher-js reconnects) and the frame
    /// is dropped, so one slow reader never grows the server's memory.
    /// Returns false if the frame was not queued.
    pub fn send(&self, frame: Frame) -> bool {
        match self.tx.try_send(frame) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                if self.closer.requested().is_none() {
                    tracing::info!(socket_id = %self.socket_id, "slow client: outgoing queue full, closing with 4100");
                }
                self.closer.close(CloseCode::OverCapacity);
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }

    /// Asks the connection to close with `code`.
    pub fn close(&self, code: CloseCode) {
        self.closer.close(code);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn full_queue_closes_with_4100() {
        let (h, mut rx, closer) = ConnHandle::new(SocketId::from_parts(1, 1), 2);
        assert!(h.send("a".into()));
        assert!(h.send("b".into()));
        assert!(!h.send("c".into()));
        assert_eq!(closer.requested(), Some(4100));
        closer.wait().await;
        assert_eq!(rx.recv().await.unwrap().as_str(), "a");
        // The first close request wins.
        h.close(CloseCode::Reconnect);
        assert_eq!(closer.requested(), Some(4100));
    }
}
