//! Collects the `components.schemas` of one group/version document.
//!
//! Built-in kinds come from `k8s-openapi` through a schemars generator configured for OpenAPI
//! 3.0 (refs under `#/components/schemas/`, `$ref` siblings moved into `allOf` as upstream
//! does), so the generator's definitions are exactly the transitive closure of what the document
//! references. List kinds and kinds unknown to `k8s-openapi` are written by hand. `finish` then
//! adds what `k8s-openapi` leaves out: `x-kubernetes-group-version-kind` on kinds, the list/patch
//! markers, and upstream's shapes for `IntOrString` and `Quantity`. Nothing here can fail.

use std::collections::BTreeMap;

use k8s_openapi::schemars::generate::SchemaSettings;
use k8s_openapi::schemars::{JsonSchema, SchemaGenerator};
use serde_json::{Map, Value, json};

use super::{kinds, markers};

const API_VERSION_DOC: &str = "APIVersion defines the versioned schema of this representation \
of an object. Servers convert recognized schemas to the latest internal value and may reject \
unrecognized values.";
const KIND_DOC: &str = "Kind is a string value representing the REST resource this object \
represents, in CamelCase. Servers may infer it from the endpoint the client submits requests to.";

/// A group, version and kind, as written in `x-kubernetes-group-version-kind`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Gvk {
    /// API group, `""` for core.
    pub group: String,
    /// API version.
    pub version: String,
    /// Kind.
    pub kind: String,
}

impl Gvk {
    /// Builds a GVK from borrowed parts.
    pub fn new(group: &str, version: &str, kind: &str) -> Self {
        Self {
            group: group.to_owned(),
            version: version.to_owned(),
            kind: kind.to_owned(),
        }
    }

    /// The extension's JSON object form.
    pub fn to_value(&self) -> Value {
        json!({ "group": self.group, "kind": self.kind, "version": self.version })
    }
}

/// The schema registered for a kind.
pub(crate) struct KindSchema {
    /// Component name, e.g. `io.k8s.api.core.v1.Pod`.
    pub name: String,
    /// Whether the schema is a built-in one from `k8s-openapi` (and so supports strategic merge
    /// patch, like upstream's built-in types).
    pub builtin: bool,
}

/// `{"$ref": "#/components/schemas/<name>"}`.
pub(crate) fn reference(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

/// The schemas of one document under construction.
pub(crate) struct SchemaSet {
    generator: SchemaGenerator,
    extra: Map<String, Value>,
    gvks: BTreeMap<String, Vec<Gvk>>,
}

impl SchemaSet {
    /// An empty set using OpenAPI 3.0 conventions.
    pub fn new() -> Self {
        Self {
            generator: SchemaSettings::openapi3().into_generator(),
            extra: Map::new(),
            gvks: BTreeMap::new(),
        }
    }

    /// Registers the schema of a non-kind type (meta types such as `Status`).
    pub fn meta<T: JsonSchema>(&mut self) -> String {
        self.generator.subschema_for::<T>();
        T::schema_name().into_owned()
    }

    /// Registers the schema of a kind: `k8s-openapi`'s if it knows the kind, else a generic
    /// object schema that preserves unknown fields.
    pub fn kind(&mut self, gvk: &Gvk) -> KindSchema {
        let (name, builtin) = match kinds::find(&gvk.group, &gvk.version, &gvk.kind) {
            Some(found) => ((found.register)(&mut self.generator), true),
            None => (self.generic_kind(gvk), false),
        };
        let known = self.gvks.entry(name.clone()).or_default();
        if !known.contains(gvk) {
            known.push(gvk.clone());
        }
        KindSchema { name, builtin }
    }

    /// Registers `<Kind>List` for an item kind and returns its component name.
    pub fn list(&mut self, item: &Gvk, item_schema: &str) -> String {
        let name = format!("{item_schema}List");
        let list_meta = self.meta::<k8s_openapi::apimachinery::pkg::apis::meta::v1::ListMeta>();
        let schema = json!({
            "description": format!("{}List is a list of {} objects.", item.kind, item.kind),
            "type": "object",
            "required": ["items"],
            "properties": {
                "apiVersion": { "description": API_VERSION_DOC, "type": "string" },
                "items": {
                    "description": format!("List of {} objects.", item.kind),
                    "type": "array",
                    "items": reference(item_schema),
                },
                "kind": { "description": KIND_DOC, "type": "string" },
                "metadata": {
                    "description": "Standard list metadata.",
                    "allOf": [reference(&list_meta)],
                },
            },
        });
        self.extra.insert(name.clone(), schema);
        let list_gvk = Gvk::new(&item.group, &item.version, &format!("{}List", item.kind));
        self.gvks.insert(name.clone(), vec![list_gvk]);
        name
    }

    /// Registers a custom resource's kind from its CRD's `openAPIV3Schema`,
    /// as upstream's CRD OpenAPI builder does: the schema as written, with
    /// apiVersion, kind and metadata (ObjectMeta) added.
    pub fn custom_kind(&mut self, gvk: &Gvk, crd_schema: &Value) -> KindSchema {
        let name = generic_name(gvk);
        let object_meta = self.meta::<k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta>();
        let mut schema = crd_schema.clone();
        if !schema.is_object() {
            schema = json!({"type": "object"});
        }
        let props = schema
            .as_object_mut()
            .map(|m| m.entry("properties").or_insert_with(|| json!({})));
        if let Some(Value::Object(props)) = props {
            props.insert(
                "apiVersion".into(),
                json!({ "description": API_VERSION_DOC, "type": "string" }),
            );
            props.insert(
                "kind".into(),
                json!({ "description": KIND_DOC, "type": "string" }),
            );
            props.insert(
                "metadata".into(),
                json!({
                    "description": "Standard object's metadata. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata",
                    "allOf": [reference(&object_meta)],
                }),
            );
        }
        self.extra.insert(name.clone(), schema);
        let known = self.gvks.entry(name.clone()).or_default();
        if !known.contains(gvk) {
            known.push(gvk.clone());
        }
        KindSchema {
            name,
            builtin: false,
        }
    }

    fn generic_kind(&mut self, gvk: &Gvk) -> String {
        let name = generic_name(gvk);
        let object_meta = self.meta::<k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta>();
        let schema = json!({
            "description": format!(
                "{} is served without a published schema; unknown fields are preserved.",
                gvk.kind
            ),
            "type": "object",
            "properties": {
                "apiVersion": { "description": API_VERSION_DOC, "type": "string" },
                "kind": { "description": KIND_DOC, "type": "string" },
                "metadata": {
                    "description": "Standard object's metadata.",
                    "allOf": [reference(&object_meta)],
                },
            },
            "x-kubernetes-preserve-unknown-fields": true,
        });
        self.extra.insert(name.clone(), schema);
        name
    }

    /// The finished `components.schemas` map.
    pub fn finish(mut self) -> Map<String, Value> {
        let mut schemas = self.generator.take_definitions(true);
        schemas.append(&mut self.extra);
        upstream_int_or_string(&mut schemas);
        markers::apply(&mut schemas);
        for (name, gvks) in self.gvks {
            if let Some(Value::Object(schema)) = schemas.get_mut(&name) {
                let list = gvks.iter().map(Gvk::to_value).collect();
                schema.insert("x-kubernetes-group-version-kind".into(), Value::Array(list));
            }
        }
        schemas
    }
}

/// Upstream names custom kinds after the reversed group: `com.example.stable.v1.CronTab`.
fn generic_name(gvk: &Gvk) -> String {
    let group = if gvk.group.is_empty() {
        "io.k8s.api.core".to_owned()
    } else {
        gvk.group.rsplit('.').collect::<Vec<_>>().join(".")
    };
    format!("{group}.{}.{}", gvk.version, gvk.kind)
}

/// `k8s-openapi` marks both types with `x-kubernetes-int-or-string` and no type; upstream's
/// documents spell them as `oneOf`s, which is what OpenAPI-driven clients expect.
fn upstream_int_or_string(schemas: &mut Map<String, Value>) {
    let shapes = [
        (
            "io.k8s.apimachinery.pkg.util.intstr.IntOrString",
            json!({ "format": "int-or-string", "oneOf": [{ "type": "integer" }, { "type": "string" }] }),
        ),
        (
            "io.k8s.apimachinery.pkg.api.resource.Quantity",
            json!({ "oneOf": [{ "type": "string" }, { "type": "number" }] }),
        ),
    ];
    for (name, shape) in shapes {
        let Some(Value::Object(schema)) = schemas.get_mut(name) else {
            continue;
        };
        schema.remove("x-kubernetes-int-or-string");
        if let Value::Object(fields) = shape {
            schema.extend(fields);
        }
    }
}
