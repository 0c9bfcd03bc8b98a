//! Consistent snapshots of a store: `kelp snapshot save|restore`.
//!
//! A snapshot is every key at one revision, written as a stream so that a
//! large store never has to fit in memory: it is read page by page at a
//! fixed revision (the same mechanism as a paged list), which is what makes
//! it consistent while writes go on. The event log is not included; a
//! restored store starts with its history compacted at the snapshot's
//! revision, so watchers from before the restore get "410 Expired" and
//! relist, exactly as after an etcd restore.
//!
//! Format (big endian): `"KELPSNAP" | format u32 | revision u64 |
//! records… | end marker u32::MAX | count u64 | crc32 u32`, each record
//! `key_len u32 | key | create u64 | mod u64 | version u64 | len u32 | value`.
//! The CRC covers everything before it, so truncation and corruption are
//! detected before anything is written to the target.

use std::io::{self, Read, Write};
use std::path::Path;

use super::sled::{SledConfig, SledStore};
use super::{KeyValue, RangeRequest, Revision, StoreError};

const MAGIC: &[u8; 8] = b"KELPSNAP";
const FORMAT: u32 = 1;
const END: u32 = u32::MAX;
const PAGE: usize = 1000;

/// What a snapshot holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SnapshotInfo {
    /// The revision the snapshot was taken at.
    pub revision: Revision,
    /// Number of keys.
    pub keys: u64,
}

/// Errors of saving or restoring a snapshot.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// Reading or writing the snapshot file failed.
    #[error("snapshot i/o: {0}")]
    Io(#[from] io::Error),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The file is not a kelp snapshot or is damaged.
    #[error("not a valid kelp snapshot: {0}")]
    Format(String),
}

struct Crc<W> {
    inner: W,
    hasher: crc32fast::Hasher,
}

impl<W: Write> Write for Crc<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl<R: Read> Read for Crc<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// Writes a consistent snapshot of `store` to `out`. Blocking: call it from
/// a blocking thread.
pub fn save(store: &SledStore, out: impl Write) -> Result<SnapshotInfo, SnapshotError> {
    let shared = store.shared();
    let revision = shared.durable();
    let mut w = Crc {
        inner: io::BufWriter::new(out),
        hasher: crc32fast::Hasher::new(),
    };
    w.write_all(MAGIC)?;
    w.write_all(&FORMAT.to_be_bytes())?;
    w.write_all(&revision.to_be_bytes())?;
    let mut keys = 0u64;
    let mut continue_after = None;
    loop {
        let page = shared.range_at(&RangeRequest {
            prefix: String::new(),
            continue_after: continue_after.take(),
            limit: PAGE,
            revision: Some(revision),
        })?;
        for kv in &page.kvs {
            write_record(&mut w, kv)?;
            keys += 1;
        }
        if !page.more {
            break;
        }
        continue_after = page.kvs.last().map(|kv| kv.key.clone());
    }
    w.write_all(&END.to_be_bytes())?;
    w.write_all(&keys.to_be_bytes())?;
    let crc = w.hasher.clone().finalize();
    w.inner.write_all(&crc.to_be_bytes())?;
    w.inner.flush()?;
    Ok(SnapshotInfo { revision, keys })
}

fn write_record(w: &mut impl Write, kv: &KeyValue) -> io::Result<()> {
    w.write_all(&(kv.key.len() as u32).to_be_bytes())?;
    w.write_all(kv.key.as_bytes())?;
    w.write_all(&kv.create_revision.to_be_bytes())?;
    w.write_all(&kv.mod_revision.to_be_bytes())?;
    w.write_all(&kv.version.to_be_bytes())?;
    w.write_all(&(kv.value.len() as u32).to_be_bytes())?;
    w.write_all(&kv.value)
}

/// Checks a whole snapshot and loads it into a new database at `db_path`,
/// which must not exist yet. Blocking.
pub fn restore(input: impl Read, db_path: &Path) -> Result<SnapshotInfo, SnapshotError> {
    let (info, kvs) = read_all(input)?;
    if db_path.exists() {
        return Err(SnapshotError::Io(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("{} already exists", db_path.display()),
        )));
    }
    let store = SledStore::open(SledConfig::new(db_path))?;
    store.shared().load(&kvs, info.revision)?;
    Ok(info)
}

/// Reads and verifies a snapshot fully (so a damaged one restores nothing).
fn read_all(input: impl Read) -> Result<(SnapshotInfo, Vec<KeyValue>), SnapshotError> {
    let mut r = Crc {
        inner: io::BufReader::new(input),
        hasher: crc32fast::Hasher::new(),
    };
    let truncated = |e: io::Error| match e.kind() {
        io::ErrorKind::UnexpectedEof => SnapshotError::Format("file is truncated".into()),
        _ => SnapshotError::Io(e),
    };
    let mut magic = [0u8; 8];
    r.read_exact(&mut magic).map_err(truncated)?;
    if &magic != MAGIC {
        return Err(SnapshotError::Format("missing KELPSNAP header".into()));
    }
    let format = read_u32(&mut r).map_err(truncated)?;
    if format != FORMAT {
        return Err(SnapshotError::Format(format!(
            "unsupported format version {format}"
        )));
    }
    let revision = read_u64(&mut r).map_err(truncated)?;
    let mut kvs = Vec::new();
    loop {
        let key_len = read_u32(&mut r).map_err(truncated)?;
        if key_len == END {
            break;
        }
        let key = String::from_utf8(read_bytes(&mut r, key_len).map_err(truncated)?)
            .map_err(|_| SnapshotError::Format("key is not utf-8".into()))?;
        let create_revision = read_u64(&mut r).map_err(truncated)?;
        let mod_revision = read_u64(&mut r).map_err(truncated)?;
        let version = read_u64(&mut r).map_err(truncated)?;
        let len = read_u32(&mut r).map_err(truncated)?;
        let value = read_bytes(&mut r, len).map_err(truncated)?.into();
        kvs.push(KeyValue {
            key,
            value,
            create_revision,
            mod_revision,
            version,
        });
    }
    let keys = read_u64(&mut r).map_err(truncated)?;
    let expected = r.hasher.clone().finalize();
    let mut crc = [0u8; 4];
    r.inner.read_exact(&mut crc).map_err(truncated)?;
    if u32::from_be_bytes(crc) != expected || keys != kvs.len() as u64 {
        return Err(SnapshotError::Format("checksum mismatch".into()));
    }
    Ok((SnapshotInfo { revision, keys }, kvs))
}

fn read_u32(r: &mut impl Read) -> io::Result<u32> {
    let mut b = [0u8; 4];
    r.read_exact(&mut b)?;
    Ok(u32::from_be_bytes(b))
}

fn read_u64(r: &mut impl Read) -> io::Result<u64> {
    let mut b = [0u8; 8];
    r.read_exact(&mut b)?;
    Ok(u64::from_be_bytes(b))
}

fn read_bytes(r: &mut impl Read, len: u32) -> io::Result<Vec<u8>> {
    // Read incrementally so a damaged length cannot allocate gigabytes.
    let mut out = Vec::new();
    r.take(u64::from(len)).read_to_end(&mut out)?;
    if out.len() != len as usize {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    Ok(out)
}
