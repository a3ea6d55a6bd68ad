//! Operating hush: Prometheus metrics scraped over HTTP, readiness while
//! draining, per-app quotas, allowed origins, and TLS with a self-signed
//! certificate (WebSocket and HTTP API) including a certificate reload.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::{SinkExt, StreamExt};
use hush_protocol::api::{QueryParams, signed_query};
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

const WAIT: Duration = Duration::from_secs(10);

struct Srv {
    addr: SocketAddr,
    metrics: Option<SocketAddr>,
    state: Arc<hush_server::ServerState>,
    tls: Option<hush_server::tls::Tls>,
    running: hush_server::RunningServer,
}

async fn start(toml: &str) -> Srv {
    let mut config = hush_server::Config::from_toml(toml).expect("config");
    // In memory unless the test names a store: tests never write one into
    // the repository.
    config
        .store
        .url
        .get_or_insert_with(|| "sqlite::memory:".into());
    config.server.host = "127.0.0.1".into();
    config.server.port = 0;
    config.server.shutdown_timeout = 2;
    config.metrics.port = 0;
    let server = hush_server::Server::bind(config).await.expect("bind");
    Srv {
        addr: server.local_addr(),
        metrics: server.metrics_addr(),
        state: server.state(),
        tls: server.tls(),
        running: server.spawn(),
    }
}

fn app(id: &str, key: &str, extra: &str) -> String {
    format!("[apps.{id}]\nid = '{id}'\nkey = '{key}'\nsecret = 'secret-{id}'\n{extra}\n")
}

/// One HTTP/1.1 request over any stream; returns status and body.
async fn http_on<S: AsyncRead + AsyncWrite + Unpin>(
    mut s: S,
    method: &str,
    path_and_query: &str,
    body: &str,
) -> (u16, String) {
    let req = format!(
        "{method} {path_and_query} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    // A TLS peer may end without close_notify after `Connection: close`.
    let _ = tokio::time::timeout(WAIT, s.read_to_end(&mut buf))
        .await
        .expect("http timeout");
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status: u16 = text.split_whitespace().nth(1).unwrap().parse().unwrap();
    let body = text.split_once("\r\n\r\n").map(|x| x.1).unwrap_or("");
    (status, body.to_owned())
}

async fn http(addr: SocketAddr, method: &str, path: &str, body: &str) -> (u16, String) {
    http_on(TcpStream::connect(addr).await.unwrap(), method, path, body).await
}

fn signed(id: &str, key: &str, method: &str, path: &str, body: &str) -> String {
    let ts = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let q = signed_query(
        key,
        format!("secret-{id}").as_bytes(),
        method,
        path,
        QueryParams::from_pairs(std::iter::empty::<(&str, &str)>()),
        body.as_bytes(),
        ts,
    );
    format!("{path}?{q}")
}

async fn trigger(addr: SocketAddr, id: &str, key: &str, channel: &str) -> (u16, Value) {
    let body = json!({"name": "ev", "channel": channel, "data": "hello"}).to_string();
    let path = format!("/apps/{id}/events");
    let (status, body) = http(addr, "POST", &signed(id, key, "POST", &path, &body), &body).await;
    (status, serde_json::from_str(&body).unwrap_or(Value::Null))
}

async fn next_json<S: AsyncRead + AsyncWrite + Unpin>(ws: &mut WebSocketStream<S>) -> Value {
    loop {
        match tokio::time::timeout(WAIT, ws.next()).await.expect("frame") {
            Some(Ok(Message::Text(t))) => return serde_json::from_str(t.as_str()).unwrap(),
            Some(Ok(Message::Close(f))) => {
                return json!({"closed": f.map(|f| u16::from(f.code))});
            }
            Some(Ok(_)) => continue,
            other => return json!({"closed": null, "error": format!("{other:?}")}),
        }
    }
}

async fn expect_event<S: AsyncRead + AsyncWrite + Unpin>(
    ws: &mut WebSocketStream<S>,
    event: &str,
) -> Value {
    loop {
        let v = next_json(ws).await;
        assert!(v.get("closed").is_none(), "closed waiting for {event}: {v}");
        if v["event"] == event {
            return v;
        }
    }
}

/// Connects with an optional `Origin` header.
async fn ws_connect(
    addr: SocketAddr,
    key: &str,
    origin: Option<&str>,
) -> WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>> {
    let mut req = format!("ws://{addr}/app/{key}?protocol=7")
        .into_client_request()
        .unwrap();
    if let Some(o) = origin {
        req.headers_mut().insert("origin", o.parse().unwrap());
    }
    tokio_tungstenite::connect_async(req).await.unwrap().0
}

fn scrape(text: &str) -> prometheus_parse::Scrape {
    prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).unwrap()
}

/// The value of the sample named `metric` whose labels include all of `labels`.
fn value(s: &prometheus_parse::Scrape, metric: &str, labels: &[(&str, &str)]) -> Option<f64> {
    s.samples
        .iter()
        .find(|x| x.metric == metric && labels.iter().all(|(k, v)| x.labels.get(k) == Some(*v)))
        .map(|x| match x.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            _ => f64::NAN,
        })
}

async fn metrics(srv: &Srv) -> prometheus_parse::Scrape {
    let (status, body) = http(srv.metrics.expect("metrics on"), "GET", "/metrics", "").await;
    assert_eq!(status, 200);
    scrape(&body)
}

#[tokio::test]
async fn metrics_are_scraped_and_move() {
    let toml = format!(
        "[metrics]\nenabled = true\n{}",
        app("m1", "key-m1", "client_events = true")
    );
    let srv = start(&toml).await;
    let a = [("app", "m1")];

    let before = metrics(&srv).await;
    assert_eq!(value(&before, "hush_connections", &a), Some(0.0));
    assert!(before.docs.contains_key("hush_messages_out_total"));
    assert_eq!(
        value(
            &before,
            "hush_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))]
        ),
        Some(1.0)
    );

    let mut sub1 = ws_connect(srv.addr, "key-m1", None).await;
    expect_event(&mut sub1, "pusher:connection_established").await;
    let mut sub2 = ws_connect(srv.addr, "key-m1", None).await;
    expect_event(&mut sub2, "pusher:connection_established").await;
    for ws in [&mut sub1, &mut sub2] {
        ws.send(Message::Text(
            json!({"event":"pusher:subscribe","data":{"channel":"news"}})
                .to_string()
                .into(),
        ))
        .await
        .unwrap();
        expect_event(ws, "pusher_internal:subscription_succeeded").await;
    }
    for _ in 0..3 {
        assert_eq!(trigger(srv.addr, "m1", "key-m1", "news").await.0, 200);
    }
    for ws in [&mut sub1, &mut sub2] {
        for _ in 0..3 {
            expect_event(ws, "ev").await;
        }
    }
    // A bad signature: 401 and an auth failure.
    let bad = "/apps/m1/events?auth_key=key-m1&auth_timestamp=1&auth_version=1.0&body_md5=x&auth_signature=00";
    assert_eq!(http(srv.addr, "POST", bad, "{}").await.0, 401);
    // A private channel without a valid auth: a channel auth failure.
    sub1.send(Message::Text(
        json!({"event":"pusher:subscribe","data":{"channel":"private-x","auth":"key-m1:00"}})
            .to_string()
            .into(),
    ))
    .await
    .unwrap();
    expect_event(&mut sub1, "pusher:subscription_error").await;

    let after = metrics(&srv).await;
    assert_eq!(value(&after, "hush_connections", &a), Some(2.0));
    assert_eq!(value(&after, "hush_connections_total", &a), Some(2.0));
    assert_eq!(value(&after, "hush_channels", &a), Some(1.0));
    assert_eq!(value(&after, "hush_subscriptions", &a), Some(2.0));
    // 3 publishes × 2 subscribers, counted per publish.
    assert_eq!(value(&after, "hush_messages_out_total", &a), Some(6.0));
    let frame_len = r#"{"event":"ev","channel":"news","data":"hello"}"#.len() as f64;
    assert_eq!(
        value(&after, "hush_bytes_out_total", &a),
        Some(6.0 * frame_len)
    );
    // Two subscribes and one refused subscribe came in.
    assert_eq!(value(&after, "hush_messages_in_total", &a), Some(3.0));
    assert!(value(&after, "hush_bytes_in_total", &a).unwrap() > 50.0);
    assert_eq!(
        value(
            &after,
            "hush_http_requests_total",
            &[("app", "m1"), ("status", "200")]
        ),
        Some(3.0)
    );
    assert_eq!(
        value(
            &after,
            "hush_http_requests_total",
            &[("app", "m1"), ("status", "401")]
        ),
        Some(1.0)
    );
    assert_eq!(
        value(
            &after,
            "hush_auth_failures_total",
            &[("app", "m1"), ("kind", "api")]
        ),
        Some(1.0)
    );
    assert_eq!(
        value(
            &after,
            "hush_auth_failures_total",
            &[("app", "m1"), ("kind", "channel")]
        ),
        Some(1.0)
    );
    assert_eq!(value(&after, "hush_draining", &[]), Some(0.0));
    // The runtime's live tasks (the soak reads it for leaks): at least the
    // two connections' tasks and the metrics listener.
    let tasks = value(&after, "hush_runtime_alive_tasks", &[]);
    assert!(tasks.is_some_and(|t| t >= 3.0), "{tasks:?}");

    drop(sub1);
    drop(sub2);
    srv.running.stop().await.unwrap();
}

#[tokio::test]
async fn quotas_are_enforced_and_counted() {
    let toml = format!(
        "[metrics]\nenabled = true\n{}",
        app(
            "q1",
            "key-q1",
            "max_api_requests_per_second = 2\nmax_connections = 1\nmax_channels_per_connection = 1\n\
             client_events = true\nmax_client_events_per_second = 2"
        )
    ) + "[server]\nmax_message_bytes = 1024\n";
    let srv = start(&toml).await;
    let a = [("app", "q1")];

    // HTTP API: 2 per second, then 429 with a JSON error.
    let mut statuses = Vec::new();
    let mut last = Value::Null;
    for _ in 0..4 {
        let (s, body) = trigger(srv.addr, "q1", "key-q1", "c").await;
        statuses.push(s);
        last = body;
    }
    assert_eq!(&statuses[..2], &[200, 200], "{statuses:?}");
    assert_eq!(statuses[3], 429, "{statuses:?}");
    assert!(
        last["error"]
            .as_str()
            .unwrap()
            .contains("2 API requests per second"),
        "{last}"
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(trigger(srv.addr, "q1", "key-q1", "c").await.0, 200);

    // Connections: the second one is closed with 4004.
    let mut first = ws_connect(srv.addr, "key-q1", None).await;
    expect_event(&mut first, "pusher:connection_established").await;
    let mut second = ws_connect(srv.addr, "key-q1", None).await;
    let err = next_json(&mut second).await;
    assert_eq!(err["event"], "pusher:error", "{err}");
    assert_eq!(err["data"]["code"], 4004);
    assert_eq!(next_json(&mut second).await["closed"], 4004);

    // Channels per connection.
    for ch in ["one", "two"] {
        first
            .send(Message::Text(
                json!({"event":"pusher:subscribe","data":{"channel": ch}})
                    .to_string()
                    .into(),
            ))
            .await
            .unwrap();
    }
    expect_event(&mut first, "pusher_internal:subscription_succeeded").await;
    let e = expect_event(&mut first, "pusher:subscription_error").await;
    assert_eq!(e["data"]["type"], "LimitReached", "{e}");

    drop(first);
    let q1 = srv.state.app_by_id("q1").unwrap().clone();
    for _ in 0..100 {
        if q1.connection_count() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(q1.connection_count(), 0);

    // Client events: 2 per second per connection, then 4301 (the connection stays).
    let mut c = ws_connect(srv.addr, "key-q1", None).await;
    let est = expect_event(&mut c, "pusher:connection_established").await;
    let inner: Value = serde_json::from_str(est["data"].as_str().unwrap()).unwrap();
    let sid = inner["socket_id"].as_str().unwrap();
    let channel = "private-chat";
    let sig = hush_protocol::auth::sign_channel(
        b"secret-q1",
        &hush_protocol::SocketId::parse(sid).unwrap(),
        &hush_protocol::ChannelName::parse(channel).unwrap(),
        None,
    );
    let auth = hush_protocol::auth::auth_value("key-q1", &sig);
    c.send(Message::Text(
        json!({"event":"pusher:subscribe","data":{"channel": channel, "auth": auth}})
            .to_string()
            .into(),
    ))
    .await
    .unwrap();
    expect_event(&mut c, "pusher_internal:subscription_succeeded").await;
    for _ in 0..3 {
        c.send(Message::Text(
            json!({"event":"client-typing","channel": channel,"data":{}})
                .to_string()
                .into(),
        ))
        .await
        .unwrap();
    }
    let e = expect_event(&mut c, "pusher:error").await;
    assert_eq!(e["data"]["code"], 4301, "{e}");

    // A WebSocket message over server.max_message_bytes: close 1009.
    c.send(Message::Text("x".repeat(4096).into()))
        .await
        .unwrap();
    let mut closed = json!(null);
    for _ in 0..5 {
        closed = next_json(&mut c).await;
        if closed.get("closed").is_some() {
            break;
        }
    }
    assert_eq!(closed["closed"], 1009, "{closed}");

    let m = metrics(&srv).await;
    let r = |reason| value(&m, "hush_rejections_total", &[a[0], ("reason", reason)]);
    assert_eq!(r("client_event_rate"), Some(1.0));
    assert_eq!(r("message_size"), Some(1.0));
    assert!(r("api_rate").unwrap() >= 1.0);
    assert_eq!(r("app_connections"), Some(1.0));
    assert_eq!(r("channels_per_connection"), Some(1.0));
    assert_eq!(r("origin"), Some(0.0));
    assert!(
        value(
            &m,
            "hush_http_requests_total",
            &[("app", "q1"), ("status", "429")]
        )
        .unwrap()
            >= 1.0
    );
    srv.running.stop().await.unwrap();
}

#[tokio::test]
async fn origins_are_checked_at_upgrade() {
    let toml = app(
        "o1",
        "key-o1",
        "allowed_origins = ['https://good.example', '*.corp.example']",
    ) + &app("o2", "key-o2", "");
    let srv = start(&toml).await;
    for ok in ["https://good.example", "http://a.corp.example"] {
        let mut ws = ws_connect(srv.addr, "key-o1", Some(ok)).await;
        expect_event(&mut ws, "pusher:connection_established").await;
    }
    for bad in [
        Some("https://evil.example"),
        Some("http://good.example"),
        None,
    ] {
        let mut ws = ws_connect(srv.addr, "key-o1", bad).await;
        let err = next_json(&mut ws).await;
        assert_eq!(err["event"], "pusher:error", "{bad:?}: {err}");
        assert_eq!(err["data"]["code"], 4009);
        assert_eq!(err["data"]["message"], "Origin not allowed");
        assert_eq!(next_json(&mut ws).await["closed"], 4009);
    }
    // An app without a list accepts any origin, and none.
    for o in [Some("https://evil.example"), None] {
        let mut ws = ws_connect(srv.addr, "key-o2", o).await;
        expect_event(&mut ws, "pusher:connection_established").await;
    }
    srv.running.stop().await.unwrap();
}

#[tokio::test]
async fn readiness_flips_to_503_while_draining() {
    let toml = app("r1", "key-r1", "") + "[server]\ndrain_delay = 30\n";
    let srv = start(&toml).await;
    let (status, body) = http(srv.addr, "GET", "/ready", "").await;
    assert_eq!((status, body.contains("ready")), (200, true));
    let mut ws = ws_connect(srv.addr, "key-r1", None).await;
    expect_event(&mut ws, "pusher:connection_established").await;

    // Stop: draining starts, and the port stays open for drain_delay.
    let stopping = tokio::spawn(srv.running.stop());
    assert_eq!(next_json(&mut ws).await["data"]["code"], 4200);
    let mut ready = (0, String::new());
    for _ in 0..50 {
        ready = http(srv.addr, "GET", "/ready", "").await;
        if ready.0 == 503 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(ready.0, 503, "{}", ready.1);
    assert!(ready.1.contains("draining"));
    assert_eq!(http(srv.addr, "GET", "/up", "").await.0, 200);
    // New connections are sent elsewhere.
    let mut late = ws_connect(srv.addr, "key-r1", None).await;
    assert_eq!(next_json(&mut late).await["data"]["code"], 4200);
    assert!(srv.state.is_draining());
    stopping.abort();
}

mod tls {
    use super::*;
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, ServerName};

    struct Files {
        dir: std::path::PathBuf,
    }

    impl Files {
        fn new(tag: &str) -> Self {
            let dir = std::env::temp_dir().join(format!(
                "hush-tls-{tag}-{}-{}",
                std::process::id(),
                rand_suffix()
            ));
            std::fs::create_dir_all(&dir).unwrap();
            Self { dir }
        }
        fn cert(&self) -> std::path::PathBuf {
            self.dir.join("cert.pem")
        }
        fn key(&self) -> std::path::PathBuf {
            self.dir.join("key.pem")
        }
        /// Writes a fresh self-signed certificate for localhost; returns its PEM.
        fn generate(&self) -> String {
            let c = rcgen::generate_simple_self_signed(vec![
                "localhost".to_owned(),
                "127.0.0.1".to_owned(),
            ])
            .unwrap();
            let pem = c.cert.pem();
            std::fs::write(self.cert(), &pem).unwrap();
            std::fs::write(self.key(), c.signing_key.serialize_pem()).unwrap();
            pem
        }
    }

    impl Drop for Files {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    fn rand_suffix() -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64
    }

    fn connector(cert_pem: &str) -> tokio_rustls::TlsConnector {
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_slice(cert_pem.as_bytes()).unwrap())
            .unwrap();
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        tokio_rustls::TlsConnector::from(Arc::new(config))
    }

    async fn tls_stream(
        addr: SocketAddr,
        cert_pem: &str,
    ) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
        let tcp = TcpStream::connect(addr).await?;
        connector(cert_pem)
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await
    }

    #[tokio::test]
    async fn wss_and_https_with_a_self_signed_certificate_and_reload() {
        let files = Files::new("a");
        let first_pem = files.generate();
        let toml = format!(
            "{}\n[server.tls]\ncert_file = '{}'\nkey_file = '{}'\n",
            app("t1", "key-t1", ""),
            files.cert().display(),
            files.key().display()
        );
        let srv = start(&toml).await;

        // HTTPS: health and a signed API call.
        let s = tls_stream(srv.addr, &first_pem).await.unwrap();
        assert_eq!(http_on(s, "GET", "/up", "").await.0, 200);
        let body = json!({"name": "ev", "channel": "c", "data": "x"}).to_string();
        let path = signed("t1", "key-t1", "POST", "/apps/t1/events", &body);
        let s = tls_stream(srv.addr, &first_pem).await.unwrap();
        assert_eq!(http_on(s, "POST", &path, &body).await.0, 200);

        // WSS.
        let s = tls_stream(srv.addr, &first_pem).await.unwrap();
        let (mut ws, _) =
            tokio_tungstenite::client_async("wss://localhost/app/key-t1?protocol=7", s)
                .await
                .unwrap();
        expect_event(&mut ws, "pusher:connection_established").await;

        // Plain TCP to a TLS port gets no HTTP answer.
        let mut plain = TcpStream::connect(srv.addr).await.unwrap();
        plain
            .write_all(b"GET /up HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut buf = [0u8; 64];
        let n = tokio::time::timeout(WAIT, plain.read(&mut buf))
            .await
            .unwrap()
            .unwrap_or(0);
        assert!(!String::from_utf8_lossy(&buf[..n]).contains("HTTP/1.1 200"));

        // Reload with a broken key: refused, the old certificate stays.
        let tls = srv.tls.clone().expect("tls on");
        std::fs::write(files.key(), "not a key").unwrap();
        assert!(tls.reload().is_err());
        assert!(tls_stream(srv.addr, &first_pem).await.is_ok());

        // Reload with a new certificate: new handshakes use it, the open
        // connection keeps working.
        let second_pem = files.generate();
        tls.reload().unwrap();
        assert!(tls_stream(srv.addr, &first_pem).await.is_err());
        let s = tls_stream(srv.addr, &second_pem).await.unwrap();
        assert_eq!(http_on(s, "GET", "/up", "").await.0, 200);
        ws.send(Message::Text(
            json!({"event":"pusher:ping","data":{}}).to_string().into(),
        ))
        .await
        .unwrap();
        expect_event(&mut ws, "pusher:pong").await;

        srv.running.stop().await.unwrap();
    }

    #[tokio::test]
    async fn bad_certificate_files_fail_at_bind() {
        let files = Files::new("b");
        std::fs::write(files.cert(), "garbage").unwrap();
        std::fs::write(files.key(), "garbage").unwrap();
        let toml = format!(
            "{}\n[server.tls]\ncert_file = '{}'\nkey_file = '{}'\n",
            app("t2", "key-t2", ""),
            files.cert().display(),
            files.key().display()
        );
        let mut config = hush_server::Config::from_toml(&toml).unwrap();
        config.server.port = 0;
        let err = hush_server::Server::bind(config)
            .await
            .err()
            .expect("refused");
        assert!(err.to_string().contains("certificate"), "{err}");
    }

    /// A TLS client offering h2 gets HTTP/2 for the API (signed publish
    /// included); one offering only http/1.1 still gets HTTP/1.1, and
    /// WebSockets still open.
    #[tokio::test]
    async fn http2_for_the_api_when_offered_by_alpn() {
        use http_body_util::{BodyExt, Full};
        use hyper_util::rt::{TokioExecutor, TokioIo};
        let files = Files::new("h2");
        let pem = files.generate();
        let toml = format!(
            "{}\n[server.tls]\ncert_file = '{}'\nkey_file = '{}'\n",
            app("t3", "key-t3", ""),
            files.cert().display(),
            files.key().display()
        );
        let srv = start(&toml).await;
        let with_alpn = |protocols: &[&[u8]]| {
            let mut roots = rustls::RootCertStore::empty();
            roots
                .add(CertificateDer::from_pem_slice(pem.as_bytes()).unwrap())
                .unwrap();
            let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
            config.alpn_protocols = protocols.iter().map(|p| p.to_vec()).collect();
            tokio_rustls::TlsConnector::from(Arc::new(config))
        };
        let connect = |protocols: &'static [&'static [u8]]| {
            let c = with_alpn(protocols);
            async move {
                let tcp = TcpStream::connect(srv.addr).await.unwrap();
                c.connect(ServerName::try_from("localhost").unwrap(), tcp)
                    .await
                    .unwrap()
            }
        };

        let tls = connect(&[b"h2", b"http/1.1"]).await;
        assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
        let (mut send, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
                .await
                .unwrap();
        tokio::spawn(conn);
        let body = json!({"name": "ev", "channel": "c", "data": "x"}).to_string();
        for (method, path, body) in [
            ("GET", "/up".to_owned(), String::new()),
            (
                "POST",
                signed("t3", "key-t3", "POST", "/apps/t3/events", &body),
                body.clone(),
            ),
        ] {
            let req = hyper::Request::builder()
                .method(method)
                .uri(format!("https://localhost{path}"))
                .header("content-type", "application/json")
                .body(Full::new(bytes::Bytes::from(body)))
                .unwrap();
            let res = send.send_request(req).await.unwrap();
            assert_eq!(res.version(), hyper::Version::HTTP_2);
            let status = res.status();
            let text = res.into_body().collect().await.unwrap().to_bytes();
            assert_eq!(status, 200, "{path}: {text:?}");
        }

        let tls = connect(&[b"http/1.1"]).await;
        assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
        assert_eq!(http_on(tls, "GET", "/up", "").await.0, 200);
        let tls = connect(&[b"http/1.1"]).await;
        let (mut ws, _) =
            tokio_tungstenite::client_async("wss://localhost/app/key-t3?protocol=7", tls)
                .await
                .unwrap();
        expect_event(&mut ws, "pusher:connection_established").await;
    }
}

/// soketi's split: publishes and reads have their own allowances, so a burst
/// of `GET /channels` cannot use up the budget the backend needs to publish,
/// and the other way round.
#[tokio::test]
async fn publishes_and_reads_have_separate_limits() {
    let toml = format!(
        "[metrics]\nenabled = true\n{}",
        app(
            "lim",
            "key-lim",
            "max_publishes_per_second = 2\nmax_read_requests_per_second = 3\n"
        )
    );
    let srv = start(&toml).await;
    let read = || async {
        let path = "/apps/lim/channels";
        http(
            srv.addr,
            "GET",
            &signed("lim", "key-lim", "GET", path, ""),
            "",
        )
        .await
    };
    // Within one second: two publishes pass, the third is refused...
    assert_eq!(trigger(srv.addr, "lim", "key-lim", "c").await.0, 200);
    assert_eq!(trigger(srv.addr, "lim", "key-lim", "c").await.0, 200);
    let (status, body) = trigger(srv.addr, "lim", "key-lim", "c").await;
    assert_eq!(status, 429, "{body}");
    assert!(body.to_string().contains("publish requests"), "{body}");
    // ...while reads still have their own three.
    for _ in 0..3 {
        let (status, body) = read().await;
        assert_eq!(status, 200, "{body}");
    }
    let (status, body) = read().await;
    assert_eq!(status, 429, "{body}");
    assert!(body.contains("read requests"), "{body}");
    let m = metrics(&srv).await;
    let r = |reason| {
        value(
            &m,
            "hush_rejections_total",
            &[("app", "lim"), ("reason", reason)],
        )
    };
    assert_eq!(r("publish_rate"), Some(1.0));
    assert_eq!(r("read_rate"), Some(1.0));
    assert_eq!(r("api_rate"), Some(0.0));
}

/// A client that never reads is cut by the write timeout (its queue never
/// fills up: the limit is far away) and is counted as a slow client, like
/// one closed with 4100. It used to leave the metric at 0.
#[tokio::test]
async fn a_client_that_never_reads_is_counted_as_slow() {
    let toml = format!(
        "[metrics]\nenabled = true\n[server]\noutgoing_queue_frames = 100000\n{}",
        app("slow1", "key-slow1", "max_event_data_bytes = 70000")
    );
    let srv = start(&toml).await;
    let a = [("app", "slow1")];
    // A small receive window, so the kernel buffers fill up sooner.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let tcp = socket.connect(srv.addr).await.unwrap();
    let (mut ws, _) =
        tokio_tungstenite::client_async(format!("ws://{}/app/key-slow1?protocol=7", srv.addr), tcp)
            .await
            .unwrap();
    expect_event(&mut ws, "pusher:connection_established").await;
    ws.send(Message::Text(
        json!({"event":"pusher:subscribe","data":{"channel":"news"}})
            .to_string()
            .into(),
    ))
    .await
    .unwrap();
    expect_event(&mut ws, "pusher_internal:subscription_succeeded").await;
    // From here on the client reads nothing. 8 MB: more than the kernel
    // buffers on both sides hold, far fewer frames than the queue limit.
    let data = "x".repeat(64 * 1024);
    let body = json!({"name": "big", "channel": "news", "data": data}).to_string();
    for _ in 0..128 {
        let path = signed("slow1", "key-slow1", "POST", "/apps/slow1/events", &body);
        assert_eq!(http(srv.addr, "POST", &path, &body).await.0, 200);
    }
    let slow = |m: &prometheus_parse::Scrape| value(m, "hush_slow_client_disconnects_total", &a);
    // The write timeout is 10 s.
    let mut counted = None;
    for _ in 0..40 {
        counted = slow(&metrics(&srv).await);
        if counted == Some(1.0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(counted, Some(1.0));
    let m = metrics(&srv).await;
    assert_eq!(value(&m, "hush_connections", &a), Some(0.0));
    drop(ws);
    srv.running.stop().await.unwrap();
}

/// A TCP connection to `addr` from 127.0.0.`last`.
async fn connect_from(last: u8, addr: SocketAddr) -> TcpStream {
    let s = tokio::net::TcpSocket::new_v4().unwrap();
    s.bind(SocketAddr::from(([127, 0, 0, last], 0))).unwrap();
    s.connect(addr).await.unwrap()
}

#[tokio::test]
async fn sockets_the_gate_closes_are_counted_once_by_reason() {
    let toml = format!(
        "[metrics]\nenabled = true\n[server]\nmax_pending_connections = 3\nmax_pending_per_ip = 2\n{}",
        app("g1", "key-g1", "")
    );
    let srv = start(&toml).await;
    let shed = |s: &prometheus_parse::Scrape, reason: &str| {
        value(s, "hush_connections_shed_total", &[("reason", reason)]).unwrap_or(0.0)
    };
    let before = metrics(&srv).await;
    // Two pending sockets from one address; the third is refused.
    let mut held = vec![
        connect_from(2, srv.addr).await,
        connect_from(2, srv.addr).await,
        connect_from(2, srv.addr).await,
    ];
    // One more fills the table (3); two more evict the two oldest.
    for last in 3..6 {
        held.push(connect_from(last, srv.addr).await);
    }
    let want = |s: &prometheus_parse::Scrape| {
        (
            shed(s, "per_address") - shed(&before, "per_address"),
            shed(s, "evicted") - shed(&before, "evicted"),
        )
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut got = want(&metrics(&srv).await);
    while got != (1.0, 2.0) && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
        got = want(&metrics(&srv).await);
    }
    // And no more afterwards (the evicted connections' tasks do not count
    // their eviction again).
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(want(&metrics(&srv).await), (1.0, 2.0));
    drop(held);
}
