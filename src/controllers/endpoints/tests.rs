use std::sync::Arc;

use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::*;
use crate::controllers::service_endpoints::tests::pod;

fn service(cluster_ip: &str, ports: Vec<ServicePort>) -> Service {
    let mut svc = Service::default();
    svc.metadata.name = Some("web".into());
    svc.metadata.namespace = Some("ns".into());
    svc.spec = Some(ServiceSpec {
        cluster_ip: Some(cluster_ip.into()),
        selector: Some([("app".to_string(), "web".to_string())].into()),
        ports: Some(ports),
        ..Default::default()
    });
    svc
}

fn named_port() -> ServicePort {
    ServicePort {
        name: Some("http".into()),
        port: 80,
        target_port: Some(IntOrString::String("http".into())),
        protocol: Some("TCP".into()),
        ..Default::default()
    }
}

fn ips(addresses: &Option<Vec<EndpointAddress>>) -> Vec<String> {
    addresses.iter().flatten().map(|a| a.ip.clone()).collect()
}

#[test]
fn ready_and_unready_pods_land_in_separate_address_lists() {
    let svc = service("10.43.0.10", vec![named_port()]);
    let pods = vec![
        Arc::new(pod("b", "10.42.0.3", true)),
        Arc::new(pod("a", "10.42.0.2", false)),
        Arc::new(pod("c", "10.42.0.1", true)),
    ];
    let (subsets, truncated) = desired_subsets(&svc, &pods, 1000);
    assert!(!truncated);
    assert_eq!(subsets.len(), 1);
    assert_eq!(ips(&subsets[0].addresses), vec!["10.42.0.1", "10.42.0.3"]);
    assert_eq!(ips(&subsets[0].not_ready_addresses), vec!["10.42.0.2"]);
    let ports = subsets[0].ports.clone().unwrap();
    assert_eq!(
        (ports[0].port, ports[0].name.as_deref()),
        (8080, Some("http"))
    );
    let target = subsets[0].addresses.as_ref().unwrap()[0]
        .target_ref
        .clone()
        .unwrap();
    assert_eq!(
        (target.kind.as_deref(), target.name.as_deref()),
        (Some("Pod"), Some("c"))
    );
}

#[test]
fn publish_not_ready_addresses_lists_every_pod_as_ready() {
    let mut svc = service("10.43.0.10", vec![named_port()]);
    svc.spec.as_mut().unwrap().publish_not_ready_addresses = Some(true);
    let pods = vec![Arc::new(pod("a", "10.42.0.2", false))];
    let (subsets, _) = desired_subsets(&svc, &pods, 1000);
    assert_eq!(ips(&subsets[0].addresses), vec!["10.42.0.2"]);
    assert!(subsets[0].not_ready_addresses.is_none());
}

#[test]
fn pods_lacking_the_named_port_are_left_out() {
    let mut svc = service("10.43.0.10", vec![named_port()]);
    svc.spec.as_mut().unwrap().ports.as_mut().unwrap()[0].target_port =
        Some(IntOrString::String("grpc".into()));
    let (subsets, _) = desired_subsets(&svc, &[Arc::new(pod("a", "10.42.0.2", true))], 1000);
    assert!(subsets.is_empty());
}

#[test]
fn pods_resolving_different_ports_get_different_subsets() {
    let svc = service("10.43.0.10", vec![named_port()]);
    let mut other = pod("b", "10.42.0.9", true);
    let container = &mut other.spec.as_mut().unwrap().containers[0];
    container.ports.as_mut().unwrap()[0].container_port = 9090;
    let pods = vec![Arc::new(pod("a", "10.42.0.2", true)), Arc::new(other)];
    let (subsets, _) = desired_subsets(&svc, &pods, 1000);
    assert_eq!(subsets.len(), 2);
    let numbers: Vec<i32> = subsets
        .iter()
        .map(|s| s.ports.as_ref().unwrap()[0].port)
        .collect();
    assert_eq!(numbers, vec![8080, 9090]);
}

#[test]
fn headless_service_without_ports_lists_addresses_without_ports() {
    let svc = service("None", vec![]);
    let (subsets, _) = desired_subsets(&svc, &[Arc::new(pod("a", "10.42.0.2", true))], 1000);
    assert_eq!(ips(&subsets[0].addresses), vec!["10.42.0.2"]);
    assert!(subsets[0].ports.is_none());
    assert!(desired_labels(&svc).contains_key(LABEL_HEADLESS));
    let with_ip = service("10.43.0.1", vec![]);
    assert!(
        desired_subsets(&with_ip, &[Arc::new(pod("a", "10.42.0.2", true))], 1000)
            .0
            .is_empty()
    );
}

#[test]
fn truncation_keeps_ready_addresses_first() {
    let svc = service("10.43.0.10", vec![named_port()]);
    let pods: Vec<Arc<Pod>> = (0..5)
        .map(|i| {
            Arc::new(pod(
                &format!("p{i}"),
                &format!("10.42.0.{}", i + 1),
                i % 2 == 0,
            ))
        })
        .collect();
    let (subsets, truncated) = desired_subsets(&svc, &pods, 3);
    assert!(truncated);
    assert_eq!(
        ips(&subsets[0].addresses),
        vec!["10.42.0.1", "10.42.0.3", "10.42.0.5"]
    );
    assert!(subsets[0].not_ready_addresses.is_none());
}

#[test]
fn pods_without_an_ip_of_the_service_family_are_skipped() {
    let svc = service("fd00::10", vec![named_port()]);
    let (subsets, _) = desired_subsets(&svc, &[Arc::new(pod("a", "10.42.0.2", true))], 1000);
    assert!(subsets.is_empty());
}

#[test]
fn labels_copy_the_service_and_mark_the_manager() {
    let mut svc = service("10.43.0.10", vec![]);
    svc.metadata.labels = Some([("team".to_string(), "a".to_string())].into());
    let labels = desired_labels(&svc);
    assert_eq!(labels.get("team").map(String::as_str), Some("a"));
    assert_eq!(
        labels.get(LABEL_MANAGED_BY).map(String::as_str),
        Some(CONTROLLER_NAME)
    );
    assert!(!labels.contains_key(LABEL_HEADLESS));
}
