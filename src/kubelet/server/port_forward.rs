//! Port-forward: pairing the client's streams with TCP connections into the pod.
//!
//! Two framings share the splice logic. SPDY (raw upgrade, or tunnelled through a
//! WebSocket by kubectl 1.30+): the client opens an `error` and a `data` stream per
//! forwarded connection, tagged with `port` and `requestID`; once both arrived we dial the
//! pod and copy bytes, writing any failure as text on the error stream. WebSocket channel
//! protocol (kube-rs): ports come from the query, channel 2i carries port i's data and
//! 2i+1 its errors, and each channel opens with the port as 2 little-endian bytes. A
//! half-close from the client half-closes the pod connection; the pod closing ends the
//! pair (FIN on both streams) so the client can finish, as upstream does.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::backend::{BackendError, NodeBackend, PodTarget};
use super::spdy::frame::RST_CANCEL;
use super::spdy::session::{self, IncomingStream, StreamReader, StreamWriter};
use super::websocket_channels::{ChannelConn, ChannelSender, Inbound};

/// Upstream's default wait for the second stream of a pair.
const STREAM_CREATION_TIMEOUT: Duration = Duration::from_secs(30);
const COPY_BUFFER: usize = 32 * 1024;

/// Which half of a pair a stream is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Data,
    Error,
}

#[derive(Default)]
struct Pair {
    data: Option<IncomingStream>,
    error: Option<IncomingStream>,
}

/// Validates a stream's headers like upstream's `httpStreamReceived`.
fn classify(stream: &IncomingStream) -> Result<(Kind, u16, String), String> {
    let port = stream.headers.get("port").filter(|p| !p.is_empty());
    let port = port.ok_or_else(|| "\"port\" header is required".to_string())?;
    let parsed: u16 = port
        .parse()
        .map_err(|e| format!("unable to parse \"{port}\" as a port: {e}"))?;
    if parsed < 1 {
        return Err(format!("port \"{port}\" must be > 0"));
    }
    let kind = match stream.headers.get("streamtype") {
        Some("data") => Kind::Data,
        Some("error") => Kind::Error,
        Some(other) => return Err(format!("invalid stream type \"{other}\"")),
        None => return Err("\"streamType\" header is required".to_string()),
    };
    // Old clients sent no requestID; upstream derives one from consecutive stream ids.
    let request_id = match stream.headers.get("requestid") {
        Some(id) if !id.is_empty() => id.to_string(),
        _ if kind == Kind::Error => stream.id.to_string(),
        _ => stream.id.saturating_sub(2).to_string(),
    };
    Ok((kind, parsed, request_id))
}

/// Serves SPDY port-forwarding on an upgraded connection until it closes.
pub async fn serve_spdy<T>(
    io: T,
    backend: Arc<dyn NodeBackend>,
    pod: PodTarget,
    shutdown: CancellationToken,
) where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + 'static,
{
    let mut incoming = session::start(io, shutdown.clone());
    let mut pairs: HashMap<String, Pair> = HashMap::new();
    let (expired_tx, mut expired_rx) = mpsc::channel::<String>(16);
    loop {
        let stream = tokio::select! {
            stream = incoming.recv() => match stream { Some(s) => s, None => break },
            Some(id) = expired_rx.recv() => {
                if let Some(pair) = pairs.remove(&id)
                    && let Some(error) = pair.error
                {
                    let msg = format!("timed out waiting for streams of request {id}");
                    let _ = error.writer.write(Bytes::from(msg)).await;
                    let _ = error.writer.finish().await;
                }
                continue;
            }
        };
        let (kind, port, request_id) = match classify(&stream) {
            Ok(found) => found,
            Err(reason) => {
                tracing::debug!(%reason, "rejecting port-forward stream");
                let _ = stream.writer.reset(RST_CANCEL).await;
                continue;
            }
        };
        if stream.writer.reply().await.is_err() {
            break;
        }
        if !pairs.contains_key(&request_id) {
            let (tx, id) = (expired_tx.clone(), request_id.clone());
            tokio::spawn(async move {
                tokio::time::sleep(STREAM_CREATION_TIMEOUT).await;
                let _ = tx.send(id).await;
            });
        }
        let pair = pairs.entry(request_id.clone()).or_default();
        let slot = if kind == Kind::Data {
            &mut pair.data
        } else {
            &mut pair.error
        };
        if slot.is_some() {
            let kind = if kind == Kind::Data { "data" } else { "error" };
            let msg = format!(
                "error processing stream for request {request_id}: {kind} stream already assigned"
            );
            if let Some(error) = &pair.error {
                let _ = error.writer.write(Bytes::from(msg)).await;
            }
            continue;
        }
        *slot = Some(stream);
        let complete = pair.data.is_some() && pair.error.is_some();
        if complete
            && let Some(Pair {
                data: Some(data),
                error: Some(error),
            }) = pairs.remove(&request_id)
        {
            let (backend, pod, token) = (backend.clone(), pod.clone(), shutdown.clone());
            tokio::spawn(forward_pair(backend, pod, port, data, error, token));
        }
    }
}

async fn forward_pair(
    backend: Arc<dyn NodeBackend>,
    pod: PodTarget,
    port: u16,
    data: IncomingStream,
    error: IncomingStream,
    shutdown: CancellationToken,
) {
    let sink = SpdySink(data.writer.clone());
    let result = tokio::select! {
        r = forward(&*backend, &pod, port, data.reader, sink) => r,
        _ = shutdown.cancelled() => Ok(()),
    };
    if let Err(e) = result {
        let _ = error
            .writer
            .write(Bytes::from(forward_error(&pod, port, &e)))
            .await;
    }
    let _ = data.writer.finish().await;
    let _ = error.writer.finish().await;
}

/// Upstream's wording for a failed forward.
fn forward_error(pod: &PodTarget, port: u16, e: &BackendError) -> String {
    let uid = pod.uid.as_deref().unwrap_or_default();
    format!(
        "error forwarding port {port} to pod {}, uid {uid}: {e}",
        pod.name
    )
}

/// Where pod output goes: a SPDY stream or a WebSocket channel.
trait Sink: Send {
    fn write(&self, data: Bytes) -> impl std::future::Future<Output = bool> + Send;
}

struct SpdySink(StreamWriter);
impl Sink for SpdySink {
    async fn write(&self, data: Bytes) -> bool {
        self.0.write(data).await.is_ok()
    }
}

struct ChannelSink(ChannelSender, u8);
impl Sink for ChannelSink {
    async fn write(&self, data: Bytes) -> bool {
        self.0.send(self.1, data).await
    }
}

/// Where client input comes from.
trait Source: Send + 'static {
    fn read(&mut self) -> impl std::future::Future<Output = Option<Bytes>> + Send;
}

impl Source for StreamReader {
    async fn read(&mut self) -> Option<Bytes> {
        StreamReader::read(self).await
    }
}

impl Source for mpsc::Receiver<Bytes> {
    async fn read(&mut self) -> Option<Bytes> {
        self.recv().await
    }
}

/// Dials the pod and copies both ways until the pod closes its side.
async fn forward(
    backend: &dyn NodeBackend,
    pod: &PodTarget,
    port: u16,
    mut source: impl Source,
    sink: impl Sink,
) -> Result<(), BackendError> {
    let conn = backend.port_forward(pod.clone(), port).await?;
    let (mut from_pod, mut to_pod) = tokio::io::split(conn);
    let upstream = tokio::spawn(async move {
        while let Some(chunk) = source.read().await {
            if to_pod.write_all(&chunk).await.is_err() {
                return;
            }
        }
        let _ = to_pod.shutdown().await;
        // Keep the write half alive so the half-close is not turned into a full close.
        std::future::pending::<()>().await;
    });
    let mut buf = vec![0u8; COPY_BUFFER];
    loop {
        match from_pod.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if !sink.write(Bytes::copy_from_slice(&buf[..n])).await {
                    break;
                }
            }
        }
    }
    upstream.abort();
    Ok(())
}

/// Serves kube-rs style port-forwarding (WebSocket channels) for `ports`.
pub async fn serve_channels(
    conn: ChannelConn,
    backend: Arc<dyn NodeBackend>,
    pod: PodTarget,
    ports: Vec<u16>,
    shutdown: CancellationToken,
) {
    let mut conn = conn;
    let mut inputs = Vec::with_capacity(ports.len());
    let mut tasks = Vec::with_capacity(ports.len());
    for (i, port) in ports.iter().copied().enumerate() {
        let (data_ch, error_ch) = ((2 * i) as u8, (2 * i + 1) as u8);
        conn.send(data_ch, Bytes::copy_from_slice(&port.to_le_bytes()))
            .await;
        conn.send(error_ch, Bytes::copy_from_slice(&port.to_le_bytes()))
            .await;
        let (tx, rx) = mpsc::channel::<Bytes>(16);
        inputs.push(Some(tx));
        let (backend, pod, sender) = (backend.clone(), pod.clone(), conn.sender());
        tasks.push(tokio::spawn(async move {
            let sink = ChannelSink(sender.clone(), data_ch);
            if let Err(e) = forward(&*backend, &pod, port, rx, sink).await {
                sender
                    .send(error_ch, Bytes::from(forward_error(&pod, port, &e)))
                    .await;
            }
        }));
    }
    let all_done = futures::future::join_all(tasks);
    tokio::pin!(all_done);
    let mut client_open = true;
    loop {
        tokio::select! {
            _ = &mut all_done => break,
            _ = shutdown.cancelled() => break,
            event = conn.inbound.recv(), if client_open => match event {
                Some(Inbound::Data(ch, data)) if ch % 2 == 0 => {
                    if let Some(Some(tx)) = inputs.get(usize::from(ch / 2)) {
                        let _ = tx.send(data).await;
                    }
                }
                Some(Inbound::CloseChannel(ch)) if ch % 2 == 0 => {
                    if let Some(slot) = inputs.get_mut(usize::from(ch / 2)) {
                        *slot = None;
                    }
                }
                Some(_) => {}
                // The client went away: end every input so the copies finish.
                None => {
                    client_open = false;
                    inputs.iter_mut().for_each(|slot| *slot = None);
                }
            },
        }
    }
    conn.close().await;
}
