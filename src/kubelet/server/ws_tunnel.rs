//! SPDY tunnelled through a WebSocket (`SPDY/3.1+portforward.k8s.io`): kubectl 1.30+
//! writes SPDY frames as binary WebSocket messages, split wherever its writes fall.
//!
//! [`bridge`] turns the WebSocket back into a byte stream (an in-memory duplex pipe
//! pumped by a task) so the ordinary SPDY session runs on it unchanged. A text message
//! is a protocol error, as in client-go's TunnelingConnection, and ends the tunnel;
//! when the SPDY side closes we send a normal-closure close frame, which the client
//! reads as end-of-stream.

use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, DuplexStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

/// Subprotocol prefix kubectl uses to ask for SPDY inside a WebSocket.
pub const TUNNELING_PREFIX: &str = "SPDY/3.1+";
const PIPE_CAPACITY: usize = 256 * 1024;

/// Returns a byte stream carrying the tunnelled bytes in both directions.
pub fn bridge<S>(ws: WebSocketStream<S>) -> DuplexStream
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (ours, theirs) = tokio::io::duplex(PIPE_CAPACITY);
    let (mut from_spdy, mut to_spdy) = tokio::io::split(ours);
    let (mut sink, mut stream) = ws.split();
    let inbound = tokio::spawn(async move {
        while let Some(Ok(message)) = stream.next().await {
            match message {
                Message::Binary(data) => {
                    if to_spdy.write_all(&data).await.is_err() {
                        break;
                    }
                }
                Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => {}
                Message::Text(_) | Message::Close(_) => break,
            }
        }
        let _ = to_spdy.shutdown().await;
    });
    tokio::spawn(async move {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match from_spdy.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let chunk = bytes::Bytes::copy_from_slice(&buf[..n]);
                    if sink.send(Message::Binary(chunk)).await.is_err() {
                        break;
                    }
                }
            }
        }
        let frame = CloseFrame {
            code: CloseCode::Normal,
            reason: "".into(),
        };
        let _ = sink.send(Message::Close(Some(frame))).await;
        let _ = sink.close().await;
        inbound.abort();
    });
    theirs
}
