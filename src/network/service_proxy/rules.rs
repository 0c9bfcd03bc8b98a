//! What one Service contributes to kelp's nftables table.
//!
//! kube-proxy's nftables design: a lookup, not a list. Every Service port
//! is one element of a verdict map keyed by `daddr . l4proto . dport`
//! (`service-ips`) or `l4proto . dport` for NodePorts
//! (`service-nodeports`), pointing at a chain of its own. That chain DNATs
//! to `numgen random mod n` looked up in a data map of the port's `n`
//! endpoints (`endpoints-…`), so the choice is uniform. Service ports
//! without endpoints go into the `no-endpoint-*` maps the filter hooks
//! consult, which REJECT (or DROP, when only the Local traffic policy
//! leaves none). The cost per packet is one hash lookup whatever the
//! number of Services.
//!
//! Unlike kube-proxy, there is no chain per endpoint (except with ClientIP
//! session affinity, whose per-endpoint sets need one). The kernel
//! re-validates the whole chain graph on every commit that adds a jump, a
//! goto or a NAT rule: with 50 000 endpoint chains that walk cost about
//! 26 ms per EndpointSlice change. An endpoint change now only swaps map
//! elements, which needs no validation; hairpin traffic (a pod reaching
//! itself through its Service) is masqueraded by one set of `ep . ep`
//! address pairs instead of a rule in each endpoint chain.
//!
//! [`service_rules`] computes a Service's part from the Service and its
//! EndpointSlices alone, so a change to one Service is recomputed and
//! diffed alone.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use sha2::{Digest, Sha256};

use crate::network::nftables::Verdict;
use crate::network::nftables::expr::{self, Expr, IPPROTO_SCTP, IPPROTO_TCP, IPPROTO_UDP};

/// Chain marking a connection for masquerade on its way out.
pub const MARK_FOR_MASQUERADE: &str = "mark-for-masquerade";
/// Chain refusing connections to Service ports without endpoints.
pub const REJECT_CHAIN: &str = "reject-chain";
/// The mark bit asking for masquerade (kube-proxy's).
pub const MASQUERADE_MARK: u32 = 0x4000;

/// A `service-ips` key: IPv4 address, protocol and port, each padded to
/// four bytes.
pub type IpKey = [u8; 12];
/// A `service-nodeports` key: protocol and port, padded.
pub type PortKey = [u8; 8];

/// The node-specific settings rules depend on.
#[derive(Clone, Debug)]
pub struct ProxyContext {
    /// This node's name (for the Local traffic policies).
    pub node_name: String,
    /// The pod network (`--cluster-cidr`): traffic from elsewhere to a
    /// ClusterIP is masqueraded.
    pub cluster_cidr: Ipv4Net,
    /// A ClusterIP this node answers itself (the node-local cluster DNS
    /// holds `--cluster-dns`): never DNAT'd nor rejected.
    pub served_locally: Option<Ipv4Addr>,
}

/// One Service's chains and map elements.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServiceRules {
    /// Chain name → its rules.
    pub chains: BTreeMap<String, Vec<Vec<Expr>>>,
    /// `service-ips` elements.
    pub service_ips: BTreeMap<IpKey, Verdict>,
    /// `service-nodeports` elements.
    pub service_nodeports: BTreeMap<PortKey, Verdict>,
    /// `no-endpoint-services` elements.
    pub no_endpoint_ips: BTreeMap<IpKey, Verdict>,
    /// `no-endpoint-nodeports` elements.
    pub no_endpoint_nodeports: BTreeMap<PortKey, Verdict>,
    /// sessionAffinity ClientIP: a dynamic set of client addresses per
    /// endpoint chain → its timeout in milliseconds.
    pub affinity_sets: BTreeMap<String, u64>,
    /// Endpoint maps: name → the values of indexes 0, 1, … (see
    /// [`expr::endpoint_value`]).
    pub endpoint_maps: BTreeMap<String, Vec<[u8; 8]>>,
    /// Endpoint addresses whose traffic to themselves is masqueraded.
    pub hairpin: std::collections::BTreeSet<Ipv4Addr>,
}

impl ServiceRules {
    /// Whether the Service needs nothing in the table.
    pub fn is_empty(&self) -> bool {
        self.chains.is_empty()
            && self.service_ips.is_empty()
            && self.service_nodeports.is_empty()
            && self.no_endpoint_ips.is_empty()
            && self.no_endpoint_nodeports.is_empty()
            && self.affinity_sets.is_empty()
            && self.endpoint_maps.is_empty()
            && self.hairpin.is_empty()
    }
}

/// The key of `ip . proto . port`.
pub fn ip_key(ip: Ipv4Addr, proto: u8, port: u16) -> IpKey {
    let mut k = [0u8; 12];
    k[..4].copy_from_slice(&ip.octets());
    k[4] = proto;
    k[8..10].copy_from_slice(&port.to_be_bytes());
    k
}

/// The key of `proto . port`.
pub fn port_key(proto: u8, port: u16) -> PortKey {
    let mut k = [0u8; 8];
    k[0] = proto;
    k[4..6].copy_from_slice(&port.to_be_bytes());
    k
}

/// The protocol number of a Service port's protocol.
fn protocol_number(protocol: Option<&str>) -> Option<u8> {
    match protocol.unwrap_or("TCP") {
        "TCP" => Some(IPPROTO_TCP),
        "UDP" => Some(IPPROTO_UDP),
        "SCTP" => Some(IPPROTO_SCTP),
        _ => None,
    }
}

/// An endpoint chosen for a Service port.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Endpoint {
    ip: Ipv4Addr,
    port: u16,
    local: bool,
}

/// The endpoints of one Service port, as kube-proxy picks them: the ready
/// ones, or, when none is ready, the serving ones that are terminating.
fn port_endpoints(
    slices: &[&EndpointSlice],
    port_name: &str,
    protocol: &str,
    node: &str,
) -> Vec<Endpoint> {
    let mut ready = Vec::new();
    let mut terminating = Vec::new();
    for slice in slices {
        if slice.address_type != "IPv4" {
            continue;
        }
        let Some(port) = slice.ports.iter().flatten().find(|p| {
            p.name.as_deref().unwrap_or("") == port_name
                && p.protocol.as_deref().unwrap_or("TCP") == protocol
        }) else {
            continue;
        };
        let Some(number) = port.port.and_then(|p| u16::try_from(p).ok()) else {
            continue;
        };
        for ep in slice.endpoints.iter().flatten() {
            let c = ep.conditions.as_ref();
            let is_ready = c.and_then(|c| c.ready).unwrap_or(true);
            let serving = c.and_then(|c| c.serving).unwrap_or(is_ready);
            let is_terminating = c.and_then(|c| c.terminating).unwrap_or(false);
            let local = ep.node_name.as_deref() == Some(node);
            for ip in ep
                .addresses
                .iter()
                .filter_map(|a| a.parse::<Ipv4Addr>().ok())
            {
                let e = Endpoint {
                    ip,
                    port: number,
                    local,
                };
                if is_ready {
                    ready.push(e);
                } else if serving && is_terminating {
                    terminating.push(e);
                }
            }
        }
    }
    let mut chosen = if ready.is_empty() { terminating } else { ready };
    chosen.sort();
    chosen.dedup_by(|a, b| a.ip == b.ip && a.port == b.port);
    chosen
}

fn short_hash(s: &str) -> String {
    let d = Sha256::digest(s.as_bytes());
    d[..4].iter().map(|b| format!("{b:02x}")).collect()
}

/// The affinity set of an endpoint chain.
fn affinity_set(endpoint_chain: &str) -> String {
    format!(
        "affinity-{}",
        endpoint_chain
            .strip_prefix("endpoint-")
            .unwrap_or(endpoint_chain)
    )
}

/// Rules that pick one of `chains` uniformly at random; with session
/// affinity, a client seen recently goes back to its endpoint first.
fn pick_one(chains: &[String], affinity: bool) -> Vec<Vec<Expr>> {
    let n = chains.len();
    let sticky = chains.iter().filter(|_| affinity).map(|chain| {
        vec![
            expr::ip_saddr(),
            Expr::Lookup {
                set: affinity_set(chain),
                sreg: expr::REG32_0,
                dreg: None,
            },
            Expr::Verdict(Verdict::Goto(chain.clone())),
        ]
    });
    let random = chains.iter().enumerate().map(|(i, chain)| {
        let mut rule = if i + 1 < n {
            expr::one_in((n - i) as u32)
        } else {
            Vec::new()
        };
        rule.push(Expr::Verdict(Verdict::Goto(chain.clone())));
        rule
    });
    sticky.chain(random).collect()
}

/// The endpoint map of a Service port: all its endpoints, or (`local`)
/// only this node's, for the Local traffic policies.
fn endpoint_map_name(local: bool, hash: &str, id: &str) -> String {
    if local {
        format!("local-endpoints-{hash}-{id}")
    } else {
        format!("endpoints-{hash}-{id}")
    }
}

/// The DNAT rule picking one of `endpoints` from the map `map`, which it
/// fills; their addresses join the hairpin set.
fn pick_from_map(
    out: &mut ServiceRules,
    map: &str,
    endpoints: &[&Endpoint],
    proto: u8,
) -> Vec<Expr> {
    out.endpoint_maps.insert(
        map.to_string(),
        endpoints
            .iter()
            .map(|e| expr::endpoint_value(e.ip, e.port))
            .collect(),
    );
    out.hairpin.extend(endpoints.iter().map(|e| e.ip));
    let mut rule = expr::l4proto_is(proto);
    rule.extend(expr::dnat_to_random_of(map, endpoints.len() as u32));
    rule
}

/// A Service's part of the table.
pub fn service_rules(svc: &Service, slices: &[&EndpointSlice], ctx: &ProxyContext) -> ServiceRules {
    let mut out = ServiceRules::default();
    let Some(spec) = svc.spec.as_ref() else {
        return out;
    };
    let ns = svc.metadata.namespace.as_deref().unwrap_or("default");
    let name = svc.metadata.name.as_deref().unwrap_or_default();
    let Some(cluster_ip) = spec
        .cluster_ip
        .as_deref()
        .and_then(|ip| ip.parse::<Ipv4Addr>().ok())
    else {
        // Headless, ExternalName, or not IPv4: DNS only.
        return out;
    };
    if ctx.served_locally == Some(cluster_ip) {
        return out;
    }
    let internal_local = spec.internal_traffic_policy.as_deref() == Some("Local");
    let external_local = spec.external_traffic_policy.as_deref() == Some("Local");
    let mut external_ips: Vec<Ipv4Addr> = spec
        .external_ips
        .iter()
        .flatten()
        .filter_map(|ip| ip.parse().ok())
        .collect();
    if spec.type_.as_deref() == Some("LoadBalancer") {
        external_ips.extend(
            svc.status
                .as_ref()
                .and_then(|s| s.load_balancer.as_ref())
                .and_then(|lb| lb.ingress.as_ref())
                .into_iter()
                .flatten()
                .filter_map(|i| i.ip.as_deref()?.parse::<Ipv4Addr>().ok()),
        );
    }
    let has_node_ports = matches!(spec.type_.as_deref(), Some("NodePort" | "LoadBalancer"));
    // sessionAffinity ClientIP, upstream's default timeout 3 hours.
    let affinity_ms = (spec.session_affinity.as_deref() == Some("ClientIP")).then(|| {
        let seconds = spec
            .session_affinity_config
            .as_ref()
            .and_then(|c| c.client_ip.as_ref())
            .and_then(|c| c.timeout_seconds)
            .filter(|t| *t > 0)
            .unwrap_or(10_800);
        seconds as u64 * 1000
    });
    let affinity = affinity_ms.is_some();

    for port in spec.ports.iter().flatten() {
        let protocol = port.protocol.as_deref().unwrap_or("TCP");
        let Some(proto) = protocol_number(Some(protocol)) else {
            continue;
        };
        let Ok(svc_port) = u16::try_from(port.port) else {
            continue;
        };
        let port_name = port.name.as_deref().unwrap_or("");
        let id = format!("{ns}/{name}/{}/{port_name}", protocol.to_ascii_lowercase());
        let hash = short_hash(&id);
        let endpoints = port_endpoints(slices, port_name, protocol, &ctx.node_name);

        // One chain per endpoint: hairpin masquerade, then DNAT.
        let endpoint_chain = |e: &Endpoint| {
            format!(
                "endpoint-{}-{ns}/{name}/{port_name}__{}/{}",
                short_hash(&format!("{id}/{}/{}", e.ip, e.port)),
                e.ip,
                e.port
            )
        };
        let chain_of_endpoint = |e: &Endpoint, out: &mut ServiceRules| {
            let chain = endpoint_chain(e);
            let mut hairpin = expr::ip_saddr_is(e.ip);
            hairpin.push(Expr::Verdict(Verdict::Jump(MARK_FOR_MASQUERADE.into())));
            let mut rules = vec![hairpin];
            if let Some(timeout_ms) = affinity_ms {
                // Remember (or refresh) which endpoint this client got.
                let set = affinity_set(&chain);
                rules.push(vec![
                    expr::ip_saddr(),
                    Expr::DynsetUpdate {
                        set: set.clone(),
                        sreg: expr::REG32_0,
                        timeout_ms,
                    },
                ]);
                out.affinity_sets.insert(set, timeout_ms);
            }
            let mut dnat = expr::l4proto_is(proto);
            dnat.extend(expr::dnat_to(e.ip, e.port));
            rules.push(dnat);
            out.chains.entry(chain.clone()).or_insert(rules);
            chain
        };

        // How a chain picks one of `eps`: through the port's endpoint map
        // (of this node's endpoints only, with `local`), or, with ClientIP
        // affinity, through a chain per endpoint.
        let pick = |eps: &[&Endpoint], local: bool, out: &mut ServiceRules| -> Vec<Vec<Expr>> {
            if affinity {
                let targets: Vec<String> = eps.iter().map(|e| chain_of_endpoint(e, out)).collect();
                pick_one(&targets, true)
            } else {
                let map = endpoint_map_name(local, &hash, &id);
                vec![pick_from_map(out, &map, eps, proto)]
            }
        };

        // Traffic to the ClusterIP.
        let cluster_eps: Vec<&Endpoint> = endpoints
            .iter()
            .filter(|e| !internal_local || e.local)
            .collect();
        let key = ip_key(cluster_ip, proto, svc_port);
        if cluster_eps.is_empty() {
            let verdict = if endpoints.is_empty() {
                Verdict::Goto(REJECT_CHAIN.into())
            } else {
                Verdict::Drop
            };
            out.no_endpoint_ips.insert(key, verdict);
        } else {
            let chain = format!("service-{hash}-{id}");
            // Clients outside the pod network (the node itself, other
            // hosts) are masqueraded, so that replies come back through
            // this node.
            let mut masq = expr::ip_addr_in(false, ctx.cluster_cidr, true);
            masq.push(Expr::Verdict(Verdict::Jump(MARK_FOR_MASQUERADE.into())));
            let mut rules = vec![masq];
            rules.extend(pick(&cluster_eps, internal_local, &mut out));
            out.chains.insert(chain.clone(), rules);
            out.service_ips.insert(key, Verdict::Goto(chain));
        }

        // Traffic from outside: NodePorts, external and load-balancer IPs.
        let node_port = port
            .node_port
            .filter(|_| has_node_ports)
            .and_then(|p| u16::try_from(p).ok())
            .filter(|p| *p > 0);
        if node_port.is_none() && external_ips.is_empty() {
            continue;
        }
        let external_eps: Vec<&Endpoint> = endpoints
            .iter()
            .filter(|e| !external_local || e.local)
            .collect();
        let verdict = if external_eps.is_empty() {
            if endpoints.is_empty() {
                Verdict::Goto(REJECT_CHAIN.into())
            } else {
                Verdict::Drop
            }
        } else {
            let chain = format!("external-{hash}-{id}");
            let mut rules = Vec::new();
            // With the Cluster policy the client's address is lost (the
            // endpoint may be on another node); Local keeps it.
            if !external_local {
                rules.push(vec![Expr::Verdict(Verdict::Jump(
                    MARK_FOR_MASQUERADE.into(),
                ))]);
            }
            rules.extend(pick(&external_eps, external_local, &mut out));
            out.chains.insert(chain.clone(), rules);
            Verdict::Goto(chain)
        };
        let live = !external_eps.is_empty();
        if let Some(np) = node_port {
            let k = port_key(proto, np);
            if live {
                out.service_nodeports.insert(k, verdict.clone());
            } else {
                out.no_endpoint_nodeports.insert(k, verdict.clone());
            }
        }
        for ip in &external_ips {
            let k = ip_key(*ip, proto, svc_port);
            if live {
                out.service_ips.insert(k, verdict.clone());
            } else {
                out.no_endpoint_ips.insert(k, verdict.clone());
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> ProxyContext {
        ProxyContext {
            node_name: "n1".into(),
            cluster_cidr: "10.42.0.0/16".parse().unwrap(),
            served_locally: Some("10.43.0.10".parse().unwrap()),
        }
    }

    fn service(yaml: &str) -> Service {
        serde_yaml::from_str(yaml).unwrap()
    }

    fn slice(yaml: &str) -> EndpointSlice {
        serde_yaml::from_str(yaml).unwrap()
    }

    const WEB: &str = "
metadata: {name: web, namespace: default}
spec:
  type: NodePort
  clusterIP: 10.43.0.20
  ports: [{name: http, port: 80, protocol: TCP, nodePort: 30080}]
";

    const SLICE: &str = "
metadata: {name: web-1, namespace: default, labels: {kubernetes.io/service-name: web}}
addressType: IPv4
ports: [{name: http, port: 8080, protocol: TCP}]
endpoints:
- addresses: [10.42.0.5]
  nodeName: n1
  conditions: {ready: true}
- addresses: [10.42.1.7]
  nodeName: n2
  conditions: {ready: true}
- addresses: [10.42.1.9]
  nodeName: n2
  conditions: {ready: false, serving: true, terminating: true}
";

    #[test]
    fn a_nodeport_service_gets_a_map_element_per_entry_and_an_endpoint_map() {
        let s = slice(SLICE);
        let r = service_rules(&service(WEB), &[&s], &ctx());
        let svc_chain = r.service_ips[&ip_key("10.43.0.20".parse().unwrap(), 6, 80)].clone();
        assert!(matches!(&svc_chain, Verdict::Goto(c) if c.starts_with("service-")));
        assert!(
            matches!(&r.service_nodeports[&port_key(6, 30080)], Verdict::Goto(c) if c.starts_with("external-"))
        );
        // No chain per endpoint: one map of the endpoints, shared by the
        // ClusterIP and the NodePort (both use every endpoint).
        assert!(!r.chains.keys().any(|c| c.starts_with("endpoint-")));
        assert_eq!(r.endpoint_maps.len(), 1, "{:?}", r.endpoint_maps);
        let (map, values) = r.endpoint_maps.iter().next().unwrap();
        // The terminating endpoint is not used while others are ready.
        assert_eq!(
            values,
            &vec![
                expr::endpoint_value("10.42.0.5".parse().unwrap(), 8080),
                expr::endpoint_value("10.42.1.7".parse().unwrap(), 8080),
            ]
        );
        // masquerade rule + the DNAT through the map
        let rules = &r.chains[svc_chain.chain().unwrap()];
        assert_eq!(rules.len(), 2);
        assert!(rules[1].contains(&Expr::NumgenRandom {
            modulus: 2,
            dreg: expr::REG32_0
        }));
        assert!(
            rules[1]
                .iter()
                .any(|e| matches!(e, Expr::Lookup { set, .. } if set == map))
        );
        let hairpin: Vec<String> = r.hairpin.iter().map(|ip| ip.to_string()).collect();
        assert_eq!(hairpin, ["10.42.0.5", "10.42.1.7"]);
        assert!(r.no_endpoint_ips.is_empty());
    }

    #[test]
    fn local_policies_pick_from_a_map_of_the_nodes_own_endpoints() {
        let local = WEB.replace(
            "type: NodePort",
            "type: NodePort\n  externalTrafficPolicy: Local",
        );
        let s = slice(SLICE);
        let r = service_rules(&service(&local), &[&s], &ctx());
        assert_eq!(r.endpoint_maps.len(), 2, "{:?}", r.endpoint_maps);
        let local_map = r
            .endpoint_maps
            .iter()
            .find(|(name, _)| name.starts_with("local-endpoints-"))
            .map(|(_, v)| v.clone())
            .unwrap();
        assert_eq!(
            local_map,
            vec![expr::endpoint_value("10.42.0.5".parse().unwrap(), 8080)]
        );
    }

    #[test]
    fn client_ip_affinity_sends_a_known_client_back_to_its_endpoint() {
        let sticky = WEB.replace(
            "type: NodePort",
            "type: NodePort\n  sessionAffinity: ClientIP\n  sessionAffinityConfig: {clientIP: {timeoutSeconds: 60}}",
        );
        let s = slice(SLICE);
        let r = service_rules(&service(&sticky), &[&s], &ctx());
        // One dynamic set per endpoint chain, with the Service's timeout.
        assert_eq!(r.affinity_sets.len(), 2);
        assert!(r.affinity_sets.values().all(|ms| *ms == 60_000));
        let svc_chain = r.service_ips[&ip_key("10.43.0.20".parse().unwrap(), 6, 80)].clone();
        let rules = &r.chains[svc_chain.chain().unwrap()];
        // masquerade, a lookup per endpoint, then the random picks
        assert_eq!(rules.len(), 5);
        for rule in &rules[1..3] {
            let Some(Expr::Lookup {
                set, dreg: None, ..
            }) = rule.get(1)
            else {
                panic!("{rule:?}");
            };
            assert!(r.affinity_sets.contains_key(set));
            assert!(
                matches!(rule.last(), Some(Expr::Verdict(Verdict::Goto(c))) if set.ends_with(c.trim_start_matches("endpoint-")))
            );
        }
        // Each endpoint chain records the client before its DNAT.
        for (name, rules) in r.chains.iter().filter(|(c, _)| c.starts_with("endpoint-")) {
            assert!(
                rules.iter().any(|rule| matches!(rule.last(), Some(Expr::DynsetUpdate { set, timeout_ms: 60_000, .. }) if *set == affinity_set(name))),
                "{name}: {rules:?}"
            );
        }
        // Without affinity: no sets, no lookups.
        let plain = service_rules(&service(WEB), &[&s], &ctx());
        assert!(plain.affinity_sets.is_empty());
    }

    #[test]
    fn without_endpoints_the_ports_reject_and_local_policies_drop() {
        let r = service_rules(&service(WEB), &[], &ctx());
        assert!(r.service_ips.is_empty() && r.chains.is_empty());
        assert_eq!(
            r.no_endpoint_ips.values().next(),
            Some(&Verdict::Goto(REJECT_CHAIN.into()))
        );
        assert_eq!(r.no_endpoint_nodeports.len(), 1);

        let local = WEB.replace(
            "type: NodePort",
            "type: NodePort\n  externalTrafficPolicy: Local\n  internalTrafficPolicy: Local",
        );
        let s = slice(&SLICE.replace("nodeName: n1", "nodeName: n2"));
        let r = service_rules(&service(&local), &[&s], &ctx());
        assert_eq!(r.no_endpoint_ips.values().next(), Some(&Verdict::Drop));
        assert_eq!(
            r.no_endpoint_nodeports.values().next(),
            Some(&Verdict::Drop)
        );
    }

    #[test]
    fn terminating_serving_endpoints_are_used_when_none_is_ready() {
        let s = slice(&SLICE.replace("ready: true", "ready: false, serving: false"));
        let r = service_rules(&service(WEB), &[&s], &ctx());
        let values: Vec<_> = r.endpoint_maps.values().collect();
        assert_eq!(
            values,
            [&vec![expr::endpoint_value(
                "10.42.1.9".parse().unwrap(),
                8080
            )]]
        );
    }

    #[test]
    fn headless_and_external_name_services_have_no_rules() {
        let headless = WEB.replace("10.43.0.20", "None");
        assert!(service_rules(&service(&headless), &[], &ctx()).is_empty());
        let ext = "metadata: {name: x, namespace: d}\nspec: {type: ExternalName, externalName: example.com}";
        assert!(service_rules(&service(ext), &[], &ctx()).is_empty());
        // The node answers the cluster DNS address itself.
        let dns = WEB.replace("10.43.0.20", "10.43.0.10");
        assert!(service_rules(&service(&dns), &[], &ctx()).is_empty());
    }
}
