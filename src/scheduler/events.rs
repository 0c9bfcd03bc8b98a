//! What the scheduler tells users about a pod that did not fit: the FailedScheduling
//! message, the Event object carrying it, and the PodScheduled=False condition patch.
//!
//! The message reproduces upstream's `FitError.Error()`:
//! `0/3 nodes are available: 1 Insufficient cpu, 2 node(s) had untolerated taint {k: v}.`
//! with "`<count> <reason>`" items sorted as strings. Preemption is not implemented, so the
//! "preemption: ..." suffix upstream appends is omitted. Building objects here (pure
//! functions) keeps the API side in `binder` trivial and the wording unit-testable.

use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use serde_json::{Value, json};

use super::filter::{Plugins, Reason};
use super::podinfo::PodInfo;

/// Message when the cluster has no node at all (upstream `ErrNoNodesAvailable`).
pub const NO_NODES_MESSAGE: &str = "no nodes available to schedule pods";
/// Events longer than this are truncated like upstream's event recorder does.
const MAX_MESSAGE_LEN: usize = 1024;

/// Why no node fits a pod.
#[derive(Debug, Clone, Default)]
pub struct FitError {
    /// Nodes considered (all live nodes).
    pub num_all_nodes: usize,
    /// Rejections per reason.
    pub reasons: HashMap<Reason, usize>,
    /// A whole-pod rejection before any node was looked at.
    pub pre_filter_msg: Option<String>,
    /// Plugins that rejected at least one node.
    pub plugins: Plugins,
}

impl FitError {
    /// Upstream-format message.
    pub fn message(&self) -> String {
        if self.num_all_nodes == 0 && self.pre_filter_msg.is_none() {
            return NO_NODES_MESSAGE.to_string();
        }
        let mut msg = format!("0/{} nodes are available:", self.num_all_nodes);
        if let Some(pf) = &self.pre_filter_msg {
            msg.push_str(&format!(" {pf}."));
            return msg;
        }
        let mut items: Vec<String> = self
            .reasons
            .iter()
            .map(|(reason, n)| format!("{n} {reason}"))
            .collect();
        items.sort();
        if !items.is_empty() {
            msg.push_str(&format!(" {}.", items.join(", ")));
        }
        msg
    }
}

fn truncate(message: &str) -> String {
    if message.len() <= MAX_MESSAGE_LEN {
        return message.to_string();
    }
    let mut end = MAX_MESSAGE_LEN - 3;
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &message[..end])
}

fn timestamp(now: SystemTime) -> Timestamp {
    let micros = now
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros())
        .unwrap_or(0);
    Timestamp::from_microsecond(i64::try_from(micros).unwrap_or(0)).unwrap_or(Timestamp::UNIX_EPOCH)
}

fn whole_seconds(now: SystemTime) -> Timestamp {
    let secs = now
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    Timestamp::from_second(i64::try_from(secs).unwrap_or(0)).unwrap_or(Timestamp::UNIX_EPOCH)
}

/// A core/v1 Warning Event "FailedScheduling" about `pod`.
pub fn failed_scheduling_event(
    pod: &PodInfo,
    message: &str,
    component: &str,
    instance: &str,
    now: SystemTime,
) -> Event {
    pod_event(
        pod,
        ("Warning", "FailedScheduling", "Scheduling"),
        message,
        (component, instance),
        now,
    )
}

/// An Event about `pod`: `(type, reason, action)`, from `(component,
/// instance)`.
pub fn pod_event(
    pod: &PodInfo,
    (type_, reason, action): (&str, &str, &str),
    message: &str,
    (component, instance): (&str, &str),
    now: SystemTime,
) -> Event {
    let nanos = now
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let seconds = Time(whole_seconds(now));
    Event {
        metadata: ObjectMeta {
            name: Some(format!("{}.{:x}", pod.name, nanos)),
            namespace: Some(pod.namespace.clone()),
            ..Default::default()
        },
        involved_object: ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Pod".into()),
            name: Some(pod.name.clone()),
            namespace: Some(pod.namespace.clone()),
            uid: Some(pod.uid.clone()),
            resource_version: Some(pod.resource_version.clone()).filter(|s| !s.is_empty()),
            ..Default::default()
        },
        reason: Some(reason.into()),
        message: Some(truncate(message)),
        type_: Some(type_.into()),
        action: Some(action.into()),
        source: Some(EventSource {
            component: Some(component.into()),
            host: None,
        }),
        reporting_component: Some(component.into()),
        reporting_instance: Some(instance.into()),
        first_timestamp: Some(seconds.clone()),
        last_timestamp: Some(seconds),
        event_time: Some(MicroTime(timestamp(now))),
        count: Some(1),
        ..Default::default()
    }
}

/// Strategic-merge patch setting PodScheduled=False/Unschedulable with `message`, or None
/// when the pod already carries exactly that condition (no write needed).
pub fn unschedulable_condition_patch(
    pod: &PodInfo,
    message: &str,
    now: SystemTime,
) -> Option<Value> {
    let message = truncate(message);
    let current = pod.scheduled_condition.as_ref();
    if current
        .is_some_and(|c| c.status == "False" && c.reason == "Unschedulable" && c.message == message)
    {
        return None;
    }
    let mut cond = json!({
        "type": "PodScheduled",
        "status": "False",
        "reason": "Unschedulable",
        "message": message,
        "lastProbeTime": null,
    });
    if current.is_none_or(|c| c.status != "False") {
        cond["lastTransitionTime"] = json!(Time(whole_seconds(now)));
    }
    Some(json!({"status": {"conditions": [cond]}}))
}

#[cfg(test)]
mod tests;
