//! Microbenchmarks of the protocol hot paths: frame parse, event encode,
//! signature verification (channel auth and HTTP API) and presence data.
#![allow(missing_docs, clippy::unwrap_used)]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use hush_protocol::api::{QueryParams, body_md5, signed_query, verify_request};
use hush_protocol::{ChannelName, SocketId, auth, wire};

const KEY: &str = "278d425bdf160c739803";
const SECRET: &[u8] = b"7ad3773142a6692b25b8";

fn frames(c: &mut Criterion) {
    let sub = r#"{"event":"pusher:subscribe","data":{"auth":"278d425bdf160c739803:58df8b0c36d6982b82c3ecf6b4662e34fe8c25bba48f5369f135bf843651c3a4","channel":"private-foobar"}}"#;
    c.bench_function("parse subscribe frame", |b| {
        b.iter(|| wire::parse_client_frame(black_box(sub)).unwrap())
    });
    let ce = r#"{"event":"client-typing","channel":"presence-room","data":{"text":"hello there","at":1700000000}}"#;
    c.bench_function("parse client event frame", |b| {
        b.iter(|| wire::parse_client_frame(black_box(ce)).unwrap())
    });
    let data = format!(r#"{{"id":42,"body":"{}"}}"#, "x".repeat(200));
    c.bench_function("encode channel event (256 B data)", |b| {
        b.iter(|| {
            wire::channel_event(
                black_box("order-shipped"),
                black_box("orders"),
                black_box(&data),
            )
        })
    });
    let literal = hush_protocol::msgs::EventData::from_text(&data);
    c.bench_function("encode channel event from literal (256 B data)", |b| {
        b.iter(|| {
            wire::channel_event_data(
                black_box("order-shipped"),
                black_box("orders"),
                black_box(&literal),
            )
        })
    });
}

fn signatures(c: &mut Criterion) {
    let socket: SocketId = "1234.1234".parse().unwrap();
    let channel = ChannelName::parse("private-foobar").unwrap();
    let auth_value = auth::auth_value(KEY, &auth::sign_channel(SECRET, &socket, &channel, None));
    c.bench_function("verify channel auth", |b| {
        b.iter(|| {
            auth::verify_channel(KEY, SECRET, black_box(&auth_value), &socket, &channel, None)
                .unwrap()
        })
    });
    c.bench_function("parse socket id", |b| {
        b.iter(|| SocketId::parse(black_box("123456789.987654321")).unwrap())
    });
    c.bench_function("parse channel name", |b| {
        b.iter(|| ChannelName::parse(black_box("presence-room-12345")).unwrap())
    });
    let body = br#"{"name":"foo","channels":["project-3"],"data":"{\"some\":\"data\"}"}"#;
    let q = signed_query(
        KEY,
        SECRET,
        "POST",
        "/apps/3/events",
        QueryParams::default(),
        body,
        1_353_088_179,
    );
    c.bench_function("verify HTTP API request", |b| {
        b.iter(|| {
            let p = QueryParams::parse(black_box(&q)).unwrap();
            verify_request(SECRET, "POST", "/apps/3/events", &p, body, 1_353_088_179).unwrap()
        })
    });
    let big = vec![b'x'; 10_240];
    c.bench_function("body_md5 10 KiB", |b| b.iter(|| body_md5(black_box(&big))));
}

fn presence(c: &mut Criterion) {
    let members: Vec<(String, String)> = (0..100)
        .map(|i| (format!("user-{i}"), format!(r#"{{"name":"User {i}"}}"#)))
        .collect();
    c.bench_function("presence data, 100 members", |b| {
        b.iter(|| wire::presence_data(members.iter().map(|(a, b)| (a.as_str(), b.as_str()))))
    });
}

criterion_group!(benches, frames, signatures, presence);
criterion_main!(benches);
