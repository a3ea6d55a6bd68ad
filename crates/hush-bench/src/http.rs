//! A minimal keep-alive HTTP/1.1 client for signed Pusher API triggers: one
//! connection, no allocations beyond the request and response text, so the
//! load generator spends its CPU on the load.

use std::net::SocketAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use hush_protocol::api::{QueryParams, signed_query};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::{BenchError, Target};

/// A persistent API connection.
pub struct ApiClient {
    target: Target,
    stream: Option<BufReader<TcpStream>>,
}

impl ApiClient {
    /// A client for `target` (connects lazily).
    pub fn new(target: Target) -> Self {
        Self {
            target,
            stream: None,
        }
    }

    async fn connect(addr: SocketAddr) -> Result<BufReader<TcpStream>, BenchError> {
        let s = TcpStream::connect(addr).await?;
        s.set_nodelay(true)?;
        Ok(BufReader::new(s))
    }

    /// Sends a signed POST and returns the status and body; reconnects once.
    pub async fn post(&mut self, path: &str, body: &str) -> Result<(u16, String), BenchError> {
        match self.post_once(path, body).await {
            Ok(r) => Ok(r),
            Err(_) => {
                self.stream = None;
                self.post_once(path, body).await
            }
        }
    }

    async fn post_once(&mut self, path: &str, body: &str) -> Result<(u16, String), BenchError> {
        let ts = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let t = &self.target;
        let q = signed_query(
            &t.key,
            t.secret.as_bytes(),
            "POST",
            path,
            QueryParams::default(),
            body.as_bytes(),
            ts,
        );
        let req = format!(
            "POST {path}?{q} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            t.addr,
            body.len()
        );
        if self.stream.is_none() {
            self.stream = Some(Self::connect(self.target.addr).await?);
        }
        let s = self
            .stream
            .as_mut()
            .ok_or(BenchError::Protocol("no connection".into()))?;
        s.get_mut().write_all(req.as_bytes()).await?;
        let mut line = String::new();
        s.read_line(&mut line).await?;
        let status: u16 = line
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| BenchError::Protocol(format!("bad status line {line:?}")))?;
        let mut len = 0usize;
        loop {
            line.clear();
            if s.read_line(&mut line).await? == 0 {
                return Err(BenchError::Protocol("connection closed".into()));
            }
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some((k, v)) = l.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    len = v.trim().parse().unwrap_or(0);
                }
            }
        }
        let mut buf = vec![0u8; len];
        s.read_exact(&mut buf).await?;
        Ok((status, String::from_utf8_lossy(&buf).into_owned()))
    }
}
