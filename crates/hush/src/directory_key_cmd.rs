//! `hush directory-key`: prints the key directory's log key (the public key
//! that signs its tree heads) from the configured store, creating the key if
//! no server has yet. An operator runs it at deploy time and configures the
//! output in the apps' clients (`E2ee::pin_directory_key` in hush-client,
//! `--pin-key` of `hush audit` and `hush verify`), so that a device refuses a
//! directory signed by any other key instead of trusting the first key a
//! server shows it.

use std::path::PathBuf;

use clap::Args;
use hush_server::Config;
use hush_server::directory::Directory;

/// Options of `hush directory-key`.
#[derive(Args)]
pub struct DirectoryKeyArgs {
    /// Configuration file (TOML) of the server. Default: ./hush.toml if it
    /// exists.
    #[arg(long, short, env = "HUSH_CONFIG")]
    config: Option<PathBuf>,
}

/// Runs `hush directory-key`.
pub fn run(args: DirectoryKeyArgs) -> anyhow::Result<()> {
    let file = crate::app_sources::config_file(args.config);
    let config = Config::load(file.as_deref())?;
    crate::api_cmds::runtime()?.block_on(async {
        let store = crate::apps_cmd::open_store(&config).await?;
        let key = Directory::open(store.clone()).await.map(|d| d.public_key());
        store.close().await;
        println!("{}", key?);
        Ok(())
    })
}
