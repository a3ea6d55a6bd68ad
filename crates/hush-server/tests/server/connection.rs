use std::time::Duration;

use serde_json::{Value, json};

use crate::common::*;

#[tokio::test]
async fn handshake_and_ping() {
    let s = start(&app_toml("")).await;
    let mut c = s.connect().await;
    let est = c.next_event().await;
    assert_eq!(est["event"], "pusher:connection_established");
    let inner: Value =
        serde_json::from_str(est["data"].as_str().expect("data is a string")).unwrap();
    let sid = inner["socket_id"].as_str().unwrap();
    assert!(hush_protocol::SocketId::parse(sid).is_ok(), "{sid}");
    assert_eq!(inner["activity_timeout"], 120);
    for ping in [
        json!({"event":"pusher:ping","data":{}}),
        json!({"event":"pusher:ping","data":"{}"}),
        json!({"event":"pusher:ping"}),
    ] {
        c.send(ping).await;
        assert_eq!(
            c.next_event().await,
            json!({"event":"pusher:pong","data":"{}"})
        );
    }
    s.stop().await;
}

async fn refused(s: &TestServer, path: &str) -> (Value, Option<u16>) {
    let mut c = s.connect_path(path).await;
    let err = c.next_event().await;
    assert_eq!(err["event"], "pusher:error", "{err}");
    (err, c.expect_close().await)
}

#[tokio::test]
async fn refusals_carry_pusher_codes() {
    let toml = format!(
        "{}\n[apps.off]\nid='9'\nkey='offkey'\nsecret='x'\nenabled=false\n",
        app_toml("max_connections = 1")
    );
    let s = start(&toml).await;
    for (path, code) in [
        ("/app/nope?protocol=7", 4001),
        ("/app/offkey?protocol=7", 4003),
        (&format!("/app/{KEY}?protocol=abc") as &str, 4006),
        (&format!("/app/{KEY}?protocol=4"), 4007),
        (&format!("/app/{KEY}?protocol=8"), 4007),
        (&format!("/app/{KEY}"), 4008),
        ("/foo", 4005),
        (&format!("/app/{KEY}/extra?protocol=7"), 4005),
    ] {
        let (err, close) = refused(&s, path).await;
        assert_eq!(err["data"]["code"], code, "{path}: {err}");
        assert_eq!(close, Some(code), "{path}");
    }
    for p in [5, 6] {
        let mut c = s.connect_path(&format!("/app/{KEY}?protocol={p}")).await;
        assert_eq!(
            c.next_event().await["event"],
            "pusher:connection_established"
        );
        drop(c);
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    // App quota of one connection: the second gets 4004.
    let _first = s.client().await;
    let (err, close) = refused(&s, &format!("/app/{KEY}?protocol=7")).await;
    assert_eq!(err["data"]["code"], 4004);
    assert_eq!(close, Some(4004));
    s.stop().await;
}

#[tokio::test]
async fn node_capacity_is_4100() {
    let s = start(&format!("[server]\nmax_connections = 1\n{}", app_toml(""))).await;
    let _first = s.client().await;
    let (err, close) = refused(&s, &format!("/app/{KEY}?protocol=7")).await;
    assert_eq!(err["data"]["code"], 4100);
    assert_eq!(close, Some(4100));
    s.stop().await;
}

#[tokio::test]
async fn bad_frames_get_errors_and_the_connection_survives() {
    let s = start(&format!(
        "[server]\nmax_message_bytes = 1024\n{}",
        app_toml("")
    ))
    .await;
    let mut c = s.client().await;
    let mut other = s.client().await;
    other.subscribe_ok("news").await;
    for bad in [
        "not json",
        "{}",
        r#"{"event":1}"#,
        r#"{"event":"pusher:subscribe","data":{}}"#,
        r#"{"event":"hello"}"#,
        "[1,2]",
    ] {
        c.send_text(bad).await;
        let e = c.next_event().await;
        assert_eq!(e["event"], "pusher:error", "{bad}");
        assert_eq!(e["data"]["code"], Value::Null, "{bad}");
    }
    c.send_binary(vec![1, 2, 3]).await;
    assert_eq!(c.next_event().await["event"], "pusher:error");
    // Unknown pusher events are ignored.
    c.send(json!({"event":"pusher:whatever","data":{}})).await;
    c.send(json!({"event":"pusher:ping","data":{}})).await;
    assert_eq!(c.next_event().await["event"], "pusher:pong");
    // Oversize message: closed with 1009, others unaffected.
    c.send_text(&format!(
        r#"{{"event":"client-x","data":"{}"}}"#,
        "a".repeat(2000)
    ))
    .await;
    assert_eq!(c.expect_close().await, Some(1009));
    s.trigger("news", "e", "still here").await;
    assert_eq!(other.expect("e").await["data"], "still here");
    s.stop().await;
}

#[tokio::test]
async fn server_pings_then_closes_4201_without_pong() {
    let s = start(&format!(
        "[server]\nactivity_timeout = 1\nping_grace = 0\npong_timeout = 1\n{}",
        app_toml("")
    ))
    .await;
    let mut alive = s.client().await;
    let mut dead = s.client().await;
    assert_eq!(
        dead.next_event().await,
        json!({"event":"pusher:ping","data":"{}"})
    );
    assert_eq!(alive.next_event().await["event"], "pusher:ping");
    alive.send(json!({"event":"pusher:pong","data":{}})).await;
    let err = dead.next_event().await;
    assert_eq!(err["data"]["code"], 4201);
    assert_eq!(dead.expect_close().await, Some(4201));
    // The one that answered is still there and pinged again later.
    assert_eq!(alive.next_event().await["event"], "pusher:ping");
    s.stop().await;
}

#[tokio::test]
async fn shutdown_asks_clients_to_reconnect() {
    let s = start(&app_toml("")).await;
    let mut a = s.client().await;
    let mut b = s.client().await;
    let addr = s.addr;
    let stop = tokio::spawn(s.stop());
    assert_eq!(a.expect("pusher:error").await["data"]["code"], 4200);
    assert_eq!(a.expect_close().await, Some(4200));
    assert_eq!(b.expect_close().await, Some(4200));
    stop.await.unwrap();
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "listener closed after drain"
    );
}

#[tokio::test]
async fn slow_reader_is_closed_4100_and_others_keep_receiving() {
    let s = start(&format!(
        "[server]\noutgoing_queue_frames = 64\n{}",
        app_toml("")
    ))
    .await;
    let mut fast = s.client().await;
    let mut slow = s.client().await;
    fast.subscribe_ok("firehose").await;
    slow.subscribe_ok("firehose").await;
    let payload = "x".repeat(10_000);
    let body = json!({"batch": (0..10).map(|_| json!({"name":"e","channel":"firehose","data":payload})).collect::<Vec<_>>()}).to_string();
    // `slow` never reads; `fast` drains concurrently. Publish at most ~40 MB.
    let reader = tokio::spawn(async move {
        let mut n = 0usize;
        while let Some(Next::Frame(v)) = fast.next_within(Duration::from_secs(5)).await {
            if v["event"] == "e" {
                n += 1;
            }
            if n == 4000 {
                break;
            }
        }
        n
    });
    for _ in 0..400 {
        let (st, _) = s
            .api("POST", &format!("/apps/{ID}/batch_events"), &[], &body)
            .await;
        assert_eq!(st, 200);
    }
    assert_eq!(reader.await.unwrap(), 4000, "the fast reader lost nothing");
    assert_eq!(slow.expect_close().await, Some(4100));
    s.stop().await;
}

/// A reload that removes an app closes its connections (4001) and counts
/// each of them, though they close at once on the other worker threads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_an_app_closes_and_counts_its_connections() {
    let other = "[apps.other]\nid = 'o'\nkey = 'ko'\nsecret = 'so'\n";
    let mut config = hush_server::Config::from_toml(&format!("{}{other}", app_toml(""))).unwrap();
    config.store.url = Some("sqlite::memory:".into());
    config.server.host = "127.0.0.1".into();
    config.server.port = 0;
    config.server.shutdown_timeout = 1;
    let server = hush_server::Server::bind(config).await.unwrap();
    let state = server.state();
    let addr = server.local_addr();
    let running = server.spawn();
    for round in 0..5 {
        if round > 0 {
            let back = format!("{}{other}", app_toml(""));
            let r = state.reload_apps(&hush_server::Config::from_toml(&back).unwrap());
            assert_eq!(r.added, ["o"]);
        }
        let mut conns = Vec::new();
        for _ in 0..3 {
            let mut c = Client::connect(&format!("ws://{addr}/app/ko?protocol=7")).await;
            c.established().await;
            conns.push(c);
        }
        let r = state.reload_apps(&hush_server::Config::from_toml(&app_toml("")).unwrap());
        assert_eq!(r.removed, ["o"]);
        assert_eq!(r.closed, 3, "round {round}");
        for c in &mut conns {
            assert_eq!(c.expect_close().await, Some(4001));
        }
    }
    running.stop().await.unwrap();
}
