//! The eviction subresource: a pod is deleted only if its
//! PodDisruptionBudget allows it (upstream `pkg/registry/core/pod/storage/
//! eviction.go`).
//!
//! An eviction spends one of the budget's `disruptionsAllowed` and records
//! the pod in `status.disruptedPods`, in one compare-and-swap on the
//! budget, before the pod is deleted: two concurrent evictions cannot spend
//! the same slot. When none is left the answer is 429 TooManyRequests with
//! the budget named in the causes; `kubectl drain` waits and retries on it.
//! Pods that are terminal, pending or already being deleted are evicted
//! without a budget, as are unready pods while the budget is still met
//! (`unhealthyPodEvictionPolicy: IfHealthyBudget`, or always with
//! `AlwaysAllow`).

use serde_json::{Value, json};

use super::{Api, Call, Reply};
use crate::api::object;
use crate::api::registry::resources;
use crate::api::selectors::LabelSelector;
use crate::api::status::{ApiError, ApiResult, Cause, success_status};
use crate::api::strategy;
use crate::store::Store;

/// More recorded evictions than this means the controller is not keeping
/// up (upstream `MaxDisruptedPodSize`).
const MAX_DISRUPTED_PODS: usize = 2000;

fn too_many_requests(cause: String) -> ApiError {
    ApiError::new(
        429,
        "TooManyRequests",
        "Cannot evict pod as it would violate the pod's disruption budget.",
    )
    .with_causes(vec![Cause {
        reason: "DisruptionBudget".into(),
        field: String::new(),
        message: cause,
    }])
}

/// The budget after spending one disruption on `pod_name`; None when the
/// eviction needs none (an unready pod while the budget holds) or is a dry
/// run; the refusal when none is left.
fn spend(
    current: &Value,
    name: &str,
    pod_name: &str,
    pod_ready: bool,
    dry_run: bool,
) -> ApiResult<Option<Value>> {
    let status = &current["status"];
    let healthy = status["currentHealthy"].as_i64().unwrap_or(0);
    let desired = status["desiredHealthy"].as_i64().unwrap_or(0);
    if !pod_ready {
        let always = current["spec"]["unhealthyPodEvictionPolicy"] == "AlwaysAllow";
        if always || healthy >= desired {
            return Ok(None);
        }
    }
    let generation = current["metadata"]["generation"].as_i64().unwrap_or(0);
    if status["observedGeneration"].as_i64().unwrap_or(0) < generation {
        return Err(too_many_requests(format!(
            "The disruption budget {name} is still being processed by the server."
        )));
    }
    let allowed = status["disruptionsAllowed"].as_i64().unwrap_or(0);
    if allowed < 0 {
        return Err(ApiError::forbidden("pdb disruptions allowed is negative"));
    }
    if status["disruptedPods"]
        .as_object()
        .is_some_and(|d| d.len() > MAX_DISRUPTED_PODS)
    {
        return Err(ApiError::forbidden(
            "DisruptedPods map too big - too many evictions not confirmed by PDB controller",
        ));
    }
    if allowed == 0 {
        return Err(too_many_requests(format!(
            "The disruption budget {name} needs {desired} healthy pods and has {healthy} currently"
        )));
    }
    if dry_run {
        return Ok(None);
    }
    let mut updated = current.clone();
    updated["status"]["disruptionsAllowed"] = json!(allowed - 1);
    if !updated["status"]["disruptedPods"].is_object() {
        updated["status"]["disruptedPods"] = json!({});
    }
    updated["status"]["disruptedPods"][pod_name] = json!(object::now_rfc3339());
    Ok(Some(updated))
}

fn is_ready(pod: &Value) -> bool {
    pod["status"]["conditions"].as_array().is_some_and(|cs| {
        cs.iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
    })
}

impl<S: Store> Api<S> {
    pub(super) async fn evict(&self, call: &Call<'_>) -> ApiResult<Reply> {
        let eviction = strategy::decode_body(call.body, call.content_type)?;
        let namespace = call.target.namespace.clone().unwrap_or_default();
        let name = call.target.name.clone().unwrap_or_default();
        let pods = call.target.info;
        let (pod, _) = self
            .current(pods, &pods.key(Some(&namespace), &name), &name)
            .await?;
        let dry_run = call.query.dry_run()?
            || eviction["deleteOptions"]["dryRun"]
                .as_array()
                .is_some_and(|d| d.iter().any(|v| v == "All"));
        let exempt = matches!(
            pod["status"]["phase"].as_str(),
            Some("Succeeded" | "Failed" | "Pending")
        ) || object::is_deleting(&pod);
        if !exempt {
            self.spend_disruption(&namespace, &pod, dry_run).await?;
        }
        if !dry_run {
            self.delete_evicted(call).await?;
        }
        Ok(Reply::with_code(201, success_status(None)))
    }

    /// Checks the pod's budget and spends one disruption from it.
    async fn spend_disruption(&self, namespace: &str, pod: &Value, dry_run: bool) -> ApiResult<()> {
        let info = resources::find("policy", "v1", "poddisruptionbudgets")
            .ok_or_else(|| ApiError::internal("poddisruptionbudgets are not registered"))?;
        self.cache.wait_for(self.store.current_revision()).await?;
        let (cached, _) = self.cache.list(&info.key(Some(namespace), ""), |_| true);
        let budgets: Vec<Value> = cached
            .iter()
            .map(|c| c.value())
            .filter(|pdb| {
                !pdb["spec"]["selector"].is_null()
                    && LabelSelector::from_json(&pdb["spec"]["selector"])
                        .is_ok_and(|s| s.matches_object(pod))
            })
            .collect();
        let budget = match budgets.as_slice() {
            [] => return Ok(()),
            [one] => one,
            _ => {
                return Err(ApiError::internal(
                    "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.",
                ));
            }
        };
        let name = object::name(budget).unwrap_or("").to_string();
        let pod_name = object::name(pod).unwrap_or("").to_string();
        self.guaranteed_update(info, Some(namespace), &name, |current| {
            spend(current, &name, &pod_name, is_ready(pod), dry_run)
        })
        .await
        .map(|_| ())
    }

    /// Deletes the evicted pod (with the eviction's delete options).
    async fn delete_evicted(&self, call: &Call<'_>) -> ApiResult<()> {
        let target = crate::api::request::Target {
            subresource: None,
            ..call.target.clone()
        };
        let delete = Call {
            method: "DELETE",
            body: &bytes::Bytes::new(),
            rendering: super::Rendering::Object,
            target: &target,
            ..*call
        };
        self.delete(&delete).await.map(|_| ())
    }
}
