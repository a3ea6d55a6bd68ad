//! Helpers for integration tests: an in-process server on an ephemeral
//! loopback port, a raw WebSocket client and a signed HTTP API client.
#![allow(dead_code, missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::{SinkExt, StreamExt};
use hush_protocol::api::{QueryParams, signed_query};
use hush_protocol::auth;
use hush_protocol::{ChannelName, SocketId};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub const ID: &str = "3";
pub const KEY: &str = "278d425bdf160c739803";
pub const SECRET: &str = "7ad3773142a6692b25b8";
const WAIT: Duration = Duration::from_secs(5);

pub struct TestServer {
    pub addr: SocketAddr,
    running: hush_server::RunningServer,
}

pub fn app_toml(extra: &str) -> String {
    format!("[apps.main]\nid = '{ID}'\nkey = '{KEY}'\nsecret = '{SECRET}'\n{extra}\n")
}

/// Starts a server on an in-memory store (tests never write into the repo).
pub async fn start(toml: &str) -> TestServer {
    let mut config = hush_server::Config::from_toml(toml).expect("config");
    config.store.url = Some("sqlite::memory:".into());
    start_config(config).await
}

/// Starts a server with `config` (its store as given), on 127.0.0.1:0.
pub async fn start_config(mut config: hush_server::Config) -> TestServer {
    config.server.host = "127.0.0.1".into();
    config.server.port = 0;
    config.server.shutdown_timeout = 2;
    let running = hush_server::Server::bind(config)
        .await
        .expect("bind")
        .spawn();
    TestServer {
        addr: running.local_addr(),
        running,
    }
}

impl TestServer {
    pub async fn stop(self) {
        let _ = tokio::time::timeout(Duration::from_secs(5), self.running.stop()).await;
    }

    pub async fn connect(&self) -> Client {
        self.connect_path(&format!("/app/{KEY}?protocol=7&client=rust-test&version=0"))
            .await
    }

    pub async fn connect_path(&self, path: &str) -> Client {
        let url = format!("ws://{}{}", self.addr, path);
        let (ws, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("ws connect");
        Client {
            ws,
            socket_id: None,
        }
    }

    /// Connects and reads `connection_established`.
    pub async fn client(&self) -> Client {
        let mut c = self.connect().await;
        let est = c.expect("pusher:connection_established").await;
        let inner: Value = serde_json::from_str(est["data"].as_str().unwrap()).unwrap();
        c.socket_id = Some(inner["socket_id"].as_str().unwrap().to_owned());
        c
    }

    pub async fn api(
        &self,
        method: &str,
        path: &str,
        params: &[(&str, &str)],
        body: &str,
    ) -> (u16, Value) {
        let ts = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let q = signed_query(
            KEY,
            SECRET.as_bytes(),
            method,
            path,
            QueryParams::from_pairs(params.iter().copied()),
            body.as_bytes(),
            ts,
        );
        self.raw_http(method, &format!("{path}?{q}"), body).await
    }

    pub async fn trigger(&self, channel: &str, event: &str, data: &str) -> (u16, Value) {
        let body = json!({"name": event, "channels": [channel], "data": data}).to_string();
        self.api("POST", &format!("/apps/{ID}/events"), &[], &body)
            .await
    }

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

pub struct Client {
    pub ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    pub socket_id: Option<String>,
}

pub fn sign(socket: &str, channel: &str, data: Option<&str>) -> String {
    let s = SocketId::parse(socket).unwrap();
    let c = ChannelName::parse(channel).unwrap();
    auth::auth_value(KEY, &auth::sign_channel(SECRET.as_bytes(), &s, &c, data))
}

/// Signs an arbitrary string (to build forged auths).
pub fn sign_raw(s: &str) -> String {
    auth::auth_value(KEY, &auth::hmac_sha256(SECRET.as_bytes(), s.as_bytes()))
}

pub enum Next {
    Frame(Value),
    Closed(Option<u16>),
}

impl Client {
    pub fn sid(&self) -> &str {
        self.socket_id.as_deref().unwrap()
    }

    pub async fn send(&mut self, v: Value) {
        self.ws
            .send(Message::Text(v.to_string().into()))
            .await
            .unwrap();
    }

    pub async fn send_binary(&mut self, b: Vec<u8>) {
        self.ws.send(Message::Binary(b.into())).await.unwrap();
    }

    pub async fn send_text(&mut self, t: &str) {
        self.ws
            .send(Message::Text(t.to_owned().into()))
            .await
            .unwrap();
    }

    /// The next frame or the close, within `wait`.
    pub async fn next_within(&mut self, wait: Duration) -> Option<Next> {
        loop {
            let m = tokio::time::timeout(wait, self.ws.next()).await.ok()?;
            return Some(match m {
                Some(Ok(Message::Text(t))) => {
                    Next::Frame(serde_json::from_str(t.as_str()).expect("server sent JSON"))
                }
                Some(Ok(Message::Close(f))) => Next::Closed(f.map(|f| u16::from(f.code))),
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => Next::Closed(None),
            });
        }
    }

    /// Reads frames until one with this event name arrives.
    pub async fn expect(&mut self, event: &str) -> Value {
        loop {
            match self.next_within(WAIT).await {
                Some(Next::Frame(v)) if v["event"] == event => return v,
                Some(Next::Frame(_)) => continue,
                Some(Next::Closed(c)) => panic!("closed ({c:?}) while waiting for {event}"),
                None => panic!("timed out waiting for {event}"),
            }
        }
    }

    /// The next frame must be this event.
    pub async fn next_event(&mut self) -> Value {
        match self.next_within(WAIT).await {
            Some(Next::Frame(v)) => v,
            Some(Next::Closed(c)) => panic!("closed ({c:?})"),
            None => panic!("timed out"),
        }
    }

    /// Nothing arrives within `wait`.
    pub async fn expect_silence(&mut self, wait: Duration) {
        if let Some(Next::Frame(v)) = self.next_within(wait).await {
            panic!("unexpected frame {v}");
        }
    }

    /// Reads until the close frame; returns its code.
    pub async fn expect_close(&mut self) -> Option<u16> {
        loop {
            match self.next_within(WAIT).await {
                Some(Next::Frame(_)) => continue,
                Some(Next::Closed(c)) => return c,
                None => panic!("timed out waiting for close"),
            }
        }
    }

    pub async fn subscribe(
        &mut self,
        channel: &str,
        auth: Option<&str>,
        channel_data: Option<&str>,
    ) -> Value {
        let mut data = json!({"channel": channel, "auth": auth.unwrap_or("")});
        if let Some(cd) = channel_data {
            data["channel_data"] = json!(cd);
        }
        self.send(json!({"event": "pusher:subscribe", "data": data}))
            .await;
        self.next_event().await
    }

    pub async fn subscribe_ok(&mut self, channel: &str) -> Value {
        let sid = self.sid().to_owned();
        let auth = match ChannelName::parse(channel).unwrap().kind() {
            hush_protocol::ChannelKind::Public => None,
            _ => Some(sign(&sid, channel, None)),
        };
        let v = self.subscribe(channel, auth.as_deref(), None).await;
        assert_eq!(v["event"], "pusher_internal:subscription_succeeded", "{v}");
        v
    }

    pub async fn join_presence(&mut self, channel: &str, user_id: &str, info: Value) -> Value {
        let cd = json!({"user_id": user_id, "user_info": info}).to_string();
        let sid = self.sid().to_owned();
        let v = self
            .subscribe(channel, Some(&sign(&sid, channel, Some(&cd))), Some(&cd))
            .await;
        assert_eq!(v["event"], "pusher_internal:subscription_succeeded", "{v}");
        serde_json::from_str(v["data"].as_str().unwrap()).unwrap()
    }

    pub async fn signin(&mut self, user_data: &str) -> Value {
        let s = SocketId::parse(self.sid()).unwrap();
        let a = auth::auth_value(KEY, &auth::sign_user(SECRET.as_bytes(), &s, user_data));
        self.send(json!({"event":"pusher:signin","data":{"auth": a, "user_data": user_data}}))
            .await;
        self.next_event().await
    }
}
