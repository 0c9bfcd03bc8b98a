//! Disruption controller: keeps each PodDisruptionBudget's status current
//! (upstream `pkg/controller/disruption`): how many of its pods are
//! expected, how many are healthy, how many must stay healthy, and so how
//! many may be disrupted now.
//!
//! The apiserver's eviction subresource reads `disruptionsAllowed` and
//! spends it, recording each evicted pod in `status.disruptedPods` so that
//! two evictions cannot spend the same slot; this controller drops those
//! records once the pod is gone or after [`DELETION_TIMEOUT`] and counts a
//! recorded pod as unhealthy until then.
//!
//! `expectedPods` is the scale of the pods' controllers (ReplicaSets,
//! StatefulSets, ReplicationControllers; Deployments through their
//! ReplicaSets) when the budget is a percentage or a `maxUnavailable`;
//! for an integer `minAvailable` it is simply the number of pods, as
//! upstream.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::{Pod, ReplicationController};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::{Action, Config};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Client, ResourceExt};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::informer::{self, Backoff, Queue, touched};
use super::label_selector::LabelMatcher;
use super::pod_state;
use crate::client::informer::{SharedInformers, key_of};
use crate::client::timestamps;

/// How long an evicted pod may take to go away before its slot is given
/// back (upstream `DeletionTimeout`).
const DELETION_TIMEOUT: Duration = Duration::from_secs(120);

/// Failures of the disruption controller.
#[derive(Debug, thiserror::Error)]
pub enum DisruptionError {
    /// Writing the budget's status failed.
    #[error("updating status of PodDisruptionBudget {namespace}/{name}: {source}")]
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
    pods: Store<Pod>,
    replica_sets: Store<ReplicaSet>,
    stateful_sets: Store<StatefulSet>,
    controllers: Store<ReplicationController>,
    backoff: Backoff,
}

/// Runs the disruption controller until `cancel` fires.
pub async fn run(
    informers: SharedInformers,
    cancel: CancellationToken,
) -> Result<(), DisruptionError> {
    let client = informers.client();
    let queue = Queue::<PodDisruptionBudget>::new();
    let (budgets, pdb_task) = informer::spawn(
        &informers.get::<PodDisruptionBudget>(),
        cancel.clone(),
        queue.self_trigger(),
    );
    let sender = queue.sender.clone();
    let pdb_store = budgets.clone();
    let (pods, pod_task) =
        informer::spawn(&informers.get::<Pod>(), cancel.clone(), move |event, _| {
            let Some(pod) = touched(event) else { return };
            let ns = pod.metadata.namespace.as_deref();
            for pdb in pdb_store.state() {
                if pdb.metadata.namespace.as_deref() == ns {
                    let _ = sender.unbounded_send(ObjectRef::from_obj(&*pdb));
                }
            }
        });
    let (replica_sets, rs_task) =
        informer::spawn(&informers.get::<ReplicaSet>(), cancel.clone(), |_, _| {});
    let (stateful_sets, ss_task) =
        informer::spawn(&informers.get::<StatefulSet>(), cancel.clone(), |_, _| {});
    let (controllers, rc_task) = informer::spawn(
        &informers.get::<ReplicationController>(),
        cancel.clone(),
        |_, _| {},
    );
    let ready = informer::wait_ready(&[&pods], &cancel).await
        && informer::wait_ready(&[&replica_sets], &cancel).await
        && informer::wait_ready(&[&stateful_sets], &cancel).await
        && informer::wait_ready(&[&controllers], &cancel).await;
    if ready {
        let ctx = Arc::new(Ctx {
            client,
            pods,
            replica_sets,
            stateful_sets,
            controllers,
            backoff: Backoff::default(),
        });
        informer::drive(
            budgets,
            queue,
            reconcile_boxed,
            error_policy,
            ctx,
            Config::default().concurrency(2),
            cancel,
        )
        .await;
    }
    for task in [pdb_task, pod_task, rs_task, ss_task, rc_task] {
        task.abort();
    }
    Ok(())
}

fn reconcile_boxed(
    pdb: Arc<PodDisruptionBudget>,
    ctx: Arc<Ctx>,
) -> std::pin::Pin<Box<dyn Future<Output = Result<Action, DisruptionError>> + Send>> {
    Box::pin(reconcile(pdb, ctx))
}

fn error_policy(pdb: Arc<PodDisruptionBudget>, err: &DisruptionError, ctx: Arc<Ctx>) -> Action {
    tracing::warn!(error = %err, "disruption budget sync failed");
    Action::requeue(
        ctx.backoff
            .next_delay(&key_of(&*pdb), Duration::from_secs(60)),
    )
}

/// What the status of a budget should say.
#[derive(Debug, PartialEq)]
struct Computed {
    expected: i32,
    current_healthy: i32,
    desired_healthy: i32,
    allowed: i32,
    disrupted: BTreeMap<String, String>,
    /// Why the numbers could not be computed, if they could not.
    error: Option<String>,
    /// When the oldest recorded eviction expires.
    recheck: Option<Duration>,
}

/// `value` scaled against `total`, rounding up (upstream
/// `GetScaledValueFromIntOrPercent`).
fn scaled(value: &IntOrString, total: i32, field: &'static str) -> Result<i32, String> {
    super::batch_common::intstr::scaled_value(value, total, true, field).map_err(|e| e.to_string())
}

impl Ctx {
    /// The scale of a pod's controller: (controller uid, replicas).
    fn controller_scale(&self, pod: &Pod) -> Option<(String, i32)> {
        let owner = super::owner::controller_of(&pod.metadata)?;
        let ns = pod.metadata.namespace.as_deref()?;
        let matches_uid = |meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta| {
            meta.uid.as_deref() == Some(owner.uid.as_str())
        };
        match owner.kind.as_str() {
            "ReplicaSet" => self
                .replica_sets
                .get(&ObjectRef::new(&owner.name).within(ns))
                .filter(|rs| matches_uid(&rs.metadata))
                .map(|rs| (owner.uid.clone(), rs.spec.replicas.unwrap_or(1))),
            "StatefulSet" => self
                .stateful_sets
                .get(&ObjectRef::new(&owner.name).within(ns))
                .filter(|s| matches_uid(&s.metadata))
                .map(|s| (owner.uid.clone(), s.spec.replicas.unwrap_or(1))),
            "ReplicationController" => self
                .controllers
                .get(&ObjectRef::new(&owner.name).within(ns))
                .filter(|rc| matches_uid(&rc.metadata))
                .map(|rc| {
                    (
                        owner.uid.clone(),
                        rc.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1),
                    )
                }),
            _ => None,
        }
    }

    fn compute(&self, pdb: &PodDisruptionBudget, now: std::time::SystemTime) -> Computed {
        let ns = pdb.namespace().unwrap_or_default();
        let spec = pdb.spec.clone().unwrap_or_default();
        let mut out = Computed {
            expected: 0,
            current_healthy: 0,
            desired_healthy: 0,
            allowed: 0,
            disrupted: BTreeMap::new(),
            error: None,
            recheck: None,
        };
        let matcher = match LabelMatcher::parse(spec.selector.as_ref()) {
            Ok(m) => m,
            Err(e) => {
                out.error = Some(e);
                return out;
            }
        };
        let pods: Vec<Arc<Pod>> = self
            .pods
            .state()
            .into_iter()
            .filter(|p| p.metadata.namespace.as_deref() == Some(ns.as_str()))
            .filter(|p| matcher.matches(p.metadata.labels.as_ref()))
            .collect();
        let live: BTreeSet<String> = pods
            .iter()
            .filter(|p| !pod_state::is_terminating(p))
            .map(|p| p.name_any())
            .collect();
        // Evictions still in flight: the pod exists and the record is fresh.
        for (name, at) in pdb
            .status
            .as_ref()
            .and_then(|s| s.disrupted_pods.clone())
            .unwrap_or_default()
        {
            let since = now.duration_since(at.0.into()).unwrap_or_default();
            if live.contains(&name) && since < DELETION_TIMEOUT {
                let left = DELETION_TIMEOUT - since;
                out.recheck = Some(out.recheck.map_or(left, |r| r.min(left)));
                out.disrupted.insert(name, timestamps::rfc3339(at.0.into()));
            }
        }
        out.current_healthy = pods
            .iter()
            .filter(|p| {
                !pod_state::is_terminating(p)
                    && pod_state::is_ready(p)
                    && !out.disrupted.contains_key(&p.name_any())
            })
            .count() as i32;
        let by_count = matches!(spec.min_available, Some(IntOrString::Int(_)));
        if by_count {
            out.expected = pods.len() as i32;
        } else {
            let mut scales = BTreeMap::new();
            for pod in &pods {
                match self.controller_scale(pod) {
                    Some((uid, replicas)) => {
                        scales.insert(uid, replicas);
                    }
                    None => {
                        out.error =
                            Some(format!("found no controllers for pod {:?}", pod.name_any()));
                        return out;
                    }
                }
            }
            out.expected = scales.values().sum();
        }
        let desired = match (&spec.min_available, &spec.max_unavailable) {
            (Some(min), _) => scaled(min, out.expected, "spec.minAvailable"),
            (None, Some(max)) => {
                scaled(max, out.expected, "spec.maxUnavailable").map(|m| (out.expected - m).max(0))
            }
            (None, None) => Ok(0),
        };
        match desired {
            Ok(d) => out.desired_healthy = d,
            Err(e) => {
                out.error = Some(e);
                return out;
            }
        }
        out.allowed = (out.current_healthy - out.desired_healthy).max(0);
        out
    }
}

#[tracing::instrument(skip_all, fields(pdb = %key_of(&*pdb)))]
async fn reconcile(
    pdb: Arc<PodDisruptionBudget>,
    ctx: Arc<Ctx>,
) -> Result<Action, DisruptionError> {
    let now = std::time::SystemTime::now();
    let c = ctx.compute(&pdb, now);
    let generation = pdb.metadata.generation.unwrap_or(0);
    let (condition_status, reason, message) = match &c.error {
        Some(e) => ("False", "SyncFailed", e.clone()),
        None if c.allowed > 0 => ("True", "SufficientPods", String::new()),
        None => ("False", "InsufficientPods", String::new()),
    };
    let old = pdb.status.clone().unwrap_or_default();
    let old_condition = old
        .conditions
        .as_ref()
        .and_then(|cs| cs.iter().find(|c| c.type_ == "DisruptionAllowed"));
    let transition = match old_condition {
        Some(oc) if oc.status == condition_status => {
            timestamps::rfc3339(oc.last_transition_time.0.into())
        }
        _ => timestamps::rfc3339(now),
    };
    let old_disrupted: BTreeMap<String, String> = old
        .disrupted_pods
        .clone()
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, timestamps::rfc3339(v.0.into())))
        .collect();
    let unchanged = old.observed_generation == Some(generation)
        && old.expected_pods == Some(c.expected)
        && old.current_healthy == Some(c.current_healthy)
        && old.desired_healthy == Some(c.desired_healthy)
        && old.disruptions_allowed == Some(c.allowed)
        && old_disrupted == c.disrupted
        && old_condition.is_some_and(|oc| {
            oc.status == condition_status
                && oc.reason == reason
                && oc.message == message
                && oc.observed_generation == Some(generation)
        });
    if !unchanged {
        let mut disrupted = serde_json::Map::new();
        for k in old_disrupted.keys() {
            disrupted.insert(k.clone(), serde_json::Value::Null);
        }
        for (k, v) in &c.disrupted {
            disrupted.insert(k.clone(), json!(v));
        }
        let status = json!({"status": {
            "observedGeneration": generation,
            "expectedPods": c.expected,
            "currentHealthy": c.current_healthy,
            "desiredHealthy": c.desired_healthy,
            "disruptionsAllowed": c.allowed,
            "disruptedPods": disrupted,
            "conditions": [{
                "type": "DisruptionAllowed",
                "status": condition_status,
                "reason": reason,
                "message": message,
                "observedGeneration": generation,
                "lastTransitionTime": transition,
            }],
        }});
        let ns = pdb.namespace().unwrap_or_default();
        Api::<PodDisruptionBudget>::namespaced(ctx.client.clone(), &ns)
            .patch_status(
                &pdb.name_any(),
                &PatchParams::default(),
                &Patch::Merge(status),
            )
            .await
            .map_err(|source| DisruptionError::Status {
                namespace: ns.clone(),
                name: pdb.name_any(),
                source,
            })?;
    }
    ctx.backoff.reset(&key_of(&*pdb));
    Ok(match c.recheck {
        Some(after) => Action::requeue(after + Duration::from_millis(100)),
        None if c.error.is_some() => Action::requeue(Duration::from_secs(10)),
        None => Action::await_change(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentages_round_up() {
        let f = "spec.minAvailable";
        assert_eq!(scaled(&IntOrString::String("50%".into()), 3, f), Ok(2));
        assert_eq!(scaled(&IntOrString::String("100%".into()), 4, f), Ok(4));
        assert_eq!(scaled(&IntOrString::Int(2), 10, f), Ok(2));
        assert!(scaled(&IntOrString::String("x".into()), 1, f).is_err());
    }
}
