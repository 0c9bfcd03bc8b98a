//! The Kubernetes WebSocket channel protocol (`*.channel.k8s.io`): several byte
//! channels multiplexed over one WebSocket, each message prefixed by its channel number.
//!
//! Binary flavours put the channel byte first; base64 flavours send text messages whose
//! first character is `'0' + channel` followed by the base64 of the payload. v5 adds a
//! close signal (`[255, channel]`) with which the client half-closes a channel. A
//! [`ChannelConn`] runs one reader and one writer task over the socket and exposes plain
//! channels of events, so exec, attach and port-forward share the framing. A malformed
//! message is dropped (as upstream does); a WebSocket error ends the connection.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::{BufMut, Bytes, BytesMut};
use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

/// v5 of the exec/attach protocol (adds the stream-close signal).
pub const V5_BINARY: &str = "v5.channel.k8s.io";
/// v4 of the exec/attach and port-forward protocols (JSON Status on the error channel).
pub const V4_BINARY: &str = "v4.channel.k8s.io";
/// v4, base64 flavour.
pub const V4_BASE64: &str = "v4.base64.channel.k8s.io";
/// The original binary channel protocol.
pub const V1_BINARY: &str = "channel.k8s.io";
/// The original base64 channel protocol.
pub const V1_BASE64: &str = "base64.channel.k8s.io";
/// The v5 client's signal that it closed one of its channels.
pub const STREAM_CLOSE: u8 = 255;

/// The outcome of subprotocol negotiation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Negotiated {
    /// The protocol to echo in `Sec-WebSocket-Protocol` (`""`: the client asked for none).
    pub protocol: &'static str,
    /// Payloads travel base64-encoded in text messages.
    pub base64: bool,
}

impl Negotiated {
    /// v4 and later report exec results as a JSON metav1.Status.
    pub fn status_as_json(&self) -> bool {
        matches!(self.protocol, V5_BINARY | V4_BINARY | V4_BASE64)
    }

    /// Only v5 understands the client's stream-close signal.
    pub fn supports_stream_close(&self) -> bool {
        self.protocol == V5_BINARY
    }
}

/// Picks the first protocol the client offered that `supported` contains, like
/// upstream's wsstream handshake; a client offering nothing gets the binary v1 framing
/// when `""` is supported. `None` means no overlap (the request is refused).
pub fn negotiate(offered: &[String], supported: &[&'static str]) -> Option<Negotiated> {
    let found = if offered.is_empty() {
        supported.iter().find(|s| s.is_empty()).copied()
    } else {
        offered
            .iter()
            .find_map(|o| supported.iter().find(|s| **s == o.as_str()).copied())
    }?;
    let base64 = matches!(found, V1_BASE64 | V4_BASE64);
    Some(Negotiated {
        protocol: found,
        base64,
    })
}

/// Something the client sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inbound {
    /// Data on a channel.
    Data(u8, Bytes),
    /// The client half-closed a channel (v5).
    CloseChannel(u8),
}

/// Something to send to the client.
#[derive(Debug)]
enum Outbound {
    Data(u8, Bytes),
    Close,
}

/// Encodes one outbound channel message.
pub fn encode(negotiated: &Negotiated, channel: u8, data: &[u8]) -> Message {
    if negotiated.base64 {
        let mut text = String::with_capacity(1 + data.len().div_ceil(3) * 4);
        text.push(char::from(b'0'.wrapping_add(channel)));
        STANDARD.encode_string(data, &mut text);
        Message::Text(text.into())
    } else {
        let mut buf = BytesMut::with_capacity(1 + data.len());
        buf.put_u8(channel);
        buf.put_slice(data);
        Message::Binary(buf.freeze())
    }
}

/// Decodes one inbound message; `None` for control messages and malformed ones.
pub fn decode(negotiated: &Negotiated, message: Message) -> Option<Inbound> {
    let (channel, payload) = match message {
        Message::Binary(data) if !negotiated.base64 => {
            let channel = *data.first()?;
            (channel, data.slice(1..))
        }
        Message::Text(text) if negotiated.base64 => {
            let raw = text.as_bytes();
            let channel = raw.first()?.checked_sub(b'0')?;
            let decoded = STANDARD.decode(raw.get(1..)?).ok()?;
            (channel, Bytes::from(decoded))
        }
        _ => return None,
    };
    if channel == STREAM_CLOSE && negotiated.supports_stream_close() {
        // Upstream drops a close signal that does not name exactly one channel.
        return (payload.len() == 1).then(|| Inbound::CloseChannel(payload[0]));
    }
    Some(Inbound::Data(channel, payload))
}

/// A running channel connection: send with [`ChannelConn::send`], receive from
/// [`ChannelConn::inbound`].
#[derive(Debug)]
pub struct ChannelConn {
    outbound: mpsc::Sender<Outbound>,
    /// Messages from the client; ends when the WebSocket closes.
    pub inbound: mpsc::Receiver<Inbound>,
    writer: JoinHandle<()>,
}

/// A cloneable handle for writing to channels from several tasks.
#[derive(Debug, Clone)]
pub struct ChannelSender {
    outbound: mpsc::Sender<Outbound>,
}

impl ChannelSender {
    /// Queues `data` on `channel`; `false` once the connection is gone.
    pub async fn send(&self, channel: u8, data: Bytes) -> bool {
        self.outbound
            .send(Outbound::Data(channel, data))
            .await
            .is_ok()
    }
}

impl ChannelConn {
    /// Starts the reader and writer tasks over an established WebSocket.
    pub fn start<S>(ws: WebSocketStream<S>, negotiated: Negotiated) -> Self
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let (mut sink, mut stream) = ws.split();
        let (out_tx, mut out_rx) = mpsc::channel::<Outbound>(32);
        let (in_tx, in_rx) = mpsc::channel(32);
        let writer = tokio::spawn(async move {
            while let Some(item) = out_rx.recv().await {
                let message = match item {
                    Outbound::Data(channel, data) => encode(&negotiated, channel, &data),
                    Outbound::Close => {
                        let frame = CloseFrame {
                            code: CloseCode::Normal,
                            reason: "".into(),
                        };
                        let _ = sink.send(Message::Close(Some(frame))).await;
                        break;
                    }
                };
                if sink.send(message).await.is_err() {
                    break;
                }
            }
            let _ = sink.close().await;
        });
        tokio::spawn(async move {
            while let Some(Ok(message)) = stream.next().await {
                if matches!(message, Message::Close(_)) {
                    break;
                }
                if let Some(event) = decode(&negotiated, message)
                    && in_tx.send(event).await.is_err()
                {
                    break;
                }
            }
        });
        Self {
            outbound: out_tx,
            inbound: in_rx,
            writer,
        }
    }

    /// A handle for writing from other tasks.
    pub fn sender(&self) -> ChannelSender {
        ChannelSender {
            outbound: self.outbound.clone(),
        }
    }

    /// Queues `data` on `channel`; `false` once the connection is gone.
    pub async fn send(&self, channel: u8, data: Bytes) -> bool {
        self.outbound
            .send(Outbound::Data(channel, data))
            .await
            .is_ok()
    }

    /// Sends a normal-closure close frame after everything queued and waits (briefly)
    /// for it to be written.
    pub async fn close(self) {
        let _ = self.outbound.send(Outbound::Close).await;
        drop(self.outbound);
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), self.writer).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offered(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn negotiation_follows_the_client_preference() {
        let supported = [V5_BINARY, V4_BINARY, V1_BINARY, ""];
        let picked = negotiate(&offered(&[V4_BINARY, V5_BINARY]), &supported).unwrap();
        assert_eq!(picked.protocol, V4_BINARY);
        assert!(picked.status_as_json() && !picked.supports_stream_close());
        assert_eq!(negotiate(&[], &supported).unwrap().protocol, "");
        assert!(negotiate(&offered(&["bogus"]), &supported).is_none());
        assert!(
            negotiate(&offered(&[V4_BASE64]), &[V4_BASE64])
                .unwrap()
                .base64
        );
    }

    #[test]
    fn binary_and_base64_framing_round_trip() {
        for protocol in [V5_BINARY, V4_BASE64] {
            let n = negotiate(&offered(&[protocol]), &[V5_BINARY, V4_BASE64]).unwrap();
            let message = encode(&n, 2, b"hello");
            assert_eq!(
                decode(&n, message),
                Some(Inbound::Data(2, Bytes::from_static(b"hello")))
            );
        }
        let b64 = negotiate(&offered(&[V4_BASE64]), &[V4_BASE64]).unwrap();
        assert_eq!(encode(&b64, 1, b"hi"), Message::Text("1aGk=".into()));
    }

    #[test]
    fn stream_close_is_only_understood_by_v5() {
        let v5 = negotiate(&offered(&[V5_BINARY]), &[V5_BINARY, V4_BINARY]).unwrap();
        let v4 = negotiate(&offered(&[V4_BINARY]), &[V5_BINARY, V4_BINARY]).unwrap();
        let close = || Message::Binary(Bytes::from_static(&[255, 0]));
        assert_eq!(decode(&v5, close()), Some(Inbound::CloseChannel(0)));
        assert_eq!(
            decode(&v4, close()),
            Some(Inbound::Data(255, Bytes::from_static(&[0])))
        );
        assert_eq!(
            decode(&v5, Message::Binary(Bytes::from_static(&[255, 0, 1]))),
            None
        );
        assert_eq!(decode(&v5, Message::Binary(Bytes::new())), None);
    }
}
