use serde_json::Value;

use super::{OpenApi, OpenApiResource, hex_sha512};
use crate::api::custom::CustomResources;

const ALL_VERBS: &[&str] = &[
    "get",
    "list",
    "watch",
    "create",
    "update",
    "patch",
    "delete",
    "deletecollection",
];

fn resource(
    group: &str,
    version: &str,
    kind: &str,
    plural: &str,
    namespaced: bool,
) -> OpenApiResource {
    OpenApiResource {
        group: group.into(),
        version: version.into(),
        kind: kind.into(),
        plural: plural.into(),
        namespaced,
        verbs: ALL_VERBS.iter().map(|v| (*v).to_owned()).collect(),
        subresources: vec![],
        schema: None,
    }
}

fn registry() -> Vec<OpenApiResource> {
    let mut pods = resource("", "v1", "Pod", "pods", true);
    pods.subresources = vec!["status".into(), "eviction".into(), "log".into()];
    let mut deployments = resource("apps", "v1", "Deployment", "deployments", true);
    deployments.subresources = vec!["status".into(), "scale".into()];
    let mut events = resource("", "v1", "Event", "events", true);
    events.verbs = vec!["get".into(), "list".into()];
    let mut namespaces = resource("", "v1", "Namespace", "namespaces", false);
    namespaces.subresources = vec!["status".into(), "finalize".into()];
    let mut bindings = resource("", "v1", "Binding", "bindings", true);
    bindings.verbs = vec!["create".into()];
    vec![
        pods,
        namespaces,
        bindings,
        resource("", "v1", "ConfigMap", "configmaps", true),
        events,
        deployments,
        resource("stable.example.com", "v1", "CronTab", "crontabs", true),
    ]
}

fn doc(api: &OpenApi, path: &str) -> Value {
    let (body, _) = api
        .document(path, &CustomResources::new())
        .expect("document exists");
    serde_json::from_slice(&body).expect("document is JSON")
}

fn schema<'a>(doc: &'a Value, name: &str) -> &'a Value {
    &doc["components"]["schemas"][name]
}

#[test]
fn pod_schema_carries_group_version_kind() {
    let api = OpenApi::new(registry());
    let core = doc(&api, "api/v1");
    let pod = schema(&core, "io.k8s.api.core.v1.Pod");
    assert_eq!(
        pod["x-kubernetes-group-version-kind"],
        serde_json::json!([{ "group": "", "kind": "Pod", "version": "v1" }])
    );
    let list = schema(&core, "io.k8s.api.core.v1.PodList");
    assert_eq!(
        list["x-kubernetes-group-version-kind"][0]["kind"],
        "PodList"
    );
    assert_eq!(
        list["properties"]["items"]["items"]["$ref"],
        "#/components/schemas/io.k8s.api.core.v1.Pod"
    );
}

#[test]
fn patch_operations_list_field_validation_and_gvk() {
    let api = OpenApi::new(registry());
    let apps = doc(&api, "apis/apps/v1");
    let patch = &apps["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"];
    assert_eq!(
        patch["x-kubernetes-group-version-kind"]["kind"],
        "Deployment"
    );
    assert_eq!(patch["operationId"], "patchAppsV1NamespacedDeployment");
    let names: Vec<&str> = patch["parameters"]
        .as_array()
        .expect("parameters")
        .iter()
        .filter(|p| p["in"] == "query")
        .filter_map(|p| p["name"].as_str())
        .collect();
    for expected in ["fieldValidation", "dryRun", "fieldManager", "force"] {
        assert!(names.contains(&expected), "missing {expected} in {names:?}");
    }
    let content = &patch["requestBody"]["content"];
    assert!(
        content
            .get("application/strategic-merge-patch+json")
            .is_some()
    );
    assert_eq!(
        content["application/apply-patch+yaml"]["schema"]["$ref"],
        "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.Patch"
    );
}

fn collect_refs<'a>(value: &'a Value, out: &mut Vec<&'a str>) {
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                match (key.as_str(), v) {
                    ("$ref", Value::String(r)) => out.push(r),
                    _ => collect_refs(v, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect_refs(v, out)),
        _ => {}
    }
}

#[test]
fn every_ref_resolves_within_its_document() {
    let api = OpenApi::new(registry());
    for path in ["api/v1", "apis/apps/v1", "apis/stable.example.com/v1"] {
        let document = doc(&api, path);
        let mut refs = vec![];
        collect_refs(&document, &mut refs);
        assert!(refs.len() > 10, "{path} has only {} refs", refs.len());
        for r in refs {
            let name = r
                .strip_prefix("#/components/schemas/")
                .expect("component ref");
            assert!(schema(&document, name).is_object(), "{path}: dangling {r}");
        }
    }
}

#[test]
fn documents_include_meta_types() {
    let api = OpenApi::new(registry());
    let core = doc(&api, "api/v1");
    for name in ["ObjectMeta", "Status", "DeleteOptions", "Patch", "ListMeta"] {
        let full = format!("io.k8s.apimachinery.pkg.apis.meta.v1.{name}");
        assert!(schema(&core, &full).is_object(), "missing {full}");
    }
}

#[test]
fn hash_is_stable_and_matches_root_url() {
    let first = OpenApi::new(registry());
    let second = OpenApi::new(registry());
    let (body, hash) = first
        .document("api/v1", &CustomResources::new())
        .expect("core");
    let (body2, hash2) = second
        .document("api/v1", &CustomResources::new())
        .expect("core");
    assert_eq!(hash, hash2);
    assert_eq!(body, body2);
    assert_eq!(hash, hex_sha512(&body));
    assert_eq!(hash.len(), 128);
    let root: Value =
        serde_json::from_slice(&first.root(&CustomResources::new())).expect("root JSON");
    assert_eq!(
        root["paths"]["api/v1"]["serverRelativeURL"],
        format!("/openapi/v3/api/v1?hash={hash}")
    );
    assert!(root["paths"]["apis/apps/v1"].is_object());
    assert!(root["paths"]["apis/stable.example.com/v1"].is_object());
}

#[test]
fn document_paths_are_normalized_and_unknown_ones_are_none() {
    let api = OpenApi::new(registry());
    let plain = api
        .document("apis/apps/v1", &CustomResources::new())
        .expect("apps");
    let decorated = api
        .document("/openapi/v3/apis/apps/v1?hash=ABC", &CustomResources::new())
        .expect("apps");
    assert_eq!(plain.1, decorated.1);
    assert!(
        api.document("apis/batch/v1", &CustomResources::new())
            .is_none()
    );
    assert!(api.document("", &CustomResources::new()).is_none());
}

#[test]
fn strategic_merge_markers_reach_pod_spec() {
    let api = OpenApi::new(registry());
    let core = doc(&api, "api/v1");
    let containers = &schema(&core, "io.k8s.api.core.v1.PodSpec")["properties"]["containers"];
    assert_eq!(containers["x-kubernetes-patch-merge-key"], "name");
    assert_eq!(containers["x-kubernetes-patch-strategy"], "merge");
    let metadata = &schema(&core, "io.k8s.api.core.v1.Pod")["properties"]["metadata"];
    assert_eq!(
        metadata["allOf"][0]["$ref"],
        "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
    );
    assert!(metadata["description"].is_string());
}

#[test]
fn int_or_string_uses_upstream_shape() {
    let api = OpenApi::new(registry());
    let apps = doc(&api, "apis/apps/v1");
    let ios = schema(&apps, "io.k8s.apimachinery.pkg.util.intstr.IntOrString");
    assert_eq!(ios["format"], "int-or-string");
    assert_eq!(ios["oneOf"].as_array().map(Vec::len), Some(2));
    assert!(ios.get("x-kubernetes-int-or-string").is_none());
}

#[test]
fn only_registered_verbs_become_operations() {
    let api = OpenApi::new(registry());
    let core = doc(&api, "api/v1");
    let events = &core["paths"]["/api/v1/namespaces/{namespace}/events"];
    assert!(events["get"].is_object());
    assert!(events.get("post").is_none());
    let event = &core["paths"]["/api/v1/namespaces/{namespace}/events/{name}"];
    assert!(event.get("patch").is_none());
    assert_eq!(
        core["paths"]["/api/v1/pods"]["get"]["operationId"],
        "listCoreV1PodForAllNamespaces"
    );
    let namespace = &core["paths"]["/api/v1/namespaces/{name}"];
    assert_eq!(namespace["get"]["operationId"], "readCoreV1Namespace");
}

#[test]
fn subresources_get_their_own_kinds() {
    let api = OpenApi::new(registry());
    let apps = doc(&api, "apis/apps/v1");
    let scale = &apps["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale"];
    assert_eq!(
        scale["put"]["x-kubernetes-group-version-kind"]["kind"],
        "Scale"
    );
    assert_eq!(
        scale["get"]["operationId"],
        "readAppsV1NamespacedDeploymentScale"
    );
    let core = doc(&api, "api/v1");
    let eviction = &core["paths"]["/api/v1/namespaces/{namespace}/pods/{name}/eviction"];
    assert_eq!(
        eviction["post"]["x-kubernetes-group-version-kind"]["group"],
        "policy"
    );
    assert!(
        core["paths"]
            .get("/api/v1/namespaces/{namespace}/pods/{name}/log")
            .is_none()
    );
}

#[test]
fn unknown_kinds_get_a_generic_schema_without_strategic_merge() {
    let api = OpenApi::new(registry());
    let custom = doc(&api, "apis/stable.example.com/v1");
    let crontab = schema(&custom, "com.example.stable.v1.CronTab");
    assert_eq!(crontab["x-kubernetes-preserve-unknown-fields"], true);
    assert_eq!(
        crontab["x-kubernetes-group-version-kind"][0]["group"],
        "stable.example.com"
    );
    let path = "/apis/stable.example.com/v1/namespaces/{namespace}/crontabs/{name}";
    let patch = &custom["paths"][path]["patch"];
    assert_eq!(
        patch["operationId"],
        "patchStableExampleComV1NamespacedCronTab"
    );
    let content = &patch["requestBody"]["content"];
    assert!(
        content
            .get("application/strategic-merge-patch+json")
            .is_none()
    );
    assert!(content.get("application/merge-patch+json").is_some());
}

#[test]
fn finalize_is_put_only_and_create_only_resources_have_no_item_path() {
    let api = OpenApi::new(registry());
    let core = doc(&api, "api/v1");
    let finalize = &core["paths"]["/api/v1/namespaces/{name}/finalize"];
    assert_eq!(
        finalize["put"]["operationId"],
        "replaceCoreV1NamespaceFinalize"
    );
    assert!(finalize.get("get").is_none() && finalize.get("patch").is_none());
    let bindings = &core["paths"]["/api/v1/namespaces/{namespace}/bindings"];
    assert_eq!(
        bindings["post"]["operationId"],
        "createCoreV1NamespacedBinding"
    );
    assert!(bindings.get("get").is_none());
    let item = "/api/v1/namespaces/{namespace}/bindings/{name}";
    assert!(core["paths"].get(item).is_none());
}
