//! Expectations: the writes a controller made that its cache has not caught up with yet
//! (upstream `ControllerExpectations` and the Job controller's `uidTrackingExpectations`).
//!
//! After creating or deleting children, the next reconcile may run before the watch has
//! delivered those changes; acting on the stale cache would create duplicates or delete
//! twice. So each write is recorded per owner and checked off either when the watch event
//! for that child arrives ([`Expectations::observe`]) or when the cache shows it
//! ([`Expectations::satisfied`]). Entries expire after a timeout (five minutes upstream) so
//! a lost event cannot wedge an owner forever. Children are tracked by uid, which makes the
//! checks immune to name reuse.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// How long unobserved expectations are kept before being considered satisfied.
pub const EXPECTATIONS_TIMEOUT: Duration = Duration::from_secs(5 * 60);

/// What the cache (or a watch event) says about a child.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChildView {
    /// The child's uid.
    pub uid: String,
    /// The child has a deletion timestamp or is gone.
    pub deleting: bool,
    /// The child still carries the finalizer the controller tracks.
    pub has_finalizer: bool,
}

#[derive(Debug)]
struct Pending {
    creations: HashMap<String, String>,
    deletions: HashMap<String, String>,
    finalizer_removals: HashMap<String, String>,
    touched: Instant,
}

impl Pending {
    fn new() -> Self {
        Pending {
            creations: HashMap::new(),
            deletions: HashMap::new(),
            finalizer_removals: HashMap::new(),
            touched: Instant::now(),
        }
    }

    fn is_empty(&self) -> bool {
        self.creations.is_empty() && self.deletions.is_empty() && self.finalizer_removals.is_empty()
    }
}

/// Outstanding writes, keyed by owner uid; children are keyed by uid (value: name).
#[derive(Debug)]
pub struct Expectations {
    owners: Mutex<HashMap<String, Pending>>,
    timeout: Duration,
}

impl Default for Expectations {
    fn default() -> Self {
        Expectations::with_timeout(EXPECTATIONS_TIMEOUT)
    }
}

/// Which kind of write an expectation records.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Creation,
    Deletion,
    FinalizerRemoval,
}

impl Expectations {
    /// Expectations that expire after `timeout`.
    pub fn with_timeout(timeout: Duration) -> Self {
        Expectations {
            owners: Mutex::new(HashMap::new()),
            timeout,
        }
    }

    fn record(&self, owner: &str, name: &str, uid: &str, kind: Kind) {
        let mut owners = self.owners.lock();
        let pending = owners.entry(owner.to_string()).or_insert_with(Pending::new);
        pending.touched = Instant::now();
        let map = match kind {
            Kind::Creation => &mut pending.creations,
            Kind::Deletion => &mut pending.deletions,
            Kind::FinalizerRemoval => &mut pending.finalizer_removals,
        };
        map.insert(uid.to_string(), name.to_string());
    }

    /// Records a child the owner just created.
    pub fn expect_creation(&self, owner: &str, name: &str, uid: &str) {
        self.record(owner, name, uid, Kind::Creation);
    }

    /// Records a child the owner just asked to delete.
    pub fn expect_deletion(&self, owner: &str, name: &str, uid: &str) {
        self.record(owner, name, uid, Kind::Deletion);
    }

    /// Records a child whose tracking finalizer the owner just removed.
    pub fn expect_finalizer_removal(&self, owner: &str, name: &str, uid: &str) {
        self.record(owner, name, uid, Kind::FinalizerRemoval);
    }

    /// Checks off expectations from a watch event for a child (`gone` on a delete event).
    pub fn observe(&self, owner: &str, child: &ChildView, gone: bool) {
        let mut owners = self.owners.lock();
        let Some(pending) = owners.get_mut(owner) else {
            return;
        };
        pending.creations.remove(&child.uid);
        if gone || child.deleting {
            pending.deletions.remove(&child.uid);
        }
        if gone || !child.has_finalizer {
            pending.finalizer_removals.remove(&child.uid);
        }
        if pending.is_empty() {
            owners.remove(owner);
        }
    }

    /// Checks expectations against the cache (`lookup` by child name) and reports whether
    /// no creation or deletion is still outstanding.
    pub fn satisfied(&self, owner: &str, lookup: impl Fn(&str) -> Option<ChildView>) -> bool {
        let mut owners = self.owners.lock();
        let Some(pending) = owners.get_mut(owner) else {
            return true;
        };
        if pending.touched.elapsed() >= self.timeout {
            owners.remove(owner);
            return true;
        }
        let same = |uid: &str, name: &str| lookup(name).filter(|c| c.uid == uid);
        pending
            .creations
            .retain(|uid, name| same(uid, name).is_none());
        pending
            .deletions
            .retain(|uid, name| same(uid, name).is_some_and(|c| !c.deleting));
        pending
            .finalizer_removals
            .retain(|uid, name| same(uid, name).is_some_and(|c| c.has_finalizer));
        let done = pending.creations.is_empty() && pending.deletions.is_empty();
        if pending.is_empty() {
            owners.remove(owner);
        }
        done
    }

    /// Uids whose finalizer removal has not been observed yet.
    pub fn pending_finalizer_removals(&self, owner: &str) -> HashSet<String> {
        self.owners
            .lock()
            .get(owner)
            .map(|p| p.finalizer_removals.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// Drops what was recorded for one child (its write failed, nothing will be observed).
    pub fn forget_child(&self, owner: &str, uid: &str) {
        let mut owners = self.owners.lock();
        let Some(pending) = owners.get_mut(owner) else {
            return;
        };
        pending.creations.remove(uid);
        pending.deletions.remove(uid);
        pending.finalizer_removals.remove(uid);
        if pending.is_empty() {
            owners.remove(owner);
        }
    }

    /// Drops everything recorded for an owner (it was deleted or finished).
    pub fn forget(&self, owner: &str) {
        self.owners.lock().remove(owner);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(uid: &str, deleting: bool, has_finalizer: bool) -> ChildView {
        ChildView {
            uid: uid.to_string(),
            deleting,
            has_finalizer,
        }
    }

    #[test]
    fn creations_block_until_the_cache_shows_the_child() {
        let e = Expectations::default();
        e.expect_creation("owner", "p1", "u1");
        assert!(!e.satisfied("owner", |_| None));
        assert!(!e.satisfied("owner", |_| Some(view("other-uid", false, true))));
        assert!(e.satisfied("owner", |_| Some(view("u1", false, true))));
    }

    #[test]
    fn deletions_are_satisfied_by_a_deletion_timestamp_or_absence() {
        let e = Expectations::default();
        e.expect_deletion("owner", "p1", "u1");
        assert!(!e.satisfied("owner", |_| Some(view("u1", false, true))));
        assert!(e.satisfied("owner", |_| Some(view("u1", true, true))));
        e.expect_deletion("owner", "p2", "u2");
        assert!(e.satisfied("owner", |_| None));
    }

    #[test]
    fn watch_events_check_off_children_that_came_and_went() {
        let e = Expectations::default();
        e.expect_creation("owner", "p1", "u1");
        e.observe("owner", &view("u1", true, false), true);
        assert!(e.satisfied("owner", |_| None));
    }

    #[test]
    fn finalizer_removals_are_reported_until_observed_but_do_not_block() {
        let e = Expectations::default();
        e.expect_finalizer_removal("owner", "p1", "u1");
        assert!(e.satisfied("owner", |_| Some(view("u1", false, true))));
        assert!(e.pending_finalizer_removals("owner").contains("u1"));
        e.observe("owner", &view("u1", false, false), false);
        assert!(e.pending_finalizer_removals("owner").is_empty());
    }

    #[test]
    fn expired_expectations_are_dropped() {
        let e = Expectations::with_timeout(Duration::ZERO);
        e.expect_creation("owner", "p1", "u1");
        assert!(e.satisfied("owner", |_| None));
    }
}
