//! ClusterIP and NodePort allocation for Services.
//!
//! The Services in the store are the source of truth: the allocator is
//! rebuilt from them at start, then every create/update/delete reserves
//! and releases through it under one lock, so two concurrent creates can
//! never get the same IP or port. (Upstream persists a bitmap in etcd
//! because it runs several apiservers; kelp runs one per store.)

use std::collections::HashSet;
use std::net::IpAddr;

use ipnet::IpNet;
use parking_lot::Mutex;
use serde_json::Value;

/// Why an allocation failed; the text goes into a 422 cause.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AllocError {
    /// The requested value is taken.
    #[error("provided {0} is already allocated")]
    Taken(&'static str),
    /// The requested value is outside the configured range.
    #[error("provided {what} is not in the valid range. The range of valid {what}s is {range}")]
    OutOfRange {
        /// "IP" or "port".
        what: &'static str,
        /// The configured range.
        range: String,
    },
    /// Nothing is free.
    #[error("range is full")]
    Full,
}

struct State {
    ips: HashSet<IpAddr>,
    ports: HashSet<u16>,
    next_ip: u128,
    next_port: u16,
}

/// Hands out ClusterIPs from the service CIDR and NodePorts from the range.
pub struct ServiceAllocator {
    cidr: IpNet,
    ports: (u16, u16),
    state: Mutex<State>,
}

impl ServiceAllocator {
    /// An empty allocator.
    pub fn new(cidr: IpNet, ports: (u16, u16)) -> Self {
        ServiceAllocator {
            cidr,
            ports,
            state: Mutex::new(State {
                ips: HashSet::new(),
                ports: HashSet::new(),
                next_ip: 2,
                next_port: ports.0,
            }),
        }
    }

    /// The `n`th address of the service CIDR (1 = the `kubernetes` Service).
    pub fn nth_ip(&self, n: u128) -> Option<IpAddr> {
        match self.cidr {
            IpNet::V4(net) => {
                let base = u32::from(net.network()) as u128;
                (n < 1u128 << (32 - net.prefix_len()))
                    .then(|| IpAddr::V4(((base + n) as u32).into()))
            }
            IpNet::V6(net) => {
                let base = u128::from(net.network());
                let size = 128 - u32::from(net.prefix_len());
                (size == 128 || n < 1u128 << size).then(|| IpAddr::V6((base + n).into()))
            }
        }
    }

    /// Marks the IPs and ports of existing Services as used.
    pub fn load<'a>(&self, services: impl IntoIterator<Item = &'a Value>) {
        let mut s = self.state.lock();
        for svc in services {
            for ip in cluster_ips(svc) {
                s.ips.insert(ip);
            }
            for port in node_ports(svc) {
                s.ports.insert(port);
            }
        }
    }

    /// Reserves `requested`, or the next free IP.
    pub fn allocate_ip(&self, requested: Option<IpAddr>) -> Result<IpAddr, AllocError> {
        let mut s = self.state.lock();
        if let Some(ip) = requested {
            if !self.cidr.contains(&ip) || Some(ip) == self.nth_ip(0) {
                return Err(AllocError::OutOfRange {
                    what: "IP",
                    range: self.cidr.to_string(),
                });
            }
            if !s.ips.insert(ip) {
                return Err(AllocError::Taken("IP"));
            }
            return Ok(ip);
        }
        let size: u128 = match self.cidr {
            IpNet::V4(n) => 1u128 << (32 - n.prefix_len()),
            IpNet::V6(n) => 1u128 << (128 - u32::from(n.prefix_len())).min(64),
        };
        // Skip the network address and the last (broadcast) one; start after
        // the previous allocation so freed IPs are not reused at once.
        for step in 0..size {
            let n = (s.next_ip + step) % size;
            if n == 0 || n == size - 1 {
                continue;
            }
            let Some(ip) = self.nth_ip(n) else { continue };
            if s.ips.insert(ip) {
                s.next_ip = n + 1;
                return Ok(ip);
            }
        }
        Err(AllocError::Full)
    }

    /// Reserves `requested`, or the next free NodePort.
    pub fn allocate_port(&self, requested: Option<u16>) -> Result<u16, AllocError> {
        let mut s = self.state.lock();
        let (low, high) = self.ports;
        if let Some(p) = requested {
            if p < low || p > high {
                return Err(AllocError::OutOfRange {
                    what: "port",
                    range: format!("{low}-{high}"),
                });
            }
            if !s.ports.insert(p) {
                return Err(AllocError::Taken("port"));
            }
            return Ok(p);
        }
        let span = u32::from(high - low) + 1;
        for step in 0..span {
            let p = low + ((u32::from(s.next_port - low) + step) % span) as u16;
            if s.ports.insert(p) {
                s.next_port = if p == high { low } else { p + 1 };
                return Ok(p);
            }
        }
        Err(AllocError::Full)
    }

    /// Frees an IP.
    pub fn release_ip(&self, ip: IpAddr) {
        self.state.lock().ips.remove(&ip);
    }

    /// Frees a port.
    pub fn release_port(&self, port: u16) {
        self.state.lock().ports.remove(&port);
    }

    /// Frees everything a Service holds.
    pub fn release_service(&self, svc: &Value) {
        for ip in cluster_ips(svc) {
            self.release_ip(ip);
        }
        for p in node_ports(svc) {
            self.release_port(p);
        }
    }
}

/// The ClusterIPs a Service holds.
pub fn cluster_ips(svc: &Value) -> Vec<IpAddr> {
    let spec = &svc["spec"];
    let mut ips: Vec<IpAddr> = spec["clusterIPs"]
        .as_array()
        .map(|a| a.iter().filter_map(|v| v.as_str()?.parse().ok()).collect())
        .unwrap_or_default();
    if let Some(ip) = spec["clusterIP"].as_str().and_then(|s| s.parse().ok())
        && !ips.contains(&ip)
    {
        ips.push(ip);
    }
    ips
}

/// The NodePorts a Service holds.
pub fn node_ports(svc: &Value) -> Vec<u16> {
    svc["spec"]["ports"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|p| p["nodePort"].as_u64())
                .filter_map(|p| u16::try_from(p).ok())
                .filter(|p| *p > 0)
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_hands_out_a_duplicate() {
        let a = ServiceAllocator::new("10.43.0.0/29".parse().unwrap(), (30000, 30002));
        assert_eq!(
            a.allocate_ip(Some("10.43.0.1".parse().unwrap())),
            Ok("10.43.0.1".parse().unwrap())
        );
        assert_eq!(
            a.allocate_ip(Some("10.43.0.1".parse().unwrap())),
            Err(AllocError::Taken("IP"))
        );
        let mut got = HashSet::new();
        while let Ok(ip) = a.allocate_ip(None) {
            assert!(got.insert(ip));
        }
        assert_eq!(got.len(), 5); // .2-.6 (.0 network, .7 broadcast, .1 taken)
        assert!(matches!(
            a.allocate_ip(Some("10.44.0.1".parse().unwrap())),
            Err(AllocError::OutOfRange { .. })
        ));
        let ports: HashSet<u16> = (0..3).map(|_| a.allocate_port(None).unwrap()).collect();
        assert_eq!(ports.len(), 3);
        assert_eq!(a.allocate_port(None), Err(AllocError::Full));
        a.release_port(30001);
        assert_eq!(a.allocate_port(None), Ok(30001));
    }
}
