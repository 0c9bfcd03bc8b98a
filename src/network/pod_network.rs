//! A node's pod network: what the kubelet asks when a pod sandbox comes
//! and goes.
//!
//! The first pod waits for the node's `spec.podCIDR` (node IPAM assigns it
//! right after registration); then the bridge gets the subnet's first
//! address and IP forwarding is switched on, once. Each pod then gets an
//! address from [`Ipam`] and a veth pair ([`links::attach_pod`]). The MTU
//! is the underlay's (the link holding the node IP) minus what the overlay
//! adds.

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use futures::TryStreamExt;
use ipnet::Ipv4Net;
use k8s_openapi::api::core::v1::Node;
use rtnetlink::Handle;
use rtnetlink::packet_route::address::AddressAttribute;
use rtnetlink::packet_route::link::LinkAttribute;
use tokio::sync::OnceCell;

use super::ipam::{Ipam, IpamError};
use super::links::{self, LinkError, PodAttachment};

/// Bytes a VXLAN encapsulation adds (outer IPv4 20 + UDP 8 + VXLAN 8 +
/// inner Ethernet 14), as flannel subtracts.
pub const VXLAN_OVERHEAD: u32 = 50;

/// Why a pod cannot get its network (yet).
#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    /// Node IPAM has not given this node a subnet yet.
    #[error("node {0} has no spec.podCIDR yet (node IPAM assigns one); the pod waits for it")]
    NoPodCidr(String),
    /// The node's podCIDR is not an IPv4 network.
    #[error(
        "node {node} has podCIDR {cidr:?}, which is not an IPv4 network (IPv6 pod networks are not supported yet)"
    )]
    BadPodCidr {
        /// The node.
        node: String,
        /// Its podCIDR.
        cidr: String,
    },
    /// Reading the Node failed.
    #[error("cannot read node {node}: {source}")]
    Api {
        /// The node.
        node: String,
        /// The API error.
        #[source]
        source: kube::Error,
    },
    /// Address allocation failed.
    #[error(transparent)]
    Ipam(#[from] IpamError),
    /// Programming links failed.
    #[error(transparent)]
    Link(#[from] LinkError),
    /// A CNI plugin failed (`--flannel-backend=none`).
    #[error(transparent)]
    Cni(#[from] super::cni::CniError),
    /// Switching IP forwarding on failed.
    #[error("cannot enable IP forwarding ({path}): {source}")]
    Sysctl {
        /// The sysctl file.
        path: &'static str,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// How pods of this node are networked.
#[derive(Clone, Debug)]
pub struct PodNetworkConfig {
    /// The node's name (whose podCIDR is used).
    pub node: String,
    /// The node's IP (its link's MTU is the underlay MTU).
    pub node_ip: IpAddr,
    /// Where allocations are kept (`<data>/agent/ipam`).
    pub state_dir: PathBuf,
    /// What the overlay adds to each packet (0 for host-gw).
    pub overhead: u32,
    /// CNI plugins network the pods instead (`--flannel-backend=none`).
    pub cni: Option<super::cni::CniConfig>,
}

struct Ready {
    ipam: Ipam,
    bridge: u32,
    mtu: u32,
}

/// The pod network of this node. See the module docs.
pub struct PodNetwork {
    cni: Option<super::cni::Cni>,
    config: PodNetworkConfig,
    client: kube::Client,
    handle: Handle,
    ready: OnceCell<Ready>,
}

impl PodNetwork {
    /// A pod network programmed in the calling process's namespace.
    pub fn new(config: PodNetworkConfig, client: kube::Client) -> Result<Self, NetworkError> {
        Ok(PodNetwork {
            cni: config.cni.clone().map(super::cni::Cni::new),
            config,
            client,
            handle: links::connect()?,
            ready: OnceCell::new(),
        })
    }

    async fn ready(&self) -> Result<&Ready, NetworkError> {
        self.ready
            .get_or_try_init(|| async {
                let subnet = self.pod_cidr().await?;
                let ipam = Ipam::open(&self.config.state_dir, subnet)?;
                let mtu = underlay_mtu(&self.handle, self.config.node_ip)
                    .await?
                    .saturating_sub(self.config.overhead)
                    .max(576);
                let gateway = Ipv4Net::new(ipam.gateway(), subnet.prefix_len()).unwrap_or(subnet);
                let bridge = links::ensure_bridge(&self.handle, gateway, mtu).await?;
                enable_forwarding()?;
                tracing::info!(%subnet, mtu, "pod network ready");
                Ok(Ready { ipam, bridge, mtu })
            })
            .await
    }

    async fn pod_cidr(&self) -> Result<Ipv4Net, NetworkError> {
        let node = &self.config.node;
        let nodes: kube::Api<Node> = kube::Api::all(self.client.clone());
        let found = nodes.get(node).await.map_err(|source| NetworkError::Api {
            node: node.clone(),
            source,
        })?;
        let cidr = found
            .spec
            .and_then(|s| s.pod_cidr)
            .ok_or_else(|| NetworkError::NoPodCidr(node.clone()))?;
        cidr.parse().map_err(|_| NetworkError::BadPodCidr {
            node: node.clone(),
            cidr,
        })
    }

    /// The node's pod subnet and the pod MTU, once the network is ready.
    pub async fn subnet_and_mtu(&self) -> Result<(Ipv4Net, u32), NetworkError> {
        let ready = self.ready().await?;
        Ok((ready.ipam.subnet(), ready.mtu))
    }

    /// Waits until the network is ready (the node has its podCIDR and the
    /// bridge is up); false if `cancel` fired first.
    pub async fn wait_ready(&self, cancel: &tokio_util::sync::CancellationToken) -> bool {
        if self.cni.is_some() {
            return !cancel.is_cancelled();
        }
        loop {
            match self.ready().await {
                Ok(_) => return true,
                Err(e) => tracing::debug!(error = %e, "pod network not ready yet"),
            }
            tokio::select! {
                _ = tokio::time::sleep(std::time::Duration::from_millis(500)) => {}
                _ = cancel.cancelled() => return false,
            }
        }
    }

    /// Holds `ip` on the bridge as a local /32 (the node-local cluster DNS
    /// address, which pods reach through their gateway, this node); on
    /// loopback when CNI plugins own the pod network.
    pub async fn add_local_address(&self, ip: Ipv4Addr) -> Result<(), NetworkError> {
        if self.cni.is_some() {
            let lo = links::link_index(&self.handle, "lo")
                .await?
                .ok_or_else(|| LinkError::Missing("lo".into()))?;
            links::add_address(&self.handle, lo, ip, 32).await?;
            return Ok(());
        }
        let ready = self.ready().await?;
        links::add_address(&self.handle, ready.bridge, ip, 32).await?;
        Ok(())
    }

    /// Gives the pod `uid` (`namespace/name`), whose network namespace is
    /// `netns`, its address and link; the same address again for a pod that
    /// has one. With CNI, the plugins' ADD does it.
    pub async fn attach(
        &self,
        uid: &str,
        namespace: &str,
        name: &str,
        netns: &Path,
    ) -> Result<Ipv4Addr, NetworkError> {
        if let Some(cni) = &self.cni {
            let pod = super::cni::CniPod {
                uid,
                namespace,
                name,
            };
            return Ok(cni.add(pod, netns).await?);
        }
        let ready = self.ready().await?;
        let ip = ready.ipam.allocate(uid)?;
        let attachment = PodAttachment {
            netns: netns.to_path_buf(),
            address: Ipv4Net::new(ip, ready.ipam.subnet().prefix_len())
                .unwrap_or(ready.ipam.subnet()),
            gateway: ready.ipam.gateway(),
            mtu: ready.mtu,
        };
        if let Err(e) = links::attach_pod(&self.handle, ready.bridge, uid, &attachment).await {
            // Keep no address for a pod without a link; the next try
            // allocates afresh.
            let _ = ready.ipam.release(uid);
            return Err(e.into());
        }
        Ok(ip)
    }

    /// Removes the pod's link and frees its address (CNI: DEL).
    pub async fn detach(&self, uid: &str) -> Result<(), NetworkError> {
        if let Some(cni) = &self.cni {
            return Ok(cni.del(uid).await?);
        }
        links::detach_pod(&self.handle, uid).await?;
        if let Some(ready) = self.ready.get() {
            ready.ipam.release(uid)?;
        } else if self.config.state_dir.is_dir() {
            // Not ready in this run (no pod attached yet): the address may
            // be from before a restart; release it wherever it is.
            if let Ok(subnet) = self.pod_cidr().await {
                Ipam::open(&self.config.state_dir, subnet)?.release(uid)?;
            }
        }
        Ok(())
    }
}

/// The MTU of the link holding `ip` (1500 if none does).
async fn underlay_mtu(h: &Handle, ip: IpAddr) -> Result<u32, LinkError> {
    let mut addresses = h.address().get().execute();
    let mut index = None;
    while let Some(msg) = addresses
        .try_next()
        .await
        .map_err(|source| LinkError::Netlink {
            step: "list addresses".into(),
            source,
        })?
    {
        let holds = msg.attributes.iter().any(|a| match a {
            AddressAttribute::Address(addr) | AddressAttribute::Local(addr) => *addr == ip,
            _ => false,
        });
        if holds {
            index = Some(msg.header.index);
            break;
        }
    }
    let Some(index) = index else {
        return Ok(1500);
    };
    let mut links = h.link().get().match_index(index).execute();
    while let Some(msg) = links
        .try_next()
        .await
        .map_err(|source| LinkError::Netlink {
            step: format!("read link {index}"),
            source,
        })?
    {
        if let Some(mtu) = msg.attributes.iter().find_map(|a| match a {
            LinkAttribute::Mtu(m) => Some(*m),
            _ => None,
        }) {
            return Ok(mtu);
        }
    }
    Ok(1500)
}

/// Pods' traffic leaves through the node: `net.ipv4.ip_forward = 1` (per
/// network namespace, so a test's node namespace does not touch the host).
fn enable_forwarding() -> Result<(), NetworkError> {
    const PATH: &str = "/proc/sys/net/ipv4/ip_forward";
    bridge_netfilter();
    if std::fs::read_to_string(PATH).is_ok_and(|v| v.trim() == "1") {
        return Ok(());
    }
    std::fs::write(PATH, "1").map_err(|source| NetworkError::Sysctl { path: PATH, source })
}

/// Lets bridged pod traffic pass the ip hooks (`bridge-nf-call-iptables`),
/// as flannel and kube-proxy expect, so that pod → Service → pod on one
/// bridge is NATed both ways. Without br_netfilter loaded the sysctl does
/// not exist: kelp says so and goes on (its hairpin masquerade covers the
/// common case; kelp does not load kernel modules).
fn bridge_netfilter() {
    const PATH: &str = "/proc/sys/net/bridge/bridge-nf-call-iptables";
    match std::fs::read_to_string(PATH) {
        Ok(v) if v.trim() == "1" => {}
        Ok(_) => {
            if let Err(e) = std::fs::write(PATH, "1") {
                tracing::warn!(error = %e, "cannot set {PATH}: bridged pod traffic bypasses the service proxy");
            }
        }
        Err(_) => tracing::warn!(
            "{PATH} is missing (br_netfilter is not loaded; `modprobe br_netfilter`): bridged pod traffic bypasses the service proxy"
        ),
    }
}
