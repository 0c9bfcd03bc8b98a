//! Config maps, secrets, service accounts, resource quotas, RBAC bindings, storage.

use serde_json::json;

use super::support::{ago, row};
use crate::api::table::columns;

#[test]
fn config_map_counts_data_and_binary_data() {
    let cm = json!({"metadata": {"name": "kube-root-ca.crt", "creationTimestamp": ago(100)},
        "data": {"ca.crt": "..."}, "binaryData": {"blob": "AAEC"}});
    assert_eq!(
        row("", "configmaps", &cm),
        [json!("kube-root-ca.crt"), json!(2), json!("100s")]
    );
    let empty = json!({"metadata": {"name": "e"}});
    assert_eq!(row("", "configmaps", &empty)[1], json!(0));
}

#[test]
fn secret_row() {
    let s = json!({"metadata": {"name": "tls", "creationTimestamp": ago(100)},
        "type": "kubernetes.io/tls", "data": {"tls.crt": "eA==", "tls.key": "eQ=="}});
    assert_eq!(
        row("", "secrets", &s),
        [
            json!("tls"),
            json!("kubernetes.io/tls"),
            json!(2),
            json!("100s")
        ]
    );
    let opaque = json!({"metadata": {"name": "o"}});
    assert_eq!(
        row("", "secrets", &opaque)[1..3],
        [json!("Opaque"), json!(0)]
    );
    let names: Vec<_> = columns("", "secrets").iter().map(|c| c.name).collect();
    assert_eq!(names, ["Name", "Type", "Data", "Age"]);
}

#[test]
fn service_account_counts_secrets() {
    let sa = json!({"metadata": {"name": "default", "creationTimestamp": ago(100)}});
    assert_eq!(
        row("", "serviceaccounts", &sa),
        [json!("default"), json!(0), json!("100s")]
    );
    let with = json!({"metadata": {"name": "builder"}, "secrets": [{"name": "builder-token"}]});
    assert_eq!(row("", "serviceaccounts", &with)[1], json!(1));
    assert_eq!(columns("", "serviceaccounts")[1].name, "Secrets");
}

#[test]
fn resource_quota_splits_requests_and_limits() {
    let rq = json!({"metadata": {"name": "compute", "creationTimestamp": ago(100)},
    "status": {
        "hard": {"pods": "10", "requests.cpu": "4", "limits.memory": "8Gi", "limits.cpu": "8", "requests.memory": "4Gi"},
        "used": {"pods": "3", "requests.cpu": "1500m", "limits.cpu": "2", "requests.memory": "1Gi"}
    }});
    assert_eq!(
        row("", "resourcequotas", &rq),
        [
            json!("compute"),
            json!("pods: 3/10, requests.cpu: 1500m/4, requests.memory: 1Gi/4Gi"),
            json!("limits.cpu: 2/8, limits.memory: 0/8Gi"),
            json!("100s"),
        ]
    );
    let fresh = json!({"metadata": {"name": "f"}});
    assert_eq!(
        row("", "resourcequotas", &fresh)[1..3],
        [json!(""), json!("")]
    );
}

#[test]
fn role_binding_rows() {
    let rb = json!({"metadata": {"name": "admins", "creationTimestamp": ago(100)},
    "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "admin"},
    "subjects": [
        {"kind": "User", "name": "alice"}, {"kind": "User", "name": "bob"},
        {"kind": "Group", "name": "ops"},
        {"kind": "ServiceAccount", "name": "ci", "namespace": "build"}
    ]});
    let want = [
        json!("admins"),
        json!("ClusterRole/admin"),
        json!("100s"),
        json!("alice, bob"),
        json!("ops"),
        json!("build/ci"),
    ];
    assert_eq!(row("rbac.authorization.k8s.io", "rolebindings", &rb), want);
    assert_eq!(
        row("rbac.authorization.k8s.io", "clusterrolebindings", &rb),
        want
    );
    let cols = columns("rbac.authorization.k8s.io", "clusterrolebindings");
    assert_eq!(
        (cols[3].name, cols[3].priority, cols[3].description),
        ("Users", 1, "Users in the clusterRoleBinding")
    );
}

#[test]
fn persistent_volume_rows() {
    let pv = json!({"metadata": {"name": "pv-1", "creationTimestamp": ago(100),
            "annotations": {"volume.beta.kubernetes.io/storage-class": "legacy"}},
        "spec": {"capacity": {"storage": "10Gi"},
            "accessModes": ["ReadWriteMany", "ReadWriteOnce", "ReadWriteOnce", "ReadWriteOncePod"],
            "persistentVolumeReclaimPolicy": "Delete", "storageClassName": "standard",
            "claimRef": {"namespace": "default", "name": "data"}, "volumeMode": "Block"},
        "status": {"phase": "Bound"}});
    assert_eq!(
        row("", "persistentvolumes", &pv),
        [
            json!("pv-1"),
            json!("10Gi"),
            json!("RWO,RWX,RWOP"),
            json!("Delete"),
            json!("Bound"),
            json!("default/data"),
            json!("legacy"),
            json!("<unset>"),
            json!(""),
            json!("100s"),
            json!("Block"),
        ]
    );
    let mut dying = json!({"metadata": {"name": "pv-2", "deletionTimestamp": ago(1)}, "spec": {}});
    let cells = row("", "persistentvolumes", &dying);
    assert_eq!(
        cells[1..7],
        [
            json!("0"),
            json!(""),
            json!("Retain"),
            json!("Terminating"),
            json!(""),
            json!("")
        ]
    );
    assert_eq!(cells[10], json!("Filesystem"));
    dying["metadata"]["deletionTimestamp"] = json!(null);
    assert_eq!(row("", "persistentvolumes", &dying)[4], json!("Pending"));
}

#[test]
fn persistent_volume_claim_rows() {
    let bound = json!({"metadata": {"name": "data", "creationTimestamp": ago(100)},
        "spec": {"volumeName": "pv-1", "storageClassName": "standard", "volumeAttributesClassName": "gold",
                 "resources": {"requests": {"storage": "5Gi"}}},
        "status": {"phase": "Bound", "capacity": {"storage": "10Gi"}, "accessModes": ["ReadWriteOnce"]}});
    assert_eq!(
        row("", "persistentvolumeclaims", &bound),
        [
            json!("data"),
            json!("Bound"),
            json!("pv-1"),
            json!("10Gi"),
            json!("RWO"),
            json!("standard"),
            json!("gold"),
            json!("100s"),
            json!("Filesystem"),
        ]
    );
    let pending = json!({"metadata": {"name": "p"}, "spec": {"resources": {"requests": {"storage": "5Gi"}}},
        "status": {"phase": "Pending"}});
    let cells = row("", "persistentvolumeclaims", &pending);
    assert_eq!(
        cells[1..7],
        [
            json!("Pending"),
            json!(""),
            json!(""),
            json!(""),
            json!(""),
            json!("<unset>")
        ]
    );
}

#[test]
fn storage_class_rows() {
    let sc = json!({"metadata": {"name": "standard", "creationTimestamp": ago(100),
            "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
        "provisioner": "rancher.io/local-path", "reclaimPolicy": "Retain",
        "volumeBindingMode": "WaitForFirstConsumer", "allowVolumeExpansion": true});
    assert_eq!(
        row("storage.k8s.io", "storageclasses", &sc),
        [
            json!("standard (default)"),
            json!("rancher.io/local-path"),
            json!("Retain"),
            json!("WaitForFirstConsumer"),
            json!(true),
            json!("100s"),
        ]
    );
    let plain = json!({"metadata": {"name": "fast"}, "provisioner": "csi.example.com"});
    let cells = row("storage.k8s.io", "storageclasses", &plain);
    assert_eq!(
        cells[..5],
        [
            json!("fast"),
            json!("csi.example.com"),
            json!("Delete"),
            json!("Immediate"),
            json!(false)
        ]
    );
}
