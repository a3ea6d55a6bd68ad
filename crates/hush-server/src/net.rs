//! Plain-TCP accepting that keeps a shared handle on every socket, so the
//! gateway can write frames to it directly (see [`crate::outbox`]) while
//! hyper and tungstenite read from the same socket.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::extract::connect_info::Connected;
use axum::serve::IncomingStream;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

use crate::tls::TlsListener;

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

/// Accepts plain TCP connections (with `TCP_NODELAY`: small frames leave at
/// once, not behind a delayed ACK).
#[derive(Debug)]
pub struct PlainListener(pub TcpListener);

impl axum::serve::Listener for PlainListener {
    type Io = SharedTcp;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match self.0.accept().await {
                Ok((tcp, peer)) => {
                    if let Err(e) = tcp.set_nodelay(true) {
                        tracing::debug!(error = %e, "TCP_NODELAY not set");
                    }
                    return (SharedTcp(Arc::new(tcp)), peer);
                }
                Err(e) => {
                    // Like axum: out of file descriptors and the like are
                    // transient; back off briefly.
                    tracing::debug!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.0.local_addr()
    }
}

/// Who is connected: the peer address and, on plain TCP, the socket itself.
#[derive(Debug, Clone)]
pub struct PeerConn {
    /// The peer's address (before `X-Forwarded-For`).
    pub addr: SocketAddr,
    /// The socket, for direct writes (plain TCP only).
    pub tcp: Option<Arc<TcpStream>>,
}

impl Connected<IncomingStream<'_, PlainListener>> for PeerConn {
    fn connect_info(stream: IncomingStream<'_, PlainListener>) -> Self {
        Self {
            addr: *stream.remote_addr(),
            tcp: Some(stream.io().0.clone()),
        }
    }
}

impl Connected<IncomingStream<'_, TlsListener>> for PeerConn {
    fn connect_info(stream: IncomingStream<'_, TlsListener>) -> Self {
        Self {
            addr: *stream.remote_addr(),
            tcp: None,
        }
    }
}
