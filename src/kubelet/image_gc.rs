//! Image garbage collection, as upstream's kubelet does it: when the image
//! filesystem (containerd's root) is fuller than `image-gc-high-threshold`
//! percent, unused images are removed, least recently used first, until it
//! is below `image-gc-low-threshold`.
//!
//! An image is in use while any container (running or exited) was created
//! from it. Images younger than `image-minimum-gc-age`, and those pinned by
//! the airgap directory (archives and `*.txt` lists), are never removed.
//! Upstream checks every five minutes; kelp checks every
//! [`CHECK_PERIOD`], since one `statvfs` costs nothing and a small edge
//! disk fills fast.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio_util::sync::CancellationToken;

use super::registry::ImagePuller;

/// How often usage is checked.
pub const CHECK_PERIOD: Duration = Duration::from_secs(10);

/// `--kubelet-arg image-gc-*` settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageGcSettings {
    /// Usage percent at which collection starts (upstream default 85).
    pub high_threshold: u8,
    /// Usage percent collection frees down to (upstream default 80).
    pub low_threshold: u8,
    /// Images younger than this are kept (upstream default 2m).
    pub minimum_age: Duration,
}

impl Default for ImageGcSettings {
    fn default() -> Self {
        Self {
            high_threshold: 85,
            low_threshold: 80,
            minimum_age: Duration::from_secs(120),
        }
    }
}

impl ImageGcSettings {
    /// Checks the thresholds as upstream validates them.
    pub fn validate(&self) -> Result<(), String> {
        if self.high_threshold > 100 {
            return Err("image-gc-high-threshold must be between 0 and 100".into());
        }
        if self.low_threshold > 100 {
            return Err("image-gc-low-threshold must be between 0 and 100".into());
        }
        if self.low_threshold > self.high_threshold {
            return Err(format!(
                "image-gc-low-threshold ({}) must not be above image-gc-high-threshold ({})",
                self.low_threshold, self.high_threshold
            ));
        }
        Ok(())
    }
}

/// Usage of the filesystem holding `path`: (used bytes, capacity bytes).
fn usage(path: &std::path::Path) -> Option<(u64, u64)> {
    let st = nix::sys::statvfs::statvfs(path).ok()?;
    let frsize = st.fragment_size() as u64;
    let capacity = st.blocks() as u64 * frsize;
    let available = st.blocks_available() as u64 * frsize;
    (capacity > 0).then(|| (capacity.saturating_sub(available), capacity))
}

/// Runs image GC until `cancel`.
pub async fn run(
    puller: Arc<ImagePuller>,
    image_fs: PathBuf,
    settings: ImageGcSettings,
    cancel: CancellationToken,
) {
    let mut first_seen: HashMap<String, SystemTime> = HashMap::new();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(CHECK_PERIOD) => {}
            _ = cancel.cancelled() => return,
        }
        if let Err(e) = collect(&puller, &image_fs, &settings, &mut first_seen).await {
            tracing::warn!(error = %e, "image garbage collection failed");
        }
    }
}

/// One pass: frees space if usage is above the high threshold; returns the
/// images removed.
pub async fn collect(
    puller: &ImagePuller,
    image_fs: &std::path::Path,
    settings: &ImageGcSettings,
    first_seen: &mut HashMap<String, SystemTime>,
) -> Result<Vec<String>, super::containerd::RuntimeError> {
    let runtime = puller.runtime();
    let now = SystemTime::now();
    let images = runtime.list_images().await?;
    first_seen.retain(|name, _| images.iter().any(|i| &i.name == name));
    for image in &images {
        first_seen.entry(image.name.clone()).or_insert(now);
    }
    let Some((used, capacity)) = usage(image_fs) else {
        return Ok(vec![]);
    };
    let percent = used.saturating_mul(100) / capacity;
    if percent < u64::from(settings.high_threshold) {
        return Ok(vec![]);
    }
    let target = capacity * u64::from(settings.low_threshold) / 100;
    let in_use: HashSet<String> = runtime
        .list_containers(&[])
        .await?
        .into_iter()
        .map(|c| c.image)
        .collect();
    let pinned = puller.pinned();
    let last_used = puller.last_used();
    let mut candidates: Vec<(SystemTime, String, u64)> = images
        .into_iter()
        .filter(|i| !in_use.contains(&i.name) && !pinned.contains(&i.name))
        .filter(|i| {
            first_seen
                .get(&i.name)
                .and_then(|t| now.duration_since(*t).ok())
                .is_some_and(|age| age >= settings.minimum_age)
        })
        .map(|i| {
            let used_at = last_used
                .get(&i.name)
                .copied()
                .or_else(|| first_seen.get(&i.name).copied())
                .unwrap_or(now);
            (used_at, i.name, i.size)
        })
        .collect();
    candidates.sort();
    tracing::info!(
        percent,
        high = settings.high_threshold,
        low = settings.low_threshold,
        candidates = candidates.len(),
        "image filesystem above the high threshold; removing unused images"
    );
    let mut removed = Vec::new();
    for (_, name, size) in candidates {
        if usage(image_fs).is_some_and(|(used, _)| used <= target) {
            break;
        }
        if runtime.remove_image(&name).await? {
            tracing::info!(image = %name, bytes = size, "image garbage-collected");
            first_seen.remove(&name);
            removed.push(name);
        }
    }
    if usage(image_fs).is_some_and(|(used, _)| used > target) {
        tracing::warn!(
            "image garbage collection could not free enough space: every remaining image is in use, pinned or too young"
        );
    }
    Ok(removed)
}
