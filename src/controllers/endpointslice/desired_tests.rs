use std::sync::Arc;

use k8s_openapi::api::core::v1::{ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::*;
use crate::controllers::service_endpoints::tests::pod;

fn service() -> Service {
    let mut svc = Service::default();
    svc.metadata.name = Some("web".into());
    svc.metadata.namespace = Some("ns".into());
    svc.spec = Some(ServiceSpec {
        cluster_ip: Some("10.43.0.10".into()),
        selector: Some([("app".to_string(), "web".to_string())].into()),
        ports: Some(vec![ServicePort {
            name: Some("http".into()),
            port: 80,
            target_port: Some(IntOrString::String("http".into())),
            protocol: Some("TCP".into()),
            ..Default::default()
        }]),
        ..Default::default()
    });
    svc
}

fn on_node(mut p: Pod, node: &str) -> Arc<Pod> {
    p.spec.as_mut().unwrap().node_name = Some(node.into());
    Arc::new(p)
}

fn known(node: &str) -> Option<Option<String>> {
    (node == "n1").then(|| Some("zone-a".to_string()))
}

fn conditions(ep: &Endpoint) -> (Option<bool>, Option<bool>, Option<bool>) {
    let c = ep.conditions.clone().unwrap();
    (c.ready, c.serving, c.terminating)
}

#[test]
fn endpoints_carry_readiness_zone_and_resolved_ports() {
    let pods = vec![
        on_node(pod("a", "10.42.0.2", true), "n1"),
        on_node(pod("b", "10.42.0.3", false), "n1"),
    ];
    let (groups, missing) = desired_groups(&service(), &pods, known);
    assert!(!missing);
    assert_eq!(groups.len(), 1);
    let group = groups.values().next().unwrap();
    assert_eq!(group.ports[0].port, Some(8080));
    let a = &group.endpoints["10.42.0.2"];
    assert_eq!(conditions(a), (Some(true), Some(true), Some(false)));
    assert_eq!(a.zone.as_deref(), Some("zone-a"));
    assert_eq!(
        conditions(&group.endpoints["10.42.0.3"]),
        (Some(false), Some(false), Some(false))
    );
}

#[test]
fn terminating_ready_pods_are_serving_but_not_ready() {
    let mut p = pod("a", "10.42.0.2", true);
    p.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
        Default::default(),
    ));
    let (groups, _) = desired_groups(&service(), &[on_node(p, "n1")], known);
    let ep = &groups.values().next().unwrap().endpoints["10.42.0.2"];
    assert_eq!(conditions(ep), (Some(false), Some(true), Some(true)));
}

#[test]
fn pods_on_unknown_nodes_are_skipped_and_reported() {
    let (groups, missing) = desired_groups(
        &service(),
        &[on_node(pod("a", "10.42.0.2", true), "n9")],
        known,
    );
    assert!(missing);
    assert!(groups.is_empty());
}

fn slice(name: &str, ips: &[&str], ports: Vec<EndpointPort>) -> EndpointSlice {
    let mut s = EndpointSlice {
        address_type: "IPv4".into(),
        ports: Some(ports),
        ..Default::default()
    };
    s.metadata.name = Some(name.into());
    s.endpoints = Some(
        ips.iter()
            .map(|ip| Endpoint {
                addresses: vec![ip.to_string()],
                ..Default::default()
            })
            .collect(),
    );
    s
}

fn group_of(ips: &[&str]) -> (BTreeMap<GroupKey, Group>, Vec<EndpointPort>) {
    let ports = vec![EndpointPort {
        name: Some("http".into()),
        port: Some(8080),
        protocol: Some("TCP".into()),
        app_protocol: None,
    }];
    let endpoints = ips
        .iter()
        .map(|ip| {
            (
                ip.to_string(),
                Endpoint {
                    addresses: vec![ip.to_string()],
                    ..Default::default()
                },
            )
        })
        .collect();
    (
        BTreeMap::from([(
            port_key("IPv4", &ports),
            Group {
                ports: ports.clone(),
                endpoints,
            },
        )]),
        ports,
    )
}

#[test]
fn plan_chunks_new_endpoints_by_the_slice_limit() {
    let ips: Vec<String> = (1..=5).map(|i| format!("10.0.0.{i}")).collect();
    let refs: Vec<&str> = ips.iter().map(String::as_str).collect();
    let (groups, _) = group_of(&refs);
    let p = plan(groups, vec![], 2, "IPv4");
    let sizes: Vec<usize> = p.create.iter().map(|c| c.2.len()).collect();
    assert_eq!(sizes, vec![2, 2, 1]);
    assert!(p.update.is_empty() && p.delete.is_empty());
}

#[test]
fn plan_keeps_endpoints_in_place_and_fills_existing_slices_first() {
    let (groups, ports) = group_of(&["10.0.0.1", "10.0.0.2", "10.0.0.3"]);
    let existing = vec![slice("web-a", &["10.0.0.2", "10.0.0.9"], ports.clone())];
    let p = plan(groups, existing, 3, "IPv4");
    assert!(p.create.is_empty());
    assert_eq!(p.update.len(), 1);
    let addrs: Vec<&str> = p.update[0]
        .1
        .iter()
        .map(|e| e.addresses[0].as_str())
        .collect();
    assert_eq!(addrs, vec!["10.0.0.2", "10.0.0.1", "10.0.0.3"]);
}

#[test]
fn plan_deletes_emptied_and_stale_slices() {
    let (groups, ports) = group_of(&["10.0.0.1"]);
    let existing = vec![
        slice("web-a", &["10.0.0.1"], ports.clone()),
        slice("web-b", &["10.0.0.7"], ports.clone()),
        slice("web-c", &["10.0.0.8"], vec![]),
    ];
    let p = plan(groups, existing, 100, "IPv4");
    let deleted: Vec<String> = p.delete.iter().map(|s| s.name_any()).collect();
    assert_eq!(deleted, vec!["web-b", "web-c"]);
}

#[test]
fn plan_keeps_a_single_placeholder_when_nothing_is_selected() {
    let p = plan(BTreeMap::new(), vec![], 100, "IPv4");
    assert_eq!(p.create.len(), 1);
    assert!(p.create[0].1.is_empty() && p.create[0].2.is_empty());
    let existing = vec![slice("web-a", &[], vec![]), slice("web-b", &[], vec![])];
    let p = plan(BTreeMap::new(), existing, 100, "IPv4");
    assert!(p.create.is_empty());
    assert_eq!(p.update.len(), 1);
    assert_eq!(p.delete.len(), 1);
}

#[test]
fn address_types_follow_families_then_cluster_ip() {
    let mut svc = service();
    assert_eq!(address_types(&svc), vec!["IPv4"]);
    svc.spec.as_mut().unwrap().ip_families = Some(vec!["IPv6".into(), "IPv4".into()]);
    assert_eq!(address_types(&svc), vec!["IPv6", "IPv4"]);
    svc.spec.as_mut().unwrap().ip_families = None;
    svc.spec.as_mut().unwrap().cluster_ip = Some("None".into());
    assert_eq!(address_types(&svc), vec!["IPv4", "IPv6"]);
}
