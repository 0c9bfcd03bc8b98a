//! `NodeInfo`: one node's scheduling-relevant fields plus aggregates of the pods on it.
//!
//! Aggregates (requested resources, non-zero requests, used host ports, pod list) are kept
//! incrementally as pods come and go, so a filter or score reads a few integers instead of
//! walking pods. Only fields the scheduler uses are copied out of the Node object; comparing
//! them tells whether a node update can change any scheduling decision.

use std::sync::Arc;

use k8s_openapi::api::core::v1::Node;

use crate::client::quantity::parse_value;
use crate::scheduler::podinfo::{HostPort, PodInfo, Taint, taints_of};
use crate::scheduler::resources::Resource;
use crate::scheduler::selector::Labels;

/// A node and the pods the scheduler counts on it.
#[derive(Debug, Clone, Default)]
pub struct NodeInfo {
    /// Node name.
    pub name: String,
    /// Node labels.
    pub labels: Labels,
    /// Node taints.
    pub taints: Vec<Taint>,
    /// spec.unschedulable.
    pub unschedulable: bool,
    /// status.allocatable (cpu, memory, ephemeral-storage, extended).
    pub allocatable: Resource,
    /// status.allocatable.pods.
    pub allowed_pods: i64,
    /// Sum of the exact requests of the pods here.
    pub requested: Resource,
    /// Sum of non-zero cpu requests (scoring).
    pub nonzero_milli_cpu: i64,
    /// Sum of non-zero memory requests (scoring).
    pub nonzero_memory: i64,
    /// Pods on the node, assumed ones included.
    pub pods: Vec<Arc<PodInfo>>,
    /// Host ports in use (one entry per pod port; duplicates allowed).
    pub used_ports: Vec<HostPort>,
}

/// The part of a Node the scheduler looks at, for change detection.
#[derive(Debug, Clone, PartialEq, Eq)]
struct NodeFields {
    labels: Labels,
    taints: Vec<Taint>,
    unschedulable: bool,
    allocatable: Resource,
    allowed_pods: i64,
}

fn fields_of(node: &Node) -> NodeFields {
    let spec = node.spec.as_ref();
    let alloc = node.status.as_ref().and_then(|s| s.allocatable.as_ref());
    NodeFields {
        labels: node.metadata.labels.clone().unwrap_or_default(),
        taints: taints_of(spec.and_then(|s| s.taints.as_ref())),
        unschedulable: spec.and_then(|s| s.unschedulable).unwrap_or(false),
        allocatable: alloc.map(Resource::from_list).unwrap_or_default(),
        allowed_pods: alloc
            .and_then(|a| a.get("pods"))
            .and_then(|q| parse_value(&q.0).ok())
            .unwrap_or(0),
    }
}

impl NodeInfo {
    /// An empty node entry named `name` (pods may arrive before their Node).
    pub fn empty(name: &str) -> Self {
        NodeInfo {
            name: name.to_string(),
            ..Default::default()
        }
    }

    /// Copies the scheduling fields of `node`; returns whether any of them changed.
    pub fn set_node(&mut self, node: &Node) -> bool {
        let f = fields_of(node);
        let changed = f.labels != self.labels
            || f.taints != self.taints
            || f.unschedulable != self.unschedulable
            || f.allocatable != self.allocatable
            || f.allowed_pods != self.allowed_pods;
        self.labels = f.labels;
        self.taints = f.taints;
        self.unschedulable = f.unschedulable;
        self.allocatable = f.allocatable;
        self.allowed_pods = f.allowed_pods;
        changed
    }

    /// Counts a pod on this node.
    pub fn add_pod(&mut self, pod: Arc<PodInfo>) {
        self.requested.add(&pod.requests.requests);
        self.nonzero_milli_cpu += pod.requests.nonzero_milli_cpu;
        self.nonzero_memory += pod.requests.nonzero_memory;
        self.used_ports.extend(pod.host_ports.iter().cloned());
        self.pods.push(pod);
    }

    /// Stops counting the pod with `uid`; returns it when it was here.
    pub fn remove_pod(&mut self, uid: &str) -> Option<Arc<PodInfo>> {
        let i = self.pods.iter().position(|p| p.uid == uid)?;
        let pod = self.pods.swap_remove(i);
        self.requested.sub(&pod.requests.requests);
        self.nonzero_milli_cpu -= pod.requests.nonzero_milli_cpu;
        self.nonzero_memory -= pod.requests.nonzero_memory;
        for hp in &pod.host_ports {
            if let Some(j) = self.used_ports.iter().position(|u| u == hp) {
                self.used_ports.swap_remove(j);
            }
        }
        Some(pod)
    }

    /// Upstream `HostPortInfo.CheckConflict`: a wildcard IP conflicts with any IP.
    pub fn port_conflicts(&self, want: &HostPort) -> bool {
        let wildcard = want.ip == "0.0.0.0";
        self.used_ports.iter().any(|u| {
            u.port == want.port
                && u.protocol == want.protocol
                && (wildcard || u.ip == want.ip || u.ip == "0.0.0.0")
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::resources::PodRequests;

    fn pod(uid: &str, cpu: i64, ports: &[(&str, i32)]) -> Arc<PodInfo> {
        Arc::new(PodInfo {
            uid: uid.into(),
            requests: PodRequests {
                requests: Resource {
                    milli_cpu: cpu,
                    ..Default::default()
                },
                nonzero_milli_cpu: cpu.max(100),
                nonzero_memory: 200 << 20,
            },
            host_ports: ports
                .iter()
                .map(|(ip, port)| HostPort {
                    ip: ip.to_string(),
                    protocol: "TCP".into(),
                    port: *port,
                })
                .collect(),
            ..Default::default()
        })
    }

    #[test]
    fn adding_and_removing_pods_keeps_aggregates_exact() {
        let mut n = NodeInfo::empty("n1");
        n.add_pod(pod("a", 500, &[("0.0.0.0", 80)]));
        n.add_pod(pod("b", 0, &[]));
        assert_eq!(n.requested.milli_cpu, 500);
        assert_eq!(n.nonzero_milli_cpu, 600);
        assert_eq!(n.pods.len(), 2);
        assert!(n.remove_pod("a").is_some());
        assert_eq!(n.requested.milli_cpu, 0);
        assert_eq!(n.nonzero_milli_cpu, 100);
        assert!(n.used_ports.is_empty());
        assert!(n.remove_pod("a").is_none());
    }

    #[test]
    fn host_port_conflicts_follow_wildcard_rules() {
        let mut n = NodeInfo::empty("n1");
        n.add_pod(pod("a", 0, &[("10.0.0.1", 8080)]));
        let want = |ip: &str, port| HostPort {
            ip: ip.into(),
            protocol: "TCP".into(),
            port,
        };
        assert!(n.port_conflicts(&want("10.0.0.1", 8080)));
        assert!(n.port_conflicts(&want("0.0.0.0", 8080)));
        assert!(!n.port_conflicts(&want("10.0.0.2", 8080)));
        assert!(!n.port_conflicts(&want("10.0.0.1", 8081)));
        let udp = HostPort {
            ip: "10.0.0.1".into(),
            protocol: "UDP".into(),
            port: 8080,
        };
        assert!(!n.port_conflicts(&udp));
        n.add_pod(pod("b", 0, &[("0.0.0.0", 53)]));
        assert!(n.port_conflicts(&want("10.9.9.9", 53)));
    }
}
