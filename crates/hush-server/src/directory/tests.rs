//! The directory against its own store: writes reach an epoch, lookups and
//! histories verify with the client's checks, audits chain epochs.

use super::*;
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
    let dir = Directory::open(store).await.unwrap().with_limits(DirectoryConfig {
        epoch_interval_ms: 20,
        ..DirectoryConfig::default()
    });
    Fixture { dir, _tmp: tmp }
}

fn user(s: &str) -> UserId {
    UserId::parse(s).unwrap()
}

fn keys(dir: &Directory) -> (LogPublicKey, VrfPublicKey) {
    let k: [u8; 32] = STANDARD.decode(dir.public_key()).unwrap().try_into().unwrap();
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

fn head(text: &str, key: &LogPublicKey) -> TreeHead {
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
    assert_eq!(l.users.len(), 1, "nobody has no entry; alice is answered once");
    let h = head(&l.head, &key);
    assert_eq!(h.epoch, 3);
    let v = verify_lookup(&vrf, &h, &alice, &STANDARD.decode(&l.users["alice"]).unwrap()).unwrap();
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
    let versions = verify_history(&vrf, &hh, &alice, &STANDARD.decode(&hist.proof).unwrap(), 3)
        .unwrap();
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
