//! Airgap images: every archive in `<data>/agent/images/` is imported into
//! containerd at start, and new or changed files are picked up while kelp
//! runs (polled; a directory of a few tarballs needs no inotify).
//!
//! A bad archive is logged and skipped, never fatal: the node must come up
//! with whatever images it can.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use tokio_util::sync::CancellationToken;

use super::containerd::Runtime;

/// How often the directory is re-read.
const POLL: Duration = Duration::from_secs(5);

/// Archive names kelp imports.
fn is_archive(path: &Path) -> bool {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    [".tar", ".tar.gz", ".tgz", ".tar.zst", ".tar.zstd"]
        .iter()
        .any(|ext| name.ends_with(ext))
}

/// Imports what is new in `dir`; `seen` remembers (size, mtime) per file.
///
/// With `settle`, files modified in the last second are left for the next
/// poll: they may still be being copied in.
pub async fn import_new(
    runtime: &Runtime,
    dir: &Path,
    seen: &mut HashMap<PathBuf, (u64, SystemTime)>,
    settle: bool,
) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut paths: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| is_archive(p))
        .collect();
    paths.sort();
    let mut imported = 0;
    for path in paths {
        let Ok(meta) = std::fs::metadata(&path) else {
            continue;
        };
        let stamp = (
            meta.len(),
            meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
        );
        if seen.get(&path) == Some(&stamp) {
            continue;
        }
        // A file still being copied in changes size between polls; wait for it to settle.
        if settle
            && meta
                .modified()
                .ok()
                .and_then(|m| m.elapsed().ok())
                .is_some_and(|age| age < Duration::from_secs(1))
        {
            continue;
        }
        let started = std::time::Instant::now();
        match runtime.import_archive(&path).await {
            Ok(names) => {
                tracing::info!(file = %path.display(), images = ?names, ms = started.elapsed().as_millis() as u64, "imported image archive");
                imported += 1;
            }
            Err(e) => {
                tracing::warn!(file = %path.display(), error = %e, "cannot import image archive")
            }
        }
        seen.insert(path, stamp);
    }
    imported
}

/// Polls `dir` for new archives until cancelled.
pub async fn watch(
    runtime: Runtime,
    dir: PathBuf,
    mut seen: HashMap<PathBuf, (u64, SystemTime)>,
    cancel: CancellationToken,
) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(POLL) => {}
            _ = cancel.cancelled() => return,
        }
        import_new(&runtime, &dir, &mut seen, true).await;
    }
}
