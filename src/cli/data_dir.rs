//! Permissions of the data directory. The store holds every Secret in the
//! clear, and `server/` holds keys and tokens: the data directory and
//! everything under `server/` are the owner's alone (0700 directories,
//! 0600 files), as k3s keeps them. Installs from before this rule are
//! fixed at every start; files the store creates later inherit the
//! protection of their 0700 directory.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// Restricts `data` (0700) and everything under `data/server`.
pub fn restrict(data: &Path) -> std::io::Result<()> {
    set_mode(data, 0o700)?;
    let server = data.join("server");
    if server.exists() {
        restrict_tree(&server)?;
    }
    Ok(())
}

fn restrict_tree(dir: &Path) -> std::io::Result<()> {
    set_mode(dir, 0o700)?;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        if kind.is_symlink() {
            continue; // never follow links out of the tree
        }
        if kind.is_dir() {
            restrict_tree(&entry.path())?;
        } else {
            set_mode(&entry.path(), 0o600)?;
        }
    }
    Ok(())
}

fn set_mode(path: &Path, mode: u32) -> std::io::Result<()> {
    let meta = std::fs::symlink_metadata(path)?;
    if meta.permissions().mode() & 0o7777 != mode {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn old_installs_are_tightened() {
        let dir = tempfile::tempdir().expect("dir");
        let data = dir.path().join("data");
        std::fs::create_dir_all(data.join("server/db")).expect("mkdir");
        std::fs::create_dir_all(data.join("agent")).expect("mkdir");
        std::fs::write(data.join("server/db/db"), b"secret").expect("write");
        std::fs::write(data.join("agent/x"), b"public").expect("write");
        for p in ["server", "server/db"] {
            std::fs::set_permissions(data.join(p), std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        std::fs::set_permissions(data.join("agent/x"), std::fs::Permissions::from_mode(0o644))
            .unwrap();
        restrict(&data).expect("restrict");
        let mode = |p: &str| {
            std::fs::metadata(data.join(p))
                .unwrap()
                .permissions()
                .mode()
                & 0o777
        };
        assert_eq!(mode(""), 0o700);
        assert_eq!(mode("server"), 0o700);
        assert_eq!(mode("server/db"), 0o700);
        assert_eq!(mode("server/db/db"), 0o600);
        assert_eq!(mode("agent/x"), 0o644, "the agent tree is left as it is");
    }
}
