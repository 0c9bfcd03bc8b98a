//! Events, in both of their API shapes (core `ValidateEventCreate` / `ValidateEventUpdate`).
//!
//! Upstream validates the internal Event type, so errors name its fields
//! (`involvedObject`, `message`, `reportingController`) even for events.k8s.io/v1 objects,
//! whose JSON says `regarding`, `note` and `deprecatedSource`. Each shape is first read
//! into that internal view. Core/v1 Events get only the lenient legacy checks, without
//! metadata validation, exactly as upstream keeps them for compatibility.

use serde_json::Value;

use super::equality::opt_eq;
use super::field::{Bad, Path, invalid, invalid_each, invalid_str, required};
use super::json::{get, int_of, str_of, sub};
use super::{FIELD_IMMUTABLE, FieldError};
use crate::api::registry::names::{is_dns1123_subdomain, is_qualified_name};

/// The internal Event fields validation looks at, read from either JSON shape.
struct View<'a> {
    namespace: &'a str,
    involved: Option<&'a Value>,
    event_time: Option<&'a Value>,
    reporting_controller: &'a str,
    reporting_instance: &'a str,
    action: &'a str,
    reason: &'a str,
    message: &'a str,
    kind: &'a str,
    fields: Vec<(&'static str, Option<&'a Value>)>,
}

fn view(obj: &Value, v1: bool) -> View<'_> {
    let pick = |core: &'static str, events: &'static str| if v1 { events } else { core };
    let field = |core: &'static str, events: &'static str| (core, get(obj, pick(core, events)));
    View {
        namespace: str_of(sub(obj, "metadata"), "namespace"),
        involved: get(obj, pick("involvedObject", "regarding")),
        event_time: get(obj, "eventTime"),
        reporting_controller: str_of(obj, pick("reportingComponent", "reportingController")),
        reporting_instance: str_of(obj, "reportingInstance"),
        action: str_of(obj, "action"),
        reason: str_of(obj, "reason"),
        message: str_of(obj, pick("message", "note")),
        kind: str_of(obj, "type"),
        fields: vec![
            field("involvedObject", "regarding"),
            field("reason", "reason"),
            field("message", "note"),
            field("source", "deprecatedSource"),
            field("firstTimestamp", "deprecatedFirstTimestamp"),
            field("lastTimestamp", "deprecatedLastTimestamp"),
            field("count", "deprecatedCount"),
            field("type", "type"),
            field("eventTime", "eventTime"),
            field("action", "action"),
            field("related", "related"),
            field("reportingController", "reportingController"),
            field("reportingInstance", "reportingInstance"),
        ],
    }
}

fn check_len(value: &str, limit: usize, key: &str, errs: &mut Vec<FieldError>) {
    if value.len() > limit {
        let msg = format!("can have at most {limit} characters");
        errs.push(invalid_str(&Path::new(key), "", &msg));
    }
}

/// Upstream `legacyValidateEvent`.
fn legacy(v: &View, errs: &mut Vec<FieldError>) {
    let involved_ns = v.involved.map(|i| str_of(i, "namespace")).unwrap_or("");
    let mismatch = Path::new("involvedObject").child("namespace");
    let msg = "does not match event.namespace";
    if v.event_time.is_none() {
        let ok = if involved_ns.is_empty() {
            v.namespace.is_empty() || v.namespace == "default"
        } else {
            v.namespace == involved_ns
        };
        if !ok {
            errs.push(invalid_str(&mismatch, involved_ns, msg));
        }
    } else {
        if involved_ns.is_empty() && v.namespace != "default" && v.namespace != "kube-system" {
            errs.push(invalid_str(&mismatch, involved_ns, msg));
        }
        let rc = Path::new("reportingController");
        if v.reporting_controller.is_empty() {
            errs.push(required(&rc, ""));
        }
        invalid_each(
            errs,
            &rc,
            v.reporting_controller,
            is_qualified_name(v.reporting_controller),
        );
        for (key, value) in [
            ("reportingInstance", v.reporting_instance),
            ("action", v.action),
            ("reason", v.reason),
        ] {
            if value.is_empty() {
                errs.push(required(&Path::new(key), ""));
            }
            check_len(value, 128, key, errs);
        }
        check_len(v.message, 1024, "message", errs);
    }
    invalid_each(
        errs,
        &Path::new("namespace"),
        v.namespace,
        is_dns1123_subdomain(v.namespace),
    );
}

/// Core/v1 Event create: legacy checks only.
pub(crate) fn validate_legacy(obj: &Value, errs: &mut Vec<FieldError>) {
    legacy(&view(obj, false), errs);
}

/// Core/v1 Event update: legacy checks on the new object only.
pub(crate) fn update_legacy(_old: &Value, new: &Value, errs: &mut Vec<FieldError>) {
    validate_legacy(new, errs);
}

fn validate_series(obj: &Value, errs: &mut Vec<FieldError>) {
    let Some(series) = get(obj, "series") else {
        return;
    };
    if int_of(series, "count").unwrap_or(0) < 2 {
        errs.push(invalid_str(
            &Path::new("series.count"),
            "",
            "should be at least 2",
        ));
    }
    if get(series, "lastObservedTime").is_none() {
        errs.push(required(&Path::new("series.lastObservedTime"), ""));
    }
}

/// events.k8s.io/v1 Event create: legacy plus strict checks.
pub(crate) fn validate_v1(obj: &Value, errs: &mut Vec<FieldError>) {
    let v = view(obj, true);
    legacy(&v, errs);
    validate_series(obj, errs);
    if v.event_time.is_none() {
        errs.push(required(&Path::new("eventTime"), ""));
    }
    if v.kind != "Normal" && v.kind != "Warning" {
        let msg = format!("has invalid value: {}", v.kind);
        errs.push(invalid_str(&Path::new("type"), "", &msg));
    }
    for (key, json) in [
        ("firstTimestamp", "deprecatedFirstTimestamp"),
        ("lastTimestamp", "deprecatedLastTimestamp"),
        ("count", "deprecatedCount"),
    ] {
        if get(obj, json).is_some_and(|x| !super::equality::is_zero(x)) {
            errs.push(invalid_str(&Path::new(key), "", "needs to be unset"));
        }
    }
    let source = sub(obj, "deprecatedSource");
    if !str_of(source, "component").is_empty() || !str_of(source, "host").is_empty() {
        errs.push(invalid_str(&Path::new("source"), "", "needs to be unset"));
    }
}

/// events.k8s.io/v1 Event update: legacy checks and the immutable fields.
pub(crate) fn update_v1(old: &Value, new: &Value, errs: &mut Vec<FieldError>) {
    let (o, n) = (view(old, true), view(new, true));
    legacy(&n, errs);
    if !opt_eq(get(old, "series"), get(new, "series")) {
        validate_series(new, errs);
    }
    for ((key, old_value), (_, new_value)) in o.fields.iter().zip(&n.fields) {
        if !opt_eq(*old_value, *new_value) {
            errs.push(invalid(
                &Path::new(key),
                Bad::json(*new_value),
                FIELD_IMMUTABLE,
            ));
        }
    }
}
