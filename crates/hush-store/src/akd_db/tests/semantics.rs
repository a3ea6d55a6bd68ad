//! AkdDb against akd's own storage test suite and, operation by operation,
//! against akd's in-memory reference database; app isolation; big batches;
//! corrupt rows; index use.

use std::collections::HashSet;

use akd::errors::StorageError;
use akd::storage::memory::AsyncInMemoryDatabase;
use akd::storage::types::{DbRecord, ValueState, ValueStateKey, ValueStateRetrievalFlag as F};
use akd::storage::{Database, DbSetState, StorageUtil};
use akd::tree_node::{NodeKey, TreeNodeWithPreviousValue};
use akd::{AkdLabel, Azks};

use super::{Rng, node, state};
use crate::akd_db::queries::sqlite as sql;
use crate::akd_db::queries::sqlite::Pick;
use crate::testing::{TestDb, both_backends};

both_backends!(
    passes_akds_storage_test_suite,
    reads_exactly_like_akds_in_memory_database,
    apps_do_not_see_or_overwrite_each_others_records,
    ten_thousand_records_in_one_batch,
    records_survive_reopening_the_store,
);

async fn passes_akds_storage_test_suite(backend: &TestDb) {
    let store = backend.open().await;
    akd::storage::tests::run_test_cases_for_storage_impl(store.akd_db("app")).await;
}

fn is_not_found<T>(r: &Result<T, StorageError>) -> bool {
    matches!(r, Err(StorageError::NotFound(_)))
}

/// Every flag over the epochs and versions the data uses, their
/// neighbours and the u64/i64 extremes.
fn flags() -> Vec<F> {
    let mut flags = vec![F::MaxEpoch, F::MinEpoch];
    let edges = [i64::MAX as u64, i64::MAX as u64 + 1, u64::MAX];
    for n in (0..24).chain(edges) {
        flags.extend([F::SpecificEpoch(n), F::SpecificVersion(n), F::LeqEpoch(n)]);
    }
    flags
}

/// Random batches (repeated keys, shared versions, empty and binary labels,
/// both set and batch_set) written to AkdDb and to akd's in-memory database
/// read back the same through every read the trait has.
async fn reads_exactly_like_akds_in_memory_database(backend: &TestDb) {
    let store = backend.open().await;
    for seed in 1..=4u64 {
        let ours = store.akd_db(&format!("app-{seed}"));
        let reference = AsyncInMemoryDatabase::new();
        let mut rng = Rng(seed * 0x9e37_79b9);
        let mut users: Vec<Vec<u8>> = (0..25)
            .map(|_| {
                let n = rng.below(12) as usize;
                rng.bytes(n)
            })
            .collect();
        users.push(Vec::new());
        users.push(b"a\0b".to_vec());
        let mut nodes = Vec::new();
        for round in 0..6 {
            let mut batch = Vec::new();
            for _ in 0..40 {
                let user = &users[rng.below(users.len() as u64) as usize];
                let len = rng.below(40) as usize;
                let value = rng.bytes(len);
                batch.push(state(user, rng.below(20), 1 + rng.below(4), &value));
            }
            for _ in 0..5 {
                let n = node(&mut rng, round % 2 == 0);
                nodes.push(n.clone());
                batch.push(n);
            }
            // The same node key again, later in the batch: the later wins.
            if let Some(DbRecord::TreeNode(n)) = nodes.last() {
                let mut again = n.clone();
                again.latest_node.last_epoch += 1;
                batch.push(DbRecord::TreeNode(again));
            }
            batch.push(DbRecord::Azks(Azks {
                latest_epoch: round,
                num_nodes: rng.next(),
            }));
            if round == 3 {
                for r in batch {
                    ours.set(r.clone()).await.unwrap();
                    reference.set(r).await.unwrap();
                }
            } else {
                ours.batch_set(batch.clone(), DbSetState::General)
                    .await
                    .unwrap();
                reference
                    .batch_set(batch, DbSetState::TransactionCommit)
                    .await
                    .unwrap();
            }
        }
        // An epoch beyond what SQLite integers hold is refused, not wrapped.
        let huge = state(b"huge", u64::MAX, 1, b"x");
        assert!(ours.set(huge).await.is_err());

        let labels: Vec<AkdLabel> = users.iter().map(|u| AkdLabel(u.clone())).collect();
        for label in &labels {
            let (a, b) = (
                ours.get_user_data(label).await,
                reference.get_user_data(label).await,
            );
            match (&a, &b) {
                (Ok(a), Ok(b)) => assert_eq!(a.states, b.states, "{label:?}"),
                _ => assert!(
                    is_not_found(&a) && is_not_found(&b),
                    "{label:?}: {a:?} / {b:?}"
                ),
            }
            for flag in flags() {
                let a = ours.get_user_state(label, flag).await;
                let b = reference.get_user_state(label, flag).await;
                match (&a, &b) {
                    (Ok(a), Ok(b)) => assert_eq!(a, b, "{label:?} {flag:?}"),
                    _ => assert!(
                        is_not_found(&a) && is_not_found(&b),
                        "{label:?} {flag:?}: {a:?} / {b:?}"
                    ),
                }
            }
            for epoch in 0..21 {
                let key = ValueStateKey(label.0.clone(), epoch);
                let a = ours.get::<ValueState>(&key).await;
                let b = reference.get::<ValueState>(&key).await;
                match (&a, &b) {
                    (Ok(a), Ok(b)) => assert_eq!(a, b),
                    _ => assert!(is_not_found(&a) && is_not_found(&b), "{a:?} / {b:?}"),
                }
            }
        }
        for flag in flags() {
            let a = ours.get_user_state_versions(&labels, flag).await.unwrap();
            let b = reference
                .get_user_state_versions(&labels, flag)
                .await
                .unwrap();
            assert_eq!(a, b, "{flag:?}");
        }
        let keys: Vec<ValueStateKey> = labels
            .iter()
            .flat_map(|l| (0..21).map(|e| ValueStateKey(l.0.clone(), e)))
            .collect();
        let a: HashSet<_> = ours
            .batch_get::<ValueState>(&keys)
            .await
            .unwrap()
            .into_iter()
            .collect();
        let b: HashSet<_> = reference
            .batch_get::<ValueState>(&keys)
            .await
            .unwrap()
            .into_iter()
            .collect();
        assert_eq!(a, b);
        assert!(!a.is_empty());

        let node_keys: Vec<NodeKey> = nodes
            .iter()
            .filter_map(|n| match n {
                DbRecord::TreeNode(n) => Some(NodeKey(n.label)),
                _ => None,
            })
            .chain([NodeKey(akd::NodeLabel::root())])
            .collect();
        let a: HashSet<_> = ours
            .batch_get::<TreeNodeWithPreviousValue>(&node_keys)
            .await
            .unwrap()
            .into_iter()
            .collect();
        let b: HashSet<_> = reference
            .batch_get::<TreeNodeWithPreviousValue>(&node_keys)
            .await
            .unwrap()
            .into_iter()
            .collect();
        assert_eq!(a, b);
        for key in &node_keys {
            let (a, b) = (
                ours.get::<TreeNodeWithPreviousValue>(key).await,
                reference.get::<TreeNodeWithPreviousValue>(key).await,
            );
            match (&a, &b) {
                (Ok(a), Ok(b)) => assert_eq!(a, b),
                _ => assert!(is_not_found(&a) && is_not_found(&b)),
            }
        }
        assert_eq!(
            ours.get::<Azks>(&akd::append_only_zks::DEFAULT_AZKS_KEY)
                .await,
            reference
                .get::<Azks>(&akd::append_only_zks::DEFAULT_AZKS_KEY)
                .await
        );
        let all = |v: Vec<DbRecord>| v.into_iter().collect::<HashSet<_>>();
        assert_eq!(
            all(ours.batch_get_all_direct().await.unwrap()),
            all(reference.batch_get_all_direct().await.unwrap())
        );
        assert_eq!(
            all(ours
                .batch_get_type_direct::<TreeNodeWithPreviousValue>()
                .await
                .unwrap()),
            all(reference
                .batch_get_type_direct::<TreeNodeWithPreviousValue>()
                .await
                .unwrap())
        );
    }
}

/// App B (the attacker) cannot read app A's records through any read, and
/// its writes under the same keys leave A's records as they were.
async fn apps_do_not_see_or_overwrite_each_others_records(backend: &TestDb) {
    let store = backend.open().await;
    let (a, b) = (store.akd_db("app-a"), store.akd_db("app-b"));
    let mut rng = Rng(7);
    let victim_node = node(&mut rng, true);
    let a_records = vec![
        state(b"alice", 1, 1, b"alice-key"),
        state(b"alice", 2, 2, b"alice-key-2"),
        victim_node.clone(),
        DbRecord::Azks(Azks {
            latest_epoch: 2,
            num_nodes: 9,
        }),
    ];
    a.batch_set(a_records.clone(), DbSetState::TransactionCommit)
        .await
        .unwrap();
    let alice = AkdLabel::from("alice");
    let node_key = match &victim_node {
        DbRecord::TreeNode(n) => NodeKey(n.label),
        _ => unreachable!(),
    };
    let azks_key = akd::append_only_zks::DEFAULT_AZKS_KEY;

    assert!(is_not_found(&b.get_user_data(&alice).await));
    for flag in flags() {
        assert!(
            is_not_found(&b.get_user_state(&alice, flag).await),
            "{flag:?}"
        );
        let versions = b
            .get_user_state_versions(std::slice::from_ref(&alice), flag)
            .await;
        assert!(versions.unwrap().is_empty());
    }
    assert!(is_not_found(
        &b.get::<ValueState>(&ValueStateKey(b"alice".to_vec(), 1))
            .await
    ));
    assert!(
        b.batch_get::<ValueState>(&[ValueStateKey(b"alice".to_vec(), 2)])
            .await
            .unwrap()
            .is_empty()
    );
    assert!(is_not_found(
        &b.get::<TreeNodeWithPreviousValue>(&node_key).await
    ));
    assert!(
        b.batch_get::<TreeNodeWithPreviousValue>(std::slice::from_ref(&node_key))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(is_not_found(&b.get::<Azks>(&azks_key).await));
    assert!(b.batch_get_all_direct().await.unwrap().is_empty());

    // B writes under A's keys.
    let mut forged = match victim_node.clone() {
        DbRecord::TreeNode(n) => n,
        _ => unreachable!(),
    };
    forged.latest_node.hash = akd::AzksValue([0xee; 32]);
    b.batch_set(
        vec![
            state(b"alice", 1, 1, b"forged"),
            state(b"alice", 3, 3, b"forged"),
            DbRecord::TreeNode(forged),
            DbRecord::Azks(Azks {
                latest_epoch: 99,
                num_nodes: 1,
            }),
        ],
        DbSetState::General,
    )
    .await
    .unwrap();
    let mut mine = a.batch_get_all_direct().await.unwrap();
    let mut expected = a_records;
    mine.sort();
    expected.sort();
    assert_eq!(mine, expected);
    assert_eq!(b.batch_get_all_direct().await.unwrap().len(), 4);
}

/// 10,000 value states and 10,000 tree nodes in one batch_set (one SQLite
/// transaction, several multi-row statements) all read back.
async fn ten_thousand_records_in_one_batch(backend: &TestDb) {
    let store = backend.open().await;
    let db = store.akd_db("app");
    let mut rng = Rng(99);
    let mut records: Vec<DbRecord> = (0..10_000u64)
        .map(|i| state(format!("user-{i}").as_bytes(), 1 + i % 3, 1, &rng.bytes(64)))
        .collect();
    records.extend((0..10_000).map(|_| node(&mut rng, true)));
    db.batch_set(records.clone(), DbSetState::TransactionCommit)
        .await
        .unwrap();

    let reopened = store.akd_db("app");
    let mut all = reopened.batch_get_all_direct().await.unwrap();
    all.sort();
    records.sort();
    assert_eq!(all, records);
    let labels: Vec<AkdLabel> = (0..10_000u64)
        .map(|i| AkdLabel(format!("user-{i}").into_bytes()))
        .collect();
    let versions = reopened
        .get_user_state_versions(&labels, F::MaxEpoch)
        .await
        .unwrap();
    assert_eq!(versions.len(), 10_000);
    let keys: Vec<NodeKey> = records
        .iter()
        .filter_map(|r| match r {
            DbRecord::TreeNode(n) => Some(NodeKey(n.label)),
            _ => None,
        })
        .collect();
    let nodes = reopened
        .batch_get::<TreeNodeWithPreviousValue>(&keys)
        .await
        .unwrap();
    assert_eq!(nodes.len(), keys.len());
}

async fn records_survive_reopening_the_store(backend: &TestDb) {
    let mut rng = Rng(3);
    let records = vec![
        state(b"bob", 4, 2, b"k"),
        node(&mut rng, true),
        DbRecord::Azks(Azks {
            latest_epoch: 4,
            num_nodes: 2,
        }),
    ];
    let store = backend.open().await;
    store
        .akd_db("app")
        .batch_set(records.clone(), DbSetState::TransactionCommit)
        .await
        .unwrap();
    store.close().await;
    drop(store);

    let store = backend.open().await;
    let mut back = store.akd_db("app").batch_get_all_direct().await.unwrap();
    back.sort();
    let mut records = records;
    records.sort();
    assert_eq!(back, records);
}

/// A damaged row is a storage error, not a panic and not a made-up record.
#[tokio::test]
async fn corrupt_rows_are_errors() {
    let backend = TestDb::sqlite();
    let store = backend.open().await;
    let db = store.akd_db("app");
    let mut rng = Rng(5);
    let n = node(&mut rng, false);
    let key = match &n {
        DbRecord::TreeNode(t) => NodeKey(t.label),
        _ => unreachable!(),
    };
    db.batch_set(vec![n, state(b"carol", 1, 1, b"v")], DbSetState::General)
        .await
        .unwrap();
    sqlx::query("UPDATE akd_records SET data = substr(data, 1, 20) WHERE app_id = 'app'")
        .execute(db.sqlite_pool())
        .await
        .unwrap();
    sqlx::query("UPDATE akd_value_states SET node_label_val = x'00' WHERE app_id = 'app'")
        .execute(db.sqlite_pool())
        .await
        .unwrap();
    assert!(matches!(
        db.get::<TreeNodeWithPreviousValue>(&key).await,
        Err(StorageError::Other(_))
    ));
    assert!(matches!(
        db.get_user_state(&AkdLabel::from("carol"), F::MaxEpoch)
            .await,
        Err(StorageError::Other(_))
    ));
}

/// Every retrieval flag and the by-key read search the primary key; none
/// scans a table.
#[tokio::test]
async fn state_reads_use_the_primary_key() {
    let backend = TestDb::sqlite();
    let store = backend.open().await;
    let db = store.akd_db("app");
    let labels = [AkdLabel::from("a"), AkdLabel::from("b")];
    let keys = [(b"a".to_vec(), 1i64), (b"b".to_vec(), 2)];
    let mut queries: Vec<String> = [
        F::SpecificEpoch(1),
        F::SpecificVersion(1),
        F::LeqEpoch(1),
        F::MaxEpoch,
        F::MinEpoch,
    ]
    .into_iter()
    .filter_map(Pick::of)
    .map(|p| sql::states_at("app", &labels, p).sql().to_owned())
    .collect();
    queries.push(sql::states_by_key("app", &keys).sql().to_owned());
    for q in queries {
        let rows = sqlx::query(&format!("EXPLAIN QUERY PLAN {q}"))
            .fetch_all(db.sqlite_pool())
            .await
            .unwrap();
        let details: Vec<String> = rows
            .iter()
            .map(|r| sqlx::Row::try_get::<String, _>(r, "detail").unwrap())
            .collect();
        // Every read of the table is a search by app and label.
        for d in &details {
            let table_read = ["SEARCH s ", "SEARCH t ", "SCAN s", "SCAN t"]
                .iter()
                .any(|p| d.starts_with(p));
            assert!(
                !table_read || (d.contains("PRIMARY KEY") && d.contains("label=?")),
                "{q}\n{details:#?}"
            );
        }
        assert!(
            details.iter().any(|d| d.starts_with("SEARCH s ")),
            "{details:#?}"
        );
    }
}
