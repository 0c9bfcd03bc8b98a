//! ControllerRevision history shared by the DaemonSet and StatefulSet controllers (upstream
//! `pkg/controller/history` and the controllers' `getPatch`).
//!
//! A revision stores a strategic-merge patch that replaces `spec.template`; revisions are
//! compared by that data (parsed JSON, so key order and whitespace do not matter) rather than
//! by name, because names embed a hash that changes with the collision count. Hashes use
//! FNV-32 over the serialized data plus the collision count, encoded with upstream's
//! `SafeEncodeString` alphabet, so names look like upstream's (`web-7b9c6d5f4`) although the
//! exact values differ (upstream hashes Go structs). Creation handles name collisions the
//! upstream way: a different revision under the same name bumps the collision count and
//! retries with a new name.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::ControllerRevision;
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::runtime::RawExtension;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

use super::error::{ControllerError, is_already_exists};

/// The label holding a revision's hash (DaemonSet pods: the hash; StatefulSet pods: the
/// revision name).
pub const REVISION_HASH_LABEL: &str = "controller-revision-hash";

const SAFE_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
const FNV_OFFSET: u32 = 0x811c_9dc5;
const FNV_PRIME: u32 = 0x0100_0193;

/// FNV-1 (32 bit), as Go's `fnv.New32`.
pub fn fnv32(bytes: &[u8]) -> u32 {
    bytes
        .iter()
        .fold(FNV_OFFSET, |h, b| h.wrapping_mul(FNV_PRIME) ^ u32::from(*b))
}

/// FNV-1a (32 bit), as Go's `fnv.New32a`.
pub fn fnv32a(bytes: &[u8]) -> u32 {
    bytes.iter().fold(FNV_OFFSET, |h, b| {
        (h ^ u32::from(*b)).wrapping_mul(FNV_PRIME)
    })
}

/// Upstream `rand.SafeEncodeString`: maps each byte onto a vowel-free alphabet so hashes
/// cannot spell words.
pub fn safe_encode(s: &str) -> String {
    s.bytes()
        .map(|b| char::from(SAFE_ALPHABET[usize::from(b) % SAFE_ALPHABET.len()]))
        .collect()
}

/// The hash of `data` with the collision count mixed in, safely encoded.
pub fn hash_value(data: &Value, collision_count: i32, one_a: bool) -> String {
    let mut bytes = data.to_string().into_bytes();
    if collision_count != 0 {
        bytes.extend_from_slice(collision_count.to_string().as_bytes());
    }
    let sum = if one_a { fnv32a(&bytes) } else { fnv32(&bytes) };
    safe_encode(&sum.to_string())
}

/// Upstream `ControllerRevisionName`: `<owner>-<hash>`, owner truncated to 223 bytes.
pub fn revision_name(owner: &str, hash: &str) -> String {
    let mut prefix = owner.to_string();
    if prefix.len() > 223 {
        let mut cut = 223;
        while !prefix.is_char_boundary(cut) {
            cut -= 1;
        }
        prefix.truncate(cut);
    }
    format!("{prefix}-{hash}")
}

/// The revision data for a template: a patch that replaces `spec.template`.
pub fn template_patch(template: &PodTemplateSpec) -> Result<Value, ControllerError> {
    let mut t = serde_json::to_value(template).map_err(|source| ControllerError::Json {
        what: "pod template",
        source,
    })?;
    if let Some(obj) = t.as_object_mut() {
        obj.insert("$patch".into(), json!("replace"));
    }
    Ok(json!({ "spec": { "template": t } }))
}

/// Whether a revision stores exactly `data`.
pub fn has_data(revision: &ControllerRevision, data: &Value) -> bool {
    &revision.data.0 == data
}

/// The revision number, 0 when unset.
pub fn number(revision: &ControllerRevision) -> i64 {
    revision.revision.unwrap_or(0)
}

/// Upstream `SortControllerRevisions` order: by number, then creation time, then name.
pub fn by_number(a: &ControllerRevision, b: &ControllerRevision) -> Ordering {
    number(a)
        .cmp(&number(b))
        .then_with(|| {
            let ca = a.metadata.creation_timestamp.as_ref().map(|t| t.0);
            let cb = b.metadata.creation_timestamp.as_ref().map(|t| t.0);
            ca.cmp(&cb)
        })
        .then_with(|| a.metadata.name.cmp(&b.metadata.name))
}

/// What a new revision consists of, before it is named.
#[derive(Debug, Clone)]
pub struct RevisionSpec {
    /// Name of the owner (the name prefix).
    pub owner_name: String,
    /// Namespace of the owner.
    pub namespace: String,
    /// Controller reference to the owner.
    pub owner_ref: OwnerReference,
    /// Labels (the template's); the hash label is added.
    pub labels: BTreeMap<String, String>,
    /// Annotations (the owner's).
    pub annotations: BTreeMap<String, String>,
    /// The revision data (see [`template_patch`]).
    pub data: Value,
    /// The revision number.
    pub number: i64,
    /// Whether to hash with FNV-1a (DaemonSet) or FNV-1 (StatefulSet).
    pub fnv1a: bool,
}

impl RevisionSpec {
    /// The spec of revision `number` of a workload with a pod template
    /// (DaemonSet, StatefulSet): named and owned after it, labelled like its
    /// template, annotated like the workload.
    pub fn for_workload<K: kube::Resource<DynamicType = ()>>(
        owner: &K,
        kind: &'static str,
        template: &PodTemplateSpec,
        data: Value,
        number: i64,
        fnv1a: bool,
    ) -> Result<Self, ControllerError> {
        let meta = owner.meta();
        Ok(Self {
            owner_name: meta.name.clone().unwrap_or_default(),
            namespace: meta.namespace.clone().unwrap_or_default(),
            owner_ref: super::ownership::controller_ref(owner).ok_or(
                ControllerError::MissingField {
                    kind,
                    field: "metadata.uid",
                },
            )?,
            labels: template
                .metadata
                .as_ref()
                .and_then(|m| m.labels.clone())
                .unwrap_or_default(),
            annotations: meta.annotations.clone().unwrap_or_default(),
            data,
            number,
            fnv1a,
        })
    }

    fn build(&self, collision_count: i32) -> ControllerRevision {
        let hash = hash_value(&self.data, collision_count, self.fnv1a);
        let mut labels = self.labels.clone();
        labels.insert(REVISION_HASH_LABEL.into(), hash.clone());
        ControllerRevision {
            metadata: ObjectMeta {
                name: Some(revision_name(&self.owner_name, &hash)),
                namespace: Some(self.namespace.clone()),
                labels: Some(labels),
                annotations: (!self.annotations.is_empty()).then(|| self.annotations.clone()),
                owner_references: Some(vec![self.owner_ref.clone()]),
                ..Default::default()
            },
            data: RawExtension(self.data.clone()),
            revision: Some(self.number),
        }
    }
}

/// Creates the revision, stepping the collision count past names taken by other data.
///
/// Returns the stored revision (possibly a pre-existing identical one).
pub async fn create_revision(
    api: &Api<ControllerRevision>,
    spec: &RevisionSpec,
    collision_count: &mut i32,
) -> Result<ControllerRevision, ControllerError> {
    for _ in 0..100 {
        let revision = spec.build(*collision_count);
        match api.create(&PostParams::default(), &revision).await {
            Ok(created) => return Ok(created),
            Err(e) if is_already_exists(&e) => {
                let name = revision.metadata.name.clone().unwrap_or_default();
                let existing = api.get(&name).await?;
                if has_data(&existing, &spec.data) {
                    return Ok(existing);
                }
                *collision_count = collision_count.saturating_add(1);
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(ControllerError::RevisionCollision(spec.owner_name.clone()))
}

/// Sets a revision's number (rolling back to an older template reuses its revision).
pub async fn renumber(
    api: &Api<ControllerRevision>,
    revision: &ControllerRevision,
    new_number: i64,
) -> Result<ControllerRevision, ControllerError> {
    let name = revision.metadata.name.clone().unwrap_or_default();
    let patch = Patch::Merge(json!({ "revision": new_number }));
    Ok(api.patch(&name, &PatchParams::default(), &patch).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv_variants_match_reference_values() {
        assert_eq!(fnv32(b""), 0x811c_9dc5);
        assert_eq!(fnv32a(b"a"), 0xe40c_292c);
        assert_eq!(fnv32(b"a"), 0x050c_5d7e);
    }

    #[test]
    fn hashes_use_the_safe_alphabet_and_change_with_collisions() {
        let data = json!({"spec": {"template": {"$patch": "replace"}}});
        let h0 = hash_value(&data, 0, false);
        let h1 = hash_value(&data, 1, false);
        assert_ne!(h0, h1);
        assert!(h0.bytes().all(|b| SAFE_ALPHABET.contains(&b)));
        assert_eq!(revision_name("web", &h0), format!("web-{h0}"));
    }

    #[test]
    fn template_patch_replaces_the_template() {
        let t = PodTemplateSpec::default();
        let p = template_patch(&t).expect("serializable");
        assert_eq!(p["spec"]["template"]["$patch"], json!("replace"));
    }
}
