//! Assembles one group/version's OpenAPI 3.0 document from its resources.
//!
//! Registers each resource's kind, list kind and subresource bodies in a fresh `SchemaSet`,
//! writes their paths, and wraps both in the document envelope upstream serves. Subresources
//! without an object body (log, exec, attach, portforward, proxy) or unknown to kelp are not
//! described. Nothing here fails.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{DeleteOptions, Patch, Status};
use serde_json::{Map, Value, json};

use super::OpenApiResource;
use super::paths::{self, MetaSchemas, SubMethods, Subresource, Target};
use super::schemas::{Gvk, SchemaSet};

/// Kubernetes version whose schemas `k8s-openapi` provides (its `latest` feature).
pub(crate) const KUBERNETES_VERSION: &str = "v1.37.0";

/// The serialized document for the resources of one group/version.
///
/// Written piecewise (one resource's paths, then one schema at a time) rather than as one
/// `Value` tree, so the peak memory is the schema set plus the output instead of the whole
/// document twice over.
pub(crate) fn build(resources: &[&OpenApiResource]) -> Result<Vec<u8>, serde_json::Error> {
    let mut set = SchemaSet::new();
    let meta = MetaSchemas {
        status: set.meta::<Status>(),
        delete_options: set.meta::<DeleteOptions>(),
        patch: set.meta::<Patch>(),
    };
    let targets: Vec<Target<'_>> = resources.iter().map(|r| target(&mut set, r)).collect();
    let mut out = Vec::new();
    out.extend_from_slice(b"{\"openapi\":\"3.0.0\",\"info\":");
    serde_json::to_writer(
        &mut out,
        &json!({ "title": "Kubernetes", "version": KUBERNETES_VERSION }),
    )?;
    out.extend_from_slice(b",\"paths\":{");
    let mut first = true;
    for target in &targets {
        let mut paths = Map::new();
        paths::add(&mut paths, target, &meta);
        write_entries(&mut out, paths, &mut first)?;
    }
    out.extend_from_slice(b"},\"components\":{\"schemas\":{");
    write_entries(&mut out, set.finish(), &mut { true })?;
    out.extend_from_slice(b"}}}");
    out.shrink_to_fit();
    Ok(out)
}

/// Appends `"key":value` members of a JSON object, consuming (and so freeing) the map.
fn write_entries(
    out: &mut Vec<u8>,
    entries: Map<String, Value>,
    first: &mut bool,
) -> Result<(), serde_json::Error> {
    for (key, value) in entries {
        if !std::mem::take(first) {
            out.push(b',');
        }
        serde_json::to_writer(&mut *out, &key)?;
        out.push(b':');
        serde_json::to_writer(&mut *out, &value)?;
    }
    Ok(())
}

/// Registers one resource's schemas and describes its paths.
fn target<'a>(set: &mut SchemaSet, resource: &'a OpenApiResource) -> Target<'a> {
    let gvk = Gvk::new(&resource.group, &resource.version, &resource.kind);
    let kind = match &resource.schema {
        Some(schema) => set.custom_kind(&gvk, schema),
        None => set.kind(&gvk),
    };
    let list = set.list(&gvk, &kind.name);
    let subresources = resource
        .subresources
        .iter()
        .filter_map(|name| subresource(set, &gvk, &kind.name, name))
        .collect();
    Target {
        resource,
        gvk,
        schema: kind.name,
        list,
        strategic_merge: kind.builtin,
        subresources,
    }
}

/// Describes a subresource's body, registering its schema; `None` for subresources without an
/// object body.
fn subresource(set: &mut SchemaSet, parent: &Gvk, schema: &str, name: &str) -> Option<Subresource> {
    let (gvk, methods) = match name {
        "status" | "ephemeralcontainers" | "resize" | "approval" => {
            (parent.clone(), SubMethods::ReadWrite)
        }
        "finalize" => (parent.clone(), SubMethods::ReplaceOnly),
        "scale" => (
            Gvk::new("autoscaling", "v1", "Scale"),
            SubMethods::ReadWrite,
        ),
        "eviction" => (Gvk::new("policy", "v1", "Eviction"), SubMethods::CreateOnly),
        "binding" => (Gvk::new("", "v1", "Binding"), SubMethods::CreateOnly),
        "token" => (
            Gvk::new("authentication.k8s.io", "v1", "TokenRequest"),
            SubMethods::CreateOnly,
        ),
        _ => return None,
    };
    let schema = if gvk == *parent {
        schema.to_owned()
    } else {
        set.kind(&gvk).name
    };
    Some(Subresource {
        name: name.to_owned(),
        gvk,
        schema,
        methods,
    })
}
