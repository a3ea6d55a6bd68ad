//! `hush health`: the server's `/up` (or `/ready`) as an exit code, for
//! container health checks (`HEALTHCHECK CMD ["hush", "health"]`).

use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;

use crate::api_cmds::runtime;

/// Options of `hush health`.
#[derive(Args)]
pub struct HealthArgs {
    /// Server URL (`https://` when [server.tls] is on).
    #[arg(long, env = "HUSH_URL", default_value = "http://127.0.0.1:6001")]
    url: String,
    /// Check /ready (serving, store reachable, not draining) instead of /up
    /// (the process serves HTTP).
    #[arg(long)]
    ready: bool,
    /// Seconds to wait for the answer.
    #[arg(long, default_value_t = 3)]
    timeout: u64,
}

/// Exits 0 when the probe answers 200, 1 otherwise (with the reason).
pub fn run(args: HealthArgs) -> anyhow::Result<()> {
    // The probes are unsigned: any credentials make a valid client.
    let mut config = hush_sdk::Config::new("health", "health", "health");
    config.set_base_url(&args.url).context("--url")?;
    config.timeout = Duration::from_secs(args.timeout.max(1));
    let client = hush_sdk::Client::new(config)?;
    let path = if args.ready { "/ready" } else { "/up" };
    let (status, body) = runtime()?
        .block_on(client.probe(path))
        .with_context(|| format!("{}{path}", args.url.trim_end_matches('/')))?;
    let body = body.trim();
    if status != 200 {
        bail!("{path}: HTTP {status} {body}");
    }
    println!("{body}");
    Ok(())
}
