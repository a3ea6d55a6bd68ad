//! `hush bench mailbox`: the encrypted mailbox's speed (issue 18).
//!
//! Two parts, measured in one run:
//! - **store**: enqueue, fetch and acknowledge throughput of the SQLite
//!   mailbox (hush-store, a file in a temporary directory, opened as the
//!   server opens it), and the bytes the database holds per queued message;
//! - **server**: a `hush serve` child on a file store; one device queues
//!   `queued` messages for another device that is offline, which then
//!   connects and fetches them all: the time from connecting to holding
//!   every message (sign-in, device proof, paged fetch).

use std::time::Instant;

use anyhow::{Context, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hush_client::Client;
use hush_crypto::device_auth::Challenge;
use hush_crypto::identity::{DeviceCard, DeviceKeys, IdentityKey, UnsignedCard};
use hush_crypto::suite1::{self, Recipient, SealRequest};
use hush_protocol::{ChannelName, EventName, UserId};
use hush_store::mailbox::{DeviceRef, Enqueued, NewMessage, Quota};
use serde_json::{Value, json};

use crate::listen::local_authorizer;

/// What to measure.
#[derive(Debug, Clone)]
pub struct MailboxOptions {
    /// Messages through the store part.
    pub messages: usize,
    /// Envelope bytes per message in the store part.
    pub size: usize,
    /// Messages queued for the reconnecting device in the server part.
    pub queued: usize,
}

/// The figures.
#[derive(Debug, Clone, serde::Serialize)]
pub struct MailboxReport {
    /// Messages through the store part.
    pub messages: usize,
    /// Envelope bytes each.
    pub envelope_bytes: usize,
    /// Enqueues per second, one transaction each (a lone `mailbox.send`).
    pub enqueue_single_per_s: f64,
    /// Enqueues per second in group commits of 64 (concurrent sends).
    pub enqueue_per_s: f64,
    /// Fetched and acknowledged per second (pages of 100).
    pub fetch_ack_per_s: f64,
    /// Whole cycle (enqueue + fetch + acknowledge) per second.
    pub cycle_per_s: f64,
    /// Database bytes per queued message (file size after a checkpoint,
    /// over the messages queued).
    pub store_bytes_per_message: f64,
    /// Server part: messages queued for the offline device.
    pub queued: usize,
    /// Server part: `mailbox.send` per second over one connection.
    pub send_per_s: f64,
    /// Server part: from connecting to holding every queued message (ms).
    pub reconnect_fetch_ms: f64,
}

fn card(user: &str, identity: &IdentityKey, keys: &DeviceKeys) -> anyhow::Result<DeviceCard> {
    let now = hush_store::now_ms() as u64 / 1000;
    let body = UnsignedCard::new(
        UserId::parse(user)?,
        &identity.public_key(),
        keys,
        now,
        now + 86_400,
        None,
    );
    Ok(DeviceCard::issue(body, keys, identity)?)
}

/// Runs both parts.
pub async fn run(
    exe: &std::path::Path,
    key: &str,
    secret: &str,
    o: &MailboxOptions,
) -> anyhow::Result<MailboxReport> {
    let dir = tempfile_dir()?;
    let store = store_part(&dir.join("store.sqlite3"), o).await?;
    let (send_per_s, reconnect_fetch_ms) = server_part(exe, &dir, key, secret, o.queued).await?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(MailboxReport {
        queued: o.queued,
        send_per_s,
        reconnect_fetch_ms,
        ..store
    })
}

fn tempfile_dir() -> anyhow::Result<std::path::PathBuf> {
    let mut n = [0u8; 8];
    rand::Rng::fill(&mut rand::rng(), &mut n);
    let dir = std::env::temp_dir().join(format!("hush-bench-mailbox-{}", hex::encode(n)));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

async fn store_part(path: &std::path::Path, o: &MailboxOptions) -> anyhow::Result<MailboxReport> {
    let store = hush_store::Store::open(
        &format!("sqlite://{}", path.display()),
        &hush_store::StoreOptions::default(),
    )
    .await?;
    let device = DeviceRef {
        user: "bob".into(),
        device: [7; 16],
    };
    let quota = Quota {
        max_messages: u64::MAX / 2,
        max_bytes: u64::MAX / 2,
    };
    let envelope: Vec<u8> = (0..o.size).map(|i| (i * 31 % 251) as u8).collect();
    let recipients = [device.clone()];
    let message = |i: usize| {
        let mut message_id = [0u8; 16];
        message_id[..8].copy_from_slice(&(i as u64).to_be_bytes());
        NewMessage {
            app_id: "bench",
            message_id,
            sender_user: "alice",
            sender_device: [1; 16],
            envelope: &envelope,
            created_ms: hush_store::now_ms(),
            expires_ms: i64::MAX,
            recipients: &recipients,
        }
    };
    // One transaction each: a fifth of the messages.
    let singles = (o.messages / 5).max(1);
    let start = Instant::now();
    for i in 0..singles {
        if !matches!(
            store.mailbox_enqueue(&message(i), quota).await?,
            Enqueued::Queued { .. }
        ) {
            bail!("message {i} was not queued");
        }
    }
    let single = start.elapsed();
    // Group commits of 64: the rest.
    let start = Instant::now();
    let ids: Vec<usize> = (singles..o.messages).collect();
    for chunk in ids.chunks(64) {
        let batch: Vec<NewMessage<'_>> = chunk.iter().map(|&i| message(i)).collect();
        for (i, e) in chunk
            .iter()
            .zip(store.mailbox_enqueue_batch(&batch, quota).await?)
        {
            if !matches!(e, Enqueued::Queued { .. }) {
                bail!("message {i} was not queued");
            }
        }
    }
    let enqueue = start.elapsed();
    let batched = ids.len().max(1) as f64;
    store.checkpoint().await?;
    let file_bytes = std::fs::metadata(path)?.len();
    let totals = store.mailbox_totals().await?;
    let start = Instant::now();
    let mut after = 0;
    let mut got = 0;
    loop {
        let page = store
            .mailbox_fetch("bench", &device, after, 100, 1 << 20, hush_store::now_ms())
            .await?;
        let ids: Vec<i64> = page.messages.iter().map(|m| m.id).collect();
        if ids.is_empty() {
            break;
        }
        got += ids.len();
        after = *ids.last().unwrap_or(&after);
        store.mailbox_ack("bench", &device, &ids).await?;
        if !page.more {
            break;
        }
    }
    let fetch_ack = start.elapsed();
    if got != o.messages {
        bail!("fetched {got} of {} messages", o.messages);
    }
    let n = o.messages as f64;
    let enqueue_per_s = batched / enqueue.as_secs_f64();
    let fetch_ack_per_s = n / fetch_ack.as_secs_f64();
    Ok(MailboxReport {
        messages: o.messages,
        envelope_bytes: o.size,
        enqueue_single_per_s: singles as f64 / single.as_secs_f64(),
        enqueue_per_s,
        fetch_ack_per_s,
        // Per message: one enqueue (grouped) plus its share of fetch + ack.
        cycle_per_s: 1.0 / (1.0 / enqueue_per_s + 1.0 / fetch_ack_per_s),
        store_bytes_per_message: file_bytes as f64 / totals.messages.max(1) as f64,
        queued: 0,
        send_per_s: 0.0,
        reconnect_fetch_ms: 0.0,
    })
}

/// A signed-in client of `user` with a published, proven device.
struct Device {
    client: Client,
    keys: DeviceKeys,
    card: DeviceCard,
}

async fn device(url: &str, key: &str, secret: &str, user: &str) -> anyhow::Result<Device> {
    let client = Client::builder(key)
        .url(url)
        .authorizer(local_authorizer(key, secret, None, 0, user))
        .build()?;
    client.connected().await?;
    client.signin().await?;
    let identity = IdentityKey::generate();
    let keys = DeviceKeys::generate();
    let card = card(user, &identity, &keys)?;
    client
        .request(
            "directory.publish",
            json!({"card": STANDARD.encode(card.to_bytes())}),
        )
        .await?;
    Ok(Device { client, keys, card })
}

async fn prove(d: &Device, key: &str, user: &str) -> anyhow::Result<Value> {
    let r = d.client.request("device.challenge", json!({})).await?;
    let nonce: [u8; 32] = STANDARD
        .decode(r["nonce"].as_str().unwrap_or(""))?
        .try_into()
        .map_err(|_| anyhow::anyhow!("bad nonce"))?;
    let sid = d.client.socket_id().context("not connected")?;
    let sig = Challenge {
        app_key: key,
        socket_id: sid.as_str(),
        user_id: user,
        nonce: &nonce,
    }
    .sign(&d.keys);
    Ok(d.client
        .request(
            "device.auth",
            json!({"device": d.keys.device_id().to_string(), "signature": STANDARD.encode(sig)}),
        )
        .await?)
}

async fn server_part(
    exe: &std::path::Path,
    dir: &std::path::Path,
    key: &str,
    secret: &str,
    queued: usize,
) -> anyhow::Result<(f64, f64)> {
    let mut cmd = tokio::process::Command::new(exe);
    cmd.env("HUSH_APPS__BENCH__ID", "bench")
        .env("HUSH_APPS__BENCH__KEY", key)
        .env("HUSH_APPS__BENCH__SECRET", secret)
        .env("HUSH_MAILBOX__SENDS_PER_CONNECTION_PER_MINUTE", "0")
        .env(
            "HUSH_STORE__URL",
            format!("sqlite://{}", dir.join("server.sqlite3").display()),
        )
        .current_dir(dir);
    let mut server = crate::bench::start_serve(cmd, false).await?;
    let addr = server.addr;
    let url = format!("ws://{addr}");

    let alice = device(&url, key, secret, "alice").await?;
    prove(&alice, key, "alice").await?;
    let bob = device(&url, key, secret, "bob").await?;
    let bob_keys = bob.keys.clone();
    let bob_card = bob.card.clone();
    bob.client.disconnect().await;

    // Alice queues `queued` messages (8 requests in flight).
    let user = UserId::parse("alice")?;
    let channel = ChannelName::parse("private-hush-mailbox-bench")?;
    let event = EventName::parse_api("client-hush-e2ee")?;
    let inner = EventName::parse_api("message")?;
    let recipients = [Recipient::from(&bob_card)];
    let mut envelopes = Vec::with_capacity(queued);
    for n in 1..=queued as u64 {
        envelopes.push(suite1::seal(
            &SealRequest {
                sender_user: &user,
                sender_device: alice.keys.device_id(),
                sender_keys: &alice.keys,
                channel: &channel,
                event: &event,
                inner_event: &inner,
                timestamp_ms: hush_store::now_ms() as u64,
                sequence: n,
                recipients: &recipients,
                tree_head: None,
            },
            &[b'x'; 200],
        )?);
    }
    let start = Instant::now();
    let sends = envelopes.iter().map(|e| {
        alice
            .client
            .request("mailbox.send", json!({"users": ["bob"], "envelope": e}))
    });
    for r in futures_util::future::join_all(sends).await {
        r?;
    }
    let send_per_s = queued as f64 / start.elapsed().as_secs_f64();

    // Bob comes back: connect, sign in, prove the device, fetch everything.
    let start = Instant::now();
    let client = Client::builder(key)
        .url(&url)
        .authorizer(local_authorizer(key, secret, None, 0, "bob"))
        .build()?;
    client.connected().await?;
    client.signin().await?;
    let bob = Device {
        client,
        keys: bob_keys,
        card: bob_card,
    };
    prove(&bob, key, "bob").await?;
    let mut after = 0u64;
    let mut got = 0usize;
    loop {
        let page = bob
            .client
            .request("mailbox.fetch", json!({"after": after}))
            .await?;
        let msgs = page["messages"].as_array().cloned().unwrap_or_default();
        got += msgs.len();
        if let Some(last) = msgs.last() {
            after = last["id"].as_u64().unwrap_or(after);
        }
        if page["more"] != true || msgs.is_empty() {
            break;
        }
    }
    let fetch_ms = start.elapsed().as_secs_f64() * 1000.0;
    if got != queued {
        bail!("bob fetched {got} of {queued} messages");
    }
    let _ = server.child.kill().await;
    Ok((send_per_s, fetch_ms))
}

/// The report for people.
pub fn print(r: &MailboxReport) {
    println!(
        "mailbox store (SQLite file, {} messages of {} bytes, 1 recipient device each)",
        r.messages, r.envelope_bytes
    );
    println!("  enqueue, 1 per commit {:>9.0} /s", r.enqueue_single_per_s);
    println!("  enqueue, 64 a commit {:>10.0} /s", r.enqueue_per_s);
    println!("  fetch + acknowledge  {:>10.0} /s", r.fetch_ack_per_s);
    println!("  whole cycle          {:>10.0} /s", r.cycle_per_s);
    println!("  store bytes/message  {:>10.0}", r.store_bytes_per_message);
    println!("mailbox server ({} queued for an offline device)", r.queued);
    println!(
        "  mailbox.send         {:>10.0} /s (one connection)",
        r.send_per_s
    );
    println!("  reconnect + fetch    {:>10.1} ms", r.reconnect_fetch_ms);
}
