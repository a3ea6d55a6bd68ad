//! The key directory as signed-in clients use it through `hush:request`
//! (`Directory::handle`, docs/PROTOCOL-EXT.md, docs/KEY-TRANSPARENCY.md):
//! publishing device cards and revocations made by the real signing code
//! (for the signed-in user or someone else, expired or not, chained or not,
//! under a rotated identity or not), lookups, histories, current and past
//! epoch heads, audits, and raw method names and parameters. Each input
//! gets a fresh app (its own akd tree in the in-memory store), with epochs
//! published 1 ms after a write.
//!
//! Oracles: no panic, no store failure and no `unavailable`; a record for
//! another user than the signed-in one is refused (403); the server accepts
//! a write exactly when the directory rules (`DirectoryState`, replayed here
//! as the reference) accept it; and everything the directory answers
//! verifies with the client's own checks:
//! * every current head is signed by the node's key for this app, fresh,
//!   never older than the last one (`LogMonitor::update_fresh`) and at the
//!   epoch the accepted writes imply (one epoch per write, as each write
//!   waits for its epoch); past heads (`log.head {epoch}`, `log.audit`)
//!   show the root the client saw for their epoch (`cross_check`);
//! * every write's proof and every lookup (`verify_lookup`) shows exactly
//!   the user's entry the reference state implies, at the version implied
//!   by the user's accepted writes; users with no entry are absent;
//! * every history (`verify_history`) shows the user's past entries, newest
//!   first, as many as asked (or all);
//! * every audit verifies with akd's auditor over the heads' roots.
#![no_main]

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use arbitrary::Arbitrary;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hush_crypto::directory::DirectoryState;
use hush_crypto::identity::{DeviceCard, DeviceKeys, IdentityKey, Revocation, UnsignedCard};
use hush_crypto::transparency::proofs::{
    AkdConfig, UserEntry, VrfPublicKey, verify_history, verify_lookup,
};
use hush_crypto::transparency::{
    Freshness, LogEntry, LogMonitor, LogPublicKey, SignedTreeHead, TreeHead,
};
use hush_fuzz::harness;
use hush_protocol::UserId;
use hush_protocol::msgs::{RawJson, RequestFrame};
use hush_server::directory::DirError;
use libfuzzer_sys::fuzz_target;
use protobuf::Message;
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
    },
    History {
        signed_in_as: u8,
        versions: Option<u8>,
    },
    Head {
        epoch: Option<u8>,
    },
    Audit {
        from: u8,
        to: u8,
    },
    Raw {
        method: String,
        params: String,
        signed_in_as: Option<String>,
    },
}

/// The client, and the reference state the answers are checked against.
struct Client {
    app_id: String,
    monitor: LogMonitor,
    key: LogPublicKey,
    vrf: VrfPublicKey,
    /// The directory rules, fed every accepted write.
    state: DirectoryState,
    /// Records accepted so far (the log index of the next one).
    records: u64,
    /// Each user's entries after each accepted write, oldest first.
    history: HashMap<UserId, Vec<UserEntry>>,
    /// Last card published per (user, device), to chain the next one.
    last: HashMap<(u8, u8), DeviceCard>,
}

fn identity(user: u8, generation: u8) -> IdentityKey {
    let mut seed = [7u8; 32];
    seed[0] = user.wrapping_add(1);
    seed[1] = generation;
    IdentityKey::from_secret_bytes(&seed)
}

/// The keys of `device`; a card renewing `previous` gets a new X25519 key
/// (derived from the previous card's id, so runs stay deterministic), as the
/// directory's rules require.
fn device_keys(
    user: u8,
    device: u8,
    previous: Option<&hush_crypto::identity::CardId>,
) -> DeviceKeys {
    let mut encryption = [2u8; 32];
    encryption[0] = user;
    encryption[1] = device;
    let encryption = previous.map_or(encryption, |id| id.0);
    let mut signing = [1u8; 32];
    signing[0] = user;
    signing[1] = device;
    DeviceKeys::from_secret_bytes(&signing, &encryption)
}

fn user_id(i: u8) -> UserId {
    UserId::parse(USERS[usize::from(i) % USERS.len()]).expect("user id")
}

fn decode(text: &str) -> Vec<u8> {
    STANDARD
        .decode(text)
        .expect("the server sends standard base64")
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
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
    match &r {
        Err(DirError::Unavailable(e)) => panic!("store failed: {e}"),
        Err(DirError::Busy(e)) => panic!("directory unavailable: {e}"),
        Err(DirError::RateLimited(e)) => panic!("rate limited with no limit set: {e}"),
        _ => {}
    }
    // The typed result as the client reads it: its JSON text.
    r.map(|v| serde_json::from_str(&v.encode()).expect("result is JSON"))
}

impl Client {
    /// The epoch the accepted writes imply: one per write.
    fn epoch(&self) -> u64 {
        self.records
    }

    fn parse_head(&self, text: &Value) -> SignedTreeHead {
        let bytes = decode(text.as_str().expect("head is a string"));
        let sth = SignedTreeHead::from_bytes(&bytes).expect("signed head parses");
        assert_eq!(sth.to_bytes(), bytes, "served head is not canonical");
        sth
    }

    /// Trusts a current head only as the client would, and checks it is at
    /// the epoch the accepted writes imply.
    fn accept_head(&mut self, text: &Value) -> TreeHead {
        let sth = self.parse_head(text);
        self.monitor
            .update_fresh(&sth, now_ms(), Freshness::default())
            .unwrap_or_else(|e| panic!("the client refuses the directory's head: {e}"));
        assert_eq!(
            sth.head.epoch,
            self.epoch(),
            "head epoch is not the number of accepted writes"
        );
        sth.head
    }

    /// A past head: signed, and the root the client saw for its epoch.
    fn check_past_head(&self, text: &Value) -> TreeHead {
        let sth = self.parse_head(text);
        if self.monitor.trusted().is_some() {
            self.monitor
                .cross_check(&sth)
                .unwrap_or_else(|e| panic!("a past head contradicts the client's view: {e}"));
        } else {
            sth.verify(&self.key, &self.app_id)
                .unwrap_or_else(|e| panic!("a past head is not the directory's: {e}"));
        }
        sth.head
    }

    /// Checks a lookup proof for `user` against `head`: exactly the entry
    /// and version the reference implies.
    fn check_lookup(&self, head: &TreeHead, user: &UserId, proof: &Value) {
        let bytes = decode(proof.as_str().expect("proof is a string"));
        let v = verify_lookup(&self.vrf, head, user, &bytes)
            .unwrap_or_else(|e| panic!("lookup proof for {user} does not verify: {e}"));
        let expected = self.state.entry(user).expect("user has an entry");
        assert_eq!(v.entry, expected, "lookup shows another entry for {user}");
        let versions = self.history.get(user).map_or(0, Vec::len) as u64;
        assert_eq!(
            v.version, versions,
            "lookup shows another version for {user}"
        );
        assert!(v.epoch <= head.epoch);
    }

    /// Applies an accepted write to the reference.
    fn accepted(&mut self, entry: &LogEntry, user: &UserId) {
        self.state
            .apply(entry, self.records)
            .unwrap_or_else(|e| panic!("the server accepted a record the rules refuse: {e}"));
        self.records += 1;
        let now = self.state.entry(user).expect("entry after a write");
        self.history.entry(user.clone()).or_default().push(now);
    }

    /// Checks a write's answer (`Ok`) or refusal against the reference.
    async fn write(
        &mut self,
        method: &str,
        params: Value,
        me: Option<UserId>,
        owner: &UserId,
        entry: LogEntry,
        expired: bool,
    ) -> bool {
        let r = call(&self.app_id, me.as_ref(), method, &params).await;
        match (&me, r) {
            (None, r) => {
                assert!(matches!(r, Err(DirError::NotSignedIn)), "{r:?}");
                false
            }
            (Some(me), r) if me != owner => {
                assert!(matches!(r, Err(DirError::Forbidden(_))), "{r:?}");
                false
            }
            (_, Ok(v)) => {
                assert!(!expired, "expired card accepted");
                self.accepted(&entry, owner);
                let head = self.accept_head(&v["head"]);
                self.check_lookup(&head, owner, &v["proof"]);
                true
            }
            (_, Err(DirError::InvalidRecord(e) | DirError::Conflict(e))) => {
                assert!(
                    expired || self.state.check(&entry).is_err(),
                    "the server refused a record the rules accept: {e}"
                );
                false
            }
            (_, Err(e)) => panic!("unexpected refusal of a write: {e:?}"),
        }
    }
}

async fn run(ops: &[Op]) {
    static N: AtomicU64 = AtomicU64::new(0);
    let h = harness();
    let app_id = format!("dir-{}", N.fetch_add(1, Ordering::Relaxed));
    let key_bytes: [u8; 32] = decode(&h.state.directory.public_key())
        .try_into()
        .expect("32 bytes");
    let key = LogPublicKey::from_bytes(&key_bytes).expect("log key");
    let vrf_bytes: [u8; 32] = decode(&h.state.directory.vrf_public_key())
        .try_into()
        .expect("32 bytes");
    let mut client = Client {
        app_id: app_id.clone(),
        monitor: LogMonitor::new(app_id.clone(), key),
        key,
        vrf: VrfPublicKey::from_bytes(&vrf_bytes).expect("VRF key"),
        state: DirectoryState::new(),
        records: 0,
        history: HashMap::new(),
        last: HashMap::new(),
    };
    let now_s = now_ms() / 1000;
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
                let params = json!({ "card": STANDARD.encode(card.to_bytes()) });
                let entry = LogEntry::Card(card.clone());
                if client
                    .write(
                        "directory.publish",
                        params,
                        me,
                        &user_id(u),
                        entry,
                        *expired,
                    )
                    .await
                {
                    client.last.insert((u, d), card);
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
                let params = json!({ "revocation": STANDARD.encode(rev.to_bytes()) });
                client
                    .write(
                        "directory.revoke",
                        params,
                        me,
                        &user_id(u),
                        LogEntry::Revocation(rev),
                        false,
                    )
                    .await;
            }
            Op::Lookup { users } => {
                // Index 2 is a user id nobody writes for.
                let names: Vec<&str> = users
                    .iter()
                    .take(4)
                    .map(|i| ["alice", "bob", "nobody"][usize::from(*i) % 3])
                    .collect();
                let me = user_id(0);
                let r = call(
                    &app_id,
                    Some(&me),
                    "directory.lookup",
                    &json!({ "users": names }),
                )
                .await;
                let v = match r {
                    Ok(v) => v,
                    Err(DirError::BadRequest(_)) if names.is_empty() => continue,
                    Err(e) => panic!("lookup refused: {e:?}"),
                };
                let head = client.accept_head(&v["head"]);
                assert!(v.get("more").is_none(), "a small lookup was cut: {v}");
                let served = v["users"].as_object().expect("users object");
                for name in &names {
                    let u = UserId::parse(name).expect("user id");
                    match client.state.entry(&u) {
                        Some(_) => client.check_lookup(
                            &head,
                            &u,
                            served.get(*name).expect("a user with an entry is answered"),
                        ),
                        None => assert!(!served.contains_key(*name), "{name} has no entry"),
                    }
                }
                for name in served.keys() {
                    assert!(
                        names.contains(&name.as_str()),
                        "unasked user {name} answered"
                    );
                }
            }
            Op::History {
                signed_in_as,
                versions,
            } => {
                let me = user_id(*signed_in_as % 2);
                let mut params = json!({});
                if let Some(n) = versions {
                    params["versions"] = json!(n % 70);
                }
                let r = call(&app_id, Some(&me), "directory.history", &params).await;
                let asked = versions.map_or(1, |n| u64::from(n % 70));
                let past = client.history.get(&me).cloned().unwrap_or_default();
                match r {
                    Ok(v) => {
                        assert!((1..=64).contains(&asked));
                        assert!(!past.is_empty(), "history of a user with no entry");
                        assert_eq!(v["versions"].as_u64(), Some(asked));
                        let head = client.accept_head(&v["head"]);
                        let proof = decode(v["proof"].as_str().expect("proof"));
                        let list = verify_history(&client.vrf, &head, &me, &proof, asked as usize)
                            .unwrap_or_else(|e| panic!("history does not verify: {e}"));
                        let want = past.len().min(asked as usize);
                        assert_eq!(list.len(), want, "history shows another number of versions");
                        for (i, got) in list.iter().enumerate() {
                            assert_eq!(got.version, (past.len() - i) as u64);
                            assert_eq!(
                                got.entry,
                                past[past.len() - 1 - i],
                                "history entry differs"
                            );
                        }
                    }
                    Err(DirError::BadRequest(_)) => {
                        assert!(
                            !(1..=64).contains(&asked),
                            "history refused {asked} versions"
                        )
                    }
                    Err(DirError::NotFound(_)) => {
                        assert!(past.is_empty(), "history of {me} not found")
                    }
                    Err(e) => panic!("history refused: {e:?}"),
                }
            }
            Op::Head { epoch } => {
                let me = user_id(1);
                let params = epoch.map_or(json!({}), |e| json!({ "epoch": e }));
                let r = call(&app_id, Some(&me), "log.head", &params).await;
                match (epoch, r) {
                    (_, Ok(v)) => {
                        assert_eq!(v["key"], h.state.directory.public_key());
                        assert_eq!(v["vrf"], h.state.directory.vrf_public_key());
                        match epoch {
                            None => {
                                client.accept_head(&v["head"]);
                            }
                            Some(e) => {
                                let head = client.check_past_head(&v["head"]);
                                assert_eq!(head.epoch, u64::from(*e));
                                assert!(head.epoch <= client.epoch());
                            }
                        }
                    }
                    (Some(e), Err(DirError::NotFound(_))) => assert!(
                        *e == 0 || u64::from(*e) > client.epoch(),
                        "the head of epoch {e} is missing"
                    ),
                    (_, Err(e)) => panic!("log.head refused: {e:?}"),
                }
            }
            Op::Audit { from, to } => {
                let (from, to) = (u64::from(*from % 20), u64::from(*to % 20));
                let me = user_id(0);
                let r = call(
                    &app_id,
                    Some(&me),
                    "log.audit",
                    &json!({ "from": from, "to": to }),
                )
                .await;
                let valid_range = from >= 1 && to > from && to - from <= 16;
                match r {
                    Ok(v) => {
                        assert!(valid_range && to <= client.epoch(), "audit {from}..{to}");
                        let heads: Vec<TreeHead> = v["heads"]
                            .as_array()
                            .expect("heads")
                            .iter()
                            .map(|t| client.check_past_head(t))
                            .collect();
                        assert!(heads.iter().map(|h| h.epoch).eq(from..=to));
                        let bytes = decode(v["proof"].as_str().expect("proof"));
                        let pb =
                            akd::proto::specs::types::AppendOnlyProof::parse_from_bytes(&bytes)
                                .expect("audit proof parses");
                        let proof = akd::AppendOnlyProof::try_from(&pb).expect("audit proof");
                        let roots = heads.iter().map(|h| h.root).collect();
                        akd::auditor::audit_verify::<AkdConfig>(roots, proof)
                            .await
                            .unwrap_or_else(|e| panic!("audit {from}..{to} does not verify: {e}"));
                    }
                    Err(DirError::BadRequest(_)) => assert!(!valid_range),
                    Err(DirError::NotFound(_)) => {
                        assert!(
                            valid_range && to > client.epoch(),
                            "audit {from}..{to} not found"
                        )
                    }
                    Err(e) => panic!("log.audit refused: {e:?}"),
                }
            }
            Op::Raw {
                method,
                params,
                signed_in_as,
            } => {
                let params: Value = serde_json::from_str(params).unwrap_or(Value::Null);
                let me = signed_in_as.as_deref().and_then(|s| UserId::parse(s).ok());
                // Raw writes go to a scratch app: the reference state only
                // follows the structured writes.
                let writes =
                    hush_protocol::msgs::Method::from_name(method).is_some_and(|m| m.writes());
                let app = if writes {
                    format!("{app_id}-raw")
                } else {
                    app_id.clone()
                };
                let _ = call(&app, me.as_ref(), method, &params).await;
            }
        }
    }
}

fuzz_target!(|ops: Vec<Op>| {
    harness().rt.block_on(run(&ops));
});
