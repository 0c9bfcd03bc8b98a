//! The StatefulSet controller (upstream `pkg/controller/statefulset`): pods with stable names
//! `<set>-<ordinal>`, hostnames under `spec.serviceName`, and per-ordinal PersistentVolumeClaims
//! `<claim>-<set>-<ordinal>` from `volumeClaimTemplates`.
//!
//! With `OrderedReady` pods are created in ordinal order, each only once its predecessor is
//! Running and Ready, and removed in reverse order; `Parallel` drops the ordering. Template
//! changes roll out with `RollingUpdate` from the highest ordinal down to `partition`,
//! `maxUnavailable` at a time, or wait for manual deletion with `OnDelete`; revisions are
//! ControllerRevisions and pods are labelled with the revision name. Claims are owned by the
//! set and/or the pod as `persistentVolumeClaimRetentionPolicy` says, so the garbage
//! collector deletes them (or not) with their owners.
//!
//! Design: [`plan`] turns per-ordinal facts into the ordered list of writes; [`control`]
//! gathers the facts from the pod, claim and revision caches and executes the plan until a
//! write fails. Expectations keep a sync from acting on a cache that has not seen the
//! previous sync's writes. Failures: apiserver errors are retried with per-set backoff; a
//! claim that is being deleted blocks its pod until it is gone.

mod control;
pub mod identity;
pub mod plan;
mod pods;
mod revisions;

use crate::client::informer::SharedInformers;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{ControllerRevision, StatefulSet};
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Client, ResourceExt};
use tokio_util::sync::CancellationToken;

use self::identity::is_member;
use crate::client::events::EventSink;
use crate::controllers::batch_common::ControllerError;
use crate::controllers::batch_common::expectations::{ChildView, Expectations};
use crate::controllers::batch_common::ownership::{controller_of, ref_is_kind};
use crate::controllers::batch_common::runtime::{LoopConfig, Runner, object_ref};
use crate::controllers::batch_common::selector::Matcher;

/// Settings of the StatefulSet controller.
#[derive(Debug, Clone)]
pub struct StatefulSetConfig {
    /// StatefulSets reconciled in parallel (upstream `--concurrent-statefulset-syncs`, 5).
    pub concurrency: u16,
}

impl Default for StatefulSetConfig {
    fn default() -> Self {
        StatefulSetConfig { concurrency: 5 }
    }
}

struct Ctx {
    client: Client,
    pods: Store<Pod>,
    claims: Store<PersistentVolumeClaim>,
    revisions: Store<ControllerRevision>,
    expectations: Arc<Expectations>,
    events: EventSink,
}

/// Runs the StatefulSet controller until `cancel` fires.
pub async fn run(
    informers: SharedInformers,
    config: StatefulSetConfig,
    cancel: CancellationToken,
) -> Result<(), ControllerError> {
    let client = informers.client();
    let expectations = Arc::new(Expectations::default());
    let forget = expectations.clone();
    let mut runner = Runner::new(&informers.get::<StatefulSet>(), move |s: &StatefulSet| {
        forget.forget(&s.uid().unwrap_or_default());
    });
    let sets = runner.store();
    let pods = runner.watch(
        &informers.get::<Pod>(),
        pod_mapper(sets, expectations.clone()),
    );
    let claims = runner.watch(
        &informers.get::<PersistentVolumeClaim>(),
        |_: &PersistentVolumeClaim, _| Vec::new(),
    );
    let revisions = runner.watch(
        &informers.get::<ControllerRevision>(),
        |rev: &ControllerRevision, _| {
            let ns = rev.namespace().unwrap_or_default();
            controller_of(&rev.metadata)
                .filter(|r| ref_is_kind(r, "apps", "StatefulSet"))
                .map(|r| object_ref(&ns, &r.name))
                .into_iter()
                .collect()
        },
    );
    let ctx = Arc::new(Ctx {
        events: EventSink::new(client.clone(), "statefulset-controller"),
        client,
        pods,
        claims,
        revisions,
        expectations,
    });
    let loop_config = LoopConfig {
        name: "statefulset-controller",
        concurrency: config.concurrency,
        debounce: Duration::from_millis(100),
        retry_base: Duration::from_millis(500),
        retry_max: Duration::from_secs(60),
        shutdown_grace: Duration::from_secs(30),
    };
    runner
        .run(loop_config, ctx, cancel, control::reconcile)
        .await;
    Ok(())
}

/// Pod events: check off expectations and sync the owning set, or every set that could
/// adopt an orphan.
fn pod_mapper(
    sets: Store<StatefulSet>,
    expectations: Arc<Expectations>,
) -> impl Fn(&Pod, bool) -> Vec<ObjectRef<StatefulSet>> + Send + Sync + 'static {
    move |pod: &Pod, deleted: bool| {
        let ns = pod.namespace().unwrap_or_default();
        match controller_of(&pod.metadata) {
            Some(owner) if ref_is_kind(owner, "apps", "StatefulSet") => {
                let view = ChildView {
                    uid: pod.uid().unwrap_or_default(),
                    deleting: deleted || pod.metadata.deletion_timestamp.is_some(),
                    has_finalizer: false,
                };
                expectations.observe(&owner.uid, &view, deleted);
                vec![object_ref(&ns, &owner.name)]
            }
            Some(_) => Vec::new(),
            None => sets
                .state_filter(|s| s.metadata.namespace.as_deref() == Some(ns.as_str()))
                .iter()
                .filter(|s| is_member(s, pod))
                .filter(|s| {
                    Matcher::new(Some(&s.spec.selector))
                        .is_ok_and(|m| m.matches(pod.metadata.labels.as_ref()))
                })
                .map(|s| ObjectRef::from_obj(s.as_ref()))
                .collect(),
        }
    }
}
