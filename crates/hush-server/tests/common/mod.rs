//! Helpers for integration tests: an in-process server on an ephemeral
//! loopback port, a raw WebSocket client and a signed HTTP API client, from
//! the workspace's shared `hush-testkit`.
#![allow(dead_code, unused_imports)]

pub use hush_testkit::*;

/// Starts the server described by `toml` (store in memory).
pub async fn start(toml: &str) -> TestServer {
    TestServer::start(toml).await
}

/// Starts a server with `config` (its store as given).
pub async fn start_config(config: hush_server::Config) -> TestServer {
    TestServer::start_config(config).await
}
