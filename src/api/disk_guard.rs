//! Refusing writes before the store's disk is full.
//!
//! sled cannot be trusted to fail cleanly on a full disk: a failed flush
//! leaves the store read-only until restart, and a start on a full disk
//! can leave its snapshot files damaged. So the apiserver stops taking new
//! writes while the store's filesystem has less than [`MIN_FREE`] left:
//! creates, updates and patches get a 507, reads and deletes (which free
//! space) go on, and writes come back by themselves once space is freed.
//! The free space is read at most once a second.

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
}

impl DiskGuard {
    /// A guard keeping `min_free` bytes free on the filesystem holding
    /// `dir` (none, or zero: never refuses).
    pub fn new(dir: Option<PathBuf>, min_free: u64) -> Self {
        Self {
            dir: dir.filter(|_| min_free > 0),
            min_free,
            last: Mutex::new(None),
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
        } else if free >= self.min_free && was_low {
            tracing::info!(dir = %dir.display(), free, "space freed on the store's disk: taking writes again");
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
