//! Compile-time checks of an `openAPIV3Schema`, in upstream's order:
//! the root `nullable` check, the structural schema check (sorted by error
//! text, as upstream sorts), default validation (only if the schema is
//! structural), then the CRD schema keyword checks.
//!
//! These mirror apiextensions-apiserver's `ValidateStructural`,
//! `ValidateDefaults` and `ValidateCustomResourceDefinitionOpenAPISchema`
//! for v1 CRDs created fresh (all "ratcheting" options at their strictest).

use super::errors::{self, Bad, FieldError, child, index, key};
use super::structural::Node;
use super::{objectmeta, prune, validate};
use serde_json::Value;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Level {
    Root,
    Item,
    Field,
}

pub(crate) fn check(root: &Node, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if root.nullable {
        errs.push(errors::forbidden(
            &child(path, "nullable"),
            "nullable cannot be true at the root",
        ));
    }
    let mut structural = Vec::new();
    invariants(root, Level::Root, path, &mut structural);
    completeness_value(root, root, path, path, &mut structural);
    structural.sort_by_key(|e| e.to_string());
    if structural.is_empty() {
        defaults(root, path, true, false, &mut errs);
    } else {
        errs.extend(structural);
    }
    let ssv = Ssv {
        forbid_defaults: None,
        inside_meta: false,
    };
    crd_schema(root, path, &ssv, true, &mut errs);
    errs
}

// ---- structural invariants (schema/validation.go) ----

fn invariants(s: &Node, lvl: Level, path: &str, errs: &mut Vec<FieldError>) {
    if s.type_is("array") && s.items.is_none() {
        errs.push(errors::required(&child(path, "items"), "must be specified"));
    }
    if let Some(items) = &s.items {
        invariants(items, Level::Item, &child(path, "items"), errs);
    }
    for (k, v) in &s.properties {
        invariants(v, Level::Field, &key(&child(path, "properties"), k), errs);
    }
    let has_ap = s.additional_properties.is_some() || s.additional_properties_bool.is_some();
    if has_ap {
        if lvl == Level::Root {
            errs.push(errors::forbidden(
                &child(path, "additionalProperties"),
                "must not be used at the root",
            ));
        }
        if let Some(ap) = &s.additional_properties {
            invariants(ap, Level::Field, &child(path, "additionalProperties"), errs);
        }
    }
    if s.int_or_string && s.preserve_unknown_fields {
        errs.push(errors::invalid(
            &child(path, "x-kubernetes-preserve-unknown-fields"),
            Bad::Json(Value::Bool(true)),
            "must be false if x-kubernetes-int-or-string is true",
        ));
    }
    if s.int_or_string && s.embedded_resource {
        errs.push(errors::invalid(
            &child(path, "x-kubernetes-embedded-resource"),
            Bad::Json(Value::Bool(true)),
            "must be false if x-kubernetes-int-or-string is true",
        ));
    }
    let skip_any_of = is_int_or_string_pattern(&s.any_of);
    let skip_first_all_of_any_of = s
        .all_of
        .first()
        .is_some_and(|a| is_int_or_string_pattern(&a.any_of));
    value_validation(s, skip_any_of, skip_first_all_of_any_of, path, errs);

    let check_metadata = lvl == Level::Root || s.embedded_resource;
    if s.embedded_resource && !s.type_is("object") {
        match &s.type_ {
            None => errs.push(errors::required(
                &child(path, "type"),
                "must be object if x-kubernetes-embedded-resource is true",
            )),
            Some(t) => errs.push(errors::invalid(
                &child(path, "type"),
                Bad::Str(t.clone()),
                "must be object if x-kubernetes-embedded-resource is true",
            )),
        }
    } else if s.type_.is_none() && !s.int_or_string && !s.preserve_unknown_fields {
        let detail = match lvl {
            Level::Root => "must not be empty at the root",
            Level::Item => "must not be empty for specified array items",
            Level::Field => "must not be empty for specified object fields",
        };
        errs.push(errors::required(&child(path, "type"), detail));
    }
    if s.embedded_resource && has_ap {
        errs.push(errors::forbidden(
            &child(path, "additionalProperties"),
            "must not be used if x-kubernetes-embedded-resource is set",
        ));
    }
    if lvl == Level::Root
        && let Some(t) = &s.type_
        && t != "object"
    {
        errs.push(errors::invalid(
            &child(path, "type"),
            Bad::Str(t.clone()),
            "must be object at the root",
        ));
    }
    for name in ["kind", "apiVersion"] {
        if let Some(p) = s.properties.get(name)
            && check_metadata
            && !p.type_is("string")
        {
            errs.push(errors::invalid(
                &child(&key(&child(path, "properties"), name), "type"),
                Bad::Str(p.type_.clone().unwrap_or_default()),
                "must be string",
            ));
        }
    }
    if let Some(m) = s.properties.get("metadata") {
        let mpath = key(&child(path, "properties"), "metadata");
        if check_metadata && !m.type_is("object") {
            errs.push(errors::invalid(
                &child(&mpath, "type"),
                Bad::Str(m.type_.clone().unwrap_or_default()),
                "must be object",
            ));
        }
        if lvl == Level::Root && !is_name_only_metadata(m) {
            errs.push(errors::forbidden(
                &mpath,
                "must not specify anything other than name and generateName, but metadata is implicitly specified",
            ));
        }
    }
    if s.embedded_resource && !s.preserve_unknown_fields && s.properties.is_empty() {
        errs.push(errors::required(
            &child(path, "properties"),
            "must not be empty if x-kubernetes-embedded-resource is true without x-kubernetes-preserve-unknown-fields",
        ));
    }
}

// Root metadata may only restrict name and generateName; type and default
// are ignored here (both are checked elsewhere).
fn is_name_only_metadata(m: &Node) -> bool {
    let props_ok = m
        .properties
        .keys()
        .all(|k| k == "name" || k == "generateName");
    let mut rest = m.clone();
    rest.type_ = None;
    rest.default = None;
    rest.properties.clear();
    props_ok && is_empty_node(&rest)
}

fn is_empty_node(n: &Node) -> bool {
    n.type_.is_none()
        && n.format.is_none()
        && n.title.is_none()
        && n.description.is_none()
        && !n.nullable
        && n.default.is_none()
        && n.enum_.is_none()
        && n.maximum.is_none()
        && !n.exclusive_maximum
        && n.minimum.is_none()
        && !n.exclusive_minimum
        && n.multiple_of.is_none()
        && n.max_length.is_none()
        && n.min_length.is_none()
        && n.pattern.is_none()
        && n.max_items.is_none()
        && n.min_items.is_none()
        && !n.unique_items
        && n.max_properties.is_none()
        && n.min_properties.is_none()
        && n.required.is_empty()
        && n.properties.is_empty()
        && n.items.is_none()
        && n.additional_properties.is_none()
        && n.additional_properties_bool.is_none()
        && n.all_of.is_empty()
        && n.any_of.is_empty()
        && n.one_of.is_empty()
        && n.not.is_none()
        && n.list_type.is_none()
        && n.list_map_keys.is_empty()
        && n.map_type.is_none()
        && !n.preserve_unknown_fields
        && !n.int_or_string
        && !n.embedded_resource
        && n.validations.is_empty()
}

// anyOf: [{type: integer}, {type: string}] exactly, the form upstream
// tolerates next to x-kubernetes-int-or-string.
fn is_int_or_string_pattern(any_of: &[Node]) -> bool {
    let only_type = |n: &Node, t: &str| {
        let mut rest = n.clone();
        let ok = rest.type_.as_deref() == Some(t);
        rest.type_ = None;
        ok && is_empty_node(&rest)
    };
    any_of.len() == 2 && only_type(&any_of[0], "integer") && only_type(&any_of[1], "string")
}

fn value_validation(
    v: &Node,
    skip_any_of: bool,
    skip_first_all_of_any_of: bool,
    path: &str,
    errs: &mut Vec<FieldError>,
) {
    if !skip_any_of {
        for (i, n) in v.any_of.iter().enumerate() {
            nested(n, false, &index(&child(path, "anyOf"), i), errs);
        }
    }
    for (i, n) in v.all_of.iter().enumerate() {
        nested(
            n,
            skip_first_all_of_any_of && i == 0,
            &index(&child(path, "allOf"), i),
            errs,
        );
    }
    for (i, n) in v.one_of.iter().enumerate() {
        nested(n, false, &index(&child(path, "oneOf"), i), errs);
    }
    if let Some(n) = &v.not {
        nested(n, false, &child(path, "not"), errs);
    }
    if let (Some(p), Some(e)) = (&v.pattern, v.pattern_error()) {
        errs.push(errors::invalid(
            &child(path, "pattern"),
            Bad::Str(p.clone()),
            &format!("must be a valid regular expression, but isn't: {}", e),
        ));
    }
}

fn nested(v: &Node, skip_any_of: bool, path: &str, errs: &mut Vec<FieldError>) {
    value_validation(v, skip_any_of, false, path, errs);
    if let Some(items) = &v.items {
        nested(items, false, &child(path, "items"), errs);
    }
    for (k, p) in &v.properties {
        nested(p, false, &key(&child(path, "properties"), k), errs);
    }
    if v.type_.is_some() {
        errs.push(errors::forbidden(
            &child(path, "type"),
            "must be empty to be structural",
        ));
    }
    if v.additional_properties.is_some() || v.additional_properties_bool == Some(true) {
        errs.push(errors::forbidden(
            &child(path, "additionalProperties"),
            "must be undefined to be structural",
        ));
    }
    if v.default.as_ref().is_some_and(|d| !d.is_null()) {
        errs.push(errors::forbidden(
            &child(path, "default"),
            "must be undefined to be structural",
        ));
    }
    if v.title.as_ref().is_some_and(|t| !t.is_empty()) {
        errs.push(errors::forbidden(
            &child(path, "title"),
            "must be empty to be structural",
        ));
    }
    if v.description.as_ref().is_some_and(|t| !t.is_empty()) {
        errs.push(errors::forbidden(
            &child(path, "description"),
            "must be empty to be structural",
        ));
    }
    if v.nullable {
        errs.push(errors::forbidden(
            &child(path, "nullable"),
            "must be false to be structural",
        ));
    }
    if v.preserve_unknown_fields {
        errs.push(errors::forbidden(
            &child(path, "x-kubernetes-preserve-unknown-fields"),
            "must be false to be structural",
        ));
    }
    if v.embedded_resource {
        errs.push(errors::forbidden(
            &child(path, "x-kubernetes-embedded-resource"),
            "must be false to be structural",
        ));
    }
    if v.int_or_string {
        errs.push(errors::forbidden(
            &child(path, "x-kubernetes-int-or-string"),
            "must be false to be structural",
        ));
    }
    if !v.list_map_keys.is_empty() {
        errs.push(errors::forbidden(
            &child(path, "x-kubernetes-list-map-keys"),
            "must be empty to be structural",
        ));
    }
    if v.list_type.is_some() {
        errs.push(errors::forbidden(
            &child(path, "x-kubernetes-list-type"),
            "must be undefined to be structural",
        ));
    }
    if v.map_type.is_some() {
        errs.push(errors::forbidden(
            &child(path, "x-kubernetes-map-type"),
            "must be undefined to be structural",
        ));
    }
    if !v.validations.is_empty() {
        errs.push(errors::forbidden(
            &child(path, "x-kubernetes-validations"),
            "must be empty to be structural",
        ));
    }
    if v.properties.contains_key("metadata") {
        errs.push(errors::forbidden(
            &key(&child(path, "properties"), "metadata"),
            "must not be specified in a nested context",
        ));
    }
}

// ---- completeness (schema/complete.go): only the root's value validations ----

fn completeness_value(v: &Node, s: &Node, s_path: &str, v_path: &str, errs: &mut Vec<FieldError>) {
    if let Some(n) = &v.not {
        completeness_nested(n, Some(s), s_path, &child(v_path, "not"), errs);
    }
    for (kw, list) in [
        ("allOf", &v.all_of),
        ("anyOf", &v.any_of),
        ("oneOf", &v.one_of),
    ] {
        for (i, n) in list.iter().enumerate() {
            completeness_nested(n, Some(s), s_path, &index(&child(v_path, kw), i), errs);
        }
    }
}

fn completeness_nested(
    v: &Node,
    s: Option<&Node>,
    s_path: &str,
    v_path: &str,
    errs: &mut Vec<FieldError>,
) {
    let Some(s) = s else {
        errs.push(errors::required(
            s_path,
            &format!("because it is defined in {}", v_path),
        ));
        return;
    };
    completeness_value(v, s, s_path, v_path, errs);
    if let Some(items) = &v.items {
        completeness_nested(
            items,
            s.items.as_deref(),
            &child(s_path, "items"),
            &child(v_path, "items"),
            errs,
        );
    }
    for (k, vf) in &v.properties {
        let sp = key(&child(s_path, "properties"), k);
        let vp = key(&child(v_path, "properties"), k);
        match s.properties.get(k) {
            None => errs.push(errors::required(
                &sp,
                &format!("because it is defined in {}", vp),
            )),
            Some(sf) => completeness_nested(vf, Some(sf), &sp, &vp, errs),
        }
    }
}

// ---- default validation (schema/defaulting/validation.go) ----

fn defaults(
    s: &Node,
    path: &str,
    resource_root: bool,
    inside_meta: bool,
    errs: &mut Vec<FieldError>,
) {
    let resource_root = resource_root || s.embedded_resource;
    let inside_meta = inside_meta && !s.embedded_resource;
    if let Some(d) = s.default.as_ref().filter(|d| !d.is_null()) {
        let dpath = child(path, "default");
        if !inside_meta {
            let mut pruned = d.clone();
            prune::prune_value(&mut pruned, s, s.embedded_resource);
            if &pruned != d {
                errs.push(errors::invalid(
                    &dpath,
                    Bad::Json(d.clone()),
                    "must not have unknown fields",
                ));
            }
        }
        let meta_errs = objectmeta::validate(&dpath, d, s, s.embedded_resource);
        if !meta_errs.is_empty() {
            errs.extend(meta_errs);
        } else {
            errs.extend(validate::validate_value(s, d, Some(&dpath)));
        }
    }
    if let Some(items) = &s.items {
        defaults(items, &child(path, "items"), false, inside_meta, errs);
    }
    for (k, p) in &s.properties {
        let sub_meta = inside_meta
            || (resource_root && matches!(k.as_str(), "metadata" | "apiVersion" | "kind"));
        defaults(
            p,
            &key(&child(path, "properties"), k),
            false,
            sub_meta,
            errs,
        );
    }
}

// ---- CRD schema keyword checks (apis/apiextensions/validation) ----

#[derive(Clone)]
struct Ssv {
    forbid_defaults: Option<String>,
    inside_meta: bool,
}

const OPENAPI_V3_TYPES: [&str; 6] = ["array", "boolean", "integer", "number", "object", "string"];

fn crd_schema(s: &Node, path: &str, ssv: &Ssv, is_root: bool, errs: &mut Vec<FieldError>) {
    // specStandardValidatorV3.validate
    if let Some(t) = &s.type_
        && !OPENAPI_V3_TYPES.contains(&t.as_str())
    {
        let valid: Vec<String> = OPENAPI_V3_TYPES.iter().map(|x| x.to_string()).collect();
        errs.push(errors::not_supported(
            &child(path, "type"),
            Bad::Str(t.clone()),
            &valid,
        ));
    }
    if let (Some(_), Some(reason)) = (&s.default, &ssv.forbid_defaults) {
        errs.push(errors::forbidden(
            &child(path, "default"),
            &format!("must not be set {}", reason),
        ));
    }
    for (kw, detail) in [
        ("id", "id is not supported"),
        ("additionalItems", "additionalItems is not supported"),
        ("patternProperties", "patternProperties is not supported"),
        ("definitions", "definitions is not supported"),
        ("dependencies", "dependencies is not supported"),
        ("$ref", "$ref is not supported"),
    ] {
        if s.unsupported.iter().any(|u| u == kw) {
            errs.push(errors::forbidden(&child(path, kw), detail));
        }
    }
    if s.type_is("null") {
        errs.push(errors::forbidden(
            &child(path, "type"),
            "type cannot be set to null, use nullable as an alternative",
        ));
    }
    if s.unsupported.iter().any(|u| u == "items") {
        errs.push(errors::forbidden(
            &child(path, "items"),
            "items must be a schema object and not an array",
        ));
    }
    if ssv.inside_meta && s.embedded_resource {
        errs.push(errors::forbidden(
            &child(path, "x-kubernetes-embedded-resource"),
            "must not be used inside of resource meta",
        ));
    }

    if s.unique_items {
        errs.push(errors::forbidden(
            &child(path, "uniqueItems"),
            "uniqueItems cannot be set to true since the runtime complexity becomes quadratic",
        ));
    }
    let ap_present = s.additional_properties.is_some() || s.additional_properties_bool.is_some();
    if ap_present {
        let ap_blocks =
            s.additional_properties.is_some() || s.additional_properties_bool == Some(false);
        if !s.properties.is_empty() && ap_blocks {
            errs.push(errors::forbidden(
                &child(path, "additionalProperties"),
                "additionalProperties and properties are mutual exclusive",
            ));
        }
        if let Some(ap) = &s.additional_properties {
            let mut sub = ssv.clone();
            if ssv.inside_meta {
                sub.forbid_defaults =
                    Some("inside additionalProperties applying to object metadata".into());
            }
            crd_schema(ap, &child(path, "additionalProperties"), &sub, false, errs);
        }
    }
    for (k, p) in &s.properties {
        let mut sub = ssv.clone();
        if (is_root || s.embedded_resource)
            && matches!(k.as_str(), "metadata" | "apiVersion" | "kind")
        {
            sub.inside_meta = true;
            if is_root {
                sub.forbid_defaults = Some(format!("in top-level {}", k));
            }
        }
        crd_schema(p, &key(&child(path, "properties"), k), &sub, false, errs);
    }
    if let Some(n) = &s.not {
        crd_schema(n, &child(path, "not"), ssv, false, errs);
    }
    for (kw, list) in [
        ("allOf", &s.all_of),
        ("oneOf", &s.one_of),
        ("anyOf", &s.any_of),
    ] {
        for (i, n) in list.iter().enumerate() {
            crd_schema(n, &index(&child(path, kw), i), ssv, false, errs);
        }
    }
    if let Some(items) = &s.items {
        crd_schema(items, &child(path, "items"), ssv, false, errs);
    }

    if s.preserve_unknown_fields_false {
        errs.push(errors::invalid(
            &child(path, "x-kubernetes-preserve-unknown-fields"),
            Bad::Json(Value::Bool(false)),
            "must be true or undefined",
        ));
    }
    if let Some(mt) = &s.map_type {
        if !s.type_is("object") {
            match &s.type_ {
                None => errs.push(errors::required(
                    &child(path, "type"),
                    "must be object if x-kubernetes-map-type is specified",
                )),
                Some(t) => errs.push(errors::invalid(
                    &child(path, "type"),
                    Bad::Str(t.clone()),
                    "must be object if x-kubernetes-map-type is specified",
                )),
            }
        }
        if mt != "atomic" && mt != "granular" {
            errs.push(errors::not_supported(
                &child(path, "x-kubernetes-map-type"),
                Bad::Str(mt.clone()),
                &["atomic".to_string(), "granular".to_string()],
            ));
        }
    }
    if let Some(lt) = &s.list_type {
        if !s.type_is("array") {
            match &s.type_ {
                None => errs.push(errors::required(
                    &child(path, "type"),
                    "must be array if x-kubernetes-list-type is specified",
                )),
                Some(t) => errs.push(errors::invalid(
                    &child(path, "type"),
                    Bad::Str(t.clone()),
                    "must be array if x-kubernetes-list-type is specified",
                )),
            }
        } else if lt == "set"
            && let Some(is) = &s.items
        {
            if is.type_is("array") && is.list_type.as_deref().is_some_and(|x| x != "atomic") {
                errs.push(errors::invalid(
                    &child(&child(path, "items"), "x-kubernetes-list-type"),
                    Bad::Str(is.list_type.clone().unwrap_or_default()),
                    "must be atomic as item of a list with x-kubernetes-list-type=set",
                ));
            }
            if is.type_is("object") && is.map_type.as_deref() != Some("atomic") {
                // Upstream reports the items' list type here (nil renders as null).
                let bad = match &is.list_type {
                    Some(x) => Bad::Str(x.clone()),
                    None => Bad::Json(Value::Null),
                };
                errs.push(errors::invalid(
                    &child(&child(path, "items"), "x-kubernetes-map-type"),
                    bad,
                    "must be atomic as item of a list with x-kubernetes-list-type=set",
                ));
            }
        }
        if lt != "atomic" && lt != "set" && lt != "map" {
            errs.push(errors::not_supported(
                &child(path, "x-kubernetes-list-type"),
                Bad::Str(lt.clone()),
                &["atomic".to_string(), "set".to_string(), "map".to_string()],
            ));
        }
    }
    if !s.list_map_keys.is_empty() {
        match &s.list_type {
            None => errs.push(errors::required(
                &child(path, "x-kubernetes-list-type"),
                "must be map if x-kubernetes-list-map-keys is non-empty",
            )),
            Some(lt) if lt != "map" => errs.push(errors::invalid(
                &child(path, "x-kubernetes-list-type"),
                Bad::Str(lt.clone()),
                "must be map if x-kubernetes-list-map-keys is non-empty",
            )),
            _ => {}
        }
    }
    if s.list_type.as_deref() == Some("map") {
        let keys_bad = Bad::Json(Value::Array(
            s.list_map_keys
                .iter()
                .map(|k| Value::String(k.clone()))
                .collect(),
        ));
        if s.list_map_keys.is_empty() {
            errs.push(errors::required(
                &child(path, "x-kubernetes-list-map-keys"),
                "must not be empty if x-kubernetes-list-type is map",
            ));
        }
        match &s.items {
            None => errs.push(errors::required(
                &child(path, "items"),
                "must have a schema if x-kubernetes-list-type is map",
            )),
            Some(is) if !is.type_is("object") => errs.push(errors::invalid(
                &child(&child(path, "items"), "type"),
                Bad::Str(is.type_.clone().unwrap_or_default()),
                "must be object if parent array's x-kubernetes-list-type is map",
            )),
            Some(is) => {
                let mut seen = std::collections::BTreeSet::new();
                for k in &s.list_map_keys {
                    match is.properties.get(k) {
                        Some(p) if p.type_is("array") || p.type_is("object") => errs.push(errors::invalid(
                            &child(&key(&child(&child(path, "items"), "properties"), k), "type"),
                            Bad::Str(is.type_.clone().unwrap_or_default()),
                            "must be a scalar type if parent array's x-kubernetes-list-type is map",
                        )),
                        Some(_) => {}
                        None => errs.push(errors::invalid(
                            &child(path, "x-kubernetes-list-map-keys"),
                            keys_bad.clone(),
                            "entries must all be names of item properties",
                        )),
                    }
                    if !seen.insert(k.clone()) {
                        errs.push(errors::invalid(
                            &child(path, "x-kubernetes-list-map-keys"),
                            keys_bad.clone(),
                            "must not contain duplicate entries",
                        ));
                    }
                }
            }
        }
    }
    map_list_keys_map_set(s, path, errs);
}

fn map_list_keys_map_set(s: &Node, path: &str, errs: &mut Vec<FieldError>) {
    let (Some(items), Some(lt)) = (&s.items, &s.list_type) else {
        return;
    };
    if lt != "set" && lt != "map" {
        return;
    }
    if items.nullable {
        errs.push(errors::forbidden(
            &child(&child(path, "items"), "nullable"),
            &format!("cannot be nullable when x-kubernetes-list-type is {}", lt),
        ));
    }
    if lt == "map" {
        for k in &s.list_map_keys {
            let Some(p) = items.properties.get(k) else {
                continue;
            };
            let ppath = key(&child(&child(path, "items"), "properties"), k);
            if !items.required.contains(k) && p.default.is_none() {
                errs.push(errors::required(
                    &child(&ppath, "default"),
                    "this property is in x-kubernetes-list-map-keys, so it must have a default or be a required property",
                ));
            }
            if p.nullable {
                errs.push(errors::forbidden(
                    &child(&ppath, "nullable"),
                    "this property is in x-kubernetes-list-map-keys, so it cannot be nullable",
                ));
            }
        }
    }
}
