//! Ingresses (networking.k8s.io/v1, `pkg/apis/networking/validation`).

use serde_json::Value;

use super::FieldError;
use super::field::{Bad, Path, invalid, invalid_each, invalid_str, not_supported, required};
use super::json::{arr, get, int_of, opt_str, str_of, strings, sub};
use super::netaddr::is_ip;
use super::pod::port_num_errors;
use crate::api::registry::names::{
    is_dns1035_label, is_dns1123_subdomain, is_valid_path_segment_name, is_valid_port_name,
    is_wildcard_dns1123_subdomain, name_is_dns_subdomain,
};

/// Ingress create (upstream `ValidateIngressSpec`).
pub(crate) fn validate_ingress(obj: &Value, errs: &mut Vec<FieldError>) {
    let (spec, path) = (sub(obj, "spec"), Path::new("spec"));
    let rules = arr(spec, "rules");
    let default_backend = get(spec, "defaultBackend");
    if rules.is_empty() && default_backend.is_none() {
        let msg = "either `defaultBackend` or `rules` must be specified";
        errs.push(invalid(&path, Bad::json(get(spec, "rules")), msg));
    }
    if let Some(b) = default_backend {
        validate_backend(b, &path.child("defaultBackend"), errs);
    }
    for (i, rule) in rules.iter().enumerate() {
        let p = path.child("rules").index(i);
        validate_host(str_of(rule, "host"), &p.child("host"), errs);
        if let Some(http) = get(rule, "http") {
            validate_http(http, &p.child("http"), errs);
        }
    }
    for (i, tls) in arr(spec, "tls").iter().enumerate() {
        let p = path.child("tls").index(i);
        for (j, host) in strings(tls, "hosts").iter().enumerate() {
            let hp = p.child("hosts").index(j);
            if host.contains('*') {
                invalid_each(errs, &hp, host, is_wildcard_dns1123_subdomain(host));
            } else {
                invalid_each(errs, &hp, host, is_dns1123_subdomain(host));
            }
        }
        let secret = str_of(tls, "secretName");
        if !secret.is_empty() {
            invalid_each(
                errs,
                &p.child("secretName"),
                secret,
                name_is_dns_subdomain(secret, false),
            );
        }
    }
    if let Some(class) = opt_str(spec, "ingressClassName") {
        invalid_each(
            errs,
            &path.child("ingressClassName"),
            class,
            name_is_dns_subdomain(class, false),
        );
    }
}

fn validate_host(host: &str, path: &Path, errs: &mut Vec<FieldError>) {
    if host.is_empty() {
        return;
    }
    if is_ip(host) {
        errs.push(invalid_str(
            path,
            host,
            "must be a DNS name, not an IP address",
        ));
    }
    if host.contains('*') {
        invalid_each(errs, path, host, is_wildcard_dns1123_subdomain(host));
    } else {
        invalid_each(errs, path, host, is_dns1123_subdomain(host));
    }
}

fn validate_http(http: &Value, path: &Path, errs: &mut Vec<FieldError>) {
    let paths = arr(http, "paths");
    if paths.is_empty() {
        errs.push(required(&path.child("paths"), ""));
    }
    for (i, p) in paths.iter().enumerate() {
        validate_path(p, &path.child("paths").index(i), errs);
    }
}

fn validate_path(p: &Value, path: &Path, errs: &mut Vec<FieldError>) {
    let Some(path_type) = opt_str(p, "pathType") else {
        errs.push(required(
            &path.child("pathType"),
            "pathType must be specified",
        ));
        return;
    };
    let value = str_of(p, "path");
    let pp = path.child("path");
    match path_type {
        "Exact" | "Prefix" => {
            if !value.starts_with('/') {
                errs.push(invalid_str(&pp, value, "must be an absolute path"));
            }
            for seq in ["//", "/./", "/../", "%2f", "%2F"] {
                if value.contains(seq) {
                    errs.push(invalid_str(
                        &pp,
                        value,
                        &format!("must not contain '{seq}'"),
                    ));
                }
            }
            for suffix in ["/..", "/."] {
                if value.ends_with(suffix) {
                    errs.push(invalid_str(
                        &pp,
                        value,
                        &format!("cannot end with '{suffix}'"),
                    ));
                }
            }
        }
        "ImplementationSpecific" => {
            if !value.is_empty() && !value.starts_with('/') {
                errs.push(invalid_str(&pp, value, "must be an absolute path"));
            }
        }
        other => {
            let valid = ["Exact", "ImplementationSpecific", "Prefix"];
            errs.push(not_supported(
                &path.child("pathType"),
                Bad::s(other),
                &valid,
            ));
        }
    }
    validate_backend(sub(p, "backend"), &path.child("backend"), errs);
}

/// Upstream `validateIngressBackend`.
fn validate_backend(backend: &Value, path: &Path, errs: &mut Vec<FieldError>) {
    match (get(backend, "resource"), get(backend, "service")) {
        (Some(_), Some(_)) => {
            errs.push(invalid_str(
                path,
                "",
                "cannot set both resource and service backends",
            ));
        }
        (Some(resource), None) => validate_resource_ref(resource, &path.child("resource"), errs),
        (None, Some(service)) => validate_service_backend(service, path, errs),
        (None, None) => errs.push(invalid_str(
            path,
            "",
            "resource or service backend is required",
        )),
    }
}

fn validate_service_backend(service: &Value, path: &Path, errs: &mut Vec<FieldError>) {
    let name = str_of(service, "name");
    let np = path.child("service").child("name");
    if name.is_empty() {
        errs.push(required(&np, ""));
    } else {
        invalid_each(errs, &np, name, is_dns1035_label(name));
    }
    let port = sub(service, "port");
    let port_name = str_of(port, "name");
    let number = int_of(port, "number").unwrap_or(0);
    let pp = path.child("service").child("port");
    match (!port_name.is_empty(), number != 0) {
        (true, true) => errs.push(invalid_str(
            path,
            "",
            "cannot set both port name & port number",
        )),
        (true, false) => invalid_each(
            errs,
            &pp.child("name"),
            port_name,
            is_valid_port_name(port_name),
        ),
        (false, true) => errs.extend(port_num_errors(&pp.child("number"), number)),
        (false, false) => errs.push(required(path, "port name or number is required")),
    }
}

fn validate_resource_ref(r: &Value, path: &Path, errs: &mut Vec<FieldError>) {
    if let Some(group) = opt_str(r, "apiGroup") {
        invalid_each(
            errs,
            &path.child("apiGroup"),
            group,
            is_dns1123_subdomain(group),
        );
    }
    for key in ["kind", "name"] {
        let value = str_of(r, key);
        if value.is_empty() {
            errs.push(required(&path.child(key), &format!("{key} is required")));
        } else {
            invalid_each(
                errs,
                &path.child(key),
                value,
                is_valid_path_segment_name(value),
            );
        }
    }
}

/// Ingress update: the new object must be valid.
pub(crate) fn update_ingress(_old: &Value, new: &Value, errs: &mut Vec<FieldError>) {
    validate_ingress(new, errs);
}
