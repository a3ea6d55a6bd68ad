//! The `hush` command-line tool.
#![forbid(unsafe_code)]

mod api_cmds;
mod app_sources;
mod apps_cmd;
mod audit_cmd;
#[cfg(feature = "bench")]
mod bench;
#[cfg(feature = "bench")]
mod bench_cluster;
#[cfg(feature = "bench")]
mod bench_mailbox;
mod chat;
mod directory_key_cmd;
mod health_cmd;
mod keygen;
mod listen;
mod sdk_vectors;
mod serve;
mod verify_cmd;
mod webhooks_cmd;

use clap::{Parser, Subcommand};

/// hush: a self-hostable, Pusher-compatible realtime server with first-class
/// end-to-end encryption.
#[derive(Parser)]
#[command(name = "hush", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (WebSocket gateway and HTTP API on one port).
    Serve(serve::ServeArgs),
    /// Load-test hush (or another Pusher-protocol server) over loopback
    /// (built with `--features bench`).
    #[cfg(feature = "bench")]
    Bench(bench::BenchArgs),
    /// Generate app credentials and an encryption master key.
    Keygen(keygen::KeygenArgs),
    /// Trigger an event through the HTTP API (encrypted on private-encrypted-
    /// channels when a master key is given).
    Trigger(api_cmds::TriggerArgs),
    /// Subscribe to channels and print their events as JSON lines (decrypting
    /// private-encrypted- channels).
    Listen(listen::ListenArgs),
    /// List occupied channels.
    Channels(api_cmds::ChannelsArgs),
    /// List the users of a presence channel.
    Users(api_cmds::UsersArgs),
    /// Audit an app's key directory: the signed epoch head and akd's
    /// append-only proofs across every epoch since the last audit
    /// (`--follow` keeps auditing a live server).
    Audit(audit_cmd::AuditArgs),
    /// Show the safety number of two users from their identity keys in the
    /// key directory (proofs checked).
    Verify(verify_cmd::VerifyArgs),
    /// Chat end to end encrypted with another user (suite 1), safety
    /// numbers shown: the terminal example of the public-key layer.
    Chat(chat::ChatArgs),
    /// Inspect the webhook outbox: list, retry or purge dead letters; stats.
    Webhooks(webhooks_cmd::WebhooksArgs),
    /// Check that a server answers (/up, or /ready with --ready); exit 0 or 1.
    Health(health_cmd::HealthArgs),
    /// Manage apps kept in the store (add, list, show, rotate-secret,
    /// disable, enable, remove); running servers pick changes up within
    /// seconds.
    Apps(apps_cmd::AppsArgs),
    /// Print the key directory's public keys (head-signing key and VRF key)
    /// from the configured store, to pin in the apps' clients at deploy time.
    DirectoryKey(directory_key_cmd::DirectoryKeyArgs),
    /// Run hush-sdk on JSON cases from stdin (compat parity tests).
    #[command(hide = true)]
    SdkVectors(sdk_vectors::SdkVectorsArgs),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve::run(args),
        #[cfg(feature = "bench")]
        Command::Bench(args) => bench::run(args),
        Command::Keygen(args) => keygen::run(args),
        Command::Trigger(args) => api_cmds::trigger(args),
        Command::Listen(args) => listen::run(args),
        Command::Channels(args) => api_cmds::channels(args),
        Command::Users(args) => api_cmds::users(args),
        Command::Webhooks(args) => webhooks_cmd::run(args),
        Command::Health(args) => health_cmd::run(args),
        Command::Apps(args) => apps_cmd::run(args),
        Command::DirectoryKey(args) => directory_key_cmd::run(args),
        Command::Audit(args) => audit_cmd::run(args),
        Command::Verify(args) => verify_cmd::run(args),
        Command::Chat(args) => chat::run(args),
        Command::SdkVectors(args) => sdk_vectors::run(args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hush: error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
