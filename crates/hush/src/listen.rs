//! `hush listen`: subscribe through hush-client and print every event as a
//! JSON line on standard output (status on standard error).

use std::io::Write;
use std::time::Duration;

use crate::api_cmds::given;
use anyhow::{Context, bail};
use clap::Args;
use hush_client::{Client, ConnectionState, Event, FnAuthorizer, HttpAuthorizer, event};
use hush_sdk::{MasterKey, PresenceData, UserData};

/// Options of `hush listen`. Environment variables: HUSH_URL, HUSH_APP_KEY,
/// HUSH_APP_SECRET, HUSH_MASTER_KEY.
#[derive(Args)]
#[command(after_help = "\
Each event is printed on standard output as one JSON line:
  {\"channel\":\"orders\",\"event\":\"created\",\"data\":{\"id\":1}}
with \"user_id\" for client events on presence channels. On private-encrypted-
channels \"data\" is the decrypted payload; an event that cannot be decrypted is
printed as event \"hush:decryption_failed\" with a \"failure\" member.
Sealed events (hush-sealed / client-hush-sealed) are printed under their real
event name with a \"sealed\" member (sender, seq, message_id, timestamp_ms,
epoch); replayed, tampered, expired or stale-epoch ones are rejected.
Connection status goes to standard error. Exit status: 0 after Ctrl-C or
--count events, 1 when the server refuses the connection (e.g. unknown app key,
4001) or a subscription is refused.

Authorization for private-, presence- and private-encrypted- channels:
  --auth-endpoint URL        POST socket_id and channel_name, like pusher-js
  --app-secret S             sign locally, as the app's backend would
                             (+ --master-key for private-encrypted- channels)

Examples:
  hush listen news --app-key KEY
  hush listen private-encrypted-orders --app-key KEY --app-secret SECRET --master-key BASE64
  hush listen presence-room --auth-endpoint http://127.0.0.1:3000/pusher/auth --user-id 7")]
pub struct ListenArgs {
    /// Channels to subscribe to.
    #[arg(required = true, value_name = "CHANNEL")]
    channels: Vec<String>,
    /// Server URL: ws://HOST:PORT (http:// is accepted, and Pusher's
    /// http://KEY:SECRET@HOST:PORT/apps/APP_ID form too).
    #[arg(long, env = "HUSH_URL", default_value = "ws://127.0.0.1:6001")]
    url: String,
    /// App key.
    #[arg(long, alias = "key", env = "HUSH_APP_KEY")]
    app_key: Option<String>,
    /// Channel authorization endpoint (pusher-js `channelAuthorization.endpoint`).
    #[arg(long, conflicts_with = "app_secret")]
    auth_endpoint: Option<String>,
    /// User authentication endpoint (for --signin).
    #[arg(long)]
    user_endpoint: Option<String>,
    /// App secret: authorize locally like a backend would (never send it to a
    /// device you do not control).
    #[arg(
        long,
        alias = "secret",
        env = "HUSH_APP_SECRET",
        hide_env_values = true
    )]
    app_secret: Option<String>,
    /// Encryption master key (base64, 32 bytes), with --app-secret, for
    /// private-encrypted- channels.
    #[arg(long, env = "HUSH_MASTER_KEY", hide_env_values = true)]
    master_key: Option<String>,
    /// Key epoch handed out when authorizing locally (0 = Pusher's key; see
    /// docs/E2EE-CHANNELS.md). Events of newer epochs are reported as
    /// undecryptable.
    #[arg(long, env = "HUSH_KEY_EPOCH", default_value_t = 0)]
    epoch: u64,
    /// User id for presence channels and --signin when authorizing locally.
    #[arg(long, default_value = "hush-listen")]
    user_id: String,
    /// Sign in (pusher:signin) and print events sent to the user.
    #[arg(long)]
    signin: bool,
    /// Exit after this many application events.
    #[arg(long)]
    count: Option<u64>,
    /// Also print protocol events (pusher:subscription_succeeded, member
    /// added/removed, pusher:error …) on standard output.
    #[arg(long)]
    all: bool,
}

/// Local authorization with the app secret, through hush-sdk.
pub(crate) fn local_authorizer(
    key: &str,
    secret: &str,
    master: Option<MasterKey>,
    epoch: u64,
    user: &str,
) -> FnAuthorizer {
    let mut config = hush_sdk::Config::new("hush-listen", key, secret)
        .with_key_epochs(hush_sdk::EpochPolicy::Fixed(epoch));
    config.encryption_master_key = master;
    // Only the signing functions are used: no HTTP client is ever called.
    let sdk = hush_sdk::Client::new(config);
    let sdk_user = sdk.clone();
    let user_c = user.to_owned();
    let user_u = user.to_owned();
    FnAuthorizer::new(move |sid, channel| {
        let r = match &sdk {
            Ok(sdk) => {
                let presence = channel
                    .as_str()
                    .starts_with("presence-")
                    .then(|| PresenceData::new(user_c.clone()));
                sdk.authorize_channel(sid.as_str(), channel.as_str(), presence.as_ref())
                    .map(|a| a.to_json())
                    .map_err(|e| e.to_string())
            }
            Err(e) => Err(e.to_string()),
        };
        async move { r }
    })
    .with_user(move |sid| {
        let r = match &sdk_user {
            Ok(sdk) => sdk
                .authenticate_user(sid.as_str(), &UserData::new(user_u.clone()))
                .map(|a| a.to_json())
                .map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        async move { r }
    })
}

/// The WebSocket URL, app key and (optional) app secret from the command
/// line: `--url` may be Pusher's `http://KEY:SECRET@HOST:PORT/apps/ID` form,
/// whose key and secret fill in what `--app-key` / `--app-secret` leave out.
pub(crate) fn connection_args(
    url: &str,
    app_key: &Option<String>,
    app_secret: &Option<String>,
) -> anyhow::Result<(String, String, Option<String>)> {
    let mut url = url.to_owned();
    let mut key = given(app_key);
    let mut secret = given(app_secret);
    if url.contains('@') {
        let c = hush_sdk::Config::from_url(&url).context("--url")?;
        // The scheme is kept: hush-client maps https:// to wss://.
        url = c.base_url();
        key = key.or(Some(c.key.clone()));
        secret = secret.or(Some(c.secret.to_string()));
    }
    let Some(key) = key else {
        bail!("missing --app-key (or HUSH_APP_KEY)");
    };
    Ok((url, key, secret))
}

/// Runs `hush listen`.
pub fn run(args: ListenArgs) -> anyhow::Result<()> {
    let (url, key, secret) = connection_args(&args.url, &args.app_key, &args.app_secret)?;
    let master = given(&args.master_key)
        .map(|m| MasterKey::from_base64(&m).context("--master-key (HUSH_MASTER_KEY)"))
        .transpose()?;
    for c in &args.channels {
        hush_client::ChannelName::parse(c).with_context(|| format!("channel {c:?}"))?;
    }
    let needs_channel_auth = args
        .channels
        .iter()
        .any(|c| c.starts_with("private-") || c.starts_with("presence-"));
    let needs_auth = needs_channel_auth || args.signin;
    let encrypted = args
        .channels
        .iter()
        .any(|c| c.starts_with("private-encrypted-"));
    let mut builder = Client::builder(&key).url(&url);
    if let Some(endpoint) = &args.auth_endpoint {
        let mut a = HttpAuthorizer::new(endpoint).context("--auth-endpoint")?;
        if let Some(u) = &args.user_endpoint {
            a = a.with_user_endpoint(u).context("--user-endpoint")?;
        }
        builder = builder.authorizer(a);
    } else if let Some(secret) = &secret {
        if encrypted && master.is_none() {
            bail!(
                "private-encrypted- channels need --master-key (or HUSH_MASTER_KEY) with --app-secret"
            );
        }
        builder = builder.authorizer(local_authorizer(
            &key,
            secret,
            master,
            args.epoch,
            &args.user_id,
        ));
    } else if let Some(u) = &args.user_endpoint {
        if needs_channel_auth {
            bail!(
                "private-, presence- and encrypted channels need --auth-endpoint or --app-secret"
            );
        }
        // Only public channels: the channel endpoint is never called.
        let a = HttpAuthorizer::new(u).context("--user-endpoint")?;
        builder = builder.authorizer(a.with_user_endpoint(u).context("--user-endpoint")?);
    } else if needs_auth {
        bail!(
            "private-, presence- and encrypted channels and --signin need --auth-endpoint or --app-secret"
        );
    }
    let rt = crate::api_cmds::runtime()?;
    rt.block_on(listen(builder, &args))
}

fn print(e: &Event) -> bool {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}", e.to_json_line())
        .and_then(|()| out.flush())
        .is_ok()
}

async fn listen(builder: hush_client::ClientBuilder, args: &ListenArgs) -> anyhow::Result<()> {
    let client = builder.build().context("client settings")?;
    let mut events = client.bind_all();
    let mut states = client.state_changes();
    for c in &args.channels {
        client.subscribe(c).await?;
    }
    if args.signin {
        let c = client.clone();
        tokio::spawn(async move {
            match c.signin().await {
                Ok(id) => eprintln!("hush: signed in as {id}"),
                Err(e) => eprintln!("hush: sign-in failed: {e}"),
            }
        });
    }
    let mut seen: u64 = 0;
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    loop {
        tokio::select! {
            _ = &mut ctrl_c => {
                eprintln!("hush: interrupted, disconnecting");
                let _ = tokio::time::timeout(Duration::from_secs(3), client.disconnect()).await;
                return Ok(());
            }
            changed = states.changed() => {
                if changed.is_err() {
                    bail!("the client stopped");
                }
                let state = states.borrow_and_update().clone();
                match state {
                    ConnectionState::Connected { socket_id } => eprintln!("hush: connected (socket id {socket_id})"),
                    ConnectionState::Connecting => eprintln!("hush: connecting to {}", args.url),
                    // Said with its cause by the CONNECTION_ERROR event.
                    ConnectionState::Unavailable => {}
                    ConnectionState::Failed { code, reason } => {
                        match code {
                            Some(c) => bail!("the server refused the connection: {reason} ({c})"),
                            None => bail!("the server refused the connection: {reason}"),
                        }
                    }
                    ConnectionState::Disconnected => return Ok(()),
                    ConnectionState::Initialized => {}
                }
            }
            e = events.recv() => {
                let Some(e) = e else { bail!("the client stopped") };
                match e.event.as_str() {
                    event::SUBSCRIPTION_SUCCEEDED => {
                        eprintln!("hush: subscribed to {}", e.channel.as_deref().unwrap_or(""));
                    }
                    event::SUBSCRIPTION_ERROR => {
                        let ch = e.channel.clone().unwrap_or_default();
                        if !ch.starts_with("#server-to-user-") {
                            bail!("subscription to {ch} refused: {}", e.data["error"].as_str().unwrap_or(&e.data.to_string()));
                        }
                    }
                    event::ERROR => eprintln!("hush: server error: {}", e.data),
                    event::CONNECTION_ERROR => eprintln!(
                        "hush: cannot reach {}: {}; retrying in {} ms",
                        args.url,
                        e.data["reason"].as_str().unwrap_or("unknown error"),
                        e.data["retry_in_ms"]
                    ),
                    event::DECRYPTION_FAILED => eprintln!(
                        "hush: could not decrypt {} on {}: {}",
                        e.data["event"], e.channel.as_deref().unwrap_or(""), e.data["reason"]
                    ),
                    _ => {}
                }
                let app_event = !e.is_protocol() || e.event == event::DECRYPTION_FAILED;
                if (app_event || args.all) && !print(&e) {
                    // Standard output closed (e.g. piped into `head`).
                    return Ok(());
                }
                if app_event && !e.is_protocol() {
                    seen += 1;
                    if args.count.is_some_and(|n| seen >= n) {
                        let _ = tokio::time::timeout(Duration::from_secs(3), client.disconnect()).await;
                        return Ok(());
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pusher's URL form keeps its scheme: an https:// URL must not become a
    /// plain ws:// connection.
    #[test]
    fn pusher_urls_keep_their_scheme() {
        let (url, key, secret) =
            connection_args("https://k:s@example.com/apps/1", &None, &None).unwrap();
        assert_eq!(url, "https://example.com:443");
        assert_eq!((key.as_str(), secret.as_deref()), ("k", Some("s")));
        let (url, ..) = connection_args("http://k:s@127.0.0.1:6001/apps/1", &None, &None).unwrap();
        assert_eq!(url, "http://127.0.0.1:6001");
    }
}
