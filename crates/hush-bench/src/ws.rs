//! A lean WebSocket subscriber for load generation.

use futures_util::{SinkExt, StreamExt};
use hush_protocol::msgs::{ClientMessage, ServerMessage, SubscribeData, names};
use hush_protocol::{ChannelKind, ChannelName, SocketId, auth};
use std::net::{IpAddr, SocketAddr};

use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, client_async_with_config};

use crate::{BenchError, Target};

/// An open client connection.
pub struct Conn {
    /// The socket.
    pub ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    /// Its socket id.
    pub socket_id: String,
}

/// Connects and reads `pusher:connection_established`.
pub async fn connect(t: &Target) -> Result<Conn, BenchError> {
    connect_from(t, None).await
}

/// Like [`connect`], from the loopback source address `from` when given
/// (bound before connecting): each source address has its own ephemeral
/// ports, so many addresses let one machine open more connections to one
/// server port than one address's port range allows.
pub async fn connect_from(t: &Target, from: Option<IpAddr>) -> Result<Conn, BenchError> {
    let tcp = match from {
        None => TcpStream::connect(t.addr).await?,
        Some(ip) => {
            let src = SocketAddr::new(ip, 0);
            if !ip.is_loopback() {
                return Err(BenchError::NotLoopback(src));
            }
            let socket = if ip.is_ipv4() {
                TcpSocket::new_v4()?
            } else {
                TcpSocket::new_v6()?
            };
            socket.bind(src)?;
            socket.connect(t.addr).await?
        }
    };
    tcp.set_nodelay(true)?;
    let url = format!(
        "ws://{}/app/{}?protocol=7&client=hush-bench&version=1",
        t.addr, t.key
    );
    let cfg = WebSocketConfig::default()
        .read_buffer_size(1024)
        .write_buffer_size(0);
    let (mut ws, _) = client_async_with_config(url, MaybeTlsStream::Plain(tcp), Some(cfg)).await?;
    let first = next_text(&mut ws).await?;
    let Ok(ServerMessage::ConnectionEstablished { socket_id, .. }) = ServerMessage::decode(&first)
    else {
        return Err(BenchError::Protocol(format!(
            "unexpected handshake {first}"
        )));
    };
    Ok(Conn { ws, socket_id })
}

/// Reads the next text frame.
pub async fn next_text(
    ws: &mut WebSocketStream<MaybeTlsStream<TcpStream>>,
) -> Result<String, BenchError> {
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(t))) => return Ok(t.as_str().to_owned()),
            Some(Ok(Message::Close(f))) => {
                return Err(BenchError::Protocol(format!("closed: {f:?}")));
            }
            Some(Ok(_)) => continue,
            Some(Err(e)) => return Err(e.into()),
            None => return Err(BenchError::Protocol("connection ended".into())),
        }
    }
}

impl Conn {
    /// Subscribes (signing private channels with the target's secret) and
    /// waits for `subscription_succeeded`.
    pub async fn subscribe(&mut self, t: &Target, channel: &str) -> Result<(), BenchError> {
        let name = ChannelName::parse(channel).map_err(|e| BenchError::Protocol(e.to_string()))?;
        let auth = match name.kind() {
            ChannelKind::Private | ChannelKind::Encrypted => {
                let s = SocketId::parse(&self.socket_id)
                    .map_err(|e| BenchError::Protocol(e.to_string()))?;
                auth::auth_value(
                    &t.key,
                    &auth::sign_channel(t.secret.as_bytes(), &s, &name, None),
                )
            }
            _ => String::new(),
        };
        let msg = ClientMessage::Subscribe(SubscribeData {
            channel: channel.to_owned(),
            auth: Some(auth),
            channel_data: None,
        });
        self.ws.send(Message::Text(msg.encode().into())).await?;
        loop {
            let t = next_text(&mut self.ws).await?;
            if t.contains(names::SUBSCRIPTION_SUCCEEDED) {
                return Ok(());
            }
            if t.contains(names::SUBSCRIPTION_ERROR) || t.contains(names::ERROR) {
                return Err(BenchError::Protocol(t));
            }
        }
    }
}

/// Finds the unsigned number after `"key":` (plain or JSON-escaped) in a
/// frame. Runs once per delivery in the generator, so it allocates nothing.
pub fn extract_num(frame: &str, key: &str) -> Option<u64> {
    if key.is_empty() {
        return None;
    }
    let mut from = 0;
    while let Some(i) = frame[from..].find(key) {
        let start = from + i;
        let end = start + key.len();
        from = end;
        if !frame[..start].ends_with('"') {
            continue;
        }
        let rest = frame[end..]
            .strip_prefix("\\\":")
            .or_else(|| frame[end..].strip_prefix("\":"));
        if let Some(digits) = rest {
            let len = digits
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(digits.len());
            return digits[..len].parse().ok();
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extracts_numbers() {
        let f = r#"{"event":"bench","channel":"c","data":"{\"t\":123,\"s\":4}"}"#;
        assert_eq!(extract_num(f, "t"), Some(123));
        assert_eq!(extract_num(f, "s"), Some(4));
        assert_eq!(extract_num(r#"{"data":{"t":9}}"#, "t"), Some(9));
        assert_eq!(extract_num(f, "x"), None);
        assert_eq!(extract_num(f, ""), None);
    }
}
