//! Operations that need the directory, as sans-I/O state machines: each
//! [`Op`] is advanced by [`Device::step`], which returns the next
//! `hush:request` to send or the finished result. The checks and state
//! changes are hush-client's (`directory.rs`, `devices.rs`, `messaging.rs`,
//! `owner.rs`, `verification.rs`, `backup.rs`), in the same order.

use std::collections::BTreeSet;

use hush_crypto::backup;
use hush_crypto::identity::{CardId, DeviceCard, DeviceId, IdentityKey, Revocation, UnsignedCard};
use hush_crypto::suite1::Envelope;
use hush_crypto::transparency::proofs::{
    MAX_HISTORY_VERSIONS, UserEntry, VerifiedEntry, verify_history, verify_lookup,
};
use hush_crypto::transparency::{LogError, SignedTreeHead};
use hush_protocol::msgs::HushRequest;
use hush_protocol::msgs::hush::{History, LogHead, Lookup, MailboxItem, Published};
use hush_protocol::{ChannelName, EventName, UserId};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::device::{CARD_VALIDITY_SECS, Device, parse_user};
use super::directory::{
    self, UserKeys, accept_and_pin, b64, fork_against_kept, keep, kept_head, sth, trusted, unb64,
    user_keys,
};
use super::error::CoreError;
use super::events::Event;
use super::gossip::{GossipCheck, Local};
use super::messaging::{self, CLIENT_EVENT, MAILBOX_EVENT, Message, SERVER_EVENT, SealArgs, Via};
use super::owner;

/// Prefix of mailbox conversation channels (hush-crypto's, shared with hush-client).
pub use hush_crypto::suite1::conversation::CONVERSATION_PREFIX;

/// What `step` returns.
#[derive(Debug)]
pub enum Step {
    /// Send this request; call `step` again with its result.
    Request(HushRequest),
    /// Finished, with this result.
    Done(Value),
}

impl Step {
    /// The JSON form: `{"request":{"method","params"}}` or `{"done":…}`.
    pub fn to_json(&self) -> Value {
        match self {
            Self::Request(r) => {
                let params: Value = serde_json::from_str(r.params().get())
                    .unwrap_or(Value::Object(Default::default()));
                json!({"request": {"method": r.method().name(), "params": params}})
            }
            Self::Done(v) => json!({ "done": v }),
        }
    }
}

enum Kind {
    Lookup,
    Publish,
    Seal(SealArgs),
    SealForUsers { args: SealArgs, named: Vec<String> },
    Open { env: Box<Envelope>, via: Via },
    Safety(String),
    MarkVerified(String),
    OwnerCheck,
    CardRequest,
    Restore(Box<IdentityKey>),
    Revoke(DeviceId),
}

enum Phase {
    Start,
    FirstHead,
    Lookup(Vec<usize>),
    Publish(Box<DeviceCard>),
    Revoke(Box<Revocation>),
    History {
        own: Box<UserKeys>,
        latest: u64,
        versions: usize,
    },
    CrossCheck {
        message: Box<Message>,
        ours: Box<SignedTreeHead>,
        theirs: Box<SignedTreeHead>,
    },
    Finished,
}

struct LookupRun {
    users: Vec<UserId>,
    out: Vec<Option<VerifiedEntry>>,
    ask: Vec<usize>,
    done: bool,
}

/// One operation in progress (see the module docs).
pub struct Op {
    kind: Kind,
    phase: Phase,
    run: Option<LookupRun>,
    found: Vec<(UserKeys, Option<u64>)>,
}

impl std::fmt::Debug for Op {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Op").finish_non_exhaustive()
    }
}

fn parse<T: DeserializeOwned>(result: Option<&str>, method: &str) -> Result<T, CoreError> {
    let text = result.ok_or_else(|| CoreError::Protocol(format!("{method}: no result given")))?;
    serde_json::from_str(text)
        .map_err(|e| CoreError::Protocol(format!("answer to {method} has another shape: {e}")))
}

fn now_secs(now_ms: u64) -> u64 {
    now_ms / 1000
}

/// The mailbox channel of a conversation (hush-crypto's, as hush-client's
/// `conversation_channel`).
pub fn conversation_channel(users: &[&str]) -> Result<String, CoreError> {
    let ids = users
        .iter()
        .map(|u| parse_user(u))
        .collect::<Result<Vec<_>, _>>()?;
    hush_crypto::suite1::conversation::conversation_channel(&ids)
        .map(|c| c.as_str().to_owned())
        .ok_or_else(|| CoreError::Invalid("a conversation needs a user".into()))
}

impl Op {
    fn new(kind: Kind) -> Self {
        Self {
            kind,
            phase: Phase::Start,
            run: None,
            found: Vec::new(),
        }
    }

    fn lookup(&mut self, users: Vec<UserId>) {
        self.run = Some(LookupRun {
            out: vec![None; users.len()],
            ask: (0..users.len()).collect(),
            users,
            done: false,
        });
    }
}

/// A card for this device (hush-client `devices::issue`).
fn issue(
    dev: &Device,
    identity: &IdentityKey,
    previous: Option<CardId>,
    now_ms: u64,
) -> Result<DeviceCard, CoreError> {
    let now = now_secs(now_ms);
    let body = UnsignedCard::new(
        dev.data.user.clone(),
        &identity.public_key(),
        &dev.data.keys,
        now.saturating_sub(60),
        now + CARD_VALIDITY_SECS,
        previous,
    );
    Ok(DeviceCard::issue(body, &dev.data.keys, identity)?)
}

impl Device {
    /// Verified lookup of `users`.
    pub fn lookup_op(&self, users: &[String]) -> Result<Op, CoreError> {
        let ids = users
            .iter()
            .map(|u| parse_user(u))
            .collect::<Result<Vec<_>, _>>()?;
        let mut op = Op::new(Kind::Lookup);
        op.lookup(ids);
        Ok(op)
    }

    /// Publishes (or renews) this device's card.
    pub fn publish_op(&self) -> Op {
        let mut op = Op::new(Kind::Publish);
        op.lookup(vec![self.data.user.clone()]);
        op
    }

    /// Seals for `users`' devices (and this user's other devices).
    pub fn seal_op(
        &self,
        channel: &str,
        outer: &str,
        inner: &str,
        data_json: &str,
        users: &[String],
    ) -> Result<Op, CoreError> {
        let args = SealArgs {
            channel: ChannelName::parse(channel).map_err(|e| CoreError::Invalid(e.to_string()))?,
            outer: EventName::parse_api(outer).map_err(|e| CoreError::Invalid(e.to_string()))?,
            inner: EventName::parse_api(inner).map_err(|e| CoreError::Invalid(e.to_string()))?,
            data: data_json.to_owned(),
        };
        let ids = self.seal_users(users)?;
        let mut op = Op::new(Kind::Seal(args));
        op.lookup(ids);
        Ok(op)
    }

    fn seal_users(&self, users: &[String]) -> Result<Vec<UserId>, CoreError> {
        if self.data.card.is_none() {
            return Err(CoreError::NotPublished);
        }
        let mut ids: Vec<UserId> = vec![self.data.user.clone()];
        for u in users {
            let id = parse_user(u)?;
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
        Ok(ids)
    }

    /// Seals a mailbox message for `users` (hush-client `seal_for_users`).
    pub fn seal_for_users_op(
        &self,
        inner: &str,
        data_json: &str,
        users: &[String],
    ) -> Result<Op, CoreError> {
        let me = self.data.user.as_str().to_owned();
        let mut all: Vec<&str> = users.iter().map(String::as_str).collect();
        all.push(&me);
        let conversation = conversation_channel(&all)?;
        let mut named: Vec<String> = Vec::new();
        for u in users {
            if *u != me && !named.contains(u) {
                named.push(u.clone());
            }
        }
        if named.is_empty() {
            named.push(me.clone());
        }
        let args = SealArgs {
            channel: ChannelName::parse(&conversation)
                .map_err(|e| CoreError::Invalid(e.to_string()))?,
            outer: EventName::parse_api(MAILBOX_EVENT)
                .map_err(|e| CoreError::Invalid(e.to_string()))?,
            inner: EventName::parse_api(inner).map_err(|e| CoreError::Invalid(e.to_string()))?,
            data: data_json.to_owned(),
        };
        let ids = self.seal_users(users)?;
        let mut op = Op::new(Kind::SealForUsers { args, named });
        op.lookup(ids);
        Ok(op)
    }

    /// Opens a channel event's envelope.
    pub fn open_op(&self, channel: &str, outer: &str, data: &str) -> Result<Op, CoreError> {
        if outer != CLIENT_EVENT && outer != SERVER_EVENT {
            return Err(CoreError::NotAnEnvelope);
        }
        let env = Envelope::from_data(data)?;
        let h = env.header();
        if h.channel.as_str() != channel || h.event.as_str() != outer {
            return Err(CoreError::WrongChannel);
        }
        Ok(Op::new(Kind::Open {
            env: Box::new(env),
            via: Via::Channel,
        }))
    }

    /// Opens one `mailbox.fetch` item (JSON `{envelope, id, sent_ms}`).
    pub fn open_mailbox_op(&self, item_json: &str) -> Result<Op, CoreError> {
        let item: MailboxItem = serde_json::from_str(item_json)
            .map_err(|e| CoreError::Invalid(format!("mailbox item: {e}")))?;
        let env = Envelope::from_data(&item.envelope)?;
        let h = env.header();
        if h.event.as_str() != MAILBOX_EVENT {
            return Err(CoreError::NotAnEnvelope);
        }
        if !h.channel.as_str().starts_with(CONVERSATION_PREFIX) {
            return Err(CoreError::WrongChannel);
        }
        Ok(Op::new(Kind::Open {
            env: Box::new(env),
            via: Via::Mailbox {
                mailbox_id: item.id,
                queued_ms: item.sent_ms,
            },
        }))
    }

    /// The safety number with `user` (after a lookup).
    pub fn safety_number_op(&self, user: &str) -> Result<Op, CoreError> {
        let id = parse_user(user)?;
        let mut op = Op::new(Kind::Safety(user.to_owned()));
        op.lookup(vec![id]);
        Ok(op)
    }

    /// Marks `user` verified (its current identity key, after a lookup).
    pub fn mark_verified_op(&self, user: &str) -> Result<Op, CoreError> {
        let id = parse_user(user)?;
        let mut op = Op::new(Kind::MarkVerified(user.to_owned()));
        op.lookup(vec![id]);
        Ok(op)
    }

    /// Owner self-check.
    pub fn check_own_keys_op(&self) -> Op {
        let mut op = Op::new(Kind::OwnerCheck);
        if self.data.card.is_some() && self.data.log.is_some() {
            op.lookup(vec![self.data.user.clone()]);
        }
        op
    }

    /// A second device's card request (after looking its user up).
    pub fn card_request_op(&self) -> Op {
        let mut op = Op::new(Kind::CardRequest);
        op.lookup(vec![self.data.user.clone()]);
        op
    }

    /// Opens a backup (Argon2id, now) and, after looking this user up,
    /// installs the identity key.
    pub fn restore_identity_op(&self, blob: &[u8], password: &[u8]) -> Result<Op, CoreError> {
        let identity = backup::open_identity(blob, password)?;
        let mut op = Op::new(Kind::Restore(Box::new(identity)));
        op.lookup(vec![self.data.user.clone()]);
        Ok(op)
    }

    /// Revokes one of this user's devices.
    pub fn revoke_device_op(&self, device_hex: &str) -> Result<Op, CoreError> {
        let device: [u8; 16] = hex::decode(device_hex)
            .ok()
            .and_then(|v| v.try_into().ok())
            .ok_or_else(|| CoreError::Invalid("device id: 32 hex digits".into()))?;
        let mut op = Op::new(Kind::Revoke(DeviceId(device)));
        op.lookup(vec![self.data.user.clone()]);
        Ok(op)
    }

    /// Advances `op` with the `result` of the request it asked for (`None`
    /// on the first call). An error ends the op.
    pub fn step(
        &mut self,
        op: &mut Op,
        result: Option<&str>,
        now_ms: u64,
    ) -> Result<Step, CoreError> {
        let phase = std::mem::replace(&mut op.phase, Phase::Finished);
        match phase {
            Phase::Finished => Err(CoreError::Protocol("the operation is finished".into())),
            Phase::Start => {
                if result.is_some() {
                    return Err(CoreError::Protocol("the first step takes no result".into()));
                }
                self.start(op, now_ms)?;
                self.advance(op, now_ms)
            }
            Phase::FirstHead => {
                let r: LogHead = parse(result, "log.head")?;
                directory::first_head(self, &r, now_ms)?;
                self.advance(op, now_ms)
            }
            Phase::Lookup(ask) => {
                let r: Lookup = parse(result, "directory.lookup")?;
                self.lookup_answer(op, &ask, &r, now_ms)?;
                self.advance(op, now_ms)
            }
            Phase::Publish(card) => {
                let r: Published = parse(result, "directory.publish")?;
                self.verify_write(&r, now_ms, |e| e.cards.contains(&card))?;
                let out = b64(&card.to_bytes());
                self.data.card = Some(*card);
                Ok(Step::Done(json!({ "card": out })))
            }
            Phase::Revoke(rev) => {
                let r: Published = parse(result, "directory.revoke")?;
                self.verify_write(&r, now_ms, |e| e.revocations.contains(&rev))?;
                if let Kind::Revoke(device) = op.kind
                    && device == self.data.device_id
                {
                    self.data.card = None;
                }
                Ok(Step::Done(json!({ "revoked": true })))
            }
            Phase::History {
                own,
                latest,
                versions,
            } => {
                let r: History = parse(result, "directory.history")?;
                let mut t = trusted(self)?
                    .ok_or_else(|| CoreError::Protocol("no trusted directory".into()))?;
                let head = sth(&r.head)?;
                accept_and_pin(self, &mut t, &head, now_ms)?;
                let me = self.data.user.clone();
                let past = verify_history(
                    &t.vrf,
                    &head.head,
                    &me,
                    &unb64(&r.proof, "history proof")?,
                    versions,
                )?;
                Ok(self.owner_alarms(&own, Some(latest), &past))
            }
            Phase::CrossCheck {
                message,
                ours,
                theirs,
            } => {
                let r: LogHead = parse(result, "log.head")?;
                let check = self.cross_check_answer(&r, &ours, &theirs, &message);
                let mut message = *message;
                message.gossip = check;
                Ok(Step::Done(message.to_json()))
            }
        }
    }

    /// The request `op` asked for failed (the server's error `code` and
    /// `message`, or a lost connection): ends the op. A message whose
    /// gossip could not be cross-checked is still returned (unchecked), as
    /// hush-client does (it is already recorded by the replay guard).
    pub fn fail(&mut self, op: &mut Op, code: &str, message: &str) -> Result<Step, CoreError> {
        match std::mem::replace(&mut op.phase, Phase::Finished) {
            Phase::CrossCheck { message: m, .. } => {
                let mut m = *m;
                m.gossip = GossipCheck::Unchecked;
                Ok(Step::Done(m.to_json()))
            }
            _ => Err(CoreError::Directory(format!("{code}: {message}"))),
        }
    }

    fn start(&mut self, op: &mut Op, now_ms: u64) -> Result<(), CoreError> {
        if let Kind::Open { env, .. } = &op.kind {
            messaging::check_recipient(self, env)?;
            let h = env.header();
            let (sender, device) = (h.sender_user.clone(), h.sender_device);
            if !messaging::cached(self, &sender, device, now_ms) {
                op.lookup(vec![sender]);
            }
        }
        Ok(())
    }

    fn advance(&mut self, op: &mut Op, now_ms: u64) -> Result<Step, CoreError> {
        if let Some(run) = &op.run
            && !run.done
        {
            if trusted(self)?.is_none() {
                directory::may_fetch_keys(self)?;
                op.phase = Phase::FirstHead;
                return Ok(Step::Request(HushRequest::LogHead { epoch: None }));
            }
            let users = run
                .ask
                .iter()
                .map(|&i| run.users[i].as_str().to_owned())
                .collect();
            op.phase = Phase::Lookup(run.ask.clone());
            return Ok(Step::Request(HushRequest::DirectoryLookup { users }));
        }
        self.finish(op, now_ms)
    }

    fn lookup_answer(
        &mut self,
        op: &mut Op,
        ask: &[usize],
        r: &Lookup,
        now_ms: u64,
    ) -> Result<(), CoreError> {
        let Some(run) = op.run.as_mut() else {
            return Err(CoreError::Protocol("no lookup in progress".into()));
        };
        let mut t =
            trusted(self)?.ok_or_else(|| CoreError::Protocol("no trusted directory".into()))?;
        let head = sth(&r.head)?;
        accept_and_pin(self, &mut t, &head, now_ms)?;
        let more: BTreeSet<&str> = r.more.iter().map(String::as_str).collect();
        let mut again = Vec::new();
        for &i in ask {
            let user = &run.users[i];
            if more.contains(user.as_str()) {
                again.push(i);
                continue;
            }
            if let Some(proof) = r.users.get(user.as_str()) {
                run.out[i] = Some(verify_lookup(
                    &t.vrf,
                    &head.head,
                    user,
                    &unb64(proof, "lookup proof")?,
                )?);
            }
        }
        if again.len() == ask.len() {
            return Err(CoreError::InvalidRecord(
                "the directory answered none of the users asked".into(),
            ));
        }
        run.ask = again;
        if run.ask.is_empty() {
            run.done = true;
            let now = now_secs(now_ms);
            let found: Vec<(UserKeys, Option<u64>)> = run
                .users
                .iter()
                .zip(std::mem::take(&mut run.out))
                .map(|(u, v)| {
                    let version = v.as_ref().map(|v| v.version);
                    (user_keys(u, v.map(|v| v.entry), now), version)
                })
                .collect();
            for (keys, _) in &found {
                directory::remember(self, keys, now_ms);
            }
            op.found = found;
        }
        Ok(())
    }

    fn verify_write(
        &mut self,
        r: &Published,
        now_ms: u64,
        wrote: impl Fn(&UserEntry) -> bool,
    ) -> Result<(), CoreError> {
        let mut t =
            trusted(self)?.ok_or_else(|| CoreError::Protocol("no trusted directory".into()))?;
        let head = sth(&r.head)?;
        accept_and_pin(self, &mut t, &head, now_ms)?;
        let me = self.data.user.clone();
        let v = verify_lookup(&t.vrf, &head.head, &me, &unb64(&r.proof, "proof")?)?;
        if !wrote(&v.entry) {
            return Err(CoreError::InvalidRecord(
                "the directory's entry for this user does not hold the write".into(),
            ));
        }
        Ok(())
    }

    fn own(&self, op: &Op) -> Result<UserKeys, CoreError> {
        op.found
            .first()
            .map(|(k, _)| k.clone())
            .ok_or_else(|| CoreError::UnknownUser(self.data.user.to_string()))
    }

    fn finish(&mut self, op: &mut Op, now_ms: u64) -> Result<Step, CoreError> {
        let kind = std::mem::replace(&mut op.kind, Kind::Lookup);
        match kind {
            Kind::Lookup => {
                let users: Vec<Value> = op.found.iter().map(|(k, _)| user_json(k)).collect();
                Ok(Step::Done(json!({ "users": users })))
            }
            Kind::Publish => self.finish_publish(op, now_ms),
            Kind::Seal(args) => {
                let keys: Vec<UserKeys> = op.found.iter().map(|(k, _)| k.clone()).collect();
                let data = messaging::seal(self, &keys, &args, now_ms)?;
                Ok(Step::Done(json!({ "data": data })))
            }
            Kind::SealForUsers { args, named } => {
                let keys: Vec<UserKeys> = op.found.iter().map(|(k, _)| k.clone()).collect();
                let envelope = messaging::seal(self, &keys, &args, now_ms)?;
                let env = Envelope::from_data(&envelope)?;
                let h = env.header();
                Ok(Step::Done(json!({
                    "method": "mailbox.send",
                    "params": {"users": named, "envelope": envelope},
                    "messageId": hex::encode(h.message_id),
                    "sequence": h.sequence,
                    "conversation": args.channel.as_str(),
                })))
            }
            Kind::Open { env, via } => self.finish_open(op, &env, via, now_ms),
            Kind::Safety(user) => {
                let found = self.own(op)?;
                if found.identity.is_none() {
                    return Err(CoreError::UnknownUser(user));
                }
                let n = self.cached_safety_number(&user)?;
                Ok(Step::Done(json!({
                    "digits": n.display(),
                    "grouped": n.display_grouped(),
                    "qr": b64(&n.scannable()),
                })))
            }
            Kind::MarkVerified(user) => {
                let identity = self
                    .own(op)?
                    .identity
                    .ok_or_else(|| CoreError::UnknownUser(user.clone()))?;
                if let Some(c) = self.data.contacts.get_mut(&user) {
                    c.verified = Some(b64(&identity.to_bytes()));
                }
                Ok(Step::Done(json!({ "verified": true })))
            }
            Kind::OwnerCheck => {
                let Some((own, latest)) = op.found.first().cloned() else {
                    return Ok(Step::Done(json!({ "alarms": [] })));
                };
                let checked = self.data.owner_version;
                if let Some(latest) = latest
                    && latest > checked.saturating_add(1)
                {
                    let versions = (latest - checked).min(MAX_HISTORY_VERSIONS as u64);
                    op.phase = Phase::History {
                        own: Box::new(own),
                        latest,
                        versions: usize::try_from(versions).unwrap_or(MAX_HISTORY_VERSIONS),
                    };
                    return Ok(Step::Request(HushRequest::DirectoryHistory {
                        versions: Some(versions),
                    }));
                }
                Ok(self.owner_alarms(&own, latest, &[]))
            }
            Kind::CardRequest => {
                let own = self.own(op)?;
                let identity = own
                    .identity
                    .ok_or_else(|| CoreError::UnknownUser(own.user.to_string()))?;
                let text = super::devices::card_request(self, &identity, now_ms)?;
                Ok(Step::Done(json!({ "request": text })))
            }
            Kind::Restore(identity) => {
                let own = self.own(op)?;
                if let Some(current) = own.identity
                    && current != identity.public_key()
                {
                    return Err(CoreError::Card(
                        hush_crypto::identity::CardError::IdentityMismatch,
                    ));
                }
                self.data.identity = Some(*identity);
                Ok(Step::Done(json!({ "restored": true })))
            }
            Kind::Revoke(device) => {
                let own = self.own(op)?;
                let identity = self
                    .data
                    .identity
                    .as_ref()
                    .ok_or(CoreError::NoIdentityKey)?;
                let card = own
                    .devices
                    .iter()
                    .find(|c| c.device_id() == device)
                    .ok_or_else(|| CoreError::Invalid(format!("no active device {device}")))?;
                let rev = Revocation::revoke_device(identity, card, now_secs(now_ms))?;
                // Recorded before it is sent (no owner alarm if the answer is lost).
                self.data.known_revocations.insert(device);
                let request = HushRequest::DirectoryRevoke {
                    revocation: b64(&rev.to_bytes()),
                };
                op.kind = Kind::Revoke(device);
                op.phase = Phase::Revoke(Box::new(rev));
                Ok(Step::Request(request))
            }
        }
    }

    fn finish_publish(&mut self, op: &mut Op, now_ms: u64) -> Result<Step, CoreError> {
        let own = self.own(op)?;
        let me = self.data.user.clone();
        let card = match self.data.card.clone() {
            Some(c) if c.verify(&me, c.identity_key(), now_secs(now_ms)).is_ok() => c,
            _ => {
                if self.data.identity.is_none() {
                    return Err(CoreError::NoIdentityKey);
                }
                let previous = own
                    .devices
                    .iter()
                    .find(|c| c.device_id() == self.data.device_id)
                    .or(self.data.card.as_ref())
                    .map(|c| (c.id(), *c.encryption_key()));
                if let Some((_, key)) = previous
                    && self.data.keys.encryption_public_key() == key
                {
                    self.data.renew_encryption_key()?;
                }
                let identity = self
                    .data
                    .identity
                    .as_ref()
                    .ok_or(CoreError::NoIdentityKey)?;
                issue(self, identity, previous.map(|(id, _)| id), now_ms)?
            }
        };
        if own.devices.iter().any(|c| c.id() == card.id()) {
            let out = b64(&card.to_bytes());
            self.data.card = Some(card);
            return Ok(Step::Done(json!({ "card": out })));
        }
        let request = HushRequest::DirectoryPublish {
            card: b64(&card.to_bytes()),
        };
        op.phase = Phase::Publish(Box::new(card));
        Ok(Step::Request(request))
    }

    fn finish_open(
        &mut self,
        op: &mut Op,
        env: &Envelope,
        via: Via,
        now_ms: u64,
    ) -> Result<Step, CoreError> {
        let _ = now_ms;
        let (mut message, local) = messaging::open(self, env, via, now_ms)?;
        let theirs = env.header().tree_head.clone();
        message.gossip = match (local, theirs) {
            (Local::Done(check), _) => check,
            (Local::Fork(ours), Some(theirs)) => self.fork(&message, ours, theirs),
            (Local::NeedsProof(ours), Some(theirs)) => {
                // hush-client `Directory::cross_check`, up to its round trip.
                let pre = trusted(self).and_then(|t| {
                    let t = t.ok_or(CoreError::Log(LogError::NoTrustedHead))?;
                    t.monitor.cross_check(&theirs)?;
                    fork_against_kept(self, &theirs)
                });
                match pre {
                    Ok(()) if kept_head(self, theirs.head.epoch).is_some() => {
                        self.gossip_checked.insert(&ours, &theirs);
                        GossipCheck::Consistent
                    }
                    Ok(()) => {
                        let epoch = theirs.head.epoch;
                        op.phase = Phase::CrossCheck {
                            message: Box::new(message),
                            ours: Box::new(ours),
                            theirs: Box::new(theirs),
                        };
                        return Ok(Step::Request(HushRequest::LogHead { epoch: Some(epoch) }));
                    }
                    Err(CoreError::Log(LogError::Fork | LogError::Rollback { .. })) => {
                        let ours = kept_head(self, theirs.head.epoch).unwrap_or(ours);
                        self.fork(&message, ours, theirs)
                    }
                    Err(_) => GossipCheck::Unchecked,
                }
            }
            (_, None) => GossipCheck::Unchecked,
        };
        Ok(Step::Done(message.to_json()))
    }

    /// The second half of a gossip cross-check: the directory's own head of
    /// the gossiped epoch.
    fn cross_check_answer(
        &mut self,
        r: &LogHead,
        ours: &SignedTreeHead,
        other: &SignedTreeHead,
        message: &Message,
    ) -> GossipCheck {
        let result = (|| {
            let t = trusted(self)?.ok_or(CoreError::Log(LogError::NoTrustedHead))?;
            let theirs = sth(&r.head)?;
            t.monitor.cross_check(&theirs)?;
            if theirs.head.epoch != other.head.epoch {
                return Err(CoreError::InvalidRecord(
                    "log.head answered another epoch than asked".into(),
                ));
            }
            keep(self, &theirs);
            if theirs.head.root != other.head.root {
                return Err(CoreError::Log(LogError::Fork));
            }
            Ok(())
        })();
        match result {
            Ok(()) => {
                self.gossip_checked.insert(ours, other);
                GossipCheck::Consistent
            }
            Err(CoreError::Log(LogError::Fork | LogError::Rollback { .. })) => {
                let ours = kept_head(self, other.head.epoch).unwrap_or_else(|| ours.clone());
                self.fork(message, ours, other.clone())
            }
            Err(_) => GossipCheck::Unchecked,
        }
    }

    fn fork(
        &mut self,
        message: &Message,
        ours: SignedTreeHead,
        theirs: SignedTreeHead,
    ) -> GossipCheck {
        self.events.push(Event::Fork {
            ours,
            theirs,
            sender: message.sender_user.clone(),
            channel: message.channel.clone(),
        });
        GossipCheck::Fork
    }

    fn owner_alarms(
        &mut self,
        own: &UserKeys,
        latest: Option<u64>,
        past: &[VerifiedEntry],
    ) -> Step {
        let mut found = owner::alarms(&self.data, own);
        for v in past {
            let keys = owner::keys_at(&self.data.user, &v.entry);
            for a in owner::alarms(&self.data, &keys) {
                if !found.contains(&a) {
                    found.push(a);
                }
            }
        }
        for a in &found {
            self.events.push(Event::OwnerAlarm(a.clone()));
        }
        if found.is_empty()
            && let Some(latest) = latest
        {
            self.data.owner_version = self.data.owner_version.max(latest);
        }
        let alarms: Vec<Value> = found.iter().map(|a| a.to_json()).collect();
        Step::Done(json!({ "alarms": alarms }))
    }
}

fn user_json(k: &UserKeys) -> Value {
    json!({
        "user": k.user.as_str(),
        "identity": k.identity.map(|i| b64(&i.to_bytes())),
        "devices": k.devices.iter().map(|c| hex::encode(c.device_id().0)).collect::<Vec<_>>(),
        "cards": k.devices.iter().map(|c| b64(&c.to_bytes())).collect::<Vec<_>>(),
        "revocations": k.revocations.len(),
    })
}
