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
mod v2;
mod v2_protobuf;

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
    /// A custom resource's schema (its CRD's `openAPIV3Schema`).
    pub schema: Option<Value>,
}

impl OpenApiResource {
    /// The description of a served resource.
    pub fn of(r: &crate::api::registry::resources::ResourceInfo) -> Self {
        OpenApiResource {
            group: r.group.to_string(),
            version: r.version.to_string(),
            kind: r.kind.to_string(),
            plural: r.resource.to_string(),
            namespaced: r.namespaced,
            verbs: r.verbs.iter().map(|v| v.to_string()).collect(),
            subresources: r.subresources.iter().map(|s| s.name.to_string()).collect(),
            schema: r.custom.and_then(|c| c.raw_schema.clone()),
        }
    }
}

impl OpenApiResource {
    /// Whether the resource supports `verb`.
    fn has_verb(&self, verb: &str) -> bool {
        self.verbs.iter().any(|v| v == verb)
    }
}

/// The generated documents, as bytes ready to send.
struct Built {
    root_paths: Map<String, Value>,
    documents: BTreeMap<String, (Bytes, String)>,
}

/// The apiserver's OpenAPI v3 documents: the built-ins' built once on first
/// use, the custom resources' again whenever the set of CRDs changes.
pub struct OpenApi {
    resources: Vec<OpenApiResource>,
    built: OnceLock<Built>,
    custom: parking_lot::RwLock<Option<(u64, std::sync::Arc<Built>)>>,
    v2: parking_lot::Mutex<Option<(u64, std::sync::Arc<V2Document>)>>,
}

/// `/openapi/v2` in both encodings, built on first request.
pub struct V2Document {
    /// The Swagger 2.0 JSON.
    pub json: Bytes,
    /// gnostic's `openapi.v2.Document` protobuf.
    pub protobuf: Bytes,
    /// The ETag: a hash of the JSON, quoted.
    pub etag: String,
}

impl OpenApi {
    /// Records the served resources; generation waits for the first request.
    pub fn new(resources: Vec<OpenApiResource>) -> Self {
        Self {
            resources,
            built: OnceLock::new(),
            custom: parking_lot::RwLock::new(None),
            v2: parking_lot::Mutex::new(None),
        }
    }

    /// Body of `GET /openapi/v3`: each group/version path with its hash-pinned URL.
    pub fn root(&self, custom: &crate::api::custom::CustomResources) -> Bytes {
        let mut paths = self.built().root_paths.clone();
        paths.extend(self.custom_built(custom).root_paths.clone());
        let root = serde_json::to_vec(&json!({ "paths": Value::Object(paths) }))
            .unwrap_or_else(|_| b"{\"paths\":{}}".to_vec());
        Bytes::from(root)
    }

    /// The custom resources' documents, rebuilt when the CRDs changed.
    fn custom_built(&self, custom: &crate::api::custom::CustomResources) -> std::sync::Arc<Built> {
        let generation = custom.generation();
        if let Some((g, built)) = self.custom.read().as_ref()
            && *g == generation
        {
            return built.clone();
        }
        let resources: Vec<OpenApiResource> = custom
            .all()
            .iter()
            .map(|r| OpenApiResource::of(r))
            .collect();
        let built = std::sync::Arc::new(build(&resources));
        *self.custom.write() = Some((generation, built.clone()));
        built
    }

    /// Body and hash of `GET /openapi/v3/<path>` (`api/v1`, `apis/apps/v1`); `None` if no
    /// served resource belongs to that group/version. A leading `/`, an `openapi/v3/` prefix
    /// and a `?query` are ignored. The hash is the uppercase hex SHA-512 of the body, as
    /// upstream uses for both the `hash` query parameter and the ETag.
    pub fn document(
        &self,
        path: &str,
        custom: &crate::api::custom::CustomResources,
    ) -> Option<(Bytes, String)> {
        let path = path.split('?').next().unwrap_or_default();
        let path = path.trim_matches('/');
        let path = path.strip_prefix("openapi/v3/").unwrap_or(path);
        self.built()
            .documents
            .get(path)
            .cloned()
            .or_else(|| self.custom_built(custom).documents.get(path).cloned())
    }

    /// `GET /openapi/v2`: built from the v3 documents when first asked for
    /// and again after the CRDs change. The lock is held while building, so
    /// concurrent first requests build it once.
    pub fn v2(&self, custom: &crate::api::custom::CustomResources) -> std::sync::Arc<V2Document> {
        let generation = custom.generation();
        let mut cached = self.v2.lock();
        if let Some((g, doc)) = cached.as_ref()
            && *g == generation
        {
            return doc.clone();
        }
        let custom_built = self.custom_built(custom);
        let documents: Vec<Value> = self
            .built()
            .documents
            .values()
            .chain(custom_built.documents.values())
            .filter_map(|(body, _)| serde_json::from_slice(body).ok())
            .collect();
        let doc = v2::from_v3(&documents);
        drop(documents);
        let json = serde_json::to_vec(&doc).unwrap_or_default();
        let etag = format!("\"{}\"", hex_sha512(&json));
        let built = std::sync::Arc::new(V2Document {
            protobuf: Bytes::from(v2_protobuf::encode(&doc)),
            json: Bytes::from(json),
            etag,
        });
        *cached = Some((generation, built.clone()));
        built
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
    Built {
        root_paths,
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
