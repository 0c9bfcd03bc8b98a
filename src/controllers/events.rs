//! Kubernetes Events for what the workload controllers do (pods created and
//! deleted, replica sets scaled), so `kubectl describe` tells the same story
//! as upstream.
//!
//! Events are best effort: each is published on its own task so a slow or
//! failing events API never delays or fails a reconcile; a failed publish is
//! only logged.

use k8s_openapi::api::core::v1::ObjectReference;
use kube::Client;
use kube::core::Resource;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};

/// Publishes events on behalf of one controller.
#[derive(Clone)]
pub struct EventSink {
    recorder: Recorder,
}

impl EventSink {
    /// An event sink reporting as `controller` (e.g. `replicaset-controller`).
    pub fn new(client: Client, controller: &str) -> Self {
        let reporter = Reporter {
            controller: controller.to_owned(),
            instance: None,
        };
        Self {
            recorder: Recorder::new(client, reporter),
        }
    }

    /// A `Normal` event about `regarding`.
    pub fn normal<K: Resource<DynamicType = ()>>(&self, regarding: &K, reason: &str, note: String) {
        self.emit(regarding.object_ref(&()), EventType::Normal, reason, note);
    }

    /// A `Warning` event about `regarding`.
    pub fn warning<K: Resource<DynamicType = ()>>(
        &self,
        regarding: &K,
        reason: &str,
        note: String,
    ) {
        self.emit(regarding.object_ref(&()), EventType::Warning, reason, note);
    }

    fn emit(&self, regarding: ObjectReference, type_: EventType, reason: &str, note: String) {
        let recorder = self.recorder.clone();
        let event = Event {
            type_,
            reason: reason.to_owned(),
            note: Some(note),
            action: reason.to_owned(),
            secondary: None,
        };
        tokio::spawn(async move {
            if let Err(err) = recorder.publish(&event, &regarding).await {
                tracing::debug!(reason = %event.reason, error = %err, "cannot publish event");
            }
        });
    }
}
