//! An app backend that publishes to an end-to-end encrypted channel: a
//! Pusher-compatible encrypted event (pusher-js can read it) and a sealed
//! event (hidden name, sender and sequence, replay-protected; hush-client
//! reads it), once a second.
//!
//! ```sh
//! hush serve &    # development app: app-id / app-key / app-secret
//! export HUSH_APP_ID=app-id HUSH_APP_KEY=app-key HUSH_APP_SECRET=app-secret
//! export HUSH_MASTER_KEY=$(hush keygen --json | jq -r .encryption_master_key_base64)
//! cargo run -p hush-client --example listen &    # the device side
//! cargo run -p hush-client --example backend
//! ```
//!
//! Environment: `HUSH_URL` (default `http://127.0.0.1:6001`), `HUSH_APP_ID`,
//! `HUSH_APP_KEY`, `HUSH_APP_SECRET`, `HUSH_MASTER_KEY`, `HUSH_CHANNEL`
//! (default `private-encrypted-demo`), `HUSH_EPOCH_SECONDS` (rotate the key
//! epoch every N seconds; default: no rotation).
#![allow(clippy::print_stdout)]

use std::time::Duration;

use hush_sdk::{Client, Config, EpochPolicy, MasterKey, TriggerOptions};
use serde_json::json;

fn env(name: &str) -> Result<String, Box<dyn std::error::Error>> {
    std::env::var(name).map_err(|_| format!("set {name}").into())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut config = Config::new(
        env("HUSH_APP_ID")?,
        env("HUSH_APP_KEY")?,
        env("HUSH_APP_SECRET")?,
    )
    .with_master_key(MasterKey::from_base64(&env("HUSH_MASTER_KEY")?)?);
    config.set_base_url(
        &std::env::var("HUSH_URL").unwrap_or_else(|_| "http://127.0.0.1:6001".into()),
    )?;
    if let Ok(secs) = std::env::var("HUSH_EPOCH_SECONDS") {
        config = config.with_key_epochs(EpochPolicy::Periodic {
            origin_unix_secs: 1_700_000_000,
            period: Duration::from_secs(secs.parse()?),
        });
    }
    let channel = std::env::var("HUSH_CHANNEL").unwrap_or_else(|_| "private-encrypted-demo".into());
    let backend = Client::new(config)?;
    println!(
        "publishing on {channel} as sealed sender {}",
        backend.sealed_sender_id()
    );
    for n in 1u64.. {
        let epoch = backend.config().current_epoch();
        // Readable by pusher-js and hush-client alike.
        backend
            .trigger(
                &[&channel],
                "price",
                &json!({"n": n, "eur": 100 + n}),
                &TriggerOptions::default(),
            )
            .await?;
        // Sealed: the relay sees only "hush-sealed" and a size bucket.
        let secret = json!({"n": n, "note": "only subscribers can read this"}).to_string();
        backend
            .trigger_sealed(&channel, "memo", &secret, &TriggerOptions::default())
            .await?;
        println!("#{n}: sent price and memo (key epoch {epoch})");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    Ok(())
}
