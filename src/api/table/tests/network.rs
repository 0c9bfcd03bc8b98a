//! Services, endpoints, endpoint slices, ingresses, ingress classes, network policies.

use serde_json::{Value, json};

use super::support::{ago, row};
use crate::api::table::columns;

fn service(spec: Value, status: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "web", "namespace": "default", "creationTimestamp": ago(90)},
        "spec": spec, "status": status})
}

#[test]
fn service_columns() {
    let cols: Vec<_> = columns("", "services")
        .iter()
        .map(|c| (c.name, c.priority))
        .collect();
    assert_eq!(
        cols,
        [
            ("Name", 0),
            ("Type", 0),
            ("Cluster-IP", 0),
            ("External-IP", 0),
            ("Port(s)", 0),
            ("Age", 0),
            ("Selector", 1),
        ]
    );
}

#[test]
fn cluster_ip_service_row() {
    let svc = service(
        json!({"type": "ClusterIP", "clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10"],
            "selector": {"k8s-app": "kube-dns"},
            "ports": [{"name": "dns", "port": 53, "protocol": "UDP"},
                      {"name": "dns-tcp", "port": 53, "protocol": "TCP"}]}),
        json!({}),
    );
    assert_eq!(
        row("", "services", &svc),
        [
            json!("web"),
            json!("ClusterIP"),
            json!("10.96.0.10"),
            json!("<none>"),
            json!("53/UDP,53/TCP"),
            json!("90s"),
            json!("k8s-app=kube-dns"),
        ]
    );
}

#[test]
fn node_port_service_row() {
    let svc = service(
        json!({"type": "NodePort", "clusterIP": "10.96.12.7",
            "ports": [{"port": 80, "targetPort": 8080, "nodePort": 30080, "protocol": "TCP"},
                      {"port": 443, "nodePort": 30443}],
            "externalIPs": ["192.0.2.10"]}),
        json!({}),
    );
    let cells = row("", "services", &svc);
    assert_eq!(
        cells[1..5],
        [
            json!("NodePort"),
            json!("10.96.12.7"),
            json!("192.0.2.10"),
            json!("80:30080/TCP,443:30443/TCP")
        ]
    );
    assert_eq!(cells[6], json!("<none>"));
}

#[test]
fn load_balancer_service_rows() {
    let spec = json!({"type": "LoadBalancer", "clusterIPs": ["10.96.1.1"],
        "ports": [{"port": 80, "nodePort": 31000, "protocol": "TCP"}], "selector": {"app": "web"}});
    let pending = service(spec.clone(), json!({}));
    assert_eq!(row("", "services", &pending)[3], json!("<pending>"));
    let lb = json!({"loadBalancer": {"ingress": [
        {"ip": "203.0.113.9"}, {"hostname": "lb.example.com"}, {"ip": "203.0.113.10"}, {"ip": "203.0.113.9"}]}});
    let ready = service(spec.clone(), lb.clone());
    assert_eq!(
        row("", "services", &ready),
        [
            json!("web"),
            json!("LoadBalancer"),
            json!("10.96.1.1"),
            json!("203.0.113.10,203.0.113.9,lb.example.com"),
            json!("80:31000/TCP"),
            json!("90s"),
            json!("app=web"),
        ]
    );
    let mut with_external = spec;
    with_external["externalIPs"] = json!(["198.51.100.1"]);
    let both = service(
        with_external,
        json!({"loadBalancer": {"ingress": [{"ip": "203.0.113.9"}]}}),
    );
    assert_eq!(
        row("", "services", &both)[3],
        json!("203.0.113.9,198.51.100.1")
    );
}

#[test]
fn external_name_and_headless_and_defaulted_services() {
    let ext = service(
        json!({"type": "ExternalName", "externalName": "db.example.com"}),
        json!({}),
    );
    let cells = row("", "services", &ext);
    assert_eq!(
        cells[1..5],
        [
            json!("ExternalName"),
            json!("<none>"),
            json!("db.example.com"),
            json!("<none>")
        ]
    );
    let headless = service(
        json!({"clusterIP": "None", "ports": [{"port": 5432}]}),
        json!({}),
    );
    let cells = row("", "services", &headless);
    assert_eq!(
        cells[1..5],
        [
            json!("ClusterIP"),
            json!("None"),
            json!("<none>"),
            json!("5432/TCP")
        ]
    );
}

#[test]
fn endpoints_rows() {
    let ep = |subsets: Value| {
        let obj =
            json!({"metadata": {"name": "web", "creationTimestamp": ago(10)}, "subsets": subsets});
        row("", "endpoints", &obj)
    };
    assert_eq!(ep(json!([])), [json!("web"), json!("<none>"), json!("10s")]);
    let two =
        json!([{"addresses": [{"ip": "10.0.0.1"}, {"ip": "fd00::2"}], "ports": [{"port": 8080}]}]);
    assert_eq!(ep(two)[1], json!("10.0.0.1:8080,[fd00::2]:8080"));
    let many = json!([
        {"addresses": [{"ip": "10.0.0.1"}, {"ip": "10.0.0.2"}], "ports": [{"port": 80}, {"port": 443}]},
        {"addresses": [{"ip": "10.0.0.3"}]}
    ]);
    assert_eq!(
        ep(many)[1],
        json!("10.0.0.1:80,10.0.0.2:80,10.0.0.1:443 + 2 more...")
    );
    let headless = json!([{"addresses": [{"ip": "10.0.0.5"}]}]);
    assert_eq!(ep(headless)[1], json!("10.0.0.5"));
    let not_ready = json!([{"notReadyAddresses": [{"ip": "10.0.0.6"}], "ports": [{"port": 80}]}]);
    assert_eq!(ep(not_ready)[1], json!(""));
}

#[test]
fn endpoint_slice_rows() {
    let slice = json!({
        "metadata": {"name": "web-abc12", "creationTimestamp": ago(20)},
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": 80}, {"name": "metrics"}, {}, {"port": 9090}],
        "endpoints": [{"addresses": ["10.0.0.1"]}, {"addresses": ["10.0.0.2", "10.0.0.3"]}]
    });
    assert_eq!(
        row("discovery.k8s.io", "endpointslices", &slice),
        [
            json!("web-abc12"),
            json!("IPv4"),
            json!("80,metrics,* + 1 more..."),
            json!("10.0.0.1,10.0.0.2,10.0.0.3"),
            json!("20s")
        ]
    );
    let empty = json!({"metadata": {"name": "e"}, "addressType": "IPv6"});
    let cells = row("discovery.k8s.io", "endpointslices", &empty);
    assert_eq!(cells[2..4], [json!("<unset>"), json!("<unset>")]);
}

#[test]
fn ingress_rows() {
    let ing = json!({
        "metadata": {"name": "web", "creationTimestamp": ago(61)},
        "spec": {"ingressClassName": "nginx",
            "rules": [{"host": "a.example.com"}, {"host": "b.example.com"}, {}, {"host": "c.example.com"}, {"host": "d.example.com"}],
            "tls": [{"hosts": ["a.example.com"]}]},
        "status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.5"}]}}
    });
    assert_eq!(
        row("networking.k8s.io", "ingresses", &ing),
        [
            json!("web"),
            json!("nginx"),
            json!("a.example.com,b.example.com,c.example.com + 2 more..."),
            json!("192.0.2.5"),
            json!("80, 443"),
            json!("61s"),
        ]
    );
    let bare = json!({"metadata": {"name": "any"}, "spec": {"rules": [{"http": {}}]}});
    let cells = row("networking.k8s.io", "ingresses", &bare);
    assert_eq!(
        cells[1..5],
        [json!("<none>"), json!("*"), json!(""), json!("80")]
    );
}

#[test]
fn ingress_class_and_network_policy_rows() {
    let class = json!({"metadata": {"name": "nginx", "creationTimestamp": ago(5)},
        "spec": {"controller": "k8s.io/ingress-nginx",
                 "parameters": {"apiGroup": "k8s.example.com", "kind": "IngressParameters", "name": "p"}}});
    assert_eq!(
        row("networking.k8s.io", "ingressclasses", &class),
        [
            json!("nginx"),
            json!("k8s.io/ingress-nginx"),
            json!("IngressParameters.k8s.example.com/p"),
            json!("5s")
        ]
    );
    let plain = json!({"metadata": {"name": "c"}, "spec": {"controller": "x"}});
    assert_eq!(
        row("networking.k8s.io", "ingressclasses", &plain)[2],
        json!("<none>")
    );
    let np = json!({"metadata": {"name": "deny", "creationTimestamp": ago(5)},
        "spec": {"podSelector": {"matchLabels": {"role": "db"}}}});
    assert_eq!(
        row("networking.k8s.io", "networkpolicies", &np),
        [json!("deny"), json!("role=db"), json!("5s")]
    );
    let all = json!({"metadata": {"name": "all"}, "spec": {"podSelector": {}}});
    assert_eq!(
        row("networking.k8s.io", "networkpolicies", &all)[1],
        json!("<none>")
    );
}
