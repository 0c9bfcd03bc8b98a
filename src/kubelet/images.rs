//! Airgap images: every archive in `<data>/agent/images/` is imported into
//! containerd at start, and new or changed files are picked up while kelp
//! runs (polled; a directory of a few tarballs needs no inotify).
//!
//! A bad archive is logged and skipped, never fatal: the node must come up
//! with whatever images it can.
//!
//! `*.txt` files in the same directory list image references (one per
//! line, `#` comments) that are pulled once at start, after the archives
//! are imported, as k3s does. Images from archives and lists are pinned:
//! image GC never removes them.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use tokio_util::sync::CancellationToken;

use std::sync::Arc;

use super::registry::{ImagePuller, PullPolicy};

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
    puller: &ImagePuller,
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
        match puller.runtime().import_archive(&path).await {
            Ok(names) => {
                for name in &names {
                    puller.pin(name);
                }
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
    puller: Arc<ImagePuller>,
    dir: PathBuf,
    mut seen: HashMap<PathBuf, (u64, SystemTime)>,
    cancel: CancellationToken,
) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(POLL) => {}
            _ = cancel.cancelled() => return,
        }
        import_new(&puller, &dir, &mut seen, true).await;
    }
}

/// The image references listed in `dir/*.txt`.
pub fn listed_images(dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return vec![];
    };
    let mut files: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "txt"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for file in files {
        let Ok(text) = std::fs::read_to_string(&file) else {
            tracing::warn!(file = %file.display(), "cannot read image list");
            continue;
        };
        for line in text.lines() {
            let line = line.split('#').next().unwrap_or("").trim();
            if !line.is_empty() && !out.iter().any(|o| o == line) {
                out.push(line.to_string());
            }
        }
    }
    out
}

/// Pulls every image listed in `dir/*.txt` that is not on the node yet, and
/// pins them all.
pub async fn prepull(puller: Arc<ImagePuller>, dir: PathBuf) {
    for image in listed_images(&dir) {
        match crate::kubelet::registry::parse_reference(&image) {
            Ok(r) => puller.pin(&r.name()),
            Err(f) => {
                tracing::warn!(%image, message = %f.message, "skipping image list entry");
                continue;
            }
        }
        let started = std::time::Instant::now();
        match puller.ensure(&image, PullPolicy::IfNotPresent, &[]).await {
            Ok(done) => {
                tracing::info!(%image, name = %done.info().name, ms = started.elapsed().as_millis() as u64, "image from list ready")
            }
            Err(f) => {
                tracing::warn!(%image, reason = f.reason, message = %f.message, "cannot pre-pull listed image")
            }
        }
    }
}
