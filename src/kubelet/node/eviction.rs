//! Hard eviction thresholds as the node's pressure conditions use them,
//! from k3s-style `--kubelet-arg eviction-hard=…` (upstream's defaults:
//! `memory.available<100Mi,nodefs.available<10%`).
//!
//! kelp does not evict pods yet; the thresholds decide MemoryPressure and
//! DiskPressure (and so the scheduler's taints), which is what keeps new
//! pods off a full node.

/// A threshold: a percentage of capacity or an absolute byte count.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Threshold {
    /// Percent of the total (0–100).
    Percent(f64),
    /// Bytes.
    Bytes(u64),
}

impl Threshold {
    /// Whether `available` out of `total` is below the threshold.
    pub fn crossed(&self, available: u64, total: u64) -> bool {
        match *self {
            Threshold::Percent(p) => total > 0 && (available as f64) < total as f64 * p / 100.0,
            Threshold::Bytes(b) => available < b,
        }
    }
}

/// The hard thresholds kelp checks.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EvictionHard {
    /// `memory.available`.
    pub memory: Threshold,
    /// `nodefs.available`.
    pub nodefs: Threshold,
}

impl Default for EvictionHard {
    fn default() -> Self {
        Self {
            memory: Threshold::Bytes(100 << 20),
            nodefs: Threshold::Percent(10.0),
        }
    }
}

impl EvictionHard {
    /// Parses `memory.available<100Mi,nodefs.available<10%` over the
    /// defaults (signals not given keep theirs, like upstream).
    pub fn parse(spec: &str) -> Result<Self, String> {
        let mut out = Self::default();
        for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (signal, value) = part.split_once('<').ok_or_else(|| {
                format!("{part:?}: expected SIGNAL<VALUE, e.g. nodefs.available<10%")
            })?;
            let threshold = match value.strip_suffix('%') {
                Some(p) => Threshold::Percent(
                    p.parse::<f64>()
                        .ok()
                        .filter(|p| (0.0..=100.0).contains(p))
                        .ok_or_else(|| format!("{part:?}: bad percentage"))?,
                ),
                None => Threshold::Bytes(
                    crate::client::quantity::parse_value(value)
                        .ok()
                        .and_then(|v| u64::try_from(v).ok())
                        .ok_or_else(|| format!("{part:?}: bad quantity (e.g. 100Mi)"))?,
                ),
            };
            match signal {
                "memory.available" => out.memory = threshold,
                "nodefs.available" | "imagefs.available" => out.nodefs = threshold,
                "nodefs.inodesFree" | "imagefs.inodesFree" | "pid.available" => {}
                other => return Err(format!("unknown eviction signal {other:?}")),
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_upstream_syntax_over_defaults() {
        let e = EvictionHard::parse("nodefs.available<1Gi").unwrap();
        assert_eq!(e.nodefs, Threshold::Bytes(1 << 30));
        assert_eq!(e.memory, Threshold::Bytes(100 << 20));
        let p = EvictionHard::parse("memory.available<5%, nodefs.available<2%").unwrap();
        assert_eq!(p.memory, Threshold::Percent(5.0));
        assert!(EvictionHard::parse("nodefs.available").is_err());
        assert!(EvictionHard::parse("disk<1").is_err());
        assert!(EvictionHard::parse("nodefs.available<200%").is_err());
    }

    #[test]
    fn thresholds_compare_against_capacity() {
        assert!(Threshold::Percent(10.0).crossed(9, 100));
        assert!(!Threshold::Percent(10.0).crossed(10, 100));
        assert!(Threshold::Bytes(5).crossed(4, 0));
    }
}
