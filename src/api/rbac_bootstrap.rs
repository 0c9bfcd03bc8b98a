//! Upstream's default RBAC policy, reconciled at every server start.
//!
//! The roles and bindings kube-apiserver's RBAC post-start hook creates
//! (cluster-admin, admin/edit/view and their aggregate-to-* parts, the
//! discovery and public-info roles, the node, scheduler and controller
//! roles, …) live in `assets/rbac/bootstrap-policy.yaml`. At start, as
//! upstream's reconciler: a missing object is created; an existing one
//! whose `rbac.authorization.kubernetes.io/autoupdate` annotation is not
//! `"false"` gets the rules, aggregation selectors, subjects, labels and
//! annotations it lacks added (never removed: user additions are kept);
//! a binding whose roleRef changed is recreated.
//!
//! kelp runs every controller under one identity,
//! `system:kube-controller-manager`, where upstream gives each controller
//! its own service account (`--use-service-account-credentials`). That
//! identity is bound to each `system:controller:*` role, so it holds the
//! union of what upstream's controllers hold, no more.

use futures::StreamExt;
use serde_json::{Value, json};

use super::authz::PolicyRule;
use super::authz::rules::uncovered;
use super::handlers::Api;
use super::object;
use super::registry::resources;
use super::strategy;
use super::watch_cache;
use crate::store::{Store, StoreError};

const POLICY: &str = include_str!("../../assets/rbac/bootstrap-policy.yaml");
const AUTOUPDATE: &str = "rbac.authorization.kubernetes.io/autoupdate";
const GROUP: &str = "rbac.authorization.k8s.io";
/// The user the in-process controllers authenticate as.
pub const CONTROLLER_MANAGER: &str = "system:kube-controller-manager";

/// Every object of the policy, kelp's controller bindings included.
pub fn objects() -> Vec<Value> {
    let mut out: Vec<Value> = serde_yaml::Deserializer::from_str(POLICY)
        .filter_map(|doc| serde::Deserialize::deserialize(doc).ok())
        .filter(|v: &Value| v.is_object())
        .collect();
    let controllers: Vec<String> = out
        .iter()
        .filter(|o| o["kind"] == "ClusterRole")
        .filter_map(|o| o["metadata"]["name"].as_str())
        .filter(|n| n.starts_with("system:controller:"))
        .map(str::to_string)
        .collect();
    // kubeadm's grant: anyone may read the signed cluster-info (discovery
    // with a bootstrap token happens before the client holds credentials).
    let cluster_info = "kubeadm:bootstrap-signer-clusterinfo";
    out.push(json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
        "metadata": {"name": cluster_info, "namespace": "kube-public",
            "annotations": {AUTOUPDATE: "true"}},
        "rules": [{"apiGroups": [""], "resources": ["configmaps"],
            "resourceNames": ["cluster-info"], "verbs": ["get"]}],
    }));
    out.push(json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": cluster_info, "namespace": "kube-public",
            "annotations": {AUTOUPDATE: "true"}},
        "roleRef": {"apiGroup": GROUP, "kind": "Role", "name": cluster_info},
        "subjects": [{"apiGroup": GROUP, "kind": "User", "name": "system:anonymous"}],
    }));
    for role in controllers {
        let suffix = role.trim_start_matches("system:controller:");
        out.push(json!({
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {
                "name": format!("kelp:controller:{suffix}"),
                "labels": {"kubernetes.io/bootstrapping": "rbac-defaults"},
                "annotations": {AUTOUPDATE: "true"},
            },
            "roleRef": {"apiGroup": GROUP, "kind": "ClusterRole", "name": role},
            "subjects": [{"apiGroup": GROUP, "kind": "User", "name": CONTROLLER_MANAGER}],
        }));
    }
    out
}

/// The rules of the policy's `system:node` ClusterRole (the node
/// authorizer's static rules).
pub fn node_rules(policy: &[Value]) -> Vec<PolicyRule> {
    policy
        .iter()
        .find(|o| o["kind"] == "ClusterRole" && o["metadata"]["name"] == "system:node")
        .and_then(|o| serde_json::from_value(o["rules"].clone()).ok())
        .unwrap_or_default()
}

fn resource_of(kind: &str) -> Option<&'static str> {
    Some(match kind {
        "ClusterRole" => "clusterroles",
        "Role" => "roles",
        "ClusterRoleBinding" => "clusterrolebindings",
        "RoleBinding" => "rolebindings",
        _ => return None,
    })
}

/// Creates or tops up every policy object. See the module docs.
///
/// The objects are written concurrently: the store commits concurrent
/// writes as one batch with one fsync, so a first start creates the ~140
/// objects in a few batches instead of ~140 sequential fsyncs.
pub async fn reconcile<S: Store>(api: &Api<S>, policy: Vec<Value>) -> Result<(), String> {
    let results: Vec<Result<(), String>> = futures::stream::iter(policy)
        .map(|expected| reconcile_one(api, expected))
        .buffer_unordered(32)
        .collect()
        .await;
    results.into_iter().collect()
}

async fn reconcile_one<S: Store>(api: &Api<S>, expected: Value) -> Result<(), String> {
    let Some(resource) = expected["kind"].as_str().and_then(resource_of) else {
        return Ok(());
    };
    let info =
        resources::find(GROUP, "v1", resource).ok_or_else(|| format!("no resource {resource}"))?;
    let name = object::name(&expected).unwrap_or_default().to_string();
    let key = info.key(object::namespace(&expected), &name);
    for _ in 0..5 {
        let (existing, _) = api.store.get(&key).await.map_err(|e| e.to_string())?;
        let current = existing
            .as_ref()
            .and_then(|kv| watch_cache::decode(kv, kv.mod_revision).map(|v| (v, kv.mod_revision)));
        let result = match current {
            None => {
                let mut obj = expected.clone();
                strategy::prepare_create(info, &mut obj);
                strategy::apply_defaults(info, &mut obj);
                api.store
                    .create(&key, strategy::to_stored(&obj))
                    .await
                    .map(|_| ())
            }
            Some((current, _)) if current["metadata"]["annotations"][AUTOUPDATE] == "false" => {
                break;
            }
            Some((current, rev))
                if resource.ends_with("bindings") && current["roleRef"] != expected["roleRef"] =>
            {
                // roleRef is immutable: upstream deletes and recreates.
                match api.store.delete(&key, Some(rev)).await {
                    Ok(_) => continue,
                    Err(e) => Err(e),
                }
            }
            Some((current, rev)) => {
                let merged = merge(&current, &expected);
                if merged == *current {
                    break;
                }
                api.store
                    .update(&key, strategy::to_stored(&merged), Some(rev))
                    .await
                    .map(|_| ())
            }
        };
        match result {
            Ok(()) => break,
            Err(StoreError::Conflict { .. } | StoreError::AlreadyExists { .. }) => continue,
            Err(e) => return Err(format!("{resource} {name}: {e}")),
        }
    }
    Ok(())
}

/// `current` with what `expected` has and it lacks added.
fn merge(current: &Value, expected: &Value) -> Value {
    let mut out = current.clone();
    for field in ["labels", "annotations"] {
        if let Some(want) = expected["metadata"][field].as_object() {
            let have = &mut out["metadata"][field];
            if !have.is_object() {
                *have = json!({});
            }
            for (k, v) in want {
                if have.get(k).is_none() {
                    have[k] = v.clone();
                }
            }
        }
    }
    let union = |out: &mut Value, path: &[&str]| {
        let want = path.iter().fold(expected, |v, p| &v[*p]);
        let Some(want) = want.as_array() else {
            return;
        };
        let mut slot = &mut *out;
        for p in path {
            if slot.get(*p).is_none() || slot[*p].is_null() {
                slot[*p] = if *p == path[path.len() - 1] {
                    json!([])
                } else {
                    json!({})
                };
            }
            slot = &mut slot[*p];
        }
        if let Some(have) = slot.as_array_mut() {
            for item in want {
                if !have.contains(item) {
                    have.push(item.clone());
                }
            }
        }
    };
    if expected["aggregationRule"].is_null() {
        let mut have: Vec<PolicyRule> =
            serde_json::from_value(out["rules"].clone()).unwrap_or_default();
        let want: Vec<PolicyRule> =
            serde_json::from_value(expected["rules"].clone()).unwrap_or_default();
        let before = have.len();
        for rule in want {
            if !uncovered(&have, std::slice::from_ref(&rule)).is_empty() {
                have.push(rule);
            }
        }
        if have.len() != before {
            out["rules"] = serde_json::to_value(have).unwrap_or_default();
        }
    }
    union(&mut out, &["aggregationRule", "clusterRoleSelectors"]);
    union(&mut out, &["subjects"]);
    out
}
