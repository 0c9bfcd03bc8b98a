//! Creating FIFOs for container stdio.
//!
//! The shim opens stdio paths as FIFOs; kelp creates them with mode 0600 so only root
//! (kelp and the shim) can read a container's input. An existing FIFO is reused, which
//! keeps re-attaching after a kelp restart simple; an existing non-FIFO is an error.

use std::os::unix::fs::FileTypeExt;
use std::path::Path;

use nix::sys::stat::Mode;

use super::error::{Result, RuntimeError};

/// Creates a FIFO at `path` (mode 0600) unless one is already there.
pub fn make_fifo(path: &Path) -> Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_fifo() => return Ok(()),
        Ok(_) => {
            return Err(RuntimeError::Io {
                op: "creating fifo",
                path: path.into(),
                source: std::io::Error::new(std::io::ErrorKind::AlreadyExists, "not a fifo"),
            });
        }
        Err(_) => {}
    }
    nix::unistd::mkfifo(path, Mode::from_bits_truncate(0o600))
        .map_err(|e| RuntimeError::io("creating fifo", path)(std::io::Error::from(e)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_fifos_idempotently_and_refuses_files() {
        let dir = tempfile::tempdir().map_err(|e| e.to_string());
        let Ok(dir) = dir else { panic!("tempdir") };
        let p = dir.path().join("out");
        assert!(make_fifo(&p).is_ok());
        assert!(
            std::fs::metadata(&p)
                .map(|m| m.file_type().is_fifo())
                .unwrap_or(false)
        );
        assert!(make_fifo(&p).is_ok(), "existing fifo is reused");
        let f = dir.path().join("file");
        assert!(std::fs::write(&f, b"x").is_ok());
        assert!(make_fifo(&f).is_err());
    }
}
