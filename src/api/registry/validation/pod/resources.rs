//! Container resource requirements: resource names, quantity syntax and values, requests
//! versus limits, resize policies and downward-API resource references.

use std::cmp::Ordering;

use serde_json::Value;

use super::super::FieldError;
use super::super::field::{
    Bad, Path, duplicate, forbidden, invalid_each, invalid_str, not_supported, required,
};
use super::super::json::{arr, get, obj_of, str_of, sub};
use super::super::quantity::{self, Quantity};
use crate::api::registry::names::is_qualified_name;

const STANDARD_RESOURCES: [&str; 20] = [
    "cpu",
    "memory",
    "ephemeral-storage",
    "requests.cpu",
    "requests.memory",
    "requests.ephemeral-storage",
    "limits.cpu",
    "limits.memory",
    "limits.ephemeral-storage",
    "pods",
    "services",
    "replicationcontrollers",
    "resourcequotas",
    "secrets",
    "configmaps",
    "persistentvolumeclaims",
    "storage",
    "requests.storage",
    "services.nodeports",
    "services.loadbalancers",
];

fn is_native(name: &str) -> bool {
    !name.contains('/') || name.contains("kubernetes.io/")
}

fn is_hugepages(name: &str) -> bool {
    name.starts_with("hugepages-")
}

fn is_extended(name: &str) -> bool {
    !is_native(name)
        && !name.starts_with("requests.")
        && is_qualified_name(&format!("requests.{name}")).is_empty()
}

fn overcommit_allowed(name: &str) -> bool {
    is_native(name) && !is_hugepages(name)
}

fn is_standard(name: &str) -> bool {
    STANDARD_RESOURCES.contains(&name)
        || ["hugepages-", "requests.hugepages-", "limits.hugepages-"]
            .iter()
            .any(|p| name.starts_with(p))
}

/// Upstream `validateContainerResourceName`.
fn validate_container_resource_name(name: &str, path: &Path, errs: &mut Vec<FieldError>) {
    let msgs = is_qualified_name(name);
    if !msgs.is_empty() {
        invalid_each(errs, path, name, msgs);
    } else if !name.contains('/') && !is_standard(name) {
        errs.push(invalid_str(
            path,
            name,
            "must be a standard resource type or fully qualified",
        ));
    }
    if !name.contains('/') {
        if !matches!(name, "cpu" | "memory" | "ephemeral-storage") && !is_hugepages(name) {
            errs.push(invalid_str(
                path,
                name,
                "must be a standard resource for containers",
            ));
        }
    } else if !is_native(name) && !is_extended(name) {
        errs.push(invalid_str(
            path,
            name,
            "doesn't follow extended resource name standard",
        ));
    }
}

/// Parses a quantity value, reporting a syntax error at `path`.
///
/// Upstream rejects a malformed quantity while decoding the request (a 400 carrying the
/// same text); here it becomes an `Invalid` error at the field instead.
pub(crate) fn parse_quantity(
    value: &Value,
    path: &Path,
    errs: &mut Vec<FieldError>,
) -> Option<Quantity> {
    let text = match value {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        other => other.to_string(),
    };
    match quantity::parse(&text) {
        Ok(q) => Some(q),
        Err(e) => {
            errs.push(invalid_str(path, &text, e.message()));
            None
        }
    }
}

/// Upstream `ValidateResourceQuantityValue`.
pub(crate) fn validate_quantity_value(
    name: &str,
    q: &Quantity,
    path: &Path,
    errs: &mut Vec<FieldError>,
) {
    if q.is_negative() {
        errs.push(invalid_str(
            path,
            &q.canonical(),
            "must be greater than or equal to 0",
        ));
    }
    let integer =
        matches!(name, "pods" | "services" | "secrets" | "configmaps") || is_extended(name);
    if integer && q.milli_value().is_none_or(|m| m % 1000 != 0) {
        errs.push(invalid_str(path, &q.canonical(), "must be an integer"));
    }
}

fn hugepage_error(name: &str, q: &Quantity) -> Option<String> {
    let size = quantity::parse(name.strip_prefix("hugepages-")?)
        .ok()?
        .int_value()?;
    let value = q.int_value();
    let divisible = size > 0 && value.is_some_and(|v| v > 0 && v % size == 0);
    (!divisible).then(|| {
        format!(
            "{} is not positive integer multiple of {name}",
            q.canonical()
        )
    })
}

type Parsed<'a> = Vec<(&'a str, Quantity)>;

fn parse_list<'a>(
    resources: &'a Value,
    key: &str,
    path: &Path,
    errs: &mut Vec<FieldError>,
) -> Parsed<'a> {
    let mut out = Vec::new();
    let Some(map) = obj_of(resources, key) else {
        return out;
    };
    for (name, value) in map {
        let p = path.key(name);
        validate_container_resource_name(name, &p, errs);
        if let Some(q) = parse_quantity(value, &p, errs) {
            validate_quantity_value(name, &q, &p, errs);
            if is_hugepages(name)
                && let Some(msg) = hugepage_error(name, &q)
            {
                errs.push(invalid_str(&p, &q.canonical(), &msg));
            }
            out.push((name.as_str(), q));
        }
    }
    out
}

/// Upstream `ValidateContainerResourceRequirements` (without resource claims).
pub(crate) fn validate_container_resources(c: &Value, path: &Path, errs: &mut Vec<FieldError>) {
    let resources = sub(c, "resources");
    let (lim_path, req_path) = (path.child("limits"), path.child("requests"));
    let limits = parse_list(resources, "limits", &lim_path, errs);
    let requests = parse_list(resources, "requests", &req_path, errs);
    for (name, q) in &requests {
        match limits.iter().find(|(n, _)| n == name) {
            Some((_, limit)) => {
                let ord = q.cmp_value(limit);
                let msg = if ord != Ordering::Equal && !overcommit_allowed(name) {
                    format!("must be equal to {name} limit of {}", limit.canonical())
                } else if ord == Ordering::Greater {
                    format!(
                        "must be less than or equal to {name} limit of {}",
                        limit.canonical()
                    )
                } else {
                    continue;
                };
                errs.push(invalid_str(&req_path, &q.canonical(), &msg));
            }
            None if !overcommit_allowed(name) => {
                errs.push(required(
                    &lim_path,
                    "Limit must be set for non overcommitable resources",
                ));
            }
            None => {}
        }
    }
    let all = limits.iter().chain(requests.iter()).map(|(n, _)| *n);
    let (mut cpu_mem, mut huge) = (false, false);
    for n in all {
        cpu_mem |= matches!(n, "cpu" | "memory");
        huge |= is_hugepages(n);
    }
    if huge && !cpu_mem {
        errs.push(forbidden(path, "HugePages require cpu or memory"));
    }
}

/// Upstream `validateResizePolicy`.
pub(crate) fn validate_resize_policy(
    c: &Value,
    path: &Path,
    pod_restart: &str,
    errs: &mut Vec<FieldError>,
) {
    let mut seen: Vec<&str> = Vec::new();
    for (i, p) in arr(c, "resizePolicy").iter().enumerate() {
        let name = str_of(p, "resourceName");
        if seen.contains(&name) {
            errs.push(duplicate(&path.index(i), Bad::s(name)));
        }
        seen.push(name);
        match name {
            "cpu" | "memory" => {}
            "" => errs.push(required(path, "")),
            other => errs.push(not_supported(path, Bad::s(other), &["cpu", "memory"])),
        }
        let policy = str_of(p, "restartPolicy");
        match policy {
            "NotRequired" | "RestartContainer" => {}
            "" => errs.push(required(path, "")),
            other => errs.push(not_supported(
                path,
                Bad::s(other),
                &["NotRequired", "RestartContainer"],
            )),
        }
        if pod_restart == "Never" && policy != "NotRequired" {
            let msg = "must be 'NotRequired' when `restartPolicy` is 'Never'";
            errs.push(invalid_str(path, policy, msg));
        }
    }
}

const RESOURCE_FIELD_PATHS: [&str; 6] = [
    "limits.cpu",
    "limits.ephemeral-storage",
    "limits.memory",
    "requests.cpu",
    "requests.ephemeral-storage",
    "requests.memory",
];

/// Upstream `validateContainerResourceFieldSelector`.
pub(crate) fn validate_resource_field_ref(
    fs: &Value,
    path: &Path,
    volume: bool,
    errs: &mut Vec<FieldError>,
) {
    let resource = str_of(fs, "resource");
    if volume && str_of(fs, "containerName").is_empty() {
        errs.push(required(&path.child("containerName"), ""));
    } else if resource.is_empty() {
        errs.push(required(&path.child("resource"), ""));
    } else if !RESOURCE_FIELD_PATHS.contains(&resource)
        && !resource.starts_with("requests.hugepages-")
        && !resource.starts_with("limits.hugepages-")
    {
        errs.push(not_supported(
            &path.child("resource"),
            Bad::s(resource),
            &RESOURCE_FIELD_PATHS,
        ));
    }
    let Some(divisor) = get(fs, "divisor") else {
        return;
    };
    let mut ignored = Vec::new();
    let Some(q) = parse_quantity(divisor, &path.child("divisor"), &mut ignored) else {
        errs.extend(ignored);
        return;
    };
    if q.is_zero() {
        return;
    }
    let canonical = q.canonical();
    let sizes = [
        "1", "1k", "1M", "1G", "1T", "1P", "1E", "1Ki", "1Mi", "1Gi", "1Ti", "1Pi", "1Ei",
    ];
    let listed = "1, 1k, 1M, 1G, 1T, 1P, 1E, 1Ki, 1Mi, 1Gi, 1Ti, 1Pi, 1Ei";
    let msg = match resource {
        "limits.cpu" | "requests.cpu" if !["1m", "1"].contains(&canonical.as_str()) => {
            "only divisor's values 1m and 1 are supported with the cpu resource".to_string()
        }
        "limits.memory" | "requests.memory" if !sizes.contains(&canonical.as_str()) => {
            format!("only divisor's values {listed} are supported with the memory resource")
        }
        "limits.ephemeral-storage" | "requests.ephemeral-storage"
            if !sizes.contains(&canonical.as_str()) =>
        {
            format!(
                "only divisor's values {listed} are supported with the local ephemeral storage resource"
            )
        }
        r if r.contains("hugepages-") && !sizes.contains(&canonical.as_str()) => {
            format!("only divisor's values {listed} are supported with the hugepages resource")
        }
        _ => return,
    };
    errs.push(invalid_str(&path.child("divisor"), resource, &msg));
}
