//! `PodInfo`: everything the scheduler needs from a Pod, compiled once per pod version.
//!
//! Watch events hand over owned `Pod`s; we extract requests, ports, tolerations and compiled
//! selectors so that the per-node loops never touch JSON-shaped data or re-parse quantities,
//! and so that neither the queue nor the cache keeps whole Pod objects. A pod whose own
//! affinity/spread selectors do not compile keeps the error in `parse_error`; scheduling it
//! then fails with that message like upstream's "parsing pod" PreFilter status.

use k8s_openapi::api::core::v1::{
    Pod, PodAffinityTerm, PodSpec, Toleration as K8sToleration, TopologySpreadConstraint,
};

use super::resources::{PodRequests, pod_requests};
use super::selector::{Labels, NodeTerm, Op, Requirement, Selector};

/// Effects of a taint, as far as the scheduler distinguishes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Effect {
    /// Pods that do not tolerate it are not scheduled.
    NoSchedule,
    /// Only lowers the node's score.
    PreferNoSchedule,
    /// Like NoSchedule for the scheduler (the taint manager also evicts).
    NoExecute,
    /// Anything else (never matches a typed toleration).
    Other,
}

impl Effect {
    /// Parses an effect string.
    pub fn parse(s: &str) -> Self {
        match s {
            "NoSchedule" => Effect::NoSchedule,
            "PreferNoSchedule" => Effect::PreferNoSchedule,
            "NoExecute" => Effect::NoExecute,
            _ => Effect::Other,
        }
    }
}

/// A node taint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Taint {
    /// Taint key.
    pub key: String,
    /// Taint value ("" when unset).
    pub value: String,
    /// Taint effect.
    pub effect: Effect,
}

/// A pod toleration, compiled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Toleration {
    key: String,
    exists: bool,
    valid_operator: bool,
    value: String,
    effect: Option<Effect>,
}

impl Toleration {
    fn compile(t: &K8sToleration) -> Self {
        let op = t.operator.as_deref().unwrap_or("Equal");
        Toleration {
            key: t.key.clone().unwrap_or_default(),
            exists: op == "Exists",
            valid_operator: op == "Exists" || op == "Equal" || op.is_empty(),
            value: t.value.clone().unwrap_or_default(),
            effect: t
                .effect
                .as_deref()
                .filter(|e| !e.is_empty())
                .map(Effect::parse),
        }
    }

    /// Builds a toleration directly (tests and synthetic taints).
    pub fn new(key: &str, exists: bool, value: &str, effect: Option<Effect>) -> Self {
        Toleration {
            key: key.into(),
            exists,
            valid_operator: true,
            value: value.into(),
            effect,
        }
    }

    /// Upstream `ToleratesTaint`: effect and key must match (empty means any), then the
    /// operator decides on the value.
    pub fn tolerates(&self, taint: &Taint) -> bool {
        if self.effect.is_some_and(|e| e != taint.effect) {
            return false;
        }
        if !self.key.is_empty() && self.key != taint.key {
            return false;
        }
        self.valid_operator && (self.exists || self.value == taint.value)
    }

    /// Whether this toleration applies to PreferNoSchedule taints (scoring).
    pub fn covers_prefer_no_schedule(&self) -> bool {
        matches!(self.effect, None | Some(Effect::PreferNoSchedule))
    }
}

/// A requested host port, normalised (ip "0.0.0.0", protocol "TCP" when unset).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HostPort {
    /// Host IP the port binds to.
    pub ip: String,
    /// TCP, UDP or SCTP.
    pub protocol: String,
    /// Port number.
    pub port: i32,
}

/// A compiled pod (anti-)affinity term.
#[derive(Debug, Clone)]
pub struct AffinityTerm {
    /// Namespaces listed by the term (the owner's namespace when none and no selector).
    pub namespaces: Vec<String>,
    /// Namespace selector, when given.
    pub namespace_selector: Option<Selector>,
    /// Pod label selector.
    pub selector: Selector,
    /// Node label whose values define the topology domains.
    pub topology_key: String,
    /// Preference weight (1 for required terms).
    pub weight: i64,
}

impl AffinityTerm {
    /// Whether `pod` (whose namespace has labels `ns_labels`) matches the term.
    pub fn matches(&self, pod: &PodInfo, ns_labels: Option<&Labels>) -> bool {
        let ns_ok = self.namespaces.contains(&pod.namespace)
            || self
                .namespace_selector
                .as_ref()
                .is_some_and(|s| ns_labels.is_some_and(|l| s.matches(l)));
        ns_ok && self.selector.matches(&pod.labels)
    }
}

/// A compiled topology spread constraint.
#[derive(Debug, Clone)]
pub struct SpreadConstraint {
    /// Allowed difference between a domain and the global minimum.
    pub max_skew: i64,
    /// Node label defining the domains.
    pub topology_key: String,
    /// DoNotSchedule (filter) versus ScheduleAnyway (score).
    pub hard: bool,
    /// Which pods are counted.
    pub selector: Selector,
    /// Minimum number of eligible domains (0 = unset).
    pub min_domains: i64,
    /// nodeAffinityPolicy Honor (default): only nodes matching the pod's node affinity count.
    pub honor_node_affinity: bool,
    /// nodeTaintsPolicy Honor: only nodes whose taints the pod tolerates count.
    pub honor_taints: bool,
}

/// The pod's node selector plus required node affinity.
#[derive(Debug, Clone, Default)]
pub struct RequiredNodeAffinity {
    /// `spec.nodeSelector` pairs (all must match).
    pub node_selector: Vec<(String, String)>,
    /// Required terms (any must match); None when absent.
    pub terms: Option<Vec<NodeTerm>>,
}

impl RequiredNodeAffinity {
    /// Whether a node satisfies the selector and the required terms.
    pub fn matches(&self, node_name: &str, labels: &Labels) -> bool {
        self.node_selector
            .iter()
            .all(|(k, v)| labels.get(k) == Some(v))
            && self
                .terms
                .as_ref()
                .is_none_or(|ts| ts.iter().any(|t| t.matches(node_name, labels)))
    }
}

/// The PodScheduled condition as last seen on the pod.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScheduledCondition {
    /// "True" / "False".
    pub status: String,
    /// Condition reason.
    pub reason: String,
    /// Condition message.
    pub message: String,
}

/// Everything the scheduler uses from one pod.
#[derive(Debug, Clone, Default)]
pub struct PodInfo {
    /// metadata.uid.
    pub uid: String,
    /// metadata.namespace.
    pub namespace: String,
    /// metadata.name.
    pub name: String,
    /// metadata.resourceVersion.
    pub resource_version: String,
    /// metadata.generation.
    pub generation: i64,
    /// metadata.labels.
    pub labels: Labels,
    /// spec.priority.
    pub priority: i32,
    /// spec.preemptionPolicy is `Never`: the pod waits instead of preempting.
    pub never_preempts: bool,
    /// status.nominatedNodeName: where the pod preempted others ("" if none).
    pub nominated_node: String,
    /// spec.schedulerName ("default-scheduler" when unset).
    pub scheduler_name: String,
    /// spec.nodeName ("" when unassigned).
    pub node_name: String,
    /// Scheduling gates present.
    pub gated: bool,
    /// metadata.deletionTimestamp set.
    pub terminating: bool,
    /// status.phase Succeeded or Failed.
    pub terminal: bool,
    /// Effective requests.
    pub requests: PodRequests,
    /// Requested host ports.
    pub host_ports: Vec<HostPort>,
    /// Required node placement.
    pub required_node: RequiredNodeAffinity,
    /// Preferred node affinity terms with weights.
    pub preferred_node: Vec<(i64, NodeTerm)>,
    /// Tolerations.
    pub tolerations: Vec<Toleration>,
    /// Required pod affinity terms.
    pub required_affinity: Vec<AffinityTerm>,
    /// Required pod anti-affinity terms.
    pub required_anti_affinity: Vec<AffinityTerm>,
    /// Preferred pod affinity terms.
    pub preferred_affinity: Vec<AffinityTerm>,
    /// Preferred pod anti-affinity terms.
    pub preferred_anti_affinity: Vec<AffinityTerm>,
    /// Topology spread constraints.
    pub spread: Vec<SpreadConstraint>,
    /// Why the pod's own selectors could not be compiled.
    pub parse_error: Option<String>,
    /// Current PodScheduled condition.
    pub scheduled_condition: Option<ScheduledCondition>,
}

impl PodInfo {
    /// Compiles a pod.
    pub fn from_pod(pod: &Pod) -> Self {
        let meta = &pod.metadata;
        let mut info = PodInfo {
            uid: meta.uid.clone().unwrap_or_default(),
            namespace: meta.namespace.clone().unwrap_or_default(),
            name: meta.name.clone().unwrap_or_default(),
            resource_version: meta.resource_version.clone().unwrap_or_default(),
            generation: meta.generation.unwrap_or(0),
            labels: meta.labels.clone().unwrap_or_default(),
            terminating: meta.deletion_timestamp.is_some(),
            ..Default::default()
        };
        if let Some(status) = &pod.status {
            info.terminal = matches!(status.phase.as_deref(), Some("Succeeded" | "Failed"));
            info.nominated_node = status.nominated_node_name.clone().unwrap_or_default();
            info.scheduled_condition = status
                .conditions
                .iter()
                .flatten()
                .find(|c| c.type_ == "PodScheduled")
                .map(|c| ScheduledCondition {
                    status: c.status.clone(),
                    reason: c.reason.clone().unwrap_or_default(),
                    message: c.message.clone().unwrap_or_default(),
                });
        }
        if let Some(spec) = &pod.spec {
            info.fill_spec(spec);
        } else {
            info.scheduler_name = super::DEFAULT_SCHEDULER_NAME.to_string();
        }
        let controlled = meta
            .owner_references
            .iter()
            .flatten()
            .any(|o| o.controller == Some(true));
        if info.spread.is_empty() && controlled {
            info.add_default_spread();
        }
        info
    }

    /// Upstream's system default spreading (`maxSkew: 3` per hostname,
    /// ScheduleAnyway) for a pod a controller made and that states no
    /// constraint of its own, so that a Deployment's replicas spread over
    /// nodes. Upstream selects the siblings with the owning controller's
    /// selector; the pod's own labels, less those that differ per pod,
    /// select the same siblings without a lookup.
    fn add_default_spread(&mut self) {
        const PER_POD: [&str; 4] = [
            "statefulset.kubernetes.io/pod-name",
            "apps.kubernetes.io/pod-index",
            "batch.kubernetes.io/job-completion-index",
            "pod-template-generation",
        ];
        let mut selector = Selector::everything();
        for (k, v) in &self.labels {
            if !PER_POD.contains(&k.as_str()) {
                selector.push(Requirement {
                    key: k.clone(),
                    op: Op::In(vec![v.clone()]),
                });
            }
        }
        if selector.is_everything() {
            return;
        }
        self.spread.push(SpreadConstraint {
            max_skew: 3,
            topology_key: "kubernetes.io/hostname".into(),
            hard: false,
            selector,
            min_domains: 0,
            honor_node_affinity: true,
            honor_taints: false,
        });
    }

    fn fill_spec(&mut self, spec: &PodSpec) {
        self.priority = spec.priority.unwrap_or(0);
        self.never_preempts = spec.preemption_policy.as_deref() == Some("Never");
        self.scheduler_name = spec
            .scheduler_name
            .clone()
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| super::DEFAULT_SCHEDULER_NAME.to_string());
        self.node_name = spec.node_name.clone().unwrap_or_default();
        self.gated = spec
            .scheduling_gates
            .as_ref()
            .is_some_and(|g| !g.is_empty());
        self.requests = pod_requests(spec);
        self.host_ports = host_ports(spec);
        self.tolerations = spec
            .tolerations
            .iter()
            .flatten()
            .map(Toleration::compile)
            .collect();
        self.required_node.node_selector = spec
            .node_selector
            .iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let node_aff = spec
            .affinity
            .as_ref()
            .and_then(|a| a.node_affinity.as_ref());
        if let Some(na) = node_aff {
            if let Some(req) = &na.required_during_scheduling_ignored_during_execution {
                self.required_node.terms = Some(
                    req.node_selector_terms
                        .iter()
                        .map(NodeTerm::compile)
                        .collect(),
                );
            }
            for p in na
                .preferred_during_scheduling_ignored_during_execution
                .iter()
                .flatten()
            {
                let term = NodeTerm::compile(&p.preference);
                if p.weight != 0 && term.is_valid() {
                    self.preferred_node.push((i64::from(p.weight), term));
                }
            }
        }
        self.fill_pod_affinity(spec);
        for c in spec.topology_spread_constraints.iter().flatten() {
            match self.compile_spread(c) {
                Ok(sc) => self.spread.push(sc),
                Err(e) => self.parse_error = Some(e),
            }
        }
    }

    fn fill_pod_affinity(&mut self, spec: &PodSpec) {
        let Some(aff) = spec.affinity.as_ref() else {
            return;
        };
        if let Some(pa) = &aff.pod_affinity {
            let req = pa
                .required_during_scheduling_ignored_during_execution
                .iter()
                .flatten();
            self.required_affinity = req.filter_map(|t| self.term(t, 1)).collect();
            let pref = pa
                .preferred_during_scheduling_ignored_during_execution
                .iter()
                .flatten();
            self.preferred_affinity = pref
                .filter_map(|w| self.term(&w.pod_affinity_term, i64::from(w.weight)))
                .collect();
        }
        if let Some(pa) = &aff.pod_anti_affinity {
            let req = pa
                .required_during_scheduling_ignored_during_execution
                .iter()
                .flatten();
            self.required_anti_affinity = req.filter_map(|t| self.term(t, 1)).collect();
            let pref = pa
                .preferred_during_scheduling_ignored_during_execution
                .iter()
                .flatten();
            self.preferred_anti_affinity = pref
                .filter_map(|w| self.term(&w.pod_affinity_term, i64::from(w.weight)))
                .collect();
        }
    }

    /// Compiles one affinity term; an invalid selector is recorded and the term dropped.
    fn term(&mut self, t: &PodAffinityTerm, weight: i64) -> Option<AffinityTerm> {
        let compiled = (|| {
            let mut selector = Selector::compile(t.label_selector.as_ref())?;
            self.merge_label_keys(&mut selector, t.match_label_keys.as_deref(), false);
            self.merge_label_keys(&mut selector, t.mismatch_label_keys.as_deref(), true);
            let namespace_selector = t
                .namespace_selector
                .as_ref()
                .map(|s| Selector::compile(Some(s)))
                .transpose()?;
            let mut namespaces = t.namespaces.clone().unwrap_or_default();
            if namespaces.is_empty() && namespace_selector.is_none() {
                namespaces.push(self.namespace.clone());
            }
            Ok::<_, super::selector::SelectorError>(AffinityTerm {
                namespaces,
                namespace_selector,
                selector,
                topology_key: t.topology_key.clone(),
                weight,
            })
        })();
        compiled
            .map_err(|e| self.parse_error = Some(e.to_string()))
            .ok()
    }

    fn merge_label_keys(&self, selector: &mut Selector, keys: Option<&[String]>, mismatch: bool) {
        for key in keys.unwrap_or_default() {
            if let Some(v) = self.labels.get(key) {
                let op = if mismatch {
                    Op::NotIn(vec![v.clone()])
                } else {
                    Op::In(vec![v.clone()])
                };
                selector.push(Requirement {
                    key: key.clone(),
                    op,
                });
            }
        }
    }

    fn compile_spread(&self, c: &TopologySpreadConstraint) -> Result<SpreadConstraint, String> {
        let mut selector =
            Selector::compile(c.label_selector.as_ref()).map_err(|e| e.to_string())?;
        self.merge_label_keys(&mut selector, c.match_label_keys.as_deref(), false);
        Ok(SpreadConstraint {
            max_skew: i64::from(c.max_skew),
            topology_key: c.topology_key.clone(),
            hard: c.when_unsatisfiable != "ScheduleAnyway",
            selector,
            min_domains: i64::from(c.min_domains.unwrap_or(0)),
            honor_node_affinity: c.node_affinity_policy.as_deref() != Some("Ignore"),
            honor_taints: c.node_taints_policy.as_deref() == Some("Honor"),
        })
    }

    /// Whether this pod has any pod affinity or anti-affinity (hard or soft).
    pub fn has_pod_affinity(&self) -> bool {
        !(self.required_affinity.is_empty()
            && self.required_anti_affinity.is_empty()
            && self.preferred_affinity.is_empty()
            && self.preferred_anti_affinity.is_empty())
    }

    /// "namespace/name", for logs and spans.
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

fn host_ports(spec: &PodSpec) -> Vec<HostPort> {
    let containers = spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten());
    let ports = containers.flat_map(|c| c.ports.iter().flatten());
    ports
        .filter(|p| p.host_port.is_some_and(|hp| hp > 0))
        .map(|p| HostPort {
            ip: p
                .host_ip
                .clone()
                .filter(|ip| !ip.is_empty())
                .unwrap_or_else(|| "0.0.0.0".into()),
            protocol: p
                .protocol
                .clone()
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| "TCP".into()),
            port: p.host_port.unwrap_or(0),
        })
        .collect()
}

/// Parses node taints.
pub fn taints_of(taints: Option<&Vec<k8s_openapi::api::core::v1::Taint>>) -> Vec<Taint> {
    taints
        .into_iter()
        .flatten()
        .map(|t| Taint {
            key: t.key.clone(),
            value: t.value.clone().unwrap_or_default(),
            effect: Effect::parse(&t.effect),
        })
        .collect()
}

#[cfg(test)]
mod tests;
