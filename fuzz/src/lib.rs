//! Shared pieces of the fuzz targets: the in-process server state (an
//! in-memory store, the key directory, the apps of [`CONFIG`]) built once per
//! process, a reader for the WebSocket frames the server queues, and the
//! oracle that every frame the server sends is one JSON object with a string
//! `event`.
#![forbid(unsafe_code)]

use std::sync::{Arc, OnceLock};

use hush_server::{Config, ServerState};
use serde_json::value::RawValue;

/// The app the stateful targets talk to.
pub const APP_ID: &str = "fuzz-app";
/// Its key.
pub const APP_KEY: &str = "fuzz-key";
/// Its secret (the harness signs with it, as an app backend would).
pub const APP_SECRET: &str = "fuzz-secret";

/// The configuration of the in-process server: one app with client events on,
/// user authentication off (so a failed sign-in answers instead of closing),
/// no webhooks, a high API rate and no directory write rates (the rate
/// limiters are not under test here: the harness lives for a whole run),
/// and key-directory epochs published 1 ms after a write (a write waits for
/// its epoch).
pub const CONFIG: &str = r#"
[server]
host = "127.0.0.1"
port = 0
max_message_bytes = 65536

[store]
url = "sqlite::memory:"

[apps.fuzz]
id = "fuzz-app"
key = "fuzz-key"
secret = "fuzz-secret"
client_events = true
encrypted_client_events = true
max_api_requests_per_second = 1000000000
max_client_events_per_second = 1000000000

[directory]
writes_per_user_per_minute = 0
writes_per_connection_per_minute = 0
epoch_interval_ms = 1
"#;

/// A tokio runtime and the server state, shared by every input of a run.
pub struct Harness {
    /// Runs the async parts (store, directory, API router).
    pub rt: tokio::runtime::Runtime,
    /// The node's state, as `Server::bind` builds it.
    pub state: Arc<ServerState>,
}

/// The process-wide harness (built on first use; panics if the fixed
/// configuration above cannot be loaded, which is a harness bug).
pub fn harness() -> &'static Harness {
    static H: OnceLock<Harness> = OnceLock::new();
    H.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("tokio runtime");
        let config = Config::from_toml(CONFIG).expect("fuzz config");
        let state = rt.block_on(async {
            let store =
                hush_store::Store::open(&config.store_url(), &hush_store::StoreOptions::default())
                    .await
                    .expect("in-memory store");
            let directory = hush_server::directory::Directory::open(store.clone())
                .await
                .expect("directory")
                .with_limits(config.directory.clone());
            let (_webhooks, sink) =
                hush_server::webhooks::Webhooks::new(&config, store.clone()).expect("webhooks");
            ServerState::new(&config, store, Arc::new(directory), &sink)
        });
        Harness { rt, state }
    })
}

/// Splits the server's unmasked WebSocket frames (what an [`Outbox`] drains)
/// into (opcode, payload) pairs. Panics on bytes that are not well-formed
/// server frames: the server must never write such bytes.
///
/// [`Outbox`]: hush_server::outbox::Outbox
pub fn split_frames(mut wire: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let mut out = Vec::new();
    while !wire.is_empty() {
        assert!(wire.len() >= 2, "truncated frame header");
        let (b0, b1) = (wire[0], wire[1]);
        assert_eq!(b0 & 0x80, 0x80, "server frames are final");
        assert_eq!(b0 & 0x70, 0, "no RSV bits");
        assert_eq!(b1 & 0x80, 0, "server frames are not masked");
        let (len, head) = match b1 & 0x7f {
            126 => (usize::from(u16::from_be_bytes([wire[2], wire[3]])), 4),
            127 => {
                let mut n = [0u8; 8];
                n.copy_from_slice(&wire[2..10]);
                (usize::try_from(u64::from_be_bytes(n)).expect("length"), 10)
            }
            n => (usize::from(n), 2),
        };
        assert!(wire.len() >= head + len, "truncated frame payload");
        out.push((b0 & 0x0f, wire[head..head + len].to_vec()));
        wire = &wire[head + len..];
    }
    out
}

/// The oracle for everything the server sends a client: each text frame is
/// one JSON object whose `event` is a string. Checked with `RawValue`s, not
/// `serde_json::Value`: JSON allows `\ud800`-style escapes of lone
/// surrogates (browsers' `JSON.parse` reads them), `Value` cannot hold them,
/// and the server relays such text inside `user_info` and client event data
/// exactly as the app or client sent it.
pub fn check_server_text(payload: &[u8]) -> std::collections::HashMap<String, Box<RawValue>> {
    let text = std::str::from_utf8(payload).expect("server text frames are UTF-8");
    let obj: std::collections::HashMap<String, Box<RawValue>> = serde_json::from_str(text)
        .unwrap_or_else(|e| panic!("server sent something else than a JSON object ({e}): {text}"));
    let event = obj
        .get("event")
        .unwrap_or_else(|| panic!("no event: {text}"));
    assert!(
        serde_json::from_str::<String>(event.get()).is_ok(),
        "event is not a string: {text}"
    );
    obj
}

/// A string member of a frame checked by [`check_server_text`].
pub fn str_member(
    frame: &std::collections::HashMap<String, Box<RawValue>>,
    name: &str,
) -> Option<String> {
    frame
        .get(name)
        .and_then(|v| serde_json::from_str::<String>(v.get()).ok())
}

/// The oracle for a [`UserEntry`] the client accepted from `bytes` for
/// `user` (hush-crypto transparency/proofs.rs): the encoding is canonical
/// (re-encodes to exactly `bytes`, so one entry has one value in the tree),
/// every card is `user`'s and cross-signed by the entry's identity key
/// (re-verified here), device ids strictly increase, and every revocation
/// is `user`'s.
///
/// [`UserEntry`]: hush_crypto::transparency::proofs::UserEntry
pub fn check_user_entry(
    user: &hush_protocol::UserId,
    bytes: &[u8],
    entry: &hush_crypto::transparency::proofs::UserEntry,
) {
    assert_eq!(
        entry.to_bytes(),
        bytes,
        "user entry encoding is not canonical"
    );
    for card in &entry.cards {
        assert_eq!(card.user_id(), user, "entry holds another user's card");
        assert_eq!(
            card.identity_key(),
            &entry.identity,
            "entry holds a card under another identity"
        );
        // Signatures were checked by the parser; this checks the binding
        // (at the card's own creation time, so expiry is not in question).
        card.verify(user, &entry.identity, card.body().created_at)
            .unwrap_or_else(|e| panic!("entry holds a card that does not verify: {e}"));
    }
    for pair in entry.cards.windows(2) {
        assert!(
            pair[0].device_id() < pair[1].device_id(),
            "entry device ids do not strictly increase"
        );
    }
    for rev in &entry.revocations {
        assert_eq!(rev.user_id(), user, "entry holds another user's revocation");
    }
    assert!(entry.cards.len() <= hush_crypto::transparency::proofs::MAX_ENTRY_CARDS);
    assert!(entry.revocations.len() <= hush_crypto::transparency::proofs::ENTRY_REVOCATIONS);
}
