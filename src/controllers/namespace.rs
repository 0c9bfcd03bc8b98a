//! Namespace controller: empties a terminating namespace and releases its `kubernetes`
//! finalizer (upstream `pkg/controller/namespace`).
//!
//! A namespace being deleted keeps `spec.finalizers: [kubernetes]` until this controller has
//! deleted every namespaced object in it; the apiserver removes the namespace once that token
//! is gone through `PUT /api/v1/namespaces/<ns>/finalize`. Each pass discovers the preferred
//! namespaced resources, deletes pods first (their workloads may still need the secrets and
//! service accounts that go later), deletes everything else with background propagation, counts
//! what is left and reports it in the upstream status conditions. Content held by finalizers of
//! other controllers is simply waited for, pass after pass.
//!
//! Failure: discovery or deletion errors are reported in the conditions and the pass is
//! retried with backoff; the namespace is never finalized while anything might remain.

use crate::client::informer::SharedInformers;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Namespace, NamespaceCondition};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Config};
use kube::{Client, ResourceExt};
use tokio_util::sync::CancellationToken;

use super::api_status::{is_not_found, status_code};
use super::informer::{self, Backoff, Queue};
use super::resource_discovery::{DiscoveredResource, discover};

/// The finalizer token this controller owns.
pub const FINALIZER: &str = "kubernetes";
/// Assumed seconds for a finalizer to finish, as upstream (`finalizerEstimateSeconds`).
const FINALIZER_ESTIMATE_SECS: i64 = 15;

/// Configuration of the namespace controller.
#[derive(Debug, Clone)]
pub struct NamespaceConfig {
    /// Namespaces emptied in parallel (upstream `--concurrent-namespace-syncs`, 10).
    pub concurrency: u16,
}

impl Default for NamespaceConfig {
    fn default() -> Self {
        Self { concurrency: 10 }
    }
}

/// Failures of one namespace deletion pass.
#[derive(Debug, thiserror::Error)]
pub enum NamespaceError {
    /// The API groups could not be listed at all.
    #[error("discovering resources: {0}")]
    Discovery(#[source] kube::Error),
    /// Some group-versions or resource types failed; the pass is retried.
    #[error("namespace {namespace}: {message}")]
    Incomplete {
        /// The namespace.
        namespace: String,
        /// What failed.
        message: String,
    },
    /// Writing the namespace (status or finalize) failed.
    #[error("updating namespace {namespace}: {source}")]
    Update {
        /// The namespace.
        namespace: String,
        /// The API error.
        source: kube::Error,
    },
}

/// What one deletion pass left behind.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct ContentReport {
    /// Remaining objects per group resource (`pods.`, `deployments.apps`).
    pub remaining: BTreeMap<String, usize>,
    /// Remaining objects per finalizer.
    pub finalizers: BTreeMap<String, usize>,
    /// Resource types that could not be deleted or listed, with the error.
    pub errors: Vec<String>,
    /// Seconds the remaining content is expected to take (pod grace periods, finalizers).
    pub estimate_secs: i64,
}

struct Ctx {
    client: Client,
    backoff: Backoff,
}

/// Runs the namespace controller until `cancel` fires.
pub async fn run(
    informers: SharedInformers,
    config: NamespaceConfig,
    cancel: CancellationToken,
) -> Result<(), NamespaceError> {
    let client = informers.client();
    let queue = Queue::<Namespace>::new();
    let (namespaces, task) = informer::spawn(
        &informers.get::<Namespace>(),
        cancel.clone(),
        queue.self_trigger(),
    );
    let ctx = Arc::new(Ctx {
        client,
        backoff: Backoff::default(),
    });
    let applier = Config::default().concurrency(config.concurrency);
    informer::drive(
        namespaces,
        queue,
        reconcile_boxed,
        error_policy,
        ctx,
        applier,
        cancel,
    )
    .await;
    task.abort();
    Ok(())
}

fn reconcile_boxed(
    ns: Arc<Namespace>,
    ctx: Arc<Ctx>,
) -> std::pin::Pin<Box<dyn Future<Output = Result<Action, NamespaceError>> + Send>> {
    Box::pin(reconcile(ns, ctx))
}

fn error_policy(ns: Arc<Namespace>, err: &NamespaceError, ctx: Arc<Ctx>) -> Action {
    tracing::warn!(error = %err, "namespace deletion pass failed");
    Action::requeue(
        ctx.backoff
            .next_delay(&ns.name_any(), Duration::from_secs(60)),
    )
}

fn has_finalizer(ns: &Namespace) -> bool {
    ns.spec
        .as_ref()
        .and_then(|s| s.finalizers.as_ref())
        .is_some_and(|f| f.iter().any(|f| f == FINALIZER))
}

#[tracing::instrument(skip_all, fields(namespace = %ns.name_any()))]
async fn reconcile(ns: Arc<Namespace>, ctx: Arc<Ctx>) -> Result<Action, NamespaceError> {
    if ns.metadata.deletion_timestamp.is_none() || !has_finalizer(&ns) {
        return Ok(Action::await_change());
    }
    let name = ns.name_any();
    let discovered = discover(&ctx.client)
        .await
        .map_err(NamespaceError::Discovery)?;
    let resources: Vec<DiscoveredResource> = discovered
        .resources
        .into_iter()
        .filter(|r| r.namespaced && r.supports(&["delete"]))
        .collect();
    let report = delete_content(&ctx.client, &name, &resources).await;
    let failures: Vec<String> = discovered
        .failures
        .iter()
        .map(|(gv, err)| format!("{gv}: {err}"))
        .collect();
    let conditions = merge_conditions(
        ns.status
            .as_ref()
            .and_then(|s| s.conditions.as_deref())
            .unwrap_or_default(),
        desired_conditions(&failures, &report),
    );
    if let Some(conditions) = conditions {
        let patch = serde_json::json!({"status": {"conditions": conditions}});
        match Api::<Namespace>::all(ctx.client.clone())
            .patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => {}
            Err(err) if is_not_found(&err) => return Ok(Action::await_change()),
            Err(source) => {
                return Err(NamespaceError::Update {
                    namespace: name,
                    source,
                });
            }
        }
    }
    if !failures.is_empty() || !report.errors.is_empty() {
        let message = failures
            .iter()
            .chain(&report.errors)
            .cloned()
            .collect::<Vec<_>>()
            .join("; ");
        return Err(NamespaceError::Incomplete {
            namespace: name,
            message,
        });
    }
    if !report.remaining.is_empty() {
        let secs = u64::try_from(report.estimate_secs / 2 + 1).unwrap_or(1);
        tracing::debug!(remaining = ?report.remaining, "content remains");
        return Ok(Action::requeue(Duration::from_secs(secs)));
    }
    finalize(&ctx.client, &ns).await?;
    ctx.backoff.reset(&name);
    Ok(Action::await_change())
}

/// Removes [`FINALIZER`] from `spec.finalizers` through the finalize subresource.
async fn finalize(client: &Client, ns: &Namespace) -> Result<(), NamespaceError> {
    let name = ns.name_any();
    let mut update = ns.clone();
    let mut rest: Vec<String> = ns
        .spec
        .as_ref()
        .and_then(|s| s.finalizers.clone())
        .unwrap_or_default()
        .into_iter()
        .filter(|f| f != FINALIZER)
        .collect();
    rest.sort();
    rest.dedup();
    update.spec.get_or_insert_with(Default::default).finalizers = Some(rest);
    update.metadata.managed_fields = None;
    match Api::<Namespace>::all(client.clone())
        .replace_subresource("finalize", &name, &PostParams::default(), &update)
        .await
    {
        Ok(_) => {
            tracing::info!("namespace content removed, finalized");
            Ok(())
        }
        Err(err) if is_not_found(&err) => Ok(()),
        Err(source) => Err(NamespaceError::Update {
            namespace: name,
            source,
        }),
    }
}

/// Deletes everything in `namespace`, pods first, and reports what is left.
pub async fn delete_content(
    client: &Client,
    namespace: &str,
    resources: &[DiscoveredResource],
) -> ContentReport {
    let mut report = ContentReport::default();
    let (pods, others): (Vec<_>, Vec<_>) = resources
        .iter()
        .partition(|r| r.resource.group.is_empty() && r.resource.plural == "pods");
    for resource in &pods {
        delete_resource(client, namespace, resource, &mut report).await;
    }
    if !report.remaining.is_empty() {
        return report;
    }
    for resource in others {
        delete_resource(client, namespace, resource, &mut report).await;
    }
    report
}

async fn delete_resource(
    client: &Client,
    namespace: &str,
    resource: &DiscoveredResource,
    report: &mut ContentReport,
) {
    let api = Api::<DynamicObject>::namespaced_with(client.clone(), namespace, &resource.resource);
    let group_resource = resource.group_resource();
    let mut deleted_collection = false;
    if resource.supports(&["deletecollection"]) {
        match api
            .delete_collection(&DeleteParams::background(), &ListParams::default())
            .await
        {
            Ok(_) => deleted_collection = true,
            // Upstream treats 404/405 as "not supported after all" and falls back.
            Err(err) if matches!(status_code(&err), Some(404) | Some(405)) => {}
            Err(err) => {
                report.errors.push(format!("{group_resource}: {err}"));
                return;
            }
        }
    }
    if !resource.supports(&["list"]) {
        return;
    }
    let items = match api.list_metadata(&ListParams::default()).await {
        Ok(list) => list.items,
        Err(err) => {
            report.errors.push(format!("{group_resource}: {err}"));
            return;
        }
    };
    for item in &items {
        if !deleted_collection
            && item.metadata.deletion_timestamp.is_none()
            && let Err(err) = api
                .delete(&item.name_any(), &DeleteParams::background())
                .await
            && !is_not_found(&err)
        {
            report
                .errors
                .push(format!("{group_resource} {}: {err}", item.name_any()));
        }
        let finalizers = item.metadata.finalizers.as_deref().unwrap_or_default();
        for finalizer in finalizers {
            *report.finalizers.entry(finalizer.clone()).or_default() += 1;
        }
        let grace = item.metadata.deletion_grace_period_seconds.unwrap_or(0);
        let estimate = if finalizers.is_empty() {
            grace
        } else {
            grace.max(FINALIZER_ESTIMATE_SECS)
        };
        report.estimate_secs = report.estimate_secs.max(estimate);
    }
    if !items.is_empty() {
        *report.remaining.entry(group_resource).or_default() += items.len();
    }
}

fn condition(type_: &str, failed: bool, reason: &str, message: String) -> NamespaceCondition {
    NamespaceCondition {
        type_: type_.into(),
        status: if failed { "True" } else { "False" }.into(),
        reason: Some(reason.into()),
        message: Some(message),
        last_transition_time: None,
    }
}

/// A condition that is False (`ok` reason and message) without `problems`, else True.
fn problem_condition(
    type_: &str,
    problems: &[String],
    ok: (&str, &str),
    failed: (&str, String),
) -> NamespaceCondition {
    if problems.is_empty() {
        condition(type_, false, ok.0, ok.1.into())
    } else {
        condition(type_, true, failed.0, failed.1)
    }
}

/// The deletion conditions upstream reports, from discovery failures and a content report.
pub fn desired_conditions(failures: &[String], report: &ContentReport) -> Vec<NamespaceCondition> {
    let errors = &report.errors;
    let remaining: Vec<String> = report
        .remaining
        .iter()
        .map(|(gr, n)| format!("{gr} has {n} resource instances"))
        .collect();
    let finalizers: Vec<String> = report
        .finalizers
        .iter()
        .map(|(f, n)| format!("{f} in {n} resource instances"))
        .collect();
    vec![
        problem_condition(
            "NamespaceDeletionDiscoveryFailure",
            failures,
            (
                "ResourcesDiscovered",
                "All resources successfully discovered",
            ),
            (
                "DiscoveryFailed",
                format!(
                    "Discovery failed for some groups, {} failing: {}",
                    failures.len(),
                    failures.join(", ")
                ),
            ),
        ),
        problem_condition(
            "NamespaceDeletionGroupVersionParsingFailure",
            &[],
            (
                "ParsedGroupVersions",
                "All legacy kube types successfully parsed",
            ),
            ("", String::new()),
        ),
        problem_condition(
            "NamespaceDeletionContentFailure",
            errors,
            (
                "ContentDeleted",
                "All content successfully deleted, may be waiting on finalization",
            ),
            (
                "ContentDeletionFailed",
                format!(
                    "Failed to delete all resource types, {} remaining: {}",
                    errors.len(),
                    errors.join(", ")
                ),
            ),
        ),
        problem_condition(
            "NamespaceContentRemaining",
            &remaining,
            ("ContentRemoved", "All content successfully removed"),
            (
                "SomeResourcesRemain",
                format!("Some resources are remaining: {}", remaining.join(", ")),
            ),
        ),
        problem_condition(
            "NamespaceFinalizersRemaining",
            &finalizers,
            (
                "ContentHasNoFinalizers",
                "All content-preserving finalizers finished",
            ),
            (
                "SomeFinalizersRemain",
                format!(
                    "Some content in the namespace has finalizers remaining: {}",
                    finalizers.join(", ")
                ),
            ),
        ),
    ]
}

/// Merges `desired` into `current`, keeping transition times of unchanged conditions and any
/// foreign condition types; `None` when nothing changed.
pub fn merge_conditions(
    current: &[NamespaceCondition],
    desired: Vec<NamespaceCondition>,
) -> Option<Vec<NamespaceCondition>> {
    let now = Time(k8s_openapi::jiff::Timestamp::now());
    let mut changed = false;
    let mut merged: Vec<NamespaceCondition> = current
        .iter()
        .filter(|c| !desired.iter().any(|d| d.type_ == c.type_))
        .cloned()
        .collect();
    for mut want in desired {
        match current.iter().find(|c| c.type_ == want.type_) {
            Some(have)
                if have.status == want.status
                    && have.reason == want.reason
                    && have.message == want.message =>
            {
                want.last_transition_time = have.last_transition_time.clone();
            }
            Some(have) if have.status == want.status => {
                want.last_transition_time = have.last_transition_time.clone();
                changed = true;
            }
            _ => {
                want.last_transition_time = Some(now.clone());
                changed = true;
            }
        }
        merged.push(want);
    }
    changed.then_some(merged)
}

#[cfg(test)]
mod tests;
