//! A raw Pusher-protocol WebSocket client with bounded waits.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use hush_protocol::msgs::{
    ClientMessage, RawJson, RequestFrame, ServerMessage, SubscribeData, names,
};
use hush_protocol::{ChannelKind, ChannelName, SocketId, auth};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::{KEY, SECRET, WAIT, sign};

/// The WebSocket stream of a [`Client`].
pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// One connection, reading every text frame as JSON.
pub struct Client {
    /// The socket.
    pub ws: Ws,
    /// Its socket id, once `connection_established` was read.
    pub socket_id: Option<String>,
}

/// What arrived.
pub enum Next {
    /// A text frame.
    Frame(Value),
    /// The close frame (with its code) or the end of the stream.
    Closed(Option<u16>),
}

impl Client {
    /// Opens `url` (without reading anything).
    pub async fn connect(url: &str) -> Self {
        let (ws, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("ws connect");
        Self {
            ws,
            socket_id: None,
        }
    }

    /// Reads `connection_established` and keeps the socket id.
    pub async fn established(&mut self) {
        let est = self.expect(names::CONNECTION_ESTABLISHED).await;
        match ServerMessage::decode(&est.to_string()) {
            Ok(ServerMessage::ConnectionEstablished { socket_id, .. }) => {
                self.socket_id = Some(socket_id);
            }
            other => panic!("{est}: {other:?}"),
        }
    }

    /// The socket id (after [`Client::established`]).
    pub fn sid(&self) -> &str {
        self.socket_id.as_deref().unwrap()
    }

    /// Sends `v` as a text frame.
    pub async fn send(&mut self, v: Value) {
        self.send_text(&v.to_string()).await;
    }

    /// Sends a binary frame.
    pub async fn send_binary(&mut self, b: Vec<u8>) {
        self.ws.send(Message::Binary(b.into())).await.unwrap();
    }

    /// Sends a text frame as given.
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
        self.expect_any(&[event]).await
    }

    /// Reads frames until one named like one of `events` arrives.
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

    /// The next text frame exactly as received (for byte comparisons).
    pub async fn next_text(&mut self) -> String {
        loop {
            match tokio::time::timeout(WAIT, self.ws.next()).await {
                Ok(Some(Ok(Message::Text(t)))) => return t.as_str().to_owned(),
                Ok(Some(Ok(Message::Close(f)))) => panic!("closed ({f:?})"),
                Ok(Some(Ok(_))) => continue,
                Ok(Some(Err(e))) => panic!("{e}"),
                Ok(None) => panic!("connection ended"),
                Err(_) => panic!("timed out"),
            }
        }
    }

    /// The next frame, whatever it is.
    pub async fn next_event(&mut self) -> Value {
        match self.next_within(WAIT).await {
            Some(Next::Frame(v)) => v,
            Some(Next::Closed(c)) => panic!("closed ({c:?})"),
            None => panic!("timed out"),
        }
    }

    /// Nothing arrives within `wait`, and the connection stays open.
    pub async fn expect_silence(&mut self, wait: Duration) {
        match self.next_within(wait).await {
            None => {}
            Some(Next::Frame(v)) => panic!("unexpected frame {v}"),
            Some(Next::Closed(c)) => panic!("closed ({c:?}) instead of staying silent"),
        }
    }

    /// No frame named `event` arrives within `wait` (others may), and the
    /// connection stays open.
    pub async fn expect_no(&mut self, event: &str, wait: Duration) {
        loop {
            match self.next_within(wait).await {
                None => return,
                Some(Next::Frame(v)) => assert_ne!(v["event"], event, "unexpected {v}"),
                Some(Next::Closed(c)) => panic!("closed ({c:?}) while waiting out {event}"),
            }
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

    /// Sends `pusher:subscribe` as given and returns the next frame.
    pub async fn subscribe(
        &mut self,
        channel: &str,
        auth: Option<&str>,
        channel_data: Option<&str>,
    ) -> Value {
        let m = ClientMessage::Subscribe(SubscribeData {
            channel: channel.to_owned(),
            auth: Some(auth.unwrap_or("").to_owned()),
            channel_data: channel_data.map(str::to_owned),
        });
        self.send_text(&m.encode()).await;
        self.next_event().await
    }

    /// Subscribes (signing private channels) and asserts success.
    pub async fn subscribe_ok(&mut self, channel: &str) -> Value {
        let sid = self.sid().to_owned();
        let auth = match ChannelName::parse(channel).unwrap().kind() {
            ChannelKind::Public => None,
            _ => Some(sign(&sid, channel, None)),
        };
        let v = self.subscribe(channel, auth.as_deref(), None).await;
        assert_eq!(v["event"], names::SUBSCRIPTION_SUCCEEDED, "{v}");
        v
    }

    /// Joins a presence channel as `user_id`; returns the `presence` data.
    pub async fn join_presence(&mut self, channel: &str, user_id: &str, info: Value) -> Value {
        let cd = json!({"user_id": user_id, "user_info": info}).to_string();
        let sid = self.sid().to_owned();
        let v = self
            .subscribe(channel, Some(&sign(&sid, channel, Some(&cd))), Some(&cd))
            .await;
        assert_eq!(v["event"], names::SUBSCRIPTION_SUCCEEDED, "{v}");
        serde_json::from_str(v["data"].as_str().unwrap()).unwrap()
    }

    /// Signs in with `user_data` (signed by the test app); returns the reply.
    pub async fn signin(&mut self, user_data: &str) -> Value {
        let s = SocketId::parse(self.sid()).unwrap();
        let a = auth::auth_value(KEY, &auth::sign_user(SECRET.as_bytes(), &s, user_data));
        let m = ClientMessage::Signin {
            auth: a,
            user_data: user_data.to_owned(),
        };
        self.send_text(&m.encode()).await;
        self.next_event().await
    }

    /// Sends a `hush:request` and returns its `hush:response` (checking
    /// that it answers `id`).
    pub async fn request(&mut self, id: &str, method: &str, params: Value) -> Value {
        let m = ClientMessage::HushRequest(RequestFrame {
            id: id.to_owned(),
            method: method.to_owned(),
            params: Some(RawJson::from_string(params.to_string()).unwrap()),
        });
        self.send_text(&m.encode()).await;
        let m = self.expect(names::HUSH_RESPONSE).await;
        let inner: Value = serde_json::from_str(m["data"].as_str().unwrap()).unwrap();
        assert_eq!(inner["id"], id, "{inner}");
        inner
    }

    /// A `hush:request` that must succeed: its `result`.
    pub async fn request_ok(&mut self, method: &str, params: Value) -> Value {
        let r = self.request("r", method, params).await;
        assert!(r.get("error").is_none(), "{method}: {r}");
        r["result"].clone()
    }

    /// A `hush:request` that must fail: its error code.
    pub async fn request_err(&mut self, method: &str, params: Value) -> String {
        let r = self.request("e", method, params).await;
        r["error"]["code"]
            .as_str()
            .unwrap_or_else(|| panic!("{r}"))
            .to_owned()
    }
}
