//! Endpoints controller: keeps a v1 Endpoints object, named after each Service with a
//! selector, listing the selected pods' addresses (upstream `pkg/controller/endpoint`).
//!
//! The desired subsets are a pure function of the Service and the pod store
//! ([`desired_subsets`]), normalised (addresses grouped by identical port sets, everything
//! sorted) so that an unchanged cluster never produces a write. Services without a selector are
//! left alone: their Endpoints belong to whoever created them. When a Service goes away, its
//! Endpoints are deleted if this controller manages them (label
//! `endpoints.kubernetes.io/managed-by`), also for leftovers found at start-up.
//!
//! Failure: API errors fail the reconcile of that Service, which is retried with per-Service
//! backoff; a conflict (stale cache) heals on the retry.

use crate::client::informer::SharedInformers;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{
    EndpointAddress, EndpointPort, EndpointSubset, Endpoints, ObjectReference, Pod, Service,
};
use kube::api::{Api, DeleteParams, PostParams};
use kube::runtime::controller::{Action, Config};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Client, ResourceExt};
use tokio_util::sync::CancellationToken;

use super::api_status::{is_already_exists, is_conflict, is_not_found};
use super::informer::{self, Backoff, Queue, touched};
use super::service_endpoints::{
    find_port, is_pod_ready, is_service_ip_set, managed_selector, pod_hostname, pod_ips,
    pod_trigger, selected_pods, service_ipv4, should_pod_be_in_endpoints,
};

/// Label marking Endpoints written by this controller.
pub const LABEL_MANAGED_BY: &str = "endpoints.kubernetes.io/managed-by";
/// Value of [`LABEL_MANAGED_BY`] (upstream `ControllerName`).
pub const CONTROLLER_NAME: &str = "endpoint-controller";
const LABEL_HEADLESS: &str = "service.kubernetes.io/headless";
const ANNOTATION_TRIGGER_TIME: &str = "endpoints.kubernetes.io/last-change-trigger-time";
const ANNOTATION_OVER_CAPACITY: &str = "endpoints.kubernetes.io/over-capacity";

/// Configuration of the Endpoints controller.
#[derive(Debug, Clone)]
pub struct EndpointsConfig {
    /// Services reconciled in parallel (upstream `--concurrent-endpoint-syncs`, 5).
    pub concurrency: u16,
    /// Most addresses one Endpoints object holds before it is truncated (upstream 1000).
    pub max_addresses: usize,
}

impl Default for EndpointsConfig {
    fn default() -> Self {
        Self {
            concurrency: 5,
            max_addresses: 1000,
        }
    }
}

/// Failures of the Endpoints controller.
#[derive(Debug, thiserror::Error)]
pub enum EndpointsError {
    /// Writing or deleting an Endpoints object failed.
    #[error("writing endpoints {namespace}/{name}: {source}")]
    Write {
        /// Namespace of the service.
        namespace: String,
        /// Name of the service.
        name: String,
        /// The API error.
        source: kube::Error,
    },
}

/// Computes the subsets of a service's Endpoints from the selected pods, plus whether they were
/// truncated to `max_addresses`.
pub fn desired_subsets(
    svc: &Service,
    pods: &[Arc<Pod>],
    max_addresses: usize,
) -> (Vec<EndpointSubset>, bool) {
    let spec = svc.spec.clone().unwrap_or_default();
    let tolerate_unready = spec.publish_not_ready_addresses.unwrap_or(false);
    let ports = spec.ports.unwrap_or_default();
    // address key → (address, ready, ports), so every address collects all its ports.
    let mut addresses: BTreeMap<(String, String), (EndpointAddress, bool, Vec<EndpointPort>)> =
        BTreeMap::new();
    for pod in pods {
        if !should_pod_be_in_endpoints(pod, tolerate_unready) {
            continue;
        }
        let Some(address) = endpoint_address(svc, pod) else {
            continue;
        };
        let ready = tolerate_unready || is_pod_ready(pod);
        let key = (address.ip.clone(), pod.uid().unwrap_or_default());
        let resolved: Vec<EndpointPort> = ports
            .iter()
            .filter_map(|p| {
                let port = find_port(pod, p)?;
                Some(EndpointPort {
                    name: p.name.clone(),
                    port,
                    protocol: p.protocol.clone().or_else(|| Some("TCP".into())),
                    app_protocol: p.app_protocol.clone(),
                })
            })
            .collect();
        // A headless service without ports lists bare addresses; otherwise a pod needs a port.
        if resolved.is_empty() && (!ports.is_empty() || is_service_ip_set(svc)) {
            continue;
        }
        addresses.insert(key, (address, ready, resolved));
    }
    repack(addresses.into_values(), max_addresses)
}

fn endpoint_address(svc: &Service, pod: &Pod) -> Option<EndpointAddress> {
    let ips = pod_ips(pod);
    let ip = match service_ipv4(svc) {
        Some(v4) => ips.iter().find(|ip| ip.is_ipv4() == v4)?,
        None => ips.first()?,
    };
    Some(EndpointAddress {
        ip: ip.to_string(),
        hostname: pod_hostname(pod, svc),
        node_name: pod.spec.as_ref().and_then(|s| s.node_name.clone()),
        target_ref: Some(ObjectReference {
            kind: Some("Pod".into()),
            namespace: pod.namespace(),
            name: Some(pod.name_any()),
            uid: pod.uid(),
            ..Default::default()
        }),
    })
}

type PortKey = Vec<(Option<String>, i32, Option<String>)>;
/// The ports of a group, its ready and its not-ready addresses.
type PortGroup = (
    Vec<EndpointPort>,
    Vec<EndpointAddress>,
    Vec<EndpointAddress>,
);

/// Groups addresses by identical port sets (upstream `RepackSubsets`) and truncates, ready
/// addresses first, to `max` addresses.
fn repack(
    entries: impl Iterator<Item = (EndpointAddress, bool, Vec<EndpointPort>)>,
    max: usize,
) -> (Vec<EndpointSubset>, bool) {
    let mut groups: BTreeMap<PortKey, PortGroup> = BTreeMap::new();
    let mut total = 0usize;
    let mut ready_total = 0usize;
    for (address, ready, mut ports) in entries {
        ports.sort_by(|a, b| (&a.name, a.port, &a.protocol).cmp(&(&b.name, b.port, &b.protocol)));
        let key = ports
            .iter()
            .map(|p| (p.name.clone(), p.port, p.protocol.clone()))
            .collect();
        let group = groups
            .entry(key)
            .or_insert_with(|| (ports, Vec::new(), Vec::new()));
        if ready {
            group.1.push(address);
            ready_total += 1;
        } else {
            group.2.push(address);
        }
        total += 1;
    }
    let truncated = total > max;
    let mut ready_budget = ready_total.min(max);
    let mut not_ready_budget = max - ready_budget;
    let mut subsets = Vec::new();
    for (_, (ports, mut ready, mut not_ready)) in groups {
        ready.sort_by(address_order);
        not_ready.sort_by(address_order);
        ready.truncate(ready_budget);
        ready_budget -= ready.len();
        not_ready.truncate(not_ready_budget);
        not_ready_budget -= not_ready.len();
        if ready.is_empty() && not_ready.is_empty() {
            continue;
        }
        subsets.push(EndpointSubset {
            addresses: (!ready.is_empty()).then_some(ready),
            not_ready_addresses: (!not_ready.is_empty()).then_some(not_ready),
            ports: (!ports.is_empty()).then_some(ports),
        });
    }
    (subsets, truncated)
}

fn address_order(a: &EndpointAddress, b: &EndpointAddress) -> std::cmp::Ordering {
    let uid = |x: &EndpointAddress| x.target_ref.as_ref().and_then(|r| r.uid.clone());
    (&a.ip, uid(a)).cmp(&(&b.ip, uid(b)))
}

/// The labels an Endpoints object of `svc` carries.
fn desired_labels(svc: &Service) -> BTreeMap<String, String> {
    let mut labels = svc.labels().clone();
    labels.remove(LABEL_HEADLESS);
    if !is_service_ip_set(svc) {
        labels.insert(LABEL_HEADLESS.into(), String::new());
    }
    labels.insert(LABEL_MANAGED_BY.into(), CONTROLLER_NAME.into());
    labels
}

struct Ctx {
    client: Client,
    pods: Store<Pod>,
    endpoints: Store<Endpoints>,
    config: EndpointsConfig,
    backoff: Backoff,
}

/// Runs the Endpoints controller until `cancel` fires.
pub async fn run(
    informers: SharedInformers,
    config: EndpointsConfig,
    cancel: CancellationToken,
) -> Result<(), EndpointsError> {
    let client = informers.client();
    let queue = Queue::<Service>::new();
    let (cleanup_tx, cleanup_rx) = futures::channel::mpsc::unbounded::<ObjectRef<Service>>();
    let mut self_trigger = queue.self_trigger();
    let (services, svc_task) = informer::spawn(
        &informers.get::<Service>(),
        cancel.clone(),
        move |event, store| {
            if let informer::Change::Deleted(svc) = event {
                let _ = cleanup_tx.unbounded_send(ObjectRef::from_obj(svc));
            }
            self_trigger(event, store);
        },
    );
    let (pods, pod_task) = informer::spawn(
        &informers.get::<Pod>(),
        cancel.clone(),
        pod_trigger(queue.sender.clone(), services.clone()),
    );
    let ep_sender = queue.sender.clone();
    let (endpoints, ep_task) = informer::spawn(
        &informers.get::<Endpoints>(),
        cancel.clone(),
        move |event, _| {
            if let Some(ep) = touched(event) {
                let svc =
                    ObjectRef::new(&ep.name_any()).within(&ep.namespace().unwrap_or_default());
                let _ = ep_sender.unbounded_send(svc);
            }
        },
    );
    if !informer::wait_ready(&[&pods], &cancel).await
        || !informer::wait_ready(&[&services], &cancel).await
        || !informer::wait_ready(&[&endpoints], &cancel).await
    {
        return Ok(());
    }
    let ctx = Arc::new(Ctx {
        client,
        pods,
        endpoints,
        config,
        backoff: Backoff::default(),
    });
    let cleanup = tokio::spawn(cleanup_loop(ctx.clone(), services.clone(), cleanup_rx));
    let applier_config = Config::default()
        .concurrency(ctx.config.concurrency)
        .debounce(Duration::from_millis(50));
    informer::drive(
        services,
        queue,
        reconcile_boxed,
        error_policy,
        ctx,
        applier_config,
        cancel,
    )
    .await;
    for task in [svc_task, pod_task, ep_task, cleanup] {
        task.abort();
    }
    Ok(())
}

/// Deletes managed Endpoints whose Service is gone: at start (leftovers) and on delete events.
async fn cleanup_loop(
    ctx: Arc<Ctx>,
    services: Store<Service>,
    mut deleted: futures::channel::mpsc::UnboundedReceiver<ObjectRef<Service>>,
) {
    use futures::StreamExt;
    for ep in ctx.endpoints.state() {
        let svc =
            ObjectRef::<Service>::new(&ep.name_any()).within(&ep.namespace().unwrap_or_default());
        if services.get(&svc).is_none() {
            delete_managed(&ctx, &svc).await;
        }
    }
    while let Some(svc) = deleted.next().await {
        delete_managed(&ctx, &svc).await;
    }
}

async fn delete_managed(ctx: &Ctx, svc: &ObjectRef<Service>) {
    let ns = svc.namespace.clone().unwrap_or_default();
    let key = ObjectRef::<Endpoints>::new(&svc.name).within(&ns);
    let managed = ctx.endpoints.get(&key).is_some_and(|ep| {
        ep.labels().get(LABEL_MANAGED_BY).map(String::as_str) == Some(CONTROLLER_NAME)
    });
    if !managed {
        return;
    }
    match Api::<Endpoints>::namespaced(ctx.client.clone(), &ns)
        .delete(&svc.name, &DeleteParams::default())
        .await
    {
        Ok(_) => {
            tracing::info!(namespace = %ns, name = %svc.name, "deleted endpoints of removed service")
        }
        Err(err) if is_not_found(&err) => {}
        Err(err) => {
            tracing::warn!(namespace = %ns, name = %svc.name, error = %err, "deleting endpoints")
        }
    }
}

fn reconcile_boxed(
    svc: Arc<Service>,
    ctx: Arc<Ctx>,
) -> std::pin::Pin<Box<dyn Future<Output = Result<Action, EndpointsError>> + Send>> {
    Box::pin(reconcile(svc, ctx))
}

fn error_policy(svc: Arc<Service>, err: &EndpointsError, ctx: Arc<Ctx>) -> Action {
    tracing::warn!(error = %err, "endpoints sync failed");
    let key = format!("{}/{}", svc.namespace().unwrap_or_default(), svc.name_any());
    Action::requeue(ctx.backoff.next_delay(&key, Duration::from_secs(30)))
}

#[tracing::instrument(skip_all, fields(service = %format!("{}/{}", svc.namespace().unwrap_or_default(), svc.name_any())))]
async fn reconcile(svc: Arc<Service>, ctx: Arc<Ctx>) -> Result<Action, EndpointsError> {
    if managed_selector(&svc).is_none() || svc.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let ns = svc.namespace().unwrap_or_default();
    let name = svc.name_any();
    let pods = selected_pods(&ctx.pods, &svc);
    let (subsets, truncated) = desired_subsets(&svc, &pods, ctx.config.max_addresses);
    let labels = desired_labels(&svc);
    let current = ctx.endpoints.get(&ObjectRef::new(&name).within(&ns));
    if let Some(current) = &current {
        let same_subsets = current.subsets.clone().unwrap_or_default() == subsets;
        let same_capacity =
            current.annotations().contains_key(ANNOTATION_OVER_CAPACITY) == truncated;
        if same_subsets && current.labels() == &labels && same_capacity {
            ctx.backoff.reset(&format!("{ns}/{name}"));
            return Ok(Action::await_change());
        }
    }
    let endpoints = build_endpoints(current.as_deref(), &svc, subsets, truncated);
    let creating = endpoints.metadata.resource_version.is_none();
    let api = Api::<Endpoints>::namespaced(ctx.client.clone(), &ns);
    let result = if creating {
        api.create(&PostParams::default(), &endpoints)
            .await
            .map(|_| ())
    } else {
        api.replace(&name, &PostParams::default(), &endpoints)
            .await
            .map(|_| ())
    };
    match result {
        Ok(()) => {
            tracing::debug!(creating, "wrote endpoints");
            ctx.backoff.reset(&format!("{ns}/{name}"));
            Ok(Action::await_change())
        }
        // The cache was stale; the informer event for the newer object requeues us.
        Err(err) if is_conflict(&err) || is_already_exists(&err) => {
            Ok(Action::requeue(Duration::from_millis(500)))
        }
        Err(source) => Err(EndpointsError::Write {
            namespace: ns,
            name,
            source,
        }),
    }
}

/// The Endpoints object to write: `current` (or a new object) with the desired subsets,
/// labels and annotations.
fn build_endpoints(
    current: Option<&Endpoints>,
    svc: &Service,
    subsets: Vec<EndpointSubset>,
    truncated: bool,
) -> Endpoints {
    let mut endpoints = current.cloned().unwrap_or_default();
    endpoints.metadata.name = Some(svc.name_any());
    endpoints.metadata.namespace = svc.namespace();
    endpoints.metadata.labels = Some(desired_labels(svc));
    let annotations = endpoints
        .metadata
        .annotations
        .get_or_insert_with(BTreeMap::new);
    annotations.insert(
        ANNOTATION_TRIGGER_TIME.into(),
        k8s_openapi::jiff::Timestamp::now().to_string(),
    );
    if truncated {
        annotations.insert(ANNOTATION_OVER_CAPACITY.into(), "truncated".into());
    } else {
        annotations.remove(ANNOTATION_OVER_CAPACITY);
    }
    endpoints.subsets = (!subsets.is_empty()).then_some(subsets);
    endpoints
}

#[cfg(test)]
mod tests;
