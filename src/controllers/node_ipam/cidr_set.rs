//! The set of node subnets carved out of one cluster CIDR (upstream `cidrset.CidrSet`).
//!
//! Subnets are numbered `0..count`; subnet `i` starts at `base + i * 2^(bits - mask)`. Used
//! indices live in a `BTreeSet` rather than a bitmap so IPv6 ranges cost memory only for what
//! is allocated, and allocation walks forward from the last allocation (wrapping) like upstream,
//! so a released subnet is not immediately handed to the next node.

use std::collections::BTreeSet;
use std::net::IpAddr;

use ipnet::IpNet;

/// Upstream refuses a node mask more than 16 bits longer than the cluster mask: past that the
/// set of subnets is too large to scan.
const MAX_SUBNET_BITS: u8 = 16;

/// Why a subnet set could not be built or could not allocate.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CidrSetError {
    /// The node mask is shorter than the cluster mask or longer than the address.
    #[error("node CIDR mask /{mask} does not fit cluster CIDR {cluster}")]
    MaskMismatch {
        /// The cluster CIDR.
        cluster: IpNet,
        /// The node mask that does not fit.
        mask: u8,
    },
    /// The node mask would split the cluster CIDR into more than 2^16 subnets.
    #[error("node CIDR mask /{mask} splits cluster CIDR {cluster} into more than 2^16 subnets")]
    TooManySubnets {
        /// The cluster CIDR.
        cluster: IpNet,
        /// The node mask.
        mask: u8,
    },
    /// Every subnet is in use.
    #[error("CIDR range {0} is full")]
    Full(IpNet),
}

/// Allocation state for one cluster CIDR.
#[derive(Debug, Clone)]
pub struct CidrSet {
    cluster: IpNet,
    mask: u8,
    count: u128,
    used: BTreeSet<u128>,
    next: u128,
}

impl CidrSet {
    /// A set of `/mask` subnets of `cluster`, all free.
    pub fn new(cluster: IpNet, mask: u8) -> Result<Self, CidrSetError> {
        let cluster = cluster.trunc();
        if mask < cluster.prefix_len() || mask > cluster.max_prefix_len() {
            return Err(CidrSetError::MaskMismatch { cluster, mask });
        }
        let bits = mask - cluster.prefix_len();
        if bits > MAX_SUBNET_BITS {
            return Err(CidrSetError::TooManySubnets { cluster, mask });
        }
        Ok(Self {
            cluster,
            mask,
            count: 1u128 << bits,
            used: BTreeSet::new(),
            next: 0,
        })
    }

    /// The cluster CIDR this set divides.
    pub fn cluster(&self) -> IpNet {
        self.cluster
    }

    /// True when `cidr` is of this set's address family.
    pub fn same_family(&self, cidr: &IpNet) -> bool {
        cidr.addr().is_ipv4() == self.cluster.addr().is_ipv4()
    }

    /// Number of subnets in use.
    pub fn used(&self) -> usize {
        self.used.len()
    }

    /// Allocates the next free subnet.
    pub fn allocate(&mut self) -> Result<IpNet, CidrSetError> {
        for offset in 0..self.count {
            let index = (self.next + offset) % self.count;
            if self.used.insert(index) {
                self.next = (index + 1) % self.count;
                return Ok(self.subnet(index));
            }
        }
        Err(CidrSetError::Full(self.cluster))
    }

    /// Marks every subnet overlapping `cidr` as used (a node's existing CIDR, or the service
    /// range). CIDRs outside the cluster range are ignored.
    pub fn occupy(&mut self, cidr: &IpNet) {
        if let Some((first, last)) = self.index_range(cidr) {
            self.used.extend(first..=last);
        }
    }

    /// Frees every subnet overlapping `cidr`.
    pub fn release(&mut self, cidr: &IpNet) {
        if let Some((first, last)) = self.index_range(cidr) {
            self.used.retain(|i| *i < first || *i > last);
        }
    }

    /// Forgets every allocation (before rebuilding from the cluster's nodes).
    pub fn clear(&mut self) {
        self.used.clear();
    }

    fn subnet(&self, index: u128) -> IpNet {
        let shift = u32::from(self.cluster.max_prefix_len() - self.mask);
        let start = to_u128(self.cluster.network()) + (index << shift);
        // The start is inside the cluster range by construction, so the prefix is valid.
        IpNet::new(from_u128(start, self.cluster.addr().is_ipv4()), self.mask)
            .unwrap_or(self.cluster)
    }

    /// The inclusive range of subnet indices that `cidr` overlaps, if any.
    fn index_range(&self, cidr: &IpNet) -> Option<(u128, u128)> {
        if !self.same_family(cidr) {
            return None;
        }
        let cidr = cidr.trunc();
        let (lo, hi) = (to_u128(cidr.network()), to_u128(cidr.broadcast()));
        let (base, top) = (
            to_u128(self.cluster.network()),
            to_u128(self.cluster.broadcast()),
        );
        if hi < base || lo > top {
            return None;
        }
        let shift = u32::from(self.cluster.max_prefix_len() - self.mask);
        let first = (lo.max(base) - base) >> shift;
        let last = (hi.min(top) - base) >> shift;
        Some((first, last))
    }
}

fn to_u128(addr: IpAddr) -> u128 {
    match addr {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

fn from_u128(value: u128, v4: bool) -> IpAddr {
    if v4 {
        IpAddr::from(u32::try_from(value).unwrap_or(u32::MAX).to_be_bytes())
    } else {
        IpAddr::from(value.to_be_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    #[test]
    fn allocates_consecutive_unique_subnets() {
        let mut set = CidrSet::new(net("10.42.0.0/16"), 24).unwrap();
        assert_eq!(set.allocate().unwrap(), net("10.42.0.0/24"));
        assert_eq!(set.allocate().unwrap(), net("10.42.1.0/24"));
        assert_eq!(set.used(), 2);
    }

    #[test]
    fn skips_occupied_subnets_and_reports_full() {
        let mut set = CidrSet::new(net("10.0.0.0/23"), 24).unwrap();
        set.occupy(&net("10.0.0.0/24"));
        assert_eq!(set.allocate().unwrap(), net("10.0.1.0/24"));
        assert_eq!(set.allocate(), Err(CidrSetError::Full(net("10.0.0.0/23"))));
    }

    #[test]
    fn released_subnet_is_reused_only_after_wrapping() {
        let mut set = CidrSet::new(net("10.0.0.0/22"), 24).unwrap();
        let first = set.allocate().unwrap();
        set.release(&first);
        assert_eq!(set.allocate().unwrap(), net("10.0.1.0/24"));
        assert_eq!(set.allocate().unwrap(), net("10.0.2.0/24"));
        assert_eq!(set.allocate().unwrap(), net("10.0.3.0/24"));
        assert_eq!(set.allocate().unwrap(), first);
    }

    #[test]
    fn occupying_a_larger_range_blocks_all_its_subnets() {
        let mut set = CidrSet::new(net("10.0.0.0/16"), 24).unwrap();
        set.occupy(&net("10.0.0.0/17"));
        assert_eq!(set.used(), 128);
        assert_eq!(set.allocate().unwrap(), net("10.0.128.0/24"));
        set.occupy(&net("192.168.0.0/24"));
        set.occupy(&net("fd00::/64"));
        assert_eq!(set.used(), 129);
    }

    #[test]
    fn ipv6_subnets_are_computed_from_the_prefix() {
        let mut set = CidrSet::new(net("fd00:10::/56"), 64).unwrap();
        assert_eq!(set.allocate().unwrap(), net("fd00:10::/64"));
        assert_eq!(set.allocate().unwrap(), net("fd00:10:0:1::/64"));
    }

    #[test]
    fn rejects_masks_that_do_not_fit() {
        assert!(matches!(
            CidrSet::new(net("10.0.0.0/16"), 8),
            Err(CidrSetError::MaskMismatch { .. })
        ));
        assert!(matches!(
            CidrSet::new(net("10.0.0.0/8"), 30),
            Err(CidrSetError::TooManySubnets { .. })
        ));
    }
}
