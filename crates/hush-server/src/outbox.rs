//! One connection's outgoing bytes: WebSocket frames encoded once per
//! publish ([`Frame`]) and written to the socket either **directly by the
//! publisher** or, when the socket cannot take them right now, queued for the
//! connection's task.
//!
//! On plain TCP a publish to an idle connection is one non-blocking
//! `try_write` from the publishing thread: no queue, no task wake-up, no
//! poll of the connection's state machine. Only when the socket's send
//! buffer is full (or on TLS, where bytes must go through the TLS stream) do
//! frames wait in a bounded queue that the connection task drains. A queue
//! that stays full is a slow reader: the push fails with [`PushError::Full`]
//! (the connection then closes with 4100, see [`crate::conn::Link`]) and the
//! server's memory does not grow.
//!
//! Ordering: the publisher writes directly only while nothing is queued or
//! being drained (`busy` is false), under the same lock that the draining
//! task takes for every write, so bytes leave in the order they were pushed
//! and frames never interleave.

use std::collections::VecDeque;
use std::io;
use std::sync::Arc;

use bytes::Bytes;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Notify;

pub use crate::frame::Frame;
use crate::lock::lock;

/// Why [`Outbox::push`] dropped a frame. The outbox only reports it: the
/// connection decides what follows ([`crate::conn::Link::send`] closes a
/// slow reader with 4100).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PushError {
    /// The queue is at its limit (frames or bytes): the client does not read
    /// fast enough.
    #[error("outgoing queue full")]
    Full,
    /// The socket failed or the connection is closing: nothing more is sent.
    #[error("connection closed")]
    Closed,
}

/// How much one connection may have waiting: frames and bytes. Past either,
/// the client is a slow reader and the connection is closed (4100).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueLimits {
    /// Frames waiting (at least 1).
    pub frames: usize,
    /// Bytes waiting. A single frame larger than this is still queued when
    /// nothing else waits (frames are bounded by their own limits).
    pub bytes: usize,
}

impl From<usize> for QueueLimits {
    /// A limit in frames only.
    fn from(frames: usize) -> Self {
        Self {
            frames,
            bytes: usize::MAX,
        }
    }
}

#[derive(Debug, Default)]
struct State {
    queue: VecDeque<Bytes>,
    /// Bytes in `queue` (whole frames, the partly written front included).
    queued_bytes: usize,
    /// Bytes of `queue.front()` already written.
    offset: usize,
    /// The task owns writing: queued bytes exist or are being drained.
    busy: bool,
    /// The socket failed: nothing more is written.
    failed: bool,
    /// The connection is closing: only the final frames are still written.
    closing: bool,
}

impl State {
    fn enqueue(&mut self, bytes: &Bytes) {
        self.queued_bytes = self.queued_bytes.saturating_add(bytes.len());
        self.queue.push_back(bytes.clone());
    }

    fn dequeue(&mut self) {
        if let Some(b) = self.queue.pop_front() {
            self.queued_bytes = self.queued_bytes.saturating_sub(b.len());
        }
    }
}

/// The outgoing side of one connection.
#[derive(Debug)]
pub struct Outbox {
    state: std::sync::Mutex<State>,
    /// Plain TCP: written directly (`try_write` needs only `&TcpStream`).
    tcp: Option<Arc<TcpStream>>,
    wanted: Notify,
    limits: QueueLimits,
}

impl Outbox {
    /// An outbox writing to `tcp` directly when possible (or only through
    /// the task when `None`), queueing at most `limits` (frames, bytes).
    pub fn new(tcp: Option<Arc<TcpStream>>, limits: impl Into<QueueLimits>) -> Self {
        let limits = limits.into();
        Self {
            state: std::sync::Mutex::new(State::default()),
            tcp,
            wanted: Notify::new(),
            limits: QueueLimits {
                frames: limits.frames.max(1),
                bytes: limits.bytes,
            },
        }
    }

    /// Sends `frame`: written now if the socket takes it, else queued for the
    /// connection task. A dropped frame is reported, not acted on: the
    /// caller closes the connection if it must.
    pub fn push(&self, frame: &Frame) -> Result<(), PushError> {
        self.push_bytes(frame.wire())
    }

    fn push_bytes(&self, bytes: &Bytes) -> Result<(), PushError> {
        let mut st = lock(&self.state);
        if st.failed || st.closing {
            return Err(PushError::Closed);
        }
        if !st.busy {
            if let Some(tcp) = &self.tcp {
                match tcp.try_write(bytes) {
                    Ok(n) if n == bytes.len() => return Ok(()),
                    Ok(n) => {
                        st.enqueue(bytes);
                        st.offset = n;
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        st.enqueue(bytes);
                        st.offset = 0;
                    }
                    Err(_) => {
                        st.failed = true;
                        drop(st);
                        self.wanted.notify_one();
                        return Err(PushError::Closed);
                    }
                }
                st.busy = true;
                drop(st);
                self.wanted.notify_one();
                return Ok(());
            }
        }
        if st.queue.len() >= self.limits.frames
            || (!st.queue.is_empty()
                && st.queued_bytes.saturating_add(bytes.len()) > self.limits.bytes)
        {
            return Err(PushError::Full);
        }
        st.enqueue(bytes);
        if !st.busy {
            st.busy = true;
            drop(st);
            self.wanted.notify_one();
        }
        Ok(())
    }

    /// Waits until the task has frames to write.
    pub async fn wanted(&self) {
        self.wanted.notified().await;
    }

    /// Frames waiting (tests).
    #[cfg(test)]
    pub(crate) fn queued(&self) -> usize {
        lock(&self.state).queue.len()
    }

    /// Takes every queued frame (unit tests of the registry, where no socket
    /// exists).
    #[cfg(test)]
    pub(crate) fn take_queued(&self) -> Vec<Frame> {
        let mut st = lock(&self.state);
        st.busy = false;
        st.offset = 0;
        st.queued_bytes = 0;
        st.queue.drain(..).map(Frame::from_wire).collect()
    }

    /// Writes everything queued: on TCP with `try_write` as the socket
    /// becomes writable, otherwise through `generic` (the TLS stream's write
    /// half). Returns when the queue is empty (and hands direct writing back
    /// to publishers), or the first error.
    pub async fn drain<W: AsyncWrite + Unpin>(&self, generic: &mut W) -> io::Result<()> {
        loop {
            let next = {
                let mut st = lock(&self.state);
                if st.failed {
                    return Err(io::ErrorKind::BrokenPipe.into());
                }
                loop {
                    let Some(front) = st.queue.front().cloned() else {
                        st.busy = false;
                        return Ok(());
                    };
                    let Some(tcp) = &self.tcp else {
                        break (front, st.offset);
                    };
                    match tcp.try_write(&front[st.offset..]) {
                        Ok(n) => {
                            st.offset += n;
                            if st.offset >= front.len() {
                                st.dequeue();
                                st.offset = 0;
                            }
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                            break (Bytes::new(), 0);
                        }
                        Err(e) => {
                            st.failed = true;
                            return Err(e);
                        }
                    }
                }
            };
            match &self.tcp {
                Some(tcp) => tcp.writable().await?,
                None => {
                    let (chunk, offset) = next;
                    if let Err(e) = generic.write_all(&chunk[offset..]).await {
                        lock(&self.state).failed = true;
                        return Err(e);
                    }
                    let more = {
                        let mut st = lock(&self.state);
                        st.dequeue();
                        st.offset = 0;
                        !st.queue.is_empty()
                    };
                    if !more {
                        generic.flush().await?;
                    }
                }
            }
        }
    }

    /// Ends the connection's output: frames still waiting are dropped (a
    /// partly written one is finished, so the stream stays well-formed),
    /// `last` is queued whatever the capacity, and nothing pushed afterwards
    /// is sent. Drain to write them.
    pub fn finish(&self, last: &[Frame]) {
        let mut st = lock(&self.state);
        st.closing = true;
        if st.offset > 0 {
            st.queue.truncate(1);
        } else {
            st.queue.clear();
        }
        st.queue.extend(last.iter().map(|f| f.wire().clone()));
        st.queued_bytes = st.queue.iter().map(Bytes::len).sum();
        st.busy = true;
    }

    /// Queues bytes tungstenite framed itself (its automatic pong and close
    /// replies), in order with everything else.
    pub fn push_raw(&self, bytes: &[u8]) -> Result<(), PushError> {
        self.push_bytes(&Bytes::copy_from_slice(bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hush_protocol::CloseCode;

    #[tokio::test]
    async fn finishing_drops_the_backlog_but_sends_the_last_frames() {
        let out = Outbox::new(None, 2);
        let slow = Frame::close(CloseCode::OverCapacity, "slow");
        assert_eq!(out.push(&Frame::text("a")), Ok(()));
        assert_eq!(out.push(&Frame::text("b")), Ok(()));
        out.finish(std::slice::from_ref(&slow));
        assert_eq!(out.push(&Frame::text("late")), Err(PushError::Closed));
        let mut sink = Vec::new();
        out.drain(&mut sink).await.unwrap();
        assert_eq!(sink, slow.wire().to_vec());
    }

    #[tokio::test]
    async fn without_a_socket_frames_queue_up_to_the_capacity() {
        let out = Outbox::new(None, 2);
        assert_eq!(out.push(&Frame::text("a")), Ok(()));
        assert_eq!(out.push(&Frame::text("b")), Ok(()));
        assert_eq!(out.push(&Frame::text("c")), Err(PushError::Full));
        let mut sink = Vec::new();
        out.drain(&mut sink).await.unwrap();
        assert_eq!(
            sink,
            [Frame::text("a").wire().as_ref(), Frame::text("b").wire()].concat()
        );
        assert_eq!(out.queued(), 0);
    }

    #[tokio::test]
    async fn the_byte_budget_closes_a_reader_that_queues_few_large_frames() {
        let limits = QueueLimits {
            frames: 512,
            bytes: 100_000,
        };
        let out = Outbox::new(None, limits);
        let big = Frame::text(&"x".repeat(40_000));
        // One frame larger than the budget still goes when nothing waits.
        let huge = Frame::text(&"y".repeat(150_000));
        assert_eq!(out.push(&huge), Ok(()));
        let mut sink = Vec::new();
        out.drain(&mut sink).await.unwrap();
        assert_eq!(out.push(&big), Ok(()));
        assert_eq!(out.push(&big), Ok(()));
        // A third would hold 120 kB: far below 512 frames, over the bytes.
        assert_eq!(out.push(&big), Err(PushError::Full));
        sink.clear();
        out.drain(&mut sink).await.unwrap();
        assert_eq!(sink.len(), 2 * big.len());
        assert_eq!(lock(&out.state).queued_bytes, 0);
    }

    #[tokio::test]
    async fn direct_writes_then_backpressure_keep_the_order() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let client = tokio::spawn(async move { TcpStream::connect(addr).await.unwrap() });
        let (server, _) = listener.accept().await.unwrap();
        let mut client = client.await.unwrap();
        // Small kernel buffers, so 2 MB cannot all be written at once.
        socket2::SockRef::from(&server)
            .set_send_buffer_size(16 * 1024)
            .unwrap();
        socket2::SockRef::from(&client)
            .set_recv_buffer_size(16 * 1024)
            .unwrap();
        let out = Arc::new(Outbox::new(Some(Arc::new(server)), 1_000_000));
        // Far more than the socket buffers hold while nobody reads: the rest
        // queues, and a drain task finishes the job once the reader reads.
        let frames: Vec<Frame> = (0..20_000)
            .map(|i| Frame::text(&format!("{i:0>100}")))
            .collect();
        for f in &frames {
            assert_eq!(out.push(f), Ok(()));
        }
        assert!(out.queued() > 0, "the socket buffers should have filled up");
        let drainer = {
            let out = out.clone();
            tokio::spawn(async move {
                loop {
                    out.drain(&mut tokio::io::sink()).await.unwrap();
                    if out.queued() == 0 {
                        return;
                    }
                }
            })
        };
        let expected: Vec<u8> = frames.iter().flat_map(|f| f.wire().to_vec()).collect();
        let mut got = vec![0u8; expected.len()];
        tokio::io::AsyncReadExt::read_exact(&mut client, &mut got)
            .await
            .unwrap();
        assert!(got == expected, "bytes arrived out of order");
        drainer.await.unwrap();
    }
}
