//! kelp's nftables table: its fixed skeleton and the transactions that
//! bring it from one set of Services to the next.
//!
//! [`ProxyTable`] remembers what it last committed per Service. A sync
//! turns the Services that changed into one batch that touches only what
//! differs: new chains are created before anything refers to them, map
//! elements are removed before they are re-added, and chains no longer
//! used are flushed and then deleted once nothing jumps to them. The
//! first sync (and any after a failure) replaces the whole table in one
//! batch, so packets never see a half-built table.

use std::collections::{BTreeMap, HashMap};

use ipnet::Ipv4Net;

use super::rules::{
    IpKey, MARK_FOR_MASQUERADE, MASQUERADE_MARK, PortKey, ProxyContext, REJECT_CHAIN, ServiceRules,
};
use crate::network::nftables::expr::{self, Expr, REG_VERDICT, REG32_0};
use crate::network::nftables::{BaseChain, Batch, Hook, SetSpec, Verdict};

/// The table's name (family `ip`).
pub const TABLE: &str = "kelp";
const SERVICE_IPS: &str = "service-ips";
const SERVICE_NODEPORTS: &str = "service-nodeports";
const NO_ENDPOINT_SERVICES: &str = "no-endpoint-services";
const NO_ENDPOINT_NODEPORTS: &str = "no-endpoint-nodeports";
const SERVICES_CHAIN: &str = "services";
const ENDPOINTS_CHECK: &str = "endpoints-check";
const MASQUERADING: &str = "masquerading";
const POD_MASQUERADE: &str = "pod-masquerade";

// nftables type ids, for `nft list`: ipv4_addr 7, inet_proto 12,
// inet_service 13, concatenated 6 bits at a time.
const IP_PROTO_PORT_TYPE: u32 = (((7 << 6) | 12) << 6) | 13;
const PROTO_PORT_TYPE: u32 = (12 << 6) | 13;

/// What the table holds, per Service key (`namespace/name`).
pub struct ProxyTable {
    ctx: ProxyContext,
    masquerade_pods: bool,
    services: HashMap<String, ServiceRules>,
}

impl ProxyTable {
    /// An empty table model (nothing committed yet).
    pub fn new(ctx: ProxyContext, masquerade_pods: bool) -> Self {
        ProxyTable {
            ctx,
            masquerade_pods,
            services: HashMap::new(),
        }
    }

    /// The node-specific settings.
    pub fn context(&self) -> &ProxyContext {
        &self.ctx
    }

    /// Services with rules in the table.
    pub fn len(&self) -> usize {
        self.services.len()
    }

    /// Whether no Service has rules.
    pub fn is_empty(&self) -> bool {
        self.services.is_empty()
    }

    /// A batch replacing the whole table with the skeleton and `all`.
    /// Apply it with [`ProxyTable::committed_full`] once committed.
    pub fn full_sync(&self, all: &HashMap<String, ServiceRules>) -> Batch {
        let mut b = Batch::new(TABLE);
        // add, delete, add: a reset that works whether or not it exists.
        b.add_table().delete_table().add_table();
        self.skeleton(&mut b);
        let empty = HashMap::new();
        diff(&mut b, &empty, all.iter().map(|(k, v)| (k.as_str(), v)));
        b
    }

    /// Records that a [`ProxyTable::full_sync`] of `all` was committed.
    pub fn committed_full(&mut self, all: HashMap<String, ServiceRules>) {
        self.services = all;
        self.services.retain(|_, r| !r.is_empty());
    }

    /// A batch bringing the changed Services to their new rules (empty
    /// rules for a Service that went). Apply it with
    /// [`ProxyTable::committed`] once committed.
    pub fn update(&self, changed: &HashMap<String, ServiceRules>) -> Batch {
        let mut b = Batch::new(TABLE);
        diff(
            &mut b,
            &self.services,
            changed.iter().map(|(k, v)| (k.as_str(), v)),
        );
        b
    }

    /// Records that an [`ProxyTable::update`] was committed.
    pub fn committed(&mut self, changed: HashMap<String, ServiceRules>) {
        for (key, rules) in changed {
            if rules.is_empty() {
                self.services.remove(&key);
            } else {
                self.services.insert(key, rules);
            }
        }
    }

    fn skeleton(&self, b: &mut Batch) {
        for (name, key_len, key_type) in [
            (SERVICE_IPS, 12, IP_PROTO_PORT_TYPE),
            (SERVICE_NODEPORTS, 8, PROTO_PORT_TYPE),
            (NO_ENDPOINT_SERVICES, 12, IP_PROTO_PORT_TYPE),
            (NO_ENDPOINT_NODEPORTS, 8, PROTO_PORT_TYPE),
        ] {
            b.add_set(&SetSpec {
                name,
                key_len,
                key_type,
                verdict_map: true,
            });
        }
        for chain in [
            SERVICES_CHAIN,
            ENDPOINTS_CHECK,
            MARK_FOR_MASQUERADE,
            MASQUERADING,
            REJECT_CHAIN,
            POD_MASQUERADE,
        ] {
            b.add_chain(chain, None);
        }
        let base = |kind, hook, priority| {
            Some(BaseChain {
                kind,
                hook,
                priority,
            })
        };
        b.add_chain("nat-prerouting", base("nat", Hook::Prerouting, -100));
        b.add_chain("nat-output", base("nat", Hook::Output, -100));
        b.add_chain("nat-postrouting", base("nat", Hook::Postrouting, 100));
        b.add_chain("filter-input", base("filter", Hook::Input, -10));
        b.add_chain("filter-forward", base("filter", Hook::Forward, -10));
        b.add_chain("filter-output", base("filter", Hook::Output, -10));

        let jump = |chain: &str| Expr::Verdict(Verdict::Jump(chain.into()));
        let lookup = |set: &str| Expr::Lookup {
            set: set.into(),
            sreg: REG32_0,
            dreg: Some(REG_VERDICT),
        };
        // The maps: ClusterIPs and external IPs by address, NodePorts by
        // port on any local address but loopback (as kube-proxy).
        for (chain, ips, ports) in [
            (SERVICES_CHAIN, SERVICE_IPS, SERVICE_NODEPORTS),
            (ENDPOINTS_CHECK, NO_ENDPOINT_SERVICES, NO_ENDPOINT_NODEPORTS),
        ] {
            let mut by_ip = expr::daddr_proto_port();
            by_ip.push(lookup(ips));
            b.add_rule(chain, &by_ip);
            let mut by_port = expr::daddr_is_local();
            by_port.extend(expr::ip_addr_in(true, loopback(), true));
            by_port.extend(expr::proto_port(REG32_0));
            by_port.push(lookup(ports));
            b.add_rule(chain, &by_port);
        }
        b.add_rule(
            MARK_FOR_MASQUERADE,
            &expr::mark_update(MASQUERADE_MARK, true),
        );
        let mut unmarked = expr::mark_has(MASQUERADE_MARK, true);
        unmarked.push(Expr::Verdict(Verdict::Return));
        b.add_rule(MASQUERADING, &unmarked);
        // Clear the bit: a packet re-entering the stack (a veth, a tunnel)
        // must not be masqueraded twice.
        let mut masq = expr::mark_update(MASQUERADE_MARK, false);
        masq.push(Expr::Masquerade);
        b.add_rule(MASQUERADING, &masq);
        // TCP gets a reset: ICMP errors are rate-limited per client (and
        // share their budget with redirects), so a client retrying fast
        // would see timeouts instead of a refusal.
        let mut reset = expr::l4proto_is(expr::IPPROTO_TCP);
        reset.push(Expr::RejectTcpReset);
        b.add_rule(REJECT_CHAIN, &reset);
        b.add_rule(REJECT_CHAIN, &[Expr::Reject]);
        if self.masquerade_pods {
            // flannel's ipmasq: pods reaching beyond the pod network (not
            // multicast) leave with the node's address.
            let cidr = self.ctx.cluster_cidr;
            let mut rule = expr::ip_addr_in(false, cidr, false);
            rule.extend(expr::ip_addr_in(true, cidr, true));
            rule.extend(expr::ip_addr_in(true, multicast(), true));
            rule.push(Expr::Masquerade);
            b.add_rule(POD_MASQUERADE, &rule);
        }

        b.add_rule("nat-prerouting", &[jump(SERVICES_CHAIN)]);
        b.add_rule("nat-output", &[jump(SERVICES_CHAIN)]);
        b.add_rule("nat-postrouting", &[jump(MASQUERADING)]);
        b.add_rule("nat-postrouting", &[jump(POD_MASQUERADE)]);
        for chain in ["filter-input", "filter-forward", "filter-output"] {
            let mut rule = expr::ct_state_new();
            rule.push(jump(ENDPOINTS_CHECK));
            b.add_rule(chain, &rule);
        }
    }
}

fn loopback() -> Ipv4Net {
    Ipv4Net::new([127, 0, 0, 0].into(), 8).unwrap_or_default()
}

fn multicast() -> Ipv4Net {
    Ipv4Net::new([224, 0, 0, 0].into(), 4).unwrap_or_default()
}

/// Adds to `b` what brings `old` (per Service) to `changed`.
fn diff<'a>(
    b: &mut Batch,
    old: &HashMap<String, ServiceRules>,
    changed: impl Iterator<Item = (&'a str, &'a ServiceRules)>,
) {
    let empty = ServiceRules::default();
    let mut new_chains: Vec<(&str, &Vec<Vec<Expr>>)> = Vec::new();
    let mut refilled: Vec<(&str, &Vec<Vec<Expr>>)> = Vec::new();
    let mut gone_chains: Vec<&str> = Vec::new();
    let mut ip_deletes: Vec<(&str, &IpKey)> = Vec::new();
    let mut ip_adds: Vec<(&str, &IpKey, &Verdict)> = Vec::new();
    let mut port_deletes: Vec<(&str, &PortKey)> = Vec::new();
    let mut port_adds: Vec<(&str, &PortKey, &Verdict)> = Vec::new();

    for (key, new) in changed {
        let before = old.get(key).unwrap_or(&empty);
        for (name, rules) in &new.chains {
            match before.chains.get(name) {
                None => new_chains.push((name, rules)),
                Some(r) if r != rules => refilled.push((name, rules)),
                Some(_) => {}
            }
        }
        gone_chains.extend(
            before
                .chains
                .keys()
                .filter(|c| !new.chains.contains_key(*c))
                .map(String::as_str),
        );
        for (set, was, now) in [
            (SERVICE_IPS, &before.service_ips, &new.service_ips),
            (
                NO_ENDPOINT_SERVICES,
                &before.no_endpoint_ips,
                &new.no_endpoint_ips,
            ),
        ] {
            map_diff(set, was, now, &mut ip_deletes, &mut ip_adds);
        }
        for (set, was, now) in [
            (
                SERVICE_NODEPORTS,
                &before.service_nodeports,
                &new.service_nodeports,
            ),
            (
                NO_ENDPOINT_NODEPORTS,
                &before.no_endpoint_nodeports,
                &new.no_endpoint_nodeports,
            ),
        ] {
            map_diff(set, was, now, &mut port_deletes, &mut port_adds);
        }
    }

    for (name, _) in &new_chains {
        b.add_chain(name, None);
    }
    for (name, rules) in &new_chains {
        for rule in rules.iter() {
            b.add_rule(name, rule);
        }
    }
    for (name, rules) in &refilled {
        b.flush_chain(name);
        for rule in rules.iter() {
            b.add_rule(name, rule);
        }
    }
    delete_grouped(b, &ip_deletes);
    delete_grouped(b, &port_deletes);
    add_grouped(b, &ip_adds);
    add_grouped(b, &port_adds);
    for name in &gone_chains {
        b.flush_chain(name);
    }
    for name in &gone_chains {
        b.delete_chain(name);
    }
}

fn map_diff<'a, K: Ord>(
    set: &'static str,
    was: &'a BTreeMap<K, Verdict>,
    now: &'a BTreeMap<K, Verdict>,
    deletes: &mut Vec<(&'static str, &'a K)>,
    adds: &mut Vec<(&'static str, &'a K, &'a Verdict)>,
) {
    for (k, v) in was {
        if now.get(k) != Some(v) {
            deletes.push((set, k));
        }
    }
    for (k, v) in now {
        if was.get(k) != Some(v) {
            adds.push((set, k, v));
        }
    }
}

fn delete_grouped<K: AsRef<[u8]>>(b: &mut Batch, deletes: &[(&str, &K)]) {
    let mut by_set: BTreeMap<&str, Vec<&[u8]>> = BTreeMap::new();
    for (set, k) in deletes {
        by_set.entry(set).or_default().push(k.as_ref());
    }
    for (set, keys) in by_set {
        b.delete_elements(set, keys);
    }
}

fn add_grouped<K: AsRef<[u8]>>(b: &mut Batch, adds: &[(&str, &K, &Verdict)]) {
    type Elements<'a> = Vec<(&'a [u8], Option<&'a Verdict>)>;
    let mut by_set: BTreeMap<&str, Elements<'_>> = BTreeMap::new();
    for (set, k, v) in adds {
        by_set.entry(set).or_default().push((k.as_ref(), Some(*v)));
    }
    for (set, elems) in by_set {
        b.add_elements(set, elems);
    }
}
