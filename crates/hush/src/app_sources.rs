//! Where `hush serve` takes its apps from: the configuration (file and
//! `HUSH_*` variables, re-read on SIGHUP) and the store (apps managed with
//! `hush apps`, looked at every [`POLL`]). Either change is applied with
//! [`ServerState::reload_apps`] without a restart.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::Context;
use hush_server::{AppConfig, Config, ServerState};
use hush_store::{Store, StoreOptions, StoredApp, redact_url};

/// The configuration file: `--config` if given, else `./hush.toml` if it
/// exists (else none: defaults and `HUSH_*` variables only).
pub fn config_file(given: Option<PathBuf>) -> Option<PathBuf> {
    given.or_else(|| {
        let default = PathBuf::from("hush.toml");
        default.exists().then_some(default)
    })
}

/// How often running nodes look for app changes in the store.
pub const POLL: Duration = Duration::from_secs(2);

/// How to read the configuration again: the same file, the environment as
/// it is, and the same command-line overrides.
#[derive(Clone)]
pub struct Reload {
    /// `--config` (or ./hush.toml).
    pub file: Option<PathBuf>,
    /// `--host`.
    pub host: Option<String>,
    /// `--allow-dev-app`.
    pub allow_dev_app: bool,
}

impl Reload {
    /// The configuration (without stored apps) as `hush serve` loads it now.
    fn load_base(&self) -> anyhow::Result<Config> {
        let mut config = Config::load(self.file.as_deref())?;
        if let Some(host) = &self.host {
            config.server.host = host.clone();
        }
        Ok(config)
    }
}

/// The configured apps and the stored ones, as last read.
pub struct AppSources {
    reload: Reload,
    base: Mutex<Config>,
    stored: Mutex<Vec<StoredApp>>,
}

/// The apps of stored rows; a row that does not parse is skipped (logged),
/// so one bad row cannot take the others down.
pub fn parse_stored(rows: &[StoredApp]) -> Vec<AppConfig> {
    rows.iter()
        .filter_map(|r| match serde_json::from_str::<AppConfig>(&r.settings) {
            Ok(a) if a.id == r.id && a.key == r.key => Some(a),
            Ok(_) => {
                tracing::error!(app = %r.id, "stored app: id or key differs from its row; skipped");
                None
            }
            Err(e) => {
                tracing::error!(app = %r.id, error = %e, "stored app does not parse; skipped");
                None
            }
        })
        .collect()
}

impl AppSources {
    /// Reads the stored apps of `base`'s store and returns the configuration
    /// to start with (configured and stored apps, checked, the development
    /// app refused on a public host).
    pub async fn start(base: Config, reload: Reload) -> anyhow::Result<(Config, Arc<Self>)> {
        let url = base.store_url();
        let options = StoreOptions {
            max_connections: 1,
            ..StoreOptions::default()
        };
        let store = Store::open(&url, &options)
            .await
            .with_context(|| format!("opening the store {}", redact_url(&url)))?;
        let rows = store.apps_list().await;
        store.close().await;
        let rows = rows.context("reading the stored apps")?;
        let sources = Arc::new(Self {
            reload,
            base: Mutex::new(base),
            stored: Mutex::new(rows),
        });
        let config = sources.effective()?;
        Ok((config, sources))
    }

    /// The configured apps with the stored ones, checked.
    fn effective(&self) -> anyhow::Result<Config> {
        let base = self
            .base
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let rows = self
            .stored
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let config = base
            .with_stored_apps(parse_stored(&rows))
            .context("the configured apps with those of the store")?;
        config.check_development_exposure(self.reload.allow_dev_app)?;
        Ok(config)
    }

    /// SIGHUP: re-reads the configuration and applies the apps.
    pub fn on_sighup(&self, state: &ServerState) {
        match self.reload.load_base() {
            Ok(base) => {
                let previous = std::mem::replace(
                    &mut *self.base.lock().unwrap_or_else(PoisonError::into_inner),
                    base,
                );
                if !self.apply(state, "SIGHUP") {
                    *self.base.lock().unwrap_or_else(PoisonError::into_inner) = previous;
                }
            }
            Err(e) => tracing::error!(
                error = %format!("{e:#}"),
                "SIGHUP: configuration not reloaded; the apps in force stay"
            ),
        }
    }

    /// Applies the effective apps; false (nothing changed) when they do not
    /// check out.
    fn apply(&self, state: &ServerState, why: &str) -> bool {
        let config = match self.effective() {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(
                    error = %format!("{e:#}"),
                    "{why}: configuration not reloaded; the apps in force stay"
                );
                return false;
            }
        };
        let r = state.reload_apps(&config);
        tracing::info!(
            added = ?r.added, changed = ?r.changed, removed = ?r.removed, unchanged = r.unchanged,
            closed = r.closed,
            "{why}: apps reloaded (other settings need a restart)"
        );
        if !r.webhooks_not_applied.is_empty() {
            tracing::warn!(
                apps = ?r.webhooks_not_applied,
                "{why}: webhook endpoints are read at start; restart to apply these apps' webhook changes"
            );
        }
        true
    }

    /// Looks at the store every [`POLL`] and applies a change of its apps.
    pub async fn poll_store(self: Arc<Self>, state: Arc<ServerState>) {
        let mut tick = tokio::time::interval(POLL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let rows = match state.store.apps_list().await {
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!(error = %e, "stored apps: store unavailable");
                    continue;
                }
            };
            let changed = {
                let mut last = self.stored.lock().unwrap_or_else(PoisonError::into_inner);
                if *last == rows {
                    false
                } else {
                    *last = rows;
                    true
                }
            };
            if changed {
                self.apply(&state, "stored apps changed");
            }
        }
    }
}
