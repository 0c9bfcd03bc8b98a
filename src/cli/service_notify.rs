//! Readiness for the service manager: systemd's `Type=notify` protocol.
//!
//! systemd starts a `Type=notify` unit's dependants, and `systemctl start`
//! returns, only once the service sends `READY=1` to `$NOTIFY_SOCKET`. So
//! kelp sends it when it is usable (the API answering for a server, the
//! node registered for an agent), not when the process exists. Without
//! `NOTIFY_SOCKET` (OpenRC, a shell, a test) this does nothing.

use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};

/// Tells the service manager that kelp is ready, with a status line for
/// `systemctl status`. Failures are logged, never fatal: a service
/// manager that cannot be told is no reason to stop serving.
pub(super) fn ready(status: &str) {
    let Some(socket) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    if let Err(e) = send(&socket, &format!("READY=1\nSTATUS={status}\n")) {
        tracing::warn!(socket = ?socket, error = %e, "cannot notify the service manager");
    }
}

fn send(socket: &std::ffi::OsStr, message: &str) -> std::io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let bytes = socket.as_bytes();
    // A leading '@' names a socket in the abstract namespace (sd_notify(3)).
    let addr = match bytes.strip_prefix(b"@") {
        Some(name) => SocketAddr::from_abstract_name(name)?,
        None => SocketAddr::from_pathname(socket)?,
    };
    UnixDatagram::unbound()?.send_to_addr(message.as_bytes(), &addr)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_reaches_a_path_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let listener = UnixDatagram::bind(&path).unwrap();
        send(path.as_os_str(), "READY=1\nSTATUS=up\n").unwrap();
        let mut buf = [0u8; 64];
        let n = listener.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1\nSTATUS=up\n");
    }

    #[test]
    fn ready_reaches_an_abstract_socket() {
        let name = format!("kelp-notify-test-{}", std::process::id());
        let listener =
            UnixDatagram::bind_addr(&SocketAddr::from_abstract_name(name.as_bytes()).unwrap())
                .unwrap();
        send(std::ffi::OsStr::new(&format!("@{name}")), "READY=1\n").unwrap();
        let mut buf = [0u8; 16];
        let n = listener.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1\n");
    }
}
