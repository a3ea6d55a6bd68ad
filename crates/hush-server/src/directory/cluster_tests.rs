//! The key directory of several nodes sharing one PostgreSQL database (a
//! real server, see `hush_testkit::postgres`): one log and one pair of keys,
//! every node's answers as fresh as the database, epochs linear across
//! nodes, and a restarted database resumed without loss.

use super::tests::{head, keys, user};
use super::*;
use akd_core::proto::specs::types::AppendOnlyProof;
use hush_crypto::identity::{IdentityKey, Revocation};
use hush_crypto::transparency::proofs::{AkdConfig, verify_lookup};
use hush_testkit::new_device;
use hush_testkit::postgres::{self, Postgres};
use protobuf::Message;

const APP: &str = "app";

async fn database() -> String {
    tokio::task::spawn_blocking(postgres::database)
        .await
        .unwrap()
}

/// A node: its own store handle (pool) and directory on `url`.
async fn node(url: &str) -> Directory {
    let store = Store::open(url, &Default::default()).await.unwrap();
    Directory::open(store)
        .await
        .unwrap()
        .with_limits(DirectoryConfig {
            epoch_interval_ms: 20,
            ..DirectoryConfig::default()
        })
}

fn card_of(name: &str, id: &IdentityKey) -> (DeviceCard, String) {
    let (_dev, card) = new_device(name, id);
    let text = b64(&card.to_bytes());
    (card, text)
}

/// Checks that the append-only proof between consecutive heads `from` and
/// `from + 1` verifies with akd's auditor (what `hush audit` runs).
async fn check_append_only(dir: &Directory, from: u64, roots: [Hash; 2]) {
    let audit = dir.audit(APP, from, from + 1).await.unwrap();
    let bytes = STANDARD.decode(&audit.proof).unwrap();
    let proof = akd::AppendOnlyProof::try_from(&AppendOnlyProof::parse_from_bytes(&bytes).unwrap())
        .unwrap();
    assert_eq!(proof.epochs, vec![from]);
    akd::auditor::audit_verify::<AkdConfig>(roots.to_vec(), proof)
        .await
        .unwrap_or_else(|e| panic!("epochs {from}..{}: {e}", from + 1));
}

#[tokio::test]
async fn nodes_share_keys_and_see_each_others_writes_and_revocations() {
    let url = database().await;
    let (a, b) = (node(&url).await, node(&url).await);
    assert_eq!(
        a.public_key(),
        b.public_key(),
        "one signing key per cluster"
    );
    assert_eq!(a.vrf_public_key(), b.vrf_public_key());
    let (key, vrf) = keys(&a);
    let alice = user("alice");
    // B has the app loaded (empty) before A writes.
    assert!(
        b.lookup(APP, &["alice".into()])
            .await
            .unwrap()
            .users
            .is_empty()
    );

    let id = IdentityKey::generate();
    let (card, text) = card_of("alice", &id);
    let published = a.publish(APP, &alice, &text).await.unwrap();
    assert_eq!(head(&published.head, &key).epoch, 1);

    // Published through A, looked up through B at once.
    let l = b.lookup(APP, &["alice".into()]).await.unwrap();
    let h = head(&l.head, &key);
    assert_eq!(h.epoch, 1);
    let proof = STANDARD.decode(&l.users["alice"]).unwrap();
    let v = verify_lookup(&vrf, &h, &alice, &proof).unwrap();
    assert_eq!(v.entry.cards, vec![card.clone()]);

    // Revoked through B, seen revoked through A at once.
    let rev = Revocation::revoke_device(&id, &card, hush_testkit::now_secs()).unwrap();
    let r = b.revoke(APP, &alice, &b64(&rev.to_bytes())).await.unwrap();
    assert_eq!(head(&r.head, &key).epoch, 2);
    let l = a.lookup(APP, &["alice".into()]).await.unwrap();
    let h = head(&l.head, &key);
    assert_eq!(h.epoch, 2);
    let v = verify_lookup(
        &vrf,
        &h,
        &alice,
        &STANDARD.decode(&l.users["alice"]).unwrap(),
    )
    .unwrap();
    assert_eq!(v.entry.revocations, vec![rev]);
    assert_eq!(v.version, 2);
    // A's history and the mailbox's card reads see it too.
    let hist = a.history(APP, &alice, Some(2)).await.unwrap();
    assert_eq!(head(&hist.head, &key).epoch, 2);
    let cards = a
        .active_cards(APP, std::slice::from_ref(&alice), hush_testkit::now_secs())
        .await
        .unwrap();
    assert!(
        cards[&alice].is_empty(),
        "the revoked device is not routed to"
    );
}

#[tokio::test]
async fn concurrent_writes_through_three_nodes_make_one_linear_log() {
    let url = database().await;
    let nodes = [
        Arc::new(node(&url).await),
        Arc::new(node(&url).await),
        Arc::new(node(&url).await),
    ];
    let mut tasks = Vec::new();
    for i in 0..18 {
        let dir = nodes[i % 3].clone();
        tasks.push(tokio::spawn(async move {
            let name = format!("user{i}");
            let (_card, text) = card_of(&name, &IdentityKey::generate());
            dir.publish(APP, &user(&name), &text).await.unwrap()
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let (key, vrf) = keys(&nodes[0]);
    // Every node answers the same, latest head.
    let ha = head(&nodes[0].head(APP, None).await.unwrap().head, &key);
    for n in &nodes[1..] {
        let hb = head(&n.head(APP, None).await.unwrap().head, &key);
        assert_eq!((ha.epoch, ha.root), (hb.epoch, hb.root));
    }
    // Every epoch 1..=last has one head, and each step is append-only.
    let store = &nodes[0].store;
    let heads = store.epoch_heads(APP, 0, u64::MAX).await.unwrap();
    let epochs: Vec<u64> = heads.iter().map(|h| h.epoch).collect();
    assert_eq!(
        epochs,
        (1..=ha.epoch).collect::<Vec<_>>(),
        "no gap, no fork"
    );
    assert_eq!(heads.last().unwrap().root_hash, ha.root);
    assert_eq!(
        heads.last().unwrap().log_size,
        18,
        "the last epoch covers every record"
    );
    for pair in heads.windows(2) {
        let n = &nodes[(pair[0].epoch % 3) as usize];
        check_append_only(n, pair[0].epoch, [pair[0].root_hash, pair[1].root_hash]).await;
    }
    // Every user is found, with a verifying proof, through every node.
    let ids: Vec<String> = (0..18).map(|i| format!("user{i}")).collect();
    for dir in &nodes {
        let l = dir.lookup(APP, &ids).await.unwrap();
        let h = head(&l.head, &key);
        assert_eq!(l.users.len(), 18);
        for (name, proof) in &l.users {
            verify_lookup(&vrf, &h, &user(name), &STANDARD.decode(proof).unwrap()).unwrap();
        }
    }
}

/// A node whose loaded directory is behind the database (another node
/// published since) must not answer with the older head or miss the newer
/// entry: it re-reads the database first.
#[tokio::test]
async fn attack_a_node_with_a_stale_cache_answers_no_older_head_than_the_database() {
    let url = database().await;
    let (a, b) = (node(&url).await, node(&url).await);
    let (key, vrf) = keys(&a);
    let (_c, text) = card_of("alice", &IdentityKey::generate());
    a.publish(APP, &user("alice"), &text).await.unwrap();
    // B loads the app at epoch 1 and caches it.
    assert_eq!(head(&b.head(APP, None).await.unwrap().head, &key).epoch, 1);
    let (_c, text) = card_of("bob", &IdentityKey::generate());
    a.publish(APP, &user("bob"), &text).await.unwrap();
    let latest = a.store.latest_epoch_head(APP).await.unwrap().unwrap();
    assert_eq!(latest.epoch, 2);

    let h = head(&b.head(APP, None).await.unwrap().head, &key);
    assert_eq!(
        (h.epoch, h.root),
        (latest.epoch, latest.root_hash),
        "stale head"
    );
    let l = b.lookup(APP, &["bob".into()]).await.unwrap();
    assert!(l.users.contains_key("bob"), "stale lookup: bob is missing");
    let h = head(&l.head, &key);
    verify_lookup(
        &vrf,
        &h,
        &user("bob"),
        &STANDARD.decode(&l.users["bob"]).unwrap(),
    )
    .unwrap();
}

/// PostgreSQL stops abruptly and comes back: writes made before are kept,
/// the pool reconnects and writes after it are published.
#[tokio::test]
async fn the_directory_resumes_after_a_database_restart() {
    let pg = tokio::task::spawn_blocking(Postgres::start).await.unwrap();
    let url = pg.create_database();
    let dir = node(&url).await;
    let (key, vrf) = keys(&dir);
    let (_c, text) = card_of("alice", &IdentityKey::generate());
    dir.publish(APP, &user("alice"), &text).await.unwrap();

    let pg = tokio::task::spawn_blocking(move || {
        pg.restart();
        pg
    })
    .await
    .unwrap();

    let (_c, text) = card_of("bob", &IdentityKey::generate());
    let mut attempts = 0;
    let published = loop {
        attempts += 1;
        match dir.publish(APP, &user("bob"), &text).await {
            Ok(p) => break p,
            Err(e @ (DirError::Unavailable(_) | DirError::Busy(_))) if attempts < 20 => {
                eprintln!("attempt {attempts}: {e:?}");
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            Err(e) => panic!("after the restart: {e}"),
        }
    };
    assert_eq!(head(&published.head, &key).epoch, 2);
    let l = dir
        .lookup(APP, &["alice".into(), "bob".into()])
        .await
        .unwrap();
    assert_eq!(
        l.users.len(),
        2,
        "nothing written before the outage is lost"
    );
    let h = head(&l.head, &key);
    for (name, proof) in &l.users {
        verify_lookup(&vrf, &h, &user(name), &STANDARD.decode(proof).unwrap()).unwrap();
    }
    drop(pg);
}
