//! [`Frame`]: a WebSocket frame encoded once (header and payload) and shared
//! by every connection it goes to.

use bytes::Bytes;
use hush_protocol::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{
    CloseCode as WsCloseCode, Data, OpCode,
};
use tokio_tungstenite::tungstenite::protocol::frame::{Frame as WsFrame, FrameHeader};

/// A WebSocket text frame, encoded once (header and payload) and shared by
/// every connection it goes to: cloning is a reference-count bump.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    wire: Bytes,
    header: u8,
}

impl Frame {
    /// Frames `text` as one unmasked, final text frame.
    pub fn text(text: &str) -> Self {
        let mut wire = Vec::with_capacity(text.len() + 10);
        let header = FrameHeader {
            opcode: OpCode::Data(Data::Text),
            ..FrameHeader::default()
        };
        // Writing the header into a Vec cannot fail; the payload is copied
        // once, right behind it.
        let _ = header.format(text.len() as u64, &mut wire);
        let header = u8::try_from(wire.len()).unwrap_or(0);
        wire.extend_from_slice(text.as_bytes());
        Self {
            wire: Bytes::from(wire),
            header,
        }
    }

    /// A close frame with `code` and `reason`.
    pub fn close(code: CloseCode, reason: &str) -> Self {
        let mut wire = Vec::with_capacity(reason.len() + 8);
        let _ = WsFrame::close(Some(CloseFrame {
            code: WsCloseCode::from(code.code()),
            reason: reason.to_owned().into(),
        }))
        .format(&mut wire);
        Self {
            wire: Bytes::from(wire),
            header: 0,
        }
    }

    /// Bytes already framed (unmasked, as a server sends them).
    #[cfg(test)]
    pub(crate) fn from_wire(wire: Bytes) -> Self {
        let header = match wire.get(1).map(|b| b & 0x7f) {
            Some(126) => 4,
            Some(127) => 10,
            Some(_) => 2,
            None => 0,
        };
        Self { wire, header }
    }

    /// The bytes on the wire.
    pub fn wire(&self) -> &Bytes {
        &self.wire
    }

    /// The payload of a text frame (the JSON the client reads).
    pub fn payload(&self) -> &str {
        std::str::from_utf8(&self.wire[usize::from(self.header)..]).unwrap_or("")
    }

    /// Length of the payload (what the client reads), without re-reading it.
    pub fn payload_len(&self) -> usize {
        self.wire.len() - usize::from(self.header)
    }

    /// Bytes on the wire.
    pub fn len(&self) -> usize {
        self.wire.len()
    }

    /// Never true for a framed message (the header is at least 2 bytes).
    pub fn is_empty(&self) -> bool {
        self.wire.is_empty()
    }
}

impl From<String> for Frame {
    fn from(text: String) -> Self {
        Self::text(&text)
    }
}

impl From<&str> for Frame {
    fn from(text: &str) -> Self {
        Self::text(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_encoded_once_with_their_payload() {
        let f = Frame::text(r#"{"event":"x"}"#);
        assert_eq!(f.wire()[0], 0x81);
        assert_eq!(usize::from(f.wire()[1]), 13);
        assert_eq!(f.payload(), r#"{"event":"x"}"#);
        assert_eq!(f.payload_len(), 13);
        let long = "y".repeat(300);
        let f = Frame::text(&long);
        assert_eq!(&f.wire()[..4], &[0x81, 126, 1, 44]);
        assert_eq!(f.payload(), long);
        assert_eq!(f.payload_len(), 300);
        // The same bytes tungstenite's own message framing produces.
        let mut reference = Vec::new();
        WsFrame::message(Bytes::from(long.clone()), OpCode::Data(Data::Text), true)
            .format(&mut reference)
            .unwrap();
        assert_eq!(f.wire().as_ref(), reference.as_slice());
        let c = Frame::close(CloseCode::OverCapacity, "slow");
        assert_eq!(&c.wire()[..4], &[0x88, 6, 0x10, 0x04]);
        let c = Frame::close(CloseCode::MessageTooBig, "");
        assert_eq!(c.wire().as_ref(), &[0x88, 2, 0x03, 0xf1]);
    }
}
