//! Best-effort Kubernetes events for controller actions, with upstream's reasons and messages
//! ("SuccessfulCreate", "Created pod: web-0", ...).
//!
//! Events are written as core/v1 Events, as upstream controllers do (client-go's event
//! broadcaster), so `kubectl describe` shows them. Repeats of the same event about the same
//! object within ten minutes bump `count`/`lastTimestamp` of the first one instead of
//! creating new objects, like the broadcaster's aggregation. Publishing happens on a spawned
//! task: events are diagnostics, so a slow or failing events endpoint must neither delay nor
//! fail a reconcile; failures are logged at debug.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, Time};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::{Client, Resource};
use parking_lot::Mutex;
use serde_json::json;

const AGGREGATION_WINDOW: Duration = Duration::from_secs(600);
const CACHE_LIMIT: usize = 4096;

type Key = (String, String, String, String);

/// Recently published events: key → (event name, count, first seen).
type Seen = HashMap<Key, (String, i32, Instant)>;

/// Publishes events on behalf of one controller.
#[derive(Clone)]
pub struct EventSink {
    client: Client,
    component: String,
    seen: Arc<Mutex<Seen>>,
}

impl EventSink {
    /// A sink reporting as `component` (e.g. `job-controller`).
    pub fn new(client: Client, component: &str) -> Self {
        EventSink {
            client,
            component: component.to_string(),
            seen: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// Records a Normal event about `obj`.
    pub fn normal<K: Resource<DynamicType = ()>>(&self, obj: &K, reason: &str, message: String) {
        self.publish(obj.object_ref(&()), "Normal", reason, message);
    }

    /// Records a Warning event about `obj`.
    pub fn warning<K: Resource<DynamicType = ()>>(&self, obj: &K, reason: &str, message: String) {
        self.publish(obj.object_ref(&()), "Warning", reason, message);
    }

    /// Records an event about the object `regarding` names (for objects
    /// known by reference only, such as a ReplicationController handled as
    /// a ReplicaSet).
    pub fn about(&self, regarding: ObjectReference, type_: &str, reason: &str, message: String) {
        self.publish(regarding, type_, reason, message);
    }

    fn publish(&self, regarding: ObjectReference, type_: &str, reason: &str, message: String) {
        let key: Key = (
            regarding.uid.clone().unwrap_or_default(),
            type_.to_string(),
            reason.to_string(),
            message.clone(),
        );
        let previous = self.bump(&key);
        let sink = self.clone();
        let (type_, reason) = (type_.to_string(), reason.to_string());
        tokio::spawn(async move {
            let result = match previous {
                Some((name, count)) => sink.increment(&regarding, &name, count).await,
                None => sink.create(regarding, &type_, &reason, message, &key).await,
            };
            if let Err(error) = result {
                tracing::debug!(%error, %reason, "cannot record event");
            }
        });
    }

    /// The aggregated event to bump (name, new count), if this one was seen recently.
    fn bump(&self, key: &Key) -> Option<(String, i32)> {
        let mut seen = self.seen.lock();
        seen.retain(|_, (_, _, at)| at.elapsed() < AGGREGATION_WINDOW);
        let entry = seen.get_mut(key)?;
        entry.1 += 1;
        Some((entry.0.clone(), entry.1))
    }

    async fn create(
        &self,
        regarding: ObjectReference,
        type_: &str,
        reason: &str,
        message: String,
        key: &Key,
    ) -> Result<(), kube::Error> {
        let now = k8s_openapi::jiff::Timestamp::now();
        let ns = regarding
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into());
        let name = format!(
            "{}.{:x}",
            regarding.name.clone().unwrap_or_default(),
            now.as_nanosecond()
        );
        let mut event = Event {
            involved_object: regarding,
            reason: Some(reason.into()),
            message: Some(message),
            type_: Some(type_.into()),
            count: Some(1),
            first_timestamp: Some(Time(now)),
            last_timestamp: Some(Time(now)),
            event_time: None::<MicroTime>,
            source: Some(EventSource {
                component: Some(self.component.clone()),
                host: None,
            }),
            reporting_component: Some(self.component.clone()),
            reporting_instance: Some(self.component.clone()),
            ..Default::default()
        };
        event.metadata.name = Some(name.clone());
        event.metadata.namespace = Some(ns.clone());
        Api::<Event>::namespaced(self.client.clone(), &ns)
            .create(&PostParams::default(), &event)
            .await?;
        let mut seen = self.seen.lock();
        if seen.len() < CACHE_LIMIT {
            seen.insert(key.clone(), (name, 1, Instant::now()));
        }
        Ok(())
    }

    async fn increment(
        &self,
        regarding: &ObjectReference,
        name: &str,
        count: i32,
    ) -> Result<(), kube::Error> {
        let ns = regarding
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into());
        let now = k8s_openapi::jiff::Timestamp::now();
        let patch = Patch::Merge(json!({"count": count, "lastTimestamp": Time(now)}));
        Api::<Event>::namespaced(self.client.clone(), &ns)
            .patch(name, &PatchParams::default(), &patch)
            .await
            .map(|_| ())
    }
}
