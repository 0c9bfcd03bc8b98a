//! Objects of any kind decoded as metadata only: what the garbage
//! collector's graph and other ownership-only consumers need.
//!
//! kube's `DynamicObject` keeps every other field as a `serde_json::Value`,
//! so each pod event allocated its whole spec and status just to read the
//! ownerReferences. [`ObjectMetadata`] keeps `apiVersion`/`kind` (so a
//! consumer can still drop events of a foreign kind) and `metadata`; serde
//! skips the rest of the document without allocating it. On the wire it is
//! an ordinary watch of full objects, which any apiserver serves.

use std::borrow::Cow;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::core::{ApiResource, DynamicResourceScope, Resource, TypeMeta};
use serde::{Deserialize, Serialize};

/// An object of a kind known at run time, with only its type and metadata.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub struct ObjectMetadata {
    /// `apiVersion` and `kind`, when the server sent them.
    #[serde(flatten, default)]
    pub types: Option<TypeMeta>,
    /// The object's metadata.
    #[serde(default)]
    pub metadata: ObjectMeta,
}

impl Resource for ObjectMetadata {
    type DynamicType = ApiResource;
    type Scope = DynamicResourceScope;

    fn group(dt: &ApiResource) -> Cow<'_, str> {
        dt.group.as_str().into()
    }

    fn version(dt: &ApiResource) -> Cow<'_, str> {
        dt.version.as_str().into()
    }

    fn kind(dt: &ApiResource) -> Cow<'_, str> {
        dt.kind.as_str().into()
    }

    fn api_version(dt: &ApiResource) -> Cow<'_, str> {
        dt.api_version.as_str().into()
    }

    fn plural(dt: &ApiResource) -> Cow<'_, str> {
        dt.plural.as_str().into()
    }

    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_type_and_metadata_and_skips_the_rest() {
        let pod = serde_json::json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "uid": "u", "ownerReferences": [
                {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "uid": "r"}]},
            "spec": {"containers": [{"name": "c", "image": "i"}]},
            "status": {"phase": "Running"},
        });
        let o: ObjectMetadata = serde_json::from_value(pod).unwrap();
        assert_eq!(o.types.as_ref().map(|t| t.kind.as_str()), Some("Pod"));
        assert_eq!(o.metadata.owner_references.unwrap()[0].name, "rs");
        let bare: ObjectMetadata = serde_json::from_str(r#"{"metadata":{"name":"x"}}"#).unwrap();
        assert!(bare.types.is_none());
    }
}
