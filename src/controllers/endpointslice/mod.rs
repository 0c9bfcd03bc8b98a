//! EndpointSlice controller: keeps `discovery.k8s.io/v1` EndpointSlices for every Service with
//! a selector (upstream `pkg/controller/endpointslice`).
//!
//! What the slices should hold is computed purely in [`desired`]; this file reads the stores,
//! applies the plan (creates first, then updates, then deletes, so a service never flaps to no
//! endpoints) and guards against its own stale cache: every write is remembered as an
//! expectation (slice present at ≥ resourceVersion, or absent), and a service is not
//! reconciled again until the slice informer has caught up, which is how upstream's
//! `endpointSliceTracker` avoids creating duplicate slices.
//!
//! Failure: API errors fail the reconcile of that Service, retried with per-Service backoff.
//! Pods on nodes not (yet) known are left out and the Service is retried a little later.

mod desired;

use crate::client::informer::SharedInformers;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Node, Pod, Service};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointPort, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Api, DeleteParams, PostParams};
use kube::runtime::controller::{Action, Config};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use parking_lot::Mutex;
use tokio_util::sync::CancellationToken;

pub use desired::{Group, GroupKey, Plan, address_types, desired_groups, plan};

use super::api_status::{is_conflict, is_not_found};
use super::informer::{self, Backoff, Queue, touched};
use super::service_endpoints::{is_service_ip_set, managed_selector, pod_trigger, selected_pods};

/// Label naming the Service a slice belongs to.
pub const LABEL_SERVICE_NAME: &str = "kubernetes.io/service-name";
/// Label naming the controller that manages a slice.
pub const LABEL_MANAGED_BY: &str = "endpointslice.kubernetes.io/managed-by";
/// Value of [`LABEL_MANAGED_BY`] for slices written here.
pub const CONTROLLER_NAME: &str = "endpointslice-controller.k8s.io";
const LABEL_HEADLESS: &str = "service.kubernetes.io/headless";
const LABEL_ZONE: &str = "topology.kubernetes.io/zone";

/// Configuration of the EndpointSlice controller.
#[derive(Debug, Clone)]
pub struct EndpointSliceConfig {
    /// Services reconciled in parallel (upstream `--concurrent-service-endpoint-syncs`, 5).
    pub concurrency: u16,
    /// Most endpoints per slice (upstream `--max-endpoints-per-slice`, 100).
    pub max_endpoints_per_slice: usize,
}

impl Default for EndpointSliceConfig {
    fn default() -> Self {
        Self {
            concurrency: 5,
            max_endpoints_per_slice: 100,
        }
    }
}

/// Failures of the EndpointSlice controller.
#[derive(Debug, thiserror::Error)]
pub enum EndpointSliceError {
    /// Writing or deleting a slice failed.
    #[error("writing endpoint slices of service {service}: {source}")]
    Write {
        /// `namespace/name` of the service.
        service: String,
        /// The API error.
        source: kube::Error,
    },
}

/// What this controller last wrote to a slice, until the informer shows it.
#[derive(Debug, Clone, Copy)]
enum Expect {
    Present(u64, Instant),
    Absent(Instant),
}

/// How long an unmet expectation holds a service back (the slice may have been changed by
/// someone else in between, so it cannot wait forever).
const EXPECTATION_TIMEOUT: Duration = Duration::from_secs(10);

struct Ctx {
    client: Client,
    pods: Store<Pod>,
    nodes: Store<Node>,
    slices: Store<EndpointSlice>,
    config: EndpointSliceConfig,
    backoff: Backoff,
    expectations: Mutex<HashMap<String, HashMap<String, Expect>>>,
}

/// Runs the EndpointSlice controller until `cancel` fires.
pub async fn run(
    informers: SharedInformers,
    config: EndpointSliceConfig,
    cancel: CancellationToken,
) -> Result<(), EndpointSliceError> {
    let client = informers.client();
    let queue = Queue::<Service>::new();
    let (services, svc_task) = informer::spawn(
        &informers.get::<Service>(),
        cancel.clone(),
        queue.self_trigger(),
    );
    let (pods, pod_task) = informer::spawn(
        &informers.get::<Pod>(),
        cancel.clone(),
        pod_trigger(queue.sender.clone(), services.clone()),
    );
    let (slices, slice_task) = informer::spawn(
        &informers.get_with::<EndpointSlice>(
            watcher::Config::default().labels(&format!("{LABEL_MANAGED_BY}={CONTROLLER_NAME}")),
        ),
        cancel.clone(),
        slice_trigger(queue.sender.clone()),
    );
    let nodes = informers.get::<Node>().store();
    let ready = informer::wait_ready(&[&pods], &cancel).await
        && informer::wait_ready(&[&services], &cancel).await
        && informer::wait_ready(&[&slices], &cancel).await
        && informer::wait_ready(&[&nodes], &cancel).await;
    if ready {
        let ctx = Arc::new(Ctx {
            client,
            pods,
            nodes,
            slices,
            config,
            backoff: Backoff::default(),
            expectations: Mutex::new(HashMap::new()),
        });
        let applier = Config::default()
            .concurrency(ctx.config.concurrency)
            .debounce(Duration::from_millis(50));
        informer::drive(
            services,
            queue,
            reconcile_boxed,
            error_policy,
            ctx,
            applier,
            cancel,
        )
        .await;
    }
    for task in [svc_task, pod_task, slice_task] {
        task.abort();
    }
    Ok(())
}

/// Requeues the service a managed slice belongs to.
fn slice_trigger(
    sender: futures::channel::mpsc::UnboundedSender<ObjectRef<Service>>,
) -> impl FnMut(&informer::Change<EndpointSlice>, &Store<EndpointSlice>) + Send + 'static {
    move |event, _| {
        let Some(slice) = touched(event) else { return };
        if let Some(svc) = slice.labels().get(LABEL_SERVICE_NAME) {
            let ns = slice.namespace().unwrap_or_default();
            let _ = sender.unbounded_send(ObjectRef::new(svc).within(&ns));
        }
    }
}

fn reconcile_boxed(
    svc: Arc<Service>,
    ctx: Arc<Ctx>,
) -> std::pin::Pin<Box<dyn Future<Output = Result<Action, EndpointSliceError>> + Send>> {
    Box::pin(reconcile(svc, ctx))
}

fn error_policy(svc: Arc<Service>, err: &EndpointSliceError, ctx: Arc<Ctx>) -> Action {
    tracing::warn!(error = %err, "endpoint slice sync failed");
    Action::requeue(
        ctx.backoff
            .next_delay(&service_key(&svc), Duration::from_secs(30)),
    )
}

fn service_key(svc: &Service) -> String {
    format!("{}/{}", svc.namespace().unwrap_or_default(), svc.name_any())
}

#[tracing::instrument(skip_all, fields(service = %service_key(&svc)))]
async fn reconcile(svc: Arc<Service>, ctx: Arc<Ctx>) -> Result<Action, EndpointSliceError> {
    if managed_selector(&svc).is_none() || svc.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let key = service_key(&svc);
    let ns = svc.namespace().unwrap_or_default();
    if !expectations_met(&ctx, &key, &ns) {
        return Ok(Action::requeue(Duration::from_millis(250)));
    }
    let pods = selected_pods(&ctx.pods, &svc);
    let zone_of = |node: &str| {
        let node = ctx.nodes.get(&ObjectRef::new(node))?;
        Some(node.labels().get(LABEL_ZONE).cloned())
    };
    let (groups, missing_node) = desired_groups(&svc, &pods, zone_of);
    let name = svc.name_any();
    let uid = svc.uid().unwrap_or_default();
    let (owned, foreign): (Vec<EndpointSlice>, Vec<EndpointSlice>) = ctx
        .slices
        .state_filter(|s| {
            s.namespace().as_deref() == Some(ns.as_str())
                && s.labels().get(LABEL_SERVICE_NAME) == Some(&name)
        })
        .iter()
        .map(|s| (**s).clone())
        .partition(|s| s.owner_references().iter().any(|o| o.uid == uid));
    let placeholder_type = address_types(&svc)
        .into_iter()
        .next()
        .unwrap_or_else(|| "IPv4".into());
    let mut todo = plan(
        groups,
        owned,
        ctx.config.max_endpoints_per_slice,
        &placeholder_type,
    );
    todo.delete.extend(foreign);
    apply(&ctx, &svc, todo)
        .await
        .map_err(|source| EndpointSliceError::Write {
            service: key.clone(),
            source,
        })?;
    ctx.backoff.reset(&key);
    if missing_node {
        return Ok(Action::requeue(Duration::from_secs(5)));
    }
    Ok(Action::await_change())
}

/// True when the slice store reflects every write made for the service (see module docs).
fn expectations_met(ctx: &Ctx, key: &str, ns: &str) -> bool {
    let mut all = ctx.expectations.lock();
    let Some(expected) = all.get_mut(key) else {
        return true;
    };
    expected.retain(|name, expect| {
        let current = ctx.slices.get(&ObjectRef::new(name).within(ns));
        let rv = current
            .as_ref()
            .and_then(|s| s.resource_version())
            .and_then(|rv| rv.parse::<u64>().ok());
        match *expect {
            Expect::Present(want, at) => {
                rv.is_none_or(|rv| rv < want) && at.elapsed() < EXPECTATION_TIMEOUT
            }
            Expect::Absent(at) => current.is_some() && at.elapsed() < EXPECTATION_TIMEOUT,
        }
    });
    let met = expected.is_empty();
    if met {
        all.remove(key);
    }
    met
}

fn expect(ctx: &Ctx, key: &str, slice: &str, expect: Expect) {
    ctx.expectations
        .lock()
        .entry(key.to_string())
        .or_default()
        .insert(slice.to_string(), expect);
}

fn expect_written(ctx: &Ctx, key: &str, written: &EndpointSlice) {
    let rv = written
        .resource_version()
        .and_then(|rv| rv.parse::<u64>().ok());
    if let Some(rv) = rv {
        expect(
            ctx,
            key,
            &written.name_any(),
            Expect::Present(rv, Instant::now()),
        );
    }
}

async fn apply(ctx: &Ctx, svc: &Service, todo: Plan) -> Result<(), kube::Error> {
    let key = service_key(svc);
    let ns = svc.namespace().unwrap_or_default();
    let api = Api::<EndpointSlice>::namespaced(ctx.client.clone(), &ns);
    let labels = desired_labels(svc);
    let owner = owner_reference(svc);
    for (address_type, ports, endpoints) in todo.create {
        let slice = new_slice(svc, &labels, &owner, address_type, ports, endpoints);
        let created = api.create(&PostParams::default(), &slice).await?;
        tracing::debug!(slice = %created.name_any(), "created endpoint slice");
        expect_written(ctx, &key, &created);
    }
    for (mut slice, endpoints) in todo.update {
        let owners = vec![owner.clone()];
        if slice.endpoints.as_deref().unwrap_or_default() == endpoints.as_slice()
            && slice.labels() == &labels
            && slice.metadata.owner_references.as_ref() == Some(&owners)
        {
            continue;
        }
        slice.endpoints = Some(endpoints);
        slice.metadata.labels = Some(labels.clone());
        slice.metadata.owner_references = Some(owners);
        match api
            .replace(&slice.name_any(), &PostParams::default(), &slice)
            .await
        {
            Ok(updated) => expect_written(ctx, &key, &updated),
            Err(err) if is_conflict(&err) || is_not_found(&err) => {
                tracing::debug!(slice = %slice.name_any(), "stale slice, retrying");
                return Err(err);
            }
            Err(err) => return Err(err),
        }
    }
    for slice in todo.delete {
        let name = slice.name_any();
        match api.delete(&name, &DeleteParams::default()).await {
            Ok(_) => expect(ctx, &key, &name, Expect::Absent(Instant::now())),
            Err(err) if is_not_found(&err) => {}
            Err(err) => return Err(err),
        }
    }
    Ok(())
}

fn new_slice(
    svc: &Service,
    labels: &BTreeMap<String, String>,
    owner: &OwnerReference,
    address_type: String,
    ports: Vec<EndpointPort>,
    endpoints: Vec<Endpoint>,
) -> EndpointSlice {
    let mut slice = EndpointSlice {
        address_type,
        endpoints: Some(endpoints),
        ports: Some(ports),
        ..Default::default()
    };
    slice.metadata.generate_name = Some(format!("{}-", svc.name_any()));
    slice.metadata.namespace = svc.namespace();
    slice.metadata.labels = Some(labels.clone());
    slice.metadata.owner_references = Some(vec![owner.clone()]);
    slice
}

fn owner_reference(svc: &Service) -> OwnerReference {
    OwnerReference {
        api_version: "v1".into(),
        kind: "Service".into(),
        name: svc.name_any(),
        uid: svc.uid().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// The labels of a service's slices: the service's own (minus reserved keys) plus the
/// service-name, managed-by and headless markers.
fn desired_labels(svc: &Service) -> BTreeMap<String, String> {
    let mut labels: BTreeMap<String, String> = svc
        .labels()
        .iter()
        .filter(|(k, _)| {
            ![LABEL_SERVICE_NAME, LABEL_MANAGED_BY, LABEL_HEADLESS].contains(&k.as_str())
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if !is_service_ip_set(svc) {
        labels.insert(LABEL_HEADLESS.into(), String::new());
    }
    labels.insert(LABEL_SERVICE_NAME.into(), svc.name_any());
    labels.insert(LABEL_MANAGED_BY.into(), CONTROLLER_NAME.into());
    labels
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_carry_reserved_markers_over_service_labels() {
        let mut svc = Service::default();
        svc.metadata.name = Some("web".into());
        svc.metadata.labels = Some(
            [
                ("app".to_string(), "x".to_string()),
                (LABEL_MANAGED_BY.to_string(), "me".to_string()),
            ]
            .into(),
        );
        let labels = desired_labels(&svc);
        assert_eq!(
            labels.get(LABEL_MANAGED_BY).map(String::as_str),
            Some(CONTROLLER_NAME)
        );
        assert_eq!(
            labels.get(LABEL_SERVICE_NAME).map(String::as_str),
            Some("web")
        );
        assert_eq!(labels.get("app").map(String::as_str), Some("x"));
        assert!(labels.contains_key(LABEL_HEADLESS));
    }

    #[test]
    fn new_slices_are_generated_from_the_service_name_and_owned_by_it() {
        let mut svc = Service::default();
        svc.metadata.name = Some("web".into());
        svc.metadata.uid = Some("u1".into());
        let owner = owner_reference(&svc);
        let slice = new_slice(
            &svc,
            &BTreeMap::new(),
            &owner,
            "IPv4".into(),
            vec![],
            vec![],
        );
        assert_eq!(slice.metadata.generate_name.as_deref(), Some("web-"));
        let refs = slice.metadata.owner_references.unwrap();
        assert_eq!(
            (refs[0].uid.as_str(), refs[0].controller),
            ("u1", Some(true))
        );
    }
}
