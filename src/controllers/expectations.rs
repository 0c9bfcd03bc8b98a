//! Creation/deletion expectations (upstream's
//! `UIDTrackingControllerExpectations`): after a controller asks for N pods
//! to be created or some pods to be deleted, it must not act on the same
//! owner again until its watch has shown those changes, or it would create or
//! delete twice while the cache lags.
//!
//! Creations are a counter lowered by every newly seen pod of the owner;
//! deletions are the set of pod keys asked to go, each removed when its
//! deletion is seen. Expectations older than five minutes count as met, so a
//! lost watch event delays the owner but never wedges it.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::time::Instant;

/// How long unmet expectations block their owner (upstream's
/// `ExpectationsTimeout`).
pub const EXPECTATIONS_TIMEOUT: Duration = Duration::from_secs(5 * 60);

#[derive(Debug)]
struct Entry {
    adds: i64,
    deletes: HashSet<String>,
    set_at: Instant,
}

/// Pending creations and deletions per owner key (`namespace/name`).
#[derive(Debug, Default)]
pub struct Expectations {
    entries: Mutex<HashMap<String, Entry>>,
}

impl Expectations {
    /// Whether the owner may act: nothing pending, or the wait has expired.
    pub fn satisfied(&self, key: &str) -> bool {
        self.satisfied_at(key, Instant::now())
    }

    fn satisfied_at(&self, key: &str, now: Instant) -> bool {
        match self.entries.lock().get(key) {
            None => true,
            Some(e) => {
                (e.adds <= 0 && e.deletes.is_empty())
                    || now.duration_since(e.set_at) > EXPECTATIONS_TIMEOUT
            }
        }
    }

    /// How long until the owner's unmet expectations expire, if any are
    /// pending.
    pub fn remaining(&self, key: &str) -> Option<Duration> {
        let entries = self.entries.lock();
        let e = entries.get(key)?;
        if e.adds <= 0 && e.deletes.is_empty() {
            return None;
        }
        Some(EXPECTATIONS_TIMEOUT.saturating_sub(e.set_at.elapsed()))
    }

    /// Records that `count` pods are about to be created for the owner.
    pub fn expect_creations(&self, key: &str, count: usize) {
        self.set(
            key,
            i64::try_from(count).unwrap_or(i64::MAX),
            HashSet::new(),
        );
    }

    /// Records that the pods with `pod_keys` are about to be deleted.
    pub fn expect_deletions(&self, key: &str, pod_keys: impl IntoIterator<Item = String>) {
        self.set(key, 0, pod_keys.into_iter().collect());
    }

    fn set(&self, key: &str, adds: i64, deletes: HashSet<String>) {
        let entry = Entry {
            adds,
            deletes,
            set_at: Instant::now(),
        };
        self.entries.lock().insert(key.to_owned(), entry);
    }

    /// A pod of the owner appeared (or a planned creation was abandoned).
    pub fn creation_observed(&self, key: &str) {
        if let Some(e) = self.entries.lock().get_mut(key) {
            e.adds -= 1;
        }
    }

    /// The pod with `pod_key` of the owner is gone or going.
    pub fn deletion_observed(&self, key: &str, pod_key: &str) {
        if let Some(e) = self.entries.lock().get_mut(key) {
            e.deletes.remove(pod_key);
        }
    }

    /// Forgets the owner (it was deleted).
    pub fn forget(&self, key: &str) {
        self.entries.lock().remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owners_without_expectations_are_satisfied() {
        let e = Expectations::default();
        assert!(e.satisfied("ns/rs"));
        assert_eq!(e.remaining("ns/rs"), None);
    }

    #[test]
    fn creations_block_until_all_are_observed() {
        let e = Expectations::default();
        e.expect_creations("ns/rs", 2);
        assert!(!e.satisfied("ns/rs"));
        e.creation_observed("ns/rs");
        assert!(!e.satisfied("ns/rs"));
        e.creation_observed("ns/rs");
        assert!(e.satisfied("ns/rs"));
        assert!(e.satisfied("ns/other"));
    }

    #[test]
    fn deletions_are_tracked_by_pod_key() {
        let e = Expectations::default();
        e.expect_deletions("ns/rs", ["ns/a".to_string(), "ns/b".to_string()]);
        e.deletion_observed("ns/rs", "ns/a");
        e.deletion_observed("ns/rs", "ns/a");
        e.deletion_observed("ns/rs", "ns/zzz");
        assert!(!e.satisfied("ns/rs"));
        e.deletion_observed("ns/rs", "ns/b");
        assert!(e.satisfied("ns/rs"));
    }

    #[test]
    fn unmet_expectations_expire() {
        let e = Expectations::default();
        e.expect_creations("ns/rs", 1);
        let later = Instant::now() + EXPECTATIONS_TIMEOUT + Duration::from_secs(1);
        assert!(!e.satisfied("ns/rs"));
        assert!(e.satisfied_at("ns/rs", later));
        assert!(
            e.remaining("ns/rs")
                .is_some_and(|d| d <= EXPECTATIONS_TIMEOUT)
        );
        e.forget("ns/rs");
        assert!(e.satisfied("ns/rs"));
    }
}
