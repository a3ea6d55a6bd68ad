//! `hush:request` / `hush:response` (docs/PROTOCOL-EXT.md §1, §2): the
//! frames ([`RequestFrame`], [`ResponseFrame`]), the methods ([`Method`]) and
//! their typed parameters ([`HushRequest`]) and results ([`HushResponse`]).
//!
//! Results serialize with their fields in alphabetical order, the order
//! hush has always sent them in.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::json::{RawJson, push_json_str};

/// Longest `hush:request` id.
pub const MAX_REQUEST_ID_LEN: usize = 64;

/// The method names.
pub mod method {
    /// `directory.publish`.
    pub const DIRECTORY_PUBLISH: &str = "directory.publish";
    /// `directory.revoke`.
    pub const DIRECTORY_REVOKE: &str = "directory.revoke";
    /// `directory.lookup`.
    pub const DIRECTORY_LOOKUP: &str = "directory.lookup";
    /// `directory.history`.
    pub const DIRECTORY_HISTORY: &str = "directory.history";
    /// `log.head`.
    pub const LOG_HEAD: &str = "log.head";
    /// `log.audit`.
    pub const LOG_AUDIT: &str = "log.audit";
    /// `device.challenge`.
    pub const DEVICE_CHALLENGE: &str = "device.challenge";
    /// `device.auth`.
    pub const DEVICE_AUTH: &str = "device.auth";
    /// `mailbox.send`.
    pub const MAILBOX_SEND: &str = "mailbox.send";
    /// `mailbox.fetch`.
    pub const MAILBOX_FETCH: &str = "mailbox.fetch";
    /// `mailbox.ack`.
    pub const MAILBOX_ACK: &str = "mailbox.ack";
    /// `mailbox.status`.
    pub const MAILBOX_STATUS: &str = "mailbox.status";
}

/// A `hush:request` as it travels: the method by name and the parameters as
/// raw JSON; [`RequestFrame::method`] and [`HushRequest::from_params`] read
/// them.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct RequestFrame {
    /// Chosen by the client (1–64 printable ASCII characters), echoed back.
    pub id: String,
    /// The method name.
    pub method: String,
    /// The parameters (an object), if any.
    #[serde(default)]
    pub params: Option<RawJson>,
}

impl RequestFrame {
    /// The frame for a typed request.
    pub fn new(id: impl Into<String>, request: &HushRequest) -> Self {
        Self {
            id: id.into(),
            method: request.method().name().to_owned(),
            params: Some(request.params()),
        }
    }

    /// True if the id is 1–64 printable ASCII characters.
    pub fn id_is_valid(&self) -> bool {
        !self.id.is_empty()
            && self.id.len() <= MAX_REQUEST_ID_LEN
            && self.id.bytes().all(|b| b.is_ascii_graphic() || b == b' ')
    }

    /// The method, if this build knows it.
    pub fn known_method(&self) -> Option<Method> {
        Method::from_name(&self.method)
    }

    /// The parameters as an object (absent means `{}`).
    pub fn params_object(&self) -> Result<Map<String, Value>, ParamsError> {
        match self.params.as_ref().map(|p| serde_json::from_str(p.get())) {
            None => Ok(Map::new()),
            Some(Ok(Value::Object(m))) => Ok(m),
            Some(_) => Err(ParamsError("params must be an object".into())),
        }
    }

    /// Appends the frame's `data` object.
    pub(crate) fn push_data(&self, o: &mut String) {
        o.push_str("{\"id\":");
        push_json_str(o, &self.id);
        o.push_str(",\"method\":");
        push_json_str(o, &self.method);
        if let Some(p) = &self.params {
            o.push_str(",\"params\":");
            o.push_str(p.get());
        }
        o.push('}');
    }
}

/// A `hush:` method this build knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Method {
    /// `directory.publish`.
    DirectoryPublish,
    /// `directory.revoke`.
    DirectoryRevoke,
    /// `directory.lookup`.
    DirectoryLookup,
    /// `directory.history`.
    DirectoryHistory,
    /// `log.head`.
    LogHead,
    /// `log.audit`.
    LogAudit,
    /// `device.challenge`.
    DeviceChallenge,
    /// `device.auth`.
    DeviceAuth,
    /// `mailbox.send`.
    MailboxSend,
    /// `mailbox.fetch`.
    MailboxFetch,
    /// `mailbox.ack`.
    MailboxAck,
    /// `mailbox.status`.
    MailboxStatus,
}

impl Method {
    /// Every method.
    pub const ALL: [Method; 12] = [
        Self::DirectoryPublish,
        Self::DirectoryRevoke,
        Self::DirectoryLookup,
        Self::DirectoryHistory,
        Self::LogHead,
        Self::LogAudit,
        Self::DeviceChallenge,
        Self::DeviceAuth,
        Self::MailboxSend,
        Self::MailboxFetch,
        Self::MailboxAck,
        Self::MailboxStatus,
    ];

    /// The wire name.
    pub fn name(self) -> &'static str {
        match self {
            Self::DirectoryPublish => method::DIRECTORY_PUBLISH,
            Self::DirectoryRevoke => method::DIRECTORY_REVOKE,
            Self::DirectoryLookup => method::DIRECTORY_LOOKUP,
            Self::DirectoryHistory => method::DIRECTORY_HISTORY,
            Self::LogHead => method::LOG_HEAD,
            Self::LogAudit => method::LOG_AUDIT,
            Self::DeviceChallenge => method::DEVICE_CHALLENGE,
            Self::DeviceAuth => method::DEVICE_AUTH,
            Self::MailboxSend => method::MAILBOX_SEND,
            Self::MailboxFetch => method::MAILBOX_FETCH,
            Self::MailboxAck => method::MAILBOX_ACK,
            Self::MailboxStatus => method::MAILBOX_STATUS,
        }
    }

    /// The method of a wire name.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.name() == name)
    }

    /// True for methods that write to the directory.
    pub fn writes(self) -> bool {
        matches!(self, Self::DirectoryPublish | Self::DirectoryRevoke)
    }

    /// True for the device and mailbox methods (answered by the mailbox,
    /// not the key directory).
    pub fn is_mailbox(self) -> bool {
        matches!(
            self,
            Self::DeviceChallenge
                | Self::DeviceAuth
                | Self::MailboxSend
                | Self::MailboxFetch
                | Self::MailboxAck
                | Self::MailboxStatus
        )
    }

    /// True for methods whose effect must not be lost when the connection
    /// ends while they run (directory writes, and mailbox sends and
    /// acknowledgements, which commit to the store).
    pub fn commits(self) -> bool {
        self.writes() || matches!(self, Self::MailboxSend | Self::MailboxAck)
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Parameters that do not fit the method (answered `bad_request`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ParamsError(pub String);

/// A request with typed parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum HushRequest {
    /// `directory.publish`: a device card (standard base64).
    DirectoryPublish {
        /// The card.
        card: String,
    },
    /// `directory.revoke`: a revocation record (standard base64).
    DirectoryRevoke {
        /// The revocation.
        revocation: String,
    },
    /// `directory.lookup`.
    DirectoryLookup {
        /// User ids (1–50, checked by the server).
        users: Vec<String>,
    },
    /// `directory.history`: the signed-in user's own most recent entries.
    DirectoryHistory {
        /// How many versions (1–64; 1 when absent).
        versions: Option<u64>,
    },
    /// `log.head`: the current head, or the head of a past `epoch` (signed
    /// with the time that epoch was published).
    LogHead {
        /// A past epoch (the current one when absent).
        epoch: Option<u64>,
    },
    /// `log.audit`: the append-only proof from epoch `from` to epoch `to`.
    LogAudit {
        /// First epoch (at least 1).
        from: u64,
        /// Last epoch (after `from`, at most 16 epochs later).
        to: u64,
    },
    /// `device.challenge`: a fresh nonce for `device.auth` on this
    /// connection.
    DeviceChallenge,
    /// `device.auth`: this connection is device `device` of the signed-in
    /// user (proof: the device's signature over the challenge, see
    /// `hush_crypto::device_auth`).
    DeviceAuth {
        /// The device id (32 lowercase hex digits).
        device: String,
        /// The Ed25519 signature (standard base64).
        signature: String,
    },
    /// `mailbox.send`: a suite 1 envelope for every device it lists of
    /// `users` (and of the sender's own other devices).
    MailboxSend {
        /// The recipient users (1–50).
        users: Vec<String>,
        /// The envelope (the suite 1 `data` string, standard base64).
        envelope: String,
    },
    /// `mailbox.fetch`: this device's queued messages after `after`, oldest
    /// first.
    MailboxFetch {
        /// Only messages with an id above this (0 when absent).
        after: Option<u64>,
        /// At most this many (1–100; 100 when absent).
        limit: Option<u64>,
    },
    /// `mailbox.ack`: this device has processed these messages; the server
    /// deletes them for it.
    MailboxAck {
        /// Mailbox ids (1–256).
        ids: Vec<u64>,
    },
    /// `mailbox.status`: which recipient devices still have a message the
    /// signed-in user sent queued.
    MailboxStatus {
        /// The envelope's message id (32 lowercase hex digits).
        message: String,
    },
}

fn param_str(params: &Map<String, Value>, name: &str) -> Result<String, ParamsError> {
    params
        .get(name)
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| ParamsError(format!("params.{name} must be a string")))
}

fn param_strs(params: &Map<String, Value>, name: &str) -> Result<Vec<String>, ParamsError> {
    params
        .get(name)
        .and_then(Value::as_array)
        .ok_or_else(|| ParamsError(format!("params.{name} must be a list")))?
        .iter()
        .map(|u| {
            u.as_str()
                .map(str::to_owned)
                .ok_or_else(|| ParamsError(format!("params.{name} must hold strings")))
        })
        .collect()
}

fn push_str_list(o: &mut String, items: &[String]) {
    o.push('[');
    for (i, u) in items.iter().enumerate() {
        if i > 0 {
            o.push(',');
        }
        push_json_str(o, u);
    }
    o.push(']');
}

fn param_u64(params: &Map<String, Value>, name: &str) -> Result<Option<u64>, ParamsError> {
    match params.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_u64()
            .map(Some)
            .ok_or_else(|| ParamsError(format!("params.{name} must be a non-negative integer"))),
    }
}

fn push_u64_field(o: &mut String, name: &str, v: Option<u64>) {
    if let Some(v) = v {
        if o.len() > 1 {
            o.push(',');
        }
        o.push('"');
        o.push_str(name);
        o.push_str("\":");
        o.push_str(&v.to_string());
    }
}

impl HushRequest {
    /// The method.
    pub fn method(&self) -> Method {
        match self {
            Self::DirectoryPublish { .. } => Method::DirectoryPublish,
            Self::DirectoryRevoke { .. } => Method::DirectoryRevoke,
            Self::DirectoryLookup { .. } => Method::DirectoryLookup,
            Self::DirectoryHistory { .. } => Method::DirectoryHistory,
            Self::LogHead { .. } => Method::LogHead,
            Self::LogAudit { .. } => Method::LogAudit,
            Self::DeviceChallenge => Method::DeviceChallenge,
            Self::DeviceAuth { .. } => Method::DeviceAuth,
            Self::MailboxSend { .. } => Method::MailboxSend,
            Self::MailboxFetch { .. } => Method::MailboxFetch,
            Self::MailboxAck { .. } => Method::MailboxAck,
            Self::MailboxStatus { .. } => Method::MailboxStatus,
        }
    }

    /// Reads the parameters of `method` (the server's rules: absent and
    /// `null` numbers are "not given").
    pub fn from_params(method: Method, params: &Map<String, Value>) -> Result<Self, ParamsError> {
        Ok(match method {
            Method::DirectoryPublish => Self::DirectoryPublish {
                card: param_str(params, "card")?,
            },
            Method::DirectoryRevoke => Self::DirectoryRevoke {
                revocation: param_str(params, "revocation")?,
            },
            Method::DirectoryLookup => Self::DirectoryLookup {
                users: param_strs(params, "users")?,
            },
            Method::DirectoryHistory => Self::DirectoryHistory {
                versions: param_u64(params, "versions")?,
            },
            Method::LogHead => Self::LogHead {
                epoch: param_u64(params, "epoch")?,
            },
            Method::LogAudit => Self::LogAudit {
                from: param_u64(params, "from")?
                    .ok_or_else(|| ParamsError("params.from is required".into()))?,
                to: param_u64(params, "to")?
                    .ok_or_else(|| ParamsError("params.to is required".into()))?,
            },
            Method::DeviceChallenge => Self::DeviceChallenge,
            Method::DeviceAuth => Self::DeviceAuth {
                device: param_str(params, "device")?,
                signature: param_str(params, "signature")?,
            },
            Method::MailboxSend => Self::MailboxSend {
                users: param_strs(params, "users")?,
                envelope: param_str(params, "envelope")?,
            },
            Method::MailboxFetch => Self::MailboxFetch {
                after: param_u64(params, "after")?,
                limit: param_u64(params, "limit")?,
            },
            Method::MailboxAck => Self::MailboxAck {
                ids: params
                    .get("ids")
                    .and_then(Value::as_array)
                    .ok_or_else(|| ParamsError("params.ids must be a list".into()))?
                    .iter()
                    .map(|v| {
                        v.as_u64().ok_or_else(|| {
                            ParamsError("params.ids must hold non-negative integers".into())
                        })
                    })
                    .collect::<Result<_, _>>()?,
            },
            Method::MailboxStatus => Self::MailboxStatus {
                message: param_str(params, "message")?,
            },
        })
    }

    /// Reads a frame: parameters that are not an object or do not fit are
    /// `bad_request`, an unknown method `unknown_method`.
    pub fn from_frame(frame: &RequestFrame) -> Result<Self, HushError> {
        let bad = |e: ParamsError| HushError {
            code: ErrorCode::BadRequest,
            message: e.0,
        };
        let params = frame.params_object().map_err(bad)?;
        let method = frame.known_method().ok_or_else(|| HushError {
            code: ErrorCode::UnknownMethod,
            message: format!(
                "unknown method {:?}",
                frame.method.chars().take(64).collect::<String>()
            ),
        })?;
        Self::from_params(method, &params).map_err(bad)
    }

    /// The parameters object (keys in alphabetical order).
    pub fn params(&self) -> RawJson {
        let mut o = String::from("{");
        match self {
            Self::DirectoryPublish { card } => {
                o.push_str("\"card\":");
                push_json_str(&mut o, card);
            }
            Self::DirectoryRevoke { revocation } => {
                o.push_str("\"revocation\":");
                push_json_str(&mut o, revocation);
            }
            Self::DirectoryLookup { users } => {
                o.push_str("\"users\":");
                push_str_list(&mut o, users);
            }
            Self::DirectoryHistory { versions } => {
                push_u64_field(&mut o, "versions", *versions);
            }
            Self::LogHead { epoch } => {
                push_u64_field(&mut o, "epoch", *epoch);
            }
            Self::LogAudit { from, to } => {
                push_u64_field(&mut o, "from", Some(*from));
                push_u64_field(&mut o, "to", Some(*to));
            }
            Self::DeviceChallenge => {}
            Self::DeviceAuth { device, signature } => {
                o.push_str("\"device\":");
                push_json_str(&mut o, device);
                o.push_str(",\"signature\":");
                push_json_str(&mut o, signature);
            }
            Self::MailboxSend { users, envelope } => {
                o.push_str("\"envelope\":");
                push_json_str(&mut o, envelope);
                o.push_str(",\"users\":");
                push_str_list(&mut o, users);
            }
            Self::MailboxFetch { after, limit } => {
                push_u64_field(&mut o, "after", *after);
                push_u64_field(&mut o, "limit", *limit);
            }
            Self::MailboxAck { ids } => {
                o.push_str("\"ids\":[");
                for (i, id) in ids.iter().enumerate() {
                    if i > 0 {
                        o.push(',');
                    }
                    o.push_str(&id.to_string());
                }
                o.push(']');
            }
            Self::MailboxStatus { message } => {
                o.push_str("\"message\":");
                push_json_str(&mut o, message);
            }
        }
        o.push('}');
        RawJson::from_string(o).unwrap_or_else(|_| RawJson::null())
    }
}

/// The stable error codes of `hush:response` (docs/PROTOCOL-EXT.md §1).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorCode {
    /// `bad_request`: malformed parameters.
    BadRequest,
    /// `unknown_method`.
    UnknownMethod,
    /// `not_signed_in`: the connection has not completed `pusher:signin`.
    NotSignedIn,
    /// `forbidden`: e.g. publishing a card for another user.
    Forbidden,
    /// `invalid_record`: a card or revocation that breaks the directory's rules.
    InvalidRecord,
    /// `conflict`: a card links to a card the user does not have, or a lost write race.
    Conflict,
    /// `too_many`: more than 50 users in one lookup.
    TooMany,
    /// `not_found`: e.g. an epoch beyond the directory's.
    NotFound,
    /// `unavailable`: the server's store failed.
    Unavailable,
    /// `rate_limited`: too many requests in flight.
    RateLimited,
    /// A code this build does not know (at most 64 characters kept).
    Other(String),
}

impl ErrorCode {
    /// Parses the wire string.
    pub fn parse(code: &str) -> Self {
        match code {
            "bad_request" => Self::BadRequest,
            "unknown_method" => Self::UnknownMethod,
            "not_signed_in" => Self::NotSignedIn,
            "forbidden" => Self::Forbidden,
            "invalid_record" => Self::InvalidRecord,
            "conflict" => Self::Conflict,
            "too_many" => Self::TooMany,
            "not_found" => Self::NotFound,
            "unavailable" => Self::Unavailable,
            "rate_limited" => Self::RateLimited,
            other => Self::Other(other.chars().take(64).collect()),
        }
    }

    /// The wire string.
    pub fn as_str(&self) -> &str {
        match self {
            Self::BadRequest => "bad_request",
            Self::UnknownMethod => "unknown_method",
            Self::NotSignedIn => "not_signed_in",
            Self::Forbidden => "forbidden",
            Self::InvalidRecord => "invalid_record",
            Self::Conflict => "conflict",
            Self::TooMany => "too_many",
            Self::NotFound => "not_found",
            Self::Unavailable => "unavailable",
            Self::RateLimited => "rate_limited",
            Self::Other(s) => s,
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error of a refused request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HushError {
    /// The stable code.
    pub code: ErrorCode,
    /// A message for people.
    pub message: String,
}

/// A `hush:response`: the request id and its result (raw JSON, read with
/// [`HushResponse::decode`] for the method asked) or error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseFrame {
    /// The request's id.
    pub id: String,
    /// The result, or why the request was refused.
    pub result: Result<RawJson, HushError>,
}

#[derive(Deserialize)]
struct ResponseData {
    id: String,
    #[serde(default, deserialize_with = "super::client::raw_keep_null")]
    result: Option<RawJson>,
    #[serde(default)]
    error: Option<ErrorData>,
}

#[derive(Deserialize)]
struct ErrorData {
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    message: Option<String>,
}

impl ResponseFrame {
    /// A successful answer.
    pub fn ok(id: impl Into<String>, result: &HushResponse) -> Self {
        Self {
            id: id.into(),
            result: Ok(result.to_json()),
        }
    }

    /// A refusal.
    pub fn error(id: impl Into<String>, code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            result: Err(HushError {
                code,
                message: message.into(),
            }),
        }
    }

    /// Reads the (already unwrapped) `data` object. An error without a code
    /// reads as code `missing`; a message is cut at 1024 characters.
    pub(crate) fn from_data_json(text: &str) -> Result<Self, String> {
        let d: ResponseData = serde_json::from_str(text).map_err(|e| e.to_string())?;
        let result = match (d.error, d.result) {
            (Some(e), _) => Err(HushError {
                code: e
                    .code
                    .as_deref()
                    .map_or(ErrorCode::Other("missing".into()), ErrorCode::parse),
                message: e.message.unwrap_or_default().chars().take(1024).collect(),
            }),
            (None, Some(r)) => Ok(r),
            (None, None) => return Err("neither result nor error".into()),
        };
        Ok(Self { id: d.id, result })
    }
}

/// A signed epoch head, a proof or a record, as standard base64.
pub type Base64 = String;

/// The result of `directory.publish` and `directory.revoke`, sent once the
/// write is in a published epoch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Published {
    /// The signed epoch head.
    pub head: Base64,
    /// The lookup proof of the writer's entry at that head (akd protobuf).
    pub proof: Base64,
}

/// The result of `directory.lookup`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lookup {
    /// The signed epoch head the proofs are for.
    pub head: Base64,
    /// Users named in the request that did not fit in this answer (the
    /// server's byte bound): ask for them again. Absent when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub more: Vec<String>,
    /// Lookup proofs (akd protobuf, each carrying the user's entry) by user
    /// id; users with no entry are absent.
    pub users: BTreeMap<String, Base64>,
}

/// The result of `directory.history`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct History {
    /// The signed epoch head the proof is for.
    pub head: Base64,
    /// The history proof (akd protobuf).
    pub proof: Base64,
    /// The number of versions asked for (the proof's parameter).
    pub versions: u64,
}

/// The result of `log.head`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogHead {
    /// The signed epoch head.
    pub head: Base64,
    /// The directory's Ed25519 head-signing key.
    pub key: Base64,
    /// The directory's VRF public key.
    pub vrf: Base64,
}

/// The result of `log.audit`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Audit {
    /// The signed heads of epochs `from..=to`, in order, each with the time
    /// its epoch was published.
    pub heads: Vec<Base64>,
    /// The append-only proof (akd protobuf).
    pub proof: Base64,
}

/// The result of `device.challenge`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Challenge {
    /// 32 random bytes (standard base64), good for one `device.auth` on this
    /// connection.
    pub nonce: Base64,
}

/// The result of `device.auth`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceAuthed {
    /// The device this connection now is (32 lowercase hex digits).
    pub device: String,
    /// Messages queued for it.
    pub pending: u64,
}

/// The result of `mailbox.send`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sent {
    /// Recipient devices it was queued for.
    pub devices: u64,
    /// When the server deletes it unread (Unix ms).
    pub expires_ms: u64,
    /// The envelope's message id (32 lowercase hex digits).
    pub message: String,
    /// Of those, devices connected now (pushed at once).
    pub online: u64,
}

/// One queued message, as `mailbox.fetch` answers and `hush:mailbox` pushes
/// it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MailboxItem {
    /// The suite 1 envelope (standard base64).
    pub envelope: String,
    /// The mailbox id: acknowledge with it; ids grow in queueing order.
    pub id: u64,
    /// When the server queued it (Unix ms).
    pub sent_ms: u64,
}

/// The result of `mailbox.fetch`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fetched {
    /// Oldest first.
    pub messages: Vec<MailboxItem>,
    /// More are queued after the last one.
    pub more: bool,
}

/// The result of `mailbox.ack`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Acked {
    /// How many of the ids were this device's and are now deleted.
    pub deleted: u64,
}

/// One recipient device that has not acknowledged a message yet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceState {
    /// The device id (hex).
    pub device: String,
    /// `queued` (never sent to the device) or `delivered` (sent, not yet
    /// acknowledged).
    pub state: String,
    /// The device's user.
    pub user: String,
}

/// The result of `mailbox.status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    /// Devices that acknowledged it.
    pub acknowledged: u64,
    /// Devices still holding it.
    pub pending: Vec<DeviceState>,
    /// Devices it was queued for.
    pub recipients: u64,
}

/// A typed result, one variant per method.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum HushResponse {
    /// `directory.publish`.
    DirectoryPublish(Published),
    /// `directory.revoke`.
    DirectoryRevoke(Published),
    /// `directory.lookup`.
    DirectoryLookup(Lookup),
    /// `directory.history`.
    DirectoryHistory(History),
    /// `log.head`.
    LogHead(LogHead),
    /// `log.audit`.
    LogAudit(Audit),
    /// `device.challenge`.
    DeviceChallenge(Challenge),
    /// `device.auth`.
    DeviceAuth(DeviceAuthed),
    /// `mailbox.send`.
    MailboxSend(Sent),
    /// `mailbox.fetch`.
    MailboxFetch(Fetched),
    /// `mailbox.ack`.
    MailboxAck(Acked),
    /// `mailbox.status`.
    MailboxStatus(Status),
}

impl HushResponse {
    /// The method answered.
    pub fn method(&self) -> Method {
        match self {
            Self::DirectoryPublish(_) => Method::DirectoryPublish,
            Self::DirectoryRevoke(_) => Method::DirectoryRevoke,
            Self::DirectoryLookup(_) => Method::DirectoryLookup,
            Self::DirectoryHistory(_) => Method::DirectoryHistory,
            Self::LogHead(_) => Method::LogHead,
            Self::LogAudit(_) => Method::LogAudit,
            Self::DeviceChallenge(_) => Method::DeviceChallenge,
            Self::DeviceAuth(_) => Method::DeviceAuth,
            Self::MailboxSend(_) => Method::MailboxSend,
            Self::MailboxFetch(_) => Method::MailboxFetch,
            Self::MailboxAck(_) => Method::MailboxAck,
            Self::MailboxStatus(_) => Method::MailboxStatus,
        }
    }

    /// The result JSON.
    pub fn encode(&self) -> String {
        let r = match self {
            Self::DirectoryPublish(a) | Self::DirectoryRevoke(a) => serde_json::to_string(a),
            Self::DirectoryLookup(l) => serde_json::to_string(l),
            Self::DirectoryHistory(h) => serde_json::to_string(h),
            Self::LogHead(h) => serde_json::to_string(h),
            Self::LogAudit(a) => serde_json::to_string(a),
            Self::DeviceChallenge(c) => serde_json::to_string(c),
            Self::DeviceAuth(d) => serde_json::to_string(d),
            Self::MailboxSend(s) => serde_json::to_string(s),
            Self::MailboxFetch(f) => serde_json::to_string(f),
            Self::MailboxAck(a) => serde_json::to_string(a),
            Self::MailboxStatus(s) => serde_json::to_string(s),
        };
        // Plain structs of strings, numbers, lists and string-keyed maps
        // always serialize.
        r.unwrap_or_else(|_| "null".into())
    }

    /// The result as raw JSON.
    pub fn to_json(&self) -> RawJson {
        RawJson::from_string(self.encode()).unwrap_or_else(|_| RawJson::null())
    }

    /// Reads the result of `method`.
    pub fn decode(method: Method, json: &str) -> Result<Self, serde_json::Error> {
        Ok(match method {
            Method::DirectoryPublish => Self::DirectoryPublish(serde_json::from_str(json)?),
            Method::DirectoryRevoke => Self::DirectoryRevoke(serde_json::from_str(json)?),
            Method::DirectoryLookup => Self::DirectoryLookup(serde_json::from_str(json)?),
            Method::DirectoryHistory => Self::DirectoryHistory(serde_json::from_str(json)?),
            Method::LogHead => Self::LogHead(serde_json::from_str(json)?),
            Method::LogAudit => Self::LogAudit(serde_json::from_str(json)?),
            Method::DeviceChallenge => Self::DeviceChallenge(serde_json::from_str(json)?),
            Method::DeviceAuth => Self::DeviceAuth(serde_json::from_str(json)?),
            Method::MailboxSend => Self::MailboxSend(serde_json::from_str(json)?),
            Method::MailboxFetch => Self::MailboxFetch(serde_json::from_str(json)?),
            Method::MailboxAck => Self::MailboxAck(serde_json::from_str(json)?),
            Method::MailboxStatus => Self::MailboxStatus(serde_json::from_str(json)?),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    #[test]
    fn params_read_like_the_server_did() {
        let r = HushRequest::from_params(Method::DirectoryLookup, &obj(json!({"users":["a","b"]})))
            .unwrap();
        assert_eq!(
            r,
            HushRequest::DirectoryLookup {
                users: vec!["a".into(), "b".into()],
            }
        );
        for (m, p, msg) in [
            (
                Method::DirectoryPublish,
                json!({}),
                "params.card must be a string",
            ),
            (
                Method::DirectoryLookup,
                json!({"users":"a"}),
                "params.users must be a list",
            ),
            (
                Method::DirectoryLookup,
                json!({"users":[1]}),
                "params.users must hold strings",
            ),
            (Method::LogAudit, json!({"from":1}), "params.to is required"),
            (
                Method::DirectoryHistory,
                json!({"versions":-1}),
                "params.versions must be a non-negative integer",
            ),
        ] {
            assert_eq!(
                HushRequest::from_params(m, &obj(p)),
                Err(ParamsError(msg.into()))
            );
        }
    }

    #[test]
    fn params_encode_and_read_back() {
        let cases = [
            (
                HushRequest::DirectoryLookup {
                    users: vec!["a".into()],
                },
                json!({"users":["a"]}),
            ),
            (
                HushRequest::LogAudit { from: 1, to: 2 },
                json!({"from":1,"to":2}),
            ),
            (
                HushRequest::DirectoryHistory { versions: Some(3) },
                json!({"versions":3}),
            ),
            (HushRequest::LogHead { epoch: None }, json!({})),
            (HushRequest::LogHead { epoch: Some(7) }, json!({"epoch":7})),
            (
                HushRequest::DirectoryPublish {
                    card: "Y2FyZA==".into(),
                },
                json!({"card":"Y2FyZA=="}),
            ),
            (HushRequest::DeviceChallenge, json!({})),
            (
                HushRequest::DeviceAuth {
                    device: "00".repeat(16),
                    signature: "c2ln".into(),
                },
                json!({"device":"00".repeat(16),"signature":"c2ln"}),
            ),
            (
                HushRequest::MailboxSend {
                    users: vec!["bob".into()],
                    envelope: "aHVzaA==".into(),
                },
                json!({"envelope":"aHVzaA==","users":["bob"]}),
            ),
            (
                HushRequest::MailboxFetch {
                    after: Some(9),
                    limit: None,
                },
                json!({"after":9}),
            ),
            (
                HushRequest::MailboxAck { ids: vec![1, 2] },
                json!({"ids":[1,2]}),
            ),
            (
                HushRequest::MailboxStatus {
                    message: "ab".repeat(16),
                },
                json!({"message":"ab".repeat(16)}),
            ),
        ];
        for (r, v) in cases {
            assert_eq!(r.params().get(), v.to_string());
            let back = HushRequest::from_params(r.method(), &obj(v)).unwrap();
            assert_eq!(back, r);
        }
    }

    #[test]
    fn results_round_trip() {
        let p = HushResponse::DirectoryPublish(Published {
            head: "h".into(),
            proof: "p".into(),
        });
        assert_eq!(p.encode(), json!({"head": "h", "proof": "p"}).to_string());
        let mut users = BTreeMap::new();
        users.insert("u".to_owned(), "cHJvb2Y=".to_owned());
        let l = HushResponse::DirectoryLookup(Lookup {
            head: "h".into(),
            more: vec![],
            users,
        });
        assert_eq!(
            l.encode(),
            json!({"head":"h","users":{"u":"cHJvb2Y="}}).to_string()
        );
        assert_eq!(
            HushResponse::decode(Method::DirectoryLookup, &l.encode()).unwrap(),
            l
        );
        let a = HushResponse::LogAudit(Audit {
            heads: vec!["a".into(), "b".into()],
            proof: "p".into(),
        });
        assert_eq!(
            HushResponse::decode(Method::LogAudit, &a.encode()).unwrap(),
            a
        );
        for m in Method::ALL {
            assert_eq!(Method::from_name(m.name()), Some(m));
        }
    }
}
