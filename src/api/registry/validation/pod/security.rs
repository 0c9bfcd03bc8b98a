//! Pod- and container-level security contexts: user and group IDs, seccomp and AppArmor
//! profiles, sysctls, privilege escalation and proc mounts.

use serde_json::Value;

use super::super::FieldError;
use super::super::field::{
    Bad, Path, duplicate, invalid, invalid_str, not_supported, required, too_long,
};
use super::super::json::{arr, bool_of, get, int_of, opt_str, str_of};
use crate::api::registry::names::inclusive_range_error;

const MAX_ID: i64 = 2_147_483_647;

fn validate_id(sc: &Value, key: &str, path: &Path, errs: &mut Vec<FieldError>) {
    if let Some(id) = int_of(sc, key).filter(|id| !(0..=MAX_ID).contains(id)) {
        errs.push(invalid(
            &path.child(key),
            Bad::Int(id),
            &inclusive_range_error(0, MAX_ID),
        ));
    }
}

/// Upstream `validatePodSpecSecurityContext` (Linux-relevant parts).
pub(crate) fn validate_pod_security_context(spec: &Value, path: &Path, errs: &mut Vec<FieldError>) {
    let Some(sc) = get(spec, "securityContext") else {
        return;
    };
    for key in ["fsGroup", "runAsUser", "runAsGroup"] {
        validate_id(sc, key, path, errs);
    }
    for (i, g) in arr(sc, "supplementalGroups").iter().enumerate() {
        if let Some(gid) = super::super::json::as_int(g).filter(|id| !(0..=MAX_ID).contains(id)) {
            let p = path.child("supplementalGroups").index(i);
            errs.push(invalid(
                &p,
                Bad::Int(gid),
                &inclusive_range_error(0, MAX_ID),
            ));
        }
    }
    if bool_of(sc, "shareProcessNamespace") == Some(true) && bool_of(spec, "hostPID") == Some(true)
    {
        let msg = "ShareProcessNamespace and HostPID cannot both be enabled";
        errs.push(invalid(
            &path.child("shareProcessNamespace"),
            Bad::Json(Value::Bool(true)),
            msg,
        ));
    }
    validate_sysctls(sc, &path.child("sysctls"), errs);
    if let Some(policy) = opt_str(sc, "fsGroupChangePolicy") {
        let valid = ["Always", "OnRootMismatch"];
        if !valid.contains(&policy) {
            errs.push(not_supported(
                &path.child("fsGroupChangePolicy"),
                Bad::s(policy),
                &valid,
            ));
        }
    }
    validate_seccomp(sc, &path.child("seccompProfile"), errs);
    validate_apparmor(sc, &path.child("appArmorProfile"), errs);
    if let Some(policy) = opt_str(sc, "supplementalGroupsPolicy") {
        let valid = ["Merge", "Strict"];
        if !valid.contains(&policy) {
            errs.push(not_supported(
                &path.child("supplementalGroupsPolicy"),
                Bad::s(policy),
                &valid,
            ));
        }
    }
}

fn is_valid_sysctl_name(name: &str) -> bool {
    let segment_ok = |s: &str| {
        let b = s.as_bytes();
        let edge = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit();
        !b.is_empty()
            && b.first().is_some_and(edge)
            && b.last().is_some_and(edge)
            && b.iter().all(|c| edge(c) || *c == b'-' || *c == b'_')
    };
    name.len() <= 253 && name.split(['.', '/']).all(segment_ok)
}

fn validate_sysctls(sc: &Value, path: &Path, errs: &mut Vec<FieldError>) {
    let mut names: std::collections::HashSet<&str> = std::collections::HashSet::new();
    for (i, s) in arr(sc, "sysctls").iter().enumerate() {
        let p = path.index(i).child("name");
        let name = str_of(s, "name");
        if name.is_empty() {
            errs.push(required(&p, ""));
        } else if !is_valid_sysctl_name(name) {
            let msg = "must have at most 253 characters and match regex \
                       ^([a-z0-9]([-_a-z0-9]*[a-z0-9])?[\\./])*[a-z0-9]([-_a-z0-9]*[a-z0-9])?$";
            errs.push(invalid_str(&p, name, msg));
        } else if names.contains(&name) {
            errs.push(duplicate(&p, Bad::s(name)));
        }
        names.insert(name);
    }
}

fn validate_seccomp(sc: &Value, path: &Path, errs: &mut Vec<FieldError>) {
    let Some(profile) = get(sc, "seccompProfile") else {
        return;
    };
    let valid = ["Localhost", "RuntimeDefault", "Unconfined"];
    let kind = str_of(profile, "type");
    if kind.is_empty() {
        errs.push(required(
            &path.child("type"),
            "type is required when seccompProfile is set",
        ));
    } else if !valid.contains(&kind) {
        errs.push(not_supported(&path.child("type"), Bad::s(kind), &valid));
    }
    let local = opt_str(profile, "localhostProfile");
    if kind == "Localhost" {
        match local {
            None => {
                let msg = "must be set when seccomp type is Localhost";
                errs.push(required(&path.child("localhostProfile"), msg));
            }
            Some(l) if l.starts_with('/') || l.split('/').any(|s| s == "..") => {
                let msg = if l.starts_with('/') {
                    "must be a relative path"
                } else {
                    "must not contain '..'"
                };
                errs.push(invalid_str(&path.child("localhostProfile"), l, msg));
            }
            Some(_) => {}
        }
    } else if local.is_some() {
        let msg = "can only be set when seccomp type is Localhost";
        errs.push(invalid(
            &path.child("localhostProfile"),
            Bad::Json(profile.clone()),
            msg,
        ));
    }
}

fn validate_apparmor(sc: &Value, path: &Path, errs: &mut Vec<FieldError>) {
    let Some(profile) = get(sc, "appArmorProfile") else {
        return;
    };
    let local = opt_str(profile, "localhostProfile");
    match str_of(profile, "type") {
        "Localhost" => match local {
            Some(l) if l.trim() != l => {
                let msg = "must not be padded with whitespace";
                errs.push(invalid_str(&path.child("localhostProfile"), l, msg));
            }
            Some(l) if l.len() > 4095 => errs.push(too_long(&path.child("localhostProfile"), 4095)),
            Some(l) if !l.is_empty() => {}
            _ => {
                let msg = "must be set when AppArmor type is Localhost";
                errs.push(required(&path.child("localhostProfile"), msg));
            }
        },
        "RuntimeDefault" | "Unconfined" => {
            if let Some(l) = local {
                let msg = "can only be set when AppArmor type is Localhost";
                errs.push(invalid_str(&path.child("localhostProfile"), l, msg));
            }
        }
        "" => {
            let msg = "type is required when appArmorProfile is set";
            errs.push(required(&path.child("type"), msg));
        }
        other => {
            let valid = ["Localhost", "RuntimeDefault", "Unconfined"];
            errs.push(not_supported(&path.child("type"), Bad::s(other), &valid));
        }
    }
}

/// Upstream `ValidateSecurityContext` for one container.
pub(crate) fn validate_container_security_context(
    c: &Value,
    path: &Path,
    errs: &mut Vec<FieldError>,
) {
    let Some(sc) = get(c, "securityContext") else {
        return;
    };
    validate_id(sc, "runAsUser", path, errs);
    validate_id(sc, "runAsGroup", path, errs);
    if let Some(pm) = opt_str(sc, "procMount") {
        let valid = ["Default", "Unmasked"];
        if !valid.contains(&pm) {
            errs.push(not_supported(&path.child("procMount"), Bad::s(pm), &valid));
        }
    }
    validate_seccomp(sc, &path.child("seccompProfile"), errs);
    if bool_of(sc, "allowPrivilegeEscalation") == Some(false) {
        if bool_of(sc, "privileged") == Some(true) {
            let msg = "cannot set `allowPrivilegeEscalation` to false and `privileged` to true";
            errs.push(invalid(path, Bad::Json(sc.clone()), msg));
        }
        let caps = super::super::json::sub(sc, "capabilities");
        if super::super::json::strings(caps, "add").contains(&"CAP_SYS_ADMIN") {
            let msg = "cannot set `allowPrivilegeEscalation` to false and `capabilities.Add` CAP_SYS_ADMIN";
            errs.push(invalid(path, Bad::Json(sc.clone()), msg));
        }
    }
    validate_apparmor(sc, &path.child("appArmorProfile"), errs);
}
