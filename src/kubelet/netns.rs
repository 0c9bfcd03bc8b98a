//! Named network namespaces, laid out as `ip netns` does (`/run/netns/<name>`).
//!
//! A pod's network namespace must outlive any process in it, so it is kept alive
//! by a bind mount of the namespace file onto `<dir>/<name>`; `ip netns exec`, CNI
//! plugins and containerd all accept that path. Entering a namespace changes the
//! calling *thread*, so every namespace switch here happens on a short-lived OS
//! thread of its own: tokio's workers never change namespace. Sockets keep the
//! namespace they were created in, so [`connect_tcp`] and [`bind_tcp`] create the
//! socket on such a thread and hand it back to tokio.
//!
//! `lo` is brought up with one hand-built `RTM_NEWLINK` netlink request (no ioctl,
//! no unsafe code, no netlink crate). Failures are [`NetnsError`]s naming the step
//! that failed; a half-made namespace is removed before the error is returned.

use std::fs::File;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::errno::Errno;
use nix::libc;
use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sched::{CloneFlags, setns, unshare};
use nix::sys::socket::{
    AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol, SockType, recv, sendto, socket,
};
use tokio::net::{TcpListener, TcpSocket, TcpStream};

/// Where `ip netns` keeps named namespaces.
pub const DEFAULT_NETNS_DIR: &str = "/run/netns";

/// Errors creating or removing a network namespace.
#[derive(Debug, thiserror::Error)]
pub enum NetnsError {
    /// The name is empty, `.`/`..`, or contains `/`.
    #[error("invalid network namespace name {0:?}")]
    InvalidName(String),
    /// A namespace (or some file) already has that path.
    #[error("network namespace {0} already exists")]
    Exists(PathBuf),
    /// A system call failed.
    #[error("{op} {path}: {source}")]
    Sys {
        /// What was being done.
        op: &'static str,
        /// The path it was done on.
        path: PathBuf,
        /// The error number.
        source: Errno,
    },
    /// A file operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The path involved.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// The kernel refused to bring `lo` up.
    #[error("bringing lo up: {0}")]
    Loopback(String),
    /// The helper thread could not be started or died.
    #[error("network namespace thread failed: {0}")]
    Thread(String),
}

fn sys(op: &'static str, path: &Path) -> impl FnOnce(Errno) -> NetnsError {
    let path = path.to_path_buf();
    move |source| NetnsError::Sys { op, path, source }
}

/// Creates the network namespace `dir/name` with `lo` up and returns its path.
pub fn create(dir: &Path, name: &str) -> Result<PathBuf, NetnsError> {
    if name.is_empty() || name == "." || name == ".." || name.contains('/') {
        return Err(NetnsError::InvalidName(name.to_string()));
    }
    std::fs::create_dir_all(dir).map_err(|source| NetnsError::Io {
        path: dir.into(),
        source,
    })?;
    make_shared(dir)?;
    let path = dir.join(name);
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
    {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Err(NetnsError::Exists(path)),
        Err(source) => return Err(NetnsError::Io { path, source }),
    }
    let target = path.clone();
    let made = std::thread::Builder::new()
        .name("kelp-netns-new".into())
        .spawn(move || new_netns_at(&target))
        .map_err(|e| NetnsError::Thread(e.to_string()))
        .and_then(|t| {
            t.join()
                .map_err(|_| NetnsError::Thread("panicked".into()))?
        });
    if let Err(e) = made {
        let _ = remove(&path);
        return Err(e);
    }
    Ok(path)
}

/// Makes `dir` a shared mount point (binding it onto itself first if it is not a
/// mount point), as iproute2 does, so namespace mounts made under it propagate to
/// mount namespaces created later (containers, other tools).
fn make_shared(dir: &Path) -> Result<(), NetnsError> {
    let shared = MsFlags::MS_SHARED | MsFlags::MS_REC;
    match mount(None::<&str>, dir, None::<&str>, shared, None::<&str>) {
        Ok(()) => Ok(()),
        Err(Errno::EINVAL) => {
            let bind = MsFlags::MS_BIND | MsFlags::MS_REC;
            mount(Some(dir), dir, None::<&str>, bind, None::<&str>)
                .map_err(sys("bind mount", dir))?;
            mount(None::<&str>, dir, None::<&str>, shared, None::<&str>)
                .map_err(sys("make shared", dir))
        }
        Err(e) => Err(sys("make shared", dir)(e)),
    }
}

/// Runs on a dedicated thread, which ends inside the new namespace and exits.
fn new_netns_at(target: &Path) -> Result<(), NetnsError> {
    unshare(CloneFlags::CLONE_NEWNET).map_err(sys("unshare", target))?;
    mount(
        Some("/proc/thread-self/ns/net"),
        target,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .map_err(sys("bind mount", target))?;
    set_loopback_up()
}

/// Sends `RTM_NEWLINK` for `lo` with IFF_UP set and waits for the kernel's ack.
fn set_loopback_up() -> Result<(), NetnsError> {
    let err = |what: &str, e: Errno| NetnsError::Loopback(format!("{what}: {e}"));
    let index = nix::net::if_::if_nametoindex("lo").map_err(|e| err("if_nametoindex", e))?;
    let sock = socket(
        AddressFamily::Netlink,
        SockType::Raw,
        SockFlag::SOCK_CLOEXEC,
        SockProtocol::NetlinkRoute,
    )
    .map_err(|e| err("socket", e))?;
    let mut msg = Vec::with_capacity(32);
    msg.extend_from_slice(&32u32.to_ne_bytes()); // nlmsg_len: header + ifinfomsg
    msg.extend_from_slice(&libc::RTM_NEWLINK.to_ne_bytes());
    msg.extend_from_slice(&((libc::NLM_F_REQUEST | libc::NLM_F_ACK) as u16).to_ne_bytes());
    msg.extend_from_slice(&1u32.to_ne_bytes()); // sequence number
    msg.extend_from_slice(&0u32.to_ne_bytes()); // port id: the kernel fills it in
    msg.extend_from_slice(&[libc::AF_UNSPEC as u8, 0, 0, 0]); // family, pad, type
    msg.extend_from_slice(&(index as i32).to_ne_bytes());
    msg.extend_from_slice(&(libc::IFF_UP as u32).to_ne_bytes()); // flags
    msg.extend_from_slice(&(libc::IFF_UP as u32).to_ne_bytes()); // change mask
    sendto(
        sock.as_raw_fd(),
        &msg,
        &NetlinkAddr::new(0, 0),
        MsgFlags::empty(),
    )
    .map_err(|e| err("send", e))?;
    let mut buf = [0u8; 1024];
    let n = recv(sock.as_raw_fd(), &mut buf, MsgFlags::empty()).map_err(|e| err("recv", e))?;
    let reply = &buf[..n];
    let kind = reply.get(4..6).map(|b| u16::from_ne_bytes([b[0], b[1]]));
    let code = reply
        .get(16..20)
        .map(|b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]]));
    match (kind, code) {
        (Some(k), Some(0)) if k == libc::NLMSG_ERROR as u16 => Ok(()),
        (Some(k), Some(c)) if k == libc::NLMSG_ERROR as u16 => {
            Err(err("kernel", Errno::from_raw(-c)))
        }
        _ => Err(NetnsError::Loopback("unexpected netlink reply".into())),
    }
}

/// Removes a namespace made by [`create`]: lazy unmount, then unlink. A path that
/// does not exist (or is not mounted) is not an error.
pub fn remove(path: &Path) -> Result<(), NetnsError> {
    match umount2(path, MntFlags::MNT_DETACH) {
        Ok(()) | Err(Errno::EINVAL) | Err(Errno::ENOENT) => {}
        Err(e) => return Err(sys("umount", path)(e)),
    }
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(NetnsError::Io {
            path: path.into(),
            source,
        }),
    }
}

/// A fresh named namespace the calling thread has entered. Dropping it
/// moves the thread back where it was and removes the namespace (its links
/// go when the last process in it leaves). Processes the thread starts
/// meanwhile run in it: this is how tests and benchmarks give each node
/// its own network, so that nothing they program touches the host's.
pub struct EnteredNetns {
    path: PathBuf,
    previous: File,
}

impl EnteredNetns {
    /// Creates `dir/name` (see [`create`]) and moves the calling thread
    /// into it.
    pub fn new(dir: &Path, name: &str) -> Result<Self, NetnsError> {
        let previous = File::open("/proc/thread-self/ns/net").map_err(|source| NetnsError::Io {
            path: "/proc/thread-self/ns/net".into(),
            source,
        })?;
        let path = create(dir, name)?;
        let entered = File::open(&path)
            .map_err(|source| NetnsError::Io {
                path: path.clone(),
                source,
            })
            .and_then(|ns| setns(&ns, CloneFlags::CLONE_NEWNET).map_err(sys("setns", &path)));
        if let Err(e) = entered {
            let _ = remove(&path);
            return Err(e);
        }
        Ok(EnteredNetns { path, previous })
    }

    /// The namespace's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for EnteredNetns {
    fn drop(&mut self) {
        if let Err(e) = setns(&self.previous, CloneFlags::CLONE_NEWNET) {
            tracing::warn!(error = %e, "cannot return to the previous network namespace");
        }
        let _ = remove(&self.path);
    }
}

/// Creates a non-blocking TCP socket inside `netns` (on a throwaway thread) and
/// hands it to tokio.
async fn socket_in(netns: &Path, addr: SocketAddr) -> io::Result<TcpSocket> {
    let path = netns.to_path_buf();
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("kelp-netns-sock".into())
        .spawn(move || {
            let _ = tx.send(socket_on_this_thread(&path, addr));
        })?;
    let fd = rx
        .await
        .map_err(|_| io::Error::other("network namespace thread died"))??;
    Ok(TcpSocket::from_std_stream(std::net::TcpStream::from(fd)))
}

fn socket_on_this_thread(netns: &Path, addr: SocketAddr) -> io::Result<OwnedFd> {
    let ns = File::open(netns)?;
    setns(&ns, CloneFlags::CLONE_NEWNET)?;
    let family = if addr.is_ipv4() {
        AddressFamily::Inet
    } else {
        AddressFamily::Inet6
    };
    let flags = SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK;
    Ok(socket(family, SockType::Stream, flags, None)?)
}

/// Connects to `addr` from inside the network namespace at `netns`. A connect that
/// takes longer than `timeout` fails with [`io::ErrorKind::TimedOut`].
pub async fn connect_tcp(
    netns: &Path,
    addr: SocketAddr,
    timeout: Duration,
) -> io::Result<TcpStream> {
    let socket = socket_in(netns, addr).await?;
    match tokio::time::timeout(timeout, socket.connect(addr)).await {
        Ok(r) => r,
        Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, "i/o timeout")),
    }
}

/// Listens on `addr` inside the network namespace at `netns`.
pub async fn bind_tcp(netns: &Path, addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = socket_in(netns, addr).await?;
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

#[cfg(test)]
mod tests {
    //! These need root and iproute2; they use `/run/netns/kelp-test-*` names.
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A namespace removed on drop, so a failing test leaves nothing behind.
    struct TestNs(PathBuf);

    impl TestNs {
        fn new() -> Self {
            static N: AtomicU32 = AtomicU32::new(0);
            let name = format!(
                "kelp-test-{}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::SeqCst)
            );
            TestNs(create(Path::new(DEFAULT_NETNS_DIR), &name).expect("create netns"))
        }

        fn name(&self) -> String {
            self.0
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        }
    }

    impl Drop for TestNs {
        fn drop(&mut self) {
            let _ = remove(&self.0);
        }
    }

    fn ip(args: &[&str]) -> String {
        let out = std::process::Command::new("ip")
            .args(args)
            .output()
            .expect("run ip");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    #[test]
    fn create_brings_lo_up_and_remove_cleans_up() {
        let ns = TestNs::new();
        let name = ns.name();
        let link = ip(&["netns", "exec", &name, "ip", "-o", "link", "show", "lo"]);
        assert!(link.contains("LOOPBACK,UP"), "lo not up: {link:?}");
        assert!(ip(&["netns", "list"]).contains(&name));
        assert!(matches!(
            create(Path::new(DEFAULT_NETNS_DIR), &name),
            Err(NetnsError::Exists(_))
        ));
        remove(&ns.0).expect("remove");
        assert!(!ns.0.exists());
        assert!(!ip(&["netns", "list"]).contains(&name));
        remove(&ns.0).expect("removing twice is fine");
    }

    #[test]
    fn rejects_bad_names() {
        for bad in ["", ".", "..", "a/b"] {
            let r = create(Path::new("/run/kelp-test-unused"), bad);
            assert!(matches!(r, Err(NetnsError::InvalidName(_))), "{bad:?}");
        }
    }

    #[tokio::test]
    async fn connect_tcp_reaches_only_the_namespace_loopback() {
        let ns = TestNs::new();
        let any: SocketAddr = "127.0.0.1:0".parse().expect("addr");
        let listener = bind_tcp(&ns.0, any).await.expect("bind in netns");
        let addr = listener.local_addr().expect("addr");
        let server = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.expect("accept");
            s.write_all(b"hi from netns").await.expect("write");
        });
        let mut c = connect_tcp(&ns.0, addr, Duration::from_secs(2))
            .await
            .expect("connect");
        let mut got = String::new();
        c.read_to_string(&mut got).await.expect("read");
        assert_eq!(got, "hi from netns");
        server.await.expect("server");
        let host = TcpStream::connect(addr).await;
        assert!(
            host.is_err(),
            "host loopback must not see the namespace listener"
        );
        let refused = connect_tcp(
            &ns.0,
            "127.0.0.1:1".parse().expect("addr"),
            Duration::from_secs(2),
        )
        .await;
        assert_eq!(
            refused.map(|_| ()).map_err(|e| e.kind()),
            Err(io::ErrorKind::ConnectionRefused)
        );
    }
}
