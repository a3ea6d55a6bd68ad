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
//! that stays full is a slow reader: the connection is closed with 4100 and
//! the server's memory does not grow.
//!
//! Ordering: the publisher writes directly only while nothing is queued or
//! being drained (`busy` is false), under the same lock that the draining
//! task takes for every write, so bytes leave in the order they were pushed
//! and frames never interleave.

use std::collections::VecDeque;
use std::io;
use std::sync::Arc;

use bytes::Bytes;
use hush_protocol::CloseCode;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{
    CloseCode as WsCloseCode, Data, OpCode,
};
use tokio_tungstenite::tungstenite::protocol::frame::{Frame as WsFrame, FrameHeader};

use crate::conn::Closer;
use crate::lock::lock;

/// A WebSocket text frame, encoded once (header and payload) and shared by
/// every connection it goes to: cloning is a reference-count bump.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    wire: Bytes,
    header: u8,
}

impl Frame {
    /// Frames `text` as one unmasked, final text frame.
    pub fn text(text: &str) -> Self {
        let mut wire = Vec::with_capacity(text.len() + 10);
        let header = FrameHeader {
            opcode: OpCode::Data(Data::Text),
            ..FrameHeader::default()
        };
        // Writing the header into a Vec cannot fail; the payload is copied
        // once, right behind it.
        let _ = header.format(text.len() as u64, &mut wire);
        let header = u8::try_from(wire.len()).unwrap_or(0);
        wire.extend_from_slice(text.as_bytes());
        Self {
            wire: Bytes::from(wire),
            header,
        }
    }

    /// A close frame with `code` and `reason`.
    pub fn close(code: u16, reason: &str) -> Self {
        let mut wire = Vec::with_capacity(reason.len() + 8);
        let _ = WsFrame::close(Some(CloseFrame {
            code: WsCloseCode::from(code),
            reason: reason.to_owned().into(),
        }))
        .format(&mut wire);
        Self {
            wire: Bytes::from(wire),
            header: 0,
        }
    }

    /// Bytes already framed (unmasked, as a server sends them).
    #[cfg(test)]
    fn from_wire(wire: Bytes) -> Self {
        let header = match wire.get(1).map(|b| b & 0x7f) {
            Some(126) => 4,
            Some(127) => 10,
            Some(_) => 2,
            None => 0,
        };
        Self { wire, header }
    }

    /// The bytes on the wire.
    pub fn wire(&self) -> &Bytes {
        &self.wire
    }

    /// The payload of a text frame (the JSON the client reads).
    pub fn payload(&self) -> &str {
        std::str::from_utf8(&self.wire[usize::from(self.header)..]).unwrap_or("")
    }

    /// Length of the payload (what the client reads), without re-reading it.
    pub fn payload_len(&self) -> usize {
        self.wire.len() - usize::from(self.header)
    }

    /// Bytes on the wire.
    pub fn len(&self) -> usize {
        self.wire.len()
    }

    /// Never true for a framed message (the header is at least 2 bytes).
    pub fn is_empty(&self) -> bool {
        self.wire.is_empty()
    }
}

impl From<String> for Frame {
    fn from(text: String) -> Self {
        Self::text(&text)
    }
}

impl From<&str> for Frame {
    fn from(text: &str) -> Self {
        Self::text(text)
    }
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
    closer: Arc<Closer>,
}

impl Outbox {
    /// An outbox writing to `tcp` directly when possible (or only through
    /// the task when `None`), queueing at most `limits` (frames, bytes).
    pub fn new(
        tcp: Option<Arc<TcpStream>>,
        limits: impl Into<QueueLimits>,
        closer: Arc<Closer>,
    ) -> Self {
        let limits = limits.into();
        Self {
            state: std::sync::Mutex::new(State::default()),
            tcp,
            wanted: Notify::new(),
            limits: QueueLimits {
                frames: limits.frames.max(1),
                bytes: limits.bytes,
            },
            closer,
        }
    }

    /// Sends `frame`: written now if the socket takes it, else queued for the
    /// connection task. Returns false if it was dropped (failed socket, or a
    /// full queue: then the connection is closed with 4100).
    pub fn push(&self, frame: &Frame) -> bool {
        self.push_bytes(frame.wire())
    }

    fn push_bytes(&self, bytes: &Bytes) -> bool {
        let mut st = lock(&self.state);
        if st.failed || st.closing {
            return false;
        }
        if !st.busy {
            if let Some(tcp) = &self.tcp {
                match tcp.try_write(bytes) {
                    Ok(n) if n == bytes.len() => return true,
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
                        return false;
                    }
                }
                st.busy = true;
                drop(st);
                self.wanted.notify_one();
                return true;
            }
        }
        if st.queue.len() >= self.limits.frames
            || (!st.queue.is_empty()
                && st.queued_bytes.saturating_add(bytes.len()) > self.limits.bytes)
        {
            drop(st);
            if self.closer.requested().is_none() {
                tracing::info!("slow client: outgoing queue full, closing with 4100");
            }
            self.closer.close(CloseCode::OverCapacity);
            return false;
        }
        st.enqueue(bytes);
        if !st.busy {
            st.busy = true;
            drop(st);
            self.wanted.notify_one();
        }
        true
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
    pub fn push_raw(&self, bytes: &[u8]) -> bool {
        self.push_bytes(&Bytes::copy_from_slice(bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_encoded_once_with_their_payload() {
        let f = Frame::text(r#"{"event":"x"}"#);
        assert_eq!(f.wire()[0], 0x81);
        assert_eq!(usize::from(f.wire()[1]), 13);
        assert_eq!(f.payload(), r#"{"event":"x"}"#);
        assert_eq!(f.payload_len(), 13);
        let long = "y".repeat(300);
        let f = Frame::text(&long);
        assert_eq!(&f.wire()[..4], &[0x81, 126, 1, 44]);
        assert_eq!(f.payload(), long);
        assert_eq!(f.payload_len(), 300);
        // The same bytes tungstenite's own message framing produces.
        let mut reference = Vec::new();
        WsFrame::message(Bytes::from(long.clone()), OpCode::Data(Data::Text), true)
            .format(&mut reference)
            .unwrap();
        assert_eq!(f.wire().as_ref(), reference.as_slice());
        let c = Frame::close(4100, "slow");
        assert_eq!(&c.wire()[..4], &[0x88, 6, 0x10, 0x04]);
    }

    #[tokio::test]
    async fn finishing_drops_the_backlog_but_sends_the_last_frames() {
        let out = Outbox::new(None, 2, Arc::new(Closer::default()));
        assert!(out.push(&Frame::text("a")));
        assert!(out.push(&Frame::text("b")));
        out.finish(&[Frame::close(4100, "slow")]);
        assert!(!out.push(&Frame::text("late")));
        let mut sink = Vec::new();
        out.drain(&mut sink).await.unwrap();
        assert_eq!(sink, Frame::close(4100, "slow").wire().to_vec());
    }

    #[tokio::test]
    async fn without_a_socket_frames_queue_up_to_the_capacity() {
        let closer = Arc::new(Closer::default());
        let out = Outbox::new(None, 2, closer.clone());
        assert!(out.push(&Frame::text("a")));
        assert!(out.push(&Frame::text("b")));
        assert!(!out.push(&Frame::text("c")));
        assert_eq!(closer.requested(), Some(4100));
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
        let closer = Arc::new(Closer::default());
        let limits = QueueLimits {
            frames: 512,
            bytes: 100_000,
        };
        let out = Outbox::new(None, limits, closer.clone());
        let big = Frame::text(&"x".repeat(40_000));
        // One frame larger than the budget still goes when nothing waits.
        let huge = Frame::text(&"y".repeat(150_000));
        assert!(out.push(&huge));
        let mut sink = Vec::new();
        out.drain(&mut sink).await.unwrap();
        assert!(out.push(&big));
        assert!(out.push(&big));
        // A third would hold 120 kB: far below 512 frames, over the bytes.
        assert!(!out.push(&big));
        assert_eq!(closer.requested(), Some(4100));
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
        let out = Arc::new(Outbox::new(
            Some(Arc::new(server)),
            1_000_000,
            Arc::new(Closer::default()),
        ));
        // Far more than the socket buffers hold while nobody reads: the rest
        // queues, and a drain task finishes the job once the reader reads.
        let frames: Vec<Frame> = (0..20_000)
            .map(|i| Frame::text(&format!("{i:0>100}")))
            .collect();
        for f in &frames {
            assert!(out.push(f));
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
