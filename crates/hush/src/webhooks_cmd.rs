//! `hush webhooks`: inspect and repair the webhook outbox of the configured
//! store (the same `--config` / `HUSH_*` settings as `hush serve`). SQLite's WAL
//! mode lets it run next to a live server.

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use hush_server::Config;
use hush_store::{DeadLetter, Store, StoreOptions, now_ms, redact_url};
use serde_json::json;

/// Options of `hush webhooks`.
#[derive(Args)]
pub struct WebhooksArgs {
    /// Configuration file (TOML). Default: ./hush.toml if it exists.
    #[arg(long, short, env = "HUSH_CONFIG", global = true)]
    config: Option<PathBuf>,
    /// Print JSON instead of text.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: WebhooksCommand,
}

#[derive(Subcommand)]
enum WebhooksCommand {
    /// List dead letters (events whose retry budget ran out), oldest first.
    List {
        /// Only this app id.
        #[arg(long)]
        app: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
    /// Put dead letters back into the outbox for delivery (at the end of
    /// their endpoint's queue, with a fresh retry budget).
    Retry(Selection),
    /// Delete dead letters for good.
    Purge(Selection),
    /// Pending (outbox) and dead events per app.
    Stats,
}

/// Which dead letters: ids, or `--all` (optionally of one `--app`).
#[derive(Args)]
struct Selection {
    /// Dead-letter ids (from `hush webhooks list`).
    #[arg(required_unless_present = "all", conflicts_with = "all")]
    ids: Vec<i64>,
    /// Every dead letter (of `--app` if given).
    #[arg(long)]
    all: bool,
    /// Only this app id.
    #[arg(long)]
    app: Option<String>,
}

/// Runs `hush webhooks …`.
pub fn run(mut args: WebhooksArgs) -> anyhow::Result<()> {
    // `retry 5 5` is one dead letter, not "1 of 2 ids matched nothing".
    if let WebhooksCommand::Retry(sel) | WebhooksCommand::Purge(sel) = &mut args.command {
        sel.ids.sort_unstable();
        sel.ids.dedup();
    }
    let file = crate::app_sources::config_file(args.config.clone());
    let config = Config::load(file.as_deref())?;
    crate::api_cmds::runtime()?.block_on(async {
        let url = config.store_url();
        let options = StoreOptions {
            max_connections: 1,
            create: false,
            ..StoreOptions::default()
        };
        let store = Store::open(&url, &options).await.with_context(|| {
            format!(
                "opening the store {} (has `hush serve` run with this configuration?)",
                redact_url(&url)
            )
        })?;
        let result = command(&store, &args).await;
        store.close().await;
        result
    })
}

async fn command(store: &Store, args: &WebhooksArgs) -> anyhow::Result<()> {
    match &args.command {
        WebhooksCommand::List { app, limit } => {
            let dead = store.dead_letters(app.as_deref(), *limit).await?;
            if args.json {
                let v: Vec<_> = dead.iter().map(dead_json).collect();
                println!("{}", serde_json::Value::Array(v));
            } else if dead.is_empty() {
                println!("no dead letters");
            } else {
                print_dead(&dead);
            }
        }
        WebhooksCommand::Retry(sel) => {
            let n = store
                .retry_dead_letters(sel.ids(), sel.app.as_deref(), now_ms())
                .await?;
            report(args.json, "retried", n, sel)?;
        }
        WebhooksCommand::Purge(sel) => {
            let n = store
                .purge_dead_letters(sel.ids(), sel.app.as_deref())
                .await?;
            report(args.json, "purged", n, sel)?;
        }
        WebhooksCommand::Stats => {
            let counts = store.outbox_counts().await?;
            if args.json {
                let v: Vec<_> = counts
                    .iter()
                    .map(|c| json!({"app_id": c.app_id, "pending": c.pending, "dead": c.dead}))
                    .collect();
                println!("{}", serde_json::Value::Array(v));
            } else if counts.is_empty() {
                println!("outbox empty, no dead letters");
            } else {
                println!("{:<20} {:>10} {:>10}", "APP", "PENDING", "DEAD");
                for c in counts {
                    println!("{:<20} {:>10} {:>10}", c.app_id, c.pending, c.dead);
                }
            }
        }
    }
    Ok(())
}

impl Selection {
    fn ids(&self) -> Option<&[i64]> {
        (!self.all).then_some(self.ids.as_slice())
    }
}

/// Prints the count; ids that matched nothing are an error (exit status 1).
fn report(json: bool, verb: &str, n: u64, sel: &Selection) -> anyhow::Result<()> {
    if json {
        println!("{}", json!({ verb: n }));
    } else {
        println!("{verb} {n} dead letter(s)");
    }
    if !sel.all && (n as usize) < sel.ids.len() {
        bail!(
            "{} of the {} id(s) given matched no dead letter{}",
            sel.ids.len() - n as usize,
            sel.ids.len(),
            sel.app
                .as_deref()
                .map(|a| format!(" of app {a}"))
                .unwrap_or_default()
        );
    }
    Ok(())
}

fn dead_json(d: &DeadLetter) -> serde_json::Value {
    json!({
        "id": d.id,
        "app_id": d.app_id,
        "endpoint": redact_url(&d.endpoint),
        "event": serde_json::from_str::<serde_json::Value>(&d.event).unwrap_or_else(|_| json!(d.event)),
        "created_ms": d.created_ms,
        "attempts": d.attempts,
        "failed_ms": d.failed_ms,
        "last_error": d.last_error,
    })
}

fn print_dead(dead: &[DeadLetter]) {
    let now = now_ms();
    for d in dead {
        let age = now.saturating_sub(d.failed_ms).max(0) / 1000;
        println!(
            "#{} app={} endpoint={} attempts={} failed {}s ago: {}\n    {}",
            d.id,
            d.app_id,
            redact_url(&d.endpoint),
            d.attempts,
            age,
            d.last_error.as_deref().unwrap_or("-"),
            d.event
        );
    }
}
