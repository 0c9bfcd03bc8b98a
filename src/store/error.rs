//! Errors of the store.
//!
//! Callers branch on the variant: `Conflict` and `AlreadyExists` become 409s,
//! `Compacted` becomes 410 Gone / Expired, `NotFound` 404. `Io` and
//! `Unavailable` are server-side failures; `Unavailable` is sticky because a
//! failed fsync leaves the durability of the last batch unknown.

use super::Revision;

/// Result alias for store operations.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Everything a store operation can fail with.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// `create` found the key already present.
    #[error("key {key:?} already exists")]
    AlreadyExists {
        /// The key that exists.
        key: String,
    },
    /// The key does not exist (update or delete of a missing key).
    #[error("key {key:?} not found")]
    NotFound {
        /// The missing key.
        key: String,
    },
    /// Compare-and-swap failed: the key was modified since `expected`.
    #[error("key {key:?} was modified: expected revision {expected}, found {actual}")]
    Conflict {
        /// The contended key.
        key: String,
        /// The mod revision the caller expected.
        expected: Revision,
        /// The key's current mod revision.
        actual: Revision,
    },
    /// The requested revision has been compacted away from the event log.
    #[error("revision {requested} is compacted (oldest available is {compacted})")]
    Compacted {
        /// The revision asked for.
        requested: Revision,
        /// Events up to and including this revision are gone.
        compacted: Revision,
    },
    /// The requested revision is newer than anything written.
    #[error("revision {requested} is in the future (current is {current})")]
    FutureRevision {
        /// The revision asked for.
        requested: Revision,
        /// The newest durable revision.
        current: Revision,
    },
    /// The on-disk data could not be decoded.
    #[error("corrupt store record in {tree} at {key:?}: {reason}")]
    Corrupt {
        /// Which tree held the record.
        tree: &'static str,
        /// The record's key, printable.
        key: String,
        /// What was wrong with it.
        reason: String,
    },
    /// The data directory is locked by another process (a running server).
    #[error("store at {path} is in use by another process (is a kelp server running?)")]
    Locked {
        /// The database directory.
        path: String,
    },
    /// A value could not be encrypted or decrypted (encryption at rest).
    #[error(transparent)]
    Encryption(#[from] super::encryption::EncryptionError),
    /// An I/O error from sled.
    #[error("store i/o error: {0}")]
    Io(#[from] sled::Error),
    /// The store stopped accepting writes after a failed flush, or was closed.
    #[error("store unavailable: {0}")]
    Unavailable(String),
}

impl StoreError {
    /// Whether retrying the same request later can succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, StoreError::Conflict { .. } | StoreError::Io(_))
    }
}

impl From<sled::transaction::TransactionError<StoreError>> for StoreError {
    fn from(e: sled::transaction::TransactionError<StoreError>) -> Self {
        match e {
            sled::transaction::TransactionError::Abort(e) => e,
            sled::transaction::TransactionError::Storage(e) => StoreError::Io(e),
        }
    }
}
