//! The frames of an established connection: what the server's messages
//! mean for the channels, the members, the sign-in, the requests in flight,
//! and the application's events (decrypting those of encrypted channels).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use hush_protocol::msgs::{PresenceData, RawJson, ServerMessage, names};
use hush_protocol::{ChannelKind, ChannelName};
use serde_json::{Value, json};

use super::channel::{ChannelState, MAX_PENDING, Pending, decrypt, failure_event, refetchable};
use super::{ClientCore, Output, Signin, wire};
use crate::client::{ChannelShared, Members};
use crate::error::Error;
use crate::event::{self, DecryptError, Event};

/// An event's `data`: a string's text (API events), or the raw JSON.
enum Payload {
    Text(String),
    Raw(Option<RawJson>),
}

impl Payload {
    /// As pusher-js reads it ([`wire::data_value`]).
    fn value(&self) -> Value {
        match self {
            Self::Text(t) => crate::event::decode_text(t),
            Self::Raw(r) => wire::data_value(r.as_ref()),
        }
    }

    /// As text ([`wire::data_text`]).
    fn text(self) -> String {
        match self {
            Self::Text(t) => t,
            Self::Raw(r) => wire::data_text(r.as_ref()),
        }
    }
}

impl ClientCore {
    pub(super) fn session_frame(&mut self, text: &str, now: Instant) {
        let m = match ServerMessage::decode(text) {
            Ok(m) => m,
            Err(e) => {
                if let Some((channel, data)) = wire::lenient_subscription_error(text) {
                    return self.on_subscription_error(channel.as_deref(), data);
                }
                tracing::debug!(error = %e, "hush-client: ignoring a frame the codec refuses");
                return;
            }
        };
        match m {
            ServerMessage::Ping => self.transmits.push_back(wire::pong()),
            ServerMessage::Pong
            | ServerMessage::ConnectionEstablished { .. }
            | ServerMessage::WatchlistEvents(_) => {}
            ServerMessage::Error { code, message } => {
                let d = json!({"code": code, "message": message});
                tracing::warn!(error = %d, "hush-client: pusher:error from the server");
                // The server answers a refused sign-in with pusher:error
                // (there is no signin_error frame): attribute an error that
                // arrives while a sign-in is outstanding to it.
                if self.signin == Signin::Sent {
                    self.signin = Signin::Wanted;
                    let msg = if message.is_empty() {
                        "refused by the server".to_owned()
                    } else {
                        message
                    };
                    self.outputs
                        .push_back(Output::Signin(Err(Error::Signin(msg))));
                }
                self.emit(Event::new(None, event::ERROR, d));
            }
            ServerMessage::SigninSuccess { user_data } => self.on_signin_success(&user_data),
            ServerMessage::HushResponse(r) => {
                let (id, result) = wire::response(r);
                if self.requests.remove(&id).is_some() {
                    self.outputs.push_back(Output::Response { id, result });
                }
            }
            ServerMessage::SubscriptionSucceeded { channel, presence } => {
                self.on_subscribed(&channel, presence);
            }
            ServerMessage::SubscriptionError {
                channel,
                kind,
                error,
            } => {
                let data = wire::subscription_error_data(kind, &error);
                self.on_subscription_error(Some(&channel), data);
            }
            ServerMessage::MemberAdded {
                channel,
                user_id,
                user_info,
            } => {
                let info = user_info.map_or(Value::Null, |i| wire::data_value(Some(&i)));
                self.on_member(&channel, user_id, info, true);
            }
            ServerMessage::MemberRemoved { channel, user_id } => {
                self.on_member(&channel, user_id, Value::Null, false);
            }
            ServerMessage::SubscriptionCount { channel, count } => {
                self.emit(Event::new(
                    Some(&channel),
                    event::SUBSCRIPTION_COUNT,
                    json!({"subscription_count": count}),
                ));
            }
            ServerMessage::CacheMiss { channel } => {
                let data = Payload::Text("{}".into());
                self.on_event(names::CACHE_MISS.into(), Some(channel), data, None, now);
            }
            ServerMessage::ChannelEvent {
                event,
                channel,
                data,
            } => self.on_event(event, Some(channel), Payload::Text(data), None, now),
            ServerMessage::ClientEvent {
                event,
                channel,
                data,
                user_id,
            } => self.on_event(event, Some(channel), Payload::Raw(data), user_id, now),
            ServerMessage::Other {
                event,
                channel,
                data,
            } => {
                if !event.starts_with(names::PUSHER_INTERNAL_PREFIX) {
                    self.on_event(event, channel, Payload::Raw(data), None, now);
                }
            }
            ServerMessage::HushMailbox(item) => {
                // A mailbox push (issue 18): for the E2EE layer's mailbox
                // task, as a connection-level event.
                let data = serde_json::to_value(&item).unwrap_or(Value::Null);
                self.emit(Event::new(None, names::HUSH_MAILBOX, data));
            }
            other => tracing::debug!(?other, "hush-client: ignoring a server message"),
        }
    }

    fn on_subscription_error(&mut self, channel: Option<&str>, data: Value) {
        if let Some(st) = channel
            .and_then(|c| ChannelName::parse(c).ok())
            .and_then(|c| self.channels.get(&c))
        {
            st.shared.subscribed.store(false, Ordering::Release);
        }
        self.emit(Event::new(channel, event::SUBSCRIPTION_ERROR, data));
    }

    fn on_signin_success(&mut self, user_data: &str) {
        let Ok(parsed) = hush_protocol::presence::parse_user_data(
            user_data,
            hush_protocol::limits::MAX_PRESENCE_USER_INFO_BYTES,
        ) else {
            tracing::warn!("hush-client: signin_success with invalid user_data");
            return;
        };
        let id = parsed.id;
        self.signin = Signin::SignedIn(id.clone());
        self.outputs.push_back(Output::Signin(Ok(id.clone())));
        self.emit(Event::new(
            None,
            event::SIGNIN_SUCCESS,
            json!({"user_data": user_data}),
        ));
        let name = ChannelName::server_to_user(&id);
        if !self.channels.contains_key(&name) {
            let shared = Arc::new(ChannelShared {
                name: name.clone(),
                subscribed: false.into(),
                members: std::sync::Mutex::new(None),
            });
            let st = ChannelState::new(
                shared,
                true,
                self.config.epoch_grace,
                self.config.sealed_max_age,
            );
            self.channels.insert(name.clone(), st);
            self.transmits
                .push_back(wire::subscribe(name.as_str(), "", None));
        }
    }

    fn on_subscribed(&mut self, channel: &str, presence: Option<PresenceData>) {
        let Ok(name) = ChannelName::parse(channel) else {
            return;
        };
        let Some(st) = self.channels.get(&name) else {
            return;
        };
        st.shared.subscribed.store(true, Ordering::Release);
        let data = if name.kind() == ChannelKind::Presence {
            let members: std::collections::BTreeMap<String, Value> = presence
                .map(|p| {
                    p.hash
                        .iter()
                        .map(|(k, v)| (k.clone(), wire::data_value(Some(v))))
                        .collect()
                })
                .unwrap_or_default();
            let m = Members {
                me: st.me.clone(),
                members,
            };
            let data = json!({"count": m.count(), "members": m.members, "me": m.me});
            st.shared.set_members(Some(m));
            data
        } else {
            json!({})
        };
        self.emit(Event::new(
            Some(name.as_str()),
            event::SUBSCRIPTION_SUCCEEDED,
            data,
        ));
    }

    /// A member added (with its `user_info`) or removed.
    fn on_member(&mut self, channel: &str, id: String, mut info: Value, added: bool) {
        let Ok(name) = ChannelName::parse(channel) else {
            return;
        };
        let Some(st) = self.channels.get(&name) else {
            return;
        };
        st.shared.update_members(|m| {
            if added {
                m.members.insert(id.clone(), info.clone());
            } else if let Some(old) = m.members.remove(&id) {
                info = old;
            }
        });
        let name_ev = if added {
            event::MEMBER_ADDED
        } else {
            event::MEMBER_REMOVED
        };
        self.emit(Event::new(
            Some(name.as_str()),
            name_ev,
            json!({"id": id, "info": info}),
        ));
    }

    /// An application event (or a `pusher:` event other than those above).
    fn on_event(
        &mut self,
        event_name: String,
        channel: Option<String>,
        data: Payload,
        user_id: Option<String>,
        now: Instant,
    ) {
        let Some(ch) = channel else {
            let mut e = Event::new(None, &event_name, data.value());
            e.user_id = user_id;
            return self.emit(e);
        };
        let Ok(name) = ChannelName::parse(&ch) else {
            return;
        };
        if !self.channels.contains_key(&name) {
            return;
        }
        if name.kind() == ChannelKind::Encrypted && !event_name.starts_with(names::PUSHER_PREFIX) {
            return self.on_encrypted(&name, event_name, data.text(), user_id, now);
        }
        let mut e = Event::new(Some(&ch), &event_name, data.value());
        e.user_id = user_id;
        self.emit(e);
    }

    /// Encrypted channels: open with the key of the envelope's epoch; on a
    /// failure a new key may cure (wrong key, newer epoch), re-fetch the key
    /// once — at most every `refetch_interval`, unless the event names a newer
    /// epoch than the last re-fetch — and retry; otherwise report.
    fn on_encrypted(
        &mut self,
        name: &ChannelName,
        event_name: String,
        data: String,
        user_id: Option<String>,
        now: Instant,
    ) {
        let can_auth = self.config.has_authorizer && self.socket_id().is_some();
        let interval = self.config.refetch_interval;
        let now_ms = self.now_ms(now);
        let Some(st) = self.channels.get_mut(name) else {
            return;
        };
        if let Some(pending) = st.refetching.as_mut() {
            if pending.len() < MAX_PENDING {
                pending.push(Pending {
                    event: event_name,
                    data,
                    user_id,
                });
            } else {
                let e = failure_event(
                    name.as_str(),
                    &event_name,
                    DecryptError::NoKey("too many events waiting for the key".into()),
                );
                self.emit(e);
            }
            return;
        }
        let out = match decrypt(st, name, &event_name, &data, user_id.clone(), now_ms) {
            Ok(e) => e,
            Err((err, epoch)) => {
                // A rotation (the epoch right after the newest key held)
                // may re-fetch at once; anything else waits for the
                // interval. The epoch is the sender's claim: a member
                // counting epochs upwards must not turn every event into
                // a call to the app's authorizer.
                let next_epoch = st.keys.newest().map_or(0, |n| n.saturating_add(1));
                let allowed = st.last_refetch.is_none_or(|(t, e)| {
                    now.saturating_duration_since(t) >= interval
                        || (epoch == next_epoch && epoch > e)
                });
                if can_auth && allowed && refetchable(&err) {
                    st.last_refetch = Some((now, epoch));
                    st.refetching = Some(vec![Pending {
                        event: event_name,
                        data,
                        user_id,
                    }]);
                    return self.request_channel_auth(name.clone(), true, now);
                }
                failure_event(name.as_str(), &event_name, err)
            }
        };
        self.emit(out);
    }
}
