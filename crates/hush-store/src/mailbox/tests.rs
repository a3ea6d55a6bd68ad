use super::*;
use crate::StoreOptions;
use crate::testing::{TestDb, both_backends};

both_backends!(
    queued_once_fetched_in_order_and_deleted_with_the_last_ack,
    quotas_bytes_expiry_and_purges,
    a_batch_is_one_commit_with_the_same_answers_as_one_by_one
);

const APP: &str = "1";
const BIG: Quota = Quota {
    max_messages: 1000,
    max_bytes: 1 << 20,
};

fn dev(user: &str, n: u8) -> DeviceRef {
    DeviceRef {
        user: user.into(),
        device: [n; ID_LEN],
    }
}

async fn store() -> (tempfile::TempDir, Store, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hush.sqlite3");
    let s = Store::open(
        &format!("sqlite://{}", path.display()),
        &StoreOptions::default(),
    )
    .await
    .unwrap();
    (dir, s, path)
}

fn msg<'a>(n: u8, envelope: &'a [u8], to: &'a [DeviceRef]) -> NewMessage<'a> {
    NewMessage {
        app_id: APP,
        message_id: [n; ID_LEN],
        sender_user: "alice",
        sender_device: [9; ID_LEN],
        envelope,
        created_ms: 1_000,
        expires_ms: 10_000,
        recipients: to,
    }
}

async fn send(s: &Store, n: u8, envelope: &[u8], to: &[DeviceRef]) -> i64 {
    match s.mailbox_enqueue(&msg(n, envelope, to), BIG).await.unwrap() {
        Enqueued::Queued { id } => id,
        other => panic!("{other:?}"),
    }
}

async fn queued_once_fetched_in_order_and_deleted_with_the_last_ack(db: &TestDb) {
    let s = db.open().await;
    let (b1, b2) = (dev("bob", 1), dev("bob", 2));
    let to = [b1.clone(), b2.clone()];
    let a = send(&s, 1, b"first", &to).await;
    let b = send(&s, 2, b"second", &to).await;
    assert!(b > a);
    // A retried send is the same message, not a second copy.
    assert_eq!(
        s.mailbox_enqueue(&msg(1, b"first", &to), BIG)
            .await
            .unwrap(),
        Enqueued::Duplicate { id: a }
    );
    let t = s.mailbox_totals().await.unwrap();
    assert_eq!((t.messages, t.queued, t.bytes), (2, 4, 11));
    assert_eq!(s.mailbox_pending(APP, &b1).await.unwrap(), 2);

    let page = s
        .mailbox_fetch(APP, &b1, 0, 1, 1 << 20, 5_000)
        .await
        .unwrap();
    assert_eq!(page.messages.len(), 1);
    assert!(page.more);
    assert_eq!(page.messages[0].envelope, b"first");
    let page = s
        .mailbox_fetch(APP, &b1, a, 10, 1 << 20, 5_000)
        .await
        .unwrap();
    assert_eq!(page.messages.iter().map(|m| m.id).collect::<Vec<_>>(), [b]);
    assert!(!page.more);

    // Another device's acknowledgement deletes nothing of b1's.
    assert_eq!(
        s.mailbox_ack(APP, &dev("mallory", 1), &[a, b])
            .await
            .unwrap(),
        0
    );
    assert_eq!(s.mailbox_ack(APP, &b1, &[a, b, 999]).await.unwrap(), 2);
    assert_eq!(s.mailbox_ack(APP, &b1, &[a]).await.unwrap(), 0);
    let st = s
        .mailbox_status(APP, "alice", &[1; ID_LEN])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(st.recipients, 2);
    assert_eq!(st.pending.len(), 1);
    assert_eq!(st.pending[0].device, b2);
    assert!(!st.pending[0].delivered);
    assert_eq!(s.mailbox_ack(APP, &b2, &[a, b]).await.unwrap(), 2);
    assert_eq!(s.mailbox_totals().await.unwrap(), MailboxTotals::default());
    assert_eq!(
        s.mailbox_status(APP, "alice", &[1; ID_LEN]).await.unwrap(),
        None
    );
    assert_eq!(s.mailbox_pending(APP, &b1).await.unwrap(), 0);
}

async fn quotas_bytes_expiry_and_purges(db: &TestDb) {
    let s = db.open().await;
    let b1 = dev("bob", 1);
    let small = Quota {
        max_messages: 2,
        max_bytes: 10,
    };
    let to = [b1.clone()];
    assert!(matches!(
        s.mailbox_enqueue(&msg(1, b"12345", &to), small)
            .await
            .unwrap(),
        Enqueued::Queued { .. }
    ));
    assert_eq!(
        s.mailbox_enqueue(&msg(2, b"123456", &to), small)
            .await
            .unwrap(),
        Enqueued::OverQuota(b1.clone())
    );
    assert!(matches!(
        s.mailbox_enqueue(&msg(3, b"12345", &to), small)
            .await
            .unwrap(),
        Enqueued::Queued { .. }
    ));
    assert_eq!(
        s.mailbox_enqueue(&msg(4, b"1", &to), small).await.unwrap(),
        Enqueued::OverQuota(b1.clone())
    );
    // Nothing of a refused message is left behind.
    assert_eq!(s.mailbox_totals().await.unwrap().messages, 2);

    // The byte bound cuts a page, but never below one message.
    let page = s.mailbox_fetch(APP, &b1, 0, 10, 1, 5_000).await.unwrap();
    assert_eq!((page.messages.len(), page.more), (1, true));
    // Expired messages are not handed out, then deleted.
    assert!(
        s.mailbox_fetch(APP, &b1, 0, 10, 100, 10_000)
            .await
            .unwrap()
            .messages
            .is_empty()
    );
    assert_eq!(s.mailbox_expire(10_000).await.unwrap(), 2);
    assert_eq!(s.mailbox_totals().await.unwrap(), MailboxTotals::default());
    assert_eq!(s.mailbox_pending(APP, &b1).await.unwrap(), 0);

    // A revoked device's queue is purged; the others keep theirs.
    let (b2, c1) = (dev("bob", 2), dev("carol", 1));
    let id = send(&s, 5, b"x", &[b1.clone(), b2.clone(), c1.clone()]).await;
    assert_eq!(
        s.mailbox_purge_devices(APP, "bob", &[[2; ID_LEN]])
            .await
            .unwrap(),
        1
    );
    assert_eq!(s.mailbox_pending(APP, &b1).await.unwrap(), 0);
    assert_eq!(s.mailbox_pending(APP, &b2).await.unwrap(), 1);
    assert_eq!(s.mailbox_purge_devices(APP, "bob", &[]).await.unwrap(), 1);
    assert_eq!(s.mailbox_ack(APP, &c1, &[id]).await.unwrap(), 1);
    assert_eq!(s.mailbox_totals().await.unwrap(), MailboxTotals::default());
}

/// Deletion is real: after the acknowledgement and a checkpoint, no byte
/// of the envelope is left in the database file or its write-ahead log.
/// Fails with `secure_delete` off (the freed page keeps the bytes).
#[tokio::test]
async fn acknowledged_envelopes_leave_no_trace_in_the_files() {
    let (dir, s, _) = store().await;
    let b1 = dev("bob", 1);
    let marker: Vec<u8> = (0..600u32).map(|i| (i * 7 % 251) as u8 ^ 0x5a).collect();
    let mut ids = Vec::new();
    for n in 0..20u8 {
        let mut envelope = marker.clone();
        envelope.push(n);
        ids.push(send(&s, n, &envelope, std::slice::from_ref(&b1)).await);
    }
    let found = |needle: &[u8]| -> bool {
        std::fs::read_dir(dir.path()).unwrap().any(|e| {
            let bytes = std::fs::read(e.unwrap().path()).unwrap();
            memchr_find(&bytes, needle)
        })
    };
    assert!(
        found(&marker[..64]),
        "positive control: the envelope is on disk"
    );
    assert_eq!(s.mailbox_ack(APP, &b1, &ids).await.unwrap(), 20);
    assert!(s.checkpoint().await.unwrap());
    assert!(
        !found(&marker[..64]),
        "an acknowledged envelope is still on disk"
    );
}

fn memchr_find(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

async fn a_batch_is_one_commit_with_the_same_answers_as_one_by_one(db: &TestDb) {
    let s = db.open().await;
    let (b1, b2) = (dev("bob", 1), dev("bob", 2));
    let both = [b1.clone(), b2.clone()];
    let old = send(&s, 1, b"old", &both).await;
    let batch = [
        msg(1, b"old", &both), // already queued
        msg(2, b"two", &both),
        msg(3, b"three", &both[..1]),
        msg(2, b"two", &both), // repeated within the batch
    ];
    let out = s.mailbox_enqueue_batch(&batch, BIG).await.unwrap();
    assert_eq!(out[0], Enqueued::Duplicate { id: old });
    let Enqueued::Queued { id: two } = out[1] else {
        panic!("{out:?}")
    };
    assert!(matches!(out[2], Enqueued::Queued { id } if id > two));
    assert_eq!(out[3], Enqueued::Duplicate { id: two });
    let t = s.mailbox_totals().await.unwrap();
    assert_eq!((t.messages, t.queued), (3, 5));
    assert_eq!(s.mailbox_pending(APP, &b1).await.unwrap(), 3);
    assert_eq!(s.mailbox_pending(APP, &b2).await.unwrap(), 2);

    // One message that overfills a queue is refused alone.
    let tight = Quota {
        max_messages: 4,
        max_bytes: 1 << 20,
    };
    let batch = [msg(4, b"4", &both[..1]), msg(5, b"5", &both[..1])];
    let out = s.mailbox_enqueue_batch(&batch, tight).await.unwrap();
    assert!(matches!(out[0], Enqueued::Queued { .. }), "{out:?}");
    assert_eq!(out[1], Enqueued::OverQuota(b1.clone()));
    assert_eq!(s.mailbox_pending(APP, &b1).await.unwrap(), 4);
    // And acknowledging a batch releases what each device held.
    let page = s
        .mailbox_fetch(APP, &b1, 0, 100, 1 << 20, 5_000)
        .await
        .unwrap();
    let ids: Vec<i64> = page.messages.iter().map(|m| m.id).collect();
    assert_eq!(s.mailbox_ack(APP, &b1, &ids).await.unwrap(), 4);
    assert_eq!(s.mailbox_purge_devices(APP, "bob", &[]).await.unwrap(), 2);
    assert_eq!(s.mailbox_totals().await.unwrap(), MailboxTotals::default());
}
