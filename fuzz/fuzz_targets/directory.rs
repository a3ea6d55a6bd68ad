//! The key directory as signed-in clients use it through `hush:request`
//! (`Directory::handle`, docs/PROTOCOL-EXT.md): publishing device cards and
//! revocations made by the real signing code (for the signed-in user or
//! someone else, expired or not, chained or not), lookups, tree heads,
//! consistency proofs, entry listings, and raw method names and parameters.
//!
//! Oracles: no panic and no store failure; a record for another user than
//! the signed-in one is refused (403); and everything the directory answers
//! verifies with the client's own checks (`LogMonitor`): each signed tree
//! head under the node's log key, each new head as an append-only
//! extension of the last one trusted (consistency proofs from
//! `log.consistency`), and each published or looked-up record's inclusion
//! proof against the head it came with.
#![no_main]

use std::sync::atomic::{AtomicU64, Ordering};

use arbitrary::Arbitrary;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hush_crypto::identity::{DeviceCard, DeviceKeys, IdentityKey, Revocation, UnsignedCard};
use hush_crypto::transparency::{Hash, LogEntry, LogMonitor, LogPublicKey, SignedTreeHead};
use hush_fuzz::harness;
use hush_protocol::UserId;
use hush_protocol::msgs::{RawJson, RequestFrame};
use hush_server::directory::DirError;
use libfuzzer_sys::fuzz_target;
use serde_json::{Value, json};

const USERS: [&str; 2] = ["alice", "bob"];

#[derive(Arbitrary, Debug)]
enum Op {
    Publish {
        user: u8,
        signed_in_as: Option<u8>,
        identity: u8,
        device: u8,
        expired: bool,
        previous: bool,
    },
    Revoke {
        user: u8,
        signed_in_as: Option<u8>,
        device: u8,
        rotate: bool,
    },
    Lookup {
        users: Vec<u8>,
        since: Option<u64>,
    },
    Head,
    Consistency {
        from: u64,
        to: u64,
    },
    Entries {
        start: u64,
        end: u64,
    },
    Raw {
        method: String,
        params: String,
        signed_in_as: Option<String>,
    },
}

struct Client {
    app_id: String,
    monitor: LogMonitor,
    /// Last card published per (user, device), to chain the next one.
    last: std::collections::HashMap<(u8, u8), DeviceCard>,
}

fn identity(user: u8, generation: u8) -> IdentityKey {
    IdentityKey::from_secret_bytes(&[
        user.wrapping_add(1),
        generation,
        7,
        7,
        7,
        7,
        7,
        7,
        7,
        7,
        7,
        7,
        7,
        7,
        7,
        7,
        7,
        7,
        7,
        7,
        7,
        7,
        7,
        7,
        7,
        7,
        7,
        7,
        7,
        7,
        7,
        7,
    ])
}

/// The keys of `device`; a card renewing `previous` gets a new X25519 key
/// (derived from the previous card's id, so runs stay deterministic), as the
/// directory's rules require.
fn device_keys(
    user: u8,
    device: u8,
    previous: Option<&hush_crypto::identity::CardId>,
) -> DeviceKeys {
    let encryption = previous.map_or(
        [
            user, device, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
            2, 2, 2, 2, 2, 2,
        ],
        |id| id.0,
    );
    DeviceKeys::from_secret_bytes(
        &[
            user, device, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
            1, 1, 1, 1, 1, 1,
        ],
        &encryption,
    )
}

fn user_id(i: u8) -> UserId {
    UserId::parse(USERS[usize::from(i) % USERS.len()]).expect("user id")
}

fn hashes(v: &Value) -> Vec<Hash> {
    v.as_array()
        .expect("proof is a list")
        .iter()
        .map(|h| {
            let bytes = STANDARD
                .decode(h.as_str().expect("hash is a string"))
                .expect("base64");
            bytes.try_into().expect("32-byte hash")
        })
        .collect()
}

async fn call(
    app_id: &str,
    user: Option<&UserId>,
    method: &str,
    params: &Value,
) -> Result<Value, DirError> {
    let request = RequestFrame {
        id: "f".into(),
        method: method.to_owned(),
        params: Some(RawJson::from_string(params.to_string()).expect("JSON")),
    };
    let r = harness()
        .state
        .directory
        .handle(app_id, user, &request)
        .await;
    if let Err(DirError::Unavailable(e)) = &r {
        panic!("store failed: {e}");
    }
    // The typed result as the client reads it: its JSON text.
    r.map(|v| serde_json::from_str(&v.encode()).expect("result is JSON"))
}

impl Client {
    /// Trusts a new head only as the client would: signature, then a
    /// consistency proof from the last trusted head.
    async fn accept_head(&mut self, head_b64: &Value) {
        let bytes = STANDARD
            .decode(head_b64.as_str().expect("head string"))
            .expect("base64");
        let sth = SignedTreeHead::from_bytes(&bytes).expect("signed tree head parses");
        let from = self.monitor.trusted().map_or(0, |t| t.size);
        let proof = if from == 0 || from > sth.head.size {
            Vec::new()
        } else {
            let me = user_id(0);
            let r = call(
                &self.app_id,
                Some(&me),
                "log.consistency",
                &json!({ "from": from, "to": sth.head.size }),
            )
            .await
            .expect("consistency proof to the current head");
            hashes(&r["proof"])
        };
        self.monitor
            .update(&sth, &proof)
            .unwrap_or_else(|e| panic!("the client refuses the directory's head: {e}"));
    }

    fn check_record(&self, item: &Value) {
        let record = STANDARD
            .decode(item["record"].as_str().expect("record"))
            .expect("base64");
        LogEntry::from_bytes(&record).expect("served record verifies");
        let index = item["index"].as_u64().expect("index");
        self.monitor
            .verify_entry(&record, index, &hashes(&item["proof"]))
            .unwrap_or_else(|e| panic!("served record not in the trusted tree: {e}"));
    }
}

async fn run(ops: &[Op]) {
    static N: AtomicU64 = AtomicU64::new(0);
    let h = harness();
    let app_id = format!("dir-{}", N.fetch_add(1, Ordering::Relaxed));
    let key_bytes: [u8; 32] = STANDARD
        .decode(h.state.directory.public_key())
        .expect("log key base64")
        .try_into()
        .expect("32 bytes");
    let key = LogPublicKey::from_bytes(&key_bytes).expect("log key");
    let mut client = Client {
        app_id: app_id.clone(),
        monitor: LogMonitor::new(app_id.clone(), key),
        last: Default::default(),
    };
    let now_s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    for op in ops.iter().take(12) {
        match op {
            Op::Publish {
                user,
                signed_in_as,
                identity: generation,
                device,
                expired,
                previous,
            } => {
                let (u, d) = (user % 2, device % 3);
                let id = identity(u, generation % 2);
                let prev = if *previous {
                    client.last.get(&(u, d)).map(DeviceCard::id)
                } else {
                    None
                };
                let dk = device_keys(u, d, prev.as_ref());
                let (created, expires) = if *expired {
                    (now_s.saturating_sub(100), now_s.saturating_sub(10))
                } else {
                    (now_s.saturating_sub(10), now_s + 86_400)
                };
                let body =
                    UnsignedCard::new(user_id(u), &id.public_key(), &dk, created, expires, prev);
                let card = DeviceCard::issue(body, &dk, &id).expect("card");
                let me = signed_in_as.map(|i| user_id(i % 2));
                let r = call(
                    &app_id,
                    me.as_ref(),
                    "directory.publish",
                    &json!({ "card": STANDARD.encode(card.to_bytes()) }),
                )
                .await;
                match (&me, &r) {
                    (None, r) => assert!(matches!(r, Err(DirError::NotSignedIn))),
                    (Some(me), r) if *me != user_id(u) => {
                        assert!(matches!(r, Err(DirError::Forbidden(_))), "{r:?}")
                    }
                    (_, Ok(v)) => {
                        assert!(!expired, "expired card accepted");
                        client.accept_head(&v["head"]).await;
                        let mut leaf = vec![1u8];
                        leaf.extend_from_slice(&card.to_bytes());
                        client
                            .monitor
                            .verify_entry(
                                &leaf,
                                v["index"].as_u64().expect("index"),
                                &hashes(&v["proof"]),
                            )
                            .unwrap_or_else(|e| panic!("published card not in the head: {e}"));
                        client.last.insert((u, d), card);
                    }
                    (_, Err(_)) => {}
                }
            }
            Op::Revoke {
                user,
                signed_in_as,
                device,
                rotate,
            } => {
                let u = user % 2;
                let Some(card) = client.last.get(&(u, device % 3)).cloned() else {
                    continue;
                };
                let id = identity(u, 0);
                let rev = if *rotate {
                    Revocation::rotate_identity(user_id(u), &id, &identity(u, 1), now_s)
                } else {
                    Revocation::revoke_device(&id, &card, now_s)
                };
                // Refused only when the card is under the other identity.
                let Ok(rev) = rev else {
                    continue;
                };
                let me = signed_in_as.map(|i| user_id(i % 2));
                let r = call(
                    &app_id,
                    me.as_ref(),
                    "directory.revoke",
                    &json!({ "revocation": STANDARD.encode(rev.to_bytes()) }),
                )
                .await;
                match (&me, &r) {
                    (None, r) => assert!(matches!(r, Err(DirError::NotSignedIn))),
                    (Some(me), r) if *me != user_id(u) => {
                        assert!(matches!(r, Err(DirError::Forbidden(_))), "{r:?}")
                    }
                    (_, Ok(v)) => client.accept_head(&v["head"]).await,
                    (_, Err(_)) => {}
                }
            }
            Op::Lookup { users, since } => {
                let names: Vec<&str> = users
                    .iter()
                    .take(4)
                    .map(|i| USERS[usize::from(*i) % 2])
                    .collect();
                let me = user_id(0);
                let mut params = json!({ "users": names });
                if let Some(s) = since {
                    params["since"] = json!(s);
                }
                if let Ok(v) = call(&app_id, Some(&me), "directory.lookup", &params).await {
                    client.accept_head(&v["head"]).await;
                    for name in &names {
                        let u = &v["users"][*name];
                        for item in u["cards"].as_array().expect("cards") {
                            client.check_record(item);
                        }
                        for item in u["revocations"].as_array().expect("revocations") {
                            client.check_record(item);
                        }
                    }
                }
            }
            Op::Head => {
                let me = user_id(1);
                let v = call(&app_id, Some(&me), "log.head", &json!({}))
                    .await
                    .expect("head");
                assert_eq!(v["key"], h.state.directory.public_key());
                client.accept_head(&v["head"]).await;
            }
            Op::Consistency { from, to } => {
                let me = user_id(1);
                let _ = call(
                    &app_id,
                    Some(&me),
                    "log.consistency",
                    &json!({ "from": from, "to": to }),
                )
                .await;
            }
            Op::Entries { start, end } => {
                let me = user_id(1);
                if let Ok(v) = call(
                    &app_id,
                    Some(&me),
                    "log.entries",
                    &json!({ "start": start, "end": end }),
                )
                .await
                {
                    for e in v["entries"].as_array().expect("entries") {
                        let leaf = STANDARD.decode(e.as_str().expect("entry")).expect("base64");
                        LogEntry::from_bytes(&leaf).expect("stored entry verifies");
                    }
                }
            }
            Op::Raw {
                method,
                params,
                signed_in_as,
            } => {
                let params: Value = serde_json::from_str(params).unwrap_or(Value::Null);
                let me = signed_in_as.as_deref().and_then(|s| UserId::parse(s).ok());
                let _ = call(&app_id, me.as_ref(), method, &params).await;
            }
        }
    }
}

fuzz_target!(|ops: Vec<Op>| {
    harness().rt.block_on(run(&ops));
});
