//! API discovery: /api, /apis, /api/v1, /apis/<g>, /apis/<g>/<v>, in both
//! the legacy and the aggregated (apidiscovery.k8s.io/v2) forms.
//!
//! kubectl asks for the aggregated form and decides by the response
//! Content-Type; answering it saves a request per group-version on every
//! cold kubectl invocation. Everything is derived from the resource table
//! and the custom resources established CRDs define (passed in as
//! `custom`, already in version-priority order).

use serde_json::{Value, json};

use super::registry::resources::{self, RESOURCES, ResourceInfo};

/// Built-ins first, then custom resources.
fn served<'a>(
    custom: &'a [&'static ResourceInfo],
) -> impl Iterator<Item = &'static ResourceInfo> + 'a {
    RESOURCES.iter().chain(custom.iter().copied())
}

/// Content type of an aggregated discovery answer.
pub fn aggregated_content_type(version: &str) -> String {
    format!("application/json;g=apidiscovery.k8s.io;v={version};as=APIGroupDiscoveryList")
}

/// The aggregated discovery version the Accept header asks for (`v2` or
/// `v2beta1`), if any.
pub fn wants_aggregated(accept: Option<&str>) -> Option<&'static str> {
    let accept = accept?;
    for part in accept.split(',') {
        let params: Vec<&str> = part.split(';').map(str::trim).collect();
        if params.contains(&"g=apidiscovery.k8s.io") && params.contains(&"as=APIGroupDiscoveryList")
        {
            if params.contains(&"v=v2") {
                return Some("v2");
            }
            if params.contains(&"v=v2beta1") {
                return Some("v2beta1");
            }
        }
        if params.first().is_some_and(|m| *m == "application/json") && params.len() == 1 {
            return None;
        }
    }
    None
}

/// `/api` (legacy).
pub fn core_versions(server_address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    })
}

fn group_entry(group: &str, versions: &[&str]) -> Value {
    let gv = |v: &str| json!({"groupVersion": format!("{group}/{v}"), "version": v});
    json!({
        "name": group,
        "versions": versions.iter().map(|v| gv(v)).collect::<Vec<_>>(),
        "preferredVersion": gv(versions[0]),
    })
}

/// `/apis` (legacy).
pub fn group_list(custom: &[&'static ResourceInfo]) -> Value {
    let groups: Vec<Value> = resources::groups_of(served(custom))
        .into_iter()
        .filter(|(g, _)| !g.is_empty())
        .map(|(g, v)| group_entry(g, &v))
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// `/apis/<group>`.
pub fn group(name: &str, custom: &[&'static ResourceInfo]) -> Option<Value> {
    let (g, versions) = resources::groups_of(served(custom))
        .into_iter()
        .find(|(g, _)| *g == name && !g.is_empty())?;
    let mut entry = group_entry(g, &versions);
    entry["kind"] = json!("APIGroup");
    entry["apiVersion"] = json!("v1");
    Some(entry)
}

fn scope(r: &ResourceInfo) -> &'static str {
    if r.namespaced {
        "Namespaced"
    } else {
        "Cluster"
    }
}

/// `/api/v1` or `/apis/<g>/<v>`: an APIResourceList.
pub fn resource_list(
    group: &str,
    version: &str,
    custom: &[&'static ResourceInfo],
) -> Option<Value> {
    let mut list = Vec::new();
    for r in served(custom).filter(|r| r.group == group && r.version == version) {
        let mut entry = json!({
            "name": r.resource, "singularName": r.singular, "namespaced": r.namespaced,
            "kind": r.kind, "verbs": r.verbs,
        });
        if !r.short_names.is_empty() {
            entry["shortNames"] = json!(r.short_names);
        }
        if !r.categories.is_empty() {
            entry["categories"] = json!(r.categories);
        }
        list.push(entry);
        for s in r.subresources {
            let mut sub = json!({
                "name": format!("{}/{}", r.resource, s.name), "singularName": "", "namespaced": r.namespaced,
                "kind": if s.kind.is_empty() { r.kind } else { s.kind }, "verbs": s.verbs,
            });
            if let Some(g) = s.group {
                sub["group"] = json!(g);
                sub["version"] = json!(s.version.unwrap_or("v1"));
            }
            list.push(sub);
        }
    }
    if list.is_empty() {
        return None;
    }
    let gv = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    Some(
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": list}),
    )
}

fn aggregated_resource(r: &ResourceInfo) -> Value {
    let subresources: Vec<Value> = r
        .subresources
        .iter()
        .map(|s| {
            json!({
                "subresource": s.name,
                "responseKind": {
                    "group": s.group.unwrap_or(r.group),
                    "version": s.version.unwrap_or(r.version),
                    "kind": if s.kind.is_empty() { r.kind } else { s.kind },
                },
                "verbs": s.verbs,
            })
        })
        .collect();
    let mut entry = json!({
        "resource": r.resource,
        "responseKind": {"group": r.group, "version": r.version, "kind": r.kind},
        "scope": scope(r),
        "singularResource": r.singular,
        "verbs": r.verbs,
    });
    if !r.short_names.is_empty() {
        entry["shortNames"] = json!(r.short_names);
    }
    if !r.categories.is_empty() {
        entry["categories"] = json!(r.categories);
    }
    if !subresources.is_empty() {
        entry["subresources"] = Value::Array(subresources);
    }
    entry
}

/// Aggregated discovery: the core group (`core = true`, for /api) or all
/// named groups (for /apis).
pub fn aggregated(core: bool, version: &str, custom: &[&'static ResourceInfo]) -> Value {
    let items: Vec<Value> = resources::groups_of(served(custom))
        .into_iter()
        .filter(|(g, _)| g.is_empty() == core)
        .map(|(g, versions)| {
            let versions: Vec<Value> = versions
                .iter()
                .map(|v| {
                    let resources: Vec<Value> = served(custom)
                        .filter(|r| r.group == g && r.version == *v)
                        .map(aggregated_resource)
                        .collect();
                    json!({"version": v, "resources": resources, "freshness": "Current"})
                })
                .collect();
            json!({"metadata": {"name": g, "creationTimestamp": null}, "versions": versions})
        })
        .collect();
    json!({
        "kind": "APIGroupDiscoveryList",
        "apiVersion": format!("apidiscovery.k8s.io/{version}"),
        "metadata": {},
        "items": items,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discovery_shapes() {
        assert_eq!(
            wants_aggregated(Some(
                "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json"
            )),
            Some("v2")
        );
        assert_eq!(wants_aggregated(Some("application/json")), None);
        let core = aggregated(true, "v2", &[]);
        assert_eq!(core["items"][0]["metadata"]["name"], "");
        let pods = core["items"][0]["versions"][0]["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["resource"] == "pods")
            .unwrap();
        assert_eq!(pods["shortNames"][0], "po");
        let v1 = resource_list("", "v1", &[]).unwrap();
        assert!(
            v1["resources"]
                .as_array()
                .unwrap()
                .iter()
                .any(|r| r["name"] == "pods/status")
        );
        assert!(group("apps", &[]).is_some());
        assert!(group("nope", &[]).is_none());
    }
}
