//! Node health bookkeeping (upstream `tryUpdateNodeHealth`): when a node last showed a sign
//! of life, and what its conditions and taints become once it has been silent too long.
//!
//! Signs of life are *changes* observed locally — a new Ready `lastHeartbeatTime` or a new
//! Lease `renewTime` — timed with the controller's own monotonic clock, so clock skew between
//! kubelet and controller cannot make a node look alive or dead.

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Node, NodeCondition, Taint};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

/// Conditions set to Unknown when a node stops reporting (upstream Ready plus the pressure
/// conditions kubelet owns).
pub const MONITORED_CONDITIONS: [&str; 4] =
    ["Ready", "MemoryPressure", "DiskPressure", "PIDPressure"];
/// NoExecute taint for nodes whose Ready condition is False.
pub const TAINT_NOT_READY: &str = "node.kubernetes.io/not-ready";
/// NoExecute taint for nodes whose Ready condition is Unknown.
pub const TAINT_UNREACHABLE: &str = "node.kubernetes.io/unreachable";

/// What the controller last saw of one node.
#[derive(Debug, Clone)]
pub struct Probe {
    /// Local time of the last sign of life.
    pub at: Instant,
    heartbeat: Option<Time>,
    lease_renew: Option<String>,
    /// Ready status seen at the previous pass (to detect transitions).
    pub last_ready: Option<String>,
}

impl Probe {
    /// A probe for a node first seen `now`: it gets a full grace period.
    pub fn new(now: Instant) -> Self {
        Self {
            at: now,
            heartbeat: None,
            lease_renew: None,
            last_ready: None,
        }
    }

    /// Records the node's current heartbeat and lease renewal; either changing counts as a sign
    /// of life at `now`.
    pub fn observe(&mut self, node: &Node, lease_renew: Option<String>, now: Instant) {
        let heartbeat = condition(node, "Ready").and_then(|c| c.last_heartbeat_time.clone());
        if heartbeat.is_some() && heartbeat != self.heartbeat {
            self.at = now;
        }
        if lease_renew.is_some() && lease_renew != self.lease_renew {
            self.at = now;
        }
        self.heartbeat = heartbeat;
        self.lease_renew = lease_renew;
    }

    /// True once no sign of life arrived for `grace`.
    pub fn expired(&self, grace: Duration, now: Instant) -> bool {
        now.duration_since(self.at) > grace
    }
}

/// The node's condition of the given type.
pub fn condition<'a>(node: &'a Node, type_: &str) -> Option<&'a NodeCondition> {
    node.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_)
}

/// The node's conditions with every monitored one set to Unknown (upstream messages), or
/// `None` when they already are.
pub fn unknown_conditions(node: &Node, now: &Time) -> Option<Vec<NodeCondition>> {
    let mut conditions = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default();
    let mut changed = false;
    for type_ in MONITORED_CONDITIONS {
        match conditions.iter_mut().find(|c| c.type_ == type_) {
            Some(c) if c.status == "Unknown" => {}
            Some(c) => {
                c.status = "Unknown".into();
                c.reason = Some("NodeStatusUnknown".into());
                c.message = Some("Kubelet stopped posting node status.".into());
                c.last_transition_time = Some(now.clone());
                changed = true;
            }
            None => {
                conditions.push(NodeCondition {
                    type_: type_.into(),
                    status: "Unknown".into(),
                    reason: Some("NodeStatusNeverUpdated".into()),
                    message: Some("Kubelet never posted node status.".into()),
                    last_heartbeat_time: node.metadata.creation_timestamp.clone(),
                    last_transition_time: Some(now.clone()),
                });
                changed = true;
            }
        }
    }
    changed.then_some(conditions)
}

/// Taints this controller manages: key → the condition (type, status) that calls for it.
const NO_SCHEDULE_TAINTS: [(&str, &str, &str); 6] = [
    ("Ready", "False", TAINT_NOT_READY),
    ("Ready", "Unknown", TAINT_UNREACHABLE),
    (
        "MemoryPressure",
        "True",
        "node.kubernetes.io/memory-pressure",
    ),
    ("DiskPressure", "True", "node.kubernetes.io/disk-pressure"),
    (
        "NetworkUnavailable",
        "True",
        "node.kubernetes.io/network-unavailable",
    ),
    ("PIDPressure", "True", "node.kubernetes.io/pid-pressure"),
];
const TAINT_UNSCHEDULABLE: &str = "node.kubernetes.io/unschedulable";

fn managed(taint: &Taint) -> bool {
    match taint.effect.as_str() {
        "NoExecute" => taint.key == TAINT_NOT_READY || taint.key == TAINT_UNREACHABLE,
        "NoSchedule" => {
            taint.key == TAINT_UNSCHEDULABLE
                || NO_SCHEDULE_TAINTS.iter().any(|(_, _, k)| *k == taint.key)
        }
        _ => false,
    }
}

/// The taints the node should carry given its conditions and `spec.unschedulable`, keeping
/// foreign taints and the `timeAdded` of managed taints that stay; `None` when unchanged.
pub fn desired_taints(node: &Node, now: &Time) -> Option<Vec<Taint>> {
    let current = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.clone())
        .unwrap_or_default();
    let mut wanted: Vec<(String, &str)> = Vec::new();
    for (type_, status, key) in NO_SCHEDULE_TAINTS {
        if condition(node, type_).is_some_and(|c| c.status == status) {
            wanted.push((key.into(), "NoSchedule"));
        }
    }
    if node
        .spec
        .as_ref()
        .and_then(|s| s.unschedulable)
        .unwrap_or(false)
    {
        wanted.push((TAINT_UNSCHEDULABLE.into(), "NoSchedule"));
    }
    match condition(node, "Ready").map(|c| c.status.as_str()) {
        Some("False") => wanted.push((TAINT_NOT_READY.into(), "NoExecute")),
        Some("Unknown") => wanted.push((TAINT_UNREACHABLE.into(), "NoExecute")),
        _ => {}
    }
    let mut taints: Vec<Taint> = current
        .iter()
        .filter(|t| !managed(t) || wanted.iter().any(|(k, e)| *k == t.key && *e == t.effect))
        .cloned()
        .collect();
    for (key, effect) in wanted {
        if !taints.iter().any(|t| t.key == key && t.effect == effect) {
            let time_added = (effect == "NoExecute").then(|| now.clone());
            taints.push(Taint {
                key,
                effect: effect.into(),
                time_added,
                value: None,
            });
        }
    }
    (taints != current).then_some(taints)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{NodeSpec, NodeStatus};

    fn now() -> Time {
        Time(k8s_openapi::jiff::Timestamp::from_second(1_000).unwrap())
    }

    fn node_with_ready(status: &str) -> Node {
        Node {
            status: Some(NodeStatus {
                conditions: Some(vec![NodeCondition {
                    type_: "Ready".into(),
                    status: status.into(),
                    reason: Some("KubeletReady".into()),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn silent_node_gets_unknown_conditions_with_upstream_messages() {
        let node = node_with_ready("True");
        let conditions = unknown_conditions(&node, &now()).unwrap();
        let ready = conditions.iter().find(|c| c.type_ == "Ready").unwrap();
        assert_eq!(ready.status, "Unknown");
        assert_eq!(ready.reason.as_deref(), Some("NodeStatusUnknown"));
        assert_eq!(
            ready.message.as_deref(),
            Some("Kubelet stopped posting node status.")
        );
        let memory = conditions
            .iter()
            .find(|c| c.type_ == "MemoryPressure")
            .unwrap();
        assert_eq!(memory.reason.as_deref(), Some("NodeStatusNeverUpdated"));
        let mut already = node.clone();
        already.status.as_mut().unwrap().conditions = Some(conditions);
        assert!(unknown_conditions(&already, &now()).is_none());
    }

    #[test]
    fn unknown_node_is_tainted_unreachable_and_not_ready_node_swaps_taint() {
        let unknown = node_with_ready("Unknown");
        let taints = desired_taints(&unknown, &now()).unwrap();
        let exec: Vec<&Taint> = taints.iter().filter(|t| t.effect == "NoExecute").collect();
        assert_eq!(exec.len(), 1);
        assert_eq!(exec[0].key, TAINT_UNREACHABLE);
        assert_eq!(exec[0].time_added, Some(now()));
        let mut not_ready = node_with_ready("False");
        not_ready.spec = Some(NodeSpec {
            taints: Some(taints),
            ..Default::default()
        });
        let swapped = desired_taints(&not_ready, &now()).unwrap();
        assert!(
            swapped
                .iter()
                .any(|t| t.key == TAINT_NOT_READY && t.effect == "NoExecute")
        );
        assert!(!swapped.iter().any(|t| t.key == TAINT_UNREACHABLE));
    }

    #[test]
    fn ready_node_loses_managed_taints_but_keeps_foreign_ones() {
        let mut node = node_with_ready("True");
        node.spec = Some(NodeSpec {
            taints: Some(vec![
                Taint {
                    key: TAINT_UNREACHABLE.into(),
                    effect: "NoExecute".into(),
                    ..Default::default()
                },
                Taint {
                    key: "dedicated".into(),
                    effect: "NoSchedule".into(),
                    ..Default::default()
                },
            ]),
            ..Default::default()
        });
        let taints = desired_taints(&node, &now()).unwrap();
        assert_eq!(taints.len(), 1);
        assert_eq!(taints[0].key, "dedicated");
        node.spec.as_mut().unwrap().taints = Some(taints);
        assert!(desired_taints(&node, &now()).is_none());
    }

    #[test]
    fn probe_expires_only_without_new_heartbeats_or_renewals() {
        let start = Instant::now();
        let node = node_with_ready("True");
        let mut probe = Probe::new(start);
        probe.observe(&node, Some("t1".into()), start);
        let later = start + Duration::from_secs(50);
        assert!(probe.expired(Duration::from_secs(40), later));
        probe.observe(&node, Some("t2".into()), later);
        assert!(!probe.expired(Duration::from_secs(40), later + Duration::from_secs(10)));
        probe.observe(&node, Some("t2".into()), later + Duration::from_secs(45));
        assert!(probe.expired(Duration::from_secs(40), later + Duration::from_secs(45)));
    }
}
