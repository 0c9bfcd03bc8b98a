//! Resource arithmetic: what a pod requests and what a node can allocate.
//!
//! A pod's effective request follows component-helpers' `PodRequests`: the sum of its app
//! containers, raised to the largest init-container step (restartable "sidecar" init
//! containers keep running, so they add to everything after them), plus `spec.overhead`;
//! pod-level `spec.resources.requests` replace the container aggregate for cpu/memory.
//! The scheduler also keeps a "non-zero" variant in which containers without a cpu/memory
//! request count as 100m / 200Mi, used only for scoring so best-effort pods do not all pile
//! onto one node. Unparseable quantities count as zero (the apiserver validates them; a
//! scheduler that refused to run over one bad value elsewhere would be worse).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, PodSpec};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use crate::client::quantity::{parse_milli_value, parse_value};

/// Default cpu request (millicores) assumed for scoring when a container sets none.
pub const DEFAULT_MILLI_CPU_REQUEST: i64 = 100;
/// Default memory request (bytes) assumed for scoring when a container sets none.
pub const DEFAULT_MEMORY_REQUEST: i64 = 200 * 1024 * 1024;

/// Amounts of the resources the scheduler tracks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resource {
    /// CPU in millicores.
    pub milli_cpu: i64,
    /// Memory in bytes.
    pub memory: i64,
    /// Local ephemeral storage in bytes.
    pub ephemeral_storage: i64,
    /// Extended / hugepages resources, sorted by name.
    pub scalar: Vec<(String, i64)>,
}

impl Resource {
    /// Builds a resource from a ResourceList (`requests`, `allocatable`, `overhead`).
    pub fn from_list(list: &BTreeMap<String, Quantity>) -> Self {
        let mut r = Resource::default();
        r.add_list(list);
        r
    }

    /// Adds every tracked entry of `list`.
    pub fn add_list(&mut self, list: &BTreeMap<String, Quantity>) {
        for (name, q) in list {
            match name.as_str() {
                "cpu" => self.milli_cpu = self.milli_cpu.saturating_add(milli(q)),
                "memory" => self.memory = self.memory.saturating_add(units(q)),
                "ephemeral-storage" => {
                    self.ephemeral_storage = self.ephemeral_storage.saturating_add(units(q))
                }
                other if is_scalar_resource_name(other) => self.add_scalar(other, units(q)),
                _ => {}
            }
        }
    }

    /// Adds `other` to `self`.
    pub fn add(&mut self, other: &Resource) {
        self.combine(other, i64::saturating_add);
    }

    /// Subtracts `other` from `self`.
    pub fn sub(&mut self, other: &Resource) {
        self.combine(other, i64::saturating_sub);
    }

    /// Raises every amount of `self` to at least the one in `other`.
    pub fn set_max(&mut self, other: &Resource) {
        self.combine(other, i64::max);
    }

    fn combine(&mut self, other: &Resource, f: fn(i64, i64) -> i64) {
        self.milli_cpu = f(self.milli_cpu, other.milli_cpu);
        self.memory = f(self.memory, other.memory);
        self.ephemeral_storage = f(self.ephemeral_storage, other.ephemeral_storage);
        for (name, v) in &other.scalar {
            let cur = self.scalar(name);
            self.set_scalar(name, f(cur, *v));
        }
    }

    /// The amount of extended resource `name` (0 when absent).
    pub fn scalar(&self, name: &str) -> i64 {
        self.scalar
            .binary_search_by(|(n, _)| n.as_str().cmp(name))
            .map_or(0, |i| self.scalar[i].1)
    }

    fn add_scalar(&mut self, name: &str, v: i64) {
        let cur = self.scalar(name);
        self.set_scalar(name, cur.saturating_add(v));
    }

    fn set_scalar(&mut self, name: &str, v: i64) {
        match self.scalar.binary_search_by(|(n, _)| n.as_str().cmp(name)) {
            Ok(i) => self.scalar[i].1 = v,
            Err(i) => self.scalar.insert(i, (name.to_string(), v)),
        }
    }

    /// True when nothing at all is requested.
    pub fn is_zero(&self) -> bool {
        self.milli_cpu == 0
            && self.memory == 0
            && self.ephemeral_storage == 0
            && self.scalar.iter().all(|(_, v)| *v == 0)
    }
}

fn milli(q: &Quantity) -> i64 {
    parse_milli_value(&q.0).unwrap_or(0)
}

fn units(q: &Quantity) -> i64 {
    parse_value(&q.0).unwrap_or(0)
}

/// Extended resources (`example.com/gpu`), hugepages and attachable volumes, which the
/// scheduler accounts for like upstream's `IsScalarResourceName`.
pub fn is_scalar_resource_name(name: &str) -> bool {
    if name.starts_with("hugepages-") || name.starts_with("attachable-volumes-") {
        return true;
    }
    match name.split_once('/') {
        Some((domain, _)) => {
            domain != "kubernetes.io"
                && !domain.ends_with(".kubernetes.io")
                && !name.starts_with("requests.")
        }
        None => false,
    }
}

/// A pod's requests: exact ones for fitting, and with per-container defaults for scoring.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodRequests {
    /// What the pod reserves on a node (NodeResourcesFit).
    pub requests: Resource,
    /// CPU with missing container requests defaulted (scoring only).
    pub nonzero_milli_cpu: i64,
    /// Memory with missing container requests defaulted (scoring only).
    pub nonzero_memory: i64,
}

/// Computes the effective requests of a pod spec.
pub fn pod_requests(spec: &PodSpec) -> PodRequests {
    let pod_level = spec
        .resources
        .as_ref()
        .and_then(|r| r.requests.as_ref())
        .map(Resource::from_list);
    let exact = aggregate(spec, &|c| container_requests(c, None));
    let nonzero = aggregate(spec, &|c| {
        container_requests(c, Some((DEFAULT_MILLI_CPU_REQUEST, DEFAULT_MEMORY_REQUEST)))
    });
    let mut requests = exact;
    let (mut nz_cpu, mut nz_mem) = (nonzero.milli_cpu, nonzero.memory);
    if let Some(pl) = pod_level {
        let set = spec.resources.as_ref().and_then(|r| r.requests.as_ref());
        if set.is_some_and(|s| s.contains_key("cpu")) {
            requests.milli_cpu = pl.milli_cpu;
            nz_cpu = pl.milli_cpu;
        }
        if set.is_some_and(|s| s.contains_key("memory")) {
            requests.memory = pl.memory;
            nz_mem = pl.memory;
        }
    }
    if let Some(overhead) = &spec.overhead {
        let o = Resource::from_list(overhead);
        requests.add(&o);
        nz_cpu = nz_cpu.saturating_add(o.milli_cpu);
        nz_mem = nz_mem.saturating_add(o.memory);
    }
    PodRequests {
        requests,
        nonzero_milli_cpu: nz_cpu,
        nonzero_memory: nz_mem,
    }
}

fn container_requests(c: &Container, defaults: Option<(i64, i64)>) -> Resource {
    let list = c.resources.as_ref().and_then(|r| r.requests.as_ref());
    let mut r = list.map(Resource::from_list).unwrap_or_default();
    if let Some((cpu, mem)) = defaults {
        if !list.is_some_and(|l| l.contains_key("cpu")) {
            r.milli_cpu = cpu;
        }
        if !list.is_some_and(|l| l.contains_key("memory")) {
            r.memory = mem;
        }
    }
    r
}

/// Sum of app containers, raised to the peak of the init sequence (sidecars included).
fn aggregate(spec: &PodSpec, per_container: &dyn Fn(&Container) -> Resource) -> Resource {
    let mut total = Resource::default();
    for c in &spec.containers {
        total.add(&per_container(c));
    }
    let mut sidecars = Resource::default();
    let mut init_peak = Resource::default();
    for c in spec.init_containers.iter().flatten() {
        let req = per_container(c);
        let step = if c.restart_policy.as_deref() == Some("Always") {
            total.add(&req);
            sidecars.add(&req);
            sidecars.clone()
        } else {
            let mut s = req;
            s.add(&sidecars);
            s
        };
        init_peak.set_max(&step);
    }
    total.set_max(&init_peak);
    total
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ResourceRequirements;

    fn container(reqs: &[(&str, &str)], sidecar: bool) -> Container {
        let requests: BTreeMap<String, Quantity> = reqs
            .iter()
            .map(|(k, v)| (k.to_string(), Quantity(v.to_string())))
            .collect();
        Container {
            name: "c".into(),
            resources: Some(ResourceRequirements {
                requests: Some(requests),
                ..Default::default()
            }),
            restart_policy: sidecar.then(|| "Always".to_string()),
            ..Default::default()
        }
    }

    #[test]
    fn containers_are_summed_and_init_containers_take_the_max() {
        let spec = PodSpec {
            containers: vec![
                container(&[("cpu", "100m"), ("memory", "1Gi")], false),
                container(&[("cpu", "200m")], false),
            ],
            init_containers: Some(vec![container(&[("cpu", "1"), ("memory", "100Mi")], false)]),
            ..Default::default()
        };
        let r = pod_requests(&spec);
        assert_eq!(r.requests.milli_cpu, 1000);
        assert_eq!(r.requests.memory, 1 << 30);
        // Second container lacks memory: scored as 200Mi.
        assert_eq!(r.nonzero_memory, (1 << 30) + DEFAULT_MEMORY_REQUEST);
        assert_eq!(r.nonzero_milli_cpu, 1000);
    }

    #[test]
    fn sidecars_add_to_app_containers_and_later_init_steps() {
        let spec = PodSpec {
            containers: vec![container(&[("cpu", "500m")], false)],
            init_containers: Some(vec![
                container(&[("cpu", "200m")], true),
                container(&[("cpu", "600m")], false),
            ]),
            ..Default::default()
        };
        // App phase: 500 + 200 = 700; init step 2: 600 + 200 = 800.
        assert_eq!(pod_requests(&spec).requests.milli_cpu, 800);
    }

    #[test]
    fn overhead_and_pod_level_requests_apply() {
        let mut spec = PodSpec {
            containers: vec![container(&[("cpu", "100m"), ("memory", "64Mi")], false)],
            overhead: Some(BTreeMap::from([(
                "cpu".to_string(),
                Quantity("250m".into()),
            )])),
            ..Default::default()
        };
        assert_eq!(pod_requests(&spec).requests.milli_cpu, 350);
        spec.resources = Some(ResourceRequirements {
            requests: Some(BTreeMap::from([("cpu".to_string(), Quantity("2".into()))])),
            ..Default::default()
        });
        let r = pod_requests(&spec);
        assert_eq!(r.requests.milli_cpu, 2250);
        assert_eq!(r.requests.memory, 64 << 20);
    }

    #[test]
    fn best_effort_pods_request_nothing_but_score_with_defaults() {
        let spec = PodSpec {
            containers: vec![Container::default()],
            ..Default::default()
        };
        let r = pod_requests(&spec);
        assert!(r.requests.is_zero());
        assert_eq!(r.nonzero_milli_cpu, DEFAULT_MILLI_CPU_REQUEST);
        assert_eq!(r.nonzero_memory, DEFAULT_MEMORY_REQUEST);
    }

    #[test]
    fn extended_resources_are_tracked_and_native_ones_ignored() {
        let spec = PodSpec {
            containers: vec![container(
                &[("example.com/gpu", "2"), ("hugepages-2Mi", "4Mi")],
                false,
            )],
            ..Default::default()
        };
        let r = pod_requests(&spec).requests;
        assert_eq!(r.scalar("example.com/gpu"), 2);
        assert_eq!(r.scalar("hugepages-2Mi"), 4 << 20);
        assert!(!is_scalar_resource_name("pods"));
        assert!(!is_scalar_resource_name("kubernetes.io/foo"));
        assert!(is_scalar_resource_name("nvidia.com/gpu"));
    }
}
