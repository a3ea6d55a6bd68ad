//! An in-process hush server on an ephemeral loopback port, and a raw
//! WebSocket subscriber that takes the SDK's auth answers (built on the
//! workspace's shared `hush-testkit`).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::ops::{Deref, DerefMut};

use hush_sdk::{Client, Config};
use serde_json::json;

pub use hush_testkit::{ID, KEY, MASTER_KEY, SECRET, WAIT};

pub struct TestServer {
    pub addr: SocketAddr,
    inner: hush_testkit::TestServer,
}

pub async fn start() -> TestServer {
    let inner =
        hush_testkit::TestServer::start(&hush_testkit::app_toml("client_events = true")).await;
    TestServer {
        addr: inner.addr,
        inner,
    }
}

impl TestServer {
    pub async fn stop(self) {
        self.inner.stop().await;
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
        let c = self.inner.client().await;
        Ws {
            socket_id: c.sid().to_owned(),
            inner: c,
        }
    }
}

/// A raw subscriber; everything but the SDK-typed subscribe and sign-in
/// comes from [`hush_testkit::Client`].
pub struct Ws {
    pub socket_id: String,
    inner: hush_testkit::Client,
}

impl Deref for Ws {
    type Target = hush_testkit::Client;
    fn deref(&self) -> &Self::Target {
        &self.inner
    }
}

impl DerefMut for Ws {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.inner
    }
}

impl Ws {
    /// Subscribes with an auth response body produced by the SDK (or none
    /// for public channels) and waits for success.
    pub async fn subscribe(&mut self, channel: &str, auth: Option<&hush_sdk::ChannelAuth>) {
        let v = self
            .inner
            .subscribe(
                channel,
                auth.map(|a| a.auth.as_str()),
                auth.and_then(|a| a.channel_data.as_deref()),
            )
            .await;
        assert_eq!(v["event"], "pusher_internal:subscription_succeeded", "{v}");
    }

    pub async fn signin(&mut self, auth: &hush_sdk::UserAuth) {
        self.send(json!({"event":"pusher:signin","data":{"auth": auth.auth, "user_data": auth.user_data}}))
            .await;
        self.expect("pusher:signin_success").await;
    }
}
