//! One soak connection: its subscriptions, each with a delivery [`Window`],
//! and the frames it reads.

use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use hush_protocol::msgs::{ClientMessage, SubscribeData};
use hush_protocol::{ChannelName, SocketId, auth};
use serde_json::json;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::account::{Stream, Window};
use super::frame::{self, Incoming};
use super::stats::{Stats, inc};
use crate::{BenchError, Target, ws};

/// How long a subscribe or a ping may wait for its answer.
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

/// Kinds of channel the soak uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `soak-…`.
    Public,
    /// `private-soak-…` (signed).
    Private,
    /// `presence-soak-…` (signed, with a user id).
    Presence,
}

/// A channel and the stream of events published to it.
#[derive(Debug)]
pub struct Chan {
    /// Its name.
    pub name: String,
    /// Its kind.
    pub kind: Kind,
    /// Its publisher's counters.
    pub stream: Stream,
    /// A large fan-out channel (its latency is reported apart).
    pub large: bool,
}

impl Chan {
    /// A channel named after its kind.
    pub fn new(kind: Kind, base: &str) -> Self {
        let name = match kind {
            Kind::Public => base.to_owned(),
            Kind::Private => format!("private-{base}"),
            Kind::Presence => format!("presence-{base}"),
        };
        Self {
            name,
            kind,
            stream: Stream::default(),
            large: false,
        }
    }

    /// A public channel every stable connection of a worker is on.
    pub fn large(base: &str) -> Self {
        Self {
            large: true,
            ..Self::new(Kind::Public, base)
        }
    }
}

struct Sub {
    chan: Arc<Chan>,
    window: Window,
}

/// What a frame asked of the caller.
#[derive(Debug, PartialEq, Eq)]
pub enum Action {
    /// Nothing.
    None,
    /// A pong arrived.
    Pong,
    /// A ping arrived (answered by [`Session::pump`]).
    Ping,
    /// A subscription was confirmed.
    Subscribed(String, Option<Vec<String>>),
    /// The server reported an error.
    Error(String),
}

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// An open connection.
pub struct Session {
    ws: Ws,
    socket_id: String,
    subs: Vec<Sub>,
    /// Whether presence members are tracked (stable connections).
    track_members: bool,
    /// Members of other (churn) users seen joining and not yet leaving, as
    /// "channel/user".
    others: HashSet<String>,
}

impl Session {
    /// Connects from `from` and reads the handshake.
    pub async fn open(
        t: &Target,
        from: Option<IpAddr>,
        track_members: bool,
    ) -> Result<Self, BenchError> {
        let c = tokio::time::timeout(ANSWER_TIMEOUT, ws::connect_from(t, from))
            .await
            .map_err(|_| BenchError::Protocol("connect timed out".into()))??;
        Ok(Self {
            ws: c.ws,
            socket_id: c.socket_id,
            subs: Vec::new(),
            track_members,
            others: HashSet::new(),
        })
    }

    /// Number of channels subscribed.
    pub fn subscriptions(&self) -> usize {
        self.subs.len()
    }

    /// Whether any subscription is to a presence channel.
    pub fn in_presence(&self) -> bool {
        self.subs.iter().any(|s| s.chan.kind == Kind::Presence)
    }

    /// Churn members seen joining and not yet leaving.
    pub fn members_left_over(&self) -> usize {
        self.others.len()
    }

    /// Sends a text frame.
    pub async fn send(&mut self, text: String) -> Result<(), BenchError> {
        self.ws.send(Message::Text(text.into())).await?;
        Ok(())
    }

    /// Reads one frame and accounts for it; an error when the connection
    /// ended.
    pub async fn pump(&mut self, stats: &Stats) -> Result<Action, BenchError> {
        loop {
            match self.ws.next().await {
                Some(Ok(Message::Text(t))) => {
                    let action = self.on_text(t.as_str(), stats);
                    if action == Action::Ping {
                        self.send(ClientMessage::Pong.encode()).await?;
                        return Ok(Action::None);
                    }
                    return Ok(action);
                }
                Some(Ok(Message::Close(f))) => {
                    return Err(BenchError::Protocol(format!("closed by the server: {f:?}")));
                }
                Some(Ok(_)) => continue,
                Some(Err(e)) => return Err(e.into()),
                None => return Err(BenchError::Protocol("connection ended".into())),
            }
        }
    }

    fn on_text(&mut self, text: &str, stats: &Stats) -> Action {
        match frame::parse(text) {
            Incoming::Event {
                channel,
                seq,
                sent_us,
                client,
            } => {
                let received = super::now_micros();
                if let Some(s) = self.subs.iter_mut().find(|s| s.chan.name == channel) {
                    s.window.on_seq(seq, &stats.tally);
                    let lat = received.saturating_sub(sent_us);
                    if client {
                        stats.client_latency.record(lat);
                    } else if s.chan.large {
                        stats.large_latency.record(lat);
                    } else {
                        stats.latency.record(lat);
                    }
                }
                Action::None
            }
            Incoming::Subscribed { channel, members } => Action::Subscribed(channel, members),
            Incoming::Member {
                channel,
                user,
                added,
            } => {
                // Only churn users ("c…") come and go while the load runs.
                if self.track_members && user.starts_with('c') {
                    let key = format!("{channel}/{user}");
                    let ok = if added {
                        self.others.insert(key)
                    } else {
                        self.others.remove(&key)
                    };
                    if !ok {
                        inc(&stats.presence_errors);
                    }
                }
                Action::None
            }
            Incoming::Pong => Action::Pong,
            Incoming::Error(e) => Action::Error(e),
            Incoming::Ping => Action::Ping,
            Incoming::Other => Action::None,
        }
    }

    /// Subscribes to `chan` (as presence user `user`) and, when its events
    /// are `owed` to this connection (not when it sends them itself), opens
    /// its window.
    pub async fn subscribe(
        &mut self,
        t: &Target,
        chan: Arc<Chan>,
        user: &str,
        stats: &Stats,
        owed: bool,
    ) -> Result<(), BenchError> {
        let msg = subscribe_frame(t, &self.socket_id, &chan, user)?;
        self.send(msg).await?;
        let members = tokio::time::timeout(ANSWER_TIMEOUT, async {
            loop {
                match self.pump(stats).await? {
                    Action::Subscribed(c, members) if c == chan.name => {
                        return Ok::<_, BenchError>(members);
                    }
                    Action::Error(e) => {
                        return Err(BenchError::Protocol(format!(
                            "subscribing to {}: {e}",
                            chan.name
                        )));
                    }
                    _ => {}
                }
            }
        })
        .await
        .map_err(|_| {
            BenchError::Protocol(format!("no answer to subscribing to {}", chan.name))
        })??;
        inc(&stats.subscribes);
        if chan.kind == Kind::Presence {
            inc(&stats.presence_joins);
            if !members.is_some_and(|m| m.iter().any(|u| u == user)) {
                inc(&stats.presence_errors);
            }
        }
        if owed {
            let window = Window::open(chan.stream.started());
            self.subs.push(Sub { chan, window });
        }
        Ok(())
    }

    /// Sends `pusher:ping` and reads until the pong: everything the server
    /// wrote to this connection before it has then arrived.
    pub async fn flush(&mut self, stats: &Stats) -> Result<(), BenchError> {
        self.send(ClientMessage::Ping.encode()).await?;
        tokio::time::timeout(ANSWER_TIMEOUT, async {
            while self.pump(stats).await? != Action::Pong {}
            Ok::<_, BenchError>(())
        })
        .await
        .map_err(|_| BenchError::Protocol("no pong".into()))?
    }

    /// Unsubscribes from the most recent subscription, flushes, and closes
    /// its window (what was owed and did not arrive is lost).
    pub async fn unsubscribe_last(&mut self, stats: &Stats) -> Result<(), BenchError> {
        let Some(sub) = self.subs.last_mut() else {
            return Ok(());
        };
        sub.window.end_at(sub.chan.stream.finished());
        let name = sub.chan.name.clone();
        let presence = sub.chan.kind == Kind::Presence;
        self.send(ClientMessage::Unsubscribe { channel: name }.encode())
            .await?;
        inc(&stats.unsubscribes);
        if presence {
            inc(&stats.presence_leaves);
        }
        let flushed = self.flush(stats).await;
        if let Some(mut sub) = self.subs.pop() {
            sub.window.close(&stats.tally);
        }
        flushed
    }

    /// Ends every window at what its stream has finished so far (before a
    /// final flush).
    pub fn end_all(&mut self) {
        for s in &mut self.subs {
            s.window.end_at(s.chan.stream.finished());
        }
    }

    /// Closes every window; `presence_leaves` counts presence channels left
    /// by closing the connection.
    pub fn close_all(&mut self, stats: &Stats, leaving: bool) {
        for mut s in self.subs.drain(..) {
            s.window.close(&stats.tally);
            if leaving && s.chan.kind == Kind::Presence {
                inc(&stats.presence_leaves);
            }
        }
    }

    /// Closes the connection with a WebSocket close handshake.
    pub async fn close(mut self) {
        let _ = tokio::time::timeout(ANSWER_TIMEOUT, async {
            if self.ws.close(None).await.is_ok() {
                while let Some(Ok(_)) = self.ws.next().await {}
            }
        })
        .await;
    }
}

/// The `pusher:subscribe` frame for `chan`, signed as the server expects.
pub fn subscribe_frame(
    t: &Target,
    socket_id: &str,
    chan: &Chan,
    user: &str,
) -> Result<String, BenchError> {
    let proto = |e: &dyn std::fmt::Display| BenchError::Protocol(e.to_string());
    let sign = |data: Option<&str>| -> Result<String, BenchError> {
        let name = ChannelName::parse(&chan.name).map_err(|e| proto(&e))?;
        let sid = SocketId::parse(socket_id).map_err(|e| proto(&e))?;
        Ok(auth::auth_value(
            &t.key,
            &auth::sign_channel(t.secret.as_bytes(), &sid, &name, data),
        ))
    };
    let (auth, channel_data) = match chan.kind {
        Kind::Public => (None, None),
        Kind::Private => (Some(sign(None)?), None),
        Kind::Presence => {
            let cd = json!({"user_id": user, "user_info": {}}).to_string();
            (Some(sign(Some(&cd))?), Some(cd))
        }
    };
    Ok(ClientMessage::Subscribe(SubscribeData {
        channel: chan.name.clone(),
        auth,
        channel_data,
    })
    .encode())
}
