//! Pod traffic between nodes: flannel's VXLAN and host-gw backends.
//!
//! Each node publishes how to reach its pods as flannel's Node
//! annotations (backend type, VTEP MAC, public IP), and every node turns
//! the other nodes' annotations and podCIDRs into kernel state:
//!
//! - **vxlan**: a device `kelp.vxlan` (VNI 1, UDP 8472, local address the
//!   node IP, learning off) holding the first address of the node's
//!   subnet as a /32; for each other node, a route to its podCIDR via that
//!   node's subnet address on `kelp.vxlan` (onlink), a permanent neighbour
//!   entry mapping that address to the node's VTEP MAC, and an FDB entry
//!   sending that MAC to the node's public IP. The kernel does the rest;
//!   no packet passes through kelp.
//! - **host-gw**: a route to each other node's podCIDR via its IP (the
//!   nodes share a link).
//!
//! Routes carry kelp's own route protocol number, so kelp can tell its
//! routes from anyone else's and remove stale ones after a restart
//! without touching others. State follows Node add, change and delete.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};

use futures::TryStreamExt;
use ipnet::Ipv4Net;
use k8s_openapi::api::core::v1::Node;
use rtnetlink::packet_route::AddressFamily;
use rtnetlink::packet_route::link::LinkAttribute;
use rtnetlink::packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourFlags, NeighbourMessage, NeighbourState,
};
use rtnetlink::packet_route::route::{RouteAttribute, RouteMessage, RouteProtocol};
use rtnetlink::{Handle, LinkUnspec, LinkVxlan, RouteMessageBuilder};
use tokio_util::sync::CancellationToken;

use super::PodNetwork;
use crate::client::informer::{Change, SharedInformers};

/// The VXLAN device.
pub const VXLAN_DEVICE: &str = "kelp.vxlan";
/// flannel's VNI and port.
const VNI: u32 = 1;
const VXLAN_PORT: u16 = 8472;
/// The route protocol number marking kelp's overlay routes (any value
/// above 0xf0 is free for local use; `ip route` shows it as a number).
pub const ROUTE_PROTOCOL: u8 = 0xfb;

/// flannel's annotations, so tools that read them keep working.
pub const ANNOTATION_BACKEND_TYPE: &str = "flannel.alpha.coreos.com/backend-type";
/// `{"VNI":1,"VtepMAC":"…"}` for vxlan.
pub const ANNOTATION_BACKEND_DATA: &str = "flannel.alpha.coreos.com/backend-data";
/// The node's underlay address.
pub const ANNOTATION_PUBLIC_IP: &str = "flannel.alpha.coreos.com/public-ip";

/// The overlay backend (k3s's `--flannel-backend`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// VXLAN encapsulation over any IP underlay.
    Vxlan,
    /// Plain routes, for nodes on one L2 segment.
    HostGw,
    /// No pod network from kelp (bring your own CNI).
    None,
}

impl Backend {
    /// The flag value.
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Vxlan => "vxlan",
            Backend::HostGw => "host-gw",
            Backend::None => "none",
        }
    }

    /// Parses a flag value.
    pub fn parse(s: &str) -> Option<Self> {
        [Backend::Vxlan, Backend::HostGw, Backend::None]
            .into_iter()
            .find(|b| b.as_str() == s)
    }

    /// What the backend adds to each pod packet, or None when kelp builds
    /// no pod network.
    pub fn pod_network_overhead(self) -> Option<u32> {
        match self {
            Backend::Vxlan => Some(super::pod_network::VXLAN_OVERHEAD),
            Backend::HostGw => Some(0),
            Backend::None => None,
        }
    }
}

/// Why the overlay could not be programmed.
#[derive(Debug, thiserror::Error)]
pub enum OverlayError {
    /// A netlink request failed.
    #[error("{step}: {source}")]
    Netlink {
        /// What was being done.
        step: String,
        /// The kernel's error.
        #[source]
        source: rtnetlink::Error,
    },
    /// Setting up links or the pod network failed.
    #[error(transparent)]
    Link(#[from] super::links::LinkError),
    /// Publishing the annotations failed.
    #[error("cannot annotate node {node}: {source}")]
    Api {
        /// The node.
        node: String,
        /// The API error.
        #[source]
        source: kube::Error,
    },
    /// The node IP is not IPv4.
    #[error("the overlay needs an IPv4 node IP, not {0}")]
    NotIpv4(IpAddr),
}

fn netlink(step: impl Into<String>) -> impl FnOnce(rtnetlink::Error) -> OverlayError {
    let step = step.into();
    move |source| OverlayError::Netlink { step, source }
}

/// How to reach one other node's pods.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Peer {
    subnet: Ipv4Net,
    public_ip: Ipv4Addr,
    /// The VTEP MAC (vxlan only).
    mac: Option<[u8; 6]>,
}

/// Programs the overlay until `cancel`: sets up this node's end,
/// publishes it, then follows the other nodes. The caller restarts it
/// after an error.
pub async fn run(
    backend: Backend,
    network: &PodNetwork,
    client: &kube::Client,
    informers: &SharedInformers,
    node_name: &str,
    node_ip: IpAddr,
    cancel: &CancellationToken,
) -> Result<(), OverlayError> {
    let IpAddr::V4(node_ip) = node_ip else {
        return Err(OverlayError::NotIpv4(node_ip));
    };
    if !network.wait_ready(cancel).await {
        return Ok(());
    }
    let (subnet, mtu) = network.subnet_and_mtu().await.map_err(|e| {
        OverlayError::Link(super::links::LinkError::Missing(format!(
            "pod network: {e}"
        )))
    })?;
    let handle = super::links::connect()?;
    let local = match backend {
        Backend::Vxlan => Some(ensure_vxlan(&handle, node_ip, subnet, mtu).await?),
        _ => None,
    };
    publish(
        client,
        node_name,
        backend,
        node_ip,
        local.map(|(_, mac)| mac),
    )
    .await?;
    let vxlan = local.map(|(index, _)| index);
    let (nodes, mut changes) = informers.get::<Node>().feed();
    let mut applied: HashMap<String, Peer> = HashMap::new();
    let mut synced = false;
    loop {
        let change = tokio::select! {
            c = changes.recv() => c,
            _ = cancel.cancelled() => return Ok(()),
        };
        let Ok(change) = change else {
            return Ok(());
        };
        match change {
            Change::Synced => synced = true,
            // The full picture is recomputed on every change: nodes are
            // few and an entry is a few netlink messages at most.
            Change::Added(_) | Change::Updated { .. } | Change::Deleted(_) => {}
        }
        if !synced {
            continue;
        }
        let desired: HashMap<String, Peer> = nodes
            .state()
            .iter()
            .filter(|n| n.metadata.name.as_deref() != Some(node_name))
            .filter_map(|n| Some((n.metadata.name.clone()?, peer_of(n, backend)?)))
            .collect();
        let first = applied.is_empty();
        for (name, old) in &applied {
            if desired.get(name) != Some(old) {
                remove_peer(&handle, vxlan, old).await?;
                tracing::info!(node = %name, subnet = %old.subnet, "overlay: peer removed");
            }
        }
        for (name, peer) in &desired {
            if applied.get(name) != Some(peer) {
                add_peer(&handle, vxlan, peer).await?;
                tracing::info!(node = %name, subnet = %peer.subnet, ip = %peer.public_ip, "overlay: peer added");
            }
        }
        if first {
            remove_stale_routes(&handle, &desired).await?;
        }
        applied = desired;
    }
}

/// This node's published reachability, from another node's point of view.
fn peer_of(node: &Node, backend: Backend) -> Option<Peer> {
    let annotations = node.metadata.annotations.as_ref()?;
    if annotations.get(ANNOTATION_BACKEND_TYPE)?.as_str() != backend.as_str() {
        return None;
    }
    let subnet: Ipv4Net = node.spec.as_ref()?.pod_cidr.as_ref()?.parse().ok()?;
    let public_ip: Ipv4Addr = annotations.get(ANNOTATION_PUBLIC_IP)?.parse().ok()?;
    let mac = match backend {
        Backend::Vxlan => {
            let data: serde_json::Value =
                serde_json::from_str(annotations.get(ANNOTATION_BACKEND_DATA)?).ok()?;
            Some(parse_mac(data["VtepMAC"].as_str()?)?)
        }
        _ => None,
    };
    Some(Peer {
        subnet,
        public_ip,
        mac,
    })
}

fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut out = [0u8; 6];
    let mut parts = s.split(':');
    for byte in &mut out {
        *byte = u8::from_str_radix(parts.next()?, 16).ok()?;
    }
    parts.next().is_none().then_some(out)
}

fn format_mac(mac: &[u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Publishes flannel's annotations on this node.
async fn publish(
    client: &kube::Client,
    node: &str,
    backend: Backend,
    node_ip: Ipv4Addr,
    mac: Option<[u8; 6]>,
) -> Result<(), OverlayError> {
    let data = match mac {
        Some(mac) => serde_json::json!({"VNI": VNI, "VtepMAC": format_mac(&mac)}).to_string(),
        None => "null".to_string(),
    };
    let patch = serde_json::json!({"metadata": {"annotations": {
        ANNOTATION_BACKEND_TYPE: backend.as_str(),
        ANNOTATION_BACKEND_DATA: data,
        ANNOTATION_PUBLIC_IP: node_ip.to_string(),
        "flannel.alpha.coreos.com/kube-subnet-manager": "true",
    }}});
    kube::Api::<Node>::all(client.clone())
        .patch(
            node,
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(&patch),
        )
        .await
        .map_err(|source| OverlayError::Api {
            node: node.to_string(),
            source,
        })?;
    Ok(())
}

/// Creates (or keeps) `kelp.vxlan` with this node's subnet address and
/// sets it up. Returns its index and MAC.
async fn ensure_vxlan(
    h: &Handle,
    node_ip: Ipv4Addr,
    subnet: Ipv4Net,
    mtu: u32,
) -> Result<(u32, [u8; 6]), OverlayError> {
    let index = match super::links::link_index(h, VXLAN_DEVICE).await? {
        Some(index) => index,
        None => {
            h.link()
                .add(
                    LinkVxlan::new(VXLAN_DEVICE, VNI)
                        .port(VXLAN_PORT)
                        .local(node_ip)
                        .learning(false)
                        .mtu(mtu)
                        .build(),
                )
                .execute()
                .await
                .map_err(netlink(format!("create {VXLAN_DEVICE}")))?;
            super::links::link_index(h, VXLAN_DEVICE)
                .await?
                .ok_or_else(|| super::links::LinkError::Missing(VXLAN_DEVICE.into()))?
        }
    };
    h.link()
        .set(LinkUnspec::new_with_index(index).mtu(mtu).up().build())
        .execute()
        .await
        .map_err(netlink(format!("set {VXLAN_DEVICE} up")))?;
    super::links::add_address(h, index, subnet.network(), 32).await?;
    // As flannel: no TX checksum offload on the VXLAN device. A kernel
    // without ethtool netlink (before 5.6) keeps the default, with a warning.
    if let Err(e) = super::ethtool::disable_features(VXLAN_DEVICE, &[super::ethtool::TX_CHECKSUM]) {
        tracing::warn!(device = VXLAN_DEVICE, error = %e, "cannot turn TX checksum offload off");
    }
    let link = h
        .link()
        .get()
        .match_index(index)
        .execute()
        .try_next()
        .await
        .map_err(netlink(format!("read {VXLAN_DEVICE}")))?;
    let mac = link
        .as_ref()
        .and_then(|l| {
            l.attributes.iter().find_map(|a| match a {
                LinkAttribute::Address(mac) if mac.len() == 6 => {
                    let mut out = [0u8; 6];
                    out.copy_from_slice(mac);
                    Some(out)
                }
                _ => None,
            })
        })
        .ok_or_else(|| super::links::LinkError::Missing(format!("{VXLAN_DEVICE} MAC")))?;
    Ok((index, mac))
}

fn route_to(peer: &Peer, vxlan: Option<u32>) -> RouteMessage {
    let builder = RouteMessageBuilder::<Ipv4Addr>::new()
        .destination_prefix(peer.subnet.network(), peer.subnet.prefix_len())
        .protocol(RouteProtocol::Other(ROUTE_PROTOCOL));
    match vxlan {
        Some(index) => builder
            .gateway(peer.subnet.network())
            .output_interface(index)
            .onlink()
            .build(),
        None => builder.gateway(peer.public_ip).build(),
    }
}

async fn add_peer(h: &Handle, vxlan: Option<u32>, peer: &Peer) -> Result<(), OverlayError> {
    if let (Some(index), Some(mac)) = (vxlan, peer.mac) {
        h.neighbours()
            .add_bridge(index, &mac)
            .flags(NeighbourFlags::Own)
            .destination(IpAddr::V4(peer.public_ip))
            .replace()
            .execute()
            .await
            .map_err(netlink(format!("add FDB entry for {}", peer.public_ip)))?;
        h.neighbours()
            .add(index, IpAddr::V4(peer.subnet.network()))
            .link_layer_address(&mac)
            .replace()
            .execute()
            .await
            .map_err(netlink(format!("add neighbour {}", peer.subnet.network())))?;
    }
    h.route()
        .add(route_to(peer, vxlan))
        .replace()
        .execute()
        .await
        .map_err(netlink(format!("add route to {}", peer.subnet)))
}

/// Whether a delete failed only because the entry is already gone.
fn gone(e: &rtnetlink::Error) -> bool {
    matches!(e, rtnetlink::Error::NetlinkError(m)
        if matches!(m.raw_code().abs(), nix::libc::ENOENT | nix::libc::ESRCH | nix::libc::ENODEV))
}

async fn remove_peer(h: &Handle, vxlan: Option<u32>, peer: &Peer) -> Result<(), OverlayError> {
    let ignore_gone = |step: String| {
        move |r: Result<(), rtnetlink::Error>| match r {
            Err(e) if !gone(&e) => Err(OverlayError::Netlink { step, source: e }),
            _ => Ok(()),
        }
    };
    ignore_gone(format!("delete route to {}", peer.subnet))(
        h.route().del(route_to(peer, vxlan)).execute().await,
    )?;
    if let (Some(index), Some(mac)) = (vxlan, peer.mac) {
        let mut neighbour = NeighbourMessage::default();
        neighbour.header.family = AddressFamily::Inet;
        neighbour.header.ifindex = index;
        neighbour.header.state = NeighbourState::Permanent;
        neighbour
            .attributes
            .push(NeighbourAttribute::Destination(NeighbourAddress::Inet(
                peer.subnet.network(),
            )));
        ignore_gone(format!("delete neighbour {}", peer.subnet.network()))(
            h.neighbours().del(neighbour).execute().await,
        )?;
        let mut fdb = NeighbourMessage::default();
        fdb.header.family = AddressFamily::Bridge;
        fdb.header.ifindex = index;
        fdb.header.state = NeighbourState::Permanent;
        fdb.header.flags = NeighbourFlags::Own;
        fdb.attributes
            .push(NeighbourAttribute::LinkLayerAddress(mac.to_vec()));
        fdb.attributes
            .push(NeighbourAttribute::Destination(NeighbourAddress::Inet(
                peer.public_ip,
            )));
        ignore_gone(format!("delete FDB entry {}", format_mac(&mac)))(
            h.neighbours().del(fdb).execute().await,
        )?;
    }
    Ok(())
}

/// Removes kelp's overlay routes that no current node needs (nodes
/// deleted while kelp was down).
async fn remove_stale_routes(
    h: &Handle,
    desired: &HashMap<String, Peer>,
) -> Result<(), OverlayError> {
    let routes: Vec<RouteMessage> = h
        .route()
        .get(RouteMessageBuilder::<Ipv4Addr>::new().build())
        .execute()
        .try_collect()
        .await
        .map_err(netlink("list routes"))?;
    for route in routes {
        if route.header.protocol != RouteProtocol::Other(ROUTE_PROTOCOL) {
            continue;
        }
        let destination = route.attributes.iter().find_map(|a| match a {
            RouteAttribute::Destination(rtnetlink::packet_route::route::RouteAddress::Inet(ip)) => {
                Some(*ip)
            }
            _ => None,
        });
        let wanted = destination.is_some_and(|d| {
            desired.values().any(|p| {
                p.subnet.network() == d
                    && p.subnet.prefix_len() == route.header.destination_prefix_length
            })
        });
        if !wanted {
            tracing::info!(?destination, "overlay: removing a stale route");
            if let Err(e) = h.route().del(route).execute().await
                && !gone(&e)
            {
                return Err(OverlayError::Netlink {
                    step: "delete a stale route".into(),
                    source: e,
                });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macs_round_trip_and_malformed_ones_are_refused() {
        let mac = [0x0a, 0x1b, 0x2c, 0x3d, 0x4e, 0x5f];
        assert_eq!(format_mac(&mac), "0a:1b:2c:3d:4e:5f");
        assert_eq!(parse_mac("0a:1b:2c:3d:4e:5f"), Some(mac));
        for bad in [
            "",
            "0a:1b:2c:3d:4e",
            "0a:1b:2c:3d:4e:5f:00",
            "zz:1b:2c:3d:4e:5f",
        ] {
            assert_eq!(parse_mac(bad), None, "{bad}");
        }
    }

    #[test]
    fn peers_come_from_flannel_annotations_of_the_same_backend() {
        let node: Node = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "b", "annotations": {
                ANNOTATION_BACKEND_TYPE: "vxlan",
                ANNOTATION_BACKEND_DATA: "{\"VNI\":1,\"VtepMAC\":\"0a:1b:2c:3d:4e:5f\"}",
                ANNOTATION_PUBLIC_IP: "10.200.0.3",
            }},
            "spec": {"podCIDR": "10.42.1.0/24"},
        }))
        .unwrap();
        assert_eq!(
            peer_of(&node, Backend::Vxlan),
            Some(Peer {
                subnet: "10.42.1.0/24".parse().unwrap(),
                public_ip: "10.200.0.3".parse().unwrap(),
                mac: Some([0x0a, 0x1b, 0x2c, 0x3d, 0x4e, 0x5f]),
            })
        );
        assert_eq!(peer_of(&node, Backend::HostGw), None);
        let mut no_cidr = node.clone();
        no_cidr.spec = None;
        assert_eq!(peer_of(&no_cidr, Backend::Vxlan), None);
    }
}
