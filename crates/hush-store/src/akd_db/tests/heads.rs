//! The epoch heads table through the Store API.

use crate::testing::{TestDb, both_backends};

both_backends!(
    heads_are_recorded_read_paged_and_per_app,
    a_recorded_head_cannot_be_rewritten
);
use crate::{EpochHead, MAX_EPOCH_HEADS_PER_READ, StoreError};

fn head(epoch: u64) -> EpochHead {
    EpochHead {
        epoch,
        root_hash: [epoch as u8; 32],
        published_ms: 1_700_000_000_000 + epoch as i64,
        log_size: epoch * 3,
    }
}

async fn heads_are_recorded_read_paged_and_per_app(backend: &TestDb) {
    let store = backend.open().await;
    assert_eq!(store.latest_epoch_head("a").await.unwrap(), None);
    // Out of order on purpose: reads are by epoch.
    for epoch in (1..=1100).rev() {
        assert!(store.record_epoch_head("a", &head(epoch)).await.unwrap());
    }
    store.record_epoch_head("b", &head(5000)).await.unwrap();

    assert_eq!(store.epoch_head("a", 7).await.unwrap(), Some(head(7)));
    assert_eq!(store.epoch_head("a", 0).await.unwrap(), None);
    assert_eq!(store.epoch_head("a", u64::MAX).await.unwrap(), None);
    assert_eq!(
        store.latest_epoch_head("a").await.unwrap(),
        Some(head(1100))
    );
    assert_eq!(
        store.latest_epoch_head("b").await.unwrap(),
        Some(head(5000))
    );
    assert_eq!(store.epoch_head("b", 7).await.unwrap(), None);

    let first = store.epoch_heads("a", 0, u64::MAX).await.unwrap();
    assert_eq!(first.len() as u64, MAX_EPOCH_HEADS_PER_READ);
    assert_eq!(first.first(), Some(&head(1)));
    assert_eq!(first.last(), Some(&head(1000)));
    let rest = store.epoch_heads("a", 1001, u64::MAX).await.unwrap();
    assert_eq!(rest, (1001..=1100).map(head).collect::<Vec<_>>());
    assert_eq!(
        store.epoch_heads("a", 10, 13).await.unwrap(),
        vec![head(10), head(11), head(12)]
    );
    assert!(store.epoch_heads("a", 13, 10).await.unwrap().is_empty());
    assert!(
        store
            .epoch_heads("a", u64::MAX, u64::MAX)
            .await
            .unwrap()
            .is_empty()
    );
}

/// A recorded head cannot be replaced: an attacker (or a buggy second
/// writer) recording another root, log size or time for a recorded epoch
/// gets a Conflict and the first head stays.
async fn a_recorded_head_cannot_be_rewritten(backend: &TestDb) {
    let store = backend.open().await;
    let genuine = head(3);
    assert!(store.record_epoch_head("a", &genuine).await.unwrap());
    // A retry of the very same head is fine.
    assert!(!store.record_epoch_head("a", &genuine).await.unwrap());
    let forgeries = [
        EpochHead {
            root_hash: [0xaa; 32],
            ..genuine.clone()
        },
        EpochHead {
            log_size: 1,
            ..genuine.clone()
        },
        EpochHead {
            published_ms: 0,
            ..genuine.clone()
        },
    ];
    for forged in forgeries {
        assert!(matches!(
            store.record_epoch_head("a", &forged).await,
            Err(StoreError::Conflict(_))
        ));
    }
    assert_eq!(store.epoch_head("a", 3).await.unwrap(), Some(genuine));
    // The same epoch of another app is another head.
    assert!(store.record_epoch_head("b", &head(3)).await.unwrap());
    assert!(
        store
            .record_epoch_head(
                "a",
                &EpochHead {
                    epoch: u64::MAX,
                    ..head(1)
                }
            )
            .await
            .is_err()
    );
}
