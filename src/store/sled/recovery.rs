//! Getting the store back after an I/O error, without a restart.
//!
//! sled cannot be trusted after a failed write: its memory may hold a batch
//! the disk does not, and it answers every later write with the same error
//! even after the cause (a full disk, too many open files) is gone. What is
//! on disk, though, is exactly what was made durable, and opening the
//! database again recovers it. So a failure closes the database, and the
//! writer reopens it before its next batch (at most once per
//! [`RETRY_EVERY`]); writes fail fast with the reason until that works.
//!
//! Better still is never to meet ENOSPC at all: sled does not always fail
//! cleanly on it (measured here: some runs left its writer or its file
//! lock stuck until restart). So the writer checks the free space before
//! each batch ([`check_write_space`]) and refuses the batch, with nothing
//! written, while less than [`WRITE_RESERVE`] would be left; writes resume
//! by themselves once space is freed.
//!
//! Opening also writes (sled may rewrite its snapshot at start), and an
//! open that runs out of space half-way can leave a damaged `snap.*` file
//! behind. So no open starts without room to finish ([`check_free_space`]).

use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::{Shared, open_retrying};
use crate::store::encoding::{decode_event, decode_log_key, log_key};
use crate::store::{Event, Result, Revision, StoreError};

/// How often a failed store tries to reopen.
const RETRY_EVERY: Duration = Duration::from_millis(500);
/// Free space the writer keeps on the store's filesystem, beyond the batch.
pub(super) const WRITE_RESERVE: u64 = 8 << 20;
/// How long a reopen waits for the failed handle to close.
const CLOSE_WAIT: Duration = Duration::from_secs(5);
/// Free space an open needs besides room for a new snapshot.
const OPEN_RESERVE: u64 = 4 << 20;
/// Events published per message when a reopen finds writes that reached
/// the disk although their fsync failed.
const REPLAY_CHUNK: usize = 512;

/// Records that writes are failing (for `/readyz` and later writes).
pub(super) fn mark_failed(shared: &Shared, reason: String) {
    let mut failure = shared.failure.lock();
    if failure.is_none() {
        tracing::error!(%reason, "store write failed; reopening the store before the next write");
    }
    *failure = Some(reason);
}

/// Paces reopen attempts of a failed store.
#[derive(Default)]
pub(super) struct Backoff {
    last: Option<Instant>,
}

impl Backoff {
    /// Reopens the failed store unless the last try was too recent; the
    /// error is the reason writes still fail.
    pub(super) fn try_reopen(&mut self, shared: &Shared) -> std::result::Result<(), String> {
        let reason = || shared.failure().unwrap_or_default();
        if self.last.is_some_and(|at| at.elapsed() < RETRY_EVERY) {
            return Err(reason());
        }
        self.last = Some(Instant::now());
        match reopen(shared) {
            Ok(revision) => {
                *shared.failure.lock() = None;
                self.last = None;
                tracing::info!(
                    revision,
                    "store reopened after a failed write; taking writes again"
                );
                Ok(())
            }
            Err(e) => {
                tracing::warn!(error = %e, "store still cannot be reopened");
                Err(format!("{} (reopen failed: {e})", reason()))
            }
        }
    }
}

/// Closes the database and opens it again from disk. Writes that reached
/// the disk after the last published revision are published now.
fn reopen(shared: &Shared) -> Result<Revision> {
    // Without room to open, keep the old handle: it still serves reads.
    check_free_space(&shared.path)?;
    let mut guard = shared.trees.write();
    if let Some(failed) = guard.take()
        && !close_failed(failed, CLOSE_WAIT)
    {
        return Err(StoreError::Unavailable(format!(
            "the failed store did not close within {CLOSE_WAIT:?}; restart kelp to recover (everything acknowledged is on disk)"
        )));
    }
    let (trees, revision, compacted) = open_retrying(&shared.path, shared.cache_bytes)?;
    let durable = shared.durable();
    if revision < durable {
        return Err(StoreError::Corrupt {
            tree: "meta",
            key: "revision".into(),
            reason: format!(
                "the store on disk is at revision {revision}, but {durable} was acknowledged"
            ),
        });
    }
    let mut late: Vec<Event> = Vec::new();
    for item in trees.data.range(log_key(durable + 1)..=log_key(revision)) {
        let (key, raw) = item?;
        late.push(decode_event(decode_log_key(&key)?, &raw)?.0);
    }
    shared.compacted.store(compacted, Ordering::Release);
    *guard = Some(trees);
    shared.durable.store(revision, Ordering::Release);
    drop(guard);
    for chunk in late.chunks(REPLAY_CHUNK) {
        let _ = shared.hub.send(chunk.to_vec().into());
    }
    Ok(revision)
}

/// Closes a failed database on a thread of its own, waiting at most
/// `wait` (zero: not at all) for it.
///
/// Dropping a sled handle flushes, and after a failed write that flush can
/// wait forever for a buffer no thread will write. Neither the writer nor
/// shutdown may hang on it, so the handle is dropped where a hang costs
/// only that thread. Returns whether it closed in time (and so released
/// its file lock).
pub(super) fn close_failed(failed: super::Trees, wait: Duration) -> bool {
    let (done, closed) = std::sync::mpsc::channel();
    let spawned = std::thread::Builder::new()
        .name("kelp-store-close".into())
        .spawn(move || {
            drop(failed);
            let _ = done.send(());
        });
    if spawned.is_err() {
        return false;
    }
    closed.recv_timeout(wait).is_ok()
}

/// Refuses a batch of `bytes` that would leave less than [`WRITE_RESERVE`]
/// free, and records (for `/readyz`) whether writes are blocked on space.
pub(super) fn check_write_space(shared: &Shared, bytes: u64) -> std::result::Result<(), String> {
    let Some(free) = free_bytes(&shared.path) else {
        return Ok(());
    };
    // sled writes a value more than once (log, then page rewrites).
    let need = WRITE_RESERVE + 2 * bytes;
    let mut low = shared.space_low.lock();
    if free >= need {
        if low.take().is_some() {
            tracing::info!(free, "space freed on the store's disk; taking writes again");
        }
        return Ok(());
    }
    let reason = format!(
        "not enough free space on the store's disk ({}): {free} bytes free, {need} needed to write safely; free some space (nothing was written)",
        shared.path.display()
    );
    if low.is_none() {
        tracing::error!(%reason, "store writes refused");
    }
    *low = Some(reason.clone());
    Err(reason)
}

fn free_bytes(path: &Path) -> Option<u64> {
    let stat = nix::sys::statvfs::statvfs(path).ok()?;
    Some(stat.blocks_available() * stat.fragment_size())
}

/// Refuses to open a database whose filesystem has no room to finish
/// opening it: sled may write a new snapshot as large as its newest one.
pub(super) fn check_free_space(path: &Path) -> Result<()> {
    let dir = if path.exists() {
        path
    } else {
        path.parent().unwrap_or(path)
    };
    // No answer: a missing parent is reported by the open itself.
    let Some(free) = free_bytes(dir) else {
        return Ok(());
    };
    let snapshot = newest_snapshot_size(path);
    let need = OPEN_RESERVE + 2 * snapshot;
    if free < need {
        return Err(StoreError::Unavailable(format!(
            "only {free} bytes are free on the filesystem of {}, and opening the store safely needs {need}: free some space and try again (nothing was written)",
            path.display()
        )));
    }
    Ok(())
}

fn newest_snapshot_size(path: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(path) else {
        return 0;
    };
    entries
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("snap."))
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .max()
        .unwrap_or(0)
}
