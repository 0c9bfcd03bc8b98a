//! A cache for answers relayed from the host's resolvers, as CoreDNS's
//! `cache` plugin does in k3s's Corefile: pods ask the same external
//! names over and over (every `ndots:5` search-path miss too), and each
//! miss is a round trip off the node.
//!
//! An answer is kept for the smallest TTL among its records (for a
//! negative answer, the SOA's minimum), at most [`MAX_TTL`], and served
//! with its TTLs counted down and the asker's id. SERVFAIL, truncated and
//! TTL-0 answers are not kept. The cache is bounded by [`MAX_ENTRIES`]:
//! when full, expired entries go, and if none has, nothing new is kept.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RData;
use hickory_proto::serialize::binary::{BinDecodable, BinEncodable};
use parking_lot::Mutex;

/// The longest an answer is kept, seconds.
pub const MAX_TTL: u32 = 300;
/// How long a negative answer without an SOA is kept, seconds.
const NEGATIVE_TTL: u32 = 30;
/// The most answers kept.
pub const MAX_ENTRIES: usize = 10_000;

/// (lower-cased name, type, class) of a question.
type Key = (String, u16, u16);

struct Entry {
    reply: Message,
    stored: Instant,
    ttl: u32,
}

/// Relayed answers by question.
#[derive(Default)]
pub struct RelayCache {
    entries: Mutex<HashMap<Key, Entry>>,
}

fn question_key(message: &Message) -> Option<Key> {
    let [q] = message.queries.as_slice() else {
        return None;
    };
    Some((
        q.name().to_ascii().to_ascii_lowercase(),
        u16::from(q.query_type()),
        u16::from(q.query_class()),
    ))
}

impl RelayCache {
    /// The cached answer to `query` (bytes), with its id and counted-down
    /// TTLs, if one is fresh.
    pub fn get(&self, query: &[u8]) -> Option<Vec<u8>> {
        let request = Message::from_bytes(query).ok()?;
        let key = question_key(&request)?;
        let entries = self.entries.lock();
        let entry = entries.get(&key)?;
        let age = entry.stored.elapsed();
        if age >= Duration::from_secs(u64::from(entry.ttl)) {
            return None;
        }
        let mut reply = entry.reply.clone();
        drop(entries);
        let age = age.as_secs() as u32;
        reply.metadata.id = request.metadata.id;
        for record in reply
            .answers
            .iter_mut()
            .chain(reply.authorities.iter_mut())
            .chain(reply.additionals.iter_mut())
        {
            record.ttl = record.ttl.saturating_sub(age);
        }
        reply.to_bytes().ok()
    }

    /// Keeps `reply` to `query` for as long as its TTLs allow.
    pub fn put(&self, query: &[u8], reply: &[u8]) {
        let (Ok(request), Ok(reply)) = (Message::from_bytes(query), Message::from_bytes(reply))
        else {
            return;
        };
        let (Some(key), Some(ttl)) = (question_key(&request), cacheable_ttl(&reply)) else {
            return;
        };
        if question_key(&reply).as_ref() != Some(&key) {
            return;
        }
        let mut entries = self.entries.lock();
        if entries.len() >= MAX_ENTRIES {
            entries.retain(|_, e| e.stored.elapsed() < Duration::from_secs(u64::from(e.ttl)));
            if entries.len() >= MAX_ENTRIES {
                return;
            }
        }
        entries.insert(
            key,
            Entry {
                reply,
                stored: Instant::now(),
                ttl,
            },
        );
    }

    /// How many answers are kept.
    pub fn len(&self) -> usize {
        self.entries.lock().len()
    }

    /// Whether nothing is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// How long `reply` may be kept, or None if it may not.
fn cacheable_ttl(reply: &Message) -> Option<u32> {
    if reply.metadata.truncation {
        return None;
    }
    let ttl = match reply.metadata.response_code {
        ResponseCode::NoError if !reply.answers.is_empty() => {
            reply.answers.iter().map(|r| r.ttl).min()?
        }
        ResponseCode::NoError | ResponseCode::NXDomain => reply
            .authorities
            .iter()
            .find_map(|r| match &r.data {
                RData::SOA(soa) => Some(r.ttl.min(soa.minimum)),
                _ => None,
            })
            .unwrap_or(NEGATIVE_TTL),
        _ => return None,
    };
    (ttl > 0).then_some(ttl.min(MAX_TTL))
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::{OpCode, Query};
    use hickory_proto::rr::rdata::A;
    use hickory_proto::rr::{Name, Record, RecordType};

    fn query(id: u16, name: &str) -> Vec<u8> {
        let mut q = Message::query();
        q.metadata.id = id;
        q.add_query(Query::query(Name::from_ascii(name).unwrap(), RecordType::A));
        q.to_bytes().unwrap()
    }

    fn reply(id: u16, name: &str, ttl: u32, code: ResponseCode) -> Vec<u8> {
        let mut r = Message::response(id, OpCode::Query);
        r.metadata.response_code = code;
        let n = Name::from_ascii(name).unwrap();
        r.add_query(Query::query(n.clone(), RecordType::A));
        if code == ResponseCode::NoError {
            r.add_answer(Record::from_rdata(n, ttl, RData::A(A::new(192, 0, 2, 1))));
        }
        r.to_bytes().unwrap()
    }

    #[test]
    fn answers_are_served_again_with_the_askers_id_until_they_expire() {
        let cache = RelayCache::default();
        assert_eq!(cache.get(&query(1, "example.com.")), None);
        cache.put(
            &query(1, "example.com."),
            &reply(1, "example.com.", 60, ResponseCode::NoError),
        );
        let hit = Message::from_bytes(&cache.get(&query(7, "EXAMPLE.com.")).unwrap()).unwrap();
        assert_eq!(hit.metadata.id, 7);
        assert_eq!(hit.answers.len(), 1);
        assert!(hit.answers[0].ttl <= 60);
        // Another name or type is another question.
        assert_eq!(cache.get(&query(8, "example.org.")), None);
    }

    #[test]
    fn failures_truncations_and_zero_ttls_are_not_kept_and_ttls_are_capped() {
        let cache = RelayCache::default();
        cache.put(
            &query(1, "a.test."),
            &reply(1, "a.test.", 60, ResponseCode::ServFail),
        );
        cache.put(
            &query(1, "b.test."),
            &reply(1, "b.test.", 0, ResponseCode::NoError),
        );
        let mut truncated =
            Message::from_bytes(&reply(1, "c.test.", 60, ResponseCode::NoError)).unwrap();
        truncated.metadata.truncation = true;
        cache.put(&query(1, "c.test."), &truncated.to_bytes().unwrap());
        // A reply to another question is not kept under this one.
        cache.put(
            &query(1, "d.test."),
            &reply(1, "e.test.", 60, ResponseCode::NoError),
        );
        assert!(cache.is_empty());
        cache.put(
            &query(1, "f.test."),
            &reply(1, "f.test.", 86_400, ResponseCode::NoError),
        );
        assert_eq!(
            cache.entries.lock().values().next().map(|e| e.ttl),
            Some(MAX_TTL)
        );
        // A negative answer without an SOA: the default negative TTL.
        cache.put(
            &query(1, "g.test."),
            &reply(1, "g.test.", 0, ResponseCode::NXDomain),
        );
        assert!(cache.get(&query(2, "g.test.")).is_some());
    }
}
