//! The Service-backed groups in `/apis`, `/apis/<group>` and aggregated
//! discovery, next to the local ones.
//!
//! As upstream: the legacy lists name every APIService's group and version
//! (available or not: clients learn of outages from the requests), ordered
//! by priority; aggregated discovery carries the resources the server
//! last reported, and a group whose server has not answered yet is left
//! out rather than shown empty.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::{Remote, Remotes};

/// The remote groups with their versions, highest priority first.
fn groups(remotes: &Remotes) -> Vec<(String, Vec<&Remote>)> {
    let mut by_group: BTreeMap<&str, Vec<&Remote>> = BTreeMap::new();
    for r in remotes.values() {
        by_group.entry(&r.group).or_default().push(r);
    }
    let mut out: Vec<(String, Vec<&Remote>)> = by_group
        .into_iter()
        .map(|(g, mut versions)| {
            versions.sort_by(|a, b| {
                b.version_priority.cmp(&a.version_priority).then_with(|| {
                    crate::api::custom::definition::compare_versions(&b.version, &a.version)
                })
            });
            (g.to_string(), versions)
        })
        .collect();
    out.sort_by_key(|(_, versions)| {
        std::cmp::Reverse(versions.iter().map(|v| v.group_priority).max().unwrap_or(0))
    });
    out
}

fn group_entry(group: &str, versions: &[&Remote]) -> Value {
    let gv = |v: &str| json!({"groupVersion": format!("{group}/{v}"), "version": v});
    json!({
        "name": group,
        "versions": versions.iter().map(|r| gv(&r.version)).collect::<Vec<_>>(),
        "preferredVersion": gv(&versions[0].version),
    })
}

/// Adds the remote groups to a legacy `APIGroupList`.
pub fn add_to_group_list(list: &mut Value, remotes: &Remotes) {
    let Some(items) = list["groups"].as_array_mut() else {
        return;
    };
    for (group, versions) in groups(remotes) {
        if !items.iter().any(|g| g["name"] == group.as_str()) {
            items.push(group_entry(&group, &versions));
        }
    }
}

/// `/apis/<group>` for a remote group.
pub fn group(name: &str, remotes: &Remotes) -> Option<Value> {
    let (group, versions) = groups(remotes).into_iter().find(|(g, _)| g == name)?;
    let mut entry = group_entry(&group, &versions);
    entry["kind"] = json!("APIGroup");
    entry["apiVersion"] = json!("v1");
    Some(entry)
}

/// Adds the remote groups whose servers answered to an aggregated
/// `APIGroupDiscoveryList`, converting each `APIResourceList`.
pub fn add_to_aggregated(list: &mut Value, remotes: &Remotes) {
    let Some(items) = list["items"].as_array_mut() else {
        return;
    };
    for (group, versions) in groups(remotes) {
        let versions: Vec<Value> = versions
            .iter()
            .filter_map(|r| {
                let resources = r.resources.as_ref()?["resources"].as_array()?;
                Some(json!({
                    "version": r.version,
                    "resources": aggregated_resources(&group, &r.version, resources),
                    "freshness": if r.available { "Current" } else { "Stale" },
                }))
            })
            .collect();
        if versions.is_empty()
            || items
                .iter()
                .any(|g| g["metadata"]["name"] == group.as_str())
        {
            continue;
        }
        items.push(
            json!({"metadata": {"name": group, "creationTimestamp": null}, "versions": versions}),
        );
    }
}

/// An `APIResourceList`'s entries in aggregated form: `a/b` entries become
/// subresources of `a`.
fn aggregated_resources(group: &str, version: &str, list: &[Value]) -> Vec<Value> {
    let mut out: Vec<Value> = Vec::new();
    for r in list {
        let name = r["name"].as_str().unwrap_or_default();
        let kind = |r: &Value| {
            json!({
                "group": r["group"].as_str().unwrap_or(group),
                "version": r["version"].as_str().unwrap_or(version),
                "kind": r["kind"],
            })
        };
        if let Some((parent, sub)) = name.split_once('/') {
            if let Some(entry) = out.iter_mut().find(|e| e["resource"] == parent) {
                let subs = entry
                    .as_object_mut()
                    .map(|m| m.entry("subresources").or_insert_with(|| json!([])));
                if let Some(Value::Array(subs)) = subs {
                    subs.push(
                        json!({"subresource": sub, "responseKind": kind(r), "verbs": r["verbs"]}),
                    );
                }
            }
            continue;
        }
        let mut entry = json!({
            "resource": name,
            "responseKind": kind(r),
            "scope": if r["namespaced"] == true { "Namespaced" } else { "Cluster" },
            "singularResource": r["singularName"],
            "verbs": r["verbs"],
        });
        for key in ["shortNames", "categories"] {
            if r[key].is_array() {
                entry[key] = r[key].clone();
            }
        }
        out.push(entry);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::extension_client::{Backend, Destination};
    use std::sync::Arc;

    fn remote(version: &str, priority: i64, resources: Option<Value>) -> Arc<Remote> {
        Arc::new(Remote {
            name: format!("{version}.metrics.k8s.io"),
            group: "metrics.k8s.io".into(),
            version: version.into(),
            backend: Backend {
                destination: Destination::Url("https://127.0.0.1".into()),
                ca_bundle: None,
                insecure: true,
            },
            group_priority: 100,
            version_priority: priority,
            available: true,
            resources,
        })
    }

    #[test]
    fn remote_groups_join_both_discovery_forms() {
        let resources = json!({"resources": [
            {"name": "pods", "singularName": "", "namespaced": true, "kind": "PodMetrics", "verbs": ["get", "list"]},
            {"name": "pods/status", "singularName": "", "namespaced": true, "kind": "PodMetrics", "verbs": ["get"]},
        ]});
        let mut remotes = Remotes::new();
        remotes.insert(
            ("metrics.k8s.io".into(), "v1beta1".into()),
            remote("v1beta1", 100, Some(resources)),
        );
        remotes.insert(
            ("metrics.k8s.io".into(), "v1alpha1".into()),
            remote("v1alpha1", 10, None),
        );
        let mut legacy = json!({"groups": []});
        add_to_group_list(&mut legacy, &remotes);
        assert_eq!(
            legacy["groups"][0]["preferredVersion"]["version"],
            "v1beta1"
        );
        assert_eq!(legacy["groups"][0]["versions"][1]["version"], "v1alpha1");
        assert!(group("metrics.k8s.io", &remotes).is_some());
        let mut aggregated = json!({"items": []});
        add_to_aggregated(&mut aggregated, &remotes);
        let versions = aggregated["items"][0]["versions"].as_array().unwrap();
        assert_eq!(versions.len(), 1, "a version without discovery is left out");
        let pods = &versions[0]["resources"][0];
        assert_eq!(pods["scope"], "Namespaced");
        assert_eq!(pods["subresources"][0]["subresource"], "status");
    }
}
