//! `hush audit`: an independent auditor of an app's key directory (Meta's
//! akd) through the signed HTTP API: the signed epoch head (under pinned
//! keys, if given), then every epoch since the last audit, chunk by chunk,
//! with akd's append-only proofs ([`chain`]); `--state` remembers the last
//! audited epoch and root, `--follow` keeps auditing a live server.

mod chain;

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use clap::Args;
use hush_crypto::transparency::proofs::VrfPublicKey;
use hush_crypto::transparency::{Hash, LogPublicKey, SignedTreeHead};
use hush_sdk::Client;
use hush_sdk::directory::MAX_AUDIT_EPOCHS;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::api_cmds::{ConnArgs, runtime};
use crate::verify_cmd::{parse_pin, parse_vrf_pin};
use chain::{Checkpoint, Problem, verify_chunk};

/// Options of `hush audit`.
#[derive(Args)]
#[command(after_help = "\
Checks, through the signed HTTP API (GET /apps/ID/directory/log/…):
  * the current epoch head is signed by the directory's key, for this app;
    with --pin-key / --pin-vrf, the server's keys are the ones pinned;
  * every epoch from 1 (or from the epoch saved by the last audit, with
    --state FILE) to the latest, 16 epochs per request: each head signed,
    consecutive, the chunks joining (an epoch's root never changes), and
    akd's append-only proof between consecutive epochs (nothing published
    was ever removed or changed);
  * with --state FILE, the keys and the root of the saved epoch are the
    same as at the last audit (a rewritten history fails); the file is
    updated after every verified range;
  * with --follow, the head is polled every --interval seconds and each new
    range is audited as it appears, one line per verified range, until
    interrupted.
Exit status: 0 when all checks pass; 1 on the first inconsistency (the report
is printed first), or when the audit could not be completed (network,
credentials, unreadable state file; with --follow, network errors are
retried).")]
pub struct AuditArgs {
    #[command(flatten)]
    conn: ConnArgs,
    /// The head-signing public key you expect (base64, 32 bytes, as
    /// `hush directory-key` prints it): fail if the server signs with another.
    #[arg(long, value_name = "BASE64")]
    pin_key: Option<String>,
    /// The VRF public key you expect (base64, 32 bytes, as `hush
    /// directory-key` prints it): fail if the server serves another.
    #[arg(long, value_name = "BASE64")]
    pin_vrf: Option<String>,
    /// Remember the keys and the last audited epoch and root in this file;
    /// the next run continues from that epoch.
    #[arg(long, value_name = "FILE")]
    state: Option<PathBuf>,
    /// Keep auditing new epochs as they appear, until interrupted.
    #[arg(long)]
    follow: bool,
    /// Seconds between two polls of the head with --follow.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    interval: u64,
    /// Print the report as JSON (one object per line with --follow).
    #[arg(long)]
    json: bool,
    /// Epochs per audit request (the server's maximum by default; smaller
    /// chunks exercise the joins in tests).
    #[arg(long, hide = true, default_value_t = MAX_AUDIT_EPOCHS,
          value_parser = clap::value_parser!(u64).range(1..=MAX_AUDIT_EPOCHS))]
    chunk: u64,
}

/// What `--state` keeps between audits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct SavedState {
    /// The app audited.
    app_id: String,
    /// The head-signing key (base64).
    log_key: String,
    /// The VRF key (base64).
    vrf_key: String,
    /// The last audited epoch (at least 1).
    epoch: u64,
    /// Its root (hex).
    root: String,
}

impl SavedState {
    fn new(app_id: &str, keys: &Keys, at: &Checkpoint) -> Self {
        Self {
            app_id: app_id.to_owned(),
            log_key: STANDARD.encode(keys.log.to_bytes()),
            vrf_key: STANDARD.encode(keys.vrf.to_bytes()),
            epoch: at.epoch,
            root: hex::encode(at.root),
        }
    }

    /// The keys and checkpoint saved.
    fn parse(&self) -> anyhow::Result<(Keys, Checkpoint)> {
        let root: Hash = hex::decode(&self.root)
            .ok()
            .and_then(|r| r.try_into().ok())
            .context("root is not 32 bytes of hex")?;
        if self.epoch == 0 {
            bail!("epoch 0 is never saved");
        }
        let keys = Keys {
            log: parse_pin(&self.log_key).context("log_key")?,
            vrf: parse_vrf_pin(&self.vrf_key).context("vrf_key")?,
        };
        Ok((
            keys,
            Checkpoint {
                epoch: self.epoch,
                root,
            },
        ))
    }

    fn load(path: &Path) -> anyhow::Result<Option<Self>> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        let not_state = || format!("{} is not a hush audit state file", path.display());
        let state: Self = serde_json::from_str(&text).with_context(not_state)?;
        state.parse().with_context(not_state)?;
        Ok(Some(state))
    }

    /// Writes through a temporary file and a rename, so a crash never
    /// leaves half a state file.
    fn save(&self, path: &Path) -> anyhow::Result<()> {
        let tmp = path.with_extension("tmp");
        let text = serde_json::to_string_pretty(self)?;
        std::fs::write(&tmp, text + "\n").with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))
    }
}

/// The directory's public keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Keys {
    log: LogPublicKey,
    vrf: VrfPublicKey,
}

/// What one round of auditing found.
struct Findings {
    head: SignedTreeHead,
    keys: Keys,
    /// The epoch audited before this round (state file or last round).
    resumed_from: Option<u64>,
    /// Epochs proven append-only in this round: `(from, to)`.
    verified: Option<(u64, u64)>,
    /// Audit answers verified.
    proofs: u64,
    /// Why the directory cannot be trusted.
    problems: Vec<String>,
}

impl Findings {
    fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// The auditor: pinned keys, the keys and checkpoint of the last audit.
struct Auditor {
    client: Client,
    app_id: String,
    pins: (Option<LogPublicKey>, Option<VrfPublicKey>),
    chunk: u64,
    /// The keys seen by the last audit.
    keys: Option<Keys>,
    /// The last audited epoch and root.
    at: Option<Checkpoint>,
}

fn b64_key(bytes: [u8; 32]) -> String {
    STANDARD.encode(bytes)
}

impl Auditor {
    /// Checks the served keys against the pins and the last audit.
    fn check_keys(&self, served: Keys) -> Vec<String> {
        let mut problems = Vec::new();
        let (pin_key, pin_vrf) = self.pins;
        if let Some(pin) = pin_key
            && pin != served.log
        {
            problems.push(format!(
                "the server's log key {} is not the pinned key {}",
                b64_key(served.log.to_bytes()),
                b64_key(pin.to_bytes())
            ));
        }
        if let Some(pin) = pin_vrf
            && pin != served.vrf
        {
            problems.push(format!(
                "the server's VRF key {} is not the pinned key {}",
                b64_key(served.vrf.to_bytes()),
                b64_key(pin.to_bytes())
            ));
        }
        if let Some(known) = self.keys {
            for (what, was, now) in [
                ("log", known.log.to_bytes(), served.log.to_bytes()),
                ("VRF", known.vrf.to_bytes(), served.vrf.to_bytes()),
            ] {
                if was != now {
                    problems.push(format!(
                        "the {what} key changed since the last audit (was {}, now {})",
                        b64_key(was),
                        b64_key(now)
                    ));
                }
            }
        }
        problems
    }

    /// One round: the current head, then every epoch after the last
    /// audited one. The checkpoint moves only when everything verified.
    async fn round(&mut self) -> anyhow::Result<Findings> {
        let served = self
            .client
            .directory_log_head()
            .await
            .context("fetching the directory head")?;
        let keys = Keys {
            log: served.key,
            vrf: served.vrf,
        };
        let mut f = Findings {
            head: served.head,
            keys,
            resumed_from: self.at.map(|c| c.epoch),
            verified: None,
            proofs: 0,
            problems: self.check_keys(keys),
        };
        if !f.problems.is_empty() {
            return Ok(f);
        }
        if let Err(e) = f.head.verify(&keys.log, &self.app_id) {
            f.problems.push(format!("head: {e}"));
            return Ok(f);
        }
        match self.walk(&f.head, keys.log, &mut f.proofs).await? {
            Ok(at) => {
                if let Some(end) = at
                    && f.proofs > 0
                {
                    f.verified = Some((self.at.map_or(1, |c| c.epoch), end.epoch));
                }
                self.keys = Some(keys);
                if at.is_some() {
                    self.at = at;
                }
            }
            Err(p) => f.problems.push(p.to_string()),
        }
        Ok(f)
    }

    /// Audits epochs from the checkpoint (or 1) to `head`'s, chunk by
    /// chunk; returns the new checkpoint (none for an empty directory).
    async fn walk(
        &self,
        head: &SignedTreeHead,
        key: LogPublicKey,
        proofs: &mut u64,
    ) -> anyhow::Result<Result<Option<Checkpoint>, Problem>> {
        let latest = head.head.epoch;
        let mut at = self.at;
        if let Some(c) = at
            && c.epoch > latest
        {
            return Ok(Err(Problem::Rollback {
                audited: c.epoch,
                served: latest,
            }));
        }
        let mut from = at.map_or(1, |c| c.epoch);
        while from < latest {
            let to = latest.min(from + self.chunk);
            let audit = self
                .client
                .directory_log_audit(from, to)
                .await
                .with_context(|| format!("fetching the audit of epochs {from}..={to}"))?;
            match verify_chunk(&key, &self.app_id, (from, to), at.as_ref(), &audit).await {
                Ok(c) => at = Some(c),
                Err(p) => return Ok(Err(p)),
            }
            *proofs += 1;
            from = to;
        }
        // The current head must agree with the audited root of its epoch;
        // the first head of a directory at epoch 1 is taken as it is
        // (there is no append-only proof from the empty epoch 0).
        Ok(match at {
            Some(c) if c.epoch == latest && c.root != head.head.root => Err(Problem::Fork {
                epoch: latest,
                audited: c.root,
                served: head.head.root,
            }),
            Some(c) => Ok(Some(c)),
            None if latest == 0 => Ok(None),
            None => Ok(Some(Checkpoint {
                epoch: latest,
                root: head.head.root,
            })),
        })
    }
}

fn report_json(app_id: &str, f: &Findings) -> Value {
    json!({
        "ok": f.ok(),
        "app_id": app_id,
        "log_key": b64_key(f.keys.log.to_bytes()),
        "vrf_key": b64_key(f.keys.vrf.to_bytes()),
        "epoch": f.head.head.epoch,
        "root": hex::encode(f.head.head.root),
        "timestamp": f.head.head.timestamp,
        "resumed_from": f.resumed_from,
        "verified": f.verified.map(|(from, to)| json!({"from": from, "to": to})),
        "proofs": f.proofs,
        "problems": f.problems,
    })
}

/// What the round proved, in words.
fn progress(f: &Findings) -> String {
    let epoch = f.head.head.epoch;
    match (f.verified, f.resumed_from) {
        (Some((from, to)), _) => format!(
            "epochs {from}..={to} verified append-only ({} audit proof{})",
            f.proofs,
            if f.proofs == 1 { "" } else { "s" }
        ),
        (None, Some(at)) if at == epoch => format!("no new epoch since epoch {at}"),
        (None, _) if epoch == 0 => "empty directory (epoch 0)".into(),
        (None, _) => format!("epoch {epoch} is the first: nothing to prove yet"),
    }
}

fn report_text(app_id: &str, f: &Findings) -> String {
    let h = &f.head.head;
    let mut s = format!(
        "app {app_id}: directory at epoch {}, root {}, head signed at {} ms\n\
         log key {}\nvrf key {}\n",
        h.epoch,
        hex::encode(h.root),
        h.timestamp,
        b64_key(f.keys.log.to_bytes()),
        b64_key(f.keys.vrf.to_bytes()),
    );
    if let Some(at) = f.resumed_from {
        s.push_str(&format!("continuing from epoch {at} (audited before)\n"));
    }
    if f.ok() {
        s.push_str(&progress(f));
        s.push('\n');
    }
    for p in &f.problems {
        s.push_str(&format!("INCONSISTENT: {p}\n"));
    }
    s.push_str(if f.ok() {
        "audit passed"
    } else {
        "audit FAILED"
    });
    s
}

/// One line for `--follow`.
fn report_line(f: &Findings) -> String {
    match f.problems.first() {
        None => format!("{}, root {}", progress(f), hex::encode(f.head.head.root)),
        Some(p) => format!("INCONSISTENT: {p}"),
    }
}

/// An error worth retrying with `--follow`: the server could not be
/// reached, not an answer that failed.
fn transient(e: &anyhow::Error) -> bool {
    matches!(
        e.downcast_ref::<hush_sdk::Error>(),
        Some(hush_sdk::Error::Transport(_) | hush_sdk::Error::Timeout(_))
    )
}

/// Runs `hush audit`.
pub fn run(args: AuditArgs) -> anyhow::Result<()> {
    let client = args.conn.client()?;
    let app_id = client.config().app_id.clone();
    let pins = (
        args.pin_key.as_deref().map(parse_pin).transpose()?,
        args.pin_vrf.as_deref().map(parse_vrf_pin).transpose()?,
    );
    let mut auditor = Auditor {
        client,
        app_id: app_id.clone(),
        pins,
        chunk: args.chunk,
        keys: None,
        at: None,
    };
    if let Some(saved) = args
        .state
        .as_deref()
        .map(SavedState::load)
        .transpose()?
        .flatten()
    {
        if saved.app_id != app_id {
            bail!(
                "the state file is for app {:?}, not {app_id:?}",
                saved.app_id
            );
        }
        let (keys, at) = saved.parse()?;
        auditor.keys = Some(keys);
        auditor.at = Some(at);
    }
    let rt = runtime()?;
    let mut first = true;
    loop {
        let f = match rt.block_on(auditor.round()) {
            Ok(f) => f,
            Err(e) if args.follow && transient(&e) => {
                eprintln!("hush: audit: {e:#}; retrying in {} s", args.interval);
                std::thread::sleep(Duration::from_secs(args.interval));
                continue;
            }
            Err(e) => return Err(e),
        };
        let line = match (args.json, args.follow) {
            (true, _) => report_json(&app_id, &f).to_string(),
            (false, true) => report_line(&f),
            (false, false) => report_text(&app_id, &f),
        };
        // With --follow, one line per verified range (and the first round).
        if !args.follow || first || !f.ok() || f.verified.is_some() {
            println!("{line}");
        }
        first = false;
        if let Some(p) = f.problems.first() {
            bail!("the key directory of app {app_id} is inconsistent: {p}");
        }
        if let (Some(path), Some(keys), Some(at)) = (&args.state, auditor.keys, auditor.at) {
            SavedState::new(&app_id, &keys, &at).save(path)?;
        }
        if !args.follow {
            return Ok(());
        }
        std::thread::sleep(Duration::from_secs(args.interval));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hush_crypto::transparency::{LogKey, TreeHead};

    fn keys() -> Keys {
        let k = LogKey::from_secret_bytes(&[3; 32]).public_key();
        Keys {
            log: k,
            vrf: VrfPublicKey::from_bytes(&k.to_bytes()).unwrap(),
        }
    }

    #[test]
    fn state_files_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.json");
        assert_eq!(SavedState::load(&path).unwrap(), None);
        let at = Checkpoint {
            epoch: 7,
            root: [9; 32],
        };
        let state = SavedState::new("3", &keys(), &at);
        state.save(&path).unwrap();
        let loaded = SavedState::load(&path).unwrap().unwrap();
        assert_eq!(loaded, state);
        assert_eq!(loaded.parse().unwrap(), (keys(), at));
        std::fs::write(&path, "{}").unwrap();
        assert!(SavedState::load(&path).is_err());
        for bad in [
            SavedState {
                root: "00".into(),
                ..state.clone()
            },
            SavedState {
                epoch: 0,
                ..state.clone()
            },
            SavedState {
                vrf_key: "AAAA".into(),
                ..state.clone()
            },
        ] {
            std::fs::write(&path, serde_json::to_string(&bad).unwrap()).unwrap();
            assert!(SavedState::load(&path).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn reports_say_what_was_proven() {
        let key = LogKey::from_secret_bytes(&[3; 32]);
        let head = key.sign(TreeHead {
            log_id: "3".into(),
            epoch: 20,
            root: [1; 32],
            timestamp: 5,
        });
        let mut f = Findings {
            head,
            keys: keys(),
            resumed_from: Some(2),
            verified: Some((2, 20)),
            proofs: 2,
            problems: Vec::new(),
        };
        let t = report_text("3", &f);
        assert!(t.contains("continuing from epoch 2"), "{t}");
        assert!(
            t.contains("epochs 2..=20 verified append-only (2 audit proofs)"),
            "{t}"
        );
        assert!(t.ends_with("audit passed"), "{t}");
        assert!(report_line(&f).starts_with("epochs 2..=20 verified"));
        let j = report_json("3", &f);
        assert_eq!(
            (j["ok"].clone(), j["verified"]["to"].clone()),
            (json!(true), json!(20))
        );
        f.problems.push("fork: …".into());
        assert!(report_text("3", &f).contains("INCONSISTENT: fork"));
        assert!(report_text("3", &f).ends_with("audit FAILED"));
        assert_eq!(report_line(&f), "INCONSISTENT: fork: …");
        assert_eq!(report_json("3", &f)["ok"], false);
    }
}
