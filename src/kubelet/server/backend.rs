//! What the node offers to the streaming server: the [`NodeBackend`] trait the kubelet
//! implements, and the values passed across it.
//!
//! The server owns the wire protocols; the backend owns containers. Streams cross the
//! boundary as plain tokio `AsyncRead`/`AsyncWrite` objects so a backend can hand them
//! straight to a process or a socket. Backend failures are [`BackendError`]s, mapped to
//! HTTP statuses (before an upgrade) or to a metav1.Status on the error channel (after).

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use tokio::io::{AsyncRead, AsyncWrite};

pub use super::error::BackendError;

/// A bidirectional byte stream, such as a TCP connection into a pod.
pub trait AsyncIo: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> AsyncIo for T {}

/// A boxed connection returned by [`NodeBackend::port_forward`].
pub type BoxedIo = Box<dyn AsyncIo>;

/// What the node offers to the streaming server; the kubelet implements it.
pub trait NodeBackend: Send + Sync + 'static {
    /// Streams a container's log; `query` is the raw query string of /containerLogs
    /// (follow, tailLines, sinceSeconds, sinceTime, timestamps, previous, limitBytes),
    /// which the backend parses.
    fn container_logs(
        &self,
        target: ContainerTarget,
        query: String,
    ) -> BoxFuture<'static, Result<BoxStream<'static, std::io::Result<Bytes>>, BackendError>>;

    /// Runs `command` in the container with the given streams; resolves to the outcome
    /// once the process exits. The backend must drop `streams.stdout`/`stderr` by then,
    /// since the server flushes them before reporting the exit status.
    fn exec(
        &self,
        target: ContainerTarget,
        command: Vec<String>,
        streams: ExecStreams,
    ) -> BoxFuture<'static, Result<ExecOutcome, BackendError>>;

    /// Attaches to the container's main process.
    fn attach(
        &self,
        target: ContainerTarget,
        streams: ExecStreams,
    ) -> BoxFuture<'static, Result<ExecOutcome, BackendError>>;

    /// Opens a TCP connection to `port` in the pod's network namespace.
    fn port_forward(
        &self,
        pod: PodTarget,
        port: u16,
    ) -> BoxFuture<'static, Result<BoxedIo, BackendError>>;
}

/// A pod named by a streaming URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodTarget {
    /// Namespace.
    pub namespace: String,
    /// Pod name.
    pub name: String,
    /// Pod UID when the URL carried one.
    pub uid: Option<String>,
}

/// A container of a pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerTarget {
    /// The pod.
    pub pod: PodTarget,
    /// Container name.
    pub container: String,
}

/// The streams a client asked for; absent ones are `None`.
pub struct ExecStreams {
    /// Client input; reads end when the client closes stdin.
    pub stdin: Option<Box<dyn AsyncRead + Send + Unpin>>,
    /// Process output to the client.
    pub stdout: Option<Box<dyn AsyncWrite + Send + Unpin>>,
    /// Process errors to the client (never present with a TTY).
    pub stderr: Option<Box<dyn AsyncWrite + Send + Unpin>>,
    /// Whether the client wants a terminal.
    pub tty: bool,
    /// Terminal size changes from the client (TTY sessions only).
    pub resize: Option<tokio::sync::mpsc::Receiver<TerminalSize>>,
}

impl std::fmt::Debug for ExecStreams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExecStreams")
            .field("stdin", &self.stdin.is_some())
            .field("stdout", &self.stdout.is_some())
            .field("stderr", &self.stderr.is_some())
            .field("tty", &self.tty)
            .field("resize", &self.resize.is_some())
            .finish()
    }
}

/// A terminal size in character cells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TerminalSize {
    /// Columns.
    pub width: u16,
    /// Rows.
    pub height: u16,
}

/// How an exec or attach ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExecOutcome {
    /// The process exited with this code (0 is success).
    Exited(i32),
}
