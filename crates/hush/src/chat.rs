//! `hush chat`: the terminal example of the public-key layer — two users in
//! two terminals, every line end-to-end encrypted (suite 1) to the peer's
//! devices and the user's own other devices and sent through the server's
//! mailbox (so a peer who is offline gets it when they come back), safety
//! numbers shown at start and whenever the peer's keys change. Built on
//! `hush_client::e2ee`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use hush_client::e2ee::{
    CLIENT_EVENT, E2ee, E2eeError, KeyChanged, KeyStore, MailboxEvent, MailboxMessage, Message,
    StoreKey,
};
use hush_client::{Channel, Client, ConnectionState, Event, event};
use serde_json::{Value, json};
use tokio::io::AsyncBufReadExt;
use tokio::sync::broadcast::error::RecvError;

use crate::api_cmds::given;
use crate::listen::local_authorizer;

/// The inner (encrypted) event name of chat lines.
const MESSAGE_EVENT: &str = "message";
/// How often the peer is looked up again while they have no keys.
const PEER_POLL: Duration = Duration::from_secs(3);

/// Options of `hush chat`. Environment variables: HUSH_URL, HUSH_APP_KEY,
/// HUSH_APP_SECRET, HUSH_STORE_KEY.
#[derive(Args)]
#[command(after_help = "\
Type a line and press Enter to send it. Each line travels as a suite 1
envelope (docs/E2EE-SUITE1.md) to every device of --peer and your own other
devices through the server's encrypted mailbox (docs/PROTOCOL-EXT.md §4): the
server queues ciphertext it cannot read until each device has fetched it, so
a peer who is offline gets your lines when they next start `hush chat`. On
start, the lines that arrived while you were away are printed first, then
live ones, each with the sender and whether you verified them. Lines are
shown in the order each device sent them; a line the server lost or withheld
is reported as a gap, one that does not open as rejected (warnings).

The chat also joins --channel and shows envelopes sent there as client events
(by older versions of hush chat).

Commands: /safety (show the safety number again), /verify (mark the peer
verified after comparing safety numbers out of band; sending is then refused
if their identity key changes), /unverify, /quit.

The device's keys live in --key-file (default ~/.hush/USER.keys), encrypted
with a 32-byte store key: --store-key / HUSH_STORE_KEY (base64), or else the
file KEY-FILE.storekey (created with mode 0600 next to a new key file).
The first run creates the user's identity key and publishes the device card.

Sign-in and channel authorization are done locally with --app-secret, as the
app's backend would: a demo setup, not how a real device gets authorized.
The app must allow client events (client_events = true).

Example (two terminals):
  hush chat --user alice --peer bob --app-key KEY --app-secret SECRET
  hush chat --user bob --peer alice --app-key KEY --app-secret SECRET")]
pub struct ChatArgs {
    /// Your user id.
    #[arg(long)]
    user: String,
    /// The user you chat with.
    #[arg(long)]
    peer: String,
    /// Channel (private- or presence-) also joined, for lines sent as client
    /// events (older versions). Default: private-chat-A-B with the two user
    /// ids sorted. Lines are sent through the mailbox.
    #[arg(long)]
    channel: Option<String>,
    /// The device's key store (default ~/.hush/USER.keys).
    #[arg(long, value_name = "FILE")]
    key_file: Option<PathBuf>,
    /// The key store's encryption key (base64, 32 bytes).
    #[arg(long, env = "HUSH_STORE_KEY", hide_env_values = true)]
    store_key: Option<String>,
    /// Server URL: ws://HOST:PORT (http:// is accepted too).
    #[arg(long, env = "HUSH_URL", default_value = "ws://127.0.0.1:6001")]
    url: String,
    /// App key.
    #[arg(long, alias = "key", env = "HUSH_APP_KEY")]
    app_key: Option<String>,
    /// App secret (signs the sign-in and channel authorization locally).
    #[arg(
        long,
        alias = "secret",
        env = "HUSH_APP_SECRET",
        hide_env_values = true
    )]
    app_secret: Option<String>,
    /// Print JSON lines (messages, safety numbers, key changes, errors) on
    /// standard output instead of text.
    #[arg(long)]
    json: bool,
    /// The key directory's head-signing key to pin (base64, as `hush
    /// directory-key` prints it on the server's host).
    #[arg(long, env = "HUSH_DIRECTORY_KEY", value_name = "BASE64")]
    pin_key: Option<String>,
    /// The key directory's VRF key to pin (base64).
    #[arg(long, env = "HUSH_DIRECTORY_VRF_KEY", value_name = "BASE64")]
    pin_vrf: Option<String>,
    /// Take the directory's keys from its first answer when they are not
    /// pinned (trust on first use: for development; a key store that already
    /// trusts a directory keeps its keys either way).
    #[arg(long)]
    trust_on_first_use: bool,
}

/// A pinned directory key given on the command line.
fn pinned(key: Option<&String>, what: &str) -> anyhow::Result<Option<[u8; 32]>> {
    use base64::Engine;
    key.map(|k| {
        base64::engine::general_purpose::STANDARD
            .decode(k.trim())
            .ok()
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
            .with_context(|| format!("{what} must be base64 of 32 bytes"))
    })
    .transpose()
}

/// `private-chat-A-B`, the two user ids sorted: both sides pick the same.
fn default_channel(a: &str, b: &str) -> String {
    let mut pair = [a, b];
    pair.sort_unstable();
    format!("private-chat-{}-{}", pair[0], pair[1])
}

fn default_key_file(user: &str) -> anyhow::Result<PathBuf> {
    let home = std::env::var_os("HOME").context("--key-file is needed when HOME is not set")?;
    Ok(PathBuf::from(home)
        .join(".hush")
        .join(format!("{user}.keys")))
}

/// Writes a new secret file readable by its owner only.
fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut f = options
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    f.write_all(text.as_bytes())
        .and_then(|()| f.sync_all())
        .with_context(|| format!("writing {}", path.display()))
}

/// The store key: given, or read from (or, for a new key store, created in)
/// `KEY-FILE.storekey`.
fn store_key(given_key: Option<String>, key_file: &Path) -> anyhow::Result<StoreKey> {
    let parse = |s: &str, what: &str| {
        StoreKey::from_base64(s.trim())
            .with_context(|| format!("{what}: expected 32 bytes of base64"))
    };
    if let Some(k) = given_key {
        return parse(&k, "--store-key (HUSH_STORE_KEY)");
    }
    let mut name = key_file.as_os_str().to_owned();
    name.push(".storekey");
    let path = PathBuf::from(name);
    match std::fs::read_to_string(&path) {
        Ok(text) => parse(&text, &path.display().to_string()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if key_file.exists() {
                bail!(
                    "{} exists but its store key does not: pass --store-key (or HUSH_STORE_KEY), or restore {}",
                    key_file.display(),
                    path.display()
                );
            }
            let key = StoreKey::generate();
            write_private(&path, &format!("{}\n", key.to_base64().as_str()))?;
            Ok(key)
        }
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// Runs `hush chat`.
pub fn run(args: ChatArgs) -> anyhow::Result<()> {
    let (url, key, secret) =
        crate::listen::connection_args(&args.url, &args.app_key, &args.app_secret)?;
    let Some(secret) = secret else {
        bail!("missing --app-secret (or HUSH_APP_SECRET): hush chat signs in locally");
    };
    for (u, what) in [(&args.user, "--user"), (&args.peer, "--peer")] {
        hush_client::UserId::parse(u).with_context(|| format!("{what} {u:?}"))?;
    }
    if args.user == args.peer {
        bail!("--peer must be another user");
    }
    let channel = args
        .channel
        .clone()
        .unwrap_or_else(|| default_channel(&args.user, &args.peer));
    let name = hush_client::ChannelName::parse(&channel)
        .with_context(|| format!("channel {channel:?} (choose one with --channel)"))?;
    if !name.kind().allows_client_events() {
        bail!("--channel must be a private- or presence- channel (client events)");
    }
    let key_file = match &args.key_file {
        Some(f) => f.clone(),
        None => default_key_file(&args.user)?,
    };
    if let Some(dir) = key_file.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let store_key = store_key(given(&args.store_key), &key_file)?;
    let out = Output { json: args.json };
    let rt = crate::api_cmds::runtime()?;
    rt.block_on(async {
        // hush-client runs its connection on the current runtime.
        let client = Client::builder(&key)
            .url(&url)
            .authorizer(local_authorizer(&key, &secret, None, 0, &args.user))
            .build()
            .context("client settings")?;
        let store = KeyStore::new(&key_file, store_key);
        let e2ee = E2ee::open_or_create(client.clone(), store, &args.user, true)
            .with_context(|| format!("key store {}", key_file.display()))?;
        if let Some(k) = pinned(args.pin_key.as_ref(), "--pin-key")? {
            e2ee.pin_directory_key(&k).await.context("--pin-key")?;
        }
        if let Some(k) = pinned(args.pin_vrf.as_ref(), "--pin-vrf")? {
            e2ee.pin_directory_vrf_key(&k).await.context("--pin-vrf")?;
        }
        e2ee.set_trust_on_first_use(args.trust_on_first_use).await;
        let r = chat(&e2ee, &client, &channel, &args, out).await;
        let _ = tokio::time::timeout(Duration::from_secs(3), client.disconnect()).await;
        r
    })
}

/// Where messages and notices go: text, or JSON lines.
#[derive(Clone, Copy)]
struct Output {
    json: bool,
}

impl Output {
    /// One record: JSON on standard output, or `text` (on standard output
    /// for conversation, standard error for status).
    fn emit(self, record: Value, text: &str, status: bool) {
        if self.json {
            let mut o = std::io::stdout().lock();
            let _ = writeln!(o, "{record}").and_then(|()| o.flush());
        } else if status {
            eprintln!("{text}");
        } else {
            let mut o = std::io::stdout().lock();
            let _ = writeln!(o, "{text}").and_then(|()| o.flush());
        }
    }

    /// A record for JSON output only (nothing in text mode).
    fn record(self, record: Value) {
        if self.json {
            self.emit(record, "", true);
        }
    }

    /// A warning: a JSON record, or text on standard error.
    fn warn_record(self, record: Value, text: &str) {
        self.emit(record, &format!("hush: warning: {text}"), true);
    }

    fn warning(self, text: &str) {
        self.warn_record(json!({"type": "warning", "message": text}), text);
    }

    fn error(self, text: &str) {
        self.emit(
            json!({"type": "error", "message": text}),
            &format!("hush: {text}"),
            true,
        );
    }
}

fn short(device: &hush_crypto::identity::DeviceId) -> String {
    hex::encode(&device.0[..4])
}

/// The chat's view of the peer's safety number.
struct Peer {
    name: String,
    /// The last safety number shown (None until the peer has keys).
    shown: Option<String>,
}

impl Peer {
    /// Looks the peer up and shows their safety number if it is new or
    /// changed. `Ok(false)`: the peer has no keys yet.
    async fn refresh(&mut self, e2ee: &E2ee, out: Output, force: bool) -> anyhow::Result<bool> {
        let number = match e2ee.safety_number(&self.name).await {
            Ok(n) => n,
            Err(E2eeError::UnknownUser(_)) => return Ok(false),
            Err(e) => return Err(e.into()),
        };
        let digits = number.display();
        if !force && self.shown.as_deref() == Some(digits.as_str()) {
            return Ok(true);
        }
        let verified = e2ee.is_verified(&self.name).await;
        let (reason, headline) = match &self.shown {
            None => ("start", format!("safety number with {}:", self.name)),
            Some(old) if *old != digits => (
                "changed",
                format!(
                    "WARNING: {}'s identity key changed. New safety number:",
                    self.name
                ),
            ),
            Some(_) => ("shown", format!("safety number with {}:", self.name)),
        };
        let state = if verified {
            "verified"
        } else {
            "not verified: compare it with theirs, then type /verify"
        };
        out.emit(
            json!({
                "type": "safety_number",
                "peer": self.name,
                "safety_number": digits,
                "grouped": number.display_grouped(),
                "qr_hex": hex::encode(number.scannable()),
                "verified": verified,
                "reason": reason,
            }),
            &format!("{headline}\n  {}\n  ({state})", number.display_grouped()),
            true,
        );
        self.shown = Some(digits);
        Ok(true)
    }
}

/// Where a message came from, for the output.
#[derive(Clone, Copy)]
struct Origin {
    /// The mailbox id, for mailbox messages.
    mailbox_id: Option<u64>,
    /// Sent before this chat started (while the user was away).
    offline: bool,
    /// Another conversation than this chat's.
    other_conversation: bool,
}

impl Origin {
    const CHANNEL: Self = Self {
        mailbox_id: None,
        offline: false,
        other_conversation: false,
    };
}

fn print_message(m: &Message, me: &str, origin: Origin, out: Output) {
    let text = m
        .data
        .get("text")
        .and_then(Value::as_str)
        .map_or_else(|| m.data.to_string(), str::to_owned);
    let own = m.sender_user == me;
    let who = if own {
        format!(
            "{} (your device {})",
            m.sender_user,
            short(&m.sender_device)
        )
    } else if m.verified_sender {
        format!("{} (verified)", m.sender_user)
    } else {
        format!("{} (unverified)", m.sender_user)
    };
    // The sender's gossiped tree head disagrees with ours: the directory
    // showed us different logs (docs/E2EE-SUITE1.md §4.7).
    let fork = m.gossip == hush_client::e2ee::GossipCheck::Fork;
    let mut who = if fork {
        format!("{who} [DIRECTORY FORK: this device and the sender see different key logs]")
    } else {
        who
    };
    if origin.other_conversation {
        who.push_str(" [another conversation]");
    }
    if origin.offline {
        who.push_str(" (while you were away)");
    }
    out.emit(
        json!({
            "type": "message",
            "from": m.sender_user,
            "device": hex::encode(m.sender_device.0),
            "own_device": own,
            "verified": m.verified_sender,
            "fork": fork,
            "event": m.event,
            "text": text,
            "timestamp_ms": m.timestamp_ms,
            "sequence": m.sequence,
            "mailbox_id": origin.mailbox_id,
            "offline": origin.offline,
            "conversation": m.channel,
        }),
        &format!("{who}: {text}"),
        false,
    );
}

fn print_key_change(c: &KeyChanged, out: Output) {
    let list = |ids: &[hush_crypto::identity::DeviceId]| {
        ids.iter().map(short).collect::<Vec<_>>().join(", ")
    };
    let mut text = format!("{}'s keys changed:", c.user);
    if c.identity_changed {
        text.push_str(" new identity key;");
    }
    if !c.added.is_empty() {
        text.push_str(&format!(" new devices {};", list(&c.added)));
    }
    if !c.removed.is_empty() {
        text.push_str(&format!(" devices gone {};", list(&c.removed)));
    }
    out.emit(
        json!({
            "type": "key_changed",
            "user": c.user,
            "identity_changed": c.identity_changed,
            "added": c.added.iter().map(|d| hex::encode(d.0)).collect::<Vec<_>>(),
            "removed": c.removed.iter().map(|d| hex::encode(d.0)).collect::<Vec<_>>(),
            "was_verified": c.was_verified,
        }),
        text.trim_end_matches(';'),
        true,
    );
}

/// Waits for the channel's subscription result.
async fn subscribed(channel: &mut Channel) -> anyhow::Result<()> {
    loop {
        let Some(e) = channel.recv().await else {
            bail!("the client stopped");
        };
        match e.event.as_str() {
            event::SUBSCRIPTION_SUCCEEDED => return Ok(()),
            event::SUBSCRIPTION_ERROR => bail!(
                "subscription to {} refused: {}",
                channel.name(),
                e.data["error"].as_str().unwrap_or(&e.data.to_string())
            ),
            _ => {}
        }
    }
}

async fn chat(
    e2ee: &E2ee,
    client: &Client,
    channel_name: &str,
    args: &ChatArgs,
    out: Output,
) -> anyhow::Result<()> {
    let mut states = client.state_changes();
    // Why a connection was lost or could not be opened (before each retry).
    let mut lost = client.bind(event::CONNECTION_ERROR);
    let give_up = tokio::time::sleep(Duration::from_secs(30));
    tokio::pin!(give_up);
    loop {
        tokio::select! {
            r = client.connected() => { r.context("connecting")?; break; }
            Some(e) = lost.recv() => out.error(&format!(
                "cannot reach {}: {}; retrying",
                args.url,
                e.data["reason"].as_str().unwrap_or("unknown error")
            )),
            () = &mut give_up => bail!("no connection to {} within 30 s", args.url),
        }
    }
    let mut changes = e2ee.key_changes();
    let card = e2ee
        .publish()
        .await
        .context("publishing this device's card")?;
    let mut channel = client.subscribe(channel_name).await?;
    subscribed(&mut channel).await?;
    // The mailbox: what arrived while away first (its first fetch), then
    // live pushes.
    let mut mail = e2ee.start_mailbox();
    let started_ms = now_ms();
    let me = args.user.clone();
    let conversation = hush_client::e2ee::conversation_channel(&[&me, &args.peer])?;
    out.emit(
        json!({
            "type": "ready",
            "user": me,
            "peer": args.peer,
            "channel": channel_name,
            "device": hex::encode(card.device_id().0),
        }),
        &format!(
            "hush chat: {me} (device {}) with {} on {channel_name}. Type a line to send it; /safety, /verify, /quit.",
            short(&card.device_id()),
            args.peer
        ),
        true,
    );
    let mut peer = Peer {
        name: args.peer.clone(),
        shown: None,
    };
    if !peer.refresh(e2ee, out, false).await? {
        out.emit(
            json!({"type": "waiting", "peer": peer.name}),
            &format!(
                "{} has no keys in the directory yet; the safety number is shown when they join.",
                peer.name
            ),
            true,
        );
    }
    let mut poll = tokio::time::interval(PEER_POLL);
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    loop {
        tokio::select! {
            _ = &mut ctrl_c => return Ok(()),
            line = lines.next_line() => {
                let Some(line) = line.context("reading standard input")? else {
                    return Ok(());
                };
                let line = line.trim_end_matches('\r');
                match line.trim() {
                    "" => {}
                    "/quit" => return Ok(()),
                    "/safety" => match peer.refresh(e2ee, out, true).await {
                        Ok(true) => {}
                        Ok(false) => {
                            out.error(&format!("{} has no keys in the directory yet", peer.name));
                        }
                        // A failed lookup (offline, timeout) is reported;
                        // the chat goes on.
                        Err(e) => out.error(&format!("looking {} up: {e:#}", peer.name)),
                    },
                    "/verify" => match e2ee.mark_verified(&peer.name).await {
                        Ok(()) => out.emit(
                            json!({"type": "verified", "peer": peer.name, "verified": true}),
                            &format!("{} marked verified", peer.name),
                            true,
                        ),
                        Err(e) => out.error(&format!("could not verify {}: {e}", peer.name)),
                    },
                    "/unverify" => match e2ee.unverify(&peer.name).await {
                        Ok(()) => out.emit(
                            json!({"type": "verified", "peer": peer.name, "verified": false}),
                            &format!("{} no longer marked verified", peer.name),
                            true,
                        ),
                        Err(e) => out.error(&e.to_string()),
                    },
                    _ => {
                        let data = json!({ "text": line });
                        match e2ee.send_to_users(MESSAGE_EVENT, &data, &[peer.name.as_str()]).await {
                            Ok(s) => out.record(json!({
                                "type": "sent",
                                "text": line,
                                "message_id": s.message_id,
                                "devices": s.devices,
                                "online": s.online,
                            })),
                            Err(e) => out.error(&format!("not sent: {e}")),
                        }
                    }
                }
            }
            e = channel.recv() => {
                let Some(e) = e else { bail!("the client stopped") };
                handle_event(e2ee, &e, &me, out).await;
            }
            ev = mail.recv() => match ev {
                Ok(ev) => handle_mail(&ev, &me, &conversation, started_ms, out),
                Err(RecvError::Lagged(n)) => out.warning(&format!(
                    "{n} mailbox events were not shown (too many at once); they are in the key store's inbox"
                )),
                Err(RecvError::Closed) => bail!("the mailbox stopped"),
            },
            Some(e) = lost.recv() => out.error(&format!(
                "connection lost: {}; reconnecting",
                e.data["reason"].as_str().unwrap_or("unknown error")
            )),
            change = changes.recv() => match change {
                Ok(c) if c.user == peer.name => {
                    // hush-client raises no event for a user's first keys;
                    // before any number was shown, refresh shows the first.
                    if peer.shown.is_some() {
                        print_key_change(&c, out);
                    }
                    if let Err(e) = peer.refresh(e2ee, out, false).await {
                        out.error(&format!("looking {} up: {e:#}", peer.name));
                    }
                }
                Ok(c) if c.user == me => {
                    // This device's own first card is no news; any other
                    // change of the user's devices or identity is.
                    let own_publish = c.removed.is_empty()
                        && c.added.iter().all(|d| *d == card.device_id());
                    if !own_publish {
                        print_key_change(&c, out);
                    }
                }
                Ok(_) | Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => bail!("the e2ee layer stopped"),
            },
            _ = poll.tick(), if peer.shown.is_none() => {
                if let Err(e) = peer.refresh(e2ee, out, false).await {
                    out.error(&format!("looking {} up: {e:#}", peer.name));
                }
            }
            changed = states.changed() => {
                if changed.is_err() {
                    bail!("the client stopped");
                }
                let state = states.borrow_and_update().clone();
                match state {
                    // Said with its cause by the CONNECTION_ERROR event.
                    ConnectionState::Unavailable => {}
                    ConnectionState::Failed { code, reason } => match code {
                        Some(c) => bail!("the server refused the connection: {reason} ({c})"),
                        None => bail!("the server refused the connection: {reason}"),
                    },
                    ConnectionState::Disconnected => return Ok(()),
                    _ => {}
                }
            }
        }
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// A mailbox event: messages printed, gaps, rejections and replays as
/// warnings.
fn handle_mail(ev: &MailboxEvent, me: &str, conversation: &str, started_ms: u64, out: Output) {
    match ev {
        MailboxEvent::Message(MailboxMessage {
            mailbox_id,
            queued_ms,
            message,
            ..
        }) => print_message(
            message,
            me,
            Origin {
                mailbox_id: Some(*mailbox_id),
                offline: *queued_ms < started_ms,
                other_conversation: message.channel != conversation,
            },
            out,
        ),
        MailboxEvent::Gap {
            stream,
            first,
            last,
        } => out.warn_record(
            json!({
                "type": "gap",
                "from": stream.sender_user,
                "device": hex::encode(stream.sender_device.0),
                "first": first,
                "last": last,
            }),
            &format!(
                "{} lines from {} (device {}) never arrived (numbers {first}..={last}): lost or withheld by the server",
                last.saturating_sub(*first).saturating_add(1),
                stream.sender_user,
                short(&stream.sender_device)
            ),
        ),
        MailboxEvent::Rejected { mailbox_id, error } => out.warn_record(
            json!({"type": "rejected", "mailbox_id": mailbox_id, "error": error}),
            &format!("refused a queued message: {error}"),
        ),
        // A copy of a line already shown (e.g. saved just before a crash):
        // nothing to say. Anything else is a replay.
        MailboxEvent::Duplicate {
            mailbox_id,
            stream,
            in_inbox: false,
            ..
        } => out.warn_record(
            json!({"type": "replay", "mailbox_id": mailbox_id, "from": stream.sender_user}),
            &format!(
                "refused a replayed message from {} (already received once)",
                stream.sender_user
            ),
        ),
        MailboxEvent::Reordered { stream, sequence } => out.record(json!({
            "type": "reordered",
            "from": stream.sender_user,
            "sequence": sequence,
        })),
        _ => {}
    }
}

async fn handle_event(e2ee: &E2ee, e: &Event, me: &str, out: Output) {
    match e.event.as_str() {
        CLIENT_EVENT => match e2ee.open(e).await {
            Ok(m) => print_message(&m, me, Origin::CHANNEL, out),
            Err(E2eeError::Open(hush_crypto::suite1::OpenError::NotARecipient)) => {
                // A message for other devices (e.g. sent before this one
                // was published).
            }
            Err(err) => out.error(&format!("refused a message: {err}")),
        },
        event::SUBSCRIPTION_ERROR => out.error(&format!(
            "subscription refused: {}",
            e.data["error"].as_str().unwrap_or(&e.data.to_string())
        )),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_sides_pick_the_same_channel() {
        assert_eq!(default_channel("bob", "alice"), "private-chat-alice-bob");
        assert_eq!(default_channel("alice", "bob"), "private-chat-alice-bob");
    }

    #[test]
    fn store_keys_given_created_or_refused() {
        let dir = tempfile::tempdir().unwrap();
        let key_file = dir.path().join("alice.keys");
        let given = StoreKey::generate().to_base64().to_string();
        assert!(store_key(Some(given), &key_file).is_ok());
        assert!(store_key(Some("short".into()), &key_file).is_err());

        // A new key store gets a store key file, owner-only, reused later.
        let created = store_key(None, &key_file).unwrap();
        let path = dir.path().join("alice.keys.storekey");
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.trim(), created.to_base64().as_str());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let again = store_key(None, &key_file).unwrap();
        assert_eq!(again.to_base64().as_str(), created.to_base64().as_str());

        // An existing key store whose store key is gone: a clear error.
        std::fs::write(&key_file, b"x").unwrap();
        std::fs::remove_file(&path).unwrap();
        let e = store_key(None, &key_file).unwrap_err().to_string();
        assert!(e.contains("--store-key"), "{e}");
    }
}
