//! `hush serve`.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use hush_server::config::LogFormat;
use hush_server::{Config, Server};

use crate::app_sources::{AppSources, Reload};
use tracing_subscriber::EnvFilter;

/// Options of `hush serve`.
#[derive(Args)]
pub struct ServeArgs {
    /// Configuration file (TOML). Default: ./hush.toml if it exists.
    #[arg(long, short, env = "HUSH_CONFIG")]
    config: Option<PathBuf>,
    /// Address to bind (overrides server.host).
    #[arg(long)]
    host: Option<String>,
    /// Port to bind, 0 for any free port (overrides server.port).
    #[arg(long)]
    port: Option<u16>,
    /// Print the effective configuration (secrets masked) and exit.
    #[arg(long)]
    print_config: bool,
    /// Serve the development app's public credentials on a non-loopback host
    /// (same as server.allow_development_app = true).
    #[arg(long)]
    allow_dev_app: bool,
}

fn init_logs(format: LogFormat) {
    let filter = EnvFilter::try_from_env("HUSH_LOG")
        .or_else(|_| EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| EnvFilter::new("info"));
    // Colours only for a person at a terminal: not in files, journald or
    // container logs.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

/// Loads the configuration and runs the server until SIGTERM or Ctrl-C.
pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    let file = crate::app_sources::config_file(args.config);
    let reload = Reload {
        file: file.clone(),
        host: args.host.clone(),
        allow_dev_app: args.allow_dev_app,
    };
    let mut config = Config::load(file.as_deref())?;
    if let Some(host) = args.host {
        config.server.host = host;
    }
    if let Some(port) = args.port {
        config.server.port = port;
    }
    if args.print_config {
        print!("{}", config.to_masked_toml());
        return Ok(());
    }
    init_logs(config.server.log_format);
    if let Some(limit) = hush_server::serve::raise_descriptor_limit() {
        tracing::info!(limit, "open file descriptor limit");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    runtime.block_on(serve(config, reload))
}

async fn serve(config: Config, reload: Reload) -> anyhow::Result<()> {
    // Signal handlers first: a SIGTERM that arrives right after the ready line
    // must drain, not kill.
    let shutdown = shutdown_signal()?;
    // The configured apps and those kept in the store (`hush apps`).
    let (config, sources) = AppSources::start(config, reload).await?;
    let host = config.server.host.clone();
    let server = Server::bind(config.clone())
        .await
        .with_context(|| format!("starting the server on {host}:{}", config.server.port))?;
    let addr = server.local_addr();
    // Always handled: SIGHUP's default action would end the process.
    spawn_reload_on_sighup(server.tls(), server.state(), sources.clone())?;
    tokio::spawn(sources.poll_store(server.state()));
    {
        let mut out = std::io::stdout().lock();
        // Parsed by `hush bench` and the compat tests: keep its shape.
        writeln!(out, "hush listening on {addr}")?;
        if config.server.tls.is_some() {
            writeln!(
                out,
                "TLS on: wss://{addr}/app/KEY and https://{addr}/apps/ID/..."
            )?;
        }
        if let Some(m) = server.metrics_addr() {
            writeln!(out, "metrics on http://{m}/metrics")?;
        }
        if config.uses_development_app() {
            let a = &config.development_app;
            writeln!(
                out,
                "development app (no [apps] configured): id={} key={} secret={}",
                a.id, a.key, a.secret
            )?;
            if config.server.tls.is_some() {
                writeln!(
                    out,
                    "pusher-js: new Pusher('{}', {{ wsHost: '{}', wssPort: {}, forceTLS: true, enabledTransports: ['ws'], cluster: 'mt1' }})",
                    a.key,
                    addr.ip(),
                    addr.port()
                )?;
            } else {
                writeln!(
                    out,
                    "pusher-js: new Pusher('{}', {{ wsHost: '{}', wsPort: {}, forceTLS: false, enabledTransports: ['ws'], cluster: 'mt1' }})",
                    a.key,
                    addr.ip(),
                    addr.port()
                )?;
            }
            if !addr.ip().is_loopback() {
                tracing::warn!(
                    "the development app's credentials are public and allowed on a non-loopback address: configure [apps] before exposing hush"
                );
            }
        }
        out.flush()?;
    }
    tracing::info!(%addr, apps = config.effective_apps().len(), "hush started");
    server.run(shutdown).await.context("serving")
}

/// On every SIGHUP: re-reads the TLS certificate and key, and the apps from
/// the configuration (file and `HUSH_*` variables). A failed reload of
/// either is logged and what is in force stays.
fn spawn_reload_on_sighup(
    tls: Option<hush_server::tls::Tls>,
    state: std::sync::Arc<hush_server::ServerState>,
    sources: std::sync::Arc<AppSources>,
) -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut hup = signal(SignalKind::hangup()).context("installing the SIGHUP handler")?;
        tokio::spawn(async move {
            while hup.recv().await.is_some() {
                match tls.as_ref().map(hush_server::tls::Tls::reload) {
                    Some(Ok(())) => tracing::info!("SIGHUP: TLS certificate reloaded"),
                    Some(Err(e)) => {
                        tracing::error!(error = %e, "SIGHUP: TLS reload failed; keeping the current certificate");
                    }
                    None => {}
                }
                sources.on_sighup(&state);
            }
        });
    }
    #[cfg(not(unix))]
    let _ = (tls, state, sources);
    Ok(())
}

/// Installs the SIGTERM / Ctrl-C handlers now and returns a future that
/// completes on the first of them.
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()> + Send + 'static> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
        let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
        Ok(async move {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        })
    }
    #[cfg(not(unix))]
    {
        Ok(async move {
            let _ = tokio::signal::ctrl_c().await;
        })
    }
}
