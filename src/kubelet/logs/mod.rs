//! Container logs: the CRI log files under `/var/log/pods`, the `kelp-logger`
//! program that writes them for containerd, and the reader behind `kubectl logs`.
//!
//! Layout and format follow kubelet so that the usual tools work on a kelp node:
//! `/var/log/pods/<ns>_<pod>_<uid>/<container>/<restartCount>.log`, CRI lines
//! (see [`cri_format`]), rotated files named `<file>.<YYYYMMDD-hhmmss>`. Errors are
//! [`LogError`] values; a malformed line inside a file is skipped, not an error.

pub mod cri_format;
pub mod logger;
pub mod options;
pub mod reader;
pub mod timestamp;

use std::path::{Path, PathBuf};

pub use logger::{logger_uri, run_logger};
pub use options::LogOptions;
pub use reader::read_log;

/// Errors of the log module.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// A query parameter could not be decoded (kubelet answers 400).
    #[error("unable to decode query parameter {name}={value:?}")]
    Decode {
        /// The parameter name.
        name: &'static str,
        /// The raw value.
        value: String,
    },
    /// The decoded options failed validation (kubelet answers 422).
    #[error("{field}: Invalid value: {value}: {reason}")]
    Invalid {
        /// The offending field.
        field: &'static str,
        /// Its value as given.
        value: String,
        /// Why it is invalid, worded as upstream validation.
        reason: &'static str,
    },
    /// A combination of options is not allowed (kubelet answers 422).
    #[error("Forbidden: {0}")]
    Forbidden(&'static str),
    /// The logger's arguments are unusable.
    #[error("logger arguments: {0}")]
    LoggerArgs(String),
    /// A file system operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The path involved.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
}

impl LogError {
    fn io(path: &Path, source: std::io::Error) -> Self {
        LogError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// The default root of pod log directories.
pub const POD_LOGS_ROOT: &str = "/var/log/pods";

/// A pod's log directory: `<root>/<ns>_<pod>_<uid>`.
pub fn pod_log_dir(root: &Path, namespace: &str, pod: &str, uid: &str) -> PathBuf {
    root.join(format!("{namespace}_{pod}_{uid}"))
}

/// Path of a container's log file: `<root>/<ns>_<pod>_<uid>/<container>/<restart>.log`.
pub fn container_log_path(
    root: &Path,
    namespace: &str,
    pod: &str,
    uid: &str,
    container: &str,
    restart_count: u32,
) -> PathBuf {
    pod_log_dir(root, namespace, pod, uid)
        .join(container)
        .join(format!("{restart_count}.log"))
}

/// The pod UID a log directory name (`<ns>_<pod>_<uid>`) ends with.
pub fn pod_uid_of_log_dir(name: &str) -> Option<&str> {
    let (_, uid) = name.rsplit_once('_')?;
    (uid.len() == 36 && uid.bytes().filter(|b| *b == b'-').count() == 4).then_some(uid)
}

/// The rotated files of the log file `path`, oldest first (not including `path`).
pub fn rotated_files(path: &Path) -> Vec<PathBuf> {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return Vec::new();
    };
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let prefix = format!("{}.", name.to_string_lossy());
    let mut found: Vec<(String, PathBuf)> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            let suffix = n.strip_prefix(&prefix)?;
            is_rotation_suffix(suffix).then(|| (n.clone(), e.path()))
        })
        .collect();
    // The suffix is a fixed-width UTC time (plus `.NNN` on a same-second clash),
    // so name order is age order.
    found.sort();
    found.into_iter().map(|(_, p)| p).collect()
}

fn is_rotation_suffix(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 15
        && b[..8].iter().all(u8::is_ascii_digit)
        && b[8] == b'-'
        && b[9..15].iter().all(u8::is_ascii_digit)
        && (b.len() == 15 || (b[15] == b'.' && b[16..].iter().all(u8::is_ascii_digit)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_kubelet_log_path() {
        let p = container_log_path(Path::new("/var/log/pods"), "ns", "web", "u-1", "app", 2);
        assert_eq!(p, PathBuf::from("/var/log/pods/ns_web_u-1/app/2.log"));
    }

    #[test]
    fn lists_rotated_files_oldest_first_and_ignores_others() {
        let dir = tempfile::tempdir().expect("tempdir");
        let base = dir.path().join("0.log");
        for n in [
            "0.log.20260101-000002",
            "0.log.20260101-000001",
            "0.log.20260101-000001.001",
            "0.log.tmp",
            "1.log.20260101-000000",
            "0.log",
        ] {
            std::fs::write(dir.path().join(n), b"").expect("write");
        }
        let names: Vec<String> = rotated_files(&base)
            .iter()
            .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .collect();
        assert_eq!(
            names,
            [
                "0.log.20260101-000001",
                "0.log.20260101-000001.001",
                "0.log.20260101-000002"
            ]
        );
    }
}
