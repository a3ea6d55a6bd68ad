//! The directory against its own store: writes reach an epoch, lookups and
//! histories verify with the client's checks, audits chain epochs.

use super::*;
use akd::storage::StorageManager;
use hush_crypto::identity::{IdentityKey, Revocation};
use hush_crypto::transparency::proofs::{VrfPublicKey, verify_history, verify_lookup};
use hush_crypto::transparency::{LogPublicKey, SignedTreeHead};
use hush_testkit::{card_after, new_device};

struct Fixture {
    dir: Directory,
    _tmp: tempfile::TempDir,
}

async fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/d.sqlite3", tmp.path().display());
    let store = Store::open(&url, &Default::default()).await.unwrap();
    let dir = Directory::open(store)
        .await
        .unwrap()
        .with_limits(DirectoryConfig {
            epoch_interval_ms: 20,
            ..DirectoryConfig::default()
        });
    Fixture { dir, _tmp: tmp }
}

pub(super) fn user(s: &str) -> UserId {
    UserId::parse(s).unwrap()
}

pub(super) fn keys(dir: &Directory) -> (LogPublicKey, VrfPublicKey) {
    let k: [u8; 32] = STANDARD
        .decode(dir.public_key())
        .unwrap()
        .try_into()
        .unwrap();
    let v: [u8; 32] = STANDARD
        .decode(dir.vrf_public_key())
        .unwrap()
        .try_into()
        .unwrap();
    (
        LogPublicKey::from_bytes(&k).unwrap(),
        VrfPublicKey::from_bytes(&v).unwrap(),
    )
}

pub(super) fn head(text: &str, key: &LogPublicKey) -> TreeHead {
    let sth = SignedTreeHead::from_bytes(&STANDARD.decode(text).unwrap()).unwrap();
    sth.verify(key, "app").unwrap();
    sth.head
}

#[tokio::test]
async fn writes_are_published_and_lookups_verify() {
    let f = fixture().await;
    let (key, vrf) = keys(&f.dir);
    let alice = user("alice");
    let id = IdentityKey::generate();
    let (_dev, card) = new_device("alice", &id);
    let p = f
        .dir
        .publish("app", &alice, &b64(&card.to_bytes()))
        .await
        .unwrap();
    let h = head(&p.head, &key);
    assert_eq!(h.epoch, 1);
    let v = verify_lookup(&vrf, &h, &alice, &STANDARD.decode(&p.proof).unwrap()).unwrap();
    assert_eq!(v.entry.cards, vec![card.clone()]);
    assert_eq!(v.version, 1);

    // A second device, then the first one revoked: two more epochs.
    let (dev2, card2) = new_device("alice", &id);
    f.dir
        .publish("app", &alice, &b64(&card2.to_bytes()))
        .await
        .unwrap();
    let rev = Revocation::revoke_device(&id, &card, hush_testkit::now_secs()).unwrap();
    f.dir
        .revoke("app", &alice, &b64(&rev.to_bytes()))
        .await
        .unwrap();
    let l = f
        .dir
        .lookup("app", &["alice".into(), "nobody".into(), "alice".into()])
        .await
        .unwrap();
    assert_eq!(
        l.users.len(),
        1,
        "nobody has no entry; alice is answered once"
    );
    let h = head(&l.head, &key);
    assert_eq!(h.epoch, 3);
    let v = verify_lookup(
        &vrf,
        &h,
        &alice,
        &STANDARD.decode(&l.users["alice"]).unwrap(),
    )
    .unwrap();
    assert_eq!(v.entry.cards, vec![card2.clone()]);
    assert_eq!(v.entry.revocations, vec![rev]);
    assert_eq!(v.version, 3);

    // The proof is for alice only.
    let bob = user("bob");
    assert_eq!(
        verify_lookup(&vrf, &h, &bob, &STANDARD.decode(&l.users["alice"]).unwrap()),
        Err(hush_crypto::transparency::LogError::BadProof)
    );

    // Alice's history: three versions, newest first.
    let hist = f.dir.history("app", &alice, Some(3)).await.unwrap();
    let hh = head(&hist.head, &key);
    let versions =
        verify_history(&vrf, &hh, &alice, &STANDARD.decode(&hist.proof).unwrap(), 3).unwrap();
    assert_eq!(
        versions.iter().map(|v| v.version).collect::<Vec<_>>(),
        vec![3, 2, 1]
    );
    assert_eq!(versions[2].entry.cards, vec![card]);

    // The audit chains epochs 1..=3.
    let a = f.dir.audit("app", 1, 3).await.unwrap();
    assert_eq!(a.heads.len(), 3);
    assert!(matches!(
        f.dir.audit("app", 1, 4).await,
        Err(DirError::NotFound(_))
    ));
    // Past heads are the audit's heads.
    let past = f.dir.head("app", Some(2)).await.unwrap();
    assert_eq!(past.head, a.heads[1]);
    assert!(matches!(
        f.dir.head("app", Some(9)).await,
        Err(DirError::NotFound(_))
    ));
    let _ = (dev2, card_after);
}

#[tokio::test]
async fn concurrent_writes_share_epochs() {
    let f = fixture().await;
    let dir = Arc::new(f.dir);
    let mut tasks = Vec::new();
    for i in 0..20 {
        let dir = dir.clone();
        tasks.push(tokio::spawn(async move {
            let name = format!("user{i}");
            let (_d, card) = new_device(&name, &IdentityKey::generate());
            dir.publish("app", &user(&name), &b64(&card.to_bytes()))
                .await
                .unwrap()
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let h = dir.head("app", None).await.unwrap();
    let (key, _) = keys(&dir);
    let epoch = head(&h.head, &key).epoch;
    assert!((1..20).contains(&epoch), "20 writes in {epoch} epochs");
}

/// The directory's known-answer vectors (`crates/hush-crypto/tests/vectors/
/// directory.json`, replayed by hush-crypto's `directory_vectors` test and
/// meant for other clients): every input is fixed (VRF and head keys,
/// identity and device keys, times) and akd is deterministic (ECVRF, and
/// commitment nonces derived from the VRF key), so the tree, its roots and
/// its proofs come out byte for byte the same. `HUSH_BLESS_KAT=1` rewrites
/// the file after a deliberate format change.
#[tokio::test]
async fn known_answer_vectors() {
    use akd::storage::memory::AsyncInMemoryDatabase;
    use hush_crypto::identity::{DeviceKeys, UnsignedCard};
    use hush_crypto::transparency::proofs::{AkdConfig, UserEntry, label};
    use protobuf::Message;

    let vrf = Vrf::new(Zeroizing::new([0x11; 32]));
    let vrf_public = vrf.public_key().await.unwrap();
    let log_key = LogKey::from_secret_bytes(&[0x22; 32]);
    let akd = akd::Directory::<AkdConfig, _, _>::new(
        StorageManager::new_no_cache(AsyncInMemoryDatabase::new()),
        vrf,
        akd::append_only_zks::AzksParallelismConfig::disabled(),
    )
    .await
    .unwrap();
    let (alice, bob) = (user("alice"), user("bob"));
    let identity = IdentityKey::from_secret_bytes(&[0x33; 32]);
    let card = |user: &UserId, seed: u8| {
        let keys = DeviceKeys::from_secret_bytes(&[seed; 32], &[seed ^ 0xff; 32]);
        let body = UnsignedCard::new(
            user.clone(),
            &identity.public_key(),
            &keys,
            1_750_000_000,
            1_750_000_000 + 365 * 86_400,
            None,
        );
        DeviceCard::issue(body, &keys, &identity).unwrap()
    };
    let phone = card(&alice, 1);
    let laptop = card(&alice, 2);
    let rev = Revocation::revoke_device(&identity, &phone, 1_750_000_100).unwrap();
    let entry = |cards: Vec<DeviceCard>, revocations: Vec<Revocation>| {
        let mut cards = cards;
        cards.sort_by_key(DeviceCard::device_id);
        UserEntry {
            identity: identity.public_key(),
            cards,
            revocations,
        }
    };
    let alice_v1 = entry(vec![phone.clone(), laptop.clone()], vec![]);
    let alice_v2 = entry(vec![laptop.clone()], vec![rev]);
    let bob_v1 = entry(vec![card(&bob, 3)], vec![]);
    let value = |e: &UserEntry| akd::AkdValue(e.to_bytes());
    let mut roots = Vec::new();
    for updates in [
        vec![(label(&alice), value(&alice_v1))],
        vec![(label(&bob), value(&bob_v1))],
        vec![(label(&alice), value(&alice_v2))],
    ] {
        roots.push(hex_of(&akd.publish(updates).await.unwrap().1));
    }
    let (lookup, akd::EpochHash(epoch, root)) = akd.lookup(label(&alice)).await.unwrap();
    let (history, _) = akd
        .key_history(&label(&alice), akd::HistoryParams::MostRecent(2))
        .await
        .unwrap();
    let audit = akd.audit(1, 3).await.unwrap();
    let head = log_key.sign(TreeHead {
        log_id: "3".into(),
        epoch,
        root,
        timestamp: 1_750_000_200_000,
    });
    let hexs = |b: &[u8]| hex_of(b);
    let doc = serde_json::json!({
        "about": "hush key directory v2 known-answer vectors (docs/KEY-TRANSPARENCY.md): \
                  akd with hush's configuration (BLAKE3, domain label hush/v2/key-directory), \
                  proofs as akd's protobuf messages; generated by hush-server's \
                  directory::tests::known_answer_vectors",
        "vrf_public_key": hexs(&vrf_public),
        "log_public_key": hexs(&log_key.public_key().to_bytes()),
        "log_id": "3",
        "user": "alice",
        "signed_head": hexs(&head.to_bytes()),
        "epoch": epoch,
        "root": hexs(&root),
        "entry_v1": hexs(&alice_v1.to_bytes()),
        "entry_v2": hexs(&alice_v2.to_bytes()),
        "lookup_proof": hexs(&hush_crypto::transparency::proofs::encode_lookup_proof(&lookup)),
        "lookup_version": 2,
        "history_versions": 2,
        "history_proof": hexs(&hush_crypto::transparency::proofs::encode_history_proof(&history)),
        "roots": roots,
        "audit_from": 1,
        "audit_to": 3,
        "audit_proof": hexs(
            &akd_core::proto::specs::types::AppendOnlyProof::from(&audit)
                .write_to_bytes()
                .unwrap()
        ),
    });
    let text = serde_json::to_string_pretty(&doc).unwrap() + "\n";
    let path = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../hush-crypto/tests/vectors/directory.json");
    if std::env::var_os("HUSH_BLESS_KAT").is_some() {
        std::fs::write(&path, &text).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert_eq!(
        committed, text,
        "the directory vectors changed; rerun with HUSH_BLESS_KAT=1 if deliberate"
    );
}

fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
