//! Health of the in-process control-plane components, for
//! `componentstatuses` (`kubectl get cs`).
//!
//! The supervisor that runs the scheduler and the controllers records here
//! whether each is running; the apiserver reads it. The store's health is
//! checked live by the handler itself.

use std::collections::BTreeMap;

use parking_lot::RwLock;

/// Component name → `Ok` while running, `Err(reason)` once it stopped.
#[derive(Debug, Default)]
pub struct ComponentHealth {
    components: RwLock<BTreeMap<String, Result<(), String>>>,
}

impl ComponentHealth {
    /// Records a component's state.
    pub fn set(&self, name: &str, state: Result<(), String>) {
        self.components.write().insert(name.to_string(), state);
    }

    /// A component's state; `None` if it was never started.
    pub fn get(&self, name: &str) -> Option<Result<(), String>> {
        self.components.read().get(name).cloned()
    }
}
