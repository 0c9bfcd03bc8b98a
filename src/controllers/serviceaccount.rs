//! ServiceAccounts controller and root CA publisher: every active namespace gets a `default`
//! ServiceAccount (upstream `pkg/controller/serviceaccount`) and a `kube-root-ca.crt`
//! ConfigMap holding the cluster CA (upstream `pkg/controller/certificates/rootcacertpublisher`).
//!
//! Both are per-namespace invariants, so one reconciler keyed by Namespace ensures both; the
//! ServiceAccount and ConfigMap informers only map their objects back to their namespace so that
//! deleting (or editing) either brings it straight back. Terminating namespaces are skipped:
//! creating content there is refused and would only fight the namespace controller.
//!
//! Failure: API errors fail that namespace's reconcile, retried with per-namespace backoff;
//! an AlreadyExists from a stale cache counts as success.

use crate::client::informer::SharedInformers;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Namespace, ServiceAccount};
use kube::api::{Api, PostParams};
use kube::runtime::controller::{Action, Config};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use tokio_util::sync::CancellationToken;

use super::api_status::{is_already_exists, is_conflict, is_not_found};
use super::informer::{self, Backoff, Queue, touched};

/// Name of the per-namespace CA ConfigMap.
pub const ROOT_CA_CONFIG_MAP: &str = "kube-root-ca.crt";
const CA_KEY: &str = "ca.crt";
const DESCRIPTION_ANNOTATION: &str = "kubernetes.io/description";
const DESCRIPTION: &str = "Contains a CA bundle that can be used to verify the kube-apiserver \
    when using internal endpoints such as the internal service IP or kubernetes.default.svc. \
    No other usage is guaranteed across distributions of Kubernetes clusters.";

/// Configuration of the ServiceAccounts controller and root CA publisher.
#[derive(Debug, Clone)]
pub struct ServiceAccountConfig {
    /// ServiceAccounts ensured in every namespace (upstream: `default`).
    pub service_accounts: Vec<String>,
    /// The cluster CA bundle (PEM) published as `kube-root-ca.crt`; `None` disables the
    /// publisher.
    pub root_ca_pem: Option<String>,
}

impl Default for ServiceAccountConfig {
    fn default() -> Self {
        Self {
            service_accounts: vec!["default".into()],
            root_ca_pem: None,
        }
    }
}

/// Failures of the ServiceAccounts controller.
#[derive(Debug, thiserror::Error)]
pub enum ServiceAccountError {
    /// Creating or updating an object in the namespace failed.
    #[error("writing {what} in namespace {namespace}: {source}")]
    Write {
        /// Which object.
        what: String,
        /// The namespace.
        namespace: String,
        /// The API error.
        source: kube::Error,
    },
}

struct Ctx {
    client: Client,
    accounts: Store<ServiceAccount>,
    config_maps: Store<ConfigMap>,
    config: ServiceAccountConfig,
    backoff: Backoff,
}

/// Runs the ServiceAccounts controller and root CA publisher until `cancel` fires.
pub async fn run(
    informers: SharedInformers,
    config: ServiceAccountConfig,
    cancel: CancellationToken,
) -> Result<(), ServiceAccountError> {
    let client = informers.client();
    let queue = Queue::<Namespace>::new();
    let (namespaces, ns_task) = informer::spawn(
        &informers.get::<Namespace>(),
        cancel.clone(),
        queue.self_trigger(),
    );
    let names = config.service_accounts.clone();
    let (accounts, sa_task) = informer::spawn(
        &informers.get::<ServiceAccount>(),
        cancel.clone(),
        namespace_trigger(queue.sender.clone(), move |sa: &ServiceAccount| {
            names.contains(&sa.name_any())
        }),
    );
    let (config_maps, cm_task) = informer::spawn(
        &informers.get_with::<ConfigMap>(
            watcher::Config::default().fields(&format!("metadata.name={ROOT_CA_CONFIG_MAP}")),
        ),
        cancel.clone(),
        namespace_trigger(queue.sender.clone(), |cm: &ConfigMap| {
            cm.name_any() == ROOT_CA_CONFIG_MAP
        }),
    );
    let ready = informer::wait_ready(&[&accounts], &cancel).await
        && informer::wait_ready(&[&config_maps], &cancel).await;
    if ready {
        let ctx = Arc::new(Ctx {
            client,
            accounts,
            config_maps,
            config,
            backoff: Backoff::default(),
        });
        let applier = Config::default().concurrency(5);
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
    }
    for task in [ns_task, sa_task, cm_task] {
        task.abort();
    }
    Ok(())
}

/// A hook that requeues the namespace of every touched object passing `filter`.
fn namespace_trigger<K>(
    sender: futures::channel::mpsc::UnboundedSender<ObjectRef<Namespace>>,
    filter: impl Fn(&K) -> bool + Send + 'static,
) -> impl FnMut(&informer::Change<K>, &Store<K>) + Send + 'static
where
    K: kube::Resource<DynamicType = ()> + Clone + 'static,
{
    move |event, _| {
        if let Some(obj) = touched(event).filter(|o| filter(o))
            && let Some(ns) = obj.meta().namespace.as_deref()
        {
            let _ = sender.unbounded_send(ObjectRef::new(ns));
        }
    }
}

fn reconcile_boxed(
    ns: Arc<Namespace>,
    ctx: Arc<Ctx>,
) -> std::pin::Pin<Box<dyn Future<Output = Result<Action, ServiceAccountError>> + Send>> {
    Box::pin(reconcile(ns, ctx))
}

fn error_policy(ns: Arc<Namespace>, err: &ServiceAccountError, ctx: Arc<Ctx>) -> Action {
    tracing::warn!(error = %err, "namespace content sync failed");
    Action::requeue(
        ctx.backoff
            .next_delay(&ns.name_any(), Duration::from_secs(60)),
    )
}

/// True when the namespace is being deleted.
fn is_terminating(ns: &Namespace) -> bool {
    ns.metadata.deletion_timestamp.is_some()
        || ns.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Terminating")
}

#[tracing::instrument(skip_all, fields(namespace = %ns.name_any()))]
async fn reconcile(ns: Arc<Namespace>, ctx: Arc<Ctx>) -> Result<Action, ServiceAccountError> {
    if is_terminating(&ns) {
        return Ok(Action::await_change());
    }
    let namespace = ns.name_any();
    for name in &ctx.config.service_accounts {
        ensure_service_account(&ctx, &namespace, name).await?;
    }
    if let Some(pem) = &ctx.config.root_ca_pem {
        ensure_root_ca(&ctx, &namespace, pem).await?;
    }
    ctx.backoff.reset(&namespace);
    Ok(Action::await_change())
}

async fn ensure_service_account(
    ctx: &Ctx,
    namespace: &str,
    name: &str,
) -> Result<(), ServiceAccountError> {
    if ctx
        .accounts
        .get(&ObjectRef::new(name).within(namespace))
        .is_some()
    {
        return Ok(());
    }
    let mut sa = ServiceAccount::default();
    sa.metadata.name = Some(name.to_string());
    sa.metadata.namespace = Some(namespace.to_string());
    match Api::<ServiceAccount>::namespaced(ctx.client.clone(), namespace)
        .create(&PostParams::default(), &sa)
        .await
    {
        Ok(_) => {
            tracing::info!(service_account = name, "created service account");
            Ok(())
        }
        Err(err) if is_already_exists(&err) => Ok(()),
        Err(source) => Err(ServiceAccountError::Write {
            what: format!("serviceaccount {name}"),
            namespace: namespace.to_string(),
            source,
        }),
    }
}

/// The ConfigMap as the publisher wants it, built on `current` (keeping its other metadata),
/// or `None` when `current` is already right.
pub fn desired_root_ca(current: Option<&ConfigMap>, pem: &str) -> Option<ConfigMap> {
    let data = BTreeMap::from([(CA_KEY.to_string(), pem.to_string())]);
    if let Some(cm) = current {
        let described = cm
            .annotations()
            .get(DESCRIPTION_ANNOTATION)
            .map(String::as_str)
            == Some(DESCRIPTION);
        if cm.data.as_ref() == Some(&data) && described {
            return None;
        }
    }
    let mut cm = current.cloned().unwrap_or_default();
    cm.metadata.name = Some(ROOT_CA_CONFIG_MAP.into());
    cm.metadata
        .annotations
        .get_or_insert_with(BTreeMap::new)
        .insert(DESCRIPTION_ANNOTATION.into(), DESCRIPTION.into());
    cm.data = Some(data);
    cm.binary_data = None;
    Some(cm)
}

async fn ensure_root_ca(ctx: &Ctx, namespace: &str, pem: &str) -> Result<(), ServiceAccountError> {
    let current = ctx
        .config_maps
        .get(&ObjectRef::new(ROOT_CA_CONFIG_MAP).within(namespace));
    let Some(mut cm) = desired_root_ca(current.as_deref(), pem) else {
        return Ok(());
    };
    cm.metadata.namespace = Some(namespace.to_string());
    let api = Api::<ConfigMap>::namespaced(ctx.client.clone(), namespace);
    let result = match current {
        None => api.create(&PostParams::default(), &cm).await,
        Some(_) => {
            api.replace(ROOT_CA_CONFIG_MAP, &PostParams::default(), &cm)
                .await
        }
    };
    match result {
        Ok(_) => {
            tracing::info!("published root CA config map");
            Ok(())
        }
        // A stale cache: the informer event for the current object requeues the namespace.
        Err(err) if is_already_exists(&err) || is_conflict(&err) || is_not_found(&err) => Ok(()),
        Err(source) => Err(ServiceAccountError::Write {
            what: format!("configmap {ROOT_CA_CONFIG_MAP}"),
            namespace: namespace.to_string(),
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_ca_is_created_with_description_and_left_alone_when_right() {
        let cm = desired_root_ca(None, "PEM").unwrap();
        assert_eq!(cm.data.as_ref().unwrap()["ca.crt"], "PEM");
        assert_eq!(cm.annotations()[DESCRIPTION_ANNOTATION], DESCRIPTION);
        assert!(desired_root_ca(Some(&cm), "PEM").is_none());
    }

    #[test]
    fn root_ca_with_stale_data_is_rewritten_keeping_labels() {
        let mut cm = desired_root_ca(None, "OLD").unwrap();
        cm.metadata.labels = Some([("keep".to_string(), "me".to_string())].into());
        cm.data.as_mut().unwrap().insert("extra".into(), "x".into());
        let fixed = desired_root_ca(Some(&cm), "NEW").unwrap();
        assert_eq!(
            fixed.data.unwrap(),
            BTreeMap::from([("ca.crt".to_string(), "NEW".to_string())])
        );
        assert_eq!(fixed.metadata.labels.unwrap()["keep"], "me");
    }

    #[test]
    fn terminating_namespaces_are_recognised_by_phase_or_timestamp() {
        let mut ns = Namespace::default();
        assert!(!is_terminating(&ns));
        ns.status = Some(k8s_openapi::api::core::v1::NamespaceStatus {
            phase: Some("Terminating".into()),
            ..Default::default()
        });
        assert!(is_terminating(&ns));
    }
}
