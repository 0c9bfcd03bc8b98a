//! Probes and lifecycle hooks: one handler each, well-formed actions, sane thresholds
//! (core `validateProbe`, `validateHandler`, `validateLifecycle`).

use serde_json::Value;

use super::super::FieldError;
use super::super::field::{
    Bad, Path, forbidden, invalid, invalid_each, nonnegative, not_supported, required,
};
use super::super::json::{IntOrStr, arr, get, int_of, int_or_str, str_of};
use super::container::port_num_errors;
use crate::api::registry::names::{is_http_header_name, is_valid_port_name};

pub(super) fn validate_lifecycle_and_probes(
    c: &Value,
    path: &Path,
    grace: Option<i64>,
    errs: &mut Vec<FieldError>,
) {
    if let Some(lc) = get(c, "lifecycle") {
        for hook in ["postStart", "preStop"] {
            if let Some(h) = get(lc, hook) {
                validate_handler(h, true, &path.child("lifecycle").child(hook), grace, errs);
            }
        }
    }
    for key in ["livenessProbe", "readinessProbe", "startupProbe"] {
        let Some(probe) = get(c, key) else { continue };
        let p = path.child(key);
        validate_probe(probe, &p, grace, errs);
        let success = int_of(probe, "successThreshold").unwrap_or(0);
        if key != "readinessProbe" && success != 1 {
            errs.push(invalid(
                &p.child("successThreshold"),
                Bad::Int(success),
                "must be 1",
            ));
        }
        if key == "readinessProbe" && get(probe, "terminationGracePeriodSeconds").is_some() {
            let msg = "must not be set for readinessProbes";
            let bad = Bad::json(get(probe, "terminationGracePeriodSeconds"));
            errs.push(invalid(&p.child("terminationGracePeriodSeconds"), bad, msg));
        }
    }
}

fn validate_probe(probe: &Value, path: &Path, grace: Option<i64>, errs: &mut Vec<FieldError>) {
    validate_handler(probe, false, path, grace, errs);
    for key in [
        "initialDelaySeconds",
        "timeoutSeconds",
        "periodSeconds",
        "successThreshold",
        "failureThreshold",
    ] {
        nonnegative(errs, &path.child(key), int_of(probe, key));
    }
    if let Some(t) = int_of(probe, "terminationGracePeriodSeconds").filter(|t| *t <= 0) {
        errs.push(invalid(
            &path.child("terminationGracePeriodSeconds"),
            Bad::Int(t),
            "must be greater than 0",
        ));
    }
}

/// Upstream `validateHandler`: exactly one action, each well formed.
fn validate_handler(
    h: &Value,
    lifecycle: bool,
    path: &Path,
    grace: Option<i64>,
    errs: &mut Vec<FieldError>,
) {
    let kinds: &[&str] = if lifecycle {
        &["exec", "httpGet", "tcpSocket", "sleep"]
    } else {
        &["exec", "httpGet", "tcpSocket", "grpc"]
    };
    let mut count = 0;
    for kind in kinds {
        let Some(action) = get(h, kind) else { continue };
        let p = path.child(kind);
        if count > 0 {
            errs.push(forbidden(&p, "may not specify more than 1 handler type"));
            continue;
        }
        count += 1;
        match *kind {
            "exec" if arr(action, "command").is_empty() => {
                errs.push(required(&p.child("command"), ""));
            }
            "httpGet" => validate_http_get(action, &p, errs),
            "tcpSocket" => validate_port_num_or_name(action, "port", &p.child("port"), errs),
            "grpc" => {
                let port = int_of(action, "port").unwrap_or(0);
                errs.extend(port_num_errors(&p.child("port"), port));
            }
            "sleep" => validate_sleep(action, &p, grace, errs),
            _ => {}
        }
    }
    if count == 0 {
        errs.push(required(path, "must specify a handler type"));
    }
}

fn validate_sleep(action: &Value, path: &Path, grace: Option<i64>, errs: &mut Vec<FieldError>) {
    let seconds = int_of(action, "seconds").unwrap_or(0);
    if let Some(g) = grace.filter(|g| seconds < 0 || seconds > *g) {
        let msg = format!("must be non-negative and less than terminationGracePeriodSeconds ({g})");
        errs.push(invalid(path, Bad::Int(seconds), &msg));
    }
}

fn validate_http_get(action: &Value, path: &Path, errs: &mut Vec<FieldError>) {
    if str_of(action, "path").is_empty() {
        errs.push(required(&path.child("path"), ""));
    }
    validate_port_num_or_name(action, "port", &path.child("port"), errs);
    let scheme = str_of(action, "scheme");
    if scheme != "HTTP" && scheme != "HTTPS" {
        errs.push(not_supported(
            &path.child("scheme"),
            Bad::s(scheme),
            &["HTTP", "HTTPS"],
        ));
    }
    for header in arr(action, "httpHeaders") {
        let name = str_of(header, "name");
        invalid_each(
            errs,
            &path.child("httpHeaders"),
            name,
            is_http_header_name(name),
        );
    }
}

/// Upstream `ValidatePortNumOrName` on an IntOrString field.
pub(crate) fn validate_port_num_or_name(
    obj: &Value,
    key: &str,
    path: &Path,
    errs: &mut Vec<FieldError>,
) {
    match int_or_str(obj, key) {
        IntOrStr::Int(n) => errs.extend(port_num_errors(path, n)),
        IntOrStr::Str(s) => invalid_each(errs, path, s, is_valid_port_name(s)),
    }
}
