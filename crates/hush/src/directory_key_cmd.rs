//! `hush directory-key`: prints the key directory's public keys from the
//! configured store — the head-signing key (which signs its epoch heads) and
//! the VRF key (under which lookup proofs verify) — creating them if no
//! server has yet. An operator runs it at deploy time and configures the
//! output in the apps' clients (hush-client's pinned directory keys,
//! `--pin-key` and `--pin-vrf` of `hush audit` and `hush verify`), so that a
//! device refuses a directory under any other key instead of trusting the
//! first keys a server shows it.

use std::path::PathBuf;

use clap::Args;
use hush_server::Config;
use hush_server::directory::Directory;
use serde_json::json;

/// Options of `hush directory-key`.
#[derive(Args)]
#[command(after_help = "\
Prints two lines, `log-key: BASE64` (the head-signing key) and `vrf-key:
BASE64` (the VRF key), or with --json {\"log_key\": …, \"vrf_key\": …}.")]
pub struct DirectoryKeyArgs {
    /// Configuration file (TOML) of the server. Default: ./hush.toml if it
    /// exists.
    #[arg(long, short, env = "HUSH_CONFIG")]
    config: Option<PathBuf>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// Runs `hush directory-key`.
pub fn run(args: DirectoryKeyArgs) -> anyhow::Result<()> {
    let file = crate::app_sources::config_file(args.config);
    let config = Config::load(file.as_deref())?;
    crate::api_cmds::runtime()?.block_on(async {
        let store = crate::apps_cmd::open_store(&config).await?;
        let keys = Directory::open(store.clone())
            .await
            .map(|d| (d.public_key(), d.vrf_public_key()));
        store.close().await;
        let (log_key, vrf_key) = keys?;
        if args.json {
            println!("{}", json!({"log_key": log_key, "vrf_key": vrf_key}));
        } else {
            println!("log-key: {log_key}\nvrf-key: {vrf_key}");
        }
        Ok(())
    })
}
