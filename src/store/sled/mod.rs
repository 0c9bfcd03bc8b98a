//! The embedded sled backend of [`Store`].
//!
//! One sled tree holds three key spaces (see `encoding`): current state
//! (key → value), the event log (revision → event, with the previous state
//! so history can be undone) and metadata (current and compacted revision).
//! Every write goes through one writer thread ([`writer`]) that applies a
//! batch of queued writes as a single atomic sled batch and then fsyncs
//! once for the whole batch (group commit): concurrent writers share the
//! cost of a flush, and a single thread assigning revisions makes the
//! revision order trivially linearizable. (One tree and `apply_batch`
//! rather than a multi-tree transaction: the same atomicity, several times
//! the throughput.)
//!
//! Readers only ever see durable data. The writer publishes the durable
//! revision after each fsync; a read at revision `r` takes the current `kv`
//! state and undoes, from the log, every event after `r` ([`history`]). The
//! same undo serves paged lists at a fixed revision. A reader/writer lock
//! makes each read see state and log at one point of the write order.
//!
//! # Failure
//! After a failed write or fsync sled's in-memory state can no longer be
//! trusted: it may hold the failed batch (applied in memory, not on disk),
//! and sled keeps failing every later write even once the cause is gone.
//! So the batch fails, the store reports itself unhealthy, and before the
//! next batch the writer reopens the database from disk ([`recovery`]):
//! what is on disk is exactly what was made durable. A batch that did reach
//! the disk although its fsync reported an error is then published like any
//! other. Writes work again as soon as the reopen succeeds. Because sled
//! does not always fail cleanly on a full disk, the writer first of all
//! refuses any batch that would leave the disk nearly full.

mod history;
mod recovery;
mod watcher;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use parking_lot::{
    MappedRwLockReadGuard, MappedRwLockWriteGuard, Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard,
};
use tokio::sync::{broadcast, mpsc, oneshot};

use super::encoding::{
    LOG_SPACE, decode_log_key, decode_revision, encode_kv, encode_revision, kv_key, meta_key,
};
use super::{
    Deleted, Event, KeyValue, RangeRequest, RangeResult, Result, Revision, Store, StoreError,
    WatchStream,
};
use writer::{Op, Outcome, WriteRequest};

/// How much event history compaction keeps.
#[derive(Clone, Debug)]
pub struct CompactionPolicy {
    /// Events older than this are dropped.
    pub max_age: Duration,
    /// At most this many events are kept.
    pub max_events: u64,
    /// How often the writer considers compacting.
    pub interval: Duration,
    /// How far past `max_age` the oldest event may get before events are
    /// dropped for age, all expired ones in one batch: one flush per
    /// `age_slack` rather than one per expired event (an idle node's disk
    /// writes). With the defaults, history is kept 5 to 10 minutes, as
    /// kube-apiserver's 5-minute compaction keeps it in etcd.
    pub age_slack: Duration,
}

impl Default for CompactionPolicy {
    fn default() -> Self {
        CompactionPolicy {
            max_age: Duration::from_secs(300),
            max_events: 100_000,
            interval: Duration::from_secs(5),
            age_slack: Duration::from_secs(300),
        }
    }
}

/// Settings for [`SledStore::open`].
#[derive(Clone, Debug)]
pub struct SledConfig {
    /// The database directory (`<data>/server/db`).
    pub path: PathBuf,
    /// sled's page cache size in bytes; small by default to keep RSS low.
    pub cache_bytes: u64,
    /// Event log retention.
    pub compaction: CompactionPolicy,
}

impl SledConfig {
    /// Defaults for a database at `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        SledConfig {
            path: path.into(),
            cache_bytes: 32 << 20,
            compaction: CompactionPolicy::default(),
        }
    }
}

const META_REVISION: &str = "revision";
const META_COMPACTED: &str = "compacted";
/// Batches published to watchers that a slow watcher may fall behind by
/// before it re-reads from the log instead.
const HUB_CAPACITY: usize = 1024;
/// Queued writes; beyond this, writers wait (backpressure).
const QUEUE_CAPACITY: usize = 4096;

/// The open database.
#[derive(Clone)]
struct Trees {
    db: sled::Db,
    data: sled::Tree,
}

/// State shared by the store handle, the writer thread and watchers.
pub(crate) struct Shared {
    path: PathBuf,
    cache_bytes: u64,
    /// Held for writing while a batch is applied, history is compacted or
    /// the database is reopened; for reading while a reader looks at kv and
    /// log together. `None` only while a failed database is being reopened.
    trees: RwLock<Option<Trees>>,
    durable: AtomicU64,
    compacted: AtomicU64,
    hub: broadcast::Sender<Arc<[Event]>>,
    failure: Mutex<Option<String>>,
    /// Why writes are refused for lack of space, while they are.
    space_low: Mutex<Option<String>>,
    /// When the batch in progress started (ms since `epoch`; 0: idle).
    batch_started: AtomicU64,
    epoch: std::time::Instant,
}

/// A batch running longer than this means sled stopped completing I/O.
const STALL_AFTER: Duration = Duration::from_secs(10);
/// How long a reader waits for a batch holding the lock.
const READ_WAIT: Duration = Duration::from_secs(5);

/// A [`Store`] on an embedded sled database. Cheap to clone; the database
/// closes when the last clone (and the last watch) is dropped.
#[derive(Clone)]
pub struct SledStore {
    // Declared before `shared` so the writer stops before the last handle
    // to the database goes away.
    writer: Arc<writer::Writer>,
    shared: Arc<Shared>,
}

impl SledStore {
    /// Opens (or creates) the database and starts its writer thread.
    ///
    /// Fails with [`StoreError::Locked`] if another process has it open.
    pub fn open(config: SledConfig) -> Result<Self> {
        let shared = Arc::new(Shared::open(&config.path, config.cache_bytes)?);
        let (requests, queue) = mpsc::channel(QUEUE_CAPACITY);
        let writer = writer::spawn(shared.clone(), requests, queue, config.compaction)?;
        Ok(SledStore {
            writer: Arc::new(writer),
            shared,
        })
    }

    /// The sled database underneath (for snapshots).
    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    async fn submit(&self, op: Op) -> Result<Outcome> {
        // A stalled writer would only queue this write behind the stuck one.
        if self.shared.batch_started.load(Ordering::Acquire) != 0
            && let Some(reason) = self.shared.failure()
        {
            return Err(StoreError::Unavailable(reason));
        }
        let (reply, answer) = oneshot::channel();
        self.writer
            .requests()?
            .send(WriteRequest { op, reply })
            .await
            .map_err(|_| StoreError::Unavailable("store writer stopped".into()))?;
        answer
            .await
            .map_err(|_| StoreError::Unavailable("store writer stopped".into()))?
    }
}

/// sled releases its file lock only when its own I/O threads let go of
/// the database, a moment after the last handle is dropped; a reopen right
/// after a close (restore, tests) waits that moment out. A database held by
/// a running server still fails, after the grace period.
fn open_retrying(path: &Path, cache_bytes: u64) -> Result<(Trees, Revision, Revision)> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(1);
    loop {
        match open_trees(path, cache_bytes) {
            Err(StoreError::Locked { .. }) if std::time::Instant::now() < deadline => {
                std::thread::park_timeout(std::time::Duration::from_millis(20));
            }
            other => return other,
        }
    }
}

impl Shared {
    fn open(path: &Path, cache_bytes: u64) -> Result<Self> {
        let (trees, revision, compacted) = open_retrying(path, cache_bytes)?;
        let (hub, _) = broadcast::channel(HUB_CAPACITY);
        Ok(Shared {
            path: path.to_path_buf(),
            cache_bytes,
            trees: RwLock::new(Some(trees)),
            durable: AtomicU64::new(revision),
            compacted: AtomicU64::new(compacted),
            hub,
            failure: Mutex::new(None),
            space_low: Mutex::new(None),
            batch_started: AtomicU64::new(0),
            epoch: std::time::Instant::now(),
        })
    }

    /// The open database, held for reading.
    fn read(&self) -> Result<MappedRwLockReadGuard<'_, Trees>> {
        let guard = self.trees.try_read_for(READ_WAIT).ok_or_else(|| {
            StoreError::Unavailable(self.failure().unwrap_or_else(|| {
                format!("the store is busy: a write has held it for over {READ_WAIT:?}")
            }))
        })?;
        RwLockReadGuard::try_map(guard, Option::as_ref).map_err(|_| self.reopening())
    }

    /// The open database, held for writing (applying a batch, compacting,
    /// loading).
    fn write(&self) -> Result<MappedRwLockWriteGuard<'_, Trees>> {
        RwLockWriteGuard::try_map(self.trees.write(), Option::as_mut).map_err(|_| self.reopening())
    }

    /// The error while a failed database is closed and not yet reopened.
    fn reopening(&self) -> StoreError {
        StoreError::Unavailable(
            self.failure()
                .unwrap_or_else(|| "the store is being reopened".into()),
        )
    }

    /// Why writes are failing, if they are.
    pub(crate) fn failure(&self) -> Option<String> {
        if let Some(reason) = self.failure.lock().clone() {
            return Some(reason);
        }
        if let Some(reason) = self.space_low.lock().clone() {
            return Some(reason);
        }
        let started = self.batch_started.load(Ordering::Acquire);
        let running = (self.epoch.elapsed().as_millis() as u64).saturating_sub(started);
        (started != 0 && running > STALL_AFTER.as_millis() as u64).then(|| {
            format!(
                "store write stalled: a write batch has not completed for {}s (sled is not finishing its I/O; check the disk, or restart kelp)",
                running / 1000
            )
        })
    }

    /// Marks a batch as started (`true`) or done, for stall detection.
    fn batch_running(&self, running: bool) {
        let now = if running {
            (self.epoch.elapsed().as_millis() as u64).max(1)
        } else {
            0
        };
        self.batch_started.store(now, Ordering::Release);
    }
}

/// zstd's default level: JSON objects and their log records shrink ~4x
/// for a few microseconds per write.
const COMPRESSION_LEVEL: i32 = 3;

/// Whether the database at `path` is (to be) written compressed.
///
/// sled rewrites whole leaves (up to 16 objects, with the event log's
/// previous states) every ten changes to them, so an idle node's Lease
/// renewals cost ~20 KB of disk each: 13–16 MB an hour, which wears out
/// SD cards. Compressed pages cut that several times over. sled cannot
/// switch compression on for an existing database (it refuses to open
/// it), so a store created before stays as it is; `kelp snapshot save`
/// and `restore` rewrite it compressed.
fn compressed(path: &Path) -> bool {
    match std::fs::read_to_string(path.join("conf")) {
        Ok(conf) if conf.lines().any(|l| l.trim() == "use_compression: false") => {
            tracing::info!(
                path = %path.display(),
                "this store predates compression; `kelp snapshot save` then `restore` rewrites it compressed"
            );
            false
        }
        _ => true,
    }
}

/// Opens the database and reads its revisions, checking that the log ends
/// where the metadata says.
fn open_trees(path: &Path, cache_bytes: u64) -> Result<(Trees, Revision, Revision)> {
    recovery::check_free_space(path)?;
    let db = sled::Config::new()
        .path(path)
        .cache_capacity(cache_bytes)
        // Durability comes from the explicit flush after every batch.
        .flush_every_ms(None)
        .use_compression(compressed(path))
        .compression_factor(COMPRESSION_LEVEL)
        .open()
        .map_err(|e| match e {
            sled::Error::Io(ref io) if io.to_string().contains("lock") => StoreError::Locked {
                path: path.display().to_string(),
            },
            e => StoreError::Io(e),
        })?;
    let data = db.open_tree("kelp")?;
    let read_meta = |name: &str| -> Result<u64> {
        match data.get(meta_key(name))? {
            Some(raw) => decode_revision(&raw),
            None => Ok(0),
        }
    };
    let revision = read_meta(META_REVISION)?;
    let compacted = read_meta(META_COMPACTED)?;
    if let Some((last, _)) = data.scan_prefix([LOG_SPACE]).next_back().transpose()? {
        let last = decode_log_key(&last)?;
        if last != revision {
            return Err(StoreError::Corrupt {
                tree: "log",
                key: last.to_string(),
                reason: format!("last event is revision {last} but the store is at {revision}"),
            });
        }
    }
    Ok((Trees { db, data }, revision, compacted))
}

impl Drop for Shared {
    fn drop(&mut self) {
        // A failed database's handle could hang in its flush-on-drop;
        // everything acknowledged is on disk already.
        if self.failure.get_mut().is_some()
            && let Some(trees) = self.trees.get_mut().take()
        {
            recovery::close_failed(trees, Duration::ZERO);
        }
    }
}

impl Shared {
    pub(crate) fn durable(&self) -> Revision {
        self.durable.load(Ordering::Acquire)
    }

    /// Loads a snapshot into an empty store: all keys, with history
    /// compacted at `revision`.
    pub(crate) fn load(&self, kvs: &[KeyValue], revision: Revision) -> Result<()> {
        let trees = self.write()?;
        if self.durable() != 0 || !trees.data.is_empty() {
            return Err(StoreError::Unavailable(
                "refusing to load a snapshot into a non-empty store".into(),
            ));
        }
        let mut batch = sled::Batch::default();
        for kv in kvs {
            batch.insert(kv_key(&kv.key), encode_kv(kv));
        }
        batch.insert(meta_key(META_REVISION), &encode_revision(revision));
        batch.insert(meta_key(META_COMPACTED), &encode_revision(revision));
        trees.data.apply_batch(batch)?;
        trees.db.flush()?;
        self.durable.store(revision, Ordering::Release);
        self.compacted.store(revision, Ordering::Release);
        Ok(())
    }

    fn compacted(&self) -> Revision {
        self.compacted.load(Ordering::Acquire)
    }
}

async fn blocking<T: Send + 'static>(
    shared: &Arc<Shared>,
    f: impl FnOnce(&Shared) -> Result<T> + Send + 'static,
) -> Result<T> {
    let shared = shared.clone();
    tokio::task::spawn_blocking(move || f(&shared))
        .await
        .map_err(|e| StoreError::Unavailable(format!("store read task failed: {e}")))?
}

impl Store for SledStore {
    async fn create(&self, key: &str, value: Bytes) -> Result<KeyValue> {
        match self
            .submit(Op::Create {
                key: key.to_string(),
                value,
            })
            .await?
        {
            Outcome::Put(kv) => Ok(kv),
            other => unreachable_outcome(other),
        }
    }

    async fn update(
        &self,
        key: &str,
        value: Bytes,
        expected: Option<Revision>,
    ) -> Result<KeyValue> {
        match self
            .submit(Op::Update {
                key: key.to_string(),
                value,
                expected,
            })
            .await?
        {
            Outcome::Put(kv) => Ok(kv),
            other => unreachable_outcome(other),
        }
    }

    async fn delete(&self, key: &str, expected: Option<Revision>) -> Result<Deleted> {
        match self
            .submit(Op::Delete {
                key: key.to_string(),
                expected,
            })
            .await?
        {
            Outcome::Deleted(d) => Ok(d),
            other => unreachable_outcome(other),
        }
    }

    async fn get(&self, key: &str) -> Result<(Option<KeyValue>, Revision)> {
        let key = key.to_string();
        // Point reads are cheap enough to run inline when nothing is in
        // flight; the log tail is scanned only while a batch is unflushed.
        self.shared.get_durable(&key)
    }

    async fn range(&self, request: RangeRequest) -> Result<RangeResult> {
        blocking(&self.shared, move |s| s.range_at(&request)).await
    }

    fn watch(&self, prefix: &str, after: Revision) -> Result<WatchStream> {
        watcher::start(self.shared.clone(), prefix.to_string(), after)
    }

    fn current_revision(&self) -> Revision {
        self.shared.durable()
    }

    fn failure(&self) -> Option<String> {
        self.shared.failure()
    }

    fn compacted_revision(&self) -> Revision {
        self.shared.compacted()
    }

    async fn compact(&self, revision: Revision) -> Result<()> {
        self.submit(Op::Compact { revision }).await.map(|_| ())
    }
}

// The writer answers each op with its own outcome kind; anything else is a
// programming error, reported rather than panicking the caller.
fn unreachable_outcome<T>(outcome: Outcome) -> Result<T> {
    Err(StoreError::Unavailable(format!(
        "store writer answered with unexpected {outcome:?}"
    )))
}
