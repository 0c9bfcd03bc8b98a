//! Per-key locks for single-flight work: the first caller for a key does the
//! work, later callers wait for it and then find the result in place (a blob
//! in the content store, an image record), so nothing is fetched twice.
//!
//! Entries are dropped when their last holder lets go, so the map only ever
//! holds keys with work in flight.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;

/// A map of async locks by key; clones share the map.
#[derive(Clone, Debug, Default)]
pub struct KeyedLocks {
    locks: Arc<Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>>,
}

/// Holds a key's lock; dropping it releases the key.
pub struct KeyGuard {
    owner: KeyedLocks,
    key: String,
    lock: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl KeyedLocks {
    /// Waits until no one else holds `key`, then holds it.
    pub async fn lock(&self, key: &str) -> KeyGuard {
        let lock = self
            .locks
            .lock()
            .entry(key.to_string())
            .or_default()
            .clone();
        let guard = lock.lock_owned().await;
        KeyGuard {
            owner: self.clone(),
            key: key.to_string(),
            lock: Some(guard),
        }
    }

    /// Keys currently held or waited for.
    pub fn len(&self) -> usize {
        self.locks.lock().len()
    }

    /// True when no key is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Drop for KeyGuard {
    fn drop(&mut self) {
        self.lock.take();
        let mut map = self.owner.locks.lock();
        // Only the map itself still points at the lock: nobody waits for it.
        if map
            .get(&self.key)
            .is_some_and(|l| Arc::strong_count(l) == 1)
        {
            map.remove(&self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn second_caller_waits_for_the_first_and_the_map_empties() {
        let locks = KeyedLocks::default();
        let first = locks.lock("sha256:a").await;
        let other = locks.lock("sha256:b").await;
        let waiter = {
            let locks = locks.clone();
            tokio::spawn(async move {
                let _g = locks.lock("sha256:a").await;
            })
        };
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished(), "the second caller must wait");
        drop(first);
        waiter.await.expect("waiter");
        drop(other);
        assert!(locks.is_empty());
    }
}
