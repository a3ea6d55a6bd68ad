//! `hush apps`: apps kept in the store of the configured `hush serve` (same
//! `--config` / `HUSH_*` settings), next to those of the configuration file.
//! Running nodes pick changes up within seconds (`app_sources::POLL`), like
//! soketi's and sockudo's database app managers.

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use hush_server::{AppConfig, Config};
use hush_store::{Store, StoreOptions, StoredApp, redact_url};
use rand::rngs::OsRng;
use rand::{RngCore, TryRngCore};
use serde_json::{Map, Value, json};

/// Options of `hush apps`.
#[derive(Args)]
pub struct AppsArgs {
    /// Configuration file (TOML). Default: ./hush.toml if it exists.
    #[arg(long, short, env = "HUSH_CONFIG", global = true)]
    config: Option<PathBuf>,
    /// Print JSON instead of text.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: AppsCommand,
}

#[derive(Subcommand)]
enum AppsCommand {
    /// Add an app (id, key and secret generated unless given).
    Add {
        /// App id (default: a new 7-digit number).
        #[arg(long)]
        id: Option<String>,
        /// App key (default: 20 new hex digits).
        #[arg(long)]
        key: Option<String>,
        /// App secret (default: 40 new hex digits).
        #[arg(long, env = "HUSH_NEW_APP_SECRET", hide_env_values = true)]
        secret: Option<String>,
        /// Allow client events (Echo whispers).
        #[arg(long)]
        client_events: bool,
        /// Any other app setting, as in an [apps.X] table: KEY=VALUE with a
        /// TOML value (`--set max_connections=500 --set
        /// 'allowed_origins=["https://app.example.com"]'`). Repeatable.
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
    },
    /// List the stored apps (secrets masked).
    List,
    /// Show one stored app (secret masked unless --show-secret).
    Show {
        /// App id.
        id: String,
        /// Print the secret.
        #[arg(long)]
        show_secret: bool,
    },
    /// Give an app a new secret (printed); the old one stops working within
    /// seconds.
    RotateSecret {
        /// App id.
        id: String,
    },
    /// Disable an app: new connections get 4003, API calls 403.
    Disable {
        /// App id.
        id: String,
    },
    /// Enable a disabled app again.
    Enable {
        /// App id.
        id: String,
    },
    /// Remove an app from the store.
    Remove {
        /// App id.
        id: String,
    },
}

fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    OsRng.unwrap_err().fill_bytes(&mut buf);
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

/// Runs `hush apps …`.
pub fn run(args: AppsArgs) -> anyhow::Result<()> {
    let file = crate::app_sources::config_file(args.config.clone());
    let config = Config::load(file.as_deref())?;
    crate::api_cmds::runtime()?.block_on(async {
        let store = open_store(&config).await?;
        let result = command(&store, &config, &args).await;
        store.close().await;
        result
    })
}

/// The store of the configured `hush serve`, opened with one connection
/// (for a command beside a running server).
pub(crate) async fn open_store(config: &Config) -> anyhow::Result<Store> {
    let url = config.store_url();
    let options = StoreOptions {
        max_connections: 1,
        ..StoreOptions::default()
    };
    Store::open(&url, &options)
        .await
        .with_context(|| format!("opening the store {}", redact_url(&url)))
}

fn parse(row: &StoredApp) -> anyhow::Result<AppConfig> {
    serde_json::from_str(&row.settings)
        .with_context(|| format!("stored app {}: settings do not parse", row.id))
}

async fn stored(store: &Store, id: &str) -> anyhow::Result<(StoredApp, AppConfig)> {
    let Some(row) = store.app_get(id).await? else {
        bail!(
            "no stored app {id} (`hush apps list`; apps of the configuration file are changed there)"
        );
    };
    let app = parse(&row)?;
    Ok((row, app))
}

/// An app as shown: `secret` masked unless `show_secret`.
fn shown(app: &AppConfig, show_secret: bool) -> anyhow::Result<Value> {
    let mut v = serde_json::to_value(app)?;
    if !show_secret {
        let head: String = app.secret.chars().take(2).collect();
        v["secret"] = json!(format!("{head}****"));
    }
    Ok(v)
}

async fn command(store: &Store, config: &Config, args: &AppsArgs) -> anyhow::Result<()> {
    match &args.command {
        AppsCommand::Add {
            id,
            key,
            secret,
            client_events,
            set,
        } => {
            let mut table = Map::new();
            table.insert(
                "id".into(),
                json!(id.clone().unwrap_or_else(|| {
                    (1_000_000 + OsRng.unwrap_err().next_u32() % 9_000_000).to_string()
                })),
            );
            table.insert(
                "key".into(),
                json!(key.clone().unwrap_or_else(|| random_hex(10))),
            );
            table.insert(
                "secret".into(),
                json!(secret.clone().unwrap_or_else(|| random_hex(20))),
            );
            table.insert("client_events".into(), json!(client_events));
            for s in set {
                let (k, v) = s
                    .split_once('=')
                    .with_context(|| format!("--set {s}: KEY=VALUE"))?;
                // A TOML value; anything else is taken as text.
                let value = toml::from_str::<toml::Table>(&format!("v = {v}"))
                    .ok()
                    .and_then(|t| t.get("v").cloned())
                    .unwrap_or_else(|| toml::Value::String(v.to_owned()));
                table.insert(k.trim().to_owned(), serde_json::to_value(value)?);
            }
            let app: AppConfig = serde_json::from_value(Value::Object(table))
                .context("the app's settings (see docs/CONFIGURATION.md, [apps.<label>])")?;
            // Checked with everything a server would load next to it.
            let mut others = crate::app_sources::parse_stored(&store.apps_list().await?);
            others.push(app.clone());
            config
                .with_stored_apps(others)
                .context("the new app with the configured and stored ones")?;
            let settings = serde_json::to_string(&app)?;
            if !store.app_insert(&app.id, &app.key, &settings).await? {
                bail!("app id {} or key {} is already stored", app.id, app.key);
            }
            if args.json {
                println!("{}", shown(&app, true)?);
            } else {
                println!("added app {}", app.id);
                println!("app id:      {}", app.id);
                println!("app key:     {}", app.key);
                println!("app secret:  {}", app.secret);
            }
        }
        AppsCommand::List => {
            let rows = store.apps_list().await?;
            if args.json {
                let v: Vec<Value> = rows
                    .iter()
                    .map(|r| parse(r).and_then(|a| shown(&a, false)))
                    .collect::<anyhow::Result<_>>()?;
                println!("{}", Value::Array(v));
            } else if rows.is_empty() {
                println!("no stored apps");
            } else {
                for r in &rows {
                    let a = parse(r)?;
                    println!(
                        "{}  key={}  {}{}",
                        a.id,
                        a.key,
                        if a.enabled { "enabled" } else { "disabled" },
                        if a.client_events {
                            "  client_events"
                        } else {
                            ""
                        }
                    );
                }
            }
        }
        AppsCommand::Show { id, show_secret } => {
            let (_, app) = stored(store, id).await?;
            let v = shown(&app, *show_secret)?;
            if args.json {
                println!("{v}");
            } else {
                println!("{}", serde_json::to_string_pretty(&v)?);
            }
        }
        AppsCommand::RotateSecret { id } => {
            let (_, mut app) = stored(store, id).await?;
            app.secret = random_hex(20);
            update(store, &app).await?;
            if args.json {
                println!("{}", json!({"id": app.id, "secret": app.secret}));
            } else {
                println!("new secret of app {}: {}", app.id, app.secret);
                println!(
                    "running servers use it within {} s; the old one stops working then",
                    crate::app_sources::POLL.as_secs()
                );
            }
        }
        AppsCommand::Disable { id } | AppsCommand::Enable { id } => {
            let enable = matches!(args.command, AppsCommand::Enable { .. });
            let (_, mut app) = stored(store, id).await?;
            app.enabled = enable;
            update(store, &app).await?;
            let what = if enable { "enabled" } else { "disabled" };
            if args.json {
                println!("{}", json!({"id": app.id, "enabled": enable}));
            } else {
                println!("app {} {what}", app.id);
            }
        }
        AppsCommand::Remove { id } => {
            if !store.app_delete(id).await? {
                bail!("no stored app {id}");
            }
            if args.json {
                println!("{}", json!({"id": id, "removed": true}));
            } else {
                println!("removed app {id}");
            }
        }
    }
    Ok(())
}

async fn update(store: &Store, app: &AppConfig) -> anyhow::Result<()> {
    if !store
        .app_update(&app.id, &serde_json::to_string(app)?)
        .await?
    {
        bail!("app {} was removed meanwhile", app.id);
    }
    Ok(())
}
