//! The service proxy: Services and EndpointSlices turned into nftables
//! rules on each node, in the design of kube-proxy's nftables mode.
//!
//! [`rules`] computes one Service's chains and map elements, [`table`]
//! diffs them against what was committed and builds the transaction, and
//! [`run`] keeps the table current from the shared informers: each change
//! marks its Service dirty, and the dirty Services are recomputed and
//! committed together as soon as the previous commit is done, so a burst
//! of changes becomes one transaction.

pub mod rules;
pub mod table;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use futures::{FutureExt as _, StreamExt as _};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::reflector::{ObjectRef, Store};
use tokio_util::sync::CancellationToken;

use crate::client::informer::{self, Change, SharedInformers};
use crate::network::nftables::{Batch, NftError};
pub use rules::{ProxyContext, ServiceRules, service_rules};
pub use table::{ProxyTable, TABLE};

/// Label naming an EndpointSlice's Service.
const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// Why the proxy stopped.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// The informers stopped before their first list.
    #[error("the Service and EndpointSlice informers stopped before syncing")]
    NotSynced,
}

/// EndpointSlices grouped by the Service they belong to.
#[derive(Default)]
struct SliceIndex {
    by_service: HashMap<String, HashMap<String, Arc<EndpointSlice>>>,
    owner: HashMap<String, String>,
}

impl SliceIndex {
    /// Applies a change; returns the Services whose endpoints changed.
    fn apply(&mut self, change: &Change<EndpointSlice>) -> Vec<String> {
        let Some(slice) = change.object() else {
            return Vec::new();
        };
        let key = informer::key_of(slice.as_ref());
        let mut touched = Vec::new();
        if let Some(previous) = self.owner.remove(&key) {
            if let Some(slices) = self.by_service.get_mut(&previous) {
                slices.remove(&key);
                if slices.is_empty() {
                    self.by_service.remove(&previous);
                }
            }
            touched.push(previous);
        }
        if !change.is_deleted()
            && let Some(service) = service_of(slice)
        {
            self.by_service
                .entry(service.clone())
                .or_default()
                .insert(key.clone(), slice.clone());
            self.owner.insert(key, service.clone());
            if !touched.contains(&service) {
                touched.push(service);
            }
        }
        touched
    }

    fn slices_of(&self, service: &str) -> Vec<&EndpointSlice> {
        self.by_service
            .get(service)
            .map(|s| s.values().map(Arc::as_ref).collect())
            .unwrap_or_default()
    }
}

fn service_of(slice: &EndpointSlice) -> Option<String> {
    let name = slice.metadata.labels.as_ref()?.get(SERVICE_NAME_LABEL)?;
    let ns = slice.metadata.namespace.as_deref()?;
    Some(format!("{ns}/{name}"))
}

fn rules_for(
    key: &str,
    services: &Store<Service>,
    slices: &SliceIndex,
    ctx: &ProxyContext,
) -> ServiceRules {
    let Some((ns, name)) = key.split_once('/') else {
        return ServiceRules::default();
    };
    match services.get(&ObjectRef::new(name).within(ns)) {
        Some(svc) => service_rules(&svc, &slices.slices_of(key), ctx),
        None => ServiceRules::default(),
    }
}

/// Commits a batch from a blocking thread (netlink I/O blocks).
async fn commit(batch: Batch) -> Result<(), NftError> {
    match tokio::task::spawn_blocking(move || batch.commit()).await {
        Ok(result) => result,
        Err(e) => Err(NftError::Io(std::io::Error::other(e.to_string()))),
    }
}

/// Keeps kelp's nftables table in step with the cluster's Services until
/// `cancel`. Commit failures are logged and retried with a full resync.
pub async fn run(
    informers: &SharedInformers,
    ctx: ProxyContext,
    masquerade_pods: bool,
    cancel: CancellationToken,
) -> Result<(), ProxyError> {
    let (services, mut service_changes) = informers.get::<Service>().feed();
    let (slice_store, mut slice_changes) = informers.get::<EndpointSlice>().feed();
    if informer::wait_synced(&services).await.is_err()
        || informer::wait_synced(&slice_store).await.is_err()
    {
        return Err(ProxyError::NotSynced);
    }
    let mut index = SliceIndex::default();
    let mut table = ProxyTable::new(ctx, masquerade_pods);
    let mut dirty: HashSet<String> = HashSet::new();
    let mut full_resync = true;
    let mut failures = 0u32;
    loop {
        // Take everything pending, so a burst becomes one transaction.
        loop {
            let mut progressed = false;
            while let Some(Some(change)) = slice_changes.next().now_or_never() {
                dirty.extend(index.apply(&change));
                progressed = true;
            }
            while let Some(Some(change)) = service_changes.next().now_or_never() {
                if let Some(svc) = change.object() {
                    dirty.insert(informer::key_of(svc.as_ref()));
                }
                progressed = true;
            }
            if !progressed {
                break;
            }
        }
        if full_resync || !dirty.is_empty() {
            let started = Instant::now();
            let result = if full_resync {
                let all: HashMap<String, ServiceRules> = services
                    .state()
                    .iter()
                    .map(|s| {
                        let key = informer::key_of(s.as_ref());
                        let rules = service_rules(s, &index.slices_of(&key), table.context());
                        (key, rules)
                    })
                    .collect();
                let batch = table.full_sync(&all);
                let messages = batch.len();
                commit(batch).await.map(|()| {
                    table.committed_full(all);
                    messages
                })
            } else {
                let changed: HashMap<String, ServiceRules> = dirty
                    .iter()
                    .map(|k| (k.clone(), rules_for(k, &services, &index, table.context())))
                    .collect();
                let batch = table.update(&changed);
                let messages = batch.len();
                commit(batch).await.map(|()| {
                    table.committed(changed);
                    messages
                })
            };
            match result {
                Ok(messages) => {
                    if full_resync {
                        tracing::info!(
                            services = table.len(),
                            messages,
                            ms = started.elapsed().as_millis() as u64,
                            "service proxy rules programmed"
                        );
                    }
                    tracing::debug!(
                        full = full_resync,
                        changed = dirty.len(),
                        services = table.len(),
                        messages,
                        took_ms = started.elapsed().as_secs_f64() * 1e3,
                        "service proxy rules synced"
                    );
                    dirty.clear();
                    full_resync = false;
                    failures = 0;
                }
                Err(e) => {
                    failures += 1;
                    tracing::warn!(error = %e, "service proxy sync failed; resyncing the whole table");
                    full_resync = true;
                    tokio::select! {
                        _ = tokio::time::sleep(informer::retry_delay(failures)) => {}
                        _ = cancel.cancelled() => return Ok(()),
                    }
                    continue;
                }
            }
        }
        tokio::select! {
            change = slice_changes.next() => match change {
                Some(change) => dirty.extend(index.apply(&change)),
                None => return Ok(()),
            },
            change = service_changes.next() => match change {
                Some(change) => {
                    if let Some(svc) = change.object() {
                        dirty.insert(informer::key_of(svc.as_ref()));
                    }
                }
                None => return Ok(()),
            },
            _ = cancel.cancelled() => return Ok(()),
        }
    }
}
