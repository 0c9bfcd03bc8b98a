//! From a stored CustomResourceDefinition to the [`ResourceInfo`]s of its
//! served versions.

use std::cmp::Ordering;

use serde_json::Value;

use super::columns::PrinterColumn;
use crate::api::registry::resources::{ALL_VERBS, ResourceInfo, SCALE, STATUS, SubresourceInfo};

/// What one version of a CRD says beyond its names.
pub struct Definition {
    /// The CRD's name (`<plural>.<group>`).
    pub crd: String,
    /// `spec.names.listKind`.
    pub list_kind: String,
    /// The version's OpenAPI v3 schema as written, for OpenAPI documents.
    pub raw_schema: Option<Value>,
    /// The compiled schema: pruning, defaulting, validation.
    pub schema: Option<super::schema::Structural>,
    /// The compiled `x-kubernetes-validations` rules.
    pub rules: Option<crate::api::cel::SchemaRules>,
    /// Table columns after Name.
    pub columns: Vec<PrinterColumn>,
    /// The scale subresource's paths.
    pub scale: Option<ScalePaths>,
    /// `selectableFields` (JSON paths such as `.spec.color`).
    pub selectable_fields: Vec<String>,
    /// For a version that is not the storage version: the one that is.
    pub storage: Option<&'static ResourceInfo>,
    /// The warning a deprecated version answers with.
    pub deprecation_warning: Option<String>,
    /// The CRD's conversion webhook (`conversion: Webhook`), shared by its
    /// versions; `None` converts by rewriting apiVersion.
    pub conversion_webhook: Option<std::sync::Arc<super::conversion_webhook::ConversionWebhook>>,
}

impl std::fmt::Debug for Definition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Definition({})", self.crd)
    }
}

// Definitions are interned: one per CRD generation, so identity is equality.
impl PartialEq for Definition {
    fn eq(&self, other: &Self) -> bool {
        std::ptr::eq(self, other)
    }
}
impl Eq for Definition {}

/// `subresources.scale` of a version.
#[derive(Clone, Debug)]
pub struct ScalePaths {
    /// `.spec.replicas`.
    pub spec_replicas: String,
    /// `.status.replicas`.
    pub status_replicas: String,
    /// `.status.selector`, if given.
    pub label_selector: Option<String>,
}

/// Whether a stored CRD is served: its names are accepted and it is
/// Established.
pub fn is_servable(crd: &Value) -> bool {
    condition_true(crd, "Established") && condition_true(crd, "NamesAccepted")
}

/// Whether `status.conditions` holds `kind` with status True.
pub fn condition_true(crd: &Value, kind: &str) -> bool {
    crd["status"]["conditions"]
        .as_array()
        .is_some_and(|c| c.iter().any(|c| c["type"] == kind && c["status"] == "True"))
}

fn leak(s: &str) -> &'static str {
    Box::leak(s.to_string().into_boxed_str())
}

fn leak_strs(list: &Value) -> &'static [&'static str] {
    let items: Vec<&'static str> = list
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).map(leak).collect())
        .unwrap_or_default();
    Box::leak(items.into_boxed_slice())
}

/// The served versions of `crd` and its storage version, leaked (see the
/// module docs).
pub fn build(crd: &Value) -> (Vec<&'static ResourceInfo>, Option<&'static ResourceInfo>) {
    let spec = &crd["spec"];
    let group = leak(spec["group"].as_str().unwrap_or_default());
    let names = &spec["names"];
    let plural = leak(names["plural"].as_str().unwrap_or_default());
    let kind = leak(names["kind"].as_str().unwrap_or_default());
    let singular = match names["singular"].as_str() {
        Some(s) if !s.is_empty() => leak(s),
        _ => leak(&kind.to_ascii_lowercase()),
    };
    let list_kind = names["listKind"]
        .as_str()
        .filter(|s| !s.is_empty())
        .map_or_else(|| format!("{kind}List"), str::to_string);
    let short_names = leak_strs(&names["shortNames"]);
    let categories = leak_strs(&names["categories"]);
    let namespaced = spec["scope"] != "Cluster";
    let crd_name = crd["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let conversion_webhook =
        super::conversion_webhook::ConversionWebhook::of(crd).map(std::sync::Arc::new);
    let versions: Vec<&Value> = spec["versions"]
        .as_array()
        .map(|v| v.iter().collect())
        .unwrap_or_default();
    let make = |version: &Value, storage: Option<&'static ResourceInfo>| -> &'static ResourceInfo {
        let name = leak(version["name"].as_str().unwrap_or_default());
        let subs = &version["subresources"];
        let subresources: &'static [SubresourceInfo] =
            match (subs["status"].is_object(), subs["scale"].is_object()) {
                (true, true) => &[STATUS, SCALE],
                (true, false) => &[STATUS],
                (false, true) => &[SCALE],
                (false, false) => &[],
            };
        let raw_schema = version["schema"]["openAPIV3Schema"].clone();
        let raw_schema = (!raw_schema.is_null()).then_some(raw_schema);
        let schema = raw_schema
            .as_ref()
            .and_then(|s| super::schema::Structural::compile(s, "").ok());
        let rules = raw_schema
            .as_ref()
            .and_then(|s| crate::api::cel::SchemaRules::compile(s, "").ok())
            .filter(|r| !r.is_empty());
        let mut columns: Vec<PrinterColumn> = version["additionalPrinterColumns"]
            .as_array()
            .map(|cols| {
                cols.iter()
                    .filter_map(|c| PrinterColumn::parse(c).ok())
                    .collect()
            })
            .unwrap_or_default();
        if columns.is_empty() {
            columns.push(PrinterColumn::age());
        }
        let scale = subs["scale"].is_object().then(|| ScalePaths {
            spec_replicas: subs["scale"]["specReplicasPath"]
                .as_str()
                .unwrap_or(".spec.replicas")
                .to_string(),
            status_replicas: subs["scale"]["statusReplicasPath"]
                .as_str()
                .unwrap_or(".status.replicas")
                .to_string(),
            label_selector: subs["scale"]["labelSelectorPath"]
                .as_str()
                .map(str::to_string),
        });
        let selectable_fields = version["selectableFields"]
            .as_array()
            .map(|f| {
                f.iter()
                    .filter_map(|f| f["jsonPath"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        let deprecation_warning = (version["deprecated"] == true).then(|| {
            version["deprecationWarning"]
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| format!("{group}/{name} {kind} is deprecated"))
        });
        let definition: &'static Definition = Box::leak(Box::new(Definition {
            crd: crd_name.clone(),
            list_kind: list_kind.clone(),
            raw_schema,
            schema,
            rules,
            columns,
            scale,
            selectable_fields,
            storage,
            deprecation_warning,
            conversion_webhook: conversion_webhook.clone(),
        }));
        Box::leak(Box::new(ResourceInfo {
            group,
            version: name,
            resource: plural,
            singular,
            kind,
            namespaced,
            short_names,
            categories,
            verbs: ALL_VERBS,
            subresources,
            stored_as: storage.map(|s| (group, s.version)),
            custom: Some(definition),
        }))
    };
    let Some(storage_version) = versions.iter().find(|v| v["storage"] == true) else {
        return (Vec::new(), None);
    };
    let storage = make(storage_version, None);
    let mut served = Vec::new();
    for version in &versions {
        if version["served"] != true {
            continue;
        }
        if std::ptr::eq(*version, *storage_version) {
            served.push(storage);
        } else {
            served.push(make(version, Some(storage)));
        }
    }
    (served, Some(storage))
}

/// Orders served resources as discovery lists them: by group, then by
/// version priority (upstream's `CompareKubeAwareVersionStrings`), then by
/// name.
pub fn sort_for_discovery(resources: &mut [&'static ResourceInfo]) {
    resources.sort_by(|a, b| {
        a.group
            .cmp(b.group)
            .then_with(|| compare_versions(a.version, b.version))
            .then_with(|| a.resource.cmp(b.resource))
    });
}

/// Kubernetes version priority, highest first: `v2` before `v1` before
/// `v1beta2` before `v1beta1` before `v1alpha1`, then anything else
/// alphabetically.
pub fn compare_versions(a: &str, b: &str) -> Ordering {
    match (parse_version(a), parse_version(b)) {
        (Some(x), Some(y)) => {
            // GA (2) > beta (1) > alpha (0); within one, higher numbers first.
            y.1.cmp(&x.1)
                .then_with(|| y.0.cmp(&x.0))
                .then_with(|| y.2.cmp(&x.2))
        }
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => a.cmp(b),
    }
}

/// `v<major>[(alpha|beta)<minor>]` as (major, stability, minor).
fn parse_version(v: &str) -> Option<(u64, u8, u64)> {
    let rest = v.strip_prefix('v')?;
    let digits = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    let major: u64 = rest[..digits].parse().ok()?;
    if major == 0 {
        return None;
    }
    let tail = &rest[digits..];
    if tail.is_empty() {
        return Some((major, 2, 0));
    }
    let (stability, minor) = if let Some(m) = tail.strip_prefix("beta") {
        (1, m)
    } else if let Some(m) = tail.strip_prefix("alpha") {
        (0, m)
    } else {
        return None;
    };
    if minor.is_empty() || !minor.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((major, stability, minor.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_sort_as_upstream() {
        let mut v = vec![
            "v1alpha1",
            "foo1",
            "v1",
            "v11alpha2",
            "v2beta1",
            "v12alpha1",
            "v10beta3",
            "v2",
            "v10",
            "v3beta1",
            "foo10",
        ];
        v.sort_by(|a, b| compare_versions(a, b));
        assert_eq!(
            v,
            vec![
                "v10",
                "v2",
                "v1",
                "v10beta3",
                "v3beta1",
                "v2beta1",
                "v12alpha1",
                "v11alpha2",
                "v1alpha1",
                "foo1",
                "foo10"
            ]
        );
    }
}
