//! `hush sdk-vectors` (hidden): runs hush-sdk on cases read as JSON from
//! standard input and prints the results as JSON, so the compat suite can
//! feed the same inputs to the Pusher Node SDK and compare
//! (`tests/compat/test/sdk-parity.test.js`).
//!
//! Input: `{"app":{"id","key","secret"},"master_key":"<base64>"?,"cases":[…]}`,
//! each case one of
//! `{"op":"channel_auth","socket_id","channel","presence"?:{"user_id","user_info"?}}`,
//! `{"op":"user_auth","socket_id","user":{"id","user_info"?,"watchlist"?}}`,
//! `{"op":"shared_secret","channel"}`,
//! `{"op":"signed_query","method","path","params"?:{k:v},"body"?,"timestamp"}`,
//! `{"op":"encrypt","channel","plaintext"}`, `{"op":"decrypt","channel","data"}`,
//! `{"op":"webhook","key_header","signature","body"}`.
//! Output: `{"results":[{"ok":…} | {"error":"…"}, …]}` in case order.

use std::io::Read;

use anyhow::Context;
use clap::Args;
use hush_crypto::{open, seal, shared_secret};
use hush_protocol::ChannelName;
use hush_sdk::{Client, Config, MasterKey, PresenceData, UserData};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Value, json};

/// Options of `hush sdk-vectors` (none: JSON in, JSON out).
#[derive(Args)]
pub struct SdkVectorsArgs {}

#[derive(Deserialize)]
struct Input {
    app: App,
    #[serde(default)]
    master_key: Option<String>,
    cases: Vec<Box<RawValue>>,
}

#[derive(Deserialize)]
struct App {
    id: String,
    key: String,
    secret: String,
}

#[derive(Deserialize)]
struct Presence {
    user_id: String,
    #[serde(default)]
    user_info: Option<Box<RawValue>>,
}

#[derive(Deserialize)]
struct User {
    id: String,
    #[serde(default)]
    user_info: Option<Box<RawValue>>,
    #[serde(default)]
    watchlist: Option<Vec<String>>,
}

/// The cases, each read from its own JSON text: `RawValue` (member order of
/// `user_info` kept byte for byte) cannot sit inside a serde-tagged enum.
#[derive(Deserialize)]
struct Op {
    op: String,
}

#[derive(Deserialize)]
struct ChannelAuthCase {
    socket_id: String,
    channel: String,
    #[serde(default)]
    presence: Option<Presence>,
}

#[derive(Deserialize)]
struct UserAuthCase {
    socket_id: String,
    user: User,
}

#[derive(Deserialize)]
struct ChannelCase {
    channel: String,
}

#[derive(Deserialize)]
struct SignedQueryCase {
    method: String,
    path: String,
    #[serde(default)]
    params: Vec<(String, String)>,
    #[serde(default)]
    body: Option<String>,
    timestamp: u64,
}

#[derive(Deserialize)]
struct EncryptCase {
    channel: String,
    plaintext: String,
}

#[derive(Deserialize)]
struct DecryptCase {
    channel: String,
    data: String,
}

#[derive(Deserialize)]
struct WebhookCase {
    key_header: String,
    signature: String,
    body: String,
}

fn channel_key(client: &Client, channel: &str) -> anyhow::Result<hush_crypto::ChannelKey> {
    let channel = ChannelName::parse(channel)?;
    let master = client
        .config()
        .encryption_master_key
        .as_ref()
        .context("no master_key given")?;
    Ok(shared_secret(&channel, master))
}

fn run_case(client: &Client, case: &RawValue) -> anyhow::Result<Value> {
    let text = case.get();
    let op: Op = serde_json::from_str(text)?;
    Ok(match op.op.as_str() {
        "channel_auth" => {
            let c: ChannelAuthCase = serde_json::from_str(text)?;
            let presence = c.presence.map(|p| PresenceData {
                user_id: p.user_id,
                user_info: p.user_info,
            });
            let auth = client.authorize_channel(&c.socket_id, &c.channel, presence.as_ref())?;
            serde_json::from_str(&auth.to_json())?
        }
        "user_auth" => {
            let c: UserAuthCase = serde_json::from_str(text)?;
            let user = UserData {
                id: c.user.id,
                user_info: c.user.user_info,
                watchlist: c.user.watchlist,
            };
            serde_json::from_str(&client.authenticate_user(&c.socket_id, &user)?.to_json())?
        }
        "shared_secret" => {
            let c: ChannelCase = serde_json::from_str(text)?;
            json!(channel_key(client, &c.channel)?.to_base64())
        }
        "signed_query" => {
            let c: SignedQueryCase = serde_json::from_str(text)?;
            let pairs: Vec<(&str, &str)> = c
                .params
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            let body = c.body.unwrap_or_default();
            json!(client.signed_query(&c.method, &c.path, &pairs, body.as_bytes(), c.timestamp)?)
        }
        "encrypt" => {
            let c: EncryptCase = serde_json::from_str(text)?;
            json!(seal(
                &channel_key(client, &c.channel)?,
                c.plaintext.as_bytes()
            ))
        }
        "decrypt" => {
            let c: DecryptCase = serde_json::from_str(text)?;
            let plain = open(&channel_key(client, &c.channel)?, &c.data)?;
            json!(String::from_utf8(plain).context("plaintext is not UTF-8")?)
        }
        "webhook" => {
            let c: WebhookCase = serde_json::from_str(text)?;
            let hook = client.verify_webhook(&c.key_header, &c.signature, c.body.as_bytes())?;
            json!({"time_ms": hook.time_ms, "events": hook.events.len()})
        }
        other => anyhow::bail!("unknown op {other:?}"),
    })
}

/// Reads the cases from standard input and prints the results.
pub fn run(_args: SdkVectorsArgs) -> anyhow::Result<()> {
    let mut text = String::new();
    std::io::stdin()
        .read_to_string(&mut text)
        .context("reading standard input")?;
    let input: Input = serde_json::from_str(&text).context("parsing the cases")?;
    let mut config = Config::new(input.app.id, input.app.key, input.app.secret);
    if let Some(m) = input.master_key {
        config = config.with_master_key(MasterKey::from_base64(&m)?);
    }
    let client = Client::new(config)?;
    let results: Vec<Value> = input
        .cases
        .into_iter()
        .map(|case| match run_case(&client, &case) {
            Ok(v) => json!({ "ok": v }),
            Err(e) => json!({ "error": format!("{e:#}") }),
        })
        .collect();
    println!("{}", json!({ "results": results }));
    Ok(())
}
