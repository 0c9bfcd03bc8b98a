//! Which nodes a DaemonSet's pods belong on (upstream `NodeShouldRunDaemonPod`,
//! `nodeaffinity.GetRequiredNodeAffinity`, `v1helper.ToleratesTaint`, and the daemonset
//! util helpers that add default tolerations and pin pods to a node).
//!
//! All pure. Malformed affinity terms (a `Gt` with a non-integer) count as "does not
//! match", as upstream ignores parse errors here for backwards compatibility.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Affinity, Node, NodeAffinity, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm, Pod,
    PodSpec, Taint, Toleration,
};

/// Tolerations every daemon pod gets (upstream `AddOrUpdateDaemonPodTolerations`): daemons
/// keep running on unhealthy or cordoned nodes.
pub fn default_tolerations(host_network: bool) -> Vec<Toleration> {
    let tol = |key: &str, effect: &str| Toleration {
        key: Some(key.into()),
        operator: Some("Exists".into()),
        effect: Some(effect.into()),
        ..Default::default()
    };
    let mut out = vec![
        tol("node.kubernetes.io/not-ready", "NoExecute"),
        tol("node.kubernetes.io/unreachable", "NoExecute"),
        tol("node.kubernetes.io/disk-pressure", "NoSchedule"),
        tol("node.kubernetes.io/memory-pressure", "NoSchedule"),
        tol("node.kubernetes.io/pid-pressure", "NoSchedule"),
        tol("node.kubernetes.io/unschedulable", "NoSchedule"),
    ];
    if host_network {
        out.push(tol("node.kubernetes.io/network-unavailable", "NoSchedule"));
    }
    out
}

/// Adds the default daemon tolerations to a pod spec, skipping ones already present.
pub fn add_default_tolerations(spec: &mut PodSpec) {
    let defaults = default_tolerations(spec.host_network == Some(true));
    let tolerations = spec.tolerations.get_or_insert_with(Vec::new);
    for t in defaults {
        if !tolerations.iter().any(|x| x == &t) {
            tolerations.push(t);
        }
    }
}

/// Upstream `ToleratesTaint`.
pub fn tolerates(t: &Toleration, taint: &Taint) -> bool {
    if t.effect
        .as_deref()
        .is_some_and(|e| !e.is_empty() && e != taint.effect)
    {
        return false;
    }
    if t.key
        .as_deref()
        .is_some_and(|k| !k.is_empty() && k != taint.key)
    {
        return false;
    }
    match t.operator.as_deref().unwrap_or("") {
        "" | "Equal" => t.value.as_deref().unwrap_or("") == taint.value.as_deref().unwrap_or(""),
        "Exists" => true,
        _ => false,
    }
}

/// Whether some taint with an effect accepted by `effects` is not tolerated.
fn has_untolerated(taints: &[Taint], tolerations: &[Toleration], effects: &[&str]) -> bool {
    taints
        .iter()
        .filter(|t| effects.contains(&t.effect.as_str()))
        .any(|taint| !tolerations.iter().any(|t| tolerates(t, taint)))
}

fn requirement_matches(r: &NodeSelectorRequirement, value: Option<&str>) -> bool {
    let values = r.values.as_deref().unwrap_or_default();
    let int = |s: &str| s.parse::<i64>().ok();
    match r.operator.as_str() {
        "In" => value.is_some_and(|v| values.iter().any(|x| x == v)),
        "NotIn" => value.is_none_or(|v| !values.iter().any(|x| x == v)),
        "Exists" => value.is_some(),
        "DoesNotExist" => value.is_none(),
        "Gt" | "Lt" => {
            let (Some(have), [want]) = (value.and_then(int), values) else {
                return false;
            };
            let Some(want) = int(want) else {
                return false;
            };
            if r.operator == "Gt" {
                have > want
            } else {
                have < want
            }
        }
        _ => false,
    }
}

fn term_matches(term: &NodeSelectorTerm, labels: &BTreeMap<String, String>, name: &str) -> bool {
    let exprs = term.match_expressions.as_deref().unwrap_or_default();
    let fields = term.match_fields.as_deref().unwrap_or_default();
    if exprs.is_empty() && fields.is_empty() {
        return false;
    }
    exprs
        .iter()
        .all(|r| requirement_matches(r, labels.get(&r.key).map(String::as_str)))
        && fields.iter().all(|r| {
            let value = (r.key == "metadata.name").then_some(name);
            value.is_some() && requirement_matches(r, value)
        })
}

/// Upstream `GetRequiredNodeAffinity(pod).Match(node)`: node selector and required terms.
pub fn required_affinity_matches(spec: &PodSpec, node: &Node) -> bool {
    let empty = BTreeMap::new();
    let labels = node.metadata.labels.as_ref().unwrap_or(&empty);
    let name = node.metadata.name.as_deref().unwrap_or("");
    let selector_ok = spec
        .node_selector
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    let required = spec
        .affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|n| {
            n.required_during_scheduling_ignored_during_execution
                .as_ref()
        });
    let affinity_ok = required.is_none_or(|sel| {
        sel.node_selector_terms
            .iter()
            .any(|t| term_matches(t, labels, name))
    });
    selector_ok && affinity_ok
}

/// Upstream `NodeShouldRunDaemonPod`: (should run, may keep running).
pub fn node_should_run(template: &PodSpec, node: &Node) -> (bool, bool) {
    let name = node.metadata.name.as_deref().unwrap_or("");
    if template
        .node_name
        .as_deref()
        .is_some_and(|n| !n.is_empty() && n != name)
    {
        return (false, false);
    }
    let mut spec = template.clone();
    add_default_tolerations(&mut spec);
    if !required_affinity_matches(&spec, node) {
        return (false, false);
    }
    let taints = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.as_deref())
        .unwrap_or_default();
    let tolerations = spec.tolerations.as_deref().unwrap_or_default();
    if has_untolerated(taints, tolerations, &["NoSchedule", "NoExecute"]) {
        return (false, !has_untolerated(taints, tolerations, &["NoExecute"]));
    }
    (true, true)
}

/// Upstream `ReplaceDaemonSetPodNodeNameNodeAffinity`: pins the pod to one node through a
/// required `matchFields metadata.name In [node]` term, replacing other required terms.
pub fn pin_to_node(affinity: Option<Affinity>, node: &str) -> Affinity {
    let selector = NodeSelector {
        node_selector_terms: vec![NodeSelectorTerm {
            match_expressions: None,
            match_fields: Some(vec![NodeSelectorRequirement {
                key: "metadata.name".into(),
                operator: "In".into(),
                values: Some(vec![node.to_string()]),
            }]),
        }],
    };
    let mut affinity = affinity.unwrap_or_default();
    let node_affinity = affinity
        .node_affinity
        .get_or_insert_with(NodeAffinity::default);
    node_affinity.required_during_scheduling_ignored_during_execution = Some(selector);
    affinity
}

/// Upstream `GetTargetNodeName`: the node a daemon pod is bound or pinned to.
pub fn target_node(pod: &Pod) -> Option<String> {
    let spec = pod.spec.as_ref()?;
    if let Some(n) = spec.node_name.as_deref().filter(|n| !n.is_empty()) {
        return Some(n.to_string());
    }
    let terms = &spec
        .affinity
        .as_ref()?
        .node_affinity
        .as_ref()?
        .required_during_scheduling_ignored_during_execution
        .as_ref()?
        .node_selector_terms;
    terms
        .iter()
        .flat_map(|t| t.match_fields.iter().flatten())
        .find(|r| r.key == "metadata.name" && r.operator == "In")
        .and_then(|r| match r.values.as_deref() {
            Some([one]) => Some(one.clone()),
            _ => None,
        })
}

#[cfg(test)]
#[path = "predicates_tests.rs"]
mod tests;
