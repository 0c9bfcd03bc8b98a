//! Streaming an image archive into containerd's content store.
//!
//! The archive (plain, gzip or zstd tar — sniffed by magic bytes, not by name) is read
//! once, on a blocking thread, and every regular file except the small layout documents
//! is uploaded as a blob while it streams; nothing is spooled to disk and only the layout
//! documents (`index.json`, `manifest.json`, …) are kept in memory. The blocking reader
//! and the async uploader talk over a bounded channel, so a slow containerd slows the
//! reader instead of filling memory. Which layout the archive has is decided afterwards
//! by `oci_layout` / `docker_archive`.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use tokio::sync::mpsc;

use super::super::client::{Lease, Runtime};
use super::super::error::{Result, RuntimeError};
use super::content::{CHUNK, Upload};

/// Largest layout document (`manifest.json`, `index.json`, …) accepted.
const MAX_META: u64 = 16 * 1024 * 1024;

/// Top-level files kept in memory instead of being uploaded.
const META_FILES: [&str; 4] = ["manifest.json", "index.json", "oci-layout", "repositories"];

/// A file of the archive now stored in containerd.
#[derive(Clone, Debug)]
pub(crate) struct Blob {
    pub(crate) digest: String,
    pub(crate) size: i64,
    /// Leading bytes, to tell gzip/zstd layers from plain tar.
    pub(crate) magic: Vec<u8>,
}

/// What one pass over an archive produced.
#[derive(Debug, Default)]
pub(crate) struct Contents {
    /// Layout documents by path.
    pub(crate) meta: HashMap<String, Vec<u8>>,
    /// Uploaded files by path.
    pub(crate) blobs: HashMap<String, Blob>,
    /// Symlinks (path → target path, resolved relative to the link's directory).
    pub(crate) links: HashMap<String, String>,
}

impl Contents {
    /// The blob stored at `path`, following symlinks (docker save dedups layers that way).
    pub(crate) fn blob(&self, path: &str) -> Option<&Blob> {
        let mut p = clean(path);
        for _ in 0..8 {
            if let Some(b) = self.blobs.get(&p) {
                return Some(b);
            }
            p = self.links.get(&p)?.clone();
        }
        None
    }
}

/// Messages from the archive reader to the uploader.
enum Item {
    Meta(String, Vec<u8>),
    Link(String, String),
    Start { path: String, size: u64 },
    Chunk(Vec<u8>),
    End,
}

/// Reads `file` and uploads its blobs under `lease`.
pub(crate) async fn collect(rt: &Runtime, lease: &Lease, file: &Path) -> Result<Contents> {
    let (tx, mut rx) = mpsc::channel(8);
    let path = file.to_path_buf();
    let reader = tokio::task::spawn_blocking(move || read_archive(&path, &tx));
    let mut contents = Contents::default();
    let uploaded = receive(rt, lease, &mut rx, &mut contents).await;
    drop(rx); // unblocks the reader if the upload failed
    let read = reader
        .await
        .map_err(|e| bad(file, &format!("archive reader panicked: {e}")))?;
    read?;
    uploaded?;
    Ok(contents)
}

async fn receive(
    rt: &Runtime,
    lease: &Lease,
    rx: &mut mpsc::Receiver<Item>,
    contents: &mut Contents,
) -> Result<()> {
    while let Some(item) = rx.recv().await {
        match item {
            Item::Meta(path, data) => {
                contents.meta.insert(path, data);
            }
            Item::Link(path, target) => {
                contents.links.insert(path, target);
            }
            Item::Start { path, size } => {
                let blob = upload(rt, lease, rx, &path, size).await?;
                contents.blobs.insert(path, blob);
            }
            Item::Chunk(_) | Item::End => {} // only inside an upload
        }
    }
    Ok(())
}

async fn upload(
    rt: &Runtime,
    lease: &Lease,
    rx: &mut mpsc::Receiver<Item>,
    path: &str,
    size: u64,
) -> Result<Blob> {
    let expected = path
        .strip_prefix("blobs/sha256/")
        .filter(|hex| hex.len() == 64 && !hex.contains('/'))
        .map(|hex| format!("sha256:{hex}"));
    let total = i64::try_from(size).unwrap_or(i64::MAX);
    let mut up = Upload::begin(rt, lease, total, expected).await?;
    loop {
        match rx.recv().await {
            Some(Item::Chunk(data)) => {
                if let Err(e) = up.push(&data).await {
                    up.abort().await;
                    return Err(e);
                }
            }
            Some(Item::End) => break,
            // The reader stopped mid-file: it reports why when joined.
            _ => {
                up.abort().await;
                return Ok(Blob {
                    digest: String::new(),
                    size: 0,
                    magic: Vec::new(),
                });
            }
        }
    }
    let magic = up.magic.clone();
    let digest = up.finish(HashMap::new()).await?;
    Ok(Blob {
        digest,
        size: total,
        magic,
    })
}

/// Compression of an archive or layer, from its first bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Compression {
    /// Plain tar.
    None,
    /// gzip (`1f 8b`).
    Gzip,
    /// zstd (`28 b5 2f fd`).
    Zstd,
}

impl Compression {
    /// Sniffs the compression from leading bytes.
    pub(crate) fn detect(magic: &[u8]) -> Self {
        if magic.starts_with(&[0x1f, 0x8b]) {
            Compression::Gzip
        } else if magic.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Compression::Zstd
        } else {
            Compression::None
        }
    }
}

fn bad(file: &Path, reason: &str) -> RuntimeError {
    RuntimeError::Image {
        file: file.display().to_string(),
        reason: reason.to_string(),
    }
}

/// Opens `file` with the decompressor its magic bytes call for.
fn open_decompressed(file: &Path) -> Result<Box<dyn Read + Send>> {
    let mut f = File::open(file).map_err(RuntimeError::io("opening image archive", file))?;
    let mut magic = [0u8; 4];
    let n = read_up_to(&mut f, &mut magic).map_err(RuntimeError::io("reading", file))?;
    f.seek(SeekFrom::Start(0))
        .map_err(RuntimeError::io("reading", file))?;
    let f = std::io::BufReader::with_capacity(CHUNK, f);
    Ok(match Compression::detect(&magic[..n]) {
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(f)),
        Compression::Zstd => Box::new(
            ruzstd::decoding::StreamingDecoder::new(f)
                .map_err(|e| bad(file, &format!("invalid zstd stream: {e}")))?,
        ),
        Compression::None => Box::new(f),
    })
}

fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// The blocking half: walks the tar and feeds `tx`. Stops quietly if `tx` is closed.
fn read_archive(file: &Path, tx: &mpsc::Sender<Item>) -> Result<()> {
    let tar_err = |e: std::io::Error| bad(file, &format!("reading tar: {e}"));
    let mut archive = tar::Archive::new(open_decompressed(file)?);
    for entry in archive.entries().map_err(tar_err)? {
        let mut entry = entry.map_err(tar_err)?;
        let path = clean(&entry.path().map_err(tar_err)?.to_string_lossy());
        let kind = entry.header().entry_type();
        let sent = if kind.is_symlink() || kind.is_hard_link() {
            let target = entry.link_name().map_err(tar_err)?.unwrap_or_default();
            let target = target.to_string_lossy();
            let resolved = if kind.is_symlink() {
                relative_to(&path, &target)
            } else {
                clean(&target)
            };
            tx.blocking_send(Item::Link(path, resolved)).is_ok()
        } else if !kind.is_file() || is_legacy_metadata(&path) {
            true
        } else if META_FILES.contains(&path.as_str()) {
            if entry.size() > MAX_META {
                return Err(bad(
                    file,
                    &format!("{path} is larger than {MAX_META} bytes"),
                ));
            }
            let mut data = Vec::new();
            entry.read_to_end(&mut data).map_err(tar_err)?;
            tx.blocking_send(Item::Meta(path, data)).is_ok()
        } else {
            stream_entry(&mut entry, path, tx).map_err(tar_err)?
        };
        if !sent {
            return Ok(());
        }
    }
    Ok(())
}

/// Sends one file as Start, Chunk…, End; false if the receiver went away.
fn stream_entry(
    entry: &mut tar::Entry<'_, impl Read>,
    path: String,
    tx: &mpsc::Sender<Item>,
) -> std::io::Result<bool> {
    if tx
        .blocking_send(Item::Start {
            path,
            size: entry.size(),
        })
        .is_err()
    {
        return Ok(false);
    }
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = read_up_to(entry, &mut buf)?;
        if n == 0 {
            return Ok(tx.blocking_send(Item::End).is_ok());
        }
        if tx.blocking_send(Item::Chunk(buf[..n].to_vec())).is_err() {
            return Ok(false);
        }
    }
}

/// Old docker-save per-layer `json` and `VERSION` files carry nothing containerd needs.
fn is_legacy_metadata(path: &str) -> bool {
    path.ends_with("/json") || path.ends_with("/VERSION")
}

/// Normalises an archive path: no leading `./` or `/`, no `.` components.
pub(crate) fn clean(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    parts.join("/")
}

/// Resolves a symlink target relative to the directory of `link`.
fn relative_to(link: &str, target: &str) -> String {
    if target.starts_with('/') {
        return clean(target);
    }
    let dir = link.rsplit_once('/').map(|(d, _)| d).unwrap_or("");
    clean(&format!("{dir}/{target}"))
}

/// The archive path as given, for messages.
pub(crate) fn display(file: &Path) -> String {
    PathBuf::from(file).display().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_compression_by_magic() {
        assert_eq!(Compression::detect(&[0x1f, 0x8b, 8, 0]), Compression::Gzip);
        assert_eq!(
            Compression::detect(&[0x28, 0xb5, 0x2f, 0xfd]),
            Compression::Zstd
        );
        assert_eq!(Compression::detect(b"manifest"), Compression::None);
        assert_eq!(Compression::detect(&[]), Compression::None);
    }

    #[test]
    fn cleans_paths_and_resolves_links() {
        assert_eq!(clean("./blobs/sha256/ab"), "blobs/sha256/ab");
        assert_eq!(clean("/a/./b/../c"), "a/c");
        assert_eq!(
            relative_to("abc/layer.tar", "../def/layer.tar"),
            "def/layer.tar"
        );
        assert_eq!(relative_to("layer.tar", "/x/y"), "x/y");
    }

    #[test]
    fn blob_lookup_follows_links() {
        let mut c = Contents::default();
        let blob = Blob {
            digest: "sha256:x".into(),
            size: 1,
            magic: vec![],
        };
        c.blobs.insert("a/layer.tar".into(), blob);
        c.links.insert("b/layer.tar".into(), "a/layer.tar".into());
        assert_eq!(
            c.blob("./b/layer.tar").map(|b| b.digest.as_str()),
            Some("sha256:x")
        );
        assert!(c.blob("c/layer.tar").is_none());
    }
}
