//! A shared handle on every plain-TCP socket, so the gateway can write frames
//! to it directly (see [`crate::outbox`]) while hyper and tungstenite read
//! from the same socket; and what a connection knows about its peer.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// A TCP stream shared between hyper (reads, the HTTP exchange) and the
/// connection's outbox (direct writes after the WebSocket upgrade). Every
/// operation takes `&TcpStream`, so sharing needs no lock.
#[derive(Debug, Clone)]
pub struct SharedTcp(pub Arc<TcpStream>);

impl AsyncRead for SharedTcp {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            ready!(self.0.poll_read_ready(cx))?;
            // Into the unfilled part as it is: no zero-filling per read.
            match self.0.try_read_buf(buf) {
                Ok(_) => return Poll::Ready(Ok(())),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

impl AsyncWrite for SharedTcp {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        loop {
            ready!(self.0.poll_write_ready(cx))?;
            match self.0.try_write(buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                other => return Poll::Ready(other),
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(socket2::SockRef::from(&*self.0).shutdown(std::net::Shutdown::Write))
    }
}

/// Who is connected: the peer address and, on plain TCP, the socket itself.
#[derive(Debug, Clone)]
pub struct PeerConn {
    /// The peer's address (before `X-Forwarded-For`).
    pub addr: SocketAddr,
    /// The socket, for direct writes (plain TCP only).
    pub tcp: Option<Arc<TcpStream>>,
    /// Accepted while the node was at capacity: a WebSocket upgrade on it is
    /// refused with 4100 (see [`crate::admission`]).
    pub over_capacity: bool,
}
