//! OpenAPI v3 structural schemas of CustomResourceDefinitions.
//!
//! This is the engine behind every custom resource request: a CRD's
//! `openAPIV3Schema` is compiled once into a [`Node`] tree (refusing schemas
//! upstream refuses, with upstream's error texts), and the compiled tree then
//! defaults, prunes and validates custom objects.
//!
//! Upstream splits this across apiextensions-apiserver (structural schema,
//! defaulting, pruning, list-type validation) and kube-openapi (the JSON schema
//! validator whose messages end up in API responses). Clients and e2e tests
//! match on those messages, so the texts here are copied verbatim, including
//! their quirks (e.g. `<nil>` field paths of oneOf failures).

mod check;
mod defaults;
mod errors;
mod formats;
mod gofmt;
mod listtype;
mod objectmeta;
mod prune;
mod structural;
#[cfg(test)]
mod tests;
mod validate;

pub use self::errors::FieldError;
pub use self::structural::Node;

/// A compiled, structural `openAPIV3Schema`. Immutable after compilation, so it
/// can be shared between request handlers.
#[derive(Debug, Clone)]
pub struct Structural {
    root: Node,
}

impl Structural {
    /// Compiles `schema` (an `openAPIV3Schema` JSON value). `path_prefix` is the
    /// schema's field path inside the CRD (e.g.
    /// `spec.versions[0].schema.openAPIV3Schema`) and prefixes every error.
    ///
    /// The errors are upstream's CRD schema validation errors followed by the
    /// structural schema errors and the default validation errors.
    pub fn compile(
        schema: &serde_json::Value,
        path_prefix: &str,
    ) -> Result<Structural, Vec<FieldError>> {
        let root = structural::parse(schema, path_prefix)?;
        let errs = check::check(&root, path_prefix);
        if !errs.is_empty() {
            return Err(errs);
        }
        Ok(Structural { root })
    }

    /// Applies schema defaults to `obj` (upstream's defaulting algorithm:
    /// defaults fill absent fields, and `null` where the schema is not
    /// nullable; defaults apply inside items and additionalProperties too).
    pub fn apply_defaults(&self, obj: &mut serde_json::Value) {
        defaults::apply(obj, &self.root);
    }

    /// Drops fields unknown to the schema and returns their paths, sorted,
    /// with a leading dot (`.spec.foo`, `.spec.items[0].bar`); upstream's
    /// paths are the same without the dot (`unknown field "spec.foo"`).
    ///
    /// The object root is treated as an embedded resource: its `apiVersion`,
    /// `kind` and `metadata` are kept untouched. Embedded resources below the
    /// root keep `apiVersion`/`kind`, and their `metadata` is reduced to
    /// ObjectMeta's fields (reported as `.spec.template.metadata.foo`).
    pub fn prune(&self, obj: &mut serde_json::Value) -> Vec<String> {
        prune::prune_root(obj, &self.root)
    }

    /// Validates `obj` against the schema. Root `apiVersion`, `kind` and
    /// `metadata` are skipped: the caller validates object metadata.
    pub fn validate(&self, obj: &serde_json::Value) -> Vec<FieldError> {
        let mut errs = validate::validate_object(&self.root, obj);
        errs.extend(objectmeta::validate("", obj, &self.root, false));
        errs.extend(listtype::validate_root(&self.root, obj));
        errs
    }

    /// The compiled schema tree.
    pub fn root(&self) -> &Node {
        &self.root
    }
}
