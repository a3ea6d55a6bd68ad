//! The real server, in-process, on a loopback port.

use std::net::SocketAddr;
use std::time::Duration;

use hush_protocol::api::{QueryParams, signed_query};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::client::Client;
use crate::{ID, KEY, SECRET, WAIT, now_secs};

/// The test app (`ID`, `KEY`, `SECRET`) as TOML, with `extra` settings
/// appended to its table.
pub fn app_toml(extra: &str) -> String {
    format!("[apps.main]\nid = '{ID}'\nkey = '{KEY}'\nsecret = '{SECRET}'\n{extra}\n")
}

/// A running in-process server.
pub struct TestServer {
    /// Where it listens (127.0.0.1).
    pub addr: SocketAddr,
    running: hush_server::RunningServer,
}

impl TestServer {
    /// Starts `toml` on an ephemeral port; the store is in memory unless the
    /// configuration names one (tests never write into the repository).
    pub async fn start(toml: &str) -> Self {
        Self::start_on(0, toml).await
    }

    /// Like [`TestServer::start`] on a given port (0: any). Rebinding the
    /// port of a server that just stopped can briefly fail: retried for 5 s.
    pub async fn start_on(port: u16, toml: &str) -> Self {
        let mut config = hush_server::Config::from_toml(toml).expect("config");
        config
            .store
            .url
            .get_or_insert_with(|| "sqlite::memory:".into());
        Self::launch(config, port).await
    }

    /// Starts `config` (its store as given) on an ephemeral port.
    pub async fn start_config(config: hush_server::Config) -> Self {
        Self::launch(config, 0).await
    }

    /// Binds 127.0.0.1:`port`, with a short shutdown timeout.
    async fn launch(mut config: hush_server::Config, port: u16) -> Self {
        config.server.host = "127.0.0.1".into();
        config.server.port = port;
        config.server.shutdown_timeout = 1;
        let mut tries = 0;
        let server = loop {
            match hush_server::Server::bind(config.clone()).await {
                Ok(s) => break s,
                Err(_) if tries < 50 && port != 0 => {
                    tries += 1;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("bind: {e}"),
            }
        };
        let running = server.spawn();
        Self {
            addr: running.local_addr(),
            running,
        }
    }

    /// The server's shared state (the cluster node's crash hook, counts).
    pub fn state(&self) -> std::sync::Arc<hush_server::ServerState> {
        self.running.state()
    }

    /// Stops the server (bounded).
    pub async fn stop(self) {
        let _ = tokio::time::timeout(WAIT, self.running.stop()).await;
    }

    /// `ws://` and the address, for clients that take a base URL.
    pub fn ws_url(&self) -> String {
        format!("ws://{}", self.addr)
    }

    /// Opens a WebSocket to the test app (without reading anything).
    pub async fn connect(&self) -> Client {
        self.connect_path(&format!("/app/{KEY}?protocol=7&client=rust-test&version=0"))
            .await
    }

    /// Opens a WebSocket to `path`.
    pub async fn connect_path(&self, path: &str) -> Client {
        Client::connect(&format!("ws://{}{}", self.addr, path)).await
    }

    /// Connects to the test app and reads `connection_established`.
    pub async fn client(&self) -> Client {
        let mut c = self.connect().await;
        c.established().await;
        c
    }

    /// A client signed in as `user` (`{"id": user}`, signed by the test app).
    pub async fn signed_in(&self, user: &str) -> Client {
        let mut c = self.client().await;
        let ev = c.signin(&json!({ "id": user }).to_string()).await;
        assert_eq!(
            ev["event"],
            hush_protocol::msgs::names::SIGNIN_SUCCESS,
            "{ev}"
        );
        c
    }

    /// A request to the HTTP API signed with the test app's credentials:
    /// status and JSON body (`Null` if not JSON).
    pub async fn api(
        &self,
        method: &str,
        path: &str,
        params: &[(&str, &str)],
        body: &str,
    ) -> (u16, Value) {
        let q = signed_query(
            KEY,
            SECRET.as_bytes(),
            method,
            path,
            QueryParams::from_pairs(params.iter().copied()),
            body.as_bytes(),
            now_secs(),
        );
        self.raw_http(method, &format!("{path}?{q}"), body).await
    }

    /// Publishes `event` with `data` to `channel` over the HTTP API.
    pub async fn trigger(&self, channel: &str, event: &str, data: &str) -> (u16, Value) {
        let body = json!({"name": event, "channels": [channel], "data": data}).to_string();
        self.api("POST", &format!("/apps/{ID}/events"), &[], &body)
            .await
    }

    /// One HTTP/1.1 request as given (unsigned): status and JSON body.
    pub async fn raw_http(&self, method: &str, path_and_query: &str, body: &str) -> (u16, Value) {
        let mut s = TcpStream::connect(self.addr).await.unwrap();
        let req = format!(
            "{method} {path_and_query} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.addr,
            body.len()
        );
        s.write_all(req.as_bytes()).await.unwrap();
        let mut buf = Vec::new();
        tokio::time::timeout(WAIT, s.read_to_end(&mut buf))
            .await
            .expect("http timeout")
            .unwrap();
        let text = String::from_utf8_lossy(&buf).into_owned();
        let status: u16 = text.split_whitespace().nth(1).unwrap().parse().unwrap();
        let body = text.split_once("\r\n\r\n").map(|x| x.1).unwrap_or("");
        (status, serde_json::from_str(body).unwrap_or(Value::Null))
    }
}
