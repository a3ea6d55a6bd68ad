//! Test helpers shared by hush's crates, used only as a dev-dependency:
//!
//! - [`TestServer`]: the real hush server, in-process, on a loopback port,
//!   with an in-memory store unless the test names one;
//! - [`Client`]: a raw Pusher-protocol WebSocket client that reads frames as
//!   JSON, with bounded waits;
//! - [`TestServer::api`]: signed HTTP API requests over a plain socket, so
//!   the server's own status codes and bodies are seen unaltered;
//! - [`sign`], [`sign_raw`], [`new_card`], [`new_device`]: channel auths and device cards;
//! - [`forge_directory_log`]: a key-directory history rewritten by someone
//!   holding the database and the log key;
//! - [`forge_directory_entry`]: an epoch written straight into the stored
//!   akd tree, bypassing the directory's rules, by the same someone;
//! - [`mailbox`]: device proofs and suite 1 envelopes for mailbox tests;
//! - [`postgres`]: a real PostgreSQL server in a temporary directory;
//! - [`redis`]: a real `redis-server` on a free loopback port (cluster tests).
//!
//! Helpers panic on anything unexpected: that is how a test fails.
#![forbid(unsafe_code)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod client;
pub mod mailbox;
pub mod postgres;
pub mod redis;
mod server;

pub use client::{Client, Next, Ws};
pub use server::{TestServer, app_toml};

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hush_crypto::identity::{DeviceCard, DeviceKeys, IdentityKey, UnsignedCard};
use hush_crypto::transparency::LogEntry;
use hush_protocol::{ChannelName, SocketId, UserId, auth};

/// App id of the test app.
pub const ID: &str = "3";
/// App key of the test app.
pub const KEY: &str = "278d425bdf160c739803";
/// App secret of the test app.
pub const SECRET: &str = "7ad3773142a6692b25b8";
/// An encryption master key (base64 of 32 bytes) for `private-encrypted-`.
pub const MASTER_KEY: &str = "dGhpcyBpcyAzMiBieXRlcyBsb25nLCBpdCByZWFsbHk=";
/// How long a helper waits for something that should happen. Generous:
/// the machines are shared.
pub const WAIT: Duration = Duration::from_secs(10);

/// The test app's `auth` value for `socket` on `channel` (with presence
/// `data`).
pub fn sign(socket: &str, channel: &str, data: Option<&str>) -> String {
    let s = SocketId::parse(socket).unwrap();
    let c = ChannelName::parse(channel).unwrap();
    auth::auth_value(KEY, &auth::sign_channel(SECRET.as_bytes(), &s, &c, data))
}

/// Signs an arbitrary string with the test app's secret (to build forged
/// auths).
pub fn sign_raw(s: &str) -> String {
    auth::auth_value(KEY, &auth::hmac_sha256(SECRET.as_bytes(), s.as_bytes()))
}

/// Seconds since the Unix epoch.
pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A fresh device card of `user` under `identity`, valid for a day.
pub fn new_card(user: &str, identity: &IdentityKey) -> DeviceCard {
    new_device(user, identity).1
}

/// A new device of `user` under `identity`: its keys and its card, valid for
/// a day (the keys are what [`card_after`] needs to renew the card).
pub fn new_device(user: &str, identity: &IdentityKey) -> (DeviceKeys, DeviceCard) {
    let keys = DeviceKeys::generate();
    let card = card_with(user, identity, &keys, None);
    (keys, card)
}

/// A device card of `user` under `identity`, valid for a day: for the device
/// of `previous` (its signing key, so its device id, and a new X25519 key;
/// linked to the card), else a new device with fresh keys.
pub fn card_after(
    user: &str,
    identity: &IdentityKey,
    previous: Option<(&DeviceCard, &DeviceKeys)>,
) -> DeviceCard {
    match previous {
        Some((card, keys)) => {
            card_with(user, identity, &keys.with_new_encryption_key(), Some(card))
        }
        None => new_card(user, identity),
    }
}

fn card_with(
    user: &str,
    identity: &IdentityKey,
    keys: &DeviceKeys,
    previous: Option<&DeviceCard>,
) -> DeviceCard {
    let body = UnsignedCard::new(
        UserId::parse(user).unwrap(),
        &identity.public_key(),
        keys,
        now_secs() - 10,
        now_secs() + 86_400,
        previous.map(DeviceCard::id),
    );
    DeviceCard::issue(body, keys, identity).unwrap()
}

/// The name under which the server keeps its key-directory head-signing key.
const LOG_KEY_NAME: &str = "directory-log-v1";
/// The name under which the server keeps its key-directory VRF key.
const VRF_KEY_NAME: &str = "directory-vrf-v1";

/// Rewrites the test app's key-directory history the way someone holding
/// the database and the log key could: copies the log stored at `from` into
/// a new store at `to`, under the same keys, with record `index` replaced by
/// `card`. The forged directory obeys every rule and is validly signed (its
/// tree is rebuilt from the records: another root at the same epochs); only
/// a client that trusted an earlier head can tell. Returns the record count.
pub async fn forge_directory_log(from: &str, to: &str, index: usize, card: &DeviceCard) -> usize {
    rewrite_directory_log(from, to, |leaves| {
        leaves[index] = LogEntry::Card(card.clone()).to_bytes();
    })
    .await
}

/// Copies the test app's key-directory log stored at `from` into a new
/// store at `to`, under the same head-signing and VRF keys, after `edit`
/// changed its records (e.g. truncated them: a rolled-back directory).
/// Returns the record count.
pub async fn rewrite_directory_log(
    from: &str,
    to: &str,
    edit: impl FnOnce(&mut Vec<Vec<u8>>),
) -> usize {
    let store = hush_store::Store::open(from, &Default::default())
        .await
        .unwrap();
    let mut leaves = store.directory_leaves(ID, 0, 10_000).await.unwrap();
    let key = store.server_key(LOG_KEY_NAME, || [0; 32]).await.unwrap();
    let vrf = store.server_key(VRF_KEY_NAME, || [0; 32]).await.unwrap();
    store.close().await;
    edit(&mut leaves);
    let rewritten = hush_store::Store::open(to, &Default::default())
        .await
        .unwrap();
    rewritten.server_key(LOG_KEY_NAME, || *key).await.unwrap();
    rewritten.server_key(VRF_KEY_NAME, || *vrf).await.unwrap();
    for (i, leaf) in leaves.iter().enumerate() {
        let user = match LogEntry::from_bytes(leaf).unwrap() {
            LogEntry::Card(c) => c.user_id().to_string(),
            LogEntry::Revocation(r) => r.user_id().to_string(),
        };
        assert!(
            rewritten
                .directory_append(ID, i as u64, leaf, &user)
                .await
                .unwrap()
        );
    }
    rewritten.close().await;
    leaves.len()
}

/// The VRF key storage of [`forge_directory_entry`].
#[derive(Clone)]
struct ForgerVrf([u8; 32]);

#[async_trait::async_trait]
impl akd_core::ecvrf::VRFKeyStorage for ForgerVrf {
    async fn retrieve(&self) -> Result<Vec<u8>, akd_core::ecvrf::VrfError> {
        Ok(self.0.to_vec())
    }
}

/// Publishes one epoch straight into the test app's stored akd tree at
/// `url` (the server must be stopped), setting `user`'s entry to `entry`
/// whatever the directory's rules say: what someone holding the database
/// and the directory's keys (a malicious operator) can do. The epoch's head
/// is recorded like the server's own. Returns the new epoch.
pub async fn forge_directory_entry(
    url: &str,
    user: &str,
    entry: &hush_crypto::transparency::proofs::UserEntry,
) -> u64 {
    use hush_crypto::transparency::proofs::{AkdConfig, label};
    let store = hush_store::Store::open(url, &Default::default())
        .await
        .unwrap();
    let vrf = store.server_key(VRF_KEY_NAME, || [0; 32]).await.unwrap();
    let db = store.akd_db(ID);
    let last = store.latest_epoch_head(ID).await.unwrap();
    let log_size = last.as_ref().map_or(0, |h| h.log_size);
    let storage = akd::storage::StorageManager::new_no_cache(db.clone());
    let dir = akd::Directory::<AkdConfig, _, _>::new(
        storage,
        ForgerVrf(*vrf),
        akd::append_only_zks::AzksParallelismConfig::disabled(),
    )
    .await
    .unwrap();
    let akd::EpochHash(current, _) = dir.get_epoch_hash().await.unwrap();
    db.stage_epoch_head::<AkdConfig>(current + 1, log_size, hush_store::now_ms());
    let user = UserId::parse(user).unwrap();
    let akd::EpochHash(epoch, _) = dir
        .publish(vec![(label(&user), akd::AkdValue(entry.to_bytes()))])
        .await
        .unwrap();
    store.close().await;
    epoch
}
