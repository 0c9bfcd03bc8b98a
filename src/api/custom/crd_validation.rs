//! Validation of CustomResourceDefinitions themselves (upstream's
//! `ValidateCustomResourceDefinition`): names, scope, versions, schemas
//! (structural, with CEL rules that compile), subresources and printer
//! columns. A CRD that fails is refused with 422, as upstream refuses it.

use serde_json::Value;

use super::columns::JsonPath;
use crate::api::registry::names::{
    name_is_dns_label, name_is_dns_subdomain, name_is_dns1035_label,
};
use crate::api::status::Cause;

fn cause(reason: &str, field: String, message: String) -> Cause {
    Cause {
        reason: reason.into(),
        field,
        message,
    }
}

fn required(field: &str, errs: &mut Vec<Cause>) {
    errs.push(cause(
        "FieldValueRequired",
        field.into(),
        "Required value".into(),
    ));
}

fn invalid(field: &str, value: &str, detail: &str, errs: &mut Vec<Cause>) {
    errs.push(cause(
        "FieldValueInvalid",
        field.into(),
        format!("Invalid value: {value:?}: {detail}"),
    ));
}

fn str_at<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key].as_str().unwrap_or_default()
}

/// The problems of a CRD on create (`old` None) or update.
pub fn validate(crd: &Value, old: Option<&Value>) -> Vec<Cause> {
    let mut errs = Vec::new();
    let spec = &crd["spec"];
    let group = str_at(spec, "group");
    let names = &spec["names"];
    let plural = str_at(names, "plural");
    let name = crd["metadata"]["name"].as_str().unwrap_or_default();
    if name != format!("{plural}.{group}") {
        invalid(
            "metadata.name",
            name,
            "must be spec.names.plural+\".\"+spec.group",
            &mut errs,
        );
    }
    if group.is_empty() {
        required("spec.group", &mut errs);
    } else {
        for problem in name_is_dns_subdomain(group, false) {
            invalid("spec.group", group, &problem, &mut errs);
        }
        if group.split('.').count() < 2 {
            invalid(
                "spec.group",
                group,
                "should be a domain with at least one dot",
                &mut errs,
            );
        }
    }
    match str_at(spec, "scope") {
        "Cluster" | "Namespaced" => {}
        "" => required("spec.scope", &mut errs),
        other => errs.push(cause(
            "FieldValueNotSupported",
            "spec.scope".into(),
            format!("Unsupported value: {other:?}: supported values: \"Cluster\", \"Namespaced\""),
        )),
    }
    for (field, value) in [("plural", plural), ("singular", str_at(names, "singular"))] {
        if value.is_empty() && field == "plural" {
            required("spec.names.plural", &mut errs);
        } else if !value.is_empty() {
            for problem in name_is_dns_label(value, false) {
                invalid(&format!("spec.names.{field}"), value, &problem, &mut errs);
            }
        }
    }
    for field in ["kind", "listKind"] {
        let value = str_at(names, field);
        if value.is_empty() {
            if field == "kind" {
                required("spec.names.kind", &mut errs);
            }
        } else if !name_is_dns1035_label(&value.to_ascii_lowercase(), false).is_empty() {
            invalid(
                &format!("spec.names.{field}"),
                value,
                "may have mixed case, but should otherwise match: [a-z]([-a-z0-9]*[a-z0-9])?",
                &mut errs,
            );
        }
    }
    if !str_at(names, "kind").is_empty() && str_at(names, "kind") == str_at(names, "listKind") {
        invalid(
            "spec.names.listKind",
            str_at(names, "listKind"),
            "kind and listKind may not be the same",
            &mut errs,
        );
    }
    validate_versions(spec, &mut errs);
    if let Some(old) = old {
        for (field, now, before) in [
            ("spec.group", group, str_at(&old["spec"], "group")),
            (
                "spec.scope",
                str_at(spec, "scope"),
                str_at(&old["spec"], "scope"),
            ),
        ] {
            // Upstream lets scope change only while no objects are stored;
            // kelp keeps it fixed, as every upstream cluster with objects does.
            if now != before {
                invalid(field, now, "field is immutable", &mut errs);
            }
        }
    }
    errs
}

fn validate_versions(spec: &Value, errs: &mut Vec<Cause>) {
    let Some(versions) = spec["versions"].as_array().filter(|v| !v.is_empty()) else {
        errs.push(cause(
            "FieldValueInvalid",
            "spec.versions".into(),
            "Invalid value: \"null\": must have exactly one version marked as storage version"
                .into(),
        ));
        return;
    };
    let storage = versions.iter().filter(|v| v["storage"] == true).count();
    if storage != 1 {
        errs.push(cause(
            "FieldValueInvalid",
            "spec.versions".into(),
            format!(
                "Invalid value: {}: must have exactly one version marked as storage version",
                serde_json::to_string(versions).unwrap_or_default()
            ),
        ));
    }
    if !versions.iter().any(|v| v["served"] == true) {
        errs.push(cause(
            "FieldValueInvalid",
            "spec.versions".into(),
            "Invalid value: \"[]\": must have at least one version marked as served".into(),
        ));
    }
    let mut seen = Vec::new();
    for (i, version) in versions.iter().enumerate() {
        let path = format!("spec.versions[{i}]");
        let name = str_at(version, "name");
        if name.is_empty() {
            required(&format!("{path}.name"), errs);
        } else {
            for problem in name_is_dns1035_label(name, false) {
                invalid(&format!("{path}.name"), name, &problem, errs);
            }
            if seen.contains(&name) {
                errs.push(cause(
                    "FieldValueDuplicate",
                    format!("{path}.name"),
                    format!("Duplicate value: {name:?}"),
                ));
            }
            seen.push(name);
        }
        let schema = &version["schema"]["openAPIV3Schema"];
        let schema_path = format!("{path}.schema.openAPIV3Schema");
        if schema.is_null() {
            errs.push(cause(
                "FieldValueRequired",
                schema_path.clone(),
                "Required value: schemas are required".into(),
            ));
        } else {
            if let Err(problems) = super::schema::Structural::compile(schema, &schema_path) {
                errs.extend(
                    problems
                        .into_iter()
                        .map(|e| cause(e.reason, e.field, e.message)),
                );
            }
            if let Err(problems) = crate::api::cel::SchemaRules::compile(schema, &schema_path) {
                errs.extend(
                    problems
                        .into_iter()
                        .map(|(field, message)| cause("FieldValueInvalid", field, message)),
                );
            }
        }
        let scale = &version["subresources"]["scale"];
        if scale.is_object() {
            let sub = format!("{path}.subresources.scale");
            let spec_path = str_at(scale, "specReplicasPath");
            if spec_path.is_empty() {
                required(&format!("{sub}.specReplicasPath"), errs);
            } else if !spec_path.starts_with(".spec.") {
                invalid(
                    &format!("{sub}.specReplicasPath"),
                    spec_path,
                    "should be a json path under .spec",
                    errs,
                );
            }
            let status_path = str_at(scale, "statusReplicasPath");
            if status_path.is_empty() {
                required(&format!("{sub}.statusReplicasPath"), errs);
            } else if !status_path.starts_with(".status.") {
                invalid(
                    &format!("{sub}.statusReplicasPath"),
                    status_path,
                    "should be a json path under .status",
                    errs,
                );
            }
            if let Some(selector) = scale["labelSelectorPath"].as_str()
                && !(selector.starts_with(".spec.") || selector.starts_with(".status."))
            {
                invalid(
                    &format!("{sub}.labelSelectorPath"),
                    selector,
                    "should be a json path under either .spec or .status",
                    errs,
                );
            }
        }
        for (j, column) in version["additionalPrinterColumns"]
            .as_array()
            .into_iter()
            .flatten()
            .enumerate()
        {
            let col = format!("{path}.additionalPrinterColumns[{j}]");
            if str_at(column, "name").is_empty() {
                required(&format!("{col}.name"), errs);
            }
            match str_at(column, "type") {
                "integer" | "number" | "string" | "boolean" | "date" => {}
                "" => required(&format!("{col}.type"), errs),
                other => errs.push(cause(
                    "FieldValueNotSupported",
                    format!("{col}.type"),
                    format!(
                        "Unsupported value: {other:?}: supported values: \"boolean\", \"date\", \"integer\", \"number\", \"string\""
                    ),
                )),
            }
            let json_path = str_at(column, "jsonPath");
            if json_path.is_empty() {
                required(&format!("{col}.jsonPath"), errs);
            } else if JsonPath::parse(json_path).is_err() {
                invalid(
                    &format!("{col}.jsonPath"),
                    json_path,
                    "must be a simple json path",
                    errs,
                );
            }
        }
    }
    validate_conversion(&spec["conversion"], errs);
}

/// `spec.conversion`, as upstream's `validateCustomResourceConversion`
/// (whose error paths name the internal fields `webhookClientConfig` and
/// `conversionReviewVersions`).
fn validate_conversion(conversion: &Value, errs: &mut Vec<Cause>) {
    let path = "spec.conversion";
    let strategy = str_at(conversion, "strategy");
    let webhook = &conversion["webhook"];
    let config = &webhook["clientConfig"];
    let review_versions = webhook["conversionReviewVersions"].as_array();
    match strategy {
        "" | "None" => {
            if config.is_object() {
                errs.push(cause(
                    "FieldValueForbidden",
                    format!("{path}.webhookClientConfig"),
                    "Forbidden: should not be set when strategy is not set to Webhook".into(),
                ));
            }
            if review_versions.is_some_and(|v| !v.is_empty()) {
                errs.push(cause(
                    "FieldValueForbidden",
                    format!("{path}.conversionReviewVersions"),
                    "Forbidden: should not be set when strategy is not set to Webhook".into(),
                ));
            }
        }
        "Webhook" => {
            if !config.is_object() {
                errs.push(cause(
                    "FieldValueRequired",
                    format!("{path}.webhookClientConfig"),
                    "Required value: required when strategy is set to Webhook".into(),
                ));
            } else if config["url"].is_string() == config["service"].is_object() {
                errs.push(cause(
                    "FieldValueRequired",
                    format!("{path}.webhookClientConfig"),
                    "Required value: exactly one of url or service is required".into(),
                ));
            } else if let Some(url) = config["url"].as_str()
                && !url.starts_with("https://")
            {
                invalid(
                    &format!("{path}.webhookClientConfig.url"),
                    url,
                    "'https' is the only allowed URL scheme",
                    errs,
                );
            }
            let field = format!("{path}.conversionReviewVersions");
            match review_versions.filter(|v| !v.is_empty()) {
                None => required(&field, errs),
                Some(versions) => {
                    if !versions.iter().any(|v| v == "v1" || v == "v1beta1") {
                        let list: Vec<&str> = versions.iter().filter_map(Value::as_str).collect();
                        errs.push(cause(
                            "FieldValueInvalid",
                            field,
                            format!(
                                "Invalid value: []string{{{}}}: must include at least one of v1, v1beta1",
                                list.iter()
                                    .map(|v| format!("{v:?}"))
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            ),
                        ));
                    }
                }
            }
        }
        other => errs.push(cause(
            "FieldValueNotSupported",
            format!("{path}.strategy"),
            format!("Unsupported value: {other:?}: supported values: \"None\", \"Webhook\""),
        )),
    }
}
