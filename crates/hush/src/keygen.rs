//! `hush keygen`: new app credentials and an encryption master key.

use clap::Args;
use hush_crypto::MasterKey;
use rand::rngs::OsRng;
use rand::{RngCore, TryRngCore};
use serde_json::json;

/// Options of `hush keygen`.
#[derive(Args)]
pub struct KeygenArgs {
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    OsRng.unwrap_err().fill_bytes(&mut buf);
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

/// Prints a new app id, key and secret, and a base64 32-byte master key.
pub fn run(args: KeygenArgs) -> anyhow::Result<()> {
    // Pusher-shaped: a 7-digit numeric id and a 20-hex-digit key; the secret
    // is longer than Pusher's (160 bits).
    let app_id = 1_000_000 + OsRng.unwrap_err().next_u32() % 9_000_000;
    let key = random_hex(10);
    let secret = random_hex(20);
    let master = MasterKey::generate().to_base64();
    if args.json {
        let v = json!({
            "app_id": app_id.to_string(),
            "key": key,
            "secret": secret,
            "encryption_master_key_base64": master,
        });
        println!("{v}");
        return Ok(());
    }
    println!("app id:      {app_id}");
    println!("app key:     {key}");
    println!("app secret:  {secret}");
    println!("master key:  {master}");
    println!();
    println!("# hush.toml (the server gets the app, never the master key):");
    println!("[apps.main]");
    println!("id = \"{app_id}\"");
    println!("key = \"{key}\"");
    println!("secret = \"{secret}\"");
    println!();
    println!("# Your app backend (hush-sdk, pusher-http-*) and `hush trigger`:");
    println!("#   HUSH_APP_ID={app_id} HUSH_APP_KEY={key} HUSH_APP_SECRET={secret}");
    println!("#   HUSH_MASTER_KEY={master}   (encryptionMasterKeyBase64; backend only)");
    Ok(())
}
