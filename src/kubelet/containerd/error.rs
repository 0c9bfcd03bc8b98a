//! The error type of the containerd runtime layer.
//!
//! Every failure names the object it concerns (socket, archive, container id) and keeps
//! its cause as a source. gRPC failures keep the `tonic::Status` so callers can branch on
//! its code; [`RuntimeError::is_retryable`] says which failures are worth retrying.

use std::path::PathBuf;

use containerd_client::tonic::{self, Code};

/// Result alias of this module.
pub type Result<T, E = RuntimeError> = std::result::Result<T, E>;

/// Everything that can go wrong while supervising or driving containerd.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// A required executable is not on `PATH`.
    #[error("{binary} not found on PATH; install them: apt-get install containerd runc")]
    MissingBinary {
        /// The executable that was looked for.
        binary: &'static str,
    },
    /// containerd did not answer on its socket in time (or exited while starting).
    #[error("containerd is not answering on {socket}: {reason}")]
    Unavailable {
        /// The socket that was tried.
        socket: PathBuf,
        /// What happened, with the tail of containerd's log when kelp started it.
        reason: String,
    },
    /// The named object does not exist.
    #[error("{kind} {name} not found")]
    NotFound {
        /// What kind of object (image, container, task).
        kind: &'static str,
        /// Its name or id.
        name: String,
    },
    /// A containerd RPC failed.
    #[error("containerd {op} failed: {source}")]
    Rpc {
        /// The RPC, e.g. `Tasks.Create`.
        op: &'static str,
        /// The gRPC status returned by containerd.
        #[source]
        source: tonic::Status,
    },
    /// An image archive or image record is malformed.
    #[error("bad image {file}: {reason}")]
    Image {
        /// The archive file (or image name) concerned.
        file: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A reference as written in a pod spec could not be parsed.
    #[error("invalid image reference {reference:?}: {reason}")]
    InvalidReference {
        /// The reference as given.
        reference: String,
        /// Why it is invalid.
        reason: &'static str,
    },
    /// A local file operation failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The gRPC connection could not be set up.
    #[error("connecting to containerd at {socket}: {source}")]
    Transport {
        /// The socket that was tried.
        socket: PathBuf,
        /// The transport error.
        #[source]
        source: tonic::transport::Error,
    },
    /// A request built by the caller is unusable (bad spec, missing stdio, ...).
    #[error("invalid request for {id}: {reason}")]
    InvalidRequest {
        /// The container or exec concerned.
        id: String,
        /// What is wrong.
        reason: String,
    },
}

impl RuntimeError {
    /// Wraps a gRPC status from the RPC `op`.
    pub(crate) fn rpc(op: &'static str) -> impl FnOnce(tonic::Status) -> Self {
        move |source| RuntimeError::Rpc { op, source }
    }

    /// Wraps an I/O error on `path`.
    pub(crate) fn io(
        op: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| RuntimeError::Io { op, path, source }
    }

    /// The gRPC code when this is an RPC failure.
    pub fn code(&self) -> Option<Code> {
        match self {
            RuntimeError::Rpc { source, .. } => Some(source.code()),
            _ => None,
        }
    }

    /// True when the object was missing (either as [`RuntimeError::NotFound`] or as a
    /// `NotFound` status from containerd).
    pub fn is_not_found(&self) -> bool {
        matches!(self, RuntimeError::NotFound { .. }) || self.code() == Some(Code::NotFound)
    }

    /// True for failures that may pass on retry (containerd restarting, timeouts).
    pub fn is_retryable(&self) -> bool {
        match self {
            RuntimeError::Unavailable { .. } | RuntimeError::Transport { .. } => true,
            RuntimeError::Rpc { source, .. } => matches!(
                source.code(),
                Code::Unavailable | Code::DeadlineExceeded | Code::Aborted | Code::Unknown
            ),
            _ => false,
        }
    }
}
