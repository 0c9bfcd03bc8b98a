//! Pod writes of the Job controller: creating pods from the template (with the tracking
//! finalizer and, for Indexed Jobs, the completion index), deleting pods, and removing the
//! tracking finalizer.
//!
//! Creations go out in "slow start" batches (1, 2, 4, ...) and stop at the first failing
//! batch, like upstream, so a quota or admission problem costs one request rather than
//! hundreds. Every successful write is recorded in the expectations before the reconcile
//! ends, so the next reconcile waits for the cache to catch up.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::future::join_all;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{EnvVar, EnvVarSource, ObjectFieldSelector, Pod};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::json;

use super::Ctx;
use super::indexed::{COMPLETION_INDEX_ANNOTATION, COMPLETION_INDEX_ENV};
use super::state::{TRACKING_FINALIZER, has_tracking_finalizer};
use crate::controllers::batch_common::ControllerError;
use crate::controllers::batch_common::error::{is_namespace_terminating, is_not_found};
use crate::controllers::batch_common::ownership::controller_ref;
use crate::controllers::batch_common::pods::is_ready;

/// The pod to create for a Job (upstream `GetPodFromTemplate` plus the Job's additions).
pub fn pod_for(job: &Job, index: Option<i32>) -> Pod {
    let name = job.name_any();
    let template = job
        .spec
        .as_ref()
        .map(|s| s.template.clone())
        .unwrap_or_default();
    let meta = template.metadata.unwrap_or_default();
    let mut pod = Pod {
        spec: template.spec,
        ..Default::default()
    };
    pod.metadata.namespace = job.namespace();
    pod.metadata.labels = meta.labels;
    pod.metadata.annotations = meta.annotations;
    let mut finalizers = meta.finalizers.unwrap_or_default();
    if !finalizers.iter().any(|f| f == TRACKING_FINALIZER) {
        finalizers.push(TRACKING_FINALIZER.into());
    }
    pod.metadata.finalizers = Some(finalizers);
    pod.metadata.owner_references = controller_ref(job).map(|r| vec![r]);
    pod.metadata.generate_name = Some(match index {
        Some(ix) => format!("{name}-{ix}-"),
        None => format!("{name}-"),
    });
    if let Some(ix) = index {
        add_index(&mut pod, &name, ix);
    }
    pod
}

/// Stamps a completion index on a pod: annotation, label, hostname and env var.
fn add_index(pod: &mut Pod, job_name: &str, ix: i32) {
    let value = ix.to_string();
    pod.metadata
        .annotations
        .get_or_insert_with(BTreeMap::new)
        .insert(COMPLETION_INDEX_ANNOTATION.into(), value.clone());
    pod.metadata
        .labels
        .get_or_insert_with(BTreeMap::new)
        .insert(COMPLETION_INDEX_ANNOTATION.into(), value);
    let Some(spec) = pod.spec.as_mut() else {
        return;
    };
    spec.hostname = Some(format!("{job_name}-{ix}"));
    let containers = spec
        .init_containers
        .iter_mut()
        .flatten()
        .chain(spec.containers.iter_mut());
    for c in containers {
        let env = c.env.get_or_insert_with(Vec::new);
        if env.iter().any(|e| e.name == COMPLETION_INDEX_ENV) {
            continue;
        }
        env.push(EnvVar {
            name: COMPLETION_INDEX_ENV.into(),
            value: None,
            value_from: Some(EnvVarSource {
                field_ref: Some(ObjectFieldSelector {
                    api_version: None,
                    field_path: format!("metadata.labels['{COMPLETION_INDEX_ANNOTATION}']"),
                }),
                ..Default::default()
            }),
        });
    }
}

/// Creates pods (one per index for Indexed Jobs, `count` otherwise) in slow-start batches.
///
/// Returns how many were created and the first error.
pub(super) async fn create_pods(
    ctx: &Ctx,
    job: &Job,
    count: usize,
    indexes: &[i32],
) -> (usize, Option<ControllerError>) {
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &job.namespace().unwrap_or_default());
    let templates: Vec<Pod> = if indexes.is_empty() {
        (0..count).map(|_| pod_for(job, None)).collect()
    } else {
        indexes.iter().map(|ix| pod_for(job, Some(*ix))).collect()
    };
    let mut created = 0;
    let mut pending = templates.as_slice();
    let mut batch = 1;
    while !pending.is_empty() {
        let (now, rest) = pending.split_at(batch.min(pending.len()));
        let results = join_all(now.iter().map(|p| create_one(ctx, &api, job, p))).await;
        let mut first_error = None;
        for r in results {
            match r {
                Ok(true) => created += 1,
                Ok(false) => {}
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        if first_error.is_some() {
            return (created, first_error);
        }
        pending = rest;
        batch *= 2;
    }
    (created, None)
}

async fn create_one(
    ctx: &Ctx,
    api: &Api<Pod>,
    job: &Job,
    pod: &Pod,
) -> Result<bool, ControllerError> {
    match api.create(&PostParams::default(), pod).await {
        Ok(created) => {
            let uid = job.uid().unwrap_or_default();
            ctx.expectations.expect_creation(
                &uid,
                &created.name_any(),
                &created.uid().unwrap_or_default(),
            );
            ctx.events.normal(
                job,
                "SuccessfulCreate",
                format!("Created pod: {}", created.name_any()),
            );
            Ok(true)
        }
        Err(e) if is_namespace_terminating(&e) => Ok(false),
        Err(e) => {
            ctx.events
                .warning(job, "FailedCreate", format!("Error creating: {e}"));
            Err(e.into())
        }
    }
}

/// Deletes pods, first removing their tracking finalizer when `uncount` (pods deleted for
/// scaling or suspension must not count as failures).
///
/// Returns (deleted ready pods, deleted pods, first error).
pub(super) async fn delete_pods(
    ctx: &Ctx,
    job: &Job,
    pods: &[Arc<Pod>],
    uncount: bool,
) -> (i32, i32, Option<ControllerError>) {
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &job.namespace().unwrap_or_default());
    let results = join_all(pods.iter().map(|p| delete_one(ctx, &api, job, p, uncount))).await;
    let (mut ready, mut deleted, mut error) = (0, 0, None);
    for (pod, r) in pods.iter().zip(results) {
        match r {
            Ok(()) => {
                deleted += 1;
                if is_ready(pod) {
                    ready += 1;
                }
            }
            Err(e) => {
                error.get_or_insert(e);
            }
        }
    }
    (ready, deleted, error)
}

async fn delete_one(
    ctx: &Ctx,
    api: &Api<Pod>,
    job: &Job,
    pod: &Pod,
    uncount: bool,
) -> Result<(), ControllerError> {
    let name = pod.name_any();
    if uncount && has_tracking_finalizer(pod) {
        remove_finalizer(api, &name).await?;
    }
    let job_uid = job.uid().unwrap_or_default();
    ctx.expectations
        .expect_deletion(&job_uid, &name, &pod.uid().unwrap_or_default());
    match api.delete(&name, &DeleteParams::default()).await {
        Ok(_) => {
            ctx.events
                .normal(job, "SuccessfulDelete", format!("Deleted pod: {name}"));
            Ok(())
        }
        Err(e) if is_not_found(&e) => Ok(()),
        Err(e) => {
            ctx.expectations
                .forget_child(&job_uid, &pod.uid().unwrap_or_default());
            ctx.events
                .warning(job, "FailedDelete", format!("Error deleting: {e}"));
            Err(e.into())
        }
    }
}

/// Removes the tracking finalizer (a vanished pod counts as done).
pub async fn remove_finalizer(api: &Api<Pod>, name: &str) -> Result<(), ControllerError> {
    let patch = Patch::Strategic(json!({
        "metadata": { "$deleteFromPrimitiveList/finalizers": [TRACKING_FINALIZER] }
    }));
    match api.patch(name, &PatchParams::default(), &patch).await {
        Ok(_) => Ok(()),
        Err(e) if is_not_found(&e) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::batch::v1::JobSpec;
    use k8s_openapi::api::core::v1::{Container, PodSpec, PodTemplateSpec};

    fn job() -> Job {
        let mut j = Job {
            spec: Some(JobSpec {
                template: PodTemplateSpec {
                    metadata: None,
                    spec: Some(PodSpec {
                        containers: vec![Container {
                            name: "c".into(),
                            ..Default::default()
                        }],
                        ..Default::default()
                    }),
                },
                ..Default::default()
            }),
            ..Default::default()
        };
        j.metadata.name = Some("pi".into());
        j.metadata.namespace = Some("default".into());
        j.metadata.uid = Some("uid-1".into());
        j
    }

    #[test]
    fn pods_carry_the_tracking_finalizer_and_a_controller_reference() {
        let p = pod_for(&job(), None);
        assert_eq!(p.metadata.generate_name.as_deref(), Some("pi-"));
        assert!(has_tracking_finalizer(&p));
        let owner = p.metadata.owner_references.unwrap_or_default();
        assert_eq!(owner.len(), 1);
        assert_eq!(
            (owner[0].kind.as_str(), owner[0].controller),
            ("Job", Some(true))
        );
    }

    #[test]
    fn indexed_pods_get_index_annotation_label_hostname_and_env() {
        let p = pod_for(&job(), Some(3));
        assert_eq!(p.metadata.generate_name.as_deref(), Some("pi-3-"));
        let ann = p.metadata.annotations.unwrap_or_default();
        assert_eq!(
            ann.get(COMPLETION_INDEX_ANNOTATION).map(String::as_str),
            Some("3")
        );
        let spec = p.spec.unwrap_or_default();
        assert_eq!(spec.hostname.as_deref(), Some("pi-3"));
        let env = spec.containers[0].env.clone().unwrap_or_default();
        assert_eq!(env[0].name, COMPLETION_INDEX_ENV);
    }
}
