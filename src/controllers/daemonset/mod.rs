//! The DaemonSet controller (upstream `pkg/controller/daemon`): one pod per eligible node.
//!
//! A node is eligible when the pod template's node selector and required node affinity
//! match it and it has no taint the pods do not tolerate (daemon pods get upstream's default
//! tolerations for not-ready/unreachable/pressure/unschedulable nodes). Pods are not bound
//! directly: like upstream they carry a required node affinity on `metadata.name` and the
//! scheduler binds them. Template changes roll out with `RollingUpdate` (`maxUnavailable`,
//! or `maxSurge` to start the new pod before the old one goes) or wait for manual deletion
//! with `OnDelete`; each template is recorded as a ControllerRevision whose hash labels the
//! pods.
//!
//! Design: the sync decisions are pure ([`plan`], [`predicates`]); [`sync`] reads the pod,
//! node and revision caches, writes, and records expectations so the next sync does not act
//! on a cache that has not seen those writes. Node events only trigger syncs when something
//! scheduling-relevant changed (labels, taints, unschedulable, condition statuses), so
//! heartbeats cost nothing. Failed daemon pods are replaced with per-node exponential
//! backoff (1 s doubling to 15 min) to avoid fighting a kubelet that keeps rejecting them.

mod history;
pub mod plan;
pub mod predicates;
mod sync;

use crate::client::informer::SharedInformers;
use std::collections::HashMap;
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{ControllerRevision, DaemonSet};
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::jiff::Timestamp;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Client, ResourceExt};
use parking_lot::Mutex;
use tokio_util::sync::CancellationToken;

use crate::client::events::EventSink;
use crate::controllers::batch_common::ControllerError;
use crate::controllers::batch_common::expectations::{ChildView, Expectations};
use crate::controllers::batch_common::ownership::{controller_of, ref_is_kind};
use crate::controllers::batch_common::runtime::{LoopConfig, Runner, object_ref};
use crate::controllers::batch_common::selector::Matcher;
use crate::controllers::batch_common::time::{plus_seconds, since, until};

/// Settings of the DaemonSet controller.
#[derive(Debug, Clone)]
pub struct DaemonSetConfig {
    /// DaemonSets reconciled in parallel (upstream `--concurrent-daemonset-syncs`, 2).
    pub concurrency: u16,
    /// Most pods created or deleted per sync (upstream `BurstReplicas`, 250).
    pub burst_replicas: usize,
    /// First delay before replacing a failed pod on a node.
    pub failed_pod_backoff: Duration,
    /// Cap of that delay.
    pub max_failed_pod_backoff: Duration,
}

impl Default for DaemonSetConfig {
    fn default() -> Self {
        DaemonSetConfig {
            concurrency: 2,
            burst_replicas: 250,
            failed_pod_backoff: Duration::from_secs(1),
            max_failed_pod_backoff: Duration::from_secs(15 * 60),
        }
    }
}

/// Per-node backoff for deleting failed daemon pods (upstream `failedPodsBackoff`).
#[derive(Default)]
struct FailedPodBackoff {
    entries: Mutex<HashMap<String, (Duration, Timestamp)>>,
}

impl FailedPodBackoff {
    /// `Some(wait)` while `key` is backing off; otherwise steps the backoff and returns None.
    fn check(
        &self,
        key: &str,
        now: Timestamp,
        initial: Duration,
        max: Duration,
    ) -> Option<Duration> {
        let mut entries = self.entries.lock();
        if let Some((delay, last)) = entries.get(key).copied() {
            let elapsed = since(now, last);
            if elapsed < delay {
                return Some(delay - elapsed);
            }
            let next = if elapsed > max.saturating_mul(2) {
                initial
            } else {
                delay.saturating_mul(2).min(max)
            };
            entries.insert(key.to_string(), (next, now));
        } else {
            entries.insert(key.to_string(), (initial, now));
        }
        None
    }
}

struct Ctx {
    client: Client,
    pods: Store<Pod>,
    nodes: Store<Node>,
    revisions: Store<ControllerRevision>,
    expectations: Arc<Expectations>,
    failed_backoff: FailedPodBackoff,
    events: EventSink,
    config: DaemonSetConfig,
}

/// Runs the DaemonSet controller until `cancel` fires.
pub async fn run(
    informers: SharedInformers,
    config: DaemonSetConfig,
    cancel: CancellationToken,
) -> Result<(), ControllerError> {
    let client = informers.client();
    let expectations = Arc::new(Expectations::default());
    let forget = expectations.clone();
    let mut runner = Runner::new(&informers.get::<DaemonSet>(), move |ds: &DaemonSet| {
        forget.forget(&ds.uid().unwrap_or_default());
    });
    let sets = runner.store();
    let pods = runner.watch(
        &informers.get::<Pod>(),
        pod_mapper(sets.clone(), expectations.clone()),
    );
    let nodes = runner.watch(&informers.get::<Node>(), node_mapper(sets.clone()));
    let revisions = runner.watch(
        &informers.get::<ControllerRevision>(),
        |rev: &ControllerRevision, _| {
            owner_of(
                rev.metadata.namespace.as_deref(),
                controller_of(&rev.metadata),
            )
        },
    );
    let loop_config = LoopConfig {
        name: "daemonset-controller",
        concurrency: config.concurrency,
        debounce: Duration::from_millis(100),
        retry_base: Duration::from_millis(500),
        retry_max: Duration::from_secs(60),
        shutdown_grace: Duration::from_secs(30),
    };
    let ctx = Arc::new(Ctx {
        events: EventSink::new(client.clone(), "daemonset-controller"),
        client,
        pods,
        nodes,
        revisions,
        expectations,
        failed_backoff: FailedPodBackoff::default(),
        config,
    });
    runner.run(loop_config, ctx, cancel, sync::reconcile).await;
    Ok(())
}

fn owner_of(
    ns: Option<&str>,
    owner: Option<&k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference>,
) -> Vec<ObjectRef<DaemonSet>> {
    owner
        .filter(|r| ref_is_kind(r, "apps", "DaemonSet"))
        .map(|r| object_ref(ns.unwrap_or_default(), &r.name))
        .into_iter()
        .collect()
}

/// Pod events: check off expectations and sync the owner (or, for orphans, every
/// DaemonSet whose selector matches, since it may adopt the pod).
fn pod_mapper(
    sets: Store<DaemonSet>,
    expectations: Arc<Expectations>,
) -> impl Fn(&Pod, bool) -> Vec<ObjectRef<DaemonSet>> + Send + Sync + 'static {
    move |pod: &Pod, deleted: bool| {
        let ns = pod.namespace().unwrap_or_default();
        match controller_of(&pod.metadata) {
            Some(owner) if ref_is_kind(owner, "apps", "DaemonSet") => {
                let view = ChildView {
                    uid: pod.uid().unwrap_or_default(),
                    deleting: deleted || pod.metadata.deletion_timestamp.is_some(),
                    has_finalizer: false,
                };
                expectations.observe(&owner.uid, &view, deleted);
                owner_of(Some(&ns), Some(owner))
            }
            Some(_) => Vec::new(),
            None => sets
                .state_filter(|d| d.metadata.namespace.as_deref() == Some(ns.as_str()))
                .iter()
                .filter(|d| {
                    Matcher::new(Some(&d.spec.selector))
                        .is_ok_and(|m| m.matches(pod.metadata.labels.as_ref()))
                })
                .map(|d| ObjectRef::from_obj(d.as_ref()))
                .collect(),
        }
    }
}

/// What about a node can change where daemons run.
fn node_fingerprint(node: &Node) -> u64 {
    let mut h = DefaultHasher::new();
    node.metadata.labels.hash(&mut h);
    if let Some(spec) = &node.spec {
        spec.unschedulable.hash(&mut h);
        for t in spec.taints.iter().flatten() {
            (&t.key, &t.value, &t.effect).hash(&mut h);
        }
    }
    for c in node
        .status
        .iter()
        .flat_map(|s| s.conditions.iter().flatten())
    {
        (&c.type_, &c.status).hash(&mut h);
    }
    h.finish()
}

/// Node events: sync every DaemonSet, but only when a scheduling-relevant field changed.
fn node_mapper(
    sets: Store<DaemonSet>,
) -> impl Fn(&Node, bool) -> Vec<ObjectRef<DaemonSet>> + Send + Sync + 'static {
    let seen: Mutex<HashMap<String, u64>> = Mutex::new(HashMap::new());
    move |node: &Node, deleted: bool| {
        let name = node.name_any();
        let changed = if deleted {
            seen.lock().remove(&name);
            true
        } else {
            let fp = node_fingerprint(node);
            seen.lock().insert(name, fp) != Some(fp)
        };
        if !changed {
            return Vec::new();
        }
        sets.state()
            .iter()
            .map(|d| ObjectRef::from_obj(d.as_ref()))
            .collect()
    }
}

/// When a pod that is ready but not yet available will become available.
fn availability_due(ready_since: Timestamp, min_ready_seconds: i32, now: Timestamp) -> Duration {
    until(now, plus_seconds(ready_since, i64::from(min_ready_seconds)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: i64) -> Timestamp {
        Timestamp::from_second(s).unwrap_or(Timestamp::UNIX_EPOCH)
    }

    #[test]
    fn failed_pod_backoff_doubles_and_waits_out_the_remainder() {
        let b = FailedPodBackoff::default();
        let (one, max) = (Duration::from_secs(1), Duration::from_secs(60));
        assert_eq!(b.check("k", ts(100), one, max), None);
        assert_eq!(b.check("k", ts(100), one, max), Some(one));
        assert_eq!(b.check("k", ts(101), one, max), None);
        assert_eq!(b.check("k", ts(102), one, max), Some(one));
        assert_eq!(b.check("k", ts(103), one, max), None);
    }

    #[test]
    fn node_fingerprint_ignores_heartbeats_but_not_taints() {
        use k8s_openapi::api::core::v1::{NodeCondition, NodeSpec, NodeStatus, Taint};
        use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
        let mut n = Node {
            status: Some(NodeStatus {
                conditions: Some(vec![NodeCondition {
                    type_: "Ready".into(),
                    status: "True".into(),
                    last_heartbeat_time: Some(Time(ts(1))),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        };
        let before = node_fingerprint(&n);
        if let Some(c) = n.status.as_mut().and_then(|s| s.conditions.as_mut()) {
            c[0].last_heartbeat_time = Some(Time(ts(2)));
        }
        assert_eq!(before, node_fingerprint(&n));
        n.spec = Some(NodeSpec {
            taints: Some(vec![Taint {
                key: "k".into(),
                effect: "NoSchedule".into(),
                ..Default::default()
            }]),
            ..Default::default()
        });
        assert_ne!(before, node_fingerprint(&n));
    }

    #[test]
    fn availability_is_due_min_ready_seconds_after_readiness() {
        assert_eq!(
            availability_due(ts(100), 10, ts(104)),
            Duration::from_secs(6)
        );
        assert_eq!(availability_due(ts(100), 10, ts(200)), Duration::ZERO);
    }
}
