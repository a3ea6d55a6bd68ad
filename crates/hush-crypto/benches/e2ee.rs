//! Criterion benchmarks of hush-crypto: suite 1 seal + sign (1 KiB to 1, 10
//! and 100 devices) and open + verify, suite 0 seal/open (1 KiB), safety
//! numbers.
#![allow(missing_docs, clippy::unwrap_used)]

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use hush_crypto::identity::{DeviceCard, DeviceId, DeviceKeys, IdentityKey, UnsignedCard};
use hush_crypto::safety::SafetyNumber;
use hush_crypto::suite1::{
    Envelope, Recipient, ReplayGuard, SealRequest, TrustedSender, seal_with_limit,
};
use hush_crypto::{MasterKey, open, seal, shared_secret};
use hush_protocol::{ChannelName, EventName, UserId};

struct Device {
    id: DeviceId,
    keys: DeviceKeys,
    card: DeviceCard,
}

fn device(user: &UserId, identity: &IdentityKey) -> Device {
    let keys = DeviceKeys::generate();
    let id = keys.device_id();
    let body = UnsignedCard::new(
        user.clone(),
        &identity.public_key(),
        &keys,
        1_700_000_000,
        1_900_000_000,
        None,
    );
    let card = DeviceCard::issue(body, &keys, identity).unwrap();
    Device { id, keys, card }
}

fn suite1(c: &mut Criterion) {
    let alice = UserId::parse("alice").unwrap();
    let alice_identity = IdentityKey::generate();
    let sender = device(&alice, &alice_identity);
    let bob = UserId::parse("bob").unwrap();
    let bob_identity = IdentityKey::generate();
    let devices: Vec<Device> = (0..100).map(|_| device(&bob, &bob_identity)).collect();
    let recipients: Vec<Recipient> = devices.iter().map(|d| Recipient::from(&d.card)).collect();
    let channel = ChannelName::parse("private-chat-42").unwrap();
    let event = EventName::parse_api("e2ee").unwrap();
    let inner = EventName::parse_api("message").unwrap();
    let plaintext = vec![0x42u8; 1024];
    let req = |n: usize| SealRequest {
        sender_user: &alice,
        sender_device: sender.id,
        sender_keys: &sender.keys,
        channel: &channel,
        event: &event,
        inner_event: &inner,
        timestamp_ms: 1_750_000_000_000,
        sequence: 1,
        recipients: &recipients[..n],
        tree_head: None,
    };

    let mut group = c.benchmark_group("suite1 seal+sign 1 KiB");
    for n in [1usize, 10, 100] {
        group.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, &n| {
            // 100 devices exceed Pusher's 10 KB event limit: no limit here,
            // as for a mailbox transport.
            b.iter(|| seal_with_limit(&req(n), black_box(&plaintext), usize::MAX).unwrap())
        });
    }
    group.finish();

    let data = seal_with_limit(&req(10), &plaintext, usize::MAX).unwrap();
    let alice_pub = alice_identity.public_key();
    let trusted = TrustedSender {
        card: &sender.card,
        identity: &alice_pub,
        revocations: &[],
    };
    let me = &devices[9];
    c.bench_function("suite1 open+verify 1 KiB (10-device envelope)", |b| {
        b.iter(|| {
            let env = Envelope::from_data(black_box(&data)).unwrap();
            env.open(
                &me.card,
                &me.keys,
                &trusted,
                &mut ReplayGuard::new(1),
                1_750_000_000_000,
            )
            .unwrap()
        })
    });
}

fn suite0(c: &mut Criterion) {
    let master = MasterKey::from_base64("dGhpcyBpcyAzMiBieXRlcyBsb25nLCBpdCByZWFsbHk=").unwrap();
    let key = shared_secret(
        &ChannelName::parse("private-encrypted-foo").unwrap(),
        &master,
    );
    let plaintext = vec![0x42u8; 1024];
    c.bench_function("suite0 seal 1 KiB", |b| {
        b.iter(|| seal(&key, black_box(&plaintext)))
    });
    let data = seal(&key, &plaintext);
    c.bench_function("suite0 open 1 KiB", |b| {
        b.iter(|| open(&key, black_box(&data)).unwrap())
    });
}

fn others(c: &mut Criterion) {
    let a = IdentityKey::generate().public_key();
    let b_key = IdentityKey::generate().public_key();
    let (ua, ub) = (
        UserId::parse("alice").unwrap(),
        UserId::parse("bob").unwrap(),
    );
    c.bench_function("safety number (2 x 5200 SHA-512)", |b| {
        b.iter(|| SafetyNumber::for_users(&ua, &a, &ub, &b_key).display())
    });
    // Directory proofs (akd) are benchmarked with a real tree:
    // `cargo bench -p hush-server --bench directory`.
}

/// The primitives suite 1 is made of, for the cost breakdown.
fn primitives(c: &mut Criterion) {
    use ed25519_dalek::{Signer, SigningKey};
    use hpke::{Kem as _, OpModeR, OpModeS};
    type Kem = hpke::kem::X25519HkdfSha256;
    type Aead = hpke::aead::ChaCha20Poly1305;
    type Kdf = hpke::kdf::HkdfSha256;

    let msg = vec![0x42u8; 1024];
    let sk = SigningKey::from_bytes(&[7; 32]);
    let vk = sk.verifying_key();
    let sig = sk.sign(&msg);
    c.bench_function("primitive ed25519 sign 1 KiB", |b| {
        b.iter(|| sk.sign(black_box(&msg)))
    });
    c.bench_function("primitive ed25519 verify_strict 1 KiB", |b| {
        b.iter(|| vk.verify_strict(black_box(&msg), &sig).unwrap())
    });
    let mut rng = rand_core::UnwrapErr(getrandom::SysRng);
    let (sk_r, pk_r) = Kem::gen_keypair_with_rng(&mut rng);
    c.bench_function("primitive hpke seal 32 B (encap + wrap)", |b| {
        b.iter(|| {
            hpke::single_shot_seal_with_rng::<Aead, Kdf, Kem>(
                &OpModeS::Base,
                &pk_r,
                b"info",
                black_box(&[0u8; 32]),
                b"aad",
                &mut rng,
            )
            .unwrap()
        })
    });
    let (enc, ct) = hpke::single_shot_seal_with_rng::<Aead, Kdf, Kem>(
        &OpModeS::Base,
        &pk_r,
        b"info",
        &[0u8; 32],
        b"aad",
        &mut rng,
    )
    .unwrap();
    c.bench_function("primitive hpke open 32 B (decap + unwrap)", |b| {
        b.iter(|| {
            hpke::single_shot_open::<Aead, Kdf, Kem>(
                &OpModeR::Base,
                &sk_r,
                &enc,
                b"info",
                black_box(&ct),
                b"aad",
            )
            .unwrap()
        })
    });
}

criterion_group!(benches, suite1, suite0, others, primitives);
criterion_main!(benches);
