//! Webhooks end to end: a real HTTP receiver on 127.0.0.1 gets signed,
//! Pusher-shaped requests; retries, dead letters and restarts lose nothing.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::common::*;

const WAIT: Duration = Duration::from_secs(15);

/// One request the receiver accepted.
#[derive(Debug)]
struct Hook {
    events: Vec<Value>,
    headers: HeaderMap,
}

#[derive(Clone)]
struct RecvState {
    /// Accepted requests, or why one was not what the Pusher SDKs accept
    /// (checked by the test task: a panic inside the handler would only
    /// drop hyper's connection).
    tx: mpsc::UnboundedSender<Result<Hook, String>>,
    /// Requests still to answer with 500.
    fail: Arc<AtomicUsize>,
    /// Requests still to leave hanging (never answered).
    hang: Arc<AtomicUsize>,
    /// Every request seen (failed ones included).
    seen: Arc<AtomicUsize>,
    /// Requests that carried events (probes carry none).
    with_events: Arc<AtomicUsize>,
    /// Answer 500 to every request that carries events (probes still 200).
    reject_events: Arc<AtomicBool>,
}

struct Receiver {
    url: String,
    rx: mpsc::UnboundedReceiver<Result<Hook, String>>,
    state: RecvState,
}

async fn handle(State(st): State<RecvState>, headers: HeaderMap, body: String) -> StatusCode {
    st.seen.fetch_add(1, Ordering::SeqCst);
    if st
        .hang
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
    {
        tokio::time::sleep(Duration::from_secs(3600)).await;
    }
    let carries_events = !body.contains(r#""events":[]"#);
    if carries_events {
        st.with_events.fetch_add(1, Ordering::SeqCst);
        if st.reject_events.load(Ordering::SeqCst) {
            return StatusCode::INTERNAL_SERVER_ERROR;
        }
    }
    if st
        .fail
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
    {
        return StatusCode::INTERNAL_SERVER_ERROR;
    }
    match pusher_checks(&headers, &body) {
        Ok(events) => {
            let _ = st.tx.send(Ok(Hook { events, headers }));
            StatusCode::OK
        }
        Err(why) => {
            let _ = st.tx.send(Err(why));
            StatusCode::BAD_REQUEST
        }
    }
}

/// Exactly what the Pusher SDKs check; the request's events if it passes.
fn pusher_checks(headers: &HeaderMap, body: &str) -> Result<Vec<Value>, String> {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| format!("missing header {name}"))
    };
    if header("content-type")? != "application/json" {
        return Err("content-type is not application/json".into());
    }
    if header("x-pusher-key")? != KEY {
        return Err("wrong X-Pusher-Key".into());
    }
    let sig = header("x-pusher-signature")?;
    if !hush_protocol::webhook::verify_body(SECRET.as_bytes(), body.as_bytes(), sig) {
        return Err("signature does not verify".into());
    }
    let v: Value = serde_json::from_str(body).map_err(|e| format!("body: {e}"))?;
    let shape_ok = v.as_object().is_some_and(|o| o.len() == 2)
        && v["time_ms"].as_i64().is_some_and(|t| t > 1_600_000_000_000);
    match v["events"].as_array() {
        Some(events) if shape_ok => Ok(events.clone()),
        _ => Err(format!("not {{time_ms, events}}: {v}")),
    }
}

async fn receiver() -> Receiver {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hooks", listener.local_addr().unwrap());
    receiver_on(listener, url)
}

/// A receiver serving TLS with a certificate for `localhost` made here; the
/// certificate's PEM file is returned (in `dir`) to be trusted as a CA.
async fn tls_receiver(dir: &std::path::Path) -> (Receiver, std::path::PathBuf) {
    let made = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let ca = dir.join("receiver-ca.pem");
    std::fs::write(&ca, made.cert.pem()).unwrap();
    let key = rustls_pki_types::PrivateKeyDer::try_from(made.signing_key.serialize_der()).unwrap();
    let tls = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![made.cert.der().clone()], key)
    .unwrap();
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "https://localhost:{}/hooks",
        tcp.local_addr().unwrap().port()
    );
    let listener = TlsListener {
        tcp,
        acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(tls)),
        handshakes_failed: Arc::default(),
    };
    (receiver_on(listener, url), ca)
}

/// TCP + TLS handshake as an axum listener; failed handshakes are counted
/// and skipped.
struct TlsListener {
    tcp: tokio::net::TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    handshakes_failed: Arc<AtomicUsize>,
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<tokio::net::TcpStream>;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Ok((tcp, addr)) = self.tcp.accept().await else {
                continue;
            };
            match tokio::time::timeout(WAIT, self.acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => return (tls, addr),
                _ => {
                    self.handshakes_failed.fetch_add(1, Ordering::SeqCst);
                }
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}

fn receiver_on<L>(listener: L, url: String) -> Receiver
where
    L: axum::serve::Listener,
    L::Addr: std::fmt::Debug,
{
    let (tx, rx) = mpsc::unbounded_channel();
    let state = RecvState {
        tx,
        fail: Arc::default(),
        hang: Arc::default(),
        seen: Arc::default(),
        with_events: Arc::default(),
        reject_events: Arc::default(),
    };
    let app = axum::Router::new()
        .route("/hooks", axum::routing::post(handle))
        .with_state(state.clone());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Receiver { url, rx, state }
}

impl Receiver {
    /// Reads events until `n` have arrived.
    async fn events(&mut self, n: usize) -> Vec<Value> {
        self.requests(n)
            .await
            .into_iter()
            .flat_map(|h| h.events)
            .collect()
    }

    /// Reads requests until `n` events have arrived.
    async fn requests(&mut self, n: usize) -> Vec<Hook> {
        let mut out: Vec<Hook> = Vec::new();
        while out.iter().map(|h| h.events.len()).sum::<usize>() < n {
            let hook = tokio::time::timeout(WAIT, self.rx.recv())
                .await
                .unwrap_or_else(|_| panic!("timed out with {out:?} of {n} events"))
                .unwrap();
            out.push(hook.unwrap_or_else(|why| panic!("bad webhook: {why}")));
        }
        out
    }

    /// No accepted request within `wait`.
    async fn silence(&mut self, wait: Duration) {
        match tokio::time::timeout(wait, self.rx.recv()).await {
            Ok(Some(Ok(h))) => panic!("unexpected webhook {h:?}"),
            Ok(Some(Err(why))) => panic!("bad webhook: {why}"),
            _ => {}
        }
    }
}

/// Fast retries and delays for tests.
fn hooks_toml(webhooks: &str, app_extra: &str) -> String {
    format!(
        "[webhooks]\nbackoff_base_ms = 50\nbackoff_max_ms = 200\nbatch_window_ms = 10\n\
         vacate_delay_ms = 300\nmax_attempts = 3\ntimeout = 5\n{}{webhooks}\n",
        app_toml(app_extra)
    )
}

fn webhook(url: &str, types: Option<&[&str]>) -> String {
    let mut s = format!("[[apps.main.webhooks]]\nurl = \"{url}\"\n");
    if let Some(t) = types {
        s.push_str(&format!("event_types = {}\n", json!(t)));
    }
    s
}

fn has(events: &[Value], e: &Value) -> usize {
    events.iter().filter(|x| *x == e).count()
}

#[tokio::test]
async fn every_event_type_with_pusher_fields_and_a_valid_signature() {
    let mut r = receiver().await;
    let s = start(&hooks_toml(&webhook(&r.url, None), "client_events = true")).await;
    let mut a = s.client().await;
    let mut b = s.client().await;
    let a_sid = a.sid().to_owned();
    a.subscribe_ok("private-a").await;
    a.join_presence("presence-p", "u1", json!({"n": 1})).await;
    a.subscribe_ok("cache-c").await;
    a.expect("pusher:cache_miss").await;
    b.subscribe_ok("private-a").await;
    a.send(json!({"event":"client-obj","channel":"private-a","data":{"x": [1, 2]}}))
        .await;
    b.expect("client-obj").await;
    a.send(json!({"event":"client-str","channel":"presence-p","data":"hi"}))
        .await;
    drop(a);
    let got = r.events(14).await;
    let want = [
        json!({"name":"channel_occupied","channel":"private-a"}),
        json!({"name":"subscription_count","channel":"private-a","subscription_count":1}),
        json!({"name":"channel_occupied","channel":"presence-p"}),
        json!({"name":"member_added","channel":"presence-p","user_id":"u1"}),
        json!({"name":"channel_occupied","channel":"cache-c"}),
        json!({"name":"cache_miss","channel":"cache-c"}),
        json!({"name":"subscription_count","channel":"cache-c","subscription_count":1}),
        json!({"name":"subscription_count","channel":"private-a","subscription_count":2}),
        json!({"name":"client_event","channel":"private-a","event":"client-obj","data":"{\"x\":[1,2]}","socket_id":a_sid}),
        json!({"name":"client_event","channel":"presence-p","event":"client-str","data":"hi","socket_id":a_sid,"user_id":"u1"}),
        json!({"name":"member_removed","channel":"presence-p","user_id":"u1"}),
        json!({"name":"channel_vacated","channel":"presence-p"}),
        json!({"name":"channel_vacated","channel":"cache-c"}),
        json!({"name":"subscription_count","channel":"private-a","subscription_count":1}),
    ];
    for w in &want {
        assert_eq!(has(&got, w), has(&want, w), "{w} in {got:#?}");
    }
    // Per channel, in the order things happened.
    let on = |c: &str| -> Vec<&Value> { got.iter().filter(|e| e["channel"] == c).collect() };
    let want_on = |c: &str| -> Vec<&Value> { want.iter().filter(|e| e["channel"] == c).collect() };
    assert_eq!(on("private-a"), want_on("private-a"));
    assert_eq!(on("cache-c"), want_on("cache-c"));
    let p = on("presence-p");
    assert_eq!(p[0], &want[2]);
    assert_eq!(p[1], &want[3]);
    assert_eq!(p[p.len() - 1], &want[11]);
    r.silence(Duration::from_millis(500)).await;
    s.stop().await;
}

#[tokio::test]
async fn filters_and_apps_without_webhooks() {
    let mut occ = receiver().await;
    let mut mem = receiver().await;
    let hooks = format!(
        "{}{}",
        webhook(&occ.url, Some(&["channel_occupied"])),
        webhook(&mem.url, Some(&["member_added", "member_removed"]))
    );
    let s = start(&hooks_toml(&hooks, "")).await;
    let mut a = s.client().await;
    a.subscribe_ok("news").await;
    a.join_presence("presence-q", "7", json!({})).await;
    let got = occ.events(2).await;
    assert_eq!(
        got,
        vec![
            json!({"name":"channel_occupied","channel":"news"}),
            json!({"name":"channel_occupied","channel":"presence-q"}),
        ]
    );
    drop(a);
    let got = mem.events(2).await;
    assert_eq!(
        got,
        vec![
            json!({"name":"member_added","channel":"presence-q","user_id":"7"}),
            json!({"name":"member_removed","channel":"presence-q","user_id":"7"}),
        ]
    );
    // No vacated for the occupied-only endpoint, nothing else for either.
    occ.silence(Duration::from_millis(800)).await;
    mem.silence(Duration::from_millis(200)).await;
    s.stop().await;
}

#[tokio::test]
async fn one_event_per_request_when_batch_size_is_one() {
    let mut single = receiver().await;
    let mut batched = receiver().await;
    let hooks = format!(
        "{}batch_size = 1\n{}",
        webhook(&single.url, Some(&["channel_occupied"])),
        webhook(&batched.url, Some(&["channel_occupied"]))
    );
    // A long gathering window so all events reach the outbox together.
    let toml = hooks_toml(&hooks, "").replace("batch_window_ms = 10", "batch_window_ms = 500");
    let s = start(&toml).await;
    let mut a = s.client().await;
    for i in 0..6 {
        a.subscribe_ok(&format!("b{i}")).await;
    }
    let mut n = 0;
    while n < 6 {
        let hook = tokio::time::timeout(WAIT, single.rx.recv())
            .await
            .unwrap()
            .unwrap()
            .unwrap_or_else(|why| panic!("bad webhook: {why}"));
        assert_eq!(hook.events.len(), 1, "{hook:?}");
        n += 1;
    }
    let got = batched.events(6).await;
    assert_eq!(got.len(), 6);
    // The default batch size (100) let one request carry several events.
    assert!(batched.state.seen.load(Ordering::SeqCst) < 6);
    s.stop().await;
}

#[tokio::test]
async fn vacated_is_debounced_and_cancelled_by_reoccupation() {
    let mut r = receiver().await;
    let toml = hooks_toml(
        &webhook(&r.url, Some(&["channel_occupied", "channel_vacated"])),
        "",
    )
    .replace("vacate_delay_ms = 300", "vacate_delay_ms = 1500");
    let s = start(&toml).await;
    let mut a = s.client().await;
    a.subscribe_ok("flap").await;
    assert_eq!(
        r.events(1).await,
        vec![json!({"name":"channel_occupied","channel":"flap"})]
    );
    // Leave and come back within the delay: neither event is sent.
    a.send(json!({"event":"pusher:unsubscribe","data":{"channel":"flap"}}))
        .await;
    a.subscribe_ok("flap").await;
    r.silence(Duration::from_millis(2000)).await;
    // Leave for good: vacated after the delay.
    a.send(json!({"event":"pusher:unsubscribe","data":{"channel":"flap"}}))
        .await;
    assert_eq!(
        r.events(1).await,
        vec![json!({"name":"channel_vacated","channel":"flap"})]
    );
    s.stop().await;
}

#[tokio::test]
async fn a_failing_receiver_gets_every_event_once_in_order_after_recovery() {
    let mut r = receiver().await;
    r.state.fail.store(4, Ordering::SeqCst);
    let toml = hooks_toml(&webhook(&r.url, Some(&["channel_occupied"])), "")
        .replace("max_attempts = 3", "max_attempts = 10")
        .replace("[webhooks]\n", "[webhooks]\nbatch_size = 3\n");
    let s = start(&toml).await;
    let mut a = s.client().await;
    for i in 0..10 {
        a.subscribe_ok(&format!("c{i}")).await;
    }
    let got = r.events(10).await;
    let names: Vec<&str> = got.iter().map(|e| e["channel"].as_str().unwrap()).collect();
    let want: Vec<String> = (0..10).map(|i| format!("c{i}")).collect();
    assert_eq!(names, want);
    r.silence(Duration::from_millis(500)).await;
    assert!(r.state.seen.load(Ordering::SeqCst) >= 4 + 4);
    s.stop().await;
}

/// Waits until `counter` reaches `n`.
async fn reaches(counter: &AtomicUsize, n: usize) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while counter.load(Ordering::SeqCst) < n {
        assert!(tokio::time::Instant::now() < deadline, "never reached {n}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// After an outage, queued events are delivered within about the probe
/// interval, not at the head's next retry: here that retry is 20-40 s away
/// (backoff_base_ms = 40 s, cap 60 s) and delivery must come within 4 s. The
/// outage outlasts several probes while max_attempts is 3, so probes must
/// not count as attempts (else the events would be dead letters by then).
#[tokio::test]
async fn delivery_resumes_within_seconds_after_an_outage_whatever_the_backoff() {
    let mut r = receiver().await;
    r.state.fail.store(usize::MAX, Ordering::SeqCst);
    let toml = hooks_toml(&webhook(&r.url, Some(&["channel_occupied"])), "")
        .replace("backoff_base_ms = 50", "backoff_base_ms = 40000")
        .replace(
            "backoff_max_ms = 200",
            "backoff_max_ms = 60000\nprobe_interval_ms = 300",
        );
    let s = start(&toml).await;
    let mut a = s.client().await;
    for c in ["c1", "c2", "c3"] {
        a.subscribe_ok(c).await;
    }
    // The first attempt failed; more events queue up behind it.
    reaches(&r.state.seen, 1).await;
    for c in ["c4", "c5", "c6"] {
        a.subscribe_ok(c).await;
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let during_outage = r.state.seen.load(Ordering::SeqCst);
    assert!(
        during_outage >= 4,
        "probes during the outage: {during_outage}"
    );
    // The endpoint recovers.
    r.state.fail.store(0, Ordering::SeqCst);
    let recovered = tokio::time::Instant::now();
    let got = r.events(6).await;
    let took = recovered.elapsed();
    assert!(
        took < Duration::from_secs(4),
        "delivered {took:?} after recovery"
    );
    let mut names: Vec<&str> = got.iter().map(|e| e["channel"].as_str().unwrap()).collect();
    names.sort_unstable();
    assert_eq!(names, ["c1", "c2", "c3", "c4", "c5", "c6"]);
    // Probes carry no events; after the delivery nothing more is sent.
    r.silence(Duration::from_millis(700)).await;
    s.stop().await;
}

/// A receiver that answers probes but refuses the events gets one early
/// retry per back-off step, not one per probe: the retry budget keeps its
/// length in time.
#[tokio::test]
async fn probes_do_not_turn_into_a_retry_storm() {
    let mut r = receiver().await;
    r.state.reject_events.store(true, Ordering::SeqCst);
    let toml = hooks_toml(&webhook(&r.url, Some(&["channel_occupied"])), "")
        .replace("backoff_base_ms = 50", "backoff_base_ms = 6000")
        .replace(
            "backoff_max_ms = 200",
            "backoff_max_ms = 60000\nprobe_interval_ms = 200",
        );
    let s = start(&toml).await;
    let mut a = s.client().await;
    a.subscribe_ok("c1").await;
    reaches(&r.state.with_events, 1).await;
    // The scheduled retry is 3-6 s away; in the first 2 s: one probe
    // (answered), one early retry (refused), then quiet.
    tokio::time::sleep(Duration::from_millis(2000)).await;
    let with_events = r.state.with_events.load(Ordering::SeqCst);
    let probes = r.state.seen.load(Ordering::SeqCst) - with_events;
    assert_eq!((with_events, probes), (2, 1));
    // The scheduled retry still comes and delivers once events are taken.
    r.state.reject_events.store(false, Ordering::SeqCst);
    assert_eq!(
        r.events(1).await,
        vec![json!({"name":"channel_occupied","channel":"c1"})]
    );
    s.stop().await;
}

#[tokio::test]
async fn dead_letters_after_the_retry_budget() {
    let mut r = receiver().await;
    r.state.fail.store(usize::MAX, Ordering::SeqCst);
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/hush.sqlite3", dir.path().display());
    let mut config = hush_server::Config::from_toml(&hooks_toml(
        &webhook(&r.url, Some(&["channel_occupied"])),
        "",
    ))
    .unwrap();
    config.store.url = Some(url.clone());
    let s = start_config(config).await;
    let mut a = s.client().await;
    a.subscribe_ok("doomed").await;
    let store = hush_store::Store::open(&url, &Default::default())
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + WAIT;
    let dead = loop {
        let d = store.dead_letters(None, 10).await.unwrap();
        if !d.is_empty() {
            break d;
        }
        assert!(tokio::time::Instant::now() < deadline, "no dead letter");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(dead[0].attempts, 3);
    assert_eq!(dead[0].app_id, ID);
    assert_eq!(dead[0].endpoint, r.url);
    assert_eq!(dead[0].last_error.as_deref(), Some("HTTP 500"));
    let ev: Value = serde_json::from_str(&dead[0].event).unwrap();
    assert_eq!(ev, json!({"name":"channel_occupied","channel":"doomed"}));
    assert_eq!(r.state.seen.load(Ordering::SeqCst), 3);
    r.silence(Duration::from_millis(300)).await;
    // Retried from the dead letters (as `hush webhooks retry` does) and the
    // receiver now answers: delivered.
    r.state.fail.store(0, Ordering::SeqCst);
    assert_eq!(
        store
            .retry_dead_letters(None, None, hush_store::now_ms())
            .await
            .unwrap(),
        1
    );
    assert_eq!(r.events(1).await, vec![ev]);
    s.stop().await;
}

#[tokio::test]
async fn a_restart_mid_delivery_redelivers_pending_events() {
    let mut r = receiver().await;
    // The first request hangs: the server stops while it is in flight.
    r.state.hang.store(1, Ordering::SeqCst);
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/data/hush.sqlite3", dir.path().display());
    let toml = hooks_toml(
        &webhook(&r.url, Some(&["channel_occupied", "channel_vacated"])),
        "",
    )
    .replace("vacate_delay_ms = 300", "vacate_delay_ms = 60000");
    let config = || {
        let mut c = hush_server::Config::from_toml(&toml).unwrap();
        c.store.url = Some(url.clone());
        c
    };
    let s = start_config(config()).await;
    let mut a = s.client().await;
    a.subscribe_ok("first").await;
    // Wait until the request is in flight.
    let deadline = tokio::time::Instant::now() + WAIT;
    while r.state.seen.load(Ordering::SeqCst) == 0 {
        assert!(tokio::time::Instant::now() < deadline, "no request");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    a.subscribe_ok("second").await;
    // Stopping disconnects `a`: both vacated events are held back for a
    // minute, and shutdown must still write them to the outbox.
    s.stop().await;
    r.silence(Duration::from_millis(200)).await;

    let s2 = start_config(config()).await;
    let got = r.events(4).await;
    // The in-flight batch comes first; per channel, occupied before vacated.
    assert_eq!(got[0], json!({"name":"channel_occupied","channel":"first"}));
    let pos = |e: Value| got.iter().position(|x| *x == e).unwrap();
    for c in ["first", "second"] {
        assert!(
            pos(json!({"name":"channel_occupied","channel":c}))
                < pos(json!({"name":"channel_vacated","channel":c}))
        );
    }
    for c in ["first", "second"] {
        assert_eq!(
            has(&got, &json!({"name":"channel_occupied","channel":c})),
            1
        );
        assert_eq!(has(&got, &json!({"name":"channel_vacated","channel":c})), 1);
    }
    r.silence(Duration::from_millis(500)).await;
    s2.stop().await;
}

#[tokio::test]
async fn ready_reports_an_unreachable_store() {
    let mut config = hush_server::Config::from_toml(&app_toml("")).unwrap();
    config.store.url = Some("sqlite::memory:".into());
    config.server.host = "127.0.0.1".into();
    config.server.port = 0;
    let server = hush_server::Server::bind(config).await.unwrap();
    let state = server.state();
    let running = server.spawn();
    let get = |addr| async move {
        let s = TestServerAddr(addr);
        s.get("/ready").await
    };
    assert_eq!(get(running.local_addr()).await.0, 200);
    state.store.close().await;
    let (status, body) = get(running.local_addr()).await;
    assert_eq!(status, 503);
    assert_eq!(body, json!({"status": "store unavailable"}));
    let _ = tokio::time::timeout(WAIT, running.stop()).await;
}

/// A bare HTTP GET against an address.
struct TestServerAddr(std::net::SocketAddr);

impl TestServerAddr {
    async fn get(&self, path: &str) -> (u16, Value) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut s = tokio::net::TcpStream::connect(self.0).await.unwrap();
        let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        s.write_all(req.as_bytes()).await.unwrap();
        let mut buf = Vec::new();
        tokio::time::timeout(WAIT, s.read_to_end(&mut buf))
            .await
            .unwrap()
            .unwrap();
        let text = String::from_utf8_lossy(&buf).into_owned();
        let status = text.split_whitespace().nth(1).unwrap().parse().unwrap();
        let body = text.split_once("\r\n\r\n").map_or("", |x| x.1);
        (status, serde_json::from_str(body).unwrap_or(Value::Null))
    }
}

/// The first dead letter of the store at `url`, waiting for it.
async fn first_dead_letter(url: &str) -> hush_store::DeadLetter {
    let store = hush_store::Store::open(url, &Default::default())
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let d = store.dead_letters(None, 10).await.unwrap();
        if let Some(first) = d.into_iter().next() {
            return first;
        }
        assert!(tokio::time::Instant::now() < deadline, "no dead letter");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// An https:// URL really speaks TLS: against a plain HTTP receiver the
/// handshake fails, the handler never runs, and the event ends as a dead
/// letter with a connection error (not an HTTP status).
#[tokio::test]
async fn https_urls_speak_tls() {
    let r = receiver().await;
    let https = r.url.replacen("http://", "https://", 1);
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/hush.sqlite3", dir.path().display());
    let mut config = hush_server::Config::from_toml(
        &hooks_toml(&webhook(&https, Some(&["channel_occupied"])), "")
            .replace("max_attempts = 3", "max_attempts = 1"),
    )
    .unwrap();
    config.store.url = Some(url.clone());
    let s = start_config(config).await;
    let mut a = s.client().await;
    a.subscribe_ok("tls").await;
    let err = first_dead_letter(&url).await.last_error.unwrap();
    assert!(!err.starts_with("HTTP "), "{err}");
    assert_eq!(r.state.seen.load(Ordering::SeqCst), 0);
    s.stop().await;
}

/// An https:// endpoint whose certificate chains to `webhooks.ca_file` gets
/// signed events and the endpoint's extra headers, in the default build.
#[tokio::test]
async fn https_endpoint_with_a_private_ca_and_custom_headers() {
    let dir = tempfile::tempdir().unwrap();
    let (mut r, ca) = tls_receiver(dir.path()).await;
    let hook = format!(
        "{}headers = {{ Authorization = \"Bearer t0k3n\", X-Tenant = \"blue\" }}\n",
        webhook(&r.url, Some(&["channel_occupied"]))
    );
    let toml = hooks_toml(&hook, "").replace(
        "[webhooks]\n",
        &format!("[webhooks]\nca_file = '{}'\n", ca.display()),
    );
    let s = start(&toml).await;
    let mut a = s.client().await;
    a.subscribe_ok("over-tls").await;
    let got = r.requests(1).await;
    assert_eq!(
        got[0].events,
        vec![json!({"name":"channel_occupied","channel":"over-tls"})]
    );
    assert_eq!(got[0].headers["authorization"], "Bearer t0k3n");
    assert_eq!(got[0].headers["x-tenant"], "blue");
    s.stop().await;
}

/// A man in the middle with a certificate the server does not trust (not
/// in the system's roots, no `ca_file`) never receives an event: the
/// handshake is refused and the event becomes a dead letter.
#[tokio::test]
async fn https_endpoint_with_an_untrusted_certificate_gets_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (r, _ca) = tls_receiver(dir.path()).await;
    let url = format!("sqlite://{}/hush.sqlite3", dir.path().display());
    let mut config = hush_server::Config::from_toml(
        &hooks_toml(&webhook(&r.url, Some(&["channel_occupied"])), "")
            .replace("max_attempts = 3", "max_attempts = 1"),
    )
    .unwrap();
    config.store.url = Some(url.clone());
    let s = start_config(config).await;
    let mut a = s.client().await;
    a.subscribe_ok("mitm").await;
    let err = first_dead_letter(&url).await.last_error.unwrap();
    assert!(err.contains("certificate"), "{err}");
    assert_eq!(r.state.seen.load(Ordering::SeqCst), 0);
    s.stop().await;
}

/// Channel filters: a prefix, a suffix and a `*` pattern each let through
/// only the channels they name; event types still apply.
#[tokio::test]
async fn channel_filters_route_events_per_endpoint() {
    let mut presence = receiver().await;
    let mut orders = receiver().await;
    let mut suffix = receiver().await;
    let hooks = format!(
        "{}channel_prefix = \"presence-\"\n{}channel_pattern = \"private-*-orders\"\n{}channel_suffix = \"-log\"\n",
        webhook(&presence.url, Some(&["channel_occupied"])),
        webhook(&orders.url, Some(&["channel_occupied"])),
        webhook(&suffix.url, Some(&["channel_occupied"])),
    );
    let s = start(&hooks_toml(&hooks, "")).await;
    let mut a = s.client().await;
    for ch in ["news", "private-shop-orders", "private-orders", "audit-log"] {
        a.subscribe_ok(ch).await;
    }
    a.join_presence("presence-room", "u", json!({})).await;
    a.subscribe_ok("private-eu-orders").await;
    let occupied = |c: &str| json!({"name":"channel_occupied","channel":c});
    assert_eq!(presence.events(1).await, vec![occupied("presence-room")]);
    let mut got = orders.events(2).await;
    got.sort_by_key(|v| v["channel"].as_str().unwrap_or("").to_owned());
    assert_eq!(
        got,
        vec![
            occupied("private-eu-orders"),
            occupied("private-shop-orders")
        ]
    );
    assert_eq!(suffix.events(1).await, vec![occupied("audit-log")]);
    presence.silence(Duration::from_millis(400)).await;
    orders.silence(Duration::from_millis(10)).await;
    suffix.silence(Duration::from_millis(10)).await;
    s.stop().await;
}

#[tokio::test]
async fn cache_miss_is_deduplicated_while_the_miss_persists() {
    let mut r = receiver().await;
    let s = start(&hooks_toml(
        &webhook(&r.url, Some(&["cache_miss"])),
        "cache_ttl = 1",
    ))
    .await;
    let mut a = s.client().await;
    let mut b = s.client().await;
    a.subscribe_ok("cache-x").await;
    a.expect("pusher:cache_miss").await;
    b.subscribe_ok("cache-x").await;
    b.expect("pusher:cache_miss").await;
    let miss = json!({"name":"cache_miss","channel":"cache-x"});
    assert_eq!(r.events(1).await, vec![miss.clone()]);
    r.silence(Duration::from_millis(500)).await;
    // An event is cached, then expires: the next miss is reported again.
    assert_eq!(s.trigger("cache-x", "e", "1").await.0, 200);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mut c = s.client().await;
    c.subscribe_ok("cache-x").await;
    c.expect("pusher:cache_miss").await;
    assert_eq!(r.events(1).await, vec![miss]);
    s.stop().await;
}

/// Two nodes on one PostgreSQL database, one webhook endpoint: each event
/// reaches it once (not once per node's sender), and when the node holding
/// the queue stops, the other one delivers what follows.
#[tokio::test]
async fn two_nodes_on_one_postgres_deliver_each_event_once() {
    let mut r = receiver().await;
    let url = tokio::task::spawn_blocking(hush_testkit::postgres::database)
        .await
        .unwrap();
    let toml = hooks_toml(&webhook(&r.url, Some(&["channel_occupied"])), "");
    let config = || {
        let mut c = hush_server::Config::from_toml(&toml).unwrap();
        c.store.url = Some(url.clone());
        c
    };
    let (n1, n2) = (start_config(config()).await, start_config(config()).await);
    let (mut a, mut b) = (n1.client().await, n2.client().await);
    for i in 0..5 {
        a.subscribe_ok(&format!("on-one-{i}")).await;
        b.subscribe_ok(&format!("on-two-{i}")).await;
    }
    let got = r.events(10).await;
    for i in 0..5 {
        for c in [format!("on-one-{i}"), format!("on-two-{i}")] {
            assert_eq!(
                has(&got, &json!({"name":"channel_occupied","channel":c})),
                1,
                "{got:#?}"
            );
        }
    }
    // Both nodes' senders poll the shared outbox: still nothing twice.
    r.silence(Duration::from_millis(1500)).await;

    // The first node stops (releasing its queue leases): the second one
    // delivers from then on, without waiting for a lease to run out.
    drop(a);
    n1.stop().await;
    b.subscribe_ok("after").await;
    let got = r.events(1).await;
    assert_eq!(got, [json!({"name":"channel_occupied","channel":"after"})]);
    r.silence(Duration::from_millis(1000)).await;
    n2.stop().await;
}

/// PostgreSQL stops abruptly while a node runs and comes back: events from
/// before, during and after the outage each reach the endpoint once, with
/// no restart of the node (its pool reconnects).
#[tokio::test]
async fn webhooks_resume_after_a_postgres_restart() {
    use hush_testkit::postgres::Postgres;
    let mut r = receiver().await;
    let pg = tokio::task::spawn_blocking(Postgres::start).await.unwrap();
    let url = pg.create_database();
    let toml = hooks_toml(&webhook(&r.url, Some(&["channel_occupied"])), "");
    let mut config = hush_server::Config::from_toml(&toml).unwrap();
    config.store.url = Some(url);
    let s = start_config(config).await;
    let mut a = s.client().await;
    let occupied = |c: &str| json!({"name":"channel_occupied","channel":c});
    a.subscribe_ok("before").await;
    assert_eq!(r.events(1).await, [occupied("before")]);

    let pg = tokio::task::spawn_blocking(move || {
        pg.stop();
        pg
    })
    .await
    .unwrap();
    // Realtime traffic goes on; the event waits for the store.
    a.subscribe_ok("during").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let pg = tokio::task::spawn_blocking(move || {
        pg.start_again();
        pg
    })
    .await
    .unwrap();
    assert_eq!(r.events(1).await, [occupied("during")]);
    a.subscribe_ok("after").await;
    assert_eq!(r.events(1).await, [occupied("after")]);
    r.silence(Duration::from_millis(1000)).await;
    s.stop().await;
    drop(pg);
}
