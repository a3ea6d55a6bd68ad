//! One channel's state inside the core: its shared handle, keys and replay
//! guard of encrypted channels, the presence member of this client, and the
//! events held while a key is re-fetched; and opening encrypted events.

use std::sync::Arc;
use std::time::{Duration, Instant};

use hush_crypto::EncryptedData;
use hush_crypto::epoch::{EpochError, Keyring};
use hush_crypto::sealed::{self, ReplayGuard, SealedError};
use hush_protocol::ChannelName;
use serde_json::json;

use crate::client::{ChannelShared, Member};
use crate::event::{self, DecryptError, Event, SealedInfo, decode_text};

/// Events of one channel held while its key is re-fetched.
pub(super) const MAX_PENDING: usize = 256;

/// An encrypted event waiting for a re-fetched key.
pub(super) struct Pending {
    pub event: String,
    pub data: String,
    pub user_id: Option<String>,
}

/// One channel, as the core keeps it.
pub(super) struct ChannelState {
    pub shared: Arc<ChannelShared>,
    /// `#server-to-user-…`, created by sign-in (not resubscribed on reconnect).
    pub internal: bool,
    /// Encrypted channels: current and recent epoch keys.
    pub keys: Keyring,
    /// Encrypted channels: sealed-event replay and freshness checks.
    pub guard: ReplayGuard,
    pub me: Option<Member>,
    /// Events waiting for a re-fetched key.
    pub refetching: Option<Vec<Pending>>,
    /// When the key was last re-fetched, and for which event epoch.
    pub last_refetch: Option<(Instant, u64)>,
}

/// A duration in whole milliseconds, saturating.
pub(super) fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl ChannelState {
    pub(super) fn new(
        shared: Arc<ChannelShared>,
        internal: bool,
        epoch_grace: Duration,
        sealed_max_age: Duration,
    ) -> Self {
        Self {
            shared,
            internal,
            keys: Keyring::new(millis(epoch_grace)),
            guard: ReplayGuard::new(millis(sealed_max_age), sealed::DEFAULT_MAX_SENDERS),
            me: None,
            refetching: None,
            last_refetch: None,
        }
    }
}

/// Errors a re-fetched key may cure.
pub(super) fn refetchable(e: &DecryptError) -> bool {
    matches!(
        e,
        DecryptError::NoKey(_) | DecryptError::Decrypt | DecryptError::UnknownEpoch { .. }
    )
}

/// The [`event::DECRYPTION_FAILED`] event for an event that could not be opened.
pub(super) fn failure_event(channel: &str, outer: &str, error: DecryptError) -> Event {
    let mut e = Event::new(
        Some(channel),
        event::DECRYPTION_FAILED,
        json!({"event": outer, "reason": error.to_string()}),
    );
    e.failure = Some(error);
    e
}

/// Opens one event of an encrypted channel at wall-clock time `now_ms`: the
/// key is chosen by the envelope's epoch; `hush-sealed` / `client-hush-sealed`
/// events are opened as sealed events and checked for replay and freshness.
/// Returns the event, or the error and the envelope's epoch.
pub(super) fn decrypt(
    st: &mut ChannelState,
    channel: &ChannelName,
    event_name: &str,
    data: &str,
    user_id: Option<String>,
    now_ms: u64,
) -> Result<Event, (DecryptError, u64)> {
    let env = EncryptedData::from_json(data).map_err(|_| (DecryptError::Malformed, 0))?;
    let epoch = env.epoch();
    let key = st.keys.key(epoch, now_ms).map_err(|e| {
        let e = match e {
            EpochError::NoKey => DecryptError::NoKey("no key received yet".into()),
            EpochError::Newer { epoch, newest } => DecryptError::UnknownEpoch { epoch, newest },
            EpochError::Stale { epoch, newest } => DecryptError::StaleEpoch { epoch, newest },
        };
        (e, epoch)
    })?;
    let mut out = if event_name == sealed::SERVER_EVENT || event_name == sealed::CLIENT_EVENT {
        let opened =
            sealed::open(key, channel, &env).map_err(|e: SealedError| (e.into(), epoch))?;
        st.guard
            .check(&opened, now_ms)
            .map_err(|e: SealedError| (e.into(), epoch))?;
        let mut e = Event::new(
            Some(channel.as_str()),
            &opened.event,
            decode_text(&opened.data),
        );
        e.sealed = Some(SealedInfo {
            sender: opened.sender,
            seq: opened.seq,
            message_id: opened.message_id,
            timestamp_ms: opened.timestamp_ms,
            epoch: opened.epoch,
        });
        e
    } else {
        let plain = env.open(key).map_err(|_| (DecryptError::Decrypt, epoch))?;
        let text = String::from_utf8(plain).map_err(|_| (DecryptError::Malformed, epoch))?;
        Event::new(Some(channel.as_str()), event_name, decode_text(&text))
    };
    out.user_id = user_id;
    Ok(out)
}
