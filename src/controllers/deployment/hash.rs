//! The `pod-template-hash` of a Deployment's pod template and the
//! template equality that decides which ReplicaSet is "new".
//!
//! Upstream hashes the Go struct dump of the template with FNV-1a (32 bit),
//! appends the collision count, and renders the decimal sum through
//! `rand.SafeEncodeString`'s vowel-free alphabet. The Go struct dump cannot
//! be reproduced from JSON, so this hashes a canonical JSON rendering
//! (sorted keys, no insignificant whitespace) instead: the value differs
//! from upstream's but is stable across restarts, processes and key order,
//! and has the same shape (`[bcdfghjklmnpqrstvwxz2456789]{1,10}`). Which
//! ReplicaSet is new never depends on the hash, only on template equality,
//! so ReplicaSets created by another controller are still recognised.

use k8s_openapi::api::core::v1::PodTemplateSpec;
use serde_json::Value;

use crate::controllers::error::ControllerError;

/// The label carrying the template hash on ReplicaSets and their pods.
pub const POD_TEMPLATE_HASH_LABEL: &str = "pod-template-hash";

const SAFE_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// 32-bit FNV-1a, as Go's `hash/fnv.New32a`.
#[derive(Debug, Clone, Copy)]
pub struct Fnv32a(u32);

impl Default for Fnv32a {
    fn default() -> Self {
        Self(0x811c_9dc5)
    }
}

impl Fnv32a {
    /// Feeds `bytes` into the hash.
    pub fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u32::from(*b);
            self.0 = self.0.wrapping_mul(0x0100_0193);
        }
    }

    /// The hash value so far.
    pub fn sum(&self) -> u32 {
        self.0
    }
}

/// Upstream's `rand.SafeEncodeString`: maps every character onto an
/// alphabet without vowels (no accidental words) or look-alike digits.
pub fn safe_encode(s: &str) -> String {
    s.chars()
        .map(|c| char::from(SAFE_ALPHABET[(c as usize) % SAFE_ALPHABET.len()]))
        .collect()
}

/// The `pod-template-hash` for `template` with the deployment's
/// `status.collisionCount` (upstream's `controller.ComputeHash`).
pub fn compute_hash(
    template: &PodTemplateSpec,
    collision_count: Option<i32>,
) -> Result<String, ControllerError> {
    let value = serde_json::to_value(template).map_err(|source| ControllerError::Encode {
        what: "pod template",
        source,
    })?;
    let mut hasher = Fnv32a::default();
    write_canonical(&value, &mut hasher);
    if let Some(count) = collision_count {
        // Upstream writes the count little-endian into an 8-byte buffer.
        let mut bytes = [0u8; 8];
        bytes[..4].copy_from_slice(&count.to_le_bytes());
        hasher.write(&bytes);
    }
    Ok(safe_encode(&hasher.sum().to_string()))
}

fn write_canonical(value: &Value, out: &mut Fnv32a) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.write(b"{");
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.write(b",");
                }
                out.write(Value::String(key.clone()).to_string().as_bytes());
                out.write(b":");
                if let Some(v) = map.get(key) {
                    write_canonical(v, out);
                }
            }
            out.write(b"}");
        }
        Value::Array(items) => {
            out.write(b"[");
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.write(b",");
                }
                write_canonical(item, out);
            }
            out.write(b"]");
        }
        scalar => out.write(scalar.to_string().as_bytes()),
    }
}

/// Whether two templates are equal apart from their `pod-template-hash`
/// label (upstream's `EqualIgnoreHash`). Like upstream's semantic equality,
/// absent and empty lists or maps compare equal.
pub fn equal_ignore_hash(a: &PodTemplateSpec, b: &PodTemplateSpec) -> bool {
    match (comparable(a), comparable(b)) {
        (Some(a), Some(b)) => a == b,
        _ => false,
    }
}

fn comparable(template: &PodTemplateSpec) -> Option<Value> {
    let mut value = serde_json::to_value(template).ok()?;
    if let Some(labels) = value
        .pointer_mut("/metadata/labels")
        .and_then(Value::as_object_mut)
    {
        labels.remove(POD_TEMPLATE_HASH_LABEL);
    }
    Some(prune_empty(value))
}

/// Drops nulls and empty lists/maps, recursively.
fn prune_empty(value: Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| (k, prune_empty(v)))
                .filter(|(_, v)| !is_empty(v))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(prune_empty).collect()),
        other => other,
    }
}

fn is_empty(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Object(m) => m.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn template(v: Value) -> PodTemplateSpec {
        serde_json::from_value(v).unwrap_or_default()
    }

    fn web(image: &str) -> PodTemplateSpec {
        template(json!({
            "metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "c", "image": image}]}
        }))
    }

    #[test]
    fn fnv32a_matches_reference_vectors() {
        let hash = |s: &str| {
            let mut h = Fnv32a::default();
            h.write(s.as_bytes());
            h.sum()
        };
        assert_eq!(hash(""), 0x811c_9dc5);
        assert_eq!(hash("a"), 0xe40c_292c);
        assert_eq!(hash("foobar"), 0xbf9c_f968);
    }

    #[test]
    fn safe_encoding_uses_upstream_alphabet() {
        // '0' is 48 and 48 % 27 = 21 -> '4'; '9' is 57 -> 57 % 27 = 3 -> 'f'.
        assert_eq!(safe_encode("09"), "4f");
        let h = compute_hash(&web("nginx:1"), None).unwrap_or_default();
        assert!(!h.is_empty() && h.len() <= 10);
        assert!(h.bytes().all(|b| SAFE_ALPHABET.contains(&b)));
    }

    #[test]
    fn hash_is_stable_and_sensitive_to_template_and_collisions() {
        let a = compute_hash(&web("nginx:1"), None).ok();
        assert_eq!(a, compute_hash(&web("nginx:1"), None).ok());
        assert_ne!(a, compute_hash(&web("nginx:2"), None).ok());
        assert_ne!(a, compute_hash(&web("nginx:1"), Some(1)).ok());
        assert_ne!(
            compute_hash(&web("nginx:1"), Some(1)).ok(),
            compute_hash(&web("nginx:1"), Some(2)).ok()
        );
    }

    #[test]
    fn hash_ignores_key_order_of_the_source_json() {
        let a = template(
            json!({"metadata": {"labels": {"a": "1", "b": "2"}}, "spec": {"containers": []}}),
        );
        let b = template(
            json!({"spec": {"containers": []}, "metadata": {"labels": {"b": "2", "a": "1"}}}),
        );
        assert_eq!(compute_hash(&a, None).ok(), compute_hash(&b, None).ok());
    }

    #[test]
    fn equality_ignores_the_hash_label_and_empty_collections() {
        let mut hashed = web("nginx:1");
        if let Some(labels) = hashed.metadata.as_mut().and_then(|m| m.labels.as_mut()) {
            labels.insert(POD_TEMPLATE_HASH_LABEL.into(), "abc".into());
        }
        assert!(equal_ignore_hash(&hashed, &web("nginx:1")));
        assert!(!equal_ignore_hash(&hashed, &web("nginx:2")));
        let with_empty = template(json!({
            "metadata": {"labels": {"app": "web"}, "annotations": {}},
            "spec": {"containers": [{"name": "c", "image": "nginx:1", "env": []}]}
        }));
        assert!(equal_ignore_hash(&with_empty, &web("nginx:1")));
    }
}
