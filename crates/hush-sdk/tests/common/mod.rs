//! An in-process hush server on an ephemeral loopback port, and a raw
//! WebSocket subscriber (the same idea as hush-server's own test helpers).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use hush_sdk::{Client, Config};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub const ID: &str = "3";
pub const KEY: &str = "278d425bdf160c739803";
pub const SECRET: &str = "7ad3773142a6692b25b8";
pub const MASTER_KEY: &str = "dGhpcyBpcyAzMiBieXRlcyBsb25nLCBpdCByZWFsbHk=";
const WAIT: Duration = Duration::from_secs(5);

pub struct TestServer {
    pub addr: SocketAddr,
    running: hush_server::RunningServer,
}

pub async fn start() -> TestServer {
    let toml = format!(
        "[apps.main]\nid = '{ID}'\nkey = '{KEY}'\nsecret = '{SECRET}'\nclient_events = true\n"
    );
    let mut config = hush_server::Config::from_toml(&toml).expect("config");
    config.server.host = "127.0.0.1".into();
    config.server.port = 0;
    config.server.shutdown_timeout = 1;
    config.store.url = Some("sqlite::memory:".into());
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
        let _ = tokio::time::timeout(WAIT, self.running.stop()).await;
    }

    pub fn config(&self) -> Config {
        let mut c = Config::new(ID, KEY, SECRET)
            .with_master_key(hush_sdk::MasterKey::from_base64(MASTER_KEY).unwrap());
        c.host = self.addr.ip().to_string();
        c.port = self.addr.port();
        c.timeout = WAIT;
        c
    }

    pub fn client(&self) -> Client {
        Client::new(self.config()).unwrap()
    }

    /// Connects and reads `connection_established`.
    pub async fn ws(&self) -> Ws {
        let url = format!(
            "ws://{}/app/{KEY}?protocol=7&client=hush-sdk-test&version=0",
            self.addr
        );
        let (ws, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("ws connect");
        let mut c = Ws {
            ws,
            socket_id: String::new(),
        };
        let est = c.expect("pusher:connection_established").await;
        let inner: Value = serde_json::from_str(est["data"].as_str().unwrap()).unwrap();
        c.socket_id = inner["socket_id"].as_str().unwrap().to_owned();
        c
    }
}

pub struct Ws {
    pub ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    pub socket_id: String,
}

pub enum Next {
    Frame(Value),
    Closed(Option<u16>),
}

impl Ws {
    pub async fn send(&mut self, v: Value) {
        self.ws
            .send(Message::Text(v.to_string().into()))
            .await
            .unwrap();
    }

    pub async fn next_within(&mut self, wait: Duration) -> Option<Next> {
        loop {
            let m = tokio::time::timeout(wait, self.ws.next()).await.ok()?;
            return Some(match m {
                Some(Ok(Message::Text(t))) => {
                    Next::Frame(serde_json::from_str(t.as_str()).unwrap())
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

    /// No frame named `event` within `wait`.
    pub async fn expect_no(&mut self, event: &str, wait: Duration) {
        while let Some(Next::Frame(v)) = self.next_within(wait).await {
            assert_ne!(v["event"], event, "unexpected {v}");
        }
    }

    pub async fn expect_close(&mut self) -> Option<u16> {
        loop {
            match self.next_within(WAIT).await {
                Some(Next::Frame(_)) => continue,
                Some(Next::Closed(c)) => return c,
                None => panic!("timed out waiting for close"),
            }
        }
    }

    /// Subscribes with an auth response body produced by the SDK (or none
    /// for public channels) and waits for success.
    pub async fn subscribe(&mut self, channel: &str, auth: Option<&hush_sdk::ChannelAuth>) {
        let mut data = json!({"channel": channel});
        if let Some(a) = auth {
            data["auth"] = json!(a.auth);
            if let Some(cd) = &a.channel_data {
                data["channel_data"] = json!(cd);
            }
        }
        self.send(json!({"event": "pusher:subscribe", "data": data}))
            .await;
        let v = self
            .expect_any(&[
                "pusher_internal:subscription_succeeded",
                "pusher:subscription_error",
            ])
            .await;
        assert_eq!(v["event"], "pusher_internal:subscription_succeeded", "{v}");
    }

    pub async fn expect_any(&mut self, events: &[&str]) -> Value {
        loop {
            match self.next_within(WAIT).await {
                Some(Next::Frame(v)) if events.iter().any(|e| v["event"] == *e) => return v,
                Some(Next::Frame(_)) => continue,
                Some(Next::Closed(c)) => panic!("closed ({c:?}) while waiting for {events:?}"),
                None => panic!("timed out waiting for {events:?}"),
            }
        }
    }

    pub async fn signin(&mut self, auth: &hush_sdk::UserAuth) {
        self.send(json!({"event":"pusher:signin","data":{"auth": auth.auth, "user_data": auth.user_data}}))
            .await;
        self.expect("pusher:signin_success").await;
    }
}
