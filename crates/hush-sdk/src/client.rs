//! The client: HTTP API calls, authorizations, webhook verification.

use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use hush_crypto::epoch::epoch_key;
use hush_crypto::sealed::{SERVER_EVENT, SealedError, Sender};
use hush_protocol::api::{QueryParams, signed_query};
use hush_protocol::msgs::hush as wire;
use hush_protocol::{ChannelKind, ChannelName};
use hyper::Method;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::auth::{self, AuthError, ChannelAuth, PresenceData, UserAuth, UserData};
use crate::config::{Config, ConfigError};
use crate::directory::{Audit, DirectoryLookup, LogHead, MAX_AUDIT_EPOCHS, MAX_LOOKUP_USERS};
use crate::error::{Error, ValidationError, shown};
use crate::http::Transport;
use crate::payload::{
    Attribute, BatchEvent, ChannelsQuery, Data, Sealing, TriggerOptions, batch_body, event_body,
    info_list, parse_channel, parse_user_id,
};
use crate::responses::{
    BatchResponse, ChannelInfo, ChannelsList, PresenceUser, TriggerResponse, UsersBody,
};
use crate::webhook::{self, Webhook, WebhookError};

/// Query keys the SDK sets itself.
const RESERVED: [&str; 5] = [
    "auth_key",
    "auth_timestamp",
    "auth_version",
    "auth_signature",
    "body_md5",
];

/// A hush / Pusher Channels server client for one app. Cheap to clone (the
/// connection pool is shared).
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    config: Config,
    base: String,
    http: Transport,
    /// Sender id and sequence numbers of this client's sealed events.
    sealer: Mutex<Sender>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Client {
    /// Checks the configuration and builds the client (no connection is made
    /// until the first call).
    pub fn new(config: Config) -> Result<Self, ConfigError> {
        config.check()?;
        let http = Transport::new(config.scheme, config.timeout)?;
        Ok(Self {
            inner: Arc::new(Inner {
                base: config.base_url(),
                config,
                http,
                sealer: Mutex::new(Sender::new()),
            }),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// `GET {scheme://host:port}{path}` without a signature, for the
    /// server's `/up` and `/ready` probes: the status code and the body.
    pub async fn probe(&self, path: &str) -> Result<(u16, String), Error> {
        let url = format!("{}{path}", self.inner.base);
        let r = self.inner.http.send(Method::GET, &url, None).await?;
        Ok((r.status, String::from_utf8_lossy(&r.body).into_owned()))
    }

    /// Triggers `event` on up to 100 channels with `data` serialized to JSON
    /// (see the crate docs for how strings are treated). An event to a
    /// `private-encrypted-` channel must name that channel alone and is sealed
    /// with the master key.
    pub async fn trigger<C: AsRef<str>, T: Serialize + ?Sized>(
        &self,
        channels: &[C],
        event: &str,
        data: &T,
        options: &TriggerOptions,
    ) -> Result<TriggerResponse, Error> {
        let data = Data::json(data)?;
        self.trigger_data(channels, event, &data, options).await
    }

    /// Like [`Client::trigger`], but `data` is sent as is — or, on an
    /// encrypted channel, sealed byte for byte (no JSON quoting; PHP's
    /// `already_encoded`).
    pub async fn trigger_raw<C: AsRef<str>>(
        &self,
        channels: &[C],
        event: &str,
        data: &str,
        options: &TriggerOptions,
    ) -> Result<TriggerResponse, Error> {
        let data = Data::Raw(data.to_owned());
        self.trigger_data(channels, event, &data, options).await
    }

    async fn trigger_data<C: AsRef<str>>(
        &self,
        channels: &[C],
        event: &str,
        data: &Data,
        options: &TriggerOptions,
    ) -> Result<TriggerResponse, Error> {
        let channels = channels
            .iter()
            .map(|c| parse_channel(c.as_ref()))
            .collect::<Result<Vec<_>, _>>()?;
        let body = event_body(&channels, event, data, options, self.sealing())?;
        self.post("/events", &body).await
    }

    /// Triggers a **sealed** event (hush extension, docs/E2EE-CHANNELS.md §2)
    /// on one `private-encrypted-` channel: the real `event` name and `data`
    /// travel inside the ciphertext with this backend's sender id, a sequence
    /// number, a message id and a timestamp, padded to a size bucket, under
    /// the outer event name `hush-sealed`. hush-client receivers check
    /// freshness and replays; pusher-js receivers see an opaque event.
    pub async fn trigger_sealed(
        &self,
        channel: &str,
        event: &str,
        data: &str,
        options: &TriggerOptions,
    ) -> Result<TriggerResponse, Error> {
        let name = parse_channel(channel)?;
        if name.kind() != ChannelKind::Encrypted {
            return Err(ValidationError::NotEncrypted(shown(channel)).into());
        }
        let sealing = self
            .sealing()
            .ok_or_else(|| ValidationError::MasterKeyRequired(name.to_string()))?;
        let key = epoch_key(&name, sealing.master, sealing.epoch);
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        let wire = {
            // A poisoned lock only means another trigger panicked mid-seal;
            // the sequence counter inside is still consistent.
            let mut sender = self
                .inner
                .sealer
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            sender.seal(&key, &name, sealing.epoch, event, data, now_ms)
        }
        .map_err(|e| match e {
            SealedError::TooLarge { len } => ValidationError::DataTooLarge {
                size: len,
                max: hush_crypto::sealed::MAX_PLAINTEXT,
            },
            _ => ValidationError::Json(e.to_string()),
        })?;
        let body = event_body(
            &[name],
            SERVER_EVENT,
            &Data::Sealed(wire),
            options,
            Some(sealing),
        )?;
        self.post("/events", &body).await
    }

    /// This backend's sealed-event sender id (what receivers see as the
    /// sender of [`Client::trigger_sealed`] events).
    pub fn sealed_sender_id(&self) -> String {
        self.inner
            .sealer
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .id()
            .to_owned()
    }

    /// Triggers 1 to 10 events in one request. Each event to an encrypted
    /// channel is sealed with that channel's key.
    pub async fn trigger_batch(&self, events: &[BatchEvent]) -> Result<BatchResponse, Error> {
        let body = batch_body(events, self.sealing())?;
        self.post("/batch_events", &body).await
    }

    /// Sends an event to every connection signed in as `user_id`
    /// (`#server-to-user-{user_id}`).
    pub async fn send_to_user<T: Serialize + ?Sized>(
        &self,
        user_id: &str,
        event: &str,
        data: &T,
    ) -> Result<TriggerResponse, Error> {
        let user = parse_user_id(user_id)?;
        let body = event_body(
            &[ChannelName::server_to_user(&user)],
            event,
            &Data::json(data)?,
            &TriggerOptions::default(),
            None,
        )?;
        self.post("/events", &body).await
    }

    /// Closes every connection signed in as `user_id`.
    pub async fn terminate_user_connections(&self, user_id: &str) -> Result<(), Error> {
        let user = parse_user_id(user_id)?;
        let _: serde_json::Value = self
            .post(
                &format!("/users/{user}/terminate_connections"),
                &serde_json::json!({}),
            )
            .await?;
        Ok(())
    }

    /// Lists occupied channels.
    pub async fn channels(&self, query: &ChannelsQuery) -> Result<ChannelsList, Error> {
        let mut params = Vec::new();
        if let Some(prefix) = &query.filter_by_prefix {
            params.push(("filter_by_prefix", prefix.clone()));
        }
        if let Some(info) = info_list(&query.info) {
            params.push(("info", info));
        }
        self.get("/channels", params).await
    }

    /// What the server knows about one channel (`occupied`, plus the
    /// attributes asked for).
    pub async fn channel(&self, name: &str, info: &[Attribute]) -> Result<ChannelInfo, Error> {
        let channel = parse_channel(name)?;
        let params = info_list(info)
            .map(|i| vec![("info", i)])
            .unwrap_or_default();
        self.get(&format!("/channels/{channel}"), params).await
    }

    /// The users in a presence channel.
    pub async fn channel_users(&self, name: &str) -> Result<Vec<PresenceUser>, Error> {
        let channel = parse_channel(name)?;
        if !channel.kind().is_presence() {
            return Err(ValidationError::NotPresence(shown(name)).into());
        }
        let body: UsersBody = self
            .get(&format!("/channels/{channel}/users"), Vec::new())
            .await?;
        Ok(body.users)
    }

    /// Looks up users in the app's key directory (hush extension,
    /// docs/PROTOCOL-EXT.md §3): each user's lookup proof (which carries the
    /// user's whole current entry: identity key, active cards, newest
    /// revocations) at the signed epoch head returned. Check the answer with
    /// [`DirectoryLookup::verify`] under the pinned keys.
    pub async fn directory_users<S: AsRef<str>>(
        &self,
        ids: &[S],
    ) -> Result<DirectoryLookup, Error> {
        if ids.is_empty() || ids.len() > MAX_LOOKUP_USERS {
            return Err(ValidationError::LookupSize {
                count: ids.len(),
                max: MAX_LOOKUP_USERS,
            }
            .into());
        }
        let ids = ids
            .iter()
            .map(|id| {
                let id = parse_user_id(id.as_ref())?;
                if id.as_str().contains(',') {
                    return Err(ValidationError::UserIdWithComma(shown(id.as_str())));
                }
                Ok(id.as_str().to_owned())
            })
            .collect::<Result<Vec<_>, _>>()?;
        let body: wire::Lookup = self
            .get("/directory/users", vec![("ids", ids.join(","))])
            .await?;
        DirectoryLookup::from_wire(&body)
    }

    /// The current signed epoch head of the app's directory and the keys
    /// clients pin: the head-signing key and the VRF key (hush extension).
    /// The head's signature is not checked here: pin the keys and use
    /// [`hush_crypto::transparency::LogMonitor`].
    pub async fn directory_log_head(&self) -> Result<LogHead, Error> {
        let body: wire::LogHead = self.get("/directory/log/head", Vec::new()).await?;
        LogHead::from_wire(&body)
    }

    /// The head of a past `epoch`, signed with the time that epoch was
    /// published (hush extension; 404 for an epoch the server has not
    /// published).
    pub async fn directory_log_head_at(&self, epoch: u64) -> Result<LogHead, Error> {
        let params = vec![("epoch", epoch.to_string())];
        let body: wire::LogHead = self.get("/directory/log/head", params).await?;
        LogHead::from_wire(&body)
    }

    /// The signed heads of epochs `from..=to` and akd's append-only proof
    /// between them (hush extension; `1 <= from < to <= from +
    /// `[`MAX_AUDIT_EPOCHS`]). Nothing in the answer is checked here: an
    /// auditor verifies it (`hush audit`).
    pub async fn directory_log_audit(&self, from: u64, to: u64) -> Result<Audit, Error> {
        if from == 0 || to <= from || to - from > MAX_AUDIT_EPOCHS {
            return Err(ValidationError::LogRange(format!(
                "need 1 <= from < to <= from + {MAX_AUDIT_EPOCHS}, got {from}..={to}"
            ))
            .into());
        }
        let params = vec![("from", from.to_string()), ("to", to.to_string())];
        let body: wire::Audit = self.get("/directory/log/audit", params).await?;
        Audit::from_wire(&body)
    }

    /// Signs `socket_id` for `channel`: the body the app's auth endpoint
    /// returns. Presence channels take the member's data; encrypted channels
    /// get `shared_secret`. Refuses any socket id or channel name that does not
    /// parse strictly, so `1.1:private-other` can never be signed.
    pub fn authorize_channel(
        &self,
        socket_id: &str,
        channel: &str,
        presence: Option<&PresenceData>,
    ) -> Result<ChannelAuth, AuthError> {
        auth::authorize_channel(&self.inner.config, socket_id, channel, presence)
    }

    /// Signs a user sign-in: the body the app's user authentication endpoint
    /// returns.
    pub fn authenticate_user(
        &self,
        socket_id: &str,
        user: &UserData,
    ) -> Result<UserAuth, AuthError> {
        auth::authenticate_user(&self.inner.config, socket_id, user)
    }

    /// Verifies a webhook (`X-Pusher-Key`, `X-Pusher-Signature`, raw body)
    /// against this app's key and secret and parses its events.
    pub fn verify_webhook(
        &self,
        key_header: &str,
        signature_header: &str,
        body: &[u8],
    ) -> Result<Webhook, WebhookError> {
        let c = &self.inner.config;
        webhook::verify(
            &c.key,
            c.secret.as_bytes(),
            key_header,
            signature_header,
            body,
        )
    }

    /// The signed query string for a request to `path` (the full path, e.g.
    /// `/apps/3/events`) at `timestamp` — what every call sends. Exposed for
    /// tests and for requests this SDK has no method for.
    pub fn signed_query(
        &self,
        method: &str,
        path: &str,
        params: &[(&str, &str)],
        body: &[u8],
        timestamp: u64,
    ) -> Result<String, ValidationError> {
        if let Some((k, _)) = params
            .iter()
            .find(|(k, _)| RESERVED.contains(&k.to_ascii_lowercase().as_str()))
        {
            return Err(ValidationError::ReservedParam(shown(k)));
        }
        let c = &self.inner.config;
        Ok(signed_query(
            &c.key,
            c.secret.as_bytes(),
            method,
            path,
            QueryParams::from_pairs(params.iter().copied()),
            body,
            timestamp,
        ))
    }

    /// The master key and the epoch in force, if encryption is configured.
    fn sealing(&self) -> Option<Sealing<'_>> {
        let config = &self.inner.config;
        config.encryption_master_key.as_ref().map(|master| Sealing {
            master,
            epoch: config.current_epoch(),
        })
    }

    async fn post<B: Serialize, R: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<R, Error> {
        let body = serde_json::to_vec(body).map_err(|e| ValidationError::Json(e.to_string()))?;
        self.call(Method::POST, path, Vec::new(), Some(body)).await
    }

    async fn get<R: DeserializeOwned>(
        &self,
        path: &str,
        params: Vec<(&str, String)>,
    ) -> Result<R, Error> {
        self.call(Method::GET, path, params, None).await
    }

    async fn call<R: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        params: Vec<(&str, String)>,
        body: Option<Vec<u8>>,
    ) -> Result<R, Error> {
        let path = format!("/apps/{}{path}", self.inner.config.app_id);
        let pairs: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let query = self.signed_query(
            method.as_str(),
            &path,
            &pairs,
            body.as_deref().unwrap_or_default(),
            now_secs(),
        )?;
        let url = format!("{}{path}?{query}", self.inner.base);
        let res = self.inner.http.send(method, &url, body).await?;
        if !(200..300).contains(&res.status) {
            return Err(Error::from_response(res.status, &res.body));
        }
        serde_json::from_slice(&res.body).map_err(|e| Error::Decode(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client() -> Client {
        Client::new(Config::new(
            "3",
            "278d425bdf160c739803",
            "7ad3773142a6692b25b8",
        ))
        .unwrap()
    }

    #[test]
    fn kat_signed_queries_17e() {
        let c = client();
        let body = br#"{"name":"foo","channels":["project-3"],"data":"{\"some\":\"data\"}"}"#;
        let q = c
            .signed_query("POST", "/apps/3/events", &[], body, 1353088179)
            .unwrap();
        assert!(
            q.ends_with(
                "auth_signature=da454824c97ba181a32ccc17a72625ba02771f50b50e1e7430e47a1f3f457e6c"
            ),
            "{q}"
        );
        let q = c
            .signed_query(
                "GET",
                "/apps/3/channels",
                &[("filter_by_prefix", "presence-"), ("info", "user_count")],
                b"",
                1353088179,
            )
            .unwrap();
        assert!(
            q.ends_with(
                "auth_signature=16819168891cb5dfd72b5c7a5d3d602605b26c6ba1930033b5e2eeeb65010291"
            ),
            "{q}"
        );
        let q = c
            .signed_query(
                "GET",
                "/apps/3/channels/presence-foobar",
                &[("info", "user_count,subscription_count")],
                b"",
                1353088179,
            )
            .unwrap();
        assert!(q.contains("info=user_count%2Csubscription_count"), "{q}");
        assert!(
            q.ends_with(
                "auth_signature=377ee9260ea002a70c0d40cd887d55cb36db9f7f821297f5efacbcce66be356d"
            ),
            "{q}"
        );
        let q = c
            .signed_query(
                "POST",
                "/apps/3/users/12345/terminate_connections",
                &[],
                b"{}",
                1353088179,
            )
            .unwrap();
        assert!(
            q.ends_with(
                "auth_signature=01fa634edeb0cae84115307cad5c23f65a46cd286461b1c89637a3b5871a8f0e"
            ),
            "{q}"
        );
    }

    #[test]
    fn reserved_params_are_refused() {
        for k in ["auth_key", "AUTH_SIGNATURE", "body_md5"] {
            assert!(matches!(
                client().signed_query("GET", "/apps/3/channels", &[(k, "x")], b"", 1),
                Err(ValidationError::ReservedParam(_))
            ));
        }
    }

    #[test]
    fn https_without_tls_feature_is_refused() {
        let mut c = Config::new("3", "k", "s");
        c.scheme = crate::Scheme::Https;
        let r = Client::new(c);
        if cfg!(feature = "tls") {
            assert!(r.is_ok());
        } else {
            assert!(matches!(r, Err(ConfigError::TlsNotEnabled)));
        }
    }

    #[test]
    fn debug_hides_the_secret() {
        assert!(!format!("{:?}", client()).contains("7ad3773142a6692b25b8"));
    }
}
