//! Pods, pod templates and the pod spec shared by every workload kind (core
//! `ValidatePodSpec`, `ValidatePodTemplateSpec`, `ValidatePodCreate`, `ValidatePodUpdate`).

mod container;
mod env;
mod mounts;
mod probes;
mod resources;
mod scheduling;
mod security;
mod update;
mod volume;

use serde_json::Value;

use super::FieldError;
use super::field::{Bad, Path, forbidden, invalid, invalid_each, not_supported, required};
use super::json::{arr, bool_of, get, int_of, opt_str, str_of, sub};
use super::meta::{validate_annotations, validate_labels};
use crate::api::registry::names::{inclusive_range_error, is_dns1123_label, name_is_dns_subdomain};
use container::PodContext;

pub(crate) use container::{port_num_errors, validate_protocol};
pub(crate) use probes::validate_port_num_or_name;
pub(crate) use resources::{parse_quantity, validate_quantity_value};
pub(crate) use scheduling::validate_taint_effect;
pub(crate) use update::{update_template, validate_pod_update};

/// Upstream `ValidatePodCreate` minus metadata.
pub(crate) fn validate_pod(obj: &Value, errs: &mut Vec<FieldError>) {
    let spec = sub(obj, "spec");
    let path = Path::new("spec");
    validate_pod_spec(spec, &path, true, errs);
    validate_pod_only(spec, &path, errs);
    if !arr(spec, "ephemeralContainers").is_empty() {
        errs.push(forbidden(
            &path.child("ephemeralContainers"),
            "cannot be set on create",
        ));
    }
    if !str_of(spec, "nodeName").is_empty() && !arr(spec, "schedulingGates").is_empty() {
        let msg = "cannot be set until all schedulingGates have been cleared";
        errs.push(forbidden(&path.child("nodeName"), msg));
    }
}

/// The checks upstream applies to Pods but not to pod templates.
fn validate_pod_only(spec: &Value, path: &Path, errs: &mut Vec<FieldError>) {
    if str_of(spec, "serviceAccountName").is_empty() {
        for (vi, vol) in arr(spec, "volumes").iter().enumerate() {
            let Some(projected) = get(vol, "projected") else {
                continue;
            };
            for (si, source) in arr(projected, "sources").iter().enumerate() {
                if get(source, "serviceAccountToken").is_some() {
                    let p = path.child("volumes").index(vi).child("projected");
                    let p = p.child("sources").index(si).child("serviceAccountToken");
                    errs.push(forbidden(
                        &p,
                        "must not be specified when serviceAccountName is not set",
                    ));
                }
            }
        }
    }
    container::validate_image_whitespace(spec, path, errs);
}

/// The core `PodTemplate` kind.
pub(crate) fn validate_pod_template(obj: &Value, errs: &mut Vec<FieldError>) {
    validate_template(sub(obj, "template"), &Path::new("template"), errs);
}

/// Upstream `ValidatePodTemplateSpec` for the template at `path`.
pub(crate) fn validate_template(tmpl: &Value, path: &Path, errs: &mut Vec<FieldError>) {
    let meta = sub(tmpl, "metadata");
    validate_labels(meta, "labels", &path.child("labels"), errs);
    validate_annotations(meta, &path.child("annotations"), errs);
    let spec = sub(tmpl, "spec");
    validate_pod_spec(spec, &path.child("spec"), false, errs);
    if !arr(spec, "ephemeralContainers").is_empty() {
        let p = path.child("spec").child("ephemeralContainers");
        errs.push(forbidden(
            &p,
            "ephemeral containers not allowed in pod template",
        ));
    }
}

/// Upstream `ValidatePodSpec`; `is_pod` is upstream's `ResourceIsPod` option.
pub(crate) fn validate_pod_spec(
    spec: &Value,
    path: &Path,
    is_pod: bool,
    errs: &mut Vec<FieldError>,
) {
    let grace = int_of(spec, "terminationGracePeriodSeconds");
    if get(spec, "terminationGracePeriodSeconds").is_none() {
        errs.push(required(&path.child("terminationGracePeriodSeconds"), ""));
    }
    let volumes = volume::validate_volumes(spec, is_pod, &path.child("volumes"), errs);
    let ctx = PodContext {
        volumes: &volumes,
        grace,
        restart_policy: str_of(spec, "restartPolicy"),
    };
    container::validate_containers(spec, &path.child("containers"), &ctx, errs);
    container::validate_init_containers(spec, &path.child("initContainers"), &ctx, errs);
    container::validate_ephemeral_containers(spec, &path.child("ephemeralContainers"), &ctx, errs);
    validate_host_network_ports(spec, path, is_pod, errs);
    validate_policies(spec, path, errs);
    validate_labels(spec, "nodeSelector", &path.child("nodeSelector"), errs);
    security::validate_pod_security_context(spec, &path.child("securityContext"), errs);
    for (i, secret) in arr(spec, "imagePullSecrets").iter().enumerate() {
        let extra = secret
            .as_object()
            .is_some_and(|m| m.keys().any(|k| k != "name"));
        if extra {
            errs.push(invalid(
                &path.child("imagePullSecrets").index(i),
                Bad::Json(secret.clone()),
                "only name may be set",
            ));
        }
    }
    scheduling::validate_affinity(spec, &path.child("affinity"), errs);
    scheduling::validate_dns_config(spec, &path.child("dnsConfig"), errs);
    scheduling::validate_gates(spec, path, errs);
    let tsc = path.child("topologySpreadConstraints");
    scheduling::validate_topology_spread(spec, &tsc, errs);
    validate_names(spec, path, errs);
    let tolerations = arr(spec, "tolerations");
    scheduling::validate_tolerations(tolerations, &path.child("tolerations"), errs);
    scheduling::validate_host_aliases(spec, &path.child("hostAliases"), errs);
    validate_os(spec, path, errs);
}

fn validate_policies(spec: &Value, path: &Path, errs: &mut Vec<FieldError>) {
    let rp = path.child("restartPolicy");
    match str_of(spec, "restartPolicy") {
        "Always" | "OnFailure" | "Never" => {}
        "" => errs.push(required(&rp, "")),
        other => errs.push(not_supported(
            &rp,
            Bad::s(other),
            &["Always", "OnFailure", "Never"],
        )),
    }
    let dp = path.child("dnsPolicy");
    match str_of(spec, "dnsPolicy") {
        "ClusterFirstWithHostNet" | "ClusterFirst" | "Default" | "None" => {}
        "" => errs.push(required(&dp, "")),
        other => {
            let valid = ["ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"];
            errs.push(not_supported(&dp, Bad::s(other), &valid));
        }
    }
    if let Some(policy) = opt_str(spec, "preemptionPolicy") {
        let pp = path.child("preemptionPolicy");
        match policy {
            "PreemptLowerPriority" | "Never" => {}
            "" => errs.push(required(&pp, "")),
            other => errs.push(not_supported(
                &pp,
                Bad::s(other),
                &["PreemptLowerPriority", "Never"],
            )),
        }
    }
    if let Some(ads) =
        int_of(spec, "activeDeadlineSeconds").filter(|v| !(1..=2_147_483_647).contains(v))
    {
        let msg = inclusive_range_error(1, 2_147_483_647);
        errs.push(invalid(
            &path.child("activeDeadlineSeconds"),
            Bad::Int(ads),
            &msg,
        ));
    }
}

fn validate_names(spec: &Value, path: &Path, errs: &mut Vec<FieldError>) {
    for key in ["serviceAccountName", "nodeName", "priorityClassName"] {
        let value = str_of(spec, key);
        if !value.is_empty() {
            invalid_each(
                errs,
                &path.child(key),
                value,
                name_is_dns_subdomain(value, false),
            );
        }
    }
    for key in ["hostname", "subdomain"] {
        let value = str_of(spec, key);
        if !value.is_empty() {
            invalid_each(errs, &path.child(key), value, is_dns1123_label(value));
        }
    }
    if let Some(rc) = opt_str(spec, "runtimeClassName") {
        invalid_each(
            errs,
            &path.child("runtimeClassName"),
            rc,
            name_is_dns_subdomain(rc, false),
        );
    }
}

fn validate_os(spec: &Value, path: &Path, errs: &mut Vec<FieldError>) {
    let Some(os) = get(spec, "os") else { return };
    let name = str_of(os, "name");
    if name.is_empty() {
        errs.push(required(&path.child("os").child("name"), "cannot be empty"));
    } else if name != "linux" && name != "windows" {
        errs.push(not_supported(
            &path.child("os"),
            Bad::s(name),
            &["linux", "windows"],
        ));
    }
}

/// Upstream `validatePodHostNetworkDeps`: host-network pods use their container ports.
fn validate_host_network_ports(
    spec: &Value,
    path: &Path,
    is_pod: bool,
    errs: &mut Vec<FieldError>,
) {
    if bool_of(spec, "hostNetwork") != Some(true) {
        return;
    }
    for (i, c) in arr(spec, "containers").iter().enumerate() {
        for (j, port) in arr(c, "ports").iter().enumerate() {
            let hp = int_of(port, "hostPort").unwrap_or(0);
            let cp = int_of(port, "containerPort").unwrap_or(0);
            if (is_pod || hp != 0) && hp != cp {
                let p = path
                    .child("containers")
                    .index(i)
                    .child("ports")
                    .index(j)
                    .child("hostPort");
                let msg = "must match `containerPort` when `hostNetwork` is true";
                errs.push(invalid(&p, Bad::Int(hp), msg));
            }
        }
    }
}
