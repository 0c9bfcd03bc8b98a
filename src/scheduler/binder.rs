//! Writes to the apiserver: pod bindings, FailedScheduling events, PodScheduled conditions.
//!
//! Binding is `POST pods/<name>/binding` with the pod's UID as precondition, like upstream's
//! DefaultBinder. A 409 (already bound) or 404 (pod gone) means there is nothing left to do
//! for this pod; other errors are returned so the caller can forget the assumption and retry.
//! Event and condition writes are best effort: failures are logged, never retried, because a
//! missing event must not hold up scheduling.

use std::time::SystemTime;

use k8s_openapi::api::core::v1::{Binding, Event, ObjectReference, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};

use super::events::{failed_scheduling_event, pod_event, unschedulable_condition_patch};
use super::podinfo::PodInfo;
use super::preemption::Candidate;

/// Result of a binding attempt.
#[derive(Debug)]
pub enum BindOutcome {
    /// The pod is now bound to the node.
    Bound,
    /// The pod is already bound (409) or gone (404): drop it.
    Dropped(String),
    /// Anything else: retry later.
    Failed(kube::Error),
}

/// Client-side writer shared by binding and failure-reporting tasks.
#[derive(Clone)]
pub struct ApiWriter {
    client: Client,
    component: String,
    instance: String,
}

impl ApiWriter {
    /// A writer reporting as `component` (the scheduler name).
    pub fn new(client: Client, component: &str) -> Self {
        let host = std::env::var("HOSTNAME")
            .ok()
            .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
            .map(|h| h.trim().to_string())
            .filter(|h| !h.is_empty());
        let instance = match host {
            Some(h) => format!("{component}-{h}"),
            None => component.to_string(),
        };
        ApiWriter {
            client,
            component: component.to_string(),
            instance,
        }
    }

    /// Binds `pod` to `node`.
    pub async fn bind(&self, pod: &PodInfo, node: &str) -> BindOutcome {
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &pod.namespace);
        let binding = Binding {
            metadata: ObjectMeta {
                name: Some(pod.name.clone()),
                namespace: Some(pod.namespace.clone()),
                uid: Some(pod.uid.clone()),
                ..Default::default()
            },
            target: ObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Node".into()),
                name: Some(node.to_string()),
                ..Default::default()
            },
        };
        let pp = PostParams::default();
        match api
            .create_subresource::<_, serde_json::Value>("binding", &pod.name, &pp, &binding)
            .await
        {
            Ok(_) => BindOutcome::Bound,
            Err(kube::Error::Api(s)) if s.code == 409 || s.code == 404 => {
                BindOutcome::Dropped(s.message)
            }
            Err(e) => BindOutcome::Failed(e),
        }
    }

    /// Records an event about `pod`; best effort.
    async fn record(&self, pod: &PodInfo, kind: (&str, &str, &str), message: &str) {
        let event = pod_event(
            pod,
            kind,
            message,
            (&self.component, &self.instance),
            SystemTime::now(),
        );
        let events: Api<Event> = Api::namespaced(self.client.clone(), &pod.namespace);
        if let Err(e) = events.create(&PostParams::default(), &event).await {
            tracing::warn!(pod = %pod.key(), error = %e, reason = kind.1, "cannot record event");
        }
    }

    /// Records the `Scheduled` event of a pod just bound.
    pub async fn report_scheduled(&self, pod: &PodInfo, node: &str) {
        let message = format!(
            "Successfully assigned {}/{} to {node}",
            pod.namespace, pod.name
        );
        self.record(pod, ("Normal", "Scheduled", "Binding"), &message)
            .await;
    }

    /// Carries out a preemption: nominates the node on `pod`, then marks and
    /// deletes each victim (upstream `prepareCandidate`).
    pub async fn preempt(&self, pod: &PodInfo, candidate: &Candidate) {
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), &pod.namespace);
        let nominate = serde_json::json!({"status": {"nominatedNodeName": candidate.node}});
        if let Err(e) = pods
            .patch_status(&pod.name, &PatchParams::default(), &Patch::Merge(nominate))
            .await
        {
            tracing::warn!(pod = %pod.key(), error = %e, "cannot nominate node");
            return;
        }
        for victim in &candidate.victims {
            let api: Api<Pod> = Api::namespaced(self.client.clone(), &victim.namespace);
            let now = crate::client::timestamps::now_rfc3339();
            let condition = serde_json::json!({"status": {"conditions": [{
                "type": "DisruptionTarget", "status": "True", "reason": "PreemptionByScheduler",
                "message": format!("{}: preempting to accommodate a higher priority pod", self.component),
                "lastTransitionTime": now}]}});
            if let Err(e) = api
                .patch_status(
                    &victim.name,
                    &PatchParams::default(),
                    &Patch::Strategic(condition),
                )
                .await
            {
                tracing::debug!(pod = %victim.key(), error = %e, "cannot mark preemption victim");
            }
            let message = format!("Preempted by pod {} on node {}", pod.uid, candidate.node);
            match api
                .delete(
                    &victim.name,
                    &DeleteParams::default().preconditions(kube::api::Preconditions {
                        uid: Some(victim.uid.clone()),
                        resource_version: None,
                    }),
                )
                .await
            {
                Ok(_) => {
                    self.record(victim, ("Normal", "Preempted", "Preempting"), &message)
                        .await;
                }
                Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => {}
                Err(e) => {
                    tracing::warn!(pod = %victim.key(), error = %e, "cannot delete preemption victim")
                }
            }
        }
    }

    /// Records a FailedScheduling event and sets PodScheduled=False (when it changed).
    pub async fn report_unschedulable(&self, pod: &PodInfo, message: &str) {
        let now = SystemTime::now();
        let event = failed_scheduling_event(pod, message, &self.component, &self.instance, now);
        let events: Api<Event> = Api::namespaced(self.client.clone(), &pod.namespace);
        if let Err(e) = events.create(&PostParams::default(), &event).await {
            tracing::warn!(pod = %pod.key(), error = %e, "cannot record FailedScheduling event");
        }
        let Some(patch) = unschedulable_condition_patch(pod, message, now) else {
            return;
        };
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), &pod.namespace);
        let pp = PatchParams::default();
        match pods
            .patch_status(&pod.name, &pp, &Patch::Strategic(patch))
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => {
                tracing::warn!(pod = %pod.key(), error = %e, "cannot set PodScheduled condition")
            }
        }
    }
}
