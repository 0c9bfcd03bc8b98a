//! LimitRanger: the LimitRanges of a namespace give its new pods' containers
//! default requests and limits, and bound what they may ask for (upstream
//! `plugin/pkg/admission/limitranger`).
//!
//! Defaults come from the `Container` items (`defaultRequest`, `default`)
//! and fill only what a container leaves unset; the pod is annotated with
//! what was set (`kubernetes.io/limit-ranger`). Then every `Container` item
//! bounds each container, and every `Pod` item bounds the sum over the
//! pod's containers: `min`, `max` and `maxLimitRequestRatio`, with
//! upstream's messages. Pod updates are not checked: a pod's resources
//! cannot change.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use super::{Attributes, aggregate, resource};
use crate::api::handlers::Api;
use crate::api::status::ApiResult;
use crate::client::quantity::{self, Quantity};
use crate::store::Store;

const ANNOTATION: &str = "kubernetes.io/limit-ranger";

type Resources = BTreeMap<String, Quantity>;

impl<S: Store> Api<S> {
    /// Defaults and checks a new pod's resources against its namespace's
    /// LimitRanges.
    pub(super) async fn admit_limit_ranges(
        &self,
        attrs: &Attributes<'_>,
        pod: &mut Value,
    ) -> ApiResult<()> {
        let info = resource("", "v1", "limitranges")?;
        let ranges = self
            .cached_objects(info, attrs.namespace, |found| !found.is_empty())
            .await?;
        if ranges.is_empty() {
            return Ok(());
        }
        let items: Vec<&Value> = ranges
            .iter()
            .flat_map(|r| r["spec"]["limits"].as_array().into_iter().flatten())
            .collect();
        set_defaults(&items, pod);
        let errors = check(&items, pod);
        if errors.is_empty() {
            Ok(())
        } else {
            Err(attrs.forbidden(Some(pod), aggregate(&errors)))
        }
    }
}

fn list(v: &Value) -> Resources {
    v.as_object()
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), quantity::parse(v.as_str()?).ok()?)))
                .collect()
        })
        .unwrap_or_default()
}

/// Fills each container's unset requests and limits from the `Container`
/// items and records what was set in the pod's annotation.
fn set_defaults(items: &[&Value], pod: &mut Value) {
    let mut requests = Map::new();
    let mut limits = Map::new();
    for item in items.iter().filter(|i| i["type"] == "Container") {
        if let Some(m) = item["defaultRequest"].as_object() {
            requests.extend(m.clone());
        }
        if let Some(m) = item["default"].as_object() {
            limits.extend(m.clone());
        }
    }
    if requests.is_empty() && limits.is_empty() {
        return;
    }
    let mut messages = Vec::new();
    for (list_name, label) in [
        ("containers", "container"),
        ("initContainers", "init container"),
    ] {
        let Some(containers) = pod["spec"][list_name].as_array_mut() else {
            continue;
        };
        for c in containers {
            let name = c["name"].as_str().unwrap_or("").to_string();
            for (which, defaults, word) in [
                ("requests", &requests, "request"),
                ("limits", &limits, "limit"),
            ] {
                let mut set = Vec::new();
                for (k, v) in defaults {
                    let present = c["resources"][which].get(k).is_some();
                    if !present {
                        if !c["resources"].is_object() {
                            c["resources"] = json!({});
                        }
                        if !c["resources"][which].is_object() {
                            c["resources"][which] = json!({});
                        }
                        c["resources"][which][k] = v.clone();
                        set.push(k.clone());
                    }
                }
                if !set.is_empty() {
                    messages.push(format!("{} {word} for {label} {name}", set.join(", ")));
                }
            }
        }
    }
    if !messages.is_empty() && pod["metadata"].is_object() {
        if !pod["metadata"]["annotations"].is_object() {
            pod["metadata"]["annotations"] = json!({});
        }
        pod["metadata"]["annotations"][ANNOTATION] =
            json!(format!("LimitRanger plugin set: {}", messages.join("; ")));
    }
}

/// Every violation of the `Container` and `Pod` items.
fn check(items: &[&Value], pod: &Value) -> Vec<String> {
    let mut errors = Vec::new();
    let containers: Vec<&Value> = pod["spec"]["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .collect();
    for item in items {
        let kind = item["type"].as_str().unwrap_or("");
        let bounded: Vec<(Resources, Resources)> = match kind {
            "Container" => containers
                .iter()
                .map(|c| {
                    (
                        list(&c["resources"]["requests"]),
                        list(&c["resources"]["limits"]),
                    )
                })
                .collect(),
            "Pod" => {
                let requests: Vec<Resources> = containers
                    .iter()
                    .map(|c| list(&c["resources"]["requests"]))
                    .collect();
                let limits: Vec<Resources> = containers
                    .iter()
                    .map(|c| list(&c["resources"]["limits"]))
                    .collect();
                vec![(sum(&requests), sum(&limits))]
            }
            _ => continue,
        };
        for (requests, limits) in &bounded {
            for (name, min) in list(&item["min"]) {
                errors.extend(min_violation(kind, &name, &min, requests, limits));
            }
            for (name, max) in list(&item["max"]) {
                errors.extend(max_violation(kind, &name, &max, requests, limits));
            }
            for (name, ratio) in list(&item["maxLimitRequestRatio"]) {
                errors.extend(ratio_violation(kind, &name, &ratio, requests, limits));
            }
        }
    }
    errors
}

/// The total of each resource that every list states (upstream `sum`: a
/// resource missing from one container is missing from the pod).
fn sum(lists: &[Resources]) -> Resources {
    let mut out = Resources::new();
    let names: std::collections::BTreeSet<&String> = lists.iter().flat_map(|l| l.keys()).collect();
    for name in names {
        let mut total = Some(Quantity::zero());
        for l in lists {
            total = match (total, l.get(name)) {
                (Some(t), Some(v)) => t.checked_add(v),
                _ => None,
            };
        }
        if let Some(t) = total {
            out.insert(name.clone(), t);
        }
    }
    out
}

fn shown(q: &Quantity) -> String {
    q.canonical()
}

fn min_violation(
    kind: &str,
    name: &str,
    min: &Quantity,
    requests: &Resources,
    limits: &Resources,
) -> Option<String> {
    let Some(req) = requests.get(name) else {
        return Some(format!(
            "minimum {name} usage per {kind} is {}.  No request is specified",
            shown(min)
        ));
    };
    if req.cmp_value(min) == Ordering::Less {
        return Some(format!(
            "minimum {name} usage per {kind} is {}, but request is {}",
            shown(min),
            shown(req)
        ));
    }
    match limits.get(name) {
        Some(lim) if lim.cmp_value(min) == Ordering::Less => Some(format!(
            "minimum {name} usage per {kind} is {}, but limit is {}",
            shown(min),
            shown(lim)
        )),
        _ => None,
    }
}

fn max_violation(
    kind: &str,
    name: &str,
    max: &Quantity,
    requests: &Resources,
    limits: &Resources,
) -> Option<String> {
    let Some(lim) = limits.get(name) else {
        return Some(format!(
            "maximum {name} usage per {kind} is {}.  No limit is specified",
            shown(max)
        ));
    };
    if lim.cmp_value(max) == Ordering::Greater {
        return Some(format!(
            "maximum {name} usage per {kind} is {}, but limit is {}",
            shown(max),
            shown(lim)
        ));
    }
    match requests.get(name) {
        Some(req) if req.cmp_value(max) == Ordering::Greater => Some(format!(
            "maximum {name} usage per {kind} is {}, but request is {}",
            shown(max),
            shown(req)
        )),
        _ => None,
    }
}

fn ratio_violation(
    kind: &str,
    name: &str,
    ratio: &Quantity,
    requests: &Resources,
    limits: &Resources,
) -> Option<String> {
    let milli = |q: Option<&Quantity>| {
        q.map(|q| {
            let mut q = *q;
            q.round_up(-3);
            q.milli_value().unwrap_or(i128::MAX) as f64
        })
        .unwrap_or(0.0)
    };
    let (req, lim) = (milli(requests.get(name)), milli(limits.get(name)));
    if req == 0.0 {
        return Some(format!(
            "{name} max limit to request ratio per {kind} is {}, but no request is specified or request is 0",
            shown(ratio)
        ));
    }
    if lim == 0.0 {
        return Some(format!(
            "{name} max limit to request ratio per {kind} is {}, but no limit is specified or limit is 0",
            shown(ratio)
        ));
    }
    let observed = lim / req;
    if observed * 1000.0 > milli(Some(ratio)) {
        return Some(format!(
            "{name} max limit to request ratio per {kind} is {}, but provided ratio is {observed:.6}",
            shown(ratio)
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_fill_only_unset_values_and_are_recorded() {
        let item = json!({"type": "Container", "default": {"cpu": "500m"}, "defaultRequest": {"cpu": "100m", "memory": "64Mi"}});
        let mut pod = json!({"metadata": {"name": "p"}, "spec": {"containers": [
            {"name": "web", "resources": {"requests": {"memory": "1Gi"}}}]}});
        set_defaults(&[&item], &mut pod);
        let r = &pod["spec"]["containers"][0]["resources"];
        assert_eq!(r["requests"]["cpu"], "100m");
        assert_eq!(r["requests"]["memory"], "1Gi");
        assert_eq!(r["limits"]["cpu"], "500m");
        assert_eq!(
            pod["metadata"]["annotations"][ANNOTATION],
            "LimitRanger plugin set: cpu request for container web; cpu limit for container web"
        );
    }

    #[test]
    fn bounds_give_upstreams_messages() {
        let item = json!({"type": "Container", "max": {"cpu": "1"}, "min": {"memory": "100Mi"}, "maxLimitRequestRatio": {"cpu": "2"}});
        let pod = json!({"spec": {"containers": [{"name": "web", "resources": {
            "requests": {"cpu": "500m", "memory": "50Mi"}, "limits": {"cpu": "2"}}}]}});
        let errors = check(&[&item], &pod);
        assert_eq!(
            errors,
            vec![
                "minimum memory usage per Container is 100Mi, but request is 50Mi".to_string(),
                "maximum cpu usage per Container is 1, but limit is 2".to_string(),
                "cpu max limit to request ratio per Container is 2, but provided ratio is 4.000000"
                    .to_string(),
            ]
        );
    }
}
