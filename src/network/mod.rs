//! The pod network, built in: addresses, links, the overlay between
//! nodes ([`overlay`]), the service proxy and DNS.
//!
//! flannel's model on one node: a bridge `kelp0` holding the first address
//! of the node's podCIDR, and for each pod a veth pair from the bridge into
//! the pod's network namespace, whose end is `eth0` with an address from
//! [`ipam`] and a default route via the bridge.

pub mod cni;
pub mod dns;
pub mod dns_cache;
pub mod ethtool;
pub mod forward_policy;
pub mod ipam;
pub mod links;
pub mod nftables;
pub mod overlay;
pub mod pod_network;
pub mod service_proxy;

pub use pod_network::{PodNetwork, PodNetworkConfig};
