//! The node's bridge and the pods' veth pairs, over rtnetlink.
//!
//! Everything here is idempotent, because the kubelet re-runs it after a
//! restart: an existing bridge, address or veth is kept, so pods that kept
//! running keep their network. A netlink socket belongs to the network
//! namespace of the thread that opened it, so work inside a pod's
//! namespace runs on a short-lived OS thread that enters it first (tokio's
//! workers never change namespace), with a socket of its own.

use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use futures::TryStreamExt;
use ipnet::Ipv4Net;
use nix::sched::{CloneFlags, setns};
use rtnetlink::{
    Handle, LinkBridge, LinkBridgePort, LinkUnspec, LinkVeth, RouteMessageBuilder, new_connection,
};

/// Name of the node's pod bridge.
pub const BRIDGE: &str = "kelp0";
/// The pod end of each veth, once inside the pod.
pub const POD_INTERFACE: &str = "eth0";

/// What went wrong programming links.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// A netlink request failed.
    #[error("{step}: {source}")]
    Netlink {
        /// What was being done.
        step: String,
        /// The kernel's or the library's error.
        #[source]
        source: rtnetlink::Error,
    },
    /// Opening a netlink socket or a namespace failed.
    #[error("{step}: {source}")]
    Io {
        /// What was being done.
        step: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A link that was just created cannot be found.
    #[error("link {0} not found")]
    Missing(String),
}

fn netlink(step: impl Into<String>) -> impl FnOnce(rtnetlink::Error) -> LinkError {
    let step = step.into();
    move |source| LinkError::Netlink { step, source }
}

fn io(step: impl Into<String>) -> impl FnOnce(std::io::Error) -> LinkError {
    let step = step.into();
    move |source| LinkError::Io { step, source }
}

/// A netlink handle in the calling thread's namespace (its connection
/// task is spawned on the current runtime).
pub fn connect() -> Result<Handle, LinkError> {
    let (conn, handle, _) = new_connection().map_err(io("open a netlink socket"))?;
    tokio::spawn(conn);
    Ok(handle)
}

/// The index of link `name`, if it exists.
pub async fn link_index(h: &Handle, name: &str) -> Result<Option<u32>, LinkError> {
    match h
        .link()
        .get()
        .match_name(name.to_string())
        .execute()
        .try_next()
        .await
    {
        Ok(m) => Ok(m.map(|m| m.header.index)),
        Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code().abs() == nix::libc::ENODEV => {
            Ok(None)
        }
        Err(e) => Err(netlink(format!("look up link {name}"))(e)),
    }
}

async fn require_index(h: &Handle, name: &str) -> Result<u32, LinkError> {
    link_index(h, name)
        .await?
        .ok_or_else(|| LinkError::Missing(name.to_string()))
}

/// Adds `ip/prefix` to link `index`; an address already there is fine.
pub async fn add_address(
    h: &Handle,
    index: u32,
    ip: Ipv4Addr,
    prefix: u8,
) -> Result<(), LinkError> {
    ensure_address(h, index, ip, prefix).await
}

async fn ensure_address(h: &Handle, index: u32, ip: Ipv4Addr, prefix: u8) -> Result<(), LinkError> {
    h.address()
        .add(index, IpAddr::V4(ip), prefix)
        .replace()
        .execute()
        .await
        .map_err(netlink(format!("add address {ip}/{prefix}")))
}

/// Creates (or keeps) the bridge with the gateway address `gateway`
/// (the first host of the node's pod subnet) and `mtu`, and sets it up.
/// Returns its index.
pub async fn ensure_bridge(h: &Handle, gateway: Ipv4Net, mtu: u32) -> Result<u32, LinkError> {
    let index = match link_index(h, BRIDGE).await? {
        Some(i) => i,
        None => {
            h.link()
                .add(LinkBridge::new(BRIDGE).mtu(mtu).build())
                .execute()
                .await
                .map_err(netlink(format!("create bridge {BRIDGE}")))?;
            require_index(h, BRIDGE).await?
        }
    };
    h.link()
        .set(LinkUnspec::new_with_index(index).mtu(mtu).up().build())
        .execute()
        .await
        .map_err(netlink(format!("set {BRIDGE} up")))?;
    ensure_address(h, index, gateway.addr(), gateway.prefix_len()).await?;
    Ok(index)
}

/// The host-side veth name of a pod: `veth` and 11 hex digits of a hash
/// of its UID (interface names are at most 15 bytes).
pub fn host_veth(pod_uid: &str) -> String {
    // FNV-1a: stable across runs and versions, unlike std's hasher.
    let hash = pod_uid.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    format!("veth{:011x}", hash & 0xfff_ffff_ffff)
}

/// How a pod is attached.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodAttachment {
    /// The pod's network namespace (a bind mount, as `ip netns` makes).
    pub netns: PathBuf,
    /// The pod's address and the subnet's prefix length.
    pub address: Ipv4Net,
    /// The default gateway (the bridge's address).
    pub gateway: Ipv4Addr,
    /// MTU of the pod's interface.
    pub mtu: u32,
}

/// Joins a pod's namespace to the bridge: a veth pair whose pod end is
/// `eth0` with the pod's address and a default route via the bridge.
/// Re-running it for an attached pod changes nothing.
pub async fn attach_pod(
    h: &Handle,
    bridge: u32,
    pod_uid: &str,
    pod: &PodAttachment,
) -> Result<String, LinkError> {
    let host = host_veth(pod_uid);
    // The peer's temporary name in the host namespace; renamed to eth0 in
    // the pod's (two pods' peers must not collide here).
    let peer = format!("{}p", &host[..14]);
    if link_index(h, &host).await?.is_none() {
        if let Some(stale) = link_index(h, &peer).await? {
            let _ = h.link().del(stale).execute().await;
        }
        h.link()
            .add(LinkVeth::new(&host, &peer).mtu(pod.mtu).build())
            .execute()
            .await
            .map_err(netlink(format!("create veth {host}")))?;
        let ns = std::fs::File::open(&pod.netns)
            .map_err(io(format!("open netns {}", pod.netns.display())))?;
        let peer_index = require_index(h, &peer).await?;
        h.link()
            .set(
                LinkUnspec::new_with_index(peer_index)
                    .setns_by_fd(ns.as_raw_fd())
                    .build(),
            )
            .execute()
            .await
            .map_err(netlink(format!("move {peer} into the pod")))?;
    }
    let host_index = require_index(h, &host).await?;
    h.link()
        .set(
            LinkUnspec::new_with_index(host_index)
                .controller(bridge)
                .mtu(pod.mtu)
                .up()
                .build(),
        )
        .execute()
        .await
        .map_err(netlink(format!("attach {host} to {BRIDGE}")))?;
    // Hairpin: with br_netfilter, a pod's packet to its own Service is
    // DNAT'd back to it while being bridged, and must leave through the
    // port it came in by (the CNI bridge plugin's hairpinMode).
    h.link()
        .set_port(LinkBridgePort::new(host_index).hairpin(true).build())
        .execute()
        .await
        .map_err(netlink(format!("set hairpin mode on {host}")))?;
    let inside = pod.clone();
    in_netns(&pod.netns, move |h| async move {
        configure_pod_side(&h, &peer, &inside).await
    })
    .await?;
    Ok(host)
}

/// Inside the pod: the peer becomes eth0, up, with the address and the
/// default route.
async fn configure_pod_side(h: &Handle, peer: &str, pod: &PodAttachment) -> Result<(), LinkError> {
    let index = match link_index(h, POD_INTERFACE).await? {
        Some(i) => i,
        None => {
            let i = require_index(h, peer).await?;
            h.link()
                .set(
                    LinkUnspec::new_with_index(i)
                        .name(POD_INTERFACE.to_string())
                        .mtu(pod.mtu)
                        .build(),
                )
                .execute()
                .await
                .map_err(netlink("rename the pod's interface to eth0"))?;
            i
        }
    };
    h.link()
        .set(LinkUnspec::new_with_index(index).up().build())
        .execute()
        .await
        .map_err(netlink("set eth0 up"))?;
    ensure_address(h, index, pod.address.addr(), pod.address.prefix_len()).await?;
    h.route()
        .add(
            RouteMessageBuilder::<Ipv4Addr>::new()
                .gateway(pod.gateway)
                .output_interface(index)
                .build(),
        )
        .replace()
        .execute()
        .await
        .map_err(netlink(format!(
            "add the default route via {}",
            pod.gateway
        )))
}

/// Removes a pod's veth pair (deleting the host end deletes both); a
/// missing one is fine.
pub async fn detach_pod(h: &Handle, pod_uid: &str) -> Result<(), LinkError> {
    let host = host_veth(pod_uid);
    if let Some(index) = link_index(h, &host).await? {
        h.link()
            .del(index)
            .execute()
            .await
            .map_err(netlink(format!("delete veth {host}")))?;
    }
    Ok(())
}

/// Runs `work` with a netlink handle inside the namespace at `netns`, on
/// an OS thread of its own (see the module docs).
pub async fn in_netns<F, Fut, T>(netns: &Path, work: F) -> Result<T, LinkError>
where
    F: FnOnce(Handle) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<T, LinkError>>,
    T: Send + 'static,
{
    let path = netns.to_path_buf();
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("kelp-netns".into())
        .spawn(move || {
            let result = (|| {
                let ns = std::fs::File::open(&path)
                    .map_err(io(format!("open netns {}", path.display())))?;
                setns(&ns, CloneFlags::CLONE_NEWNET)
                    .map_err(|e| io(format!("enter netns {}", path.display()))(e.into()))?;
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(io("start a runtime in the netns"))?;
                rt.block_on(async move { work(connect()?).await })
            })();
            let _ = tx.send(result);
        })
        .map_err(io("start a thread for the netns"))?;
    rx.await
        .unwrap_or_else(|_| Err(LinkError::Missing("netns worker thread".into())))
}
