//! The server side of one SPDY/3.1 connection: streams opened by the client, their data,
//! pings and flow control.
//!
//! A reader task decodes frames and routes them; a writer task owns the transport's write
//! half and the header compressor, so every outgoing frame (from any stream) is encoded in
//! the order it is queued. Each client stream is handed out once as an [`IncomingStream`]
//! with a reader and a writer half. When the transport ends or fails, every stream reads
//! end-of-stream and further writes fail with [`SessionError::Closed`].
//!
//! Flow control: we always account both our send windows (per stream and per session)
//! but only *wait* on them once the peer has shown it takes part in flow control (it sent
//! a WINDOW_UPDATE or an initial-window SETTINGS). Go's spdystream, which kubectl and the
//! upstream kubelet use, never sends WINDOW_UPDATE; enforcing the 64 KiB default against
//! it would stall every transfer, and upstream never enforces it either. In the other
//! direction we grant the peer window back (stream and session) as our consumers take
//! data, so a peer that does enforce windows never stalls.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::{Mutex, MutexGuard};

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;

use super::frame::{
    FLAG_FIN, Frame, RST_INVALID_STREAM, RST_PROTOCOL_ERROR, SETTINGS_INITIAL_WINDOW_SIZE,
};
use super::headers::{HeaderBlock, HeaderCodec};

/// SPDY/3 default initial window for streams and (3.1) for the session.
const DEFAULT_WINDOW: i64 = 64 * 1024;
/// Largest DATA frame we send; small enough to interleave streams fairly.
const MAX_DATA_CHUNK: usize = 32 * 1024;
/// Window we give back once this much has been consumed (half the default window).
const WINDOW_UPDATE_THRESHOLD: u32 = 32 * 1024;
/// Frames buffered per inbound stream before the connection reader waits for its consumer.
const INBOUND_QUEUE: usize = 16;

/// Why a stream operation failed.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// The connection is gone.
    #[error("SPDY connection closed")]
    Closed,
    /// The peer reset this stream.
    #[error("SPDY stream {0} was reset")]
    Reset(u32),
}

/// A send window shared between the stream writer and the reader task that grows it.
#[derive(Debug)]
struct Window {
    state: Mutex<WindowState>,
    notify: Notify,
}

#[derive(Debug)]
struct WindowState {
    available: i64,
    reset: bool,
}

impl Window {
    fn new(available: i64) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(WindowState {
                available,
                reset: false,
            }),
            notify: Notify::new(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, WindowState> {
        self.state.lock()
    }

    fn grow(&self, delta: i64) {
        self.lock().available += delta;
        self.notify.notify_waiters();
    }

    fn mark_reset(&self) {
        self.lock().reset = true;
        self.notify.notify_waiters();
    }
}

#[derive(Debug)]
struct StreamEntry {
    inbound: Option<mpsc::Sender<Bytes>>,
    window: Arc<Window>,
    local_fin: bool,
}

#[derive(Debug)]
struct Shared {
    frames: mpsc::Sender<Frame>,
    streams: Mutex<HashMap<u32, StreamEntry>>,
    session_window: Arc<Window>,
    initial_window: Mutex<i64>,
    enforce_flow: AtomicBool,
    closed: CancellationToken,
}

impl Shared {
    fn streams(&self) -> MutexGuard<'_, HashMap<u32, StreamEntry>> {
        self.streams.lock()
    }

    async fn send(&self, frame: Frame) -> Result<(), SessionError> {
        self.frames
            .send(frame)
            .await
            .map_err(|_| SessionError::Closed)
    }

    /// Takes up to `want` bytes of send window from `window` and the session window,
    /// waiting only while the peer enforces flow control and a window is exhausted.
    async fn acquire(&self, id: u32, window: &Window, want: usize) -> Result<usize, SessionError> {
        loop {
            let stream_ready = window.notify.notified();
            let session_ready = self.session_window.notify.notified();
            {
                let mut stream = window.lock();
                let mut session = self.session_window.lock();
                if stream.reset {
                    return Err(SessionError::Reset(id));
                }
                let enforce = self.enforce_flow.load(Ordering::Acquire);
                let limit = stream.available.min(session.available);
                if !enforce || limit > 0 {
                    let take = if enforce {
                        want.min(limit as usize)
                    } else {
                        want
                    };
                    stream.available -= take as i64;
                    session.available -= take as i64;
                    return Ok(take);
                }
            }
            tokio::select! {
                _ = stream_ready => {}
                _ = session_ready => {}
                _ = self.closed.cancelled() => return Err(SessionError::Closed),
            }
        }
    }
}

/// A stream the client opened, not yet answered: call [`StreamWriter::reply`] to accept
/// it or [`StreamWriter::reset`] to refuse it.
#[derive(Debug)]
pub struct IncomingStream {
    /// The stream id.
    pub id: u32,
    /// The headers of its SYN_STREAM.
    pub headers: HeaderBlock,
    /// Data the client sends on it.
    pub reader: StreamReader,
    /// Our side of it.
    pub writer: StreamWriter,
}

/// The receiving half of a stream; grants window back to the peer as data is taken.
#[derive(Debug)]
pub struct StreamReader {
    id: u32,
    rx: mpsc::Receiver<Bytes>,
    shared: Arc<Shared>,
    unacknowledged: u32,
}

impl StreamReader {
    /// The next chunk the client sent, or `None` once it half-closed, reset the stream
    /// or the connection ended.
    pub async fn read(&mut self) -> Option<Bytes> {
        let data = self.rx.recv().await?;
        self.unacknowledged += data.len() as u32;
        if self.unacknowledged >= WINDOW_UPDATE_THRESHOLD {
            let delta = std::mem::take(&mut self.unacknowledged);
            // Failure means the connection is closing; the data is still valid.
            let _ = self
                .shared
                .send(Frame::WindowUpdate {
                    stream_id: self.id,
                    delta,
                })
                .await;
            let _ = self
                .shared
                .send(Frame::WindowUpdate {
                    stream_id: 0,
                    delta,
                })
                .await;
        }
        Some(data)
    }
}

/// The sending half of a stream. Cloneable so that data and errors can be written from
/// different tasks.
#[derive(Debug, Clone)]
pub struct StreamWriter {
    id: u32,
    window: Arc<Window>,
    shared: Arc<Shared>,
}

impl StreamWriter {
    /// Accepts the stream with an empty SYN_REPLY, as upstream kubelet does.
    pub async fn reply(&self) -> Result<(), SessionError> {
        let headers = HeaderBlock::default();
        self.shared
            .send(Frame::SynReply {
                stream_id: self.id,
                flags: 0,
                headers,
            })
            .await
    }

    /// Sends `data` in DATA frames, honouring the send windows (see the module doc).
    pub async fn write(&self, mut data: Bytes) -> Result<(), SessionError> {
        while !data.is_empty() {
            let want = data.len().min(MAX_DATA_CHUNK);
            let take = self.shared.acquire(self.id, &self.window, want).await?;
            let chunk = data.split_to(take);
            self.shared
                .send(Frame::Data {
                    stream_id: self.id,
                    flags: 0,
                    data: chunk,
                })
                .await?;
        }
        Ok(())
    }

    /// Half-closes our direction with an empty DATA frame carrying FIN.
    pub async fn finish(&self) -> Result<(), SessionError> {
        let fin = Frame::Data {
            stream_id: self.id,
            flags: FLAG_FIN,
            data: Bytes::new(),
        };
        self.shared.send(fin).await?;
        let mut streams = self.shared.streams();
        let fully_closed = match streams.get_mut(&self.id) {
            Some(entry) => {
                entry.local_fin = true;
                entry.inbound.is_none()
            }
            None => false,
        };
        if fully_closed {
            streams.remove(&self.id);
        }
        Ok(())
    }

    /// Aborts the stream with RST_STREAM `status` and forgets it.
    pub async fn reset(&self, status: u32) -> Result<(), SessionError> {
        self.shared.streams().remove(&self.id);
        self.window.mark_reset();
        self.shared
            .send(Frame::RstStream {
                stream_id: self.id,
                status,
            })
            .await
    }
}

/// Starts serving a SPDY connection on `io`; returns the streams the client opens.
/// The connection ends when the client closes it or `shutdown` is cancelled.
pub fn start<T>(io: T, shutdown: CancellationToken) -> mpsc::Receiver<IncomingStream>
where
    T: AsyncRead + AsyncWrite + Send + 'static,
{
    let (read_half, write_half) = tokio::io::split(io);
    let (frames_tx, frames_rx) = mpsc::channel(64);
    let (incoming_tx, incoming_rx) = mpsc::channel(16);
    let shared = Arc::new(Shared {
        frames: frames_tx,
        streams: Mutex::new(HashMap::new()),
        session_window: Window::new(DEFAULT_WINDOW),
        initial_window: Mutex::new(DEFAULT_WINDOW),
        enforce_flow: AtomicBool::new(false),
        closed: shutdown.child_token(),
    });
    let closed = shared.closed.clone();
    tokio::spawn(write_loop(write_half, frames_rx, closed));
    tokio::spawn(read_loop(BufReader::new(read_half), shared, incoming_tx));
    incoming_rx
}

async fn write_loop<W: AsyncWrite + Unpin>(
    mut io: W,
    mut frames: mpsc::Receiver<Frame>,
    closed: CancellationToken,
) {
    let Ok(mut codec) = HeaderCodec::new() else {
        return;
    };
    let mut buf = Vec::with_capacity(64 * 1024);
    loop {
        let frame = tokio::select! {
            frame = frames.recv() => frame,
            _ = closed.cancelled() => None,
        };
        let Some(frame) = frame else { break };
        buf.clear();
        if let Err(e) = frame.encode(&mut codec, &mut buf) {
            tracing::debug!(error = %e, "dropping SPDY connection: cannot encode frame");
            break;
        }
        if io.write_all(&buf).await.is_err() {
            break;
        }
        if frames.is_empty() && io.flush().await.is_err() {
            break;
        }
    }
    closed.cancel();
    let _ = io.shutdown().await;
}

async fn read_loop<R: AsyncRead + Unpin>(
    mut io: R,
    shared: Arc<Shared>,
    incoming: mpsc::Sender<IncomingStream>,
) {
    let Ok(mut codec) = HeaderCodec::new() else {
        return;
    };
    loop {
        let frame = tokio::select! {
            frame = Frame::read(&mut io, &mut codec) => frame,
            _ = shared.closed.cancelled() => break,
        };
        match frame {
            Ok(Some(frame)) => {
                if handle_frame(&shared, &incoming, frame).await.is_err() {
                    break;
                }
            }
            Ok(None) => break,
            Err(e) => {
                tracing::debug!(error = %e, "SPDY connection read failed");
                break;
            }
        }
    }
    // Dropping the inbound senders ends every stream reader; writers see `closed`.
    let entries: Vec<StreamEntry> = shared.streams().drain().map(|(_, e)| e).collect();
    for entry in entries {
        entry.window.mark_reset();
    }
    shared.closed.cancel();
}

async fn handle_frame(
    shared: &Arc<Shared>,
    incoming: &mpsc::Sender<IncomingStream>,
    frame: Frame,
) -> Result<(), SessionError> {
    match frame {
        Frame::SynStream {
            stream_id,
            flags,
            headers,
            ..
        } => open_stream(shared, incoming, stream_id, flags, headers).await?,
        Frame::Data {
            stream_id,
            flags,
            data,
        } => on_data(shared, stream_id, flags, data).await?,
        Frame::RstStream { stream_id, .. } => {
            if let Some(entry) = shared.streams().remove(&stream_id) {
                entry.window.mark_reset();
            }
        }
        Frame::Settings { entries, .. } => {
            for (_, id, value) in entries {
                if id == SETTINGS_INITIAL_WINDOW_SIZE {
                    shared.enforce_flow.store(true, Ordering::Release);
                    let new = i64::from(value);
                    let old = {
                        let mut initial = shared.initial_window.lock();
                        std::mem::replace(&mut *initial, new)
                    };
                    for entry in shared.streams().values() {
                        entry.window.grow(new - old);
                    }
                }
            }
        }
        // Our ping ids are even; echo the client's odd ones.
        Frame::Ping { id } if id % 2 == 1 => shared.send(Frame::Ping { id }).await?,
        Frame::WindowUpdate { stream_id, delta } => {
            shared.enforce_flow.store(true, Ordering::Release);
            if stream_id == 0 {
                shared.session_window.grow(i64::from(delta));
            } else if let Some(entry) = shared.streams().get(&stream_id) {
                entry.window.grow(i64::from(delta));
            }
        }
        // We open no streams and carry no headers after the reply; GOAWAY just means
        // no new streams, which the client will not send anyway.
        _ => {}
    }
    Ok(())
}

async fn open_stream(
    shared: &Arc<Shared>,
    incoming: &mpsc::Sender<IncomingStream>,
    id: u32,
    flags: u8,
    headers: HeaderBlock,
) -> Result<(), SessionError> {
    let duplicate = shared.streams().contains_key(&id);
    if id.is_multiple_of(2) || duplicate {
        return shared
            .send(Frame::RstStream {
                stream_id: id,
                status: RST_PROTOCOL_ERROR,
            })
            .await;
    }
    let (tx, rx) = mpsc::channel(INBOUND_QUEUE);
    let initial = *shared.initial_window.lock();
    let window = Window::new(initial);
    let inbound = (flags & FLAG_FIN == 0).then_some(tx);
    shared.streams().insert(
        id,
        StreamEntry {
            inbound,
            window: window.clone(),
            local_fin: false,
        },
    );
    let stream = IncomingStream {
        id,
        headers,
        reader: StreamReader {
            id,
            rx,
            shared: shared.clone(),
            unacknowledged: 0,
        },
        writer: StreamWriter {
            id,
            window,
            shared: shared.clone(),
        },
    };
    if incoming.send(stream).await.is_err() {
        shared.streams().remove(&id);
        return shared
            .send(Frame::RstStream {
                stream_id: id,
                status: RST_INVALID_STREAM,
            })
            .await;
    }
    Ok(())
}

async fn on_data(shared: &Shared, id: u32, flags: u8, data: Bytes) -> Result<(), SessionError> {
    let sender = {
        let mut streams = shared.streams();
        match streams.get_mut(&id) {
            None => None,
            Some(entry) => {
                let sender = entry.inbound.clone();
                if flags & FLAG_FIN != 0 {
                    entry.inbound = None;
                    if entry.local_fin {
                        streams.remove(&id);
                    }
                }
                Some(sender)
            }
        }
    };
    let Some(sender) = sender else {
        return shared
            .send(Frame::RstStream {
                stream_id: id,
                status: RST_INVALID_STREAM,
            })
            .await;
    };
    if let Some(sender) = sender
        && !data.is_empty()
    {
        // A consumer that went away simply discards; the stream stays open for writes.
        let _ = sender.send(data).await;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
