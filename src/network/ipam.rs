//! Pod IP allocation from the node's podCIDR, persisted on disk.
//!
//! Laid out as the CNI host-local plugin does it: one file per allocated
//! address, named by the address and holding its owner (the pod UID), plus
//! the last address handed out. Claiming an address is creating its file
//! with `O_EXCL`, so two workers can never get the same one, and the state
//! survives a kelp restart by construction: an address is free exactly when
//! its file is absent. Addresses are handed out round-robin after the last
//! one, so a just-released address is not reused at once (a late packet for
//! the old pod does not reach a new one). [`Ipam::retain`] releases the
//! addresses of pods that went away while kelp was down.

use std::io::Write;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use ipnet::Ipv4Net;

const LAST_RESERVED: &str = "last_reserved_ip";

/// What can go wrong allocating addresses.
#[derive(Debug, thiserror::Error)]
pub enum IpamError {
    /// Every host address of the subnet is taken.
    #[error("no free pod IP left in {0} (every address is held by a pod)")]
    Exhausted(Ipv4Net),
    /// The subnet is too small to hold a gateway and a pod.
    #[error(
        "pod CIDR {0} is too small: it needs room for the gateway and pods (use /24, or at most /30)"
    )]
    TooSmall(Ipv4Net),
    /// Reading or writing the state directory failed.
    #[error("IPAM state {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> IpamError + '_ {
    move |source| IpamError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Allocation state of one node's pod subnet. See the module docs.
#[derive(Debug, Clone)]
pub struct Ipam {
    dir: PathBuf,
    subnet: Ipv4Net,
}

impl Ipam {
    /// The allocator for `subnet`, keeping its state in `dir` (created if
    /// missing).
    pub fn open(dir: &Path, subnet: Ipv4Net) -> Result<Self, IpamError> {
        let subnet = subnet.trunc();
        if subnet.prefix_len() > 30 {
            return Err(IpamError::TooSmall(subnet));
        }
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        Ok(Ipam {
            dir: dir.to_path_buf(),
            subnet,
        })
    }

    /// The subnet.
    pub fn subnet(&self) -> Ipv4Net {
        self.subnet
    }

    /// The gateway: the subnet's first host address (the bridge's).
    pub fn gateway(&self) -> Ipv4Addr {
        (u32::from(self.subnet.network()) + 1).into()
    }

    /// Host addresses pods may get: after the gateway, before broadcast.
    fn pod_range(&self) -> (u32, u32) {
        let first = u32::from(self.subnet.network()) + 2;
        let last = u32::from(self.subnet.broadcast()) - 1;
        (first, last)
    }

    /// The address `owner` holds, allocating one if it holds none
    /// (idempotent: a restarted worker gets its pod's address back).
    pub fn allocate(&self, owner: &str) -> Result<Ipv4Addr, IpamError> {
        if let Some(ip) = self.held_by(owner)? {
            return Ok(ip);
        }
        let (first, last) = self.pod_range();
        let size = last - first + 1;
        let start = self
            .last_reserved()
            .filter(|ip| (first..=last).contains(ip))
            .map_or(first, |ip| ip + 1);
        for step in 0..size {
            let candidate = first + (start - first + step) % size;
            let ip = Ipv4Addr::from(candidate);
            let path = self.dir.join(ip.to_string());
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(mut f) => {
                    f.write_all(owner.as_bytes())
                        .and_then(|()| f.sync_all())
                        .map_err(io(&path))?;
                    let last_path = self.dir.join(LAST_RESERVED);
                    std::fs::write(&last_path, ip.to_string()).map_err(io(&last_path))?;
                    return Ok(ip);
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(io(&path)(e)),
            }
        }
        Err(IpamError::Exhausted(self.subnet))
    }

    /// Frees what `owner` holds (nothing held is not an error).
    pub fn release(&self, owner: &str) -> Result<(), IpamError> {
        for (ip, holder) in self.allocations()? {
            if holder == owner {
                let path = self.dir.join(ip.to_string());
                match std::fs::remove_file(&path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(io(&path)(e)),
                }
            }
        }
        Ok(())
    }

    /// Frees the addresses of owners `live` says are gone; returns them.
    pub fn retain(
        &self,
        live: impl Fn(&str) -> bool,
    ) -> Result<Vec<(Ipv4Addr, String)>, IpamError> {
        let mut released = Vec::new();
        for (ip, owner) in self.allocations()? {
            if !live(&owner) {
                self.release(&owner)?;
                released.push((ip, owner));
            }
        }
        Ok(released)
    }

    /// The address `owner` holds, if any.
    pub fn held_by(&self, owner: &str) -> Result<Option<Ipv4Addr>, IpamError> {
        Ok(self
            .allocations()?
            .into_iter()
            .find(|(_, o)| o == owner)
            .map(|(ip, _)| ip))
    }

    /// Every allocation: (address, owner), in address order.
    pub fn allocations(&self) -> Result<Vec<(Ipv4Addr, String)>, IpamError> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&self.dir).map_err(io(&self.dir))? {
            let entry = entry.map_err(io(&self.dir))?;
            let Some(ip) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<Ipv4Addr>().ok())
            else {
                continue;
            };
            if !self.subnet.contains(&ip) {
                continue;
            }
            let owner = std::fs::read_to_string(entry.path()).map_err(io(&entry.path()))?;
            out.push((ip, owner.trim().to_string()));
        }
        out.sort();
        Ok(out)
    }

    fn last_reserved(&self) -> Option<u32> {
        std::fs::read_to_string(self.dir.join(LAST_RESERVED))
            .ok()
            .and_then(|s| s.trim().parse::<Ipv4Addr>().ok())
            .map(u32::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ipam(dir: &Path, cidr: &str) -> Ipam {
        Ipam::open(dir, cidr.parse().unwrap()).unwrap()
    }

    #[test]
    fn allocates_round_robin_idempotently_and_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let a = ipam(dir.path(), "10.42.3.0/24");
        assert_eq!(a.gateway(), Ipv4Addr::new(10, 42, 3, 1));
        let p1 = a.allocate("pod-1").unwrap();
        assert_eq!(p1, Ipv4Addr::new(10, 42, 3, 2));
        assert_eq!(a.allocate("pod-1").unwrap(), p1, "same owner, same address");
        let p2 = a.allocate("pod-2").unwrap();
        assert_eq!(p2, Ipv4Addr::new(10, 42, 3, 3));
        a.release("pod-1").unwrap();
        // A fresh process (kelp restarted) sees the same state and does not
        // hand out pod-2's address, nor reuse pod-1's at once.
        let b = ipam(dir.path(), "10.42.3.0/24");
        assert_eq!(b.held_by("pod-2").unwrap(), Some(p2));
        assert_eq!(b.allocate("pod-3").unwrap(), Ipv4Addr::new(10, 42, 3, 4));
        let released = b.retain(|owner| owner != "pod-2").unwrap();
        assert_eq!(released, vec![(p2, "pod-2".to_string())]);
        assert_eq!(
            b.allocations().unwrap(),
            vec![(Ipv4Addr::new(10, 42, 3, 4), "pod-3".to_string())]
        );
    }

    #[test]
    fn a_full_subnet_is_an_error_and_wraps_around() {
        let dir = tempfile::tempdir().unwrap();
        let a = ipam(dir.path(), "10.42.0.0/30"); // .1 gateway, .2 the only pod address
        assert_eq!(a.allocate("x").unwrap(), Ipv4Addr::new(10, 42, 0, 2));
        assert!(matches!(a.allocate("y"), Err(IpamError::Exhausted(_))));
        a.release("x").unwrap();
        assert_eq!(a.allocate("y").unwrap(), Ipv4Addr::new(10, 42, 0, 2));
        assert!(matches!(
            Ipam::open(dir.path(), "10.42.0.0/31".parse().unwrap()),
            Err(IpamError::TooSmall(_))
        ));
    }
}
