//! LoadBalancer Services without a cloud, as k3s's servicelb.
//!
//! k3s answers a LoadBalancer Service by running a `svclb` DaemonSet that
//! forwards the port on every node, and publishes the node addresses as
//! the Service's ingress. kelp's service proxy already accepts the port on
//! every node (the ingress IPs go into its `service-ips` map), so no pod is
//! needed: this controller only publishes the addresses. Those of Ready
//! nodes, the ExternalIP where a node has one and else its InternalIP
//! (k3s's choice), sorted. Services with a `loadBalancerClass` belong to
//! another implementation and are left alone.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, Service};
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::reflector::Store;
use kube::{Client, ResourceExt};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::informer;
use crate::client::informer::SharedInformers;

/// Failures of the servicelb controller.
#[derive(Debug, thiserror::Error)]
pub enum ServiceLbError {
    /// Writing a Service's status failed.
    #[error("updating the load-balancer status of service {service}: {source}")]
    Write {
        /// namespace/name.
        service: String,
        /// The API error.
        source: kube::Error,
    },
}

/// Runs until `cancel` fires.
pub async fn run(
    informers: SharedInformers,
    cancel: CancellationToken,
) -> Result<(), ServiceLbError> {
    let client = informers.client();
    let changed = Arc::new(Notify::new());
    let (n1, n2) = (changed.clone(), changed.clone());
    let (services, services_task) =
        informer::spawn(&informers.get::<Service>(), cancel.clone(), move |_, _| {
            n1.notify_one()
        });
    let (nodes, nodes_task) =
        informer::spawn(&informers.get::<Node>(), cancel.clone(), move |_, _| {
            n2.notify_one()
        });
    let result = async {
        if !informer::wait_ready(&[&services], &cancel).await
            || !informer::wait_ready(&[&nodes], &cancel).await
        {
            return Ok(());
        }
        loop {
            sync(&client, &services, &nodes).await?;
            tokio::select! {
                _ = changed.notified() => {}
                _ = cancel.cancelled() => return Ok(()),
            }
            // Node heartbeats come in bursts: one pass after them.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    .await;
    services_task.abort();
    nodes_task.abort();
    result
}

/// The ingress addresses: each Ready node's ExternalIP, else InternalIP.
fn node_addresses(nodes: &[Arc<Node>]) -> Vec<String> {
    let mut ips: Vec<String> = nodes
        .iter()
        .filter(|n| {
            n.status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
        })
        .filter_map(|n| {
            let addresses = n.status.as_ref()?.addresses.as_ref()?;
            let of = |kind: &str| addresses.iter().find(|a| a.type_ == kind);
            of("ExternalIP")
                .or_else(|| of("InternalIP"))
                .map(|a| a.address.clone())
        })
        .collect();
    ips.sort();
    ips.dedup();
    ips
}

fn current_ingress(svc: &Service) -> Vec<String> {
    svc.status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|i| i.ip.clone())
        .collect()
}

#[tracing::instrument(skip_all)]
async fn sync(
    client: &Client,
    services: &Store<Service>,
    nodes: &Store<Node>,
) -> Result<(), ServiceLbError> {
    let addresses = node_addresses(&nodes.state());
    for svc in services.state() {
        let Some(spec) = svc.spec.as_ref() else {
            continue;
        };
        if spec.load_balancer_class.is_some() {
            continue;
        }
        let is_lb = spec.type_.as_deref() == Some("LoadBalancer");
        let current = current_ingress(&svc);
        let wanted: &[String] = if is_lb { &addresses } else { &[] };
        if current == wanted {
            continue;
        }
        let ingress = (!wanted.is_empty()).then(|| {
            wanted
                .iter()
                .map(|ip| serde_json::json!({"ip": ip, "ipMode": "VIP"}))
                .collect::<Vec<_>>()
        });
        let patch = serde_json::json!({"status": {"loadBalancer": {"ingress": ingress}}});
        let api: Api<Service> =
            Api::namespaced(client.clone(), &svc.namespace().unwrap_or_default());
        match api
            .patch_status(
                &svc.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => {}
            Err(source) => {
                return Err(ServiceLbError::Write {
                    service: crate::client::informer::key_of(svc.as_ref()),
                    source,
                });
            }
        }
    }
    Ok(())
}
