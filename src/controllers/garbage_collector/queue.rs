//! A de-duplicating work queue with per-item retry backoff (client-go's rate-limited
//! workqueue, which upstream's `attemptToDelete`/`attemptToOrphan` queues are).
//!
//! An item is queued at most once; an item added while a worker holds it is queued again
//! when the worker calls [`WorkQueue::done`], so no change is lost and no item is processed by
//! two workers at once. Retries wait 5 ms doubling up to 5 minutes per item.

use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::Hash;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::Notify;

const BASE_DELAY: Duration = Duration::from_millis(5);
const MAX_DELAY: Duration = Duration::from_secs(300);

struct State<T> {
    queue: VecDeque<T>,
    queued: HashSet<T>,
    processing: HashSet<T>,
    dirty: HashSet<T>,
    failures: HashMap<T, u32>,
}

/// The queue; cheap to clone (shared).
pub struct WorkQueue<T> {
    state: Arc<Mutex<State<T>>>,
    notify: Arc<Notify>,
}

impl<T> Clone for WorkQueue<T> {
    fn clone(&self) -> Self {
        Self {
            state: self.state.clone(),
            notify: self.notify.clone(),
        }
    }
}

impl<T: Hash + Eq + Clone + Send + 'static> Default for WorkQueue<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Hash + Eq + Clone + Send + 'static> WorkQueue<T> {
    /// An empty queue.
    pub fn new() -> Self {
        let state = State {
            queue: VecDeque::new(),
            queued: HashSet::new(),
            processing: HashSet::new(),
            dirty: HashSet::new(),
            failures: HashMap::new(),
        };
        Self {
            state: Arc::new(Mutex::new(state)),
            notify: Arc::new(Notify::new()),
        }
    }

    /// Queues `item` unless it is already queued.
    pub fn add(&self, item: T) {
        let mut state = self.state.lock();
        if state.processing.contains(&item) {
            state.dirty.insert(item);
            return;
        }
        if state.queued.insert(item.clone()) {
            state.queue.push_back(item);
            drop(state);
            self.notify.notify_one();
        }
    }

    /// Queues `item` again after its backoff delay (a failed attempt).
    pub fn retry(&self, item: T) {
        let delay = {
            let mut state = self.state.lock();
            let count = state.failures.entry(item.clone()).or_insert(0);
            *count = count.saturating_add(1);
            BASE_DELAY
                .saturating_mul(1u32 << (*count - 1).min(20))
                .min(MAX_DELAY)
        };
        let queue = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            queue.add(item);
        });
    }

    /// Forgets the failure count of `item` (a successful attempt).
    pub fn forget(&self, item: &T) {
        self.state.lock().failures.remove(item);
    }

    /// Waits for the next item and marks it as being processed.
    pub async fn get(&self) -> T {
        loop {
            let notified = self.notify.notified();
            {
                let mut state = self.state.lock();
                if let Some(item) = state.queue.pop_front() {
                    state.queued.remove(&item);
                    state.processing.insert(item.clone());
                    return item;
                }
            }
            notified.await;
        }
    }

    /// Marks `item` as processed, requeueing it if it was added meanwhile.
    pub fn done(&self, item: &T) {
        let requeue = {
            let mut state = self.state.lock();
            state.processing.remove(item);
            state.dirty.remove(item)
        };
        if requeue {
            self.add(item.clone());
        }
    }

    /// Number of queued items (not counting those being processed).
    pub fn len(&self) -> usize {
        self.state.lock().queue.len()
    }

    /// True when nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn deduplicates_and_requeues_items_added_while_processing() {
        let queue = WorkQueue::new();
        queue.add("a");
        queue.add("a");
        queue.add("b");
        assert_eq!(queue.len(), 2);
        let first = queue.get().await;
        assert_eq!(first, "a");
        queue.add("a");
        assert_eq!(queue.len(), 1, "a is held back while processing");
        queue.done(&first);
        assert_eq!(queue.get().await, "b");
        assert_eq!(queue.get().await, "a");
    }

    #[tokio::test]
    async fn retry_comes_back_after_a_delay() {
        let queue = WorkQueue::new();
        queue.retry("x");
        let got = tokio::time::timeout(Duration::from_secs(1), queue.get()).await;
        assert_eq!(got.ok(), Some("x"));
    }
}
