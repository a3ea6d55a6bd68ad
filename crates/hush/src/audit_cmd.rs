//! `hush audit`: checks an app's key-directory log end to end through the
//! signed HTTP API — the signed tree head, every entry (signatures and
//! directory rules, replayed with `hush_crypto::transparency::audit`), and,
//! with `--state`, that the log only grew since the last audit.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use clap::Args;
use hush_crypto::transparency::{
    AuditReport, Hash, LogError, LogMonitor, LogPublicKey, SignedTreeHead, TreeHead, audit,
};
use hush_sdk::Client;
use hush_sdk::directory::MAX_LOG_ENTRIES;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::api_cmds::{ConnArgs, runtime};
use crate::verify_cmd::parse_pin;

/// Options of `hush audit`.
#[derive(Args)]
#[command(after_help = "\
Checks, through the signed HTTP API (GET /apps/ID/directory/log/…):
  * the signed tree head verifies under the log key, for this app;
  * with --pin-key, the server's log key is the one pinned;
  * with --state FILE, the log is an append-only extension of the head
    saved by the last audit (consistency proof), so a history rewritten
    between two audits is detected; the file is updated after a
    consistent run;
  * all entries (fetched 1000 per request) hash to the head's root, every
    card and revocation carries valid signatures, and every entry follows
    the directory rules (docs/KEY-TRANSPARENCY.md).
Exit status: 0 when all checks pass; 1 on any rule violation or
inconsistency (the report is printed first), or when the audit could not be
completed (network, credentials, unreadable state file).")]
pub struct AuditArgs {
    #[command(flatten)]
    conn: ConnArgs,
    /// The log public key you expect (base64, 32 bytes, as `log.head`
    /// serves it): fail if the server signs with another.
    #[arg(long, value_name = "BASE64")]
    pin_key: Option<String>,
    /// Remember the audited head in this file; on the next run require a
    /// consistency proof from it.
    #[arg(long, value_name = "FILE")]
    state: Option<PathBuf>,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
    /// Entries per request (the server's maximum by default; smaller pages
    /// exercise the paging in tests).
    #[arg(long, hide = true, default_value_t = MAX_LOG_ENTRIES,
          value_parser = clap::value_parser!(u64).range(1..=MAX_LOG_ENTRIES))]
    page_size: u64,
}

/// What `--state` keeps between audits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct SavedState {
    /// The app (log id) audited.
    app_id: String,
    /// The log key (base64).
    log_key: String,
    /// The audited tree size.
    size: u64,
    /// Its root (hex).
    root: String,
    /// When that head was signed (Unix milliseconds).
    timestamp: u64,
}

impl SavedState {
    fn new(head: &TreeHead, key: &LogPublicKey) -> Self {
        Self {
            app_id: head.log_id.clone(),
            log_key: STANDARD.encode(key.to_bytes()),
            size: head.size,
            root: hex::encode(head.root),
            timestamp: head.timestamp,
        }
    }

    fn head(&self) -> anyhow::Result<TreeHead> {
        let root: Hash = hex::decode(&self.root)
            .ok()
            .and_then(|r| r.try_into().ok())
            .context("root is not 32 bytes of hex")?;
        Ok(TreeHead {
            log_id: self.app_id.clone(),
            size: self.size,
            root,
            timestamp: self.timestamp,
        })
    }

    fn load(path: &Path) -> anyhow::Result<Option<Self>> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        let state: Self = serde_json::from_str(&text)
            .with_context(|| format!("{} is not a hush audit state file", path.display()))?;
        state
            .head()
            .with_context(|| format!("{} is not a hush audit state file", path.display()))?;
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

/// Everything one run found.
struct Findings {
    head: SignedTreeHead,
    key: LogPublicKey,
    /// Consistency with the saved head: `(saved size, checked)`.
    since: Option<u64>,
    report: Option<AuditReport>,
    /// Why the log cannot be trusted (signature, key, fork, rollback,
    /// entries that do not match the head).
    problems: Vec<String>,
}

impl Findings {
    fn ok(&self) -> bool {
        self.problems.is_empty()
            && self
                .report
                .as_ref()
                .is_some_and(|r| r.violations.is_empty())
    }
}

/// `WrongIdentity` → `wrong_identity`.
fn snake(name: &str) -> String {
    let mut out = String::new();
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

fn log_problem(e: LogError) -> String {
    match e {
        LogError::Fork => "fork: the log is not an append-only extension of the last audited head \
             (history was rewritten)"
            .into(),
        LogError::Rollback { trusted, offered } => {
            format!("rollback: the log shrank from {trusted} entries to {offered}")
        }
        other => other.to_string(),
    }
}

async fn fetch_entries(
    client: &Client,
    size: u64,
    page: u64,
) -> anyhow::Result<Result<Vec<Vec<u8>>, String>> {
    let mut entries = Vec::new();
    let mut start = 0;
    while start < size {
        let end = size.min(start.saturating_add(page));
        let page = client
            .directory_log_entries(start, end)
            .await
            .with_context(|| format!("fetching log entries {start}..{end}"))?;
        if page.len() as u64 != end - start {
            return Ok(Err(format!(
                "the server returned {} entries for {start}..{end} of a {size}-entry head",
                page.len()
            )));
        }
        entries.extend(page);
        start = end;
    }
    Ok(Ok(entries))
}

async fn check(
    client: &Client,
    app_id: &str,
    pin: Option<LogPublicKey>,
    saved: Option<&SavedState>,
    page: u64,
) -> anyhow::Result<Findings> {
    let served = client
        .directory_log_head()
        .await
        .context("fetching the log head")?;
    let mut f = Findings {
        head: served.head,
        key: served.key,
        since: None,
        report: None,
        problems: Vec::new(),
    };
    if let Some(pin) = pin
        && pin != f.key
    {
        f.problems.push(format!(
            "the server's log key {} is not the pinned key {}",
            STANDARD.encode(f.key.to_bytes()),
            STANDARD.encode(pin.to_bytes())
        ));
    }
    if let Err(e) = f.head.verify(&f.key, app_id) {
        f.problems.push(format!("tree head: {e}"));
        return Ok(f);
    }
    if let Some(saved) = saved {
        if saved.app_id != app_id {
            bail!(
                "the state file is for app {:?}, not {app_id:?}",
                saved.app_id
            );
        }
        let size = f.head.head.size;
        if saved.log_key != STANDARD.encode(f.key.to_bytes()) {
            f.problems.push(format!(
                "the log key changed since the last audit (was {}, now {})",
                saved.log_key,
                STANDARD.encode(f.key.to_bytes())
            ));
        } else {
            let proof = if saved.size == 0 || saved.size >= size {
                Vec::new()
            } else {
                client
                    .directory_log_consistency(saved.size, size)
                    .await
                    .context("fetching the consistency proof")?
            };
            let mut monitor = LogMonitor::resume(app_id, f.key, saved.head()?);
            match monitor.update(&f.head, &proof) {
                Ok(()) => f.since = Some(saved.size),
                Err(e) => f.problems.push(log_problem(e)),
            }
        }
    }
    match fetch_entries(client, f.head.head.size, page).await? {
        Ok(entries) => match audit(app_id, &f.key, &f.head, &entries) {
            Ok(report) => f.report = Some(report),
            Err(LogError::Fork) => f
                .problems
                .push("the entries served do not hash to the signed tree head's root".into()),
            Err(e) => f.problems.push(log_problem(e)),
        },
        Err(problem) => f.problems.push(problem),
    }
    Ok(f)
}

fn report_json(app_id: &str, f: &Findings) -> Value {
    let mut out = json!({
        "ok": f.ok(),
        "app_id": app_id,
        "log_key": STANDARD.encode(f.key.to_bytes()),
        "size": f.head.head.size,
        "root": hex::encode(f.head.head.root),
        "timestamp": f.head.head.timestamp,
        "consistent_since": f.since,
        "problems": f.problems,
    });
    if let Some(r) = &f.report {
        out["entries"] = json!(r.entries);
        out["users"] = json!(r.users);
        out["cards"] = json!(r.cards);
        out["revocations"] = json!(r.revocations);
        out["rotations"] = json!(r.rotations);
        out["violations"] = r
            .violations
            .iter()
            .map(|(i, rule)| {
                json!({"index": i, "rule": snake(&format!("{rule:?}")), "message": rule.to_string()})
            })
            .collect();
    }
    out
}

fn report_text(app_id: &str, f: &Findings) -> String {
    let h = &f.head.head;
    let mut s = format!(
        "app {app_id}: log of {} entries, root {}, head signed at {} ms\nlog key {}\n",
        h.size,
        hex::encode(h.root),
        h.timestamp,
        STANDARD.encode(f.key.to_bytes())
    );
    if let Some(since) = f.since {
        s.push_str(&format!(
            "consistent with the last audited head ({since} entries)\n"
        ));
    }
    if let Some(r) = &f.report {
        s.push_str(&format!(
            "{} users, {} cards, {} revocations, {} identity rotations\n",
            r.users, r.cards, r.revocations, r.rotations
        ));
        if r.violations.is_empty() {
            s.push_str("no rule violations\n");
        } else {
            s.push_str(&format!("{} rule violations:\n", r.violations.len()));
            for (i, rule) in &r.violations {
                s.push_str(&format!(
                    "  entry {i}: {} ({rule})\n",
                    snake(&format!("{rule:?}"))
                ));
            }
        }
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

/// Runs `hush audit`.
pub fn run(args: AuditArgs) -> anyhow::Result<()> {
    let client = args.conn.client()?;
    let app_id = client.config().app_id.clone();
    let pin = args.pin_key.as_deref().map(parse_pin).transpose()?;
    let saved = match &args.state {
        Some(path) => SavedState::load(path)?,
        None => None,
    };
    let f = runtime()?.block_on(check(&client, &app_id, pin, saved.as_ref(), args.page_size))?;
    if args.json {
        println!("{}", report_json(&app_id, &f));
    } else {
        println!("{}", report_text(&app_id, &f));
    }
    if let Some(path) = &args.state
        && f.problems.is_empty()
    {
        SavedState::new(&f.head.head, &f.key).save(path)?;
    }
    if let Some(p) = f.problems.first() {
        bail!("the directory log of app {app_id} is inconsistent: {p}");
    }
    match &f.report {
        Some(r) if !r.violations.is_empty() => bail!(
            "the directory log of app {app_id} breaks the directory rules at {} entries",
            r.violations.len()
        ),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rule_names() {
        assert_eq!(snake("WrongIdentity"), "wrong_identity");
        assert_eq!(snake("InvalidEntry"), "invalid_entry");
    }

    #[test]
    fn state_files_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.json");
        assert_eq!(SavedState::load(&path).unwrap(), None);
        let key = hush_crypto::transparency::LogKey::from_secret_bytes(&[3; 32]);
        let head = TreeHead {
            log_id: "3".into(),
            size: 7,
            root: [9; 32],
            timestamp: 5,
        };
        let state = SavedState::new(&head, &key.public_key());
        state.save(&path).unwrap();
        let loaded = SavedState::load(&path).unwrap().unwrap();
        assert_eq!(loaded, state);
        assert_eq!(loaded.head().unwrap(), head);
        std::fs::write(&path, "{}").unwrap();
        assert!(SavedState::load(&path).is_err());
        std::fs::write(
            &path,
            serde_json::to_string(&SavedState {
                root: "00".into(),
                ..state
            })
            .unwrap(),
        )
        .unwrap();
        assert!(SavedState::load(&path).is_err());
    }

    #[test]
    fn violations_are_reported_with_index_and_rule() {
        use hush_crypto::directory::RuleError;
        let key = hush_crypto::transparency::LogKey::from_secret_bytes(&[3; 32]);
        let head = key.sign(TreeHead {
            log_id: "3".into(),
            size: 4,
            root: [1; 32],
            timestamp: 5,
        });
        let mut f = Findings {
            head,
            key: key.public_key(),
            since: None,
            report: Some(AuditReport {
                entries: 4,
                users: 1,
                cards: 2,
                revocations: 0,
                rotations: 0,
                violations: vec![(2, RuleError::BrokenChain), (3, RuleError::Duplicate)],
            }),
            problems: Vec::new(),
        };
        assert!(!f.ok());
        let j = report_json("3", &f);
        assert_eq!(j["ok"], false);
        assert_eq!(j["violations"][0]["index"], 2);
        assert_eq!(j["violations"][0]["rule"], "broken_chain");
        assert_eq!(j["violations"][1]["rule"], "duplicate");
        let t = report_text("3", &f);
        assert!(
            t.contains("2 rule violations:\n  entry 2: broken_chain ("),
            "{t}"
        );
        assert!(t.ends_with("audit FAILED"), "{t}");
        if let Some(r) = f.report.as_mut() {
            r.violations.clear();
        }
        assert!(f.ok());
        assert!(report_text("3", &f).ends_with("audit passed"));
        f.problems.push("fork: …".into());
        assert!(!f.ok());
        assert!(report_text("3", &f).contains("INCONSISTENT: fork"));
    }

    #[test]
    fn pinned_keys_parse() {
        let key = hush_crypto::transparency::LogKey::from_secret_bytes(&[3; 32]).public_key();
        assert_eq!(parse_pin(&STANDARD.encode(key.to_bytes())).unwrap(), key);
        assert!(parse_pin("AAAA").is_err());
        assert!(parse_pin("%%").is_err());
    }
}
