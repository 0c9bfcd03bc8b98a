//! Container environment: `env` entries with their value sources and `envFrom` imports
//! (core `ValidateEnv`, `ValidateEnvFrom`, downward-API field selectors).

use serde_json::Value;

use super::super::FieldError;
use super::super::field::{Bad, Path, invalid_each, invalid_str, not_supported, required};
use super::super::json::{arr, get, str_of};
use super::resources;
use crate::api::registry::names::{is_config_map_key, is_env_var_name, name_is_dns_subdomain};

pub(super) fn validate_env(c: &Value, path: &Path, errs: &mut Vec<FieldError>) {
    for (i, ev) in arr(c, "env").iter().enumerate() {
        let p = path.index(i);
        let name = str_of(ev, "name");
        if name.is_empty() {
            errs.push(required(&p.child("name"), ""));
        } else {
            invalid_each(errs, &p.child("name"), name, is_env_var_name(name));
        }
        validate_env_value_from(ev, &p.child("valueFrom"), errs);
    }
}

const ENV_FIELD_PATHS: [&str; 9] = [
    "metadata.name",
    "metadata.namespace",
    "metadata.uid",
    "spec.nodeName",
    "spec.serviceAccountName",
    "status.hostIP",
    "status.hostIPs",
    "status.podIP",
    "status.podIPs",
];

fn validate_env_value_from(ev: &Value, path: &Path, errs: &mut Vec<FieldError>) {
    let Some(from) = get(ev, "valueFrom") else {
        return;
    };
    let mut sources = 0;
    if let Some(fr) = get(from, "fieldRef") {
        sources += 1;
        validate_object_field_selector(fr, &ENV_FIELD_PATHS, &path.child("fieldRef"), errs);
    }
    if let Some(rr) = get(from, "resourceFieldRef") {
        sources += 1;
        resources::validate_resource_field_ref(rr, &path.child("resourceFieldRef"), false, errs);
    }
    for key in ["configMapKeyRef", "secretKeyRef"] {
        if let Some(sel) = get(from, key) {
            sources += 1;
            validate_key_selector(sel, &path.child(key), errs);
        }
    }
    if sources == 0 {
        let msg = "must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`";
        errs.push(invalid_str(path, "", msg));
    } else if !str_of(ev, "value").is_empty() {
        errs.push(invalid_str(
            path,
            "",
            "may not be specified when `value` is not empty",
        ));
    } else if sources > 1 {
        errs.push(invalid_str(
            path,
            "",
            "may not have more than one field specified at a time",
        ));
    }
}

/// Upstream `validateObjectFieldSelector` for the `v1` downward API.
pub(crate) fn validate_object_field_selector(
    fs: &Value,
    supported: &[&str],
    path: &Path,
    errs: &mut Vec<FieldError>,
) {
    if str_of(fs, "apiVersion").is_empty() {
        errs.push(required(&path.child("apiVersion"), ""));
        return;
    }
    let field_path = str_of(fs, "fieldPath");
    if field_path.is_empty() {
        errs.push(required(&path.child("fieldPath"), ""));
        return;
    }
    if let Some((base, rest)) = field_path.split_once('[') {
        let subscript = rest.strip_suffix(']').map(|s| s.trim_matches('\''));
        match (base, subscript) {
            ("metadata.annotations", Some(key)) => {
                let key = key.to_lowercase();
                invalid_each(
                    errs,
                    path,
                    &key,
                    crate::api::registry::names::is_qualified_name(&key),
                );
            }
            ("metadata.labels", Some(key)) => {
                invalid_each(
                    errs,
                    path,
                    key,
                    crate::api::registry::names::is_qualified_name(key),
                );
            }
            _ => errs.push(invalid_str(path, base, "does not support subscript")),
        }
    } else if !supported.contains(&field_path) {
        let mut sorted = supported.to_vec();
        sorted.sort_unstable();
        errs.push(not_supported(
            &path.child("fieldPath"),
            Bad::s(field_path),
            &sorted,
        ));
    }
}

fn validate_key_selector(sel: &Value, path: &Path, errs: &mut Vec<FieldError>) {
    let name = str_of(sel, "name");
    invalid_each(
        errs,
        &path.child("name"),
        name,
        name_is_dns_subdomain(name, false),
    );
    let key = str_of(sel, "key");
    if key.is_empty() {
        errs.push(required(&path.child("key"), ""));
    } else {
        invalid_each(errs, &path.child("key"), key, is_config_map_key(key));
    }
}

pub(super) fn validate_env_from(c: &Value, path: &Path, errs: &mut Vec<FieldError>) {
    for (i, ev) in arr(c, "envFrom").iter().enumerate() {
        let p = path.index(i);
        let prefix = str_of(ev, "prefix");
        if !prefix.is_empty() {
            invalid_each(errs, &p.child("prefix"), prefix, is_env_var_name(prefix));
        }
        let mut sources = 0;
        for key in ["configMapRef", "secretRef"] {
            if let Some(r) = get(ev, key) {
                sources += 1;
                let name = str_of(r, "name");
                let np = p.child(key).child("name");
                if name.is_empty() {
                    errs.push(required(&np, ""));
                } else {
                    invalid_each(errs, &np, name, name_is_dns_subdomain(name, true));
                }
            }
        }
        if sources == 0 {
            errs.push(invalid_str(
                path,
                "",
                "must specify one of: `configMapRef` or `secretRef`",
            ));
        } else if sources > 1 {
            errs.push(invalid_str(
                path,
                "",
                "may not have more than one field specified at a time",
            ));
        }
    }
}
