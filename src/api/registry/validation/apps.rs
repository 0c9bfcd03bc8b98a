//! Workload controllers: Deployment, ReplicaSet, DaemonSet, StatefulSet (apps) and the core
//! ReplicationController (`pkg/apis/apps/validation` plus the apps/v1 strategies' selector
//! immutability).

use serde_json::Value;

use super::FieldError;
use super::equality::{opt_eq, semantic_eq};
use super::field::{
    Bad, Path, forbidden, invalid, invalid_str, nonnegative, not_supported, required,
};
use super::json::{IntOrStr, get, int_of, int_or_str, obj_of, str_of, string_map, sub};
use super::meta::{Selector, as_selector, selector_has_no_terms, validate_label_selector};
use super::pod::validate_template;
use crate::api::registry::names::is_valid_percent;

const SELECTOR_MISMATCH: &str = "`selector` does not match template `labels`";

fn template_labels(spec: &Value) -> Vec<(&str, &str)> {
    string_map(sub(sub(spec, "template"), "metadata"), "labels")
}

fn labels_bad(spec: &Value) -> Bad {
    Bad::json(get(sub(sub(spec, "template"), "metadata"), "labels"))
}

/// The `selector` checks shared by Deployment, ReplicaSet and StatefulSet.
fn validate_required_selector<'a>(
    spec: &'a Value,
    path: &Path,
    kind: &str,
    errs: &mut Vec<FieldError>,
) -> Option<Selector<'a>> {
    let sp = path.child("selector");
    match get(spec, "selector") {
        None => errs.push(required(&sp, "")),
        Some(sel) => {
            validate_label_selector(sel, &sp, errs);
            if selector_has_no_terms(sel) {
                let msg = format!("empty selector is invalid for {kind}");
                errs.push(invalid(&sp, Bad::Json(sel.clone()), &msg));
            }
        }
    }
    as_selector(get(spec, "selector"))
}

/// Upstream `ValidatePodTemplateSpecForReplicaSet` (and its RC twin).
fn validate_template_for_rs(
    spec: &Value,
    selector: &Selector,
    path: &Path,
    owner: &str,
    errs: &mut Vec<FieldError>,
) {
    let tp = path.child("template");
    if !selector.is_empty() && !selector.matches(&template_labels(spec)) {
        errs.push(invalid(
            &tp.child("metadata").child("labels"),
            labels_bad(spec),
            SELECTOR_MISMATCH,
        ));
    }
    validate_template(sub(spec, "template"), &tp, errs);
    validate_restart_always(spec, &tp, owner, errs);
}

fn validate_restart_always(spec: &Value, tp: &Path, owner: &str, errs: &mut Vec<FieldError>) {
    let pod_spec = sub(sub(spec, "template"), "spec");
    let restart = str_of(pod_spec, "restartPolicy");
    if restart != "Always" {
        let p = tp.child("spec").child("restartPolicy");
        errs.push(not_supported(&p, Bad::s(restart), &["Always"]));
    }
    if get(pod_spec, "activeDeadlineSeconds").is_some() {
        let p = tp.child("spec").child("activeDeadlineSeconds");
        errs.push(forbidden(
            &p,
            &format!("activeDeadlineSeconds in {owner} is not Supported"),
        ));
    }
}

fn int_or_percent_value(v: &IntOrStr) -> i64 {
    match v {
        IntOrStr::Int(n) => *n,
        IntOrStr::Str(s) => match s.strip_suffix('%') {
            Some(d) if is_valid_percent(s).is_empty() => d.parse().unwrap_or(0),
            _ => s.parse().unwrap_or(0),
        },
    }
}

fn percent_over_100(v: &IntOrStr) -> bool {
    matches!(v, IntOrStr::Str(s) if is_valid_percent(s).is_empty() && int_or_percent_value(v) > 100)
}

/// Upstream `ValidatePositiveIntOrPercent`; returns the value as upstream's
/// `getIntOrPercentValue` reads it.
fn positive_int_or_percent(obj: &Value, key: &str, path: &Path, errs: &mut Vec<FieldError>) -> i64 {
    let p = path.child(key);
    let v = int_or_str(obj, key);
    match &v {
        IntOrStr::Str(s) => {
            for msg in is_valid_percent(s) {
                errs.push(invalid(&p, Bad::s(s), &msg));
            }
        }
        IntOrStr::Int(n) => nonnegative(errs, &p, Some(*n)),
    }
    int_or_percent_value(&v)
}

/// Upstream `IsNotMoreThan100Percent`.
fn not_over_100_percent(obj: &Value, key: &str, path: &Path, errs: &mut Vec<FieldError>) {
    if percent_over_100(&int_or_str(obj, key)) {
        let bad = Bad::json(get(obj, key));
        errs.push(invalid(
            &path.child(key),
            bad,
            "must not be greater than 100%",
        ));
    }
}

/// Deployment's `ValidateDeploymentSpec`.
fn validate_deployment_spec(spec: &Value, path: &Path, errs: &mut Vec<FieldError>) {
    nonnegative(errs, &path.child("replicas"), int_of(spec, "replicas"));
    match validate_required_selector(spec, path, "deployment", errs) {
        Some(sel) => validate_template_for_rs(spec, &sel, path, "ReplicaSet", errs),
        None => {
            let bad = Bad::json(get(spec, "selector"));
            errs.push(invalid(
                &path.child("selector"),
                bad,
                "invalid label selector",
            ));
        }
    }
    validate_deployment_strategy(spec, &path.child("strategy"), errs);
    let min_ready = int_of(spec, "minReadySeconds");
    nonnegative(errs, &path.child("minReadySeconds"), min_ready);
    nonnegative(
        errs,
        &path.child("revisionHistoryLimit"),
        int_of(spec, "revisionHistoryLimit"),
    );
    if let Some(pds) = int_of(spec, "progressDeadlineSeconds") {
        let p = path.child("progressDeadlineSeconds");
        nonnegative(errs, &p, Some(pds));
        if pds <= min_ready.unwrap_or(0) {
            errs.push(invalid(
                &p,
                Bad::Int(pds),
                "must be greater than minReadySeconds",
            ));
        }
    }
}

fn validate_deployment_strategy(spec: &Value, path: &Path, errs: &mut Vec<FieldError>) {
    let strategy = sub(spec, "strategy");
    let rolling = get(strategy, "rollingUpdate");
    match str_of(strategy, "type") {
        "Recreate" if rolling.is_some() => {
            let msg = "may not be specified when strategy `type` is 'Recreate'";
            errs.push(forbidden(&path.child("rollingUpdate"), msg));
        }
        "Recreate" => {}
        "RollingUpdate" => match rolling {
            None => {
                let msg = "this should be defaulted and never be nil";
                errs.push(required(&path.child("rollingUpdate"), msg));
            }
            Some(ru) => {
                let rp = path.child("rollingUpdate");
                let unavailable = positive_int_or_percent(ru, "maxUnavailable", &rp, errs);
                let surge = positive_int_or_percent(ru, "maxSurge", &rp, errs);
                if unavailable == 0 && surge == 0 {
                    let bad = Bad::json(get(ru, "maxUnavailable"));
                    let p = rp.child("maxUnavailable");
                    errs.push(invalid(&p, bad, "may not be 0 when `maxSurge` is 0"));
                }
                not_over_100_percent(ru, "maxUnavailable", &rp, errs);
            }
        },
        _ => {
            let bad = Bad::Json(strategy.clone());
            errs.push(not_supported(path, bad, &["Recreate", "RollingUpdate"]));
        }
    }
}

/// Deployment create.
pub(crate) fn validate_deploy(obj: &Value, errs: &mut Vec<FieldError>) {
    validate_deployment_spec(sub(obj, "spec"), &Path::new("spec"), errs);
}

fn selector_immutable(old: &Value, new: &Value, errs: &mut Vec<FieldError>) {
    let (o, n) = (
        get(sub(old, "spec"), "selector"),
        get(sub(new, "spec"), "selector"),
    );
    if !opt_eq(o, n) {
        let p = Path::new("spec").child("selector");
        errs.push(invalid(&p, Bad::json(n), super::FIELD_IMMUTABLE));
    }
}

/// Deployment update: the new spec, and an immutable selector.
pub(crate) fn update_deploy(old: &Value, new: &Value, errs: &mut Vec<FieldError>) {
    validate_deploy(new, errs);
    selector_immutable(old, new, errs);
}

/// ReplicaSet create.
pub(crate) fn validate_rs(obj: &Value, errs: &mut Vec<FieldError>) {
    let (spec, path) = (sub(obj, "spec"), Path::new("spec"));
    nonnegative(errs, &path.child("replicas"), int_of(spec, "replicas"));
    nonnegative(
        errs,
        &path.child("minReadySeconds"),
        int_of(spec, "minReadySeconds"),
    );
    match validate_required_selector(spec, &path, "deployment", errs) {
        Some(sel) => validate_template_for_rs(spec, &sel, &path, "ReplicaSet", errs),
        None => {
            let bad = Bad::json(get(spec, "selector"));
            errs.push(invalid(
                &path.child("selector"),
                bad,
                "invalid label selector",
            ));
        }
    }
}

/// ReplicaSet update.
pub(crate) fn update_rs(old: &Value, new: &Value, errs: &mut Vec<FieldError>) {
    validate_rs(new, errs);
    selector_immutable(old, new, errs);
}

/// DaemonSet create (upstream `ValidateDaemonSetSpec`).
pub(crate) fn validate_ds(obj: &Value, errs: &mut Vec<FieldError>) {
    let (spec, path) = (sub(obj, "spec"), Path::new("spec"));
    let sel = get(spec, "selector");
    if let Some(s) = sel {
        validate_label_selector(s, &path.child("selector"), errs);
    }
    if let Some(selector) = as_selector(sel)
        && !selector.matches(&template_labels(spec))
    {
        let p = path.child("template").child("metadata").child("labels");
        errs.push(invalid(&p, labels_bad(spec), SELECTOR_MISMATCH));
    }
    if let Some(s) = sel.filter(|s| selector_has_no_terms(s)) {
        let msg = "empty selector is invalid for daemonset";
        errs.push(invalid(&path.child("selector"), Bad::Json(s.clone()), msg));
    }
    let tp = path.child("template");
    validate_template(sub(spec, "template"), &tp, errs);
    validate_restart_always(spec, &tp, "DaemonSet", errs);
    nonnegative(
        errs,
        &path.child("minReadySeconds"),
        int_of(spec, "minReadySeconds"),
    );
    validate_ds_strategy(
        sub(spec, "updateStrategy"),
        &path.child("updateStrategy"),
        errs,
    );
    nonnegative(
        errs,
        &path.child("revisionHistoryLimit"),
        int_of(spec, "revisionHistoryLimit"),
    );
}

fn validate_ds_strategy(strategy: &Value, path: &Path, errs: &mut Vec<FieldError>) {
    match str_of(strategy, "type") {
        "OnDelete" => {}
        "RollingUpdate" => {
            let Some(ru) = get(strategy, "rollingUpdate") else {
                errs.push(required(&path.child("rollingUpdate"), ""));
                return;
            };
            let rp = path.child("rollingUpdate");
            let unavailable = positive_int_or_percent(ru, "maxUnavailable", &rp, errs);
            let surge = positive_int_or_percent(ru, "maxSurge", &rp, errs);
            not_over_100_percent(ru, "maxUnavailable", &rp, errs);
            not_over_100_percent(ru, "maxSurge", &rp, errs);
            match (unavailable != 0, surge != 0) {
                (true, true) => {
                    let msg = "may not be set when maxUnavailable is non-zero";
                    errs.push(invalid(
                        &rp.child("maxSurge"),
                        Bad::json(get(ru, "maxSurge")),
                        msg,
                    ));
                }
                (false, false) => {
                    let msg = "cannot be 0 when maxSurge is 0";
                    errs.push(required(&rp.child("maxUnavailable"), msg));
                }
                _ => {}
            }
        }
        _ => {
            let bad = Bad::Json(strategy.clone());
            errs.push(not_supported(path, bad, &["RollingUpdate", "OnDelete"]));
        }
    }
}

/// DaemonSet update.
pub(crate) fn update_ds(old: &Value, new: &Value, errs: &mut Vec<FieldError>) {
    validate_ds(new, errs);
    selector_immutable(old, new, errs);
}

/// StatefulSet create (upstream `ValidateStatefulSetSpec`).
pub(crate) fn validate_sts(obj: &Value, errs: &mut Vec<FieldError>) {
    let (spec, path) = (sub(obj, "spec"), Path::new("spec"));
    let pmp = path.child("podManagementPolicy");
    match str_of(spec, "podManagementPolicy") {
        "" => errs.push(required(&pmp, "")),
        "OrderedReady" | "Parallel" => {}
        other => errs.push(invalid_str(
            &pmp,
            other,
            "must be 'OrderedReady' or 'Parallel'",
        )),
    }
    validate_sts_strategy(
        sub(spec, "updateStrategy"),
        &path.child("updateStrategy"),
        errs,
    );
    if let Some(policy) = get(spec, "persistentVolumeClaimRetentionPolicy") {
        let pp = path.child("persistentVolumeClaimRetentionPolicy");
        for key in ["whenDeleted", "whenScaled"] {
            let v = str_of(policy, key);
            if v != "Retain" && v != "Delete" {
                errs.push(not_supported(
                    &pp.child(key),
                    Bad::s(v),
                    &["Retain", "Delete"],
                ));
            }
        }
    }
    nonnegative(errs, &path.child("replicas"), int_of(spec, "replicas"));
    nonnegative(
        errs,
        &path.child("minReadySeconds"),
        int_of(spec, "minReadySeconds"),
    );
    nonnegative(
        errs,
        &path.child("ordinals.start"),
        int_of(sub(spec, "ordinals"), "start"),
    );
    let tp = path.child("template");
    match validate_required_selector(spec, &path, "statefulset", errs) {
        Some(sel) => {
            if !sel.is_empty() && !sel.matches(&template_labels(spec)) {
                let p = tp.child("metadata").child("labels");
                errs.push(invalid(&p, labels_bad(spec), SELECTOR_MISMATCH));
            }
            let meta = sub(sub(spec, "template"), "metadata");
            super::meta::validate_labels(meta, "labels", &tp.child("labels"), errs);
            super::meta::validate_annotations(meta, &tp.child("annotations"), errs);
        }
        None => errs.push(invalid(
            &path.child("selector"),
            Bad::json(get(spec, "selector")),
            "",
        )),
    }
    validate_restart_always(spec, &tp, "StatefulSet", errs);
}

fn validate_sts_strategy(strategy: &Value, path: &Path, errs: &mut Vec<FieldError>) {
    let rolling = get(strategy, "rollingUpdate");
    match (str_of(strategy, "type"), rolling) {
        ("", _) => errs.push(required(path, "")),
        ("OnDelete", Some(ru)) => {
            let msg = "only allowed for updateStrategy 'RollingUpdate'";
            errs.push(invalid(
                &path.child("rollingUpdate"),
                Bad::Json(ru.clone()),
                msg,
            ));
        }
        ("OnDelete", None) | ("RollingUpdate", None) => {}
        ("RollingUpdate", Some(ru)) => {
            let rp = path.child("rollingUpdate");
            nonnegative(errs, &rp.child("partition"), int_of(ru, "partition"));
            if get(ru, "maxUnavailable").is_some() {
                let v = positive_int_or_percent(ru, "maxUnavailable", &rp, errs);
                if v == 0 {
                    let bad = Bad::json(get(ru, "maxUnavailable"));
                    errs.push(invalid(&rp.child("maxUnavailable"), bad, "cannot be 0"));
                }
                not_over_100_percent(ru, "maxUnavailable", &rp, errs);
            }
        }
        _ => {
            let msg = "must be 'RollingUpdate' or 'OnDelete'";
            errs.push(invalid(path, Bad::Json(strategy.clone()), msg));
        }
    }
}

/// StatefulSet update: only some spec fields may change.
pub(crate) fn update_sts(old: &Value, new: &Value, errs: &mut Vec<FieldError>) {
    validate_sts(new, errs);
    let (old_spec, new_spec) = (sub(old, "spec"), sub(new, "spec"));
    let mutable = [
        "replicas",
        "template",
        "updateStrategy",
        "minReadySeconds",
        "ordinals",
        "persistentVolumeClaimRetentionPolicy",
    ];
    let strip = |spec: &Value| {
        let mut s = spec.clone();
        if let Some(m) = s.as_object_mut() {
            for key in mutable {
                m.remove(key);
            }
        }
        s
    };
    if !semantic_eq(&strip(new_spec), &strip(old_spec)) {
        let msg = "updates to statefulset spec for fields other than 'replicas', 'ordinals', \
                   'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and \
                   'minReadySeconds' are forbidden";
        errs.push(forbidden(&Path::new("spec"), msg));
    }
}

/// ReplicationController create (upstream `ValidateReplicationControllerSpec`).
pub(crate) fn validate_rc(obj: &Value, errs: &mut Vec<FieldError>) {
    let (spec, path) = (sub(obj, "spec"), Path::new("spec"));
    nonnegative(
        errs,
        &path.child("minReadySeconds"),
        int_of(spec, "minReadySeconds"),
    );
    let selector = string_map(spec, "selector");
    if selector.is_empty() {
        errs.push(required(&path.child("selector"), ""));
    }
    nonnegative(errs, &path.child("replicas"), int_of(spec, "replicas"));
    if obj_of(spec, "template").is_none() {
        errs.push(required(&path.child("template"), ""));
        return;
    }
    let reqs = selector
        .into_iter()
        .map(|(k, v)| (k, "In", vec![v]))
        .collect();
    validate_template_for_rs(
        spec,
        &Selector::Requirements(reqs),
        &path,
        "ReplicationController",
        errs,
    );
}

/// ReplicationController update: the new spec must be valid.
pub(crate) fn update_rc(_old: &Value, new: &Value, errs: &mut Vec<FieldError>) {
    validate_rc(new, errs);
}
