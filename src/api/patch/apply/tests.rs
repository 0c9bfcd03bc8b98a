use super::*;
use crate::api::patch::update_managed_fields;
use serde_json::json;

const DEPLOY: TypeRef<'static> = TypeRef::builtin("apps", "Deployment");
const T1: &str = "2024-01-01T00:00:00Z";
const T2: &str = "2024-01-02T00:00:00Z";

const CONFIG: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels:
    app: web
spec:
  replicas: 3
  template:
    spec:
      containers:
      - name: app
        image: nginx:1.25
        ports:
        - containerPort: 80
"#;

fn apply(
    live: Option<&Value>,
    body: &str,
    manager: &str,
    force: bool,
) -> Result<Value, PatchError> {
    server_side_apply(live, body.as_bytes(), manager, force, DEPLOY, T1)
}

fn entry<'a>(obj: &'a Value, manager: &str) -> Option<&'a Value> {
    obj["metadata"]["managedFields"]
        .as_array()?
        .iter()
        .find(|e| e["manager"] == manager)
}

fn conflict(err: PatchError) -> (String, Vec<(String, String)>) {
    match err {
        PatchError::Conflict { message, causes } => (message, causes),
        other => panic!("expected a conflict, got {other:?}"),
    }
}

#[test]
fn apply_creates_with_upstream_fields_v1() {
    let obj = apply(None, CONFIG, "kubectl", false).unwrap();
    assert_eq!(obj["spec"]["replicas"], 3);
    assert_eq!(obj["metadata"]["name"], "web");
    let mine = entry(&obj, "kubectl").unwrap();
    assert_eq!(mine["operation"], "Apply");
    assert_eq!(mine["apiVersion"], "apps/v1");
    assert_eq!(mine["time"], T1);
    let want = json!({
        "f:metadata": {"f:labels": {"f:app": {}}},
        "f:spec": {
            "f:replicas": {},
            "f:template": {"f:spec": {"f:containers": {"k:{\"name\":\"app\"}": {
                ".": {}, "f:image": {}, "f:name": {},
                "f:ports": {"k:{\"containerPort\":80,\"protocol\":\"TCP\"}": {".": {}, "f:containerPort": {}}}
            }}}}
        }
    });
    assert_eq!(mine["fieldsV1"], want);
}

#[test]
fn reapplying_unchanged_config_is_a_no_op() {
    let first = apply(None, CONFIG, "kubectl", false).unwrap();
    let again = server_side_apply(
        Some(&first),
        CONFIG.as_bytes(),
        "kubectl",
        false,
        DEPLOY,
        T2,
    )
    .unwrap();
    assert_eq!(
        again, first,
        "no-op keeps managedFields and their time, like upstream"
    );
}

#[test]
fn changed_value_owned_by_another_applier_conflicts() {
    let live = apply(None, CONFIG, "alice", false).unwrap();
    let other = CONFIG.replace("replicas: 3", "replicas: 5");
    let (message, causes) = conflict(apply(Some(&live), &other, "bob", false).unwrap_err());
    assert_eq!(
        message,
        r#"Apply failed with 1 conflict: conflict with "alice": .spec.replicas"#
    );
    assert_eq!(
        causes,
        vec![(
            ".spec.replicas".to_string(),
            r#"conflict with "alice""#.to_string()
        )]
    );
}

#[test]
fn same_value_is_shared_ownership_not_a_conflict() {
    let live = apply(None, CONFIG, "alice", false).unwrap();
    let shared = apply(Some(&live), CONFIG, "bob", false).unwrap();
    for manager in ["alice", "bob"] {
        let fields = &entry(&shared, manager).unwrap()["fieldsV1"];
        assert!(fields["f:spec"].get("f:replicas").is_some(), "{manager}");
    }
}

#[test]
fn force_moves_ownership() {
    let live = apply(None, CONFIG, "alice", false).unwrap();
    let other = CONFIG.replace("replicas: 3", "replicas: 5");
    let obj = apply(Some(&live), &other, "bob", true).unwrap();
    assert_eq!(obj["spec"]["replicas"], 5);
    let alice = &entry(&obj, "alice").unwrap()["fieldsV1"];
    assert!(alice["f:spec"].get("f:replicas").is_none());
    assert!(
        entry(&obj, "bob").unwrap()["fieldsV1"]["f:spec"]
            .get("f:replicas")
            .is_some()
    );
}

#[test]
fn fields_dropped_from_config_are_removed_unless_owned_elsewhere() {
    let live = apply(None, CONFIG, "alice", false).unwrap();
    let fewer = CONFIG
        .replace("  labels:\n    app: web\n", "")
        .replace("  replicas: 3\n", "");
    let obj = apply(Some(&live), &fewer, "alice", false).unwrap();
    assert!(obj["spec"].get("replicas").is_none());
    assert!(obj["metadata"].get("labels").is_none());

    let mut shared = live.clone();
    shared["spec"]["replicas"] = json!(4);
    update_managed_fields(Some(&live), &mut shared, "hpa", "Update", "apps/v1", T2);
    let obj = apply(Some(&shared), &fewer, "alice", false).unwrap();
    assert_eq!(obj["spec"]["replicas"], 4, "hpa owns it now");
}

#[test]
fn containers_merge_by_name_and_dropped_items_are_pruned() {
    let live = apply(None, CONFIG, "alice", false).unwrap();
    let sidecar = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  template:
    spec:
      containers:
      - name: sidecar
        image: envoy
"#;
    let both = apply(Some(&live), sidecar, "bob", false).unwrap();
    let names: Vec<&str> = both["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["app", "sidecar"]);
    let bob = &entry(&both, "bob").unwrap()["fieldsV1"];
    let bob_containers = &bob["f:spec"]["f:template"]["f:spec"]["f:containers"];
    assert!(bob_containers.get("k:{\"name\":\"sidecar\"}").is_some());
    assert!(bob_containers.get("k:{\"name\":\"app\"}").is_none());

    let no_sidecar = sidecar.replace("name: sidecar", "name: other");
    let swapped = apply(Some(&both), &no_sidecar, "bob", false).unwrap();
    let names: Vec<&str> = swapped["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["app", "other"]);
}

#[test]
fn client_side_apply_owner_conflicts_on_replicas() {
    let mut created =
        serde_json::to_value(serde_yaml::from_str::<serde_yaml::Value>(CONFIG).unwrap()).unwrap();
    update_managed_fields(
        None,
        &mut created,
        "kubectl-client-side-apply",
        "Update",
        "apps/v1",
        T1,
    );
    let scaled = CONFIG.replace("replicas: 3", "replicas: 1");
    let err = apply(Some(&created), &scaled, "kubectl-ssa", false).unwrap_err();
    let (message, _) = conflict(err);
    assert_eq!(
        message,
        r#"Apply failed with 1 conflict: conflict with "kubectl-client-side-apply" using apps/v1: .spec.replicas"#
    );
}

#[test]
fn kubectl_takes_over_fields_described_by_last_applied() {
    let mut created =
        serde_json::to_value(serde_yaml::from_str::<serde_yaml::Value>(CONFIG).unwrap()).unwrap();
    let recorded = serde_json::to_string(&created).unwrap();
    created["metadata"]["annotations"] = json!({LAST_APPLIED: recorded});
    update_managed_fields(
        None,
        &mut created,
        "kubectl-client-side-apply",
        "Update",
        "apps/v1",
        T1,
    );
    let scaled = CONFIG.replace("replicas: 3", "replicas: 1");
    let obj = apply(Some(&created), &scaled, "kubectl", false).unwrap();
    assert_eq!(obj["spec"]["replicas"], 1);
    let annotation = obj["metadata"]["annotations"][LAST_APPLIED]
        .as_str()
        .unwrap();
    assert!(annotation.contains("\"replicas\":1") && annotation.ends_with('\n'));
}

#[test]
fn several_conflicts_are_grouped_by_manager() {
    let live = apply(None, CONFIG, "alice", false).unwrap();
    let mut scaled = live.clone();
    scaled["metadata"]["labels"]["app"] = json!("x");
    update_managed_fields(Some(&live), &mut scaled, "bob", "Update", "apps/v1", T2);
    let other = CONFIG
        .replace("replicas: 3", "replicas: 9")
        .replace("app: web", "app: y");
    let (message, causes) = conflict(apply(Some(&scaled), &other, "carol", false).unwrap_err());
    assert_eq!(
        message,
        "Apply failed with 2 conflicts: conflicts with \"alice\":\n- .spec.replicas\n\
         conflicts with \"bob\" using apps/v1:\n- .metadata.labels.app"
    );
    assert_eq!(causes.len(), 2);
}

#[test]
fn bad_requests_are_rejected() {
    let not_yaml = apply(None, "a: [", "m", false).unwrap_err();
    assert!(not_yaml.to_string().starts_with("error decoding YAML: "));
    let wrong_kind = CONFIG.replace("kind: Deployment", "kind: StatefulSet");
    let err = apply(None, &wrong_kind, "m", false).unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid object type: apps/v1, Kind=StatefulSet"
    );
    let with_managed = CONFIG.replace("  name: web\n", "  name: web\n  managedFields: []\n");
    let err = apply(None, &with_managed, "m", false).unwrap_err();
    assert_eq!(err.to_string(), "metadata.managedFields must be nil");
    assert_eq!(
        apply(None, CONFIG, "", false).unwrap_err().status_code(),
        422
    );
}

#[test]
fn duplicate_list_keys_in_config_are_internal_errors() {
    let dup = CONFIG.replace(
        "        ports:\n",
        "      - name: app\n        image: x\n        ports:\n",
    );
    let err = apply(None, &dup, "m", false).unwrap_err();
    assert_eq!(err.status_code(), 500);
    assert_eq!(
        err.to_string(),
        "failed to create typed patch object (apps/v1, Kind=Deployment): \
         .spec.template.spec.containers: duplicate entries for key [name=\"app\"]"
    );
}

#[test]
fn json_bodies_are_accepted_as_yaml() {
    let body = r#"{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web"},"spec":{"paused":true}}"#;
    let obj = apply(None, body, "m", false).unwrap();
    assert_eq!(obj["spec"]["paused"], true);
}
