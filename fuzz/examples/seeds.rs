//! Writes the seed corpora of the byte-level fuzz targets into
//! `fuzz/corpus/<target>/`: real frames, records, envelopes, webhook bodies
//! and configurations made by hush's own code (plus the committed suite 1
//! known-answer vector). Deterministic: keys come from fixed seeds, so
//! rerunning gives the same files (nonces of suite 0 envelopes aside).
//!
//!     cd fuzz && cargo run --release --example seeds
#![forbid(unsafe_code)]

// Built with the fuzz targets' instrumentation (to reuse their build), the
// program needs libFuzzer's coverage callbacks: link it, though unused.
use libfuzzer_sys as _;

use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hush_crypto::identity::{
    CardId, DeviceCard, DeviceKeys, IdentityKey, Revocation, UnsignedCard,
};
use hush_crypto::transparency::proofs::UserEntry;
use hush_crypto::transparency::{LogEntry, LogKey, TreeHead};
use hush_crypto::{MasterKey, seal, shared_secret};
use hush_protocol::{ChannelName, SocketId, auth, wire};
use sha2::{Digest, Sha256};

fn corpus(target: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(target);
    std::fs::create_dir_all(&dir).expect("corpus dir");
    dir
}

fn put(target: &str, bytes: &[u8]) {
    // Named by content, as libFuzzer names its own corpus files.
    let name = hex(&Sha256::digest(bytes)[..10]);
    std::fs::write(corpus(target).join(name), bytes).expect("write seed");
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

fn kat(name: &str) -> String {
    let text = include_str!("../../crates/hush-crypto/tests/vectors/suite1.txt");
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} = ")))
        .unwrap_or_else(|| panic!("{name} in the known-answer vector"))
        .to_owned()
}

fn frames() {
    let socket = SocketId::from_parts(1234, 5678);
    let secret = b"fuzz-secret";
    let private = ChannelName::parse("private-chat").expect("name");
    let presence = ChannelName::parse("presence-room").expect("name");
    let cd = r#"{"user_id":"u1","user_info":{"name":"Ann"}}"#;
    let ud = r#"{"id":"u1","user_info":{"name":"Ann"},"watchlist":["u2","u3"]}"#;
    let sig_p = auth::auth_value(
        "fuzz-key",
        &auth::sign_channel(secret, &socket, &private, None),
    );
    let sig_pr = auth::auth_value(
        "fuzz-key",
        &auth::sign_channel(secret, &socket, &presence, Some(cd)),
    );
    let sig_u = auth::auth_value("fuzz-key", &auth::sign_user(secret, &socket, ud));
    let master =
        MasterKey::from_base64("dGhpcyBpcyAzMiBieXRlcyBsb25nLCBpdCByZWFsbHk=").expect("master");
    let enc = ChannelName::parse("private-encrypted-x").expect("name");
    let envelope = seal(&shared_secret(&enc, &master), br#"{"message":"hi"}"#);
    let texts = [
        r#"{"event":"pusher:ping","data":{}}"#.to_owned(),
        r#"{"event":"pusher:pong","data":"{}"}"#.to_owned(),
        r#"{"event":"pusher:subscribe","data":{"channel":"my-channel"}}"#.to_owned(),
        serde_json::json!({"event":"pusher:subscribe","data":{"channel":"private-chat","auth":sig_p}}).to_string(),
        serde_json::json!({"event":"pusher:subscribe","data":{"channel":"presence-room","auth":sig_pr,"channel_data":cd}}).to_string(),
        // pusher-js sends data as an object; some clients send a JSON string.
        serde_json::json!({"event":"pusher:subscribe","data":serde_json::json!({"channel":"cache-x"}).to_string()}).to_string(),
        r#"{"event":"pusher:unsubscribe","data":{"channel":"private-chat"}}"#.to_owned(),
        serde_json::json!({"event":"pusher:signin","data":{"auth":sig_u,"user_data":ud}}).to_string(),
        r#"{"event":"client-typing","channel":"private-chat","data":{"who":"u1"}}"#.to_owned(),
        serde_json::json!({"event":"client-hush-sealed","channel":"private-encrypted-x","data":envelope}).to_string(),
        r#"{"event":"hush:request","data":{"id":"1","method":"log.head","params":{}}}"#.to_owned(),
        r#"{"event":"hush:request","data":{"id":"r-2","method":"directory.lookup","params":{"users":["u1"]}}}"#.to_owned(),
        r#"{"event":"hush:request","data":{"id":"r-3","method":"directory.history","params":{"versions":3}}}"#.to_owned(),
        r#"{"event":"hush:request","data":{"id":"r-4","method":"log.audit","params":{"from":1,"to":2}}}"#.to_owned(),
        r#"{"event":"hush:request","data":{"id":"r-5","method":"log.head","params":{"epoch":1}}}"#.to_owned(),
        r#"{"event":"pusher_internal:member_added","data":{}}"#.to_owned(),
        r#"{"event":"other","data":null}"#.to_owned(),
    ];
    for t in &texts {
        put("client_frame", t.as_bytes());
    }
    // What the server sends: the encoders' own output.
    for t in [
        wire::connection_established("1234.5678", 120),
        wire::channel_event("my-event", "my-channel", "{\"x\":\"\\u0000\"}"),
        wire::presence_data([("u1", r#"{"name":"Ann"}"#), ("u2", "{}")].into_iter()),
        wire::member_added("presence-room", "u1", r#"{"name":"Ann"}"#),
        wire::error(Some(4009), "Connection not authorized"),
    ] {
        put("client_frame", t.as_bytes());
    }
    for t in [
        cd,
        r#"{"user_id":10,"user_info":{"name":"Mr. Channels"}}"#,
        r#"{"user_id":1e2}"#,
        r#"{"user_id":123456789012345678901234567890}"#,
        r#"{"user_id":"a","user_info":null}"#,
        ud,
        r#"{"id":"12345","watchlist":["1","2"]}"#,
    ] {
        put("presence_data", t.as_bytes());
    }
}

fn records() {
    let identity = IdentityKey::from_secret_bytes(&[1; 32]);
    let new_identity = IdentityKey::from_secret_bytes(&[9; 32]);
    let device = DeviceKeys::from_secret_bytes(&[2; 32], &[3; 32]);
    let user = hush_protocol::UserId::parse("alice").expect("user");
    let first = DeviceCard::issue(
        UnsignedCard::new(
            user.clone(),
            &identity.public_key(),
            &device,
            1_700_000_000,
            1_800_000_000,
            None,
        ),
        &device,
        &identity,
    )
    .expect("card");
    // A successor keeps the signing key (the device id is derived from it)
    // and brings a new X25519 key.
    let rotated_device = DeviceKeys::from_secret_bytes(&[2; 32], &[5; 32]);
    let second = DeviceCard::issue(
        UnsignedCard::new(
            user.clone(),
            &identity.public_key(),
            &rotated_device,
            1_700_000_100,
            1_800_000_000,
            Some(CardId(first.id().0)),
        ),
        &rotated_device,
        &identity,
    )
    .expect("successor card");
    let revoke = Revocation::revoke_device(&identity, &second, 1_750_000_000).expect("revocation");
    let rotate = Revocation::rotate_identity(user, &identity, &new_identity, 1_760_000_000)
        .expect("rotation");
    let entries = [
        LogEntry::Card(first.clone()),
        LogEntry::Card(second.clone()),
        LogEntry::Revocation(revoke.clone()),
        LogEntry::Revocation(rotate.clone()),
    ];
    let sth = LogKey::from_secret_bytes(&[6; 32]).sign(TreeHead {
        log_id: "app-id".into(),
        epoch: 3,
        root: [7; 32],
        timestamp: 1_750_000_000_000,
    });
    // Per-user entries as the akd directory commits them.
    let with_card = UserEntry {
        identity: identity.public_key(),
        cards: vec![second.clone()],
        revocations: Vec::new(),
    };
    let with_revocation = UserEntry {
        identity: identity.public_key(),
        cards: Vec::new(),
        revocations: vec![revoke.clone(), rotate.clone()],
    };
    put("records", &with_card.to_bytes());
    put("records", &with_revocation.to_bytes());
    for bytes in [
        first.to_bytes(),
        second.to_bytes(),
        revoke.to_bytes(),
        rotate.to_bytes(),
        sth.to_bytes(),
        unhex(&kat("sender_card")),
    ] {
        put("records", &bytes);
    }
    for e in &entries {
        put("records", &e.to_bytes());
    }
    // The suite 1 vector's envelope, binary and base64.
    let data = kat("data");
    let binary = STANDARD.decode(&data).expect("vector base64");
    put("records", &binary[..binary.len().min(4096)]);
}

fn configs() {
    let defaults = include_str!("../../config/defaults.toml");
    put("config", defaults.as_bytes());
    for t in [
        "[server]\nport = 0\n",
        "[apps.main]\nid = \"1\"\nkey = \"k\"\nsecret = \"s\"\nallowed_origins = [\"https://x.example\"]\nmax_api_requests_per_second = 5\n",
        "[apps.a]\nid = \"a\"\nkey = \"ka\"\nsecret = \"sa\"\n[[apps.a.webhooks]]\nurl = \"http://127.0.0.1:9/hook\"\nevent_types = [\"channel_occupied\", \"client_event\"]\n",
        "[server]\ntrusted_proxies = [\"127.0.0.1\", \"10.0.0.0/8\"]\n[server.tls]\ncert_file = \"/x/cert.pem\"\nkey_file = \"/x/key.pem\"\n",
        "[store]\nurl = \"sqlite::memory:\"\nmax_connections = 2\n[metrics]\nenabled = true\nport = 0\n",
    ] {
        put("config", t.as_bytes());
    }
}

fn main() {
    frames();
    records();
    configs();
    println!("seeds written under {}", corpus("").display());
}
