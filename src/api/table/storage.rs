//! Tables of storage resources: persistent volumes, claims and storage classes.
//!
//! Access modes print in upstream's fixed order (RWO, ROX, RWX, RWOP) without duplicates;
//! the storage class comes from the beta annotation before `storageClassName`; objects being
//! deleted show `Terminating`. Missing v1-defaulted fields (phase, reclaim policy, volume
//! mode, binding mode) read as their defaults.

use serde_json::Value;

use super::fields::{annotation, arr_at, bool_at, deleting, name, opt_str, quantity, str_at};
use super::time::Instant;
use super::{AGE, NAME, Printer, age, col, docs, wide};

/// `kubectl get persistentvolumes`.
pub(super) const PERSISTENT_VOLUMES: Printer = Printer {
    columns: &[
        NAME,
        col("Capacity", "string", docs::PERSISTENT_VOLUME_SPEC_CAPACITY),
        col(
            "Access Modes",
            "string",
            docs::PERSISTENT_VOLUME_SPEC_ACCESS_MODES,
        ),
        col(
            "Reclaim Policy",
            "string",
            docs::PERSISTENT_VOLUME_SPEC_PERSISTENT_VOLUME_RECLAIM_POLICY,
        ),
        col("Status", "string", docs::PERSISTENT_VOLUME_STATUS_PHASE),
        col("Claim", "string", docs::PERSISTENT_VOLUME_SPEC_CLAIM_REF),
        col("StorageClass", "string", "StorageClass of the pv"),
        col(
            "VolumeAttributesClass",
            "string",
            "VolumeAttributesClass of the pv",
        ),
        col("Reason", "string", docs::PERSISTENT_VOLUME_STATUS_REASON),
        AGE,
        wide("VolumeMode", docs::PERSISTENT_VOLUME_SPEC_VOLUME_MODE),
    ],
    cells: persistent_volume_cells,
};

/// `kubectl get persistentvolumeclaims`.
pub(super) const PERSISTENT_VOLUME_CLAIMS: Printer = Printer {
    columns: &[
        NAME,
        col(
            "Status",
            "string",
            docs::PERSISTENT_VOLUME_CLAIM_STATUS_PHASE,
        ),
        col(
            "Volume",
            "string",
            docs::PERSISTENT_VOLUME_CLAIM_SPEC_VOLUME_NAME,
        ),
        col(
            "Capacity",
            "string",
            docs::PERSISTENT_VOLUME_CLAIM_STATUS_CAPACITY,
        ),
        col(
            "Access Modes",
            "string",
            docs::PERSISTENT_VOLUME_CLAIM_STATUS_ACCESS_MODES,
        ),
        col("StorageClass", "string", "StorageClass of the pvc"),
        col(
            "VolumeAttributesClass",
            "string",
            "VolumeAttributesClass of the pvc",
        ),
        AGE,
        wide("VolumeMode", docs::PERSISTENT_VOLUME_CLAIM_SPEC_VOLUME_MODE),
    ],
    cells: persistent_volume_claim_cells,
};

/// `kubectl get storageclasses`.
pub(super) const STORAGE_CLASSES: Printer = Printer {
    columns: &[
        NAME,
        col("Provisioner", "string", docs::STORAGE_CLASS_PROVISIONER),
        col(
            "ReclaimPolicy",
            "string",
            docs::STORAGE_CLASS_RECLAIM_POLICY,
        ),
        col(
            "VolumeBindingMode",
            "string",
            docs::STORAGE_CLASS_VOLUME_BINDING_MODE,
        ),
        col(
            "AllowVolumeExpansion",
            "string",
            docs::STORAGE_CLASS_ALLOW_VOLUME_EXPANSION,
        ),
        AGE,
    ],
    cells: storage_class_cells,
};

const BETA_CLASS_ANNOTATION: &str = "volume.beta.kubernetes.io/storage-class";

/// `helper.GetAccessModesAsString`.
fn access_modes(modes: &[Value]) -> String {
    let has = |m: &str| modes.iter().any(|x| x.as_str() == Some(m));
    [
        ("ReadWriteOnce", "RWO"),
        ("ReadOnlyMany", "ROX"),
        ("ReadWriteMany", "RWX"),
        ("ReadWriteOncePod", "RWOP"),
    ]
    .iter()
    .filter(|(mode, _)| has(mode))
    .map(|(_, short)| *short)
    .collect::<Vec<_>>()
    .join(",")
}

/// Phase, `Terminating` while deleting, `Pending` when unset.
fn phase(obj: &Value) -> &str {
    if deleting(obj) {
        "Terminating"
    } else {
        opt_str(obj, &["status", "phase"]).unwrap_or("Pending")
    }
}

fn storage_capacity(obj: &Value, path: &str) -> String {
    quantity(obj.pointer(path)).unwrap_or_else(|| "0".to_string())
}

fn persistent_volume_cells(obj: &Value, now: Instant) -> Vec<Value> {
    let claim = match obj.pointer("/spec/claimRef").filter(|c| c.is_object()) {
        Some(c) => format!("{}/{}", str_at(c, &["namespace"]), str_at(c, &["name"])),
        None => String::new(),
    };
    let class = annotation(obj, BETA_CLASS_ANNOTATION)
        .unwrap_or_else(|| str_at(obj, &["spec", "storageClassName"]));
    vec![
        name(obj).into(),
        storage_capacity(obj, "/spec/capacity/storage").into(),
        access_modes(arr_at(obj, &["spec", "accessModes"])).into(),
        opt_str(obj, &["spec", "persistentVolumeReclaimPolicy"])
            .unwrap_or("Retain")
            .into(),
        phase(obj).into(),
        claim.into(),
        class.into(),
        opt_str(obj, &["spec", "volumeAttributesClassName"])
            .unwrap_or("<unset>")
            .into(),
        str_at(obj, &["status", "reason"]).into(),
        age(obj, now),
        opt_str(obj, &["spec", "volumeMode"])
            .unwrap_or("Filesystem")
            .into(),
    ]
}

fn persistent_volume_claim_cells(obj: &Value, now: Instant) -> Vec<Value> {
    let volume = str_at(obj, &["spec", "volumeName"]);
    // Capacity and modes are only meaningful once bound to a volume.
    let (capacity, modes) = if volume.is_empty() {
        (String::new(), String::new())
    } else {
        (
            storage_capacity(obj, "/status/capacity/storage"),
            access_modes(arr_at(obj, &["status", "accessModes"])),
        )
    };
    let class = annotation(obj, BETA_CLASS_ANNOTATION)
        .or_else(|| opt_str(obj, &["spec", "storageClassName"]))
        .unwrap_or("");
    vec![
        name(obj).into(),
        phase(obj).into(),
        volume.into(),
        capacity.into(),
        modes.into(),
        class.into(),
        opt_str(obj, &["spec", "volumeAttributesClassName"])
            .unwrap_or("<unset>")
            .into(),
        age(obj, now),
        opt_str(obj, &["spec", "volumeMode"])
            .unwrap_or("Filesystem")
            .into(),
    ]
}

fn storage_class_cells(obj: &Value, now: Instant) -> Vec<Value> {
    let is_default = [
        "storageclass.kubernetes.io/is-default-class",
        "storageclass.beta.kubernetes.io/is-default-class",
    ]
    .iter()
    .any(|key| annotation(obj, key) == Some("true"));
    let shown_name = if is_default {
        format!("{} (default)", name(obj))
    } else {
        name(obj).to_string()
    };
    vec![
        shown_name.into(),
        str_at(obj, &["provisioner"]).into(),
        opt_str(obj, &["reclaimPolicy"]).unwrap_or("Delete").into(),
        opt_str(obj, &["volumeBindingMode"])
            .unwrap_or("Immediate")
            .into(),
        bool_at(obj, &["allowVolumeExpansion"]).into(),
        age(obj, now),
    ]
}
