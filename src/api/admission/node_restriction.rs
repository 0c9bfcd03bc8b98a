//! NodeRestriction admission: a kubelet may change only what is its own.
//!
//! The node authorizer decides which verbs a node credential may use; this
//! plugin looks at the objects, as upstream's `noderestriction` plugin
//! does: a node may create only mirror pods bound to itself that reference
//! no other API objects, delete and update the status of only its own
//! pods, evict only its own pods, modify only its own Node (not its taints,
//! nor labels outside the kubelet's set), and request tokens only for pods
//! bound to it.

use serde_json::Value;

use crate::api::authn::User;
use crate::api::authz::node::{Kind, node_name, references};
use crate::api::handlers::Api;
use crate::api::status::{ApiError, ApiResult};
use crate::store::Store;

const MIRROR_ANNOTATION: &str = "kubernetes.io/config.mirror";

/// The kind of write being admitted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    /// POST.
    Create,
    /// PUT or PATCH.
    Update,
    /// DELETE.
    Delete,
}

fn refuse(what: String) -> ApiError {
    ApiError::forbidden(what)
}

/// Labels a kubelet may set on its Node (upstream `IsKubeletLabel`).
fn kubelet_label(key: &str) -> bool {
    const EXACT: &[&str] = &[
        "kubernetes.io/hostname",
        "kubernetes.io/arch",
        "kubernetes.io/os",
        "beta.kubernetes.io/arch",
        "beta.kubernetes.io/os",
        "beta.kubernetes.io/instance-type",
        "failure-domain.beta.kubernetes.io/region",
        "failure-domain.beta.kubernetes.io/zone",
        "topology.kubernetes.io/region",
        "topology.kubernetes.io/zone",
        "node.kubernetes.io/instance-type",
    ];
    if EXACT.contains(&key) {
        return true;
    }
    let domain = key.split_once('/').map_or("", |(d, _)| d);
    ["kubelet.kubernetes.io", "node.kubernetes.io"]
        .iter()
        .any(|ns| domain == *ns || domain.ends_with(&format!(".{ns}")))
}

/// Labels a node may not set or change (upstream `getForbiddenLabels`).
fn forbidden_labels(new: &Value, old: Option<&Value>) -> Vec<String> {
    let labels = |v: Option<&Value>| {
        v.and_then(|v| v["metadata"]["labels"].as_object())
            .cloned()
            .unwrap_or_default()
    };
    let (new, old) = (labels(Some(new)), labels(old));
    let mut changed: Vec<&String> = new.keys().filter(|k| old.get(*k) != new.get(*k)).collect();
    changed.extend(old.keys().filter(|k| !new.contains_key(*k)));
    let mut out: Vec<String> = changed
        .into_iter()
        .filter(|key| {
            let domain = key.split_once('/').map_or("", |(d, _)| d);
            let restricted = domain == "node-restriction.kubernetes.io"
                || domain.ends_with(".node-restriction.kubernetes.io");
            let kubernetes = ["kubernetes.io", "k8s.io"]
                .iter()
                .any(|ns| domain == *ns || domain.ends_with(&format!(".{ns}")));
            restricted || (kubernetes && !kubelet_label(key))
        })
        .cloned()
        .collect();
    out.sort();
    out
}

impl<S: Store> Api<S> {
    /// Admits a write by `user` (a no-op for users that are not nodes).
    pub(super) async fn admit_node_write(
        &self,
        user: &User,
        resource: (&str, &str),
        subresource: Option<&str>,
        op: Operation,
        old: Option<&Value>,
        new: Option<&Value>,
    ) -> ApiResult<()> {
        let Some(node) = node_name(user) else {
            return Ok(());
        };
        let obj = new.or(old).cloned().unwrap_or(Value::Null);
        let name = obj["metadata"]["name"].as_str().unwrap_or_default();
        let bound_here = |v: Option<&Value>| v.is_some_and(|p| p["spec"]["nodeName"] == node);
        match (resource, subresource) {
            (("", "pods"), None) => match op {
                Operation::Create => admit_mirror_pod(node, &obj),
                Operation::Delete if bound_here(old) => Ok(()),
                Operation::Delete => Err(refuse(format!(
                    "node \"{node}\" can only delete pods with spec.nodeName set to itself"
                ))),
                Operation::Update => Err(refuse(format!(
                    "unexpected operation \"UPDATE\", node \"{node}\" can only create and delete mirror pods"
                ))),
            },
            (("", "pods"), Some("status")) => {
                if !bound_here(old) {
                    return Err(refuse(format!(
                        "node \"{node}\" can only update pod status for pods with spec.nodeName set to itself"
                    )));
                }
                if old.map(|o| &o["metadata"]["labels"]) != new.map(|n| &n["metadata"]["labels"]) {
                    return Err(refuse(format!(
                        "node \"{node}\" cannot update labels through pod status"
                    )));
                }
                Ok(())
            }
            (("", "pods"), Some("eviction")) if bound_here(old) => Ok(()),
            (("", "pods"), Some("eviction")) => Err(refuse(format!(
                "node {node} can only evict pods with spec.nodeName set to itself"
            ))),
            (("", "pods"), Some(other)) => Err(refuse(format!(
                "unexpected subresource \"{other}\", only 'status' and 'eviction' are allowed"
            ))),
            (("", "nodes"), _) => {
                if name != node {
                    return Err(refuse(format!(
                        "node \"{node}\" is not allowed to modify node \"{name}\""
                    )));
                }
                if op == Operation::Update
                    && old.map(|o| &o["spec"]["taints"]) != new.map(|n| &n["spec"]["taints"])
                {
                    return Err(refuse(format!(
                        "node \"{node}\" is not allowed to modify taints"
                    )));
                }
                let labels = match op {
                    Operation::Delete => Vec::new(),
                    _ => forbidden_labels(&obj, old),
                };
                if labels.is_empty() {
                    return Ok(());
                }
                let verb = if op == Operation::Create {
                    "set the following labels"
                } else {
                    "modify labels"
                };
                Err(refuse(format!(
                    "node \"{node}\" is not allowed to {verb}: {}",
                    labels.join(", ")
                )))
            }
            (("coordination.k8s.io", "leases"), _) | (("storage.k8s.io", "csinodes"), _)
                if op == Operation::Create && name != node =>
            {
                let what = if resource.1 == "leases" {
                    "lease"
                } else {
                    "csinode"
                };
                Err(refuse(format!(
                    "can only access node {what} with the same name as the requesting node"
                )))
            }
            (("", "persistentvolumeclaims"), Some("status")) => Ok(()),
            (("", "persistentvolumeclaims"), _) => Err(refuse(format!(
                "node \"{node}\" may only update PVC status"
            ))),
            _ => Ok(()),
        }
    }

    /// A node's TokenRequest must be bound to a pod on that node.
    pub(crate) async fn admit_node_token(
        &self,
        user: &User,
        request: &Value,
        namespace: &str,
    ) -> ApiResult<()> {
        let Some(node) = node_name(user) else {
            return Ok(());
        };
        let bound = &request["spec"]["boundObjectRef"];
        if bound["kind"] != "Pod" {
            return Err(refuse(
                "node requested token not bound to a pod".to_string(),
            ));
        }
        let pod_name = bound["name"].as_str().unwrap_or_default();
        let pod = self
            .cache
            .get(&format!("/registry/core/pods/{namespace}/{pod_name}"))
            .map(|p| p.value());
        let Some(pod) = pod else {
            return Err(refuse(
                "node requested token bound to a pod that does not exist".to_string(),
            ));
        };
        if let Some(uid) = bound["uid"].as_str().filter(|u| !u.is_empty())
            && pod["metadata"]["uid"] != uid
        {
            return Err(refuse(
                "the UID in the bound object reference does not match the pod".into(),
            ));
        }
        if pod["spec"]["nodeName"] != node {
            return Err(refuse(
                "node requested token bound to a pod scheduled on a different node".to_string(),
            ));
        }
        Ok(())
    }
}

fn admit_mirror_pod(node: &str, pod: &Value) -> ApiResult<()> {
    if pod["metadata"]["annotations"][MIRROR_ANNOTATION].is_null() {
        return Err(refuse(format!(
            "pod does not have \"{MIRROR_ANNOTATION}\" annotation, node \"{node}\" can only create mirror pods"
        )));
    }
    if pod["spec"]["nodeName"] != node {
        return Err(refuse(format!(
            "node \"{node}\" can only create pods with spec.nodeName set to itself"
        )));
    }
    let owners = pod["metadata"]["ownerReferences"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let own = owners.len() == 1
        && owners[0]["kind"] == "Node"
        && owners[0]["apiVersion"] == "v1"
        && owners[0]["name"] == node;
    if !own {
        return Err(refuse(format!(
            "node \"{node}\" can only create pods with an owner reference set to itself"
        )));
    }
    if pod["spec"]["serviceAccountName"]
        .as_str()
        .is_some_and(|s| !s.is_empty())
    {
        return Err(refuse(format!(
            "node \"{node}\" can not create pods that reference a service account"
        )));
    }
    for (kind, what) in [
        (Kind::Secret, "secrets"),
        (Kind::ConfigMap, "configmaps"),
        (Kind::Claim, "persistentvolumeclaims"),
    ] {
        if !references(pod, kind).is_empty() {
            return Err(refuse(format!(
                "node \"{node}\" can not create pods that reference {what}"
            )));
        }
    }
    Ok(())
}
