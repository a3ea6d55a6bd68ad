//! `hush trigger`, `hush channels`, `hush users`: the HTTP API from the shell,
//! through hush-sdk.

use std::io::Read;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use hush_sdk::{Attribute, ChannelsQuery, Client, Config, EpochPolicy, MasterKey, TriggerOptions};
use serde_json::{Value, json};

/// Where the server is and which app to act as. Environment variables:
/// HUSH_URL, HUSH_APP_ID, HUSH_APP_KEY, HUSH_APP_SECRET.
#[derive(Args, Clone)]
pub struct ConnArgs {
    /// Server URL: `http://127.0.0.1:6001`, or Pusher's
    /// `http://KEY:SECRET@HOST:PORT/apps/APP_ID` form (then --app-id, --key and
    /// --secret are not needed).
    #[arg(long, env = "HUSH_URL", default_value = "http://127.0.0.1:6001")]
    url: String,
    /// Server host (overrides the host of --url).
    #[arg(long)]
    host: Option<String>,
    /// Server port (overrides the port of --url).
    #[arg(long)]
    port: Option<u16>,
    /// App id.
    #[arg(long, env = "HUSH_APP_ID")]
    app_id: Option<String>,
    /// App key.
    #[arg(long, env = "HUSH_APP_KEY")]
    key: Option<String>,
    /// App secret.
    #[arg(long, env = "HUSH_APP_SECRET", hide_env_values = true)]
    secret: Option<String>,
    /// Seconds to wait for the server.
    #[arg(long, default_value_t = 10)]
    timeout: u64,
}

/// Encryption options, only for the commands that encrypt (`trigger`).
#[derive(Args, Clone)]
pub struct EncryptArgs {
    /// Encryption master key (base64, 32 bytes), for private-encrypted- channels.
    #[arg(long, env = "HUSH_MASTER_KEY", hide_env_values = true)]
    master_key: Option<String>,
    /// Key epoch of encrypted channels (0 = Pusher's key; see
    /// docs/E2EE-CHANNELS.md).
    #[arg(long, env = "HUSH_KEY_EPOCH", default_value_t = 0)]
    epoch: u64,
}

impl EncryptArgs {
    /// Sets the master key and epoch on `config`.
    fn apply(&self, config: &mut Config) -> anyhow::Result<()> {
        config.key_epochs = EpochPolicy::Fixed(self.epoch);
        if let Some(m) = given(&self.master_key) {
            config.encryption_master_key =
                Some(MasterKey::from_base64(&m).context("--master-key (HUSH_MASTER_KEY)")?);
        }
        Ok(())
    }
}

impl ConnArgs {
    pub(crate) fn config(&self) -> anyhow::Result<Config> {
        let mut config = if self.url.contains('@') {
            Config::from_url(&self.url).context("--url")?
        } else {
            let mut c = Config::new("", "", "");
            c.set_base_url(&self.url).context("--url")?;
            c
        };
        if let Some(h) = &self.host {
            config.host = h.clone();
        }
        if let Some(p) = self.port {
            config.port = p;
        }
        // Flags and variables override the URL's credentials; an empty
        // variable counts as unset.
        if let Some(id) = given(&self.app_id) {
            config.app_id = id;
        }
        if let Some(k) = given(&self.key) {
            config.key = k;
        }
        if let Some(s) = given(&self.secret) {
            config.secret = s.into();
        }
        for (value, what) in [
            (config.app_id.is_empty(), "--app-id (or HUSH_APP_ID)"),
            (config.key.is_empty(), "--key (or HUSH_APP_KEY)"),
            (config.secret.is_empty(), "--secret (or HUSH_APP_SECRET)"),
        ] {
            if value {
                bail!("missing {what}");
            }
        }
        config.key_epochs = EpochPolicy::Fixed(0);
        config.timeout = Duration::from_secs(self.timeout);
        Ok(config)
    }

    pub(crate) fn client(&self) -> anyhow::Result<Client> {
        Ok(Client::new(self.config()?)?)
    }
}

fn parse_info(list: &[String]) -> anyhow::Result<Vec<Attribute>> {
    list.iter()
        .flat_map(|s| s.split(','))
        .filter(|s| !s.is_empty())
        .map(|s| match s.trim() {
            "user_count" => Ok(Attribute::UserCount),
            "subscription_count" => Ok(Attribute::SubscriptionCount),
            "cache" => Ok(Attribute::Cache),
            other => {
                bail!("unknown --info attribute {other:?} (user_count, subscription_count, cache)")
            }
        })
        .collect()
}

/// A flag or variable's value; empty counts as unset.
pub(crate) fn given(v: &Option<String>) -> Option<String> {
    v.clone().filter(|s| !s.is_empty())
}

pub(crate) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")
}

/// Options of `hush trigger`.
#[derive(Args)]
pub struct TriggerArgs {
    #[command(flatten)]
    conn: ConnArgs,
    #[command(flatten)]
    encrypt: EncryptArgs,
    /// Channel (repeat for several, at most 100; an encrypted channel alone).
    #[arg(long = "channel", short = 'c', required = true)]
    channels: Vec<String>,
    /// Event name.
    #[arg(long, short = 'e')]
    event: String,
    /// Event data, sent as is (sealed as is on private-encrypted- channels).
    /// Read from standard input when absent (one trailing newline dropped).
    #[arg(long, short = 'd')]
    data: Option<String>,
    /// Exclude this connection from delivery.
    #[arg(long)]
    socket_id: Option<String>,
    /// Attributes to report: user_count, subscription_count (comma list).
    #[arg(long)]
    info: Vec<String>,
    /// Send a sealed event (hush extension): the event name and data travel
    /// encrypted under the outer name `hush-sealed`, with sequence number and
    /// padding. One private-encrypted- channel only.
    #[arg(long)]
    sealed: bool,
    /// Print the server's JSON response.
    #[arg(long)]
    json: bool,
}

/// Triggers one event.
pub fn trigger(args: TriggerArgs) -> anyhow::Result<()> {
    let mut config = args.conn.config()?;
    args.encrypt.apply(&mut config)?;
    if config.encryption_master_key.is_none() {
        if let Some(c) = args
            .channels
            .iter()
            .find(|c| c.starts_with("private-encrypted-"))
        {
            bail!(
                "{c} is an encrypted channel: pass the app's encryption master key with --master-key (or HUSH_MASTER_KEY), base64 of 32 bytes"
            );
        }
    }
    let client = Client::new(config)?;
    let data = match args.data {
        Some(d) => d,
        None => {
            use std::io::IsTerminal;
            if std::io::stdin().is_terminal() {
                eprintln!("hush: reading the event data from standard input (end with Ctrl-D)");
            }
            let mut s = String::new();
            std::io::stdin()
                .read_to_string(&mut s)
                .context("reading the event data from standard input")?;
            let trimmed = s.strip_suffix('\n').unwrap_or(&s);
            trimmed.strip_suffix('\r').unwrap_or(trimmed).to_owned()
        }
    };
    let options = TriggerOptions {
        socket_id: args.socket_id,
        info: parse_info(&args.info)?,
    };
    let res = if args.sealed {
        let [channel] = args.channels.as_slice() else {
            anyhow::bail!("--sealed takes exactly one private-encrypted- channel");
        };
        runtime()?.block_on(client.trigger_sealed(channel, &args.event, &data, &options))?
    } else {
        runtime()?.block_on(client.trigger_raw(&args.channels, &args.event, &data, &options))?
    };
    if args.json {
        let channels: serde_json::Map<String, Value> = res
            .channels
            .iter()
            .map(|(name, info)| (name.clone(), info_json(info)))
            .collect();
        let out = if channels.is_empty() {
            json!({})
        } else {
            json!({ "channels": channels })
        };
        println!("{out}");
    } else {
        let encrypted = args
            .channels
            .iter()
            .any(|c| c.starts_with("private-encrypted-"));
        println!(
            "triggered {:?} on {}{}",
            args.event,
            args.channels.join(", "),
            if encrypted { " (encrypted)" } else { "" }
        );
        for (name, info) in &res.channels {
            println!("{name}{}", info_text(info));
        }
    }
    Ok(())
}

fn info_json(info: &hush_sdk::ChannelInfo) -> Value {
    let mut m = serde_json::Map::new();
    if let Some(o) = info.occupied {
        m.insert("occupied".into(), json!(o));
    }
    if let Some(n) = info.user_count {
        m.insert("user_count".into(), json!(n));
    }
    if let Some(n) = info.subscription_count {
        m.insert("subscription_count".into(), json!(n));
    }
    if let Some(c) = &info.cache {
        m.insert("cache".into(), json!({"data": c.data, "ttl": c.ttl}));
    }
    Value::Object(m)
}

fn info_text(info: &hush_sdk::ChannelInfo) -> String {
    let mut s = String::new();
    if let Some(n) = info.user_count {
        s.push_str(&format!("  user_count={n}"));
    }
    if let Some(n) = info.subscription_count {
        s.push_str(&format!("  subscription_count={n}"));
    }
    s
}

/// Options of `hush channels`.
#[derive(Args)]
pub struct ChannelsArgs {
    #[command(flatten)]
    conn: ConnArgs,
    /// Only channels whose names start with this.
    #[arg(long)]
    prefix: Option<String>,
    /// Attributes to report: user_count (needs --prefix presence-), subscription_count.
    #[arg(long)]
    info: Vec<String>,
    /// Print JSON (`{"channels":{…}}`).
    #[arg(long)]
    json: bool,
}

/// Lists occupied channels.
pub fn channels(args: ChannelsArgs) -> anyhow::Result<()> {
    let client = args.conn.client()?;
    let query = ChannelsQuery {
        filter_by_prefix: args.prefix,
        info: parse_info(&args.info)?,
    };
    let list = runtime()?.block_on(client.channels(&query))?;
    if args.json {
        let channels: serde_json::Map<String, Value> = list
            .channels
            .iter()
            .map(|(name, info)| (name.clone(), info_json(info)))
            .collect();
        println!("{}", json!({ "channels": channels }));
    } else {
        for (name, info) in &list.channels {
            println!("{name}{}", info_text(info));
        }
    }
    Ok(())
}

/// Options of `hush users`.
#[derive(Args)]
pub struct UsersArgs {
    #[command(flatten)]
    conn: ConnArgs,
    /// A presence channel.
    channel: String,
    /// Print JSON (`{"users":[{"id":…}]}`).
    #[arg(long)]
    json: bool,
}

/// Lists the users of a presence channel.
pub fn users(args: UsersArgs) -> anyhow::Result<()> {
    let client = args.conn.client()?;
    let users = runtime()?.block_on(client.channel_users(&args.channel))?;
    if args.json {
        let list: Vec<Value> = users.iter().map(|u| json!({"id": u.id})).collect();
        println!("{}", json!({ "users": list }));
    } else {
        for u in &users {
            println!("{}", u.id);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn(url: &str) -> ConnArgs {
        ConnArgs {
            url: url.into(),
            host: None,
            port: None,
            app_id: Some("1".into()),
            key: Some("k".into()),
            secret: Some("s".into()),
            timeout: 3,
        }
    }

    #[test]
    fn info_lists() {
        assert_eq!(
            parse_info(&["user_count,subscription_count".into(), "cache".into()]).unwrap(),
            [
                Attribute::UserCount,
                Attribute::SubscriptionCount,
                Attribute::Cache
            ]
        );
        assert!(parse_info(&[]).unwrap().is_empty());
        assert!(parse_info(&["occupied".into()]).is_err());
    }

    #[test]
    fn connection_options() {
        let c = conn("http://127.0.0.1:7000").config().unwrap();
        assert_eq!(c.base_url(), "http://127.0.0.1:7000");
        assert_eq!(c.timeout, Duration::from_secs(3));
        let mut a = conn("http://127.0.0.1:7000");
        a.host = Some("localhost".into());
        a.port = Some(9);
        assert_eq!(a.config().unwrap().base_url(), "http://localhost:9");

        // Pusher's URL form; flags override it, empty values do not.
        let mut a = conn("http://uk:us@h:1/apps/42");
        a.app_id = Some(String::new());
        a.key = None;
        a.secret = Some(String::new());
        let c = a.config().unwrap();
        assert_eq!(
            (c.app_id.as_str(), c.key.as_str(), c.secret.as_str()),
            ("42", "uk", "us")
        );
        let c = conn("http://uk:us@h:1/apps/42").config().unwrap();
        assert_eq!((c.app_id.as_str(), c.key.as_str()), ("1", "k"));

        let mut c = conn("http://h").config().unwrap();
        let mut e = EncryptArgs {
            master_key: Some("dGhpcyBpcyAzMiBieXRlcyBsb25nLCBpdCByZWFsbHk=".into()),
            epoch: 3,
        };
        e.apply(&mut c).unwrap();
        assert!(c.encryption_master_key.is_some());
        assert_eq!(c.key_epochs, EpochPolicy::Fixed(3));
        e.master_key = Some("short".into());
        assert!(e.apply(&mut c).is_err());

        let mut a = conn("http://h");
        a.secret = None;
        let e = a.config().unwrap_err().to_string();
        assert!(e.contains("--secret"), "{e}");
        assert!(conn("127.0.0.1:6001").config().is_err());
    }
}
