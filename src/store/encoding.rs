//! On-disk record formats of the sled backend.
//!
//! Hand-rolled, fixed-layout binary: the records are tiny and hot (every
//! read decodes one), and a self-describing format would cost space and time
//! for no benefit. Every decode is bounds-checked and returns
//! [`StoreError::Corrupt`] instead of panicking on a damaged record.
//!
//! All records live in one sled tree, so that a batch of writes is one
//! atomic `apply_batch`; the first key byte separates the key spaces:
//! `k<key>` current state, `l<revision u64>` event log, `m<name>` metadata.
//!
//! - kv record: `create u64 | mod u64 | version u64 | value…` (big endian)
//! - log record (key = `l` + revision as big-endian u64, so sled orders by it):
//!   `kind u8 | unix_millis u64 | key_len u32 | key | flags u8 |
//!   [value entry] | [prev entry]`, where an entry is
//!   `create u64 | mod u64 | version u64 | len u32 | bytes`.

use bytes::Bytes;

use super::{Event, EventKind, KeyValue, Result, Revision, StoreError};

const KV_HEADER: usize = 24;
const HAS_VALUE: u8 = 1;
const HAS_PREV: u8 = 2;

/// Encodes the kv-tree value of `kv` (the key is the tree key).
pub(crate) fn encode_kv(kv: &KeyValue) -> Vec<u8> {
    let mut out = Vec::with_capacity(KV_HEADER + kv.value.len());
    out.extend_from_slice(&kv.create_revision.to_be_bytes());
    out.extend_from_slice(&kv.mod_revision.to_be_bytes());
    out.extend_from_slice(&kv.version.to_be_bytes());
    out.extend_from_slice(&kv.value);
    out
}

/// Decodes a current-state record; `key` is its tree key (with the space byte).
pub(crate) fn decode_kv(key: &[u8], raw: &[u8]) -> Result<KeyValue> {
    let key = decode_key("kv", key.strip_prefix(&[KV_SPACE]).unwrap_or(key))?;
    let mut r = Reader {
        buf: raw,
        tree: "kv",
        at: &key,
    };
    let create_revision = r.u64()?;
    let mod_revision = r.u64()?;
    let version = r.u64()?;
    Ok(KeyValue {
        value: Bytes::copy_from_slice(r.buf),
        key,
        create_revision,
        mod_revision,
        version,
    })
}

/// First key byte of current-state records.
pub(crate) const KV_SPACE: u8 = b'k';
/// First key byte of event-log records.
pub(crate) const LOG_SPACE: u8 = b'l';

/// The tree key of a key's current state.
pub(crate) fn kv_key(key: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(key.len() + 1);
    out.push(KV_SPACE);
    out.extend_from_slice(key.as_bytes());
    out
}

/// The tree key of a revision's log record.
pub(crate) fn log_key(revision: Revision) -> [u8; 9] {
    let mut out = [LOG_SPACE; 9];
    out[1..].copy_from_slice(&revision.to_be_bytes());
    out
}

/// The tree key of a metadata record.
pub(crate) fn meta_key(name: &str) -> Vec<u8> {
    [b"m", name.as_bytes()].concat()
}

/// Encodes a revision value (metadata).
pub(crate) fn encode_revision(revision: Revision) -> [u8; 8] {
    revision.to_be_bytes()
}

/// Decodes a revision value (metadata).
pub(crate) fn decode_revision(raw: &[u8]) -> Result<Revision> {
    let bytes: [u8; 8] = raw.try_into().map_err(|_| StoreError::Corrupt {
        tree: "meta",
        key: format!("{raw:?}"),
        reason: "revision is not 8 bytes".into(),
    })?;
    Ok(Revision::from_be_bytes(bytes))
}

/// Decodes a log record's tree key.
pub(crate) fn decode_log_key(raw: &[u8]) -> Result<Revision> {
    match raw.split_first() {
        Some((&LOG_SPACE, rest)) if rest.len() == 8 => decode_revision(rest),
        _ => Err(StoreError::Corrupt {
            tree: "log",
            key: format!("{raw:?}"),
            reason: "not a log key".into(),
        }),
    }
}

/// Encodes a log record.
pub(crate) fn encode_event(event: &Event, unix_millis: u64) -> Vec<u8> {
    let size = 22 + event.key.len() + entry_len(&event.value) + entry_len(&event.prev);
    let mut out = Vec::with_capacity(size);
    out.push(match event.kind {
        EventKind::Put => 0,
        EventKind::Delete => 1,
    });
    out.extend_from_slice(&unix_millis.to_be_bytes());
    out.extend_from_slice(&(event.key.len() as u32).to_be_bytes());
    out.extend_from_slice(event.key.as_bytes());
    let flags = (if event.value.is_some() { HAS_VALUE } else { 0 })
        | (if event.prev.is_some() { HAS_PREV } else { 0 });
    out.push(flags);
    for kv in [&event.value, &event.prev].into_iter().flatten() {
        out.extend_from_slice(&kv.create_revision.to_be_bytes());
        out.extend_from_slice(&kv.mod_revision.to_be_bytes());
        out.extend_from_slice(&kv.version.to_be_bytes());
        out.extend_from_slice(&(kv.value.len() as u32).to_be_bytes());
        out.extend_from_slice(&kv.value);
    }
    out
}

fn entry_len(kv: &Option<KeyValue>) -> usize {
    kv.as_ref().map_or(0, |kv| 28 + kv.value.len())
}

/// Decodes a log record; returns the event and its write time (unix ms).
pub(crate) fn decode_event(revision: Revision, raw: &[u8]) -> Result<(Event, u64)> {
    let at = revision.to_string();
    let mut r = Reader {
        buf: raw,
        tree: "log",
        at: &at,
    };
    let kind = match r.u8()? {
        0 => EventKind::Put,
        1 => EventKind::Delete,
        other => return Err(r.corrupt(format!("unknown event kind {other}"))),
    };
    let unix_millis = r.u64()?;
    let key_len = r.u32()? as usize;
    let key = decode_key("log", r.take(key_len)?)?;
    let flags = r.u8()?;
    let mut entry = |present: bool| -> Result<Option<KeyValue>> {
        if !present {
            return Ok(None);
        }
        let create_revision = r.u64()?;
        let mod_revision = r.u64()?;
        let version = r.u64()?;
        let len = r.u32()? as usize;
        let value = Bytes::copy_from_slice(r.take(len)?);
        Ok(Some(KeyValue {
            key: key.clone(),
            value,
            create_revision,
            mod_revision,
            version,
        }))
    };
    let value = entry(flags & HAS_VALUE != 0)?;
    let prev = entry(flags & HAS_PREV != 0)?;
    Ok((
        Event {
            kind,
            revision,
            key,
            value,
            prev,
        },
        unix_millis,
    ))
}

fn decode_key(tree: &'static str, raw: &[u8]) -> Result<String> {
    String::from_utf8(raw.to_vec()).map_err(|_| StoreError::Corrupt {
        tree,
        key: String::from_utf8_lossy(raw).into_owned(),
        reason: "key is not utf-8".into(),
    })
}

struct Reader<'a> {
    buf: &'a [u8],
    tree: &'static str,
    at: &'a str,
}

impl<'a> Reader<'a> {
    fn corrupt(&self, reason: String) -> StoreError {
        StoreError::Corrupt {
            tree: self.tree,
            key: self.at.to_string(),
            reason,
        }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.buf.len() < n {
            return Err(self.corrupt(format!(
                "record truncated: need {n} bytes, have {}",
                self.buf.len()
            )));
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }

    fn u32(&mut self) -> Result<u32> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64(&mut self) -> Result<u64> {
        let mut a = [0u8; 8];
        a.copy_from_slice(self.take(8)?);
        Ok(u64::from_be_bytes(a))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(key: &str, value: &str, rev: u64) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: Bytes::from(value.to_string()),
            create_revision: 1,
            mod_revision: rev,
            version: rev,
        }
    }

    #[test]
    fn kv_round_trips() {
        let k = kv("/a", "hello", 7);
        let raw = encode_kv(&k);
        assert_eq!(decode_kv(&kv_key("/a"), &raw).unwrap(), k);
        assert_eq!(decode_log_key(&log_key(77)).unwrap(), 77);
    }

    #[test]
    fn event_round_trips_with_and_without_entries() {
        for (value, prev) in [
            (Some(kv("/k", "new", 3)), Some(kv("/k", "old", 2))),
            (None, Some(kv("/k", "old", 2))),
            (Some(kv("/k", "", 1)), None),
        ] {
            let ev = Event {
                kind: if value.is_some() {
                    EventKind::Put
                } else {
                    EventKind::Delete
                },
                revision: 3,
                key: "/k".into(),
                value,
                prev,
            };
            let raw = encode_event(&ev, 42);
            assert_eq!(decode_event(3, &raw).unwrap(), (ev, 42));
        }
    }

    #[test]
    fn truncated_records_are_errors_not_panics() {
        let ev = Event {
            kind: EventKind::Put,
            revision: 1,
            key: "/k".into(),
            value: Some(kv("/k", "v", 1)),
            prev: None,
        };
        let raw = encode_event(&ev, 1);
        for cut in 0..raw.len() {
            assert!(decode_event(1, &raw[..cut]).is_err(), "cut at {cut}");
        }
        assert!(decode_kv(b"/k", &[0; 10]).is_err());
    }
}
