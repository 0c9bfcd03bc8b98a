//! Test fixtures: Nodes and Pods built from JSON, the way the apiserver would send them.

use std::sync::Arc;

use k8s_openapi::api::core::v1::{Node, Pod};
use serde_json::{Value, json};

use super::cache::Cache;
use super::podinfo::PodInfo;

/// A Ready node with the given allocatable cpu/memory/pods, hostname label, plus `extra`
/// merged into the top level (e.g. `{"spec": {"taints": [...]}}`).
pub fn node(name: &str, cpu: &str, memory: &str, extra: Value) -> Node {
    let mut v = json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
        "spec": {},
        "status": {
            "capacity": {"cpu": cpu, "memory": memory, "pods": "110"},
            "allocatable": {"cpu": cpu, "memory": memory, "pods": "110"},
            "conditions": [{"type": "Ready", "status": "True"}]
        }
    });
    merge(&mut v, extra);
    serde_json::from_value(v).unwrap_or_default()
}

/// A pod named `name` in `default` with one container requesting `cpu`/`memory` ("" = none),
/// plus `extra` merged in (e.g. `{"spec": {"tolerations": [...]}}`).
pub fn pod(name: &str, cpu: &str, memory: &str, extra: Value) -> Pod {
    let mut requests = serde_json::Map::new();
    if !cpu.is_empty() {
        requests.insert("cpu".into(), json!(cpu));
    }
    if !memory.is_empty() {
        requests.insert("memory".into(), json!(memory));
    }
    let mut v = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "uid": format!("uid-{name}"),
                     "labels": {}},
        "spec": {"containers": [{"name": "c", "image": "x", "resources": {"requests": requests}}]}
    });
    merge(&mut v, extra);
    serde_json::from_value(v).unwrap_or_default()
}

/// Compiled pod info.
pub fn info(p: &Pod) -> Arc<PodInfo> {
    Arc::new(PodInfo::from_pod(p))
}

/// A cache holding `nodes` and the `pods` bound to the nodes named in their spec.nodeName.
pub fn cache(nodes: &[Node], pods: &[Pod]) -> Cache {
    let mut c = Cache::default();
    for n in nodes {
        c.upsert_node(n);
    }
    for p in pods {
        c.add_assigned_pod(info(p));
    }
    c
}

/// Deep-merges JSON objects (arrays and scalars in `patch` replace).
pub fn merge(base: &mut Value, patch: Value) {
    match (base, patch) {
        (Value::Object(b), Value::Object(p)) => {
            for (k, v) in p {
                merge(b.entry(k).or_insert(Value::Null), v);
            }
        }
        (b, p) => *b = p,
    }
}
