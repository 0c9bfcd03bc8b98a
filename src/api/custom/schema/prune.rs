//! Pruning of unknown fields (upstream `pruning.PruneWithOptions`).
//!
//! Fields the schema does not specify are dropped unless they sit under
//! `x-kubernetes-preserve-unknown-fields`; `apiVersion`, `kind` and
//! `metadata` of embedded resources (and the object root, which is one) are
//! left to the ObjectMeta handling. The returned paths are what strict field
//! validation reports as `unknown field "spec.foo"`.

use super::structural::Node;
use serde_json::Value;

const META_FIELDS: [&str; 3] = ["apiVersion", "kind", "metadata"];

// The JSON fields of metav1.ObjectMeta; anything else in an embedded
// resource's metadata is dropped, as upstream's ObjectMeta coercion does.
const OBJECT_META_FIELDS: [&str; 15] = [
    "name",
    "generateName",
    "namespace",
    "selfLink",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "labels",
    "annotations",
    "ownerReferences",
    "finalizers",
    "managedFields",
];

struct Ctx {
    parent: String,
    unknown: Vec<String>,
}

impl Ctx {
    fn record(&mut self, k: &str) {
        self.unknown.push(format!("{}.{}", self.parent, k));
    }
}

pub(crate) fn prune_root(obj: &mut Value, s: &Node) -> Vec<String> {
    prune_value(obj, s, true)
}

/// Prunes `obj` against `s`; `resource_root` treats `s` as an embedded
/// resource. Returns the sorted unknown field paths.
pub(crate) fn prune_value(obj: &mut Value, s: &Node, resource_root: bool) -> Vec<String> {
    let mut ctx = Ctx {
        parent: String::new(),
        unknown: Vec::new(),
    };
    let root_embedded = resource_root || s.embedded_resource;
    prune(obj, Some(s), root_embedded, &mut ctx);
    ctx.unknown.sort();
    ctx.unknown
}

fn embedded(s: &Node, root_embedded: bool) -> bool {
    s.embedded_resource || root_embedded
}

// Embedded resources below the object root get their metadata reduced to
// ObjectMeta's fields (the root's metadata is the caller's business).
fn coerce_metadata(m: &mut serde_json::Map<String, Value>, s: &Node, at_root: bool, ctx: &mut Ctx) {
    if at_root || !s.embedded_resource {
        return;
    }
    let Some(Value::Object(meta)) = m.get_mut("metadata") else {
        return;
    };
    let unknown: Vec<String> = meta
        .keys()
        .filter(|k| !OBJECT_META_FIELDS.contains(&k.as_str()))
        .cloned()
        .collect();
    for k in unknown {
        ctx.unknown.push(format!("{}.metadata.{}", ctx.parent, k));
        meta.remove(&k);
    }
}

fn prune(x: &mut Value, s: Option<&Node>, root_embedded: bool, ctx: &mut Ctx) {
    if let Some(s) = s
        && s.preserve_unknown_fields
    {
        skip_prune(x, s, root_embedded, ctx);
        return;
    }
    let orig = ctx.parent.len();
    match x {
        Value::Object(m) => {
            let Some(s) = s else {
                let keys: Vec<String> = m.keys().cloned().collect();
                for k in keys {
                    ctx.record(&k);
                }
                m.clear();
                return;
            };
            let emb = embedded(s, root_embedded);
            coerce_metadata(m, s, root_embedded, ctx);
            let mut drop = Vec::new();
            for (k, v) in m.iter_mut() {
                if emb && META_FIELDS.contains(&k.as_str()) {
                    continue;
                }
                if let Some(prop) = s.properties.get(k) {
                    ctx.parent.push('.');
                    ctx.parent.push_str(k);
                    prune(v, Some(prop), false, ctx);
                    ctx.parent.truncate(orig);
                } else if s.additional_properties.is_some()
                    || s.additional_properties_bool.is_some()
                {
                    ctx.parent.push('.');
                    ctx.parent.push_str(k);
                    prune(v, s.additional_properties.as_deref(), false, ctx);
                    ctx.parent.truncate(orig);
                } else {
                    if !META_FIELDS.contains(&k.as_str()) || !ctx.parent.is_empty() {
                        ctx.record(k);
                    }
                    drop.push(k.clone());
                }
            }
            for k in drop {
                m.remove(&k);
            }
        }
        Value::Array(a) => {
            let items = s.and_then(|s| s.items.as_deref());
            for (i, v) in a.iter_mut().enumerate() {
                ctx.parent.push_str(&format!("[{}]", i));
                prune(v, items, false, ctx);
                ctx.parent.truncate(orig);
            }
        }
        _ => {}
    }
}

fn skip_prune(x: &mut Value, s: &Node, root_embedded: bool, ctx: &mut Ctx) {
    let orig = ctx.parent.len();
    match x {
        Value::Object(m) => {
            let emb = embedded(s, root_embedded);
            coerce_metadata(m, s, root_embedded, ctx);
            for (k, v) in m.iter_mut() {
                if emb && META_FIELDS.contains(&k.as_str()) {
                    continue;
                }
                if let Some(prop) = s.properties.get(k) {
                    ctx.parent.push('.');
                    ctx.parent.push_str(k);
                    prune(v, Some(prop), false, ctx);
                    ctx.parent.truncate(orig);
                } else if s.additional_properties.is_some()
                    || s.additional_properties_bool.is_some()
                {
                    ctx.parent.push('.');
                    ctx.parent.push_str(k);
                    prune(v, s.additional_properties.as_deref(), false, ctx);
                    ctx.parent.truncate(orig);
                }
            }
        }
        Value::Array(a) => {
            if let Some(items) = s.items.as_deref() {
                for (i, v) in a.iter_mut().enumerate() {
                    ctx.parent.push_str(&format!("[{}]", i));
                    skip_prune(v, items, false, ctx);
                    ctx.parent.truncate(orig);
                }
            }
        }
        _ => {}
    }
}
