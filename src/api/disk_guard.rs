//! Refusing writes before the store's disk is full.
//!
//! sled cannot be trusted to fail cleanly on a full disk: a failed flush
//! leaves the store read-only until restart, and a start on a full disk
//! can leave its snapshot files damaged. So the apiserver stops taking new
//! writes while the store's filesystem has less than [`MIN_FREE`] left:
//! creates, updates and patches get a 507, reads and deletes (which free
//! space) go on, and writes come back by themselves once space is freed.
//! The free space is read at most once a second. Each change between low
//! and enough is logged and reported as an Event in `kube-system` (reason
//! `InsufficientStorage`, then `StorageAvailable`), written straight to the
//! store, whose own smaller reserve still leaves room for it.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::status::ApiError;

/// Free space below which writes are refused.
pub const MIN_FREE: u64 = 64 * 1024 * 1024;

/// How long a free-space reading is reused.
const REFRESH: Duration = Duration::from_secs(1);

/// Watches the free space of the store's filesystem.
#[derive(Debug)]
pub struct DiskGuard {
    dir: Option<PathBuf>,
    min_free: u64,
    last: Mutex<Option<(Instant, u64)>>,
    /// Where changes of state go (`true`: now low), for Events.
    changes: Mutex<Option<tokio::sync::mpsc::UnboundedSender<(bool, String)>>>,
}

impl DiskGuard {
    /// A guard keeping `min_free` bytes free on the filesystem holding
    /// `dir` (none, or zero: never refuses).
    pub fn new(dir: Option<PathBuf>, min_free: u64) -> Self {
        Self {
            dir: dir.filter(|_| min_free > 0),
            min_free,
            last: Mutex::new(None),
            changes: Mutex::new(None),
        }
    }

    /// Changes between low and enough space, as `(low, message)`, from now
    /// on.
    pub fn subscribe(&self) -> tokio::sync::mpsc::UnboundedReceiver<(bool, String)> {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        *self.changes.lock() = Some(tx);
        rx
    }

    fn report(&self, low: bool, message: String) {
        if let Some(tx) = self.changes.lock().as_ref() {
            let _ = tx.send((low, message));
        }
    }

    /// Bytes free for unprivileged use, as of the last second.
    fn free(&self) -> Option<u64> {
        let dir = self.dir.as_ref()?;
        let mut last = self.last.lock();
        if let Some((at, free)) = *last
            && at.elapsed() < REFRESH
        {
            return Some(free);
        }
        let st = nix::sys::statvfs::statvfs(dir).ok()?;
        let free = st.blocks_available() as u64 * st.fragment_size() as u64;
        let was_low = last.is_some_and(|(_, f)| f < self.min_free);
        if free < self.min_free && !was_low {
            tracing::error!(dir = %dir.display(), free, min = self.min_free, "the store's disk is almost full: refusing writes until space is freed");
            self.report(true, format!(
                "the store's disk ({}) has {free} bytes free, below the {} kept in reserve: creates, updates and patches get 507 until space is freed",
                dir.display(),
                self.min_free
            ));
        } else if free >= self.min_free && was_low {
            tracing::info!(dir = %dir.display(), free, "space freed on the store's disk: taking writes again");
            self.report(
                false,
                format!(
                    "the store's disk ({}) has {free} bytes free again: taking writes",
                    dir.display()
                ),
            );
        }
        *last = Some((Instant::now(), free));
        Some(free)
    }

    /// A 507 when a write must not go to the store now.
    pub fn check_write(&self) -> Result<(), ApiError> {
        match self.free() {
            Some(free) if free < self.min_free => Err(ApiError::new(
                507,
                "InsufficientStorage",
                format!(
                    "insufficient storage: {free} bytes are free on the store's disk ({}), below the {} kept in reserve; free some space (deletes are still accepted)",
                    self.dir
                        .as_ref()
                        .map(|d| d.display().to_string())
                        .unwrap_or_default(),
                    self.min_free
                ),
            )),
            _ => Ok(()),
        }
    }
}

/// Writes each change of [`DiskGuard::subscribe`] as an Event in
/// `kube-system`, source `kube-apiserver`, until the guard goes away.
pub async fn record_events<S: crate::store::Store>(
    store: S,
    mut changes: tokio::sync::mpsc::UnboundedReceiver<(bool, String)>,
) {
    use super::registry::resources;
    use super::strategy;
    let Some(info) = resources::find("", "v1", "events") else {
        return;
    };
    while let Some((low, message)) = changes.recv().await {
        let now = crate::client::timestamps::now_rfc3339();
        let (kind, reason) = if low {
            ("Warning", "InsufficientStorage")
        } else {
            ("Normal", "StorageAvailable")
        };
        let name = crate::client::names::event_name("kelp-store");
        let mut event = serde_json::json!({
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": name, "namespace": "kube-system"},
            "involvedObject": {"apiVersion": "v1", "kind": "Namespace", "name": "kube-system"},
            "reason": reason,
            "message": message,
            "type": kind,
            "source": {"component": "kube-apiserver"},
            "reportingComponent": "kube-apiserver",
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        });
        strategy::prepare_create(info, &mut event);
        strategy::apply_defaults(info, &mut event);
        let key = info.key(Some("kube-system"), &name);
        if let Err(e) = store.create(&key, strategy::to_stored(&event)).await {
            tracing::warn!(error = %e, reason, "cannot record the store disk event");
        }
    }
}
