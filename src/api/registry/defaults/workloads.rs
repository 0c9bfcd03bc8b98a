//! Workload defaults: apps/v1 (Deployment, ReplicaSet, DaemonSet, StatefulSet), batch/v1
//! (Job, CronJob) and the core ReplicationController; each also defaults its pod template.

use serde_json::{Map, Value, json};

use super::pod::{claim_spec, template_spec};
use super::{child, each, existing, is_unset, set_default, set_if_zero, text};

fn spec_of(obj: &mut Value) -> Option<&mut Map<String, Value>> {
    obj.as_object_mut().and_then(|m| child(m, "spec"))
}

fn template_of(spec: &mut Map<String, Value>) {
    if let Some(t) = existing(spec, "template") {
        template_spec(t);
    }
}

/// Upstream `SetDefaults_Deployment`.
pub(super) fn deployment(obj: &mut Value) {
    let Some(spec) = spec_of(obj) else { return };
    set_default(spec, "replicas", json!(1));
    if let Some(strategy) = child(spec, "strategy") {
        set_if_zero(strategy, "type", json!("RollingUpdate"));
        if text(strategy, "type") == "RollingUpdate"
            && let Some(ru) = child(strategy, "rollingUpdate")
        {
            set_default(ru, "maxUnavailable", json!("25%"));
            set_default(ru, "maxSurge", json!("25%"));
        }
    }
    set_default(spec, "revisionHistoryLimit", json!(10));
    set_default(spec, "progressDeadlineSeconds", json!(600));
    template_of(spec);
}

/// Upstream `SetDefaults_ReplicaSet`.
pub(super) fn replica_set(obj: &mut Value) {
    let Some(spec) = spec_of(obj) else { return };
    set_default(spec, "replicas", json!(1));
    template_of(spec);
}

/// Upstream `SetDefaults_DaemonSet`.
pub(super) fn daemon_set(obj: &mut Value) {
    let Some(spec) = spec_of(obj) else { return };
    if let Some(strategy) = child(spec, "updateStrategy") {
        set_if_zero(strategy, "type", json!("RollingUpdate"));
        if text(strategy, "type") == "RollingUpdate"
            && let Some(ru) = child(strategy, "rollingUpdate")
        {
            set_default(ru, "maxUnavailable", json!(1));
            set_default(ru, "maxSurge", json!(0));
        }
    }
    set_default(spec, "revisionHistoryLimit", json!(10));
    template_of(spec);
}

/// Upstream `SetDefaults_StatefulSet` (with MaxUnavailableStatefulSet, beta since 1.35).
pub(super) fn stateful_set(obj: &mut Value) {
    let Some(spec) = spec_of(obj) else { return };
    set_if_zero(spec, "podManagementPolicy", json!("OrderedReady"));
    if let Some(strategy) = child(spec, "updateStrategy") {
        if text(strategy, "type").is_empty() {
            strategy.insert("type".to_string(), json!("RollingUpdate"));
            set_default(strategy, "rollingUpdate", json!({}));
        }
        if text(strategy, "type") == "RollingUpdate"
            && let Some(ru) = existing(strategy, "rollingUpdate")
        {
            set_default(ru, "partition", json!(0));
            set_default(ru, "maxUnavailable", json!(1));
        }
    }
    if let Some(policy) = child(spec, "persistentVolumeClaimRetentionPolicy") {
        set_if_zero(policy, "whenDeleted", json!("Retain"));
        set_if_zero(policy, "whenScaled", json!("Retain"));
    }
    set_default(spec, "replicas", json!(1));
    set_default(spec, "revisionHistoryLimit", json!(10));
    for claim in each(spec, "volumeClaimTemplates") {
        if let Some(s) = child(claim, "spec") {
            claim_spec(s);
        }
        if let Some(status) = child(claim, "status") {
            set_if_zero(status, "phase", json!("Pending"));
        }
    }
    template_of(spec);
}

/// Upstream `SetDefaults_ReplicationController`.
pub(super) fn replication_controller(obj: &mut Value) {
    let Some(root) = obj.as_object_mut() else {
        return;
    };
    let labels = root
        .get("spec")
        .and_then(|s| s.get("template"))
        .and_then(|t| t.get("metadata"))
        .and_then(|m| m.get("labels"))
        .filter(|l| l.is_object())
        .cloned();
    if let Some(labels) = labels {
        if let Some(meta) = child(root, "metadata")
            && meta
                .get("labels")
                .and_then(Value::as_object)
                .is_none_or(Map::is_empty)
        {
            meta.insert("labels".to_string(), labels.clone());
        }
        if let Some(spec) = child(root, "spec")
            && spec
                .get("selector")
                .and_then(Value::as_object)
                .is_none_or(Map::is_empty)
        {
            spec.insert("selector".to_string(), labels);
        }
    }
    let Some(spec) = child(root, "spec") else {
        return;
    };
    set_default(spec, "replicas", json!(1));
    template_of(spec);
}

/// Upstream `SetDefaults_Job`, plus the strategy's selector generation once the uid is known.
pub(super) fn job(obj: &mut Value) {
    generate_job_selector(obj);
    let Some(root) = obj.as_object_mut() else {
        return;
    };
    let template_labels = root
        .get("spec")
        .and_then(|s| s.get("template"))
        .and_then(|t| t.get("metadata"))
        .and_then(|m| m.get("labels"))
        .filter(|l| l.is_object())
        .cloned();
    if let Some(labels) = template_labels
        && let Some(meta) = child(root, "metadata")
        && meta
            .get("labels")
            .and_then(Value::as_object)
            .is_none_or(Map::is_empty)
    {
        meta.insert("labels".to_string(), labels);
    }
    let Some(spec) = child(root, "spec") else {
        return;
    };
    if is_unset(spec, "completions") && is_unset(spec, "parallelism") {
        spec.insert("completions".to_string(), json!(1));
        spec.insert("parallelism".to_string(), json!(1));
    }
    set_default(spec, "parallelism", json!(1));
    let backoff = if is_unset(spec, "backoffLimitPerIndex") {
        6
    } else {
        i64::from(i32::MAX)
    };
    set_default(spec, "backoffLimit", json!(backoff));
    set_default(spec, "completionMode", json!("NonIndexed"));
    set_default(spec, "suspend", json!(false));
    let has_failure_policy = !is_unset(spec, "podFailurePolicy");
    if let Some(policy) = existing(spec, "podFailurePolicy") {
        for rule in each(policy, "rules") {
            for pattern in each(rule, "onPodConditions") {
                set_if_zero(pattern, "status", json!("True"));
            }
        }
    }
    let replacement = if has_failure_policy {
        "Failed"
    } else {
        "TerminatingOrFailed"
    };
    set_default(spec, "podReplacementPolicy", json!(replacement));
    template_of(spec);
}

/// Upstream Job strategy `generateSelector`, applied when the Job has a name and uid and
/// did not ask for a manual selector.
fn generate_job_selector(obj: &mut Value) {
    let Some(root) = obj.as_object_mut() else {
        return;
    };
    let meta = root.get("metadata");
    let name = meta
        .and_then(|m| m.get("name"))
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let uid = meta
        .and_then(|m| m.get("uid"))
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let Some(spec) = child(root, "spec") else {
        return;
    };
    if name.is_empty() || uid.is_empty() || spec.get("manualSelector") == Some(&Value::Bool(true)) {
        return;
    }
    if let Some(labels) = child(spec, "template")
        .and_then(|t| child(t, "metadata"))
        .and_then(|m| child(m, "labels"))
    {
        for (key, value) in [
            ("job-name", &name),
            ("batch.kubernetes.io/job-name", &name),
            ("controller-uid", &uid),
            ("batch.kubernetes.io/controller-uid", &uid),
        ] {
            labels.entry(key).or_insert_with(|| json!(value));
        }
    }
    if let Some(match_labels) = child(spec, "selector").and_then(|s| child(s, "matchLabels")) {
        match_labels
            .entry("batch.kubernetes.io/controller-uid")
            .or_insert_with(|| json!(uid));
    }
}

/// Upstream `SetDefaults_CronJob`; the job template's pod template gets pod defaults.
pub(super) fn cron_job(obj: &mut Value) {
    let Some(spec) = spec_of(obj) else { return };
    set_if_zero(spec, "concurrencyPolicy", json!("Allow"));
    set_default(spec, "suspend", json!(false));
    set_default(spec, "successfulJobsHistoryLimit", json!(3));
    set_default(spec, "failedJobsHistoryLimit", json!(1));
    if let Some(job_spec) = existing(spec, "jobTemplate").and_then(|t| existing(t, "spec")) {
        template_of(job_spec);
    }
}
