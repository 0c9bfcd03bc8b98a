//! HorizontalPodAutoscaler controller (upstream `pkg/controller/podautoscaler`),
//! for as far as a cluster without a metrics API can go.
//!
//! Every [`RESYNC`] each autoscaler reads its target's scale subresource,
//! reports `currentReplicas` and `desiredReplicas`, and keeps the target
//! within `minReplicas`..`maxReplicas` (upstream rescales out-of-range
//! targets before looking at metrics). Scaling on metrics needs
//! `metrics.k8s.io`, which kelp does not serve yet: the `ScalingActive`
//! condition says so with upstream's reason (`FailedGetResourceMetric`), and
//! `desiredReplicas` stays the current count, exactly what upstream reports
//! when metrics are unavailable.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::core::ApiResource;
use kube::runtime::controller::{Action, Config};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::informer::{self, Backoff, Queue};
use crate::client::events::EventSink;
use crate::client::informer::{SharedInformers, key_of};
use crate::client::timestamps;

/// How often each autoscaler is looked at (upstream's
/// `--horizontal-pod-autoscaler-sync-period`).
const RESYNC: Duration = Duration::from_secs(15);

/// Failures of the autoscaler controller.
#[derive(Debug, thiserror::Error)]
pub enum AutoscalerError {
    /// Writing the autoscaler's status failed.
    #[error("updating status of HorizontalPodAutoscaler {namespace}/{name}: {source}")]
    Status {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
        /// The API error.
        source: kube::Error,
    },
}

struct Ctx {
    client: Client,
    events: EventSink,
    backoff: Backoff,
}

/// Runs the autoscaler controller until `cancel` fires.
pub async fn run(
    informers: SharedInformers,
    cancel: CancellationToken,
) -> Result<(), AutoscalerError> {
    let client = informers.client();
    let queue = Queue::<HorizontalPodAutoscaler>::new();
    let (autoscalers, task) = informer::spawn(
        &informers.get::<HorizontalPodAutoscaler>(),
        cancel.clone(),
        queue.self_trigger(),
    );
    let ctx = Arc::new(Ctx {
        events: EventSink::new(client.clone(), "horizontal-pod-autoscaler"),
        client,
        backoff: Backoff::default(),
    });
    informer::drive(
        autoscalers,
        queue,
        reconcile_boxed,
        error_policy,
        ctx,
        Config::default().concurrency(2),
        cancel,
    )
    .await;
    task.abort();
    Ok(())
}

fn reconcile_boxed(
    hpa: Arc<HorizontalPodAutoscaler>,
    ctx: Arc<Ctx>,
) -> std::pin::Pin<Box<dyn Future<Output = Result<Action, AutoscalerError>> + Send>> {
    Box::pin(reconcile(hpa, ctx))
}

fn error_policy(hpa: Arc<HorizontalPodAutoscaler>, err: &AutoscalerError, ctx: Arc<Ctx>) -> Action {
    tracing::warn!(error = %err, "autoscaler sync failed");
    Action::requeue(
        ctx.backoff
            .next_delay(&key_of(&*hpa), Duration::from_secs(60)),
    )
}

/// The API resource a `scaleTargetRef` names.
fn target_resource(api_version: &str, kind: &str) -> ApiResource {
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let plural = match kind {
        "Deployment" => "deployments".to_string(),
        "ReplicaSet" => "replicasets".to_string(),
        "StatefulSet" => "statefulsets".to_string(),
        "ReplicationController" => "replicationcontrollers".to_string(),
        other => format!("{}s", other.to_lowercase()),
    };
    ApiResource {
        group: group.into(),
        version: version.into(),
        api_version: api_version.into(),
        kind: kind.into(),
        plural,
    }
}

/// One condition as upstream writes it.
fn condition(type_: &str, status: bool, reason: &str, message: &str, old: &Value) -> Value {
    let status = if status { "True" } else { "False" };
    let previous = old["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == type_));
    let since = match previous {
        Some(p) if p["status"] == status => p["lastTransitionTime"].clone(),
        _ => json!(timestamps::now_rfc3339()),
    };
    json!({"type": type_, "status": status, "reason": reason, "message": message, "lastTransitionTime": since})
}

#[tracing::instrument(skip_all, fields(hpa = %key_of(&*hpa)))]
async fn reconcile(
    hpa: Arc<HorizontalPodAutoscaler>,
    ctx: Arc<Ctx>,
) -> Result<Action, AutoscalerError> {
    let namespace = hpa.namespace().unwrap_or_default();
    let name = hpa.name_any();
    let spec = hpa.spec.clone();
    let old = serde_json::to_value(&hpa.status).unwrap_or(Value::Null);
    let target = &spec.scale_target_ref;
    let resource = target_resource(target.api_version.as_deref().unwrap_or(""), &target.kind);
    let targets: Api<DynamicObject> =
        Api::namespaced_with(ctx.client.clone(), &namespace, &resource);
    let min = spec.min_replicas.unwrap_or(1);
    let max = spec.max_replicas;
    let mut status = json!({
        "currentReplicas": old["currentReplicas"].as_i64().unwrap_or(0),
        "desiredReplicas": old["desiredReplicas"].as_i64().unwrap_or(0),
        "observedGeneration": hpa.metadata.generation,
    });
    if let Some(t) = old.get("lastScaleTime").filter(|t| !t.is_null()) {
        status["lastScaleTime"] = t.clone();
    }
    let conditions = match targets.get_scale(&target.name).await {
        Err(e) => {
            let message =
                format!("the HPA controller was unable to get the target's current scale: {e}");
            ctx.events.warning(&*hpa, "FailedGetScale", message.clone());
            vec![condition(
                "AbleToScale",
                false,
                "FailedGetScale",
                &message,
                &old,
            )]
        }
        Ok(scale) => {
            let current = scale.spec.and_then(|s| s.replicas).unwrap_or(0);
            status["currentReplicas"] = json!(current);
            let (desired, active, why) = if current == 0 && min != 0 {
                (
                    0,
                    condition(
                        "ScalingActive",
                        false,
                        "ScalingDisabled",
                        "scaling is disabled since the replica count of the target is zero",
                        &old,
                    ),
                    None,
                )
            } else if current > max {
                (
                    max,
                    condition(
                        "ScalingActive",
                        false,
                        "FailedGetResourceMetric",
                        NO_METRICS,
                        &old,
                    ),
                    Some("Current number of replicas above Spec.MaxReplicas"),
                )
            } else if current < min {
                (
                    min,
                    condition(
                        "ScalingActive",
                        false,
                        "FailedGetResourceMetric",
                        NO_METRICS,
                        &old,
                    ),
                    Some("Current number of replicas below Spec.MinReplicas"),
                )
            } else {
                (
                    current,
                    condition(
                        "ScalingActive",
                        false,
                        "FailedGetResourceMetric",
                        NO_METRICS,
                        &old,
                    ),
                    None,
                )
            };
            status["desiredReplicas"] = json!(desired);
            let mut able = condition(
                "AbleToScale",
                true,
                "SucceededGetScale",
                "the HPA controller was able to get the target's current scale",
                &old,
            );
            if let Some(reason) = why {
                let patch = json!({"spec": {"replicas": desired}});
                match targets
                    .patch_scale(&target.name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                {
                    Ok(_) => {
                        status["lastScaleTime"] = json!(timestamps::now_rfc3339());
                        ctx.events.normal(
                            &*hpa,
                            "SuccessfulRescale",
                            format!("New size: {desired}; reason: {reason}"),
                        );
                        able = condition(
                            "AbleToScale",
                            true,
                            "SucceededRescale",
                            &format!(
                                "the HPA controller was able to update the target scale to {desired}"
                            ),
                            &old,
                        );
                    }
                    Err(e) => {
                        let message = format!(
                            "the HPA controller was unable to update the target scale: {e}"
                        );
                        ctx.events.warning(&*hpa, "FailedRescale", message.clone());
                        able = condition("AbleToScale", false, "FailedUpdateScale", &message, &old);
                    }
                }
            } else if active["reason"] == "FailedGetResourceMetric"
                && !spec.metrics.as_ref().is_some_and(|m| m.is_empty())
            {
                ctx.events
                    .warning(&*hpa, "FailedGetResourceMetric", NO_METRICS.to_string());
            }
            vec![able, active]
        }
    };
    status["conditions"] = Value::Array(conditions);
    let changed = [
        "currentReplicas",
        "desiredReplicas",
        "lastScaleTime",
        "observedGeneration",
    ]
    .iter()
    .any(|f| status.get(*f) != old.get(*f))
        || strip_times(&status["conditions"]) != strip_times(&old["conditions"]);
    if changed {
        Api::<HorizontalPodAutoscaler>::namespaced(ctx.client.clone(), &namespace)
            .patch_status(
                &name,
                &PatchParams::default(),
                &Patch::Merge(json!({"status": status})),
            )
            .await
            .map_err(|source| AutoscalerError::Status {
                namespace: namespace.clone(),
                name: name.clone(),
                source,
            })?;
    }
    ctx.backoff.reset(&key_of(&*hpa));
    Ok(Action::requeue(RESYNC))
}

/// Upstream's message when the resource metrics API has nothing.
const NO_METRICS: &str = "the HPA was unable to compute the replica count: failed to get cpu utilization: unable to get metrics for resource cpu: no metrics returned from resource metrics API";

fn strip_times(conditions: &Value) -> Vec<(Value, Value, Value)> {
    conditions
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| (c["type"].clone(), c["status"].clone(), c["reason"].clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scale_targets_map_to_their_resources() {
        let r = target_resource("apps/v1", "Deployment");
        assert_eq!(
            (r.group.as_str(), r.version.as_str(), r.plural.as_str()),
            ("apps", "v1", "deployments")
        );
        let r = target_resource("v1", "ReplicationController");
        assert_eq!(
            (r.group.as_str(), r.plural.as_str()),
            ("", "replicationcontrollers")
        );
    }
}
