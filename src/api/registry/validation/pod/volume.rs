//! Pod volumes and the containers' volume mounts and devices (core `ValidateVolumes`,
//! `ValidateVolumeMounts`, `ValidateVolumeDevices` and the common volume sources).

use serde_json::Value;

use super::super::FieldError;
use super::super::field::{
    Bad, Path, duplicate, forbidden, invalid, invalid_each, invalid_str, not_supported, required,
    too_long,
};
use super::super::json::{arr, get, int_of, opt_str, str_of};
use super::env::validate_object_field_selector;
use super::resources::{parse_quantity, validate_resource_field_ref};
use crate::api::registry::names::{is_dns1123_label, is_dns1123_subdomain};
/// The valid volumes of a pod, by name, with their JSON.
pub(crate) type Volumes<'a> = Vec<(&'a str, &'a Value)>;

/// Volume source fields in upstream's checking order, with the path segment upstream uses
/// in its "more than 1 volume type" error (two of which differ from the JSON name).
const SOURCES: [(&str, &str); 30] = [
    ("emptyDir", "emptyDir"),
    ("hostPath", "hostPath"),
    ("gitRepo", "gitRepo"),
    ("gcePersistentDisk", "gcePersistentDisk"),
    ("awsElasticBlockStore", "awsElasticBlockStore"),
    ("secret", "secret"),
    ("nfs", "nfs"),
    ("iscsi", "iscsi"),
    ("glusterfs", "glusterfs"),
    ("flocker", "flocker"),
    ("persistentVolumeClaim", "persistentVolumeClaim"),
    ("rbd", "rbd"),
    ("cinder", "cinder"),
    ("cephfs", "cephFS"),
    ("quobyte", "quobyte"),
    ("downwardAPI", "downwarAPI"),
    ("fc", "fc"),
    ("flexVolume", "flexVolume"),
    ("configMap", "configMap"),
    ("azureFile", "azureFile"),
    ("vsphereVolume", "vsphereVolume"),
    ("photonPersistentDisk", "photonPersistentDisk"),
    ("portworxVolume", "portworxVolume"),
    ("azureDisk", "azureDisk"),
    ("storageos", "storageos"),
    ("projected", "projected"),
    ("scaleIO", "scaleIO"),
    ("csi", "csi"),
    ("ephemeral", "ephemeral"),
    ("image", "image"),
];

const FILE_MODE_ERR: &str = "must be a number between 0 and 0777 (octal), both inclusive";

/// Upstream `ValidateVolumes`; returns the volumes that validated cleanly.
pub(crate) fn validate_volumes<'a>(
    spec: &'a Value,
    is_pod: bool,
    path: &Path,
    errs: &mut Vec<FieldError>,
) -> Volumes<'a> {
    let mut valid: Volumes<'a> = Vec::new();
    let mut names: std::collections::HashSet<&str> = std::collections::HashSet::new();
    for (i, vol) in arr(spec, "volumes").iter().enumerate() {
        let p = path.index(i);
        let name_path = p.child("name");
        let mut el = Vec::new();
        validate_volume_source(vol, is_pod, &p, &mut el);
        let name = str_of(vol, "name");
        if name.is_empty() {
            el.push(required(&name_path, ""));
        } else {
            invalid_each(&mut el, &name_path, name, is_dns1123_label(name));
        }
        if names.contains(&name) {
            el.push(duplicate(&name_path, Bad::s(name)));
        }
        if el.is_empty() {
            names.insert(name);
            valid.push((name, vol));
        } else {
            errs.append(&mut el);
        }
    }
    valid
}

fn validate_volume_source(vol: &Value, is_pod: bool, path: &Path, errs: &mut Vec<FieldError>) {
    let mut count = 0;
    for (key, label) in SOURCES {
        let Some(src) = get(vol, key) else { continue };
        if count > 0 {
            errs.push(forbidden(
                &path.child(label),
                "may not specify more than 1 volume type",
            ));
            continue;
        }
        count += 1;
        validate_source(key, src, is_pod, &path.child(key), errs);
    }
    if count == 0 {
        errs.push(required(path, "must specify a volume type"));
    }
}

fn validate_source(key: &str, src: &Value, is_pod: bool, path: &Path, errs: &mut Vec<FieldError>) {
    match key {
        "emptyDir" => validate_empty_dir(src, path, errs),
        "hostPath" => validate_host_path(src, path, errs),
        "gitRepo" => {
            require(src, "repository", path, errs);
            let dir = str_of(src, "directory");
            validate_local_descending_path(dir, &path.child("directory"), errs);
        }
        "secret" => validate_items_source(src, "secretName", path, errs),
        "configMap" => validate_items_source(src, "name", path, errs),
        "persistentVolumeClaim" => require(src, "claimName", path, errs),
        "nfs" => {
            require(src, "server", path, errs);
            require(src, "path", path, errs);
            let p = str_of(src, "path");
            if !p.starts_with('/') {
                errs.push(invalid_str(
                    &path.child("path"),
                    p,
                    "must be an absolute path",
                ));
            }
        }
        "downwardAPI" => {
            validate_mode(src, "defaultMode", path, errs);
            for item in arr(src, "items") {
                validate_downward_api_file(item, path, errs);
            }
        }
        "projected" => {
            validate_mode(src, "defaultMode", path, errs);
            validate_projection_sources(src, path, errs);
        }
        "csi" => validate_csi_driver(str_of(src, "driver"), &path.child("driver"), errs),
        "ephemeral" => {
            let tp = path.child("volumeClaimTemplate");
            match get(src, "volumeClaimTemplate") {
                None => errs.push(required(&tp, "")),
                Some(t) => super::super::storage::validate_claim_template(t, &tp, errs),
            }
        }
        "image" => {
            if is_pod {
                require(src, "reference", path, errs);
            }
            validate_pull_policy(str_of(src, "pullPolicy"), &path.child("pullPolicy"), errs);
        }
        _ => {}
    }
}

fn validate_empty_dir(src: &Value, path: &Path, errs: &mut Vec<FieldError>) {
    let Some(limit) = get(src, "sizeLimit") else {
        return;
    };
    let p = path.child("sizeLimit");
    let mut syntax = Vec::new();
    if parse_quantity(limit, &p, &mut syntax).is_some_and(|q| q.is_negative()) {
        errs.push(forbidden(
            &p,
            "SizeLimit field must be a valid resource quantity",
        ));
    }
    errs.extend(syntax);
}

fn require(src: &Value, key: &str, path: &Path, errs: &mut Vec<FieldError>) {
    if str_of(src, key).is_empty() {
        errs.push(required(&path.child(key), ""));
    }
}

fn validate_pull_policy(policy: &str, path: &Path, errs: &mut Vec<FieldError>) {
    match policy {
        "Always" | "IfNotPresent" | "Never" => {}
        "" => errs.push(required(path, "")),
        other => errs.push(not_supported(
            path,
            Bad::s(other),
            &["Always", "IfNotPresent", "Never"],
        )),
    }
}

fn validate_host_path(src: &Value, path: &Path, errs: &mut Vec<FieldError>) {
    let p = str_of(src, "path");
    if p.is_empty() {
        errs.push(required(&path.child("path"), ""));
        return;
    }
    validate_no_backsteps(p, &path.child("path"), errs);
    let types = [
        "",
        "BlockDevice",
        "CharDevice",
        "Directory",
        "DirectoryOrCreate",
        "File",
        "FileOrCreate",
        "Socket",
    ];
    if let Some(t) = opt_str(src, "type").filter(|t| !types.contains(t)) {
        errs.push(not_supported(&path.child("type"), Bad::s(t), &types));
    }
}

fn validate_items_source(src: &Value, name_key: &str, path: &Path, errs: &mut Vec<FieldError>) {
    require(src, name_key, path, errs);
    validate_mode(src, "defaultMode", path, errs);
    for (i, item) in arr(src, "items").iter().enumerate() {
        validate_key_to_path(item, &path.child("items").index(i), errs);
    }
}

fn validate_mode(src: &Value, key: &str, path: &Path, errs: &mut Vec<FieldError>) {
    if let Some(mode) = int_of(src, key).filter(|m| !(0..=0o777).contains(m)) {
        errs.push(invalid(&path.child(key), Bad::Int(mode), FILE_MODE_ERR));
    }
}

fn validate_key_to_path(item: &Value, path: &Path, errs: &mut Vec<FieldError>) {
    require(item, "key", path, errs);
    require(item, "path", path, errs);
    validate_local_non_reserved_path(str_of(item, "path"), &path.child("path"), errs);
    validate_mode(item, "mode", path, errs);
}

fn validate_downward_api_file(item: &Value, path: &Path, errs: &mut Vec<FieldError>) {
    require(item, "path", path, errs);
    validate_local_non_reserved_path(str_of(item, "path"), &path.child("path"), errs);
    let supported = [
        "metadata.annotations",
        "metadata.labels",
        "metadata.name",
        "metadata.namespace",
        "metadata.uid",
    ];
    match (get(item, "fieldRef"), get(item, "resourceFieldRef")) {
        (Some(fr), rr) => {
            validate_object_field_selector(fr, &supported, &path.child("fieldRef"), errs);
            if rr.is_some() {
                let msg = "fieldRef and resourceFieldRef can not be specified simultaneously";
                errs.push(invalid_str(path, "resource", msg));
            }
        }
        (None, Some(rr)) => {
            validate_resource_field_ref(rr, &path.child("resourceFieldRef"), true, errs)
        }
        (None, None) => errs.push(required(
            path,
            "one of fieldRef and resourceFieldRef is required",
        )),
    }
    validate_mode(item, "mode", path, errs);
}

fn validate_projection_sources(src: &Value, path: &Path, errs: &mut Vec<FieldError>) {
    let mut all_paths: Vec<String> = Vec::new();
    for (i, source) in arr(src, "sources").iter().enumerate() {
        let sp = path.child("sources").index(i);
        let mut count = 0;
        for key in ["secret", "configMap"] {
            let Some(s) = get(source, key) else { continue };
            count += 1;
            let pp = sp.child(key);
            require(s, "name", &pp, errs);
            for (j, item) in arr(s, "items").iter().enumerate() {
                validate_key_to_path(item, &pp.child("items").index(j), errs);
                note_path(
                    str_of(item, "path"),
                    str_of(s, "name"),
                    path,
                    &mut all_paths,
                    errs,
                );
            }
        }
        if let Some(d) = get(source, "downwardAPI") {
            count += 1;
            for item in arr(d, "items") {
                validate_downward_api_file(item, &sp.child("downwardAPI"), errs);
                let p = str_of(item, "path");
                note_path(p, p, path, &mut all_paths, errs);
            }
        }
        if let Some(t) = get(source, "serviceAccountToken") {
            count += 1;
            validate_token_projection(t, &sp.child("serviceAccountToken"), path, errs);
        }
        if get(source, "clusterTrustBundle").is_some() {
            count += 1;
        }
        if count > 1 {
            errs.push(forbidden(
                &sp,
                "may not specify more than 1 volume type per source",
            ));
        }
    }
}

fn note_path(
    p: &str,
    reported: &str,
    path: &Path,
    all: &mut Vec<String>,
    errs: &mut Vec<FieldError>,
) {
    if p.is_empty() {
        return;
    }
    if all.iter().any(|x| x == p) {
        errs.push(invalid_str(path, reported, "conflicting duplicate paths"));
    } else {
        all.push(p.to_string());
    }
}

fn validate_token_projection(t: &Value, tp: &Path, path: &Path, errs: &mut Vec<FieldError>) {
    let exp = int_of(t, "expirationSeconds").unwrap_or(0);
    if exp < 600 {
        let msg = "may not specify a duration less than 10 minutes";
        errs.push(invalid(&tp.child("expirationSeconds"), Bad::Int(exp), msg));
    }
    if exp > 1 << 32 {
        let msg = "may not specify a duration larger than 2^32 seconds";
        errs.push(invalid(&tp.child("expirationSeconds"), Bad::Int(exp), msg));
    }
    let p = str_of(t, "path");
    if p.is_empty() {
        errs.push(required(&path.child("path"), ""));
    } else {
        validate_local_non_reserved_path(p, &path.child("path"), errs);
    }
}

/// Upstream `ValidateCSIDriverName`.
pub(crate) fn validate_csi_driver(driver: &str, path: &Path, errs: &mut Vec<FieldError>) {
    if driver.is_empty() {
        errs.push(required(path, ""));
    }
    if driver.len() > 63 {
        errs.push(too_long(path, 63));
    }
    invalid_each(
        errs,
        path,
        driver,
        is_dns1123_subdomain(&driver.to_lowercase()),
    );
}

fn validate_no_backsteps(target: &str, path: &Path, errs: &mut Vec<FieldError>) {
    if target.split('/').any(|part| part == "..") {
        errs.push(invalid_str(path, target, "must not contain '..'"));
    }
}

pub(super) fn validate_local_descending_path(
    target: &str,
    path: &Path,
    errs: &mut Vec<FieldError>,
) {
    if target.starts_with('/') {
        errs.push(invalid_str(path, target, "must be a relative path"));
    }
    validate_no_backsteps(target, path, errs);
}

fn validate_local_non_reserved_path(target: &str, path: &Path, errs: &mut Vec<FieldError>) {
    validate_local_descending_path(target, path, errs);
    if target.starts_with("..") && !target.starts_with("../") {
        errs.push(invalid_str(path, target, "must not start with '..'"));
    }
}
