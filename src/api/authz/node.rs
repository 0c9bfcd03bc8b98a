//! The Node authorizer: what a kubelet credential may touch.
//!
//! A kubelet authenticates as `system:node:<name>` in `system:nodes`. Like
//! upstream's node authorizer it may read a Secret, ConfigMap, PVC or PV,
//! and request a token for a ServiceAccount, only when a pod bound to its
//! node uses that object; it may touch only its own Lease and CSINode; and
//! everything else is decided by the static rules of the `system:node`
//! ClusterRole. Upstream keeps an incremental graph of pods and their
//! references; kelp answers the same question from the watch cache on
//! demand (the pods of one node in one namespace), which is exact, needs no
//! second copy of the pods, and costs only on the kubelet's rare reads.

use std::sync::Arc;

use serde_json::Value;

use super::attributes::{Attributes, ResourceAttributes, Target};
use super::rbac::Decision;
use super::rules::PolicyRule;
use crate::api::authn::User;
use crate::api::watch_cache::WatchCache;

const PODS: &str = "/registry/core/pods/";
const NODE_LEASE_NAMESPACE: &str = "kube-node-lease";

/// The node a user is, if it is a node credential (upstream
/// `NodeIdentity`): `system:node:<name>` in group `system:nodes`.
pub fn node_name(user: &User) -> Option<&str> {
    let name = user.name.strip_prefix("system:node:")?;
    user.groups
        .iter()
        .any(|g| g == "system:nodes")
        .then_some(name)
}

/// What kind of object a node asks about, as the graph's vertex types.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Secrets.
    Secret,
    /// ConfigMaps.
    ConfigMap,
    /// PersistentVolumeClaims.
    Claim,
    /// PersistentVolumes.
    Volume,
    /// ServiceAccounts.
    ServiceAccount,
}

/// The node authorizer. See the module docs.
pub struct NodeAuthorizer {
    cache: Arc<WatchCache>,
    /// The `system:node` ClusterRole's rules.
    rules: Vec<PolicyRule>,
}

impl NodeAuthorizer {
    /// An authorizer reading pods from `cache`, with the static node rules.
    pub fn new(cache: Arc<WatchCache>, rules: Vec<PolicyRule>) -> Self {
        NodeAuthorizer { cache, rules }
    }

    /// Decides a request; `NoOpinion` for users that are not nodes.
    pub fn authorize(&self, attrs: &Attributes<'_>) -> Decision {
        let Some(node) = node_name(attrs.user) else {
            return Decision::NoOpinion(String::new());
        };
        if node.is_empty() {
            return Decision::NoOpinion("unknown node".into());
        }
        if let Target::Resource(r) = attrs.target {
            match (r.group.as_str(), r.resource.as_str()) {
                ("", "secrets") => return self.read(node, Kind::Secret, attrs.verb, r),
                ("", "configmaps") => return self.read(node, Kind::ConfigMap, attrs.verb, r),
                ("", "persistentvolumeclaims") if r.subresource == "status" => {
                    if !matches!(attrs.verb, "update" | "patch") {
                        return no("can only update or patch a persistentvolumeclaim status");
                    }
                    return self.related(node, Kind::Claim, r);
                }
                ("", "persistentvolumeclaims") => {
                    return self.get(node, Kind::Claim, attrs.verb, r);
                }
                ("", "persistentvolumes") => return self.get(node, Kind::Volume, attrs.verb, r),
                ("", "serviceaccounts") => {
                    if attrs.verb != "create" {
                        return no("can only create tokens for individual service accounts");
                    }
                    if r.subresource != "token" {
                        return no("can only create token subresource of serviceaccount");
                    }
                    return self.related(node, Kind::ServiceAccount, r);
                }
                ("coordination.k8s.io", "leases") => {
                    return own_object(node, attrs.verb, r, "lease");
                }
                ("storage.k8s.io", "csinodes") => {
                    return own_object(node, attrs.verb, r, "csinode");
                }
                _ => {}
            }
        }
        if self.rules.iter().any(|rule| rule.allows(attrs)) {
            return Decision::Allow(String::new());
        }
        Decision::NoOpinion(String::new())
    }

    fn read(&self, node: &str, kind: Kind, verb: &str, r: &ResourceAttributes) -> Decision {
        if !matches!(verb, "get" | "list" | "watch") {
            return no("can only read resources of this type");
        }
        if !r.subresource.is_empty() {
            return no("cannot read subresource");
        }
        if r.namespace.is_empty() {
            return no("can only read namespaced object of this type");
        }
        self.related(node, kind, r)
    }

    fn get(&self, node: &str, kind: Kind, verb: &str, r: &ResourceAttributes) -> Decision {
        if verb != "get" {
            return no("can only get individual resources of this type");
        }
        if !r.subresource.is_empty() {
            return no("cannot get subresource");
        }
        self.related(node, kind, r)
    }

    fn related(&self, node: &str, kind: Kind, r: &ResourceAttributes) -> Decision {
        if r.name.is_empty() {
            return no("No Object name found");
        }
        let found = match kind {
            Kind::Volume => self.volume_used_on(node, &r.name),
            _ => self
                .pods_on(node, &format!("{PODS}{}/", r.namespace))
                .iter()
                .any(|pod| references(pod, kind).contains(&r.name)),
        };
        if found {
            Decision::Allow(String::new())
        } else {
            no(&format!(
                "no relationship found between node '{node}' and this object"
            ))
        }
    }

    fn pods_on(&self, node: &str, prefix: &str) -> Vec<Value> {
        let (pods, _) = self
            .cache
            .list(prefix, |o| o.field_str("spec.nodeName") == Some(node));
        pods.iter().map(|p| p.value()).collect()
    }

    /// A PV is related when a PVC a pod on the node uses is bound to it.
    fn volume_used_on(&self, node: &str, volume: &str) -> bool {
        self.pods_on(node, PODS).iter().any(|pod| {
            let ns = pod["metadata"]["namespace"].as_str().unwrap_or_default();
            references(pod, Kind::Claim).iter().any(|claim| {
                self.cache
                    .get(&format!(
                        "/registry/core/persistentvolumeclaims/{ns}/{claim}"
                    ))
                    .is_some_and(|pvc| pvc.value()["spec"]["volumeName"] == volume)
            })
        })
    }
}

fn no(reason: &str) -> Decision {
    Decision::NoOpinion(reason.to_string())
}

/// Leases and CSINodes: a node may only touch the one named after it.
fn own_object(node: &str, verb: &str, r: &ResourceAttributes, what: &str) -> Decision {
    if !matches!(verb, "get" | "create" | "update" | "patch" | "delete") {
        return no(&format!(
            "can only get, create, update, patch, or delete a node {what}"
        ));
    }
    if what == "lease" && r.namespace != NODE_LEASE_NAMESPACE {
        return no(&format!(
            "can only access leases in the \"{NODE_LEASE_NAMESPACE}\" system namespace"
        ));
    }
    if !r.subresource.is_empty() {
        return no(&format!("cannot access subresource of node {what}"));
    }
    // A create names its object in the body, which NodeRestriction checks.
    if verb != "create" && r.name != node {
        return no(&format!(
            "can only access node {what} with the same name as the requesting node"
        ));
    }
    Decision::Allow(String::new())
}

/// Names of the objects of `kind` that `pod` references.
pub fn references(pod: &Value, kind: Kind) -> Vec<String> {
    let spec = &pod["spec"];
    let mut out = Vec::new();
    let mut push = |v: &Value| {
        if let Some(s) = v.as_str().filter(|s| !s.is_empty()) {
            out.push(s.to_string());
        }
    };
    let containers = ["containers", "initContainers", "ephemeralContainers"]
        .iter()
        .flat_map(|k| spec[*k].as_array().into_iter().flatten());
    let volumes: Vec<&Value> = spec["volumes"].as_array().into_iter().flatten().collect();
    match kind {
        Kind::ServiceAccount => {
            let sa = spec["serviceAccountName"].as_str().unwrap_or("default");
            push(&Value::String(sa.to_string()));
        }
        Kind::Claim => {
            let pod_name = pod["metadata"]["name"].as_str().unwrap_or_default();
            for v in volumes {
                push(&v["persistentVolumeClaim"]["claimName"]);
                if !v["ephemeral"].is_null() {
                    let name = v["name"].as_str().unwrap_or_default();
                    push(&Value::String(format!("{pod_name}-{name}")));
                }
            }
        }
        Kind::Secret | Kind::ConfigMap => {
            let secret = kind == Kind::Secret;
            if secret {
                for s in spec["imagePullSecrets"].as_array().into_iter().flatten() {
                    push(&s["name"]);
                }
            }
            for c in containers {
                for e in c["env"].as_array().into_iter().flatten() {
                    let from = &e["valueFrom"];
                    push(if secret {
                        &from["secretKeyRef"]["name"]
                    } else {
                        &from["configMapKeyRef"]["name"]
                    });
                }
                for e in c["envFrom"].as_array().into_iter().flatten() {
                    push(if secret {
                        &e["secretRef"]["name"]
                    } else {
                        &e["configMapRef"]["name"]
                    });
                }
            }
            for v in volumes {
                if secret {
                    push(&v["secret"]["secretName"]);
                    // Volume plugins that take credentials (CSI, cephfs, rbd,
                    // iscsi, azureFile, …) name them in one of these fields.
                    for source in v.as_object().into_iter().flat_map(|o| o.values()) {
                        push(&source["secretRef"]["name"]);
                        push(&source["nodePublishSecretRef"]["name"]);
                        if source.get("shareName").is_some() {
                            push(&source["secretName"]);
                        }
                    }
                } else {
                    push(&v["configMap"]["name"]);
                }
                for p in v["projected"]["sources"].as_array().into_iter().flatten() {
                    push(if secret {
                        &p["secret"]["name"]
                    } else {
                        &p["configMap"]["name"]
                    });
                }
            }
        }
        Kind::Volume => {}
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_pod_references_what_it_mounts_and_reads() {
        let pod = json!({"metadata": {"name": "p"}, "spec": {
        "serviceAccountName": "builder",
        "imagePullSecrets": [{"name": "pull"}],
        "containers": [{"env": [{"valueFrom": {"secretKeyRef": {"name": "env-secret"}}},
                                 {"valueFrom": {"configMapKeyRef": {"name": "env-cm"}}}],
                        "envFrom": [{"secretRef": {"name": "bulk"}}]}],
        "volumes": [
            {"name": "a", "secret": {"secretName": "vol-secret"}},
            {"name": "b", "configMap": {"name": "vol-cm"}},
            {"name": "c", "projected": {"sources": [{"secret": {"name": "proj"}}, {"configMap": {"name": "kube-root-ca.crt"}}]}},
            {"name": "d", "csi": {"driver": "x", "nodePublishSecretRef": {"name": "csi"}}},
            {"name": "e", "persistentVolumeClaim": {"claimName": "data"}},
            {"name": "f", "ephemeral": {"volumeClaimTemplate": {}}}
        ]}});
        let mut secrets = references(&pod, Kind::Secret);
        secrets.sort();
        assert_eq!(
            secrets,
            ["bulk", "csi", "env-secret", "proj", "pull", "vol-secret"]
        );
        let mut cms = references(&pod, Kind::ConfigMap);
        cms.sort();
        assert_eq!(cms, ["env-cm", "kube-root-ca.crt", "vol-cm"]);
        assert_eq!(references(&pod, Kind::Claim), ["data", "p-f"]);
        assert_eq!(references(&pod, Kind::ServiceAccount), ["builder"]);
    }

    #[test]
    fn only_nodes_are_nodes() {
        assert_eq!(
            node_name(&User::named("system:node:a", &["system:nodes"])),
            Some("a")
        );
        assert_eq!(node_name(&User::named("system:node:a", &[])), None);
        assert_eq!(node_name(&User::named("a", &["system:nodes"])), None);
    }
}
