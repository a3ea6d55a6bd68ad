//! `hush bench`: load scenarios for any Pusher-protocol server, over loopback.
//!
//! Each scenario opens real WebSocket subscribers and drives the server through
//! its signed HTTP API (or client events), measures end-to-end latency with
//! HDR histograms, counts lost messages, and — given the server's pid — its CPU
//! time and resident memory from `/proc`. The generator's own CPU time is
//! reported too, so a saturated load generator is visible.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod http;
pub mod procstat;
pub mod report;
pub mod scenarios;
pub mod soak;
pub mod ws;

use std::net::SocketAddr;

pub use report::Report;

/// The server under test.
#[derive(Debug, Clone)]
pub struct Target {
    /// Loopback address of the server (WebSocket and HTTP API).
    pub addr: SocketAddr,
    /// App id.
    pub app_id: String,
    /// App key.
    pub key: String,
    /// App secret (signs API requests and channel auth).
    pub secret: String,
    /// The server's pid, to read its CPU time and memory.
    pub pid: Option<u32>,
    /// A cluster: where WebSocket clients connect, in turn (empty: `addr`,
    /// which then only takes the HTTP API).
    pub ws_nodes: Vec<SocketAddr>,
    /// Other processes whose CPU time and memory count as the server's (the
    /// cluster's other nodes, its Redis).
    pub extra_pids: Vec<u32>,
}

/// A failed run.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// Socket error.
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    /// WebSocket error.
    #[error("WebSocket: {0}")]
    Ws(#[from] tokio_tungstenite::tungstenite::Error),
    /// The server answered something unexpected.
    #[error("protocol: {0}")]
    Protocol(String),
    /// Only loopback targets are allowed.
    #[error("refusing to load {0}: hush bench only targets loopback addresses")]
    NotLoopback(SocketAddr),
}

impl Target {
    /// A server at `addr` (one node).
    pub fn new(addr: SocketAddr, app_id: &str, key: &str, secret: &str, pid: Option<u32>) -> Self {
        Self {
            addr,
            app_id: app_id.to_owned(),
            key: key.to_owned(),
            secret: secret.to_owned(),
            pid,
            ws_nodes: Vec::new(),
            extra_pids: Vec::new(),
        }
    }

    /// The target of the `i`th WebSocket client: the cluster's nodes in
    /// turn, or this one server.
    pub fn ws_target(&self, i: usize) -> Self {
        let mut t = self.clone();
        if !self.ws_nodes.is_empty() {
            t.addr = self.ws_nodes[i % self.ws_nodes.len()];
        }
        t
    }

    /// Every process measured as the server.
    pub fn pids(&self) -> Vec<u32> {
        self.pid
            .into_iter()
            .chain(self.extra_pids.iter().copied())
            .collect()
    }

    /// Checks the target is on loopback (127.0.0.0/8 or ::1).
    pub fn check(&self) -> Result<(), BenchError> {
        match std::iter::once(&self.addr)
            .chain(&self.ws_nodes)
            .find(|a| !a.ip().is_loopback())
        {
            None => Ok(()),
            Some(a) => Err(BenchError::NotLoopback(*a)),
        }
    }
}

/// Raises this process's open-files soft limit to its hard limit (best effort).
pub fn raise_nofile_limit() -> u64 {
    match rlimit::Resource::NOFILE.get() {
        Ok((soft, hard)) if soft < hard => {
            let _ = rlimit::Resource::NOFILE.set(hard, hard);
            hard
        }
        Ok((soft, _)) => soft,
        Err(_) => 0,
    }
}
