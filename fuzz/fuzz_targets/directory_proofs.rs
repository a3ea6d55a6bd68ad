//! What a client parses and verifies from a hostile key directory
//! (hush-crypto transparency.rs and transparency/proofs.rs): signed epoch
//! heads and the `LogMonitor` that pins them, per-user entries
//! (`UserEntry`), and akd lookup and history proofs.
//!
//! Real proofs come from a small akd directory (in memory, akd's test VRF
//! key) built once per process: alice, bob and carol over three epochs
//! (alice adds a device, then revokes one), with a lookup proof and history
//! proofs (1 and 4 versions) of every user after every epoch. The input is
//! a sequence of operations on those: heads (made and signed by the real or
//! another key, for this or another log, any epoch, real or forked roots,
//! then byte-edited; or raw bytes) fed to `update`, `update_fresh` and
//! `cross_check`; entries (real ones, edited, parsed for their user or
//! another); proofs (real ones, edited, padded past `MAX_PROOF_BYTES`)
//! verified against real or forged heads and for any user.
//!
//! Oracles:
//! * heads: an accepted encoding re-encodes to the same bytes; a head the
//!   monitor accepts (`update`, `update_fresh`) or vouches for
//!   (`cross_check`) was signed by the directory's key for this log (ground
//!   truth: the key's own deterministic signature of that head); an
//!   accepted head never rolls back the trusted epoch and never shows a
//!   second root for an epoch the monitor accepted; a refused head leaves
//!   the trusted head unchanged (so a head signed by another key never
//!   changes the monitor); `update_fresh` accepts only heads within the
//!   freshness bounds; and the monitor accepts every authentic head that
//!   breaks none of these rules (no false alarm).
//! * entries: `hush_fuzz::check_user_entry` on anything accepted (canonical
//!   bytes, only the user's cards, cross-signed by the entry's identity,
//!   device ids strictly increasing); a real entry parses for its owner.
//! * proofs: no panic; a proof over `MAX_PROOF_BYTES` is refused unread;
//!   a lookup proof verifies only against a real root of its epoch, and
//!   then shows exactly the user's latest entry, version and publication
//!   epoch at that epoch (an edited proof never verifies as another entry,
//!   user or version); a history proof verifies only against a real root,
//!   and then shows the user's newest versions at that epoch, newest first,
//!   none hidden; an unedited real proof verifies. Time per input is bounded
//!   by libFuzzer's `-timeout` (scripts/fuzz.sh: 10 s).
#![no_main]

use std::sync::OnceLock;

use akd::ecvrf::HardCodedAkdVRF;
use akd::storage::StorageManager;
use akd::storage::memory::AsyncInMemoryDatabase;
use akd::{AkdValue, AzksParallelismConfig, EpochHash, HistoryParams};
use arbitrary::Arbitrary;
use hush_crypto::identity::{DeviceCard, DeviceKeys, IdentityKey, Revocation, UnsignedCard};
use hush_crypto::transparency::proofs::{
    AkdConfig, MAX_HISTORY_VERSIONS, MAX_PROOF_BYTES, UserEntry, VerifiedEntry, VrfPublicKey,
    encode_history_proof, encode_lookup_proof, label, verify_history, verify_lookup,
};
use hush_crypto::transparency::{
    Freshness, Hash, LogError, LogKey, LogMonitor, LogPublicKey, SignedTreeHead, TreeHead,
};
use hush_fuzz::check_user_entry;
use hush_protocol::UserId;
use libfuzzer_sys::fuzz_target;

const LOG_ID: &str = "fuzz-app";
const USERS: [&str; 4] = ["alice", "bob", "carol", "mallory"];
/// Epochs the fixture publishes (1..=LAST_EPOCH).
const LAST_EPOCH: u64 = 3;
/// History proofs are made for these numbers of versions.
const HISTORY_SIZES: [usize; 2] = [1, 4];
/// The fixture's base time (Unix ms) for head timestamps.
const BASE_MS: u64 = 1_750_000_000_000;

/// One version of a user's entry.
struct Version {
    user: usize,
    entry: UserEntry,
    bytes: Vec<u8>,
    version: u64,
    epoch: u64,
}

/// A real proof with what it was made for.
struct Proof {
    user: usize,
    epoch: u64,
    /// For history proofs: the versions asked for.
    versions: usize,
    bytes: Vec<u8>,
}

struct Fixture {
    key: LogKey,
    other: LogKey,
    public: LogPublicKey,
    vrf: VrfPublicKey,
    /// roots[e]: the root at epoch e (0..=LAST_EPOCH).
    roots: Vec<Hash>,
    versions: Vec<Version>,
    lookups: Vec<Proof>,
    histories: Vec<Proof>,
}

impl Fixture {
    /// `user`'s versions published at or before `epoch`, newest first.
    fn history_at(&self, user: usize, epoch: u64) -> Vec<&Version> {
        let mut v: Vec<&Version> = self
            .versions
            .iter()
            .filter(|v| v.user == user && v.epoch <= epoch)
            .collect();
        v.sort_by(|a, b| b.version.cmp(&a.version));
        v
    }

    /// Whether `head` has the real root of its epoch.
    fn genuine(&self, head: &TreeHead) -> bool {
        usize::try_from(head.epoch)
            .ok()
            .and_then(|e| self.roots.get(e))
            .is_some_and(|r| *r == head.root)
    }
}

fn uid(i: usize) -> UserId {
    UserId::parse(USERS[i % USERS.len()]).expect("user id")
}

fn card(user: usize, identity: &IdentityKey, device: u8) -> DeviceCard {
    let keys = DeviceKeys::from_secret_bytes(&[device; 32], &[device.wrapping_add(100); 32]);
    DeviceCard::issue(
        UnsignedCard::new(
            uid(user),
            &identity.public_key(),
            &keys,
            1_700_000_000,
            1_900_000_000,
            None,
        ),
        &keys,
        identity,
    )
    .expect("card")
}

fn entry(
    identity: &IdentityKey,
    mut cards: Vec<DeviceCard>,
    revocations: Vec<Revocation>,
) -> UserEntry {
    cards.sort_by_key(DeviceCard::device_id);
    UserEntry {
        identity: identity.public_key(),
        cards,
        revocations,
    }
}

fn build() -> Fixture {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("tokio runtime");
    rt.block_on(async {
        type Akd = akd::Directory<AkdConfig, AsyncInMemoryDatabase, HardCodedAkdVRF>;
        let storage = StorageManager::new_no_cache(AsyncInMemoryDatabase::new());
        let akd = Akd::new(storage, HardCodedAkdVRF, AzksParallelismConfig::disabled())
            .await
            .expect("akd directory");
        let vrf_bytes: [u8; 32] = akd
            .get_public_key()
            .await
            .expect("VRF key")
            .to_bytes()
            .as_slice()
            .try_into()
            .expect("32-byte VRF key");
        let vrf = VrfPublicKey::from_bytes(&vrf_bytes).expect("VRF key");
        let EpochHash(_, root0) = akd.get_epoch_hash().await.expect("epoch 0");

        let ids: Vec<IdentityKey> = (0..3u8)
            .map(|i| IdentityKey::from_secret_bytes(&[i + 1; 32]))
            .collect();
        let alice1 = card(0, &ids[0], 10);
        let alice2 = card(0, &ids[0], 11);
        let revoke1 =
            Revocation::revoke_device(&ids[0], &alice1, 1_750_000_000).expect("revocation");
        let epochs: Vec<Vec<(usize, UserEntry)>> = vec![
            vec![
                (0, entry(&ids[0], vec![alice1.clone()], vec![])),
                (1, entry(&ids[1], vec![card(1, &ids[1], 20)], vec![])),
            ],
            vec![(0, entry(&ids[0], vec![alice1, alice2.clone()], vec![]))],
            vec![
                (0, entry(&ids[0], vec![alice2], vec![revoke1])),
                (2, entry(&ids[2], vec![card(2, &ids[2], 30)], vec![])),
            ],
        ];

        let mut fx = Fixture {
            key: LogKey::from_secret_bytes(&[0x42; 32]),
            other: LogKey::from_secret_bytes(&[0x43; 32]),
            public: LogKey::from_secret_bytes(&[0x42; 32]).public_key(),
            vrf,
            roots: vec![root0],
            versions: Vec::new(),
            lookups: Vec::new(),
            histories: Vec::new(),
        };
        for updates in epochs {
            let mut batch = Vec::new();
            for (user, e) in updates {
                let bytes = e.to_bytes();
                let version = fx.versions.iter().filter(|v| v.user == user).count() as u64 + 1;
                batch.push((label(&uid(user)), AkdValue(bytes.clone())));
                fx.versions.push(Version {
                    user,
                    entry: e,
                    bytes,
                    version,
                    epoch: fx.roots.len() as u64,
                });
            }
            let EpochHash(epoch, root) = akd.publish(batch).await.expect("publish");
            assert_eq!(epoch, fx.roots.len() as u64);
            fx.roots.push(root);
            for user in 0..3 {
                if fx.history_at(user, epoch).is_empty() {
                    continue;
                }
                let (proof, at) = akd.lookup(label(&uid(user))).await.expect("lookup");
                assert_eq!(at.0, epoch);
                fx.lookups.push(Proof {
                    user,
                    epoch,
                    versions: 1,
                    bytes: encode_lookup_proof(&proof),
                });
                for n in HISTORY_SIZES {
                    let (proof, _) = akd
                        .key_history(&label(&uid(user)), HistoryParams::MostRecent(n))
                        .await
                        .expect("history");
                    fx.histories.push(Proof {
                        user,
                        epoch,
                        versions: n,
                        bytes: encode_history_proof(&proof),
                    });
                }
            }
        }
        assert_eq!(fx.roots.len() as u64, LAST_EPOCH + 1);
        // The fixture itself must verify (or the oracles below mean nothing).
        for p in &fx.lookups {
            let head = fx.head(p.epoch);
            let v =
                verify_lookup(&fx.vrf, &head, &uid(p.user), &p.bytes).expect("real lookup proof");
            assert_eq!(expected_latest(&fx, p.user, p.epoch), Some(v));
        }
        fx
    })
}

impl Fixture {
    /// The real (unsigned) head of `epoch`.
    fn head(&self, epoch: u64) -> TreeHead {
        TreeHead {
            log_id: LOG_ID.into(),
            epoch,
            root: self.roots[epoch as usize],
            timestamp: BASE_MS + epoch * 1000,
        }
    }
}

fn expected_latest(fx: &Fixture, user: usize, epoch: u64) -> Option<VerifiedEntry> {
    fx.history_at(user, epoch).first().map(|v| VerifiedEntry {
        entry: v.entry.clone(),
        version: v.version,
        epoch: v.epoch,
    })
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(build)
}

#[derive(Arbitrary, Debug)]
enum Edit {
    Flip { at: u16, xor: u8 },
    Truncate { len: u16 },
    Insert { at: u16, bytes: Vec<u8> },
    Remove { at: u16, len: u8 },
}

fn apply(bytes: &mut Vec<u8>, edits: &[Edit]) {
    for e in edits.iter().take(8) {
        let n = bytes.len();
        match e {
            Edit::Flip { at, xor } if n > 0 => bytes[usize::from(*at) % n] ^= *xor,
            Edit::Flip { .. } => {}
            Edit::Truncate { len } => bytes.truncate(usize::from(*len)),
            Edit::Insert { at, bytes: b } => {
                let at = usize::from(*at) % (n + 1);
                bytes.splice(at..at, b.iter().take(64).copied());
            }
            Edit::Remove { at, len } => {
                let at = usize::from(*at) % (n + 1);
                let end = (at + usize::from(*len)).min(n);
                bytes.drain(at..end);
            }
        }
    }
}

#[derive(Arbitrary, Debug)]
enum Root {
    Real,
    Flipped { at: u8, xor: u8 },
    Any([u8; 32]),
}

#[derive(Arbitrary, Debug)]
struct HeadSpec {
    /// Epoch modulo LAST_EPOCH + 3 (the last two are beyond the directory).
    epoch: u8,
    root: Root,
}

impl HeadSpec {
    fn make(&self, fx: &Fixture) -> TreeHead {
        let epoch = u64::from(self.epoch) % (LAST_EPOCH + 3);
        let real = fx.roots.get(epoch as usize).copied().unwrap_or([0x5a; 32]);
        let root = match &self.root {
            Root::Real => real,
            Root::Flipped { at, xor } => {
                let mut r = real;
                r[usize::from(*at) % 32] ^= xor | 1;
                r
            }
            Root::Any(r) => *r,
        };
        TreeHead {
            log_id: LOG_ID.into(),
            epoch,
            root,
            timestamp: BASE_MS + epoch * 1000,
        }
    }
}

#[derive(Arbitrary, Debug)]
enum SignedHead {
    Made {
        head: HeadSpec,
        timestamp_offset_s: i16,
        other_key: bool,
        other_log: bool,
        edits: Vec<Edit>,
    },
    Raw(Vec<u8>),
}

#[derive(Arbitrary, Debug)]
enum HeadAction {
    Update,
    UpdateFresh {
        now_offset_s: i16,
        max_age_s: u16,
        max_skew_s: u16,
    },
    CrossCheck,
}

#[derive(Arbitrary, Debug)]
enum Op {
    Head {
        head: SignedHead,
        action: HeadAction,
    },
    /// A new monitor (a client starting over).
    Reset,
    Entry {
        version: u8,
        user: u8,
        edits: Vec<Edit>,
    },
    Lookup {
        proof: u8,
        head: HeadSpec,
        user: u8,
        edits: Vec<Edit>,
        oversize: bool,
    },
    History {
        proof: u8,
        head: HeadSpec,
        user: u8,
        versions: u8,
        edits: Vec<Edit>,
    },
}

/// The client's state and what the oracles know about it.
struct Run {
    monitor: LogMonitor,
    /// Heads the monitor accepted since it was made.
    accepted: Vec<TreeHead>,
}

impl Run {
    fn new(fx: &Fixture) -> Self {
        Self {
            monitor: LogMonitor::new(LOG_ID, fx.public),
            accepted: Vec::new(),
        }
    }

    fn conflicts(&self, head: &TreeHead) -> bool {
        self.accepted
            .iter()
            .any(|a| a.epoch == head.epoch && a.root != head.root)
    }

    fn head(&mut self, fx: &Fixture, signed: &SignedHead, action: &HeadAction) {
        let (bytes, made_clean) = match signed {
            SignedHead::Made {
                head,
                timestamp_offset_s,
                other_key,
                other_log,
                edits,
            } => {
                let mut h = head.make(fx);
                h.timestamp = h
                    .timestamp
                    .saturating_add_signed(i64::from(*timestamp_offset_s) * 1000);
                if *other_log {
                    h.log_id = "another-app".into();
                }
                let sth = if *other_key {
                    fx.other.sign(h)
                } else {
                    fx.key.sign(h)
                };
                let mut bytes = sth.to_bytes();
                apply(&mut bytes, edits);
                (bytes, edits.is_empty().then_some((*other_key, *other_log)))
            }
            SignedHead::Raw(b) => (b.clone(), None),
        };
        let sth = match SignedTreeHead::from_bytes(&bytes) {
            Ok(sth) => sth,
            Err(e) => {
                assert!(made_clean.is_none(), "a signed head does not parse: {e}");
                return;
            }
        };
        assert_eq!(sth.to_bytes(), bytes, "head encoding is not canonical");
        // Ground truth, independent of the code under test: only the
        // directory can sign, it signs deterministically (Ed25519), and only
        // for its own log.
        let authentic =
            sth.head.log_id == LOG_ID && fx.key.sign(sth.head.clone()).signature == sth.signature;
        if let Some((other_key, other_log)) = made_clean {
            assert_eq!(authentic, !other_key && !other_log);
        }
        let before = self.monitor.trusted().cloned();
        let rules_ok = authentic
            && before.as_ref().is_none_or(|t| sth.head.epoch >= t.epoch)
            && !self.conflicts(&sth.head);
        match action {
            HeadAction::Update | HeadAction::UpdateFresh { .. } => {
                let (r, fresh_ok) = match action {
                    HeadAction::UpdateFresh {
                        now_offset_s,
                        max_age_s,
                        max_skew_s,
                    } => {
                        let now = (BASE_MS + LAST_EPOCH * 1000)
                            .saturating_add_signed(i64::from(*now_offset_s) * 1000);
                        let fresh = Freshness {
                            max_age_ms: u64::from(*max_age_s) * 1000,
                            max_skew_ms: u64::from(*max_skew_s) * 1000,
                        };
                        let t = sth.head.timestamp;
                        let ok = t <= now.saturating_add(fresh.max_skew_ms)
                            && now.saturating_sub(t) <= fresh.max_age_ms;
                        (self.monitor.update_fresh(&sth, now, fresh), ok)
                    }
                    _ => (self.monitor.update(&sth), true),
                };
                match r {
                    Ok(()) => {
                        assert!(
                            authentic,
                            "the monitor accepted a forged head: {:?}",
                            sth.head
                        );
                        assert!(fresh_ok, "the monitor accepted a stale or future head");
                        if let Some(t) = &before {
                            assert!(sth.head.epoch >= t.epoch, "rollback accepted");
                        }
                        assert!(!self.conflicts(&sth.head), "fork accepted");
                        assert_eq!(self.monitor.trusted(), Some(&sth.head));
                        self.accepted.push(sth.head.clone());
                    }
                    Err(e) => {
                        assert_eq!(
                            self.monitor.trusted(),
                            before.as_ref(),
                            "a refused head changed the monitor"
                        );
                        assert!(
                            !(rules_ok && fresh_ok),
                            "the monitor refused a valid head ({e}): {:?}",
                            sth.head
                        );
                        if authentic && fresh_ok {
                            assert!(
                                matches!(e, LogError::Rollback { .. } | LogError::Fork),
                                "{e}"
                            );
                        }
                    }
                }
            }
            HeadAction::CrossCheck => {
                let r = self.monitor.cross_check(&sth);
                assert_eq!(self.monitor.trusted(), before.as_ref());
                let expected_ok = authentic && before.is_some() && !self.conflicts(&sth.head);
                match r {
                    Ok(()) => assert!(expected_ok, "cross_check vouched for {:?}", sth.head),
                    Err(e) => assert!(!expected_ok, "cross_check refused a consistent head: {e}"),
                }
            }
        }
    }
}

fn entry_op(fx: &Fixture, version: u8, user: u8, edits: &[Edit]) {
    let v = &fx.versions[usize::from(version) % fx.versions.len()];
    let user_i = usize::from(user) % USERS.len();
    let user_id = uid(user_i);
    let mut bytes = v.bytes.clone();
    apply(&mut bytes, edits);
    match UserEntry::from_bytes(&user_id, &bytes) {
        Ok(e) => {
            check_user_entry(&user_id, &bytes, &e);
            if bytes == v.bytes {
                assert_eq!(e, v.entry);
            }
        }
        Err(err) => assert!(
            !(bytes == v.bytes && user_i == v.user),
            "a real entry is refused for its owner: {err}"
        ),
    }
}

fn lookup_op(fx: &Fixture, proof: u8, spec: &HeadSpec, user: u8, edits: &[Edit], oversize: bool) {
    let p = &fx.lookups[usize::from(proof) % fx.lookups.len()];
    let head = spec.make(fx);
    let user_i = usize::from(user) % USERS.len();
    let mut bytes = p.bytes.clone();
    apply(&mut bytes, edits);
    if oversize {
        // An unknown protobuf field would be skipped: the size bound must
        // refuse the proof before it is read.
        bytes.resize(MAX_PROOF_BYTES + 1, 0);
        assert_eq!(
            verify_lookup(&fx.vrf, &head, &uid(user_i), &bytes),
            Err(LogError::Malformed)
        );
        return;
    }
    match verify_lookup(&fx.vrf, &head, &uid(user_i), &bytes) {
        Ok(v) => {
            assert!(
                fx.genuine(&head),
                "lookup proof verified against a forged root"
            );
            assert_eq!(
                Some(&v),
                expected_latest(fx, user_i, head.epoch).as_ref(),
                "lookup proof verified as another entry than {}'s latest at epoch {}",
                USERS[user_i],
                head.epoch
            );
            check_user_entry(&uid(user_i), &v.entry.to_bytes(), &v.entry);
        }
        Err(e) => assert!(
            !(edits.is_empty() && fx.genuine(&head) && head.epoch == p.epoch && user_i == p.user),
            "a real lookup proof does not verify: {e}"
        ),
    }
}

fn history_op(fx: &Fixture, proof: u8, spec: &HeadSpec, user: u8, versions: u8, edits: &[Edit]) {
    let p = &fx.histories[usize::from(proof) % fx.histories.len()];
    let head = spec.make(fx);
    let user_i = usize::from(user) % USERS.len();
    let versions = usize::from(versions) % (MAX_HISTORY_VERSIONS + 2);
    let mut bytes = p.bytes.clone();
    apply(&mut bytes, edits);
    match verify_history(&fx.vrf, &head, &uid(user_i), &bytes, versions) {
        Ok(list) => {
            assert!(
                fx.genuine(&head),
                "history proof verified against a forged root"
            );
            let expected = fx.history_at(user_i, head.epoch);
            assert!(!list.is_empty(), "a verified history shows no version");
            assert!(list.len() <= expected.len());
            for (got, want) in list.iter().zip(&expected) {
                assert_eq!(
                    (got.entry.clone(), got.version, got.epoch),
                    (want.entry.clone(), want.version, want.epoch),
                    "history proof verified as another version than {}'s at epoch {}",
                    USERS[user_i],
                    head.epoch
                );
            }
        }
        Err(e) => assert!(
            !(edits.is_empty()
                && fx.genuine(&head)
                && head.epoch == p.epoch
                && user_i == p.user
                && versions == p.versions),
            "a real history proof does not verify: {e}"
        ),
    }
}

fuzz_target!(|ops: Vec<Op>| {
    let fx = fixture();
    let mut run = Run::new(fx);
    for op in ops.iter().take(64) {
        match op {
            Op::Head { head, action } => run.head(fx, head, action),
            Op::Reset => run = Run::new(fx),
            Op::Entry {
                version,
                user,
                edits,
            } => entry_op(fx, *version, *user, edits),
            Op::Lookup {
                proof,
                head,
                user,
                edits,
                oversize,
            } => lookup_op(fx, *proof, head, *user, edits, *oversize),
            Op::History {
                proof,
                head,
                user,
                versions,
                edits,
            } => history_op(fx, *proof, head, *user, *versions, edits),
        }
    }
});
