//! The `hush` command-line tool.
#![forbid(unsafe_code)]

mod bench;
mod serve;

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
    /// Load-test hush (or another Pusher-protocol server) over loopback.
    Bench(bench::BenchArgs),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve::run(args),
        Command::Bench(args) => bench::run(args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hush: error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
