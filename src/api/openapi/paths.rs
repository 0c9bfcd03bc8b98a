//! The `paths` of a group/version document: upstream's REST operations for each resource.
//!
//! For every resource it writes the collection path (list, create, deletecollection), the item
//! path (read, replace, patch, delete), the cross-namespace list of namespaced resources, and
//! the known subresources, each operation with upstream's operation id, tag,
//! `x-kubernetes-action` and `x-kubernetes-group-version-kind`. kubectl keys on these: `explain`
//! finds a resource's kind through its operations, and `apply` inspects PATCH operations for
//! the `fieldValidation` parameter and the strategic-merge-patch content type. Only verbs the
//! registry lists are written, so the document never promises what the server refuses. Watch
//! paths (`/watch/...`, deprecated upstream) and connect subresources (log, exec, ...) are left
//! out. Nothing here fails.

use serde_json::{Map, Value, json};

use super::OpenApiResource;
use super::params;
use super::schemas::{Gvk, reference};

/// Schema names shared by every resource's operations.
pub(crate) struct MetaSchemas {
    /// `io.k8s.apimachinery.pkg.apis.meta.v1.Status`.
    pub status: String,
    /// `io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions`.
    pub delete_options: String,
    /// `io.k8s.apimachinery.pkg.apis.meta.v1.Patch`.
    pub patch: String,
}

/// A served subresource with an object body.
pub(crate) struct Subresource {
    /// Subresource name, e.g. `status`.
    pub name: String,
    /// Kind of the subresource's body.
    pub gvk: Gvk,
    /// Schema of the body.
    pub schema: String,
    /// Which operations the subresource has.
    pub methods: SubMethods,
}

/// The operations of a subresource.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SubMethods {
    /// GET, PUT and PATCH (as the parent's verbs allow): `status`, `scale`.
    ReadWrite,
    /// PUT only: `finalize`.
    ReplaceOnly,
    /// POST only: `eviction`, `binding`, `token`.
    CreateOnly,
}

/// Everything needed to write one resource's paths.
pub(crate) struct Target<'a> {
    /// The registry's description.
    pub resource: &'a OpenApiResource,
    /// The resource's kind.
    pub gvk: Gvk,
    /// Schema of one object.
    pub schema: String,
    /// Schema of the list kind.
    pub list: String,
    /// Whether PATCH accepts strategic merge patches (built-in kinds, as upstream).
    pub strategic_merge: bool,
    /// Served subresources with object bodies.
    pub subresources: Vec<Subresource>,
}

/// Naming pieces shared by a resource's operation ids and tags.
struct Naming {
    /// `CoreV1`, `AppsV1`, `RbacAuthorizationV1`.
    group_version: String,
    /// `core_v1`, `rbacAuthorization_v1`.
    tag: String,
    /// `Namespaced` for namespaced resources, else empty.
    scope: &'static str,
}

impl Naming {
    fn new(resource: &OpenApiResource) -> Self {
        let group = if resource.group.is_empty() {
            "Core".to_owned()
        } else {
            let trimmed = resource
                .group
                .strip_suffix(".k8s.io")
                .unwrap_or(&resource.group);
            trimmed.split(['.', '-']).map(capitalize).collect()
        };
        let mut tag = group.clone();
        if let Some(first) = tag.get_mut(0..1) {
            first.make_ascii_lowercase();
        }
        Self {
            group_version: format!("{group}{}", capitalize(&resource.version)),
            tag: format!("{tag}_{}", resource.version),
            scope: if resource.namespaced {
                "Namespaced"
            } else {
                ""
            },
        }
    }

    /// `listCoreV1NamespacedPod`, `deleteCoreV1CollectionNamespacedPod`, ...
    fn id(&self, verb: &str, infix: &str, kind: &str, suffix: &str) -> String {
        format!(
            "{verb}{}{infix}{}{kind}{suffix}",
            self.group_version, self.scope
        )
    }
}

fn capitalize(word: &str) -> String {
    let mut chars = word.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// One operation, before it is turned into JSON.
struct Op<'a> {
    id: String,
    description: String,
    action: &'static str,
    gvk: &'a Gvk,
    parameters: Vec<Value>,
    body: Option<Value>,
    responses: Value,
}

impl Op<'_> {
    fn into_value(self, tag: &str) -> Value {
        let mut op = Map::new();
        op.insert("tags".into(), json!([tag]));
        op.insert("description".into(), Value::String(self.description));
        op.insert("operationId".into(), Value::String(self.id));
        if !self.parameters.is_empty() {
            op.insert("parameters".into(), Value::Array(self.parameters));
        }
        if let Some(body) = self.body {
            op.insert("requestBody".into(), body);
        }
        op.insert("responses".into(), self.responses);
        op.insert(
            "x-kubernetes-action".into(),
            Value::String(self.action.into()),
        );
        let gvk = self.gvk.to_value();
        op.insert("x-kubernetes-group-version-kind".into(), gvk);
        Value::Object(op)
    }
}

/// `responses` with the given codes, each returning `schema` as JSON, plus 401.
fn responses(codes: &[(&str, &str)], schema: &str, content_types: &[&str]) -> Value {
    let mut out = Map::new();
    for (code, description) in codes {
        let content: Map<String, Value> = content_types
            .iter()
            .map(|ct| ((*ct).to_owned(), json!({ "schema": reference(schema) })))
            .collect();
        out.insert(
            (*code).to_owned(),
            json!({ "description": description, "content": content }),
        );
    }
    out.insert("401".into(), json!({ "description": "Unauthorized" }));
    Value::Object(out)
}

const OK: (&str, &str) = ("200", "OK");
const CREATED: (&str, &str) = ("201", "Created");
const ACCEPTED: (&str, &str) = ("202", "Accepted");
const JSON: &[&str] = &["application/json"];

fn body(schema: &str) -> Value {
    json!({ "content": { "*/*": { "schema": reference(schema) } }, "required": true })
}

fn patch_body(meta: &MetaSchemas, strategic_merge: bool) -> Value {
    let mut types = vec![
        "application/apply-patch+yaml",
        "application/json-patch+json",
        "application/merge-patch+json",
    ];
    if strategic_merge {
        types.push("application/strategic-merge-patch+json");
    }
    let content: Map<String, Value> = types
        .into_iter()
        .map(|ct| (ct.to_owned(), json!({ "schema": reference(&meta.patch) })))
        .collect();
    json!({ "content": content, "required": true })
}

/// Adds all paths of one resource to `paths`.
pub(crate) fn add(paths: &mut Map<String, Value>, target: &Target<'_>, meta: &MetaSchemas) {
    let resource = target.resource;
    let naming = Naming::new(resource);
    let prefix = if resource.group.is_empty() {
        format!("/api/{}", resource.version)
    } else {
        format!("/apis/{}/{}", resource.group, resource.version)
    };
    let scoped = if resource.namespaced {
        format!("{prefix}/namespaces/{{namespace}}/{}", resource.plural)
    } else {
        format!("{prefix}/{}", resource.plural)
    };
    let mut scope_params = vec![];
    if resource.namespaced {
        scope_params.push(params::path(
            "namespace",
            "object name and auth scope, such as for teams and projects",
        ));
    }
    insert(
        paths,
        &scoped,
        collection_ops(target, &naming, meta),
        &scope_params,
    );
    let mut item_params = vec![params::path(
        "name",
        &format!("name of the {}", target.gvk.kind),
    )];
    item_params.extend(scope_params.iter().cloned());
    let item = format!("{scoped}/{{name}}");
    insert(paths, &item, item_ops(target, &naming, meta), &item_params);
    for sub in &target.subresources {
        let ops = subresource_ops(target, sub, &naming, meta);
        insert(paths, &format!("{item}/{}", sub.name), ops, &item_params);
    }
    if resource.namespaced && resource.has_verb("list") {
        let id = format!(
            "list{}{}ForAllNamespaces",
            naming.group_version, target.gvk.kind
        );
        let op = list_op(target, id);
        let all = format!("{prefix}/{}", resource.plural);
        insert(paths, &all, vec![("get", op.into_value(&naming.tag))], &[]);
    }
}

/// Writes a path item if it has operations; path-level parameters go with it.
fn insert(paths: &mut Map<String, Value>, path: &str, ops: Vec<(&str, Value)>, params: &[Value]) {
    if ops.is_empty() {
        return;
    }
    let mut item: Map<String, Value> = ops.into_iter().map(|(m, op)| (m.to_owned(), op)).collect();
    let mut parameters = params.to_vec();
    parameters.push(params::pretty());
    item.insert("parameters".into(), Value::Array(parameters));
    paths.insert(path.to_owned(), Value::Object(item));
}

fn list_op<'a>(target: &'a Target<'_>, id: String) -> Op<'a> {
    Op {
        id,
        description: format!("list or watch objects of kind {}", target.gvk.kind),
        action: "list",
        gvk: &target.gvk,
        parameters: params::list(),
        body: None,
        responses: responses(
            &[OK],
            &target.list,
            &["application/json", "application/json;stream=watch"],
        ),
    }
}

fn collection_ops(
    target: &Target<'_>,
    naming: &Naming,
    meta: &MetaSchemas,
) -> Vec<(&'static str, Value)> {
    let resource = target.resource;
    let kind = &target.gvk.kind;
    let mut ops = vec![];
    if resource.has_verb("list") {
        let op = list_op(target, naming.id("list", "", kind, ""));
        ops.push(("get", op.into_value(&naming.tag)));
    }
    if resource.has_verb("create") {
        let op = Op {
            id: naming.id("create", "", kind, ""),
            description: format!("create a {kind}"),
            action: "post",
            gvk: &target.gvk,
            parameters: params::write(),
            body: Some(body(&target.schema)),
            responses: responses(&[OK, CREATED, ACCEPTED], &target.schema, JSON),
        };
        ops.push(("post", op.into_value(&naming.tag)));
    }
    if resource.has_verb("deletecollection") {
        let op = Op {
            id: naming.id("delete", "Collection", kind, ""),
            description: format!("delete collection of {kind}"),
            action: "deletecollection",
            gvk: &target.gvk,
            parameters: params::delete_collection(),
            body: Some(body(&meta.delete_options)),
            responses: responses(&[OK], &meta.status, JSON),
        };
        ops.push(("delete", op.into_value(&naming.tag)));
    }
    ops
}

fn item_ops(
    target: &Target<'_>,
    naming: &Naming,
    meta: &MetaSchemas,
) -> Vec<(&'static str, Value)> {
    let resource = target.resource;
    let kind = &target.gvk.kind;
    let mut ops = read_write_ops(target, &target.gvk, &target.schema, "", naming, meta);
    if resource.has_verb("delete") {
        let op = Op {
            id: naming.id("delete", "", kind, ""),
            description: format!("delete a {kind}"),
            action: "delete",
            gvk: &target.gvk,
            parameters: params::delete(),
            body: Some(body(&meta.delete_options)),
            responses: responses(&[OK, ACCEPTED], &target.schema, JSON),
        };
        ops.push(("delete", op.into_value(&naming.tag)));
    }
    ops
}

/// get/put/patch on an item or on a read-write subresource (`suffix` is e.g. `Status`).
fn read_write_ops(
    target: &Target<'_>,
    gvk: &Gvk,
    schema: &str,
    suffix: &str,
    naming: &Naming,
    meta: &MetaSchemas,
) -> Vec<(&'static str, Value)> {
    let resource = target.resource;
    let kind = &target.gvk.kind;
    let what = if suffix.is_empty() {
        format!("the specified {kind}")
    } else {
        format!("{} of the specified {kind}", suffix.to_lowercase())
    };
    let mut ops = vec![];
    if resource.has_verb("get") {
        let op = Op {
            id: naming.id("read", "", kind, suffix),
            description: format!("read {what}"),
            action: "get",
            gvk,
            parameters: vec![],
            body: None,
            responses: responses(&[OK], schema, JSON),
        };
        ops.push(("get", op.into_value(&naming.tag)));
    }
    if resource.has_verb("update") {
        let op = Op {
            id: naming.id("replace", "", kind, suffix),
            description: format!("replace {what}"),
            action: "put",
            gvk,
            parameters: params::write(),
            body: Some(body(schema)),
            responses: responses(&[OK, CREATED], schema, JSON),
        };
        ops.push(("put", op.into_value(&naming.tag)));
    }
    if resource.has_verb("patch") {
        let op = Op {
            id: naming.id("patch", "", kind, suffix),
            description: format!("partially update {what}"),
            action: "patch",
            gvk,
            parameters: params::patch(),
            body: Some(patch_body(meta, target.strategic_merge)),
            responses: responses(&[OK, CREATED], schema, JSON),
        };
        ops.push(("patch", op.into_value(&naming.tag)));
    }
    ops
}

fn subresource_ops(
    target: &Target<'_>,
    sub: &Subresource,
    naming: &Naming,
    meta: &MetaSchemas,
) -> Vec<(&'static str, Value)> {
    let suffix = capitalize(&sub.name);
    if sub.methods != SubMethods::CreateOnly {
        let mut ops = read_write_ops(target, &sub.gvk, &sub.schema, &suffix, naming, meta);
        if sub.methods == SubMethods::ReplaceOnly {
            ops.retain(|(method, _)| *method == "put");
        }
        return ops;
    }
    let op = Op {
        id: naming.id("create", "", &target.gvk.kind, &suffix),
        description: format!("create {} of a {}", sub.name, target.gvk.kind),
        action: "post",
        gvk: &sub.gvk,
        parameters: params::write(),
        body: Some(body(&sub.schema)),
        responses: responses(&[OK, CREATED, ACCEPTED], &sub.schema, JSON),
    };
    vec![("post", op.into_value(&naming.tag))]
}
