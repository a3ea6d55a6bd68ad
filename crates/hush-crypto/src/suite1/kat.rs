//! Suite 1 known-answer vector (docs/E2EE-SUITE1.md, "Known-answer vector").
//!
//! Every random input is given explicitly (message id, content key, HPKE
//! ephemeral key material per recipient) and Ed25519 is deterministic, so
//! any implementation can reproduce `data` byte for byte. The committed file
//! `tests/vectors/suite1.txt` is checked here; to rewrite it after a
//! deliberate format change, run with `HUSH_BLESS_KAT=1`.
//!
//! A unit test (not an integration test) because `seal_with_rng` is
//! test-only: production code has no way to seal with a chosen generator.

use std::collections::BTreeMap;
use std::convert::Infallible;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hush_protocol::{ChannelName, EventName, UserId};

use super::{
    Envelope, RECIPIENT_ENTRY_LEN, Recipient, ReplayGuard, SealRequest, TrustedSender,
    seal_with_rng,
};
use crate::identity::{DeviceCard, DeviceKeys, IdentityKey, UnsignedCard};
use crate::transparency::{LogKey, SignedTreeHead, TreeHead};

/// The gossiped tree head: `{log id, epoch, root, timestamp}` signed by the
/// log key (Ed25519, deterministic).
fn tree_head(v: &BTreeMap<&'static str, String>) -> SignedTreeHead {
    LogKey::from_secret_bytes(&h32(&v["log_key_seed"])).sign(TreeHead {
        log_id: v["log_id"].clone(),
        epoch: v["tree_epoch"].parse().unwrap(),
        root: h32(&v["tree_root"]),
        timestamp: v["tree_timestamp"].parse().unwrap(),
    })
}

/// The committed vector, found at run time: a path fixed at compile time
/// breaks when a cached test binary is reused from another checkout.
fn vector_path() -> std::path::PathBuf {
    std::path::PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_else(|| ".".into()))
        .join("tests/vectors/suite1.txt")
}

/// Hands out pre-set bytes in order; panics if asked for more.
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
        assert!(dst.len() <= self.0.len(), "script exhausted");
        let rest = self.0.split_off(dst.len());
        dst.copy_from_slice(&self.0);
        self.0 = rest;
        Ok(())
    }
}
impl rand_core::TryCryptoRng for Scripted {}

fn h32(s: &str) -> [u8; 32] {
    hex::decode(s).unwrap().try_into().unwrap()
}

/// The inputs (fixed here; also written to the vector file).
fn inputs() -> Vec<(&'static str, String)> {
    let pattern = |b: u8| hex::encode([b; 32]);
    vec![
        ("sender_user", "alice".into()),
        ("sender_identity_seed", pattern(0x01)),
        ("sender_device_signing_seed", pattern(0x02)),
        ("sender_device_x25519_secret", pattern(0x03)),
        ("card_created_at", "1700000000".into()),
        ("card_expires_at", "1800000000".into()),
        ("recipient_user", "bob".into()),
        ("recipient_identity_seed", pattern(0x07)),
        ("recipient_0_signing_seed", pattern(0xb1)),
        ("recipient_0_x25519_secret", pattern(0x04)),
        ("recipient_1_signing_seed", pattern(0xb2)),
        ("recipient_1_x25519_secret", pattern(0x05)),
        ("channel", "private-chat-42".into()),
        ("event", "e2ee".into()),
        ("inner_event", "message".into()),
        ("timestamp_ms", "1750000000000".into()),
        ("sequence", "7".into()),
        ("plaintext", hex::encode(br#"{"text":"hello bob"}"#)),
        ("message_id", hex::encode([0x11; 16])),
        ("content_key", pattern(0x22)),
        ("recipient_0_ephemeral_ikm", pattern(0x33)),
        ("recipient_1_ephemeral_ikm", pattern(0x44)),
        ("log_key_seed", pattern(0x55)),
        ("log_id", "app-1".into()),
        ("tree_epoch", "42".into()),
        ("tree_root", pattern(0x66)),
        ("tree_timestamp", "1749999990000".into()),
    ]
}

struct Fixture {
    card: DeviceCard,
    identity: IdentityKey,
    sender_keys: DeviceKeys,
    /// Bob's two devices: keys and cards (same validity as the sender's).
    recipients: Vec<(DeviceKeys, DeviceCard)>,
    v: BTreeMap<&'static str, String>,
}

fn fixture() -> Fixture {
    let v: BTreeMap<_, _> = inputs().into_iter().collect();
    let identity = IdentityKey::from_secret_bytes(&h32(&v["sender_identity_seed"]));
    let sender_keys = DeviceKeys::from_secret_bytes(
        &h32(&v["sender_device_signing_seed"]),
        &h32(&v["sender_device_x25519_secret"]),
    );
    let body = UnsignedCard::new(
        UserId::parse(&v["sender_user"]).unwrap(),
        &identity.public_key(),
        &sender_keys,
        v["card_created_at"].parse().unwrap(),
        v["card_expires_at"].parse().unwrap(),
        None,
    );
    let card = DeviceCard::issue(body, &sender_keys, &identity).unwrap();
    let bob = UserId::parse(&v["recipient_user"]).unwrap();
    let bob_identity = IdentityKey::from_secret_bytes(&h32(&v["recipient_identity_seed"]));
    let recipients = (0..2)
        .map(|i| {
            let keys = DeviceKeys::from_secret_bytes(
                &h32(&v[format!("recipient_{i}_signing_seed").as_str()]),
                &h32(&v[format!("recipient_{i}_x25519_secret").as_str()]),
            );
            let body = UnsignedCard::new(
                bob.clone(),
                &bob_identity.public_key(),
                &keys,
                v["card_created_at"].parse().unwrap(),
                v["card_expires_at"].parse().unwrap(),
                None,
            );
            let card = DeviceCard::issue(body, &keys, &bob_identity).unwrap();
            (keys, card)
        })
        .collect();
    Fixture {
        card,
        identity,
        sender_keys,
        recipients,
        v,
    }
}

fn compute(f: &Fixture) -> Vec<(String, String)> {
    let v = &f.v;
    let user = UserId::parse(&v["sender_user"]).unwrap();
    let channel = ChannelName::parse(&v["channel"]).unwrap();
    let event = EventName::parse_api(&v["event"]).unwrap();
    let inner = EventName::parse_api(&v["inner_event"]).unwrap();
    let recipients: Vec<Recipient> = f
        .recipients
        .iter()
        .map(|(_, card)| Recipient::from(card))
        .collect();
    let script = [
        "message_id",
        "content_key",
        "recipient_0_ephemeral_ikm",
        "recipient_1_ephemeral_ikm",
    ]
    .iter()
    .flat_map(|k| hex::decode(&v[*k]).unwrap())
    .collect();
    let mut rng = Scripted(script);
    let head = tree_head(v);
    let data = seal_with_rng(
        &SealRequest {
            sender_user: &user,
            sender_device: f.card.device_id(),
            sender_keys: &f.sender_keys,
            channel: &channel,
            event: &event,
            inner_event: &inner,
            timestamp_ms: v["timestamp_ms"].parse().unwrap(),
            sequence: v["sequence"].parse().unwrap(),
            recipients: &recipients,
            tree_head: Some(&head),
        },
        &hex::decode(&v["plaintext"]).unwrap(),
        &mut rng,
    )
    .unwrap();
    assert!(rng.0.is_empty(), "every scripted byte is used");

    let bytes = STANDARD.decode(&data).unwrap();
    let header_len = bytes.len() - 2 - 2 * RECIPIENT_ENTRY_LEN - body_len();
    let table = header_len + 2;
    let mut out = vec![
        (
            "sender_identity_public".into(),
            hex::encode(f.identity.public_key().to_bytes()),
        ),
        (
            "sender_device_signing_public".into(),
            hex::encode(f.sender_keys.signing_public_key().to_bytes()),
        ),
        (
            // SHA-256("hush/v1/device-id\0" ‖ signing public key)[..16]
            "sender_device_id".into(),
            hex::encode(f.card.device_id().0),
        ),
        ("sender_card".into(), hex::encode(f.card.to_bytes())),
        ("sender_card_id".into(), hex::encode(f.card.id().0)),
    ];
    for (i, ((keys, card), r)) in f.recipients.iter().zip(&recipients).enumerate() {
        out.push((
            format!("recipient_{i}_x25519_public"),
            hex::encode(keys.encryption_public_key().to_bytes()),
        ));
        // Cards issued like the sender's (created/expires as above), under
        // Bob's identity key; device id derived from the signing key.
        out.push((
            format!("recipient_{i}_device_id"),
            hex::encode(card.device_id().0),
        ));
        out.push((format!("recipient_{i}_card"), hex::encode(card.to_bytes())));
        out.push((format!("recipient_{i}_card_id"), hex::encode(card.id().0)));
        // SHA-256("hush/v1/suite1/recipient\0" ‖ str16(user) ‖ device id ‖ card id)
        out.push((format!("recipient_{i}_binding"), hex::encode(r.binding())));
    }
    out.push((
        "log_public_key".into(),
        hex::encode(
            LogKey::from_secret_bytes(&h32(&v["log_key_seed"]))
                .public_key()
                .to_bytes(),
        ),
    ));
    // "HSTH" ‖ 2 ‖ str16(log id) ‖ epoch ‖ root ‖ timestamp ‖ signature over
    // "hush/v2/epoch-head\0" ‖ the same bytes without the signature.
    let head_bytes = head.to_bytes();
    out.push(("tree_head".into(), hex::encode(&head_bytes)));
    out.push(("header".into(), hex::encode(&bytes[..header_len])));
    let hash_end = header_len - 2 - head_bytes.len();
    out.push((
        "recipients_hash".into(),
        hex::encode(&bytes[hash_end - 32..hash_end]),
    ));
    for i in 0..2 {
        let e = &bytes[table + i * RECIPIENT_ENTRY_LEN..table + (i + 1) * RECIPIENT_ENTRY_LEN];
        // device id (16) ‖ binding (32) ‖ enc (32) ‖ wrapped key (48)
        assert_eq!(&e[16..48], recipients[i].binding());
        out.push((format!("recipient_{i}_enc"), hex::encode(&e[48..80])));
        out.push((format!("recipient_{i}_wrapped_key"), hex::encode(&e[80..])));
    }
    out.push((
        "body_ciphertext".into(),
        hex::encode(&bytes[table + 2 * RECIPIENT_ENTRY_LEN..]),
    ));
    out.push(("data".into(), data));
    out
}

/// Body length from the fixed layout: signature 64 + padded (2 + 7
/// ("message") + 4 + 20-byte plaintext → 256) + tag 16.
fn body_len() -> usize {
    64 + 256 + 16
}

fn render(computed: &[(String, String)]) -> String {
    let mut s = String::from(
        "# hush suite 1 (envelope version 4) known-answer vector (docs/E2EE-SUITE1.md). Inputs, then outputs.\n\
         # Random inputs are consumed in this order: message_id, content_key,\n\
         # recipient_0_ephemeral_ikm, recipient_1_ephemeral_ikm (RFC 9180 DeriveKeyPair ikm).\n",
    );
    for (k, val) in inputs() {
        s.push_str(&format!("{k} = {val}\n"));
    }
    for (k, val) in computed {
        s.push_str(&format!("{k} = {val}\n"));
    }
    s
}

#[test]
fn suite1_known_answer_vector() {
    let f = fixture();
    let computed = compute(&f);
    let text = render(&computed);
    if std::env::var_os("HUSH_BLESS_KAT").is_some() {
        std::fs::create_dir_all(vector_path().parent().unwrap()).unwrap();
        std::fs::write(vector_path(), &text).unwrap();
    }
    let committed = std::fs::read_to_string(vector_path()).expect("tests/vectors/suite1.txt");
    assert_eq!(committed, text, "suite 1 output changed");

    // The committed data opens on both recipient devices.
    let data = computed
        .iter()
        .find(|(k, _)| k == "data")
        .unwrap()
        .1
        .clone();
    let env = Envelope::from_data(&data).unwrap();
    let identity = f.identity.public_key();
    for (keys, card) in &f.recipients {
        let opened = env
            .open(
                card,
                keys,
                &TrustedSender {
                    card: &f.card,
                    identity: &identity,
                    revocations: &[],
                },
                &mut ReplayGuard::default(),
                1_750_000_000_000,
            )
            .unwrap();
        assert_eq!(opened.plaintext, br#"{"text":"hello bob"}"#);
        assert_eq!(opened.event.as_str(), "message");
        // The gossiped head comes back as signed by the log.
        let head = opened.header.tree_head.as_ref().unwrap();
        let log = LogKey::from_secret_bytes(&[0x55; 32]).public_key();
        head.verify(&log, "app-1").unwrap();
    }
    // The committed card parses and verifies.
    let card_hex = &computed.iter().find(|(k, _)| k == "sender_card").unwrap().1;
    let card = DeviceCard::from_bytes(&hex::decode(card_hex).unwrap()).unwrap();
    card.verify(&UserId::parse("alice").unwrap(), &identity, 1_750_000_000)
        .unwrap();
}

/// RFC 9180 appendix A.2.1 (DHKEM(X25519, HKDF-SHA256), HKDF-SHA256,
/// ChaCha20-Poly1305, base mode, first encryption): the HPKE configuration
/// suite 1 uses reproduces the RFC's published values.
#[test]
fn rfc9180_a21_base_mode_vector() {
    use hpke::{Deserializable, OpModeR, OpModeS, Serializable};
    type Kem = hpke::kem::X25519HkdfSha256;
    type Aead = hpke::aead::ChaCha20Poly1305;
    type Kdf = hpke::kdf::HkdfSha256;
    let info = hex::decode("4f6465206f6e2061204772656369616e2055726e").unwrap();
    let pk_r = <Kem as hpke::Kem>::PublicKey::from_bytes(
        &hex::decode("4310ee97d88cc1f088a5576c77ab0cf5c3ac797f3d95139c6c84b5429c59662a").unwrap(),
    )
    .unwrap();
    let sk_r = <Kem as hpke::Kem>::PrivateKey::from_bytes(
        &hex::decode("8057991eef8f1f1af18f4a9491d16a1ce333f695d4db8e38da75975c4478e0fb").unwrap(),
    )
    .unwrap();
    let pt = hex::decode("4265617574792069732074727574682c20747275746820626561757479").unwrap();
    let aad = hex::decode("436f756e742d30").unwrap();
    let ikm_e =
        hex::decode("909a9b35d3dc4713a5e72a4da274b55d3d3821a37e5d099e74a647db583a904b").unwrap();
    let (enc, ct) = hpke::single_shot_seal_with_rng::<Aead, Kdf, Kem>(
        &OpModeS::Base,
        &pk_r,
        &info,
        &pt,
        &aad,
        &mut Scripted(ikm_e),
    )
    .unwrap();
    assert_eq!(
        hex::encode(enc.to_bytes()),
        "1afa08d3dec047a643885163f1180476fa7ddb54c6a8029ea33f95796bf2ac4a"
    );
    assert_eq!(
        hex::encode(&ct),
        "1c5250d8034ec2b784ba2cfd69dbdb8af406cfe3ff938e131f0def8c8b60b4db21993c62ce81883d2dd1b51a28"
    );
    let opened =
        hpke::single_shot_open::<Aead, Kdf, Kem>(&OpModeR::Base, &sk_r, &enc, &info, &ct, &aad)
            .unwrap();
    assert_eq!(opened, pt);
}
