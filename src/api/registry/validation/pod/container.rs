//! Containers: names, images, ports, environment, probes, lifecycle hooks and security
//! context (core `validateContainerCommon` and friends).

use serde_json::Value;

use super::super::FieldError;
use super::super::field::{
    Bad, Path, duplicate, forbidden, invalid, invalid_each, invalid_str, not_supported, required,
};
use super::super::json::{arr, get, int_of, opt_str, str_of};
use super::env::{validate_env, validate_env_from};
use super::mounts::{validate_volume_devices, validate_volume_mounts};
use super::probes::validate_lifecycle_and_probes;
use super::volume::Volumes;
use super::{resources, security};
use crate::api::registry::names::{is_dns1123_label, is_valid_port_name, is_valid_port_num};
/// The pod-level context a container is validated in.
pub(crate) struct PodContext<'a> {
    /// The pod's volumes by name.
    pub(crate) volumes: &'a Volumes<'a>,
    /// The pod's `terminationGracePeriodSeconds`.
    pub(crate) grace: Option<i64>,
    /// The pod's `restartPolicy`.
    pub(crate) restart_policy: &'a str,
}

/// Upstream `validateContainers`: the regular containers of a pod spec.
pub(crate) fn validate_containers(
    spec: &Value,
    path: &Path,
    ctx: &PodContext,
    errs: &mut Vec<FieldError>,
) {
    let containers = arr(spec, "containers");
    if containers.is_empty() {
        errs.push(required(path, ""));
        return;
    }
    let mut names: std::collections::HashSet<&str> = std::collections::HashSet::new();
    for (i, c) in containers.iter().enumerate() {
        let p = path.index(i);
        validate_container_common(c, &p, ctx, errs);
        let name = str_of(c, "name");
        if names.contains(&name) {
            errs.push(duplicate(&p.child("name"), Bad::s(name)));
        } else {
            names.insert(name);
        }
        validate_lifecycle_and_probes(c, &p, ctx.grace, errs);
        if get(c, "restartPolicy").is_some() {
            errs.push(forbidden(
                &p.child("restartPolicy"),
                "may not be set for non-init containers",
            ));
        }
    }
    check_host_ports(containers, path, errs);
}

/// Upstream `validateInitContainers`.
pub(crate) fn validate_init_containers(
    spec: &Value,
    path: &Path,
    ctx: &PodContext,
    errs: &mut Vec<FieldError>,
) {
    let mut names: std::collections::HashSet<&str> = arr(spec, "containers")
        .iter()
        .map(|c| str_of(c, "name"))
        .collect();
    for (i, c) in arr(spec, "initContainers").iter().enumerate() {
        let p = path.index(i);
        validate_container_common(c, &p, ctx, errs);
        let restart = opt_str(c, "restartPolicy");
        if let Some(policy) = restart.filter(|r| *r != "Always") {
            errs.push(not_supported(
                &p.child("restartPolicy"),
                Bad::s(policy),
                &["Always"],
            ));
        }
        let name = str_of(c, "name");
        if names.contains(&name) {
            errs.push(duplicate(&p.child("name"), Bad::s(name)));
        } else if !name.is_empty() {
            names.insert(name);
        }
        check_host_ports(std::slice::from_ref(c), path, errs);
        if restart == Some("Always") {
            validate_lifecycle_and_probes(c, &p, ctx.grace, errs);
        } else {
            let msg = "may not be set for init containers without restartPolicy=Always";
            for key in [
                "lifecycle",
                "livenessProbe",
                "readinessProbe",
                "startupProbe",
            ] {
                if get(c, key).is_some() {
                    errs.push(forbidden(&p.child(key), msg));
                }
            }
        }
    }
}

/// Upstream `validateEphemeralContainers` (names and the shared checks).
pub(crate) fn validate_ephemeral_containers(
    spec: &Value,
    path: &Path,
    ctx: &PodContext,
    errs: &mut Vec<FieldError>,
) {
    let mut names: std::collections::HashSet<&str> = arr(spec, "containers")
        .iter()
        .map(|c| str_of(c, "name"))
        .collect();
    names.extend(
        arr(spec, "initContainers")
            .iter()
            .map(|c| str_of(c, "name")),
    );
    let others = names.clone();
    for (i, c) in arr(spec, "ephemeralContainers").iter().enumerate() {
        let p = path.index(i);
        validate_container_common(c, &p, ctx, errs);
        let name = str_of(c, "name");
        if names.contains(&name) {
            errs.push(duplicate(&p.child("name"), Bad::s(name)));
        } else {
            names.insert(name);
        }
        let target = str_of(c, "targetContainerName");
        if !target.is_empty() && !others.contains(&target) {
            errs.push(super::super::field::not_found(
                &p.child("targetContainerName"),
                Bad::s(target),
            ));
        }
        let msg = "cannot be set for an Ephemeral Container";
        for key in [
            "ports",
            "resources",
            "lifecycle",
            "livenessProbe",
            "readinessProbe",
            "startupProbe",
        ] {
            if get(c, key).is_some_and(|v| !super::super::equality::is_zero(v)) {
                errs.push(forbidden(&p.child(key), msg));
            }
        }
    }
}

fn validate_container_common(c: &Value, path: &Path, ctx: &PodContext, errs: &mut Vec<FieldError>) {
    let name = str_of(c, "name");
    if name.is_empty() {
        errs.push(required(&path.child("name"), ""));
    } else {
        invalid_each(errs, &path.child("name"), name, is_dns1123_label(name));
    }
    if str_of(c, "image").is_empty() {
        errs.push(required(&path.child("image"), ""));
    }
    let tmp = path.child("terminationMessagePolicy");
    match str_of(c, "terminationMessagePolicy") {
        "File" | "FallbackToLogsOnError" => {}
        "" => errs.push(required(&tmp, "")),
        other => errs.push(not_supported(
            &tmp,
            Bad::s(other),
            &["File", "FallbackToLogsOnError"],
        )),
    }
    validate_ports(c, &path.child("ports"), errs);
    validate_env(c, &path.child("env"), errs);
    validate_env_from(c, &path.child("envFrom"), errs);
    validate_volume_mounts(c, ctx.volumes, &path.child("volumeMounts"), errs);
    validate_volume_devices(c, ctx.volumes, &path.child("volumeDevices"), errs);
    let pull = path.child("imagePullPolicy");
    match str_of(c, "imagePullPolicy") {
        "Always" | "IfNotPresent" | "Never" => {}
        "" => errs.push(required(&pull, "")),
        other => errs.push(not_supported(
            &pull,
            Bad::s(other),
            &["Always", "IfNotPresent", "Never"],
        )),
    }
    resources::validate_container_resources(c, &path.child("resources"), errs);
    resources::validate_resize_policy(c, &path.child("resizePolicy"), ctx.restart_policy, errs);
    security::validate_container_security_context(c, &path.child("securityContext"), errs);
}

fn validate_ports(c: &Value, path: &Path, errs: &mut Vec<FieldError>) {
    let mut names: std::collections::HashSet<&str> = std::collections::HashSet::new();
    for (i, port) in arr(c, "ports").iter().enumerate() {
        let p = path.index(i);
        let name = str_of(port, "name");
        if !name.is_empty() {
            let msgs = is_valid_port_name(name);
            if !msgs.is_empty() {
                invalid_each(errs, &p.child("name"), name, msgs);
            } else if names.contains(&name) {
                errs.push(duplicate(&p.child("name"), Bad::s(name)));
            } else {
                names.insert(name);
            }
        }
        match int_of(port, "containerPort").unwrap_or(0) {
            0 => errs.push(required(&p.child("containerPort"), "")),
            n => errs.extend(port_num_errors(&p.child("containerPort"), n)),
        }
        if let Some(n) = int_of(port, "hostPort").filter(|n| *n != 0) {
            errs.extend(port_num_errors(&p.child("hostPort"), n));
        }
        validate_protocol(port, &p.child("protocol"), errs);
    }
}

/// A port protocol: required, TCP, UDP or SCTP.
pub(crate) fn validate_protocol(obj: &Value, path: &Path, errs: &mut Vec<FieldError>) {
    match str_of(obj, "protocol") {
        "TCP" | "UDP" | "SCTP" => {}
        "" => errs.push(required(path, "")),
        other => errs.push(not_supported(path, Bad::s(other), &["SCTP", "TCP", "UDP"])),
    }
}

/// `IsValidPortNum` findings as `Invalid` errors carrying the number.
pub(crate) fn port_num_errors(path: &Path, port: i64) -> Vec<FieldError> {
    is_valid_port_num(port)
        .iter()
        .map(|m| invalid(path, Bad::Int(port), m))
        .collect()
}

/// Upstream `checkHostPortConflicts`: protocol/hostIP/hostPort must be unique.
fn check_host_ports(containers: &[Value], path: &Path, errs: &mut Vec<FieldError>) {
    let mut seen: std::collections::HashSet<String> = std::collections::HashSet::new();
    for (ci, c) in containers.iter().enumerate() {
        for (pi, port) in arr(c, "ports").iter().enumerate() {
            let host_port = int_of(port, "hostPort").unwrap_or(0);
            if host_port == 0 {
                continue;
            }
            let key = format!(
                "{}/{}/{host_port}",
                str_of(port, "protocol"),
                str_of(port, "hostIP")
            );
            if seen.contains(&key) {
                let p = path.index(ci).child("ports").index(pi).child("hostPort");
                errs.push(duplicate(&p, Bad::Str(key)));
            } else {
                seen.insert(key);
            }
        }
    }
}

/// Containers whose image has surrounding whitespace (checked for Pods only).
pub(crate) fn validate_image_whitespace(spec: &Value, path: &Path, errs: &mut Vec<FieldError>) {
    for list in ["containers", "initContainers"] {
        for (i, c) in arr(spec, list).iter().enumerate() {
            let image = str_of(c, "image");
            if image.trim() != image {
                let msg = "must not have leading or trailing whitespace";
                errs.push(invalid_str(
                    &path.child(list).index(i).child("image"),
                    image,
                    msg,
                ));
            }
        }
    }
}
