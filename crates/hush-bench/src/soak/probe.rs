//! What the soak reads from the server under test: memory, CPU and open
//! descriptors from `/proc/<pid>`, connection and task gauges from its
//! Prometheus `/metrics`.

use std::net::SocketAddr;
use std::time::Duration;

use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::procstat;

/// Gauge of open WebSocket connections on the node.
pub const CONNECTIONS_GAUGE: &str = "hush_node_connections";
/// Gauge of live tokio tasks in the server's runtime.
pub const TASKS_GAUGE: &str = "hush_runtime_alive_tasks";
/// Largest `/metrics` answer read.
const MAX_METRICS_BYTES: u64 = 4 << 20;

/// The server at one instant; `None` where it could not be read.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq)]
pub struct ServerSample {
    /// Resident memory, bytes.
    pub rss_bytes: Option<u64>,
    /// CPU seconds used since it started.
    pub cpu_s: Option<f64>,
    /// Open file descriptors.
    pub fds: Option<u64>,
    /// Open WebSocket connections (its own gauge).
    pub connections: Option<u64>,
    /// Live runtime tasks (its own gauge).
    pub tasks: Option<u64>,
}

/// Counts the entries of `/proc/<pid>/fd`.
pub fn fd_count(pid: u32) -> Option<u64> {
    let dir = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?;
    Some(dir.count() as u64)
}

/// Reads an unlabelled gauge (or the sum of a labelled one) from a
/// Prometheus text exposition.
pub fn gauge(text: &str, name: &str) -> Option<u64> {
    let mut found = None;
    for line in text.lines() {
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        let value = if let Some(r) = rest.strip_prefix(' ') {
            r
        } else if rest.starts_with('{') {
            match rest.rsplit_once("} ") {
                Some((_, v)) => v,
                None => continue,
            }
        } else {
            continue;
        };
        let v: f64 = value.split_whitespace().next()?.parse().ok()?;
        *found.get_or_insert(0) += v as u64;
    }
    found
}

/// Fetches `/metrics` (plain HTTP/1.0, one connection, closed by the
/// server when the answer ends).
pub async fn scrape(addr: SocketAddr) -> Option<String> {
    let fetch = async {
        let mut s = TcpStream::connect(addr).await.ok()?;
        s.write_all(
            format!("GET /metrics HTTP/1.0\r\nHost: {addr}\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await
        .ok()?;
        let mut body = String::new();
        s.take(MAX_METRICS_BYTES)
            .read_to_string(&mut body)
            .await
            .ok()?;
        let (head, text) = body.split_once("\r\n\r\n")?;
        head.starts_with("HTTP/1.")
            .then_some(())
            .filter(|()| head.split_whitespace().nth(1) == Some("200"))?;
        Some(text.to_owned())
    };
    tokio::time::timeout(Duration::from_secs(10), fetch)
        .await
        .ok()
        .flatten()
}

/// Samples the server (`pid`, `metrics` as far as given).
pub async fn sample(pid: Option<u32>, metrics: Option<SocketAddr>) -> ServerSample {
    // Descriptors before the scrape, whose own connection is one.
    let fds = pid.and_then(fd_count);
    let proc_ = pid.and_then(|p| procstat::sample(Some(p)));
    let text = match metrics {
        Some(a) => scrape(a).await,
        None => None,
    };
    ServerSample {
        rss_bytes: proc_.map(|s| s.rss),
        cpu_s: proc_.map(|s| s.cpu.as_secs_f64()),
        fds,
        connections: text.as_deref().and_then(|t| gauge(t, CONNECTIONS_GAUGE)),
        tasks: text.as_deref().and_then(|t| gauge(t, TASKS_GAUGE)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_gauges() {
        let text = "# HELP hush_node_connections x\n# TYPE hush_node_connections gauge\nhush_node_connections 19000\nhush_node_connections_total 5\nhush_connections{app=\"a\"} 3\nhush_connections{app=\"b\"} 4\n";
        assert_eq!(gauge(text, "hush_node_connections"), Some(19000));
        assert_eq!(gauge(text, "hush_connections"), Some(7));
        assert_eq!(gauge(text, "hush_runtime_alive_tasks"), None);
    }

    #[test]
    fn counts_own_descriptors() {
        // Other tests open files in parallel: only the presence of a count
        // is certain.
        assert!(fd_count(std::process::id()).is_some_and(|n| n >= 3));
        assert_eq!(fd_count(u32::MAX), None);
    }
}
