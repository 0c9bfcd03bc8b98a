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

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

use super::rules::{
    MARK_FOR_MASQUERADE, MASQUERADE_MARK, ProxyContext, REJECT_CHAIN, ServiceRules,
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
/// `ip saddr . ip daddr` pairs of endpoints reaching themselves.
const HAIRPIN: &str = "hairpin-endpoints";

// nftables type ids, for `nft list`: ipv4_addr 7, inet_proto 12,
// inet_service 13, concatenated 6 bits at a time.
const IP_PROTO_PORT_TYPE: u32 = (((7 << 6) | 12) << 6) | 13;
const PROTO_PORT_TYPE: u32 = (12 << 6) | 13;
/// nftables' `ipv4_addr` type.
const IPV4_ADDR_TYPE: u32 = 7;
/// `ipv4_addr . ipv4_addr`.
const ADDR_PAIR_TYPE: u32 = (7 << 6) | 7;
/// nftables' `integer` type (an endpoint map's index).
const INTEGER_TYPE: u32 = 4;
/// `ipv4_addr . inet_service` (an endpoint map's value).
const ADDR_PORT_TYPE: u32 = (7 << 6) | 13;

/// What the table holds, per Service key (`namespace/name`).
pub struct ProxyTable {
    ctx: ProxyContext,
    masquerade_pods: bool,
    services: HashMap<String, ServiceRules>,
    /// The Services asking for each map element. Two may ask for one key
    /// (two LoadBalancer Services on one port share the node's address,
    /// or a NodePort is reassigned): the first by name gets it, and the
    /// next one when it lets go.
    claims: HashMap<ElemKey, BTreeSet<String>>,
    /// The map elements in the kernel.
    installed: HashMap<ElemKey, Verdict>,
    /// How many Services have each address in the hairpin set.
    hairpin: HashMap<Ipv4Addr, usize>,
}

/// A map element: which map, which key.
type ElemKey = (&'static str, Vec<u8>);

/// Every map element a Service asks for.
fn elements_of(r: &ServiceRules) -> impl Iterator<Item = (ElemKey, &Verdict)> {
    let ips = [
        (SERVICE_IPS, &r.service_ips),
        (NO_ENDPOINT_SERVICES, &r.no_endpoint_ips),
    ]
    .into_iter()
    .flat_map(|(set, m)| m.iter().map(move |(k, v)| ((set, k.to_vec()), v)));
    let ports = [
        (SERVICE_NODEPORTS, &r.service_nodeports),
        (NO_ENDPOINT_NODEPORTS, &r.no_endpoint_nodeports),
    ]
    .into_iter()
    .flat_map(|(set, m)| m.iter().map(move |(k, v)| ((set, k.to_vec()), v)));
    ips.chain(ports)
}

/// The map elements whose winner or value changes when `changed`
/// replaces those Services' rules, with their new value (None: remove).
fn element_changes(
    services: &HashMap<String, ServiceRules>,
    claims: &HashMap<ElemKey, BTreeSet<String>>,
    installed: &HashMap<ElemKey, Verdict>,
    changed: &HashMap<String, ServiceRules>,
) -> Vec<(ElemKey, Option<Verdict>)> {
    let empty = ServiceRules::default();
    let mut affected: BTreeMap<ElemKey, BTreeSet<String>> = BTreeMap::new();
    for (name, new) in changed {
        let old = services.get(name).unwrap_or(&empty);
        for (key, _) in elements_of(old).chain(elements_of(new)) {
            let claimants = claims.get(&key).cloned().unwrap_or_default();
            affected.entry(key).or_insert(claimants);
        }
    }
    let mut out = Vec::new();
    for (key, mut claimants) in affected {
        for (name, new) in changed {
            if elements_of(new).any(|(k, _)| k == key) {
                claimants.insert(name.clone());
            } else {
                claimants.remove(name);
            }
        }
        let value = claimants.first().and_then(|winner| {
            let rules = changed.get(winner).or_else(|| services.get(winner))?;
            elements_of(rules)
                .find(|(k, _)| *k == key)
                .map(|(_, v)| v.clone())
        });
        if installed.get(&key) != value.as_ref() {
            out.push((key, value));
        }
    }
    out
}

/// The hairpin addresses to add and to remove when `changed` replaces
/// those Services' rules, given how many Services hold each (`refs`).
fn hairpin_changes(
    refs: &HashMap<Ipv4Addr, usize>,
    services: &HashMap<String, ServiceRules>,
    changed: &HashMap<String, ServiceRules>,
) -> HairpinChanges {
    let empty = ServiceRules::default();
    let mut delta: BTreeMap<Ipv4Addr, i64> = BTreeMap::new();
    for (name, new) in changed {
        let old = services.get(name).unwrap_or(&empty);
        for ip in &old.hairpin {
            *delta.entry(*ip).or_default() -= 1;
        }
        for ip in &new.hairpin {
            *delta.entry(*ip).or_default() += 1;
        }
    }
    let mut out = HairpinChanges::default();
    for (ip, d) in delta {
        let before = refs.get(&ip).copied().unwrap_or(0) as i64;
        match (before > 0, before + d > 0) {
            (false, true) => out.add.push(ip),
            (true, false) => out.remove.push(ip),
            _ => {}
        }
    }
    out
}

/// Addresses entering and leaving the hairpin set.
#[derive(Default)]
struct HairpinChanges {
    add: Vec<Ipv4Addr>,
    remove: Vec<Ipv4Addr>,
}

impl ProxyTable {
    /// An empty table model (nothing committed yet).
    pub fn new(ctx: ProxyContext, masquerade_pods: bool) -> Self {
        ProxyTable {
            ctx,
            masquerade_pods,
            services: HashMap::new(),
            claims: HashMap::new(),
            installed: HashMap::new(),
            hairpin: HashMap::new(),
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

    /// What the table holds for Services: (chains, rules, map elements).
    pub fn size(&self) -> (usize, usize, usize) {
        let chains = self.services.values().map(|s| s.chains.len()).sum();
        let rules = self
            .services
            .values()
            .flat_map(|s| s.chains.values())
            .map(Vec::len)
            .sum();
        let endpoints: usize = self
            .services
            .values()
            .flat_map(|s| s.endpoint_maps.values())
            .map(Vec::len)
            .sum();
        (
            chains,
            rules,
            self.installed.len() + endpoints + self.hairpin.len(),
        )
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
        let (none, no_claims, nothing) = (HashMap::new(), HashMap::new(), HashMap::new());
        let elements = element_changes(&none, &no_claims, &nothing, all);
        let hairpin = hairpin_changes(&HashMap::new(), &none, all);
        diff(&mut b, &none, all, &nothing, &elements, &hairpin);
        b
    }

    /// Records that a [`ProxyTable::full_sync`] of `all` was committed.
    pub fn committed_full(&mut self, all: HashMap<String, ServiceRules>) {
        self.services.clear();
        self.claims.clear();
        self.installed.clear();
        self.hairpin.clear();
        self.committed(all);
    }

    /// A batch bringing the changed Services to their new rules (empty
    /// rules for a Service that went). Apply it with
    /// [`ProxyTable::committed`] once committed.
    pub fn update(&self, changed: &HashMap<String, ServiceRules>) -> Batch {
        let mut b = Batch::new(TABLE);
        let elements = element_changes(&self.services, &self.claims, &self.installed, changed);
        let hairpin = hairpin_changes(&self.hairpin, &self.services, changed);
        diff(
            &mut b,
            &self.services,
            changed,
            &self.installed,
            &elements,
            &hairpin,
        );
        b
    }

    /// Records that an [`ProxyTable::update`] was committed.
    pub fn committed(&mut self, changed: HashMap<String, ServiceRules>) {
        for (key, value) in element_changes(&self.services, &self.claims, &self.installed, &changed)
        {
            match value {
                Some(v) => self.installed.insert(key, v),
                None => self.installed.remove(&key),
            };
        }
        let empty = ServiceRules::default();
        for (name, new) in &changed {
            let old = self.services.get(name).unwrap_or(&empty);
            for (key, _) in elements_of(old) {
                if let Some(c) = self.claims.get_mut(&key) {
                    c.remove(name);
                    if c.is_empty() {
                        self.claims.remove(&key);
                    }
                }
            }
            for (key, _) in elements_of(new) {
                self.claims.entry(key).or_default().insert(name.clone());
            }
            for ip in &old.hairpin {
                if let Some(n) = self.hairpin.get_mut(ip) {
                    *n -= 1;
                    if *n == 0 {
                        self.hairpin.remove(ip);
                    }
                }
            }
            for ip in &new.hairpin {
                *self.hairpin.entry(*ip).or_default() += 1;
            }
        }
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
                data: None,
                timeout_ms: None,
            });
        }
        b.add_set(&SetSpec {
            name: HAIRPIN,
            key_len: 8,
            key_type: ADDR_PAIR_TYPE,
            verdict_map: false,
            data: None,
            timeout_ms: None,
        });
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
        // Hairpin: an endpoint that reached itself through its Service
        // would see its own address as the source and answer itself
        // directly, bypassing the DNAT.
        let mut hairpin = expr::ct_status_dnat();
        hairpin.extend(expr::saddr_daddr());
        hairpin.push(Expr::Lookup {
            set: HAIRPIN.into(),
            sreg: REG32_0,
            dreg: None,
        });
        hairpin.push(Expr::Masquerade);
        b.add_rule(MASQUERADING, &hairpin);
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

/// The names in `before` that `now` no longer has.
fn gone<'a, V>(
    before: &'a BTreeMap<String, V>,
    now: &'a BTreeMap<String, V>,
) -> impl Iterator<Item = &'a str> {
    before
        .keys()
        .filter(|name| !now.contains_key(*name))
        .map(String::as_str)
}

/// Adds to `b` what brings `old` (per Service) to `changed`: their
/// chains and endpoint maps, the map `elements` that change (see
/// [`element_changes`]) and the `hairpin` set's changes.
fn diff(
    b: &mut Batch,
    old: &HashMap<String, ServiceRules>,
    changed: &HashMap<String, ServiceRules>,
    installed: &HashMap<ElemKey, Verdict>,
    elements: &[(ElemKey, Option<Verdict>)],
    hairpin: &HairpinChanges,
) {
    type Elements<'a> = Vec<(&'a [u8], Option<&'a Verdict>)>;
    let empty = ServiceRules::default();
    let mut new_chains: Vec<(&str, &Vec<Vec<Expr>>)> = Vec::new();
    let mut refilled: Vec<(&str, &Vec<Vec<Expr>>)> = Vec::new();
    let mut gone_chains: Vec<&str> = Vec::new();
    let mut new_sets: Vec<(&str, u64)> = Vec::new();
    let mut gone_sets: Vec<&str> = Vec::new();
    // Endpoint maps: (name, values before (empty if new), values now).
    type MapChange<'a> = (&'a str, &'a [[u8; 8]], &'a [[u8; 8]]);
    let mut maps: Vec<MapChange<'_>> = Vec::new();
    for (key, new) in changed {
        let before = old.get(key).unwrap_or(&empty);
        for (name, values) in &new.endpoint_maps {
            match before.endpoint_maps.get(name) {
                None => maps.push((name, &[], values)),
                Some(was) if was != values => maps.push((name, was, values)),
                Some(_) => {}
            }
        }
        gone_sets.extend(gone(&before.endpoint_maps, &new.endpoint_maps));
        new_sets.extend(
            new.affinity_sets
                .iter()
                .filter(|(name, _)| !before.affinity_sets.contains_key(*name))
                .map(|(name, ms)| (name.as_str(), *ms)),
        );
        gone_sets.extend(gone(&before.affinity_sets, &new.affinity_sets));
        for (name, rules) in &new.chains {
            match before.chains.get(name) {
                None => new_chains.push((name, rules)),
                Some(r) if r != rules => refilled.push((name, rules)),
                Some(_) => {}
            }
        }
        gone_chains.extend(gone(&before.chains, &new.chains));
    }

    // Sets first: the rules that fill and read them refer to them.
    for (name, timeout_ms) in &new_sets {
        b.add_set(&SetSpec {
            name,
            key_len: 4,
            key_type: IPV4_ADDR_TYPE,
            verdict_map: false,
            data: None,
            timeout_ms: Some(*timeout_ms),
        });
    }
    // Endpoint maps: elements only, which the kernel does not re-validate
    // the chain graph for (see the rules module).
    let indexes: Vec<[u8; 4]> = (0..maps
        .iter()
        .map(|m| m.1.len().max(m.2.len()))
        .max()
        .unwrap_or(0))
        .map(|i| expr::endpoint_index(i as u32))
        .collect();
    for (name, was, now) in &maps {
        if was.is_empty() {
            b.add_set(&SetSpec {
                name,
                key_len: 4,
                key_type: INTEGER_TYPE,
                verdict_map: false,
                data: Some((ADDR_PORT_TYPE, 8)),
                timeout_ms: None,
            });
        }
        let differs = |i: usize| was.get(i) != now.get(i);
        let stale: Vec<&[u8]> = (0..was.len())
            .filter(|&i| differs(i))
            .map(|i| &indexes[i][..])
            .collect();
        if !stale.is_empty() {
            b.delete_elements(name, stale);
        }
        let fresh: Vec<(&[u8], &[u8])> = (0..now.len())
            .filter(|&i| differs(i))
            .map(|i| (&indexes[i][..], &now[i][..]))
            .collect();
        if !fresh.is_empty() {
            b.add_data_elements(name, fresh);
        }
    }
    let pair = |ip: &Ipv4Addr| {
        let mut k = [0u8; 8];
        k[..4].copy_from_slice(&ip.octets());
        k[4..].copy_from_slice(&ip.octets());
        k
    };
    let (hairpin_in, hairpin_out): (Vec<[u8; 8]>, Vec<[u8; 8]>) = (
        hairpin.add.iter().map(pair).collect(),
        hairpin.remove.iter().map(pair).collect(),
    );
    if !hairpin_out.is_empty() {
        b.delete_elements(HAIRPIN, hairpin_out.iter().map(|k| &k[..]));
    }
    if !hairpin_in.is_empty() {
        b.add_elements(HAIRPIN, hairpin_in.iter().map(|k| (&k[..], None)));
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
    // An element whose value changes is deleted, then added: adding over
    // an existing key with another value fails.
    let mut deletes: BTreeMap<&str, Vec<&[u8]>> = BTreeMap::new();
    let mut adds: BTreeMap<&str, Elements<'_>> = BTreeMap::new();
    for ((set, key), value) in elements {
        if installed.contains_key(&(*set, key.clone())) {
            deletes.entry(set).or_default().push(key);
        }
        if let Some(v) = value {
            adds.entry(set).or_default().push((key, Some(v)));
        }
    }
    for (set, keys) in deletes {
        b.delete_elements(set, keys);
    }
    for (set, elems) in adds {
        b.add_elements(set, elems);
    }
    for name in &gone_chains {
        b.flush_chain(name);
    }
    for name in &gone_chains {
        b.delete_chain(name);
    }
    // Last: no rule refers to them any more.
    for name in &gone_sets {
        b.delete_set(name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::network::service_proxy::rules::ip_key;

    fn claiming(chain: &str) -> ServiceRules {
        let mut r = ServiceRules::default();
        r.service_ips.insert(
            ip_key([10, 200, 0, 2].into(), 6, 80),
            Verdict::Goto(chain.into()),
        );
        r
    }

    #[test]
    fn two_services_on_one_key_take_turns_without_a_failing_batch() {
        let ctx = ProxyContext {
            node_name: "n".into(),
            cluster_cidr: "10.42.0.0/16".parse().unwrap(),
            served_locally: None,
        };
        let mut t = ProxyTable::new(ctx, true);
        let key: ElemKey = (SERVICE_IPS, ip_key([10, 200, 0, 2].into(), 6, 80).to_vec());
        let all: HashMap<String, ServiceRules> = [
            ("ns/b".to_string(), claiming("external-b")),
            ("ns/a".to_string(), claiming("external-a")),
        ]
        .into();
        t.committed_full(all);
        assert_eq!(t.installed[&key], Verdict::Goto("external-a".into()));
        // b going changes nothing in the kernel.
        let gone: HashMap<String, ServiceRules> = [("ns/b".to_string(), Default::default())].into();
        assert!(t.update(&gone).is_empty());
        t.committed([("ns/b".to_string(), claiming("external-b"))].into());
        // a going hands the element to b.
        let gone: HashMap<String, ServiceRules> = [("ns/a".to_string(), Default::default())].into();
        assert!(!t.update(&gone).is_empty());
        t.committed(gone);
        assert_eq!(t.installed[&key], Verdict::Goto("external-b".into()));
    }

    #[test]
    fn a_hairpin_address_shared_by_two_services_stays_until_both_let_go() {
        let ctx = ProxyContext {
            node_name: "n".into(),
            cluster_cidr: "10.42.0.0/16".parse().unwrap(),
            served_locally: None,
        };
        let ip: Ipv4Addr = [10, 42, 0, 5].into();
        let with_hairpin = || {
            let mut r = ServiceRules::default();
            r.hairpin.insert(ip);
            r
        };
        let mut t = ProxyTable::new(ctx, true);
        let both: HashMap<String, ServiceRules> = [
            ("ns/a".to_string(), with_hairpin()),
            ("ns/b".to_string(), with_hairpin()),
        ]
        .into();
        let first = hairpin_changes(&t.hairpin, &t.services, &both);
        assert_eq!((first.add.clone(), first.remove.len()), (vec![ip], 0));
        t.committed_full(both);
        assert_eq!(t.hairpin[&ip], 2);
        let gone = |name: &str| -> HashMap<String, ServiceRules> {
            [(name.to_string(), ServiceRules::default())].into()
        };
        // a goes: b still needs the element, so nothing is sent.
        let change = hairpin_changes(&t.hairpin, &t.services, &gone("ns/a"));
        assert!(change.add.is_empty() && change.remove.is_empty());
        assert!(t.update(&gone("ns/a")).is_empty());
        t.committed(gone("ns/a"));
        // b goes: the element is removed.
        let change = hairpin_changes(&t.hairpin, &t.services, &gone("ns/b"));
        assert_eq!(change.remove, vec![ip]);
        assert!(!t.update(&gone("ns/b")).is_empty());
        t.committed(gone("ns/b"));
        assert!(t.hairpin.is_empty());
    }
}
