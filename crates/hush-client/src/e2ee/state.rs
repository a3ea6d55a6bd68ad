//! The state the parts of [`E2ee`](super::E2ee) share: the device's data
//! behind a short-lived lock that is never held across an `.await` (a
//! `std::sync::Mutex`: holding its guard across an await would make the
//! futures `!Send`, which `handles_and_futures_are_send` checks), and the
//! directory lock that orders directory round trips.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hush_crypto::identity::{DeviceCard, IdentityPublicKey, Revocation};
use hush_crypto::suite1::ReplayGuard;
use hush_crypto::transparency::Freshness;
use tokio::sync::broadcast;

use super::store::{DeviceData, KeyStore};
use super::{E2eeError, ForkDetected, KeyChanged, MailboxEvent, OwnerAlarm};
use crate::client::Client;

/// The device's state.
pub(super) struct State {
    pub data: DeviceData,
    pub guard: ReplayGuard,
    /// The mailbox's replay guard (its window covers the mailbox's TTL).
    pub mailbox_guard: ReplayGuard,
    pub cache_ttl: Duration,
    /// How fresh a served tree head must be.
    pub freshness: Freshness,
    /// How often the owner watch looks this user up.
    pub owner_interval: Duration,
    /// Whether the directory's keys may be taken from its first answer when
    /// the app pinned none (off unless the app asks for it).
    pub trust_on_first_use: bool,
    /// The card cache, parsed (signatures checked once, not per message).
    pub parsed: HashMap<String, Parsed>,
    /// Gossiped heads already proven consistent with the trusted one.
    pub gossip_checked: super::gossip::Checked,
    /// Signed heads accepted lately (one per epoch), which gossiped heads
    /// and new answers are compared with.
    pub heads: super::directory::KeptHeads,
}

/// One cached user's records, parsed.
#[derive(Clone)]
pub(super) struct Parsed {
    pub identity: Option<IdentityPublicKey>,
    pub cards: Vec<DeviceCard>,
    pub revocations: Vec<Revocation>,
}

impl State {
    /// The parsed cache entry of `user` (parsed from the store on first use).
    pub(super) fn parsed(&mut self, user: &str) -> Option<&Parsed> {
        if !self.parsed.contains_key(user) {
            let c = self.data.contacts.get(user)?;
            let decode = |s: &String| STANDARD.decode(s).ok();
            let p = Parsed {
                identity: decode(&c.identity)
                    .and_then(|b| <[u8; 32]>::try_from(b).ok())
                    .and_then(|b| IdentityPublicKey::from_bytes(&b).ok()),
                cards: c
                    .cards
                    .iter()
                    .filter_map(decode)
                    .filter_map(|b| DeviceCard::from_bytes(&b).ok())
                    .collect(),
                revocations: c
                    .revocations
                    .iter()
                    .filter_map(decode)
                    .filter_map(|b| Revocation::from_bytes(&b).ok())
                    .collect(),
            };
            self.parsed.insert(user.to_owned(), p);
        }
        self.parsed.get(user)
    }
}

/// What every part holds.
pub(super) struct Shared {
    pub client: Client,
    pub store: KeyStore,
    state: Mutex<State>,
    pub changes: broadcast::Sender<KeyChanged>,
    /// Forks detected from gossiped tree heads.
    pub forks: broadcast::Sender<ForkDetected>,
    /// Owner alarms ([`OwnerAlarm`]).
    pub alarms: broadcast::Sender<OwnerAlarm>,
    /// The owner watch task, stopped when the last handle is dropped.
    pub watcher: Mutex<Option<tokio::task::AbortHandle>>,
    /// Wakes the owner watch (its interval changed).
    pub wake: std::sync::Arc<tokio::sync::Notify>,
    /// Orders the directory's round trips: the trusted tree head must
    /// advance one verified step at a time. Held across awaits, but only by
    /// directory work; [`open`](super::E2ee::open) of a known sender never
    /// takes it.
    pub directory: tokio::sync::Mutex<()>,
    /// Mailbox events ([`MailboxEvent`]).
    pub mailbox_events: broadcast::Sender<MailboxEvent>,
    /// The mailbox's receiving side (reorder buffer, ids in hand): one
    /// fetch cycle or push at a time.
    pub mailbox: tokio::sync::Mutex<super::mailbox::Receiver>,
    /// The socket this device authenticated on (`device.auth`), if any.
    pub device_auth: tokio::sync::Mutex<Option<String>>,
    /// The mailbox task, once started, stopped when the last handle is
    /// dropped.
    pub mailbox_task: Mutex<Option<tokio::task::AbortHandle>>,
    /// Wakes the mailbox task (e.g. the card was just published).
    pub mailbox_wake: std::sync::Arc<tokio::sync::Notify>,
}

/// Proof that the directory lock is held.
pub(super) type DirectoryGuard<'a> = tokio::sync::MutexGuard<'a, ()>;

impl Shared {
    pub(super) fn new(client: Client, store: KeyStore, state: State) -> Self {
        let (changes, _) = broadcast::channel(256);
        let (forks, _) = broadcast::channel(64);
        let (alarms, _) = broadcast::channel(256);
        let (mailbox_events, _) = broadcast::channel(1024);
        Self {
            client,
            store,
            state: Mutex::new(state),
            changes,
            forks,
            alarms,
            watcher: Mutex::new(None),
            wake: std::sync::Arc::default(),
            directory: tokio::sync::Mutex::new(()),
            mailbox_events,
            mailbox: tokio::sync::Mutex::new(super::mailbox::Receiver::default()),
            device_auth: tokio::sync::Mutex::new(None),
            mailbox_task: Mutex::new(None),
            mailbox_wake: std::sync::Arc::default(),
        }
    }

    /// Runs `f` on the state under its lock (`f` cannot await).
    pub(super) fn with<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        let mut st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        f(&mut st)
    }

    /// Runs `f` on the state, then saves it to the key store.
    pub(super) fn update<R>(
        &self,
        f: impl FnOnce(&mut State) -> Result<R, E2eeError>,
    ) -> Result<R, E2eeError> {
        self.with(|st| {
            let r = f(st)?;
            self.save(st)?;
            Ok(r)
        })
    }

    /// Saves the device's data.
    pub(super) fn save(&self, st: &State) -> Result<(), E2eeError> {
        Ok(self.store.save(&st.data)?)
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        let task = self
            .watcher
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(task) = task {
            task.abort();
        }
        let task = self
            .mailbox_task
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(task) = task {
            task.abort();
        }
    }
}
