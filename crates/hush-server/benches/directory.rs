//! The key directory's cost (issue 13, "Speed"): server CPU of a lookup of
//! 50 users with proofs, client verification of those 50 proofs, an epoch of
//! 1000 updates, and proof sizes, on a tree of `HUSH_BENCH_DIR_USERS` users
//! (default 10,000; the 10^6 figure in BENCHMARKS.md comes from
//! `HUSH_BENCH_DIR_USERS=1000000`). akd runs over its in-memory database here:
//! CPU, not SQLite (the store's own figures are hush-store's
//! `measure_publish_and_lookup`).
#![allow(missing_docs, clippy::unwrap_used)]

use std::hint::black_box;
use std::time::Instant;

use akd::storage::StorageManager;
use akd::storage::memory::AsyncInMemoryDatabase;
use akd::{AkdValue, EpochHash};
use akd_core::ecvrf::{HardCodedAkdVRF, VRFKeyStorage};
use criterion::{Criterion, criterion_group, criterion_main};
use hush_crypto::identity::{DeviceCard, DeviceKeys, IdentityKey, UnsignedCard};
use hush_crypto::transparency::TreeHead;
use hush_crypto::transparency::proofs::{
    AkdConfig, UserEntry, VrfPublicKey, encode_lookup_proof, label, verify_lookup,
};
use hush_protocol::UserId;

type Dir = akd::Directory<AkdConfig, AsyncInMemoryDatabase, HardCodedAkdVRF>;

/// A realistic entry: one identity, two device cards.
fn entry(user: &UserId, id: &IdentityKey, seed: u64) -> Vec<u8> {
    let cards = (0..2u64)
        .map(|d| {
            let mut s = [0u8; 32];
            s[..8].copy_from_slice(&(seed * 2 + d).to_be_bytes());
            let keys = DeviceKeys::from_secret_bytes(&s, &[7; 32]);
            let body = UnsignedCard::new(
                user.clone(),
                &id.public_key(),
                &keys,
                1_750_000_000,
                1_760_000_000,
                None,
            );
            DeviceCard::issue(body, &keys, id).unwrap()
        })
        .collect::<Vec<_>>();
    let mut cards = cards;
    cards.sort_by_key(DeviceCard::device_id);
    UserEntry {
        identity: id.public_key(),
        cards,
        revocations: Vec::new(),
    }
    .to_bytes()
}

fn user(i: u64) -> UserId {
    UserId::parse(&format!("user-{i}")).unwrap()
}

fn bench(c: &mut Criterion) {
    let n: u64 = std::env::var("HUSH_BENCH_DIR_USERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let id = IdentityKey::from_secret_bytes(&[1; 32]);
    // One entry's bytes reused for every user's value (cards are signed for
    // user-0; the tree does not look inside values, and verification below
    // uses entries made for their own user).
    let template = entry(&user(0), &id, 0);
    let dir: Dir = rt.block_on(async {
        Dir::new(
            StorageManager::new_no_cache(AsyncInMemoryDatabase::new()),
            HardCodedAkdVRF,
            akd::append_only_zks::AzksParallelismConfig::disabled(),
        )
        .await
        .unwrap()
    });
    let built = Instant::now();
    let batch = 50_000u64;
    let mut start = 0;
    while start < n {
        let end = (start + batch).min(n);
        let updates = (start..end)
            .map(|i| {
                let v = if i < 100 {
                    entry(&user(i), &id, i)
                } else {
                    template.clone()
                };
                (label(&user(i)), AkdValue(v))
            })
            .collect();
        rt.block_on(dir.publish(updates)).unwrap();
        start = end;
    }
    eprintln!(
        "directory of {n} users built in {:.1} s ({} epochs)",
        built.elapsed().as_secs_f64(),
        n.div_ceil(batch)
    );
    let vrf_pk: [u8; 32] = rt
        .block_on(HardCodedAkdVRF.get_vrf_public_key())
        .unwrap()
        .to_bytes()
        .as_slice()
        .try_into()
        .unwrap();
    let vrf = VrfPublicKey::from_bytes(&vrf_pk).unwrap();

    // 50 users that have entries of their own (verification parses them).
    let users: Vec<UserId> = (0..50).map(user).collect();
    let lookup50 = || {
        rt.block_on(async {
            let mut out = Vec::with_capacity(50);
            let mut at = None;
            for u in &users {
                let (p, e) = dir.lookup(label(u)).await.unwrap();
                at = Some(e);
                out.push(encode_lookup_proof(&p));
            }
            (out, at.unwrap())
        })
    };
    let (proofs, EpochHash(epoch, root)) = lookup50();
    let sizes: Vec<usize> = proofs.iter().map(Vec::len).collect();
    eprintln!(
        "lookup proof at {n} users: {} bytes on average (entry of 2 cards: {} bytes)",
        sizes.iter().sum::<usize>() / sizes.len(),
        entry(&user(0), &id, 0).len()
    );
    let head = TreeHead {
        log_id: "3".into(),
        epoch,
        root,
        timestamp: 0,
    };
    let mut g = c.benchmark_group(format!("directory, {n} users"));
    g.sample_size(10);
    g.bench_function("server: lookup proofs for 50 users", |b| {
        b.iter(|| black_box(lookup50()))
    });
    g.bench_function("client: verify 50 lookup proofs", |b| {
        b.iter(|| {
            for (u, p) in users.iter().zip(&proofs) {
                black_box(verify_lookup(&vrf, &head, u, p).unwrap());
            }
        })
    });
    let mut round = 0u64;
    g.bench_function("server: publish an epoch of 1000 updates", |b| {
        b.iter(|| {
            round += 1;
            let updates = (0..1000u64)
                .map(|i| {
                    let u = user((round * 1000 + i) % n);
                    let mut v = template.clone();
                    v.push((round % 251) as u8);
                    (label(&u), AkdValue(v))
                })
                .collect();
            rt.block_on(dir.publish(updates)).unwrap()
        })
    });
    // The floor under both: one ECVRF proof and one verification (a lookup
    // proof carries three: the version, its marker, the next version's
    // absence).
    let sk: akd_core::ecvrf::VRFPrivateKey =
        rt.block_on(HardCodedAkdVRF.get_vrf_private_key()).unwrap();
    let pk = akd_core::ecvrf::VRFPublicKey::from(&sk);
    let proof = sk.prove(b"alpha");
    g.bench_function("one ECVRF prove", |b| {
        b.iter(|| black_box(sk.prove(b"alpha")))
    });
    g.bench_function("one ECVRF verify", |b| {
        b.iter(|| pk.verify(black_box(&proof), b"alpha").unwrap())
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
