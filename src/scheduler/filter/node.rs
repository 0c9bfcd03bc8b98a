//! Node-local filters that only compare the pod with the node object: NodeUnschedulable,
//! NodeName, TaintToleration and NodeAffinity (nodeSelector + required node affinity).
//!
//! Each returns the rejection reason or None; none of them look at other pods.

use super::Reason;
use crate::scheduler::cache::NodeInfo;
use crate::scheduler::podinfo::{Effect, PodInfo, Taint};

/// Taint key a pod must tolerate to land on a cordoned (spec.unschedulable) node.
pub const UNSCHEDULABLE_TAINT_KEY: &str = "node.kubernetes.io/unschedulable";

/// NodeUnschedulable: cordoned nodes only take pods tolerating the unschedulable taint.
pub fn node_unschedulable(pod: &PodInfo, node: &NodeInfo) -> Option<Reason> {
    if !node.unschedulable {
        return None;
    }
    let taint = Taint {
        key: UNSCHEDULABLE_TAINT_KEY.to_string(),
        value: String::new(),
        effect: Effect::NoSchedule,
    };
    if pod.tolerations.iter().any(|t| t.tolerates(&taint)) {
        None
    } else {
        Some(Reason::Unschedulable)
    }
}

/// NodeName: a pod naming a node only fits that node.
pub fn node_name(pod: &PodInfo, node: &NodeInfo) -> Option<Reason> {
    (!pod.node_name.is_empty() && pod.node_name != node.name).then_some(Reason::NodeName)
}

/// TaintToleration: the first NoSchedule/NoExecute taint no toleration matches.
pub fn taint_toleration(pod: &PodInfo, node: &NodeInfo) -> Option<Reason> {
    node.taints
        .iter()
        .filter(|t| matches!(t.effect, Effect::NoSchedule | Effect::NoExecute))
        .find(|t| !pod.tolerations.iter().any(|tol| tol.tolerates(t)))
        .map(|t| Reason::UntoleratedTaint {
            key: t.key.clone(),
            value: t.value.clone(),
        })
}

/// NodeAffinity: nodeSelector labels and required node affinity terms.
pub fn node_affinity(pod: &PodInfo, node: &NodeInfo) -> Option<Reason> {
    (!pod.required_node.matches(&node.name, &node.labels)).then_some(Reason::NodeAffinity)
}

/// Whether the pod tolerates every NoSchedule/NoExecute taint of the node (spread policy).
pub fn tolerates_hard_taints(pod: &PodInfo, node: &NodeInfo) -> bool {
    taint_toleration(pod, node).is_none()
}
