//! Jobs and CronJobs (`pkg/apis/batch/validation`).
//!
//! Selector generation for Jobs is the registry strategy's work upstream; here a Job that
//! has no selector and no `manualSelector: true` is taken to be awaiting generation (see
//! `defaults`), so the "selector required" error only fires for manual selectors.

use serde_json::Value;

use super::cron::{parse_standard, time_zone_shape_ok};
use super::equality::{opt_eq, semantic_eq};
use super::field::{
    Bad, Path, invalid, invalid_each, invalid_omit, invalid_str, nonnegative, not_supported,
    required, too_long, too_many,
};
use super::json::{arr, bool_of, get, int_of, opt_str, str_of, string_map, sub};
use super::meta::{as_selector, validate_label_selector};
use super::pod::validate_template;
use super::{FIELD_IMMUTABLE, FieldError};
use crate::api::registry::names::{is_dns1123_label, is_dns1123_subdomain, is_qualified_name};

const GENERATED_LABELS: [(&str, bool); 4] = [
    ("controller-uid", true),
    ("job-name", false),
    ("batch.kubernetes.io/controller-uid", true),
    ("batch.kubernetes.io/job-name", false),
];

fn manual_selector(spec: &Value) -> bool {
    bool_of(spec, "manualSelector") == Some(true)
}

/// Upstream `validateGeneratedSelector`.
fn validate_generated_selector(obj: &Value, errs: &mut Vec<FieldError>) {
    let spec = sub(obj, "spec");
    let Some(sel) = get(spec, "selector").filter(|_| !manual_selector(spec)) else {
        return;
    };
    let meta = sub(obj, "metadata");
    let (uid, name) = (str_of(meta, "uid"), str_of(meta, "name"));
    if uid.is_empty() {
        errs.push(required(&Path::new("metadata").child("uid"), ""));
    }
    let tmeta = sub(sub(spec, "template"), "metadata");
    let labels = string_map(tmeta, "labels");
    let lp = Path::new("spec")
        .child("template")
        .child("metadata")
        .child("labels");
    let mut expected = Vec::new();
    for (key, is_uid) in GENERATED_LABELS {
        let want = if is_uid { uid } else { name };
        let detail = format!("must be '{want}'");
        match labels.iter().find(|(k, _)| *k == key) {
            None => errs.push(required(&lp.key(key), &detail)),
            Some((_, v)) if *v != want => {
                errs.push(invalid(
                    &lp.key(key),
                    Bad::json(get(tmeta, "labels")),
                    &detail,
                ));
            }
            Some(_) => {}
        }
        expected.push((key, want));
    }
    if as_selector(Some(sel)).is_some_and(|s| !s.matches(&expected)) {
        let p = Path::new("spec").child("selector");
        errs.push(invalid(
            &p,
            Bad::Json(sel.clone()),
            "`selector` not auto-generated",
        ));
    }
}

/// Job create (upstream `ValidateJob`).
pub(crate) fn validate_job(obj: &Value, errs: &mut Vec<FieldError>) {
    validate_generated_selector(obj, errs);
    let spec = sub(obj, "spec");
    validate_job_spec_with_selector(spec, &Path::new("spec"), errs);
    let indexed = str_of(spec, "completionMode") == "Indexed";
    if let Some(c) = int_of(spec, "completions").filter(|c| indexed && *c > 0) {
        let name = str_of(sub(obj, "metadata"), "name");
        let hostname = format!("{name}-{}", c - 1);
        if !is_dns1123_label(&hostname).is_empty() {
            let msg = format!("will not able to create pod with invalid DNS label: {hostname}");
            errs.push(invalid_str(
                &Path::new("metadata").child("name"),
                name,
                &msg,
            ));
        }
    }
}

/// Upstream `ValidateJobSpec`: the spec plus its selector.
fn validate_job_spec_with_selector(spec: &Value, path: &Path, errs: &mut Vec<FieldError>) {
    validate_job_spec(spec, path, errs);
    let sel = get(spec, "selector");
    match sel {
        None if manual_selector(spec) => errs.push(required(&path.child("selector"), "")),
        None => return,
        Some(s) => validate_label_selector(s, &path.child("selector"), errs),
    }
    let labels = string_map(sub(sub(spec, "template"), "metadata"), "labels");
    if as_selector(sel).is_some_and(|s| !s.matches(&labels)) {
        let p = path.child("template").child("metadata").child("labels");
        let bad = Bad::json(get(sub(sub(spec, "template"), "metadata"), "labels"));
        errs.push(invalid(
            &p,
            bad,
            "`selector` does not match template `labels`",
        ));
    }
}

/// Upstream `validateJobSpec`.
fn validate_job_spec(spec: &Value, path: &Path, errs: &mut Vec<FieldError>) {
    for key in [
        "parallelism",
        "completions",
        "activeDeadlineSeconds",
        "backoffLimit",
        "ttlSecondsAfterFinished",
        "backoffLimitPerIndex",
    ] {
        nonnegative(errs, &path.child(key), int_of(spec, key));
    }
    let max_failed = int_of(spec, "maxFailedIndexes");
    if let Some(m) = max_failed {
        nonnegative(errs, &path.child("maxFailedIndexes"), Some(m));
        if get(spec, "backoffLimitPerIndex").is_none() {
            errs.push(required(
                &path.child("backoffLimitPerIndex"),
                "when maxFailedIndexes is specified",
            ));
        }
    }
    if let Some(managed_by) = opt_str(spec, "managedBy") {
        validate_domain_prefixed_path(managed_by, &path.child("managedBy"), errs);
        if managed_by.len() > 63 {
            errs.push(too_long(&path.child("managedBy"), 63));
        }
    }
    validate_completion_mode(spec, path, errs);
    if get(spec, "podFailurePolicy").is_some() {
        validate_pod_failure_policy(spec, &path.child("podFailurePolicy"), errs);
    }
    if let Some(sp) = get(spec, "successPolicy")
        && str_of(spec, "completionMode") != "Indexed"
    {
        let p = path.child("successPolicy");
        errs.push(invalid(
            &p,
            Bad::Json(sp.clone()),
            "requires indexed completion mode",
        ));
    }
    if let Some(policy) = opt_str(spec, "podReplacementPolicy") {
        let p = path.child("podReplacementPolicy");
        if get(spec, "podFailurePolicy").is_some() {
            if policy != "Failed" {
                errs.push(not_supported(&p, Bad::s(policy), &["Failed"]));
            }
        } else if policy != "Failed" && policy != "TerminatingOrFailed" {
            errs.push(not_supported(
                &p,
                Bad::s(policy),
                &["Failed", "TerminatingOrFailed"],
            ));
        }
    }
    let tp = path.child("template");
    validate_template(sub(spec, "template"), &tp, errs);
    validate_job_restart_policy(spec, &tp.child("spec").child("restartPolicy"), errs);
}

fn validate_job_restart_policy(spec: &Value, rp: &Path, errs: &mut Vec<FieldError>) {
    match str_of(sub(sub(spec, "template"), "spec"), "restartPolicy") {
        "Always" | "" => errs.push(required(rp, "valid values: \"OnFailure\", \"Never\"")),
        "OnFailure" if get(spec, "podFailurePolicy").is_some() => {
            let msg = "only \"Never\" is supported when podFailurePolicy is specified";
            errs.push(invalid_str(rp, "OnFailure", msg));
        }
        "OnFailure" | "Never" => {}
        other => errs.push(not_supported(rp, Bad::s(other), &["OnFailure", "Never"])),
    }
}

fn validate_completion_mode(spec: &Value, path: &Path, errs: &mut Vec<FieldError>) {
    let mode = opt_str(spec, "completionMode");
    if let Some(m) = mode.filter(|m| *m != "NonIndexed" && *m != "Indexed") {
        errs.push(not_supported(
            &path.child("completionMode"),
            Bad::s(m),
            &["NonIndexed", "Indexed"],
        ));
    }
    if mode == Some("Indexed") {
        if get(spec, "completions").is_none() {
            errs.push(required(
                &path.child("completions"),
                "when completion mode is Indexed",
            ));
        }
        if let Some(p) = int_of(spec, "parallelism").filter(|p| *p > 100_000) {
            let msg = "must be less than or equal to 100000 when completion mode is Indexed";
            errs.push(invalid(&path.child("parallelism"), Bad::Int(p), msg));
        }
        let (c, m) = (
            int_of(spec, "completions"),
            int_of(spec, "maxFailedIndexes"),
        );
        if let (Some(c), Some(m)) = (c, m)
            && m > c
        {
            let msg = "must be less than or equal to completions";
            errs.push(invalid(&path.child("maxFailedIndexes"), Bad::Int(m), msg));
        }
    } else {
        for key in ["backoffLimitPerIndex", "maxFailedIndexes"] {
            if let Some(v) = int_of(spec, key) {
                errs.push(invalid(
                    &path.child(key),
                    Bad::Int(v),
                    "requires indexed completion mode",
                ));
            }
        }
    }
}

fn validate_pod_failure_policy(spec: &Value, path: &Path, errs: &mut Vec<FieldError>) {
    let rules = arr(sub(spec, "podFailurePolicy"), "rules");
    let rp = path.child("rules");
    if rules.len() > 20 {
        errs.push(too_many(&rp, rules.len(), 20));
    }
    let actions = ["Count", "FailIndex", "FailJob", "Ignore"];
    for (i, rule) in rules.iter().enumerate() {
        let p = rp.index(i);
        match str_of(rule, "action") {
            "" => errs.push(required(
                &p.child("action"),
                "valid values: [\"Count\" \"FailIndex\" \"FailJob\" \"Ignore\"]",
            )),
            "FailIndex" if get(spec, "backoffLimitPerIndex").is_none() => {
                let msg = "requires the backoffLimitPerIndex to be set";
                errs.push(invalid_str(&p.child("action"), "FailIndex", msg));
            }
            a if !actions.contains(&a) => {
                errs.push(not_supported(&p.child("action"), Bad::s(a), &actions))
            }
            _ => {}
        }
        let (codes, conditions) = (get(rule, "onExitCodes"), arr(rule, "onPodConditions"));
        for (j, c) in conditions.iter().enumerate() {
            let t = str_of(c, "type");
            invalid_each(
                errs,
                &p.child("onPodConditions").index(j).child("type"),
                t,
                is_qualified_name(t),
            );
        }
        match (codes.is_some(), !conditions.is_empty()) {
            (true, true) => errs.push(invalid_omit(
                &p,
                "specifying both OnExitCodes and OnPodConditions is not supported",
            )),
            (false, false) => errs.push(invalid_omit(
                &p,
                "specifying one of OnExitCodes and OnPodConditions is required",
            )),
            _ => {}
        }
    }
}

/// Upstream `IsDomainPrefixedPath`.
fn validate_domain_prefixed_path(value: &str, path: &Path, errs: &mut Vec<FieldError>) {
    if value.is_empty() {
        errs.push(required(path, ""));
        return;
    }
    let Some((host, rest)) = value
        .split_once('/')
        .filter(|(h, r)| !h.is_empty() && !r.is_empty())
    else {
        errs.push(invalid_str(
            path,
            value,
            "must be a domain-prefixed path (such as \"acme.io/foo\")",
        ));
        return;
    };
    invalid_each(errs, path, host, is_dns1123_subdomain(host));
    let ok = rest
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"/-._~%!$&'()*+,;=:".contains(&b));
    if !ok {
        let msg = "Invalid path (regex used for validation is '[A-Za-z0-9/\\-._~%!$&'()*+,;=:]+')";
        errs.push(invalid_str(path, rest, msg));
    }
}

fn immutable(old: &Value, new: &Value, key: &str, path: &Path, errs: &mut Vec<FieldError>) {
    if !opt_eq(get(old, key), get(new, key)) {
        errs.push(invalid(
            &path.child(key),
            Bad::json(get(new, key)),
            FIELD_IMMUTABLE,
        ));
    }
}

/// Job update (upstream `ValidateJobSpecUpdate` with the strategy's options).
pub(crate) fn update_job(old: &Value, new: &Value, errs: &mut Vec<FieldError>) {
    let (os, ns, path) = (sub(old, "spec"), sub(new, "spec"), Path::new("spec"));
    validate_job_spec_with_selector(ns, &path, errs);
    let indexed = str_of(ns, "completionMode") == "Indexed";
    if !indexed {
        immutable(os, ns, "completions", &path, errs);
    } else if let Some(c) = int_of(ns, "completions")
        .filter(|_| !opt_eq(get(os, "completions"), get(ns, "completions")))
        && Some(c) != int_of(ns, "parallelism")
    {
        let msg = "can only be modified in tandem with spec.parallelism";
        errs.push(invalid(&path.child("completions"), Bad::Int(c), msg));
    }
    immutable(os, ns, "selector", &path, errs);
    let mutable_scheduling =
        bool_of(os, "suspend") == Some(true) && get(sub(old, "status"), "startTime").is_none();
    if !template_unchanged(os, ns, mutable_scheduling) {
        errs.push(invalid(
            &path.child("template"),
            Bad::json(get(ns, "template")),
            FIELD_IMMUTABLE,
        ));
    }
    for key in [
        "completionMode",
        "podFailurePolicy",
        "backoffLimitPerIndex",
        "managedBy",
        "successPolicy",
    ] {
        immutable(os, ns, key, &path, errs);
    }
}

fn template_unchanged(old_spec: &Value, new_spec: &Value, mutable_scheduling: bool) -> bool {
    let (mut o, n) = (sub(old_spec, "template").clone(), sub(new_spec, "template"));
    if mutable_scheduling && let Some(t) = o.as_object_mut() {
        let nm = sub(n, "metadata");
        let meta = t.entry("metadata").or_insert_with(|| serde_json::json!({}));
        for key in ["labels", "annotations"] {
            copy_field(meta, nm, key);
        }
        let spec = t.entry("spec").or_insert_with(|| serde_json::json!({}));
        let nspec = sub(n, "spec");
        for key in ["nodeSelector", "tolerations", "schedulingGates"] {
            copy_field(spec, nspec, key);
        }
        let na = get(sub(nspec, "affinity"), "nodeAffinity").cloned();
        if let Some(aff) = spec
            .as_object_mut()
            .map(|s| s.entry("affinity").or_insert_with(|| serde_json::json!({})))
        {
            copy_field(
                aff,
                &serde_json::json!({ "nodeAffinity": na }),
                "nodeAffinity",
            );
        }
    }
    semantic_eq(&o, n)
}

fn copy_field(dst: &mut Value, src: &Value, key: &str) {
    if let Some(m) = dst.as_object_mut() {
        match get(src, key) {
            Some(v) => m.insert(key.to_string(), v.clone()),
            None => m.remove(key),
        };
    }
}

/// CronJob create (upstream `ValidateCronJobCreate`).
pub(crate) fn validate_cronjob(obj: &Value, errs: &mut Vec<FieldError>) {
    validate_cronjob_spec(sub(obj, "spec"), None, errs);
    let name = str_of(sub(obj, "metadata"), "name");
    if name.len() > 52 {
        let p = Path::new("metadata").child("name");
        errs.push(invalid_str(&p, name, "must be no more than 52 characters"));
    }
}

/// CronJob update: no name-length rule, so old long-named CronJobs stay editable.
pub(crate) fn update_cronjob(old: &Value, new: &Value, errs: &mut Vec<FieldError>) {
    validate_cronjob_spec(sub(new, "spec"), Some(sub(old, "spec")), errs);
}

fn validate_cronjob_spec(spec: &Value, old: Option<&Value>, errs: &mut Vec<FieldError>) {
    let path = Path::new("spec");
    let schedule = str_of(spec, "schedule");
    let sp = path.child("schedule");
    if schedule.is_empty() {
        errs.push(required(&sp, ""));
    } else {
        if let Err(msg) = parse_standard(schedule) {
            errs.push(invalid_str(&sp, schedule, &msg));
        }
        let allow_tz = old.is_some_and(|o| str_of(o, "schedule").contains("TZ"));
        if allow_tz && schedule.contains("TZ") && get(spec, "timeZone").is_some() {
            let msg = "cannot use both timeZone field and TZ or CRON_TZ in schedule";
            errs.push(invalid_str(&sp, schedule, msg));
        } else if !allow_tz && schedule.contains("TZ") {
            let msg = "cannot use TZ or CRON_TZ in schedule, use timeZone field instead";
            errs.push(invalid_str(&sp, schedule, msg));
        }
    }
    nonnegative(
        errs,
        &path.child("startingDeadlineSeconds"),
        int_of(spec, "startingDeadlineSeconds"),
    );
    if old.is_none_or(|o| opt_str(o, "timeZone") != opt_str(spec, "timeZone")) {
        validate_time_zone(spec, &path.child("timeZone"), errs);
    }
    let cp = path.child("concurrencyPolicy");
    match str_of(spec, "concurrencyPolicy") {
        "Allow" | "Forbid" | "Replace" => {}
        "" => errs.push(required(&cp, "")),
        other => errs.push(not_supported(
            &cp,
            Bad::s(other),
            &["Allow", "Forbid", "Replace"],
        )),
    }
    validate_job_template_spec(sub(spec, "jobTemplate"), &path.child("jobTemplate"), errs);
    for key in ["successfulJobsHistoryLimit", "failedJobsHistoryLimit"] {
        nonnegative(errs, &path.child(key), int_of(spec, key));
    }
}

fn validate_time_zone(spec: &Value, path: &Path, errs: &mut Vec<FieldError>) {
    let Some(tz) = opt_str(spec, "timeZone") else {
        return;
    };
    if tz.is_empty() {
        errs.push(invalid_str(
            path,
            tz,
            "timeZone must be nil or non-empty string",
        ));
    } else if !time_zone_shape_ok(tz) {
        errs.push(invalid_str(path, tz, &format!("unknown time zone {tz}")));
    } else if tz.eq_ignore_ascii_case("Local") {
        let msg =
            "timeZone must be an explicit time zone as defined in https://www.iana.org/time-zones";
        errs.push(invalid_str(path, tz, msg));
    }
}

/// Upstream `ValidateJobTemplateSpec`.
fn validate_job_template_spec(tmpl: &Value, path: &Path, errs: &mut Vec<FieldError>) {
    let spec = sub(tmpl, "spec");
    let sp = path.child("spec");
    validate_job_spec(spec, &sp, errs);
    if let Some(sel) = get(spec, "selector") {
        let msg = "`selector` will be auto-generated";
        errs.push(invalid(&sp.child("selector"), Bad::Json(sel.clone()), msg));
    }
    if manual_selector(spec) {
        let p = sp.child("manualSelector");
        errs.push(not_supported(
            &p,
            Bad::Json(Value::Bool(true)),
            &["nil", "false"],
        ));
    }
}
