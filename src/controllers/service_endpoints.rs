//! Which pods back a Service, and on which ports: the rules shared by the Endpoints and
//! EndpointSlice controllers (upstream `endpointutil`, `podutil.FindPort`, `IsPodReady`).
//!
//! Everything here is a pure function of a Service and Pods except [`PodServiceIndex`], which
//! remembers which services each pod last matched: a pod whose labels change must also
//! trigger the services it no longer matches, and a watch event carries only the new labels.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::IpAddr;

use k8s_openapi::api::core::v1::{Pod, Service, ServicePort};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::ResourceExt;
use kube::runtime::reflector::{ObjectRef, Store};
use parking_lot::Mutex;

/// The selector of a service that should get endpoints from its controllers: `None` for
/// services without a selector (their endpoints are user-managed) and ExternalName services.
pub fn managed_selector(svc: &Service) -> Option<&BTreeMap<String, String>> {
    let spec = svc.spec.as_ref()?;
    if spec.type_.as_deref() == Some("ExternalName") {
        return None;
    }
    spec.selector.as_ref().filter(|s| !s.is_empty())
}

/// True when every selector pair is among the labels.
pub fn selector_matches(
    selector: &BTreeMap<String, String>,
    labels: &BTreeMap<String, String>,
) -> bool {
    selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// The pod's Ready condition is True.
pub fn is_pod_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Whether a pod should appear in a service's endpoints at all (upstream
/// `ShouldPodBeInEndpoints`): it has an IP, is not terminating unless `include_terminating`, and
/// has not reached a phase it can never leave.
pub fn should_pod_be_in_endpoints(pod: &Pod, include_terminating: bool) -> bool {
    if pod_ips(pod).is_empty() {
        return false;
    }
    if !include_terminating && pod.metadata.deletion_timestamp.is_some() {
        return false;
    }
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    !matches!(phase, Some("Failed") | Some("Succeeded"))
}

/// The pod's IPs (`status.podIPs`, else `status.podIP`), parsed.
pub fn pod_ips(pod: &Pod) -> Vec<IpAddr> {
    let Some(status) = pod.status.as_ref() else {
        return Vec::new();
    };
    let mut ips: Vec<IpAddr> = status
        .pod_ips
        .iter()
        .flatten()
        .filter_map(|p| p.ip.parse().ok())
        .collect();
    if ips.is_empty() {
        ips.extend(
            status
                .pod_ip
                .as_deref()
                .and_then(|ip| ip.parse::<IpAddr>().ok()),
        );
    }
    ips
}

/// True when the service has a cluster IP (is not headless).
pub fn is_service_ip_set(svc: &Service) -> bool {
    let ip = svc
        .spec
        .as_ref()
        .and_then(|s| s.cluster_ip.as_deref())
        .unwrap_or("");
    !ip.is_empty() && ip != "None"
}

/// The IP family a service's legacy Endpoints use: its cluster IP's, else its first
/// `ipFamilies` entry; `None` (any family, the pod's primary IP) for a headless service with
/// neither.
pub fn service_ipv4(svc: &Service) -> Option<bool> {
    let spec = svc.spec.as_ref()?;
    if let Some(ip) = spec
        .cluster_ip
        .as_deref()
        .and_then(|ip| ip.parse::<IpAddr>().ok())
    {
        return Some(ip.is_ipv4());
    }
    spec.ip_families.as_ref()?.first().map(|f| f == "IPv4")
}

/// The container port a service port targets on a pod (upstream `FindPort`): a numeric
/// targetPort is used as is, a named one is looked up among the pod's container ports (and
/// restartable init containers') with the same protocol; no targetPort means the service port.
pub fn find_port(pod: &Pod, port: &ServicePort) -> Option<i32> {
    let protocol = port.protocol.as_deref().unwrap_or("TCP");
    match &port.target_port {
        None => Some(port.port),
        Some(IntOrString::Int(n)) => Some(*n),
        Some(IntOrString::String(name)) => {
            if let Ok(n) = name.parse::<i32>() {
                return Some(n);
            }
            let spec = pod.spec.as_ref()?;
            let sidecars = spec
                .init_containers
                .iter()
                .flatten()
                .filter(|c| c.restart_policy.as_deref() == Some("Always"));
            spec.containers
                .iter()
                .chain(sidecars)
                .flat_map(|c| c.ports.iter().flatten())
                .find(|p| {
                    p.name.as_deref() == Some(name.as_str())
                        && p.protocol.as_deref().unwrap_or("TCP") == protocol
                })
                .map(|p| p.container_port)
        }
    }
}

/// The DNS hostname a pod gets under a headless service: its `spec.hostname` when its
/// `spec.subdomain` names the service (in the same namespace).
pub fn pod_hostname(pod: &Pod, svc: &Service) -> Option<String> {
    let spec = pod.spec.as_ref()?;
    let hostname = spec.hostname.as_ref().filter(|h| !h.is_empty())?;
    (spec.subdomain.as_deref() == Some(svc.name_any().as_str())
        && pod.namespace() == svc.namespace())
    .then(|| hostname.clone())
}

/// The pods of the service's namespace selected by its selector.
pub fn selected_pods(pods: &Store<Pod>, svc: &Service) -> Vec<std::sync::Arc<Pod>> {
    let Some(selector) = managed_selector(svc) else {
        return Vec::new();
    };
    let namespace = svc.namespace();
    pods.state_filter(|p| p.namespace() == namespace && selector_matches(selector, p.labels()))
}

/// An informer hook that requeues, for every pod event, the services the pod matches now or
/// matched before.
pub fn pod_trigger(
    sender: futures::channel::mpsc::UnboundedSender<ObjectRef<Service>>,
    services: Store<Service>,
) -> impl FnMut(&super::informer::Change<Pod>, &Store<Pod>) + Send + 'static {
    let index = PodServiceIndex::default();
    move |event, _| {
        if let Some(pod) = super::informer::touched(event) {
            let deleted = event.is_deleted();
            for svc in index.services_for(&services, pod, deleted) {
                let _ = sender.unbounded_send(svc);
            }
        }
    }
}

/// `(namespace, name)` of a pod → the services it matched.
type PodMatches = HashMap<(String, String), HashSet<ObjectRef<Service>>>;

/// Remembers the services each pod matched at its last event (see the module docs).
#[derive(Default)]
pub struct PodServiceIndex {
    last: Mutex<PodMatches>,
}

impl PodServiceIndex {
    /// The services to resync for an event on `pod`: those it matches now plus those it
    /// matched before. `deleted` pods match nothing now and are forgotten.
    pub fn services_for(
        &self,
        services: &Store<Service>,
        pod: &Pod,
        deleted: bool,
    ) -> Vec<ObjectRef<Service>> {
        let key = (pod.namespace().unwrap_or_default(), pod.name_any());
        let now: HashSet<ObjectRef<Service>> = if deleted {
            HashSet::new()
        } else {
            services
                .state_filter(|svc| {
                    svc.namespace() == pod.namespace()
                        && managed_selector(svc)
                            .is_some_and(|sel| selector_matches(sel, pod.labels()))
                })
                .iter()
                .map(|svc| ObjectRef::from_obj(svc.as_ref()))
                .collect()
        };
        let mut last = self.last.lock();
        // Only pods that match a service are remembered: most pods match
        // none, and an entry per pod would cost memory at 100 000 pods.
        let before = if deleted || now.is_empty() {
            last.remove(&key)
        } else {
            last.insert(key, now.clone())
        };
        now.into_iter()
            .chain(before.unwrap_or_default())
            .collect::<HashSet<_>>()
            .into_iter()
            .collect()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        Container, ContainerPort, PodCondition, PodIP, PodSpec, PodStatus, ServiceSpec,
    };

    pub fn pod(name: &str, ip: &str, ready: bool) -> Pod {
        let mut pod = Pod::default();
        pod.metadata.name = Some(name.into());
        pod.metadata.namespace = Some("ns".into());
        pod.spec = Some(PodSpec {
            containers: vec![Container {
                name: "c".into(),
                ports: Some(vec![ContainerPort {
                    name: Some("http".into()),
                    container_port: 8080,
                    protocol: Some("TCP".into()),
                    ..Default::default()
                }]),
                ..Default::default()
            }],
            ..Default::default()
        });
        pod.status = Some(PodStatus {
            pod_ip: Some(ip.into()),
            pod_ips: Some(vec![PodIP { ip: ip.into() }]),
            phase: Some("Running".into()),
            conditions: Some(vec![PodCondition {
                type_: "Ready".into(),
                status: if ready { "True" } else { "False" }.into(),
                ..Default::default()
            }]),
            ..Default::default()
        });
        pod
    }

    fn port(target: Option<IntOrString>) -> ServicePort {
        ServicePort {
            port: 80,
            target_port: target,
            protocol: Some("TCP".into()),
            ..Default::default()
        }
    }

    #[test]
    fn find_port_resolves_numeric_named_and_default_targets() {
        let p = pod("a", "10.0.0.1", true);
        assert_eq!(find_port(&p, &port(None)), Some(80));
        assert_eq!(
            find_port(&p, &port(Some(IntOrString::Int(9000)))),
            Some(9000)
        );
        assert_eq!(
            find_port(&p, &port(Some(IntOrString::String("http".into())))),
            Some(8080)
        );
        assert_eq!(
            find_port(&p, &port(Some(IntOrString::String("nope".into())))),
            None
        );
        let mut udp = port(Some(IntOrString::String("http".into())));
        udp.protocol = Some("UDP".into());
        assert_eq!(find_port(&p, &udp), None);
    }

    #[test]
    fn terminal_unaddressed_and_terminating_pods_are_excluded() {
        let mut p = pod("a", "10.0.0.1", true);
        assert!(should_pod_be_in_endpoints(&p, false));
        p.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            Default::default(),
        ));
        assert!(!should_pod_be_in_endpoints(&p, false));
        assert!(should_pod_be_in_endpoints(&p, true));
        let mut failed = pod("b", "10.0.0.2", false);
        failed.status.as_mut().unwrap().phase = Some("Failed".into());
        assert!(!should_pod_be_in_endpoints(&failed, true));
        let mut no_ip = pod("c", "", false);
        no_ip.status.as_mut().unwrap().pod_ips = None;
        assert!(!should_pod_be_in_endpoints(&no_ip, true));
    }

    #[test]
    fn readiness_and_selector_matching() {
        assert!(is_pod_ready(&pod("a", "10.0.0.1", true)));
        assert!(!is_pod_ready(&pod("a", "10.0.0.1", false)));
        let sel: BTreeMap<String, String> = [("app".to_string(), "x".to_string())].into();
        let mut labels = sel.clone();
        labels.insert("extra".into(), "y".into());
        assert!(selector_matches(&sel, &labels));
        assert!(!selector_matches(&sel, &BTreeMap::new()));
    }

    #[test]
    fn services_without_selector_or_external_name_are_unmanaged() {
        let mut svc = Service {
            spec: Some(ServiceSpec::default()),
            ..Default::default()
        };
        assert!(managed_selector(&svc).is_none());
        svc.spec.as_mut().unwrap().selector = Some(BTreeMap::new());
        assert!(managed_selector(&svc).is_none());
        svc.spec.as_mut().unwrap().selector = Some([("a".to_string(), "b".to_string())].into());
        assert!(managed_selector(&svc).is_some());
        svc.spec.as_mut().unwrap().type_ = Some("ExternalName".into());
        assert!(managed_selector(&svc).is_none());
    }

    #[test]
    fn hostname_requires_matching_subdomain() {
        let mut svc = Service::default();
        svc.metadata.name = Some("web".into());
        svc.metadata.namespace = Some("ns".into());
        let mut p = pod("a", "10.0.0.1", true);
        p.spec.as_mut().unwrap().hostname = Some("h".into());
        assert_eq!(pod_hostname(&p, &svc), None);
        p.spec.as_mut().unwrap().subdomain = Some("web".into());
        assert_eq!(pod_hostname(&p, &svc), Some("h".into()));
    }
}
