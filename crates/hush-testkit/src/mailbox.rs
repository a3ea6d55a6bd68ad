//! Mailbox helpers: a device proof on a raw connection and suite 1
//! envelopes sealed straight with hush-crypto (no hush-client), so server
//! tests see exactly what travels.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hush_crypto::device_auth::Challenge;
use hush_crypto::identity::{DeviceCard, DeviceKeys};
use hush_crypto::suite1::{self, Recipient, SealRequest};
use hush_protocol::{ChannelName, EventName, UserId};
use serde_json::{Value, json};

use crate::{Client, KEY};

/// Asks `c` for a device challenge; returns its nonce.
pub async fn challenge(c: &mut Client) -> [u8; 32] {
    let r = c.request_ok("device.challenge", json!({})).await;
    STANDARD
        .decode(r["nonce"].as_str().unwrap())
        .unwrap()
        .try_into()
        .unwrap()
}

/// The `device.auth` parameters by which the device of `keys` claims
/// `device` (normally its own id) for `user` on the connection `sid`.
pub fn auth_params(
    sid: &str,
    user: &str,
    keys: &DeviceKeys,
    device: &str,
    nonce: &[u8; 32],
) -> Value {
    let sig = Challenge {
        app_key: KEY,
        socket_id: sid,
        user_id: user,
        nonce,
    }
    .sign(keys);
    json!({"device": device, "signature": STANDARD.encode(sig)})
}

/// Proves on `c` (signed in as `user`) that it is the device of `keys`:
/// `device.challenge`, then `device.auth`; returns the result.
pub async fn prove(c: &mut Client, user: &str, keys: &DeviceKeys) -> Value {
    let nonce = challenge(c).await;
    let sid = c.sid().to_owned();
    let params = auth_params(&sid, user, keys, &keys.device_id().to_string(), &nonce);
    c.request_ok("device.auth", params).await
}

/// A suite 1 envelope from device `keys` of `user` to the devices of `to`,
/// sequence `n`, on the conversation `private-hush-mailbox-test`.
pub fn seal_to(user: &str, keys: &DeviceKeys, to: &[&DeviceCard], n: u64, text: &str) -> String {
    let recipients: Vec<Recipient> = to.iter().map(|c| Recipient::from(*c)).collect();
    let user = UserId::parse(user).unwrap();
    let channel = ChannelName::parse("private-hush-mailbox-test").unwrap();
    let event = EventName::parse_api("client-hush-e2ee").unwrap();
    let inner = EventName::parse_api("message").unwrap();
    suite1::seal(
        &SealRequest {
            sender_user: &user,
            sender_device: keys.device_id(),
            sender_keys: keys,
            channel: &channel,
            event: &event,
            inner_event: &inner,
            timestamp_ms: crate::now_secs() * 1000,
            sequence: n,
            recipients: &recipients,
            tree_head: None,
        },
        text.as_bytes(),
    )
    .unwrap()
}
