//! Update rules: immutable fields and what may change in place.

use serde_json::json;

use super::fixtures::{
    configmap, daemonset, deployment, job, pod, pvc, role_binding, statefulset, tls_secret,
};
use super::{assert_error, assert_valid, update, with};

const RBAC: &str = "rbac.authorization.k8s.io";

#[test]
fn unchanged_objects_update_cleanly() {
    assert_valid(&update("", "Pod", &pod(), &pod()));
    assert_valid(&update("apps", "Deployment", &deployment(), &deployment()));
    assert_valid(&update("batch", "Job", &job(), &job()));
    assert_valid(&update("", "PersistentVolumeClaim", &pvc(), &pvc()));
}

#[test]
fn controller_selectors_are_immutable() {
    let new = with(
        &with(
            &deployment(),
            "/spec/selector/matchLabels/app",
            json!("web"),
        ),
        "/spec/template/metadata/labels/app",
        json!("web"),
    );
    let errs = update("apps", "Deployment", &deployment(), &new);
    assert_error(
        &errs,
        "spec.selector",
        "Invalid value: {\"matchLabels\":{\"app\":\"web\"}}: field is immutable",
    );
    let ds_new = with(
        &with(&daemonset(), "/spec/selector/matchLabels/name", json!("b")),
        "/spec/template/metadata/labels/name",
        json!("b"),
    );
    assert_error(
        &update("apps", "DaemonSet", &daemonset(), &ds_new),
        "spec.selector",
        "Invalid value: {\"matchLabels\"",
    );
}

#[test]
fn deployments_may_change_replicas_and_template() {
    let new = with(
        &with(&deployment(), "/spec/replicas", json!(5)),
        "/spec/template/spec/containers/0/image",
        json!("nginx:1.26"),
    );
    assert_valid(&update("apps", "Deployment", &deployment(), &new));
}

#[test]
fn statefulset_spec_is_mostly_immutable() {
    let scaled = with(&statefulset(), "/spec/replicas", json!(3));
    assert_valid(&update("apps", "StatefulSet", &statefulset(), &scaled));
    let renamed = with(&statefulset(), "/spec/serviceName", json!("other"));
    let errs = update("apps", "StatefulSet", &statefulset(), &renamed);
    assert_error(
        &errs,
        "spec",
        "Forbidden: updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden",
    );
}

#[test]
fn job_template_and_selector_are_immutable() {
    let new = with(
        &job(),
        "/spec/template/spec/containers/0/image",
        json!("perl:5.36"),
    );
    let errs = update("batch", "Job", &job(), &new);
    assert_error(&errs, "spec.template", "Invalid value: {");
    assert!(
        errs.iter()
            .any(|e| e.field == "spec.template" && e.message.ends_with(": field is immutable"))
    );
    let suspended = with(&job(), "/spec/suspend", json!(true));
    let moved = with(
        &suspended,
        "/spec/template/spec/nodeSelector",
        json!({"disk": "ssd"}),
    );
    assert_valid(&update("batch", "Job", &suspended, &moved));
    let completions = with(&job(), "/spec/completions", json!(3));
    assert_error(
        &update("batch", "Job", &job(), &completions),
        "spec.completions",
        "Invalid value: 3: field is immutable",
    );
}

#[test]
fn pod_updates_may_only_change_images_and_friends() {
    let new_image = with(&pod(), "/spec/containers/0/image", json!("nginx:1.26"));
    assert_valid(&update("", "Pod", &pod(), &new_image));
    let deadline = with(&pod(), "/spec/activeDeadlineSeconds", json!(600));
    assert_valid(&update("", "Pod", &pod(), &deadline));
    let added = json!({"key": "example.com/extra", "operator": "Exists"});
    let tolerated = with(&pod(), "/spec/tolerations/1", added);
    assert_valid(&update("", "Pod", &pod(), &tolerated));
    let env = with(&pod(), "/spec/containers/0/env/0/value", json!("dev"));
    let errs = update("", "Pod", &pod(), &env);
    assert_error(
        &errs,
        "spec",
        "Forbidden: pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)\n",
    );
    let fewer = with(&pod(), "/spec/initContainers", json!([]));
    assert_error(
        &update("", "Pod", &pod(), &fewer),
        "spec.initContainers",
        "Forbidden: pod updates may not add or remove containers",
    );
    let longer = with(&deadline, "/spec/activeDeadlineSeconds", json!(900));
    assert_error(
        &update("", "Pod", &deadline, &longer),
        "spec.activeDeadlineSeconds",
        "Invalid value: 900: must be less than or equal to previous value",
    );
    let changed = with(&pod(), "/spec/tolerations/0/effect", json!("NoExecute"));
    assert_error(
        &update("", "Pod", &pod(), &changed),
        "spec.tolerations",
        "Forbidden: existing toleration can not be modified except its tolerationSeconds",
    );
}

#[test]
fn pvc_spec_is_immutable_except_bound_storage() {
    let grown = with(&pvc(), "/spec/resources/requests/storage", json!("10Gi"));
    let errs = update("", "PersistentVolumeClaim", &pvc(), &grown);
    assert_error(
        &errs,
        "spec",
        "Forbidden: spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims",
    );
    let bound_old = with(&pvc(), "/status/phase", json!("Bound"));
    let bound_new = with(&grown, "/status/phase", json!("Bound"));
    assert_valid(&update("", "PersistentVolumeClaim", &bound_old, &bound_new));
    let shrunk = with(&bound_new, "/spec/resources/requests/storage", json!("1Gi"));
    let errs = update("", "PersistentVolumeClaim", &bound_old, &shrunk);
    assert_error(
        &errs,
        "spec.resources.requests.storage",
        "Forbidden: field can not be less than status.capacity",
    );
    let bind = with(&pvc(), "/spec/volumeName", json!("pv-1"));
    assert_valid(&update("", "PersistentVolumeClaim", &pvc(), &bind));
}

#[test]
fn immutable_config_data_stays_put() {
    let frozen = with(&configmap(), "/immutable", json!(true));
    let edited = with(&frozen, "/data/MODE", json!("dev"));
    assert_error(
        &update("", "ConfigMap", &frozen, &edited),
        "data",
        "Forbidden: field is immutable when `immutable` is set",
    );
    let thawed = with(&frozen, "/immutable", json!(false));
    assert_error(
        &update("", "ConfigMap", &frozen, &thawed),
        "immutable",
        "Forbidden: field is immutable when `immutable` is set",
    );
    assert_valid(&update(
        "",
        "ConfigMap",
        &configmap(),
        &with(&configmap(), "/data/MODE", json!("dev")),
    ));
    let secret = with(&tls_secret(), "/immutable", json!(true));
    let rotated = with(&secret, "/data/tls.key", json!("bmV3"));
    assert_error(
        &update("", "Secret", &secret, &rotated),
        "data",
        "Forbidden: field is immutable when `immutable` is set",
    );
    let retyped = with(&tls_secret(), "/type", json!("Opaque"));
    assert_error(
        &update("", "Secret", &tls_secret(), &retyped),
        "type",
        "Invalid value: \"Opaque\": field is immutable",
    );
}

#[test]
fn role_binding_role_ref_is_immutable() {
    let new = with(&role_binding(), "/roleRef/name", json!("admin"));
    let errs = update(RBAC, "RoleBinding", &role_binding(), &new);
    assert_error(
        &errs,
        "roleRef",
        "Invalid value: {\"APIGroup\":\"rbac.authorization.k8s.io\",\"Kind\":\"Role\",\"Name\":\"admin\"}: cannot change roleRef",
    );
    let more_subjects = with(
        &role_binding(),
        "/subjects/2",
        json!({"kind": "Group", "name": "devs"}),
    );
    assert_valid(&update(
        RBAC,
        "RoleBinding",
        &role_binding(),
        &more_subjects,
    ));
}

#[test]
fn node_pod_cidr_is_immutable_once_set() {
    let old = super::fixtures::node();
    let new = with(&old, "/spec/podCIDR", json!("10.42.1.0/24"));
    let new = super::without(&new, "/spec/podCIDRs");
    let errs = update("", "Node", &old, &new);
    assert_error(
        &errs,
        "spec.podCIDRs",
        "Forbidden: node updates may not change podCIDR except from \"\" to valid",
    );
    let unset = super::without(&old, "/spec/podCIDR");
    assert_valid(&update("", "Node", &unset, &old));
}
