//! Containers' volume mounts and block devices, checked against the pod's volumes (core
//! `ValidateVolumeMounts` and `ValidateVolumeDevices`).

use serde_json::Value;

use super::super::FieldError;
use super::super::field::{Bad, Path, forbidden, invalid_str, not_found, not_supported, required};
use super::super::json::{arr, bool_of, get, opt_str, str_of, sub};
use super::volume::{Volumes, validate_local_descending_path};

fn volume<'a>(volumes: &'a Volumes, name: &str) -> Option<&'a Value> {
    volumes.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
}

/// Upstream `ValidateVolumeMounts` for one container.
pub(crate) fn validate_volume_mounts(
    c: &Value,
    volumes: &Volumes,
    path: &Path,
    errs: &mut Vec<FieldError>,
) {
    let devices = arr(c, "volumeDevices");
    let mut mount_points: Vec<&str> = Vec::new();
    let privileged = bool_of(sub(c, "securityContext"), "privileged") == Some(true);
    for (i, m) in arr(c, "volumeMounts").iter().enumerate() {
        let p = path.index(i);
        let (name, mount_path) = (str_of(m, "name"), str_of(m, "mountPath"));
        if name.is_empty() {
            errs.push(required(&p.child("name"), ""));
        }
        let vol = volume(volumes, name);
        if vol.is_none() {
            errs.push(not_found(&p.child("name"), Bad::s(name)));
        }
        if mount_path.is_empty() {
            errs.push(required(&p.child("mountPath"), ""));
        }
        if mount_points.contains(&mount_path) {
            errs.push(invalid_str(
                &p.child("mountPath"),
                mount_path,
                "must be unique",
            ));
        }
        mount_points.push(mount_path);
        if devices.iter().any(|d| str_of(d, "name") == name) {
            errs.push(invalid_str(
                &p.child("name"),
                name,
                "must not already exist in volumeDevices",
            ));
        }
        if devices
            .iter()
            .any(|d| str_of(d, "devicePath") == mount_path)
        {
            let msg = "must not already exist as a path in volumeDevices";
            errs.push(invalid_str(&p.child("mountPath"), mount_path, msg));
        }
        validate_sub_paths(m, vol, &p, path, errs);
        validate_propagation(m, privileged, path, errs);
    }
}

fn validate_sub_paths(
    m: &Value,
    vol: Option<&Value>,
    p: &Path,
    path: &Path,
    errs: &mut Vec<FieldError>,
) {
    let (sub_path, expr) = (str_of(m, "subPath"), str_of(m, "subPathExpr"));
    if vol.is_some_and(|v| get(v, "image").is_some()) {
        for (key, value) in [("subPath", sub_path), ("subPathExpr", expr)] {
            if !value.is_empty() {
                errs.push(invalid_str(
                    &p.child(key),
                    value,
                    "not allowed in image volume sources",
                ));
            }
        }
    }
    if !sub_path.is_empty() {
        validate_local_descending_path(sub_path, &path.child("subPath"), errs);
    }
    if !expr.is_empty() {
        if !sub_path.is_empty() {
            let msg = "subPathExpr and subPath are mutually exclusive";
            errs.push(invalid_str(&p.child("subPathExpr"), expr, msg));
        }
        validate_local_descending_path(expr, &path.child("subPathExpr"), errs);
    }
}

fn validate_propagation(m: &Value, privileged: bool, path: &Path, errs: &mut Vec<FieldError>) {
    let propagation = opt_str(m, "mountPropagation");
    if let Some(prop) = propagation {
        let supported = ["Bidirectional", "HostToContainer", "None"];
        let pp = path.child("mountPropagation");
        if !supported.contains(&prop) {
            errs.push(not_supported(&pp, Bad::s(prop), &supported));
        }
        if prop == "Bidirectional" && !privileged {
            let msg = "Bidirectional mount propagation is available only to privileged containers";
            errs.push(forbidden(&pp, msg));
        }
    }
    let Some(rro) = opt_str(m, "recursiveReadOnly") else {
        return;
    };
    let rp = path.child("recursiveReadOnly");
    match rro {
        "Disabled" => {}
        "Enabled" | "IfPossible" => {
            if bool_of(m, "readOnly") != Some(true) {
                errs.push(forbidden(
                    &rp,
                    "may only be specified when readOnly is true",
                ));
            }
            if propagation.is_some_and(|p| p != "None") {
                let msg = "may only be specified when mountPropagation is None or not specified";
                errs.push(forbidden(&rp, msg));
            }
        }
        other => errs.push(not_supported(
            &rp,
            Bad::s(other),
            &["Disabled", "Enabled", "IfPossible"],
        )),
    }
}

/// Upstream `ValidateVolumeDevices` for one container.
pub(crate) fn validate_volume_devices(
    c: &Value,
    volumes: &Volumes,
    path: &Path,
    errs: &mut Vec<FieldError>,
) {
    let mounts = arr(c, "volumeMounts");
    let (mut names, mut paths) = (
        std::collections::HashSet::<&str>::new(),
        std::collections::HashSet::<&str>::new(),
    );
    for (i, d) in arr(c, "volumeDevices").iter().enumerate() {
        let p = path.index(i);
        let (name, dev_path) = (str_of(d, "name"), str_of(d, "devicePath"));
        let (np, dp) = (p.child("name"), p.child("devicePath"));
        if name.is_empty() {
            errs.push(required(&np, ""));
        }
        if names.contains(&name) {
            errs.push(invalid_str(&np, name, "must be unique"));
        }
        validate_device_source(volume(volumes, name), name, &np, errs);
        if dev_path.is_empty() {
            errs.push(required(&dp, ""));
        }
        if paths.contains(&dev_path) {
            errs.push(invalid_str(&dp, dev_path, "must be unique"));
        }
        if !dev_path.is_empty() && dev_path.split('/').any(|s| s == "..") {
            errs.push(invalid_str(
                &dp,
                dev_path,
                "can not contain backsteps ('..')",
            ));
        } else {
            paths.insert(dev_path);
        }
        if mounts.iter().any(|m| str_of(m, "name") == name) {
            errs.push(invalid_str(
                &np,
                name,
                "must not already exist in volumeMounts",
            ));
        }
        if mounts.iter().any(|m| str_of(m, "mountPath") == dev_path) {
            let msg = "must not already exist as a path in volumeMounts";
            errs.push(invalid_str(&dp, dev_path, msg));
        }
        if !name.is_empty() {
            names.insert(name);
        }
    }
}

/// Block devices must come from a claim (referenced or ephemeral).
fn validate_device_source(vol: Option<&Value>, name: &str, np: &Path, errs: &mut Vec<FieldError>) {
    match vol {
        Some(v) if get(v, "persistentVolumeClaim").is_none() && get(v, "ephemeral").is_none() => {
            let msg = "can only use volume source type of PersistentVolumeClaim or Ephemeral for \
                       block mode";
            errs.push(invalid_str(np, name, msg));
        }
        Some(_) => {}
        None => errs.push(not_found(np, Bad::s(name))),
    }
}
