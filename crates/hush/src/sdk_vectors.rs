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
    cases: Vec<Case>,
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

#[derive(Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
enum Case {
    ChannelAuth {
        socket_id: String,
        channel: String,
        #[serde(default)]
        presence: Option<Presence>,
    },
    UserAuth {
        socket_id: String,
        user: User,
    },
    SharedSecret {
        channel: String,
    },
    SignedQuery {
        method: String,
        path: String,
        #[serde(default)]
        params: Vec<(String, String)>,
        #[serde(default)]
        body: Option<String>,
        timestamp: u64,
    },
    Encrypt {
        channel: String,
        plaintext: String,
    },
    Decrypt {
        channel: String,
        data: String,
    },
    Webhook {
        key_header: String,
        signature: String,
        body: String,
    },
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

fn run_case(client: &Client, case: Case) -> anyhow::Result<Value> {
    Ok(match case {
        Case::ChannelAuth {
            socket_id,
            channel,
            presence,
        } => {
            let presence = presence.map(|p| PresenceData {
                user_id: p.user_id,
                user_info: p.user_info,
            });
            let auth = client.authorize_channel(&socket_id, &channel, presence.as_ref())?;
            serde_json::from_str(&auth.to_json())?
        }
        Case::UserAuth { socket_id, user } => {
            let user = UserData {
                id: user.id,
                user_info: user.user_info,
                watchlist: user.watchlist,
            };
            serde_json::from_str(&client.authenticate_user(&socket_id, &user)?.to_json())?
        }
        Case::SharedSecret { channel } => json!(channel_key(client, &channel)?.to_base64()),
        Case::SignedQuery {
            method,
            path,
            params,
            body,
            timestamp,
        } => {
            let pairs: Vec<(&str, &str)> = params
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            let body = body.unwrap_or_default();
            json!(client.signed_query(&method, &path, &pairs, body.as_bytes(), timestamp)?)
        }
        Case::Encrypt { channel, plaintext } => {
            json!(seal(&channel_key(client, &channel)?, plaintext.as_bytes()))
        }
        Case::Decrypt { channel, data } => {
            let plain = open(&channel_key(client, &channel)?, &data)?;
            json!(String::from_utf8(plain).context("plaintext is not UTF-8")?)
        }
        Case::Webhook {
            key_header,
            signature,
            body,
        } => {
            let hook = client.verify_webhook(&key_header, &signature, body.as_bytes())?;
            json!({"time_ms": hook.time_ms, "events": hook.events.len()})
        }
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
        .map(|case| match run_case(&client, case) {
            Ok(v) => json!({ "ok": v }),
            Err(e) => json!({ "error": format!("{e:#}") }),
        })
        .collect();
    println!("{}", json!({ "results": results }));
    Ok(())
}
