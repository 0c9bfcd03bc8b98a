//! Node IPAM controller: gives every Node a pod CIDR per cluster CIDR (upstream
//! `nodeipam` with the range allocator).
//!
//! The allocator state is only a cache of what the Nodes say: it is rebuilt from the node
//! store at every (re)list, so a restart or a watch gap never hands out a subnet twice. Subnets
//! handed out but not yet visible in the store are kept as `pending` and survive those
//! rebuilds. A node's subnets are released when its delete event arrives (or, after a watch
//! gap, at the next rebuild).
//!
//! Failure: a full range or a failed patch fails the reconcile, which is retried with backoff;
//! a misconfigured range (node mask not fitting the cluster CIDR) fails [`run`] at start.

mod cidr_set;

use crate::client::informer::SharedInformers;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use ipnet::IpNet;
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::{Action, Config};
use kube::runtime::reflector::Store;
use kube::{Client, ResourceExt};
use parking_lot::Mutex;
use tokio_util::sync::CancellationToken;

pub use cidr_set::{CidrSet, CidrSetError};

use super::informer::{self, Backoff, Queue};

/// Configuration of the node IPAM controller.
#[derive(Debug, Clone)]
pub struct NodeIpamConfig {
    /// Cluster CIDRs pod subnets are carved from, at most one per IP family
    /// (upstream `--cluster-cidr`).
    pub cluster_cidrs: Vec<IpNet>,
    /// Prefix length of each node's IPv4 subnet (upstream `--node-cidr-mask-size-ipv4`, 24).
    pub node_cidr_mask_size_ipv4: u8,
    /// Prefix length of each node's IPv6 subnet (upstream `--node-cidr-mask-size-ipv6`, 64).
    pub node_cidr_mask_size_ipv6: u8,
    /// Service CIDRs; subnets overlapping them are never handed out.
    pub service_cidrs: Vec<IpNet>,
}

impl Default for NodeIpamConfig {
    fn default() -> Self {
        Self {
            cluster_cidrs: ipnet::Ipv4Net::new(std::net::Ipv4Addr::new(10, 42, 0, 0), 16)
                .map(IpNet::V4)
                .into_iter()
                .collect(),
            node_cidr_mask_size_ipv4: 24,
            node_cidr_mask_size_ipv6: 64,
            service_cidrs: Vec::new(),
        }
    }
}

/// Failures of the node IPAM controller.
#[derive(Debug, thiserror::Error)]
pub enum NodeIpamError {
    /// The configured ranges cannot be divided as asked.
    #[error("invalid node IPAM configuration: {0}")]
    Config(#[from] CidrSetError),
    /// No cluster CIDR was configured.
    #[error("invalid node IPAM configuration: no cluster CIDR")]
    NoClusterCidr,
    /// Allocating a subnet failed (range full).
    #[error("allocating a pod CIDR for node {node}: {source}")]
    Allocate {
        /// The node.
        node: String,
        /// Why.
        source: CidrSetError,
    },
    /// Writing the node failed.
    #[error("patching node {node}: {source}")]
    Patch {
        /// The node.
        node: String,
        /// The API error.
        source: kube::Error,
    },
}

/// The allocator: one subnet set per cluster CIDR plus allocations not yet observed.
struct Allocator {
    sets: Vec<CidrSet>,
    reserved: Vec<IpNet>,
    pending: HashMap<String, Vec<IpNet>>,
}

impl Allocator {
    fn new(config: &NodeIpamConfig) -> Result<Self, NodeIpamError> {
        if config.cluster_cidrs.is_empty() {
            return Err(NodeIpamError::NoClusterCidr);
        }
        let sets = config
            .cluster_cidrs
            .iter()
            .map(|cidr| {
                let mask = if cidr.addr().is_ipv4() {
                    config.node_cidr_mask_size_ipv4
                } else {
                    config.node_cidr_mask_size_ipv6
                };
                CidrSet::new(*cidr, mask)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut allocator = Self {
            sets,
            reserved: config.service_cidrs.clone(),
            pending: HashMap::new(),
        };
        allocator.rebuild(std::iter::empty());
        Ok(allocator)
    }

    /// Resets the sets to exactly the given nodes' CIDRs, the reserved ranges and pending
    /// allocations.
    fn rebuild<'a>(&mut self, node_cidrs: impl Iterator<Item = IpNet> + 'a) {
        for set in &mut self.sets {
            set.clear();
        }
        let pending: Vec<IpNet> = self.pending.values().flatten().copied().collect();
        for cidr in self
            .reserved
            .clone()
            .into_iter()
            .chain(pending)
            .chain(node_cidrs)
        {
            self.occupy(&cidr);
        }
    }

    fn occupy(&mut self, cidr: &IpNet) {
        for set in &mut self.sets {
            set.occupy(cidr);
        }
    }

    fn release(&mut self, cidr: &IpNet) {
        for set in &mut self.sets {
            set.release(cidr);
        }
    }

    /// One subnet per cluster CIDR for `node`, all or nothing.
    fn allocate(&mut self, node: &str) -> Result<Vec<IpNet>, CidrSetError> {
        if let Some(existing) = self.pending.get(node) {
            return Ok(existing.clone());
        }
        let mut got = Vec::new();
        for i in 0..self.sets.len() {
            match self.sets[i].allocate() {
                Ok(cidr) => got.push(cidr),
                Err(err) => {
                    for cidr in &got {
                        self.release(cidr);
                    }
                    return Err(err);
                }
            }
        }
        self.pending.insert(node.to_string(), got.clone());
        Ok(got)
    }
}

/// The pod CIDRs a node already carries (`spec.podCIDRs`, else `spec.podCIDR`).
fn node_cidrs(node: &Node) -> Vec<IpNet> {
    let spec = node.spec.as_ref();
    let list = spec.and_then(|s| s.pod_cidrs.clone()).unwrap_or_default();
    let list = if list.is_empty() {
        spec.and_then(|s| s.pod_cidr.clone()).into_iter().collect()
    } else {
        list
    };
    list.iter()
        .filter_map(|s| s.parse::<IpNet>().ok())
        .collect()
}

struct Ctx {
    client: Client,
    allocator: Arc<Mutex<Allocator>>,
    backoff: Backoff,
}

/// Runs the node IPAM controller until `cancel` fires.
pub async fn run(
    informers: SharedInformers,
    config: NodeIpamConfig,
    cancel: CancellationToken,
) -> Result<(), NodeIpamError> {
    let client = informers.client();
    let allocator = Arc::new(Mutex::new(Allocator::new(&config)?));
    let queue = Queue::<Node>::new();
    let mut trigger = queue.self_trigger();
    let hook_allocator = allocator.clone();
    let (store, task) = informer::spawn(
        &informers.get::<Node>(),
        cancel.clone(),
        move |event, store| {
            on_node_event(&hook_allocator, store, event);
            trigger(event, store);
        },
    );
    if !informer::wait_ready(&[&store], &cancel).await {
        return Ok(());
    }
    allocator
        .lock()
        .rebuild(store.state().iter().flat_map(|n| node_cidrs(n)));
    let ctx = Arc::new(Ctx {
        client,
        allocator,
        backoff: Backoff::default(),
    });
    let config = Config::default().concurrency(4);
    informer::drive(
        store,
        queue,
        reconcile_boxed,
        error_policy,
        ctx,
        config,
        cancel,
    )
    .await;
    task.abort();
    Ok(())
}

/// Keeps the allocator in step with deletions and relists.
fn on_node_event(
    allocator: &Mutex<Allocator>,
    store: &Store<Node>,
    event: &informer::Change<Node>,
) {
    match event {
        informer::Change::Deleted(node) => {
            let mut allocator = allocator.lock();
            let name = node.name_any();
            let pending = allocator.pending.remove(&name).unwrap_or_default();
            for cidr in node_cidrs(node).iter().chain(pending.iter()) {
                allocator.release(cidr);
            }
            tracing::info!(node = %name, "released pod CIDRs of deleted node");
        }
        informer::Change::Synced => {
            let nodes = store.state();
            let mut allocator = allocator.lock();
            allocator
                .pending
                .retain(|name, _| nodes.iter().any(|n| n.name_any() == *name));
            allocator.rebuild(nodes.iter().flat_map(|n| node_cidrs(n)));
        }
        _ => {}
    }
}

fn reconcile_boxed(
    node: Arc<Node>,
    ctx: Arc<Ctx>,
) -> std::pin::Pin<Box<dyn Future<Output = Result<Action, NodeIpamError>> + Send>> {
    Box::pin(reconcile(node, ctx))
}

fn error_policy(node: Arc<Node>, err: &NodeIpamError, ctx: Arc<Ctx>) -> Action {
    tracing::warn!(node = %node.name_any(), error = %err, "node IPAM failed");
    Action::requeue(
        ctx.backoff
            .next_delay(&node.name_any(), Duration::from_secs(60)),
    )
}

#[tracing::instrument(skip_all, fields(node = %node.name_any()))]
async fn reconcile(node: Arc<Node>, ctx: Arc<Ctx>) -> Result<Action, NodeIpamError> {
    let name = node.name_any();
    let existing = node_cidrs(&node);
    if !existing.is_empty() {
        let mut allocator = ctx.allocator.lock();
        allocator.pending.remove(&name);
        for cidr in &existing {
            allocator.occupy(cidr);
        }
        ctx.backoff.reset(&name);
        return Ok(Action::await_change());
    }
    if node.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let cidrs = ctx
        .allocator
        .lock()
        .allocate(&name)
        .map_err(|source| NodeIpamError::Allocate {
            node: name.clone(),
            source,
        })?;
    let strings: Vec<String> = cidrs.iter().map(ToString::to_string).collect();
    let patch = serde_json::json!({"spec": {"podCIDR": strings[0], "podCIDRs": strings}});
    Api::<Node>::all(ctx.client.clone())
        .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map_err(|source| NodeIpamError::Patch {
            node: name.clone(),
            source,
        })?;
    tracing::info!(cidrs = ?strings, "assigned pod CIDRs");
    ctx.backoff.reset(&name);
    Ok(Action::await_change())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> NodeIpamConfig {
        NodeIpamConfig {
            cluster_cidrs: vec![
                "10.42.0.0/22".parse().unwrap(),
                "fd00::/62".parse().unwrap(),
            ],
            service_cidrs: vec!["10.42.3.0/24".parse().unwrap()],
            ..NodeIpamConfig::default()
        }
    }

    #[test]
    fn allocates_one_subnet_per_family_and_skips_service_range() {
        let mut alloc = Allocator::new(&config()).unwrap();
        let a = alloc.allocate("a").unwrap();
        assert_eq!(
            a,
            vec![
                "10.42.0.0/24".parse::<IpNet>().unwrap(),
                "fd00::/64".parse().unwrap()
            ]
        );
        // Asking again for a pending node returns the same subnets.
        assert_eq!(alloc.allocate("a").unwrap(), a);
        alloc.allocate("b").unwrap();
        alloc.allocate("c").unwrap();
        // 10.42.3.0/24 is the service range: the IPv4 set is full, and nothing leaks.
        assert!(alloc.allocate("d").is_err());
        assert_eq!(alloc.sets[1].used(), 3);
    }

    #[test]
    fn rebuild_keeps_pending_and_existing_node_subnets() {
        let mut alloc = Allocator::new(&config()).unwrap();
        let pending = alloc.allocate("new").unwrap();
        alloc.rebuild(vec!["10.42.1.0/24".parse().unwrap()].into_iter());
        let next = alloc.allocate("other").unwrap();
        assert!(!next.contains(&pending[0]));
        assert_eq!(next[0], "10.42.2.0/24".parse::<IpNet>().unwrap());
    }

    #[test]
    fn reads_node_cidrs_from_either_field() {
        let mut node = Node::default();
        assert!(node_cidrs(&node).is_empty());
        node.spec = Some(k8s_openapi::api::core::v1::NodeSpec {
            pod_cidr: Some("10.1.2.0/24".into()),
            ..Default::default()
        });
        assert_eq!(
            node_cidrs(&node),
            vec!["10.1.2.0/24".parse::<IpNet>().unwrap()]
        );
    }

    #[test]
    fn rejects_empty_cluster_cidrs() {
        let config = NodeIpamConfig {
            cluster_cidrs: vec![],
            ..NodeIpamConfig::default()
        };
        assert!(matches!(
            Allocator::new(&config),
            Err(NodeIpamError::NoClusterCidr)
        ));
    }
}
