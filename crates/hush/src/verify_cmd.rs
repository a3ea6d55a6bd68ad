//! `hush verify USER_A USER_B`: looks both users' identity keys up in the
//! app's key directory (head, consistency and inclusion proofs checked) and
//! prints their safety number and its QR payload.

use anyhow::{Context, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use clap::{Args, ValueEnum};
use hush_crypto::identity::{IdentityPublicKey, RevocationKind};
use hush_crypto::safety::SafetyNumber;
use hush_crypto::transparency::{LogEntry, LogMonitor, LogPublicKey};
use hush_protocol::UserId;
use hush_sdk::{Client, UserRecords};
use serde_json::json;

use crate::api_cmds::{ConnArgs, runtime};

/// How to print the QR payload.
#[derive(Clone, Copy, ValueEnum)]
pub enum QrFormat {
    /// Lowercase hex.
    Hex,
    /// Standard base64.
    Base64,
}

/// Options of `hush verify`.
#[derive(Args)]
#[command(after_help = "\
Both users must have published an identity (a device card) in the app's key
directory. The answer is checked like a device would: the tree head is signed
by the log key (--pin-key to insist on one), the lookup's head is consistent
with it, and every record returned is included in the log.
The safety number is the same for both users (Signal's algorithm over the
Ed25519 identity keys and user ids); compare it with the one the other person
sees, or scan the QR payload. The payload is written from USER_A's side.")]
pub struct VerifyArgs {
    #[command(flatten)]
    conn: ConnArgs,
    /// The first user (the local side of the QR payload).
    user_a: String,
    /// The second user.
    user_b: String,
    /// The log public key you expect (base64): fail if the server signs with
    /// another.
    #[arg(long, value_name = "BASE64")]
    pin_key: Option<String>,
    /// Encoding of the QR payload in text output (JSON has both).
    #[arg(long, value_enum, default_value = "hex")]
    qr: QrFormat,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// The user's current identity key from their looked-up records: the key of
/// their latest entry (a card's cross-signing key, a device revocation's
/// signing key, or the new key of an identity rotation). Records that belong
/// to another user are refused.
pub fn current_identity(
    user: &UserId,
    records: &UserRecords,
) -> anyhow::Result<Option<IdentityPublicKey>> {
    let mut latest: Option<(u64, IdentityPublicKey)> = None;
    for e in records.cards.iter().chain(&records.revocations) {
        let entry = e
            .entry()
            .with_context(|| format!("record {} of {user} does not verify", e.index))?;
        let (owner, key) = match &entry {
            LogEntry::Card(c) => (c.user_id(), *c.identity_key()),
            LogEntry::Revocation(r) => (
                r.user_id(),
                match r.kind() {
                    RevocationKind::IdentityRotation { new_identity } => *new_identity,
                    RevocationKind::Device { .. } => *r.identity_key(),
                },
            ),
        };
        if owner != user {
            bail!(
                "the directory answered a lookup of {user} with a record of {owner} (entry {})",
                e.index
            );
        }
        if latest.as_ref().is_none_or(|(i, _)| e.index > *i) {
            latest = Some((e.index, key));
        }
    }
    Ok(latest.map(|(_, k)| k))
}

/// Parses a pinned log key (base64, 32 bytes).
pub fn parse_pin(b64: &str) -> anyhow::Result<LogPublicKey> {
    let bytes: [u8; 32] = STANDARD
        .decode(b64.trim())
        .ok()
        .and_then(|b| b.try_into().ok())
        .context("--pin-key: expected 32 bytes of base64")?;
    LogPublicKey::from_bytes(&bytes).context("--pin-key: not a valid Ed25519 public key")
}

/// Looks users up with every proof checked: the current head (under the
/// pinned key, if any), then the lookup with a consistency proof from it.
pub async fn verified_identities(
    client: &Client,
    users: &[UserId],
    pin: Option<LogPublicKey>,
) -> anyhow::Result<(u64, Vec<Option<IdentityPublicKey>>)> {
    let app_id = client.config().app_id.clone();
    let served = client
        .directory_log_head()
        .await
        .context("fetching the log head")?;
    if let Some(pin) = pin
        && pin != served.key
    {
        bail!(
            "the server's log key {} is not the pinned key {}",
            STANDARD.encode(served.key.to_bytes()),
            STANDARD.encode(pin.to_bytes())
        );
    }
    let mut monitor = LogMonitor::new(app_id, served.key);
    monitor
        .update(&served.head, &[])
        .context("the log head does not verify")?;
    let ids: Vec<&str> = users.iter().map(UserId::as_str).collect();
    let lookup = client
        .directory_users(&ids, Some(served.head.head.size))
        .await
        .context("looking the users up")?;
    lookup
        .verify(&mut monitor)
        .context("the directory's answer does not verify")?;
    let size = monitor.trusted().map_or(0, |h| h.size);
    let keys = users
        .iter()
        .map(|u| match lookup.users.get(u.as_str()) {
            Some(records) => current_identity(u, records),
            None => Ok(None),
        })
        .collect::<anyhow::Result<_>>()?;
    Ok((size, keys))
}

/// Runs `hush verify`.
pub fn run(args: VerifyArgs) -> anyhow::Result<()> {
    let client = args.conn.client()?;
    let parse = |u: &str| UserId::parse(u).with_context(|| format!("user id {u:?}"));
    let users = [parse(&args.user_a)?, parse(&args.user_b)?];
    if users[0] == users[1] {
        bail!("name two different users");
    }
    let pin = args.pin_key.as_deref().map(parse_pin).transpose()?;
    let (size, keys) = runtime()?.block_on(verified_identities(&client, &users, pin))?;
    let mut found = Vec::new();
    for (user, key) in users.iter().zip(keys) {
        match key {
            Some(k) => found.push(k),
            None => bail!("user {user} has no identity key in the directory"),
        }
    }
    let number = SafetyNumber::for_users(&users[0], &found[0], &users[1], &found[1]);
    let qr = number.scannable();
    let key_b64 = |k: &IdentityPublicKey| STANDARD.encode(k.to_bytes());
    if args.json {
        println!(
            "{}",
            json!({
                "users": [users[0].as_str(), users[1].as_str()],
                "identity_keys": {
                    users[0].as_str(): key_b64(&found[0]),
                    users[1].as_str(): key_b64(&found[1]),
                },
                "safety_number": number.display(),
                "grouped": number.display_grouped(),
                "qr_hex": hex::encode(&qr),
                "qr_base64": STANDARD.encode(&qr),
                "log_size": size,
            })
        );
    } else {
        let qr_text = match args.qr {
            QrFormat::Hex => format!("QR payload (hex):    {}", hex::encode(&qr)),
            QrFormat::Base64 => format!("QR payload (base64): {}", STANDARD.encode(&qr)),
        };
        println!(
            "safety number of {} and {}:\n  {}\n{qr_text}\nidentity keys (verified in the key directory, log size {size}):\n  {}: {}\n  {}: {}",
            users[0],
            users[1],
            number.display_grouped(),
            users[0],
            key_b64(&found[0]),
            users[1],
            key_b64(&found[1]),
        );
    }
    Ok(())
}
