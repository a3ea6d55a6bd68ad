//! Issue 13's suite 1 speed targets are ratios against the primitives suite
//! 1 is made of, measured in the same run (one criterion group,
//! `suite1 ratios`):
//!
//! * seal + sign 1 KiB to 1 device ≤ 1.15 × (X25519 base-point keygen +
//!   X25519 DH + Ed25519 sign + AEAD of 1 KiB);
//! * open + verify ≤ 1.15 × (X25519 DH + Ed25519 verify + AEAD of 1 KiB);
//! * each extra recipient device ≤ 1.1 × (keygen + DH), taken as
//!   (seal to 11 devices − seal to 1) / 10.
//!
//! Two groups: `suite1 ratios` measures every op on its own (absolute
//! costs); `suite1 ratios interleaved (us = ratio)` runs each suite 1 op and
//! its baseline ops alternately within every iteration and reports the ratio
//! itself as the per-iteration "time" (1.000 µs = 1.0 ×), so that both sides
//! see the same load: on a shared machine the load drifts between benches
//! run one after the other, and sequential ratios moved between 0.9 and 1.6
//! from run to run here.
//!
//! The baselines use the crates suite 1 is built on (`x25519-dalek` under
//! `hpke`, `ed25519-dalek`, `chacha20poly1305`), with the same operations:
//! X25519 public key from a secret (fixed-base, as HPKE's ephemeral key
//! generation), X25519 shared secret, Ed25519 sign / `verify_strict` of
//! 1 KiB, ChaCha20-Poly1305 encrypt / decrypt of 1 KiB.
//!
//! **Clock.** On Linux the group measures the bench thread's CPU time
//! (`CLOCK_THREAD_CPUTIME_ID`), not wall time: the machine's two cores are
//! shared with other builds, and wall time counts the time the bench waits
//! for a core (which shifts between the benches of one run and skews the
//! ratios). `HUSH_BENCH_WALL=1` measures wall time instead.
//!
//! Run, then print the ratios:
//!
//! ```sh
//! cargo bench -p hush-crypto --bench suite1_ratios -- --warm-up-time 1 --measurement-time 3
//! python3 scripts/bench-ratios.py
//! ```
#![allow(missing_docs, clippy::unwrap_used)]

use std::hint::black_box;
use std::time::Duration;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Nonce};
use criterion::Criterion;
use criterion::measurement::{Measurement, ValueFormatter, WallTime};
use ed25519_dalek::{Signer, SigningKey};
use hush_crypto::identity::{DeviceCard, DeviceKeys, IdentityKey, UnsignedCard};
use hush_crypto::suite1::{
    Envelope, Recipient, ReplayGuard, SealRequest, TrustedSender, seal_with_limit,
};
use hush_protocol::{ChannelName, EventName, UserId};
use x25519_dalek::{PublicKey, StaticSecret};

const NOW_MS: u64 = 1_750_000_000_000;

fn card(user: &UserId, identity: &IdentityKey, keys: &DeviceKeys) -> DeviceCard {
    let body = UnsignedCard::new(
        user.clone(),
        &identity.public_key(),
        keys,
        1_700_000_000,
        1_900_000_000,
        None,
    );
    DeviceCard::issue(body, keys, identity).unwrap()
}

/// The calling thread's CPU time (Linux `CLOCK_THREAD_CPUTIME_ID`).
#[cfg(target_os = "linux")]
fn thread_cpu() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    Duration::new(
        u64::try_from(t.tv_sec).unwrap_or(0),
        u32::try_from(t.tv_nsec).unwrap_or(0),
    )
}

/// Criterion measurement: CPU time of the bench thread (criterion runs the
/// routine on the thread that measures it).
#[cfg(target_os = "linux")]
struct ThreadCpu;

#[cfg(target_os = "linux")]
impl Measurement for ThreadCpu {
    type Intermediate = Duration;
    type Value = Duration;
    fn start(&self) -> Duration {
        thread_cpu()
    }
    fn end(&self, start: Duration) -> Duration {
        thread_cpu().saturating_sub(start)
    }
    fn add(&self, a: &Duration, b: &Duration) -> Duration {
        *a + *b
    }
    fn zero(&self) -> Duration {
        Duration::ZERO
    }
    fn to_f64(&self, v: &Duration) -> f64 {
        v.as_nanos() as f64
    }
    fn formatter(&self) -> &dyn ValueFormatter {
        // Nanoseconds, shown as wall time's are.
        static WALL: WallTime = WallTime;
        WALL.formatter()
    }
}

/// Everything the benches need, made once.
struct Fixture {
    msg: Vec<u8>,
    secret: StaticSecret,
    peer: PublicKey,
    sk: SigningKey,
    sig: ed25519_dalek::Signature,
    ct: Vec<u8>,
    alice: UserId,
    alice_identity: IdentityKey,
    sender_keys: DeviceKeys,
    sender_card: DeviceCard,
    devices: Vec<(DeviceKeys, DeviceCard)>,
    recipients: Vec<Recipient>,
    channel: ChannelName,
    event: EventName,
    inner: EventName,
    data: String,
}

impl Fixture {
    fn new() -> Self {
        let msg = vec![0x42u8; 1024];
        let sk = SigningKey::from_bytes(&[7; 32]);
        let sig = sk.sign(&msg);
        let ct = ChaCha20Poly1305::new(&[3u8; 32].into())
            .encrypt(&Nonce::default(), msg.as_slice())
            .unwrap();
        let alice = UserId::parse("alice").unwrap();
        let alice_identity = IdentityKey::generate();
        let sender_keys = DeviceKeys::generate();
        let sender_card = card(&alice, &alice_identity, &sender_keys);
        let bob = UserId::parse("bob").unwrap();
        let bob_identity = IdentityKey::generate();
        let devices: Vec<(DeviceKeys, DeviceCard)> = (0..11)
            .map(|_| {
                let keys = DeviceKeys::generate();
                let c = card(&bob, &bob_identity, &keys);
                (keys, c)
            })
            .collect();
        let recipients = devices.iter().map(|(_, c)| Recipient::from(c)).collect();
        let mut f = Self {
            msg,
            secret: StaticSecret::from([7u8; 32]),
            peer: PublicKey::from(&StaticSecret::from([9u8; 32])),
            sk,
            sig,
            ct,
            alice,
            alice_identity,
            sender_keys,
            sender_card,
            devices,
            recipients,
            channel: ChannelName::parse("private-chat-42").unwrap(),
            event: EventName::parse_api("e2ee").unwrap(),
            inner: EventName::parse_api("message").unwrap(),
            data: String::new(),
        };
        f.data = f.seal(1);
        f
    }

    fn keygen(&self) -> PublicKey {
        PublicKey::from(black_box(&self.secret))
    }
    fn dh(&self) -> x25519_dalek::SharedSecret {
        self.secret.diffie_hellman(black_box(&self.peer))
    }
    fn sign(&self) -> ed25519_dalek::Signature {
        self.sk.sign(black_box(&self.msg))
    }
    fn verify(&self) {
        let vk = self.sk.verifying_key();
        vk.verify_strict(black_box(&self.msg), &self.sig).unwrap()
    }
    fn aead_seal(&self) -> Vec<u8> {
        let msg = black_box(self.msg.as_slice());
        ChaCha20Poly1305::new(black_box(&[3u8; 32]).into())
            .encrypt(&Nonce::default(), Payload { msg, aad: b"" })
            .unwrap()
    }
    fn aead_open(&self) -> Vec<u8> {
        let msg = black_box(self.ct.as_slice());
        ChaCha20Poly1305::new(black_box(&[3u8; 32]).into())
            .decrypt(&Nonce::default(), Payload { msg, aad: b"" })
            .unwrap()
    }

    /// Suite 1: seal + sign `msg` to the first `n` devices (Pusher's size
    /// limit lifted, so only the crypto counts).
    fn seal(&self, n: usize) -> String {
        let req = SealRequest {
            sender_user: &self.alice,
            sender_device: self.sender_card.device_id(),
            sender_keys: &self.sender_keys,
            channel: &self.channel,
            event: &self.event,
            inner_event: &self.inner,
            timestamp_ms: NOW_MS,
            sequence: 1,
            recipients: &self.recipients[..n],
            tree_head: None,
        };
        seal_with_limit(&req, black_box(&self.msg), usize::MAX).unwrap()
    }

    /// Suite 1: parse, open and verify the 1-device envelope, as device 0.
    fn open(&self) -> usize {
        let identity = self.alice_identity.public_key();
        let trusted = TrustedSender {
            card: &self.sender_card,
            identity: &identity,
            revocations: &[],
        };
        let (keys, me) = &self.devices[0];
        let env = Envelope::from_data(black_box(&self.data)).unwrap();
        let opened = env
            .open(me, keys, &trusted, &mut ReplayGuard::new(1), NOW_MS)
            .unwrap();
        opened.plaintext.len()
    }
}

/// Each op on its own, one after the other (absolute costs; the sequential
/// ratios the script prints come from these medians).
fn sequential<M: Measurement>(c: &mut Criterion<M>, f: &Fixture) {
    let mut g = c.benchmark_group("suite1 ratios");
    g.bench_function("x25519 keygen", |b| b.iter(|| f.keygen()));
    g.bench_function("x25519 dh", |b| b.iter(|| f.dh()));
    g.bench_function("ed25519 sign 1 KiB", |b| b.iter(|| f.sign()));
    g.bench_function("ed25519 verify 1 KiB", |b| b.iter(|| f.verify()));
    g.bench_function("aead seal 1 KiB", |b| b.iter(|| f.aead_seal()));
    g.bench_function("aead open 1 KiB", |b| b.iter(|| f.aead_open()));
    for n in [1usize, 11] {
        g.bench_function(format!("seal+sign 1 KiB to {n}"), |b| b.iter(|| f.seal(n)));
    }
    g.bench_function("open+verify 1 KiB", |b| b.iter(|| f.open()));
    g.finish();
}

/// The clock the interleaved ratios are timed with (thread CPU time on
/// Linux, as the group's measurement).
fn clock() -> Duration {
    #[cfg(target_os = "linux")]
    if std::env::var_os("HUSH_BENCH_WALL").is_none() {
        return thread_cpu();
    }
    START.with(|s| s.elapsed())
}

thread_local! {
    static START: std::time::Instant = std::time::Instant::now();
}

/// Runs `ours` and `base` alternately `iters` times and returns
/// `iters` × (time of `ours` / time of `base`) × 1 µs: criterion's
/// per-iteration "time" is then the ratio, in µs (1.000 µs = 1.0 ×).
/// Interleaving puts both under the same load, which on a shared machine
/// drifts between benches measured one after the other.
fn ratio_bench(iters: u64, mut ours: impl FnMut(), mut base: impl FnMut()) -> Duration {
    let (mut t_ours, mut t_base) = (Duration::ZERO, Duration::ZERO);
    for _ in 0..iters {
        let t0 = clock();
        ours();
        let t1 = clock();
        base();
        let t2 = clock();
        t_ours += t1 - t0;
        t_base += t2 - t1;
    }
    as_ratio(iters, t_ours.as_secs_f64(), t_base.as_secs_f64())
}

/// `iters` × (`ours` / `base`) µs (see [`ratio_bench`]).
fn as_ratio(iters: u64, ours: f64, base: f64) -> Duration {
    let ratio = (ours / base.max(1e-12)).max(0.0);
    Duration::from_secs_f64(ratio * 1e-6 * iters as f64)
}

/// The three targets as ratios, each op interleaved with its baseline.
fn interleaved<M: Measurement<Value = Duration>>(c: &mut Criterion<M>, f: &Fixture) {
    let mut g = c.benchmark_group("suite1 ratios interleaved (us = ratio)");
    g.bench_function("seal+sign 1 KiB to 1", |b| {
        b.iter_custom(|iters| {
            ratio_bench(
                iters,
                || {
                    black_box(f.seal(1));
                },
                || {
                    black_box((f.keygen(), f.dh(), f.sign(), f.aead_seal()));
                },
            )
        })
    });
    g.bench_function("open+verify 1 KiB", |b| {
        b.iter_custom(|iters| {
            ratio_bench(
                iters,
                || {
                    black_box(f.open());
                },
                || {
                    f.verify();
                    black_box((f.dh(), f.aead_open()));
                },
            )
        })
    });
    g.bench_function("each extra recipient", |b| {
        // (seal to 11 - seal to 1) / 10 against keygen + DH, the three
        // timed in turn.
        b.iter_custom(|iters| {
            let (mut t11, mut t1, mut tb) = (0.0, 0.0, 0.0);
            for _ in 0..iters {
                let a = clock();
                black_box(f.seal(11));
                let b = clock();
                black_box(f.seal(1));
                let c = clock();
                for _ in 0..10 {
                    black_box((f.keygen(), f.dh()));
                }
                let d = clock();
                t11 += (b - a).as_secs_f64();
                t1 += (c - b).as_secs_f64();
                tb += (d - c).as_secs_f64();
            }
            as_ratio(iters, t11 - t1, tb)
        })
    });
    g.finish();
}

fn main() {
    let f = Fixture::new();
    #[cfg(target_os = "linux")]
    if std::env::var_os("HUSH_BENCH_WALL").is_none() {
        let mut c = Criterion::default()
            .with_measurement(ThreadCpu)
            .configure_from_args();
        sequential(&mut c, &f);
        interleaved(&mut c, &f);
        c.final_summary();
        return;
    }
    let mut c = Criterion::default().configure_from_args();
    sequential(&mut c, &f);
    interleaved(&mut c, &f);
    c.final_summary();
}
