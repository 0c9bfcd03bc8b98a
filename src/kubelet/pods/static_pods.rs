//! Static pods: manifests in `<data>/agent/pod-manifests/` that this node
//! runs without the scheduler, each mirrored into the API as a read-only
//! "mirror pod" so `kubectl get pods` shows it.
//!
//! Like upstream, a static pod's uid is a hash of its manifest and node, so
//! editing the file replaces the pod and an unchanged file keeps its
//! containers across kelp restarts. The mirror pod carries the
//! `kubernetes.io/config.mirror` annotation with that hash; a mirror pod
//! deleted by a user is recreated, one whose hash is stale is replaced.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, PostParams};
use serde_json::json;
use sha2::{Digest, Sha256};

/// Annotation naming the static pod's hash on the mirror pod.
pub const MIRROR_ANNOTATION: &str = "kubernetes.io/config.mirror";
const HASH_ANNOTATION: &str = "kubernetes.io/config.hash";
const SOURCE_ANNOTATION: &str = "kubernetes.io/config.source";

/// Whether `pod` is a mirror pod (the kubelet must not run it twice).
pub fn is_mirror(pod: &Pod) -> bool {
    pod.metadata
        .annotations
        .as_ref()
        .is_some_and(|a| a.contains_key(MIRROR_ANNOTATION))
}

/// Reads every manifest in `dir` into pods keyed by uid. Bad files are
/// logged and skipped: one typo must not stop the other static pods.
pub fn read_manifests(dir: &Path, node: &str) -> BTreeMap<String, Arc<Pod>> {
    let mut out = BTreeMap::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    let mut paths: Vec<_> = entries.flatten().map(|e| e.path()).collect();
    paths.sort();
    for path in paths {
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
        if !matches!(ext, "yaml" | "yml" | "json") {
            continue;
        }
        match read_one(&path, node) {
            Ok(pod) => {
                let uid = pod.metadata.uid.clone().unwrap_or_default();
                out.insert(uid, Arc::new(pod));
            }
            Err(e) => {
                tracing::warn!(file = %path.display(), error = %e, "skipping static pod manifest")
            }
        }
    }
    out
}

fn read_one(path: &Path, node: &str) -> Result<Pod, String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let mut value: serde_json::Value = serde_yaml::from_str(&text).map_err(|e| e.to_string())?;
    if value["kind"] != "Pod" {
        return Err("not a Pod manifest (kind must be Pod)".into());
    }
    let name = value["metadata"]["name"]
        .as_str()
        .filter(|n| !n.is_empty())
        .ok_or("metadata.name is required")?
        .to_string();
    let hash_input = format!(
        "{node}\n{}",
        serde_json::to_string(&value).map_err(|e| e.to_string())?
    );
    let digest = Sha256::digest(hash_input.as_bytes());
    let mut first = [0_u8; 16];
    first.copy_from_slice(&digest[..16]);
    let uid = crate::client::names::uuid_string(&first);
    let hex: String = first.iter().map(|b| format!("{b:02x}")).collect();
    let meta = &mut value["metadata"];
    meta["name"] = json!(format!("{name}-{node}"));
    if meta["namespace"].as_str().is_none_or(str::is_empty) {
        meta["namespace"] = json!("default");
    }
    meta["uid"] = json!(uid);
    if !meta["annotations"].is_object() {
        meta["annotations"] = json!({});
    }
    meta["annotations"][HASH_ANNOTATION] = json!(hex);
    meta["annotations"][SOURCE_ANNOTATION] = json!("file");
    value["spec"]["nodeName"] = json!(node);
    if value["spec"]["restartPolicy"].is_null() {
        value["spec"]["restartPolicy"] = json!("Always");
    }
    serde_json::from_value(value).map_err(|e| format!("invalid pod: {e}"))
}

/// Makes sure the API has an up-to-date mirror pod for `pod`.
pub async fn ensure_mirror(client: &kube::Client, pod: &Pod, node_uid: Option<&str>) {
    let ns = pod.metadata.namespace.clone().unwrap_or_default();
    let name = pod.metadata.name.clone().unwrap_or_default();
    let hash = pod
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(HASH_ANNOTATION))
        .cloned()
        .unwrap_or_default();
    let api: Api<Pod> = Api::namespaced(client.clone(), &ns);
    match api.get_opt(&name).await {
        Ok(Some(existing)) => {
            let current = existing
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(MIRROR_ANNOTATION))
                .cloned();
            if current.as_deref() == Some(hash.as_str())
                && existing.metadata.deletion_timestamp.is_none()
            {
                return;
            }
            let _ = api
                .delete(&name, &DeleteParams::default().grace_period(0))
                .await;
        }
        Ok(None) => {}
        Err(e) => {
            tracing::warn!(pod = %name, error = %e, "cannot read mirror pod");
            return;
        }
    }
    let mut mirror = pod.clone();
    mirror.metadata.uid = None;
    mirror.metadata.resource_version = None;
    mirror.status = None;
    let annotations = mirror
        .metadata
        .annotations
        .get_or_insert_with(Default::default);
    annotations.insert(MIRROR_ANNOTATION.into(), hash);
    if let (Some(uid), Some(node)) = (
        node_uid,
        pod.spec.as_ref().and_then(|s| s.node_name.clone()),
    ) {
        mirror.metadata.owner_references = Some(vec![
            k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference {
                api_version: "v1".into(),
                kind: "Node".into(),
                name: node,
                uid: uid.to_string(),
                controller: Some(true),
                block_owner_deletion: None,
            },
        ]);
    }
    match api.create(&PostParams::default(), &mirror).await {
        Ok(_) => tracing::info!(pod = %name, "mirror pod created"),
        Err(kube::Error::Api(e)) if e.code == 409 => {}
        Err(e) => tracing::warn!(pod = %name, error = %e, "cannot create mirror pod"),
    }
}

/// Deletes the mirror pod of a static pod that went away.
pub async fn delete_mirror(client: &kube::Client, pod: &Pod) {
    let ns = pod.metadata.namespace.clone().unwrap_or_default();
    let name = pod.metadata.name.clone().unwrap_or_default();
    let api: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let _ = api
        .delete(&name, &DeleteParams::default().grace_period(0))
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifests_become_node_suffixed_pods_with_stable_uids() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("web.yaml"),
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\nspec:\n  containers:\n  - name: c\n    image: busybox\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("bad.yaml"), "kind: Deployment\n").unwrap();
        std::fs::write(dir.path().join("notes.txt"), "ignored").unwrap();
        let pods = read_manifests(dir.path(), "n1");
        assert_eq!(pods.len(), 1);
        let pod = pods.values().next().unwrap();
        assert_eq!(pod.metadata.name.as_deref(), Some("web-n1"));
        assert_eq!(pod.metadata.namespace.as_deref(), Some("default"));
        assert_eq!(pod.spec.as_ref().unwrap().node_name.as_deref(), Some("n1"));
        let again = read_manifests(dir.path(), "n1");
        assert_eq!(
            again.keys().collect::<Vec<_>>(),
            pods.keys().collect::<Vec<_>>()
        );
        let other_node = read_manifests(dir.path(), "n2");
        assert_ne!(other_node.keys().next(), pods.keys().next());
    }
}
