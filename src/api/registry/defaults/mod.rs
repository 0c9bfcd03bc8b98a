//! Upstream-faithful defaulting of built-in kinds on their wire JSON.
//!
//! [`apply_defaults`] fills in what kube-apiserver's defaulters (`pkg/apis/*/v1/defaults.go`
//! and the generated `SetObjectDefaults_*` walks) fill in, so stored objects read back the
//! way they do upstream: a Deployment gains `replicas: 1`, a rolling-update strategy and
//! pod-template defaults, a container gains its pull policy and termination message
//! settings, and resource quantities take their canonical form ("0.5" becomes "500m").
//! A few create-time normalisations that upstream does in registry strategies or in
//! version conversion, and that clients observe the same way, are done here too: a
//! Secret's `stringData` is folded into `data`, a Service's `clusterIPs` and IP families
//! are derived, a Namespace that is not being deleted carries the `kubernetes` finalizer,
//! a Node's `podCIDR` and `podCIDRs` are paired, and a Job whose uid is known gets its
//! generated selector and labels.
//!
//! Defaulting never fails: a field of an unexpected JSON type is left alone for validation
//! to report, and unknown kinds are left untouched. Every default only fills what is
//! unset, so applying defaults twice gives the same object as applying them once.

mod core_kinds;
mod pod;
mod workloads;

#[cfg(test)]
mod tests;

use serde_json::{Map, Value};

/// Applies upstream's defaults for the given API group (`""` for core) and kind, in place.
pub fn apply_defaults(group: &str, kind: &str, obj: &mut Value) {
    if !obj.is_object() {
        return;
    }
    match (group, kind) {
        ("", "Pod") => pod::pod(obj),
        ("", "PodTemplate") => pod::template(obj, "template"),
        ("", "ReplicationController") => workloads::replication_controller(obj),
        ("", "Service") => core_kinds::service(obj),
        ("", "Secret") => core_kinds::secret(obj),
        ("", "Namespace") => core_kinds::namespace(obj),
        ("", "Node") => core_kinds::node(obj),
        ("", "PersistentVolumeClaim") => core_kinds::pvc(obj),
        ("", "Endpoints") => core_kinds::endpoints(obj),
        ("apps", "Deployment") => workloads::deployment(obj),
        ("apps", "ReplicaSet") => workloads::replica_set(obj),
        ("apps", "DaemonSet") => workloads::daemon_set(obj),
        ("apps", "StatefulSet") => workloads::stateful_set(obj),
        ("batch", "Job") => workloads::job(obj),
        ("batch", "CronJob") => workloads::cron_job(obj),
        ("discovery.k8s.io", "EndpointSlice") => core_kinds::endpoint_slice(obj),
        ("scheduling.k8s.io", "PriorityClass") => core_kinds::priority_class(obj),
        ("rbac.authorization.k8s.io", "RoleBinding" | "ClusterRoleBinding") => {
            core_kinds::binding(obj)
        }
        _ => {}
    }
}

/// Whether a field holds no value: absent or `null`.
fn is_unset(map: &Map<String, Value>, key: &str) -> bool {
    map.get(key).is_none_or(Value::is_null)
}

/// Sets a pointer-typed field when it is absent or `null`.
fn set_default(map: &mut Map<String, Value>, key: &str, value: Value) {
    if is_unset(map, key) {
        map.insert(key.to_string(), value);
    }
}

/// Sets a value-typed field when it holds Go's zero value (absent, `null`, `""` or `0`).
fn set_if_zero(map: &mut Map<String, Value>, key: &str, value: Value) {
    let zero = match map.get(key) {
        None | Some(Value::Null) => true,
        Some(Value::String(s)) => s.is_empty(),
        Some(Value::Number(n)) => n.as_f64() == Some(0.0),
        Some(_) => false,
    };
    if zero {
        map.insert(key.to_string(), value);
    }
}

/// The object at `key`, created empty when unset; `None` when the field is not an object.
fn child<'a>(map: &'a mut Map<String, Value>, key: &str) -> Option<&'a mut Map<String, Value>> {
    if is_unset(map, key) {
        map.insert(key.to_string(), Value::Object(Map::new()));
    }
    map.get_mut(key).and_then(Value::as_object_mut)
}

/// The object at `key` if it exists; nothing is created.
fn existing<'a>(map: &'a mut Map<String, Value>, key: &str) -> Option<&'a mut Map<String, Value>> {
    map.get_mut(key).and_then(Value::as_object_mut)
}

/// The objects of the list at `key`, if it exists.
fn each<'a>(
    map: &'a mut Map<String, Value>,
    key: &str,
) -> impl Iterator<Item = &'a mut Map<String, Value>> {
    map.get_mut(key)
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
        .filter_map(Value::as_object_mut)
}

/// A string field, `""` when unset or not a string.
fn text<'a>(map: &'a Map<String, Value>, key: &str) -> &'a str {
    map.get(key).and_then(Value::as_str).unwrap_or("")
}
