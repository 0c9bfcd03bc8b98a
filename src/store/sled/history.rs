//! Reads at a revision: the current kv state with later events undone.
//!
//! The kv key space holds only the newest state. To read at revision `r` we scan
//! the log after `r`; the first event for each key there carries the key's
//! state as of `r` (its `prev`, or absence). Those states override the kv
//! key space during a merge in key order. Reads are therefore cheap when `r` is
//! recent — the common case: a paged list continues within seconds — and
//! impossible once the events after `r` are compacted.

use std::collections::BTreeMap;
use std::ops::Bound;

use super::Shared;
use crate::store::encoding::{decode_event, decode_kv, decode_log_key, kv_key, log_key};
use crate::store::{Event, KeyValue, RangeRequest, RangeResult, Result, Revision, StoreError};

impl Shared {
    /// Checks that `revision` can be read; callers hold the apply lock.
    fn check_readable(&self, revision: Revision) -> Result<()> {
        let durable = self.durable();
        if revision > durable {
            return Err(StoreError::FutureRevision {
                requested: revision,
                current: durable,
            });
        }
        let compacted = self.compacted();
        if revision < compacted {
            return Err(StoreError::Compacted {
                requested: revision,
                compacted,
            });
        }
        Ok(())
    }

    /// The state of each key in `[start, ..)` under `prefix` that was
    /// written after `revision`, as it was at `revision` (None = absent).
    fn states_before(
        data: &sled::Tree,
        revision: Revision,
        prefix: &str,
        start: &str,
    ) -> Result<BTreeMap<String, Option<KeyValue>>> {
        let mut states = BTreeMap::new();
        for item in data.range(log_key(revision + 1)..=log_key(Revision::MAX)) {
            let (rev, raw) = item?;
            let (event, _) = decode_event(decode_log_key(&rev)?, &raw)?;
            if event.key.starts_with(prefix) && event.key.as_str() >= start {
                states.entry(event.key).or_insert(event.prev);
            }
        }
        Ok(states)
    }

    /// Serves a [`RangeRequest`].
    pub(crate) fn range_at(&self, request: &RangeRequest) -> Result<RangeResult> {
        let trees = self.read()?;
        let revision = request.revision.unwrap_or_else(|| self.durable());
        self.check_readable(revision)?;
        let prefix = request.prefix.as_str();
        // Continue strictly after the given key: its successor is key + NUL.
        let start = match &request.continue_after {
            Some(key) => format!("{key}\0"),
            None => prefix.to_string(),
        };
        let start = if start.as_str() < prefix {
            prefix.to_string()
        } else {
            start
        };
        let overrides = Self::states_before(&trees.data, revision, prefix, &start)?;
        let limit = if request.limit == 0 {
            usize::MAX
        } else {
            request.limit
        };

        let mut kvs = Vec::new();
        let kv_prefix = kv_key(prefix);
        let mut current = trees.data.range(kv_key(&start)..).peekable();
        let mut older = overrides.iter().peekable();
        while kvs.len() <= limit {
            let next_current = match current.peek() {
                Some(Ok((k, _))) if k.starts_with(&kv_prefix) => Some(k[1..].to_vec()),
                Some(Err(e)) => return Err(StoreError::Io(e.clone())),
                _ => None,
            };
            let next_older = older.peek().map(|(k, _)| k.as_bytes());
            let take_older = match (&next_current, next_older) {
                (None, None) => break,
                (None, Some(_)) => true,
                (Some(_), None) => false,
                (Some(c), Some(o)) => o <= c.as_slice(),
            };
            if take_older {
                let (key, state) = older.next().expect("peeked");
                if next_current.as_deref() == Some(key.as_bytes()) {
                    current.next();
                }
                if let Some(kv) = state {
                    kvs.push(kv.clone());
                }
            } else {
                let (key, raw) = current.next().expect("peeked")?;
                kvs.push(decode_kv(&key, &raw)?);
            }
        }
        let more = kvs.len() > limit;
        kvs.truncate(limit);
        Ok(RangeResult {
            kvs,
            more,
            revision,
        })
    }

    /// Reads one key at the newest durable revision.
    pub(super) fn get_durable(&self, key: &str) -> Result<(Option<KeyValue>, Revision)> {
        let trees = self.read()?;
        let revision = self.durable();
        // Events past the durable revision belong to a batch being flushed.
        for item in trees
            .data
            .range(log_key(revision + 1)..=log_key(Revision::MAX))
        {
            let (rev, raw) = item?;
            let (event, _) = decode_event(decode_log_key(&rev)?, &raw)?;
            if event.key == key {
                return Ok((event.prev, revision));
            }
        }
        let tree_key = kv_key(key);
        let current = match trees.data.get(&tree_key)? {
            Some(raw) => Some(decode_kv(&tree_key, &raw)?),
            None => None,
        };
        Ok((current, revision))
    }

    /// Reads up to `max_scan` log entries in `(after, upto]`; returns the
    /// events under `prefix` and the last revision scanned.
    pub(super) fn read_events(
        &self,
        prefix: &str,
        after: Revision,
        upto: Revision,
        max_scan: usize,
    ) -> Result<(Vec<Event>, Revision)> {
        let trees = self.read()?;
        let compacted = self.compacted();
        if after < compacted {
            return Err(StoreError::Compacted {
                requested: after,
                compacted,
            });
        }
        let mut events = Vec::new();
        let mut last = after;
        if after >= upto {
            return Ok((events, last));
        }
        let range = (
            Bound::Excluded(log_key(after)),
            Bound::Included(log_key(upto)),
        );
        for item in trees.data.range(range).take(max_scan) {
            let (rev, raw) = item?;
            let revision = decode_log_key(&rev)?;
            let (event, _) = decode_event(revision, &raw)?;
            last = revision;
            if event.key.starts_with(prefix) {
                events.push(event);
            }
        }
        Ok((events, last))
    }
}
