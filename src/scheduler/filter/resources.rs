//! NodeResourcesFit and NodePorts: checks against the node's precomputed aggregates.
//!
//! NodeResourcesFit reports every insufficient resource at once (so one node can add
//! "Insufficient cpu" and "Insufficient memory" to the histogram), in upstream's order:
//! pod count, cpu, memory, ephemeral-storage, then extended resources.

use super::Reason;
use crate::scheduler::cache::NodeInfo;
use crate::scheduler::podinfo::PodInfo;

/// NodePorts: any requested host port already used on the node rejects it.
pub fn node_ports(pod: &PodInfo, node: &NodeInfo) -> Option<Reason> {
    pod.host_ports
        .iter()
        .any(|p| node.port_conflicts(p))
        .then_some(Reason::HostPorts)
}

/// NodeResourcesFit; pushes one reason per insufficient resource and returns false if any.
pub fn node_resources_fit(pod: &PodInfo, node: &NodeInfo, reasons: &mut Vec<Reason>) -> bool {
    let before = reasons.len();
    if node.pods.len() as i64 + 1 > node.allowed_pods {
        reasons.push(Reason::TooManyPods);
    }
    let req = &pod.requests.requests;
    if req.is_zero() {
        return reasons.len() == before;
    }
    let (alloc, used) = (&node.allocatable, &node.requested);
    let checks = [
        ("cpu", req.milli_cpu, alloc.milli_cpu - used.milli_cpu),
        ("memory", req.memory, alloc.memory - used.memory),
        (
            "ephemeral-storage",
            req.ephemeral_storage,
            alloc.ephemeral_storage - used.ephemeral_storage,
        ),
    ];
    for (name, want, free) in checks {
        if want > 0 && want > free {
            reasons.push(Reason::Insufficient(name.to_string()));
        }
    }
    for (name, want) in &req.scalar {
        if *want > 0 && *want > alloc.scalar(name) - used.scalar(name) {
            reasons.push(Reason::Insufficient(name.clone()));
        }
    }
    reasons.len() == before
}
