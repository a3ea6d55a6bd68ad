//! A device that listens: connects with hush-client, subscribes to channels
//! and prints every event as a JSON line, decrypting `private-encrypted-`
//! channels (plain and sealed events, key epochs).
//!
//! Authorization: with `HUSH_AUTH_ENDPOINT` (e.g.
//! `http://127.0.0.1:3000/pusher/auth`) it POSTs to the app's endpoint like
//! pusher-js. Without it, this demo plays the app backend in-process with
//! hush-sdk (`HUSH_APP_SECRET`, `HUSH_MASTER_KEY`) — a real device never holds
//! those.
//!
//! ```sh
//! HUSH_APP_KEY=app-key HUSH_APP_SECRET=app-secret HUSH_MASTER_KEY=... \
//!   cargo run -p hush-client --example listen -- private-encrypted-demo news
//! ```
//!
//! `HUSH_EPOCH_SECONDS` applies the same key-rotation policy as the `backend`
//! example to the in-process authorization.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use hush_client::{Client, ConnectionState, FnAuthorizer, HttpAuthorizer, event};
use hush_sdk::MasterKey;

fn env(name: &str) -> Result<String, Box<dyn std::error::Error>> {
    std::env::var(name).map_err(|_| format!("set {name}").into())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let key = env("HUSH_APP_KEY")?;
    let url = std::env::var("HUSH_URL").unwrap_or_else(|_| "ws://127.0.0.1:6001".into());
    let mut channels: Vec<String> = std::env::args().skip(1).collect();
    if channels.is_empty() {
        channels.push("private-encrypted-demo".into());
    }
    let builder = Client::builder(&key).url(&url);
    let builder = if let Ok(endpoint) = std::env::var("HUSH_AUTH_ENDPOINT") {
        builder.authorizer(HttpAuthorizer::new(&endpoint)?)
    } else {
        let mut config = hush_sdk::Config::new("demo", &key, env("HUSH_APP_SECRET")?);
        if let Ok(m) = std::env::var("HUSH_MASTER_KEY") {
            config = config.with_master_key(MasterKey::from_base64(&m)?);
        }
        // The same key epoch policy as the backend example.
        if let Ok(secs) = std::env::var("HUSH_EPOCH_SECONDS") {
            config = config.with_key_epochs(hush_sdk::EpochPolicy::Periodic {
                origin_unix_secs: 1_700_000_000,
                period: std::time::Duration::from_secs(secs.parse()?),
            });
        }
        let backend = hush_sdk::Client::new(config)?;
        builder.authorizer(FnAuthorizer::new(move |socket_id, channel| {
            let body = backend
                .authorize_channel(socket_id.as_str(), channel.as_str(), None)
                .map(|auth| auth.to_json());
            async move { body }
        }))
    };
    let client = builder.build()?;
    let mut states = client.state_changes();
    tokio::spawn(async move {
        while states.changed().await.is_ok() {
            let state = states.borrow_and_update().clone();
            eprintln!("state: {state:?}");
            if matches!(state, ConnectionState::Failed { .. }) {
                std::process::exit(1);
            }
        }
    });
    let mut all = client.bind_all();
    for c in &channels {
        client.subscribe(c).await?;
    }
    while let Some(e) = all.recv().await {
        match e.event.as_str() {
            event::SUBSCRIPTION_SUCCEEDED => {
                eprintln!("subscribed to {}", e.channel.unwrap_or_default());
            }
            event::SUBSCRIPTION_ERROR | event::ERROR => eprintln!("{}", e.to_json_line()),
            _ if e.is_protocol() && e.event != event::DECRYPTION_FAILED => {}
            _ => println!("{}", e.to_json_line()),
        }
    }
    Ok(())
}
