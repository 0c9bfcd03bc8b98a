//! The store: an etcd-like, revisioned key-value store under the apiserver.
//!
//! The model is etcd's, because the Kubernetes apiserver's semantics
//! (resourceVersion, optimistic concurrency, list at a revision, watch from a
//! revision, "410 Gone" after compaction) are defined in its terms:
//!
//! - One global [`Revision`] counter; every write (create, update, delete)
//!   takes the next revision, so the event log is dense: revision `r` is
//!   exactly one event.
//! - Each key carries its `create_revision`, `mod_revision` and `version`.
//! - Updates and deletes may be conditioned on the key's `mod_revision`
//!   (compare-and-swap); a mismatch is [`StoreError::Conflict`].
//! - [`Store::range`] reads a consistent view *at* a revision, so a paged
//!   list (limit + continue) sees one snapshot across pages.
//! - [`Store::watch`] replays every event after a revision from the log and
//!   then follows live writes, in revision order, with no gap or duplicate.
//! - Compaction drops old events; asking for them is
//!   [`StoreError::Compacted`].
//!
//! Only durable data is ever visible: a write is acknowledged, readable and
//! delivered to watchers only once it has been fsynced.
//!
//! The one backend today is [`sled`](crate::store::sled) (embedded). An etcd
//! backend can implement the same trait.

mod encoding;
pub mod encryption;
mod error;
pub mod sled;
pub mod snapshot;
mod watch;

use std::future::Future;

use bytes::Bytes;

pub use error::{Result, StoreError};
pub use watch::{EventTransform, WatchStream};

/// A store revision: the position of a write in the global order.
pub type Revision = u64;

/// A key's stored state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyValue {
    /// The key, e.g. `/registry/core/configmaps/default/foo`.
    pub key: String,
    /// The value bytes.
    pub value: Bytes,
    /// Revision of the write that created the key.
    pub create_revision: Revision,
    /// Revision of the last write to the key.
    pub mod_revision: Revision,
    /// Number of writes since creation (1 after create).
    pub version: u64,
}

/// What happened to a key at a revision.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// Created or updated.
    Put,
    /// Deleted.
    Delete,
}

/// One entry of the event log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// Put or delete.
    pub kind: EventKind,
    /// The revision of this write.
    pub revision: Revision,
    /// The key written.
    pub key: String,
    /// The new state (for puts).
    pub value: Option<KeyValue>,
    /// The state before the write (absent for creates).
    pub prev: Option<KeyValue>,
}

/// A range read: keys under `prefix`, in key order.
#[derive(Clone, Debug, Default)]
pub struct RangeRequest {
    /// Only keys starting with this prefix.
    pub prefix: String,
    /// Resume after this key (exclusive), for paging.
    pub continue_after: Option<String>,
    /// At most this many keys (0 = no limit).
    pub limit: usize,
    /// Read at this revision (None = the newest durable revision).
    pub revision: Option<Revision>,
}

/// The answer to a [`RangeRequest`].
#[derive(Clone, Debug)]
pub struct RangeResult {
    /// Matching keys in key order.
    pub kvs: Vec<KeyValue>,
    /// Whether more keys follow the last one returned.
    pub more: bool,
    /// The revision the read was served at; pass it back to continue.
    pub revision: Revision,
}

/// The answer to a delete.
#[derive(Clone, Debug)]
pub struct Deleted {
    /// The revision of the delete.
    pub revision: Revision,
    /// The state of the key just before it was deleted.
    pub prev: KeyValue,
}

/// An etcd-like revisioned key-value store. See the [module docs](self).
pub trait Store: Send + Sync + 'static {
    /// Creates `key`; fails with [`StoreError::AlreadyExists`] if present.
    fn create(&self, key: &str, value: Bytes) -> impl Future<Output = Result<KeyValue>> + Send;

    /// Replaces the value of an existing `key`. With `expected`, fails with
    /// [`StoreError::Conflict`] unless the key's mod revision equals it.
    fn update(
        &self,
        key: &str,
        value: Bytes,
        expected: Option<Revision>,
    ) -> impl Future<Output = Result<KeyValue>> + Send;

    /// Deletes an existing `key`, optionally conditioned like `update`.
    fn delete(
        &self,
        key: &str,
        expected: Option<Revision>,
    ) -> impl Future<Output = Result<Deleted>> + Send;

    /// Reads one key at the newest durable revision; also returns that
    /// revision.
    fn get(&self, key: &str) -> impl Future<Output = Result<(Option<KeyValue>, Revision)>> + Send;

    /// Reads a page of keys at one revision.
    fn range(&self, request: RangeRequest) -> impl Future<Output = Result<RangeResult>> + Send;

    /// Streams every event under `prefix` with revision greater than
    /// `after`: first from the log, then live.
    fn watch(&self, prefix: &str, after: Revision) -> Result<WatchStream>;

    /// The newest durable revision.
    fn current_revision(&self) -> Revision;

    /// Why writes are failing right now (for `/readyz`); `None` when
    /// healthy.
    fn failure(&self) -> Option<String> {
        None
    }

    /// The newest compacted revision (events up to it are gone).
    fn compacted_revision(&self) -> Revision;

    /// Drops events up to and including `revision` from the log.
    fn compact(&self, revision: Revision) -> impl Future<Output = Result<()>> + Send;
}
