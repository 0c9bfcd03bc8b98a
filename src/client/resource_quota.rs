//! What a ResourceQuota charges an object, shared by the apiserver's
//! ResourceQuota admission (which charges each new object before it is
//! stored) and the quota controller (which recounts `status.used` from what
//! is stored), so that both always agree.
//!
//! The rules are upstream's quota evaluators (`pkg/quota/v1/evaluator/core`):
//! every object counts toward `count/<resource>[.<group>]`; the legacy names
//! (`services`, `secrets`, `configmaps`, `persistentvolumeclaims`,
//! `replicationcontrollers`, `resourcequotas`) count the same objects; a pod
//! is charged `pods` and its compute requests and limits only while it is
//! not terminal; services are charged their load balancers and node ports;
//! claims their requested storage, also per storage class. Quota scopes
//! (`Terminating`, `BestEffort`, `PriorityClass`…) only ever match pods.

use std::collections::BTreeMap;

use serde_json::Value;

use super::pod_qos;
use super::quantity::{self, Quantity};

/// Resource name → amount.
pub type Usage = BTreeMap<String, Quantity>;

/// Compute resources that, once a quota limits them, every container must
/// state (upstream's `validationSet`: "this was a mistake", kept for
/// compatibility).
const REQUIRED_WHEN_LIMITED: &[&str] = &[
    "cpu",
    "memory",
    "requests.cpu",
    "requests.memory",
    "limits.cpu",
    "limits.memory",
];

/// The quota name counting objects of a resource: `count/pods`,
/// `count/deployments.apps`.
pub fn count_name(group: &str, resource: &str) -> String {
    if group.is_empty() {
        format!("count/{resource}")
    } else {
        format!("count/{resource}.{group}")
    }
}

/// The legacy object-count name of a core resource, where one exists.
pub fn legacy_count_name(group: &str, resource: &str) -> Option<&'static str> {
    if !group.is_empty() {
        return None;
    }
    [
        "services",
        "secrets",
        "configmaps",
        "persistentvolumeclaims",
        "replicationcontrollers",
        "resourcequotas",
    ]
    .into_iter()
    .find(|r| *r == resource)
}

/// Whether the quota resource `name` is charged by objects of
/// `group/resource` (upstream `MatchingResources`).
pub fn charged_by(name: &str, group: &str, resource: &str) -> bool {
    if name == count_name(group, resource) || legacy_count_name(group, resource) == Some(name) {
        return true;
    }
    match (group, resource) {
        ("", "pods") => {
            matches!(
                name,
                "pods"
                    | "cpu"
                    | "memory"
                    | "ephemeral-storage"
                    | "requests.cpu"
                    | "requests.memory"
                    | "requests.ephemeral-storage"
                    | "limits.cpu"
                    | "limits.memory"
                    | "limits.ephemeral-storage"
            ) || name.starts_with("hugepages-")
                || name.starts_with("requests.hugepages-")
                || (name.starts_with("requests.") && name.contains('/'))
        }
        ("", "services") => matches!(name, "services.loadbalancers" | "services.nodeports"),
        ("", "persistentvolumeclaims") => {
            name == "requests.storage"
                || name.ends_with(".storageclass.storage.k8s.io/requests.storage")
                || name.ends_with(".storageclass.storage.k8s.io/persistentvolumeclaims")
        }
        _ => false,
    }
}

/// What `obj` (of `group/resource`) is charged.
pub fn usage(group: &str, resource: &str, obj: &Value) -> Usage {
    let mut usage = Usage::new();
    let one = Quantity::from_int(1);
    usage.insert(count_name(group, resource), one);
    if let Some(legacy) = legacy_count_name(group, resource) {
        usage.insert(legacy.to_string(), one);
    }
    match (group, resource) {
        ("", "pods") if charges_compute(obj) => {
            usage.insert("pods".into(), one);
            let spec = &obj["spec"];
            let requests = pod_total(spec, "requests");
            let limits = pod_total(spec, "limits");
            for (name, q) in requests {
                match name.as_str() {
                    "cpu" | "memory" | "ephemeral-storage" => {
                        usage.insert(format!("requests.{name}"), q);
                        usage.insert(name, q);
                    }
                    n if n.starts_with("hugepages-") => {
                        usage.insert(format!("requests.{name}"), q);
                        usage.insert(name, q);
                    }
                    n if n.contains('/') && !n.starts_with("kubernetes.io/") => {
                        usage.insert(format!("requests.{name}"), q);
                    }
                    _ => {}
                }
            }
            for (name, q) in limits {
                if matches!(name.as_str(), "cpu" | "memory" | "ephemeral-storage") {
                    usage.insert(format!("limits.{name}"), q);
                }
            }
        }
        ("", "services") => {
            let ports = obj["spec"]["ports"].as_array().map_or(0, Vec::len) as i64;
            match obj["spec"]["type"].as_str() {
                Some("NodePort") => {
                    usage.insert("services.nodeports".into(), Quantity::from_int(ports));
                }
                Some("LoadBalancer") => {
                    usage.insert("services.loadbalancers".into(), one);
                    let node_ports = if obj["spec"]["allocateLoadBalancerNodePorts"] == false {
                        obj["spec"]["ports"].as_array().map_or(0, |p| {
                            p.iter()
                                .filter(|p| p["nodePort"].as_i64().unwrap_or(0) != 0)
                                .count()
                        }) as i64
                    } else {
                        ports
                    };
                    usage.insert("services.nodeports".into(), Quantity::from_int(node_ports));
                }
                _ => {}
            }
        }
        ("", "persistentvolumeclaims") => {
            let storage = obj["spec"]["resources"]["requests"]["storage"]
                .as_str()
                .and_then(|s| quantity::parse(s).ok());
            let class = obj["spec"]["storageClassName"].as_str().unwrap_or("");
            if let Some(q) = storage {
                usage.insert("requests.storage".into(), q);
                if !class.is_empty() {
                    usage.insert(
                        format!("{class}.storageclass.storage.k8s.io/requests.storage"),
                        q,
                    );
                }
            }
            if !class.is_empty() {
                usage.insert(
                    format!("{class}.storageclass.storage.k8s.io/persistentvolumeclaims"),
                    one,
                );
            }
        }
        _ => {}
    }
    usage
}

/// A pod stops being charged compute once it is terminal, or once its
/// deletion grace period has run out (upstream `QuotaV1Pod`).
fn charges_compute(pod: &Value) -> bool {
    if matches!(
        pod["status"]["phase"].as_str(),
        Some("Succeeded" | "Failed")
    ) {
        return false;
    }
    let deleted = pod["metadata"]["deletionTimestamp"]
        .as_str()
        .and_then(|s| super::timestamps::parse_rfc3339(s.as_bytes()));
    let grace = pod["metadata"]["deletionGracePeriodSeconds"].as_i64();
    match (deleted, grace) {
        (Some(at), Some(grace)) => {
            let deadline = at + std::time::Duration::from_secs(grace.max(0) as u64);
            std::time::SystemTime::now() <= deadline
        }
        _ => true,
    }
}

fn container_list(c: &Value, which: &str) -> Usage {
    c["resources"][which]
        .as_object()
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), quantity::parse(v.as_str()?).ok()?)))
                .collect()
        })
        .unwrap_or_default()
}

fn add_into(total: &mut Usage, more: &Usage) {
    for (k, v) in more {
        let sum = match total.get(k) {
            Some(t) => t.checked_add(v).unwrap_or(*t),
            None => *v,
        };
        total.insert(k.clone(), sum);
    }
}

fn max_into(total: &mut Usage, other: &Usage) {
    for (k, v) in other {
        if total
            .get(k)
            .is_none_or(|t| t.cmp_value(v) == std::cmp::Ordering::Less)
        {
            total.insert(k.clone(), *v);
        }
    }
}

/// The pod's effective requests or limits (upstream `PodRequests`/
/// `PodLimits`): its containers and sidecars together, at least any one
/// init container with the sidecars started before it, plus overhead.
fn pod_total(spec: &Value, which: &str) -> Usage {
    let mut total = Usage::new();
    for c in spec["containers"].as_array().into_iter().flatten() {
        add_into(&mut total, &container_list(c, which));
    }
    let mut sidecars = Usage::new();
    let mut init_peak = Usage::new();
    for c in spec["initContainers"].as_array().into_iter().flatten() {
        let own = container_list(c, which);
        if c["restartPolicy"] == "Always" {
            add_into(&mut sidecars, &own);
            max_into(&mut init_peak, &sidecars);
        } else {
            let mut during = sidecars.clone();
            add_into(&mut during, &own);
            max_into(&mut init_peak, &during);
        }
    }
    add_into(&mut total, &sidecars);
    max_into(&mut total, &init_peak);
    if let Some(overhead) = spec["overhead"].as_object() {
        let overhead: Usage = overhead
            .iter()
            .filter_map(|(k, v)| Some((k.clone(), quantity::parse(v.as_str()?).ok()?)))
            .collect();
        add_into(&mut total, &overhead);
    }
    total
}

/// Whether a pod matches every scope of the quota (`spec.scopes` and
/// `spec.scopeSelector`); other objects match only unscoped quotas.
pub fn matches_scopes(quota: &Value, group: &str, resource: &str, obj: &Value) -> bool {
    let mut selectors: Vec<(String, String, Vec<String>)> = quota["spec"]["scopes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(|s| (s.to_string(), "Exists".to_string(), Vec::new()))
        .collect();
    for e in quota["spec"]["scopeSelector"]["matchExpressions"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let values = e["values"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect();
        selectors.push((
            e["scopeName"].as_str().unwrap_or("").to_string(),
            e["operator"].as_str().unwrap_or("").to_string(),
            values,
        ));
    }
    if selectors.is_empty() {
        return true;
    }
    if (group, resource) != ("", "pods") {
        return false;
    }
    selectors
        .iter()
        .all(|(scope, op, values)| pod_matches_scope(obj, scope, op, values))
}

fn pod_matches_scope(pod: &Value, scope: &str, op: &str, values: &[String]) -> bool {
    let spec = &pod["spec"];
    match scope {
        "Terminating" => spec["activeDeadlineSeconds"]
            .as_i64()
            .is_some_and(|s| s >= 0),
        "NotTerminating" => spec["activeDeadlineSeconds"].as_i64().is_none_or(|s| s < 0),
        "BestEffort" => pod_qos::qos_class(Some(spec)) == "BestEffort",
        "NotBestEffort" => pod_qos::qos_class(Some(spec)) != "BestEffort",
        "PriorityClass" => {
            let class = spec["priorityClassName"].as_str().unwrap_or("");
            match op {
                "Exists" => !class.is_empty(),
                "DoesNotExist" => class.is_empty(),
                "In" => !class.is_empty() && values.iter().any(|v| v == class),
                "NotIn" => class.is_empty() || !values.iter().any(|v| v == class),
                _ => false,
            }
        }
        "CrossNamespacePodAffinity" => {
            let uses = |kind: &str| {
                let a = &spec["affinity"][kind];
                let cross = |t: &Value| {
                    t["namespaces"].as_array().is_some_and(|n| !n.is_empty())
                        || t["namespaceSelector"].is_object()
                };
                a["requiredDuringSchedulingIgnoredDuringExecution"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(cross)
                    || a["preferredDuringSchedulingIgnoredDuringExecution"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .any(|w| cross(&w["podAffinityTerm"]))
            };
            uses("podAffinity") || uses("podAntiAffinity")
        }
        _ => false,
    }
}

/// For a pod under a quota that limits cpu or memory: the containers that
/// do not state them (upstream's pod evaluator `Constraints`), as
/// "must specify limits.cpu for: a,b; requests.memory for: a".
pub fn missing_constraints(limited: &[&str], pod: &Value) -> Option<String> {
    let required: Vec<&str> = REQUIRED_WHEN_LIMITED
        .iter()
        .copied()
        .filter(|r| limited.contains(r))
        .collect();
    if required.is_empty() {
        return None;
    }
    let mut missing: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for list in ["containers", "initContainers"] {
        for c in pod["spec"][list].as_array().into_iter().flatten() {
            let requests = container_list(c, "requests");
            let limits = container_list(c, "limits");
            let has = |r: &str| match r {
                "cpu" | "requests.cpu" => requests.contains_key("cpu"),
                "memory" | "requests.memory" => requests.contains_key("memory"),
                "limits.cpu" => limits.contains_key("cpu"),
                _ => limits.contains_key("memory"),
            };
            for r in &required {
                if !has(r) {
                    missing
                        .entry(r)
                        .or_default()
                        .push(c["name"].as_str().unwrap_or("").to_string());
                }
            }
        }
    }
    if missing.is_empty() {
        return None;
    }
    let parts: Vec<String> = missing
        .into_iter()
        .map(|(r, mut names)| {
            names.sort();
            names.dedup();
            format!("{r} for: {}", names.join(","))
        })
        .collect();
    Some(format!("must specify {}", parts.join("; ")))
}

/// `a=1,b=2Gi`, sorted by name (upstream `prettyPrint`).
pub fn pretty(usage: &Usage) -> String {
    usage
        .iter()
        .map(|(k, v)| format!("{k}={}", v.canonical()))
        .collect::<Vec<_>>()
        .join(",")
}

/// Reads a `ResourceList` (`spec.hard`, `status.used`).
pub fn parse_list(list: &Value) -> Usage {
    list.as_object()
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), quantity::parse(v.as_str()?).ok()?)))
                .collect()
        })
        .unwrap_or_default()
}

/// Writes a `ResourceList` in canonical form.
pub fn to_list(usage: &Usage) -> Value {
    Value::Object(
        usage
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.canonical())))
            .collect(),
    )
}

/// `a + b` for every name in either.
pub fn add(a: &Usage, b: &Usage) -> Usage {
    let mut out = a.clone();
    add_into(&mut out, b);
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_running_pod_is_charged_its_requests_and_limits() {
        let pod = json!({"spec": {"containers": [
            {"name": "a", "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"cpu": "1"}}},
            {"name": "b", "resources": {"requests": {"cpu": "200m"}}},
        ]}, "status": {"phase": "Running"}});
        let u = usage("", "pods", &pod);
        assert_eq!(u["pods"].canonical(), "1");
        assert_eq!(u["count/pods"].canonical(), "1");
        assert_eq!(u["requests.cpu"].canonical(), "300m");
        assert_eq!(u["cpu"].canonical(), "300m");
        assert_eq!(u["requests.memory"].canonical(), "64Mi");
        assert_eq!(u["limits.cpu"].canonical(), "1");
        assert!(!u.contains_key("limits.memory"));
    }

    #[test]
    fn a_finished_pod_is_charged_only_its_object_count() {
        let pod =
            json!({"spec": {"containers": [{"name": "a"}]}, "status": {"phase": "Succeeded"}});
        let u = usage("", "pods", &pod);
        assert!(!u.contains_key("pods"));
        assert!(u.contains_key("count/pods"));
    }

    #[test]
    fn an_init_container_larger_than_the_rest_sets_the_request() {
        let pod = json!({"spec": {
            "initContainers": [{"name": "i", "resources": {"requests": {"cpu": "2"}}}],
            "containers": [{"name": "a", "resources": {"requests": {"cpu": "500m"}}}]}});
        assert_eq!(usage("", "pods", &pod)["requests.cpu"].canonical(), "2");
    }

    #[test]
    fn services_are_charged_node_ports_and_load_balancers() {
        let svc = json!({"spec": {"type": "LoadBalancer", "ports": [{"port": 80}, {"port": 443}]}});
        let u = usage("", "services", &svc);
        assert_eq!(u["services"].canonical(), "1");
        assert_eq!(u["services.loadbalancers"].canonical(), "1");
        assert_eq!(u["services.nodeports"].canonical(), "2");
    }

    #[test]
    fn scoped_quotas_match_only_the_pods_in_scope() {
        let quota = json!({"spec": {"scopes": ["BestEffort"]}});
        let best_effort = json!({"spec": {"containers": [{"name": "a"}]}});
        let burstable = json!({"spec": {"containers": [{"name": "a", "resources": {"requests": {"cpu": "1"}}}]}});
        assert!(matches_scopes(&quota, "", "pods", &best_effort));
        assert!(!matches_scopes(&quota, "", "pods", &burstable));
        assert!(!matches_scopes(&quota, "", "configmaps", &json!({})));
    }

    #[test]
    fn containers_missing_a_limited_resource_are_named() {
        let pod = json!({"spec": {"containers": [{"name": "web"}, {"name": "db", "resources": {"limits": {"cpu": "1"}}}]}});
        assert_eq!(
            missing_constraints(&["limits.cpu", "pods"], &pod).as_deref(),
            Some("must specify limits.cpu for: web")
        );
        assert_eq!(missing_constraints(&["pods"], &pod), None);
    }
}
