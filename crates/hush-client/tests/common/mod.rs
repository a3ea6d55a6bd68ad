//! Test helpers: an in-process hush server on loopback, a hush-sdk backend
//! and hush-clients authorized by it.
#![allow(dead_code, missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use hush_client::{Channel, Client, Event, EventStream, FnAuthorizer, event};
use hush_sdk::{MasterKey, PresenceData, UserData};

pub use hush_testkit::{ID, KEY, MASTER_KEY as MASTER, SECRET};
/// Generous: the machine is shared.
pub const WAIT: Duration = Duration::from_secs(15);

/// The in-process server (`hush-testkit`).
pub type Srv = hush_testkit::TestServer;

/// Starts the test app (client events on, `extra` appended to its
/// configuration) on `port` (0: any); the store is in memory unless `extra`
/// names one.
pub async fn start_on(port: u16, extra: &str) -> Srv {
    let toml = hush_testkit::app_toml(&format!("client_events = true\n{extra}"));
    Srv::start_on(port, &toml).await
}

pub async fn start() -> Srv {
    start_on(0, "").await
}

/// The app's backend for a test server.
pub trait SrvExt {
    fn sdk(&self) -> hush_sdk::Client;
}

impl SrvExt for Srv {
    fn sdk(&self) -> hush_sdk::Client {
        let mut c = hush_sdk::Config::new(ID, KEY, SECRET)
            .with_master_key(MasterKey::from_base64(MASTER).unwrap());
        c.set_base_url(&format!("http://{}", self.addr)).unwrap();
        hush_sdk::Client::new(c).unwrap()
    }
}

/// An authorizer backed by hush-sdk, as the app's backend would answer:
/// presence channels as `user`, sign-in as `user`. Counts channel auths.
pub fn authorizer(sdk: hush_sdk::Client, user: &str, calls: Arc<AtomicUsize>) -> FnAuthorizer {
    let user_c = user.to_owned();
    let sdk_u = sdk.clone();
    let user_u = user.to_owned();
    FnAuthorizer::new(move |sid, channel| {
        calls.fetch_add(1, Ordering::SeqCst);
        let presence = channel.as_str().starts_with("presence-").then(|| {
            PresenceData::new(user_c.clone())
                .with_info(&serde_json::json!({"name": user_c}))
                .unwrap()
        });
        let r = sdk
            .authorize_channel(sid.as_str(), channel.as_str(), presence.as_ref())
            .map(|a| a.to_json());
        async move { r }
    })
    .with_user(move |sid| {
        let r = sdk_u
            .authenticate_user(sid.as_str(), &UserData::new(user_u.clone()))
            .map(|a| a.to_json());
        async move { r }
    })
}

pub fn client_with(srv: &Srv, authz: FnAuthorizer) -> Client {
    Client::builder(KEY)
        .url(&srv.ws_url())
        .authorizer(authz)
        .backoff(Duration::from_millis(100), Duration::from_millis(1000))
        .build()
        .unwrap()
}

pub fn client(srv: &Srv, user: &str) -> Client {
    client_with(srv, authorizer(srv.sdk(), user, Arc::default()))
}

/// The next event named `name` on `s` (others are skipped).
pub async fn next_named(s: &mut EventStream, name: &str) -> Event {
    tokio::time::timeout(WAIT, async {
        loop {
            let e = s.recv().await.expect("stream ended");
            if e.event == name {
                return e;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("timed out waiting for {name}"))
}

/// The next event of the channel named `name`.
pub async fn chan_next(c: &mut Channel, name: &str) -> Event {
    next_named(c.events(), name).await
}

/// Subscribes and waits for the server's confirmation.
pub async fn subscribed(client: &Client, name: &str) -> Channel {
    let mut c = client.subscribe(name).await.unwrap();
    let e = tokio::time::timeout(WAIT, async {
        loop {
            let e = c.recv().await.expect("stream ended");
            if e.event == event::SUBSCRIPTION_SUCCEEDED || e.event == event::SUBSCRIPTION_ERROR {
                return e;
            }
        }
    })
    .await
    .expect("subscription timed out");
    assert_eq!(e.event, event::SUBSCRIPTION_SUCCEEDED, "{e:?}");
    c
}

/// Nothing named `name` arrives within `d`.
pub async fn assert_no(s: &mut EventStream, name: &str, d: Duration) {
    let r = tokio::time::timeout(d, async {
        loop {
            match s.recv().await {
                Some(e) if e.event == name => return e,
                Some(_) => {}
                None => std::future::pending::<()>().await,
            }
        }
    })
    .await;
    if let Ok(e) = r {
        panic!("unexpected {e:?}");
    }
}

/// Publishes raw `data` (an envelope) to an encrypted channel: signed by
/// hand, because hush-sdk refuses encrypted channels without a master key
/// (and would seal again with one).
pub async fn publish_raw(srv: &Srv, channel: &str, event: &str, data: &str) {
    let body = serde_json::json!({"name": event, "channels": [channel], "data": data});
    let (status, reply) = srv
        .api(
            "POST",
            &format!("/apps/{ID}/events"),
            &[],
            &body.to_string(),
        )
        .await;
    assert_eq!(status, 200, "{reply}");
}

/// A hush-sdk backend using key epoch `epoch`.
pub fn sdk_at_epoch(addr: SocketAddr, epoch: u64) -> hush_sdk::Client {
    let mut c = hush_sdk::Config::new(ID, KEY, SECRET)
        .with_master_key(MasterKey::from_base64(MASTER).unwrap())
        .with_key_epochs(hush_sdk::EpochPolicy::Fixed(epoch));
    c.set_base_url(&format!("http://{addr}")).unwrap();
    hush_sdk::Client::new(c).unwrap()
}

/// An authorizer handing out the key of the epoch currently in `epoch`.
pub fn epoch_authorizer(
    addr: SocketAddr,
    epoch: Arc<std::sync::atomic::AtomicU64>,
    calls: Arc<AtomicUsize>,
) -> FnAuthorizer {
    FnAuthorizer::new(move |sid, channel| {
        calls.fetch_add(1, Ordering::SeqCst);
        let sdk = sdk_at_epoch(addr, epoch.load(Ordering::SeqCst));
        let r = sdk
            .authorize_channel(sid.as_str(), channel.as_str(), None)
            .map(|a| a.to_json());
        async move { r }
    })
}

/// A malicious server in front of `srv`: a WebSocket proxy that relays what
/// the client sends as it is and hands every frame the server sends to an
/// editor, which returns what to pass on instead (nothing, the frame, or
/// several). `new_editor` makes one editor per connection (it may keep
/// state, e.g. a frame it holds back). Returns the proxy's `ws://` URL.
#[allow(clippy::result_large_err)] // tungstenite's handshake callback type
pub async fn editing_ws_proxy<F, E>(srv: &Srv, new_editor: F) -> String
where
    F: Fn() -> E + Send + Sync + 'static,
    E: FnMut(WsMessage) -> Vec<WsMessage> + Send + 'static,
{
    use futures_util::{SinkExt, StreamExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}", listener.local_addr().unwrap());
    let upstream = srv.ws_url();
    let new_editor = Arc::new(new_editor);
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let upstream = upstream.clone();
            let mut edit = new_editor();
            tokio::spawn(async move {
                let path = Arc::new(std::sync::Mutex::new(String::new()));
                let p = path.clone();
                let down = tokio_tungstenite::accept_hdr_async(
                    tcp,
                    move |req: &tokio_tungstenite::tungstenite::handshake::server::Request,
                          resp| {
                        *p.lock().unwrap() = req.uri().to_string();
                        Ok(resp)
                    },
                )
                .await
                .unwrap();
                let target = format!("{upstream}{}", path.lock().unwrap());
                let (up, _) = tokio_tungstenite::connect_async(target).await.unwrap();
                let (mut up_tx, mut up_rx) = up.split();
                let (mut down_tx, mut down_rx) = down.split();
                tokio::spawn(async move {
                    while let Some(Ok(m)) = down_rx.next().await {
                        if up_tx.send(m).await.is_err() {
                            break;
                        }
                    }
                });
                while let Some(Ok(m)) = up_rx.next().await {
                    for m in edit(m) {
                        if down_tx.send(m).await.is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    url
}

/// A WebSocket message (the proxy's unit).
pub use tokio_tungstenite::tungstenite::Message as WsMessage;
