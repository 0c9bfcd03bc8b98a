//! OpenAPI v3 documents for the apiserver: `GET /openapi/v3` and `GET /openapi/v3/<gv>`.
//!
//! Owns turning the registry's list of served resources into one OpenAPI 3.0 document per
//! group/version, shaped like upstream's so that kubectl can use it: `kubectl explain` finds the
//! kind through the `x-kubernetes-group-version-kind` of the resource's operations and schemas,
//! and `kubectl apply --validate=strict` (and client-side apply's strategic-merge-patch
//! computation) read the PATCH operations' query parameters, request content types and the
//! schemas' `x-kubernetes-patch-*` extensions.
//!
//! Schemas come from `k8s-openapi` (Kubernetes 1.37, via its `schemars` feature), post-processed
//! with the list/map/patch markers `k8s-openapi` drops (see `markers`). Kinds unknown to
//! `k8s-openapi` (custom resources) get a permissive schema that preserves unknown fields.
//!
//! Design: generation is lazy (first request) and done once; each group/version is generated
//! with its own schemars generator, serialized, hashed and then dropped, so only the serialized
//! bytes stay resident (memory matters more than the one-off cost). Nothing here fails on input:
//! unknown paths are `None`, unknown kinds get the generic schema.

mod document;
mod kinds;
mod markers;
mod params;
mod paths;
mod schemas;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::OnceLock;

use bytes::Bytes;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha512};

/// One served resource, described by the apiserver's registry.
#[derive(Clone, Debug)]
pub struct OpenApiResource {
    /// API group; `""` for the core group.
    pub group: String,
    /// API version, e.g. `v1`.
    pub version: String,
    /// Kind, e.g. `Pod`.
    pub kind: String,
    /// Plural resource name used in URLs, e.g. `pods`.
    pub plural: String,
    /// Whether the resource lives inside namespaces.
    pub namespaced: bool,
    /// Supported verbs: get list watch create update patch delete deletecollection.
    pub verbs: Vec<String>,
    /// Served subresources, e.g. `status`, `scale`.
    pub subresources: Vec<String>,
}

impl OpenApiResource {
    /// Whether the resource supports `verb`.
    fn has_verb(&self, verb: &str) -> bool {
        self.verbs.iter().any(|v| v == verb)
    }
}

/// The generated documents, as bytes ready to send.
struct Built {
    root: Bytes,
    documents: BTreeMap<String, (Bytes, String)>,
}

/// The apiserver's OpenAPI v3 documents: built once on first use, then served from memory.
pub struct OpenApi {
    resources: Vec<OpenApiResource>,
    built: OnceLock<Built>,
}

impl OpenApi {
    /// Records the served resources; generation waits for the first request.
    pub fn new(resources: Vec<OpenApiResource>) -> Self {
        Self {
            resources,
            built: OnceLock::new(),
        }
    }

    /// Body of `GET /openapi/v3`: each group/version path with its hash-pinned URL.
    pub fn root(&self) -> Bytes {
        self.built().root.clone()
    }

    /// Body and hash of `GET /openapi/v3/<path>` (`api/v1`, `apis/apps/v1`); `None` if no
    /// served resource belongs to that group/version. A leading `/`, an `openapi/v3/` prefix
    /// and a `?query` are ignored. The hash is the uppercase hex SHA-512 of the body, as
    /// upstream uses for both the `hash` query parameter and the ETag.
    pub fn document(&self, path: &str) -> Option<(Bytes, String)> {
        let path = path.split('?').next().unwrap_or_default();
        let path = path.trim_matches('/');
        let path = path.strip_prefix("openapi/v3/").unwrap_or(path);
        self.built().documents.get(path).cloned()
    }

    fn built(&self) -> &Built {
        self.built.get_or_init(|| build(&self.resources))
    }
}

/// URL path (without `/openapi/v3/`) of a group/version's document.
fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

fn build(resources: &[OpenApiResource]) -> Built {
    let mut by_gv: BTreeMap<String, Vec<&OpenApiResource>> = BTreeMap::new();
    for resource in resources {
        let key = gv_path(&resource.group, &resource.version);
        let entry = by_gv.entry(key).or_default();
        if !entry.iter().any(|r| r.plural == resource.plural) {
            entry.push(resource);
        }
    }
    let mut documents = BTreeMap::new();
    let mut root_paths = Map::new();
    for (path, members) in by_gv {
        // Serializing `Value`s cannot fail (all keys are strings); skip the GV if it ever did.
        let Ok(body) = document::build(&members) else {
            continue;
        };
        let hash = hex_sha512(&body);
        let url = format!("/openapi/v3/{path}?hash={hash}");
        root_paths.insert(path.clone(), json!({ "serverRelativeURL": url }));
        documents.insert(path, (Bytes::from(body), hash));
    }
    let root = serde_json::to_vec(&json!({ "paths": Value::Object(root_paths) }))
        .unwrap_or_else(|_| b"{\"paths\":{}}".to_vec());
    Built {
        root: Bytes::from(root),
        documents,
    }
}

/// Uppercase hex SHA-512, the format upstream uses for OpenAPI v3 hashes.
fn hex_sha512(data: &[u8]) -> String {
    let digest = Sha512::digest(data);
    let mut out = String::with_capacity(digest.len() * 2);
    for byte in digest {
        // Writing to a String cannot fail.
        let _ = write!(out, "{byte:02X}");
    }
    out
}
