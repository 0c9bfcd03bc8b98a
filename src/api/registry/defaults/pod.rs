//! Pod and pod-template defaults (core/v1 `SetDefaults_Pod`, `SetDefaults_PodSpec`,
//! `SetDefaults_Container`, probes, volumes and resource lists, walked the way the
//! generated `SetObjectDefaults_Pod` walks them).
//!
//! Pods get `SetDefaults_Pod` on top of the pod-spec defaults: requests copied from limits,
//! `enableServiceLinks` and host-network ports. Templates embedded in workloads get only the
//! pod-spec defaults, as upstream.

use serde_json::{Map, Value, json};

use super::{child, each, existing, is_unset, set_default, set_if_zero, text};
use crate::api::registry::validation::quantity;

/// Upstream `SecretVolumeSourceDefaultMode` and friends: 0644.
const DEFAULT_MODE: i64 = 0o644;

/// A Pod: pod-level defaults, then the pod spec.
pub(super) fn pod(obj: &mut Value) {
    let mirror = obj["metadata"]["annotations"]["kubernetes.io/config.mirror"].is_string();
    let Some(spec) = obj.as_object_mut().and_then(|m| child(m, "spec")) else {
        return;
    };
    // What upstream's ServiceAccount admission plugin does for every pod but
    // mirror pods: run as the namespace's `default` service account. The
    // deprecated `serviceAccount` mirrors it, as the v1 conversion does.
    if !mirror {
        if spec
            .get("serviceAccountName")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            let legacy = spec
                .get("serviceAccount")
                .filter(|v| v.as_str().is_some_and(|s| !s.is_empty()))
                .cloned();
            spec.insert(
                "serviceAccountName".into(),
                legacy.unwrap_or_else(|| json!("default")),
            );
        }
        let name = spec
            .get("serviceAccountName")
            .cloned()
            .unwrap_or(Value::Null);
        spec.insert("serviceAccount".into(), name);
    }
    for list in ["containers", "initContainers"] {
        for c in each(spec, list) {
            requests_from_limits(c);
        }
    }
    set_default(spec, "enableServiceLinks", Value::Bool(true));
    if spec.get("hostNetwork").and_then(Value::as_bool) == Some(true) {
        for list in ["containers", "initContainers"] {
            for c in each(spec, list) {
                for port in each(c, "ports") {
                    let container_port = port.get("containerPort").cloned().unwrap_or(Value::Null);
                    set_if_zero(port, "hostPort", container_port);
                }
            }
        }
    }
    if !is_unset(spec, "priority") {
        set_default(spec, "preemptionPolicy", json!("PreemptLowerPriority"));
    }
    pod_spec(spec);
}

/// The template at `key` of `obj` (a `PodTemplateSpec`).
pub(super) fn template(obj: &mut Value, key: &str) {
    if let Some(t) = obj.as_object_mut().and_then(|m| existing(m, key)) {
        template_spec(t);
    }
}

/// A `PodTemplateSpec` object: its pod spec gets the pod-spec defaults.
pub(super) fn template_spec(template: &mut Map<String, Value>) {
    if let Some(spec) = child(template, "spec") {
        pod_spec(spec);
    }
}

fn requests_from_limits(c: &mut Map<String, Value>) {
    let Some(resources) = existing(c, "resources") else {
        return;
    };
    let Some(limits) = resources.get("limits").and_then(Value::as_object).cloned() else {
        return;
    };
    if let Some(requests) = child(resources, "requests") {
        for (k, v) in limits {
            requests.entry(k).or_insert(v);
        }
    }
}

/// Upstream `SetDefaults_PodSpec` and the walk over its volumes and containers.
pub(super) fn pod_spec(spec: &mut Map<String, Value>) {
    set_if_zero(spec, "dnsPolicy", json!("ClusterFirst"));
    set_if_zero(spec, "restartPolicy", json!("Always"));
    set_default(spec, "securityContext", json!({}));
    set_default(spec, "terminationGracePeriodSeconds", json!(30));
    set_if_zero(spec, "schedulerName", json!("default-scheduler"));
    for volume in each(spec, "volumes") {
        volume_defaults(volume);
    }
    for list in ["initContainers", "containers", "ephemeralContainers"] {
        for c in each(spec, list) {
            container(c);
        }
    }
    if let Some(resources) = existing(spec, "resources") {
        resource_lists(resources);
    }
}

const VOLUME_SOURCES: [&str; 30] = [
    "hostPath",
    "emptyDir",
    "gcePersistentDisk",
    "awsElasticBlockStore",
    "gitRepo",
    "secret",
    "nfs",
    "iscsi",
    "glusterfs",
    "persistentVolumeClaim",
    "rbd",
    "flexVolume",
    "cinder",
    "cephfs",
    "flocker",
    "downwardAPI",
    "fc",
    "azureFile",
    "configMap",
    "vsphereVolume",
    "quobyte",
    "azureDisk",
    "photonPersistentDisk",
    "projected",
    "portworxVolume",
    "scaleIO",
    "storageos",
    "csi",
    "ephemeral",
    "image",
];

fn volume_defaults(v: &mut Map<String, Value>) {
    if VOLUME_SOURCES.iter().all(|k| is_unset(v, k)) {
        v.insert("emptyDir".to_string(), json!({}));
    }
    if let Some(hp) = existing(v, "hostPath") {
        set_default(hp, "type", json!(""));
    }
    for key in ["secret", "configMap", "downwardAPI", "projected"] {
        if let Some(src) = existing(v, key) {
            set_default(src, "defaultMode", json!(DEFAULT_MODE));
        }
    }
    if let Some(d) = existing(v, "downwardAPI") {
        downward_items(d);
    }
    if let Some(p) = existing(v, "projected") {
        for source in each(p, "sources") {
            if let Some(d) = existing(source, "downwardAPI") {
                downward_items(d);
            }
            if let Some(t) = existing(source, "serviceAccountToken") {
                set_default(t, "expirationSeconds", json!(3600));
            }
        }
    }
    volume_driver_defaults(v);
    if let Some(spec) = existing(v, "ephemeral")
        .and_then(|e| existing(e, "volumeClaimTemplate"))
        .and_then(|t| child(t, "spec"))
    {
        claim_spec(spec);
    }
    if let Some(image) = existing(v, "image") {
        let policy = pull_policy_for(text(image, "reference"));
        set_if_zero(image, "pullPolicy", json!(policy));
    }
}

fn volume_driver_defaults(v: &mut Map<String, Value>) {
    if let Some(iscsi) = existing(v, "iscsi") {
        set_if_zero(iscsi, "iscsiInterface", json!("default"));
    }
    if let Some(rbd) = existing(v, "rbd") {
        set_if_zero(rbd, "pool", json!("rbd"));
        set_if_zero(rbd, "user", json!("admin"));
        set_if_zero(rbd, "keyring", json!("/etc/ceph/keyring"));
    }
    if let Some(disk) = existing(v, "azureDisk") {
        set_default(disk, "cachingMode", json!("ReadWrite"));
        set_default(disk, "kind", json!("Shared"));
        set_default(disk, "fsType", json!("ext4"));
        set_default(disk, "readOnly", json!(false));
    }
    if let Some(sio) = existing(v, "scaleIO") {
        set_if_zero(sio, "storageMode", json!("ThinProvisioned"));
        set_if_zero(sio, "fsType", json!("xfs"));
    }
}

fn downward_items(d: &mut Map<String, Value>) {
    for item in each(d, "items") {
        if let Some(fr) = existing(item, "fieldRef") {
            set_if_zero(fr, "apiVersion", json!("v1"));
        }
    }
}

/// `PersistentVolumeClaimSpec` defaults: filesystem volume mode, canonical quantities.
pub(super) fn claim_spec(spec: &mut Map<String, Value>) {
    set_default(spec, "volumeMode", json!("Filesystem"));
    if let Some(resources) = existing(spec, "resources") {
        resource_lists(resources);
    }
}

/// The pull policy upstream picks from an image reference: `Always` for `:latest` or no
/// tag at all, `IfNotPresent` otherwise (including digests and unparsable references).
pub(super) fn pull_policy_for(image: &str) -> &'static str {
    if image.is_empty() || image.chars().any(char::is_whitespace) {
        return "IfNotPresent";
    }
    let (name, digest) = match image.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (image, None),
    };
    let last_segment = name.rsplit('/').next().unwrap_or(name);
    let tag = last_segment.split_once(':').map(|(_, t)| t);
    let repo = match tag {
        Some(t) => &name[..name.len() - t.len() - 1],
        None => name,
    };
    let path_part = repo
        .split_once('/')
        .filter(|(host, _)| host.contains(['.', ':']) || *host == "localhost");
    let repo_path = path_part.map_or(repo, |(_, p)| p);
    if repo_path.is_empty() || repo_path.chars().any(|c| c.is_ascii_uppercase()) {
        return "IfNotPresent";
    }
    match (tag, digest) {
        (Some("latest"), _) | (None, None) => "Always",
        _ => "IfNotPresent",
    }
}

/// Upstream `SetDefaults_Container` and the per-container walk.
fn container(c: &mut Map<String, Value>) {
    let policy = pull_policy_for(text(c, "image"));
    set_if_zero(c, "imagePullPolicy", json!(policy));
    set_if_zero(c, "terminationMessagePath", json!("/dev/termination-log"));
    set_if_zero(c, "terminationMessagePolicy", json!("File"));
    for port in each(c, "ports") {
        set_if_zero(port, "protocol", json!("TCP"));
    }
    for env in each(c, "env") {
        if let Some(fr) = existing(env, "valueFrom").and_then(|v| existing(v, "fieldRef")) {
            set_if_zero(fr, "apiVersion", json!("v1"));
        }
    }
    if let Some(resources) = existing(c, "resources") {
        resource_lists(resources);
    }
    for key in ["livenessProbe", "readinessProbe", "startupProbe"] {
        if let Some(p) = existing(c, key) {
            probe(p);
        }
    }
    if let Some(lifecycle) = existing(c, "lifecycle") {
        for hook in ["postStart", "preStop"] {
            if let Some(h) = existing(lifecycle, hook).and_then(|h| existing(h, "httpGet")) {
                http_get(h);
            }
        }
    }
}

fn probe(p: &mut Map<String, Value>) {
    set_if_zero(p, "timeoutSeconds", json!(1));
    set_if_zero(p, "periodSeconds", json!(10));
    set_if_zero(p, "successThreshold", json!(1));
    set_if_zero(p, "failureThreshold", json!(3));
    if let Some(h) = existing(p, "httpGet") {
        http_get(h);
    }
    if let Some(g) = existing(p, "grpc") {
        set_default(g, "service", json!(""));
    }
}

fn http_get(h: &mut Map<String, Value>) {
    set_if_zero(h, "path", json!("/"));
    set_if_zero(h, "scheme", json!("HTTP"));
}

/// Upstream `SetDefaults_ResourceList` on `limits` and `requests`: round up to milli-units,
/// written back in canonical form. Unparsable values are left for validation to report.
pub(super) fn resource_lists(resources: &mut Map<String, Value>) {
    for key in ["limits", "requests"] {
        let Some(list) = existing(resources, key) else {
            continue;
        };
        for value in list.values_mut() {
            let text = match value {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                _ => continue,
            };
            if let Ok(mut q) = quantity::parse(&text) {
                q.round_up(-3);
                *value = Value::String(q.canonical());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::pull_policy_for;

    #[test]
    fn pull_policy_follows_the_tag() {
        assert_eq!(pull_policy_for("nginx"), "Always");
        assert_eq!(pull_policy_for("nginx:latest"), "Always");
        assert_eq!(pull_policy_for("nginx:1.25"), "IfNotPresent");
        assert_eq!(pull_policy_for("nginx@sha256:abc"), "IfNotPresent");
        assert_eq!(pull_policy_for("nginx:latest@sha256:abc"), "Always");
        assert_eq!(pull_policy_for("localhost:5000/app"), "Always");
        assert_eq!(
            pull_policy_for("registry.io:5000/team/app:v2"),
            "IfNotPresent"
        );
        assert_eq!(pull_policy_for("Upper/Case"), "IfNotPresent");
        assert_eq!(pull_policy_for(""), "IfNotPresent");
    }
}
