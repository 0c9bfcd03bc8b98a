//! The single writer thread: group commit, revision assignment, compaction.
//!
//! Writers queue requests; this thread takes everything queued (up to
//! [`MAX_BATCH`]), applies it as one atomic sled batch, fsyncs once, then publishes the new durable revision, hands
//! the batch's events to watchers and answers every request. While one batch
//! is being flushed the next one accumulates, so under load the fsync cost
//! is shared by many writes.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{SystemTime, UNIX_EPOCH};

use std::collections::HashMap;

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};

use super::{CompactionPolicy, META_COMPACTED, META_REVISION, Shared, recovery};
use crate::store::encoding::{
    decode_event, decode_kv, decode_log_key, encode_event, encode_kv, encode_revision, kv_key,
    log_key, meta_key,
};
use crate::store::{Deleted, Event, EventKind, KeyValue, Result, Revision, StoreError};

/// Most writes applied in one transaction.
const MAX_BATCH: usize = 512;
/// How long closing the store waits for the writer thread.
const JOIN_WAIT: std::time::Duration = std::time::Duration::from_secs(10);
/// Most log entries dropped per compaction step, to bound write stalls.
const COMPACTION_CHUNK: usize = 10_000;

/// A write to perform.
#[derive(Debug)]
pub(super) enum Op {
    Create {
        key: String,
        value: Bytes,
    },
    Update {
        key: String,
        value: Bytes,
        expected: Option<Revision>,
    },
    Delete {
        key: String,
        expected: Option<Revision>,
    },
    Compact {
        revision: Revision,
    },
}

impl Op {
    /// Bytes this op asks the store to write, roughly.
    fn size(&self) -> u64 {
        match self {
            Op::Create { key, value } | Op::Update { key, value, .. } => {
                (key.len() + value.len()) as u64
            }
            Op::Delete { key, .. } => key.len() as u64,
            Op::Compact { .. } => 0,
        }
    }
}

/// The result of one op.
#[derive(Debug)]
pub(super) enum Outcome {
    Put(KeyValue),
    Deleted(Deleted),
    Compacted,
}

/// A queued op and where to send its result.
pub(super) struct WriteRequest {
    pub(super) op: Op,
    pub(super) reply: oneshot::Sender<Result<Outcome>>,
}

/// The writer thread's handle: dropping it stops and joins the thread.
pub(super) struct Writer {
    requests: Option<mpsc::Sender<WriteRequest>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Writer {
    pub(super) fn requests(&self) -> Result<&mpsc::Sender<WriteRequest>> {
        self.requests
            .as_ref()
            .ok_or_else(|| StoreError::Unavailable("store is closed".into()))
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        // Closing the queue ends the thread once it has answered what is
        // already queued; joining makes "drop the store, reopen it" safe.
        // But a writer stuck inside sled must not hang shutdown: the wait
        // is bounded, then the thread is left (process exit ends it).
        self.requests.take();
        if let Some(thread) = self.thread.take() {
            let deadline = std::time::Instant::now() + JOIN_WAIT;
            while !thread.is_finished() && std::time::Instant::now() < deadline {
                std::thread::park_timeout(std::time::Duration::from_millis(10));
            }
            if thread.is_finished() {
                let _ = thread.join();
            } else {
                tracing::error!("the store writer is stuck in sled I/O; leaving it behind");
            }
        }
    }
}

pub(super) fn spawn(
    shared: Arc<Shared>,
    requests: mpsc::Sender<WriteRequest>,
    mut queue: mpsc::Receiver<WriteRequest>,
    policy: CompactionPolicy,
) -> Result<Writer> {
    let thread = std::thread::Builder::new()
        .name("kelp-store-writer".into())
        .spawn(move || {
            let mut last_policy_check = std::time::Instant::now();
            let mut reopen = recovery::Backoff::default();
            while let Some(first) = queue.blocking_recv() {
                let mut batch = vec![first];
                while batch.len() < MAX_BATCH {
                    match queue.try_recv() {
                        Ok(next) => batch.push(next),
                        Err(_) => break,
                    }
                }
                shared.batch_running(true);
                run_batch(&shared, batch, &mut reopen);
                shared.batch_running(false);
                if shared.failure().is_none() && last_policy_check.elapsed() >= policy.interval {
                    last_policy_check = std::time::Instant::now();
                    if let Err(e) = compact_by_policy(&shared, &policy) {
                        tracing::warn!(error = %e, "store compaction failed");
                        if matches!(e, StoreError::Io(_)) {
                            recovery::mark_failed(&shared, format!("compaction failed: {e}"));
                        }
                    }
                }
            }
            tracing::debug!("store writer stopped: all handles dropped");
        })
        .map_err(|e| StoreError::Unavailable(format!("cannot start store writer thread: {e}")))?;
    Ok(Writer {
        requests: Some(requests),
        thread: Some(thread),
    })
}

fn run_batch(shared: &Shared, batch: Vec<WriteRequest>, reopen: &mut recovery::Backoff) {
    // Only a failed write calls for a reopen; low space is checked per batch.
    if shared.failure.lock().is_some()
        && let Err(reason) = reopen.try_reopen(shared)
    {
        for req in batch {
            let _ = req.reply.send(Err(StoreError::Unavailable(reason.clone())));
        }
        return;
    }
    let (writes, compactions): (Vec<_>, Vec<_>) = batch
        .into_iter()
        .partition(|r| !matches!(r.op, Op::Compact { .. }));
    if !writes.is_empty() {
        commit_writes(shared, writes);
    }
    for req in compactions {
        let Op::Compact { revision } = req.op else {
            continue;
        };
        let _ = req
            .reply
            .send(compact_to(shared, revision).map(|_| Outcome::Compacted));
    }
}

fn commit_writes(shared: &Shared, writes: Vec<WriteRequest>) {
    let bytes: u64 = writes.iter().map(|r| r.op.size()).sum();
    if let Err(reason) = recovery::check_write_space(shared, bytes) {
        for req in writes {
            let _ = req.reply.send(Err(StoreError::Unavailable(reason.clone())));
        }
        return;
    }
    let ops: Vec<&Op> = writes.iter().map(|r| &r.op).collect();
    let base = shared.durable();
    let now = unix_millis();
    let applied = shared.write().and_then(|trees| {
        apply_ops(&trees.data, &ops, base, now).map(|done| (done, trees.db.clone()))
    });
    // A batch whose every op failed its precondition wrote nothing.
    let flushed = applied.and_then(|((outcomes, events), db)| {
        if !events.is_empty() {
            db.flush()?;
        }
        Ok((outcomes, events))
    });
    let (outcomes, events) = match flushed {
        Ok(done) => done,
        Err(e) => {
            // sled's memory may now hold this batch although the disk does
            // not (or the other way round): reopen before the next write.
            let reason = format!(
                "store write failed, the write was not acknowledged: {e}; writes resume once the cause is fixed"
            );
            recovery::mark_failed(shared, reason.clone());
            for req in writes {
                let _ = req.reply.send(Err(StoreError::Unavailable(reason.clone())));
            }
            return;
        }
    };
    if let Some(last) = events.last() {
        shared.durable.store(last.revision, Ordering::Release);
        // No receivers is fine: nobody is watching.
        let _ = shared.hub.send(Arc::from(events));
    }
    for (req, outcome) in writes.into_iter().zip(outcomes) {
        let _ = req.reply.send(outcome);
    }
}

/// Applies `ops` in order as one atomic batch. A failed precondition or an
/// undecodable record fails only its own op; a storage error fails the batch.
fn apply_ops(
    tree: &sled::Tree,
    ops: &[&Op],
    base: Revision,
    now: u64,
) -> Result<(Vec<Result<Outcome>>, Vec<Event>)> {
    let mut revision = base;
    let mut outcomes = Vec::with_capacity(ops.len());
    let mut events = Vec::with_capacity(ops.len());
    let mut batch = sled::Batch::default();
    // Earlier ops of this batch are not in the tree yet.
    let mut pending: HashMap<&str, Option<KeyValue>> = HashMap::new();
    for op in ops {
        let (key, value, expected, is_create) = match op {
            Op::Create { key, value } => (key, Some(value), None, true),
            Op::Update {
                key,
                value,
                expected,
            } => (key, Some(value), *expected, false),
            Op::Delete { key, expected } => (key, None, *expected, false),
            Op::Compact { .. } => continue,
        };
        let tree_key = kv_key(key);
        let current = match pending.get(key.as_str()) {
            Some(state) => state.clone(),
            None => match tree.get(&tree_key)? {
                Some(raw) => match decode_kv(&tree_key, &raw) {
                    Ok(kv) => Some(kv),
                    Err(e) => {
                        outcomes.push(Err(e));
                        continue;
                    }
                },
                None => None,
            },
        };
        if let Err(e) = check_precondition(key, current.as_ref(), expected, is_create) {
            outcomes.push(Err(e));
            continue;
        }
        revision += 1;
        let event = match value {
            Some(value) => {
                let new = KeyValue {
                    key: key.clone(),
                    value: value.clone(),
                    create_revision: current.as_ref().map_or(revision, |c| c.create_revision),
                    mod_revision: revision,
                    version: current.as_ref().map_or(1, |c| c.version + 1),
                };
                batch.insert(tree_key, encode_kv(&new));
                pending.insert(key, Some(new.clone()));
                outcomes.push(Ok(Outcome::Put(new.clone())));
                Event {
                    kind: EventKind::Put,
                    revision,
                    key: key.clone(),
                    value: Some(new),
                    prev: current,
                }
            }
            None => {
                batch.remove(tree_key);
                pending.insert(key, None);
                let Some(prev) = current.clone() else {
                    outcomes.push(Err(StoreError::NotFound { key: key.clone() }));
                    continue;
                };
                outcomes.push(Ok(Outcome::Deleted(Deleted { revision, prev })));
                Event {
                    kind: EventKind::Delete,
                    revision,
                    key: key.clone(),
                    value: None,
                    prev: current,
                }
            }
        };
        batch.insert(&log_key(revision), encode_event(&event, now));
        events.push(event);
    }
    if revision != base {
        batch.insert(meta_key(META_REVISION), &encode_revision(revision));
        tree.apply_batch(batch)?;
    }
    Ok((outcomes, events))
}

fn check_precondition(
    key: &str,
    current: Option<&KeyValue>,
    expected: Option<Revision>,
    is_create: bool,
) -> Result<()> {
    match (current, is_create) {
        (Some(_), true) => Err(StoreError::AlreadyExists {
            key: key.to_string(),
        }),
        (None, true) => Ok(()),
        (None, false) => Err(StoreError::NotFound {
            key: key.to_string(),
        }),
        (Some(c), false) => match expected {
            Some(expected) if expected != c.mod_revision => Err(StoreError::Conflict {
                key: key.to_string(),
                expected,
                actual: c.mod_revision,
            }),
            _ => Ok(()),
        },
    }
}

/// Drops log entries up to `target` (at most one chunk per call).
fn compact_to(shared: &Shared, target: Revision) -> Result<()> {
    let durable = shared.durable();
    if target > durable {
        return Err(StoreError::FutureRevision {
            requested: target,
            current: durable,
        });
    }
    let from = shared.compacted();
    if target <= from {
        return Ok(());
    }
    // Readers check the compacted revision and scan the log under the read
    // lock, so moving the mark and deleting under the write lock means no
    // reader ever misses an event it was promised.
    let trees = shared.write()?;
    let mut batch = sled::Batch::default();
    batch.insert(meta_key(META_COMPACTED), &encode_revision(target));
    for item in trees.data.range(log_key(0)..=log_key(target)) {
        let (key, _) = item?;
        batch.remove(key);
    }
    shared.compacted.store(target, Ordering::Release);
    trees.data.apply_batch(batch)?;
    trees.db.flush()?;
    Ok(())
}

fn compact_by_policy(shared: &Shared, policy: &CompactionPolicy) -> Result<()> {
    let durable = shared.durable();
    let mut target = durable.saturating_sub(policy.max_events);
    let cutoff = unix_millis().saturating_sub(policy.max_age.as_millis() as u64);
    let trees = shared.read()?;
    for (i, item) in trees
        .data
        .range(log_key(target + 1)..=log_key(Revision::MAX))
        .take(COMPACTION_CHUNK)
        .enumerate()
    {
        let (key, raw) = item?;
        let revision = decode_log_key(&key)?;
        let (_, written) = decode_event(revision, &raw)?;
        // Events expire one by one; dropping each as it does would cost a
        // flush per event (an idle node's every Lease renewal twice over,
        // on an SD card). So age only counts once the oldest event is
        // `age_slack` past it, and then everything expired goes at once:
        // history is kept for max_age to max_age + age_slack.
        let overdue = cutoff.saturating_sub(policy.age_slack.as_millis() as u64);
        if (i == 0 && written >= overdue) || written >= cutoff || revision > durable {
            break;
        }
        target = revision;
    }
    drop(trees);
    // One chunk per pass keeps a long backlog from stalling writers.
    target = target.min(shared.compacted() + COMPACTION_CHUNK as u64);
    compact_to(shared, target)
}

fn unix_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
