//! Custom resources: what a CustomResourceDefinition makes the apiserver
//! serve (upstream's apiextensions-apiserver, run in-process as
//! kube-apiserver runs it).
//!
//! A CRD is an ordinary stored object. [`controller`] follows the CRDs in
//! the watch cache: it accepts their names, marks them Established, and,
//! when one is deleted, removes its objects before letting it go.
//! [`CustomResources`] is the set of resources the established CRDs
//! define, one [`ResourceInfo`] per served version, so that routing,
//! discovery, OpenAPI and every verb handler treat a custom resource as
//! they treat a built-in one: the objects live in the same store under
//! `/registry/<group>/<plural>/`, in the same watch cache, and take the
//! same code paths. What differs is carried by [`Definition`] (schema,
//! CEL rules, printer columns, scale paths) and consulted by the strategy
//! hooks in [`strategy`].
//!
//! The handlers hold resources as `&'static ResourceInfo`. A definition is
//! therefore leaked once per CRD generation and interned by (uid,
//! generation), so that rebuilding the set after every CRD event costs no
//! memory; only a CRD whose spec changes leaks its previous definition
//! (CRD writes are rare and cluster-admin only).

pub mod columns;
pub mod controller;
pub mod conversion_webhook;
pub mod crd_validation;
pub mod definition;
pub mod schema;
pub mod strategy;

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};

use super::registry::resources::ResourceInfo;
pub use definition::Definition;

/// `apiextensions.k8s.io`.
pub const GROUP: &str = "apiextensions.k8s.io";
/// The finalizer that holds a deleted CRD until its objects are gone.
pub const CLEANUP_FINALIZER: &str = "customresourcecleanup.apiextensions.k8s.io";

/// The resources one CRD generation defines.
struct Interned {
    generation: i64,
    served: Vec<&'static ResourceInfo>,
    storage: Option<&'static ResourceInfo>,
}

/// The custom resources currently served.
#[derive(Default)]
pub struct CustomResources {
    served: RwLock<Arc<Vec<&'static ResourceInfo>>>,
    /// Definitions already built, by CRD uid.
    interned: Mutex<HashMap<String, Interned>>,
    /// Bumped on every change of the served set (OpenAPI regenerates).
    generation: std::sync::atomic::AtomicU64,
}

impl CustomResources {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// The resource of `group/version` named `resource`, if an established
    /// CRD serves it.
    pub fn find(
        &self,
        group: &str,
        version: &str,
        resource: &str,
    ) -> Option<&'static ResourceInfo> {
        self.served
            .read()
            .iter()
            .copied()
            .find(|r| r.group == group && r.version == version && r.resource == resource)
    }

    /// Every served custom resource version, in discovery order.
    pub fn all(&self) -> Arc<Vec<&'static ResourceInfo>> {
        self.served.read().clone()
    }

    /// A number that changes whenever the served set changes.
    pub fn generation(&self) -> u64 {
        self.generation.load(std::sync::atomic::Ordering::Acquire)
    }

    /// The storage version's resource of a CRD that is (or was, until it
    /// began terminating) served.
    pub fn storage_of(&self, crd: &serde_json::Value) -> Option<&'static ResourceInfo> {
        let uid = crd["metadata"]["uid"].as_str()?;
        self.interned.lock().get(uid)?.storage
    }

    /// Replaces the served set with what `crds` (the stored CRD objects)
    /// define. Returns whether anything changed.
    pub fn rebuild(&self, crds: &[serde_json::Value]) -> bool {
        let mut interned = self.interned.lock();
        let mut served = Vec::new();
        for crd in crds {
            if !definition::is_servable(crd) {
                continue;
            }
            let uid = crd["metadata"]["uid"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let generation = crd["metadata"]["generation"].as_i64().unwrap_or(0);
            let versions = match interned.get(&uid) {
                Some(known) if known.generation == generation => known.served.clone(),
                _ => {
                    let (versions, storage) = definition::build(crd);
                    interned.insert(
                        uid,
                        Interned {
                            generation,
                            served: versions.clone(),
                            storage,
                        },
                    );
                    versions
                }
            };
            served.extend(versions);
        }
        let live: std::collections::HashSet<&str> = crds
            .iter()
            .filter_map(|c| c["metadata"]["uid"].as_str())
            .collect();
        interned.retain(|uid, _| live.contains(uid.as_str()));
        definition::sort_for_discovery(&mut served);
        let mut current = self.served.write();
        let changed = current.len() != served.len()
            || current
                .iter()
                .zip(&served)
                .any(|(a, b)| !std::ptr::eq(*a, *b));
        if changed {
            *current = Arc::new(served);
            self.generation
                .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        }
        changed
    }
}
