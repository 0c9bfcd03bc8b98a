//! The scheduling queue: active heap, backoff heap and the unschedulable pool.
//!
//! Like upstream's PriorityQueue, pending pods wait in an active heap ordered by priority then
//! arrival; a pod that failed goes to the unschedulable pool, from which cluster events move
//! it back, via the backoff heap while its per-pod backoff (1 s doubling up to 10 s) runs.
//! Pods left unschedulable for 5 minutes are retried anyway. A pod that fails while an event
//! arrived during its attempt goes straight to backoff, so the event is not lost.
//!
//! The queue is shared by async watch handlers and the blocking scheduling thread, so it uses
//! a `parking_lot` mutex and condvar; every operation is O(log n) except moving the
//! unschedulable pool, which is O(pods moved). Heap entries carry a token and are
//! discarded lazily when the pod was deleted, updated or moved meanwhile.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use super::filter::Plugins;
use super::podinfo::PodInfo;

/// Backoff after the first failed attempt (upstream podInitialBackoffSeconds).
pub const INITIAL_BACKOFF: Duration = Duration::from_secs(1);
/// Backoff cap (upstream podMaxBackoffSeconds).
pub const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// Longest stay in the unschedulable pool without an event (upstream default).
pub const MAX_UNSCHEDULABLE_AGE: Duration = Duration::from_secs(300);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Active,
    Backoff,
    Unschedulable,
    InFlight,
}

#[derive(Debug)]
struct Entry {
    info: Arc<PodInfo>,
    state: State,
    attempts: u32,
    backoff_until: Option<Instant>,
    unschedulable_since: Instant,
    token: u64,
    failed_plugins: Plugins,
    changed_in_flight: bool,
}

/// A pod handed to the scheduling thread.
#[derive(Debug, Clone)]
pub struct Popped {
    /// The pod.
    pub info: Arc<PodInfo>,
    /// Move-request cycles at pop time (see [`SchedulingQueue::failed`]).
    pub cycle: MoveCycle,
    /// Attempts including this one.
    pub attempts: u32,
}

/// Result of [`SchedulingQueue::pop`].
#[derive(Debug)]
pub enum PopResult {
    /// A pod to schedule.
    Pod(Popped),
    /// Nothing became ready before the timeout.
    Idle,
    /// The queue was closed.
    Closed,
}

#[derive(Debug, Default)]
struct Inner {
    entries: HashMap<String, Entry>,
    active: BinaryHeap<(i32, Reverse<u64>, String)>,
    backoff: BinaryHeap<Reverse<(Instant, u64, String)>>,
    unschedulable: HashSet<String>,
    /// The subset of `unschedulable` rejected by spread or inter-pod affinity, so that the
    /// frequent "pod bound" events only scan pods they can help.
    pod_dependent: HashSet<String>,
    next_token: u64,
    move_cycle: MoveCycle,
    closed: bool,
}

/// Counters of cluster events that retried unschedulable pods: `all` counts events that
/// retry every pod, `pod_dependent` those that only retry spread/inter-pod rejections.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MoveCycle {
    all: u64,
    pod_dependent: u64,
}

impl MoveCycle {
    /// Whether an event since `earlier` could have made a pod rejected by `plugins` fit.
    fn moved_since(self, earlier: MoveCycle, plugins: Plugins) -> bool {
        self.all > earlier.all
            || (plugins.intersects(Plugins::POD_DEPENDENT)
                && self.pod_dependent > earlier.pod_dependent)
    }
}

/// Backoff after `attempts` failed attempts.
pub fn backoff_for(attempts: u32) -> Duration {
    let shift = attempts.saturating_sub(1).min(16);
    INITIAL_BACKOFF.saturating_mul(1 << shift).min(MAX_BACKOFF)
}

impl Inner {
    fn token(&mut self) -> u64 {
        self.next_token += 1;
        self.next_token
    }

    fn push_active(&mut self, uid: &str) {
        let token = self.token();
        if let Some(e) = self.entries.get_mut(uid) {
            e.state = State::Active;
            e.token = token;
            self.active
                .push((e.info.priority, Reverse(token), uid.to_string()));
        }
    }

    fn push_backoff(&mut self, uid: &str, until: Instant) {
        let token = self.token();
        if let Some(e) = self.entries.get_mut(uid) {
            e.state = State::Backoff;
            e.token = token;
            self.backoff.push(Reverse((until, token, uid.to_string())));
        }
    }

    /// Moves an entry to backoff when its backoff still runs, else to active.
    fn reactivate(&mut self, uid: &str, now: Instant) {
        self.unschedulable.remove(uid);
        self.pod_dependent.remove(uid);
        let until = self.entries.get(uid).and_then(|e| e.backoff_until);
        match until {
            Some(t) if t > now => self.push_backoff(uid, t),
            _ => self.push_active(uid),
        }
    }

    fn flush_backoff(&mut self, now: Instant) {
        while let Some(Reverse((t, token, _))) = self.backoff.peek() {
            if *t > now {
                break;
            }
            let token = *token;
            let Some(Reverse((_, _, uid))) = self.backoff.pop() else {
                break;
            };
            let valid = self
                .entries
                .get(&uid)
                .is_some_and(|e| e.token == token && e.state == State::Backoff);
            if valid {
                self.push_active(&uid);
            }
        }
    }

    fn pop_active(&mut self) -> Option<Popped> {
        while let Some((_, Reverse(token), uid)) = self.active.pop() {
            let cycle = self.move_cycle;
            let Some(e) = self.entries.get_mut(&uid) else {
                continue;
            };
            if e.token != token || e.state != State::Active {
                continue;
            }
            e.state = State::InFlight;
            e.attempts += 1;
            e.changed_in_flight = false;
            return Some(Popped {
                info: e.info.clone(),
                cycle,
                attempts: e.attempts,
            });
        }
        None
    }
}

/// Pending pods of this scheduler.
#[derive(Debug, Default)]
pub struct SchedulingQueue {
    inner: Mutex<Inner>,
    cond: Condvar,
}

impl SchedulingQueue {
    /// An empty queue.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a pending pod, or refreshes it. An unschedulable pod whose spec or labels changed
    /// is retried (the change may make it fit).
    pub fn add_or_update(&self, info: Arc<PodInfo>) {
        let mut g = self.inner.lock();
        let uid = info.uid.clone();
        let Some(e) = g.entries.get_mut(&uid) else {
            let entry = Entry {
                info,
                state: State::Active,
                attempts: 0,
                backoff_until: None,
                unschedulable_since: Instant::now(),
                token: 0,
                failed_plugins: Plugins::default(),
                changed_in_flight: false,
            };
            g.entries.insert(uid.clone(), entry);
            g.push_active(&uid);
            drop(g);
            self.cond.notify_one();
            return;
        };
        let significant = e.info.generation != info.generation
            || e.info.labels != info.labels
            || e.info.priority != info.priority;
        e.info = info;
        match e.state {
            State::Unschedulable if significant => {
                g.reactivate(&uid, Instant::now());
                drop(g);
                self.cond.notify_one();
            }
            State::InFlight if significant => e.changed_in_flight = true,
            _ => {}
        }
    }

    /// Drops a pod (deleted, bound elsewhere, or no longer ours).
    pub fn delete(&self, uid: &str) {
        let mut g = self.inner.lock();
        g.entries.remove(uid);
        g.unschedulable.remove(uid);
        g.pod_dependent.remove(uid);
    }

    /// Waits up to `timeout` for a pod to become ready.
    pub fn pop(&self, timeout: Duration) -> PopResult {
        let deadline = Instant::now() + timeout;
        let mut g = self.inner.lock();
        loop {
            if g.closed {
                return PopResult::Closed;
            }
            let now = Instant::now();
            g.flush_backoff(now);
            if let Some(p) = g.pop_active() {
                return PopResult::Pod(p);
            }
            if now >= deadline {
                return PopResult::Idle;
            }
            let next_backoff = g
                .backoff
                .peek()
                .map(|Reverse((t, _, _))| *t)
                .unwrap_or(deadline);
            let wake = next_backoff.min(deadline);
            self.cond.wait_until(&mut g, wake);
        }
    }

    /// The pod was bound (or dropped for good): forget it.
    pub fn done(&self, uid: &str) {
        self.delete(uid);
    }

    /// The attempt popped at `cycle` failed. Unschedulable pods wait for an event unless one
    /// arrived during the attempt; errors (`unschedulable == false`) always back off.
    pub fn failed(&self, uid: &str, cycle: MoveCycle, plugins: Plugins, unschedulable: bool) {
        let mut g = self.inner.lock();
        let now = Instant::now();
        let move_cycle = g.move_cycle;
        let Some(e) = g.entries.get_mut(uid) else {
            return;
        };
        if e.state != State::InFlight {
            return;
        }
        let until = now + backoff_for(e.attempts);
        e.backoff_until = Some(until);
        e.failed_plugins = plugins;
        if !unschedulable || move_cycle.moved_since(cycle, plugins) || e.changed_in_flight {
            g.push_backoff(uid, until);
            drop(g);
            self.cond.notify_one();
            return;
        }
        e.state = State::Unschedulable;
        e.unschedulable_since = now;
        e.token = 0;
        g.unschedulable.insert(uid.to_string());
        if plugins.intersects(Plugins::POD_DEPENDENT) {
            g.pod_dependent.insert(uid.to_string());
        }
    }

    /// A cluster event that can help any pod happened (node added or changed, counted pod
    /// removed): retry every unschedulable pod.
    pub fn move_all_unschedulable(&self) {
        self.move_matching(None);
    }

    /// A pod appeared on a node (or a namespace changed labels): retry only pods rejected
    /// by PodTopologySpread or InterPodAffinity, the plugins such an event can satisfy.
    pub fn move_pod_dependent(&self) {
        self.move_matching(Some(Plugins::POD_DEPENDENT));
    }

    fn move_matching(&self, only: Option<Plugins>) {
        let mut g = self.inner.lock();
        let pool = match only {
            None => {
                g.move_cycle.all += 1;
                &g.unschedulable
            }
            Some(_) => {
                g.move_cycle.pod_dependent += 1;
                &g.pod_dependent
            }
        };
        if pool.is_empty() {
            return;
        }
        let uids: Vec<String> = pool.iter().cloned().collect();
        let now = Instant::now();
        for uid in &uids {
            g.reactivate(uid, now);
        }
        drop(g);
        self.cond.notify_all();
    }

    /// Retries pods that stayed unschedulable longer than `max_age`.
    pub fn flush_unschedulable(&self, max_age: Duration) {
        let mut g = self.inner.lock();
        let now = Instant::now();
        let stale: Vec<String> = g
            .unschedulable
            .iter()
            .filter(|uid| {
                g.entries
                    .get(*uid)
                    .is_some_and(|e| now.duration_since(e.unschedulable_since) >= max_age)
            })
            .cloned()
            .collect();
        for uid in &stale {
            g.reactivate(uid, now);
        }
        drop(g);
        if !stale.is_empty() {
            self.cond.notify_all();
        }
    }

    /// Wakes the scheduling thread for good.
    pub fn close(&self) {
        self.inner.lock().closed = true;
        self.cond.notify_all();
    }

    /// UIDs of all queued pods (for relist reconciliation).
    pub fn uids(&self) -> Vec<String> {
        self.inner.lock().entries.keys().cloned().collect()
    }

    /// Number of pods known to the queue, in any state.
    pub fn len(&self) -> usize {
        self.inner.lock().entries.len()
    }

    /// Whether the queue holds no pod.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Number of pods waiting in the unschedulable pool.
    pub fn unschedulable_len(&self) -> usize {
        self.inner.lock().unschedulable.len()
    }
}

#[cfg(test)]
mod tests;
