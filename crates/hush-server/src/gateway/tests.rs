//! The connection task on tokio's paused clock: keepalive, the sign-in
//! deadline and the client-event rate window, over an in-memory pipe (no
//! socket, no real sleep; timers fire when the test has nothing else to do).

use std::net::IpAddr;

use futures_util::SinkExt;
use hush_testkit::{KEY, app_toml, sign};
use serde_json::{Value, json};
use tokio::io::DuplexStream;
use tokio::time::{Instant, timeout};
use tokio_tungstenite::tungstenite::protocol::Role;

use super::*;
use crate::config::Config;
use crate::directory::Directory;

/// A node of `toml` (store in memory), its test app, then the clock paused.
async fn node(toml: &str) -> (Arc<ServerState>, Arc<App>) {
    let config = Config::from_toml(toml).expect("config");
    let store = hush_store::Store::open("sqlite::memory:", &Default::default())
        .await
        .expect("store");
    let directory = Arc::new(Directory::open(store.clone()).await.expect("directory"));
    let (_webhooks, sink) = crate::webhooks::Webhooks::new(&config, store.clone()).expect("hooks");
    let state = ServerState::new(&config, store, directory, &sink);
    let app = state.app_by_key(KEY).expect("the test app");
    // Opened on real time (the store works on its own threads), then frozen.
    tokio::time::pause();
    (state, app)
}

/// The client end of one connection running on its own task.
struct Peer {
    ws: WebSocketStream<DuplexStream>,
    socket_id: String,
}

impl Peer {
    async fn connect(state: &Arc<ServerState>, app: &Arc<App>) -> Self {
        let (server, client) = tokio::io::duplex(64 * 1024);
        let socket = Socket::open(server, None, state).await;
        tokio::spawn(run(
            socket,
            state.clone(),
            app.clone(),
            IpAddr::from([127, 0, 0, 1]),
            "test",
            "0",
        ));
        let ws = WebSocketStream::from_raw_socket(client, Role::Client, None).await;
        let mut peer = Self {
            ws,
            socket_id: String::new(),
        };
        let est = peer.next().await.expect("connection_established");
        assert_eq!(est["event"], "pusher:connection_established");
        let inner: Value = serde_json::from_str(est["data"].as_str().unwrap()).unwrap();
        peer.socket_id = inner["socket_id"].as_str().unwrap().to_owned();
        peer
    }

    async fn send(&mut self, v: Value) {
        self.ws.send(Message::text(v.to_string())).await.unwrap();
    }

    /// The next text frame as JSON; `Err(code)` once closed.
    async fn next(&mut self) -> Result<Value, Option<u16>> {
        loop {
            match self.ws.next().await {
                Some(Ok(Message::Text(t))) => return Ok(serde_json::from_str(&t).unwrap()),
                Some(Ok(Message::Close(c))) => return Err(c.map(|c| u16::from(c.code))),
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return Err(None),
            }
        }
    }

    /// True if nothing arrives for `wait` (of paused time).
    async fn silent_for(&mut self, wait: Duration) -> bool {
        timeout(wait, self.next()).await.is_err()
    }

    async fn subscribe(&mut self, channel: &str) {
        let auth = sign(&self.socket_id, channel, None);
        self.send(json!({"event":"pusher:subscribe","data":{"channel":channel,"auth":auth}}))
            .await;
        let ok = self.next().await.unwrap();
        assert_eq!(
            ok["event"], "pusher_internal:subscription_succeeded",
            "{ok}"
        );
    }
}

const MS: Duration = Duration::from_millis(1);
const S: Duration = Duration::from_secs(1);

/// `elapsed` is `expected`, up to the timer's 1 ms granularity (tokio
/// rounds deadlines up to the next millisecond).
#[track_caller]
fn at(elapsed: Duration, expected: Duration) {
    assert!(
        elapsed >= expected && elapsed <= expected + MS,
        "{elapsed:?}, expected {expected:?}"
    );
}

#[tokio::test]
async fn keepalive_pings_after_the_idle_time_then_closes_without_pong() {
    let (state, app) = node(&format!(
        "[server]\nactivity_timeout = 120\nping_grace = 5\npong_timeout = 30\n{}",
        app_toml("")
    ))
    .await;
    let mut c = Peer::connect(&state, &app).await;
    let t0 = Instant::now();
    let idle = 125 * S;
    assert!(
        c.silent_for(idle - MS).await,
        "nothing before the idle time"
    );
    assert_eq!(
        c.next().await,
        Ok(json!({"event":"pusher:ping","data":"{}"}))
    );
    at(t0.elapsed(), idle);
    // Any frame proves the client alive: the next ping is `idle` later.
    c.send(json!({"event":"pusher:pong","data":{}})).await;
    let t1 = Instant::now();
    assert!(c.silent_for(idle - MS).await, "a pong resets the idle time");
    assert_eq!(c.next().await.unwrap()["event"], "pusher:ping");
    at(t1.elapsed(), idle);
    // No answer this time: 4201 once the pong timeout has passed.
    let t2 = Instant::now();
    assert!(c.silent_for(30 * S - MS).await);
    let err = c.next().await.unwrap();
    assert_eq!(err["event"], "pusher:error");
    assert_eq!(err["data"]["code"], 4201);
    assert_eq!(c.next().await, Err(Some(4201)));
    at(t2.elapsed(), 30 * S);
    assert_eq!(state.connection_count(), 0);
}

#[tokio::test]
async fn connections_that_do_not_sign_in_in_time_are_closed_4009() {
    let (state, app) = node(&app_toml(
        "user_authentication = true\nuser_authentication_timeout = 30",
    ))
    .await;
    let mut idle = Peer::connect(&state, &app).await;
    let mut member = Peer::connect(&state, &app).await;
    // Joining a private channel authorizes a connection too.
    member.subscribe("private-room").await;
    let t0 = Instant::now();
    assert!(
        idle.silent_for(30 * S - MS).await,
        "nothing before the deadline"
    );
    let err = idle.next().await.unwrap();
    assert_eq!(err["data"]["code"], 4009);
    assert_eq!(err["data"]["message"], SIGNIN_TIMEOUT);
    assert_eq!(idle.next().await, Err(Some(4009)));
    at(t0.elapsed(), 30 * S);
    // The authorized one stays, long after the deadline.
    assert!(member.silent_for(60 * S).await);
    assert_eq!(state.connection_count(), 1);
}

#[tokio::test]
async fn client_events_over_the_rate_get_4301_until_the_window_refills() {
    let (state, app) = node(&app_toml(
        "client_events = true\nmax_client_events_per_second = 3",
    ))
    .await;
    let mut sender = Peer::connect(&state, &app).await;
    let mut receiver = Peer::connect(&state, &app).await;
    sender.subscribe("private-chat").await;
    receiver.subscribe("private-chat").await;
    let event = |i: u32| json!({"event":"client-n","channel":"private-chat","data":{"i":i}});
    // A burst of 4 at one instant: the bucket holds 3.
    for i in 1..=4 {
        sender.send(event(i)).await;
    }
    let err = sender.next().await.unwrap();
    assert_eq!(err["event"], "pusher:error");
    assert_eq!(err["data"]["code"], 4301);
    for i in 1..=3 {
        assert_eq!(receiver.next().await.unwrap()["data"]["i"], i);
    }
    // A third of a second later one token is back, and only one.
    tokio::time::advance(S / 3 + MS).await;
    sender.send(event(5)).await;
    sender.send(event(6)).await;
    assert_eq!(sender.next().await.unwrap()["data"]["code"], 4301);
    assert_eq!(receiver.next().await.unwrap()["data"]["i"], 5);
    // After a full second the whole burst is allowed again.
    tokio::time::advance(S).await;
    for i in 7..=9 {
        sender.send(event(i)).await;
    }
    for i in 7..=9 {
        assert_eq!(receiver.next().await.unwrap()["data"]["i"], i);
    }
    assert!(
        sender.silent_for(S).await,
        "no error for a burst within the rate"
    );
    // The rejected ones never arrived.
    assert!(receiver.silent_for(S).await);
}
