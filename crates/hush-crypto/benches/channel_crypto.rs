//! Encrypted-channel crypto per event, 1 KiB of data: suite 0 (Pusher's
//! secretbox envelope) and hush's sealed events (docs/E2EE-CHANNELS.md),
//! plus epoch-key derivation. Run: `cargo bench -p hush-crypto --bench channel_crypto`.
#![allow(missing_docs, clippy::unwrap_used)]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use hush_crypto::epoch::epoch_key;
use hush_crypto::sealed::{self, ReplayGuard, Sender};
use hush_crypto::{EncryptedData, MasterKey, open, seal};
use hush_protocol::ChannelName;

const NOW_MS: u64 = 1_700_000_000_000;

fn channel_crypto(c: &mut Criterion) {
    let master = MasterKey::generate();
    let channel = ChannelName::parse("private-encrypted-bench").unwrap();
    let key = epoch_key(&channel, &master, 0);
    let data = format!(r#"{{"body":"{}"}}"#, "x".repeat(1024 - 11));

    c.bench_function("suite0 seal 1 KiB", |b| {
        b.iter(|| seal(&key, black_box(data.as_bytes())))
    });
    let sealed0 = seal(&key, data.as_bytes());
    c.bench_function("suite0 open 1 KiB", |b| {
        b.iter(|| open(&key, black_box(&sealed0)).unwrap())
    });

    let key7 = epoch_key(&channel, &master, 7);
    c.bench_function("epoch key derivation (HKDF-SHA256)", |b| {
        b.iter(|| epoch_key(black_box(&channel), &master, black_box(7)))
    });
    let mut sender = Sender::new();
    c.bench_function("sealed event seal 1 KiB (pads to 2 KiB)", |b| {
        b.iter(|| {
            sender
                .seal(&key7, &channel, 7, "message", black_box(&data), NOW_MS)
                .unwrap()
        })
    });
    let wire = sender
        .seal(&key7, &channel, 7, "message", &data, NOW_MS)
        .unwrap();
    let mut guard = ReplayGuard::default();
    let mut seq = 0u64;
    c.bench_function("sealed event open + replay check 1 KiB", |b| {
        b.iter(|| {
            let envelope = EncryptedData::from_json(black_box(&wire)).unwrap();
            let mut opened = sealed::open(&key7, &channel, &envelope).unwrap();
            // A fresh sequence number each time, so the replay check accepts.
            seq += 1;
            opened.seq = seq;
            guard.check(&opened, NOW_MS).unwrap();
        })
    });
}

criterion_group!(benches, channel_crypto);
criterion_main!(benches);
