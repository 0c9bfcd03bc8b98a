//! Cluster DNS, node-local, in the kelp process: no CoreDNS pod, no image.
//!
//! Each node answers on the cluster DNS address (`--cluster-dns`,
//! 10.43.0.10), which it holds itself as a /32 on the pod bridge. A pod's
//! query goes to its default gateway, which is its own node, so DNS never
//! crosses nodes, with no NAT rule in the way. Names under the cluster
//! domain are answered from the shared Service and EndpointSlice
//! informers (upstream's DNS schema: `<svc>.<ns>.svc` → the ClusterIP, or
//! the ready endpoints for a headless Service; `<hostname>.<svc>.<ns>.svc`
//! for StatefulSet pods; `_<port>._<proto>.<svc>.<ns>.svc` SRV;
//! `<a-b-c-d>.<ns>.pod`; ExternalName as CNAME). Everything else is
//! relayed to the host's resolvers as it came.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{A, CNAME, PTR, SRV};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use hickory_proto::serialize::binary::{BinDecodable, BinEncodable};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::reflector::{ObjectRef, Store};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, UdpSocket};
use tokio_util::sync::CancellationToken;

use super::dns_cache::RelayCache;

/// TTL of cluster answers (CoreDNS's kubernetes plugin default).
const TTL: u32 = 5;
/// How long a relayed query may take.
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(3);
/// How long a TCP client may take to send its query.
const TCP_READ_TIMEOUT: Duration = Duration::from_secs(5);
/// Label naming an EndpointSlice's Service.
const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// Failures starting the DNS server.
#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    /// The address cannot be bound.
    #[error("cannot listen for DNS on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// What a name resolves to.
#[derive(Debug, PartialEq, Eq)]
pub enum Lookup {
    /// These records.
    Records(Vec<Record>),
    /// The name exists but has no records of the asked type.
    NoData,
    /// No such name in the cluster domain.
    NxDomain,
    /// Not in the cluster domain: ask the host's resolvers.
    Forward,
}

/// The cluster's names, from the informers' stores.
pub struct ClusterZone {
    domain: String,
    services: Store<Service>,
    slices: Store<EndpointSlice>,
}

impl ClusterZone {
    /// A zone for `domain` (`cluster.local`).
    pub fn new(domain: &str, services: Store<Service>, slices: Store<EndpointSlice>) -> Self {
        ClusterZone {
            domain: domain.trim_matches('.').to_ascii_lowercase(),
            services,
            slices,
        }
    }

    /// Resolves `name` for `qtype`.
    pub fn lookup(&self, name: &Name, qtype: RecordType) -> Lookup {
        let text = name.to_ascii().trim_end_matches('.').to_ascii_lowercase();
        if let Some(reversed) = text.strip_suffix(".in-addr.arpa") {
            return self.reverse(name, reversed, qtype);
        }
        let Some(rest) = text
            .strip_suffix(&self.domain)
            .and_then(|r| r.strip_suffix('.').or((r.is_empty()).then_some(r)))
        else {
            return Lookup::Forward;
        };
        let labels: Vec<&str> = if rest.is_empty() {
            Vec::new()
        } else {
            rest.split('.').collect()
        };
        match labels.as_slice() {
            [svc, ns, "svc"] => self.service(name, svc, ns, qtype),
            [port, proto, svc, ns, "svc"] if port.starts_with('_') && proto.starts_with('_') => {
                self.srv(name, &port[1..], &proto[1..], svc, ns, qtype)
            }
            [host, svc, ns, "svc"] => self.endpoint_host(name, host, svc, ns, qtype),
            [dashed, _ns, "pod"] => match dashed.replace('-', ".").parse::<Ipv4Addr>() {
                Ok(ip) if qtype == RecordType::A => Lookup::Records(vec![a(name, ip)]),
                Ok(_) => Lookup::NoData,
                Err(_) => Lookup::NxDomain,
            },
            // The zone and its intermediate names exist, with no records.
            [] | ["svc"] | ["pod"] | [_, "svc"] | [_, "pod"] => Lookup::NoData,
            _ => Lookup::NxDomain,
        }
    }

    /// PTR for a ClusterIP (`<svc>.<ns>.svc.<domain>`) or a ready
    /// endpoint address (`<hostname or a-b-c-d>.<svc>.<ns>.svc.<domain>`),
    /// as CoreDNS's kubernetes plugin in k3s's Corefile; any other address
    /// falls through to the host's resolvers.
    fn reverse(&self, name: &Name, reversed: &str, qtype: RecordType) -> Lookup {
        let octets: Vec<u8> = reversed.split('.').filter_map(|o| o.parse().ok()).collect();
        let [d, c, b, a] = octets[..] else {
            return Lookup::Forward;
        };
        if reversed.split('.').count() != 4 {
            return Lookup::Forward;
        }
        let ip = Ipv4Addr::new(a, b, c, d);
        let target = self.name_of_address(ip);
        match (target, qtype) {
            (None, _) => Lookup::Forward,
            (Some(target), RecordType::PTR) => match Name::from_ascii(format!("{target}.")) {
                Ok(target) => Lookup::Records(vec![Record::from_rdata(
                    name.clone(),
                    TTL,
                    RData::PTR(PTR(target)),
                )]),
                Err(_) => Lookup::NoData,
            },
            (Some(_), _) => Lookup::NoData,
        }
    }

    /// The cluster name of a ClusterIP or a ready endpoint address.
    fn name_of_address(&self, ip: Ipv4Addr) -> Option<String> {
        let text = ip.to_string();
        for svc in self.services.state() {
            let spec = svc.spec.as_ref();
            if spec.and_then(|s| s.cluster_ip.as_deref()) == Some(text.as_str()) {
                let ns = svc.metadata.namespace.as_deref().unwrap_or("default");
                let name = svc.metadata.name.as_deref()?;
                return Some(format!("{name}.{ns}.svc.{}", self.domain));
            }
        }
        for slice in self.slices.state() {
            let Some(svc) = slice
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(SERVICE_NAME_LABEL))
            else {
                continue;
            };
            let ns = slice.metadata.namespace.as_deref().unwrap_or("default");
            for ep in slice.endpoints.iter().flatten() {
                let ready = ep.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true);
                if ready && ep.addresses.contains(&text) {
                    let host = ep
                        .hostname
                        .clone()
                        .unwrap_or_else(|| text.replace('.', "-"));
                    return Some(format!("{host}.{svc}.{ns}.svc.{}", self.domain));
                }
            }
        }
        None
    }

    fn get_service(&self, svc: &str, ns: &str) -> Option<Arc<Service>> {
        self.services.get(&ObjectRef::new(svc).within(ns))
    }

    fn ready_endpoints(&self, svc: &str, ns: &str) -> Vec<(Ipv4Addr, Option<String>)> {
        let mut out = Vec::new();
        for slice in self.slices.state() {
            let owned = slice.metadata.namespace.as_deref() == Some(ns)
                && slice
                    .metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get(SERVICE_NAME_LABEL))
                    .is_some_and(|s| s == svc);
            if !owned || slice.address_type != "IPv4" {
                continue;
            }
            for ep in slice.endpoints.iter().flatten() {
                let ready = ep.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true);
                if !ready {
                    continue;
                }
                for addr in &ep.addresses {
                    if let Ok(ip) = addr.parse::<Ipv4Addr>()
                        && !out.iter().any(|(seen, _)| *seen == ip)
                    {
                        out.push((ip, ep.hostname.clone()));
                    }
                }
            }
        }
        out
    }

    fn service(&self, name: &Name, svc: &str, ns: &str, qtype: RecordType) -> Lookup {
        let Some(service) = self.get_service(svc, ns) else {
            return Lookup::NxDomain;
        };
        let spec = service.spec.clone().unwrap_or_default();
        if spec.type_.as_deref() == Some("ExternalName") {
            return match spec
                .external_name
                .as_deref()
                .and_then(|n| Name::from_ascii(format!("{n}.")).ok())
            {
                Some(target) => Lookup::Records(vec![Record::from_rdata(
                    name.clone(),
                    TTL,
                    RData::CNAME(CNAME(target)),
                )]),
                None => Lookup::NoData,
            };
        }
        if qtype != RecordType::A {
            return Lookup::NoData;
        }
        let ips: Vec<Ipv4Addr> = match spec.cluster_ip.as_deref() {
            Some("None") | None => self
                .ready_endpoints(svc, ns)
                .into_iter()
                .map(|(ip, _)| ip)
                .collect(),
            Some(ip) => ip.parse().into_iter().collect(),
        };
        if ips.is_empty() {
            return Lookup::NoData;
        }
        Lookup::Records(ips.into_iter().map(|ip| a(name, ip)).collect())
    }

    fn endpoint_host(
        &self,
        name: &Name,
        host: &str,
        svc: &str,
        ns: &str,
        qtype: RecordType,
    ) -> Lookup {
        if self.get_service(svc, ns).is_none() {
            return Lookup::NxDomain;
        }
        let ips: Vec<Ipv4Addr> = self
            .ready_endpoints(svc, ns)
            .into_iter()
            .filter(|(_, h)| h.as_deref() == Some(host))
            .map(|(ip, _)| ip)
            .collect();
        match (ips.is_empty(), qtype) {
            (true, _) => Lookup::NxDomain,
            (false, RecordType::A) => {
                Lookup::Records(ips.into_iter().map(|ip| a(name, ip)).collect())
            }
            (false, _) => Lookup::NoData,
        }
    }

    fn srv(
        &self,
        name: &Name,
        port: &str,
        proto: &str,
        svc: &str,
        ns: &str,
        qtype: RecordType,
    ) -> Lookup {
        let Some(service) = self.get_service(svc, ns) else {
            return Lookup::NxDomain;
        };
        let spec = service.spec.clone().unwrap_or_default();
        let Some(p) = spec.ports.iter().flatten().find(|p| {
            p.name.as_deref() == Some(port)
                && p.protocol
                    .as_deref()
                    .unwrap_or("TCP")
                    .eq_ignore_ascii_case(proto)
        }) else {
            return Lookup::NxDomain;
        };
        if qtype != RecordType::SRV {
            return Lookup::NoData;
        }
        let Ok(target) = Name::from_ascii(format!("{svc}.{ns}.svc.{}.", self.domain)) else {
            return Lookup::NoData;
        };
        let port = u16::try_from(p.port).unwrap_or(0);
        Lookup::Records(vec![Record::from_rdata(
            name.clone(),
            TTL,
            RData::SRV(SRV::new(0, 100, port, target)),
        )])
    }
}

fn a(name: &Name, ip: Ipv4Addr) -> Record {
    Record::from_rdata(name.clone(), TTL, RData::A(A(ip)))
}

/// The host's resolvers (systemd-resolved's real upstreams when
/// /etc/resolv.conf points at its local stub).
pub fn host_resolvers() -> Vec<SocketAddr> {
    let parse = |path: &str| -> Vec<IpAddr> {
        std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().strip_prefix("nameserver"))
            .filter_map(|ip| ip.trim().parse().ok())
            .collect()
    };
    let mut servers = parse("/etc/resolv.conf");
    if servers.iter().all(IpAddr::is_loopback) {
        let resolved = parse("/run/systemd/resolve/resolv.conf");
        if !resolved.is_empty() {
            servers = resolved;
        }
    }
    servers
        .into_iter()
        .map(|ip| SocketAddr::new(ip, 53))
        .collect()
}

/// Answers one query: the reply's bytes, or None to relay it upstream.
fn answer(zone: &ClusterZone, query: &[u8]) -> Option<Vec<u8>> {
    let request = match Message::from_bytes(query) {
        Ok(m) => m,
        Err(_) => {
            // Answer FORMERR when at least the id is there.
            let id = u16::from_be_bytes([*query.first()?, *query.get(1)?]);
            return Message::error_msg(id, OpCode::Query, ResponseCode::FormErr)
                .to_bytes()
                .ok();
        }
    };
    let meta = &request.metadata;
    if meta.message_type != MessageType::Query || meta.op_code != OpCode::Query {
        return Message::error_msg(meta.id, meta.op_code, ResponseCode::NotImp)
            .to_bytes()
            .ok();
    }
    let [q] = request.queries.as_slice() else {
        return Message::error_msg(meta.id, meta.op_code, ResponseCode::FormErr)
            .to_bytes()
            .ok();
    };
    let lookup = zone.lookup(q.name(), q.query_type());
    if lookup == Lookup::Forward {
        return None;
    }
    let mut reply = Message::response(meta.id, OpCode::Query);
    reply.metadata.recursion_desired = meta.recursion_desired;
    reply.metadata.recursion_available = true;
    reply.metadata.authoritative = true;
    reply.add_query(q.clone());
    match lookup {
        Lookup::Records(records) => {
            reply.add_answers(records);
        }
        Lookup::NxDomain => reply.metadata.response_code = ResponseCode::NXDomain,
        Lookup::NoData | Lookup::Forward => {}
    }
    reply.to_bytes().ok()
}

/// Answers `query` from the cache, or relays it to the first resolver
/// that answers (and caches that answer).
async fn relay(cache: &RelayCache, upstream: &[SocketAddr], query: &[u8]) -> Option<Vec<u8>> {
    if let Some(hit) = cache.get(query) {
        return Some(hit);
    }
    let id = [*query.first()?, *query.get(1)?];
    for server in upstream {
        let bind: SocketAddr = if server.is_ipv4() {
            (Ipv4Addr::UNSPECIFIED, 0).into()
        } else {
            (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
        };
        let Ok(socket) = UdpSocket::bind(bind).await else {
            continue;
        };
        // Connected: only that server's datagrams are received.
        if socket.connect(server).await.is_err() || socket.send(query).await.is_err() {
            continue;
        }
        let mut buf = vec![0u8; 4096];
        let deadline = tokio::time::Instant::now() + UPSTREAM_TIMEOUT;
        while let Ok(Ok(n)) = tokio::time::timeout_at(deadline, socket.recv(&mut buf)).await {
            // An answer to another question (a late or forged one) is skipped.
            if buf.get(..2) == Some(&id[..]) {
                buf.truncate(n);
                cache.put(query, &buf);
                return Some(buf);
            }
        }
    }
    Message::error_msg(
        u16::from_be_bytes(id),
        OpCode::Query,
        ResponseCode::ServFail,
    )
    .to_bytes()
    .ok()
}

/// Serves DNS on `addr` (UDP and TCP) until `cancel` fires.
pub async fn serve(
    addr: SocketAddr,
    zone: Arc<ClusterZone>,
    upstream: Arc<Vec<SocketAddr>>,
    cancel: CancellationToken,
) -> Result<(), DnsError> {
    let bind = |source| DnsError::Bind { addr, source };
    let udp = Arc::new(UdpSocket::bind(addr).await.map_err(bind)?);
    let tcp = TcpListener::bind(addr).await.map_err(bind)?;
    tracing::info!(%addr, "cluster DNS listening");
    let cache = Arc::new(RelayCache::default());
    let (z, u, k, c) = (
        zone.clone(),
        upstream.clone(),
        cache.clone(),
        cancel.clone(),
    );
    tokio::spawn(serve_tcp(tcp, z, u, k, c));
    let mut buf = vec![0u8; 4096];
    loop {
        let (n, peer) = tokio::select! {
            r = udp.recv_from(&mut buf) => match r {
                Ok(r) => r,
                Err(e) => {
                    tracing::debug!(error = %e, "DNS receive failed");
                    continue;
                }
            },
            _ = cancel.cancelled() => return Ok(()),
        };
        let query = buf[..n].to_vec();
        match answer(&zone, &query) {
            Some(reply) => {
                let _ = udp.send_to(&reply, peer).await;
            }
            None => {
                let (udp, upstream, cache) = (udp.clone(), upstream.clone(), cache.clone());
                tokio::spawn(async move {
                    if let Some(reply) = relay(&cache, &upstream, &query).await {
                        let _ = udp.send_to(&reply, peer).await;
                    }
                });
            }
        }
    }
}

async fn serve_tcp(
    listener: TcpListener,
    zone: Arc<ClusterZone>,
    upstream: Arc<Vec<SocketAddr>>,
    cache: Arc<RelayCache>,
    cancel: CancellationToken,
) {
    loop {
        let (mut conn, _) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = cancel.cancelled() => return,
        };
        let (zone, upstream, cache) = (zone.clone(), upstream.clone(), cache.clone());
        tokio::spawn(async move {
            let read = async {
                let len = conn.read_u16().await? as usize;
                let mut query = vec![0u8; len];
                conn.read_exact(&mut query).await?;
                Ok::<_, std::io::Error>(query)
            };
            let Ok(Ok(query)) = tokio::time::timeout(TCP_READ_TIMEOUT, read).await else {
                return;
            };
            let reply = match answer(&zone, &query) {
                Some(r) => Some(r),
                None => relay(&cache, &upstream, &query).await,
            };
            if let Some(reply) = reply
                && let Ok(len) = u16::try_from(reply.len())
            {
                let _ = conn.write_u16(len).await;
                let _ = conn.write_all(&reply).await;
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::runtime::reflector::store;
    use kube::runtime::watcher::Event;
    use serde_json::json;

    fn zone() -> ClusterZone {
        let (services, mut sw) = store::<Service>();
        let (slices, mut ew) = store::<EndpointSlice>();
        for s in [
            json!({"metadata": {"name": "kubernetes", "namespace": "default"},
                   "spec": {"clusterIP": "10.43.0.1", "ports": [{"name": "https", "port": 443, "protocol": "TCP"}]}}),
            json!({"metadata": {"name": "db", "namespace": "prod"}, "spec": {"clusterIP": "None"}}),
            json!({"metadata": {"name": "ext", "namespace": "prod"},
                   "spec": {"type": "ExternalName", "externalName": "example.com"}}),
        ] {
            sw.apply_watcher_event(&Event::Apply(serde_json::from_value(s).unwrap()));
        }
        let slice = json!({"metadata": {"name": "db-x", "namespace": "prod",
                                        "labels": {"kubernetes.io/service-name": "db"}},
            "addressType": "IPv4",
            "endpoints": [
                {"addresses": ["10.42.0.7"], "hostname": "db-0", "conditions": {"ready": true}},
                {"addresses": ["10.42.0.8"], "conditions": {"ready": false}}]});
        ew.apply_watcher_event(&Event::Apply(serde_json::from_value(slice).unwrap()));
        ClusterZone::new("cluster.local", services, slices)
    }

    fn ask(z: &ClusterZone, name: &str, t: RecordType) -> Lookup {
        z.lookup(&Name::from_ascii(name).unwrap(), t)
    }

    fn ips(l: Lookup) -> Vec<String> {
        match l {
            Lookup::Records(r) => r.iter().map(|r| r.data.to_string()).collect(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn upstream_dns_schema() {
        let z = zone();
        assert_eq!(
            ips(ask(
                &z,
                "kubernetes.default.svc.cluster.local.",
                RecordType::A
            )),
            ["10.43.0.1"]
        );
        assert_eq!(
            ips(ask(
                &z,
                "KUBERNETES.default.svc.cluster.local",
                RecordType::A
            )),
            ["10.43.0.1"]
        );
        assert_eq!(
            ask(
                &z,
                "kubernetes.default.svc.cluster.local.",
                RecordType::AAAA
            ),
            Lookup::NoData
        );
        // Headless: the ready endpoints only; StatefulSet hostnames.
        assert_eq!(
            ips(ask(&z, "db.prod.svc.cluster.local.", RecordType::A)),
            ["10.42.0.7"]
        );
        assert_eq!(
            ips(ask(&z, "db-0.db.prod.svc.cluster.local.", RecordType::A)),
            ["10.42.0.7"]
        );
        assert_eq!(
            ask(&z, "db-1.db.prod.svc.cluster.local.", RecordType::A),
            Lookup::NxDomain
        );
        assert_eq!(
            ips(ask(&z, "ext.prod.svc.cluster.local.", RecordType::A)),
            ["example.com."]
        );
        assert_eq!(
            ips(ask(
                &z,
                "_https._tcp.kubernetes.default.svc.cluster.local.",
                RecordType::SRV
            )),
            ["0 100 443 kubernetes.default.svc.cluster.local."]
        );
        assert_eq!(
            ips(ask(&z, "10-42-0-9.prod.pod.cluster.local.", RecordType::A)),
            ["10.42.0.9"]
        );
        assert_eq!(
            ask(&z, "nope.default.svc.cluster.local.", RecordType::A),
            Lookup::NxDomain
        );
        assert_eq!(ask(&z, "svc.cluster.local.", RecordType::A), Lookup::NoData);
        assert_eq!(ask(&z, "example.com.", RecordType::A), Lookup::Forward);
        assert_eq!(ask(&z, "notcluster.local.", RecordType::A), Lookup::Forward);
    }

    #[test]
    fn reverse_lookups_name_cluster_ips_and_endpoints_and_pass_on_the_rest() {
        let z = zone();
        assert_eq!(
            ips(ask(&z, "1.0.43.10.in-addr.arpa.", RecordType::PTR)),
            ["kubernetes.default.svc.cluster.local."]
        );
        assert_eq!(
            ips(ask(&z, "7.0.42.10.in-addr.arpa.", RecordType::PTR)),
            ["db-0.db.prod.svc.cluster.local."]
        );
        assert_eq!(
            ask(&z, "1.0.43.10.in-addr.arpa.", RecordType::A),
            Lookup::NoData
        );
        // Not ready, unknown, or not an address: the host's resolvers.
        assert_eq!(
            ask(&z, "8.0.42.10.in-addr.arpa.", RecordType::PTR),
            Lookup::Forward
        );
        assert_eq!(
            ask(&z, "8.8.8.8.in-addr.arpa.", RecordType::PTR),
            Lookup::Forward
        );
        assert_eq!(
            ask(&z, "0.42.10.in-addr.arpa.", RecordType::PTR),
            Lookup::Forward
        );
    }

    /// An upstream on loopback that first sends a reply with a wrong id
    /// (which must be skipped), then the right one, counting questions.
    #[tokio::test]
    async fn relayed_answers_are_checked_by_id_and_cached() {
        let upstream = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = upstream.local_addr().unwrap();
        let asked = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let count = asked.clone();
        tokio::spawn(async move {
            let mut buf = [0u8; 512];
            while let Ok((n, peer)) = upstream.recv_from(&mut buf).await {
                count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let q = Message::from_bytes(&buf[..n]).unwrap();
                let mut r = Message::response(q.metadata.id.wrapping_add(1), OpCode::Query);
                r.add_query(q.queries[0].clone());
                let _ = upstream.send_to(&r.to_bytes().unwrap(), peer).await;
                r.metadata.id = q.metadata.id;
                r.add_answer(a(q.queries[0].name(), Ipv4Addr::new(192, 0, 2, 9)));
                let _ = upstream.send_to(&r.to_bytes().unwrap(), peer).await;
            }
        });
        let cache = RelayCache::default();
        let mut q = Message::query();
        q.metadata.id = 42;
        q.add_query(hickory_proto::op::Query::query(
            Name::from_ascii("example.test.").unwrap(),
            RecordType::A,
        ));
        for _ in 0..3 {
            let reply = relay(&cache, &[addr], &q.to_bytes().unwrap())
                .await
                .unwrap();
            let reply = Message::from_bytes(&reply).unwrap();
            assert_eq!(reply.metadata.id, 42);
            assert_eq!(reply.answers.len(), 1);
        }
        assert_eq!(
            asked.load(std::sync::atomic::Ordering::SeqCst),
            1,
            "asked once, then cached"
        );
    }

    #[test]
    fn replies_carry_the_id_and_nxdomain() {
        let z = zone();
        let mut q = Message::query();
        q.metadata.recursion_desired = true;
        q.add_query(hickory_proto::op::Query::query(
            Name::from_ascii("nope.default.svc.cluster.local.").unwrap(),
            RecordType::A,
        ));
        let reply = Message::from_bytes(&answer(&z, &q.to_bytes().unwrap()).unwrap()).unwrap();
        assert_eq!(reply.metadata.id, q.metadata.id);
        assert_eq!(reply.metadata.response_code, ResponseCode::NXDomain);
        assert!(
            answer(&z, &[0x12, 0x34, 0xff]).is_some(),
            "garbage gets FORMERR"
        );
        assert!(answer(&z, &[]).is_none(), "nothing to answer to");
    }
}
