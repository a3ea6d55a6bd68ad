//! A minimal app backend: triggers an event on a public channel and an
//! end-to-end encrypted one, signs a channel authorization the way an app's
//! `/pusher/auth` endpoint would, and lists the occupied channels.
//!
//! ```sh
//! hush serve &                      # prints the development app's credentials
//! HUSH_APP_ID=app-id HUSH_APP_KEY=app-key HUSH_APP_SECRET=app-secret \
//! HUSH_MASTER_KEY=$(hush keygen --json | jq -r .encryption_master_key_base64) \
//!   cargo run -p hush-sdk --example trigger
//! ```
//!
//! Environment: `HUSH_URL` (default `http://127.0.0.1:6001`), `HUSH_APP_ID`,
//! `HUSH_APP_KEY`, `HUSH_APP_SECRET`, and optionally `HUSH_MASTER_KEY` (base64,
//! 32 bytes; without it the encrypted part is skipped).

use hush_sdk::{Attribute, ChannelsQuery, Client, Config, MasterKey, TriggerOptions};
use serde::Serialize;

#[derive(Serialize)]
struct ChatMessage<'a> {
    from: &'a str,
    text: &'a str,
}

fn env(name: &str) -> Result<String, Box<dyn std::error::Error>> {
    std::env::var(name).map_err(|_| format!("set {name}").into())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut config = Config::new(
        env("HUSH_APP_ID")?,
        env("HUSH_APP_KEY")?,
        env("HUSH_APP_SECRET")?,
    );
    config.set_base_url(
        &std::env::var("HUSH_URL").unwrap_or_else(|_| "http://127.0.0.1:6001".into()),
    )?;
    if let Ok(key) = std::env::var("HUSH_MASTER_KEY") {
        config = config.with_master_key(MasterKey::from_base64(&key)?);
    }
    let encrypted = config.encryption_master_key.is_some();
    let client = Client::new(config)?;

    // Any serde value becomes the event's JSON data.
    let response = client
        .trigger(
            &["chat"],
            "message",
            &ChatMessage {
                from: "backend",
                text: "hello, everyone",
            },
            &TriggerOptions {
                info: vec![Attribute::SubscriptionCount],
                ..TriggerOptions::default()
            },
        )
        .await?;
    let subscribers = response
        .channels
        .get("chat")
        .and_then(|c| c.subscription_count)
        .unwrap_or(0);
    println!("sent to chat ({subscribers} subscribers)");

    if encrypted {
        // Sealed with SHA-256(channel ‖ master key): hush relays ciphertext only.
        client
            .trigger(
                &["private-encrypted-chat"],
                "message",
                &ChatMessage {
                    from: "backend",
                    text: "only subscribers can read this",
                },
                &TriggerOptions::default(),
            )
            .await?;
        println!("sent to private-encrypted-chat (sealed)");

        // What the app's auth endpoint returns to pusher-js for that channel.
        // A socket id from the browser is parsed strictly: "1.1:private-x" is refused.
        let auth = client.authorize_channel("1234.5678", "private-encrypted-chat", None)?;
        println!(
            "auth response for socket 1234.5678: {} bytes of JSON",
            auth.to_json().len()
        );
    }

    let channels = client.channels(&ChannelsQuery::default()).await?;
    println!(
        "occupied channels: {:?}",
        channels.channels.keys().collect::<Vec<_>>()
    );
    Ok(())
}
