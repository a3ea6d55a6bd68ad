//! Hostile clients at the connection level: silent and dribbling HTTP
//! connections, too many of them from one address or in all, oversized
//! queries, readers that never read, and the WebSocket close handshake.
//! Each test fails on a server without the matching defence.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use crate::common::*;

/// A TCP connection to `addr` from 127.0.0.`last`.
async fn connect_from(last: u8, addr: SocketAddr) -> TcpStream {
    let s = TcpSocket::new_v4().unwrap();
    s.bind(SocketAddr::from(([127, 0, 0, last], 0))).unwrap();
    s.connect(addr).await.unwrap()
}

/// Reads (and discards) until the server closes the connection; returns
/// how long that took, or `None` if it was still open after `within`.
async fn closed_within(s: &mut TcpStream, within: Duration) -> Option<Duration> {
    let t0 = Instant::now();
    let mut buf = [0u8; 4096];
    tokio::time::timeout(within, async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return t0.elapsed(),
                Ok(_) => {}
            }
        }
    })
    .await
    .ok()
}

/// Reads what the server sends until it closes (bounded).
async fn read_all(s: &mut TcpStream) -> String {
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(WAIT, s.read_to_end(&mut buf)).await;
    String::from_utf8_lossy(&buf).into_owned()
}

#[tokio::test]
async fn silent_and_dribbling_http_connections_time_out() {
    let srv = start(&app_toml(
        "[server]\nhttp_header_timeout = 1\nhttp_request_timeout = 1\n",
    ))
    .await;
    let addr = srv.addr;
    let limit = Duration::from_secs(4);

    // A bare TCP connect that never sends a byte.
    let mut bare = TcpStream::connect(addr).await.unwrap();
    // A request line, then silence.
    let mut line = TcpStream::connect(addr).await.unwrap();
    line.write_all(b"GET /up HTTP/1.1\r\n").await.unwrap();
    let (a, b) = tokio::join!(
        closed_within(&mut bare, limit),
        closed_within(&mut line, limit)
    );
    assert!(a.is_some(), "a silent connection stayed open");
    assert!(b.is_some(), "a request line without headers stayed open");

    // A WebSocket upgrade dribbled a byte every 100 ms: the header deadline
    // holds although bytes keep coming (sending it all would take 20 s).
    let upgrade = format!(
        "GET /app/{KEY}?protocol=7 HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nX-Pad: {}\r\n\r\n",
        "p".repeat(60)
    );
    let mut slow = TcpStream::connect(addr).await.unwrap();
    let t0 = Instant::now();
    let mut closed = false;
    for byte in upgrade.as_bytes() {
        if slow.write_all(&[*byte]).await.is_err() {
            closed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        if t0.elapsed() > limit {
            break;
        }
    }
    if !closed {
        closed = closed_within(&mut slow, Duration::from_millis(500))
            .await
            .is_some();
    }
    assert!(
        closed,
        "a dribbled WebSocket handshake was still open after {limit:?}"
    );
    assert!(t0.elapsed() < limit);

    // A POST whose body is dribbled: 408 by the request deadline.
    let mut body = TcpStream::connect(addr).await.unwrap();
    body.write_all(
        format!("POST /apps/{ID}/events?auth_key={KEY} HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{{")
            .as_bytes(),
    )
    .await
    .unwrap();
    let dribble = async {
        for _ in 0..40 {
            if body.write_all(b" ").await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    let t0 = Instant::now();
    let _ = tokio::time::timeout(Duration::from_millis(1500), dribble).await;
    let answer = read_all(&mut body).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(t0.elapsed() < limit);

    // Keep-alive: after a full request and its answer, an idle connection
    // is closed too.
    let mut idle = TcpStream::connect(addr).await.unwrap();
    idle.write_all(b"GET /up HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut first = [0u8; 12];
    idle.read_exact(&mut first).await.unwrap();
    assert_eq!(&first, b"HTTP/1.1 200");
    assert!(
        closed_within(&mut idle, limit).await.is_some(),
        "an idle keep-alive connection stayed open"
    );
    srv.stop().await;
}

#[tokio::test]
async fn pending_connections_cannot_lock_others_out() {
    let srv = start(&app_toml(
        "[server]\nmax_pending_connections = 40\nmax_pending_per_ip = 10\n",
    ))
    .await;
    let addr = srv.addr;

    // One address gets 10 pending sockets; the 11th is closed at once.
    let mut mine = Vec::new();
    for _ in 0..10 {
        mine.push(connect_from(2, addr).await);
    }
    let mut extra = connect_from(2, addr).await;
    assert!(
        closed_within(&mut extra, Duration::from_secs(2))
            .await
            .is_some(),
        "an 11th pending socket from one address was kept"
    );

    // Many addresses fill the node's table several times over: the oldest
    // give way, and real clients still get through.
    let mut crowd = Vec::new();
    for i in 0..100u8 {
        crowd.push(connect_from(10 + i / 10, addr).await);
    }
    let mut first = connect_from(2, addr).await;
    // The first of the 127.0.0.2 sockets was evicted long ago.
    assert!(
        closed_within(&mut mine[0], Duration::from_secs(2))
            .await
            .is_some(),
        "the oldest pending socket was not evicted"
    );
    let (status, body) = srv.raw_http("GET", "/up", "").await;
    assert_eq!((status, &body["status"]), (200, &json!("up")));
    let mut ws = srv.client().await;
    ws.subscribe_ok("open-channel").await;
    let (status, _) = srv.trigger("open-channel", "e", "{}").await;
    assert_eq!(status, 200);
    ws.expect("e").await;
    // The newest crowd sockets are still open (a busy node is not a closed
    // one): they were not evicted before older ones.
    assert!(
        closed_within(crowd.last_mut().unwrap(), Duration::from_millis(200))
            .await
            .is_none()
    );
    drop(first.shutdown().await);
    srv.stop().await;
}

#[tokio::test]
async fn a_huge_unsigned_query_is_refused_without_parsing_it() {
    let srv = start(&app_toml("")).await;
    // 16,645 distinct short keys: 65 kB, just under hyper's URI limit, so
    // the request reaches the application unless the head cap stops it.
    let base36 = |mut i: u32| {
        let mut k = Vec::new();
        loop {
            k.push(b"0123456789abcdefghijklmnopqrstuvwxyz"[(i % 36) as usize]);
            i /= 36;
            if i == 0 {
                return String::from_utf8(k).unwrap();
            }
        }
    };
    let query: String = (0..16_645).map(base36).collect::<Vec<_>>().join("&");
    assert!(
        query.len() > 60_000 && query.len() < 65_400,
        "{}",
        query.len()
    );
    // Sent raw: the query is over the request-head cap (431) ...
    let mut s = TcpStream::connect(srv.addr).await.unwrap();
    s.write_all(format!("GET /apps/{ID}/channels?{query} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let answer = read_all(&mut s).await;
    assert!(
        answer.starts_with("HTTP/1.1 431"),
        "{}",
        &answer[..answer.len().min(200)]
    );
    // ... and within the head cap, over the parameter cap: 400 at once.
    let query: String = (0..1000)
        .map(|i| format!("k{i}=v"))
        .collect::<Vec<_>>()
        .join("&");
    let (status, body) = srv
        .raw_http("GET", &format!("/apps/{ID}/channels?{query}"), "")
        .await;
    assert_eq!(status, 400, "{body}");
    srv.stop().await;
}

#[tokio::test]
async fn a_reader_that_never_reads_is_closed_by_bytes_not_frames() {
    let srv = start(&app_toml(
        "max_event_data_bytes = 70000\n[server]\noutgoing_queue_bytes = 1000000\nmax_body_bytes = 200000\n",
    ))
    .await;
    let mut lazy = srv.client().await;
    lazy.subscribe_ok("big").await;
    // 300 frames of 60 kB (18 MB): far fewer frames than the 512 allowed,
    // far more bytes than the budget plus what the kernel buffers hold.
    let data = "x".repeat(60_000);
    for _ in 0..300 {
        let (status, _) = srv.trigger("big", "e", &data).await;
        assert_eq!(status, 200);
    }
    let mut events = 0;
    let code = loop {
        match lazy.next_within(WAIT).await {
            Some(Next::Frame(v)) if v["event"] == "e" => events += 1,
            Some(Next::Frame(v)) if v["event"] == "pusher:error" => {}
            Some(Next::Closed(code)) => break code,
            Some(Next::Frame(v)) => panic!("unexpected {v}"),
            None => panic!("not closed after {events} events"),
        }
    };
    assert_eq!(code, Some(4100));
    assert!(events < 300, "{events}");
    srv.stop().await;
}

/// A masked client frame: FIN, `opcode`, with `payload`.
fn client_frame(first: u8, payload: &[u8]) -> Vec<u8> {
    assert!(payload.len() < 126);
    let mask = [1u8, 2, 3, 4];
    let mut f = vec![first, 0x80 | payload.len() as u8];
    f.extend_from_slice(&mask);
    f.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    f
}

/// A raw WebSocket connection past `pusher:connection_established`.
async fn raw_ws(addr: SocketAddr) -> TcpStream {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(
        format!(
            "GET /app/{KEY}?protocol=7 HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    // The 101 head, then the first text frame (connection_established).
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut b = [0u8; 1];
        s.read_exact(&mut b).await.unwrap();
        head.push(b[0]);
    }
    assert!(head.starts_with(b"HTTP/1.1 101"));
    let mut h = [0u8; 2];
    s.read_exact(&mut h).await.unwrap();
    let len = match h[1] {
        126 => {
            let mut l = [0u8; 2];
            s.read_exact(&mut l).await.unwrap();
            usize::from(u16::from_be_bytes(l))
        }
        n => usize::from(n),
    };
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).await.unwrap();
    s
}

/// Reads frames until a Close; returns its code, then expects EOF.
async fn close_code(s: &mut TcpStream) -> Option<u16> {
    let code = tokio::time::timeout(WAIT, async {
        loop {
            let mut h = [0u8; 2];
            if s.read_exact(&mut h).await.is_err() {
                return None;
            }
            let len = match h[1] & 0x7f {
                126 => {
                    let mut l = [0u8; 2];
                    s.read_exact(&mut l).await.ok()?;
                    usize::from(u16::from_be_bytes(l))
                }
                n => usize::from(n),
            };
            let mut body = vec![0u8; len];
            s.read_exact(&mut body).await.ok()?;
            if h[0] & 0x0f == 0x8 {
                return Some(
                    body.get(..2)
                        .map_or(1005, |c| u16::from_be_bytes([c[0], c[1]])),
                );
            }
        }
    })
    .await
    .ok()
    .flatten();
    assert!(
        closed_within(s, WAIT).await.is_some(),
        "TCP not closed after the Close frame"
    );
    code
}

#[tokio::test]
async fn close_handshake_and_protocol_errors_follow_rfc6455() {
    let srv = start(&app_toml("")).await;
    // A client Close is answered with a Close echoing its code (§5.5.1).
    let mut s = raw_ws(srv.addr).await;
    s.write_all(&client_frame(0x88, &[0x03, 0xe8, b'b', b'y', b'e']))
        .await
        .unwrap();
    assert_eq!(close_code(&mut s).await, Some(1000));
    let mut s = raw_ws(srv.addr).await;
    s.write_all(&client_frame(0x88, &[0x0f, 0xa0]))
        .await
        .unwrap();
    assert_eq!(close_code(&mut s).await, Some(4000));

    let cases: [(&str, Vec<u8>, u16); 7] = [
        (
            "invalid UTF-8 text",
            client_frame(0x81, &[0xc3, 0x28]),
            1007,
        ),
        (
            "oversized control frame",
            {
                let mut f = vec![0x89, 0x80 | 126, 0, 126, 1, 2, 3, 4];
                f.extend(std::iter::repeat_n(0u8, 126));
                f
            },
            1002,
        ),
        ("unmasked client frame", vec![0x81, 0x02, b'{', b'}'], 1002),
        (
            "RSV bit without an extension",
            client_frame(0xc1, b"{}"),
            1002,
        ),
        ("reserved data opcode", client_frame(0x83, b"{}"), 1002),
        ("reserved control opcode", client_frame(0x8b, b""), 1002),
        ("fragmented control frame", client_frame(0x09, b""), 1002),
    ];
    for (what, frame, want) in cases {
        let mut s = raw_ws(srv.addr).await;
        s.write_all(&frame).await.unwrap();
        assert_eq!(close_code(&mut s).await, Some(want), "{what}");
    }
    // Over max_message_bytes: 1009.
    let mut c = srv.client().await;
    c.send_text(&"x".repeat(70_000)).await;
    assert_eq!(c.expect_close().await, Some(1009));
    srv.stop().await;
}
