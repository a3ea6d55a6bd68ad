//! Test-only exports (feature `kat`, built into `wasm-kat/` for
//! `js/packages/e2ee/test/vectors.test.mjs`, never into the package):
//! replays of hush-crypto's committed known-answer vectors, computed by the
//! same code the package runs. Each export takes the vector file's text and
//! returns what the Rust side computes from its inputs; the JS test compares
//! that with the file's outputs.

use std::collections::BTreeMap;
use std::convert::Infallible;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hush_crypto::identity::{DeviceCard, DeviceKeys, IdentityKey, UnsignedCard};
use hush_crypto::suite1::{
    Envelope, Recipient, ReplayGuard, SealRequest, TrustedSender, seal_with_rng,
};
use hush_crypto::transparency::proofs::{UserEntry, VrfPublicKey, verify_history, verify_lookup};
use hush_crypto::transparency::{LogKey, LogPublicKey, SignedTreeHead, TreeHead};
use hush_protocol::{ChannelName, EventName, UserId};
use serde_json::{Value, json};
use wasm_bindgen::prelude::*;

fn err(what: impl std::fmt::Display) -> JsError {
    JsError::new(&format!("kat: {what}"))
}

/// Hands out pre-set bytes in order.
struct Scripted(Vec<u8>);

impl rand_core::TryRng for Scripted {
    type Error = Infallible;
    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        let mut b = [0; 4];
        self.try_fill_bytes(&mut b)?;
        Ok(u32::from_le_bytes(b))
    }
    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        let mut b = [0; 8];
        self.try_fill_bytes(&mut b)?;
        Ok(u64::from_le_bytes(b))
    }
    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
        // Exhaustion yields zeros: the test then sees a different envelope.
        let n = dst.len().min(self.0.len());
        let rest = self.0.split_off(n);
        dst[..n].copy_from_slice(&self.0);
        dst[n..].fill(0);
        self.0 = rest;
        Ok(())
    }
}
impl rand_core::TryCryptoRng for Scripted {}

fn parse_kv(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once(" = "))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect()
}

struct Kv(BTreeMap<String, String>);

impl Kv {
    fn s(&self, k: &str) -> Result<&str, JsError> {
        self.0
            .get(k)
            .map(String::as_str)
            .ok_or_else(|| err(format!("missing {k}")))
    }
    fn h(&self, k: &str) -> Result<Vec<u8>, JsError> {
        hex::decode(self.s(k)?).map_err(|_| err(format!("{k}: not hex")))
    }
    fn h32(&self, k: &str) -> Result<[u8; 32], JsError> {
        self.h(k)?
            .try_into()
            .map_err(|_| err(format!("{k}: not 32 bytes")))
    }
    fn n(&self, k: &str) -> Result<u64, JsError> {
        self.s(k)?
            .parse()
            .map_err(|_| err(format!("{k}: not a number")))
    }
}

fn card(user: &UserId, id: &IdentityKey, keys: &DeviceKeys, v: &Kv) -> Result<DeviceCard, JsError> {
    let body = UnsignedCard::new(
        user.clone(),
        &id.public_key(),
        keys,
        v.n("card_created_at")?,
        v.n("card_expires_at")?,
        None,
    );
    DeviceCard::issue(body, keys, id).map_err(err)
}

/// Suite 1 (crates/hush-crypto/tests/vectors/suite1.txt): seals the
/// vector's inputs with its scripted randomness, and opens the vector's own
/// `data` on both recipient devices. Returns the computed outputs by the
/// file's names, plus `opened_<i>` (plaintext hex), `opened_<i>_event` and
/// `opened_<i>_tree_head` (hex).
#[wasm_bindgen(js_name = katSuite1)]
pub fn kat_suite1(vector_text: &str) -> Result<String, JsError> {
    let v = Kv(parse_kv(vector_text));
    let user = UserId::parse(v.s("sender_user")?).map_err(err)?;
    let identity = IdentityKey::from_secret_bytes(&v.h32("sender_identity_seed")?);
    let sender_keys = DeviceKeys::from_secret_bytes(
        &v.h32("sender_device_signing_seed")?,
        &v.h32("sender_device_x25519_secret")?,
    );
    let sender_card = card(&user, &identity, &sender_keys, &v)?;
    let bob = UserId::parse(v.s("recipient_user")?).map_err(err)?;
    let bob_id = IdentityKey::from_secret_bytes(&v.h32("recipient_identity_seed")?);
    let mut recipients = Vec::new();
    for i in 0..2 {
        let keys = DeviceKeys::from_secret_bytes(
            &v.h32(&format!("recipient_{i}_signing_seed"))?,
            &v.h32(&format!("recipient_{i}_x25519_secret"))?,
        );
        let c = card(&bob, &bob_id, &keys, &v)?;
        recipients.push((keys, c));
    }
    let log = LogKey::from_secret_bytes(&v.h32("log_key_seed")?);
    let head = log.sign(TreeHead {
        log_id: v.s("log_id")?.to_owned(),
        epoch: v.n("tree_epoch")?,
        root: v.h32("tree_root")?,
        timestamp: v.n("tree_timestamp")?,
    });
    let table: Vec<Recipient> = recipients.iter().map(|(_, c)| Recipient::from(c)).collect();
    let mut script = Vec::new();
    for k in [
        "message_id",
        "content_key",
        "recipient_0_ephemeral_ikm",
        "recipient_1_ephemeral_ikm",
    ] {
        script.extend(v.h(k)?);
    }
    let channel = ChannelName::parse(v.s("channel")?).map_err(err)?;
    let event = EventName::parse_api(v.s("event")?).map_err(err)?;
    let inner = EventName::parse_api(v.s("inner_event")?).map_err(err)?;
    let data = seal_with_rng(
        &SealRequest {
            sender_user: &user,
            sender_device: sender_card.device_id(),
            sender_keys: &sender_keys,
            channel: &channel,
            event: &event,
            inner_event: &inner,
            timestamp_ms: v.n("timestamp_ms")?,
            sequence: v.n("sequence")?,
            recipients: &table,
            tree_head: Some(&head),
        },
        &v.h("plaintext")?,
        &mut Scripted(script),
    )
    .map_err(err)?;
    let mut out = serde_json::Map::new();
    let mut put = |k: &str, val: String| {
        out.insert(k.to_owned(), Value::String(val));
    };
    put(
        "sender_identity_public",
        hex::encode(identity.public_key().to_bytes()),
    );
    put(
        "sender_device_signing_public",
        hex::encode(sender_keys.signing_public_key().to_bytes()),
    );
    put("sender_device_id", hex::encode(sender_card.device_id().0));
    put("sender_card", hex::encode(sender_card.to_bytes()));
    put("sender_card_id", hex::encode(sender_card.id().0));
    for (i, ((keys, c), r)) in recipients.iter().zip(&table).enumerate() {
        put(
            &format!("recipient_{i}_x25519_public"),
            hex::encode(keys.encryption_public_key().to_bytes()),
        );
        put(
            &format!("recipient_{i}_device_id"),
            hex::encode(c.device_id().0),
        );
        put(&format!("recipient_{i}_card"), hex::encode(c.to_bytes()));
        put(&format!("recipient_{i}_card_id"), hex::encode(c.id().0));
        put(&format!("recipient_{i}_binding"), hex::encode(r.binding()));
    }
    put("log_public_key", hex::encode(log.public_key().to_bytes()));
    put("tree_head", hex::encode(head.to_bytes()));
    put("data", data);
    // Open the FILE's data (not ours) on both devices.
    let env = Envelope::from_data(v.s("data")?).map_err(err)?;
    let id = identity.public_key();
    for (i, (keys, c)) in recipients.iter().enumerate() {
        let opened = env
            .open(
                c,
                keys,
                &TrustedSender {
                    card: &sender_card,
                    identity: &id,
                    revocations: &[],
                },
                &mut ReplayGuard::default(),
                v.n("timestamp_ms")?,
            )
            .map_err(err)?;
        put(&format!("opened_{i}"), hex::encode(&opened.plaintext));
        put(&format!("opened_{i}_event"), opened.event.to_string());
        put(
            &format!("opened_{i}_tree_head"),
            opened
                .header
                .tree_head
                .map(|h| hex::encode(h.to_bytes()))
                .unwrap_or_default(),
        );
    }
    Ok(Value::Object(out).to_string())
}

/// Key directory (crates/hush-crypto/tests/vectors/directory.json): the
/// signed head verified under the vector's log key and log id, the entries
/// re-encoded, the lookup and history proofs verified (and a lookup proof
/// refused for another user and for another root).
#[wasm_bindgen(js_name = katDirectory)]
pub fn kat_directory(vector_json: &str) -> Result<String, JsError> {
    let v: Value = serde_json::from_str(vector_json).map_err(err)?;
    let s = |k: &str| v[k].as_str().ok_or_else(|| err(format!("missing {k}")));
    let b = |k: &str| -> Result<Vec<u8>, JsError> { hex::decode(s(k)?).map_err(err) };
    let k32 = |k: &str| -> Result<[u8; 32], JsError> { b(k)?.try_into().map_err(|_| err(k)) };
    let user = UserId::parse(s("user")?).map_err(err)?;
    let vrf = VrfPublicKey::from_bytes(&k32("vrf_public_key")?).map_err(err)?;
    let log_key = LogPublicKey::from_bytes(&k32("log_public_key")?).map_err(err)?;
    let head = SignedTreeHead::from_bytes(&b("signed_head")?).map_err(err)?;
    let head_ok = head.verify(&log_key, s("log_id")?).is_ok();
    let mut entries = serde_json::Map::new();
    for k in ["entry_v1", "entry_v2"] {
        let e = UserEntry::from_bytes(&user, &b(k)?).map_err(err)?;
        entries.insert(k.into(), hex::encode(e.to_bytes()).into());
    }
    let found = verify_lookup(&vrf, &head.head, &user, &b("lookup_proof")?).map_err(err)?;
    let bob = UserId::parse("bob").map_err(err)?;
    let other_user = verify_lookup(&vrf, &head.head, &bob, &b("lookup_proof")?)
        .err()
        .map(|e| e.to_string());
    let mut other = head.head.clone();
    other.root[0] ^= 1;
    let other_root = verify_lookup(&vrf, &other, &user, &b("lookup_proof")?)
        .err()
        .map(|e| e.to_string());
    let n = v["history_versions"]
        .as_u64()
        .ok_or_else(|| err("history_versions"))?;
    let history =
        verify_history(&vrf, &head.head, &user, &b("history_proof")?, n as usize).map_err(err)?;
    Ok(json!({
        "head_verified": head_ok,
        "epoch": head.head.epoch,
        "root": hex::encode(head.head.root),
        "signed_head": hex::encode(head.to_bytes()),
        "entries": entries,
        "lookup_version": found.version,
        "lookup_entry": hex::encode(found.entry.to_bytes()),
        "lookup_other_user_error": other_user,
        "lookup_other_root_error": other_root,
        "history": history.iter().map(|h| json!([h.version, hex::encode(h.entry.to_bytes())])).collect::<Vec<_>>(),
    })
    .to_string())
}

/// Decodes a base64 string (for tests comparing binary payloads).
#[wasm_bindgen(js_name = katBase64ToHex)]
pub fn kat_base64_to_hex(b64: &str) -> Result<String, JsError> {
    STANDARD.decode(b64).map(hex::encode).map_err(err)
}

/// hush-protocol's reading and writing of a `hush:request` method's params
/// and result (crates/hush-protocol/vectors/frames.json `hush_methods`):
/// returns `{params, result}` as re-encoded text.
#[wasm_bindgen(js_name = katHushMethod)]
pub fn kat_hush_method(method: &str, params: &str, result: &str) -> Result<String, JsError> {
    use hush_protocol::msgs::hush::{HushRequest, HushResponse, Method};
    let m = Method::from_name(method).ok_or_else(|| err(format!("unknown method {method}")))?;
    let p: serde_json::Map<String, Value> = serde_json::from_str(params).map_err(err)?;
    let req = HushRequest::from_params(m, &p).map_err(err)?;
    let res = HushResponse::decode(m, result).map_err(err)?;
    Ok(json!({ "params": req.params().get(), "result": res.encode() }).to_string())
}

/// A mailbox push / fetch item (`hush:mailbox` data) as `openMailbox`
/// reads it, written back.
#[wasm_bindgen(js_name = katMailboxItem)]
pub fn kat_mailbox_item(item: &str) -> Result<String, JsError> {
    let i: hush_protocol::msgs::hush::MailboxItem = serde_json::from_str(item).map_err(err)?;
    serde_json::to_string(&i).map_err(err)
}

/// A safety number from raw inputs (Signal's construction): `{display,
/// scannable}` (hex).
#[wasm_bindgen(js_name = katSafety)]
pub fn kat_safety(
    version: u32,
    iterations: u32,
    local_id: &str,
    local_key_hex: &str,
    remote_id: &str,
    remote_key_hex: &str,
) -> Result<String, JsError> {
    let n = hush_crypto::safety::SafetyNumber::new(
        version,
        iterations,
        local_id.as_bytes(),
        &hex::decode(local_key_hex).map_err(err)?,
        remote_id.as_bytes(),
        &hex::decode(remote_key_hex).map_err(err)?,
    )
    .map_err(err)?;
    Ok(json!({ "display": n.display(), "scannable": hex::encode(n.scannable()) }).to_string())
}

/// Opens a backup blob (hex) with `password`: the identity public key (hex).
#[wasm_bindgen(js_name = katBackupOpen)]
pub fn kat_backup_open(blob_hex: &str, password: &str) -> Result<String, JsError> {
    let blob = hex::decode(blob_hex).map_err(err)?;
    let id = hush_crypto::backup::open_identity(&blob, password.as_bytes()).map_err(err)?;
    Ok(hex::encode(id.public_key().to_bytes()))
}

/// The sealed-event key of a channel key (base64 in, hex out).
#[wasm_bindgen(js_name = katSealedKey)]
pub fn kat_sealed_key(channel_key_b64: &str) -> Result<String, JsError> {
    let k = hush_crypto::ChannelKey::from_base64(channel_key_b64).map_err(err)?;
    Ok(hex::encode(hush_crypto::sealed::sealed_key(&k).as_bytes()))
}

/// Suite 1 seal/open timing fixture (as hush-crypto's `e2ee` criterion
/// bench: 1 KiB to one device, no tree head): the JS side times `seal` and
/// `open` (crates/hush-wasm/bench/node-bench.mjs).
#[wasm_bindgen]
pub struct KatBench {
    alice: UserId,
    sender_keys: DeviceKeys,
    sender_card: DeviceCard,
    identity: hush_crypto::identity::IdentityPublicKey,
    me_keys: DeviceKeys,
    me_card: DeviceCard,
    channel: ChannelName,
    event: EventName,
    inner: EventName,
    plaintext: Vec<u8>,
}

#[wasm_bindgen]
impl KatBench {
    /// A sender and one recipient device; `plaintext_len` bytes of 0x42.
    #[wasm_bindgen(constructor)]
    pub fn new(plaintext_len: usize) -> Result<KatBench, JsError> {
        let alice = UserId::parse("alice").map_err(err)?;
        let bob = UserId::parse("bob").map_err(err)?;
        let alice_id = IdentityKey::generate();
        let bob_id = IdentityKey::generate();
        let mk = |u: &UserId, id: &IdentityKey| -> Result<(DeviceKeys, DeviceCard), JsError> {
            let keys = DeviceKeys::generate();
            let body = UnsignedCard::new(
                u.clone(),
                &id.public_key(),
                &keys,
                1_700_000_000,
                1_900_000_000,
                None,
            );
            let card = DeviceCard::issue(body, &keys, id).map_err(err)?;
            Ok((keys, card))
        };
        let (sender_keys, sender_card) = mk(&alice, &alice_id)?;
        let (me_keys, me_card) = mk(&bob, &bob_id)?;
        Ok(KatBench {
            alice,
            sender_keys,
            sender_card,
            identity: alice_id.public_key(),
            me_keys,
            me_card,
            channel: ChannelName::parse("private-chat-42").map_err(err)?,
            event: EventName::parse_api("e2ee").map_err(err)?,
            inner: EventName::parse_api("message").map_err(err)?,
            plaintext: vec![0x42; plaintext_len],
        })
    }

    /// seal + sign to the one device.
    pub fn seal(&self) -> Result<String, JsError> {
        let recipients = [Recipient::from(&self.me_card)];
        let req = SealRequest {
            sender_user: &self.alice,
            sender_device: self.sender_card.device_id(),
            sender_keys: &self.sender_keys,
            channel: &self.channel,
            event: &self.event,
            inner_event: &self.inner,
            timestamp_ms: 1_750_000_000_000,
            sequence: 1,
            recipients: &recipients,
            tree_head: None,
        };
        hush_crypto::suite1::seal_with_limit(&req, &self.plaintext, usize::MAX).map_err(err)
    }

    /// open + verify (a fresh replay guard each time, as the Rust bench).
    pub fn open(&self, data: &str) -> Result<usize, JsError> {
        let env = Envelope::from_data(data).map_err(err)?;
        let trusted = TrustedSender {
            card: &self.sender_card,
            identity: &self.identity,
            revocations: &[],
        };
        let o = env
            .open(
                &self.me_card,
                &self.me_keys,
                &trusted,
                &mut ReplayGuard::new(1),
                1_750_000_000_000,
            )
            .map_err(err)?;
        Ok(o.plaintext.len())
    }
}
