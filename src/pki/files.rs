//! Reading and atomically writing the PKI's files.
//!
//! Credentials are written to a temporary file beside the target and renamed
//! over it, so a crash mid-write leaves either the old or the new file, never a
//! truncated key. The mode is applied before the data is written, so a private
//! key is never readable by others even for an instant. Failures name the path.

use std::fs::{self, OpenOptions};
use std::io::{ErrorKind, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::error::PkiError;

/// Mode of private keys.
pub(super) const KEY_MODE: u32 = 0o600;
/// Mode of certificates, which are public.
pub(super) const CERT_MODE: u32 = 0o644;

/// Distinguishes temporary files of concurrent writers within one process.
static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Writes a file atomically (tmp + rename) with the given mode, creating parent dirs.
pub fn write_private(path: &Path, contents: &[u8], mode: u32) -> Result<(), PkiError> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    fs::create_dir_all(&parent).map_err(|e| PkiError::io("create directory", &parent, e))?;
    // Every start rewrites the kubeconfig and friends with what they
    // already hold: leave such a file alone (no disk write on an SD card,
    // no new mtime for tools that watch it).
    if let Ok(meta) = fs::metadata(path)
        && meta.permissions().mode() & 0o7777 == mode
        && meta.len() == contents.len() as u64
        && fs::read(path).is_ok_and(|old| old == contents)
    {
        return Ok(());
    }
    let tmp = tmp_path(&parent, path);
    let result = write_then_rename(&tmp, path, contents, mode);
    if result.is_err() {
        // Best effort: a leftover temp file is harmless but untidy.
        let _ = fs::remove_file(&tmp);
    }
    result
}

fn tmp_path(parent: &Path, path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let n = TMP_COUNTER.fetch_add(1, Ordering::Relaxed);
    parent.join(format!(".{name}.tmp.{}.{n}", std::process::id()))
}

fn write_then_rename(tmp: &Path, path: &Path, contents: &[u8], mode: u32) -> Result<(), PkiError> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(tmp)
        .map_err(|e| PkiError::io("create", tmp, e))?;
    // The umask may have narrowed the mode given at creation; set it exactly.
    file.set_permissions(fs::Permissions::from_mode(mode))
        .map_err(|e| PkiError::io("set permissions on", tmp, e))?;
    file.write_all(contents)
        .map_err(|e| PkiError::io("write", tmp, e))?;
    file.sync_all().map_err(|e| PkiError::io("sync", tmp, e))?;
    fs::rename(tmp, path).map_err(|e| PkiError::io("rename into", path, e))
}

/// Reads a UTF-8 file, or `None` if it does not exist.
pub(super) fn read_optional(path: &Path) -> Result<Option<String>, PkiError> {
    match fs::read(path) {
        Ok(bytes) => String::from_utf8(bytes)
            .map(Some)
            .map_err(|_| PkiError::invalid_file(path, "is not UTF-8 text")),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(PkiError::io("read", path, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::tests::TestDir;

    #[test]
    fn write_private_creates_parents_and_sets_exact_mode() {
        let dir = TestDir::new("files-mode");
        let path = dir.path().join("a/b/secret.key");
        write_private(&path, b"one", 0o600).unwrap();
        let meta = fs::metadata(&path).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        assert_eq!(fs::read(&path).unwrap(), b"one");

        write_private(&path, b"two", 0o644).unwrap();
        let meta = fs::metadata(&path).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o644);
        assert_eq!(fs::read(&path).unwrap(), b"two");
    }

    #[test]
    fn write_private_leaves_an_identical_file_untouched() {
        let dir = TestDir::new("files-same");
        let path = dir.path().join("kubeconfig");
        write_private(&path, b"same", 0o600).unwrap();
        let inode = |p: &Path| std::os::unix::fs::MetadataExt::ino(&fs::metadata(p).unwrap());
        let before = inode(&path);
        write_private(&path, b"same", 0o600).unwrap();
        assert_eq!(inode(&path), before, "rewritten although identical");
        // A different mode or content is written (a new file, renamed in).
        write_private(&path, b"same", 0o640).unwrap();
        assert_ne!(inode(&path), before);
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o640
        );
    }

    #[test]
    fn write_private_leaves_no_temporary_files() {
        let dir = TestDir::new("files-tmp");
        let path = dir.path().join("x.crt");
        write_private(&path, b"data", CERT_MODE).unwrap();
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("x.crt")]);
    }

    #[test]
    fn write_private_error_names_the_file() {
        let dir = TestDir::new("files-err");
        let blocker = dir.path().join("file");
        fs::write(&blocker, b"").unwrap();
        let err = write_private(&blocker.join("child.key"), b"x", KEY_MODE).unwrap_err();
        assert!(
            err.to_string().contains(&*blocker.to_string_lossy()),
            "{err}"
        );
    }

    #[test]
    fn read_optional_distinguishes_missing_from_present() {
        let dir = TestDir::new("files-read");
        let path = dir.path().join("f");
        assert!(read_optional(&path).unwrap().is_none());
        fs::write(&path, "hello").unwrap();
        assert_eq!(read_optional(&path).unwrap().as_deref(), Some("hello"));
        fs::write(&path, [0xff, 0xfe]).unwrap();
        let err = read_optional(&path).unwrap_err();
        assert!(err.to_string().contains("is not UTF-8"), "{err}");
    }
}
