//! akd's Directory over AkdDb: publish, reopen, prove, verify; epoch heads
//! written in the publish's own transaction.

use akd::HistoryParams;
use akd::auditor::audit_verify;
use akd::client::{key_history_verify, lookup_verify};
use akd::ecvrf::HardCodedAkdVRF;
use akd::errors::StorageError;
use akd::storage::types::DbRecord;
use akd::storage::{Database, StorageManager, StorageUtil};
use akd::{AkdLabel, AkdValue, Azks, AzksParallelismConfig, Directory, HistoryVerificationParams};

use crate::testing::{TestDb, both_backends};

both_backends!(
    publish_reopen_and_verify_against_recorded_heads,
    two_apps_directories_are_independent,
    a_publish_whose_head_cannot_be_recorded_writes_nothing,
    staging_is_one_shot
);
use crate::akd_db::AkdDb;
use crate::{EpochHead, Store};

type Tc = akd::ExperimentalConfiguration<akd::ExampleLabel>;
type Dir = Directory<Tc, AkdDb, HardCodedAkdVRF>;

async fn directory(db: &AkdDb) -> Dir {
    // With StorageManager's cache, as the server will run it.
    let storage = StorageManager::new(db.clone(), None, None, None);
    Directory::new(storage, HardCodedAkdVRF, AzksParallelismConfig::default())
        .await
        .unwrap()
}

fn entry(label: &str, value: &str) -> (AkdLabel, AkdValue) {
    (AkdLabel::from(label), AkdValue::from(value))
}

/// The epochs published in these tests.
fn epochs() -> Vec<Vec<(AkdLabel, AkdValue)>> {
    vec![
        vec![entry("alice", "a1"), entry("bob", "b1")],
        vec![entry("alice", "a2"), entry("carol", "c1")],
        vec![entry("alice", "a3"), entry("bob", "b2")],
    ]
}

async fn azks_epoch(db: &AkdDb) -> u64 {
    match db
        .get::<Azks>(&akd::append_only_zks::DEFAULT_AZKS_KEY)
        .await
    {
        Ok(DbRecord::Azks(a)) => a.latest_epoch,
        other => panic!("{other:?}"),
    }
}

/// Publish 3 epochs (heads staged into each publish), close, reopen: the
/// directory continues where it was, and lookup, key history and the audit
/// of epochs 1..3 verify against the recorded heads.
async fn publish_reopen_and_verify_against_recorded_heads(backend: &TestDb) {
    let store = backend.open().await;
    let db = store.akd_db("app");
    let akd = directory(&db).await;
    for (i, updates) in epochs().into_iter().enumerate() {
        let epoch = i as u64 + 1;
        db.stage_epoch_head::<Tc>(epoch, 10 * epoch, 1000 + epoch as i64);
        let published = akd.publish(updates).await.unwrap();
        assert_eq!(published.epoch(), epoch);
        let head = store.epoch_head("app", epoch).await.unwrap();
        assert_eq!(
            head,
            Some(EpochHead {
                epoch,
                root_hash: published.hash(),
                published_ms: 1000 + epoch as i64,
                log_size: 10 * epoch,
            })
        );
    }
    drop(akd);
    store.close().await;
    drop(store);

    let store: Store = backend.open().await;
    let db = store.akd_db("app");
    let akd = directory(&db).await;
    let heads = store.epoch_heads("app", 1, 4).await.unwrap();
    assert_eq!(heads.len(), 3);
    let latest = akd.get_epoch_hash().await.unwrap();
    assert_eq!((latest.epoch(), latest.hash()), (3, heads[2].root_hash));
    let vrf_pk = akd.get_public_key().await.unwrap();

    let (proof, _) = akd.lookup(AkdLabel::from("alice")).await.unwrap();
    // Against another epoch's root the proof does not verify.
    assert!(
        lookup_verify::<Tc>(
            vrf_pk.as_bytes(),
            heads[1].root_hash,
            3,
            AkdLabel::from("alice"),
            proof.clone()
        )
        .is_err()
    );
    let found = lookup_verify::<Tc>(
        vrf_pk.as_bytes(),
        heads[2].root_hash,
        3,
        AkdLabel::from("alice"),
        proof,
    )
    .unwrap();
    assert_eq!(
        (found.epoch, found.version, found.value),
        (3, 3, AkdValue::from("a3"))
    );

    let (history, _) = akd
        .key_history(&AkdLabel::from("alice"), HistoryParams::default())
        .await
        .unwrap();
    let versions = key_history_verify::<Tc>(
        vrf_pk.as_bytes(),
        heads[2].root_hash,
        3,
        AkdLabel::from("alice"),
        history,
        HistoryVerificationParams::default(),
    )
    .unwrap();
    let values: Vec<_> = versions
        .iter()
        .map(|v| (v.epoch, v.value.clone()))
        .collect();
    assert_eq!(
        values,
        vec![
            (3, AkdValue::from("a3")),
            (2, AkdValue::from("a2")),
            (1, AkdValue::from("a1"))
        ]
    );

    let audit = akd.audit(1, 3).await.unwrap();
    let hashes: Vec<_> = heads.iter().map(|h| h.root_hash).collect();
    audit_verify::<Tc>(hashes.clone(), audit.clone())
        .await
        .unwrap();
    let mut swapped = hashes;
    swapped.swap(1, 2);
    assert!(audit_verify::<Tc>(swapped, audit).await.is_err());

    // Publishing continues after the reopen.
    db.stage_epoch_head::<Tc>(4, 40, 1004);
    let fourth = akd.publish(vec![entry("dave", "d1")]).await.unwrap();
    assert_eq!(
        store
            .latest_epoch_head("app")
            .await
            .unwrap()
            .map(|h| h.root_hash),
        Some(fourth.hash())
    );
}

/// Two apps' directories in one store are independent: B's directory has
/// never heard of A's users and their roots differ.
async fn two_apps_directories_are_independent(backend: &TestDb) {
    let store = backend.open().await;
    let (a, b) = (
        directory(&store.akd_db("a")).await,
        directory(&store.akd_db("b")).await,
    );
    let ha = a.publish(vec![entry("alice", "a1")]).await.unwrap();
    let hb = b.publish(vec![entry("bob", "b1")]).await.unwrap();
    assert_ne!(ha.hash(), hb.hash());
    assert!(b.lookup(AkdLabel::from("alice")).await.is_err());
    assert!(a.lookup(AkdLabel::from("bob")).await.is_err());
    assert!(a.lookup(AkdLabel::from("alice")).await.is_ok());
}

/// The akd epoch never advances without its (genuine) head: if a different
/// head for the epoch was recorded first, or the staged head is for another
/// epoch, the whole publish commit fails and nothing of it is stored.
async fn a_publish_whose_head_cannot_be_recorded_writes_nothing(backend: &TestDb) {
    let store = backend.open().await;
    let db = store.akd_db("app");
    let before = db.batch_get_all_direct().await.unwrap().len();
    let akd = directory(&db).await;
    let initial = db.batch_get_all_direct().await.unwrap();
    assert!(initial.len() > before);

    // A forged head for epoch 1 is already there.
    let forged = EpochHead {
        epoch: 1,
        root_hash: [0x66; 32],
        published_ms: 1,
        log_size: 1,
    };
    store.record_epoch_head("app", &forged).await.unwrap();
    db.stage_epoch_head::<Tc>(1, 2, 3);
    let err = akd.publish(vec![entry("alice", "a1")]).await.unwrap_err();
    assert!(format!("{err:?}").contains("different head"), "{err:?}");
    assert_eq!(azks_epoch(&store.akd_db("app")).await, 0);
    let mut now = db.batch_get_all_direct().await.unwrap();
    let mut was = initial.clone();
    now.sort();
    was.sort();
    assert_eq!(now, was);
    assert_eq!(store.epoch_head("app", 1).await.unwrap(), Some(forged));

    // A head staged for the wrong epoch is refused the same way.
    let other = store.akd_db("other");
    let akd = directory(&other).await;
    other.stage_epoch_head::<Tc>(7, 2, 3);
    let err = akd.publish(vec![entry("alice", "a1")]).await.unwrap_err();
    assert!(
        matches!(
            err,
            akd::errors::AkdError::Storage(StorageError::Transaction(_))
        ),
        "{err:?}"
    );
    assert_eq!(azks_epoch(&other).await, 0);
    assert_eq!(store.latest_epoch_head("other").await.unwrap(), None);
}

/// Staging is consumed by one commit only, general writes leave it alone,
/// and it can be dropped.
async fn staging_is_one_shot(backend: &TestDb) {
    let store = backend.open().await;
    let db = store.akd_db("app");
    db.stage_epoch_head::<Tc>(1, 1, 1);
    // Directory::new writes the empty tree with general sets.
    let akd = directory(&db).await;
    akd.publish(vec![entry("alice", "a1")]).await.unwrap();
    assert!(store.epoch_head("app", 1).await.unwrap().is_some());
    akd.publish(vec![entry("alice", "a2")]).await.unwrap();
    assert_eq!(store.epoch_head("app", 2).await.unwrap(), None);
    db.stage_epoch_head::<Tc>(3, 1, 1);
    assert!(db.unstage_epoch_head());
    assert!(!db.unstage_epoch_head());
    akd.publish(vec![entry("alice", "a3")]).await.unwrap();
    assert_eq!(
        store
            .latest_epoch_head("app")
            .await
            .unwrap()
            .map(|h| h.epoch),
        Some(1)
    );
}
